//! Pre-training: next-token prediction over windows of the prepared token shards — GPT-1's first
//! stage, and all of GPT-2's and GPT-3's training.

use std::path::Path;

use anyhow::{Context, bail};

use crate::data::{Batch, Dataset, train_batch, val_batches};
use crate::model::fused::TrainBackend;
use crate::train::{Batches, NextToken, Summary, TrainArgs, check_run, train_loop};

/// Pre-training windows of the token shards.
struct ShardBatches<'a> {
    data: &'a Dataset,
    seed: u64,
    rows: usize,
    context: usize,
}

impl Batches for ShardBatches<'_> {
    fn train(&self, step: u64, micro: u64) -> anyhow::Result<Batch> {
        Ok(train_batch(&self.data.train, self.seed, step, micro, self.rows, self.context))
    }

    fn val(&self, max_batches: usize) -> anyhow::Result<Vec<Batch>> {
        Ok(val_batches(&self.data.val, self.rows, self.context, max_batches))
    }
}

/// Pre-training on the shards in `data`.
pub fn pretrain<AB: TrainBackend>(data: &Path, args: &TrainArgs, devices: &[AB::Device]) -> anyhow::Result<Summary> {
    let data = Dataset::open(data)?;
    let (config, run) = (&args.config, &args.run);
    if config.vocab_size < data.meta.vocab_size {
        bail!("vocab_size {} is smaller than the data's {}", config.vocab_size, data.meta.vocab_size);
    }
    if run.train_tokens != data.meta.train_tokens {
        bail!("internal: run spec made for other data");
    }
    check_run(args)?;
    data.check_context(run.context)?;
    let tokenizer_json = std::fs::read(data.dir.join("tokenizer.json")).context("the data folder's tokenizer.json")?;
    let batches = ShardBatches { data: &data, seed: run.seed, rows: run.batch, context: run.context };
    train_loop::<AB, _>(args, &NextToken, &batches, &tokenizer_json, devices)
}
