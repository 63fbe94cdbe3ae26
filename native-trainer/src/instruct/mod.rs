//! Generated instruction data for the InstructGPT stages (no instruction or preference data
//! ships in any registry): single- and multi-turn conversations in English and Chinese.
//!
//! Kinds of exchange:
//! - **task** — a task-suite instruction (`Reverse the letters.\nc a t` → `t a c`), inputs from
//!   the task suite's own train/eval split;
//! - **article** — questions about the article, answered from it (`facts.rs`); the first phrasing
//!   of each question in each language is held out;
//! - **small talk** — greetings, thanks, who-are-you; **refusal** — questions no model can know
//!   (today's weather), answered by saying so. Both held out by a hash of the user's text.
//!
//! A conversation is 1–3 exchanges; the last one is the one scored in evaluation.

pub mod facts;

use serde::Serialize;
use wgpt::chat::Message;
use wgpt::rng::{Rng, hash};
use wgpt::tasks::{self, Description, Split};

use facts::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Task,
    Article,
    SmallTalk,
    Refusal,
}

pub const KINDS: [Kind; 4] = [Kind::Task, Kind::Article, Kind::SmallTalk, Kind::Refusal];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Task => "task",
            Kind::Article => "article",
            Kind::SmallTalk => "small_talk",
            Kind::Refusal => "refusal",
        }
    }
}

/// One user message and the reply a good assistant gives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exchange {
    pub kind: Kind,
    pub zh: bool,
    pub user: String,
    pub reply: String,
}

fn text_split(s: &str) -> Split {
    tasks::split_of(s)
}

/// An exchange of `kind` from `split`, drawn by `rng`.
pub fn exchange(kind: Kind, split: Split, rng: &mut Rng) -> Exchange {
    let zh = rng.chance(0.5);
    match kind {
        Kind::Task => {
            let task = tasks::ALL[rng.below(tasks::ALL.len())];
            // Lookup needs its table in the prompt, which a one-line instruction does not give.
            let task = if task == tasks::Task::Lookup { tasks::Task::Reverse } else { task };
            // Held out: the English or the Chinese description (the last paraphrase) with an input
            // of the evaluation split; training: any paraphrase.
            let d = match split {
                Split::Eval => Description::Paraphrase(if zh { usize::MAX } else { 0 }),
                Split::Train => Description::Random,
            };
            let e = tasks::episode(task, 0, d, split, rng.next_u64());
            let desc = e.description.unwrap_or_default();
            let zh = desc.chars().any(|c| c > '\u{2e80}');
            Exchange { kind, zh, user: format!("{desc}\n{}", e.query), reply: e.answer }
        }
        Kind::Article => {
            let f = &FACTS[rng.below(FACTS.len())];
            let (qs, a) = if zh { (f.zh_q, f.zh_a) } else { (f.en_q, f.en_a) };
            let q = if split == Split::Eval { qs[0] } else { qs[1 + rng.below(qs.len() - 1)] };
            Exchange { kind, zh, user: q.to_string(), reply: a.to_string() }
        }
        Kind::SmallTalk => {
            let pool: Vec<&(&str, &str)> = SMALL_TALK.iter().filter(|(u, _)| text_split(u) == split).collect();
            let (u, r) = pool[rng.below(pool.len())];
            Exchange { kind, zh: r.chars().any(|c| c > '\u{2e80}'), user: u.to_string(), reply: r.to_string() }
        }
        Kind::Refusal => {
            let (list, reply) = if zh { (UNKNOWABLE_ZH, REFUSAL_ZH) } else { (UNKNOWABLE_EN, REFUSAL_EN) };
            let pool: Vec<&&str> = list.iter().filter(|u| text_split(u) == split).collect();
            Exchange { kind, zh, user: pool[rng.below(pool.len())].to_string(), reply: reply.to_string() }
        }
    }
}

/// The kind of a training exchange: tasks and article questions most often.
fn draw_kind(rng: &mut Rng) -> Kind {
    match rng.below(10) {
        0..=3 => Kind::Task,
        4..=7 => Kind::Article,
        8 => Kind::SmallTalk,
        _ => Kind::Refusal,
    }
}

/// Conversation `seed` of `split`: 1–3 exchanges, the last one being `last` (when given).
pub fn conversation(split: Split, seed: u64, last: Option<Kind>) -> (Vec<Message>, Exchange) {
    let mut rng = Rng::new(hash(&[0xC4A7, split as u64, seed]));
    let turns = 1 + rng.below(3);
    let mut messages = Vec::new();
    let mut ex = None;
    for i in 0..turns {
        let kind = match last {
            Some(k) if i + 1 == turns => k,
            _ => draw_kind(&mut rng),
        };
        let e = exchange(kind, split, &mut rng);
        messages.push(Message { role: "user".into(), content: e.user.clone() });
        messages.push(Message { role: "assistant".into(), content: e.reply.clone() });
        ex = Some(e);
    }
    (messages, ex.expect("at least one exchange"))
}

/// The held-out evaluation set: `n` conversations per kind, each ending with one of that kind;
/// the last assistant message is what the model must write.
pub fn eval_set(n: usize) -> Vec<(Vec<Message>, Exchange)> {
    KINDS.iter().flat_map(|&k| (0..n as u64).map(move |s| conversation(Split::Eval, s, Some(k)))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_both_splits_and_they_differ() {
        for kind in KINDS {
            let mut rng = Rng::new(1);
            let train: Vec<Exchange> = (0..400).map(|_| exchange(kind, Split::Train, &mut rng)).collect();
            let eval: Vec<Exchange> = (0..100).map(|_| exchange(kind, Split::Eval, &mut rng)).collect();
            let seen: std::collections::HashSet<&str> = train.iter().map(|e| e.user.as_str()).collect();
            assert!(eval.iter().all(|e| !seen.contains(e.user.as_str())), "{kind:?}: a held-out prompt is in training");
            assert!(eval.iter().any(|e| e.zh) && eval.iter().any(|e| !e.zh), "{kind:?}: one language only");
        }
    }

    #[test]
    fn conversations_alternate_and_end_with_the_scored_exchange() {
        for s in 0..50 {
            let (m, last) = conversation(Split::Train, s, Some(Kind::Article));
            assert!(m.len() % 2 == 0 && !m.is_empty());
            assert!(m.iter().enumerate().all(|(i, x)| x.role == if i % 2 == 0 { "user" } else { "assistant" }));
            assert_eq!(m[m.len() - 1].content, last.reply);
            assert_eq!(last.kind, Kind::Article);
        }
    }
}
