//! `sft`: InstructGPT step 1 — supervised fine-tuning on conversations, the loss on the assistant only.

use std::path::PathBuf;

use clap::Args;
use wgpt_train::stages::sft::ChatBatches;
use wgpt_train::train::NextToken;

use super::{TrainFlags, starting_point, train};

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
        println!("{}", train(self.train.backend, &args, &NextToken, &batches, &json)?);
        Ok(())
    }
}
