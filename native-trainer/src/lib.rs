//! wgpt-train: the GPT-1 → InstructGPT stages of the story on burn — pre-train, fine-tune, evaluate
//! zero- and few-shot, supervised fine-tuning on conversations.
//!
//! `model` is the GPT (HF GPT-2 names), `init` GPT-2's initialisation, `optim` AdamW, `data` the
//! token shards and batches, `prepare` corpus → tokenizer → shards, `checkpoint` atomic save and
//! resume, `train` the loop; `finetune` a task's labelled batches, `icl` zero/few-shot
//! evaluation; `instruct` the generated conversations, `sft` supervised fine-tuning on them,
//! `chat_eval` their held-out score, `reward` the reward model, `ppo` PPO
//! against it; `bundle` export/import to the inference bundle, `backend`
//! the choice of CPU, wgpu or CUDA.

pub mod backend;
pub mod bundle;
pub mod chat_eval;
pub mod checkpoint;
pub mod data;
pub mod finetune;
pub mod fused;
pub mod icl;
pub mod init;
pub mod instruct;
pub mod model;
pub mod optim;
pub mod plot;
pub mod ppo;
pub mod prepare;
pub mod reward;
pub use wgpt::rng;
pub mod sft;
pub mod train;
