//! The task suite of the GPT-1 → GPT-3 demos: small tasks whose identity is hidden in the input
//! format, so a model cannot tell from the query alone what is asked (zero-shot is ambiguous) and
//! a few demonstrations reveal it (few-shot), as in the GPT-3 paper's tables.
//!
//! An episode is one task, `k` demonstrations and a query, always written the same way:
//!
//! ```text
//! Reverse the letters.        ← a description, only sometimes
//! c a t -> t a c              ← k demonstrations, `input -> output`
//! d o g ->                    ← the prompt ends here
//!  g o d                      ← the answer the model must write, ended by "\n"
//! ```
//!
//! Letters are written apart so that a byte-level BPE sees one letter per token. The same code
//! builds the pre-training documents (`wgpt-train prepare --episodes`), the evaluation and
//! fine-tuning sets (`eval`, `finetune`) and the page's few-shot demo (through wasm), so a prompt
//! is the same string everywhere.
//!
//! Held-out: every input (a query or a demonstration) belongs to one split by a hash of its text,
//! and an episode draws all its inputs from one split, so no evaluation query is ever seen in a
//! training episode ([`check_disjoint`] verifies it on generated sets).

mod words;

use std::collections::HashSet;

use serde::Serialize;

use crate::rng::{Rng, hash};
use words::*;

/// The separator between an input and its output.
pub const ARROW: &str = " -> ";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Letters (or 汉字) in reverse order.
    Reverse,
    /// The input unchanged.
    Copy,
    /// Letters sorted alphabetically.
    Sort,
    /// Each letter replaced by the next (z → a).
    Shift,
    /// The first letter (or 汉字).
    First,
    /// Two 2-digit numbers → their sum, least-significant digit first (Lee et al. 2024: small
    /// transformers learn addition far more easily in that order).
    Add,
    /// Two numbers → the larger.
    Max,
    /// Two numbers → the smaller.
    Min,
    /// A templated review (en or zh) → one of this episode's two label words.
    Sentiment,
    /// A word → the number this episode's table gives it: a new mapping in every episode, so
    /// only the demonstrations can answer it (pure in-context learning; zero-shot is chance).
    Lookup,
}

pub const ALL: [Task; 10] = [
    Task::Reverse,
    Task::Copy,
    Task::Sort,
    Task::Shift,
    Task::First,
    Task::Add,
    Task::Max,
    Task::Min,
    Task::Sentiment,
    Task::Lookup,
];

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Reverse => "reverse",
            Task::Copy => "copy",
            Task::Sort => "sort",
            Task::Shift => "shift",
            Task::First => "first",
            Task::Add => "add",
            Task::Max => "max",
            Task::Min => "min",
            Task::Sentiment => "sentiment",
            Task::Lookup => "lookup",
        }
    }

    pub fn from_name(name: &str) -> Option<Task> {
        ALL.into_iter().find(|t| t.name() == name)
    }

    /// Paraphrases of the task's description; the first is the canonical one `eval` uses.
    /// `{pos}`/`{neg}` are the episode's label words.
    fn descriptions(self) -> &'static [&'static str] {
        match self {
            Task::Reverse => &["Reverse the letters.", "Write the letters in reverse order.", "把字倒过来写。"],
            Task::Copy => &["Copy the letters.", "Repeat the input exactly.", "照抄一遍。"],
            Task::Sort => &["Sort the letters.", "Put the letters in alphabetical order.", "把字母按顺序排好。"],
            Task::Shift => {
                &["Shift each letter by one.", "Replace every letter with the next one.", "每个字母换成下一个字母。"]
            }
            Task::First => &["Give the first letter.", "Write only the first character.", "写出第一个字。"],
            Task::Add => &["Add the numbers, digits reversed.", "Write the sum backwards.", "两数相加，答案倒着写。"],
            Task::Max => &["Give the larger number.", "Which number is bigger?", "写出较大的数。"],
            Task::Min => &["Give the smaller number.", "Which number is smaller?", "写出较小的数。"],
            Task::Sentiment => &[
                "Is it positive or negative? Answer {pos} or {neg}.",
                "Label the review: {pos} or {neg}.",
                "判断好坏：{pos}还是{neg}？",
            ],
            Task::Lookup => &["Look the word up in the table.", "Use the numbers given above.", "按上面的表查数字。"],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Eval,
}

/// The split an input belongs to: a quarter of all inputs are held out for evaluation.
pub fn split_of(input: &str) -> Split {
    let h = input.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    if hash(&[h]).is_multiple_of(4) { Split::Eval } else { Split::Train }
}

/// Whether the episode opens with a description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Description {
    None,
    /// The first paraphrase (evaluation, the page).
    Canonical,
    /// A paraphrase drawn by the episode's RNG (pre-training documents).
    Random,
    /// Paraphrase `i` (the last one of each task is Chinese).
    Paraphrase(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Episode {
    pub task: Task,
    pub description: Option<String>,
    /// `(input, output)` demonstrations.
    pub demos: Vec<(String, String)>,
    pub query: String,
    pub answer: String,
}

impl Episode {
    /// What the model is given: the description, the demonstrations, the query and the arrow.
    pub fn prompt(&self) -> String {
        let mut s = String::new();
        if let Some(d) = &self.description {
            s.push_str(d);
            s.push('\n');
        }
        for (x, y) in &self.demos {
            s.push_str(&format!("{x}{ARROW}{y}\n"));
        }
        s.push_str(&self.query);
        s.push_str(ARROW.trim_end());
        s
    }

    /// What the model must write after the prompt: a space, the answer, a newline.
    pub fn completion(&self) -> String {
        format!(" {}\n", self.answer)
    }

    /// The whole episode as one pre-training document.
    pub fn document(&self) -> String {
        self.prompt() + &self.completion()
    }

    /// Every input the episode shows (demonstrations and query).
    pub fn inputs(&self) -> impl Iterator<Item = &str> {
        self.demos.iter().map(|(x, _)| x.as_str()).chain(std::iter::once(self.query.as_str()))
    }
}

/// Per-episode choices that hold for all its items.
struct Setting {
    hanzi: bool,
    zh: bool,
    labels: (&'static str, &'static str),
    table: Vec<(String, String)>,
}

fn spaced(chars: &[char]) -> String {
    chars.iter().map(char::to_string).collect::<Vec<_>>().join(" ")
}

fn letters(rng: &mut Rng, hanzi: bool) -> Vec<char> {
    let n = 3 + rng.below(3);
    (0..n).map(|_| if hanzi { HANZI[rng.below(HANZI.len())] } else { (b'a' + rng.below(26) as u8) as char }).collect()
}

fn pick<'a>(rng: &mut Rng, list: &[&'a str]) -> &'a str {
    list[rng.below(list.len())]
}

/// One `(input, output)` pair of `task`, any split.
fn item(task: Task, s: &Setting, rng: &mut Rng) -> (String, String) {
    match task {
        Task::Reverse | Task::Copy | Task::Sort | Task::Shift | Task::First => {
            let hanzi = s.hanzi && matches!(task, Task::Reverse | Task::Copy | Task::First);
            let x = letters(rng, hanzi);
            let y: Vec<char> = match task {
                Task::Reverse => x.iter().rev().copied().collect(),
                Task::Copy => x.clone(),
                Task::Sort => {
                    let mut v = x.clone();
                    v.sort_unstable();
                    v
                }
                Task::Shift => x.iter().map(|&c| (b'a' + (c as u8 - b'a' + 1) % 26) as char).collect(),
                _ => vec![x[0]],
            };
            (spaced(&x), spaced(&y))
        }
        Task::Add | Task::Max | Task::Min => {
            let (a, b) = (10 + rng.below(90), 10 + rng.below(90));
            let y = match task {
                Task::Add => (a + b).to_string().chars().rev().collect(),
                Task::Max => a.max(b).to_string(),
                _ => a.min(b).to_string(),
            };
            (format!("{a} {b}"), y)
        }
        Task::Sentiment => {
            let positive = rng.chance(0.5);
            let x = if s.zh {
                let adj = pick(rng, if positive { ZH_POSITIVE } else { ZH_NEGATIVE });
                format!("{}{}{adj}", pick(rng, ZH_SUBJECTS), pick(rng, ZH_DEGREES))
            } else {
                let adj = pick(rng, if positive { EN_POSITIVE } else { EN_NEGATIVE });
                format!("{} {} {adj}", pick(rng, EN_SUBJECTS), pick(rng, EN_VERBS))
            };
            (x, if positive { s.labels.0 } else { s.labels.1 }.to_string())
        }
        Task::Lookup => s.table[rng.below(s.table.len())].clone(),
    }
}

/// Tries to draw an item of `split` not already used in this episode.
fn fresh_item(task: Task, s: &Setting, split: Split, used: &HashSet<String>, rng: &mut Rng) -> (String, String) {
    let mut last = item(task, s, rng);
    for _ in 0..200 {
        if split_of(&last.0) == split && !used.contains(&last.0) {
            break;
        }
        last = item(task, s, rng);
    }
    last
}

/// The episode of `task` with `k` demonstrations numbered `seed` in `split`: a pure function of
/// its arguments.
pub fn episode(task: Task, k: usize, description: Description, split: Split, seed: u64) -> Episode {
    let mut rng = Rng::new(hash(&[0x7A5C, task as u64, k as u64, split as u64, seed]));
    let zh = rng.chance(0.5);
    let labels = LABELS[rng.below(LABELS.len())];
    // Lookup: this episode's table maps k + 1 words of the split to random 2-digit numbers.
    let table = if task == Task::Lookup {
        let keys: Vec<&str> = KEYS.iter().copied().filter(|w| split_of(w) == split).collect();
        let mut chosen: Vec<&str> = Vec::new();
        while chosen.len() < (k + 1).min(keys.len()) {
            let w = keys[rng.below(keys.len())];
            if !chosen.contains(&w) {
                chosen.push(w);
            }
        }
        chosen.into_iter().map(|w| (w.to_string(), (10 + rng.below(90)).to_string())).collect()
    } else {
        Vec::new()
    };
    let setting = Setting { hanzi: zh, zh, labels, table };

    let mut used = HashSet::new();
    let mut demos = Vec::with_capacity(k);
    if task == Task::Lookup {
        demos.extend(setting.table.iter().take(k).cloned());
    } else {
        for _ in 0..k {
            let d = fresh_item(task, &setting, split, &used, &mut rng);
            used.insert(d.0.clone());
            demos.push(d);
        }
    }
    let (query, answer) = if task == Task::Lookup {
        // With demonstrations, ask one of them (the only way to know the answer); without, ask
        // the table's word nobody has shown.
        if k == 0 { setting.table[0].clone() } else { setting.table[rng.below(k)].clone() }
    } else {
        fresh_item(task, &setting, split, &used, &mut rng)
    };
    let pool = task.descriptions();
    let text = match description {
        Description::None => None,
        Description::Canonical => Some(pool[0]),
        Description::Random => Some(pool[rng.below(pool.len())]),
        Description::Paraphrase(i) => Some(pool[i.min(pool.len() - 1)]),
    };
    let description = text.map(|d| d.replace("{pos}", labels.0).replace("{neg}", labels.1));
    Episode { task, description, demos, query, answer }
}

/// A pre-training document: a task drawn at random, 0–12 demonstrations, a description a quarter
/// of the time (any paraphrase).
pub fn document(split: Split, seed: u64) -> Episode {
    let mut rng = Rng::new(hash(&[0xD0C, split as u64, seed]));
    let task = ALL[rng.below(ALL.len())];
    let k = rng.below(13);
    let description = if rng.chance(0.25) { Description::Random } else { Description::None };
    episode(task, k, description, split, rng.next_u64())
}

/// Error from [`check_disjoint`]: an evaluation query that a training episode shows.
#[derive(Debug, thiserror::Error)]
#[error("evaluation query {query:?} ({task:?}) also appears in a training episode")]
pub struct Overlap {
    pub task: Task,
    pub query: String,
}

/// Checks that no evaluation episode's query appears anywhere (query or demonstration) in the
/// training episodes of the same task.
pub fn check_disjoint<'a>(
    train: impl IntoIterator<Item = &'a Episode>,
    eval: impl IntoIterator<Item = &'a Episode>,
) -> Result<(), Overlap> {
    let mut seen: HashSet<(Task, &str)> = HashSet::new();
    for e in train {
        seen.extend(e.inputs().map(|x| (e.task, x)));
    }
    for e in eval {
        if seen.contains(&(e.task, e.query.as_str())) {
            return Err(Overlap { task: e.task, query: e.query.clone() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_answers_its_query() {
        let e = |t, k| episode(t, k, Description::None, Split::Eval, 3);
        let r = e(Task::Reverse, 2);
        assert_eq!(r.answer, r.query.split(' ').rev().collect::<Vec<_>>().join(" "));
        let s = e(Task::Sort, 1);
        let mut q: Vec<&str> = s.query.split(' ').collect();
        q.sort_unstable();
        assert_eq!(s.answer, q.join(" "));
        let a = e(Task::Add, 0);
        let n: Vec<u32> = a.query.split(' ').map(|x| x.parse().unwrap()).collect();
        assert_eq!(a.answer.chars().rev().collect::<String>(), (n[0] + n[1]).to_string());
        let m = e(Task::Max, 4);
        assert!(m.query.split(' ').all(|x| x.parse::<u32>().unwrap() <= m.answer.parse().unwrap()));
        let l = e(Task::Lookup, 4);
        assert!(l.demos.contains(&(l.query.clone(), l.answer.clone())));
        assert_eq!(e(Task::Shift, 0).query.len(), e(Task::Shift, 0).answer.len());
    }

    #[test]
    fn episodes_are_pure_functions_of_their_arguments() {
        for t in ALL {
            assert_eq!(
                episode(t, 4, Description::Random, Split::Train, 9),
                episode(t, 4, Description::Random, Split::Train, 9)
            );
            assert_ne!(
                episode(t, 4, Description::None, Split::Train, 9),
                episode(t, 4, Description::None, Split::Train, 10)
            );
        }
    }

    #[test]
    fn prompt_and_completion_make_the_document() {
        let e = episode(Task::Sentiment, 2, Description::Canonical, Split::Eval, 1);
        let p = e.prompt();
        assert!(p.starts_with(e.description.as_deref().unwrap()));
        assert!(!p.contains("{pos}"));
        assert!(p.ends_with(&format!("{} ->", e.query)));
        assert_eq!(p.lines().count(), 4);
        assert_eq!(e.document(), format!("{p} {}\n", e.answer));
    }

    #[test]
    fn training_and_evaluation_episodes_are_disjoint() {
        let train: Vec<Episode> = (0..20_000).map(|s| document(Split::Train, s)).collect();
        let eval: Vec<Episode> = ALL
            .into_iter()
            .flat_map(|t| (0..200).map(move |s| episode(t, 8, Description::None, Split::Eval, s)))
            .collect();
        check_disjoint(&train, &eval).unwrap();
        // The check itself can fail: an evaluation set drawn from the training split overlaps.
        let leaky: Vec<Episode> =
            (0..2000).map(|s| episode(Task::Max, 0, Description::None, Split::Train, s)).collect();
        assert!(check_disjoint(&train, &leaky).is_err());
        // Every draw landed in its split (the rejection sampler never gave up).
        assert!(eval.iter().all(|e| e.inputs().all(|x| split_of(x) == Split::Eval)));
        assert!(train.iter().all(|e| e.inputs().all(|x| split_of(x) == Split::Train)));
    }
}
