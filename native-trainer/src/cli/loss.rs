//! `loss`: mean next-token cross-entropy of a bundle, from the burn forward.

use std::path::PathBuf;

use anyhow::bail;
use burn::tensor::{Int, Tensor, TensorData};
use clap::Args;
use serde_json::json;
use wgpt_train::model::Gpt;

#[derive(Args)]
pub struct LossCmd {
    #[arg(long)]
    model: PathBuf,
    /// Comma-separated token ids.
    #[arg(long, conflicts_with = "text")]
    ids: Option<String>,
    #[arg(long)]
    text: Option<String>,
    /// Print `{"loss": x, "tokens": n}`.
    #[arg(long)]
    json: bool,
}

impl LossCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let bundle = wgpt::bundle::Bundle::load(&self.model)?;
        let ids: Vec<u32> = match (&self.ids, &self.text) {
            (Some(s), _) => s
                .split(',')
                .map(|p| p.trim().parse::<u32>().map_err(|_| anyhow::anyhow!("--ids: {p:?} is not a token id")))
                .collect::<Result<_, _>>()?,
            (None, Some(t)) => bundle.tokenizer.encode(t)?,
            (None, None) => bail!("give --ids or --text"),
        };
        let c = &bundle.config;
        if ids.len() < 2 {
            bail!("the loss needs at least 2 tokens (got {})", ids.len());
        }
        if ids.len() > c.n_positions + 1 {
            bail!("{} tokens is more than the context {} + 1", ids.len(), c.n_positions);
        }
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= c.vocab_size) {
            bail!("token id {bad} is not below vocab_size {}", c.vocab_size);
        }
        let device = Default::default();
        let model = Gpt::<wgpt_train::backend::Cpu>::from_weights(c, &bundle.weights, &device);
        let n = ids.len() - 1;
        let x: Vec<i32> = ids[..n].iter().map(|&i| i as i32).collect();
        let y: Vec<i32> = ids[1..].iter().map(|&i| i as i32).collect();
        let x = Tensor::<wgpt_train::backend::Cpu, 2, Int>::from_data(TensorData::new(x, [1, n]), &device);
        let y = Tensor::<wgpt_train::backend::Cpu, 2, Int>::from_data(TensorData::new(y, [1, n]), &device);
        let loss: f32 = model.loss(x, y, None).into_scalar();
        if self.json {
            println!("{}", json!({"loss": loss, "tokens": ids.len()}));
        } else {
            println!("loss {loss:.6} over {n} predictions");
        }
        Ok(())
    }
}
