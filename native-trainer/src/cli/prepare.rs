//! `prepare`: text files → byte-level BPE tokenizer → token shards.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use wgpt_train::data::prepare::{PrepareArgs, prepare};

/// The corpus that ships in the repository (see its SOURCES.md).
pub fn default_corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/default")
}

#[derive(Args)]
pub struct PrepareCmd {
    /// Folders of .txt files (or single files); default: the corpus shipped in the repo.
    #[arg(long)]
    corpus: Vec<PathBuf>,
    /// Where tokenizer.json, train.bin, val.bin and meta.json go.
    #[arg(long)]
    out: PathBuf,
    /// BPE vocabulary size (special tokens included).
    #[arg(long, default_value_t = 4096)]
    vocab_size: usize,
    /// Use this tokenizer (a tokenizer.json or a bundle folder) instead of training one, e.g.
    /// to fine-tune imported GPT-2 weights.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// The fraction of the data (in bytes) that is task-suite episodes, e.g. 0.3: the bursty
    /// documents in-context learning is learned from.
    #[arg(long, default_value_t = 0.0)]
    episodes: f64,
    /// Write the natural text's training split this many times (1–100) into train.bin; the episodes
    /// fill their fraction of the larger total, so a run that reads the natural text N times
    /// meets N times as many distinct episodes.
    #[arg(long, default_value_t = 1)]
    natural_passes: usize,
}

impl PrepareCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let corpus = if self.corpus.is_empty() { vec![default_corpus()] } else { self.corpus };
        let tokenizer_json = match &self.tokenizer {
            None => None,
            Some(p) if p.is_dir() => Some(wgpt::bundle::load_tokenizer(p)?.to_json()?),
            Some(p) => Some(std::fs::read_to_string(p).with_context(|| p.display().to_string())?),
        };
        let t = Instant::now();
        let meta = prepare(&PrepareArgs {
            corpus,
            out: self.out.clone(),
            vocab_size: self.vocab_size,
            tokenizer_json,
            episodes: self.episodes,
            natural_passes: self.natural_passes,
        })?;
        eprintln!(
            "prepared {} in {:.1} s: vocab {}, {} train + {} val tokens from {} sources",
            self.out.display(),
            t.elapsed().as_secs_f64(),
            meta.vocab_size,
            meta.train_tokens,
            meta.val_tokens,
            meta.sources.len()
        );
        Ok(())
    }
}
