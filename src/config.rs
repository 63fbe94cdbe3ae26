//! `config.json`: the HF GPT-2 keys, plus the few keys of our own that a GPT-1 style block needs.
//!
//! A real HF GPT-2 `config.json` loads unchanged: unknown keys are ignored, `n_ctx` is accepted as
//! an old spelling of `n_positions`, and `n_inner: null` means `4 * n_embd`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("config.json is not valid JSON: {0}")]
    Json(String),
    #[error("config.json: missing key `{0}`")]
    Missing(&'static str),
    #[error("config.json: `{key}` is invalid: {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error("config.json: `{key}` = {value} is not supported by wgpt")]
    Unsupported { key: &'static str, value: String },
}

/// Where each block applies LayerNorm. GPT-2 is pre-LN (and ends with `ln_f`); GPT-1 is post-LN
/// (`x = ln(x + sublayer(x))`) and has no final LayerNorm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LayerNormPosition {
    #[default]
    Pre,
    Post,
}

/// A named shape: the trainer's `--preset` (its vocabulary then comes from the tokenizer) and
/// the benchmarks' `--shape`.
pub struct Preset {
    pub name: &'static str,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_positions: usize,
    pub vocab_size: usize,
}

const fn preset(
    name: &'static str,
    n_layer: usize,
    n_embd: usize,
    n_head: usize,
    n_positions: usize,
    vocab_size: usize,
) -> Preset {
    Preset { name, n_layer, n_embd, n_head, n_positions, vocab_size }
}

/// Every named shape, smallest first. `nano`…`small` have the shipped tokenizers' 2,048 ids;
/// the `gpt2-*` ones are GPT-2's sizes.
pub const PRESETS: &[Preset] = &[
    preset("nano", 2, 32, 2, 32, 2048),
    preset("tiny", 2, 64, 2, 128, 512),
    preset("micro", 4, 128, 4, 128, 2048),
    preset("mini", 6, 256, 8, 256, 2048),
    preset("small", 8, 384, 6, 512, 2048),
    preset("gpt2-124m", 12, 768, 12, 1024, 50257),
    preset("gpt2-355m", 24, 1024, 16, 1024, 50257),
    preset("gpt2-774m", 36, 1280, 20, 1024, 50257),
];

/// The validated model hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GptConfig {
    pub vocab_size: usize,
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_inner: usize,
    pub layer_norm_epsilon: f32,
    pub activation_function: String,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    /// wgpt key: `"pre"` (GPT-2, default) or `"post"` (GPT-1).
    pub layer_norm_position: LayerNormPosition,
}

/// The file as written; everything optional so that a missing key is our error, not serde's.
#[derive(Deserialize)]
struct RawConfig {
    vocab_size: Option<i64>,
    n_positions: Option<i64>,
    n_ctx: Option<i64>,
    n_embd: Option<i64>,
    n_layer: Option<i64>,
    n_head: Option<i64>,
    n_inner: Option<i64>,
    layer_norm_epsilon: Option<f64>,
    activation_function: Option<String>,
    tie_word_embeddings: Option<bool>,
    bos_token_id: Option<i64>,
    eos_token_id: Option<i64>,
    scale_attn_weights: Option<bool>,
    scale_attn_by_inverse_layer_idx: Option<bool>,
    layer_norm_position: Option<LayerNormPosition>,
}

/// Activations computed as GPT-2's tanh-approximated GELU. (In HF, `gelu_new`, `gelu_fast` and
/// `gelu_pytorch_tanh` are all this formula.)
const TANH_GELU_NAMES: [&str; 3] = ["gelu_new", "gelu_pytorch_tanh", "gelu_fast"];

/// Upper bounds that keep every size product far from overflow; no real model comes close.
const MAX_DIM: i64 = 1 << 20;
const MAX_LAYERS: i64 = 1 << 10;

fn dim(key: &'static str, v: Option<i64>, max: i64) -> Result<usize, ConfigError> {
    let v = v.ok_or(ConfigError::Missing(key))?;
    if v < 1 || v > max {
        return Err(ConfigError::Invalid { key, reason: format!("{v} is outside 1..={max}") });
    }
    Ok(v as usize)
}

fn token_id(key: &'static str, v: Option<i64>, vocab: usize) -> Result<Option<u32>, ConfigError> {
    match v {
        None => Ok(None),
        Some(id) if id >= 0 && (id as usize) < vocab => Ok(Some(id as u32)),
        Some(id) => {
            Err(ConfigError::Invalid { key, reason: format!("{id} is not a token id below vocab_size {vocab}") })
        }
    }
}

impl GptConfig {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;
        let vocab_size = dim("vocab_size", raw.vocab_size, 1 << 24)?;
        let n_positions = dim("n_positions", raw.n_positions.or(raw.n_ctx), MAX_DIM)?;
        let n_embd = dim("n_embd", raw.n_embd, MAX_DIM)?;
        let n_layer = dim("n_layer", raw.n_layer, MAX_LAYERS)?;
        let n_head = dim("n_head", raw.n_head, MAX_DIM)?;
        let n_inner = match raw.n_inner {
            None => 4 * n_embd,
            v => dim("n_inner", v, 4 * MAX_DIM)?,
        };
        if n_embd % n_head != 0 {
            return Err(ConfigError::Invalid {
                key: "n_head",
                reason: format!("n_embd {n_embd} is not divisible by n_head {n_head}"),
            });
        }
        let layer_norm_epsilon = raw.layer_norm_epsilon.unwrap_or(1e-5);
        if !(layer_norm_epsilon.is_finite() && layer_norm_epsilon > 0.0) {
            return Err(ConfigError::Invalid {
                key: "layer_norm_epsilon",
                reason: format!("{layer_norm_epsilon} is not a positive number"),
            });
        }
        let activation_function = raw.activation_function.unwrap_or_else(|| "gelu_new".into());
        if !TANH_GELU_NAMES.contains(&activation_function.as_str()) {
            return Err(ConfigError::Unsupported {
                key: "activation_function",
                value: format!("{activation_function:?} (supported: {})", TANH_GELU_NAMES.join(", ")),
            });
        }
        if raw.scale_attn_weights == Some(false) {
            return Err(ConfigError::Unsupported { key: "scale_attn_weights", value: "false".into() });
        }
        if raw.scale_attn_by_inverse_layer_idx == Some(true) {
            return Err(ConfigError::Unsupported { key: "scale_attn_by_inverse_layer_idx", value: "true".into() });
        }
        Ok(GptConfig {
            vocab_size,
            n_positions,
            n_embd,
            n_layer,
            n_head,
            n_inner,
            layer_norm_epsilon: layer_norm_epsilon as f32,
            activation_function,
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(true),
            bos_token_id: token_id("bos_token_id", raw.bos_token_id, vocab_size)?,
            eos_token_id: token_id("eos_token_id", raw.eos_token_id, vocab_size)?,
            layer_norm_position: raw.layer_norm_position.unwrap_or_default(),
        })
    }

    /// The keys in HF spelling (plus ours), ready to be written as `config.json`.
    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(self).expect("config serializes");
        v["model_type"] = "gpt2".into();
        v["architectures"] = serde_json::json!(["GPT2LMHeadModel"]);
        serde_json::to_string_pretty(&v).expect("config serializes")
    }

    /// A named shape ([`PRESETS`]), GPT-2 blocks, the last id as end-of-text.
    pub fn preset(name: &str) -> Option<Self> {
        let p = PRESETS.iter().find(|p| p.name == name)?;
        let json = format!(
            r#"{{"vocab_size":{},"n_positions":{},"n_embd":{},"n_layer":{},"n_head":{},"eos_token_id":{}}}"#,
            p.vocab_size,
            p.n_positions,
            p.n_embd,
            p.n_layer,
            p.n_head,
            p.vocab_size - 1
        );
        Some(Self::from_json(json.as_bytes()).expect("presets are valid"))
    }

    /// The preset names, for error messages: `"nano, micro, …"`.
    pub fn preset_names() -> String {
        PRESETS.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
    }

    /// The number of parameters a model of this shape holds (the tied head counted once), without
    /// allocating it; [`crate::weights::ModelWeights`] holds exactly this many values.
    /// Counted in u64 (wasm32's usize overflows past 4 G) and saturated to `usize::MAX` there: a
    /// model that large is refused on that count alone.
    pub fn parameter_count(&self) -> usize {
        let [d, f, v, t, l] =
            [self.n_embd, self.n_inner, self.vocab_size, self.n_positions, self.n_layer].map(|x| x as u64);
        let norm = 2 * d;
        let linear = |n_in: u64, n_out: u64| n_in * n_out + n_out;
        let block = 2 * norm + linear(d, 3 * d) + linear(d, d) + linear(d, f) + linear(f, d);
        let ln_f = if self.layer_norm_position == LayerNormPosition::Pre { norm } else { 0 };
        let head = if self.tie_word_embeddings { 0 } else { v * d };
        usize::try_from(v * d + t * d + l * block + ln_f + head).unwrap_or(usize::MAX)
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_gpt2_small_config_loads_unchanged() {
        // openai-community/gpt2's config.json, verbatim keys.
        let json = br#"{"activation_function":"gelu_new","architectures":["GPT2LMHeadModel"],
            "attn_pdrop":0.1,"bos_token_id":50256,"embd_pdrop":0.1,"eos_token_id":50256,
            "initializer_range":0.02,"layer_norm_epsilon":1e-05,"model_type":"gpt2","n_ctx":1024,
            "n_embd":768,"n_head":12,"n_inner":null,"n_layer":12,"n_positions":1024,
            "resid_pdrop":0.1,"summary_activation":null,"summary_first_dropout":0.1,
            "summary_proj_to_labels":true,"summary_type":"cls_index","summary_use_proj":true,
            "task_specific_params":{"text-generation":{"do_sample":true,"max_length":50}},
            "vocab_size":50257}"#;
        let c = GptConfig::from_json(json).unwrap();
        assert_eq!((c.n_layer, c.n_head, c.n_embd, c.n_inner), (12, 12, 768, 3072));
        assert_eq!(c.eos_token_id, Some(50256));
        assert!(c.tie_word_embeddings);
        assert_eq!(c.layer_norm_position, LayerNormPosition::Pre);
        let again = GptConfig::from_json(c.to_json().as_bytes()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn inconsistent_and_unsupported_configs_are_named() {
        let base = r#""vocab_size":10,"n_positions":8,"n_embd":6,"n_layer":1"#;
        let err = GptConfig::from_json(format!("{{{base},\"n_head\":4}}").as_bytes()).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "n_head", .. }), "{err}");
        let err = GptConfig::from_json(format!("{{{base}}}").as_bytes()).unwrap_err();
        assert!(matches!(err, ConfigError::Missing("n_head")), "{err}");
        let err = GptConfig::from_json(format!("{{{base},\"n_head\":2,\"activation_function\":\"relu\"}}").as_bytes())
            .unwrap_err();
        assert!(matches!(err, ConfigError::Unsupported { key: "activation_function", .. }), "{err}");
        let err = GptConfig::from_json(format!("{{{base},\"n_head\":2,\"eos_token_id\":10}}").as_bytes()).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "eos_token_id", .. }), "{err}");
        let err = GptConfig::from_json(format!("{{{base},\"n_head\":-2}}").as_bytes()).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "n_head", .. }), "{err}");
        let err = GptConfig::from_json(b"{\"vocab_size\": ").unwrap_err();
        assert!(matches!(err, ConfigError::Json(_)), "{err}");
    }
}
