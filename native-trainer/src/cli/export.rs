//! `export`: a checkpoint → a bundle `wgpt` and the page load.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use wgpt_train::store::bundle::{StoreDtype, write_bundle};
use wgpt_train::store::checkpoint;

use super::resolve_checkpoint;

#[derive(Args)]
pub struct ExportCmd {
    /// A checkpoint folder, or a run folder (its newest checkpoint).
    #[arg(long)]
    checkpoint: PathBuf,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "f16")]
    dtype: StoreDtype,
}

impl ExportCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let dir = resolve_checkpoint(&self.checkpoint)?;
        let (config, weights) = checkpoint::load_weights(&dir)?;
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = std::fs::read(&tok_path).with_context(|| tok_path.display().to_string())?;
        write_bundle(&self.out, &config, &weights, &tokenizer, self.dtype)?;
        // Prove the bundle loads as `wgpt` will load it.
        wgpt::bundle::Bundle::load(&self.out)
            .with_context(|| format!("{}: the exported bundle does not load", self.out.display()))?;
        eprintln!("exported {} → {} ({:?})", dir.display(), self.out.display(), self.dtype);
        Ok(())
    }
}
