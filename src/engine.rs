//! One loaded model behind one async interface, for the page (and anything else that must not
//! block): the CPU reference or the WGSL engine, step-wise generation that can be stopped
//! between steps, next-token probabilities and attention maps.
//!
//! Generation is a state machine: [`Engine::start`] sets up a reply, each [`Engine::step`] adds
//! up to `n` tokens and returns the text they completed. The caller (a Web Worker) handles its
//! messages — "stop", a new request — between steps. The KV cache is kept between calls: a new
//! prompt that extends the context (the next turn of a chat) only runs its new tokens.

use std::sync::Arc;

use crate::bundle::BundleError;
use crate::chat::{ChatError, ChatPrompt, Message};
use crate::generate::{FinishReason, GenerateError};
use crate::gpu::{Gpu, GpuError, GpuOptions};
use crate::llama::DEFAULT_MAX_CONTEXT;
use crate::loaded::{LoadedModel, Summary, TextFormat};
use crate::model::{Draw, ForwardOptions, LanguageModel};
use crate::sampler::{Sampler, SamplingParams};
use crate::tokenizer::{StreamDecoder, Tokenizer};

/// A reply being generated.
struct Reply {
    params: SamplingParams,
    max_tokens: usize,
    stop_tokens: Vec<u32>,
    stop_text: Option<String>,
    /// Ids to feed before the next pick (the prompt's new part, then the last token).
    feed: Vec<u32>,
    history: Vec<u32>,
    generated: usize,
    sampler: Sampler,
    decoder: StreamDecoder,
    /// Text held back because it could be the start of `stop_text`.
    held: String,
}

/// What one [`Engine::step`] produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Step {
    pub text: String,
    pub tokens: usize,
    /// Set when the reply is over.
    pub finish: Option<FinishReason>,
}

pub struct Engine {
    /// The tokenizer, chat format and end tokens.
    pub text: TextFormat,
    pub summary: Summary,
    pub tokenizer: Tokenizer,
    model: Box<dyn LanguageModel>,
    /// The ids in the KV cache, in order.
    context: Vec<u32>,
    reply: Option<Reply>,
}

impl Engine {
    /// The CPU engine (quantized matrices times 8-bit activations in decode:
    /// [`crate::quant::Activations::Q8`]), holding at most [`DEFAULT_MAX_CONTEXT`] positions of a
    /// Llama-family model (GPT-2 holds its whole table). The model must have a tokenizer.
    pub fn cpu(loaded: LoadedModel) -> Result<Self, BundleError> {
        loaded.text.tokenizer()?;
        let session = loaded.cpu_with(DEFAULT_MAX_CONTEXT, crate::quant::Activations::default());
        Self::new(loaded, session)
    }

    /// The WGSL engine on `gpu`; on failure the model comes back, for a CPU fallback. The host's
    /// copy of the weights is freed once they are on the device.
    pub fn gpu(loaded: LoadedModel, gpu: Arc<Gpu>, options: GpuOptions) -> Result<Self, Box<(GpuError, LoadedModel)>> {
        if loaded.text.tokenizer.is_none() {
            return Err(Box::new((GpuError::Unsupported("a model without a tokenizer".into()), loaded)));
        }
        // Loading compiles and runs every pipeline once: nothing is compiled on the first token.
        match loaded.gpu(gpu, options) {
            Ok(model) => Ok(Self::new(loaded, Box::new(model)).expect("the tokenizer was checked")),
            Err(e) => Err(Box::new((e, loaded))),
        }
    }

    /// `model` (made from `loaded` by the caller) with `loaded`'s text format; `loaded`'s own
    /// hold on the weights is dropped here.
    pub fn new(loaded: LoadedModel, model: Box<dyn LanguageModel>) -> Result<Self, BundleError> {
        let summary = loaded.summary();
        let mut text = loaded.text;
        let tokenizer = text.tokenizer.take().ok_or_else(|| BundleError::NoTokenizer("the model".into()))?;
        Ok(Engine { text, summary, tokenizer, model, context: vec![], reply: None })
    }

    /// Positions the engine holds.
    pub fn n_ctx(&self) -> usize {
        self.model.n_ctx()
    }

    /// The prompt for the assistant's next reply to `messages`, leaving `reserve` positions.
    pub fn chat_prompt(&self, messages: &[Message], reserve: usize) -> Result<ChatPrompt, ChatError> {
        self.text.chat_prompt_with(&self.tokenizer, messages, self.n_ctx(), reserve)
    }

    pub fn describe(&self) -> String {
        self.model.describe()
    }

    /// `"cpu"` or `"gpu"`.
    pub fn backend(&self) -> &'static str {
        self.model.backend()
    }

    fn truncate(&mut self, pos: usize) {
        self.model.truncate(pos);
        self.context.truncate(pos);
    }

    /// Keeps the cached prefix `ids` shares with the context (at least one id is left to run,
    /// so there are logits); returns the ids still to feed.
    fn reuse(&mut self, ids: &[u32]) -> Vec<u32> {
        let common = self.context.iter().zip(ids).take_while(|(a, b)| a == b).count().min(ids.len().saturating_sub(1));
        self.truncate(common);
        ids[common..].to_vec()
    }

    /// Appends `ids` and returns the last position's logits.
    async fn feed(&mut self, ids: &[u32]) -> Result<Vec<f32>, GenerateError> {
        let logits = self.model.forward(ids, ForwardOptions::default()).await?.last_logits().to_vec();
        self.context.extend_from_slice(ids);
        Ok(logits)
    }

    fn check_fits(&self, ids: &[u32]) -> Result<(), GenerateError> {
        let n_ctx = self.n_ctx();
        if ids.is_empty() {
            return Err(GenerateError::EmptyPrompt);
        }
        if ids.len() > n_ctx {
            return Err(GenerateError::PromptTooLong { tokens: ids.len(), used: 0, max: n_ctx });
        }
        Ok(())
    }

    /// The `k` most likely next tokens after `ids` (temperature 1), most likely first.
    pub async fn next_token_probs(&mut self, ids: &[u32], k: usize) -> Result<Vec<(u32, f32)>, GenerateError> {
        self.check_fits(ids)?;
        self.reply = None;
        let feed = self.reuse(ids);
        let logits = self.feed(&feed).await?;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        let k = k.clamp(1, order.len());
        order.select_nth_unstable_by(k - 1, |&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        let mut top: Vec<(u32, f32)> =
            order[..k].iter().map(|&i| (i, (((logits[i as usize] - max) as f64).exp() / sum) as f32)).collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(top)
    }

    /// Every layer's attention probabilities for `ids` from an empty context:
    /// per layer `[n_head, n, n]` (row = query, column = key).
    pub async fn attention(&mut self, ids: &[u32]) -> Result<Vec<Vec<f32>>, GenerateError> {
        self.check_fits(ids)?;
        self.reply = None;
        self.truncate(0);
        let opts = ForwardOptions { attention: true, ..Default::default() };
        let maps = self.model.forward(ids, opts).await?.attention.clone();
        self.context.extend_from_slice(ids);
        Ok(maps)
    }

    /// Sets up a reply to `prompt` (which may extend the current context: only new ids run).
    pub fn start(
        &mut self,
        prompt: &[u32],
        params: SamplingParams,
        max_tokens: usize,
        stop_tokens: Vec<u32>,
        stop_text: Option<String>,
    ) -> Result<(), GenerateError> {
        params.validate()?;
        self.check_fits(prompt)?;
        let feed = self.reuse(prompt);
        self.reply = Some(Reply {
            params,
            max_tokens,
            stop_tokens,
            stop_text: stop_text.filter(|s| !s.is_empty()),
            feed,
            history: prompt.to_vec(),
            generated: 0,
            sampler: Sampler::new(),
            decoder: StreamDecoder::new(),
            held: String::new(),
        });
        Ok(())
    }

    /// Stops the reply being generated (its text so far stays in the context).
    pub fn stop(&mut self) {
        self.reply = None;
    }

    /// Generates up to `n` more tokens of the current reply.
    pub async fn step(&mut self, n: usize) -> Result<Step, GenerateError> {
        let Some(mut reply) = self.reply.take() else {
            return Ok(Step { text: String::new(), tokens: 0, finish: Some(FinishReason::Cancelled) });
        };
        let mut out = Step { text: String::new(), tokens: 0, finish: None };
        while out.tokens < n {
            if reply.generated == reply.max_tokens {
                out.finish = Some(FinishReason::MaxTokens);
                break;
            }
            if self.context.len() + reply.feed.len() > self.n_ctx() {
                out.finish = Some(FinishReason::ContextFull);
                break;
            }
            let feed = std::mem::take(&mut reply.feed);
            let next = self.pick(&feed, &mut reply).await?;
            out.tokens += 1;
            if reply.stop_tokens.contains(&next) {
                // The stop token goes into the context, so the next turn follows it.
                reply.feed = vec![];
                self.feed_stop(next).await?;
                out.finish = Some(FinishReason::StopToken);
                break;
            }
            reply.generated += 1;
            reply.history.push(next);
            reply.feed = vec![next];
            if let Some(piece) = reply.decoder.push(&self.tokenizer, next)? {
                reply.held.push_str(&piece);
            }
            if Self::release(&mut reply, &mut out.text) {
                out.finish = Some(FinishReason::StopToken);
                break;
            }
        }
        if out.finish.is_some() {
            if let Some(rest) = reply.decoder.finish(&self.tokenizer)? {
                reply.held.push_str(&rest);
            }
            if out.finish != Some(FinishReason::StopToken) || reply.stop_text.is_none() {
                out.text.push_str(&std::mem::take(&mut reply.held));
            } else {
                Self::release(&mut reply, &mut out.text);
            }
        } else {
            self.reply = Some(reply);
        }
        Ok(out)
    }

    /// Moves held text to `out`, keeping back a suffix that could begin the stop text; true
    /// when the stop text appeared (the text from it on is dropped).
    fn release(reply: &mut Reply, out: &mut String) -> bool {
        let Some(stop) = &reply.stop_text else {
            out.push_str(&std::mem::take(&mut reply.held));
            return false;
        };
        if let Some(at) = reply.held.find(stop.as_str()) {
            reply.held.truncate(at);
            out.push_str(&std::mem::take(&mut reply.held));
            return true;
        }
        // The longest suffix of `held` that is a prefix of `stop` waits for more text.
        let keep = (1..stop.len().min(reply.held.len() + 1))
            .rev()
            .find(|&k| {
                reply.held.is_char_boundary(reply.held.len() - k)
                    && stop.starts_with(&reply.held[reply.held.len() - k..])
            })
            .unwrap_or(0);
        let cut = reply.held.len() - keep;
        out.push_str(&reply.held[..cut]);
        reply.held.drain(..cut);
        false
    }

    async fn feed_stop(&mut self, id: u32) -> Result<(), GenerateError> {
        if self.context.len() < self.n_ctx() {
            self.feed(&[id]).await?;
        }
        Ok(())
    }

    /// Feeds `feed` and picks the next token (on the device where the engine can).
    async fn pick(&mut self, feed: &[u32], reply: &mut Reply) -> Result<u32, GenerateError> {
        let draw = Draw {
            sampler: &mut reply.sampler,
            history: &reply.history,
            params: &reply.params,
            step: reply.generated as u32,
        };
        let next = self.model.next_token(feed, draw).await?;
        self.context.extend_from_slice(feed);
        Ok(next)
    }
}
