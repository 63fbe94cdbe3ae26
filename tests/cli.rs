//! The `wgpt` binary: its four commands' outputs, and clear errors (never a panic) on bad input.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::process::{Command, Output};

use common::{expected, hf_model_dir, max_abs_diff};
use serde_json::Value;

fn wgpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgpt")).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = wgpt(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail with a message and no panic; returns stderr.
fn fails(args: &[&str]) -> String {
    let out = wgpt(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert!(!stderr.trim().is_empty(), "{args:?} failed silently");
    stderr
}

#[test]
fn tokenize_and_logits_json_match_hf() {
    let dir = hf_model_dir("tiny-f32");
    let model = dir.to_str().unwrap();
    let exp = expected("tiny-f32");
    let case = &exp.cases[1];
    let v: Value = serde_json::from_str(&ok(&["tokenize", "--model", model, "--text", &case.text, "--json"])).unwrap();
    let ids: Vec<u32> = serde_json::from_value(v["ids"].clone()).unwrap();
    assert_eq!(ids, case.ids);

    let ids_arg = ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let by_ids: Value = serde_json::from_str(&ok(&["logits", "--model", model, "--ids", &ids_arg, "--json"])).unwrap();
    let by_text: Value =
        serde_json::from_str(&ok(&["logits", "--model", model, "--prompt", &case.text, "--json"])).unwrap();
    assert_eq!(by_ids, by_text);
    let rows: Vec<Vec<f32>> = serde_json::from_value(by_ids["logits"].clone()).unwrap();
    assert_eq!(rows.len(), ids.len());
    assert!(rows.iter().all(|r| r.len() == 512));
    let d = max_abs_diff(&rows.concat(), &exp.tensors["case1.logits"].1);
    assert!(d < 1e-4, "{d}");
}

#[test]
fn generate_is_reproducible_by_seed_and_greedy_matches_hf() {
    let dir = hf_model_dir("tiny-f32");
    let model = dir.to_str().unwrap();
    let run =
        |seed: &str| ok(&["generate", "--model", model, "--prompt", "You are", "--max-tokens", "24", "--seed", seed]);
    let a = run("7");
    assert_eq!(a, run("7"));
    assert_ne!(a, run("8"));

    let case = &expected("tiny-f32").cases[0];
    let greedy = ok(&[
        "generate",
        "--model",
        model,
        "--prompt",
        &case.text,
        "--max-tokens",
        "8",
        "--temperature",
        "0",
        "--ignore-eos",
    ]);
    let tok = wgpt::bundle::load_tokenizer(&dir).unwrap();
    assert_eq!(greedy.trim_end_matches('\n'), tok.decode(&case.greedy).unwrap());
}

#[test]
fn inspect_reports_parameters_and_dtypes() {
    let dir = hf_model_dir("gpt2vocab-f16");
    let v: Value = serde_json::from_str(&ok(&["inspect", "--model", dir.to_str().unwrap(), "--json"])).unwrap();
    // vocab 50257 x 16 + 48 x 16 + one block (2 LN + c_attn + proj + fc + proj) + ln_f.
    let c = 16;
    let block = 4 * c + (c * 3 * c + 3 * c) + (c * c + c) + (c * 4 * c + 4 * c) + (4 * c * c + c);
    assert_eq!(v["parameters"], 50257 * c + 48 * c + block + 2 * c);
    assert_eq!(v["dtypes"], serde_json::json!(["F16"]));
    assert_eq!(v["config"]["n_head"], 1);
    let text = ok(&["inspect", "--model", dir.to_str().unwrap()]);
    assert!(text.contains("0.81 M"), "{text}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = hf_model_dir("tiny-f32");
    let model = dir.to_str().unwrap();
    assert!(fails(&["generate", "--model", "/no/such/dir", "--prompt", "x"]).contains("/no/such/dir: not a directory"));
    assert!(fails(&["logits", "--model", model, "--ids", "1,x"]).contains("\"x\""));
    assert!(fails(&["logits", "--model", model, "--ids", "1,99999"]).contains("99999"));
    assert!(fails(&["logits", "--model", model, "--ids", "1", "--prompt", "a"]).contains("cannot be used"));
    assert!(fails(&["generate", "--model", model, "--prompt", "x", "--top-p", "2"]).contains("top_p"));
    assert!(fails(&["generate", "--model", model, "--prompt", "x", "--temperature", "-1"]).contains("temperature"));
    assert!(fails(&["generate", "--model", model, "--prompt", "x", "--max-tokens", "many"]).contains("many"));
    let long = "word ".repeat(200);
    assert!(fails(&["generate", "--model", model, "--prompt", &long]).contains("prompt"));
    assert!(fails(&["frobnicate"]).contains("frobnicate"));
    // The CPU engine holds f16 too; its activations are 8-bit or f32.
    ok(&["generate", "--model", model, "--prompt", "x", "--dtype", "f16", "--max-tokens", "2"]);
    ok(&["generate", "--model", model, "--prompt", "x", "--activations", "q8", "--max-tokens", "2"]);
    assert!(fails(&["generate", "--model", model, "--prompt", "x", "--activations", "q4"]).contains("q4"));
    // GPT-2 (tiny-f32, 32 wide) runs in Q8_0 blocks, but its rows are not whole 256-value Q4_K
    // super-blocks: refused with the reason, on either engine.
    ok(&["generate", "--model", model, "--prompt", "x", "--dtype", "q8_0", "--max-tokens", "2"]);
    assert!(fails(&["generate", "--model", model, "--prompt", "x", "--dtype", "q4_k"]).contains("256"));
    let gpu_q4k = fails(&["logits", "--model", model, "--ids", "1", "--backend", "gpu", "--dtype", "q4_k"]);
    assert!(gpu_q4k.contains("256"), "{gpu_q4k}");
    assert!(fails(&["logits", "--model", model, "--ids", "1", "--backend", "gpu", "--dtype", "f8"]).contains("f8"));
    assert!(fails(&["bench", "--shape", "gpt-9"]).contains("unknown shape"));

    // A truncated weights file.
    let broken = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(dir.join(f), broken.path().join(f)).unwrap();
    }
    let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
    std::fs::write(broken.path().join("model.safetensors"), &weights[..weights.len() / 2]).unwrap();
    assert!(fails(&["inspect", "--model", broken.path().to_str().unwrap()]).contains("truncated"));
}

#[test]
fn empty_prompt_starts_from_end_of_text() {
    let dir = hf_model_dir("tiny-f32");
    let out = wgpt(&["generate", "--model", dir.to_str().unwrap(), "--prompt", "", "--max-tokens", "5", "--seed", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 prompt"));
}

#[test]
fn the_gpu_backend_gives_the_same_logits_and_text() {
    let dir = hf_model_dir("tiny-f32");
    let model = dir.to_str().unwrap();
    let logits = |backend: &str| -> Vec<Vec<f32>> {
        let v: Value = serde_json::from_str(&ok(&[
            "logits",
            "--model",
            model,
            "--prompt",
            "You are",
            "--json",
            "--backend",
            backend,
        ]))
        .unwrap();
        serde_json::from_value(v["logits"].clone()).unwrap()
    };
    let d = max_abs_diff(&logits("gpu").concat(), &logits("cpu").concat());
    assert!(d < 1e-3, "{d}");
    let text = |backend: &str| {
        ok(&[
            "generate",
            "--model",
            model,
            "--prompt",
            "You are",
            "--max-tokens",
            "16",
            "--seed",
            "5",
            "--backend",
            backend,
        ])
    };
    assert_eq!(text("gpu"), text("cpu"));
}

/// A GGUF file works where a model folder does: inspect, tokenize, chat-template, logits; a
/// truncated one is a clear error.
#[test]
fn a_gguf_file_is_a_model() {
    let gguf = common::fixtures().join("gguf/chat-llama.q8_0.gguf");
    let model = gguf.to_str().unwrap();
    let v: Value = serde_json::from_str(&ok(&["inspect", "--model", model, "--json"])).unwrap();
    assert_eq!(v["model_type"], "llama");
    assert_eq!(v["dtypes"], serde_json::json!(["F32", "Q8_0"]));
    let ids: Value = serde_json::from_str(&ok(&["tokenize", "--model", model, "--text", "Hello", "--json"])).unwrap();
    let folder = common::fixtures().join("llama/chat-llama");
    let want: Value =
        serde_json::from_str(&ok(&["tokenize", "--model", folder.to_str().unwrap(), "--text", "Hello", "--json"]))
            .unwrap();
    assert_eq!(ids, want);
    let logits: Value = serde_json::from_str(&ok(&["logits", "--model", model, "--ids", "1,2,3", "--json"])).unwrap();
    assert!(logits.is_object(), "{logits}");
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.gguf");
    let bytes = std::fs::read(&gguf).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    let e = fails(&["inspect", "--model", cut.to_str().unwrap()]);
    assert!(e.contains("cut.gguf") && e.contains("past the end"), "{e}");
}

/// `wgpt quantize` writes a GGUF file every command then takes, and never overwrites by accident.
#[test]
fn quantize_writes_a_gguf_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("chat.q4_0.gguf");
    let folder = common::fixtures().join("llama/chat-llama");
    let args = ["quantize", "--model", folder.to_str().unwrap(), "--to", "q4_0", "--out", out.to_str().unwrap()];
    let out_text = wgpt(&args);
    assert!(out_text.status.success(), "{}", String::from_utf8_lossy(&out_text.stderr));
    assert!(String::from_utf8_lossy(&out_text.stderr).contains("14 Q4_0"));
    let v: Value = serde_json::from_str(&ok(&["inspect", "--model", out.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(v["dtypes"], serde_json::json!(["F32", "Q4_0", "Q8_0"]));
    assert!(fails(&args).contains("exists"));
    assert!(fails(&["quantize", "--model", folder.to_str().unwrap(), "--to", "q3", "--out", "x.gguf"]).contains("q3"));
}
