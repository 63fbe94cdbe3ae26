//! `reward`: InstructGPT's second step — a reward model trained on ranked responses.
//!
//! The model is the SFT model with a scalar head: `r = h_end · w`, where `h_end` is the last
//! hidden state at the response's final token (its `<|im_end|>`) and `w` a vector of `n_embd`.
//! `w` lives as one row (the `<|pad|>` token's, never a target) of an untied LM head, so the
//! reward model is an ordinary GPT to the checkpoint, optimizer, export and import code; the row
//! starts at zero (every reward 0), the rest of the head is the SFT model's `wte`.
//!
//! Loss (Ouyang et al. 2022, eq. 1): for each prompt with K ranked responses, every one of the
//! C(K,2) pairs (better `i`, worse `j`) adds `−log σ(r_i − r_j)`; the mean over all pairs of the
//! batch. Held-out pair accuracy: the share of held-out pairs with `r_i > r_j`.

use burn::tensor::activation::log_sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use serde_json::Value;
use wgpt::chat::conversation_ids;
use wgpt::config::GptConfig;
use wgpt::rng::hash;
use wgpt::tasks::Split;
use wgpt::tokenizer::Tokenizer;
use wgpt::weights::ModelWeights;

use crate::data::Batch;
use crate::data::instruct::{self, K};
use crate::model::Gpt;
use crate::model::fused::FusedOps;
use crate::train::{Batches, Objective, held_out_batches};

/// The SFT model's weights as a reward model's: an untied head whose row `score_row` is zero.
pub fn reward_init(config: &GptConfig, weights: &ModelWeights, score_row: usize) -> (GptConfig, ModelWeights) {
    let mut config = config.clone();
    let mut w = weights.clone();
    let mut head = weights.head().to_f32().into_owned();
    let c = config.n_embd;
    head.data[score_row * c..(score_row + 1) * c].fill(0.0);
    w.lm_head = Some(wgpt::quant::Matrix::F32(head));
    config.tie_word_embeddings = false;
    (config, w)
}

/// Mean of `−log σ(r_i − r_j)` over the pairs `i < j` (i ranked better) of each group of `k`
/// consecutive rewards.
pub fn preference_loss<B: Backend>(rewards: Tensor<B, 1>, k: usize) -> Tensor<B, 1> {
    let groups = rewards.dims()[0] / k;
    let r = rewards.reshape([groups, k]);
    let mut diffs = Vec::new();
    for i in 0..k {
        for j in i + 1..k {
            diffs.push(r.clone().slice([0..groups, i..i + 1]) - r.clone().slice([0..groups, j..j + 1]));
        }
    }
    log_sigmoid(Tensor::cat(diffs, 1)).mean().neg()
}

/// The rewards of a batch built by [`PreferenceBatches`] (`weights` marks each row's end).
pub fn rewards<B: FusedOps>(model: &Gpt<B>, batch: &Batch, score_row: usize, device: &B::Device) -> Tensor<B, 1> {
    let shape = [batch.rows, batch.context];
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(batch.inputs.clone(), shape), device);
    let at = batch.weights.clone().expect("preference batches mark the end of each response");
    model.score(ids, Tensor::from_data(TensorData::new(at, shape), device), score_row)
}

/// Share of the pairs `i < j` in each group of `k` with `r_i > r_j`.
pub fn pair_accuracy(rewards: &[f32], k: usize) -> f64 {
    let (mut right, mut total) = (0usize, 0usize);
    for g in rewards.chunks(k) {
        for i in 0..k {
            for j in i + 1..k {
                right += usize::from(g[i] > g[j]);
                total += 1;
            }
        }
    }
    right as f64 / total.max(1) as f64
}

/// Held-out pair accuracy of `model` over `batches`.
pub fn evaluate<B: FusedOps>(model: &Gpt<B>, batches: &[Batch], score_row: usize, device: &B::Device) -> f64 {
    let mut all = Vec::new();
    for b in batches {
        let r = rewards(model, b, score_row, device).into_data();
        all.extend(r.iter::<f32>());
    }
    pair_accuracy(&all, K)
}

/// `batch` prompts per micro-batch, each with its K ranked responses as K consecutive rows:
/// inputs are the whole conversation, `weights` a 1 at the response's `<|im_end|>`.
pub struct PreferenceBatches {
    pub tokenizer: Tokenizer,
    pub pad: u32,
    pub seed: u64,
    pub batch: usize,
    pub context: usize,
    pub val_prompts: usize,
}

impl PreferenceBatches {
    fn rows(&self, split: Split, seed: u64) -> anyhow::Result<Vec<Vec<u32>>> {
        let r = instruct::ranked(split, seed);
        r.responses
            .iter()
            .map(|resp| {
                let mut m = r.messages.clone();
                m.push(wgpt::chat::Message { role: "assistant".into(), content: resp.clone() });
                let (mut ids, _) = conversation_ids(&self.tokenizer, &m)?;
                ids.pop(); // the "\n" after <|im_end|>: the score is read at <|im_end|>
                // Keep the end (the response); a long history loses its start.
                let cut = ids.len().saturating_sub(self.context);
                Ok(ids.split_off(cut))
            })
            .collect()
    }

    pub fn batch(&self, split: Split, seeds: impl Iterator<Item = u64>) -> anyhow::Result<Batch> {
        let mut rows = Vec::new();
        for s in seeds {
            rows.extend(self.rows(split, s)?);
        }
        let t = rows.iter().map(Vec::len).max().unwrap_or(1);
        let mut b = Batch { rows: rows.len(), context: t, inputs: vec![], targets: vec![], weights: None };
        let mut at = Vec::with_capacity(rows.len() * t);
        for ids in rows {
            let n = ids.len();
            b.inputs.extend(ids.iter().map(|&i| i as i32).chain(std::iter::repeat_n(self.pad as i32, t - n)));
            at.extend((0..t).map(|p| if p + 1 == n { 1.0f32 } else { 0.0 }));
        }
        b.targets = vec![0; b.inputs.len()];
        b.weights = Some(at);
        Ok(b)
    }
}

impl Batches for PreferenceBatches {
    fn train(&self, step: u64, micro: u64) -> anyhow::Result<Batch> {
        self.batch(Split::Train, (0..self.batch as u64).map(|r| hash(&[self.seed, step, micro, r])))
    }

    fn val(&self, max_batches: usize) -> anyhow::Result<Vec<Batch>> {
        held_out_batches(self.val_prompts, self.batch, max_batches, |c| self.batch(Split::Eval, c.iter().copied()))
    }
}

/// The loss of one preference batch.
pub fn batch_loss<B: FusedOps>(model: &Gpt<B>, batch: &Batch, score_row: usize, device: &B::Device) -> Tensor<B, 1> {
    preference_loss(rewards(model, batch, score_row, device), K)
}

/// Mean loss over preference batches (validation).
pub fn mean_loss<B: FusedOps>(model: &Gpt<B>, batches: &[Batch], score_row: usize, device: &B::Device) -> f64 {
    let total: f64 = batches.iter().map(|b| batch_loss(model, b, score_row, device).into_scalar().elem::<f64>()).sum();
    total / batches.len().max(1) as f64
}

/// The training loop's objective for the reward model: the pairwise ranking loss, the score read
/// from head row `score_row`; validation adds the held-out pair accuracy.
pub struct Preference {
    pub score_row: usize,
}

impl Objective for Preference {
    fn loss<B: FusedOps>(&self, model: &Gpt<B>, batch: &Batch, device: &B::Device) -> Tensor<B, 1> {
        batch_loss(model, batch, self.score_row, device)
    }

    fn validate<B: FusedOps>(&self, model: &Gpt<B>, val: &[Batch], device: &B::Device, line: &mut Value) -> f64 {
        line["val_pair_accuracy"] = evaluate(model, val, self.score_row, device).into();
        mean_loss(model, val, self.score_row, device)
    }
}
