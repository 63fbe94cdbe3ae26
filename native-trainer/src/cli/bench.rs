//! `bench`: training throughput and model FLOPs utilisation.

use std::time::Instant;

use anyhow::bail;
use burn::optim::GradientsParams;
use burn::tensor::{Int, Tensor, TensorData};
use clap::Args;
use serde_json::json;
use wgpt::config::GptConfig;
use wgpt_train::backend::BackendKind;
use wgpt_train::model::fused::TrainBackend;
use wgpt_train::model::init::gpt2_init;
use wgpt_train::model::optim::{AdamW, AdamWConfig};
use wgpt_train::model::{Gpt, Precision};
use wgpt_train::rng::Rng;
use wgpt_train::with_backend;

use super::ModelFlags;

#[derive(Args)]
pub struct BenchCmd {
    #[command(flatten)]
    model: ModelFlags,
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendKind,
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[arg(long, default_value_t = 4096)]
    vocab_size: usize,
    /// Timed steps (after 2 warm-up steps).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// The device's peak TFLOP/s for the MFU figure (e.g. 989 for an H200 in bf16 dense).
    #[arg(long)]
    peak_tflops: Option<f64>,
    /// The matmuls' dtype (see `pretrain --precision`).
    #[arg(long, value_enum, default_value = "f32")]
    precision: Precision,
}

impl BenchCmd {
    pub fn run(self) -> anyhow::Result<()> {
        if self.batch == 0 || self.steps == 0 {
            bail!("--batch and --steps must be at least 1");
        }
        let config = self.model.config(self.vocab_size, 0)?;
        let report = with_backend!(self.backend, |B, device| bench::<B>(
            &config,
            self.batch,
            self.steps,
            self.precision,
            &device
        ))?;
        let params = config.parameter_count() as f64;
        let (l, h, q, t) =
            (config.n_layer as f64, config.n_head as f64, config.head_dim() as f64, config.n_positions as f64);
        let flops_per_token = 6.0 * params + 12.0 * l * h * q * t;
        let achieved = flops_per_token * report / 1e12;
        println!(
            "{}",
            json!({
                "preset": self.model.preset, "backend": format!("{:?}", self.backend).to_lowercase(),
                "precision": format!("{:?}", self.precision).to_lowercase(),
                "parameters": params, "batch": self.batch, "context": config.n_positions,
                "tokens_per_s": report, "flops_per_token": flops_per_token, "tflops": achieved,
                "mfu": self.peak_tflops.map(|p| achieved / p),
            })
        );
        Ok(())
    }
}

/// Tokens per second of full training steps (forward, backward, AdamW) on random tokens.
fn bench<B: TrainBackend>(
    config: &GptConfig,
    batch: usize,
    steps: usize,
    precision: Precision,
    device: &B::Device,
) -> anyhow::Result<f64> {
    let mut model = Gpt::<B>::from_weights(config, &gpt2_init(config, 1), device).with_precision(precision);
    let mut opt = AdamW::<B::InnerBackend>::new(AdamWConfig::default());
    let mut rng = Rng::new(7);
    let t = config.n_positions;
    let mut t0 = Instant::now();
    for step in 0..steps + 2 {
        if step == 2 {
            t0 = Instant::now();
        }
        let ids: Vec<i32> = (0..batch * (t + 1)).map(|_| (rng.next_u64() % config.vocab_size as u64) as i32).collect();
        let all = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch, t + 1]), device);
        let x = all.clone().slice([0..batch, 0..t]);
        let y = all.slice([0..batch, 1..t + 1]);
        let loss = model.loss(x, y, None);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = opt.step(1e-4, model, grads).0;
    }
    Ok((steps * batch * t) as f64 / t0.elapsed().as_secs_f64())
}
