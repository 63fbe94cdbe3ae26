//! The CPU reference against HF transformers' GPT-2 (fixtures recorded by
//! `scripts/make_hf_fixtures.py`): token ids, logits, hidden states, attention, loss, greedy text.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{HF_MODELS, expected, hf_model_dir, max_abs_diff};
use wgpt::generate::next_token_loss;
use wgpt::{Bundle, ForwardOptions, GenerateParams, SamplingParams, generate};

const TOL: f32 = 1e-4;

/// A checkpoint given up to the model (read from disk, downloaded) is where its matrices stay:
/// each Conv1D matrix — F32, F16, BF16 — is turned into its rows inside the file's own buffer,
/// and every matrix, rows and logits are the bits of the same checkpoint loaded from borrowed
/// bytes (its matrices transposed into copies).
#[test]
fn an_owned_checkpoint_s_matrices_are_its_file_s_bytes() {
    use std::sync::Arc;
    use wgpt::config::GptConfig;
    use wgpt::cpu::CpuSession;
    use wgpt::quant::Matrix;
    use wgpt::weights::ModelWeights;
    for name in ["tiny-f32", "gpt2vocab-f16", "tiny-bf16-untied"] {
        let dir = hf_model_dir(name);
        let config = GptConfig::from_json(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
        let copied = ModelWeights::from_safetensors(&bytes, &config).unwrap();
        let file = bytes.as_ptr_range();
        let held = ModelWeights::from_owned_safetensors(bytes, &config).unwrap();
        for (a, b) in held.blocks.iter().flat_map(|b| b.linears()).zip(copied.blocks.iter().flat_map(|b| b.linears())) {
            assert!(matches!(&a.weight, Matrix::Blocks(m) if file.contains(&m.data.as_ptr())), "{name}: a copy");
            assert_eq!(a.weight.to_f32(), b.weight.to_f32(), "{name}: other rows");
        }
        let logits = |w: ModelWeights| {
            let mut s = CpuSession::new(config.clone(), Arc::new(w));
            s.run(&[1, 5, 9, 2], ForwardOptions::default()).unwrap().logits.clone()
        };
        let (a, b) = (logits(held), logits(copied));
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{name}");
    }
}

#[test]
fn logits_hidden_states_attention_and_loss_match_hf() {
    for name in HF_MODELS {
        let bundle = Bundle::load(&hf_model_dir(name)).unwrap();
        let exp = expected(name);
        let mut worst = 0.0f32;
        for (i, case) in exp.cases.iter().enumerate() {
            assert_eq!(bundle.tokenizer.encode(&case.text).unwrap(), case.ids, "{name} case {i}: ids");
            let mut s = bundle.cpu_session();
            let opts = ForwardOptions { all_logits: true, attention: true, hidden_states: true };
            let out = s.run(&case.ids, opts).unwrap();
            let (_, logits) = &exp.tensors[&format!("case{i}.logits")];
            let d = max_abs_diff(&out.logits, logits);
            assert!(d < TOL, "{name} case {i}: logits differ by {d}");
            worst = worst.max(d);
            for (l, h) in out.hidden_states.iter().enumerate() {
                let d = max_abs_diff(h, &exp.tensors[&format!("case{i}.hidden.{l}")].1);
                assert!(d < TOL, "{name} case {i}: hidden state {l} differs by {d}");
            }
            for (l, a) in out.attention.iter().enumerate() {
                let d = max_abs_diff(a, &exp.tensors[&format!("case{i}.attention.{l}")].1);
                assert!(d < TOL, "{name} case {i}: attention {l} differs by {d}");
            }
            let loss = next_token_loss(&out.logits, &case.ids).unwrap();
            assert!((loss - case.loss).abs() < TOL, "{name} case {i}: loss {loss} vs HF {}", case.loss);
        }
        eprintln!("{name}: largest |logit - HF| = {worst:.2e}");
    }
}

#[test]
fn greedy_continuation_matches_hf() {
    for name in HF_MODELS {
        let bundle = Bundle::load(&hf_model_dir(name)).unwrap();
        for (i, case) in expected(name).cases.iter().enumerate() {
            let mut s = bundle.cpu_session();
            let params = GenerateParams {
                max_tokens: case.greedy.len(),
                sampling: SamplingParams::greedy(),
                stop_tokens: vec![],
            };
            let out = generate(&mut s, &bundle.tokenizer, &case.ids, &params, |_| true).unwrap();
            assert_eq!(out.ids, case.greedy, "{name} case {i}");
            assert_eq!(out.text, bundle.tokenizer.decode(&case.greedy).unwrap());
        }
    }
}

#[test]
fn decoding_token_by_token_with_the_kv_cache_equals_one_prefill() {
    for name in HF_MODELS {
        let bundle = Bundle::load(&hf_model_dir(name)).unwrap();
        let vocab = bundle.config.vocab_size;
        let exp = expected(name);
        let case = &exp.cases[0];
        let full = &exp.tensors["case0.logits"].1;
        let mut s = bundle.cpu_session();
        // A prefill of two tokens, then one at a time.
        let first = s.run(&case.ids[..2], ForwardOptions::default()).unwrap().last_logits().to_vec();
        assert!(max_abs_diff(&first, &full[vocab..2 * vocab]) < TOL, "{name}");
        for t in 2..case.ids.len() {
            let out = s.run(&case.ids[t..t + 1], ForwardOptions { attention: true, ..Default::default() }).unwrap();
            let d = max_abs_diff(out.last_logits(), &full[t * vocab..(t + 1) * vocab]);
            assert!(d < TOL, "{name} position {t}: {d}");
            // The one new row's attention equals row t of HF's full matrix, over t + 1 positions.
            let (shape, att) = &exp.tensors["case0.attention.0"];
            let (heads, n) = (shape[0], shape[1]);
            for h in 0..heads {
                let ours = &out.attention[0][h * (t + 1)..(h + 1) * (t + 1)];
                let hf = &att[(h * n + t) * n..(h * n + t) * n + t + 1];
                assert!(max_abs_diff(ours, hf) < TOL, "{name} position {t} head {h}");
            }
        }
        assert_eq!(s.position(), case.ids.len());
    }
}
