//! The CPU reference GPT: plain Rust on f32 activations, the oracle every faster path is checked
//! against; its matrices in f32 or as the file stores them (GGML blocks, F16, BF16), each block
//! decoded in registers as it is read (`crate::quant::matrix`).
//!
//! A [`CpuSession`] owns a KV cache for the whole context and grow-only scratch buffers, so after
//! the first token of a given batch size, [`CpuSession::run`] allocates only small blocks: the
//! pass's team of threads ([`ops::on_pool`]: the team and its broadcast, a few per call), each
//! 8-bit product's quantized activations, and (called through [`LanguageModel`]) its boxed ready
//! future. [`CpuSession::run`] is the forward pass; `block()` is one transformer block, both LayerNorm placements side by side as in
//! the trainer's model (`native-trainer/src/model.rs`).

pub mod math;
pub mod ops;
#[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
mod team;

use std::sync::Arc;

use crate::config::{GptConfig, LayerNormPosition};
use crate::model::{
    CPU_KV_BUDGET, EngineError, Footprint, ForwardOptions, LanguageModel, LocalFuture, Outputs, PREFILL_CHUNK,
    check_input, pass_rows, positions_within,
};
use crate::quant::Activations;
use crate::weights::{Block, ModelWeights};
use ops::{AttentionShape, add};

/// Per-call activations of a block, resized (never shrunk) to the call's row count.
#[derive(Default)]
struct Scratch {
    h: Vec<f32>,
    proj: Vec<f32>,
    fc: Vec<f32>,
    attn: AttnScratch,
}

#[derive(Default)]
struct AttnScratch {
    qkv: Vec<f32>,
    att: Vec<f32>,
    /// `[new, n_head, past + new]`: the probabilities of the last block run, where they are
    /// kept: a decode step's, or any pass's whose maps are asked for.
    probs: Vec<f32>,
    /// Whether the pass keeps a prompt's probabilities (its maps are asked for). A prompt's
    /// grow with its square; without, each (row, head) task holds its own row of them.
    keep_probs: bool,
}

/// Resizes without shrinking capacity: allocation happens only when a call needs more room.
fn sized(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    v.resize(n, 0.0);
    &mut v[..n]
}

/// One layer's slice of the KV cache: `[n_ctx, n_embd]` each.
struct LayerCache<'a> {
    k: &'a mut [f32],
    v: &'a mut [f32],
}

pub struct CpuSession {
    config: GptConfig,
    weights: Arc<ModelWeights>,
    /// Positions the cache holds: the model's `n_positions`, fewer where that would pass
    /// [`CPU_KV_BUDGET`].
    n_ctx: usize,
    /// `[n_layer, n_ctx, n_embd]` each.
    k_cache: Vec<f32>,
    v_cache: Vec<f32>,
    pos: usize,
    /// The residual stream, `[new, n_embd]`.
    x: Vec<f32>,
    scratch: Scratch,
    out: Outputs,
    /// How quantized matrices are multiplied ([`Activations::F32`]: the reference).
    activations: Activations,
}

impl CpuSession {
    pub fn new(config: GptConfig, weights: Arc<ModelWeights>) -> Self {
        Self::with_kv_budget(config, weights, CPU_KV_BUDGET)
    }

    /// [`CpuSession::new`] with a cache budget of `budget` bytes: the whole learned position
    /// table where it fits, else as many positions as do.
    pub fn with_kv_budget(config: GptConfig, weights: Arc<ModelWeights>, budget: u64) -> Self {
        // wpe holds n_positions * n_embd values (validated), but a thousand thin layers would
        // still make the cache far larger than the file: bounded by the budget too.
        let per_position = (config.n_layer as u64).saturating_mul(config.n_embd as u64 * 2 * 4);
        let n_ctx = positions_within(budget, per_position, config.n_positions);
        let cache = config.n_layer * n_ctx * config.n_embd;
        CpuSession {
            n_ctx,
            config,
            weights,
            k_cache: vec![0.0; cache],
            v_cache: vec![0.0; cache],
            pos: 0,
            x: Vec::new(),
            scratch: Scratch::default(),
            out: Outputs::default(),
            activations: Activations::F32,
        }
    }

    /// Multiplies quantized matrices with `activations` (8-bit: the fast path; f32: the reference).
    pub fn with_activations(mut self, activations: Activations) -> Self {
        self.activations = activations;
        self
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

    /// Appends `ids` to the context and runs them through the model (synchronously: the
    /// [`LanguageModel::forward`] future of this engine is this call).
    pub fn run(&mut self, ids: &[u32], opts: ForwardOptions) -> Result<&Outputs, EngineError> {
        check_input(ids, self.pos, self.n_ctx, self.config.vocab_size)?;
        if opts.attention || opts.hidden_states || ids.len() <= PREFILL_CHUNK {
            ops::on_pool(|| self.forward_pass(ids, opts))?;
            return Ok(&self.out);
        }
        // A long prompt in passes ([`pass_rows`]).
        let mut logits = Vec::new();
        for chunk in ids.chunks(pass_rows(ids.len())) {
            ops::on_pool(|| self.forward_pass(chunk, opts))?;
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

    /// [`CpuSession::run`]'s work, on the thread pool.
    fn forward_pass(&mut self, ids: &[u32], opts: ForwardOptions) -> Result<(), EngineError> {
        check_input(ids, self.pos, self.n_ctx, self.config.vocab_size)?;
        let cfg = &self.config;
        let (n, c, past, w) = (ids.len(), cfg.n_embd, self.pos, &*self.weights);
        let s = &mut self.scratch;
        let out = &mut self.out;
        out.hidden_states.resize(if opts.hidden_states { cfg.n_layer + 1 } else { 0 }, Vec::new());
        out.attention.resize(if opts.attention { cfg.n_layer } else { 0 }, Vec::new());

        s.attn.keep_probs = opts.attention;
        let x = sized(&mut self.x, n * c);
        embed(x, ids, past, w, c);
        let layer_cache = self.n_ctx * c;
        for (l, b) in w.blocks.iter().enumerate() {
            if opts.hidden_states {
                out.hidden_states[l].clear();
                out.hidden_states[l].extend_from_slice(x);
            }
            let cache = LayerCache {
                k: &mut self.k_cache[l * layer_cache..(l + 1) * layer_cache],
                v: &mut self.v_cache[l * layer_cache..(l + 1) * layer_cache],
            };
            block(x, b, cache, past, cfg, s, self.activations);
            if opts.attention {
                attention_map(&mut out.attention[l], &s.attn.probs, cfg.n_head, n, past + n);
            }
        }
        let h = sized(&mut s.h, n * c);
        match &w.ln_f {
            Some(ln) => ops::layer_norm(h, x, ln, cfg.layer_norm_epsilon),
            None => h.copy_from_slice(x),
        }
        if opts.hidden_states {
            let last = &mut out.hidden_states[cfg.n_layer];
            last.clear();
            last.extend_from_slice(h);
        }
        let rows = if opts.all_logits { n } else { 1 };
        let logits = sized(&mut out.logits, rows * cfg.vocab_size);
        w.head().linear_with(logits, &h[(n - rows) * c..], None, self.activations);
        out.rows = rows;
        self.pos += n;
        Ok(())
    }
}

/// Token plus position embedding of each new row.
fn embed(x: &mut [f32], ids: &[u32], past: usize, w: &ModelWeights, c: usize) {
    for (i, (row, &id)) in x.chunks_exact_mut(c).zip(ids).enumerate() {
        w.wte.row_into(id as usize, row);
        add(row, &w.wpe.data[(past + i) * c..][..c]);
    }
}

/// One transformer block on the residual stream `x` (`[new, n_embd]`, rows at positions
/// `past ..`): pre-LN `x + f(ln(x))` (GPT-2) or post-LN `ln(x + f(x))` (GPT-1), for the attention
/// and the MLP sub-layer. Leaves the attention probabilities in `s.attn.probs`.
fn block(
    x: &mut [f32],
    b: &Block,
    mut cache: LayerCache,
    past: usize,
    cfg: &GptConfig,
    s: &mut Scratch,
    a: Activations,
) {
    let (n, c, eps) = (x.len() / cfg.n_embd, cfg.n_embd, cfg.layer_norm_epsilon);
    let h = sized(&mut s.h, n * c);
    let proj = sized(&mut s.proj, n * c);
    match cfg.layer_norm_position {
        LayerNormPosition::Pre => {
            ops::layer_norm(h, x, &b.ln_1, eps);
            attention(proj, h, b, &mut cache, past, cfg, &mut s.attn, a);
            add(x, proj);
            ops::layer_norm(h, x, &b.ln_2, eps);
            mlp(proj, h, b, cfg, &mut s.fc, a);
            add(x, proj);
        }
        LayerNormPosition::Post => {
            attention(proj, x, b, &mut cache, past, cfg, &mut s.attn, a);
            add(x, proj);
            ops::layer_norm(h, x, &b.ln_1, eps);
            mlp(proj, h, b, cfg, &mut s.fc, a);
            add(h, proj);
            ops::layer_norm(x, h, &b.ln_2, eps);
        }
    }
}

/// Causal self-attention of the rows `input` over the cache plus themselves, into `out`.
#[allow(clippy::too_many_arguments)]
fn attention(
    out: &mut [f32],
    input: &[f32],
    b: &Block,
    cache: &mut LayerCache,
    past: usize,
    cfg: &GptConfig,
    s: &mut AttnScratch,
    a: Activations,
) {
    let (n, c) = (input.len() / cfg.n_embd, cfg.n_embd);
    let qkv = sized(&mut s.qkv, n * 3 * c);
    let att = sized(&mut s.att, n * c);
    // A decode step's one row is kept (a few KB, and no allocation per head).
    let probs = (s.keep_probs || n == 1).then(|| sized(&mut s.probs, n * cfg.n_head * (past + n)));
    ops::linear(qkv, input, &b.c_attn, a);
    append_kv(cache, qkv, past, c);
    let shape = AttentionShape { n_head: cfg.n_head, head_dim: cfg.head_dim(), past };
    ops::attention(att, probs, qkv, cache.k, cache.v, &shape);
    ops::linear(out, att, &b.attn_proj, a);
}

/// The MLP `c_proj(gelu(c_fc(input)))` into `out`.
fn mlp(out: &mut [f32], input: &[f32], b: &Block, cfg: &GptConfig, fc: &mut Vec<f32>, a: Activations) {
    let fc = sized(fc, input.len() / cfg.n_embd * cfg.n_inner);
    ops::linear(fc, input, &b.c_fc, a);
    ops::gelu(fc);
    ops::linear(out, fc, &b.mlp_proj, a);
}

/// Writes the new rows' keys and values (`qkv` rows are `q | k | v`) at positions `past ..`.
fn append_kv(cache: &mut LayerCache, qkv: &[f32], past: usize, c: usize) {
    for (i, row) in qkv.chunks_exact(3 * c).enumerate() {
        cache.k[(past + i) * c..][..c].copy_from_slice(&row[c..2 * c]);
        cache.v[(past + i) * c..][..c].copy_from_slice(&row[2 * c..]);
    }
}

/// The attention scratch is `[new, n_head, total]`; a map is per head, `[n_head, new, total]`,
/// as HF returns it.
fn attention_map(map: &mut Vec<f32>, probs: &[f32], heads: usize, new: usize, total: usize) {
    map.clear();
    for h in 0..heads {
        for i in 0..new {
            map.extend_from_slice(&probs[(i * heads + h) * total..][..total]);
        }
    }
}

impl LanguageModel for CpuSession {
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
        CpuSession::truncate(self, pos);
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
            "{} ({} weights{})",
            self.activations.engine(),
            self.weights.matrix_types().join("+"),
            self.activations.note(&self.weights.matrix_types())
        )
    }
    fn footprint(&self) -> Footprint {
        let f32s = |v: &Vec<f32>| (v.capacity() * 4) as u64;
        let s = &self.scratch;
        let scratch = [
            &self.k_cache,
            &self.v_cache,
            &self.x,
            &s.h,
            &s.proj,
            &s.fc,
            &s.attn.qkv,
            &s.attn.att,
            &s.attn.probs,
            &self.out.logits,
        ];
        Footprint { weights: self.weights.bytes() as u64, scratch: scratch.into_iter().map(f32s).sum() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prompt longer than [`PREFILL_CHUNK`] runs in passes and gives a single pass's logits
    /// (a single pass: the same prompt with its attention maps asked for), every row's, to the
    /// bit, f32 and Q4_0 weights.
    #[test]
    fn a_long_prompt_in_passes_gives_a_single_pass_s_logits() {
        let mut config = GptConfig::preset("tiny").unwrap();
        config.n_positions = 1100;
        for ty in [None, Some(crate::quant::GgmlType::Q4_0)] {
            let mut weights = ModelWeights::random(&config, 3);
            if let Some(ty) = ty {
                weights.quantize(ty).unwrap();
            }
            let weights = Arc::new(weights);
            for n in [2 * PREFILL_CHUNK + 1, PREFILL_CHUNK + 77] {
                let ids: Vec<u32> = (0..n as u32).map(|i| (i * 37 + 5) % config.vocab_size as u32).collect();
                let run = |attention: bool| {
                    let mut s = CpuSession::new(config.clone(), weights.clone()).with_activations(Activations::Q8);
                    let opts = ForwardOptions { all_logits: true, attention, hidden_states: false };
                    let out = s.run(&ids, opts).unwrap();
                    assert_eq!((out.rows, out.attention.len()), (n, if attention { config.n_layer } else { 0 }));
                    out.logits.clone()
                };
                let (passes, single) = (run(false), run(true));
                assert_eq!(passes.len(), n * config.vocab_size);
                let same = passes.iter().zip(&single).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{ty:?}, {n} positions: passes differ from one pass");
            }
        }
    }
}
