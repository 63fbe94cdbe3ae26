//! `reward`: InstructGPT step 2 — a reward model from ranked responses.

use std::path::PathBuf;

use clap::Args;
use wgpt_train::backend::Cpu;
use wgpt_train::model::Gpt;
use wgpt_train::stages;
use wgpt_train::stages::reward::{Preference, PreferenceBatches, reward_init};
use wgpt_train::store::checkpoint;
use wgpt_train::train::Batches;

use super::{TrainFlags, score_row, starting_point, train};

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

impl RewardCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let (_, config, weights, tokenizer) = starting_point(&self.init_from, true)?;
        let row = score_row(&tokenizer)?;
        // An SFT model gets a fresh (zero) reward head; a reward model keeps its own.
        let (config, weights) =
            if config.tie_word_embeddings { reward_init(&config, &weights, row) } else { (config, weights) };
        let run = self.train.run_spec(config.n_positions, 0, Some("reward"));
        let mut args = self.train.train_args(self.out, config.clone(), run, None);
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
        let mut out = train(self.train.backend, &args, &Preference { score_row: row }, &batches, &json)?;
        // The held-out pair accuracy of the final model, on all held-out prompts.
        let dir = PathBuf::from(out["checkpoint"].as_str().unwrap_or_default());
        let (c, w) = checkpoint::load_weights(&dir)?;
        let device = Default::default();
        let model = Gpt::<Cpu>::from_weights(&c, &w, &device);
        let val = batches.val(batches.val_prompts)?;
        let accuracy = stages::reward::evaluate(&model, &val, row, &device);
        out["val_pair_accuracy"] = accuracy.into();
        out["val_prompts"] = batches.val_prompts.into();
        std::fs::write(args.out.join("summary.json"), serde_json::to_string_pretty(&out)?)?;
        println!("{out}");
        Ok(())
    }
}
