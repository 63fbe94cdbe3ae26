//! The benchmark behind `wgpt bench` and the browser's bench page: prefill and decode speed, and
//! for the GPU the figures that say how close decode is to the device's limit.

use std::sync::Arc;

use serde::Serialize;

use crate::generate::GenerateError;
use crate::gpu::{CopyBench, Gpu, GpuOptions};
use crate::loaded::Architecture;
use crate::model::{Draw, LanguageModel};
use crate::sampler::{Sampler, SamplingParams};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub prompt_tokens: usize,
    pub decode_tokens: usize,
    /// Context lengths to decode at; empty: 16, a quarter, a half and the end of the context.
    pub contexts: Vec<usize>,
    /// Positions a Llama-family model holds on the CPU (on the GPU: `GpuOptions::max_context`).
    pub max_context: usize,
    /// How the CPU engine multiplies quantized matrices.
    pub activations: crate::quant::Activations,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decode {
    pub context: usize,
    pub tokens_per_s: f64,
    pub ms_per_token: f64,
    /// Weights plus KV cache read per token.
    pub bytes_per_token: Option<u64>,
    /// bytes/token × tokens/s: the memory traffic decode sustains.
    pub bytes_per_s: Option<f64>,
    /// bytes/token × tokens/s ÷ copy bandwidth (GPU only).
    pub efficiency: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub parameters: usize,
    pub engine: String,
    pub copy_bytes_per_s: Option<f64>,
    pub prefill_tokens: usize,
    pub prefill_tokens_per_s: f64,
    pub decode: Vec<Decode>,
    pub dispatches_per_token: Option<usize>,
    pub dispatches_per_block: Option<usize>,
    pub submits_per_token: Option<usize>,
    /// The CPU engine's threads (its rayon pool; 1 in a single-threaded wasm build).
    pub cpu_threads: Option<usize>,
}

/// Runs `ids`; returns the greedy next token (picked on the device where the engine can).
async fn step(model: &mut dyn LanguageModel, ids: &[u32]) -> Result<u32, GenerateError> {
    let (mut sampler, params) = (Sampler::new(), SamplingParams::greedy());
    Ok(model.next_token(ids, Draw { sampler: &mut sampler, history: &[], params: &params, step: 0 }).await?)
}

/// Benchmarks a model on the CPU reference (`gpu` = None) or the WGSL engine. `now` returns
/// seconds from any fixed origin (`Instant` natively, `performance.now()` on the web). A
/// Llama-family model holds `max_context` positions on the CPU (the GPU's come in `GpuOptions`).
pub async fn run(
    arch: Architecture,
    gpu: Option<(Arc<Gpu>, GpuOptions)>,
    opts: &BenchOptions,
    now: impl Fn() -> f64,
) -> Result<BenchReport, GenerateError> {
    let model = crate::loaded::LoadedModel { arch, text: crate::loaded::TextFormat::none() };
    let s = model.summary();
    let (v, parameters) = (s.vocab_size, s.parameters);
    let mut copy_bw = None;
    let on_cpu = gpu.is_none();
    // Bytes a decode step reads at a context, from what the engine holds.
    let read_per_token: Option<Box<dyn Fn(usize) -> u64>>;
    let mut engine: Box<dyn LanguageModel> = match gpu {
        None => {
            let fixed = cpu_weights_read(&model.arch);
            // K and V of every layer per position, in f32.
            let kv_dim = match &model.arch {
                Architecture::Llama { config, .. } => config.num_key_value_heads * config.head_dim,
                Architecture::Gpt { .. } => s.n_embd,
            };
            let kv = 2 * (s.n_layer * kv_dim * 4) as u64;
            read_per_token = Some(Box::new(move |ctx| fixed + kv * ctx as u64));
            model.cpu_with(opts.max_context, opts.activations)
        }
        Some((gpu, options)) => {
            let g = model.gpu(gpu.clone(), options)?;
            drop(model);
            let copy = CopyBench::new(&gpu, 256 << 20);
            copy.run(&gpu, 2).await?; // warm-up
            let reps = 10;
            let start = now();
            copy.run(&gpu, reps).await?;
            copy_bw = Some(copy.bytes_moved as f64 * reps as f64 / (now() - start));
            let sh = g.shape().clone();
            // Weights once per token, but of the position table (GPT-2) or the rotary table
            // (Llama) only one row; plus the KV cache attention reads.
            let tables = if sh.rotary { sh.n_ctx * sh.head_dim * 4 } else { sh.n_ctx * sh.hidden * 4 };
            let row = if sh.rotary { sh.head_dim * 4 } else { sh.hidden * 4 };
            let fixed = g.weight_bytes() - tables as u64 + row as u64;
            read_per_token = Some(Box::new(move |ctx| fixed + 2 * (sh.n_layer * ctx * sh.kv_dim() * 4) as u64));
            Box::new(g)
        }
    };
    let t = engine.n_ctx();
    let ids: Vec<u32> = (0..t as u32).map(|i| (i * 7919 + 13) % v as u32).collect();

    // Prefill: best of three.
    let p = opts.prompt_tokens.clamp(1, t);
    let mut best = f64::MAX;
    for _ in 0..3 {
        engine.reset();
        let start = now();
        step(&mut *engine, &ids[..p]).await?;
        best = best.min(now() - start);
    }

    let decode = opts.decode_tokens.max(1);
    let room = t.saturating_sub(decode).max(1);
    let mut contexts: Vec<usize> =
        if opts.contexts.is_empty() { vec![16, t / 4, t / 2, room] } else { opts.contexts.clone() };
    contexts.iter_mut().for_each(|x| *x = (*x).clamp(1, room));
    contexts.sort_unstable();
    contexts.dedup();
    let mut rows = Vec::new();
    for ctx in contexts {
        if ctx + decode > t {
            continue;
        }
        engine.reset();
        let mut next = step(&mut *engine, &ids[..ctx]).await?;
        let start = now();
        for _ in 0..decode {
            next = step(&mut *engine, &[next]).await?;
        }
        let secs = (now() - start) / decode as f64;
        let bytes = read_per_token.as_ref().map(|read| read(ctx + decode / 2));
        rows.push(Decode {
            context: ctx,
            tokens_per_s: 1.0 / secs,
            ms_per_token: secs * 1e3,
            bytes_per_token: bytes,
            bytes_per_s: bytes.map(|b| b as f64 / secs),
            efficiency: bytes.zip(copy_bw).map(|(b, bw)| b as f64 / secs / bw),
        });
    }
    let stats = engine.step_stats();
    Ok(BenchReport {
        parameters,
        engine: engine.describe(),
        copy_bytes_per_s: copy_bw,
        prefill_tokens: p,
        prefill_tokens_per_s: p as f64 / best,
        decode: rows,
        dispatches_per_token: stats.map(|s| s.dispatches),
        dispatches_per_block: stats.map(|s| s.per_block),
        submits_per_token: stats.map(|s| s.submits),
        cpu_threads: on_cpu.then(crate::cpu::ops::threads),
    })
}

/// Weight bytes a CPU decode step reads: every matrix once as held (blocks as stored, the rest in
/// f32), but one row of the embedding where the head is its own matrix, and one row of GPT-2's
/// position table.
fn cpu_weights_read(arch: &Architecture) -> u64 {
    match arch {
        Architecture::Llama { weights: w, .. } => {
            let embed = w.embed_tokens.bytes();
            let row = embed / w.embed_tokens.shape()[0].max(1);
            (w.bytes() - if w.lm_head.is_some() { embed - row } else { 0 }) as u64
        }
        Architecture::Gpt { weights: w, .. } => {
            let embed = w.wte.bytes();
            let row = embed / w.wte.shape()[0].max(1);
            let positions = w.wpe.data.len() * 4 - w.wpe.shape[1] * 4;
            (w.bytes() - positions - if w.lm_head.is_some() { embed - row } else { 0 }) as u64
        }
    }
}

impl BenchReport {
    /// The report as the CLI prints it.
    pub fn text(&self) -> String {
        let mut out = format!("engine     {}\n", self.engine);
        if let Some(bw) = self.copy_bytes_per_s {
            out += &format!("copy       {:.2} GB/s (read + write, copy.wgsl)\n", bw / 1e9);
        }
        out += &format!(
            "prefill    {} tokens: {:.1} tokens/s ({:.1} ms)\n",
            self.prefill_tokens,
            self.prefill_tokens_per_s,
            1e3 * self.prefill_tokens as f64 / self.prefill_tokens_per_s
        );
        let gpu = self.copy_bytes_per_s.is_some();
        out += &format!(
            "decode     context  tokens/s  ms/token  bytes/token     GB/s{}\n",
            if gpu { "  efficiency" } else { "" }
        );
        for d in &self.decode {
            out += &format!("           {:>7}  {:>8.1}  {:>8.2}", d.context, d.tokens_per_s, d.ms_per_token);
            if let (Some(b), Some(bs)) = (d.bytes_per_token, d.bytes_per_s) {
                out += &format!("  {b:>11}  {:>7.2}", bs / 1e9);
            }
            if let Some(e) = d.efficiency {
                out += &format!("  {:>9.1} %", 100.0 * e);
            }
            out += "\n";
        }
        if let (Some(n), Some(per), Some(s)) =
            (self.dispatches_per_token, self.dispatches_per_block, self.submits_per_token)
        {
            out += &format!("per token  {n} dispatches ({per} per block, the rest embedding and head), {s} submit\n");
        }
        out
    }
}
