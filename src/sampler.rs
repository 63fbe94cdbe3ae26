//! Choosing the next token from logits: greedy, or temperature → top-k → top-p sampling, with a
//! repetition penalty, driven by a counter-based RNG so that a seed and a step number give the
//! same random number on any platform and in the GPU's sampling kernel (`shaders/sample.wgsl`).

use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum SamplingError {
    #[error("temperature must be a finite number >= 0 (0 = greedy), got {0}")]
    Temperature(f32),
    #[error("top_p must be in (0, 1], got {0}")]
    TopP(f32),
    #[error("repetition_penalty must be a finite number > 0, got {0}")]
    RepetitionPenalty(f32),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep only the k most likely tokens; 0 = no limit.
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p`; 1 = no limit.
    pub top_p: f32,
    /// CTRL's penalty on tokens already in the context: positive logits divided by it, negative
    /// ones multiplied. 1 = off.
    pub repetition_penalty: f32,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams { temperature: 0.8, top_k: 40, top_p: 0.95, repetition_penalty: 1.0, seed: 0 }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        SamplingParams { temperature: 0.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0, seed: 0 }
    }

    pub fn validate(&self) -> Result<(), SamplingError> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(SamplingError::Temperature(self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(SamplingError::TopP(self.top_p));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(SamplingError::RepetitionPenalty(self.repetition_penalty));
        }
        Ok(())
    }
}

/// PCG's output permutation as a 32-bit hash (portable to WGSL, which has no 64-bit integers).
pub fn hash32(x: u32) -> u32 {
    let state = x.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// The uniform number in `[0, 1)` for draw `step` of stream `seed`.
pub fn uniform(seed: u64, step: u32) -> f32 {
    let s = hash32(seed as u32 ^ hash32((seed >> 32) as u32));
    let r = hash32(s ^ hash32(step));
    (r >> 8) as f32 / (1u32 << 24) as f32
}

/// The GPU sampler's workgroup size: the vocabulary is summed in this many contiguous chunks.
const SAMPLE_CHUNKS: usize = 256;

/// Picks tokens; holds scratch space so that sampling allocates nothing after the first call.
///
/// The definition, shared with the GPU kernel `shaders/sample.wgsl` so both pick the same token
/// for the same seed and draw: s = penalised logits / temperature; top-k keeps every token whose
/// s is at least the k-th largest (ties kept); top-p then keeps every token whose s is at least
/// τ, the largest value such that the kept tokens with s ≥ τ hold probability ≥ top_p; finally
/// u·Z (u = [`uniform`], Z the kept mass) is located walking the kept tokens in id order.
#[derive(Debug, Default)]
pub struct Sampler {
    scores: Vec<f32>,
    sorted: Vec<f32>,
    parts: Vec<f32>,
}

impl Sampler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Chooses the next token. `history` is the context so far (for the repetition penalty);
    /// `step` numbers the draw within the seed's stream. Parameters must be validated.
    pub fn sample(&mut self, logits: &[f32], history: &[u32], p: &SamplingParams, step: u32) -> u32 {
        // The penalty once per token of the history: asking each of the vocabulary's tokens
        // whether the history holds it was vocabulary × context steps a token.
        let s = &mut self.scores;
        s.clear();
        s.extend_from_slice(logits);
        if p.repetition_penalty != 1.0 {
            for &t in history {
                // From the logit, not the score: a token seen twice is penalised once.
                if let Some(&l) = logits.get(t as usize) {
                    s[t as usize] = if l > 0.0 { l / p.repetition_penalty } else { l * p.repetition_penalty };
                }
            }
        }
        if p.temperature == 0.0 {
            return argmax(s) as u32;
        }
        s.iter_mut().for_each(|v| *v /= p.temperature);
        let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut threshold = f32::NEG_INFINITY;
        let top_k = p.top_k > 0 && p.top_k < s.len();
        if top_k || p.top_p < 1.0 {
            // Only the truncations need the scores in order.
            let descending = |a: &f32, b: &f32| b.total_cmp(a);
            let sorted = &mut self.sorted;
            sorted.clear();
            sorted.extend_from_slice(s);
            if top_k {
                // The k-th largest found in linear time, and only the scores at least as large
                // (ties kept) sorted: the whole vocabulary sorted every token took longer than
                // the page's CPU engine took for the token itself (SmolLM2's 49,152 scores).
                threshold = *sorted.select_nth_unstable_by(p.top_k - 1, descending).1;
                // Float order (−0 beside +0) or total order (NaN): the same prefix of the
                // scores sorted as the walk below takes from the full sort.
                sorted.retain(|&v| v >= threshold || v.total_cmp(&threshold).is_ge());
            }
            sorted.sort_unstable_by(descending);
        }
        if p.top_p < 1.0 {
            let kept = self.sorted.iter().take_while(|&&v| v >= threshold);
            let total: f32 = kept.clone().map(|&v| (v - max).exp()).sum();
            let mut acc = 0.0;
            for &v in kept {
                acc += (v - max).exp();
                if acc >= p.top_p * total {
                    threshold = v;
                    break;
                }
            }
        }
        let mass = |v: f32| if v >= threshold { (v - max).exp() } else { 0.0 };
        // Locate u·Z in id order, summing exactly as the GPU kernel does (f32, 256 contiguous
        // chunks, then the chunk sums in order): with 50k tokens the order of an f32 sum moves
        // the boundaries between tokens by more than their width.
        let chunk = s.len().div_ceil(SAMPLE_CHUNKS);
        let parts = &mut self.parts;
        parts.clear();
        parts.extend(s.chunks(chunk).map(|c| c.iter().fold(0.0f32, |a, &v| a + mass(v))));
        let z = parts.iter().fold(0.0f32, |a, &p| a + p);
        let point = uniform(p.seed, step) * z;
        let (mut acc, mut who, mut rest) = (0.0f32, 0, 0.0f32);
        for (i, &part) in parts.iter().enumerate() {
            if part > 0.0 {
                who = i;
                rest = point - acc;
                if point < acc + part {
                    break;
                }
            }
            acc += part;
        }
        let (mut acc, mut last) = (0.0f32, who * chunk);
        for (i, &v) in s.iter().enumerate().skip(who * chunk).take(chunk) {
            let e = mass(v);
            if e > 0.0 {
                acc += e;
                last = i;
                if rest < acc {
                    break;
                }
            }
        }
        last as u32
    }
}

/// The first index of the largest value, as torch.argmax (values that are NaN passed over; a
/// first value of NaN is kept, as a scan from it keeps it). Eight running maxima by compare and
/// select, which vectorize, then the first index holding their largest: a scan that compares
/// each value with the best so far (and `f32::max`, a libm call per value in wasm) took
/// 0.17 ms of each of the page's greedy tokens over SmolLM2's 49,152 logits.
fn argmax(s: &[f32]) -> usize {
    let Some(&first) = s.first() else { return 0 };
    if first.is_nan() {
        return 0;
    }
    let mut lanes = [first; 8];
    let (chunks, rest) = s.as_chunks::<8>();
    for c in chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            if v > *m {
                *m = v;
            }
        }
    }
    let max = lanes.iter().chain(rest).fold(first, |m, &v| if v > m { v } else { m });
    s.iter().position(|&v| v == max).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_first_maximum() {
        let mut s = Sampler::new();
        assert_eq!(s.sample(&[0.1, 3.0, 3.0, -1.0], &[], &SamplingParams::greedy(), 0), 1);
        // NaN passed over, unless it comes first (as a scan from it); ties past the first eight.
        let nan = f32::NAN;
        let mut long = vec![0.5; 20];
        long[13] = 2.0;
        long[17] = 2.0;
        long[3] = nan;
        for (logits, want) in
            [(&[nan, 5.0, 1.0][..], 0), (&[1.0, nan, 5.0], 2), (&[-0.0, 0.0], 0), (&long, 13), (&[], 0)]
        {
            assert_eq!(s.sample(logits, &[], &SamplingParams::greedy(), 0), want, "{logits:?}");
            assert_eq!(full_sort_sample(logits, &[], &SamplingParams::greedy(), 0), want, "{logits:?}");
        }
    }

    #[test]
    fn repetition_penalty_moves_greedy_choice() {
        let mut s = Sampler::new();
        let p = SamplingParams { repetition_penalty: 2.0, ..SamplingParams::greedy() };
        // 3.0 / 2 = 1.5 < 2.0, so token 2 wins once token 1 has been seen.
        assert_eq!(s.sample(&[0.0, 3.0, 2.0], &[1], &p, 0), 2);
        // Negative logits are pushed further down, not up: -1.0 becomes -2.0 < -1.5.
        assert_eq!(s.sample(&[-1.0, -3.0, -1.5], &[0], &p, 0), 2);
        // Once however often the token occurs: 2.0 / 1.04 ≈ 1.92 still beats 1.9 (twice, 1.85
        // would not).
        let p = SamplingParams { repetition_penalty: 1.04, ..p };
        assert_eq!(s.sample(&[2.0, 1.9], &[0, 0, 0], &p, 0), 0);
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_cuts_the_tail() {
        let mut s = Sampler::new();
        let logits = [1.0, 5.0, 2.0, 4.9];
        for step in 0..50 {
            let p = SamplingParams { temperature: 1.0, top_k: 1, seed: 7, ..Default::default() };
            assert_eq!(s.sample(&logits, &[], &p, step), 1);
            // softmax ≈ [0.010, 0.52, 0.026, 0.44]: top_p 0.9 keeps tokens 1 and 3 only.
            let p = SamplingParams { temperature: 1.0, top_k: 0, top_p: 0.9, seed: 7, ..Default::default() };
            assert!([1, 3].contains(&s.sample(&logits, &[], &p, step)));
        }
    }

    #[test]
    fn sampling_follows_the_distribution_and_the_seed() {
        let mut s = Sampler::new();
        let logits = [0.0, (3.0f32).ln()]; // probabilities 1/4, 3/4
        let p = SamplingParams { temperature: 1.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0, seed: 42 };
        let draws: Vec<u32> = (0..4000).map(|i| s.sample(&logits, &[], &p, i)).collect();
        let ones = draws.iter().filter(|&&t| t == 1).count() as f32 / 4000.0;
        assert!((ones - 0.75).abs() < 0.03, "{ones}");
        let again: Vec<u32> = (0..4000).map(|i| s.sample(&logits, &[], &p, i)).collect();
        assert_eq!(draws, again);
        let other: Vec<u32> = (0..4000).map(|i| s.sample(&logits, &[], &SamplingParams { seed: 43, ..p }, i)).collect();
        assert_ne!(draws, other);
    }

    /// The sampler as it was first written (every score sorted, the history searched for each
    /// token): the definition the faster one must give token for token.
    fn full_sort_sample(logits: &[f32], history: &[u32], p: &SamplingParams, step: u32) -> u32 {
        let (mut scores, mut sorted, mut parts) = (Vec::new(), Vec::new(), Vec::new());
        let penalized = |i: usize| -> f32 {
            let l = logits[i];
            if p.repetition_penalty != 1.0 && history.contains(&(i as u32)) {
                if l > 0.0 { l / p.repetition_penalty } else { l * p.repetition_penalty }
            } else {
                l
            }
        };
        if p.temperature == 0.0 {
            // First index of the maximum, as torch.argmax.
            let mut best = 0;
            for i in 1..logits.len() {
                if penalized(i) > penalized(best) {
                    best = i;
                }
            }
            return best as u32;
        }
        let s = &mut scores;
        s.clear();
        s.extend((0..logits.len()).map(|i| penalized(i) / p.temperature));
        let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut threshold = f32::NEG_INFINITY;
        let top_k = p.top_k > 0 && p.top_k < s.len();
        if top_k || p.top_p < 1.0 {
            // Only the truncations need the scores in order.
            let sorted = &mut sorted;
            sorted.clear();
            sorted.extend_from_slice(s);
            sorted.sort_unstable_by(|a, b| b.total_cmp(a));
            if top_k {
                threshold = sorted[p.top_k - 1];
            }
        }
        if p.top_p < 1.0 {
            let kept = sorted.iter().take_while(|&&v| v >= threshold);
            let total: f32 = kept.clone().map(|&v| (v - max).exp()).sum();
            let mut acc = 0.0;
            for &v in kept {
                acc += (v - max).exp();
                if acc >= p.top_p * total {
                    threshold = v;
                    break;
                }
            }
        }
        let mass = |v: f32| if v >= threshold { (v - max).exp() } else { 0.0 };
        // Locate u·Z in id order, summing exactly as the GPU kernel does (f32, 256 contiguous
        // chunks, then the chunk sums in order): with 50k tokens the order of an f32 sum moves
        // the boundaries between tokens by more than their width.
        let chunk = s.len().div_ceil(SAMPLE_CHUNKS);
        let parts = &mut parts;
        parts.clear();
        parts.extend(s.chunks(chunk).map(|c| c.iter().fold(0.0f32, |a, &v| a + mass(v))));
        let z = parts.iter().fold(0.0f32, |a, &p| a + p);
        let point = uniform(p.seed, step) * z;
        let (mut acc, mut who, mut rest) = (0.0f32, 0, 0.0f32);
        for (i, &part) in parts.iter().enumerate() {
            if part > 0.0 {
                who = i;
                rest = point - acc;
                if point < acc + part {
                    break;
                }
            }
            acc += part;
        }
        let (mut acc, mut last) = (0.0f32, who * chunk);
        for (i, &v) in s.iter().enumerate().skip(who * chunk).take(chunk) {
            let e = mass(v);
            if e > 0.0 {
                acc += e;
                last = i;
                if rest < acc {
                    break;
                }
            }
        }
        last as u32
    }

    /// The sampler gives the full sort's token on vocabularies with ties, −0 and +0, NaN, for top-k
    /// and top-p alone and together, with and without a repetition penalty.
    #[test]
    fn sampling_gives_the_full_sort_s_token() {
        let mut state = 3u64;
        let mut next = move || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as u32
        };
        let mut sampler = Sampler::new();
        for round in 0..300 {
            let n = 1 + next() as usize % 3000;
            // Few distinct values, so ties are common; some zeros of either sign.
            let logits: Vec<f32> = (0..n)
                .map(|_| match next() % 8 {
                    0 if round % 7 == 0 => [f32::NAN, -f32::NAN][next() as usize % 2],
                    0 => 0.0,
                    1 => -0.0,
                    _ => (next() % 64) as f32 / 8.0 - 4.0,
                })
                .collect();
            // Repeated tokens, and ids past the vocabulary.
            let history: Vec<u32> = (0..next() % 40).map(|_| next() % (n.min(30) as u32 + 5)).collect();
            let p = SamplingParams {
                temperature: [0.0, 0.7, 1.0][round % 3],
                top_k: [0, 1, 40, n, n + 3][next() as usize % 5],
                top_p: [1.0, 0.95, 0.5][next() as usize % 3],
                repetition_penalty: [1.0, 1.3][next() as usize % 2],
                seed: round as u64,
            };
            for step in 0..4 {
                let want = full_sort_sample(&logits, &history, &p, step);
                assert_eq!(sampler.sample(&logits, &history, &p, step), want, "round {round}, {p:?}, step {step}");
            }
        }
    }

    #[test]
    fn invalid_parameters_are_named() {
        let bad = SamplingParams { temperature: -1.0, ..Default::default() };
        assert_eq!(bad.validate(), Err(SamplingError::Temperature(-1.0)));
        let bad = SamplingParams { top_p: 0.0, ..Default::default() };
        assert_eq!(bad.validate(), Err(SamplingError::TopP(0.0)));
        let bad = SamplingParams { repetition_penalty: f32::NAN, ..Default::default() };
        assert!(matches!(bad.validate(), Err(SamplingError::RepetitionPenalty(_))));
        assert_eq!(SamplingParams::default().validate(), Ok(()));
    }
}
