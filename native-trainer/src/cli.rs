//! The subcommands' flags and what each one does with them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use burn::optim::GradientsParams;
use burn::tensor::{Int, Tensor, TensorData};
use clap::Args;
use serde_json::json;
use wgpt::config::GptConfig;
use wgpt_train::backend::BackendKind;
use wgpt_train::bundle::{StoreDtype, write_bundle};
use wgpt_train::checkpoint::{self, RunSpec};
use wgpt_train::data::Dataset;
use wgpt_train::fused::TrainBackend;
use wgpt_train::init::gpt2_init;
use wgpt_train::model::{Gpt, Precision};
use wgpt_train::optim::{AdamW, AdamWConfig};
use wgpt_train::prepare::{PrepareArgs, prepare};
use wgpt_train::rng::Rng;
use wgpt_train::train::{Objective, TrainArgs, pretrain};
use wgpt_train::with_backend;

/// The corpus that ships in the repository (see its SOURCES.md).
pub fn default_corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/default")
}

#[derive(Args)]
pub struct PrepareCmd {
    /// Folders of .txt files (or single files); default: the corpus shipped in the repo.
    #[arg(long)]
    corpus: Vec<PathBuf>,
    /// Where tokenizer.json, train.bin, val.bin and meta.json go.
    #[arg(long)]
    out: PathBuf,
    /// BPE vocabulary size (special tokens included).
    #[arg(long, default_value_t = 4096)]
    vocab_size: usize,
    /// Use this tokenizer (a tokenizer.json or a bundle folder) instead of training one, e.g.
    /// to fine-tune imported GPT-2 weights.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// The fraction of the data (in bytes) that is task-suite episodes, e.g. 0.3: the bursty
    /// documents in-context learning is learned from.
    #[arg(long, default_value_t = 0.0)]
    episodes: f64,
    /// Write the natural text's training split this many times (1–100) into train.bin; the episodes
    /// fill their fraction of the larger total, so a run that reads the natural text N times
    /// meets N times as many distinct episodes.
    #[arg(long, default_value_t = 1)]
    natural_passes: usize,
}

impl PrepareCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let corpus = if self.corpus.is_empty() { vec![default_corpus()] } else { self.corpus };
        let tokenizer_json = match &self.tokenizer {
            None => None,
            Some(p) if p.is_dir() => Some(wgpt::bundle::load_tokenizer(p)?.to_json()?),
            Some(p) => Some(std::fs::read_to_string(p).with_context(|| p.display().to_string())?),
        };
        let t = Instant::now();
        let meta = prepare(&PrepareArgs {
            corpus,
            out: self.out.clone(),
            vocab_size: self.vocab_size,
            tokenizer_json,
            episodes: self.episodes,
            natural_passes: self.natural_passes,
        })?;
        eprintln!(
            "prepared {} in {:.1} s: vocab {}, {} train + {} val tokens from {} sources",
            self.out.display(),
            t.elapsed().as_secs_f64(),
            meta.vocab_size,
            meta.train_tokens,
            meta.val_tokens,
            meta.sources.len()
        );
        Ok(())
    }
}

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
            objective: Objective::NextToken,
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

#[derive(Args)]
pub struct PretrainCmd {
    /// A folder written by `prepare`.
    #[arg(long)]
    data: PathBuf,
    /// The run folder: checkpoints, metrics.jsonl.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    model: ModelFlags,
    #[command(flatten)]
    train: TrainFlags,
    /// Start from these weights (a bundle or checkpoint folder; see `import`).
    #[arg(long)]
    init_from: Option<PathBuf>,
}

impl PretrainCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let data = Dataset::open(&self.data)?;
        let tok = wgpt::bundle::load_tokenizer(&self.data)?;
        let eos = tok.token_to_id(wgpt_train::prepare::EOT).unwrap_or(0);
        let config = self.model.config(data.meta.vocab_size, eos)?;
        check_memory(&config, self.train.batch * self.train.devices.max(1), self.train.backend)?;
        let run = self.train.run_spec(config.n_positions, data.meta.train_tokens, None);
        let args = self.train.train_args(self.out, config, run, self.init_from);
        let params = args.config.parameter_count();
        eprintln!("model: {params} parameters; backend {:?}", self.train.backend);
        let summary =
            with_backend!(self.train.backend, args.devices, |B, devices| pretrain::<B>(&self.data, &args, &devices))?;
        println!("{}", summary.to_json());
        Ok(())
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

#[derive(Args)]
pub struct ExportCmd {
    /// A checkpoint folder, or a run folder (its newest checkpoint).
    #[arg(long)]
    checkpoint: PathBuf,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "f16")]
    dtype: StoreDtype,
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

impl ExportCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let dir = resolve_checkpoint(&self.checkpoint)?;
        let (config, weights) = checkpoint::load_weights(&dir)?;
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = std::fs::read(&tok_path).with_context(|| tok_path.display().to_string())?;
        write_bundle(&self.out, &config, &weights, &tokenizer, self.dtype)?;
        // Prove the bundle loads as `wgpt` will load it.
        wgpt::bundle::Bundle::load(&self.out)
            .with_context(|| format!("{}: the exported bundle does not load", self.out.display()))?;
        eprintln!("exported {} → {} ({:?})", dir.display(), self.out.display(), self.dtype);
        Ok(())
    }
}

#[derive(Args)]
pub struct ImportCmd {
    /// A bundle folder: config.json + model.safetensors (HF GPT-2 names) + a tokenizer.
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    out: PathBuf,
}

impl ImportCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let bundle = wgpt::bundle::Bundle::load(&self.model)?;
        let tokenizer = bundle.tokenizer.to_json()?;
        write_bundle(&self.out, &bundle.config, &bundle.weights, tokenizer.as_bytes(), StoreDtype::F32)?;
        eprintln!(
            "imported {} → {}: {} parameters; fine-tune with `prepare --tokenizer {}` then `pretrain --init-from {}` and the same shape flags",
            self.model.display(),
            self.out.display(),
            bundle.config.parameter_count(),
            self.out.display(),
            self.out.display()
        );
        Ok(())
    }
}

#[derive(Args)]
pub struct LossCmd {
    #[arg(long)]
    model: PathBuf,
    /// Comma-separated token ids.
    #[arg(long, conflicts_with = "text")]
    ids: Option<String>,
    #[arg(long)]
    text: Option<String>,
    /// Print `{"loss": x, "tokens": n}`.
    #[arg(long)]
    json: bool,
}

impl LossCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let bundle = wgpt::bundle::Bundle::load(&self.model)?;
        let ids: Vec<u32> = match (&self.ids, &self.text) {
            (Some(s), _) => s
                .split(',')
                .map(|p| p.trim().parse::<u32>().map_err(|_| anyhow::anyhow!("--ids: {p:?} is not a token id")))
                .collect::<Result<_, _>>()?,
            (None, Some(t)) => bundle.tokenizer.encode(t)?,
            (None, None) => bail!("give --ids or --text"),
        };
        let c = &bundle.config;
        if ids.len() < 2 {
            bail!("the loss needs at least 2 tokens (got {})", ids.len());
        }
        if ids.len() > c.n_positions + 1 {
            bail!("{} tokens is more than the context {} + 1", ids.len(), c.n_positions);
        }
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= c.vocab_size) {
            bail!("token id {bad} is not below vocab_size {}", c.vocab_size);
        }
        let device = Default::default();
        let model = Gpt::<wgpt_train::backend::Cpu>::from_weights(c, &bundle.weights, &device);
        let n = ids.len() - 1;
        let x: Vec<i32> = ids[..n].iter().map(|&i| i as i32).collect();
        let y: Vec<i32> = ids[1..].iter().map(|&i| i as i32).collect();
        let x = Tensor::<wgpt_train::backend::Cpu, 2, Int>::from_data(TensorData::new(x, [1, n]), &device);
        let y = Tensor::<wgpt_train::backend::Cpu, 2, Int>::from_data(TensorData::new(y, [1, n]), &device);
        let loss: f32 = model.loss(x, y, None).into_scalar();
        if self.json {
            println!("{}", json!({"loss": loss, "tokens": ids.len()}));
        } else {
            println!("loss {loss:.6} over {n} predictions");
        }
        Ok(())
    }
}

#[derive(Args)]
pub struct BenchCmd {
    #[command(flatten)]
    model: ModelFlags,
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendKind,
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[arg(long, default_value_t = 4096)]
    vocab_size: usize,
    /// Timed steps (after 2 warm-up steps).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// The device's peak TFLOP/s for the MFU figure (e.g. 989 for an H200 in bf16 dense).
    #[arg(long)]
    peak_tflops: Option<f64>,
    /// The matmuls' dtype (see `pretrain --precision`).
    #[arg(long, value_enum, default_value = "f32")]
    precision: Precision,
}

impl BenchCmd {
    pub fn run(self) -> anyhow::Result<()> {
        if self.batch == 0 || self.steps == 0 {
            bail!("--batch and --steps must be at least 1");
        }
        let config = self.model.config(self.vocab_size, 0)?;
        let report = with_backend!(self.backend, |B, device| bench::<B>(
            &config,
            self.batch,
            self.steps,
            self.precision,
            &device
        ))?;
        let params = config.parameter_count() as f64;
        let (l, h, q, t) =
            (config.n_layer as f64, config.n_head as f64, config.head_dim() as f64, config.n_positions as f64);
        let flops_per_token = 6.0 * params + 12.0 * l * h * q * t;
        let achieved = flops_per_token * report / 1e12;
        println!(
            "{}",
            json!({
                "preset": self.model.preset, "backend": format!("{:?}", self.backend).to_lowercase(),
                "precision": format!("{:?}", self.precision).to_lowercase(),
                "parameters": params, "batch": self.batch, "context": config.n_positions,
                "tokens_per_s": report, "flops_per_token": flops_per_token, "tflops": achieved,
                "mfu": self.peak_tflops.map(|p| achieved / p),
            })
        );
        Ok(())
    }
}

/// Tokens per second of full training steps (forward, backward, AdamW) on random tokens.
fn bench<B: TrainBackend>(
    config: &GptConfig,
    batch: usize,
    steps: usize,
    precision: Precision,
    device: &B::Device,
) -> anyhow::Result<f64> {
    let mut model = Gpt::<B>::from_weights(config, &gpt2_init(config, 1), device).with_precision(precision);
    let mut opt = AdamW::<B::InnerBackend>::new(AdamWConfig::default());
    let mut rng = Rng::new(7);
    let t = config.n_positions;
    let mut t0 = Instant::now();
    for step in 0..steps + 2 {
        if step == 2 {
            t0 = Instant::now();
        }
        let ids: Vec<i32> = (0..batch * (t + 1)).map(|_| (rng.next_u64() % config.vocab_size as u64) as i32).collect();
        let all = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch, t + 1]), device);
        let x = all.clone().slice([0..batch, 0..t]);
        let y = all.slice([0..batch, 1..t + 1]);
        let loss = model.loss(x, y, None);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = opt.step(1e-4, model, grads).0;
    }
    Ok((steps * batch * t) as f64 / t0.elapsed().as_secs_f64())
}

#[derive(Args)]
pub struct PlotCmd {
    /// A run folder (its metrics.jsonl) or a metrics file.
    #[arg(long)]
    run: PathBuf,
    /// The PNG to write; default: loss.png in the run folder.
    #[arg(long)]
    out: Option<PathBuf>,
}

impl PlotCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let metrics = if self.run.is_dir() { self.run.join("metrics.jsonl") } else { self.run.clone() };
        let out = self.out.unwrap_or_else(|| metrics.with_file_name("loss.png"));
        let curves = wgpt_train::plot::read_metrics(&metrics)?;
        wgpt_train::plot::draw(&curves, &out, &format!("{} — loss", self.run.display()))?;
        eprintln!("wrote {}", out.display());
        Ok(())
    }
}
