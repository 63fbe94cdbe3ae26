//! `wgpt bench`: the library's benchmark ([`wgpt::bench`]) on a bundle or a named shape.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use wgpt::GptConfig;
use wgpt::bench::BenchOptions;
use wgpt::gpu::Gpu;
use wgpt::weights::ModelWeights;

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

pub fn run(a: BenchArgs) -> Result<()> {
    let gpu_options = a.engine.gpu_options()?;
    let contexts = match &a.contexts {
        Some(list) => list
            .split(',')
            .map(|s| s.trim().parse::<usize>().with_context(|| format!("--contexts: {s:?} is not a number")))
            .collect::<Result<_>>()?,
        None => vec![],
    };
    let (config, weights, name) = match (&a.model, &a.shape) {
        (Some(dir), _) => {
            let b = crate::cli::load(dir)?;
            (b.config.clone(), (*b.weights).clone(), dir.display().to_string())
        }
        (None, Some(shape)) => {
            let config = GptConfig::preset(shape)
                .with_context(|| format!("unknown shape {shape:?} ({})", GptConfig::preset_names()))?;
            let weights = ModelWeights::random(&config, 0);
            (config, weights, format!("{shape} (random weights)"))
        }
        (None, None) => bail!("give --model or --shape"),
    };
    println!(
        "model      {name}: {} layers, n_embd {}, context {}, vocab {}, {:.1} M parameters",
        config.n_layer,
        config.n_embd,
        config.n_positions,
        config.vocab_size,
        config.parameter_count() as f64 / 1e6
    );
    let gpu = match a.engine.backend {
        Backend::Cpu => None,
        Backend::Gpu => Some((Arc::new(pollster::block_on(Gpu::new())?), gpu_options)),
    };
    let opts = BenchOptions { prompt_tokens: a.prompt_tokens, decode_tokens: a.decode_tokens, contexts };
    let origin = Instant::now();
    let report = pollster::block_on(wgpt::bench::run(&config, weights, gpu, &opts, || origin.elapsed().as_secs_f64()))?;
    print!("{}", report.text());
    Ok(())
}
