//! `finetune`: GPT-1's second stage — one task's labelled examples, the loss on the answer only.

use std::path::PathBuf;

use clap::Args;
use wgpt_train::stages::finetune::TaskBatches;
use wgpt_train::train::NextToken;

use super::{TrainFlags, parse_task, starting_point, train};

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
        println!("{}", train(self.train.backend, &args, &NextToken, &batches, &json)?);
        Ok(())
    }
}
