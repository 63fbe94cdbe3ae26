//! `eval --suite chat`: exact-answer accuracy on held-out conversations (`instruct::eval_set`),
//! per kind (task, article, small talk, refusal) and language. The prompt is the conversation up
//! to the last user turn, through the page's chat template; correct = greedy decoding writes the
//! reference reply and then ends its turn (`<|im_end|>`), scored in one forward pass as in `icl`.

use std::collections::HashSet;

use anyhow::bail;
use serde::Serialize;
use wgpt::chat::{ChatError, Template, build_prompt, template};
use wgpt::tokenizer::Tokenizer;

use crate::data::instruct::{self, KINDS};
use crate::model::Gpt;
use crate::model::fused::FusedOps;
use crate::stages::icl::predict_ids;

#[derive(Debug, Clone, Serialize)]
pub struct ChatCell {
    pub model: String,
    pub kind: String,
    pub language: String,
    pub correct: usize,
    pub total: usize,
    pub accuracy: f64,
}

/// One held-out conversation's last turn and what the model wrote for it.
#[derive(Debug, Clone, Serialize)]
pub struct ChatExample {
    pub model: String,
    pub kind: String,
    pub language: String,
    pub user: String,
    pub expected: String,
    /// Greedy's reply up to and including its first token off the expected one ("" when the
    /// conversation does not fit the context).
    pub greedy: String,
    pub correct: bool,
}

/// The reward model's mean score of a model's greedy replies to held-out prompts.
#[derive(Debug, Clone, Serialize)]
pub struct RewardRow {
    pub model: String,
    pub prompts: usize,
    pub mean_reward: f64,
}

pub fn evaluate<B: FusedOps>(
    name: &str,
    model: &Gpt<B>,
    tok: &Tokenizer,
    per_kind: usize,
    device: &B::Device,
) -> anyhow::Result<(Vec<ChatCell>, Vec<ChatExample>)> {
    let Template::ChatMl { end, .. } = template(tok) else {
        bail!("{name}: its tokenizer has no <|im_start|>/<|im_end|> tokens, so it has no chat template to evaluate");
    };
    let c = model.config();
    let set = instruct::eval_set(per_kind);
    // A conversation whose last question and answer do not fit the context counts as wrong.
    let mut pairs = Vec::with_capacity(set.len());
    let mut fits = Vec::with_capacity(set.len());
    for (messages, ex) in &set {
        let answer = tok.encode(&ex.reply)?;
        let prompt =
            build_prompt(tok, c.eos_token_id, &messages[..messages.len() - 1], c.n_positions, answer.len() + 1);
        match prompt {
            Ok(p) => {
                pairs.push((p.ids, answer));
                fits.push(true);
            }
            Err(ChatError::TooLong(..)) => fits.push(false),
            Err(e) => return Err(e.into()),
        }
    }
    let mut preds = predict_ids(model, pairs, device)?.into_iter();
    let stops: HashSet<u32> = [Some(end), c.eos_token_id].into_iter().flatten().collect();
    let mut right = Vec::with_capacity(set.len());
    let mut examples = Vec::with_capacity(set.len());
    for ((messages, ex), &fit) in set.iter().zip(&fits) {
        let pred = if fit { preds.next() } else { None };
        let correct = pred.as_ref().is_some_and(|p| p.correct(&stops));
        right.push(correct);
        examples.push(ChatExample {
            model: name.to_string(),
            kind: ex.kind.name().to_string(),
            language: if ex.zh { "zh" } else { "en" }.to_string(),
            user: messages[messages.len() - 2].content.clone(),
            expected: ex.reply.clone(),
            greedy: pred.map_or(Ok(String::new()), |p| tok.decode(p.greedy_prefix()))?,
            correct,
        });
    }
    let mut cells = Vec::new();
    for kind in KINDS {
        for zh in [false, true] {
            let hits: Vec<bool> =
                set.iter().zip(&right).filter(|((_, ex), _)| ex.kind == kind && ex.zh == zh).map(|(_, &r)| r).collect();
            let correct = hits.iter().filter(|&&h| h).count();
            cells.push(ChatCell {
                model: name.to_string(),
                kind: kind.name().to_string(),
                language: if zh { "zh" } else { "en" }.to_string(),
                correct,
                total: hits.len(),
                accuracy: correct as f64 / hits.len().max(1) as f64,
            });
        }
    }
    Ok((cells, examples))
}

/// One row per model: accuracy per kind and language, and overall; then the rewards.
pub fn markdown(cells: &[ChatCell], rewards: &[RewardRow], examples: &[ChatExample]) -> String {
    let mut cols: Vec<(String, String)> = Vec::new();
    let mut models: Vec<String> = Vec::new();
    for c in cells {
        if !cols.contains(&(c.kind.clone(), c.language.clone())) {
            cols.push((c.kind.clone(), c.language.clone()));
        }
        if !models.contains(&c.model) {
            models.push(c.model.clone());
        }
    }
    let mut s = String::from(
        "Exact-answer accuracy (%) of greedy replies on held-out conversations (the last turn is scored).\n\n",
    );
    let head: Vec<String> = cols.iter().map(|(k, l)| format!("{k} {l}")).collect();
    s.push_str(&format!("| model | {} | all |\n|---|{}---:|\n", head.join(" | "), "---:|".repeat(cols.len())));
    for m in &models {
        let mine: Vec<&ChatCell> = cells.iter().filter(|c| &c.model == m).collect();
        let vals: Vec<String> = cols
            .iter()
            .map(|(k, l)| {
                mine.iter()
                    .find(|c| &c.kind == k && &c.language == l)
                    .map_or("–".into(), |c| format!("{:.0} ({}/{})", 100.0 * c.accuracy, c.correct, c.total))
            })
            .collect();
        let (right, total) = mine.iter().fold((0, 0), |(r, t), c| (r + c.correct, t + c.total));
        s.push_str(&format!("| {m} | {} | {:.0} |\n", vals.join(" | "), 100.0 * right as f64 / total.max(1) as f64));
    }
    if !rewards.is_empty() {
        s.push_str("\nMean reward-model score of greedy replies to held-out prompts:\n\n| model | prompts | reward |\n|---|---:|---:|\n");
        for r in rewards {
            s.push_str(&format!("| {} | {} | {:.3} |\n", r.model, r.prompts, r.mean_reward));
        }
    }
    // A few misses per model, so the table can be read against what the model actually wrote.
    for m in &models {
        let misses: Vec<&ChatExample> = examples.iter().filter(|e| &e.model == m && !e.correct).take(8).collect();
        if misses.is_empty() {
            continue;
        }
        s.push_str(&format!(
            "\nFirst misses of {m} (greedy's reply up to its first wrong token; all in chat.json):\n\n\
             | kind | user | expected | greedy |\n|---|---|---|---|\n"
        ));
        for e in misses {
            let cell = |t: &str| t.replace('|', "\\|").replace('\n', " ⏎ ");
            s.push_str(&format!(
                "| {} {} | {} | {} | {} |\n",
                e.kind,
                e.language,
                cell(&e.user),
                cell(&e.expected),
                cell(&e.greedy)
            ));
        }
    }
    s
}
