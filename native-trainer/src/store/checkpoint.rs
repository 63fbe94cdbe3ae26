//! Checkpoints: a folder per save, `ckpt-000300/`, holding a complete bundle (`config.json`,
//! `model.safetensors` f32, `tokenizer.json` — `wgpt` can load any checkpoint directly) plus
//! `optim.safetensors` (AdamW moments `m.<name>` / `v.<name>`) and `state.json` (step, seed,
//! the run's settings). A save is written into a hidden temporary folder, synced, then renamed:
//! a killed run leaves either the whole checkpoint or none. The last `keep` are kept.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};
use wgpt::config::GptConfig;
use wgpt::weights::{self, ModelWeights};

use crate::model::Gpt;
use crate::model::optim::{AdamW, AdamWConfig};
use crate::store::bundle::{StoreDtype, safetensors_bytes};

/// What a run is, beyond the model: these must agree for a resume to continue the same curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub seed: u64,
    pub batch: usize,
    pub accum: usize,
    pub context: usize,
    pub steps: u64,
    pub lr: f64,
    pub min_lr: f64,
    pub warmup: u64,
    pub adam: AdamWConfig,
    /// The data folder's `meta.json` token counts, so a resume on other data is caught.
    pub train_tokens: usize,
    /// The task of a `finetune` run (its data), none for pre-training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    pub step: u64,
    pub tokens_seen: u64,
    pub run: RunSpec,
    pub val_loss: Option<f64>,
}

fn step_dir(run_dir: &Path, step: u64) -> PathBuf {
    run_dir.join(format!("ckpt-{step:06}"))
}

/// Writes a checkpoint of `model` and `opt` after `state.step` steps (atomically: a temporary
/// folder, synced, renamed); returns its folder. [`prune`] keeps the newest once every model of
/// the step is written.
pub fn write<B: Backend>(
    run_dir: &Path,
    model: &Gpt<B>,
    opt: &AdamW<B>,
    state: &TrainState,
    tokenizer_json: &[u8],
) -> anyhow::Result<PathBuf> {
    let final_dir = step_dir(run_dir, state.step);
    let tmp = run_dir.join(format!(".ckpt-{:06}.tmp-{}", state.step, std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    let weights = model.to_weights();
    let moments: Vec<(String, weights::Tensor)> = opt
        .moments
        .iter()
        .flat_map(|(name, (m, v))| [(format!("m.{name}"), read(m)), (format!("v.{name}"), read(v))])
        .collect();
    let moment_refs: Vec<(String, std::borrow::Cow<weights::Tensor>)> =
        moments.iter().map(|(n, t)| (n.clone(), std::borrow::Cow::Borrowed(t))).collect();
    let files: [(&str, Vec<u8>); 5] = [
        ("config.json", model.config().to_json().into_bytes()),
        ("tokenizer.json", tokenizer_json.to_vec()),
        ("model.safetensors", safetensors_bytes(&weights.named(), StoreDtype::F32, None)?),
        ("optim.safetensors", safetensors_bytes(&moment_refs, StoreDtype::F32, None)?),
        ("state.json", serde_json::to_vec_pretty(state)?),
    ];
    for (name, bytes) in files {
        let mut f = std::fs::File::create(tmp.join(name))?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir)?;
    }
    std::fs::rename(&tmp, &final_dir)?;
    std::fs::File::open(run_dir)?.sync_all()?;
    Ok(final_dir)
}

fn read<B: Backend>(t: &Tensor<B, 1>) -> weights::Tensor {
    weights::Tensor {
        shape: t.dims().to_vec(),
        data: t.clone().into_data().convert::<f32>().to_vec::<f32>().expect("f32"),
    }
}

/// Checkpoint folders of a run, by step (temporary folders of killed saves excluded).
pub fn list(run_dir: &Path) -> anyhow::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(run_dir) else { return Ok(out) };
    for e in entries {
        let path = e?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if let Some(step) = name.strip_prefix("ckpt-").and_then(|s| s.parse::<u64>().ok()) {
            out.push((step, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Deletes all but the newest `keep` checkpoints and any temporary folder left by a kill.
pub fn prune(run_dir: &Path, keep: usize) -> anyhow::Result<()> {
    let all = list(run_dir)?;
    for (_, path) in all.iter().take(all.len().saturating_sub(keep.max(1))) {
        std::fs::remove_dir_all(path)?;
    }
    clean_partial(run_dir)
}

/// Where a run continues, for every stage that checkpoints: the newest step that every one of
/// `run_dirs` holds (one folder per model the run saves: PPO's policy and critic), with their
/// folders, or `None` for a fresh start. Temporary folders of killed saves are removed first.
/// Without `resume`, a run folder that already holds checkpoints is an error: nothing is
/// overwritten by accident.
pub fn resume_point(run_dirs: &[&Path], resume: bool) -> anyhow::Result<Option<(u64, Vec<PathBuf>)>> {
    for dir in run_dirs {
        std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
        clean_partial(dir)?;
    }
    let Some(main) = run_dirs.first() else { return Ok(None) };
    let held = list(main)?;
    match (newest_common(run_dirs)?, held.last()) {
        (Some(found), _) if resume => Ok(Some(found)),
        (None, Some(_)) if resume => {
            let names: Vec<String> = run_dirs.iter().map(|d| d.display().to_string()).collect();
            bail!("no step has a checkpoint in every one of {}; cannot resume", names.join(" and "))
        }
        (_, Some((_, dir))) => bail!(
            "{} already holds checkpoints (newest {}); pass --resume or choose another --out",
            main.display(),
            dir.display()
        ),
        (_, None) => Ok(None),
    }
}

/// The newest step that every one of `run_dirs` holds a checkpoint of, with each one's folder:
/// where a run that saves several models per step resumes after a kill between their saves.
pub fn newest_common(run_dirs: &[&Path]) -> anyhow::Result<Option<(u64, Vec<PathBuf>)>> {
    let lists = run_dirs.iter().map(|d| list(d)).collect::<anyhow::Result<Vec<_>>>()?;
    let Some(first) = lists.first() else { return Ok(None) };
    for (step, _) in first.iter().rev() {
        let dirs: Option<Vec<PathBuf>> =
            lists.iter().map(|l| l.iter().find(|(s, _)| s == step).map(|(_, p)| p.clone())).collect();
        if let Some(dirs) = dirs {
            return Ok(Some((*step, dirs)));
        }
    }
    Ok(None)
}

/// Removes temporary folders a killed save left behind.
pub fn clean_partial(run_dir: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(run_dir) else { return Ok(()) };
    for e in entries {
        let path = e?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with(".ckpt-") && name.contains(".tmp-") {
            std::fs::remove_dir_all(&path)?;
        }
    }
    Ok(())
}

/// A checkpoint's model: its config and f32 weights (validated as any bundle is).
pub fn load_weights(dir: &Path) -> anyhow::Result<(GptConfig, ModelWeights)> {
    let config_path = dir.join("config.json");
    let config = GptConfig::from_json(&std::fs::read(&config_path).with_context(|| config_path.display().to_string())?)
        .with_context(|| config_path.display().to_string())?;
    let model_path = dir.join("model.safetensors");
    let bytes = std::fs::read(&model_path).with_context(|| model_path.display().to_string())?;
    let weights = ModelWeights::from_safetensors(&bytes, &config).with_context(|| model_path.display().to_string())?;
    Ok((config, weights))
}

pub fn load_state(dir: &Path) -> anyhow::Result<TrainState> {
    let path = dir.join("state.json");
    let bytes = std::fs::read(&path).with_context(|| path.display().to_string())?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: not a wgpt-train state", path.display()))
}

/// Restores the AdamW state of a checkpoint onto `device`.
pub fn load_optimizer<B: Backend>(
    dir: &Path,
    config: AdamWConfig,
    step: u64,
    device: &B::Device,
) -> anyhow::Result<AdamW<B>> {
    let path = dir.join("optim.safetensors");
    let bytes = std::fs::read(&path).with_context(|| path.display().to_string())?;
    let file = safetensors::SafeTensors::deserialize(&bytes).with_context(|| path.display().to_string())?;
    let mut opt = AdamW::new(config);
    opt.step = step;
    let tensor = |name: &str| -> anyhow::Result<Tensor<B, 1>> {
        let view = file.tensor(name).with_context(|| format!("{}: missing `{name}`", path.display()))?;
        if view.dtype() != safetensors::Dtype::F32 || view.shape().len() != 1 {
            bail!("{}: `{name}` is not a flat f32 tensor", path.display());
        }
        let data: Vec<f32> =
            view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let n = data.len();
        Ok(Tensor::from_data(TensorData::new(data, [n]), device))
    };
    for (name, _) in file.iter() {
        if let Some(param) = name.strip_prefix("m.") {
            opt.moments.insert(param.to_string(), (tensor(name)?, tensor(&format!("v.{param}"))?));
        }
    }
    Ok(opt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn prune_keeps_the_newest_and_removes_temporary_folders() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["ckpt-000001", "ckpt-000002", "ckpt-000003", ".ckpt-000004.tmp-77", "metrics.jsonl"] {
            if name.ends_with(".jsonl") {
                std::fs::write(dir.path().join(name), b"{}").unwrap();
            } else {
                std::fs::create_dir(dir.path().join(name)).unwrap();
            }
        }
        prune(dir.path(), 2).unwrap();
        assert_eq!(names(dir.path()), ["ckpt-000002", "ckpt-000003", "metrics.jsonl"]);
    }

    #[test]
    fn the_newest_common_step_is_one_every_folder_holds() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for (dir, steps) in [(&a, [2, 4, 6]), (&b, [2, 4, 8])] {
            for s in steps {
                std::fs::create_dir(step_dir(dir.path(), s)).unwrap();
            }
        }
        let (step, dirs) = newest_common(&[a.path(), b.path()]).unwrap().unwrap();
        assert_eq!((step, dirs), (4, vec![step_dir(a.path(), 4), step_dir(b.path(), 4)]));
        let empty = tempfile::tempdir().unwrap();
        assert!(newest_common(&[a.path(), empty.path()]).unwrap().is_none());
    }
}
