//! The CPU reference GPT: plain f32 Rust, the oracle every faster path is checked against.
//!
//! A [`CpuSession`] owns a KV cache for the whole context and grow-only scratch buffers, so after
//! the first token of a given batch size, decoding allocates nothing.

pub mod ops;

use std::sync::Arc;

use thiserror::Error;

use crate::config::{GptConfig, LayerNormPosition};
use crate::weights::ModelWeights;
use ops::AttentionShape;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum EngineError {
    #[error("no tokens to run")]
    EmptyInput,
    #[error("token id {id} is outside the model's vocabulary of {vocab_size}")]
    TokenOutOfRange { id: u32, vocab_size: usize },
    #[error("the context holds {max} tokens; {needed} would not fit (the context never slides: start a new one)")]
    ContextOverflow { needed: usize, max: usize },
}

/// What a forward call returns besides the last position's logits.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardOptions {
    /// Logits for every new position, not only the last.
    pub all_logits: bool,
    /// Attention probabilities of every layer and head.
    pub attention: bool,
    /// The residual stream entering each block, then the final (normed) hidden state: the
    /// `n_layer + 1` entries of HF's `output_hidden_states`.
    pub hidden_states: bool,
}

/// Outputs of the last forward call; buffers are reused between calls.
#[derive(Debug, Default)]
pub struct Outputs {
    /// `[rows, vocab_size]`: one row per new position with `all_logits`, else the last only.
    pub logits: Vec<f32>,
    pub rows: usize,
    /// Per layer `[n_head, new, past + new]`, row `i` being the new position `past + i`.
    pub attention: Vec<Vec<f32>>,
    /// `n_layer + 1` entries of `[new, n_embd]`.
    pub hidden_states: Vec<Vec<f32>>,
}

impl Outputs {
    /// The logits of the last position.
    pub fn last_logits(&self) -> &[f32] {
        let v = self.logits.len() / self.rows.max(1);
        &self.logits[self.logits.len() - v..]
    }
}

#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    h: Vec<f32>,
    qkv: Vec<f32>,
    att: Vec<f32>,
    probs: Vec<f32>,
    proj: Vec<f32>,
    fc: Vec<f32>,
}

/// Resizes without shrinking capacity: allocation happens only when a call needs more room.
fn sized(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    v.resize(n, 0.0);
    &mut v[..n]
}

pub struct CpuSession {
    config: GptConfig,
    weights: Arc<ModelWeights>,
    /// `[n_layer, n_positions, n_embd]` each.
    k_cache: Vec<f32>,
    v_cache: Vec<f32>,
    pos: usize,
    scratch: Scratch,
    out: Outputs,
}

impl CpuSession {
    pub fn new(config: GptConfig, weights: Arc<ModelWeights>) -> Self {
        // Sizes are bounded by the validated weights: wpe holds n_positions * n_embd values.
        let cache = config.n_layer * config.n_positions * config.n_embd;
        CpuSession {
            config,
            weights,
            k_cache: vec![0.0; cache],
            v_cache: vec![0.0; cache],
            pos: 0,
            scratch: Scratch::default(),
            out: Outputs::default(),
        }
    }

    pub fn config(&self) -> &GptConfig {
        &self.config
    }

    /// Tokens in the context so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Forgets the context.
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// Keeps only the first `pos` tokens of the context (a shared prefix can be reused).
    pub fn truncate(&mut self, pos: usize) {
        self.pos = self.pos.min(pos);
    }

    /// Appends `ids` to the context and runs them through the model.
    pub fn forward(&mut self, ids: &[u32], opts: ForwardOptions) -> Result<&Outputs, EngineError> {
        let cfg = &self.config;
        let n = ids.len();
        if n == 0 {
            return Err(EngineError::EmptyInput);
        }
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= cfg.vocab_size) {
            return Err(EngineError::TokenOutOfRange { id, vocab_size: cfg.vocab_size });
        }
        if self.pos + n > cfg.n_positions {
            return Err(EngineError::ContextOverflow { needed: self.pos + n, max: cfg.n_positions });
        }
        let (c, past, w) = (cfg.n_embd, self.pos, &*self.weights);
        let shape = AttentionShape { n_head: cfg.n_head, head_dim: cfg.head_dim(), past };
        let eps = cfg.layer_norm_epsilon;
        let s = &mut self.scratch;
        let out = &mut self.out;
        out.hidden_states.resize(if opts.hidden_states { cfg.n_layer + 1 } else { 0 }, Vec::new());
        out.attention.resize(if opts.attention { cfg.n_layer } else { 0 }, Vec::new());

        let x = sized(&mut s.x, n * c);
        for (i, (row, &id)) in x.chunks_exact_mut(c).zip(ids).enumerate() {
            let tok = &w.wte.data[id as usize * c..][..c];
            let posv = &w.wpe.data[(past + i) * c..][..c];
            for ((x, &t), &p) in row.iter_mut().zip(tok).zip(posv) {
                *x = t + p;
            }
        }
        let h = sized(&mut s.h, n * c);
        let qkv = sized(&mut s.qkv, n * 3 * c);
        let att = sized(&mut s.att, n * c);
        let probs = sized(&mut s.probs, n * cfg.n_head * (past + n));
        let proj = sized(&mut s.proj, n * c);
        let fc = sized(&mut s.fc, n * cfg.n_inner);
        let layer_cache = cfg.n_positions * c;

        for (l, b) in w.blocks.iter().enumerate() {
            if opts.hidden_states {
                out.hidden_states[l].clear();
                out.hidden_states[l].extend_from_slice(x);
            }
            let kc = &mut self.k_cache[l * layer_cache..(l + 1) * layer_cache];
            let vc = &mut self.v_cache[l * layer_cache..(l + 1) * layer_cache];
            let pre = cfg.layer_norm_position == LayerNormPosition::Pre;

            // Attention sub-layer.
            if pre {
                ops::layer_norm(h, x, &b.ln_1, eps);
                ops::linear(qkv, h, &b.c_attn);
            } else {
                ops::linear(qkv, x, &b.c_attn);
            }
            for (i, row) in qkv.chunks_exact(3 * c).enumerate() {
                kc[(past + i) * c..][..c].copy_from_slice(&row[c..2 * c]);
                vc[(past + i) * c..][..c].copy_from_slice(&row[2 * c..]);
            }
            ops::attention(att, probs, qkv, kc, vc, &shape);
            if opts.attention {
                // Scratch is [new, n_head, total]; the output is per head, as HF returns it.
                let (heads, total) = (cfg.n_head, past + n);
                let a = &mut out.attention[l];
                a.clear();
                for h in 0..heads {
                    for i in 0..n {
                        a.extend_from_slice(&probs[(i * heads + h) * total..][..total]);
                    }
                }
            }
            ops::linear(proj, att, &b.attn_proj);
            add(x, proj);
            if !pre {
                ops::layer_norm(h, x, &b.ln_1, eps);
                x.copy_from_slice(h);
            }

            // MLP sub-layer.
            if pre {
                ops::layer_norm(h, x, &b.ln_2, eps);
                ops::linear(fc, h, &b.c_fc);
            } else {
                ops::linear(fc, x, &b.c_fc);
            }
            ops::gelu(fc);
            ops::linear(proj, fc, &b.mlp_proj);
            add(x, proj);
            if !pre {
                ops::layer_norm(h, x, &b.ln_2, eps);
                x.copy_from_slice(h);
            }
        }
        match &w.ln_f {
            Some(ln) => ops::layer_norm(h, x, ln, eps),
            None => h.copy_from_slice(x),
        }
        if opts.hidden_states {
            let last = &mut out.hidden_states[cfg.n_layer];
            last.clear();
            last.extend_from_slice(h);
        }
        let rows = if opts.all_logits { n } else { 1 };
        let logits = sized(&mut out.logits, rows * cfg.vocab_size);
        ops::lm_head(logits, &h[(n - rows) * c..], w.head());
        out.rows = rows;
        self.pos += n;
        Ok(&self.out)
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
