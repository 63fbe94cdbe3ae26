//! `wgpt quantize`: a model (a folder, a GGUF file or a downloaded ORG/NAME) written as one GGUF
//! file with its matrices in F32, F16, Q8_0, Q4_0 or Q4_K — the file llama.cpp's tools would write, so
//! llama.cpp loads it, the page opens it, and every `wgpt` command takes it as `--model`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use wgpt::gguf::export::{Target, export};

use crate::cli::open;

#[derive(Args)]
pub struct QuantizeArgs {
    #[arg(long)]
    model: PathBuf,
    /// f32, f16, q8_0, q4_0 or q4_k (norms, biases and positions stay F32; with q4_0 and q4_k
    /// the embedding and the head are Q8_0, as llama.cpp keeps them; with q4_k a matrix whose
    /// rows are not whole 256-value super-blocks is Q8_0).
    #[arg(long)]
    to: Target,
    /// The GGUF file to write (not overwritten unless --force).
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    force: bool,
}

pub fn run(a: QuantizeArgs) -> Result<()> {
    if a.out.exists() && !a.force {
        bail!("{} exists (--force to replace it)", a.out.display());
    }
    let model = open(&a.model)?;
    let (bytes, counts) = export(&model, a.to).with_context(|| format!("cannot write {}", a.model.display()))?;
    // Written beside, then renamed: a failure never leaves half a file under the name.
    let part = a.out.with_extension("gguf.part");
    std::fs::write(&part, &bytes).with_context(|| format!("cannot write {}", part.display()))?;
    std::fs::rename(&part, &a.out).with_context(|| format!("cannot write {}", a.out.display()))?;
    let types: Vec<String> = counts.iter().map(|(t, n)| format!("{n} {}", t.name())).collect();
    eprintln!("{}: {:.2} MB, tensors {}", a.out.display(), bytes.len() as f64 / 1e6, types.join(", "));
    Ok(())
}
