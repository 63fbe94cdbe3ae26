//! How well a model predicts a text: the mean negative log-likelihood of each token given the
//! ones before it, and its exponential, the perplexity — the measure quantized weights are
//! judged by (llama.cpp's `llama-perplexity`, HF's perplexity guide). Texts longer than the
//! model's context are scored with a sliding window moved half a window at a time (HF's
//! "strided" method): every token after the first window is predicted from at least half a
//! window of context, and each token is scored once.

use crate::model::{EngineError, ForwardOptions, LanguageModel};

/// A text's score under a model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Perplexity {
    /// Tokens predicted (all but the first).
    pub tokens: usize,
    /// Mean negative log-likelihood per predicted token, in nats.
    pub nll: f64,
    pub ppl: f64,
    /// The model's most likely token at each predicted position (for top-1 agreement between
    /// two models on the same text, under forced decoding).
    #[serde(skip)]
    pub top1: Vec<u32>,
}

/// Scores `ids` (at least two) with windows of `window` tokens (at most the model's context).
pub async fn perplexity(model: &mut dyn LanguageModel, ids: &[u32], window: usize) -> Result<Perplexity, EngineError> {
    let window = window.min(model.n_ctx()).max(2);
    let stride = (window / 2).max(1);
    let mut nll = 0f64;
    let mut top1 = Vec::with_capacity(ids.len().saturating_sub(1));
    let (mut begin, mut scored_to) = (0usize, 1usize);
    while scored_to < ids.len() {
        let end = (begin + window).min(ids.len());
        model.reset();
        let out = model.forward(&ids[begin..end], ForwardOptions { all_logits: true, ..Default::default() }).await?;
        let v = out.logits.len() / (end - begin);
        // Token t is predicted by the logits at position t - 1.
        for t in scored_to.max(begin + 1)..end {
            let row = &out.logits[(t - 1 - begin) * v..(t - begin) * v];
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let sum: f64 = row.iter().map(|&x| ((x - max) as f64).exp()).sum();
            nll -= (row[ids[t] as usize] - max) as f64 - sum.ln();
            top1.push(row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i as u32));
        }
        scored_to = end;
        begin += stride;
    }
    let tokens = top1.len();
    let nll = if tokens > 0 { nll / tokens as f64 } else { 0.0 };
    Ok(Perplexity { tokens, nll, ppl: nll.exp(), top1 })
}

/// The share of positions where two models' most likely tokens agree.
pub fn top1_agreement(a: &Perplexity, b: &Perplexity) -> f64 {
    let same = a.top1.iter().zip(&b.top1).filter(|(x, y)| x == y).count();
    same as f64 / a.top1.len().max(1) as f64
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    fn model() -> Box<dyn LanguageModel> {
        let json = br#"{"vocab_size":50,"n_positions":64,"n_embd":16,"n_layer":2,"n_head":2}"#;
        let config = crate::GptConfig::from_json(json).unwrap();
        let weights = std::sync::Arc::new(crate::weights::ModelWeights::random(&config, 3));
        Box::new(crate::CpuSession::new(config, weights))
    }

    #[test]
    fn the_window_scores_every_token_once_and_matches_one_pass_when_it_fits() {
        let mut m = model();
        let ids: Vec<u32> = (0..40).map(|i| (i * 7 % 50) as u32).collect();
        let whole = pollster::block_on(perplexity(&mut *m, &ids, 64)).unwrap();
        assert_eq!(whole.tokens, 39);
        // By hand: one forward pass, every position's log-probability of the next token.
        m.reset();
        let out =
            pollster::block_on(m.forward(&ids, ForwardOptions { all_logits: true, ..Default::default() })).unwrap();
        let v = out.logits.len() / ids.len();
        let mut nll = 0f64;
        for t in 1..ids.len() {
            let row = &out.logits[(t - 1) * v..t * v];
            let z: f64 = row.iter().map(|&x| (x as f64).exp()).sum();
            nll -= (row[ids[t] as usize] as f64).exp().ln() - z.ln();
        }
        assert!((whole.nll - nll / 39.0).abs() < 1e-5, "{} vs {}", whole.nll, nll / 39.0);
        assert!((whole.ppl - whole.nll.exp()).abs() < 1e-9);
        // A window shorter than the text still scores each token once, with less context.
        let strided = pollster::block_on(perplexity(&mut *m, &ids, 16)).unwrap();
        assert_eq!(strided.tokens, 39);
        assert_eq!(top1_agreement(&whole, &whole), 1.0);
    }
}
