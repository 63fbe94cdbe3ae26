//! The Llama family's CPU reference against HF transformers, independently of our code: tiny
//! random llama (GQA, head_dim ≠ hidden/heads, llama3 rope scaling, untied head, the legacy config
//! form), qwen2 (q/k/v biases, tied) and qwen3 (per-head q/k RMSNorm, tied) checkpoints from
//! scripts/make_llama_fixtures.py: logits at every position within 1e-4, greedy continuations
//! identical, KV-cache decoding equal to one prefill.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::sync::Arc;

use wgpt::ForwardOptions;
use wgpt::llama::{LlamaSession, load};

use common::{LLAMA_MODELS as MODELS, llama_dir as dir, llama_expected as expected};

fn session(name: &str) -> LlamaSession {
    let (config, weights) = load(&dir().join(name)).unwrap();
    LlamaSession::new(config, Arc::new(weights))
}

/// A checkpoint given up to the model (read from disk, downloaded) is where its matrices stay:
/// each one, F32 or F16, lies in the file's own buffer, and the logits are the bits of the same
/// checkpoint loaded from borrowed bytes (its matrices copied).
#[test]
fn an_owned_checkpoint_s_matrices_are_its_file_s_bytes() {
    use wgpt::llama::{LlamaConfig, LlamaWeights};
    use wgpt::quant::Matrix;
    for name in ["llama-gqa", "qwen2-bias"] {
        let config = LlamaConfig::from_json(&std::fs::read(dir().join(name).join("config.json")).unwrap()).unwrap();
        let file = Arc::new(std::fs::read(dir().join(name).join("model.safetensors")).unwrap());
        let copied = LlamaWeights::from_files(&[file.as_slice()], &config).unwrap();
        let held = LlamaWeights::from_owned_files(vec![file.clone()], &config).unwrap();
        let bytes = file.as_ptr_range();
        let inside = |m: &Matrix| matches!(m, Matrix::Blocks(b) if bytes.contains(&b.data.as_ptr()));
        let matrices: Vec<&Matrix> =
            held.layers.iter().flat_map(|l| l.projections().map(|p| &p.weight)).chain([&held.embed_tokens]).collect();
        assert!(matrices.iter().all(|m| inside(m)), "{name}: a matrix outside the file's buffer");
        let logits = |w: LlamaWeights| {
            let mut s = LlamaSession::new(config.clone(), Arc::new(w));
            s.run(&[1, 5, 9, 2], ForwardOptions::default()).unwrap().logits.clone()
        };
        let (a, b) = (logits(copied), logits(held));
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{name}");
    }
}

#[test]
fn logits_match_hf() {
    for name in MODELS {
        // The parameter count from the config alone is what the file holds (HF printed 106,816,
        // 86,720 and 102,848 for these three).
        let (config, weights) = load(&dir().join(name)).unwrap();
        let held: usize = weights.stored.iter().map(|t| t.shape.iter().product::<usize>()).sum();
        assert_eq!(config.parameter_count(), held, "{name}");
        let (cases, logits) = expected(name);
        let mut worst = 0.0f32;
        for (case, want) in cases.iter().zip(&logits) {
            let mut s = session(name);
            let out = s.run(&case.ids, ForwardOptions { all_logits: true, ..Default::default() }).unwrap();
            assert_eq!(out.logits.len(), want.len());
            let d = common::max_abs_diff(&out.logits, want);
            worst = worst.max(d);
            assert!(d < 1e-4, "{name}: logits differ by {d}");
        }
        eprintln!("{name}: largest logit difference {worst:.1e}");
    }
}

#[test]
fn greedy_continuations_match_hf_and_decoding_equals_one_prefill() {
    for name in MODELS {
        let (cases, _) = expected(name);
        for case in &cases {
            let mut s = session(name);
            let argmax = |l: &[f32]| l.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 as u32;
            let mut next = argmax(s.run(&case.ids, ForwardOptions::default()).unwrap().last_logits());
            let mut got = vec![next];
            while got.len() < case.greedy.len() {
                next = argmax(s.run(&[next], ForwardOptions::default()).unwrap().last_logits());
                got.push(next);
            }
            assert_eq!(got, case.greedy, "{name}: {:?}", case.ids);
            // Token by token through the KV cache gives the one-prefill logits.
            let all: Vec<u32> = case.ids.iter().chain(&got).copied().collect();
            let mut one = session(name);
            let want = one.run(&all, ForwardOptions { all_logits: true, ..Default::default() }).unwrap().logits.clone();
            let mut step = session(name);
            let v = want.len() / all.len();
            for (t, id) in all.iter().enumerate() {
                let l = step.run(&[*id], ForwardOptions::default()).unwrap().last_logits().to_vec();
                let d = common::max_abs_diff(&l, &want[t * v..(t + 1) * v]);
                assert!(d < 1e-4, "{name}: decode at {t} differs by {d}");
            }
        }
    }
}

#[test]
fn attention_maps_are_causal_distributions_and_truncation_reuses_the_prefix() {
    use wgpt::LanguageModel;
    let (cases, _) = expected("llama-gqa");
    let ids = &cases[0].ids;
    let mut s = session("llama-gqa");
    let maps = s.run(ids, ForwardOptions { attention: true, ..Default::default() }).unwrap().attention.clone();
    let (heads, n) = (4, ids.len());
    assert_eq!(maps.len(), 2);
    for map in &maps {
        for row in map.chunks(n) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        assert_eq!(map.len(), heads * n * n);
        assert_eq!(map[1], 0.0, "row 0 sees only position 0");
    }
    // Cut back to 3 tokens and run the rest again: the same last logits as one prefill.
    let want = s.run(&[9], ForwardOptions::default()).unwrap().last_logits().to_vec();
    s.truncate(3);
    let rest: Vec<u32> = ids[3..].iter().copied().chain([9]).collect();
    let got = s.run(&rest, ForwardOptions::default()).unwrap().last_logits().to_vec();
    assert!(common::max_abs_diff(&got, &want) < 1e-5);
    assert_eq!(s.position(), ids.len() + 1);
}

#[test]
fn broken_files_are_clear_errors() {
    use wgpt::bundle::BundleError;
    let tmp = tempfile::tempdir().unwrap();
    let src = dir().join("qwen3-qknorm");
    let copy = |name: &str| std::fs::copy(src.join(name), tmp.path().join(name)).unwrap();
    copy("config.json");
    // No weights.
    assert!(matches!(load(tmp.path()), Err(BundleError::Io { .. })));
    // A shard the index names is missing.
    std::fs::write(
        tmp.path().join("model.safetensors.index.json"),
        br#"{"weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors"}}"#,
    )
    .unwrap();
    let err = load(tmp.path()).err().unwrap();
    assert!(err.to_string().contains("model-00001-of-00002.safetensors"), "{err}");
    // An unknown model_type.
    std::fs::remove_file(tmp.path().join("model.safetensors.index.json")).unwrap();
    copy("model.safetensors");
    let config = std::fs::read_to_string(src.join("config.json")).unwrap().replace("\"qwen3\"", "\"gpt_neox\"");
    std::fs::write(tmp.path().join("config.json"), config).unwrap();
    let err = load(tmp.path()).err().unwrap();
    assert!(err.to_string().contains("model_type"), "{err}");
}

#[test]
fn the_cli_runs_the_family_on_both_engines_and_refuses_bad_input() {
    use std::process::Command;
    let wgpt = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_wgpt")).args(args).output().unwrap();
    let (cases, logits) = expected("llama-gqa");
    let model = dir().join("llama-gqa");
    let model = model.to_str().unwrap();
    let ids: Vec<String> = cases[0].ids.iter().map(u32::to_string).collect();
    let out = wgpt(&["logits", "--model", model, "--ids", &ids.join(","), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = |out: std::process::Output| -> Vec<f32> {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["logits"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().clone())
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    assert!(common::max_abs_diff(&rows(out), &logits[0]) < 1e-4);
    let gpu =
        wgpt(&["logits", "--model", model, "--ids", &ids.join(","), "--json", "--backend", "gpu", "--dtype", "f32"]);
    assert!(gpu.status.success(), "{}", String::from_utf8_lossy(&gpu.stderr));
    assert!(common::max_abs_diff(&rows(gpu), &logits[0]) < 1e-3);
    let err = |out: std::process::Output| String::from_utf8_lossy(&out.stderr).to_string();
    let long = err(wgpt(&["logits", "--model", model, "--ids", "1,2,3", "--context", "2"]));
    assert!(long.contains("context") && !long.contains("panicked"), "{long}");
    let no_tok = err(wgpt(&["generate", "--model", model, "--prompt", "hi"]));
    assert!(no_tok.contains("no tokenizer.json"), "{no_tok}");
    let bad_id = err(wgpt(&["logits", "--model", model, "--ids", "256"]));
    assert!(bad_id.contains("outside the model's vocabulary"), "{bad_id}");
}
