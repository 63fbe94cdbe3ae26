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

use crate::data::Batch;
use crate::train::Batches;

pub struct TaskBatches {
    pub task: Task,
    pub tokenizer: Tokenizer,
    pub eos: u32,
    pub seed: u64,
    pub batch: usize,
    pub context: usize,
    pub val_examples: usize,
}

/// `(input ids, target ids, weights)` of one example: targets are the inputs shifted by one;
/// weights select the answer's tokens.
pub fn example(tok: &Tokenizer, task: Task, split: Split, seed: u64) -> anyhow::Result<(Vec<i32>, Vec<i32>, Vec<f32>)> {
    let e = tasks::episode(task, 0, Description::None, split, seed);
    let prompt = tok.encode(&e.prompt())?;
    let answer = tok.encode(&e.completion())?;
    let ids: Vec<i32> = prompt.iter().chain(&answer).map(|&i| i as i32).collect();
    let n = ids.len() - 1;
    let weights = (0..n).map(|p| if p + 1 >= prompt.len() { 1.0 } else { 0.0 }).collect();
    Ok((ids[..n].to_vec(), ids[1..].to_vec(), weights))
}

impl TaskBatches {
    fn batch(&self, split: Split, seeds: impl Iterator<Item = u64>) -> anyhow::Result<Batch> {
        let rows: Vec<_> =
            seeds.map(|s| example(&self.tokenizer, self.task, split, s)).collect::<anyhow::Result<_>>()?;
        let t = rows.iter().map(|r| r.0.len()).max().unwrap_or(1);
        if t > self.context {
            anyhow::bail!("a {} example is {t} tokens, longer than the context {}", self.task.name(), self.context);
        }
        let pad = self.eos as i32;
        let mut b = Batch { rows: rows.len(), context: t, inputs: vec![], targets: vec![], weights: Some(vec![]) };
        for (x, y, w) in rows {
            let fill = t - x.len();
            b.inputs.extend(x.into_iter().chain(std::iter::repeat_n(pad, fill)));
            b.targets.extend(y.into_iter().chain(std::iter::repeat_n(pad, fill)));
            b.weights.as_mut().expect("set above").extend(w.into_iter().chain(std::iter::repeat_n(0.0, fill)));
        }
        Ok(b)
    }
}

impl Batches for TaskBatches {
    fn train(&self, step: u64, micro: u64) -> anyhow::Result<Batch> {
        self.batch(Split::Train, (0..self.batch as u64).map(|r| hash(&[self.seed, step, micro, r])))
    }

    fn val(&self, max_batches: usize) -> anyhow::Result<Vec<Batch>> {
        let n = self.val_examples.min(max_batches * self.batch);
        (0..n as u64)
            .collect::<Vec<_>>()
            .chunks(self.batch.max(1))
            .map(|c| self.batch(Split::Eval, c.iter().map(|&i| hash(&[0xE7A1, i]))))
            .collect()
    }
}
