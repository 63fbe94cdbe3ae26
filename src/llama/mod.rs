//! The Llama family — Llama 2/3, Mistral, Qwen2/2.5, Qwen3, SmolLM2 — from HF files: its config,
//! its weights, and its forward pass on the CPU reference engine. (The WGSL engine runs it from
//! the same weights: `src/gpu/layout.rs`.)

pub mod config;
pub mod cpu;
mod kv_cache;
pub mod weights;

pub use config::{LlamaConfig, RopeScaling};
pub use cpu::LlamaSession;
pub use weights::LlamaWeights;

/// Positions an engine holds unless told otherwise: these models claim 32 k – 128 k, and a KV
/// cache that long (gigabytes) must not be allocated, or grown into, by a chat that does not need
/// it. `--context` (CLI) and `GpuOptions::max_context` change it.
pub const DEFAULT_MAX_CONTEXT: usize = 4096;

/// Whether a `config.json` names a model of this family.
pub fn is_llama_config(config: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(config)
        .ok()
        .and_then(|v| v["model_type"].as_str().map(|t| config::MODEL_TYPES.contains(&t)))
        .unwrap_or(false)
}

/// Loads a model folder: `config.json` and `model.safetensors`, or the shards that
/// `model.safetensors.index.json` lists.
#[cfg(not(target_arch = "wasm32"))]
pub fn load(dir: &std::path::Path) -> Result<(LlamaConfig, LlamaWeights), crate::bundle::BundleError> {
    use crate::bundle::BundleError;
    let read = |name: &str| -> Result<Vec<u8>, BundleError> {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| BundleError::Io { path: path.display().to_string(), message: e.to_string() })
    };
    let config = LlamaConfig::from_json(&read("config.json")?)?;
    let files: Vec<Vec<u8>> = if dir.join("model.safetensors.index.json").is_file() {
        let shards = crate::loaded::shard_names(&read("model.safetensors.index.json")?)?;
        shards.iter().map(|s| read(s)).collect::<Result<_, _>>()?
    } else {
        vec![read("model.safetensors")?]
    };
    // The files become the weights': their matrices stay where they were read.
    let weights = LlamaWeights::from_owned_files(files.into_iter().map(std::sync::Arc::new).collect(), &config)?;
    Ok((config, weights))
}
