//! `plot`: a run's loss curves to a PNG.

use std::path::PathBuf;

use clap::Args;

#[derive(Args)]
pub struct PlotCmd {
    /// A run folder (its metrics.jsonl) or a metrics file.
    #[arg(long)]
    run: PathBuf,
    /// The PNG to write; default: loss.png in the run folder.
    #[arg(long)]
    out: Option<PathBuf>,
}

impl PlotCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let metrics = if self.run.is_dir() { self.run.join("metrics.jsonl") } else { self.run.clone() };
        let out = self.out.unwrap_or_else(|| metrics.with_file_name("loss.png"));
        let curves = wgpt_train::plot::read_metrics(&metrics)?;
        wgpt_train::plot::draw(&curves, &out, &format!("{} — loss", self.run.display()))?;
        eprintln!("wrote {}", out.display());
        Ok(())
    }
}
