//! The same parity checks in a real browser (headless Chromium, wasm32, via wasm-bindgen-test):
//! the bundle parsed from bytes, the CPU reference forward, tokenizer and streaming decoder.
#![cfg(target_arch = "wasm32")]
// The WebGPU device is not Send on wasm; Arc is what the engine's API takes.
#![allow(clippy::arc_with_non_send_sync)]

use safetensors::SafeTensors;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use wgpt::generate::next_token_loss;
use wgpt::{Bundle, ForwardOptions, StreamDecoder, TokenizerFiles};

// The single-threaded build runs on the page's own thread; the build with threads (`+atomics`, a
// shared memory: `cargo xtask test` builds both) in a dedicated worker, as the page's engine
// does, because a thread waiting for rayon's pool blocks, which the page's thread may not.
#[cfg(not(target_feature = "atomics"))]
wasm_bindgen_test_configure!(run_in_browser);
#[cfg(target_feature = "atomics")]
wasm_bindgen_test_configure!(run_in_dedicated_worker);

/// The CPU engine's threads in this build: with atomics, a pool of `POOL` workers
/// (wasm-bindgen-rayon), started by the first test that runs and checked by every one, so each
/// test's rayon splits really run across threads; without, one thread.
async fn threads() {
    #[cfg(target_feature = "atomics")]
    {
        const POOL: usize = 3;
        thread_local!(static STARTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
        if !STARTED.replace(true) {
            wasm_bindgen_futures::JsFuture::from(wgpt::web::init_thread_pool(POOL)).await.unwrap();
        }
        assert_eq!(wgpt::cpu::ops::threads(), POOL);
    }
    #[cfg(not(target_feature = "atomics"))]
    assert_eq!(wgpt::cpu::ops::threads(), 1);
}

macro_rules! fixture {
    ($path:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/", $path))
    };
}

fn expected_logits(bytes: &[u8], case: usize) -> Vec<f32> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let view = st.tensor(&format!("case{case}.logits")).unwrap();
    view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

fn check(bundle: &Bundle, expected_json: &[u8], expected: &[u8]) {
    let cases: serde_json::Value = serde_json::from_slice(expected_json).unwrap();
    for (i, case) in cases["cases"].as_array().unwrap().iter().enumerate() {
        let ids: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        let text = case["text"].as_str().unwrap();
        assert_eq!(bundle.tokenizer.encode(text).unwrap(), ids);
        let mut s = bundle.cpu_session();
        let out = s.run(&ids, ForwardOptions { all_logits: true, ..Default::default() }).unwrap();
        let want = expected_logits(expected, i);
        let d = out.logits.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(d < 1e-4, "case {i}: logits differ by {d}");
        let loss = next_token_loss(&out.logits, &ids).unwrap();
        assert!((loss - case["loss"].as_f64().unwrap() as f32).abs() < 1e-4);
        // Streaming the ids back gives the text, with no U+FFFD along the way.
        let mut d = StreamDecoder::new();
        let mut streamed = String::new();
        for &id in &ids {
            if let Some(p) = d.push(&bundle.tokenizer, id).unwrap() {
                assert!(!p.contains('\u{FFFD}'));
                streamed.push_str(&p);
            }
        }
        assert_eq!(streamed, text);
    }
}

#[wasm_bindgen_test]
async fn tiny_f32_matches_hf_in_the_browser() {
    threads().await;
    let bundle = tiny_bundle();
    check(&bundle, fixture!("hf/tiny-f32.expected.json"), fixture!("hf/tiny-f32.expected.safetensors"));
}

#[wasm_bindgen_test]
async fn gpt2_vocabulary_f16_matches_hf_in_the_browser() {
    threads().await;
    let bundle = Bundle::from_parts(
        fixture!("hf/gpt2vocab-f16/config.json"),
        fixture!("hf/gpt2vocab-f16/model.safetensors"),
        TokenizerFiles::Gpt2 {
            vocab: fixture!("hf/gpt2vocab-f16/encoder.json"),
            merges: fixture!("hf/gpt2vocab-f16/vocab.bpe"),
        },
    )
    .unwrap();
    check(&bundle, fixture!("hf/gpt2vocab-f16.expected.json"), fixture!("hf/gpt2vocab-f16.expected.safetensors"));
}

#[wasm_bindgen_test]
async fn a_broken_bundle_is_an_error_not_a_trap() {
    threads().await;
    let weights = fixture!("hf/tiny-f32/model.safetensors");
    let err = Bundle::from_parts(
        fixture!("hf/tiny-f32/config.json"),
        &weights[..weights.len() - 1],
        TokenizerFiles::Json(fixture!("hf/tiny-f32/tokenizer.json")),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("truncated"), "{err}");
}

fn tiny_bundle() -> Bundle {
    Bundle::from_parts(
        fixture!("hf/tiny-f32/config.json"),
        fixture!("hf/tiny-f32/model.safetensors"),
        TokenizerFiles::Json(fixture!("hf/tiny-f32/tokenizer.json")),
    )
    .unwrap()
}

/// The WGSL engine on the browser's WebGPU adapter (SwiftShader here), both kernel variants and
/// both weight formats, against HF's logits and greedy continuation.
#[wasm_bindgen_test]
async fn the_wgsl_engine_matches_hf_on_webgpu() {
    threads().await;
    use std::sync::Arc;
    use wgpt::gpu::{Gpu, GpuModel, GpuOptions, Variant, WeightFormat};
    let bundle = tiny_bundle();
    let gpu = Arc::new(Gpu::new().await.expect("WebGPU adapter"));
    let expected: serde_json::Value = serde_json::from_slice(fixture!("hf/tiny-f32.expected.json")).unwrap();
    let case = &expected["cases"][0];
    let ids: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
    let greedy: Vec<u32> = serde_json::from_value(case["greedy"].clone()).unwrap();
    let want = expected_logits(fixture!("hf/tiny-f32.expected.safetensors"), 0);
    for variant in [Variant::Software, Variant::Gpu] {
        for format in [WeightFormat::F32, WeightFormat::F16] {
            let opts = GpuOptions { format: Some(format), variant: Some(variant), ..Default::default() };
            let mut g = GpuModel::on(gpu.clone(), &bundle.config, &bundle.weights, opts).unwrap();
            let out = g.run(&ids, ForwardOptions { all_logits: true, ..Default::default() }).await.unwrap();
            if format == WeightFormat::F32 {
                let d = out.logits.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(d < 1e-3, "{variant:?}: logits differ by {d}");
            }
            g.reset();
            let mut next = g.next_greedy(&ids).await.unwrap();
            let mut got = vec![next];
            while got.len() < greedy.len() {
                next = g.next_greedy(&[next]).await.unwrap();
                got.push(next);
            }
            assert_eq!(got, greedy, "{variant:?} {format:?}");
        }
    }
}

/// Files as the worker hands them to `load_model`: names, and their bytes as blobs (as a picked
/// `File` is).
fn named(files: &[(&str, &[u8])]) -> (Vec<String>, Vec<web_sys::Blob>) {
    let blob = |b: &[u8]| {
        let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(b));
        web_sys::Blob::new_with_u8_array_sequence(&parts).unwrap()
    };
    files.iter().map(|(n, b)| (n.to_string(), blob(b))).unzip()
}

/// The page's API (`src/web.rs`) as the worker calls it: load on each engine, a streamed chat
/// reply, next-token probabilities, attention maps, and errors for bad input.
#[wasm_bindgen_test]
async fn the_page_api_chats_predicts_and_maps_attention() {
    threads().await;
    use wgpt::web::{attention_maps, chat_start, generate_step, load_model, next_tokens};
    let files = || {
        named(&[
            ("config.json", fixture!("hf/tiny-f32/config.json")),
            ("model.safetensors", fixture!("hf/tiny-f32/model.safetensors")),
            ("tokenizer.json", fixture!("hf/tiny-f32/tokenizer.json")),
        ])
    };
    let mut firsts = vec![];
    for backend in ["cpu", "gpu", "auto"] {
        let (names, bytes) = files();
        let info: serde_json::Value =
            serde_json::from_str(&load_model(names, bytes, backend.into(), None).await.ok().unwrap()).unwrap();
        assert_eq!(info["template"], "plain");
        if backend != "auto" {
            assert_eq!(info["backend"], backend);
        }
        let start = chat_start(
            r#"[{"role":"user","content":"You are a good man"}]"#.into(),
            r#"{"temperature":0,"max_tokens":6}"#.into(),
        )
        .ok()
        .unwrap();
        assert!(start.contains("prompt_tokens"));
        let (mut text, mut finish) = (String::new(), serde_json::Value::Null);
        while finish.is_null() {
            let step: serde_json::Value = serde_json::from_str(&generate_step(2).await.ok().unwrap()).unwrap();
            text.push_str(step["text"].as_str().unwrap());
            finish = step["finish"].clone();
        }
        assert!(!text.is_empty() || finish == "stop_token", "{backend}: {finish}");
        let rows: serde_json::Value =
            serde_json::from_str(&next_tokens("You are".into(), 5).await.ok().unwrap()).unwrap();
        assert_eq!(rows.as_array().unwrap().len(), 5);
        firsts.push(rows[0]["id"].clone());
        let maps: serde_json::Value =
            serde_json::from_str(&attention_maps("You are a good man".into()).await.ok().unwrap()).unwrap();
        let n = maps["tokens"].as_array().unwrap().len();
        assert_eq!(maps["maps"][0].as_array().unwrap().len(), 4 * n * n);
    }
    assert!(firsts.windows(2).all(|w| w[0] == w[1]), "engines disagree on the most likely token: {firsts:?}");
    // Bad input is an error, not a panic.
    assert!(chat_start("not json".into(), "{}".into()).is_err());
    assert!(chat_start(r#"[{"role":"robot","content":"x"}]"#.into(), "{}".into()).is_err());
    assert!(chat_start("[]".into(), r#"{"top_p":5}"#.into()).is_err());
    let (mut names, bytes) = files();
    names[2] = "not-a-tokenizer.json".into();
    assert!(load_model(names, bytes, "cpu".into(), None).await.is_err());
    assert!(next_tokens("x".into(), 3).await.is_err(), "no model after a failed load");
}

/// A Llama-family model as a person brings one (bf16 shards with an index, its tokenizer and
/// chat template, two end tokens): the prompt is rendered with the model's own template, and
/// both engines give its greedy reply as HF does.
#[wasm_bindgen_test]
async fn the_page_chats_with_a_llama_model_on_both_engines() {
    threads().await;
    use wgpt::web::{chat_start, generate_step, load_model};
    #[derive(serde::Deserialize)]
    struct Case {
        messages: serde_json::Value,
        ids: Vec<u32>,
        greedy: Vec<u32>,
    }
    #[derive(serde::Deserialize)]
    struct Expected {
        cases: Vec<Case>,
    }
    let expected: Expected = serde_json::from_slice(fixture!("llama/chat-llama.expected.json")).unwrap();
    let tok = wgpt::Tokenizer::from_json(fixture!("llama/chat-llama/tokenizer.json")).unwrap();
    let files: [(&str, &[u8]); 8] = [
        ("config.json", fixture!("llama/chat-llama/config.json")),
        ("model.safetensors.index.json", fixture!("llama/chat-llama/model.safetensors.index.json")),
        ("model-00001-of-00002.safetensors", fixture!("llama/chat-llama/model-00001-of-00002.safetensors")),
        ("model-00002-of-00002.safetensors", fixture!("llama/chat-llama/model-00002-of-00002.safetensors")),
        ("tokenizer.json", fixture!("llama/chat-llama/tokenizer.json")),
        ("tokenizer_config.json", fixture!("llama/chat-llama/tokenizer_config.json")),
        ("chat_template.jinja", fixture!("llama/chat-llama/chat_template.jinja")),
        ("generation_config.json", fixture!("llama/chat-llama/generation_config.json")),
    ];
    // HF's logits: within 1e-4 on the CPU reference compiled to wasm, 1e-3 on WebGPU.
    {
        use wgpt::gpu::{Gpu, GpuOptions, WeightFormat};
        use wgpt::{ForwardOptions, LanguageModel, LoadedModel};
        let map: wgpt::loaded::Files = files.iter().map(|(n, b)| (n.to_string(), *b)).collect();
        let m = LoadedModel::from_files(&map).unwrap();
        let gpu = std::sync::Arc::new(Gpu::new().await.unwrap());
        let f32s = GpuOptions { format: Some(WeightFormat::F32), ..Default::default() };
        let engines: Vec<(Box<dyn LanguageModel>, f32)> =
            vec![(m.cpu(2048), 1e-4), (Box::new(m.gpu(gpu, f32s).unwrap()), 1e-3)];
        for (mut e, tol) in engines {
            for (i, case) in expected.cases.iter().enumerate() {
                e.reset();
                let all = ForwardOptions { all_logits: true, ..Default::default() };
                let got = e.forward(&case.ids, all).await.unwrap().logits.clone();
                let want = expected_logits(fixture!("llama/chat-llama.expected.safetensors"), i);
                let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(d < tol, "{}: case {i}: logits differ from HF's by {d}", e.backend());
            }
        }
    }
    for backend in ["cpu", "gpu"] {
        let (names, bytes) = named(&files);
        let info: serde_json::Value =
            serde_json::from_str(&load_model(names, bytes, backend.into(), None).await.ok().unwrap()).unwrap();
        assert_eq!((info["template"].as_str(), info["arch"].as_str()), (Some("jinja"), Some("llama")), "{info}");
        assert_eq!(info["backend"], backend);
        assert_eq!(info["n_ctx"], 2048);
        for case in &expected.cases {
            let start: serde_json::Value = serde_json::from_str(
                &chat_start(case.messages.to_string(), r#"{"temperature":0,"max_tokens":8}"#.into()).ok().unwrap(),
            )
            .unwrap();
            assert_eq!(start["prompt_tokens"], case.ids.len());
            let (mut text, mut finish) = (String::new(), serde_json::Value::Null);
            while finish.is_null() {
                let step: serde_json::Value = serde_json::from_str(&generate_step(3).await.ok().unwrap()).unwrap();
                text.push_str(step["text"].as_str().unwrap());
                finish = step["finish"].clone();
            }
            // HF's greedy reply, up to the first end token (0 and 2 end it).
            let end = case.greedy.iter().position(|&t| t == 0 || t == 2).unwrap_or(case.greedy.len());
            assert_eq!(text, tok.decode(&case.greedy[..end]).unwrap(), "{backend}");
        }
    }
}

/// A model too large for a page: its fit check says so, from its config and header alone.
#[wasm_bindgen_test]
async fn a_model_too_large_for_a_page_is_refused_by_its_fit_check() {
    threads().await;
    let config = br#"{"vocab_size": 50257, "n_positions": 1024, "n_embd": 8192, "n_layer": 12, "n_head": 64, "model_type": "gpt2"}"#;
    // 3.9 GB of f16 in 20 tensors (what wasm32 can still describe) for a model of 9.7 B parameters.
    let each: u64 = 195_000_000;
    let n = 20 * each;
    let tensors: Vec<String> = (0..20)
        .map(|i| {
            format!(
                r#""t{i}": {{"dtype": "F16", "shape": [{}], "data_offsets": [{}, {}]}}"#,
                each / 2,
                i * each,
                (i + 1) * each
            )
        })
        .collect();
    let header = format!("{{{}}}", tensors.join(", "));
    let mut head = (header.len() as u64).to_le_bytes().to_vec();
    head.extend(header.as_bytes());
    let size = (8 + header.len() as u64 + n) as f64;
    let out = wgpt::web::inspect_bundle(config.to_vec(), head, size).await;
    let info: serde_json::Value = match out {
        Ok(s) => serde_json::from_str(&s).unwrap(),
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(info["memory"]["fits"], false, "{info}");
}

/// GGUF files in the browser: llama.cpp's Q8_0 and Q4_0 files of `chat-llama` load through the
/// page's API (the blocks kept as blocks, read by the SIMD128 kernels and by the WGSL kernels on
/// WebGPU), give HF's logits on the dequantized weights within 1e-4 (1e-3 on WebGPU), and their
/// greedy chat replies are HF's.
#[wasm_bindgen_test]
async fn gguf_files_chat_in_the_browser_with_blocks() {
    threads().await;
    use wgpt::web::{chat_start, generate_step, load_model};
    use wgpt::{ForwardOptions, LanguageModel, LoadedModel};
    #[derive(serde::Deserialize)]
    struct Chat {
        messages: serde_json::Value,
        reply_ids: Vec<u32>,
    }
    #[derive(serde::Deserialize)]
    struct Case {
        ids: Vec<u32>,
    }
    #[derive(serde::Deserialize)]
    struct Expected {
        cases: Vec<Case>,
        chat: Chat,
    }
    let files: [(&[u8], &[u8], &[u8]); 2] = [
        (
            fixture!("gguf/chat-llama.q8_0.gguf"),
            fixture!("gguf/chat-llama.q8_0.expected.json"),
            fixture!("gguf/chat-llama.q8_0.expected.safetensors"),
        ),
        (
            fixture!("gguf/chat-llama.q4_0.gguf"),
            fixture!("gguf/chat-llama.q4_0.expected.json"),
            fixture!("gguf/chat-llama.q4_0.expected.safetensors"),
        ),
    ];
    for (gguf, json, logits) in files {
        let expected: Expected = serde_json::from_slice(json).unwrap();
        let map: wgpt::loaded::Files = [("m.gguf".to_string(), gguf)].into_iter().collect();
        let m = LoadedModel::from_files(&map).unwrap();
        let mut cpu = m.cpu(2048);
        assert!(cpu.describe().contains("Q"), "{}", cpu.describe());
        for (i, case) in expected.cases.iter().enumerate() {
            cpu.reset();
            let got = cpu.forward(&case.ids, ForwardOptions { all_logits: true, ..Default::default() }).await.unwrap();
            let want = expected_logits(logits, i);
            let d = got.logits.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(d < 1e-4, "case {i}: logits differ from HF's by {d}");
        }
        // WebGPU reads the same blocks in its kernels (matvec and the tiled GEMM).
        #[allow(clippy::arc_with_non_send_sync)]
        let gpu = std::sync::Arc::new(wgpt::gpu::Gpu::new().await.expect("WebGPU adapter"));
        for variant in [wgpt::gpu::Variant::Software, wgpt::gpu::Variant::Gpu] {
            let opts = wgpt::gpu::GpuOptions { variant: Some(variant), ..Default::default() };
            let mut g = m.gpu(gpu.clone(), opts).unwrap();
            let format = g.format().to_string();
            assert!(format.starts_with('q'), "{format}");
            let case = &expected.cases[0];
            let got = g.forward(&case.ids, ForwardOptions { all_logits: true, ..Default::default() }).await.unwrap();
            let want = expected_logits(logits, 0);
            let d = got.logits.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(d < 1e-3, "WebGPU {format} {variant:?}: logits differ from HF's by {d}");
        }
        let (names, blobs) = named(&[("chat-llama.gguf", gguf)]);
        let info: serde_json::Value =
            serde_json::from_str(&load_model(names, blobs, "cpu".into(), None).await.ok().unwrap()).unwrap();
        assert_eq!(info["template"], "jinja", "{info}");
        let params = r#"{"temperature":0,"max_tokens":8}"#;
        chat_start(expected.chat.messages.to_string(), params.into()).ok().unwrap();
        let mut text = String::new();
        loop {
            let step: serde_json::Value = serde_json::from_str(&generate_step(3).await.ok().unwrap()).unwrap();
            text.push_str(step["text"].as_str().unwrap());
            if !step["finish"].is_null() {
                break;
            }
        }
        let tok = m.text.tokenizer.as_ref().unwrap();
        let want = tok.decode(&expected.chat.reply_ids).unwrap();
        let want = want.split('\u{FFFD}').next().unwrap();
        assert!(text.starts_with(want), "{text:?} vs {want:?}");
    }
}

/// Q4_K in the browser: a model whose rows are whole 256-value super-blocks, quantized as
/// `--dtype q4_k` does, runs on the CPU engine (the SIMD128 Q4_K product) with the logits of the
/// same weights decoded to f32, and on WebGPU (q4_k.wgsl) within 1e-3 of the CPU's.
#[wasm_bindgen_test]
async fn q4_k_blocks_run_in_the_browser_on_both_engines() {
    threads().await;
    use wgpt::llama::{LlamaConfig, LlamaSession, LlamaWeights};
    use wgpt::quant::Matrix;
    use wgpt::{ForwardOptions, LanguageModel};
    let config = LlamaConfig::from_json(
        br#"{"model_type": "qwen2", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300, "max_position_embeddings": 64,
             "rms_norm_eps": 1e-6, "rope_theta": 10000, "tie_word_embeddings": true}"#,
    )
    .unwrap();
    let mut q4k = LlamaWeights::random(&config, 5);
    q4k.quantize(wgpt::quant::GgmlType::Q4K).unwrap();
    let mut decoded = q4k.clone();
    for l in &mut decoded.layers {
        for p in l.projections_mut() {
            p.weight = Matrix::F32(p.weight.to_f32().into_owned());
        }
    }
    decoded.embed_tokens = Matrix::F32(decoded.embed_tokens.to_f32().into_owned());
    let ids: Vec<u32> = (0..10).map(|i| (i * 41 % 300) as u32).collect();
    let all = ForwardOptions { all_logits: true, ..Default::default() };
    let q4k = std::sync::Arc::new(q4k);
    let got = LlamaSession::new(config.clone(), q4k.clone()).run(&ids, all).unwrap().logits.clone();
    let want = LlamaSession::new(config.clone(), std::sync::Arc::new(decoded)).run(&ids, all).unwrap().logits.clone();
    let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(d < 1e-4, "CPU Q4_K: logits differ from the decoded weights' by {d}");
    #[allow(clippy::arc_with_non_send_sync)]
    let gpu = std::sync::Arc::new(wgpt::gpu::Gpu::new().await.expect("WebGPU adapter"));
    for variant in [wgpt::gpu::Variant::Software, wgpt::gpu::Variant::Gpu] {
        let opts = wgpt::gpu::GpuOptions { variant: Some(variant), ..Default::default() };
        let mut g = wgpt::gpu::GpuModel::on_llama(gpu.clone(), &config, &q4k, opts).unwrap();
        assert_eq!(g.format(), wgpt::gpu::WeightFormat::Q4K);
        let out = g.forward(&ids, all).await.unwrap();
        let d = out.logits.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(d < 1e-3, "WebGPU Q4_K {variant:?}: logits differ from the CPU's by {d}");
    }
}

/// Q6_K rows (the head and some `ffn_down`s of llama.cpp's Q4_K_M and Q4_0 files) through the
/// CPU engine's SIMD128 product equal the decoded matrix's product: random codes and scales, so
/// every bit of a code is read.
/// Decode's products in the browser (SIMD128, each block decoded in registers as it is read) equal
/// the decoded matrix's, for every type the CPU engine holds as stored: the K-quants' super-blocks,
/// Q8_0/Q4_0 blocks, and 16-bit rows both a whole number of steps wide and not.
#[wasm_bindgen_test]
async fn block_products_are_read_by_simd128_as_they_decode() {
    threads().await;
    use wgpt::quant::{Blocks, GgmlType, Matrix};
    let (rows, cols) = (9, 512);
    let mut state = 7u64;
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as u32
    };
    let mut q6 = Vec::new();
    for _ in 0..rows * cols / 256 {
        q6.extend((0..208).map(|_| next() as u8));
        q6.extend(half::f16::from_f32(0.002).to_le_bytes());
    }
    let w: Vec<f32> = (0..rows * cols).map(|_| (next() % 2000) as f32 / 1000.0 - 1.0).collect();
    let x: Vec<f32> = (0..cols).map(|_| (next() % 2000) as f32 / 1000.0 - 1.0).collect();
    let sixteen = |ty, c: usize| {
        let w: Vec<f32> = w[..rows * c].to_vec();
        (ty, c, wgpt::quant::to_16_bits(ty, &w).unwrap())
    };
    for (ty, c, bytes) in [
        (GgmlType::Q6K, cols, q6),
        (GgmlType::Q4K, cols, wgpt::quant::quantize_q4k(&w).unwrap()),
        (GgmlType::Q8_0, cols, wgpt::quant::quantize_q8_0(&w).unwrap()),
        (GgmlType::Q4_0, cols, wgpt::quant::quantize_q4_0(&w).unwrap()),
        sixteen(GgmlType::F16, cols),
        sixteen(GgmlType::F16, 45),
        sixteen(GgmlType::BF16, 45),
    ] {
        let m = Matrix::Blocks(Blocks::new(ty, rows, c, bytes).unwrap());
        let (mut got, mut want) = (vec![0f32; rows], vec![0f32; rows]);
        m.linear(&mut got, &x[..c], None);
        wgpt::cpu::ops::linear_out_in(&mut want, &x[..c], &m.to_f32(), None);
        let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(d < 1e-4, "{ty:?} × {c}: the block product differs from the decoded matrix's by {d}");
    }
}

/// Prefill's products in the browser (each row decoded once — F16/BF16 widened, Q8_0/Q4_0/Q4_K/
/// Q6_K scaled by SIMD128 — then four rows of activations per weight load, SIMD128's `dot4_f32`) equal the
/// plain triple loop on the decoded matrix, for 1 to 6 rows and a width off the lanes.
#[wasm_bindgen_test]
async fn prefill_products_run_in_the_browser_as_the_plain_loop() {
    threads().await;
    use wgpt::quant::{Blocks, GgmlType, Matrix};
    let (rows, cols_16, cols) = (21, 45, 64);
    let mut state = 13u64;
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as u32 % 2000
    };
    let mut value = || next() as f32 / 1000.0 - 1.0;
    let w16: Vec<f32> = (0..rows * cols_16).map(|_| value()).collect();
    let w: Vec<f32> = (0..rows * cols).map(|_| value()).collect();
    // Q4_K's rows are whole super-blocks of 256.
    let w_k: Vec<f32> = (0..rows * 512).map(|_| value()).collect();
    let x: Vec<f32> = (0..6 * 512).map(|_| value()).collect();
    let mut q6 = Vec::new();
    for _ in 0..rows * 2 {
        q6.extend((0..208).map(|_| (value() * 127.0 + 128.0) as u8));
        q6.extend(half::f16::from_f32(0.002).to_le_bytes());
    }
    for m in [
        Matrix::F32(wgpt::weights::Tensor { shape: vec![rows, cols_16], data: w16.clone() }),
        Matrix::Blocks(
            Blocks::new(GgmlType::F16, rows, cols_16, wgpt::quant::to_16_bits(GgmlType::F16, &w16).unwrap()).unwrap(),
        ),
        Matrix::Blocks(
            Blocks::new(GgmlType::BF16, rows, cols_16, wgpt::quant::to_16_bits(GgmlType::BF16, &w16).unwrap()).unwrap(),
        ),
        Matrix::Blocks(Blocks::new(GgmlType::Q8_0, rows, cols, wgpt::quant::quantize_q8_0(&w).unwrap()).unwrap()),
        Matrix::Blocks(Blocks::new(GgmlType::Q4_0, rows, cols, wgpt::quant::quantize_q4_0(&w).unwrap()).unwrap()),
        Matrix::Blocks(Blocks::new(GgmlType::Q4K, rows, 512, wgpt::quant::quantize_q4k(&w_k).unwrap()).unwrap()),
        Matrix::Blocks(Blocks::new(GgmlType::Q6K, rows, 512, q6).unwrap()),
    ] {
        let d = m.to_f32();
        let c = d.shape[1];
        for n in 1..=6 {
            let x = &x[..n * c];
            let mut got = vec![0f32; n * rows];
            m.linear(&mut got, x, None);
            for i in 0..n {
                for r in 0..rows {
                    let want: f32 = (0..c).map(|k| d.data[r * c + k] * x[i * c + k]).sum();
                    let g = got[i * rows + r];
                    assert!(
                        (g - want).abs() <= 1e-4 * want.abs().max(1.0),
                        "{}, {n} rows: {g} vs {want}",
                        m.type_name()
                    );
                }
            }
        }
    }
}

/// Every finite F16 and every finite BF16, through the SIMD128 widening the CPU engine's
/// products run (a row times a one-hot input: decode's dot product, and prefill's decoded rows),
/// is the value `half` converts it to — subnormals, both zeros and the largest included.
#[wasm_bindgen_test]
async fn every_16_bit_float_widens_in_the_browser_as_half_converts_it() {
    threads().await;
    use wgpt::quant::{Blocks, GgmlType, Matrix};
    for (ty, finite, convert) in [
        (
            GgmlType::F16,
            (|b| b & 0x7C00 != 0x7C00) as fn(u16) -> bool,
            (|b| half::f16::from_bits(b).to_f32()) as fn(u16) -> f32,
        ),
        (GgmlType::BF16, |b| b & 0x7F80 != 0x7F80, |b| half::bf16::from_bits(b).to_f32()),
    ] {
        let mut bits: Vec<u16> = (0..=u16::MAX).filter(|&b| finite(b)).collect();
        // Rows of 16: one whole step of the SIMD128 product, no plain tail.
        bits.truncate(bits.len() / 16 * 16);
        let rows = bits.len() / 16;
        let bytes: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        let m = Matrix::Blocks(Blocks::new(ty, rows, 16, bytes).unwrap());
        let eye: Vec<f32> = (0..256).map(|i| if i % 17 == 0 { 1.0 } else { 0.0 }).collect();
        // Sixteen rows of input at once (prefill), then each alone (decode).
        let mut all = vec![0f32; 16 * rows];
        m.linear(&mut all, &eye, None);
        for k in 0..16 {
            let mut one = vec![0f32; rows];
            m.linear(&mut one, &eye[16 * k..16 * k + 16], None);
            for r in 0..rows {
                let want = convert(bits[16 * r + k]);
                assert!(
                    one[r] == want && all[k * rows + r] == want,
                    "{ty:?} {:#06x}: {} / {} vs {want}",
                    bits[16 * r + k],
                    one[r],
                    all[k * rows + r]
                );
            }
        }
    }
}

/// The integer products over 8-bit activations (what the page's CPU engine runs: SIMD128's
/// `i32x4.dot_i16x8`) equal the f32 products within the activations' rounding, for every block
/// type they serve; Q8_0 and Q4_0 (read four blocks at a time) also on rows of 17, 18 and 19
/// blocks (one to three left after the groups of four).
#[wasm_bindgen_test]
async fn integer_products_over_8_bit_activations_run_in_the_browser() {
    threads().await;
    use wgpt::quant::int8::{Q8Row, dot};
    use wgpt::quant::{Blocks, GgmlType, Matrix};
    let mut state = 11u64;
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as u32
    };
    for n in [512, 544, 576, 608] {
        let w: Vec<f32> = (0..n).map(|_| (next() % 2000) as f32 / 1000.0 - 1.0).collect();
        let x: Vec<f32> = (0..n).map(|_| (next() % 2000) as f32 / 1000.0 - 1.0).collect();
        let mut q6 = Vec::new();
        for _ in 0..2 {
            q6.extend((0..208).map(|_| next() as u8));
            q6.extend(half::f16::from_f32(0.002).to_le_bytes());
        }
        for (ty, bytes) in [
            (GgmlType::Q8_0, wgpt::quant::quantize_q8_0(&w).unwrap()),
            (GgmlType::Q4_0, wgpt::quant::quantize_q4_0(&w).unwrap()),
            (GgmlType::Q4K, wgpt::quant::quantize_q4k(&w[..512]).unwrap()),
            (GgmlType::Q6K, q6),
        ] {
            let n = if matches!(ty, GgmlType::Q4K | GgmlType::Q6K) { 512 } else { n };
            let x = &x[..n];
            let mut row = Q8Row::default();
            row.quantize(x);
            let m = Matrix::Blocks(Blocks::new(ty, 1, n, bytes.clone()).unwrap());
            let decoded = m.to_f32();
            let exact: f32 = decoded.data.iter().zip(x).map(|(a, b)| a * b).sum();
            let bound: f32 = decoded
                .data
                .chunks_exact(32)
                .zip(&row.d)
                .map(|(ws, d)| d / 2.0 * ws.iter().map(|w| w.abs()).sum::<f32>())
                .sum();
            let got = dot(ty, &bytes, &row);
            assert!((got - exact).abs() <= bound * 1.001 + 1e-5, "{ty:?}, {n}: {got} vs {exact} (bound {bound})");
        }
    }
}

/// A model whose config would need a KV cache far past the tab's budget (16 layers of eight
/// 512-wide key and value heads beside a hidden size of 4: a 4 MB file, 512 KiB of cache per
/// position, 16 GiB for its 32,768) loads in the page with the context cut to what 1 GiB holds
/// (below the page's own cap of 4,096), and the page says so; it then runs, instead of growing
/// the cache until the tab dies.
#[wasm_bindgen_test]
async fn a_model_whose_kv_cache_would_pass_the_tab_s_budget_holds_fewer_positions_and_says_so() {
    threads().await;
    use wgpt::gguf::export::{Target, export};
    use wgpt::llama::{LlamaConfig, LlamaWeights};
    use wgpt::loaded::{Architecture, LoadedModel};
    use wgpt::web::load_model;
    let map: wgpt::loaded::Files =
        [("m.gguf".to_string(), &fixture!("gguf/chat-llama.q8_0.gguf")[..])].into_iter().collect();
    let text = LoadedModel::from_files(&map).unwrap().text;
    let config = LlamaConfig::from_json(
        br#"{"model_type": "llama", "hidden_size": 4, "intermediate_size": 4, "num_hidden_layers": 16,
             "num_attention_heads": 8, "num_key_value_heads": 8, "head_dim": 512, "vocab_size": 512,
             "max_position_embeddings": 32768, "rms_norm_eps": 1e-5, "rope_theta": 10000}"#,
    )
    .unwrap();
    let weights = std::sync::Arc::new(LlamaWeights::random(&config, 1));
    let model = LoadedModel { arch: Architecture::Llama { config, weights }, text };
    let (bytes, _) = export(&model, Target::F32).unwrap();
    drop(model);
    let (names, blobs) = named(&[("big-cache.gguf", &bytes)]);
    let info: serde_json::Value =
        serde_json::from_str(&load_model(names, blobs, "cpu".into(), None).await.ok().unwrap()).unwrap();
    let per_position = 16 * 8 * 512 * 2 * 4;
    assert_eq!(info["n_ctx"], wgpt::model::CPU_KV_BUDGET / per_position, "{info}");
    assert!(info["note"].as_str().unwrap().contains("holds the newest 2048"), "{info}");
    // One token per step: the test runner's driver gives up on a page that does not answer for
    // 30 s, and a debug build is slow.
    let params = r#"{"temperature":0,"max_tokens":4}"#;
    wgpt::web::chat_start(r#"[{"role":"user","content":"hi"}]"#.into(), params.into()).ok().unwrap();
    loop {
        let step: serde_json::Value = serde_json::from_str(&wgpt::web::generate_step(1).await.ok().unwrap()).unwrap();
        if !step["finish"].is_null() {
            break;
        }
    }
}
