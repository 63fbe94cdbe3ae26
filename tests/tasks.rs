//! The task suite's prompts are fixed strings: `tests/fixtures/episodes.json` holds a few held-out
//! episodes, which this test rebuilds natively and the page tests rebuild in the browser (the
//! same Rust through wasm, driven by the page's controls), so Rust and the page cannot drift.
//! `WGPT_BLESS=1 cargo test --test tasks` rewrites the file after a deliberate format change.

use serde_json::{Value, json};
use wgpt::tasks::{Description, Split, Task, episode};

const CASES: [(&str, usize, bool, u64); 5] = [
    ("reverse", 4, false, 0),
    ("sentiment", 2, true, 3),
    ("add", 8, false, 11),
    ("lookup", 1, true, 5),
    ("first", 0, true, 2),
];

fn build() -> Value {
    let rows: Vec<Value> = CASES
        .iter()
        .map(|&(task, k, desc, seed)| {
            let d = if desc { Description::Canonical } else { Description::None };
            let e = episode(Task::from_name(task).unwrap(), k, d, Split::Eval, seed);
            json!({"task": task, "k": k, "description": desc, "seed": seed, "prompt": e.prompt(), "answer": e.answer})
        })
        .collect();
    Value::from(rows)
}

#[test]
fn held_out_episodes_match_the_fixture_the_page_tests_use() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/episodes.json");
    let built = build();
    if std::env::var_os("WGPT_BLESS").is_some() {
        std::fs::write(path, serde_json::to_string_pretty(&built).unwrap() + "\n").unwrap();
    }
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(built, fixture, "the episode format changed; rebless if that was deliberate");
}
