//! A Llama model to chat with, opened as a person brings one: bf16 weights in two shards with an
//! index, a real byte-level BPE tokenizer, its own chat template (SmolLM2-Instruct's, in
//! `chat_template.jinja`), a generation_config.json with two end tokens
//! (`scripts/make_llama_fixtures.py`, `chat-llama`). Against HF: the rendered prompts and their
//! ids, the logits of each prompt on both engines, the greedy replies.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::sync::Arc;

use common::{llama_dir, max_abs_diff};
use safetensors::SafeTensors;
use serde::Deserialize;
use wgpt::chat::Message;
use wgpt::gpu::{Gpu, GpuOptions, WeightFormat};
use wgpt::{ForwardOptions, LanguageModel, LoadedModel};

#[derive(Deserialize)]
struct Case {
    messages: Vec<Message>,
    text: String,
    ids: Vec<u32>,
    greedy: Vec<u32>,
}

fn expected() -> (Vec<Case>, Vec<Vec<f32>>) {
    #[derive(Deserialize)]
    struct File {
        cases: Vec<Case>,
    }
    let dir = llama_dir();
    let file: File = serde_json::from_slice(&std::fs::read(dir.join("chat-llama.expected.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join("chat-llama.expected.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let logits = (0..file.cases.len())
        .map(|i| {
            let v = st.tensor(&format!("case{i}.logits")).unwrap();
            v.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
        })
        .collect();
    (file.cases, logits)
}

fn open() -> LoadedModel {
    LoadedModel::load(&llama_dir().join("chat-llama")).unwrap()
}

const ALL: ForwardOptions = ForwardOptions { all_logits: true, attention: false, hidden_states: false };

#[test]
fn prompts_are_rendered_and_tokenized_as_hf_does() {
    let m = open();
    assert_eq!(m.text.chat_format_name(), "jinja");
    assert_eq!(m.summary().dtypes, ["BF16"]);
    // config.json's eos (2) and generation_config.json's list (2, 0).
    assert_eq!(m.text.stop_tokens, [0, 2]);
    for case in expected().0 {
        let wgpt::loaded::ChatFormat::Jinja(t) = &m.text.chat else { unreachable!() };
        assert_eq!(t.render(&case.messages, true).unwrap(), case.text);
        let prompt = m.text.chat_prompt(&case.messages, 2048, 64).unwrap();
        assert_eq!(prompt.ids, case.ids);
        assert_eq!(prompt.dropped, 0);
        assert!(prompt.stop_tokens.contains(&2) && prompt.stop_tokens.contains(&0));
    }
}

#[test]
fn the_oldest_turns_are_dropped_to_fit_and_the_system_message_kept() {
    let m = open();
    let (cases, _) = expected();
    let long = &cases[1].messages;
    let full = m.text.chat_prompt(long, 2048, 0).unwrap().ids.len();
    // Room for everything but the first user turn and its answer.
    let prompt = m.text.chat_prompt(long, full - 1, 0).unwrap();
    assert!(prompt.dropped >= 1, "{}", prompt.dropped);
    assert!(prompt.ids.len() < full);
    let text = m.text.tokenizer().unwrap().decode(&prompt.ids).unwrap();
    assert!(text.starts_with("<|im_start|>system\nAnswer briefly."), "{text}");
    assert!(text.contains("什么是 GPT？"), "{text}");
    // The last message alone does not fit: a clear error.
    assert!(m.text.chat_prompt(long, 8, 0).is_err());
}

#[test]
fn logits_and_greedy_replies_match_hf_on_both_engines() {
    let m = open();
    let (cases, logits) = expected();
    let gpu = Arc::new(pollster::block_on(Gpu::new()).expect("a GPU adapter (CI uses Mesa's lavapipe)"));
    let argmax = |l: &[f32]| l.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 as u32;
    let engines: Vec<(&str, Box<dyn LanguageModel>, f32)> = vec![
        ("cpu", m.cpu(2048), 1e-4),
        (
            "gpu f32",
            Box::new(m.gpu(gpu.clone(), GpuOptions { format: Some(WeightFormat::F32), ..Default::default() }).unwrap()),
            1e-3,
        ),
    ];
    for (name, mut e, tol) in engines {
        for (case, want) in cases.iter().zip(&logits) {
            e.reset();
            let got = pollster::block_on(e.forward(&case.ids, ALL)).unwrap().logits.clone();
            let d = max_abs_diff(&got, want);
            assert!(d < tol, "{name}: logits differ from HF's by {d}");
            let mut next = argmax(&got[got.len() - m.summary().vocab_size..]);
            let mut reply = vec![next];
            while reply.len() < case.greedy.len() {
                next = argmax(pollster::block_on(e.forward(&[next], ForwardOptions::default())).unwrap().last_logits());
                reply.push(next);
            }
            assert_eq!(reply, case.greedy, "{name}");
        }
    }
    // The default device format for bf16 weights is f16 (both 16-bit): the same top tokens.
    let mut g = m.gpu(gpu, GpuOptions::default()).unwrap();
    assert!(g.describe().contains("weights f16"), "{}", g.describe());
    let got = pollster::block_on(g.run(&cases[0].ids, ALL)).unwrap().logits.clone();
    let v = m.summary().vocab_size;
    let same = got.chunks(v).zip(logits[0].chunks(v)).filter(|(a, b)| argmax(a) == argmax(b)).count();
    assert!(same * 100 >= 95 * cases[0].ids.len(), "{same}/{}", cases[0].ids.len());
}

#[test]
fn broken_model_folders_are_refused_with_what_is_wrong() {
    use std::collections::BTreeMap;
    let dir = llama_dir().join("chat-llama");
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
    let names = [
        "config.json",
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "generation_config.json",
    ];
    type Owned = BTreeMap<String, Vec<u8>>;
    let owned: Owned = names.iter().map(|n| (n.to_string(), read(n))).collect();
    let files = |edit: &dyn Fn(&mut Owned)| {
        let mut o = owned.clone();
        edit(&mut o);
        let f: wgpt::loaded::Files = o.iter().map(|(k, v)| (k.clone(), v.as_slice())).collect();
        LoadedModel::from_files(&f).err().map(|e| e.to_string())
    };
    assert_eq!(files(&|_| {}), None);
    let missing = files(&|o| {
        o.remove("model-00002-of-00002.safetensors");
    })
    .unwrap();
    assert!(missing.contains("model-00002-of-00002.safetensors") && missing.contains("missing"), "{missing}");
    let raises = files(&|o| {
        o.insert("chat_template.jinja".into(), b"{{ raise_exception('no system messages') }}".to_vec());
    });
    // A template that raises loads (it is only code) and says so when a conversation is rendered.
    assert_eq!(raises, None);
    let broken = files(&|o| {
        o.insert("chat_template.jinja".into(), b"{% for %}".to_vec());
    })
    .unwrap();
    assert!(broken.contains("does not parse"), "{broken}");
    let unknown = files(&|o| {
        o.insert("config.json".into(), br#"{"model_type": "gpt_neox", "hidden_size": 64}"#.to_vec());
    })
    .unwrap();
    assert!(unknown.contains("gpt_neox"), "{unknown}");
    let path = files(&|o| {
        o.insert("model.safetensors.index.json".into(), br#"{"weight_map": {"a": "../secret"}}"#.to_vec());
    })
    .unwrap();
    assert!(path.contains("shards live beside the index"), "{path}");
}

#[test]
fn a_template_that_raises_is_an_error_when_rendering() {
    let mut m = open();
    m.text.chat = wgpt::loaded::ChatFormat::Jinja(Box::new(
        wgpt::chat_template::ChatTemplate::new(
            "{{ raise_exception('System role not supported') }}".into(),
            Default::default(),
        )
        .unwrap(),
    ));
    let msgs = [Message { role: "user".into(), content: "hi".into() }];
    let err = m.text.chat_prompt(&msgs, 2048, 16).unwrap_err().to_string();
    assert!(err.contains("System role not supported"), "{err}");
}

/// `wgpt chat` on piped input: HF's greedy reply, the conversation kept across turns.
#[test]
fn the_terminal_chat_replies_as_hf_does() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = llama_dir().join("chat-llama");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgpt"))
        .args(["chat", "--model", dir.to_str().unwrap(), "--temperature", "0", "--max-tokens", "8"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let question = &expected().0[0].messages[0].content;
    writeln!(child.stdin.as_mut().unwrap(), "{question}\nAnd then?\n/reset\n{question}").unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    // HF's 8-token greedy reply, decoded as HF decodes it (the random model ends mid-character).
    let want: serde_json::Value =
        serde_json::from_slice(&std::fs::read(llama_dir().join("chat-llama.expected.json")).unwrap()).unwrap();
    let reply = want["cases"][0]["reply"].as_str().unwrap();
    let replies: Vec<&str> = stdout.split("> ").filter(|s| !s.trim().is_empty()).collect();
    assert_eq!(replies.len(), 3, "{stdout}");
    assert_eq!(replies[0].trim_end_matches('\n'), reply, "{stdout}");
    // After /reset the same question gets the same reply; the second turn saw the first.
    assert_eq!(replies[2], replies[0], "{stdout}");
    assert!(stderr.contains("a new conversation") && stderr.contains("jinja format"), "{stderr}");
}

/// Ctrl-C stops the reply being streamed; the program goes on to the next message.
#[test]
fn ctrl_c_stops_a_reply_not_the_program() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let dir = llama_dir().join("chat-llama");
    // Greedy, the fixture's first question makes the random model talk for hundreds of tokens
    // (scripts/make_llama_fixtures.py picks its seed for that).
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgpt"))
        .args(["chat", "--model", dir.to_str().unwrap(), "--temperature", "0", "--max-tokens", "100000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", expected().0[0].messages[0].content).unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while seen.len() < 40 {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "the chat ended before replying");
        seen.extend_from_slice(&buf[..n]);
    }
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    writeln!(stdin, "/exit").unwrap();
    drop(stdin);
    stdout.read_to_end(&mut seen).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    let tokens: usize = stderr.split('[').find_map(|s| s.split(" tokens,").next()?.parse().ok()).unwrap();
    assert!(tokens < 1500, "the reply ran on to {tokens} tokens");
}
