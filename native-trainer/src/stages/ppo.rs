//! `ppo`: InstructGPT's third step — the SFT policy optimised against the reward model with PPO
//! (Schulman et al. 2017; the InstructGPT/TRL recipe, settings known to be stable at small scale:
//! one PPO epoch per batch, generation batch = training batch).
//!
//! Per iteration:
//! 1. **Rollouts**: `batch` held-in prompts (generated conversations up to a user turn, through
//!    the page's chat template), a response each sampled by the trainer from the current policy
//!    (the CPU reference engine with a KV cache, temperature 1, seeded by (seed, iteration, row)),
//!    ended by `<|im_end|>` or `max_new` tokens.
//! 2. **Scores** without gradients: the policy's and the frozen reference's (the SFT model's)
//!    log-probabilities of each response token, the critic's value before each token, the reward
//!    model's score at the last token.
//! 3. **Rewards**: `r_t = −β·(log π(a_t) − log π_ref(a_t))`, plus the score at the last token.
//!    **GAE** (γ, λ) gives advantages `A_t` and returns `R_t = A_t + V_t`; advantages are
//!    whitened over the batch's response tokens.
//! 4. **Updates**, one each: the policy on the clipped surrogate
//!    `−mean min(ρ·A, clip(ρ, 1−ε, 1+ε)·A)`, `ρ = exp(log π_new − log π_old)`; the critic on
//!    `½·mean max((V − R)², (clip(V, V_old ± ε_v) − R)²)`. The critic is the reward model (same
//!    head row), as InstructGPT initialises its value function.
//!
//! The policy is checkpointed to the run folder, the critic to `critic/` at the same steps (both
//! written before either is pruned), so a killed run resumes (`--resume`) from the newest step
//! both hold; rollouts are a function of (seed, iteration).

use std::collections::HashSet;
use std::sync::Arc;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use wgpt::chat::build_prompt;
use wgpt::config::GptConfig;
use wgpt::rng::hash;
use wgpt::sampler::{Sampler, SamplingParams};
use wgpt::tasks::Split;
use wgpt::tokenizer::Tokenizer;
use wgpt::weights::ModelWeights;
use wgpt::{CpuSession, ForwardOptions};

use crate::data::instruct;
use crate::model::fused::{FusedOps, TrainBackend};

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PpoConfig {
    /// β, the KL penalty's weight.
    pub kl_coef: f64,
    /// ε of the policy ratio clip.
    pub clip: f64,
    /// ε_v of the value clip.
    pub value_clip: f64,
    pub gamma: f64,
    pub lam: f64,
    /// Longest response, in tokens.
    pub max_new: usize,
    /// Taken off the score of a response cut at `max_new` rather than ended by the policy (TRL's
    /// `missing_eos_penalty`): without it the policy learns to ramble past the reward model.
    #[serde(default)]
    pub missing_end_penalty: f64,
}

impl Default for PpoConfig {
    fn default() -> Self {
        PpoConfig {
            kl_coef: 0.05,
            clip: 0.2,
            value_clip: 0.2,
            gamma: 1.0,
            lam: 0.95,
            max_new: 32,
            missing_end_penalty: 0.0,
        }
    }
}

/// Per-token rewards of one response: the KL penalty at every token, the score added at the last.
pub fn token_rewards(logp: &[f32], logp_ref: &[f32], score: f32, kl_coef: f32) -> Vec<f32> {
    let mut r: Vec<f32> = logp.iter().zip(logp_ref).map(|(a, b)| -kl_coef * (a - b)).collect();
    if let Some(last) = r.last_mut() {
        *last += score;
    }
    r
}

/// Generalised advantage estimation over one response: `δ_t = r_t + γ·V_{t+1} − V_t` (V after the
/// last token is 0), `A_t = δ_t + γλ·A_{t+1}`; returns `(A, A + V)`.
pub fn gae(rewards: &[f32], values: &[f32], gamma: f32, lam: f32) -> (Vec<f32>, Vec<f32>) {
    let n = rewards.len();
    let mut adv = vec![0.0; n];
    let mut next = 0.0;
    for t in (0..n).rev() {
        let v_next = if t + 1 < n { values[t + 1] } else { 0.0 };
        let delta = rewards[t] + gamma * v_next - values[t];
        next = delta + gamma * lam * next;
        adv[t] = next;
    }
    let ret = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, ret)
}

/// Shifts and scales to mean 0, standard deviation 1 (unchanged when constant).
pub fn whiten(x: &mut [f32]) {
    let n = x.len().max(1) as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var.sqrt() + 1e-8);
    x.iter_mut().for_each(|v| *v = (*v - mean) * inv);
}

/// Mean over the tokens `mask` selects.
fn masked_mean<B: Backend>(x: Tensor<B, 2>, mask: Tensor<B, 2>) -> Tensor<B, 1> {
    (x * mask.clone()).sum() / mask.sum().clamp_min(1.0)
}

/// PPO's clipped surrogate, to minimise.
pub fn policy_loss<B: Backend>(
    logp: Tensor<B, 2>,
    logp_old: Tensor<B, 2>,
    adv: Tensor<B, 2>,
    mask: Tensor<B, 2>,
    clip: f64,
) -> Tensor<B, 1> {
    let ratio = (logp - logp_old).clamp(-20.0, 20.0).exp();
    let unclipped = ratio.clone() * adv.clone();
    let clipped = ratio.clamp(1.0 - clip, 1.0 + clip) * adv;
    masked_mean(unclipped.min_pair(clipped), mask).neg()
}

/// The clipped value loss, to minimise.
pub fn value_loss<B: Backend>(
    v: Tensor<B, 2>,
    v_old: Tensor<B, 2>,
    returns: Tensor<B, 2>,
    mask: Tensor<B, 2>,
    clip: f64,
) -> Tensor<B, 1> {
    let clipped = v_old.clone() + (v.clone() - v_old).clamp(-clip, clip);
    let a = (v - returns.clone()).square();
    let b = (clipped - returns).square();
    masked_mean(a.max_pair(b), mask) * 0.5
}

/// A batch of rollouts: each row is prompt + response, right-padded.
pub struct Rollouts {
    pub rows: usize,
    /// Padded length.
    pub len: usize,
    pub ids: Vec<i32>,
    /// `[rows, len − 1]`: 1 where position `t` predicts a response token (`ids[t + 1]`).
    pub mask: Vec<f32>,
    /// `[rows, len]`: 1 at each response's last token (where the reward model reads).
    pub end: Vec<f32>,
    pub prompt_lens: Vec<usize>,
    pub response_lens: Vec<usize>,
    /// Per row: the response ended itself (`<|im_end|>` or end of text) rather than at `max_new`.
    pub ended: Vec<bool>,
}

/// The prompt ids of conversation `seed` of `split`: the conversation up to its last user turn.
/// One whose last question does not fit the context with `max_new` tokens to spare is replaced
/// by the next seed's (a small context keeps the short questions).
pub fn prompt_ids(
    tok: &Tokenizer,
    config: &GptConfig,
    split: Split,
    seed: u64,
    max_new: usize,
) -> anyhow::Result<Vec<u32>> {
    for attempt in 0..200 {
        let (messages, _) = instruct::conversation(split, hash(&[seed, attempt]), None);
        match build_prompt(tok, config.eos_token_id, &messages[..messages.len() - 1], config.n_positions, max_new) {
            Ok(p) => return Ok(p.ids),
            Err(wgpt::chat::ChatError::TooLong(..)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!("no prompt fits the context of {} with {max_new} tokens for the reply", config.n_positions)
}

/// How responses are decoded.
pub struct Decode {
    /// Tokens that end a response (`<|im_end|>`, end of text).
    pub stops: HashSet<u32>,
    pub max_new: usize,
    /// The seed is replaced by each row's.
    pub params: SamplingParams,
    /// Fills the rows after their end.
    pub pad: u32,
}

/// Samples a response to each prompt from `weights` (the CPU reference engine), row `i` drawn
/// with `seeds[i]`.
pub fn sample(
    config: &GptConfig,
    weights: ModelWeights,
    prompts: &[Vec<u32>],
    seeds: &[u64],
    decode: &Decode,
) -> anyhow::Result<Rollouts> {
    let (stops, max_new, params, pad) = (&decode.stops, decode.max_new, decode.params, decode.pad);
    let mut session = CpuSession::new(config.clone(), Arc::new(weights));
    let mut sampler = Sampler::new();
    let mut rows: Vec<(Vec<u32>, usize)> = Vec::new();
    let mut ended = Vec::new();
    for (prompt, &seed) in prompts.iter().zip(seeds) {
        session.reset();
        let mut ids = prompt.clone();
        let mut stopped = false;
        let room = config.n_positions.saturating_sub(prompt.len()).min(max_new);
        let mut logits = session.run(prompt, ForwardOptions::default())?.last_logits().to_vec();
        let p = SamplingParams { seed, ..params };
        for step in 0..room {
            let tok = sampler.sample(&logits, &ids, &p, step as u32);
            ids.push(tok);
            if stops.contains(&tok) {
                stopped = true;
                break;
            }
            if step + 1 < room {
                logits = session.run(&[tok], ForwardOptions::default())?.last_logits().to_vec();
            }
        }
        rows.push((ids, prompt.len()));
        ended.push(stopped);
    }
    let len = rows.iter().map(|r| r.0.len()).max().unwrap_or(2).max(2);
    let mut out = Rollouts {
        rows: rows.len(),
        len,
        ids: Vec::new(),
        mask: Vec::new(),
        end: Vec::new(),
        prompt_lens: Vec::new(),
        response_lens: Vec::new(),
        ended,
    };
    for (ids, p) in rows {
        let n = ids.len();
        out.ids.extend(ids.iter().map(|&i| i as i32).chain(std::iter::repeat_n(pad as i32, len - n)));
        out.mask.extend((0..len - 1).map(|t| if t + 1 >= p && t + 1 < n { 1.0 } else { 0.0 }));
        out.end.extend((0..len).map(|t| if t + 1 == n && n > p { 1.0 } else { 0.0 }));
        out.prompt_lens.push(p);
        out.response_lens.push(n - p);
    }
    Ok(out)
}

impl Rollouts {
    pub fn ids<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2, Int> {
        Tensor::from_data(TensorData::new(self.ids.clone(), [self.rows, self.len]), device)
    }

    /// A `[rows, len − 1]` tensor of per-token values.
    pub fn tokens<B: Backend>(&self, data: Vec<f32>, device: &B::Device) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(data, [self.rows, self.len - 1]), device)
    }

    /// The response tokens' entries of a `[rows, len − 1]` table, one list per row.
    pub fn per_response(&self, table: &[f32]) -> Vec<Vec<f32>> {
        (0..self.rows)
            .map(|r| {
                let w = self.len - 1;
                (0..w).filter(|&t| self.mask[r * w + t] > 0.0).map(|t| table[r * w + t]).collect()
            })
            .collect()
    }

    /// Per-response lists back into a `[rows, len − 1]` table (0 off the responses).
    pub fn to_table(&self, lists: &[Vec<f32>]) -> Vec<f32> {
        let w = self.len - 1;
        let mut out = vec![0.0; self.rows * w];
        for (r, list) in lists.iter().enumerate() {
            let mut it = list.iter();
            for t in 0..w {
                if self.mask[r * w + t] > 0.0 {
                    out[r * w + t] = *it.next().expect("one value per response token");
                }
            }
        }
        out
    }
}

/// Seeds of iteration `it`'s rollouts: prompts and sampling.
pub fn rollout_seeds(seed: u64, it: u64, rows: usize) -> (Vec<u64>, Vec<u64>) {
    let prompts = (0..rows as u64).map(|r| hash(&[seed, it, r, 1])).collect();
    let samples = (0..rows as u64).map(|r| hash(&[seed, it, r, 2])).collect();
    (prompts, samples)
}

/// What a PPO run needs besides its models.
pub struct PpoArgs {
    pub out: std::path::PathBuf,
    pub run: crate::store::checkpoint::RunSpec,
    pub ppo: PpoConfig,
    pub eval_every: u64,
    pub eval_prompts: usize,
    pub ckpt_every: u64,
    pub keep: usize,
    pub resume: bool,
    /// The reward model's head row (also the critic's value row).
    pub score_row: usize,
    /// The matmuls' dtype, for all four models.
    pub precision: crate::model::Precision,
}

pub struct PpoSummary {
    pub iterations: u64,
    pub first_reward: Option<f64>,
    pub last_reward: Option<f64>,
    pub val_reward: Option<f64>,
    pub checkpoint: std::path::PathBuf,
}

fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

/// The reward model and the held-out prompts it scores replies to.
pub struct Judge<'a, B: Backend> {
    pub rm: &'a crate::model::Gpt<B>,
    pub score_row: usize,
    pub prompts: usize,
}

/// Mean reward-model score of the policy's greedy replies to the first `judge.prompts` held-out
/// prompts.
pub fn held_out_reward<B: FusedOps>(
    policy: &ModelWeights,
    config: &GptConfig,
    tok: &Tokenizer,
    judge: &Judge<B>,
    decode: &Decode,
    device: &B::Device,
) -> anyhow::Result<f64> {
    let prompts: Vec<Vec<u32>> = (0..judge.prompts as u64)
        .map(|s| prompt_ids(tok, config, Split::Eval, s, decode.max_new))
        .collect::<anyhow::Result<_>>()?;
    let seeds = vec![0; prompts.len()];
    let greedy = Decode { stops: decode.stops.clone(), params: SamplingParams::greedy(), ..*decode };
    let r = sample(config, policy.clone(), &prompts, &seeds, &greedy)?;
    let end = Tensor::<B, 2>::from_data(TensorData::new(r.end.clone(), [r.rows, r.len]), device);
    let scores = to_vec(judge.rm.score(r.ids::<B>(device), end, judge.score_row));
    Ok(scores.iter().map(|&s| s as f64).sum::<f64>() / scores.len().max(1) as f64)
}

/// Greedy decoding of chat replies for `tok`'s template, up to `max_new` tokens.
pub fn chat_decode(tok: &Tokenizer, config: &GptConfig, max_new: usize, pad: u32) -> anyhow::Result<Decode> {
    let wgpt::chat::Template::ChatMl { end, .. } = wgpt::chat::template(tok) else {
        anyhow::bail!("the tokenizer has no chat tokens");
    };
    Ok(Decode {
        stops: [Some(end), config.eos_token_id].into_iter().flatten().collect(),
        max_new,
        params: SamplingParams::greedy(),
        pad,
    })
}

/// The PPO loop. `sft` is the starting policy and the frozen reference; `rm` the reward model
/// and the critic's start.
pub fn train_ppo<AB: TrainBackend>(
    args: &PpoArgs,
    sft: &(GptConfig, ModelWeights),
    rm: &(GptConfig, ModelWeights),
    tok: &Tokenizer,
    tokenizer_json: &[u8],
    device: &AB::Device,
) -> anyhow::Result<PpoSummary> {
    use std::io::Write;

    use anyhow::bail;
    use burn::module::AutodiffModule;
    use burn::optim::GradientsParams;
    use serde_json::json;

    use crate::model::Gpt;
    use crate::model::optim::AdamW;
    use crate::store::checkpoint::{self, TrainState};
    use crate::train::{check_spec, lr_at, metrics_file};

    type Inner<AB> = <AB as burn::tensor::backend::AutodiffBackend>::InnerBackend;
    let (config, run, row) = (&sft.0, &args.run, args.score_row);
    let critic_dir = args.out.join("critic");
    let p = args.precision;
    let reference = Gpt::<Inner<AB>>::from_weights(config, &sft.1, device).with_precision(p);
    let reward_model = Gpt::<Inner<AB>>::from_weights(&rm.0, &rm.1, device).with_precision(p);
    // A kill between the policy's and the critic's save leaves one a step ahead: the resume
    // point is the newest step both hold.
    let (mut policy, mut critic, mut opt_p, mut opt_c, start) =
        match checkpoint::resume_point(&[&args.out, &critic_dir], args.resume)? {
            Some((step, dirs)) => {
                let (dir, cdir) = (&dirs[0], &dirs[1]);
                let state = checkpoint::load_state(dir)?;
                let (pc, pw) = checkpoint::load_weights(dir)?;
                check_spec(&state, run, config, &pc)?;
                let (cc, cw) = checkpoint::load_weights(cdir)?;
                eprintln!("resuming from {} (iteration {step})", dir.display());
                (
                    Gpt::<AB>::from_weights(&pc, &pw, device),
                    Gpt::<AB>::from_weights(&cc, &cw, device),
                    checkpoint::load_optimizer::<Inner<AB>>(dir, run.adam, step, device)?,
                    checkpoint::load_optimizer::<Inner<AB>>(cdir, run.adam, step, device)?,
                    step,
                )
            }
            None => (
                Gpt::<AB>::from_weights(config, &sft.1, device),
                Gpt::<AB>::from_weights(&rm.0, &rm.1, device),
                AdamW::new(run.adam),
                AdamW::new(run.adam),
                0,
            ),
        };
    (policy, critic) = (policy.with_precision(p), critic.with_precision(p));
    if start >= run.steps {
        bail!("the run is already at iteration {start} of {}; raise --steps to continue", run.steps);
    }
    let decode = Decode {
        params: SamplingParams { temperature: 1.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0, seed: 0 },
        ..chat_decode(tok, config, args.ppo.max_new, row as u32)?
    };
    let judge = Judge { rm: &reward_model, score_row: row, prompts: args.eval_prompts };
    let mut metrics = metrics_file(&args.out, start)?;
    let (mut first_reward, mut last_reward, mut val_reward) = (None, None, None);
    let mut last_ckpt = std::path::PathBuf::new();
    let p = &args.ppo;
    for it in start..run.steps {
        let lr = lr_at(run, it);
        let (prompt_seeds, sample_seeds) = rollout_seeds(run.seed, it, run.batch);
        let prompts: Vec<Vec<u32>> = prompt_seeds
            .iter()
            .map(|&s| prompt_ids(tok, config, Split::Train, s, p.max_new))
            .collect::<anyhow::Result<_>>()?;
        let policy_weights = policy.valid().to_weights();
        let r = sample(config, policy_weights, &prompts, &sample_seeds, &decode)?;

        // Scores, without gradients.
        let ids = r.ids::<Inner<AB>>(device);
        let (rows, len) = (r.rows, r.len);
        let logp_old = to_vec(policy.valid().token_logprobs(ids.clone()));
        let logp_ref = to_vec(reference.token_logprobs(ids.clone()));
        let v_old = to_vec(critic.valid().position_scores(ids.clone(), row).slice([0..rows, 0..len - 1]));
        let end = Tensor::<Inner<AB>, 2>::from_data(TensorData::new(r.end.clone(), [rows, len]), device);
        let scores = to_vec(reward_model.score(ids, end, row));

        // Rewards, advantages, returns.
        let (lp, lr_ref, vs) = (r.per_response(&logp_old), r.per_response(&logp_ref), r.per_response(&v_old));
        let (mut advs, mut rets, mut kls) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..rows {
            let penalty = if r.ended[i] { 0.0 } else { p.missing_end_penalty as f32 };
            let rw = token_rewards(&lp[i], &lr_ref[i], scores[i] - penalty, p.kl_coef as f32);
            let (a, ret) = gae(&rw, &vs[i], p.gamma as f32, p.lam as f32);
            kls.push(lp[i].iter().zip(&lr_ref[i]).map(|(a, b)| (a - b) as f64).sum::<f64>());
            advs.push(a);
            rets.push(ret);
        }
        let mut flat: Vec<f32> = advs.iter().flatten().copied().collect();
        whiten(&mut flat);
        let mut it_flat = flat.into_iter();
        let advs: Vec<Vec<f32>> =
            advs.iter().map(|a| a.iter().map(|_| it_flat.next().unwrap_or(0.0)).collect()).collect();

        // One update of each network.
        let ids = r.ids::<AB>(device);
        let mask = r.tokens::<AB>(r.mask.clone(), device);
        let loss_p = policy_loss(
            policy.token_logprobs(ids.clone()),
            r.tokens::<AB>(logp_old, device),
            r.tokens::<AB>(r.to_table(&advs), device),
            mask.clone(),
            p.clip,
        );
        let pl = to_vec(loss_p.clone())[0];
        let grads = GradientsParams::from_grads(loss_p.backward(), &policy);
        policy = opt_p.step(lr, policy, grads).0;
        let v_new = critic.position_scores(ids, row).slice([0..rows, 0..len - 1]);
        let loss_v = value_loss(
            v_new,
            r.tokens::<AB>(v_old, device),
            r.tokens::<AB>(r.to_table(&rets), device),
            mask,
            p.value_clip,
        );
        let vl = to_vec(loss_v.clone())[0];
        let grads = GradientsParams::from_grads(loss_v.backward(), &critic);
        critic = opt_c.step(lr, critic, grads).0;
        if !(pl.is_finite() && vl.is_finite()) {
            bail!("PPO diverged at iteration {it} (policy loss {pl}, value loss {vl}); lower --lr");
        }

        let done = it + 1;
        let reward = scores.iter().map(|&s| s as f64).sum::<f64>() / rows as f64;
        let kl = kls.iter().sum::<f64>() / rows as f64;
        first_reward.get_or_insert(reward);
        last_reward = Some(reward);
        let mean_len = r.response_lens.iter().sum::<usize>() as f64 / rows as f64;
        let mut line = json!({
            "step": done, "reward": reward, "kl": kl, "policy_loss": pl, "value_loss": vl, "lr": lr,
            "response_tokens": mean_len, "finished": r.ended.iter().filter(|&&e| e).count() as f64 / rows as f64,
        });
        if done % args.eval_every == 0 || done == run.steps {
            let v = held_out_reward(&policy.valid().to_weights(), config, tok, &judge, &decode, device)?;
            val_reward = Some(v);
            line["val_reward"] = v.into();
            eprintln!("iteration {done}/{}: reward {reward:.3}, KL {kl:.3}, held-out reward {v:.3}", run.steps);
        }
        writeln!(metrics, "{line}")?;
        if done % args.ckpt_every == 0 || done == run.steps {
            let state = TrainState { step: done, tokens_seen: 0, run: run.clone(), val_loss: None };
            // Both written before either is pruned, so a kill at any point leaves a step both hold.
            checkpoint::write(&critic_dir, &critic.valid(), &opt_c, &state, tokenizer_json)?;
            last_ckpt = checkpoint::write(&args.out, &policy.valid(), &opt_p, &state, tokenizer_json)?;
            checkpoint::prune(&args.out, args.keep)?;
            checkpoint::prune(&critic_dir, args.keep)?;
        }
    }
    Ok(PpoSummary { iterations: run.steps, first_reward, last_reward, val_reward, checkpoint: last_ckpt })
}
