//! `eval`: zero-, one- and few-shot accuracy on held-out episodes, or held-out chat accuracy.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use wgpt::tasks::{self};
use wgpt_train::backend::Cpu;
use wgpt_train::model::Gpt;
use wgpt_train::plot::{Series, draw_lines};
use wgpt_train::stages::icl::{self, Cell, EvalSpec};
use wgpt_train::stages::{self, chat_eval};
use wgpt_train::store::checkpoint;

use super::{parse_task, resolve_checkpoint, score_row};

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
                let decode = stages::ppo::chat_decode(&tok, &config, 32.min(config.n_positions / 4), *row as u32)?;
                let j = stages::ppo::Judge { rm, score_row: *row, prompts: self.episodes * 4 };
                let mean_reward =
                    stages::ppo::held_out_reward(&model.to_weights(), &config, &tok, &j, &decode, &device)?;
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
