//! Helpers shared by the integration tests: fixture paths and the recorded HF outputs.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use safetensors::SafeTensors;
use serde::Deserialize;

pub const HF_MODELS: [&str; 3] = ["tiny-f32", "gpt2vocab-f16", "tiny-bf16-untied"];

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn hf_model_dir(name: &str) -> PathBuf {
    fixtures().join("hf").join(name)
}

#[derive(Deserialize)]
pub struct Case {
    pub text: String,
    pub ids: Vec<u32>,
    pub loss: f32,
    pub greedy: Vec<u32>,
}

/// What `scripts/make_hf_fixtures.py` recorded with HF transformers for one model.
pub struct Expected {
    pub cases: Vec<Case>,
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

pub fn expected(name: &str) -> Expected {
    #[derive(Deserialize)]
    struct File {
        cases: Vec<Case>,
    }
    let dir = fixtures().join("hf");
    let json = std::fs::read(dir.join(format!("{name}.expected.json"))).unwrap();
    let cases = serde_json::from_slice::<File>(&json).unwrap().cases;
    let bytes = std::fs::read(dir.join(format!("{name}.expected.safetensors"))).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let tensors = st
        .iter()
        .map(|(k, v)| {
            let data = v.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            (k.to_string(), (v.shape().to_vec(), data))
        })
        .collect();
    Expected { cases, tensors }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// A GPT-2 with random weights (deterministic in `seed`) and non-trivial LayerNorms and biases,
/// for shapes no fixture has.
pub fn random_model(
    vocab: usize,
    ctx: usize,
    c: usize,
    layers: usize,
    heads: usize,
    inner: usize,
    seed: u64,
) -> (wgpt::GptConfig, wgpt::weights::ModelWeights) {
    use wgpt::weights::{Block, LayerNorm, Linear, ModelWeights, Tensor};
    let config = wgpt::GptConfig::from_json(
        format!(
            r#"{{"vocab_size":{vocab},"n_positions":{ctx},"n_embd":{c},"n_layer":{layers},"n_head":{heads},"n_inner":{inner}}}"#
        )
        .as_bytes(),
    )
    .unwrap();
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut rand = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let mut t = |shape: &[usize], center: f32, scale: f32| Tensor {
        shape: shape.to_vec(),
        data: (0..shape.iter().product()).map(|_| center + scale * rand()).collect(),
    };
    let blocks = (0..layers)
        .map(|_| Block {
            ln_1: LayerNorm { weight: t(&[c], 1.0, 0.3), bias: t(&[c], 0.0, 0.2) },
            c_attn: Linear { weight: t(&[c, 3 * c], 0.0, 0.3), bias: t(&[3 * c], 0.0, 0.2) },
            attn_proj: Linear { weight: t(&[c, c], 0.0, 0.3), bias: t(&[c], 0.0, 0.2) },
            ln_2: LayerNorm { weight: t(&[c], 1.0, 0.3), bias: t(&[c], 0.0, 0.2) },
            c_fc: Linear { weight: t(&[c, inner], 0.0, 0.3), bias: t(&[inner], 0.0, 0.2) },
            mlp_proj: Linear { weight: t(&[inner, c], 0.0, 0.3), bias: t(&[c], 0.0, 0.2) },
        })
        .collect();
    let weights = ModelWeights {
        wte: t(&[vocab, c], 0.0, 0.8),
        wpe: t(&[ctx, c], 0.0, 0.8),
        blocks,
        ln_f: Some(LayerNorm { weight: t(&[c], 1.0, 0.3), bias: t(&[c], 0.0, 0.2) }),
        lm_head: None,
        stored: vec![],
    };
    (config, weights)
}
