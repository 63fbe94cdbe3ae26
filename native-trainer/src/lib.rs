//! wgpt-train: the GPT-1 → InstructGPT stages of the story on burn. Read it in this order:
//!
//! 1. [`model`] — the GPT (HF GPT-2 names), its initialisation, AdamW, and the fused CPU ops
//!    with hand-written backwards.
//! 2. [`store`] — checkpoints (atomic save, resume) and bundles (export/import to what `wgpt` and
//!    the page load).
//! 3. [`data`] — corpus → tokenizer → token shards ([`data::prepare`]), batches, and the
//!    generated instruction data ([`data::instruct`]).
//! 4. [`train`] — the loop: batches in, an [`train::Objective`] to minimise, checkpoints out.
//! 5. [`stages`] — the story in order: pre-training; GPT-1's fine-tuning and GPT-2/3's zero- and
//!    few-shot evaluation; InstructGPT's SFT, reward model and PPO; the chat evaluation.
//!
//! [`backend`] picks CPU, wgpu or CUDA; [`plot`] draws the curves.

pub mod backend;
pub mod data;
pub mod model;
pub mod plot;
pub use wgpt::rng;
pub mod stages;
pub mod store;
pub mod train;
