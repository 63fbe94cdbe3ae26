//! `wgpt bench`: the library's benchmark ([`wgpt::bench`]) on a model folder or a named shape.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use wgpt::LoadedModel;
use wgpt::bench::BenchOptions;
use wgpt::gpu::Gpu;
use wgpt::loaded::Architecture;

use crate::cli::{Backend, EngineArgs};

#[derive(Args)]
#[group(id = "source", required = true, multiple = false, args = ["model", "shape"])]
pub struct BenchArgs {
    /// A model bundle directory.
    #[arg(long)]
    model: Option<PathBuf>,
    /// A named shape with random weights: GPT-2's (tiny, gpt2-124m, gpt2-355m, gpt2-774m, …) or a
    /// real Llama-family model's (smollm2-135m, qwen2.5-0.5b, qwen3-0.6b, llama-3.2-1b).
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

pub fn run(a: BenchArgs) -> Result<()> {
    let gpu_options = a.engine.gpu_options()?;
    let contexts = match &a.contexts {
        Some(list) => list
            .split(',')
            .map(|s| s.trim().parse::<usize>().with_context(|| format!("--contexts: {s:?} is not a number")))
            .collect::<Result<_>>()?,
        None => vec![],
    };
    let (arch, name) = match (&a.model, &a.shape) {
        (Some(dir), _) => (crate::cli::open(dir)?.arch, dir.display().to_string()),
        (None, Some(shape)) => {
            let arch = Architecture::random(shape, 0)
                .with_context(|| format!("unknown shape {shape:?} ({})", Architecture::shape_names()))?;
            (arch, format!("{shape} (random weights)"))
        }
        (None, None) => bail!("give --model or --shape"),
    };
    let arch = a.engine.arch_for(arch)?;
    let s = LoadedModel { arch: arch.clone(), text: wgpt::loaded::TextFormat::none() }.summary();
    println!(
        "model      {name}: {}, {} layers, hidden {}, {} heads ({} key/value), context {}, vocab {}, {:.1} M parameters",
        s.arch,
        s.n_layer,
        s.n_embd,
        s.n_head,
        s.n_kv_head,
        s.model_ctx,
        s.vocab_size,
        s.parameters as f64 / 1e6
    );
    let gpu = match a.engine.backend {
        Backend::Cpu => None,
        Backend::Gpu => Some((Arc::new(pollster::block_on(Gpu::new())?), gpu_options)),
    };
    let max_context = a.engine.context.unwrap_or(wgpt::llama::DEFAULT_MAX_CONTEXT);
    let opts = BenchOptions {
        prompt_tokens: a.prompt_tokens,
        decode_tokens: a.decode_tokens,
        contexts,
        max_context,
        activations: a.engine.activations,
    };
    let origin = Instant::now();
    let report = pollster::block_on(wgpt::bench::run(arch, gpu, &opts, || origin.elapsed().as_secs_f64()))?;
    print!("{}", report.text());
    Ok(())
}
