//! Model weights ↔ files: the HF GPT-2 names of every tensor, and the bundle writer
//! (`config.json` + `model.safetensors` + `tokenizer.json`) that `wgpt` loads unchanged.

use std::path::Path;

use safetensors::Dtype;
use wgpt::config::GptConfig;
use wgpt::weights::{ModelWeights, Tensor};

use crate::checkpoint::write_atomic;

/// The tensors of a model under their HF GPT-2 names (no `transformer.` prefix).
pub fn named(w: &ModelWeights) -> Vec<(String, &Tensor)> {
    let mut out = vec![("wte.weight".to_string(), &w.wte), ("wpe.weight".to_string(), &w.wpe)];
    for (i, b) in w.blocks.iter().enumerate() {
        let p = format!("h.{i}.");
        out.push((format!("{p}ln_1.weight"), &b.ln_1.weight));
        out.push((format!("{p}ln_1.bias"), &b.ln_1.bias));
        out.push((format!("{p}attn.c_attn.weight"), &b.c_attn.weight));
        out.push((format!("{p}attn.c_attn.bias"), &b.c_attn.bias));
        out.push((format!("{p}attn.c_proj.weight"), &b.attn_proj.weight));
        out.push((format!("{p}attn.c_proj.bias"), &b.attn_proj.bias));
        out.push((format!("{p}ln_2.weight"), &b.ln_2.weight));
        out.push((format!("{p}ln_2.bias"), &b.ln_2.bias));
        out.push((format!("{p}mlp.c_fc.weight"), &b.c_fc.weight));
        out.push((format!("{p}mlp.c_fc.bias"), &b.c_fc.bias));
        out.push((format!("{p}mlp.c_proj.weight"), &b.mlp_proj.weight));
        out.push((format!("{p}mlp.c_proj.bias"), &b.mlp_proj.bias));
    }
    if let Some(ln) = &w.ln_f {
        out.push(("ln_f.weight".into(), &ln.weight));
        out.push(("ln_f.bias".into(), &ln.bias));
    }
    if let Some(head) = &w.lm_head {
        out.push(("lm_head.weight".into(), head));
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreDtype {
    F32,
    F16,
}

/// Serializes named f32 tensors as safetensors in `dtype`, with string metadata.
pub fn safetensors_bytes(
    tensors: &[(String, &Tensor)],
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
    let st = safetensors_bytes(&named(weights), dtype, Some([("format".to_string(), "pt".to_string())].into()))?;
    write_atomic(&dir.join("model.safetensors"), &st)?;
    write_atomic(&dir.join("config.json"), config.to_json().as_bytes())?;
    write_atomic(&dir.join("tokenizer.json"), tokenizer_json)?;
    Ok(())
}
