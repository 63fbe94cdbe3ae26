//! `sft`: InstructGPT's first step — supervised fine-tuning on conversations, the loss on the
//! assistant's tokens only (its words and the `<|im_end|>` that ends its turn), through the same
//! chat template the page uses (`wgpt::chat`). Conversations are drawn from (seed, step, row)
//! by `instruct::conversation`, so `train::train_loop` checkpoints and resumes it; validation is
//! the assistant-token loss on held-out conversations.

use wgpt::chat::conversation_ids;
use wgpt::rng::hash;
use wgpt::tasks::Split;
use wgpt::tokenizer::Tokenizer;

use crate::data::instruct;
use crate::data::{self, Batch, Example};
use crate::train::{Batches, held_out_batches};

pub struct ChatBatches {
    pub tokenizer: Tokenizer,
    pub pad: u32,
    pub seed: u64,
    pub batch: usize,
    pub context: usize,
    pub val_conversations: usize,
}

impl ChatBatches {
    fn row(&self, split: Split, seed: u64) -> anyhow::Result<Example> {
        let (messages, _) = instruct::conversation(split, seed, None);
        let (ids, target) = conversation_ids(&self.tokenizer, &messages)?;
        Ok(data::example(&ids, &target, self.context))
    }

    fn batch(&self, split: Split, seeds: impl Iterator<Item = u64>) -> anyhow::Result<Batch> {
        let rows = seeds.map(|s| self.row(split, s)).collect::<anyhow::Result<_>>()?;
        Ok(data::padded_batch(rows, self.pad as i32))
    }
}

impl Batches for ChatBatches {
    fn train(&self, step: u64, micro: u64) -> anyhow::Result<Batch> {
        self.batch(Split::Train, (0..self.batch as u64).map(|r| hash(&[self.seed, step, micro, r])))
    }

    fn val(&self, max_batches: usize) -> anyhow::Result<Vec<Batch>> {
        held_out_batches(self.val_conversations, self.batch, max_batches, |c| {
            self.batch(Split::Eval, c.iter().copied())
        })
    }
}
