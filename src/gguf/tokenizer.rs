//! The tokenizer a GGUF file carries (`tokenizer.ggml.*`) as the `tokenizer.json` HF would
//! ship, and its chat template as a `tokenizer_config.json`, so the one tokenizer and template
//! code reads both. wgpt reads llama.cpp's `gpt2` tokenizer model (byte-level BPE: GPT-2,
//! SmolLM2, Qwen2.5/Qwen3, Llama 3.x) with the pre-tokenizers those models use, written as their
//! HF `tokenizer.json`s write them; SentencePiece (`llama`: Llama 2, TinyLlama) is not read yet.

use serde_json::{Map, Value, json};

use super::Gguf;
use crate::bundle::BundleError;
use crate::config::ConfigError;

/// Llama 3's split (HF `tokenizer.json` and llama.cpp's `llama-bpe`): numbers in threes.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's (also Qwen2.5's and Qwen3's): each digit alone.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

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
    let byte_level = |use_regex: bool, trim: bool| {
        json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": trim, "use_regex": use_regex})
    };
    let split = |regex: &str| {
        json!({"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false})
    };
    let (pre_tokenizer, normalizer) = match pre {
        "default" | "gpt-2" | "gpt2" => (byte_level(true, true), Value::Null),
        "llama-bpe" | "llama3" => (json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_SPLIT), byte_level(false, true)]}), Value::Null),
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
    let mut vocab = Map::with_capacity(tokens.len());
    let mut added = Vec::new();
    for (id, &t) in tokens.iter().enumerate() {
        if vocab.insert(t.to_string(), id.into()).is_some() {
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
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": normalizer, "pre_tokenizer": pre_tokenizer, "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": pre == "llama-bpe" || pre == "llama3", "vocab": vocab, "merges": merges},
    });
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
    let bytes = |v: &Value| serde_json::to_vec(v).expect("JSON of plain values");
    Ok((bytes(&tokenizer), bytes(&config)))
}
