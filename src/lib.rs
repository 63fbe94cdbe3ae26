//! wgpt: GPT inference from a model bundle (HF GPT-2 `config.json` + `model.safetensors` +
//! tokenizer), with a plain-Rust CPU reference engine.
//!
//! The road a token takes: [`bundle`] loads and validates the files ([`config`], [`weights`],
//! [`tokenizer`]); an engine — [`cpu`] (the reference) or [`gpu`] (the WGSL kernels), both
//! implementing [`model::LanguageModel`] — runs the transformer with a KV cache; [`sampler`]
//! picks the next token; [`generate`](mod@generate) (blocking, the CLI) or [`engine`] (step-wise and async,
//! the page) loops and streams text through [`tokenizer::StreamDecoder`].

pub mod bench;
pub mod bundle;
pub mod chat;
pub mod chat_template;
pub mod config;
pub mod cpu;
pub mod engine;
pub mod generate;
pub mod gguf;
pub mod gpu;
pub mod hub;
pub mod llama;
pub mod loaded;
pub mod model;
pub mod perplexity;
pub mod quant;
pub mod rng;
pub mod sampler;
pub mod tasks;
pub mod tokenizer;
#[cfg(target_arch = "wasm32")]
pub mod web;
#[cfg(target_arch = "wasm32")]
pub mod web_fetch;
#[cfg(target_arch = "wasm32")]
pub mod web_heap;
pub mod weights;

pub use bundle::{Bundle, BundleError, TokenizerFiles};
pub use config::GptConfig;
pub use cpu::CpuSession;
#[cfg(not(target_arch = "wasm32"))]
pub use generate::generate;
pub use generate::{FinishReason, GenerateParams, Generation};
pub use loaded::LoadedModel;
pub use model::{EngineError, ForwardOptions, LanguageModel};
pub use sampler::SamplingParams;
pub use tokenizer::{StreamDecoder, Tokenizer};
