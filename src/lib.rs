//! wgpt: GPT inference from a model bundle (HF GPT-2 `config.json` + `model.safetensors` +
//! tokenizer), with a plain-Rust CPU reference engine.
//!
//! The road a token takes: [`bundle`] loads and validates the files ([`config`], [`weights`],
//! [`tokenizer`]); [`cpu`] runs the transformer with a KV cache; [`sampler`] picks the next
//! token; [`generate`] loops and streams text through [`tokenizer::StreamDecoder`].

pub mod bench;
pub mod bundle;
pub mod chat;
pub mod config;
pub mod cpu;
pub mod engine;
pub mod generate;
pub mod gpu;
pub mod rng;
pub mod sampler;
pub mod tasks;
pub mod tokenizer;
#[cfg(target_arch = "wasm32")]
pub mod web;
pub mod weights;

pub use bundle::{Bundle, BundleError, TokenizerFiles};
pub use config::GptConfig;
pub use cpu::{CpuSession, EngineError, ForwardOptions};
pub use generate::{FinishReason, GenerateParams, Generation, generate};
pub use sampler::SamplingParams;
pub use tokenizer::{StreamDecoder, Tokenizer};
