//! `config.json` of the Llama family: `model_type` `llama`, `mistral`, `qwen2` and `qwen3`, as
//! HF transformers writes them — the rotary settings in the legacy `rope_theta` + `rope_scaling`
//! form (real Llama 3.x, Qwen2.5, SmolLM2 files) or in transformers 5's `rope_parameters`.

use serde_json::Value;

use crate::config::ConfigError;

/// How rotary frequencies are scaled for long contexts.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    None,
    /// Every frequency divided by `factor`.
    Linear {
        factor: f32,
    },
    /// Llama 3.1's: long wavelengths divided by `factor`, short ones kept, a smooth blend between.
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_max_position_embeddings: usize,
    },
    /// Frequency `i` divided by `factors[i]` (`head_dim / 2` of them): how GGUF files of Llama
    /// 3.1+ carry the rule above, computed (llama.cpp's `rope_freqs.weight`).
    Factors(Vec<f32>),
}

/// The validated hyper-parameters of a Llama-family model.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f32,
    pub rope_scaling: RopeScaling,
    /// Biases on q, k and v (Qwen2's always; Llama's and Qwen3's with `attention_bias`).
    pub qkv_bias: bool,
    /// A bias on the attention's output (with `attention_bias`, but for Qwen2, whose flag-less
    /// biases are on q, k and v only — as HF's `o_proj` has them).
    pub o_bias: bool,
    /// Per-head RMSNorm of q and k before the rotation (Qwen3).
    pub qk_norm: bool,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    /// Every one of these ends generation.
    pub eos_token_ids: Vec<u32>,
}

/// Real models' shapes, for benchmarks with random weights (`wgpt bench --shape`): their
/// `config.json`s as published, less what a shape does not need.
pub const PRESETS: [(&str, &str); 4] = [
    (
        "smollm2-135m",
        r#"{"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
            "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152, "max_position_embeddings": 8192,
            "rms_norm_eps": 1e-5, "rope_theta": 100000, "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2}"#,
    ),
    (
        "qwen2.5-0.5b",
        r#"{"model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
            "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6, "rope_theta": 1000000, "tie_word_embeddings": true, "eos_token_id": 151645}"#,
    ),
    (
        "qwen3-0.6b",
        r#"{"model_type": "qwen3", "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
            "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
            "max_position_embeddings": 40960, "rms_norm_eps": 1e-6, "rope_theta": 1000000, "tie_word_embeddings": true,
            "eos_token_id": 151645}"#,
    ),
    (
        "llama-3.2-1b",
        r#"{"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
            "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256,
            "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "rope_theta": 500000,
            "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 8192},
            "tie_word_embeddings": true, "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}"#,
    ),
];

/// The `model_type`s this family covers.
pub const MODEL_TYPES: [&str; 4] = ["llama", "mistral", "qwen2", "qwen3"];
/// Bounds that keep every size product far from overflow; no real model comes close.
const MAX_DIM: u64 = 1 << 20;
const MAX_LAYERS: u64 = 1 << 10;

impl LlamaConfig {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;
        let model_type = v["model_type"].as_str().ok_or(ConfigError::Missing("model_type"))?.to_string();
        if !MODEL_TYPES.contains(&model_type.as_str()) {
            return Err(ConfigError::Unsupported { key: "model_type", value: format!("{model_type:?}") });
        }
        let dim = |key: &'static str, max: u64| -> Result<usize, ConfigError> {
            let n = v[key].as_u64().ok_or(match &v[key] {
                Value::Null => ConfigError::Missing(key),
                other => ConfigError::Invalid { key, reason: format!("{other} is not a count") },
            })?;
            if n == 0 || n > max {
                return Err(ConfigError::Invalid { key, reason: format!("{n} is outside 1..={max}") });
            }
            Ok(n as usize)
        };
        let hidden_size = dim("hidden_size", MAX_DIM)?;
        let num_attention_heads = dim("num_attention_heads", MAX_DIM)?;
        let num_key_value_heads =
            if v["num_key_value_heads"].is_null() { num_attention_heads } else { dim("num_key_value_heads", MAX_DIM)? };
        let head_dim = if v["head_dim"].is_null() {
            if !hidden_size.is_multiple_of(num_attention_heads) {
                return Err(ConfigError::Invalid {
                    key: "num_attention_heads",
                    reason: format!("hidden_size {hidden_size} is not a multiple of {num_attention_heads} heads"),
                });
            }
            hidden_size / num_attention_heads
        } else {
            dim("head_dim", MAX_DIM)?
        };
        if !num_attention_heads.is_multiple_of(num_key_value_heads) {
            return Err(ConfigError::Invalid {
                key: "num_key_value_heads",
                reason: format!(
                    "{num_attention_heads} heads cannot share {num_key_value_heads} key/value heads evenly"
                ),
            });
        }
        if !head_dim.is_multiple_of(2) {
            return Err(ConfigError::Invalid {
                key: "head_dim",
                reason: format!("{head_dim} is odd: rotary needs pairs"),
            });
        }
        match v["hidden_act"].as_str() {
            None | Some("silu") => {}
            Some(other) => return Err(ConfigError::Unsupported { key: "hidden_act", value: format!("{other:?}") }),
        }
        let float = |value: &Value, key: &'static str, default: f64| -> Result<f32, ConfigError> {
            let x = if value.is_null() { default } else { value.as_f64().ok_or(ConfigError::Missing(key))? };
            if !(x.is_finite() && x > 0.0) {
                return Err(ConfigError::Invalid { key, reason: format!("{x} must be a finite number > 0") });
            }
            Ok(x as f32)
        };
        // Rotary settings: transformers 5's `rope_parameters`, or the legacy keys.
        let (rope, theta_value) = match &v["rope_parameters"] {
            Value::Object(_) => (&v["rope_parameters"], &v["rope_parameters"]["rope_theta"]),
            _ => (&v["rope_scaling"], &v["rope_theta"]),
        };
        let rope_theta = float(theta_value, "rope_theta", 10_000.0)?;
        let rope_type = rope["rope_type"].as_str().or(rope["type"].as_str()).unwrap_or("default");
        let rope_scaling = match rope_type {
            "default" => RopeScaling::None,
            "linear" => RopeScaling::Linear { factor: float(&rope["factor"], "rope_scaling.factor", 1.0)? },
            "llama3" => RopeScaling::Llama3 {
                factor: float(&rope["factor"], "rope_scaling.factor", 8.0)?,
                low_freq_factor: float(&rope["low_freq_factor"], "rope_scaling.low_freq_factor", 1.0)?,
                high_freq_factor: float(&rope["high_freq_factor"], "rope_scaling.high_freq_factor", 4.0)?,
                original_max_position_embeddings: rope["original_max_position_embeddings"]
                    .as_u64()
                    .filter(|&n| n > 0 && n <= MAX_DIM)
                    .ok_or(ConfigError::Missing("rope_scaling.original_max_position_embeddings"))?
                    as usize,
            },
            other => return Err(ConfigError::Unsupported { key: "rope_scaling", value: format!("{other:?}") }),
        };
        let vocab_size = dim("vocab_size", MAX_DIM * 4)?;
        let id = |x: &Value, key: &'static str| -> Result<u32, ConfigError> {
            x.as_u64()
                .filter(|&i| (i as usize) < vocab_size)
                .map(|i| i as u32)
                .ok_or(ConfigError::Invalid { key, reason: format!("{x} is not an id below vocab_size {vocab_size}") })
        };
        let bos_token_id = match &v["bos_token_id"] {
            Value::Null => None,
            x => Some(id(x, "bos_token_id")?),
        };
        let eos_token_ids = match &v["eos_token_id"] {
            Value::Null => vec![],
            Value::Array(list) => list.iter().map(|x| id(x, "eos_token_id")).collect::<Result<_, _>>()?,
            x => vec![id(x, "eos_token_id")?],
        };
        let flag = |key: &str| v[key].as_bool().unwrap_or(false);
        Ok(LlamaConfig {
            vocab_size,
            hidden_size,
            intermediate_size: dim("intermediate_size", MAX_DIM * 4)?,
            num_hidden_layers: dim("num_hidden_layers", MAX_LAYERS)?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            max_position_embeddings: dim("max_position_embeddings", MAX_DIM * 4)?,
            rms_norm_eps: float(&v["rms_norm_eps"], "rms_norm_eps", 1e-6)?,
            rope_theta,
            rope_scaling,
            qkv_bias: model_type == "qwen2" || flag("attention_bias"),
            o_bias: model_type != "qwen2" && flag("attention_bias"),
            qk_norm: model_type == "qwen3",
            tie_word_embeddings: v["tie_word_embeddings"].as_bool().unwrap_or(model_type != "llama"),
            bos_token_id,
            eos_token_ids,
            model_type,
        })
    }

    /// A real model's shape by name ([`PRESETS`]).
    pub fn preset(name: &str) -> Option<Self> {
        let (_, json) = PRESETS.iter().find(|(n, _)| *n == name)?;
        Some(Self::from_json(json.as_bytes()).expect("presets are valid"))
    }

    /// The rotary inverse frequencies, one per pair of a head's dimensions, as HF computes them.
    pub fn inv_freq(&self) -> Vec<f32> {
        let d = self.head_dim;
        let base: Vec<f32> =
            (0..d / 2).map(|i| 1.0 / (self.rope_theta as f64).powf((2 * i) as f64 / d as f64) as f32).collect();
        match self.rope_scaling {
            RopeScaling::None => base,
            RopeScaling::Linear { factor } => base.into_iter().map(|f| f / factor).collect(),
            RopeScaling::Factors(ref factors) => base.into_iter().zip(factors).map(|(f, d)| f / d).collect(),
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => {
                let old = original_max_position_embeddings as f32;
                let (low_wavelen, high_wavelen) = (old / low_freq_factor, old / high_freq_factor);
                base.into_iter()
                    .map(|f| {
                        let wavelen = 2.0 * std::f32::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        }
    }

    /// Parameters the model holds (the tied head counted once).
    /// Counted in u64 and saturated to `usize::MAX` where usize is 32 bits (see
    /// [`crate::GptConfig::parameter_count`]).
    pub fn parameter_count(&self) -> usize {
        let [d, f, v, l, hd] =
            [self.hidden_size, self.intermediate_size, self.vocab_size, self.num_hidden_layers, self.head_dim]
                .map(|x| x as u64);
        let (q, kv) = (self.num_attention_heads as u64 * hd, self.num_key_value_heads as u64 * hd);
        let attn =
            d * q + 2 * d * kv + q * d + if self.qkv_bias { q + 2 * kv } else { 0 } + if self.o_bias { d } else { 0 };
        let norms = 2 * d + if self.qk_norm { 2 * hd } else { 0 };
        let block = attn + 3 * d * f + norms;
        usize::try_from(v * d + l * block + d + if self.tie_word_embeddings { 0 } else { v * d }).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_published_parameter_counts() {
        // As HF counts them (num_parameters(), tied head once).
        for (name, params) in [
            ("smollm2-135m", 134_515_008),
            ("qwen2.5-0.5b", 494_032_768),
            ("qwen3-0.6b", 596_049_920),
            ("llama-3.2-1b", 1_235_814_400),
        ] {
            assert_eq!(LlamaConfig::preset(name).unwrap().parameter_count(), params, "{name}");
        }
    }

    #[test]
    fn unknown_types_and_inconsistent_shapes_are_named() {
        let base = r#""hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
            "vocab_size": 256, "max_position_embeddings": 64"#;
        let cfg = |extra: &str| LlamaConfig::from_json(format!("{{{base}{extra}}}").as_bytes());
        assert!(matches!(
            cfg(r#", "model_type": "gpt_neox""#),
            Err(ConfigError::Unsupported { key: "model_type", .. })
        ));
        assert!(matches!(cfg(""), Err(ConfigError::Missing("model_type"))));
        let ok = cfg(r#", "model_type": "llama""#).unwrap();
        assert_eq!((ok.head_dim, ok.num_key_value_heads, ok.tie_word_embeddings), (16, 4, false));
        assert!(cfg(r#", "model_type": "qwen2", "num_key_value_heads": 3"#).is_err());
        assert!(cfg(r#", "model_type": "qwen3", "hidden_act": "gelu""#).is_err());
        assert!(cfg(r#", "model_type": "llama", "rope_scaling": {"rope_type": "yarn", "factor": 4}"#).is_err());
        assert!(cfg(r#", "model_type": "llama", "eos_token_id": [2, 9999]"#).is_err());
        assert!(cfg(r#", "model_type": "llama", "rms_norm_eps": -1"#).is_err());
        assert!(LlamaConfig::from_json(br#"{"model_type": "llama", "hidden_size": 1e30}"#).is_err());
    }
}
