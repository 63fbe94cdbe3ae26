//! GPT-2's initialisation, deterministic in a seed: weights N(0, 0.02), the two residual
//! projections (`attn.c_proj`, `mlp.c_proj`) N(0, 0.02/√(2·n_layer)), biases 0, LayerNorm 1/0.
//! Written as bundle weights so a fresh model, an import and a checkpoint load the same way.

use wgpt::config::{GptConfig, LayerNormPosition};
use wgpt::quant::Matrix;
use wgpt::weights::{Block, LayerNorm, Linear, ModelWeights, Tensor};

use crate::rng::Rng;

pub fn gpt2_init(config: &GptConfig, seed: u64) -> ModelWeights {
    let mut rng = Rng::new(seed);
    let mut normal = |shape: &[usize], std: f32| Tensor {
        shape: shape.to_vec(),
        data: (0..shape.iter().product()).map(|_| std * rng.normal()).collect(),
    };
    let fill = |shape: &[usize], v: f32| Tensor { shape: shape.to_vec(), data: vec![v; shape.iter().product()] };
    let ln = |c: usize| LayerNorm { weight: fill(&[c], 1.0), bias: fill(&[c], 0.0) };
    let (c, f, v) = (config.n_embd, config.n_inner, config.vocab_size);
    let residual_std = 0.02 / (2.0 * config.n_layer as f32).sqrt();
    let wte = normal(&[v, c], 0.02);
    let wpe = normal(&[config.n_positions, c], 0.02);
    let blocks = (0..config.n_layer)
        .map(|_| Block {
            ln_1: ln(c),
            c_attn: Linear::from_conv1d(&normal(&[c, 3 * c], 0.02), fill(&[3 * c], 0.0)),
            attn_proj: Linear::from_conv1d(&normal(&[c, c], residual_std), fill(&[c], 0.0)),
            ln_2: ln(c),
            c_fc: Linear::from_conv1d(&normal(&[c, f], 0.02), fill(&[f], 0.0)),
            mlp_proj: Linear::from_conv1d(&normal(&[f, c], residual_std), fill(&[c], 0.0)),
        })
        .collect();
    let lm_head = (!config.tie_word_embeddings).then(|| Matrix::F32(normal(&[v, c], 0.02)));
    let ln_f = (config.layer_norm_position == LayerNormPosition::Pre).then(|| ln(c));
    ModelWeights { wte: Matrix::F32(wte), wpe, blocks, ln_f, lm_head, stored: vec![] }
}
