//! The generation loop, for any engine that turns ids into next-token logits.
//!
//! Context policy: the context never slides. A prompt that does not fit is an error
//! ([`GenerateError::PromptTooLong`]); generation that fills the context stops with
//! [`FinishReason::ContextFull`].

use thiserror::Error;

use crate::config::GptConfig;
use crate::model::EngineError;
use crate::sampler::{SamplingError, SamplingParams};
use crate::tokenizer::{Tokenizer, TokenizerError};
#[cfg(not(target_arch = "wasm32"))]
use crate::{
    model::{Draw, LanguageModel, block_on},
    sampler::Sampler,
    tokenizer::StreamDecoder,
};

#[derive(Debug, Error)]
pub enum GenerateError {
    #[error("the prompt is empty and the model has no bos_token_id/eos_token_id to start from")]
    EmptyPrompt,
    #[error("the prompt is {tokens} tokens; with {used} already in context it exceeds the model's {max}")]
    PromptTooLong { tokens: usize, used: usize, max: usize },
    #[error(transparent)]
    Sampling(#[from] SamplingError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

/// A GPU failure outside a call (loading, a benchmark's copy) is an engine error too.
impl From<crate::gpu::GpuError> for GenerateError {
    fn from(e: crate::gpu::GpuError) -> Self {
        GenerateError::Engine(e.into())
    }
}

impl GenerateError {
    /// A stable name for the kind of failure (see [`EngineError::kind`]).
    pub fn kind(&self) -> &'static str {
        match self {
            GenerateError::EmptyPrompt | GenerateError::Sampling(_) | GenerateError::Tokenizer(_) => "bad-input",
            GenerateError::PromptTooLong { .. } => "context-full",
            GenerateError::Engine(e) => e.kind(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GenerateParams {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Sampling one of these ends generation; the stop token is not part of the output.
    pub stop_tokens: Vec<u32>,
}

impl GenerateParams {
    /// `max_tokens` with the default sampler, stopping at the model's end-of-text token.
    pub fn new(config: &GptConfig, max_tokens: usize) -> Self {
        GenerateParams {
            max_tokens,
            sampling: SamplingParams::default(),
            stop_tokens: config.eos_token_id.into_iter().collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    MaxTokens,
    StopToken,
    ContextFull,
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct Generation {
    /// The generated ids (without the stop token).
    pub ids: Vec<u32>,
    pub text: String,
    pub finish: FinishReason,
}

/// The ids of a prompt; an empty prompt starts from the model's bos (or eos) token, as GPT-2's
/// unconditional samples do.
pub fn prompt_ids(tok: &Tokenizer, config: &GptConfig, text: &str) -> Result<Vec<u32>, GenerateError> {
    let ids = tok.encode(text)?;
    if !ids.is_empty() {
        return Ok(ids);
    }
    config.bos_token_id.or(config.eos_token_id).map(|id| vec![id]).ok_or(GenerateError::EmptyPrompt)
}

/// Feeds `prompt` after whatever the model's context holds and samples up to `max_tokens`,
/// calling `on_text` with each piece of text as it completes (never half a UTF-8 character);
/// `on_text` returning false cancels. Afterwards the context holds the prompt and every
/// generated token but the last one sampled (which was never fed) and the stop token.
/// Synchronous: it blocks on the engine's futures (native callers: the CLI, the trainer).
#[cfg(not(target_arch = "wasm32"))]
pub fn generate(
    model: &mut (impl LanguageModel + ?Sized),
    tok: &Tokenizer,
    prompt: &[u32],
    params: &GenerateParams,
    mut on_text: impl FnMut(&str) -> bool,
) -> Result<Generation, GenerateError> {
    params.sampling.validate()?;
    if prompt.is_empty() {
        return Err(GenerateError::EmptyPrompt);
    }
    let (used, n_ctx) = (model.position(), model.n_ctx());
    if used + prompt.len() > n_ctx {
        return Err(GenerateError::PromptTooLong { tokens: prompt.len(), used, max: n_ctx });
    }
    let mut history = prompt.to_vec();
    let mut out = Generation { ids: Vec::new(), text: String::new(), finish: FinishReason::MaxTokens };
    if params.max_tokens == 0 {
        return Ok(out);
    }
    let mut sampler = Sampler::new();
    let mut decoder = StreamDecoder::new();
    let mut emit = |piece: Option<String>, text: &mut String| -> bool {
        match piece {
            Some(p) => {
                text.push_str(&p);
                on_text(&p)
            }
            None => true,
        }
    };
    let mut feed = prompt.to_vec();
    loop {
        let draw =
            Draw { sampler: &mut sampler, history: &history, params: &params.sampling, step: out.ids.len() as u32 };
        let next = block_on(model.next_token(&feed, draw))?;
        if params.stop_tokens.contains(&next) {
            out.finish = FinishReason::StopToken;
            break;
        }
        out.ids.push(next);
        history.push(next);
        if !emit(decoder.push(tok, next)?, &mut out.text) {
            out.finish = FinishReason::Cancelled;
            return Ok(out);
        }
        if out.ids.len() == params.max_tokens {
            break;
        }
        if model.position() == n_ctx {
            out.finish = FinishReason::ContextFull;
            break;
        }
        feed.clear();
        feed.push(next);
    }
    emit(decoder.finish(tok)?, &mut out.text);
    Ok(out)
}

/// Mean next-token cross-entropy of `ids` given `logits` `[ids.len(), vocab]` (position `i`
/// predicts `ids[i + 1]`), as HF computes `loss` with `labels = input_ids`.
pub fn next_token_loss(logits: &[f32], ids: &[u32]) -> Option<f32> {
    if ids.len() < 2 {
        return None;
    }
    let vocab = logits.len() / ids.len();
    let mut total = 0.0f64;
    for (row, &target) in logits.chunks_exact(vocab).zip(&ids[1..]) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = max as f64 + row.iter().map(|&l| ((l - max) as f64).exp()).sum::<f64>().ln();
        total += lse - row[target as usize] as f64;
    }
    Some((total / (ids.len() - 1) as f64) as f32)
}
