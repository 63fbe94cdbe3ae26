//! `ppo`: InstructGPT step 3 — PPO of the SFT policy against the reward model.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use serde_json::json;
use wgpt_train::plot::{Series, draw_lines};
use wgpt_train::stages::ppo::{PpoArgs, PpoConfig, train_ppo};
use wgpt_train::store::checkpoint;
use wgpt_train::train::check_run;
use wgpt_train::with_backend;

use super::{TrainFlags, resolve_checkpoint, score_row};

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
