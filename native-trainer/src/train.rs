//! The training loop, shared by the stages that learn by gradient descent on batches: pre-training,
//! fine-tuning, SFT (next-token [`NextToken`]) and the reward model (its ranking objective).
//!
//! Per step: `accum` micro-batches of `batch` windows, their gradients summed (each loss scaled
//! by 1/accum), then one AdamW update (see `optim`) at the scheduled learning rate: linear warmup
//! to `lr`, cosine decay to `min_lr` at `steps`. Validation loss every `eval_every` steps on the
//! same held-out windows; a checkpoint every `ckpt_every` steps and at the end. `--resume`
//! continues from the newest checkpoint on the same curve: the model, the AdamW moments and the
//! step are restored, and the data order is a function of (seed, step).
//!
//! Data parallel (`--devices N`, burn's multi-device scheme with the optimizer on the main
//! device): the step's `accum` micro-batches are shared out, micro-batch `m` to device `m mod N`.
//! Each device runs forward and backward on its own replica of the model (`Module::fork`) in its
//! own thread; the gradients come back to device 0 (`GradientsParams::to_device`) and are summed
//! there in micro-batch order, so the update is the one-device update: the same batch, the same
//! sum, the same curve (bit-exact on the CPU backend), and a run may resume on another device count.
//!
//! Where batches come from is a [`Batches`] (windows of the shards in `stages::pretrain`, a task's
//! examples in `stages::finetune`, …), what is minimised an [`Objective`]. A batch may weight its
//! targets (the answer-only loss).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::bail;
use burn::module::{AutodiffModule, Module};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use wgpt::config::GptConfig;
use wgpt::weights::ModelWeights;

use crate::data::Batch;
use crate::model::fused::{FusedOps, TrainBackend};
use crate::model::init::gpt2_init;
use crate::model::optim::AdamW;
use crate::model::{Gpt, Precision};
use crate::store::checkpoint::{self, RunSpec, TrainState};

/// Where a training loop's batches come from; both are pure functions of their arguments.
pub trait Batches {
    fn train(&self, step: u64, micro: u64) -> anyhow::Result<Batch>;
    /// The fixed validation batches, at most `max_batches`.
    fn val(&self, max_batches: usize) -> anyhow::Result<Vec<Batch>>;
}

/// The fixed held-out batches of a generated source: item seeds `0..n`, cut into batches of
/// `rows`, at most `max_batches` of them, each made by `make`.
pub fn held_out_batches(
    n: usize,
    rows: usize,
    max_batches: usize,
    make: impl Fn(&[u64]) -> anyhow::Result<Batch>,
) -> anyhow::Result<Vec<Batch>> {
    let n = n.min(max_batches.saturating_mul(rows)) as u64;
    (0..n).collect::<Vec<_>>().chunks(rows.max(1)).map(make).collect()
}

/// What the loop minimises: a stage plugs one in (pre-training, fine-tuning and SFT use
/// [`NextToken`]; the reward model its ranking loss, `stages::reward::Preference`).
pub trait Objective: Sync {
    /// A batch's loss (a mean; the loop scales it by 1/accum).
    fn loss<B: FusedOps>(&self, model: &Gpt<B>, batch: &Batch, device: &B::Device) -> Tensor<B, 1>;
    /// The validation loss on the held-out batches; an objective may add its own figures to the
    /// metrics line.
    fn validate<B: FusedOps>(&self, model: &Gpt<B>, val: &[Batch], device: &B::Device, line: &mut Value) -> f64;
}

/// Cross-entropy of the next token, weighted by the batch's weights if any.
pub struct NextToken;

impl Objective for NextToken {
    fn loss<B: FusedOps>(&self, model: &Gpt<B>, batch: &Batch, device: &B::Device) -> Tensor<B, 1> {
        let (x, y, w) = batch_tensors::<B>(batch, device);
        model.loss(x, y, w)
    }

    fn validate<B: FusedOps>(&self, model: &Gpt<B>, val: &[Batch], device: &B::Device, _: &mut Value) -> f64 {
        evaluate(model, val, device)
    }
}

pub struct TrainArgs {
    pub out: PathBuf,
    pub config: GptConfig,
    pub run: RunSpec,
    pub eval_every: u64,
    pub eval_batches: usize,
    pub ckpt_every: u64,
    pub keep: usize,
    pub resume: bool,
    /// Start from these weights (a bundle or checkpoint folder) instead of a fresh init.
    pub init_from: Option<PathBuf>,
    /// Start from these weights (already in this run's shape), before `init_from`.
    pub init_weights: Option<ModelWeights>,
    /// The matmuls' dtype (the parameters and optimizer stay f32 either way).
    pub precision: Precision,
    /// Data-parallel devices; each step's `accum` micro-batches are shared among them.
    pub devices: usize,
}

pub struct Summary {
    pub step: u64,
    pub first_loss: Option<f64>,
    pub last_loss: Option<f64>,
    pub val_loss: Option<f64>,
    pub tokens_per_s: f64,
    pub checkpoint: PathBuf,
}

impl Summary {
    /// The line a stage prints when it ends.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "step": self.step, "first_loss": self.first_loss, "last_loss": self.last_loss,
            "val_loss": self.val_loss, "tokens_per_s": self.tokens_per_s,
            "checkpoint": self.checkpoint.display().to_string(),
        })
    }
}

/// Learning rate at 0-based `step`.
pub fn lr_at(run: &RunSpec, step: u64) -> f64 {
    if step < run.warmup {
        return run.lr * (step + 1) as f64 / run.warmup as f64;
    }
    let span = run.steps.saturating_sub(run.warmup).max(1) as f64;
    let progress = ((step - run.warmup) as f64 / span).min(1.0);
    run.min_lr + 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()) * (run.lr - run.min_lr)
}

pub type BatchTensors<B> = (Tensor<B, 2, Int>, Tensor<B, 2, Int>, Option<Tensor<B, 2>>);

/// Inputs, targets and the targets' weights (if the batch has any) as tensors.
pub fn batch_tensors<B: Backend>(batch: &Batch, device: &B::Device) -> BatchTensors<B> {
    let shape = [batch.rows, batch.context];
    (
        Tensor::from_data(TensorData::new(batch.inputs.clone(), shape), device),
        Tensor::from_data(TensorData::new(batch.targets.clone(), shape), device),
        batch.weights.as_ref().map(|w| Tensor::from_data(TensorData::new(w.clone(), shape), device)),
    )
}

/// Mean loss over the validation batches.
pub fn evaluate<B: FusedOps>(model: &Gpt<B>, batches: &[Batch], device: &B::Device) -> f64 {
    let (mut sum, mut rows) = (0.0, 0usize);
    for b in batches {
        let (x, y, w) = batch_tensors::<B>(b, device);
        sum += model.loss(x, y, w).into_scalar().elem::<f64>() * b.rows as f64;
        rows += b.rows;
    }
    sum / rows.max(1) as f64
}

pub(crate) fn check_spec(
    saved: &TrainState,
    run: &RunSpec,
    config: &GptConfig,
    ckpt_config: &GptConfig,
) -> anyhow::Result<()> {
    if ckpt_config != config {
        bail!(
            "the checkpoint's model differs from this run's (checkpoint: {} layers × {} wide, {} heads, context {}, vocab {}; \
             this run: {} × {}, {} heads, context {}, vocab {}); resume with the same model flags",
            ckpt_config.n_layer,
            ckpt_config.n_embd,
            ckpt_config.n_head,
            ckpt_config.n_positions,
            ckpt_config.vocab_size,
            config.n_layer,
            config.n_embd,
            config.n_head,
            config.n_positions,
            config.vocab_size
        );
    }
    let mut a = saved.run.clone();
    a.steps = run.steps; // extending a run is allowed
    if &a != run {
        bail!(
            "the checkpoint was trained with other settings; resume with the same flags (saved: {})",
            serde_json::to_string(&saved.run)?
        );
    }
    Ok(())
}

pub(crate) fn metrics_file(out: &Path, keep_up_to: u64) -> anyhow::Result<std::fs::File> {
    let path = out.join("metrics.jsonl");
    // Lines past the resumed step belong to the killed attempt: drop them.
    let kept: String = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= keep_up_to)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    crate::store::write_atomic(&path, kept.as_bytes())?;
    Ok(std::fs::OpenOptions::new().append(true).open(&path)?)
}

/// Settings every run needs.
pub fn check_run(args: &TrainArgs) -> anyhow::Result<()> {
    let (config, run) = (&args.config, &args.run);
    if run.context > config.n_positions {
        bail!("context {} is longer than the model's n_positions {}", run.context, config.n_positions);
    }
    if run.batch == 0 || run.accum == 0 || run.steps == 0 || run.context == 0 {
        bail!("batch, accum, steps and context must be at least 1");
    }
    if args.devices == 0 || run.accum % args.devices != 0 {
        bail!(
            "--accum {} must be a multiple of --devices {}: each device takes the same share of a step's micro-batches",
            run.accum,
            args.devices
        );
    }
    Ok(())
}

/// The loop itself: `batches` feed it, checkpoints carry `tokenizer_json`; the model lives on
/// `devices[0]`, and the other devices (if any) share the gradient work.
pub fn train_loop<AB: TrainBackend, O: Objective>(
    args: &TrainArgs,
    objective: &O,
    batches: &dyn Batches,
    tokenizer_json: &[u8],
    devices: &[AB::Device],
) -> anyhow::Result<Summary> {
    let (config, run) = (&args.config, &args.run);
    let Some(device) = devices.first() else { bail!("internal: no device to train on") };
    if devices.len() != args.devices {
        bail!("internal: {} devices for a run of {}", devices.len(), args.devices);
    }
    let (model, mut opt, start) = match checkpoint::resume_point(&[&args.out], args.resume)? {
        Some((_, dirs)) => {
            let dir = &dirs[0];
            let state = checkpoint::load_state(dir)?;
            let (ckpt_config, weights) = checkpoint::load_weights(dir)?;
            check_spec(&state, run, config, &ckpt_config)?;
            let opt = checkpoint::load_optimizer::<AB::InnerBackend>(dir, run.adam, state.step, device)?;
            eprintln!("resuming from {} (step {})", dir.display(), state.step);
            (Gpt::<AB>::from_weights(config, &weights, device), opt, state.step)
        }
        None => {
            let weights = match (&args.init_weights, &args.init_from) {
                (Some(w), _) => w.clone(),
                (None, Some(dir)) => {
                    let (c, w) = checkpoint::load_weights(dir)?;
                    if &c != config {
                        bail!(
                            "{}: its model ({} layers × {}, vocab {}) differs from this run's",
                            dir.display(),
                            c.n_layer,
                            c.n_embd,
                            c.vocab_size
                        );
                    }
                    w
                }
                (None, None) => gpt2_init(config, run.seed),
            };
            (Gpt::<AB>::from_weights(config, &weights, device), AdamW::new(run.adam), 0)
        }
    };
    let mut model = model.with_precision(args.precision);
    if start >= run.steps {
        bail!("the run is already at step {start} of {}; raise --steps to continue", run.steps);
    }
    let mut metrics = metrics_file(&args.out, start)?;
    let val = batches.val(args.eval_batches)?;
    let tokens_per_step = (run.batch * run.accum * run.context) as u64;

    let bar = if std::io::stderr().is_terminal() { ProgressBar::new(run.steps) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]")
            .expect("valid template"),
    );
    bar.set_position(start);

    let t0 = Instant::now();
    let (mut first_loss, mut last_loss, mut val_loss) = (None, None, None);
    let mut last_ckpt = PathBuf::new();
    for step in start..run.steps {
        let lr = lr_at(run, step);
        let (grads, loss_sum) = step_gradients(&model, objective, batches, step, args, devices)?;
        let (next, grad_norm) = opt.step(lr, model, grads);
        model = next;
        let loss = loss_sum / run.accum as f64;
        if !loss.is_finite() {
            bail!("the loss diverged at step {step} ({loss}); lower --lr");
        }
        first_loss.get_or_insert(loss);
        last_loss = Some(loss);
        let done = step + 1;
        let elapsed = t0.elapsed().as_secs_f64();
        let tok_s = ((done - start) * tokens_per_step) as f64 / elapsed.max(1e-9);
        let mut line = json!({"step": done, "loss": loss, "lr": lr, "grad_norm": grad_norm, "tokens": done * tokens_per_step, "tokens_per_s": tok_s});
        if done % args.eval_every == 0 || done == run.steps {
            let v = objective.validate(&model.valid(), &val, device, &mut line);
            val_loss = Some(v);
            line["val_loss"] = v.into();
            bar.println(format!("step {done}: loss {loss:.4}, val {v:.4}, {tok_s:.0} tok/s"));
            if bar.is_hidden() {
                eprintln!("step {done}/{}: loss {loss:.4}, val {v:.4}, {tok_s:.0} tok/s", run.steps);
            }
        }
        writeln!(metrics, "{line}")?;
        bar.set_message(format!("loss {loss:.4} · {tok_s:.0} tok/s"));
        bar.inc(1);
        if done % args.ckpt_every == 0 || done == run.steps {
            let state = TrainState { step: done, tokens_seen: done * tokens_per_step, run: run.clone(), val_loss };
            last_ckpt = checkpoint::write(&args.out, &model.valid(), &opt, &state, tokenizer_json)?;
            checkpoint::prune(&args.out, args.keep)?;
        }
    }
    bar.finish_and_clear();
    let elapsed = t0.elapsed().as_secs_f64();
    Ok(Summary {
        step: run.steps,
        first_loss,
        last_loss,
        val_loss,
        tokens_per_s: ((run.steps - start) * tokens_per_step) as f64 / elapsed.max(1e-9),
        checkpoint: last_ckpt,
    })
}

/// One micro-batch's loss (unscaled) and its gradients, the loss scaled by `1/accum` first.
fn micro_gradients<AB: TrainBackend, O: Objective>(
    model: &Gpt<AB>,
    batch: &Batch,
    objective: &O,
    accum: usize,
    device: &AB::Device,
) -> (f64, GradientsParams) {
    let loss = objective.loss(model, batch, device);
    let value = loss.clone().into_scalar().elem::<f64>();
    (value, GradientsParams::from_grads((loss / accum as f64).backward(), model))
}

/// The summed gradients of `step`'s micro-batches, on `devices[0]`, and the sum of their losses.
fn step_gradients<AB: TrainBackend, O: Objective>(
    model: &Gpt<AB>,
    objective: &O,
    batches: &dyn Batches,
    step: u64,
    args: &TrainArgs,
    devices: &[AB::Device],
) -> anyhow::Result<(GradientsParams, f64)> {
    let accum = args.run.accum;
    let mut acc = GradientsAccumulator::<Gpt<AB>>::new();
    let mut loss_sum = 0.0;
    if devices.len() == 1 {
        for micro in 0..accum as u64 {
            let (loss, grads) = micro_gradients(model, &batches.train(step, micro)?, objective, accum, &devices[0]);
            loss_sum += loss;
            acc.accumulate(model, grads);
        }
        return Ok((acc.grads(), loss_sum));
    }
    // Micro-batch m goes to device m mod N; the batches are cut here, the sources need not be Sync.
    let mut shares: Vec<Vec<(u64, Batch)>> = devices.iter().map(|_| Vec::new()).collect();
    for micro in 0..accum as u64 {
        shares[micro as usize % devices.len()].push((micro, batches.train(step, micro)?));
    }
    let main = &devices[0];
    let mut results = std::thread::scope(|scope| {
        let workers: Vec<_> = devices
            .iter()
            .zip(shares)
            .map(|(device, share)| {
                let replica = model.clone().fork(device);
                scope.spawn(move || {
                    share
                        .into_iter()
                        .map(|(micro, batch)| {
                            let (loss, grads) = micro_gradients(&replica, &batch, objective, accum, device);
                            (micro, loss, grads.to_device(main, &replica))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().map_err(|_| anyhow::anyhow!("a data-parallel worker failed (see the message above)")))
            .collect::<anyhow::Result<Vec<_>>>()
    })?
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    // Summed in micro-batch order, as the one-device loop sums them.
    results.sort_by_key(|(micro, _, _)| *micro);
    for (_, loss, grads) in results {
        loss_sum += loss;
        acc.accumulate(model, grads);
    }
    Ok((acc.grads(), loss_sum))
}
