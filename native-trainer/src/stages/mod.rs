//! The stages of the story, in the order the article tells it. Each plugs its batches (and, for
//! the reward model, its objective) into [`crate::train`], or runs its own loop (PPO).

/// The held-out chat score of the SFT and PPO models.
pub mod chat_eval;
/// GPT-1's second stage: a task's labelled examples, the loss on the answer only.
pub mod finetune;
/// GPT-2's zero-shot and GPT-3's few-shot evaluation on held-out task episodes.
pub mod icl;
/// InstructGPT step 3: PPO of the SFT policy against the reward model.
pub mod ppo;
/// Pre-training: next-token prediction on the prepared shards (GPT-1's first stage, GPT-2, GPT-3).
pub mod pretrain;
/// InstructGPT step 2: the reward model's pairwise ranking objective.
pub mod reward;
/// InstructGPT step 1: supervised fine-tuning on conversations.
pub mod sft;
