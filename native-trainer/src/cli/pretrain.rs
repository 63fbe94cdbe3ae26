//! `pretrain`: pre-training on prepared shards (or continuing one, `--resume`).

use std::path::PathBuf;

use clap::Args;
use wgpt_train::data::Dataset;
use wgpt_train::stages::pretrain::pretrain;
use wgpt_train::with_backend;

use super::{ModelFlags, TrainFlags, check_memory};

#[derive(Args)]
pub struct PretrainCmd {
    /// A folder written by `prepare`.
    #[arg(long)]
    data: PathBuf,
    /// The run folder: checkpoints, metrics.jsonl.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    model: ModelFlags,
    #[command(flatten)]
    train: TrainFlags,
    /// Start from these weights (a bundle or checkpoint folder; see `import`).
    #[arg(long)]
    init_from: Option<PathBuf>,
}

impl PretrainCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let data = Dataset::open(&self.data)?;
        let tok = wgpt::bundle::load_tokenizer(&self.data)?;
        let eos = tok.token_to_id(wgpt_train::data::prepare::EOT).unwrap_or(0);
        let config = self.model.config(data.meta.vocab_size, eos)?;
        check_memory(&config, self.train.batch * self.train.devices.max(1), self.train.backend)?;
        let run = self.train.run_spec(config.n_positions, data.meta.train_tokens, None);
        let args = self.train.train_args(self.out, config, run, self.init_from);
        let params = args.config.parameter_count();
        eprintln!("model: {params} parameters; backend {:?}", self.train.backend);
        let summary =
            with_backend!(self.train.backend, args.devices, |B, devices| pretrain::<B>(&self.data, &args, &devices))?;
        println!("{}", summary.to_json());
        Ok(())
    }
}
