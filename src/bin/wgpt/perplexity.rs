//! `wgpt perplexity`: how well a model predicts a text (the measure of quantized weights), and
//! with `--reference`, how often its top token agrees with another model's on the same text.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use pollster::block_on;
use serde_json::json;
use wgpt::perplexity::{perplexity, top1_agreement};

use crate::cli::{EngineArgs, engine, open};

#[derive(Args)]
pub struct PerplexityArgs {
    #[arg(long)]
    model: PathBuf,
    /// The text to score (UTF-8).
    #[arg(long)]
    text_file: PathBuf,
    /// Tokens per window (default: the engine's context); longer texts slide by half a window.
    #[arg(long)]
    window: Option<usize>,
    /// Another model (the same tokenizer) to compare top-1 predictions with, position by position.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Print `{"tokens": n, "nll": x, "ppl": y}` (and the reference's, and the agreement).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    engine: EngineArgs,
}

pub fn run(a: PerplexityArgs) -> Result<()> {
    let text =
        std::fs::read_to_string(&a.text_file).with_context(|| format!("cannot read {}", a.text_file.display()))?;
    let score = |path: &PathBuf| -> Result<(Vec<u32>, wgpt::perplexity::Perplexity)> {
        let loaded = open(path)?;
        let ids = loaded.text.tokenizer()?.encode(&text)?;
        if ids.len() < 2 {
            bail!("{}: {} token(s); at least 2 are needed to score", a.text_file.display(), ids.len());
        }
        let mut model = engine(&loaded, &a.engine)?;
        let window = a.window.unwrap_or(model.n_ctx());
        Ok((ids.clone(), block_on(perplexity(&mut *model, &ids, window))?))
    };
    let (ids, p) = score(&a.model)?;
    let mut out = json!({ "tokens": p.tokens, "nll": p.nll, "ppl": p.ppl });
    if let Some(reference) = &a.reference {
        let (ref_ids, r) = score(reference)?;
        if ref_ids != ids {
            bail!("{} tokenizes the text differently; top-1 agreement needs the same tokens", reference.display());
        }
        out["reference"] = json!({ "tokens": r.tokens, "nll": r.nll, "ppl": r.ppl });
        out["top1_agreement"] = top1_agreement(&p, &r).into();
    }
    if a.json {
        println!("{out}");
    } else {
        println!("tokens       {}", p.tokens);
        println!("nll          {:.4} nats/token", p.nll);
        println!("perplexity   {:.3}", p.ppl);
        if let Some(agree) = out["top1_agreement"].as_f64() {
            println!("reference    perplexity {:.3}", out["reference"]["ppl"].as_f64().unwrap_or(0.0));
            println!("top-1        {:.2} % of positions agree", agree * 100.0);
        }
    }
    Ok(())
}
