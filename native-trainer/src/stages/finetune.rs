//! `finetune`: GPT-1's second stage — supervised training on one task's labelled examples, the
//! loss on the answer only.
//!
//! Each example is a zero-shot episode of the task from the training split (`input ->` then
//! ` answer\n`); one example per row, rows padded to the longest in the batch, and the loss
//! weighted 1 on the answer's tokens (the newline included) and 0 on the prompt and the padding.
//! Examples are a function of (seed, step, micro-batch, row), like pre-training windows, so the
//! same loop (`train::train_loop`) checkpoints and resumes it. Validation: the answer loss on
//! fixed held-out examples.

use wgpt::rng::hash;
use wgpt::tasks::{self, Description, Split, Task};
use wgpt::tokenizer::Tokenizer;

use crate::data::{self, Batch, Example};
use crate::train::{Batches, held_out_batches};

pub struct TaskBatches {
    pub task: Task,
    pub tokenizer: Tokenizer,
    pub eos: u32,
    pub seed: u64,
    pub batch: usize,
    pub context: usize,
    pub val_examples: usize,
}

/// One labelled example: the zero-shot episode's prompt, then its answer as the only target.
pub fn task_example(tok: &Tokenizer, task: Task, split: Split, seed: u64, context: usize) -> anyhow::Result<Example> {
    let e = tasks::episode(task, 0, Description::None, split, seed);
    let prompt = tok.encode(&e.prompt())?;
    let answer = tok.encode(&e.completion())?;
    let target: Vec<bool> = prompt.iter().map(|_| false).chain(answer.iter().map(|_| true)).collect();
    let ids: Vec<u32> = prompt.into_iter().chain(answer).collect();
    if ids.len() > context + 1 {
        anyhow::bail!("a {} example is {} tokens, longer than the context {context}", task.name(), ids.len() - 1);
    }
    Ok(data::example(&ids, &target, context))
}

impl TaskBatches {
    fn batch(&self, split: Split, seeds: impl Iterator<Item = u64>) -> anyhow::Result<Batch> {
        let rows: Vec<Example> = seeds
            .map(|s| task_example(&self.tokenizer, self.task, split, s, self.context))
            .collect::<anyhow::Result<_>>()?;
        Ok(data::padded_batch(rows, self.eos as i32))
    }
}

impl Batches for TaskBatches {
    fn train(&self, step: u64, micro: u64) -> anyhow::Result<Batch> {
        self.batch(Split::Train, (0..self.batch as u64).map(|r| hash(&[self.seed, step, micro, r])))
    }

    fn val(&self, max_batches: usize) -> anyhow::Result<Vec<Batch>> {
        held_out_batches(self.val_examples, self.batch, max_batches, |c| {
            self.batch(Split::Eval, c.iter().map(|&i| hash(&[0xE7A1, i])))
        })
    }
}
