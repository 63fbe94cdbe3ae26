//! Model weights ↔ files: the HF GPT-2 names of every tensor, and the bundle writer
//! (`config.json` + `model.safetensors` + `tokenizer.json`) that `wgpt` loads unchanged.

use std::path::Path;

use safetensors::Dtype;
use wgpt::config::GptConfig;
use wgpt::weights::{ModelWeights, Tensor};

use crate::store::write_atomic;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreDtype {
    F32,
    F16,
}

/// Serializes named f32 tensors as safetensors in `dtype`, with string metadata.
pub fn safetensors_bytes(
    tensors: &[(String, std::borrow::Cow<'_, Tensor>)],
    dtype: StoreDtype,
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Result<Vec<u8>, safetensors::SafeTensorError> {
    let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let bytes = match dtype {
                StoreDtype::F32 => bytemuck::cast_slice(&t.data).to_vec(),
                StoreDtype::F16 => t.data.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect(),
            };
            (name.clone(), t.shape.clone(), bytes)
        })
        .collect();
    let dt = match dtype {
        StoreDtype::F32 => Dtype::F32,
        StoreDtype::F16 => Dtype::F16,
    };
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = encoded
        .iter()
        .map(|(n, s, b)| Ok((n.clone(), safetensors::tensor::TensorView::new(dt, s.clone(), b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    safetensors::serialize(views, metadata)
}

/// Writes a bundle folder; each file lands atomically.
pub fn write_bundle(
    dir: &Path,
    config: &GptConfig,
    weights: &ModelWeights,
    tokenizer_json: &[u8],
    dtype: StoreDtype,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let st = safetensors_bytes(&weights.named(), dtype, Some([("format".to_string(), "pt".to_string())].into()))?;
    write_atomic(&dir.join("model.safetensors"), &st)?;
    write_atomic(&dir.join("config.json"), config.to_json().as_bytes())?;
    write_atomic(&dir.join("tokenizer.json"), tokenizer_json)?;
    Ok(())
}
