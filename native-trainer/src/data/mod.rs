//! Token shards: `train.bin` / `val.bin` hold little-endian u16 token ids (vocabularies up to
//! 65,536), memory-mapped; `meta.json` says what they hold. Batches are windows of
//! `context + 1` tokens at offsets drawn from (seed, step, micro-batch, row), so the data position
//! of a run is its step and a resumed run reads exactly what an unbroken one would.

pub mod instruct;
pub mod prepare;

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::rng::hash;

#[derive(Debug, Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io { path: path.to_path_buf(), source }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardMeta {
    pub format: String,
    pub vocab_size: usize,
    pub train_tokens: usize,
    pub val_tokens: usize,
    pub sources: Vec<SourceInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceInfo {
    pub file: String,
    pub bytes: usize,
    /// Tokens of this source in `train.bin`, every pass counted.
    pub train_tokens: usize,
    pub val_tokens: usize,
    /// How many times the source's training text is in `train.bin` (`prepare --natural-passes`).
    #[serde(default = "one_pass")]
    pub passes: usize,
}

fn one_pass() -> usize {
    1
}

pub const FORMAT: &str = "u16le";

/// One split, memory-mapped.
pub struct Tokens {
    map: Mmap,
    path: PathBuf,
}

impl Tokens {
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let file = File::open(path).map_err(io(path))?;
        // SAFETY: the shard is written once by `prepare` and only read afterwards.
        let map = unsafe { Mmap::map(&file) }.map_err(io(path))?;
        if map.len() % 2 != 0 {
            return Err(DataError::Invalid { path: path.into(), reason: "odd byte length for u16 tokens".into() });
        }
        Ok(Tokens { map, path: path.to_path_buf() })
    }

    pub fn len(&self) -> usize {
        self.map.len() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, i: usize) -> u16 {
        u16::from_le_bytes([self.map[2 * i], self.map[2 * i + 1]])
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The prepared data set: both splits and their description.
pub struct Dataset {
    pub meta: ShardMeta,
    pub train: Tokens,
    pub val: Tokens,
    pub dir: PathBuf,
}

impl Dataset {
    pub fn open(dir: &Path) -> Result<Self, DataError> {
        let meta_path = dir.join("meta.json");
        let bytes = std::fs::read(&meta_path).map_err(io(&meta_path))?;
        let meta: ShardMeta = serde_json::from_slice(&bytes)
            .map_err(|e| DataError::Invalid { path: meta_path.clone(), reason: e.to_string() })?;
        if meta.format != FORMAT {
            return Err(DataError::Invalid {
                path: meta_path,
                reason: format!("format {:?}, expected {FORMAT:?}", meta.format),
            });
        }
        let train = Tokens::open(&dir.join("train.bin"))?;
        let val = Tokens::open(&dir.join("val.bin"))?;
        for (t, n) in [(&train, meta.train_tokens), (&val, meta.val_tokens)] {
            if t.len() != n {
                return Err(DataError::Invalid {
                    path: t.path().into(),
                    reason: format!("{} tokens, meta.json says {n}", t.len()),
                });
            }
        }
        Ok(Dataset { meta, train, val, dir: dir.to_path_buf() })
    }

    /// Checks that both splits can fill windows of `context + 1` tokens.
    pub fn check_context(&self, context: usize) -> Result<(), DataError> {
        for t in [&self.train, &self.val] {
            if t.len() < context + 2 {
                return Err(DataError::Invalid {
                    path: t.path().into(),
                    reason: format!("{} tokens is too few for a context of {context}", t.len()),
                });
            }
        }
        Ok(())
    }
}

/// A batch: inputs and next-token targets, row-major `[rows, context]`.
pub struct Batch {
    pub rows: usize,
    pub context: usize,
    pub inputs: Vec<i32>,
    pub targets: Vec<i32>,
    /// Per-target loss weights (`None`: all 1), e.g. the answer-only loss of `finetune`.
    pub weights: Option<Vec<f32>>,
}

fn window(tokens: &Tokens, start: usize, context: usize, batch: &mut Batch) {
    for i in 0..context {
        batch.inputs.push(tokens.get(start + i) as i32);
        batch.targets.push(tokens.get(start + i + 1) as i32);
    }
}

/// The training batch of micro-batch `micro` of step `step`: `rows` random windows.
pub fn train_batch(tokens: &Tokens, seed: u64, step: u64, micro: u64, rows: usize, context: usize) -> Batch {
    let span = (tokens.len() - context - 1) as u64;
    let mut batch = Batch {
        rows,
        context,
        inputs: Vec::with_capacity(rows * context),
        targets: Vec::with_capacity(rows * context),
        weights: None,
    };
    for r in 0..rows {
        let start = hash(&[seed, step, micro, r as u64]) % span;
        window(tokens, start as usize, context, &mut batch);
    }
    batch
}

/// The validation set: up to `max_batches` batches of consecutive non-overlapping windows,
/// always the same ones.
pub fn val_batches(tokens: &Tokens, rows: usize, context: usize, max_batches: usize) -> Vec<Batch> {
    let windows = (tokens.len() - 1) / context;
    let mut out = Vec::new();
    let mut w = 0;
    while w < windows && out.len() < max_batches {
        let n = rows.min(windows - w);
        let mut batch = Batch { rows: n, context, inputs: Vec::new(), targets: Vec::new(), weights: None };
        for i in 0..n {
            window(tokens, (w + i) * context, context, &mut batch);
        }
        w += n;
        out.push(batch);
    }
    out
}

/// One supervised example: input ids, target ids (the inputs shifted by one) and target weights.
pub type Example = (Vec<i32>, Vec<i32>, Vec<f32>);

/// Examples as one batch, each a row right-padded with `pad` (weight 0) to the longest.
pub fn padded_batch(rows: Vec<Example>, pad: i32) -> Batch {
    let t = rows.iter().map(|r| r.0.len()).max().unwrap_or(1).max(1);
    let mut b = Batch { rows: rows.len(), context: t, inputs: vec![], targets: vec![], weights: None };
    let mut weights = Vec::with_capacity(rows.len() * t);
    for (x, y, w) in rows {
        let fill = t - x.len();
        b.inputs.extend(x.into_iter().chain(std::iter::repeat_n(pad, fill)));
        b.targets.extend(y.into_iter().chain(std::iter::repeat_n(pad, fill)));
        weights.extend(w.into_iter().chain(std::iter::repeat_n(0.0, fill)));
    }
    b.weights = Some(weights);
    b
}

/// `ids` with per-id target flags → an example predicting each next id, weighted 1 where the
/// next id is a target; cut to `context` predictions.
pub fn example(ids: &[u32], target: &[bool], context: usize) -> Example {
    let n = (ids.len().saturating_sub(1)).min(context);
    let x = ids[..n].iter().map(|&i| i as i32).collect();
    let y = ids[1..=n].iter().map(|&i| i as i32).collect();
    let w = target[1..=n].iter().map(|&t| if t { 1.0 } else { 0.0 }).collect();
    (x, y, w)
}
