//! Chat prompts: the template that turns a conversation into token ids.
//!
//! Models whose tokenizer has `<|im_start|>` / `<|im_end|>` (the trainer reserves them) get
//! ChatML: each turn is `<|im_start|>{role}\n{content}<|im_end|>\n`, and the prompt ends with
//! `<|im_start|>assistant\n`; the reply stops at `<|im_end|>`. Other models (e.g. GPT-2) get a
//! plain transcript, `User: …\nAssistant: …\n`, ending with `Assistant:`, and the reply stops at
//! the end-of-text token or when the model starts the next `\nUser:` turn.
//!
//! Models that bring their own Jinja chat template (the Llama family's `tokenizer_config.json`)
//! are rendered with it instead ([`build_template_prompt`]).
//!
//! When the conversation does not fit the context (with room for `reserve` new tokens), the
//! oldest turns are dropped — a system message, if first, is kept.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::chat_template::ChatTemplate;
use crate::tokenizer::{Tokenizer, TokenizerError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

#[derive(Debug, Error)]
pub enum ChatError {
    #[error("unknown role {0:?} (system, user or assistant)")]
    Role(String),
    #[error("the conversation is empty")]
    Empty,
    #[error("the model has no tokenizer (tokenizer.json) to chat with")]
    NoTokenizer,
    #[error(
        "the last message ({0} tokens with the template) does not fit the context of {1} with {2} tokens left for the reply"
    )]
    TooLong(usize, usize, usize),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Template(#[from] crate::chat_template::TemplateError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Template {
    ChatMl { start: u32, end: u32 },
    Plain,
}

/// A prompt ready to run: its ids, the ids that end the reply, and text that ends it.
#[derive(Debug, Clone)]
pub struct ChatPrompt {
    pub ids: Vec<u32>,
    pub stop_tokens: Vec<u32>,
    pub stop_text: Option<String>,
    /// Turns dropped from the front to fit the context.
    pub dropped: usize,
}

pub fn template(tok: &Tokenizer) -> Template {
    match (tok.token_to_id("<|im_start|>"), tok.token_to_id("<|im_end|>")) {
        (Some(start), Some(end)) => Template::ChatMl { start, end },
        _ => Template::Plain,
    }
}

/// A turn's ids in three parts: the header (`<|im_start|>role\n` or `Role:`), the content with
/// what ends it (`<|im_end|>` or `\n`), and the separator after it. The header and the content
/// are tokenized apart, exactly as a reply is generated after the prompt's header.
fn turn_parts(tok: &Tokenizer, t: Template, m: &Message) -> Result<[Vec<u32>; 3], ChatError> {
    if !matches!(m.role.as_str(), "system" | "user" | "assistant") {
        return Err(ChatError::Role(m.role.clone()));
    }
    Ok(match t {
        Template::ChatMl { start, end } => {
            let mut head = vec![start];
            head.extend(tok.encode(&format!("{}\n", m.role))?);
            let mut body = tok.encode(&m.content)?;
            body.push(end);
            [head, body, tok.encode("\n")?]
        }
        Template::Plain => {
            let who = match m.role.as_str() {
                "system" => "System",
                "user" => "User",
                _ => "Assistant",
            };
            [tok.encode(&format!("{who}:"))?, tok.encode(&format!(" {}\n", m.content))?, vec![]]
        }
    })
}

fn turn_ids(tok: &Tokenizer, t: Template, m: &Message) -> Result<Vec<u32>, ChatError> {
    Ok(turn_parts(tok, t, m)?.concat())
}

/// A whole conversation as training data: its ids and, per id, whether it is a target of the
/// supervised loss (the assistant's words and the token that ends its turn).
pub fn conversation_ids(tok: &Tokenizer, messages: &[Message]) -> Result<(Vec<u32>, Vec<bool>), ChatError> {
    if messages.is_empty() {
        return Err(ChatError::Empty);
    }
    let t = template(tok);
    let (mut ids, mut target) = (Vec::new(), Vec::new());
    for m in messages {
        let [head, body, sep] = turn_parts(tok, t, m)?;
        let learn = m.role == "assistant";
        for (part, on) in [(head, false), (body, learn), (sep, false)] {
            target.extend(std::iter::repeat_n(on, part.len()));
            ids.extend(part);
        }
    }
    Ok((ids, target))
}

/// Builds the prompt for the assistant's next reply within `n_ctx` tokens, leaving `reserve`.
pub fn build_prompt(
    tok: &Tokenizer,
    eos: Option<u32>,
    messages: &[Message],
    n_ctx: usize,
    reserve: usize,
) -> Result<ChatPrompt, ChatError> {
    if messages.is_empty() {
        return Err(ChatError::Empty);
    }
    let t = template(tok);
    let (tail, stop_tokens, stop_text) = match t {
        Template::ChatMl { start, end } => {
            let mut tail = vec![start];
            tail.extend(tok.encode("assistant\n")?);
            (tail, [Some(end), eos].into_iter().flatten().collect::<Vec<_>>(), None)
        }
        Template::Plain => (tok.encode("Assistant:")?, eos.into_iter().collect(), Some("\nUser:".to_string())),
    };
    let turns: Vec<Vec<u32>> = messages.iter().map(|m| turn_ids(tok, t, m)).collect::<Result<_, _>>()?;
    let budget = n_ctx.saturating_sub(reserve);
    let keep_system = messages[0].role == "system" && messages.len() > 1;
    let fixed = tail.len() + if keep_system { turns[0].len() } else { 0 };
    // Drop the oldest non-system turns until the rest fits.
    let first = usize::from(keep_system);
    let mut start = first;
    let mut total: usize = fixed + turns[first..].iter().map(Vec::len).sum::<usize>();
    while total > budget && start + 1 < turns.len() {
        total -= turns[start].len();
        start += 1;
    }
    if total > budget {
        return Err(ChatError::TooLong(total, n_ctx, reserve));
    }
    let mut ids = Vec::with_capacity(total);
    if keep_system {
        ids.extend(&turns[0]);
    }
    for turn in &turns[start..] {
        ids.extend(turn);
    }
    ids.extend(tail);
    Ok(ChatPrompt { ids, stop_tokens, stop_text, dropped: start - first })
}

/// Tokens that end a turn in the common chat formats (ChatML's, Llama 3's, Gemma's): a reply
/// also stops at whichever of these the vocabulary has, as llama.cpp's end-of-generation list does.
const END_OF_TURN: [&str; 4] = ["<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"];

/// [`build_prompt`] with the model's own template: the conversation rendered as HF's
/// `apply_chat_template(add_generation_prompt=True)` renders it, then tokenized without added
/// special tokens (the template writes them). The reply stops at `stop_tokens` and at the
/// end-of-turn tokens the vocabulary has.
pub fn build_template_prompt(
    tok: &Tokenizer,
    template: &ChatTemplate,
    stop_tokens: &[u32],
    messages: &[Message],
    n_ctx: usize,
    reserve: usize,
) -> Result<ChatPrompt, ChatError> {
    if messages.is_empty() {
        return Err(ChatError::Empty);
    }
    if let Some(m) = messages.iter().find(|m| !matches!(m.role.as_str(), "system" | "user" | "assistant")) {
        return Err(ChatError::Role(m.role.clone()));
    }
    let budget = n_ctx.saturating_sub(reserve);
    let keep_system = messages[0].role == "system" && messages.len() > 1;
    let first = usize::from(keep_system);
    // Drop the oldest turns one at a time until the rendering fits: a template may write
    // anything between turns, so only the rendered whole can be measured.
    let mut start = first;
    loop {
        let kept: Vec<Message> = messages[..first].iter().chain(&messages[start..]).cloned().collect();
        let ids = tok.encode(&template.render(&kept, true)?)?;
        if ids.len() <= budget {
            let mut stops = stop_tokens.to_vec();
            stops.extend(END_OF_TURN.iter().filter_map(|t| tok.token_to_id(t)));
            stops.sort_unstable();
            stops.dedup();
            return Ok(ChatPrompt { ids, stop_tokens: stops, stop_text: None, dropped: start - first });
        }
        if start + 1 >= messages.len() {
            return Err(ChatError::TooLong(ids.len(), n_ctx, reserve));
        }
        start += 1;
    }
}
