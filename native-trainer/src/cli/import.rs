//! `import`: a bundle (e.g. real HF GPT-2 weights) → a folder `pretrain --init-from` starts from.

use std::path::PathBuf;

use clap::Args;
use wgpt_train::store::bundle::{StoreDtype, write_bundle};

#[derive(Args)]
pub struct ImportCmd {
    /// A bundle folder: config.json + model.safetensors (HF GPT-2 names) + a tokenizer.
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    out: PathBuf,
}

impl ImportCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let bundle = wgpt::bundle::Bundle::load(&self.model)?;
        let tokenizer = bundle.tokenizer.to_json()?;
        write_bundle(&self.out, &bundle.config, &bundle.weights, tokenizer.as_bytes(), StoreDtype::F32)?;
        eprintln!(
            "imported {} → {}: {} parameters; fine-tune with `prepare --tokenizer {}` then `pretrain --init-from {}` and the same shape flags",
            self.model.display(),
            self.out.display(),
            bundle.config.parameter_count(),
            self.out.display(),
            self.out.display()
        );
        Ok(())
    }
}
