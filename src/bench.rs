//! The benchmark behind `wgpt bench` and the browser's bench page: prefill and decode speed, and
//! for the GPU the figures that say how close decode is to the device's limit.

use std::sync::Arc;

use serde::Serialize;

use crate::config::GptConfig;
use crate::cpu::CpuSession;
use crate::generate::GenerateError;
use crate::gpu::{CopyBench, Gpu, GpuModel, GpuOptions};
use crate::model::{Draw, LanguageModel};
use crate::sampler::{Sampler, SamplingParams};
use crate::weights::ModelWeights;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub prompt_tokens: usize,
    pub decode_tokens: usize,
    /// Context lengths to decode at; empty: 16, a quarter, a half and the end of the context.
    pub contexts: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decode {
    pub context: usize,
    pub tokens_per_s: f64,
    pub ms_per_token: f64,
    /// Weights plus KV cache read per token (GPU only).
    pub bytes_per_token: Option<u64>,
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
}

/// Runs `ids`; returns the greedy next token (picked on the device where the engine can).
async fn step(model: &mut dyn LanguageModel, ids: &[u32]) -> Result<u32, GenerateError> {
    let (mut sampler, params) = (Sampler::new(), SamplingParams::greedy());
    Ok(model.next_token(ids, Draw { sampler: &mut sampler, history: &[], params: &params, step: 0 }).await?)
}

/// Benchmarks `weights` on the CPU reference (`gpu` = None) or the WGSL engine. `now` returns
/// seconds from any fixed origin (`Instant` natively, `performance.now()` on the web).
pub async fn run(
    config: &GptConfig,
    weights: ModelWeights,
    gpu: Option<(Arc<Gpu>, GpuOptions)>,
    opts: &BenchOptions,
    now: impl Fn() -> f64,
) -> Result<BenchReport, GenerateError> {
    let (v, t, c, l) = (config.vocab_size, config.n_positions, config.n_embd, config.n_layer);
    let parameters = config.parameter_count();
    let ids: Vec<u32> = (0..t as u32).map(|i| (i * 7919 + 13) % v as u32).collect();
    let mut copy_bw = None;
    let mut weight_bytes = 0u64;
    let mut engine: Box<dyn LanguageModel> = match gpu {
        None => Box::new(CpuSession::new(config.clone(), Arc::new(weights))),
        Some((gpu, options)) => {
            let model = GpuModel::on(gpu.clone(), config, &weights, options)?;
            drop(weights);
            let copy = CopyBench::new(&gpu, 256 << 20);
            copy.run(&gpu, 2).await?; // warm-up
            let reps = 10;
            let start = now();
            copy.run(&gpu, reps).await?;
            copy_bw = Some(copy.bytes_moved as f64 * reps as f64 / (now() - start));
            weight_bytes = model.weight_bytes();
            Box::new(model)
        }
    };

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
        // Weights read once per token (wpe: one row), plus the KV cache read by attention.
        let bytes = copy_bw.map(|_| {
            let wpe = (t * c * 4) as u64;
            weight_bytes - wpe + (c * 4) as u64 + 2 * (l * (ctx + decode / 2) * c * 4) as u64
        });
        rows.push(Decode {
            context: ctx,
            tokens_per_s: 1.0 / secs,
            ms_per_token: secs * 1e3,
            bytes_per_token: bytes,
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
    })
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
        out +=
            &format!("decode     context  tokens/s  ms/token{}\n", if gpu { "  bytes/token  efficiency" } else { "" });
        for d in &self.decode {
            out += &format!("           {:>7}  {:>8.1}  {:>8.2}", d.context, d.tokens_per_s, d.ms_per_token);
            if let (Some(b), Some(e)) = (d.bytes_per_token, d.efficiency) {
                out += &format!("  {b:>11}  {:>9.1} %", 100.0 * e);
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
