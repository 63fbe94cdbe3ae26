//! `wgpt bench`: prefill and decode speed of a bundle or a named shape (random weights), with
//! the figures that say how close decode is to the device's limit.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use wgpt::gpu::{CopyBench, GpuModel};
use wgpt::weights::ModelWeights;
use wgpt::{ForwardOptions, GptConfig};

use crate::cli::{Backend, EngineArgs};

#[derive(Args)]
#[group(id = "source", required = true, multiple = false, args = ["model", "shape"])]
pub struct BenchArgs {
    /// A model bundle directory.
    #[arg(long)]
    model: Option<PathBuf>,
    /// A named shape with random weights: tiny, gpt2-124m, gpt2-355m, gpt2-774m.
    #[arg(long)]
    shape: Option<String>,
    #[command(flatten)]
    engine: EngineArgs,
    /// Prompt length for the prefill measurement.
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    /// Tokens decoded at each context length.
    #[arg(long, default_value_t = 16)]
    decode_tokens: usize,
    /// Context lengths to decode at (comma-separated); default: 16, a quarter, a half and the
    /// end of the context.
    #[arg(long)]
    contexts: Option<String>,
}

enum Engine {
    Cpu(Box<wgpt::CpuSession>),
    Gpu(Box<GpuModel>),
}

impl Engine {
    fn reset(&mut self) {
        match self {
            Engine::Cpu(s) => s.reset(),
            Engine::Gpu(g) => g.reset(),
        }
    }
    /// Runs `ids`; returns the greedy next token (on the GPU: picked on the device).
    fn step(&mut self, ids: &[u32]) -> Result<u32> {
        Ok(match self {
            Engine::Cpu(s) => {
                let l = s.forward(ids, ForwardOptions::default())?.last_logits();
                l.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i as u32)
            }
            Engine::Gpu(g) => pollster::block_on(g.next_greedy(ids))?,
        })
    }
}

pub fn run(a: BenchArgs) -> Result<()> {
    a.engine.gpu_options()?;
    let (config, weights, name) = match (&a.model, &a.shape) {
        (Some(dir), _) => {
            let b = crate::cli::load(dir)?;
            (b.config.clone(), (*b.weights).clone(), dir.display().to_string())
        }
        (None, Some(shape)) => {
            let config = GptConfig::preset(shape)
                .with_context(|| format!("unknown shape {shape:?} (tiny, gpt2-124m, gpt2-355m, gpt2-774m)"))?;
            let weights = ModelWeights::random(&config, 0);
            (config, weights, format!("{shape} (random weights)"))
        }
        (None, None) => bail!("give --model or --shape"),
    };
    let (v, t, c, l) = (config.vocab_size, config.n_positions, config.n_embd, config.n_layer);
    println!(
        "model      {name}: {l} layers, n_embd {c}, context {t}, vocab {v}, {:.1} M parameters",
        weights.parameter_count() as f64 / 1e6
    );
    let ids: Vec<u32> = (0..t as u32).map(|i| (i * 7919 + 13) % v as u32).collect();
    let mut bandwidth = None;
    let mut weight_bytes = 0u64;
    let mut engine = match a.engine.backend {
        Backend::Cpu => {
            println!("backend    cpu reference (f32)");
            Engine::Cpu(Box::new(wgpt::CpuSession::new(config.clone(), std::sync::Arc::new(weights))))
        }
        Backend::Gpu => {
            let model = pollster::block_on(GpuModel::new(&config, &weights, a.engine.gpu_options()?))?;
            drop(weights);
            let gpu = model.gpu().clone();
            println!(
                "backend    gpu: {} ({:?}, {:?}), weights {:?}, kernels {:?}",
                gpu.info.name,
                gpu.info.device_type,
                gpu.info.backend,
                model.format(),
                model.variant()
            );
            let copy = CopyBench::new(&gpu, 256 << 20);
            pollster::block_on(copy.run(&gpu, 2))?; // warm-up
            let reps = 10;
            let start = Instant::now();
            pollster::block_on(copy.run(&gpu, reps))?;
            let bw = copy.bytes_moved as f64 * reps as f64 / start.elapsed().as_secs_f64();
            println!(
                "copy       {:.2} GB/s (read + write, {} MiB buffers, copy.wgsl)",
                bw / 1e9,
                (copy.bytes_moved / 2) >> 20
            );
            bandwidth = Some(bw);
            weight_bytes = model.weight_bytes();
            Engine::Gpu(Box::new(model))
        }
    };

    // Prefill: best of three.
    let p = a.prompt_tokens.clamp(1, t);
    let mut best = f64::MAX;
    for _ in 0..3 {
        engine.reset();
        let start = Instant::now();
        engine.step(&ids[..p])?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!("prefill    {p} tokens: {:.1} tokens/s ({:.1} ms)", p as f64 / best, best * 1e3);

    let decode = a.decode_tokens.max(1);
    let contexts: Vec<usize> = match &a.contexts {
        Some(list) => list
            .split(',')
            .map(|s| s.trim().parse::<usize>().with_context(|| format!("--contexts: {s:?} is not a number")))
            .collect::<Result<_>>()?,
        None => vec![16, t / 4, t / 2, t.saturating_sub(decode)],
    };
    let mut contexts: Vec<usize> = contexts.into_iter().map(|x| x.clamp(1, t.saturating_sub(decode).max(1))).collect();
    contexts.sort_unstable();
    contexts.dedup();
    println!(
        "decode     context  tokens/s  ms/token{}",
        if bandwidth.is_some() { "  bytes/token  efficiency" } else { "" }
    );
    for ctx in contexts {
        if ctx + decode > t {
            continue;
        }
        engine.reset();
        let mut next = engine.step(&ids[..ctx])?;
        let start = Instant::now();
        for _ in 0..decode {
            next = engine.step(&[next])?;
        }
        let secs = start.elapsed().as_secs_f64() / decode as f64;
        let mut line = format!("           {ctx:>7}  {:>8.1}  {:>8.2}", 1.0 / secs, secs * 1e3);
        if let Some(bw) = bandwidth {
            // Weights read once per token (wpe: one row), plus the KV cache read by attention.
            let wpe = (t * c * 4) as u64;
            let kv = 2 * (l * (ctx + decode / 2) * c * 4) as u64;
            let bytes = weight_bytes - wpe + (c * 4) as u64 + kv;
            line += &format!("  {:>11}  {:>9.1} %", bytes, 100.0 * bytes as f64 / secs / bw);
        }
        println!("{line}");
    }
    if let Engine::Gpu(g) = &engine {
        let s = g.last_step();
        println!(
            "per token  {} dispatches ({} per block, {} for embedding and head), {} submit",
            s.dispatches,
            s.per_block,
            s.dispatches - s.per_block * l,
            s.submits
        );
    }
    Ok(())
}
