//! What every engine is: the one interface the CPU reference ([`crate::cpu::CpuSession`]) and the
//! WGSL engine ([`crate::gpu::GpuModel`]) implement, and what callers (the generate loop, the
//! page's step-wise [`crate::engine::Engine`], the benchmark) use without knowing which it is.
//!
//! An engine owns a KV cache for its whole context. [`LanguageModel::forward`] appends ids and
//! runs them — many at once (prefill) or one (a decode step) — and returns logits and, on request,
//! attention maps; [`LanguageModel::next_token`] appends ids and picks the next token, on the
//! device where the engine can ([`device_can_pick`]). Calls are futures because the GPU reads its
//! results back asynchronously (in the browser nothing may block); the CPU's are ready at once.
//! A second architecture or backend is one more implementation of this trait.

use std::future::Future;
use std::pin::Pin;

use thiserror::Error;

use crate::gpu::GpuError;
use crate::sampler::{Sampler, SamplingParams};

/// A boxed future that need not be `Send` (the WebGPU device is not, on wasm).
pub type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Why an engine refused or failed a call. Input errors are checked by [`check_input`], the same
/// for every engine, before anything runs.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum EngineError {
    #[error("no tokens to run")]
    EmptyInput,
    #[error("token id {id} is outside the model's vocabulary of {vocab_size}")]
    TokenOutOfRange { id: u32, vocab_size: usize },
    #[error("the context holds {max} tokens; {needed} would not fit (the context never slides: start a new one)")]
    ContextOverflow { needed: usize, max: usize },
    #[error("not supported by this engine: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

impl EngineError {
    /// A stable name for the kind of failure, for callers that recover from some kinds (the page
    /// falls back to the CPU engine on `device-lost`) without matching message text.
    pub fn kind(&self) -> &'static str {
        match self {
            EngineError::EmptyInput | EngineError::TokenOutOfRange { .. } => "bad-input",
            EngineError::ContextOverflow { .. } => "context-full",
            EngineError::Unsupported(_) => "unsupported",
            EngineError::Gpu(e) => e.kind(),
        }
    }
}

/// The most bytes a CPU engine's KV cache may hold (keys and values of every layer): a model's
/// claims — a huge key/value width beside a tiny hidden size, a thousand thin layers, a long
/// learned position table — must not make a file of a few MB fill gigabytes as its context fills.
/// 1 GiB in a browser tab (4 GB of wasm memory in all, the weights included), 8 GiB natively. A
/// model past it holds fewer positions than it was made for, and the page says so.
pub const CPU_KV_BUDGET: u64 = if cfg!(target_arch = "wasm32") { 1 << 30 } else { 8 << 30 };

/// The most positions one CPU forward pass runs: a longer prompt runs in passes (llama.cpp's
/// micro-batches), each holding activations of its own rows, not the prompt's (a 2,692-token
/// prompt in one pass held 2.1 times SmolLM2's weights and cache: `wgpt generate`'s peak
/// resident set). Not where the attention maps or hidden states are asked for (one pass's).
pub const PREFILL_CHUNK: usize = 512;

/// The rows of each pass a prompt of `n` positions runs in: at most [`PREFILL_CHUNK`], all but
/// the last equal, none of one row unless `n` is 1 (one row takes a decode step's products,
/// rounded in another order; a prompt's row has the same values whatever rows are beside it,
/// so the passes' logits are a single pass's).
pub fn pass_rows(n: usize) -> usize {
    n.div_ceil(n.div_ceil(PREFILL_CHUNK).max(1)).max(1)
}

/// How many positions of `per_position` cache bytes fit `budget`: at most `wanted`.
pub fn positions_within(budget: u64, per_position: u64, wanted: usize) -> usize {
    let fit = budget / per_position.max(1);
    wanted.min(usize::try_from(fit).unwrap_or(usize::MAX))
}

/// The input rule every engine applies before running `ids` at position `pos` of a context of
/// `n_ctx` tokens over a vocabulary of `vocab_size`.
pub fn check_input(ids: &[u32], pos: usize, n_ctx: usize, vocab_size: usize) -> Result<(), EngineError> {
    if ids.is_empty() {
        return Err(EngineError::EmptyInput);
    }
    if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab_size) {
        return Err(EngineError::TokenOutOfRange { id, vocab_size });
    }
    if pos + ids.len() > n_ctx {
        return Err(EngineError::ContextOverflow { needed: pos + ids.len(), max: n_ctx });
    }
    Ok(())
}

/// Whether an engine that can pick tokens on its device does so for `params`. Greedy decoding
/// with a repetition penalty is the one case left to the host sampler (the argmax kernel applies
/// no penalty); everything else — greedy, and sampling with or without a penalty — is picked on
/// the device, with the host sampler's definition.
pub fn device_can_pick(params: &SamplingParams) -> bool {
    !(params.temperature == 0.0 && params.repetition_penalty != 1.0)
}

/// What a forward call returns besides the last position's logits.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardOptions {
    /// Logits for every new position, not only the last.
    pub all_logits: bool,
    /// Attention probabilities of every layer and head.
    pub attention: bool,
    /// The residual stream entering each block, then the final (normed) hidden state: the
    /// `n_layer + 1` entries of HF's `output_hidden_states` (CPU reference only).
    pub hidden_states: bool,
}

/// Outputs of the last forward call; engines reuse the buffers between calls.
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

/// The memory a loaded model holds, so an out-of-memory error can say what the model needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Footprint {
    /// Weights as stored (on the GPU: f32, or f16 packed two per u32).
    pub weights: u64,
    /// KV cache, activations, logits and (on the GPU) the readback buffer.
    pub scratch: u64,
}

impl Footprint {
    pub fn total(&self) -> u64 {
        self.weights + self.scratch
    }
}

/// Counts from the last step of an engine that submits work to a device, for benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepStats {
    pub dispatches: usize,
    /// Dispatches per transformer block (the rest: embedding, final norm, head, pick).
    pub per_block: usize,
    pub submits: usize,
}

/// One draw of the next token: the host sampler and what it needs, which engines that pick on
/// the device use only for its parameters.
pub struct Draw<'a> {
    pub sampler: &'a mut Sampler,
    /// The context the repetition penalty counts (the tokens in the KV cache after the feed).
    pub history: &'a [u32],
    pub params: &'a SamplingParams,
    /// Numbers the draw within the seed's stream.
    pub step: u32,
}

/// A language model with a KV cache: what the generate loop, the page and the benchmark drive.
pub trait LanguageModel {
    /// The longest context, in tokens.
    fn n_ctx(&self) -> usize;
    /// Token ids run from 0 to this.
    fn vocab_size(&self) -> usize;
    /// Tokens in the context so far.
    fn position(&self) -> usize;
    /// Keeps only the first `pos` tokens of the context (a shared prefix is reused); everything
    /// after them is forgotten, including by the repetition penalty.
    fn truncate(&mut self, pos: usize);
    /// Forgets the context.
    fn reset(&mut self) {
        self.truncate(0);
    }
    /// Appends `ids` to the context and runs them through the model.
    fn forward<'a>(
        &'a mut self,
        ids: &'a [u32],
        opts: ForwardOptions,
    ) -> LocalFuture<'a, Result<&'a Outputs, EngineError>>;
    /// Appends `ids` and picks the next token. Engines that can pick on their device override it
    /// (greedy on the GPU reads back one id, not the vocabulary).
    fn next_token<'a>(&'a mut self, ids: &'a [u32], draw: Draw<'a>) -> LocalFuture<'a, Result<u32, EngineError>> {
        pick_on_host(self, ids, draw)
    }
    /// `"cpu"` or `"gpu"`.
    fn backend(&self) -> &'static str;
    /// One line on what runs: engine, device, weight format, kernels.
    fn describe(&self) -> String;
    /// What the model holds in memory.
    fn footprint(&self) -> Footprint;
    /// Dispatches and submits of the last step, for engines that submit to a device.
    fn step_stats(&self) -> Option<StepStats> {
        None
    }
}

/// Appends `ids`, reads the last logits back and picks with the host sampler: the default
/// [`LanguageModel::next_token`], and what a device engine falls back to.
pub fn pick_on_host<'a, M: LanguageModel + ?Sized>(
    model: &'a mut M,
    ids: &'a [u32],
    draw: Draw<'a>,
) -> LocalFuture<'a, Result<u32, EngineError>> {
    Box::pin(async move {
        let logits = model.forward(ids, ForwardOptions::default()).await?.last_logits();
        Ok(draw.sampler.sample(logits, draw.history, draw.params, draw.step))
    })
}

/// Runs a future of an engine that is ready at once (the CPU reference) or, natively, blocks on
/// it (the GPU); used by the synchronous callers (the CLI, the trainer's evaluations).
#[cfg(not(target_arch = "wasm32"))]
pub fn block_on<T>(f: impl Future<Output = T>) -> T {
    pollster::block_on(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_picks_unless_greedy_with_a_penalty() {
        let p =
            |temperature, repetition_penalty| SamplingParams { temperature, repetition_penalty, ..Default::default() };
        assert!(device_can_pick(&p(0.0, 1.0)));
        assert!(device_can_pick(&p(0.8, 1.0)));
        assert!(device_can_pick(&p(0.8, 1.3)));
        assert!(!device_can_pick(&p(0.0, 1.3)));
    }

    #[test]
    fn input_is_checked_the_same_way_for_every_engine() {
        let (max, v) = (128, 512);
        assert_eq!(check_input(&[], 0, max, v), Err(EngineError::EmptyInput));
        assert_eq!(
            check_input(&[v as u32], 0, max, v),
            Err(EngineError::TokenOutOfRange { id: v as u32, vocab_size: v })
        );
        assert_eq!(check_input(&[1, 2], max - 1, max, v), Err(EngineError::ContextOverflow { needed: max + 1, max }));
        assert_eq!(check_input(&[1], max - 1, max, v), Ok(()));
        assert_eq!(EngineError::EmptyInput.kind(), "bad-input");
        assert_eq!(EngineError::Gpu(GpuError::DeviceLost("x".into())).kind(), "device-lost");
    }
}
