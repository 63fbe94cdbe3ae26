//! The subcommands of `wgpt-train`, one file each, in the pipeline's order; this file holds the
//! flags and helpers several of them share.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use wgpt::config::GptConfig;
use wgpt::tasks::{self, Task};
use wgpt::weights::ModelWeights;
use wgpt_train::backend::BackendKind;
use wgpt_train::model::Precision;
use wgpt_train::model::optim::AdamWConfig;
use wgpt_train::store::checkpoint::{self, RunSpec};
use wgpt_train::train::{Batches, Objective, TrainArgs, check_run, train_loop};
use wgpt_train::with_backend;

mod bench;
mod eval;
mod export;
mod finetune;
mod import;
mod loss;
mod plot;
mod ppo;
mod prepare;
mod pretrain;
mod reward;
mod sft;

pub use bench::BenchCmd;
pub use eval::EvalCmd;
pub use export::ExportCmd;
pub use finetune::FinetuneCmd;
pub use import::ImportCmd;
pub use loss::LossCmd;
pub use plot::PlotCmd;
pub use ppo::PpoCmd;
pub use prepare::PrepareCmd;
pub use pretrain::PretrainCmd;
pub use reward::RewardCmd;
pub use sft::SftCmd;

/// Model shape: a preset and any overrides.
#[derive(Args, Clone)]
pub struct ModelFlags {
    /// A named shape (`wgpt::config::PRESETS`): nano (tests), tiny, micro, mini, small, gpt2-124m, gpt2-355m, gpt2-774m
    #[arg(long, default_value = "micro")]
    preset: String,
    #[arg(long)]
    n_layer: Option<usize>,
    #[arg(long)]
    n_embd: Option<usize>,
    #[arg(long)]
    n_head: Option<usize>,
    /// Training context; also the model's n_positions.
    #[arg(long)]
    context: Option<usize>,
    /// GPT-1 blocks: LayerNorm after each residual add, no final LayerNorm.
    #[arg(long)]
    post_ln: bool,
    /// A separate LM head instead of the tied `wte`.
    #[arg(long)]
    untied: bool,
}

impl ModelFlags {
    pub fn config(&self, vocab_size: usize, eos: u32) -> anyhow::Result<GptConfig> {
        let p = GptConfig::preset(&self.preset)
            .with_context(|| format!("unknown preset {:?} ({})", self.preset, GptConfig::preset_names()))?;
        let json = json!({
            "vocab_size": vocab_size,
            "n_positions": self.context.unwrap_or(p.n_positions),
            "n_embd": self.n_embd.unwrap_or(p.n_embd),
            "n_layer": self.n_layer.unwrap_or(p.n_layer),
            "n_head": self.n_head.unwrap_or(p.n_head),
            "bos_token_id": eos,
            "eos_token_id": eos,
            "tie_word_embeddings": !self.untied,
            "layer_norm_position": if self.post_ln { "post" } else { "pre" },
        });
        // The config's own validation, reported as the flags it came from.
        GptConfig::from_json(json.to_string().as_bytes())
            .map_err(|e| anyhow::anyhow!("model flags: {}", e.to_string().trim_start_matches("config.json: ")))
    }
}

/// The training loop's flags, shared by `pretrain` and `finetune`.
#[derive(Args)]
pub struct TrainFlags {
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendKind,
    /// Rows per micro-batch (windows in pre-training, examples in fine-tuning).
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Micro-batches per optimizer step (gradient accumulation).
    #[arg(long, default_value_t = 1)]
    accum: usize,
    #[arg(long, default_value_t = 1000)]
    steps: u64,
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    #[arg(long, default_value_t = 3e-4)]
    min_lr: f64,
    #[arg(long, default_value_t = 100)]
    warmup: u64,
    #[arg(long, default_value_t = 0.1)]
    weight_decay: f64,
    #[arg(long, default_value_t = 0.95)]
    beta2: f64,
    /// Global gradient-norm clip (0: off).
    #[arg(long, default_value_t = 1.0)]
    grad_clip: f64,
    #[arg(long, default_value_t = 100)]
    eval_every: u64,
    /// Validation batches per evaluation.
    #[arg(long, default_value_t = 8)]
    eval_batches: usize,
    #[arg(long, default_value_t = 250)]
    ckpt_every: u64,
    /// Checkpoints kept (the newest).
    #[arg(long, default_value_t = 3)]
    keep: usize,
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Continue from the newest checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// The matmuls' dtype: bf16 rounds their operands to bf16 (tensor cores on a GPU); the
    /// parameters, optimizer, norms, softmax and loss stay f32.
    #[arg(long, value_enum, default_value = "f32")]
    precision: Precision,
    /// Data-parallel training on the backend's first N devices (CUDA GPUs 0..N, wgpu discrete
    /// GPUs): each takes accum/N of a step's micro-batches, the update is the one-device update.
    #[arg(long, default_value_t = 1)]
    pub devices: usize,
}

impl TrainFlags {
    pub fn run_spec(&self, context: usize, train_tokens: usize, task: Option<&str>) -> RunSpec {
        RunSpec {
            seed: self.seed,
            batch: self.batch,
            accum: self.accum,
            context,
            steps: self.steps,
            lr: self.lr,
            min_lr: self.min_lr,
            warmup: self.warmup,
            adam: AdamWConfig {
                beta1: 0.9,
                beta2: self.beta2,
                eps: 1e-8,
                weight_decay: self.weight_decay,
                grad_clip: self.grad_clip,
            },
            train_tokens,
            task: task.map(str::to_string),
        }
    }

    pub fn train_args(&self, out: PathBuf, config: GptConfig, run: RunSpec, init_from: Option<PathBuf>) -> TrainArgs {
        TrainArgs {
            out,
            config,
            run,
            eval_every: self.eval_every.max(1),
            eval_batches: self.eval_batches.max(1),
            ckpt_every: self.ckpt_every.max(1),
            keep: self.keep,
            resume: self.resume,
            init_from,
            init_weights: None,
            precision: self.precision,
            devices: self.devices,
        }
    }
}

/// Refuses a model whose parameters, gradients, AdamW moments and activations cannot fit in
/// this machine's free memory (CPU backend; GPU memory is the device's to report). `batch` is the
/// rows in flight at once (all data-parallel replicas').
fn check_memory(config: &GptConfig, batch: usize, backend: BackendKind) -> anyhow::Result<()> {
    if backend != BackendKind::Cpu {
        return Ok(());
    }
    let params = config.parameter_count() as f64;
    let (b, t, c, l, h, v) = (
        batch as f64,
        config.n_positions as f64,
        config.n_embd as f64,
        config.n_layer as f64,
        config.n_head as f64,
        config.vocab_size as f64,
    );
    // Activations kept for backward, per layer ≈ 34·c + 5·h·t floats per position (Korthikanti
    // et al.), plus the logits and their softmax.
    let activations = b * t * (l * (34.0 * c + 5.0 * h * t) + 3.0 * v);
    let need = 4.0 * (4.0 * params + activations);
    let Some(avail) = mem_available() else { return Ok(()) };
    if need > avail {
        bail!(
            "this model needs about {:.1} GiB to train at batch {batch} (parameters, gradients, AdamW state, activations) \
             but {:.1} GiB is free; lower --batch or the model size",
            need / (1u64 << 30) as f64,
            avail / (1u64 << 30) as f64
        );
    }
    Ok(())
}

fn mem_available() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// A checkpoint folder itself, or the newest one of a run folder.
pub fn resolve_checkpoint(path: &Path) -> anyhow::Result<PathBuf> {
    if path.join("model.safetensors").is_file() {
        return Ok(path.to_path_buf());
    }
    match checkpoint::list(path)?.pop() {
        Some((_, dir)) => Ok(dir),
        None => bail!("{}: neither a checkpoint nor a run folder with checkpoints", path.display()),
    }
}

fn parse_task(name: &str) -> anyhow::Result<Task> {
    Task::from_name(name).ok_or_else(|| {
        let all: Vec<&str> = tasks::ALL.iter().map(|t| t.name()).collect();
        anyhow::anyhow!("unknown task {name:?} (one of: {})", all.join(", "))
    })
}

/// The model a stage starts from: its checkpoint folder, shape, weights and tokenizer; `chat`
/// requires the tokenizer's chat tokens.
fn starting_point(path: &Path, chat: bool) -> anyhow::Result<(PathBuf, GptConfig, ModelWeights, wgpt::Tokenizer)> {
    let dir = resolve_checkpoint(path)?;
    let (config, weights) = checkpoint::load_weights(&dir)?;
    let tok = wgpt::bundle::load_tokenizer(&dir)?;
    if chat && !matches!(wgpt::chat::template(&tok), wgpt::chat::Template::ChatMl { .. }) {
        bail!("{}: its tokenizer has no <|im_start|>/<|im_end|> tokens to frame the conversations", dir.display());
    }
    Ok((dir, config, weights, tok))
}

/// Runs the training loop on the chosen backend and prints its summary.
fn train<O: Objective>(
    backend: BackendKind,
    args: &TrainArgs,
    objective: &O,
    batches: &dyn Batches,
    tokenizer_json: &str,
) -> anyhow::Result<serde_json::Value> {
    check_run(args)?;
    let json = tokenizer_json.as_bytes();
    let summary = with_backend!(backend, args.devices, |B, devices| train_loop::<B, O>(
        args, objective, batches, json, &devices
    ))?;
    Ok(summary.to_json())
}

/// The head row that holds the reward model's scalar head: `<|pad|>`'s, which is never a target.
pub fn score_row(tok: &wgpt::Tokenizer) -> anyhow::Result<usize> {
    tok.token_to_id("<|pad|>")
        .map(|i| i as usize)
        .ok_or_else(|| anyhow::anyhow!("the tokenizer has no <|pad|> token to hold the reward head"))
}
