//! The stages after pre-training: `finetune` (GPT-1: one task, answer-only loss), `sft`
//! (InstructGPT step 1: conversations, assistant-only loss) and `eval` (zero-, one- and few-shot
//! accuracy on held-out episodes, or held-out chat accuracy, for any number of models).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use wgpt::config::GptConfig;
use wgpt::tasks::{self, Task};
use wgpt::weights::ModelWeights;
use wgpt_train::backend::BackendKind;
use wgpt_train::backend::Cpu;
use wgpt_train::chat_eval;
use wgpt_train::checkpoint;
use wgpt_train::finetune::TaskBatches;
use wgpt_train::icl::{self, Cell, EvalSpec};
use wgpt_train::model::Gpt;
use wgpt_train::plot::{Series, draw_lines};
use wgpt_train::ppo::{self, PpoArgs, PpoConfig, train_ppo};
use wgpt_train::reward::{self, PreferenceBatches, reward_init};
use wgpt_train::sft::ChatBatches;
use wgpt_train::train::{Batches, Objective, TrainArgs};
use wgpt_train::train::{check_run, train_loop};
use wgpt_train::with_backend;

use crate::cli::{TrainFlags, resolve_checkpoint};

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
fn train(
    backend: BackendKind,
    args: &TrainArgs,
    batches: &dyn Batches,
    tokenizer_json: &str,
) -> anyhow::Result<serde_json::Value> {
    check_run(args)?;
    let json = tokenizer_json.as_bytes();
    let summary = with_backend!(backend, args.devices, |B, devices| train_loop::<B>(args, batches, json, &devices))?;
    Ok(summary.to_json())
}

#[derive(Args)]
pub struct FinetuneCmd {
    /// The pre-trained model: a bundle, a checkpoint or a run folder (its newest checkpoint).
    #[arg(long)]
    init_from: PathBuf,
    /// The task whose labelled examples it is trained on (see `eval --help` for the list).
    #[arg(long)]
    task: String,
    /// The run folder: checkpoints, metrics.jsonl.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    train: TrainFlags,
}

impl FinetuneCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let task = parse_task(&self.task)?;
        let (init, config, _, tokenizer) = starting_point(&self.init_from, false)?;
        let run = self.train.run_spec(config.n_positions, 0, Some(task.name()));
        let args = self.train.train_args(self.out, config.clone(), run, Some(init));
        let json = tokenizer.to_json()?;
        let batches = TaskBatches {
            task,
            tokenizer,
            eos: config.eos_token_id.unwrap_or(0),
            seed: args.run.seed,
            batch: args.run.batch,
            context: config.n_positions,
            val_examples: 256,
        };
        println!("{}", train(self.train.backend, &args, &batches, &json)?);
        Ok(())
    }
}

#[derive(Args)]
pub struct SftCmd {
    /// The pre-trained model: a bundle, a checkpoint or a run folder (its newest checkpoint).
    /// Its tokenizer must have the chat tokens (`prepare` reserves them).
    #[arg(long)]
    init_from: PathBuf,
    /// The run folder: checkpoints, metrics.jsonl.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    train: TrainFlags,
}

impl SftCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let (init, config, _, tokenizer) = starting_point(&self.init_from, true)?;
        let run = self.train.run_spec(config.n_positions, 0, Some("sft"));
        let args = self.train.train_args(self.out, config.clone(), run, Some(init));
        let json = tokenizer.to_json()?;
        let pad = tokenizer.token_to_id("<|pad|>").or(config.eos_token_id).unwrap_or(0);
        let batches = ChatBatches {
            tokenizer,
            pad,
            seed: args.run.seed,
            batch: args.run.batch,
            context: config.n_positions,
            val_conversations: 256,
        };
        println!("{}", train(self.train.backend, &args, &batches, &json)?);
        Ok(())
    }
}

#[derive(Args)]
pub struct RewardCmd {
    /// The SFT model: a bundle, a checkpoint or a run folder (its newest checkpoint); or a
    /// reward model to train further on new preference data (the article: steps 2 and 3 iterate).
    #[arg(long)]
    init_from: PathBuf,
    /// The run folder: checkpoints (reward models), metrics.jsonl with the held-out pair accuracy.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    train: TrainFlags,
}

/// The head row that holds the reward model's scalar head: `<|pad|>`'s, which is never a target.
pub fn score_row(tok: &wgpt::Tokenizer) -> anyhow::Result<usize> {
    tok.token_to_id("<|pad|>")
        .map(|i| i as usize)
        .ok_or_else(|| anyhow::anyhow!("the tokenizer has no <|pad|> token to hold the reward head"))
}

impl RewardCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let (_, config, weights, tokenizer) = starting_point(&self.init_from, true)?;
        let row = score_row(&tokenizer)?;
        // An SFT model gets a fresh (zero) reward head; a reward model keeps its own.
        let (config, weights) =
            if config.tie_word_embeddings { reward_init(&config, &weights, row) } else { (config, weights) };
        let run = self.train.run_spec(config.n_positions, 0, Some("reward"));
        let mut args = self.train.train_args(self.out, config.clone(), run, None);
        args.objective = Objective::Preference { score_row: row };
        args.init_weights = Some(weights);
        let json = tokenizer.to_json()?;
        let batches = PreferenceBatches {
            tokenizer,
            pad: row as u32,
            seed: args.run.seed,
            batch: args.run.batch,
            context: config.n_positions,
            val_prompts: 256,
        };
        let mut out = train(self.train.backend, &args, &batches, &json)?;
        // The held-out pair accuracy of the final model, on all held-out prompts.
        let dir = PathBuf::from(out["checkpoint"].as_str().unwrap_or_default());
        let (c, w) = checkpoint::load_weights(&dir)?;
        let device = Default::default();
        let model = Gpt::<Cpu>::from_weights(&c, &w, &device);
        let val = batches.val(batches.val_prompts)?;
        let accuracy = reward::evaluate(&model, &val, row, &device);
        out["val_pair_accuracy"] = accuracy.into();
        out["val_prompts"] = batches.val_prompts.into();
        std::fs::write(args.out.join("summary.json"), serde_json::to_string_pretty(&out)?)?;
        println!("{out}");
        Ok(())
    }
}

#[derive(Args)]
pub struct PpoCmd {
    /// The SFT model (the starting policy and the frozen reference for the KL penalty).
    #[arg(long)]
    sft: PathBuf,
    /// The reward model (`reward`); also the critic's starting point.
    #[arg(long)]
    reward_model: PathBuf,
    /// The run folder: policy checkpoints (bundles), critic/ checkpoints, metrics.jsonl, ppo.png.
    #[arg(long)]
    out: PathBuf,
    /// β, the weight of the KL penalty against the SFT model.
    #[arg(long, default_value_t = 0.05)]
    kl_coef: f64,
    /// ε, the policy ratio clip.
    #[arg(long, default_value_t = 0.2)]
    clip: f64,
    /// Longest sampled response, in tokens.
    #[arg(long, default_value_t = 32)]
    max_new: usize,
    /// Taken off the reward-model score of a response cut at --max-new instead of ended.
    #[arg(long, default_value_t = 0.0)]
    missing_end_penalty: f64,
    /// Held-out prompts scored (greedy replies) every --eval-every iterations.
    #[arg(long, default_value_t = 64)]
    eval_prompts: usize,
    /// --steps counts PPO iterations; --batch is the rollouts per iteration.
    #[command(flatten)]
    train: TrainFlags,
}

impl PpoCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let sft_dir = resolve_checkpoint(&self.sft)?;
        let rm_dir = resolve_checkpoint(&self.reward_model)?;
        let sft = checkpoint::load_weights(&sft_dir)?;
        let rm = checkpoint::load_weights(&rm_dir)?;
        let tok = wgpt::bundle::load_tokenizer(&sft_dir)?;
        if !matches!(wgpt::chat::template(&tok), wgpt::chat::Template::ChatMl { .. }) {
            bail!(
                "{}: its tokenizer has no <|im_start|>/<|im_end|> tokens to frame the conversations",
                sft_dir.display()
            );
        }
        if rm.0.tie_word_embeddings || rm.0.n_embd != sft.0.n_embd || rm.0.vocab_size != sft.0.vocab_size {
            bail!("{}: not a reward model of this SFT model's shape (train one with `reward`)", rm_dir.display());
        }
        if self.max_new == 0 || self.eval_prompts == 0 {
            bail!("--max-new and --eval-prompts must be at least 1");
        }
        if !(self.missing_end_penalty.is_finite() && self.missing_end_penalty >= 0.0) {
            bail!("--missing-end-penalty must be a number ≥ 0 (got {})", self.missing_end_penalty);
        }
        let run = self.train.run_spec(sft.0.n_positions, 0, Some("ppo"));
        let base = self.train.train_args(self.out.clone(), sft.0.clone(), run, None);
        if base.devices != 1 {
            bail!("ppo runs on one device (--devices is for pretrain, finetune, sft and reward); drop --devices");
        }
        check_run(&base)?;
        let args = PpoArgs {
            out: self.out.clone(),
            run: base.run,
            ppo: PpoConfig {
                kl_coef: self.kl_coef,
                clip: self.clip,
                max_new: self.max_new,
                missing_end_penalty: self.missing_end_penalty,
                ..Default::default()
            },
            eval_every: base.eval_every,
            eval_prompts: self.eval_prompts,
            ckpt_every: base.ckpt_every,
            keep: base.keep,
            resume: base.resume,
            score_row: score_row(&tok)?,
            precision: base.precision,
        };
        let json = tok.to_json()?;
        let s = with_backend!(self.train.backend, |B, device| train_ppo::<B>(
            &args,
            &sft,
            &rm,
            &tok,
            json.as_bytes(),
            &device
        ))?;
        // reward, KL and held-out reward against iteration.
        let text = std::fs::read_to_string(self.out.join("metrics.jsonl"))?;
        let mut series: Vec<Series> = ["reward", "val_reward", "kl"]
            .iter()
            .map(|k| Series { label: k.replace('_', " "), points: vec![], markers: *k == "val_reward" })
            .collect();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line)?;
            for (s, key) in series.iter_mut().zip(["reward", "val_reward", "kl"]) {
                if let (Some(x), Some(y)) = (v["step"].as_f64(), v[key].as_f64()) {
                    s.points.push((x, y));
                }
            }
        }
        draw_lines(
            &series,
            ("PPO iteration", "reward / KL (nats)"),
            None,
            &self.out.join("ppo.png"),
            "PPO against the reward model",
        )?;
        let summary = json!({"iterations": s.iterations, "first_reward": s.first_reward, "last_reward": s.last_reward,
                   "val_reward": s.val_reward, "checkpoint": s.checkpoint.display().to_string()});
        std::fs::write(self.out.join("summary.json"), serde_json::to_string_pretty(&summary)?)?;
        println!("{summary}");
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// Task-suite episodes with k demonstrations.
    Icl,
    /// Held-out conversations (instruction following, article questions, small talk, refusals).
    Chat,
}

#[derive(Args)]
pub struct EvalCmd {
    /// What to evaluate.
    #[arg(long, value_enum, default_value = "icl")]
    suite: Suite,
    /// `NAME=PATH` (or just PATH): a bundle, a checkpoint or a run folder (its newest checkpoint).
    /// Repeat to put models side by side (e.g. base and fine-tuned).
    #[arg(long, required = true)]
    model: Vec<String>,
    /// Where icl.md, icl.json and icl.png (or chat.md and chat.json) go.
    #[arg(long)]
    out: PathBuf,
    /// Comma-separated tasks; default all: reverse, copy, sort, shift, first, add, max, min,
    /// sentiment, lookup.
    #[arg(long)]
    tasks: Option<String>,
    /// Comma-separated numbers of demonstrations.
    #[arg(long, default_value = "0,1,2,4,8")]
    k: String,
    /// Held-out episodes per (task, k, description) cell; with --suite chat, conversations per kind.
    #[arg(long, default_value_t = 50)]
    episodes: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// With --suite chat: also score each model's greedy replies to held-out prompts with this
    /// reward model.
    #[arg(long)]
    reward_model: Option<PathBuf>,
    /// Also evaluate every checkpoint of this run folder (k = 0 and the largest k, no
    /// description) and draw accuracy against step: the in-context-learning curve.
    #[arg(long)]
    curve: Option<PathBuf>,
}

/// `NAME=PATH` or `PATH` (named by itself).
fn named(arg: &str) -> (String, PathBuf) {
    match arg.split_once('=') {
        Some((n, p)) => (n.to_string(), PathBuf::from(p)),
        None => (arg.to_string(), PathBuf::from(arg)),
    }
}

fn load_model(path: &Path) -> anyhow::Result<(Gpt<Cpu>, wgpt::Tokenizer)> {
    let dir = resolve_checkpoint(path)?;
    let (config, weights) = checkpoint::load_weights(&dir)?;
    let tok = wgpt::bundle::load_tokenizer(&dir)?;
    Ok((Gpt::<Cpu>::from_weights(&config, &weights, &Default::default()), tok))
}

impl EvalCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let tasks = match &self.tasks {
            None => tasks::ALL.to_vec(),
            Some(list) => list.split(',').map(|t| parse_task(t.trim())).collect::<anyhow::Result<_>>()?,
        };
        let ks: Vec<usize> = self
            .k
            .split(',')
            .map(|k| k.trim().parse().map_err(|_| anyhow::anyhow!("--k: {k:?} is not a number of demonstrations")))
            .collect::<anyhow::Result<_>>()?;
        if ks.is_empty() || self.episodes == 0 {
            bail!("--k and --episodes must not be empty or 0");
        }
        let spec = EvalSpec { tasks, ks, episodes: self.episodes, seed: self.seed };
        std::fs::create_dir_all(&self.out).with_context(|| self.out.display().to_string())?;
        if self.suite == Suite::Chat {
            return self.chat();
        }
        let device = Default::default();
        let t0 = Instant::now();
        let mut cells: Vec<Cell> = Vec::new();
        for m in &self.model {
            let (name, path) = named(m);
            let (model, tok) = load_model(&path)?;
            cells.extend(icl::evaluate(&name, &model, &tok, &spec, &device)?);
            eprintln!("evaluated {name} ({:.0} s)", t0.elapsed().as_secs_f64());
        }
        let md = icl::markdown(&cells, &spec);
        let write = |name: &str, text: &str| {
            let p = self.out.join(name);
            std::fs::write(&p, text).with_context(|| p.display().to_string())
        };
        write("icl.md", &md)?;
        write(
            "icl.json",
            &serde_json::to_string_pretty(&json!({"episodes": spec.episodes, "seed": spec.seed, "cells": cells}))?,
        )?;
        let series: Vec<Series> = {
            let means = icl::means(&cells);
            let mut keys: Vec<(String, bool)> = Vec::new();
            for (m, d, _, _) in &means {
                if !keys.contains(&(m.clone(), *d)) {
                    keys.push((m.clone(), *d));
                }
            }
            keys.into_iter()
                .map(|(m, d)| Series {
                    label: format!("{m}{}", if d { " + desc" } else { "" }),
                    points: means.iter().filter(|x| x.0 == m && x.1 == d).map(|x| (x.2 as f64, 100.0 * x.3)).collect(),
                    markers: true,
                })
                .collect()
        };
        draw_lines(
            &series,
            ("demonstrations in the prompt (k)", "accuracy (%)"),
            Some((0.0, 100.0)),
            &self.out.join("icl.png"),
            "held-out accuracy against k",
        )?;
        if let Some(run) = &self.curve {
            self.curve(run, &spec)?;
        }
        print!("{md}");
        eprintln!("wrote icl.md, icl.json, icl.png in {} ({:.0} s)", self.out.display(), t0.elapsed().as_secs_f64());
        Ok(())
    }

    fn chat(&self) -> anyhow::Result<()> {
        let device = Default::default();
        let judge = match &self.reward_model {
            Some(p) => {
                let (rm, tok) = load_model(p)?;
                Some((rm, score_row(&tok)?))
            }
            None => None,
        };
        let (mut cells, mut rewards, mut examples) = (Vec::new(), Vec::new(), Vec::new());
        for m in &self.model {
            let (name, path) = named(m);
            let (model, tok) = load_model(&path)?;
            let (c, e) = chat_eval::evaluate::<Cpu>(&name, &model, &tok, self.episodes, &device)?;
            cells.extend(c);
            examples.extend(e);
            if let Some((rm, row)) = &judge {
                let config = model.config().clone();
                let decode = ppo::chat_decode(&tok, &config, 32.min(config.n_positions / 4), *row as u32)?;
                let j = ppo::Judge { rm, score_row: *row, prompts: self.episodes * 4 };
                let mean_reward = ppo::held_out_reward(&model.to_weights(), &config, &tok, &j, &decode, &device)?;
                rewards.push(chat_eval::RewardRow { model: name.clone(), prompts: j.prompts, mean_reward });
            }
        }
        let md = chat_eval::markdown(&cells, &rewards, &examples);
        std::fs::write(self.out.join("chat.md"), &md)?;
        std::fs::write(
            self.out.join("chat.json"),
            serde_json::to_string_pretty(&json!({"cells": cells, "rewards": rewards, "examples": examples}))?,
        )?;
        print!("{md}");
        Ok(())
    }

    /// Accuracy at k = 0 and the largest k for every checkpoint of `run`.
    fn curve(&self, run: &Path, spec: &EvalSpec) -> anyhow::Result<()> {
        let device = Default::default();
        let k_max = *spec.ks.iter().max().expect("checked non-empty");
        let sub = EvalSpec { tasks: spec.tasks.clone(), ks: vec![0, k_max], episodes: spec.episodes, seed: spec.seed };
        let mut rows = Vec::new();
        let (mut zero, mut few) = (Vec::new(), Vec::new());
        for (step, dir) in checkpoint::list(run)? {
            let (model, tok) = load_model(&dir)?;
            let cells: Vec<Cell> = icl::evaluate::<Cpu>("ckpt", &model, &tok, &sub, &device)?
                .into_iter()
                .filter(|c| !c.description)
                .collect();
            let mean = |k: usize| {
                let v: Vec<f64> = cells.iter().filter(|c| c.k == k).map(|c| c.accuracy).collect();
                v.iter().sum::<f64>() / v.len().max(1) as f64
            };
            zero.push((step as f64, 100.0 * mean(0)));
            few.push((step as f64, 100.0 * mean(k_max)));
            rows.push(json!({"step": step, "k0": mean(0), format!("k{k_max}"): mean(k_max)}));
            eprintln!("step {step}: k=0 {:.0} %, k={k_max} {:.0} %", 100.0 * mean(0), 100.0 * mean(k_max));
        }
        if rows.is_empty() {
            bail!("{}: no checkpoints", run.display());
        }
        std::fs::write(self.out.join("icl-curve.json"), serde_json::to_string_pretty(&rows)?)?;
        let series = [
            Series { label: "k = 0".into(), points: zero, markers: true },
            Series { label: format!("k = {k_max}"), points: few, markers: true },
        ];
        draw_lines(
            &series,
            ("training step", "accuracy (%)"),
            Some((0.0, 100.0)),
            &self.out.join("icl-curve.png"),
            "held-out accuracy during pre-training",
        )?;
        Ok(())
    }
}
