//! `eval`: zero-, one- and few-shot accuracy on held-out episodes of the task suite.
//!
//! Scoring is exact match of greedy decoding, computed in one batched forward pass: the prompt's
//! tokens are followed by the answer's (`" " + answer`, tokenized on its own, as the model would
//! emit it after the prompt), and an episode counts as correct when the argmax at every answer
//! position is the answer's next token and the argmax after the last one starts a new line (or
//! ends the document). That is exactly "greedy decoding writes the answer, then stops", without
//! a decode loop. Prompts longer than the model's context keep their last tokens (counted as
//! `truncated`).

use std::collections::HashSet;

use burn::tensor::{Int, Tensor, TensorData};
use serde::Serialize;
use wgpt::tasks::{self, Description, Episode, Split, Task};
use wgpt::tokenizer::Tokenizer;

use crate::model::Gpt;
use crate::model::fused::FusedOps;

/// One cell of the table: a model, a task, a number of demonstrations, with or without the
/// task's description.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub model: String,
    pub task: String,
    pub k: usize,
    pub description: bool,
    pub correct: usize,
    pub total: usize,
    pub accuracy: f64,
    pub truncated: usize,
}

/// A tokenized episode: the model's input and where the answer sits in it.
struct Scored {
    ids: Vec<u32>,
    /// Position whose logits predict the first answer token.
    first: usize,
    answer: Vec<u32>,
    truncated: bool,
}

/// Token ids that end an answer: those whose text starts with a newline, and `<|endoftext|>`.
pub fn stop_ids(tok: &Tokenizer, eos: Option<u32>) -> HashSet<u32> {
    let mut set: HashSet<u32> = eos.into_iter().collect();
    for id in 0..tok.id_bound() {
        if tok.decode(&[id]).map(|t| t.starts_with('\n')).unwrap_or(false) {
            set.insert(id);
        }
    }
    set
}

fn prepare(tok: &Tokenizer, e: &Episode, n_ctx: usize) -> anyhow::Result<Scored> {
    fit(tok.encode(&e.prompt())?, tok.encode(&format!(" {}", e.answer))?, n_ctx)
}

/// Prompt then answer, cut from the left to `n_ctx` ids.
fn fit(prompt: Vec<u32>, answer: Vec<u32>, n_ctx: usize) -> anyhow::Result<Scored> {
    if prompt.is_empty() || answer.is_empty() {
        anyhow::bail!("an empty prompt or answer cannot be scored");
    }
    let mut ids = prompt;
    let mut first = ids.len() - 1;
    ids.extend(&answer);
    let truncated = ids.len() > n_ctx;
    if truncated {
        let drop = ids.len() - n_ctx;
        if drop > first {
            anyhow::bail!("the answer alone is longer than the context {n_ctx}");
        }
        ids.drain(..drop);
        first -= drop;
    }
    Ok(Scored { ids, first, answer, truncated })
}

/// Greedy decoding's view of one episode's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The answer's tokens (`" " + answer`).
    pub answer: Vec<u32>,
    /// The model's argmax at each answer position given the answer so far, and one after.
    pub argmax: Vec<u32>,
    /// The prompt was cut to fit the context.
    pub truncated: bool,
}

impl Prediction {
    /// Greedy decoding writes the answer, then a line break (or the end of the document).
    pub fn correct(&self, stops: &HashSet<u32>) -> bool {
        let n = self.answer.len();
        self.argmax[..n] == self.answer[..] && stops.contains(&self.argmax[n])
    }

    /// What greedy decoding writes, as far as it can be known from one teacher-forced pass: the
    /// argmax up to and including its first token off the answer (all of them when none is).
    pub fn greedy_prefix(&self) -> &[u32] {
        let off = self.argmax.iter().zip(&self.answer).position(|(a, b)| a != b);
        &self.argmax[..off.map_or(self.argmax.len(), |i| i + 1)]
    }
}

/// The episodes' inputs (prompt + answer, cut to the context), as `score` feeds them.
pub fn inputs(tok: &Tokenizer, episodes: &[Episode], n_ctx: usize) -> anyhow::Result<Vec<(Vec<u32>, usize)>> {
    episodes.iter().map(|e| prepare(tok, e, n_ctx).map(|s| (s.ids, s.first))).collect()
}

/// Greedy predictions along each episode's answer, in batches of 32 right-padded rows (causal
/// attention: padding after a row's end changes none of its logits).
pub fn predict<B: FusedOps>(
    model: &Gpt<B>,
    tok: &Tokenizer,
    episodes: &[Episode],
    device: &B::Device,
) -> anyhow::Result<Vec<Prediction>> {
    let pairs = episodes
        .iter()
        .map(|e| Ok((tok.encode(&e.prompt())?, tok.encode(&format!(" {}", e.answer))?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    predict_ids(model, pairs, device)
}

/// Greedy predictions along `(prompt ids, answer ids)` pairs.
pub fn predict_ids<B: FusedOps>(
    model: &Gpt<B>,
    pairs: Vec<(Vec<u32>, Vec<u32>)>,
    device: &B::Device,
) -> anyhow::Result<Vec<Prediction>> {
    let n_ctx = model.config().n_positions;
    let items: Vec<Scored> = pairs.into_iter().map(|(p, a)| fit(p, a, n_ctx)).collect::<anyhow::Result<_>>()?;
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(32) {
        let t = chunk.iter().map(|s| s.ids.len()).max().unwrap_or(1);
        let mut flat = Vec::with_capacity(chunk.len() * t);
        for s in chunk {
            flat.extend(s.ids.iter().map(|&i| i as i32));
            flat.extend(std::iter::repeat_n(0, t - s.ids.len()));
        }
        let x = Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [chunk.len(), t]), device);
        let argmax: Vec<i64> = model.forward(x).argmax(2).into_data().iter::<i64>().collect();
        for (row, s) in chunk.iter().enumerate() {
            let at = |pos: usize| argmax[row * t + pos] as u32;
            out.push(Prediction {
                answer: s.answer.clone(),
                argmax: (0..=s.answer.len()).map(|j| at(s.first + j)).collect(),
                truncated: s.truncated,
            });
        }
    }
    Ok(out)
}

/// What to evaluate.
pub struct EvalSpec {
    pub tasks: Vec<Task>,
    pub ks: Vec<usize>,
    pub episodes: usize,
    pub seed: u64,
}

/// The held-out episodes of one cell (a pure function of the spec: every model sees the same).
pub fn cell_episodes(task: Task, k: usize, description: bool, spec: &EvalSpec) -> Vec<Episode> {
    let d = if description { Description::Canonical } else { Description::None };
    (0..spec.episodes as u64).map(|i| tasks::episode(task, k, d, Split::Eval, spec.seed.wrapping_add(i))).collect()
}

/// Every cell of `spec` for one model.
pub fn evaluate<B: FusedOps>(
    name: &str,
    model: &Gpt<B>,
    tok: &Tokenizer,
    spec: &EvalSpec,
    device: &B::Device,
) -> anyhow::Result<Vec<Cell>> {
    let stops = stop_ids(tok, model.config().eos_token_id);
    let mut cells = Vec::new();
    for &task in &spec.tasks {
        for description in [false, true] {
            for &k in &spec.ks {
                let eps = cell_episodes(task, k, description, spec);
                let preds = predict(model, tok, &eps, device)?;
                let correct = preds.iter().filter(|p| p.correct(&stops)).count();
                let truncated = preds.iter().filter(|p| p.truncated).count();
                cells.push(Cell {
                    model: name.to_string(),
                    task: task.name().to_string(),
                    k,
                    description,
                    correct,
                    total: preds.len(),
                    accuracy: correct as f64 / preds.len().max(1) as f64,
                    truncated,
                });
            }
        }
    }
    Ok(cells)
}

/// Mean accuracy over tasks of each (model, description, k).
pub fn means(cells: &[Cell]) -> Vec<(String, bool, usize, f64)> {
    let mut keys: Vec<(String, bool, usize)> = Vec::new();
    for c in cells {
        let key = (c.model.clone(), c.description, c.k);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.into_iter()
        .map(|(m, d, k)| {
            let accs: Vec<f64> =
                cells.iter().filter(|c| c.model == m && c.description == d && c.k == k).map(|c| c.accuracy).collect();
            let mean = accs.iter().sum::<f64>() / accs.len().max(1) as f64;
            (m, d, k, mean)
        })
        .collect()
}

fn pct(x: f64) -> String {
    format!("{:.0}", 100.0 * x)
}

/// The markdown report: the mean over tasks per model and k, then every task.
pub fn markdown(cells: &[Cell], spec: &EvalSpec) -> String {
    let ks: Vec<String> = spec.ks.iter().map(|k| format!("k={k}")).collect();
    let header = |first: &str| format!("| {first} | {} |\n|---|{}\n", ks.join(" | "), "---:|".repeat(ks.len()));
    let mut s = format!(
        "Exact-match accuracy (%) of greedy answers on {} held-out episodes per cell; k = demonstrations in the prompt; \
         \"+ desc\" = the task's description opens the prompt.\n\n### Mean over tasks\n\n",
        spec.episodes
    );
    s.push_str(&header("model"));
    let means = means(cells);
    let mut rows: Vec<(String, bool)> = Vec::new();
    for (m, d, _, _) in &means {
        if !rows.contains(&(m.clone(), *d)) {
            rows.push((m.clone(), *d));
        }
    }
    for (m, d) in &rows {
        let vals: Vec<String> = spec
            .ks
            .iter()
            .map(|k| {
                means.iter().find(|(mm, dd, kk, _)| mm == m && dd == d && kk == k).map_or("–".into(), |x| pct(x.3))
            })
            .collect();
        s.push_str(&format!("| {m}{} | {} |\n", if *d { " + desc" } else { "" }, vals.join(" | ")));
    }
    s.push_str("\n### Per task\n\n");
    s.push_str(&header("model · task"));
    for (m, d) in &rows {
        for task in &spec.tasks {
            let vals: Vec<String> = spec
                .ks
                .iter()
                .map(|k| {
                    cells
                        .iter()
                        .find(|c| &c.model == m && c.description == *d && c.k == *k && c.task == task.name())
                        .map_or("–".into(), |c| pct(c.accuracy))
                })
                .collect();
            s.push_str(&format!(
                "| {m}{} · {} | {} |\n",
                if *d { " + desc" } else { "" },
                task.name(),
                vals.join(" | ")
            ));
        }
    }
    let truncated: usize = cells.iter().map(|c| c.truncated).sum();
    if truncated > 0 {
        s.push_str(&format!("\n{truncated} prompts were longer than the context and lost their first tokens.\n"));
    }
    s
}
