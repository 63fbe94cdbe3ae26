//! `eval`'s scoring: the batched, padded, truncated burn forward gives the same greedy predictions
//! as the CPU reference run on each episode alone, and the exact-match rule is the greedy one.

use std::collections::HashSet;
use std::sync::Arc;

use wgpt::config::GptConfig;
use wgpt::tasks::{self, Description, Split};
use wgpt::{CpuSession, ForwardOptions};
use wgpt_train::backend::Cpu;
use wgpt_train::model::Gpt;
use wgpt_train::model::init::gpt2_init;
use wgpt_train::stages::icl::{self, Prediction};

fn argmax(row: &[f32]) -> u32 {
    row.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 as u32
}

#[test]
fn batched_predictions_match_the_cpu_reference_episode_by_episode() {
    // A tokenizer trained on episodes, a random nano model with a short context (so k = 8
    // prompts are cut).
    let docs: Vec<String> = (0..400).map(|i| tasks::document(Split::Train, i).document()).collect();
    let json = wgpt_train::data::prepare::train_tokenizer(docs.iter().map(String::as_str), 400).unwrap();
    let tok = wgpt::Tokenizer::from_json(json.as_bytes()).unwrap();
    let config = GptConfig::from_json(
        format!(r#"{{"vocab_size":{},"n_positions":48,"n_embd":32,"n_layer":2,"n_head":2}}"#, tok.id_bound())
            .as_bytes(),
    )
    .unwrap();
    let weights = gpt2_init(&config, 5);
    let model = Gpt::<Cpu>::from_weights(&config, &weights, &Default::default());

    let episodes: Vec<_> = tasks::ALL
        .iter()
        .flat_map(|&t| [0, 2, 8].map(|k| tasks::episode(t, k, Description::Canonical, Split::Eval, k as u64)))
        .collect();
    let preds = icl::predict(&model, &tok, &episodes, &Default::default()).unwrap();
    let inputs = icl::inputs(&tok, &episodes, config.n_positions).unwrap();
    assert!(preds.iter().any(|p| p.truncated) && preds.iter().any(|p| !p.truncated));

    let mut session = CpuSession::new(config.clone(), Arc::new(weights));
    for ((pred, (ids, first)), e) in preds.iter().zip(&inputs).zip(&episodes) {
        assert!(ids.len() <= config.n_positions);
        assert_eq!(pred.answer, tok.encode(&format!(" {}", e.answer)).unwrap());
        session.reset();
        let out = session.run(ids, ForwardOptions { all_logits: true, ..Default::default() }).unwrap();
        let v = config.vocab_size;
        let expected: Vec<u32> =
            (0..=pred.answer.len()).map(|j| argmax(&out.logits[(first + j) * v..(first + j + 1) * v])).collect();
        assert_eq!(pred.argmax, expected, "{:?} k={}", e.task, e.demos.len());
    }
}

#[test]
fn an_answer_counts_only_when_greedy_writes_it_then_stops() {
    let stops = HashSet::from([0, 9]);
    let p = |argmax: Vec<u32>| Prediction { answer: vec![4, 5], argmax, truncated: false };
    assert!(p(vec![4, 5, 9]).correct(&stops));
    assert!(p(vec![4, 5, 0]).correct(&stops));
    assert!(!p(vec![4, 5, 6]).correct(&stops), "keeps writing");
    assert!(!p(vec![4, 6, 9]).correct(&stops), "wrong token");
    assert!(!p(vec![9, 5, 9]).correct(&stops), "stops early");
}

#[test]
fn stop_tokens_are_the_line_breaks_and_the_end_of_document() {
    let docs: Vec<String> = (0..200).map(|i| tasks::document(Split::Train, i).document()).collect();
    let json = wgpt_train::data::prepare::train_tokenizer(docs.iter().map(String::as_str), 320).unwrap();
    let tok = wgpt::Tokenizer::from_json(json.as_bytes()).unwrap();
    let stops = icl::stop_ids(&tok, Some(0));
    let newline = tok.encode("\n").unwrap();
    assert!(stops.contains(&newline[0]) && stops.contains(&0));
    let letter = tok.encode(" a").unwrap();
    assert!(!stops.contains(&letter[0]));
}

#[test]
fn supervised_examples_weight_only_the_targets_and_pad_with_zero_weight() {
    use wgpt_train::data::{example, padded_batch};
    // ids 10 11 12 13, the last two are targets: predictions 11←10, 12←11, 13←12.
    let (x, y, w) = example(&[10, 11, 12, 13], &[false, false, true, true], 8);
    assert_eq!((x.clone(), y.clone(), w.clone()), (vec![10, 11, 12], vec![11, 12, 13], vec![0.0, 1.0, 1.0]));
    // Cut to the context: 2 predictions.
    assert_eq!(example(&[10, 11, 12, 13], &[false, false, true, true], 2).2, vec![0.0, 1.0]);
    let b = padded_batch(vec![(x, y, w), (vec![5], vec![6], vec![1.0])], 99);
    assert_eq!((b.rows, b.context), (2, 3));
    assert_eq!(b.inputs, vec![10, 11, 12, 5, 99, 99]);
    assert_eq!(b.targets, vec![11, 12, 13, 6, 99, 99]);
    assert_eq!(b.weights.unwrap(), vec![0.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
}

#[test]
fn greedy_prefix_stops_at_the_first_wrong_token() {
    let p = |argmax: Vec<u32>| Prediction { answer: vec![5, 6, 7], argmax, truncated: false };
    // Right all along, then a stop: the whole argmax.
    assert_eq!(p(vec![5, 6, 7, 0]).greedy_prefix(), &[5, 6, 7, 0]);
    // Off at the second token: greedy wrote 5 then 9 (what follows 9 is not known from one pass).
    assert_eq!(p(vec![5, 9, 7, 0]).greedy_prefix(), &[5, 9]);
    assert_eq!(p(vec![1, 6, 7, 0]).greedy_prefix(), &[1]);
}
