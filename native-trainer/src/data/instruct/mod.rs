//! Generated instruction data for the InstructGPT stages (no instruction or preference data
//! ships in any registry): single- and multi-turn conversations in English and Chinese.
//!
//! Kinds of exchange:
//! - **task** — a task-suite instruction (`Reverse the letters.\nc a t` → `t a c`), inputs from
//!   the task suite's own train/eval split;
//! - **article** — questions about the article, answered from it (`facts.rs`); one phrasing of
//!   each question in each language is held out, a wording the training data uses for other
//!   subjects;
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
            let f = &facts()[rng.below(facts().len())];
            let (qs, a) = if zh { (&f.zh_q, f.zh_a) } else { (&f.en_q, f.en_a) };
            let q = if split == Split::Eval { &qs[0] } else { &qs[1 + rng.below(qs.len() - 1)] };
            Exchange { kind, zh, user: q.clone(), reply: a.to_string() }
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

/// Responses per prompt in the preference data, ranked as InstructGPT's labelers ranked K outputs.
pub const K: usize = 4;

/// One prompt and K responses, best first: the right answer; the right answer in the wrong
/// language; a wrong or off-topic answer (another question's, another task's, a made-up fact, the
/// reply to another kind of message); a rude one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    /// The conversation up to and including the last user message.
    pub messages: Vec<Message>,
    pub kind: Kind,
    pub zh: bool,
    pub responses: [String; K],
}

fn wrong_language(e: &Exchange, rng: &mut Rng) -> String {
    match e.kind {
        Kind::Article => {
            let f = facts().iter().find(|f| f.en_a == e.reply || f.zh_a == e.reply).expect("a fact's answer");
            (if e.zh { f.en_a } else { f.zh_a }).to_string()
        }
        Kind::Refusal => (if e.zh { REFUSAL_EN } else { REFUSAL_ZH }).to_string(),
        Kind::SmallTalk => {
            let other: Vec<&(&str, &str)> =
                SMALL_TALK.iter().filter(|(_, r)| r.chars().any(|c| c > '\u{2e80}') != e.zh).collect();
            other[rng.below(other.len())].1.to_string()
        }
        Kind::Task => {
            if e.zh {
                format!("The answer is {}.", e.reply)
            } else {
                format!("答案是{}。", e.reply)
            }
        }
    }
}

/// A wrong reply in the right language: half the time off-topic (the reply to another kind of
/// message — an article fact to a greeting, a task answer to a question), else a wrong answer of
/// the same kind. (Without off-topic replies the reward model had never seen a fact given to a
/// greeting, and PPO learned to greet with facts.)
fn wrong_answer(e: &Exchange, split: Split, rng: &mut Rng) -> String {
    if rng.chance(0.5) {
        loop {
            let kind = KINDS[rng.below(KINDS.len())];
            if kind != e.kind {
                let other = exchange(kind, split, rng);
                if other.zh == e.zh && other.reply != e.reply {
                    return other.reply;
                }
            }
        }
    }
    same_kind_wrong_answer(e, rng)
}

fn same_kind_wrong_answer(e: &Exchange, rng: &mut Rng) -> String {
    let pick = |pool: &[&str], rng: &mut Rng| loop {
        let r = pool[rng.below(pool.len())];
        if r != e.reply {
            return r.to_string();
        }
    };
    match e.kind {
        Kind::Article => {
            let answers: Vec<&str> = facts().iter().map(|f| if e.zh { f.zh_a } else { f.en_a }).collect();
            pick(&answers, rng)
        }
        Kind::SmallTalk => {
            let same: Vec<&str> =
                SMALL_TALK.iter().map(|(_, r)| *r).filter(|r| r.chars().any(|c| c > '\u{2e80}') == e.zh).collect();
            pick(&same, rng)
        }
        Kind::Refusal => (if e.zh {
            "今天是晴天，明天股票会涨。"
        } else {
            "It is sunny, and the stock market will go up."
        })
        .to_string(),
        Kind::Task => {
            // The same characters, scrambled into a wrong order (or one changed).
            let mut chars: Vec<char> = e.reply.chars().collect();
            chars.reverse();
            let s: String = chars.into_iter().collect();
            if s != e.reply { s } else { format!("{}{}", e.reply, if e.zh { " 一" } else { " 1" }) }
        }
    }
}

fn rude(zh: bool) -> String {
    (if zh { "关我什么事，自己去查。" } else { "I don't care. Figure it out yourself." }).to_string()
}

/// Ranked responses `seed` of `split`: a conversation of 1–2 exchanges, then the ranked prompt.
pub fn ranked(split: Split, seed: u64) -> Ranked {
    let (mut messages, _) = conversation(split, seed, None);
    let mut rng = Rng::new(hash(&[0x5A4E, split as u64, seed]));
    // The last exchange is the one to rank: drop its reply.
    let e = exchange(draw_kind(&mut rng), split, &mut rng);
    if messages.len() > 2 {
        messages.truncate(2);
    }
    messages.push(Message { role: "user".into(), content: e.user.clone() });
    let responses = [e.reply.clone(), wrong_language(&e, &mut rng), wrong_answer(&e, split, &mut rng), rude(e.zh)];
    Ranked { messages, kind: e.kind, zh: e.zh, responses }
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
    fn every_held_out_small_talk_reply_is_taught_by_another_phrasing() {
        let taught: std::collections::HashSet<&str> =
            SMALL_TALK.iter().filter(|(u, _)| text_split(u) == Split::Train).map(|(_, r)| *r).collect();
        for (u, r) in SMALL_TALK.iter().filter(|(u, _)| text_split(u) == Split::Eval) {
            assert!(taught.contains(r), "{u:?}: its reply is never taught");
        }
        assert!(SMALL_TALK.iter().any(|(u, _)| text_split(u) == Split::Eval));
    }

    #[test]
    fn ranked_responses_differ_and_hold_out_their_prompts() {
        let train: Vec<Ranked> = (0..500).map(|s| ranked(Split::Train, s)).collect();
        let seen: std::collections::HashSet<&str> =
            train.iter().map(|r| r.messages.last().unwrap().content.as_str()).collect();
        for s in 0..200 {
            let r = ranked(Split::Eval, s);
            let q = &r.messages.last().unwrap().content;
            assert!(!seen.contains(q.as_str()), "held-out prompt {q:?} in training");
            let unique: std::collections::HashSet<&String> = r.responses.iter().collect();
            assert_eq!(unique.len(), K, "{:?}", r.responses);
            assert_eq!(r.messages.last().unwrap().role, "user");
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
