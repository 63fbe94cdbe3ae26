//! InstructGPT's losses on tiny models against hand-computed values.

use burn::tensor::{Int, Tensor, TensorData};
use wgpt::config::GptConfig;
use wgpt_train::backend::Cpu;
use wgpt_train::model::Gpt;
use wgpt_train::model::init::gpt2_init;
use wgpt_train::stages::reward::{pair_accuracy, preference_loss, reward_init};

fn tiny() -> (GptConfig, wgpt::weights::ModelWeights) {
    let c = GptConfig::from_json(br#"{"vocab_size":40,"n_positions":16,"n_embd":16,"n_layer":2,"n_head":2}"#).unwrap();
    let w = gpt2_init(&c, 3);
    (c, w)
}

#[test]
fn the_pairwise_loss_is_the_mean_of_minus_log_sigmoid_over_ranked_pairs() {
    // Two prompts, K = 3: rewards best first.
    let r = [2.0f32, 1.0, 0.0, 0.5, 1.5, -1.0];
    let device = Default::default();
    let loss: f32 =
        preference_loss(Tensor::<Cpu, 1>::from_data(TensorData::new(r.to_vec(), [6]), &device), 3).into_scalar();
    let nls = |d: f64| (1.0 + (-d).exp()).ln();
    // Pairs (0,1), (0,2), (1,2) of each group.
    let want = (nls(1.0) + nls(2.0) + nls(1.0) + nls(-1.0) + nls(1.5) + nls(2.5)) / 6.0;
    assert!((loss as f64 - want).abs() < 1e-6, "{loss} vs {want}");
    assert!((pair_accuracy(&r, 3) - 5.0 / 6.0).abs() < 1e-12);
    // Equal rewards: ln 2, the loss a fresh reward head starts at.
    let zero: f32 = preference_loss(Tensor::<Cpu, 1>::zeros([8], &device), 4).into_scalar();
    assert!((zero as f64 - 2f64.ln()).abs() < 1e-6);
}

#[test]
fn the_reward_head_is_one_zeroed_row_of_an_untied_head_read_at_the_marked_position() {
    let (c, w) = tiny();
    let (rc, rw) = reward_init(&c, &w, 7);
    assert!(!rc.tie_word_embeddings);
    let Some(wgpt::quant::Matrix::F32(head)) = &rw.lm_head else { panic!("an f32 head") };
    assert!(head.data[7 * 16..8 * 16].iter().all(|&x| x == 0.0));
    assert_eq!(&head.data[..7 * 16], &w.wte.to_f32().data[..7 * 16]);

    // With a non-zero row, the score is the logit of that row at the marked position.
    let mut rw = rw;
    let Some(wgpt::quant::Matrix::F32(head)) = &mut rw.lm_head else { unreachable!() };
    for (i, x) in head.data[7 * 16..8 * 16].iter_mut().enumerate() {
        *x = (i as f32 - 8.0) / 10.0;
    }
    let device = Default::default();
    let model = Gpt::<Cpu>::from_weights(&rc, &rw, &device);
    let ids = Tensor::<Cpu, 2, Int>::from_data(TensorData::new(vec![1, 2, 3, 4, 5, 6, 7, 8], [2, 4]), &device);
    let at =
        Tensor::<Cpu, 2>::from_data(TensorData::new(vec![0.0f32, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0], [2, 4]), &device);
    let score: Vec<f32> = model.score(ids.clone(), at, 7).into_data().iter::<f32>().collect();
    let logits: Vec<f32> = model.forward(ids).into_data().iter::<f32>().collect();
    let logit = |b: usize, t: usize| logits[(b * 4 + t) * 40 + 7];
    assert!((score[0] - logit(0, 2)).abs() < 1e-5 && (score[1] - logit(1, 3)).abs() < 1e-5, "{score:?}");
}

#[test]
fn ppo_rewards_advantages_and_returns_by_hand() {
    use wgpt_train::stages::ppo::{gae, token_rewards, whiten};
    // KL penalty per token, the score added at the last token.
    let r = token_rewards(&[-1.0, -2.0, -0.5], &[-1.5, -2.0, -1.0], 3.0, 0.1);
    let want = [-0.05, 0.0, -0.05 + 3.0];
    assert!(r.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{r:?}");
    // GAE with γ = 1, λ = 0.5: δ = [1 + 2 − 1, 0 + 3 − 2, 2 + 0 − 3] = [2, 1, −1];
    // A2 = −1, A1 = 1 + 0.5·(−1) = 0.5, A0 = 2 + 0.5·0.5 = 2.25; returns = A + V.
    let (a, ret) = gae(&[1.0, 0.0, 2.0], &[1.0, 2.0, 3.0], 1.0, 0.5);
    assert_eq!(a, vec![2.25, 0.5, -1.0]);
    assert_eq!(ret, vec![3.25, 2.5, 2.0]);
    let mut x = vec![1.0, 2.0, 3.0, 4.0];
    whiten(&mut x);
    let mean = x.iter().sum::<f32>() / 4.0;
    let var = x.iter().map(|v| v * v).sum::<f32>() / 4.0;
    assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5);
}

#[test]
fn ppo_clips_the_ratio_and_the_value_by_hand() {
    use wgpt_train::stages::ppo::{policy_loss, value_loss};
    let device = Default::default();
    let t = |v: Vec<f32>| Tensor::<Cpu, 2>::from_data(TensorData::new(v, [1, 4]), &device);
    // Ratios e^{ln 1.5} = 1.5 and e^{ln 0.5} = 0.5 with ε = 0.2:
    // A > 0, ρ = 1.5 → min(1.5A, 1.2A) = 1.2A; A < 0, ρ = 1.5 → min(−1.5, −1.2) = −1.5;
    // A > 0, ρ = 0.5 → min(0.5, 0.8) = 0.5; the 4th token is masked out.
    let (l15, l05) = (1.5f32.ln(), 0.5f32.ln());
    let loss: f32 = policy_loss(
        t(vec![l15, l15, l05, 9.0]),
        t(vec![0.0, 0.0, 0.0, 0.0]),
        t(vec![1.0, -1.0, 1.0, 5.0]),
        t(vec![1.0, 1.0, 1.0, 0.0]),
        0.2,
    )
    .into_scalar();
    let want = -(1.2 - 1.5 + 0.5) / 3.0;
    assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
    // Values: v_old 0, clip 0.2. v = 1, R = 1: max(0, (0.2 − 1)²) = 0.64; v = −0.1, R = 0.5:
    // max(0.36, 0.36) = 0.36; ½·mean = 0.25.
    let loss: f32 = value_loss(
        t(vec![1.0, -0.1, 0.0, 0.0]),
        t(vec![0.0, 0.0, 0.0, 0.0]),
        t(vec![1.0, 0.5, 0.0, 0.0]),
        t(vec![1.0, 1.0, 0.0, 0.0]),
        0.2,
    )
    .into_scalar();
    assert!((loss - 0.25).abs() < 1e-6, "{loss}");
}

#[test]
fn rollouts_mark_which_responses_ended_and_where_the_reward_is_read() {
    use std::collections::HashSet;
    use wgpt::sampler::SamplingParams;
    use wgpt_train::stages::ppo::{Decode, sample};
    let (c, w) = tiny();
    let prompts = vec![vec![1, 2, 3], vec![4, 5]];
    let decode = |stops: HashSet<u32>| Decode { stops, max_new: 5, params: SamplingParams::greedy(), pad: 0 };
    // Every token a stop: each response is one token long and ended itself.
    let r = sample(&c, w.clone(), &prompts, &[1, 2], &decode((0..40).collect())).unwrap();
    assert_eq!((r.ended.clone(), r.response_lens.clone()), (vec![true, true], vec![1, 1]));
    // No stops: both run to max_new and count as cut off (the missing-end penalty applies).
    let r = sample(&c, w, &prompts, &[1, 2], &decode(HashSet::new())).unwrap();
    assert_eq!((r.ended.clone(), r.response_lens.clone()), (vec![false, false], vec![5, 5]));
    assert_eq!(r.len, 8);
    // Row 1 (prompt of 2, padded to 8): positions 1..=5 predict its response, the reward sits on
    // its last token, position 6.
    assert_eq!(&r.mask[7..14], &[0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
    assert_eq!(&r.end[8..16], &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
}
