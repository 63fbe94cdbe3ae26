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

/// The Llama-family fixtures of `scripts/make_llama_fixtures.py`: GQA + llama3 rope scaling +
/// untied head; q/k/v biases + tied; per-head q/k norm.
pub const LLAMA_MODELS: [&str; 4] = ["llama-gqa", "qwen2-bias", "qwen3-qknorm", "llama-bias"];

pub fn llama_dir() -> PathBuf {
    fixtures().join("llama")
}

#[derive(Deserialize)]
pub struct LlamaCase {
    pub ids: Vec<u32>,
    pub greedy: Vec<u32>,
}

/// HF's cases for a Llama fixture and, per case, its logits at every position.
pub fn llama_expected(name: &str) -> (Vec<LlamaCase>, Vec<Vec<f32>>) {
    #[derive(Deserialize)]
    struct File {
        cases: Vec<LlamaCase>,
    }
    let dir = llama_dir();
    let json: File =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.expected.json"))).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join(format!("{name}.expected.safetensors"))).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let logits = (0..json.cases.len())
        .map(|i| {
            let view = st.tensor(&format!("case{i}.logits")).unwrap();
            view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
        })
        .collect();
    (json.cases, logits)
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// A GPT-2 shape no fixture has, with random weights.
pub fn random_model(
    vocab: usize,
    ctx: usize,
    c: usize,
    layers: usize,
    heads: usize,
    inner: usize,
    seed: u64,
) -> (wgpt::GptConfig, wgpt::weights::ModelWeights) {
    let config = wgpt::GptConfig::from_json(
        format!(
            r#"{{"vocab_size":{vocab},"n_positions":{ctx},"n_embd":{c},"n_layer":{layers},"n_head":{heads},"n_inner":{inner}}}"#
        )
        .as_bytes(),
    )
    .unwrap();
    let weights = wgpt::weights::ModelWeights::random(&config, seed);
    (config, weights)
}
pub mod hub_server;
