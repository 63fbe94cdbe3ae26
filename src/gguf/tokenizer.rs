//! The tokenizer a GGUF file carries (`tokenizer.ggml.*`) as the `tokenizer.json` HF would
//! ship, and its chat template as a `tokenizer_config.json`, so the one tokenizer and template
//! code reads both. wgpt reads llama.cpp's `gpt2` tokenizer model (byte-level BPE: GPT-2,
//! SmolLM2, Qwen2.5/Qwen3, Llama 3.x) with the pre-tokenizers those models use, written as their
//! HF `tokenizer.json`s write them; SentencePiece (`llama`: Llama 2, TinyLlama) is not read yet.

use serde_json::{Value, json};

use super::Gguf;
use super::write::Meta;
use crate::bundle::BundleError;
use crate::config::ConfigError;

/// Llama 3's split (HF `tokenizer.json` and llama.cpp's `llama-bpe`): numbers in threes.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's (also Qwen2.5's and Qwen3's): each digit alone.
const QWEN2_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GGML's token types that are added tokens: control (special) and user-defined.
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

fn unsupported(key: &'static str, value: String) -> BundleError {
    ConfigError::Unsupported { key, value }.into()
}

fn missing(key: &str) -> BundleError {
    super::GgufError::Metadata { key: key.into(), reason: "is missing".into() }.into()
}

/// `(tokenizer.json, tokenizer_config.json)` for the GGUF's tokenizer and chat template.
pub fn hf_files(g: &Gguf) -> Result<(Vec<u8>, Vec<u8>), BundleError> {
    let model = g.str("tokenizer.ggml.model")?.ok_or_else(|| missing("tokenizer.ggml.model"))?;
    if model != "gpt2" {
        return Err(unsupported(
            "tokenizer.ggml.model",
            format!("{model:?} (wgpt reads \"gpt2\", byte-level BPE; SentencePiece is not read yet)"),
        ));
    }
    let tokens = g.strings("tokenizer.ggml.tokens")?.ok_or_else(|| missing("tokenizer.ggml.tokens"))?;
    let types = g.ints("tokenizer.ggml.token_type")?.unwrap_or_default();
    if !types.is_empty() && types.len() != tokens.len() {
        return Err(super::GgufError::Metadata {
            key: "tokenizer.ggml.token_type".into(),
            reason: format!("{} types for {} tokens", types.len(), tokens.len()),
        }
        .into());
    }
    let merges = g.strings("tokenizer.ggml.merges")?.unwrap_or_default();
    let pre = g.str("tokenizer.ggml.pre")?.unwrap_or("default");
    let byte_level = |use_regex: bool, trim: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": trim, "use_regex": use_regex});
    let split =
        |regex: &str| json!({"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false});
    let (pre_tokenizer, normalizer) = match pre {
        "default" | "gpt-2" | "gpt2" => (byte_level(true, true), Value::Null),
        "llama-bpe" | "llama3" => {
            (json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_SPLIT), byte_level(false, true)]}), Value::Null)
        }
        "qwen2" => (
            json!({"type": "Sequence", "pretokenizers": [split(QWEN2_SPLIT), byte_level(false, false)]}),
            json!({"type": "NFC"}),
        ),
        "smollm" => (
            json!({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level(true, true)]}),
            Value::Null,
        ),
        other => {
            return Err(unsupported(
                "tokenizer.ggml.pre",
                format!("{other:?} (wgpt reads gpt-2, llama-bpe, qwen2 and smollm)"),
            ));
        }
    };
    // Each token once: a vocabulary maps a text to one id.
    let mut seen = std::collections::HashSet::with_capacity(tokens.len());
    let mut added = Vec::new();
    for (id, &t) in tokens.iter().enumerate() {
        if !seen.insert(t) {
            return Err(super::GgufError::Metadata {
                key: "tokenizer.ggml.tokens".into(),
                reason: format!("token {t:?} appears twice"),
            }
            .into());
        }
        let ty = types.get(id).copied().unwrap_or(1);
        if ty == CONTROL || ty == USER_DEFINED {
            added.push(json!({"id": id, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                              "normalized": false, "special": ty == CONTROL}));
        }
    }
    drop(seen);
    // Written straight from the file's strings: the vocabulary and merges as `serde_json::Value`s
    // first would be a copy of each token (10 MB for SmolLM2's 49 k, transient at the load's peak).
    let tokenizer = TokenizerJson {
        version: "1.0",
        truncation: (),
        padding: (),
        added_tokens: added,
        normalizer,
        pre_tokenizer,
        post_processor: (),
        decoder: json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}),
        model: BpeJson {
            kind: "BPE",
            dropout: (),
            unk_token: (),
            continuing_subword_prefix: (),
            end_of_word_suffix: (),
            fuse_unk: false,
            byte_fallback: false,
            ignore_merges: pre == "llama-bpe" || pre == "llama3",
            vocab: VocabJson(&tokens),
            merges: &merges,
        },
    };
    let token = |key: &str| -> Result<Option<&str>, BundleError> {
        Ok(g.uint(key)?.and_then(|id| tokens.get(id as usize).copied()))
    };
    let mut config = json!({});
    if let Some(template) = g.str("tokenizer.chat_template")? {
        config["chat_template"] = template.into();
    }
    if let Some(t) = token("tokenizer.ggml.bos_token_id")? {
        config["bos_token"] = t.into();
    }
    if let Some(t) = token("tokenizer.ggml.eos_token_id")? {
        config["eos_token"] = t.into();
    }
    let tokenizer = serde_json::to_vec(&tokenizer).expect("JSON of plain values");
    Ok((tokenizer, serde_json::to_vec(&config).expect("JSON of plain values")))
}

/// A `tokenizer.json` with a byte-level BPE model, in the order HF writes its keys.
#[derive(serde::Serialize)]
struct TokenizerJson<'a> {
    version: &'static str,
    truncation: (),
    padding: (),
    added_tokens: Vec<Value>,
    normalizer: Value,
    pre_tokenizer: Value,
    post_processor: (),
    decoder: Value,
    model: BpeJson<'a>,
}

#[derive(serde::Serialize)]
struct BpeJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    dropout: (),
    unk_token: (),
    continuing_subword_prefix: (),
    end_of_word_suffix: (),
    fuse_unk: bool,
    byte_fallback: bool,
    ignore_merges: bool,
    vocab: VocabJson<'a>,
    merges: &'a [&'a str],
}

/// Tokens by id, written as the `{token: id}` object of a BPE vocabulary.
struct VocabJson<'a>(&'a [&'a str]);

impl serde::Serialize for VocabJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().enumerate().map(|(id, t)| (t, id)))
    }
}

/// The `tokenizer.ggml.*` metadata for a byte-level BPE `tokenizer.json` (as llama.cpp's
/// converter writes it): every id up to `vocab_size` (ids the tokenizer lacks as `[PAD{id}]`,
/// unused), the added tokens as control (special) or user-defined, the merges, and the
/// pre-tokenizer by llama.cpp's name for it. The inverse of [`hf_files`].
pub fn gguf_tokenizer(json: &str, vocab_size: usize) -> Result<Vec<(String, Meta)>, BundleError> {
    const UNUSED: i32 = 5;
    let bad = |reason: String| BundleError::Io { path: "tokenizer.json".into(), message: reason };
    let t: Value = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    if t["model"]["type"] != "BPE" {
        return Err(bad(format!("a {} model; GGUF export writes byte-level BPE", t["model"]["type"])));
    }
    let mut tokens: Vec<Option<(String, i32)>> = vec![None; vocab_size];
    let mut put = |id: u64, token: &str, ty: i32| -> Result<(), BundleError> {
        let slot =
            tokens.get_mut(id as usize).ok_or_else(|| bad(format!("id {id} is past vocab_size {vocab_size}")))?;
        *slot = Some((token.to_string(), ty));
        Ok(())
    };
    for (token, id) in t["model"]["vocab"].as_object().ok_or_else(|| bad("no vocab".into()))? {
        put(id.as_u64().ok_or_else(|| bad(format!("{token:?} has no id")))?, token, 1)?;
    }
    for added in t["added_tokens"].as_array().into_iter().flatten() {
        let id = added["id"].as_u64().ok_or_else(|| bad("an added token without an id".into()))?;
        let content = added["content"].as_str().unwrap_or_default();
        put(id, content, if added["special"] == true { CONTROL as i32 } else { USER_DEFINED as i32 })?;
    }
    let merges = t["model"]["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| match m {
            Value::String(s) => Ok(s.clone()),
            Value::Array(p) if p.len() == 2 => {
                Ok(format!("{} {}", p[0].as_str().unwrap_or(""), p[1].as_str().unwrap_or("")))
            }
            other => Err(bad(format!("a merge {other}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pre = pre_name(&t["pre_tokenizer"]).ok_or_else(|| {
        unsupported(
            "pre_tokenizer",
            format!("{} (GGUF export knows GPT-2's, Llama 3's, Qwen2's and SmolLM2's)", t["pre_tokenizer"]),
        )
    })?;
    let (mut names, mut types) = (Vec::with_capacity(vocab_size), Vec::with_capacity(vocab_size));
    for (id, t) in tokens.into_iter().enumerate() {
        let (name, ty) = t.unwrap_or_else(|| (format!("[PAD{id}]"), UNUSED));
        names.push(name);
        types.push(ty);
    }
    let key = |k: &str| format!("tokenizer.ggml.{k}");
    Ok(vec![
        (key("model"), Meta::Str("gpt2".into())),
        (key("pre"), Meta::Str(pre.into())),
        (key("tokens"), Meta::Strs(names)),
        (key("token_type"), Meta::I32s(types)),
        (key("merges"), Meta::Strs(merges)),
    ])
}

/// llama.cpp's name for the pre-tokenizers [`hf_files`] writes.
fn pre_name(p: &Value) -> Option<&'static str> {
    let byte_level = |v: &Value, regex: bool| v["type"] == "ByteLevel" && v["use_regex"] == regex;
    if byte_level(p, true) {
        return Some("gpt-2");
    }
    let parts = p["pretokenizers"].as_array().filter(|_| p["type"] == "Sequence")?;
    match parts.as_slice() {
        [split, bl] if split["type"] == "Split" && byte_level(bl, false) => match split["pattern"]["Regex"].as_str()? {
            LLAMA3_SPLIT => Some("llama-bpe"),
            QWEN2_SPLIT => Some("qwen2"),
            _ => None,
        },
        [digits, bl] if digits["type"] == "Digits" && digits["individual_digits"] == true && byte_level(bl, true) => {
            Some("smollm")
        }
        _ => None,
    }
}
