//! The Llama family — Llama 2/3, Mistral, Qwen2/2.5, Qwen3, SmolLM2 — from HF files: its config,
//! its weights, and its forward pass on the CPU reference engine. (The WGSL engine does not run it
//! yet; the CLI says so.)

pub mod config;
pub mod cpu;
pub mod weights;

pub use config::{LlamaConfig, RopeScaling};
pub use cpu::LlamaSession;
pub use weights::LlamaWeights;

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
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<Vec<u8>> = if index.is_file() {
        let io = |message: String| BundleError::Io { path: index.display().to_string(), message };
        let v: serde_json::Value =
            serde_json::from_slice(&read("model.safetensors.index.json")?).map_err(|e| io(format!("not JSON: {e}")))?;
        let map = v["weight_map"].as_object().ok_or_else(|| io("no `weight_map`".into()))?;
        let mut shards: Vec<&str> = map.values().filter_map(|f| f.as_str()).collect();
        shards.sort_unstable();
        shards.dedup();
        if shards.iter().any(|s| s.contains('/') || s.contains('\\')) {
            return Err(io("a shard name is a path; shards live beside the index".into()));
        }
        shards.iter().map(|s| read(s)).collect::<Result<_, _>>()?
    } else {
        vec![read("model.safetensors")?]
    };
    let refs: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
    let weights = LlamaWeights::from_files(&refs, &config)?;
    Ok((config, weights))
}
