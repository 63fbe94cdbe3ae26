//! A model's own chat template: the Jinja `chat_template` of its `tokenizer_config.json` (or
//! `chat_template.jinja`), rendered as HF transformers' `apply_chat_template` renders it.
//!
//! transformers renders with Jinja2's sandboxed environment, `trim_blocks` and `lstrip_blocks`
//! on, the `loopcontrols` extension, a `raise_exception(message)` and a `strftime_now(format)`
//! function, and passes `messages`, `add_generation_prompt` and the tokenizer's special tokens
//! (`bos_token`, `eos_token`, …). minijinja with the same settings and minijinja-contrib's
//! Python-method compatibility (`str.strip`, `dict.items`, …) renders the real Qwen3 and Llama 3
//! templates byte-identically (`tests/chat_template.rs`). A template is code from a stranger: it
//! runs with a fuel limit and an output limit, and has no filesystem or network to reach.

use minijinja::{Environment, Error, ErrorKind, Value, context};
use serde::Serialize;
use thiserror::Error;

use crate::chat::Message;

/// Instructions a render may run: real templates need a few thousand per turn.
const FUEL: u64 = 50_000_000;
/// The longest rendered prompt accepted (far beyond any context a model here holds).
const MAX_OUTPUT: usize = 4 << 20;
/// The template's name inside its environment.
const NAME: &str = "chat_template";

#[derive(Debug, Error)]
pub enum TemplateError {
    #[error("tokenizer_config.json: {0}")]
    Config(String),
    #[error("the tokenizer has no chat template (no `chat_template` in tokenizer_config.json, no chat_template.jinja)")]
    Missing,
    #[error("the chat template does not parse: {0}")]
    Syntax(String),
    #[error("the chat template refused the conversation: {0}")]
    Raised(String),
    #[error("the chat template failed: {0}")]
    Render(String),
    #[error("the chat template ran past its limit of {FUEL} steps (a loop that does not end?)")]
    OutOfFuel,
    #[error("the chat template produced {0} bytes, over the limit of {MAX_OUTPUT}")]
    TooLong(usize),
}

/// The special tokens a template may use, as transformers passes them (`None` when unset).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SpecialTokens {
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub unk_token: Option<String>,
    pub pad_token: Option<String>,
}

pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    pub tokens: SpecialTokens,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").field("tokens", &self.tokens).finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// The template of a `tokenizer_config.json`, or of `chat_template.jinja` (`jinja`, which wins
    /// as in transformers) with the config's special tokens.
    pub fn from_config(config: &[u8], jinja: Option<&str>) -> Result<Self, TemplateError> {
        let config: serde_json::Value =
            serde_json::from_slice(config).map_err(|e| TemplateError::Config(e.to_string()))?;
        let token = |key: &str| -> Option<String> {
            match &config[key] {
                serde_json::Value::String(s) => Some(s.clone()),
                // An AddedToken: {"content": "<s>", "lstrip": false, …}.
                serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(str::to_string),
                _ => None,
            }
        };
        let tokens = SpecialTokens {
            bos_token: token("bos_token"),
            eos_token: token("eos_token"),
            unk_token: token("unk_token"),
            pad_token: token("pad_token"),
        };
        let source = match (jinja, &config["chat_template"]) {
            (Some(j), _) => j.to_string(),
            (None, serde_json::Value::String(s)) => s.clone(),
            // Named templates: [{"name": "default", "template": "…"}, {"name": "tool_use", …}].
            (None, serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t["name"] == "default")
                .and_then(|t| t["template"].as_str())
                .ok_or_else(|| TemplateError::Config("`chat_template` lists no template named \"default\"".into()))?
                .to_string(),
            (None, serde_json::Value::Null) => return Err(TemplateError::Missing),
            (None, _) => return Err(TemplateError::Config("`chat_template` is neither a string nor a list".into())),
        };
        Self::new(source, tokens)
    }

    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// A template from its source and the special tokens it may use.
    pub fn new(source: String, tokens: SpecialTokens) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| TemplateError::Syntax(e.to_string()))?;
        env.set_syntax(syntax);
        env.set_fuel(Some(FUEL));
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, message).with_source(Raised))
        });
        env.add_function("strftime_now", |format: String| strftime(&format, now_seconds()));
        env.add_template_owned(NAME, source.clone()).map_err(|e| TemplateError::Syntax(describe(&e)))?;
        Ok(ChatTemplate { env, source, tokens })
    }

    /// The prompt for `messages`; with `add_generation_prompt` it ends where the assistant's
    /// reply begins.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, TemplateError> {
        let t = &self.tokens;
        let ctx = context! {
            messages => Value::from(minijinja::value::Serde(messages)),
            add_generation_prompt => add_generation_prompt,
            bos_token => t.bos_token.clone(),
            eos_token => t.eos_token.clone(),
            unk_token => t.unk_token.clone(),
            pad_token => t.pad_token.clone(),
        };
        let template = self.env.get_template(NAME).map_err(|e| TemplateError::Syntax(describe(&e)))?;
        let text = template.render(ctx).map_err(|e| classify(&e))?;
        if text.len() > MAX_OUTPUT {
            return Err(TemplateError::TooLong(text.len()));
        }
        Ok(text)
    }
}

/// Marks an error raised by the template itself (`raise_exception`).
#[derive(Debug)]
struct Raised;

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("raised by the template")
    }
}

impl std::error::Error for Raised {}

fn classify(e: &Error) -> TemplateError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<Raised>() {
            return TemplateError::Raised(e.detail().unwrap_or_default().to_string());
        }
        source = s.source();
    }
    match e.kind() {
        ErrorKind::OutOfFuel => TemplateError::OutOfFuel,
        _ => TemplateError::Render(describe(e)),
    }
}

/// The error with its line, as minijinja reports it.
fn describe(e: &Error) -> String {
    match e.line() {
        Some(line) => format!("{e} (line {line})"),
        None => e.to_string(),
    }
}

fn now_seconds() -> i64 {
    #[cfg(target_arch = "wasm32")]
    {
        (js_sys::Date::now() / 1000.0) as i64
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
    }
}

/// Python's `strftime` for the fields chat templates use (`%d %b %Y`, `%B`, `%m`, `%y`, `%H`,
/// `%M`, `%S`, `%%`), in UTC, at `seconds` since the epoch.
fn strftime(format: &str, seconds: i64) -> Result<String, Error> {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let (days, secs) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Days since 1970-01-01 → civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let name = MONTHS[(month - 1) as usize];
        match chars.next() {
            Some('d') => out += &format!("{day:02}"),
            Some('b') => out += &name[..3],
            Some('B') => out += name,
            Some('m') => out += &format!("{month:02}"),
            Some('Y') => out += &year.to_string(),
            Some('y') => out += &format!("{:02}", year.rem_euclid(100)),
            Some('H') => out += &format!("{:02}", secs / 3600),
            Some('M') => out += &format!("{:02}", secs / 60 % 60),
            Some('S') => out += &format!("{:02}", secs % 60),
            Some('%') => out.push('%'),
            other => {
                let what = other.map_or("a lone %".to_string(), |c| format!("%{c}"));
                return Err(Error::new(ErrorKind::InvalidOperation, format!("strftime_now: {what} is not supported")));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, content: &str) -> Message {
        Message { role: role.into(), content: content.into() }
    }

    #[test]
    fn strftime_gives_the_dates_templates_print() {
        // 2024-07-26 14:05:09 UTC, the date in Llama 3.1's own template example.
        let t = 1_722_002_709;
        assert_eq!(strftime("%d %b %Y", t).unwrap(), "26 Jul 2024");
        assert_eq!(strftime("%Y-%m-%d %H:%M:%S (%B, %y) 100%%", t).unwrap(), "2024-07-26 14:05:09 (July, 24) 100%");
        assert_eq!(strftime("%d %b %Y", 0).unwrap(), "01 Jan 1970");
        assert_eq!(strftime("%d %b %Y", 951_782_400).unwrap(), "29 Feb 2000");
        assert!(strftime("%Q", t).is_err());
    }

    #[test]
    fn templates_that_raise_loop_or_do_not_parse_are_clear_errors() {
        let tokens = SpecialTokens::default();
        let raising = "{% if messages[0].role != 'user' %}{{ raise_exception('Conversations must start with the user') }}{% endif %}ok";
        let t = ChatTemplate::new(raising.into(), tokens.clone()).unwrap();
        assert_eq!(t.render(&[msg("user", "hi")], true).unwrap(), "ok");
        let err = t.render(&[msg("assistant", "hi")], true).unwrap_err();
        assert!(matches!(&err, TemplateError::Raised(m) if m.contains("must start with the user")), "{err}");
        let forever = "{% for i in range(10000) %}{% for j in range(10000) %}{% for k in range(10000) %}{% endfor %}{% endfor %}{% endfor %}";
        let err = ChatTemplate::new(forever.into(), tokens.clone()).unwrap().render(&[], true).unwrap_err();
        assert!(matches!(err, TemplateError::OutOfFuel), "{err}");
        assert!(matches!(ChatTemplate::new("{% for %}".into(), tokens.clone()), Err(TemplateError::Syntax(_))));
        let huge = "{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}";
        let err = ChatTemplate::new(huge.into(), tokens).unwrap().render(&[], true).unwrap_err();
        assert!(matches!(err, TemplateError::TooLong(_) | TemplateError::OutOfFuel), "{err}");
    }

    #[test]
    fn configs_without_a_template_or_with_named_ones() {
        assert!(matches!(ChatTemplate::from_config(b"{}", None), Err(TemplateError::Missing)));
        assert!(matches!(ChatTemplate::from_config(b"{not json", None), Err(TemplateError::Config(_))));
        let named = br#"{"eos_token": {"content": "</s>"}, "chat_template": [
            {"name": "tool_use", "template": "tools"}, {"name": "default", "template": "{{ eos_token }}"}]}"#;
        let t = ChatTemplate::from_config(named, None).unwrap();
        assert_eq!(t.render(&[], false).unwrap(), "</s>");
        let file = ChatTemplate::from_config(named, Some("from the .jinja file")).unwrap();
        assert_eq!(file.render(&[], false).unwrap(), "from the .jinja file");
    }
}
