//! The Llama family on the CPU, f32 activations (matrices in f32 or as stored, as
//! `crate::quant::Matrix` holds them): the oracle the faster paths are checked against,
//! as `src/cpu/` is for GPT-2. Per layer: RMSNorm → q, k, v (biases: Qwen2; per-head q/k RMSNorm:
//! Qwen3) → rotary positions → grouped-query attention over the KV cache → o → residual; RMSNorm →
//! SwiGLU `down(silu(gate(x)) · up(x))` → residual. The KV cache grows with the context, so a
//! model whose `max_position_embeddings` is 32 k allocates only what a conversation uses.

use std::sync::Arc;

use super::config::LlamaConfig;
use super::kv_cache::KvCache;
use super::weights::{LlamaLayer, LlamaWeights, Proj};
use crate::cpu::ops::{add, attend_rows};
use crate::model::{
    CPU_KV_BUDGET, EngineError, Footprint, ForwardOptions, LanguageModel, LocalFuture, Outputs, PREFILL_CHUNK,
    check_input, pass_rows, positions_within,
};
use crate::quant::{Activations, Matrix};
use crate::weights::Tensor;

pub struct LlamaSession {
    config: LlamaConfig,
    weights: Arc<LlamaWeights>,
    /// Positions this session holds: the model's own limit, or less ([`LlamaSession::with_context`]).
    n_ctx: usize,
    /// Rotary inverse frequencies, `[head_dim / 2]`.
    inv_freq: Vec<f32>,
    /// Per layer `[pos, n_kv_heads · head_dim]`, grown as the context grows.
    k_cache: Vec<KvCache>,
    v_cache: Vec<KvCache>,
    pos: usize,
    out: Outputs,
    /// How quantized matrices are multiplied ([`Activations::F32`]: the reference).
    activations: Activations,
}

impl LlamaSession {
    pub fn new(config: LlamaConfig, weights: Arc<LlamaWeights>) -> Self {
        let (layers, kv_row) = (config.num_hidden_layers, config.num_key_value_heads * config.head_dim);
        LlamaSession {
            inv_freq: config.inv_freq(),
            n_ctx: config.max_position_embeddings,
            config,
            weights,
            k_cache: vec![KvCache::new(kv_row); layers],
            v_cache: vec![KvCache::new(kv_row); layers],
            pos: 0,
            out: Outputs::default(),
            activations: Activations::F32,
        }
        .with_context(usize::MAX)
    }

    /// Multiplies quantized matrices with `activations` (8-bit: the fast path; f32: the reference).
    pub fn with_activations(mut self, activations: Activations) -> Self {
        self.activations = activations;
        self
    }

    /// Holds at most `max` positions (a model may claim 128 k; a conversation is refused, or
    /// trimmed by the caller, past the cap instead of growing the cache that far), and never more
    /// than [`CPU_KV_BUDGET`] of keys and values.
    pub fn with_context(self, max: usize) -> Self {
        self.with_kv_budget(max, CPU_KV_BUDGET)
    }

    /// [`LlamaSession::with_context`] with a cache budget of `budget` bytes.
    pub fn with_kv_budget(mut self, max: usize, budget: u64) -> Self {
        let c = &self.config;
        let per_position = (c.num_hidden_layers as u64)
            .saturating_mul((c.num_key_value_heads * c.head_dim) as u64)
            .saturating_mul(2 * 4);
        let wanted = c.max_position_embeddings.min(max.max(1));
        self.n_ctx = positions_within(budget, per_position, wanted);
        self
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// Appends `ids` to the context and runs them through the model.
    pub fn run(&mut self, ids: &[u32], opts: ForwardOptions) -> Result<&Outputs, EngineError> {
        check_input(ids, self.pos, self.n_ctx, self.config.vocab_size)?;
        if opts.attention || ids.len() <= PREFILL_CHUNK {
            crate::cpu::ops::on_pool(|| self.forward_pass(ids, opts))?;
            return Ok(&self.out);
        }
        // A long prompt in passes ([`pass_rows`]).
        let mut logits = Vec::new();
        for chunk in ids.chunks(pass_rows(ids.len())) {
            crate::cpu::ops::on_pool(|| self.forward_pass(chunk, opts))?;
            if opts.all_logits {
                logits.extend_from_slice(&self.out.logits);
            }
        }
        if opts.all_logits {
            self.out.logits = logits;
            self.out.rows = ids.len();
        }
        Ok(&self.out)
    }

    /// [`LlamaSession::run`]'s work, on the thread pool.
    fn forward_pass(&mut self, ids: &[u32], opts: ForwardOptions) -> Result<(), EngineError> {
        let c = &self.config;
        if opts.hidden_states {
            return Err(EngineError::Unsupported("hidden states of the Llama family".into()));
        }
        let (n, d, eps) = (ids.len(), c.hidden_size, c.rms_norm_eps);
        let weights = self.weights.clone();
        let w = &*weights;
        let mut x = vec![0f32; n * d];
        for (row, &id) in x.chunks_exact_mut(d).zip(ids) {
            w.embed_tokens.row_into(id as usize, row);
        }
        self.out.attention.clear();
        for (l, layer) in w.layers.iter().enumerate() {
            let h = rms_norm(&x, &layer.input_layernorm, eps);
            let (att, probs) = self.attention(l, layer, &h, n, opts.attention);
            add(&mut x, &linear(&att, &layer.o_proj, self.activations));
            if opts.attention {
                self.out.attention.push(probs);
            }
            let h = rms_norm(&x, &layer.post_attention_layernorm, eps);
            add(&mut x, &mlp(&h, layer, self.activations));
        }
        let h = rms_norm(&x, &w.norm, eps);
        let rows = if opts.all_logits { n } else { 1 };
        self.out.logits = logits(&h[(n - rows) * d..], w.head(), self.activations);
        self.out.rows = rows;
        self.pos += n;
        Ok(())
    }

    /// Grouped-query causal attention of the new rows `h` (`[n, hidden]`) of layer `l`; appends
    /// their keys and values to the cache. Returns the heads' outputs `[n, heads · head_dim]` and,
    /// where `keep_probs` or `n` is 1, the probabilities `[heads, n, past + n]` (else empty: each head's
    /// task holds one row of them at a time, not `n · (past + n)`, a gigabyte a layer for a
    /// 4,096-token prompt of 14 heads).
    fn attention(
        &mut self,
        l: usize,
        layer: &LlamaLayer,
        h: &[f32],
        n: usize,
        keep_probs: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        let c = &self.config;
        let (hd, heads, kv_heads) = (c.head_dim, c.num_attention_heads, c.num_key_value_heads);
        let a = self.activations;
        let [mut q, mut k, v] = linear_many(h, [&layer.q_proj, &layer.k_proj, &layer.v_proj], a);
        if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
            q = rms_norm(&q, qn, c.rms_norm_eps);
            k = rms_norm(&k, kn, c.rms_norm_eps);
        }
        let mut turns = Vec::with_capacity(self.inv_freq.len());
        for i in 0..n {
            // One sine and cosine per frequency for the row's every head, q's and k's alike.
            let angle_pos = (self.pos + i) as f32;
            turns.clear();
            turns.extend(self.inv_freq.iter().map(|&f| (angle_pos * f).sin_cos()));
            rotate(&mut q[i * heads * hd..][..heads * hd], hd, &turns);
            rotate(&mut k[i * kv_heads * hd..][..kv_heads * hd], hd, &turns);
        }
        self.k_cache[l].extend(&k);
        self.v_cache[l].extend(&v);
        let (kc, vc) = (&self.k_cache[l], &self.v_cache[l]);
        let (pos, total) = (self.pos, self.pos + n);
        let group = heads / kv_heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let q = |i: usize, head: usize| &q[(i * heads + head) * hd..][..hd];
        let key = |head: usize, t: usize| &kc.row(t)[head / group * hd..][..hd];
        let value = |head: usize, t: usize| &vc.row(t)[head / group * hd..][..hd];
        // A decode step's one row is kept too (a few KB; no allocation per head).
        let mut probs = if keep_probs || n == 1 { vec![0.0f32; heads * n * total] } else { Vec::new() };
        let kept = (!probs.is_empty()).then_some(probs.as_mut_slice());
        let out = attend_rows(heads, hd, pos, n, q, key, value, scale, kept);
        (out, probs)
    }
}

/// `W·x + b` for each row of `x`; `W` is `[out, in]` (f32, or blocks decoded as they are read).
fn linear(x: &[f32], p: &Proj, a: Activations) -> Vec<f32> {
    let [n_out, n_in] = p.weight.shape();
    let mut y = vec![0.0; x.len() / n_in * n_out];
    p.weight.linear_with(&mut y, x, p.bias.as_ref(), a);
    y
}

/// [`linear`] for projections of the same input, in one pass where they can share it
/// ([`crate::quant::matrix::linear_many`]).
fn linear_many<const N: usize>(x: &[f32], ps: [&Proj; N], a: Activations) -> [Vec<f32>; N] {
    let ms = ps.map(|p| (&p.weight, p.bias.as_ref()));
    let mut outs = crate::quant::matrix::linear_many(x, &ms, a).into_iter();
    std::array::from_fn(|_| outs.next().expect("one output per projection"))
}

/// RMSNorm of each row of `x` (rows as long as `g`): `x / sqrt(mean(x²) + eps) · g`. A prompt's
/// rows in parallel (each row's sum in order, so the same bits on any thread count).
fn rms_norm(x: &[f32], g: &Tensor, eps: f32) -> Vec<f32> {
    let n = g.data.len();
    let mut y = vec![0f32; x.len()];
    let norm = |r: usize, y: &mut [f32]| {
        for (row, y) in x[r * n..][..y.len()].chunks_exact(n).zip(y.chunks_exact_mut(n)) {
            let ms = row.iter().map(|v| v * v).sum::<f32>() / n as f32;
            let r = 1.0 / (ms + eps).sqrt();
            y.iter_mut().zip(row.iter().zip(&g.data)).for_each(|(y, (v, g))| *y = v * r * g);
        }
    };
    if x.len() >= crate::cpu::ops::PARALLEL_VALUES {
        crate::cpu::ops::for_each_chunk(&mut y, n, |r, y| norm(r, y));
    } else {
        norm(0, &mut y);
    }
    y
}

/// Rotary position embedding of each `hd`-long head in `x`, HF's "rotate half" layout: element
/// `i` pairs with `i + hd/2`, turned by `pos · inv_freq[i]`, whose sine and cosine are
/// `turns[i]`.
fn rotate(x: &mut [f32], hd: usize, turns: &[(f32, f32)]) {
    let half = hd / 2;
    for head in x.chunks_exact_mut(hd) {
        for (i, &(sin, cos)) in turns.iter().enumerate() {
            let (a, b) = (head[i], head[i + half]);
            head[i] = a * cos - b * sin;
            head[i + half] = b * cos + a * sin;
        }
    }
}

/// SwiGLU: `down(silu(gate(x)) · up(x))`.
fn mlp(x: &[f32], layer: &LlamaLayer, a: Activations) -> Vec<f32> {
    let [mut gate, up] = linear_many(x, [&layer.gate_proj, &layer.up_proj], a);
    crate::cpu::ops::silu_mul(&mut gate, &up);
    linear(&gate, &layer.down_proj, a)
}

/// Logits of each row of `h` against the head's rows.
fn logits(h: &[f32], head: &Matrix, a: Activations) -> Vec<f32> {
    let [vocab, d] = head.shape();
    let mut out = vec![0.0; h.len() / d * vocab];
    head.linear_with(&mut out, h, None, a);
    out
}

impl LanguageModel for LlamaSession {
    fn n_ctx(&self) -> usize {
        self.n_ctx
    }
    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }
    fn position(&self) -> usize {
        self.pos
    }
    fn truncate(&mut self, pos: usize) {
        self.pos = self.pos.min(pos);
        for cache in self.k_cache.iter_mut().chain(self.v_cache.iter_mut()) {
            cache.truncate(self.pos);
        }
    }
    fn forward<'a>(
        &'a mut self,
        ids: &'a [u32],
        opts: ForwardOptions,
    ) -> LocalFuture<'a, Result<&'a Outputs, EngineError>> {
        Box::pin(std::future::ready(self.run(ids, opts)))
    }
    fn backend(&self) -> &'static str {
        "cpu"
    }
    fn describe(&self) -> String {
        format!(
            "{} ({} weights{}), {}",
            self.activations.engine(),
            self.weights.matrix_types().join("+"),
            self.activations.note(&self.weights.matrix_types()),
            self.config.model_type
        )
    }
    fn footprint(&self) -> Footprint {
        let cache: usize = self.k_cache.iter().chain(&self.v_cache).map(KvCache::bytes).sum();
        Footprint { weights: self.weights.bytes() as u64, scratch: cache as u64 }
    }
}

// A pool of threads: native only.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    /// A prompt longer than [`PREFILL_CHUNK`] runs in passes and gives a single pass's logits
    /// (a single pass: the same prompt with its attention maps asked for), every row's, to the
    /// bit, f32 and Q4_0 weights; a prompt one past two passes' length included.
    #[test]
    fn a_long_prompt_in_passes_gives_a_single_pass_s_logits() {
        let config = LlamaConfig::from_json(
            br#"{"model_type": "llama", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 128,
                "max_position_embeddings": 2048}"#,
        )
        .unwrap();
        for ty in [None, Some(crate::quant::GgmlType::Q4_0)] {
            let mut weights = LlamaWeights::random(&config, 7);
            if let Some(ty) = ty {
                weights.quantize(ty).unwrap();
            }
            let weights = Arc::new(weights);
            for n in [2 * PREFILL_CHUNK + 1, PREFILL_CHUNK + 77] {
                let ids: Vec<u32> = (0..n as u32).map(|i| (i * 37 + 5) % 128).collect();
                let run = |attention: bool| {
                    let mut s = LlamaSession::new(config.clone(), weights.clone()).with_activations(Activations::Q8);
                    let opts = ForwardOptions { all_logits: true, attention, hidden_states: false };
                    let out = s.run(&ids, opts).unwrap();
                    assert_eq!((out.rows, out.attention.len()), (n, if attention { 2 } else { 0 }));
                    out.logits.clone()
                };
                let (passes, single) = (run(false), run(true));
                assert_eq!(passes.len(), n * 128);
                let same = passes.iter().zip(&single).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{ty:?}, {n} positions: passes differ from one pass");
            }
        }
    }

    /// RMSNorm of a prompt's rows over three threads is each row's norm alone.
    #[test]
    fn rms_norm_over_threads_is_each_row_alone() {
        let n = 96;
        let rows = crate::cpu::ops::PARALLEL_VALUES / n + 3;
        let x: Vec<f32> = (0..rows * n).map(|i| ((i * 7919) % 2001) as f32 / 500.0 - 2.0).collect();
        let g = Tensor { shape: vec![n], data: (0..n).map(|i| 0.5 + i as f32 / 64.0).collect() };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let all = pool.install(|| crate::cpu::ops::on_pool(|| rms_norm(&x, &g, 1e-6)));
        for (r, row) in x.chunks_exact(n).enumerate() {
            let one = rms_norm(row, &g, 1e-6);
            assert!(one.iter().zip(&all[r * n..]).all(|(a, b)| a.to_bits() == b.to_bits()), "row {r}");
        }
    }
}
