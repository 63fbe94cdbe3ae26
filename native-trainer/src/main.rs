//! `wgpt-train`: one entry point per stage of the trainer.

use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(
    name = "wgpt-train",
    version,
    about = "Pre-train, fine-tune and evaluate a GPT on burn; export it to a wgpt bundle"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Text files → byte-level BPE tokenizer → token shards (train/val).
    Prepare(cli::PrepareCmd),
    /// Pre-train (or continue, with --resume) on prepared shards.
    Pretrain(cli::PretrainCmd),
    /// GPT-1's second stage: train on one task's labelled examples, the loss on the answer only.
    Finetune(cli::FinetuneCmd),
    /// InstructGPT step 1: supervised fine-tuning on conversations, the loss on the assistant only.
    Sft(cli::SftCmd),
    /// InstructGPT step 2: a reward model from ranked responses (pairwise loss), with its
    /// held-out pair accuracy.
    Reward(cli::RewardCmd),
    /// InstructGPT step 3: PPO of the SFT policy against the reward model, with a KL penalty.
    Ppo(cli::PpoCmd),
    /// Zero-, one- and few-shot accuracy on held-out task episodes (a table and a plot), or
    /// held-out chat accuracy (`--suite chat`).
    Eval(cli::EvalCmd),
    /// A checkpoint (or a run folder: its newest checkpoint) → a bundle `wgpt` loads.
    Export(cli::ExportCmd),
    /// A bundle (e.g. real HF GPT-2 weights) → a folder `pretrain --init-from` starts from.
    Import(cli::ImportCmd),
    /// Mean next-token cross-entropy of a bundle on some ids or text, from the burn forward.
    Loss(cli::LossCmd),
    /// Draws a run's training and validation loss (metrics.jsonl) to a PNG.
    Plot(cli::PlotCmd),
    /// Training throughput and model FLOPs utilisation for a model size.
    Bench(cli::BenchCmd),
}

/// burn-flex allocates a fresh buffer for every op's output. glibc serves large ones with mmap and
/// gives them back to the kernel on free, so every training step page-faults its activations in
/// again (≈ 10 % of a CPU step by `perf`). Keeping freed memory in the heap: +20 % tokens/s.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called first thing in main, before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20); // glibc's largest allowed value
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

fn main() {
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Prepare(c) => c.run(),
        Command::Pretrain(c) => c.run(),
        Command::Finetune(c) => c.run(),
        Command::Sft(c) => c.run(),
        Command::Reward(c) => c.run(),
        Command::Ppo(c) => c.run(),
        Command::Eval(c) => c.run(),
        Command::Export(c) => c.run(),
        Command::Import(c) => c.run(),
        Command::Loss(c) => c.run(),
        Command::Bench(c) => c.run(),
        Command::Plot(c) => c.run(),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
