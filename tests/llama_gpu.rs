//! The Llama family on the WGSL engine (natively on whatever Vulkan device there is; in CI Mesa's
//! lavapipe), against HF's recorded logits and the CPU reference: both kernel variants, f32 and
//! f16 weights, prefill and decode, attention maps, device-side greedy and sampling, the
//! dispatches a block costs and the context cap.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::sync::Arc;

use common::{LLAMA_MODELS, llama_dir, llama_expected, max_abs_diff};
use wgpt::gpu::{Gpu, GpuModel, GpuOptions, Variant, WeightFormat};
use wgpt::llama::{LlamaConfig, LlamaSession, LlamaWeights, load};
use wgpt::{EngineError, ForwardOptions, LanguageModel};

fn gpu() -> Arc<Gpu> {
    Arc::new(pollster::block_on(Gpu::new()).expect("a GPU adapter (CI uses Mesa's lavapipe)"))
}

fn model(name: &str) -> (LlamaConfig, Arc<LlamaWeights>) {
    let (c, w) = load(&llama_dir().join(name)).unwrap();
    (c, Arc::new(w))
}

const ALL: ForwardOptions = ForwardOptions { all_logits: true, attention: false, hidden_states: false };

#[test]
fn logits_and_attention_match_hf_and_the_cpu_reference_in_both_variants() {
    let gpu = gpu();
    for name in LLAMA_MODELS {
        let (config, weights) = model(name);
        let (cases, hf) = llama_expected(name);
        for variant in [Variant::Gpu, Variant::Software] {
            let opts = GpuOptions { format: Some(WeightFormat::F32), variant: Some(variant), ..Default::default() };
            let mut g = GpuModel::on_llama(gpu.clone(), &config, &weights, opts).unwrap();
            let mut worst = 0.0f32;
            for (case, want) in cases.iter().zip(&hf) {
                // Without attention maps the GPU variant prefills with the tiled kernels.
                g.reset();
                let plain = pollster::block_on(g.run(&case.ids, ALL)).unwrap().logits.clone();
                let d = max_abs_diff(&plain, want);
                worst = worst.max(d);
                assert!(d < 1e-3, "{name} {variant:?}: logits differ from HF's by {d}");
                g.reset();
                let maps = ForwardOptions { attention: true, ..ALL };
                let ours = pollster::block_on(g.run(&case.ids, maps)).unwrap();
                let d = max_abs_diff(&ours.logits, want);
                assert!(d < 1e-3, "{name} {variant:?}, with maps: logits differ from HF's by {d}");
                let mut cpu = LlamaSession::new(config.clone(), weights.clone());
                let reference = cpu.run(&case.ids, maps).unwrap();
                assert_eq!(ours.attention.len(), config.num_hidden_layers);
                for (l, (a, b)) in ours.attention.iter().zip(&reference.attention).enumerate() {
                    let d = max_abs_diff(a, b);
                    assert!(d < 1e-4, "{name} {variant:?}: attention of layer {l} differs by {d}");
                }
            }
            eprintln!("{name} {variant:?}: largest logit difference from HF {worst:.1e}");
        }
    }
}

#[test]
fn decode_through_the_kv_cache_matches_the_cpu_reference() {
    let gpu = gpu();
    for name in LLAMA_MODELS {
        let (config, weights) = model(name);
        let (cases, _) = llama_expected(name);
        let ids: Vec<u32> = cases[0].ids.iter().chain(&cases[0].greedy).copied().collect();
        for variant in [Variant::Gpu, Variant::Software] {
            let opts = GpuOptions { format: Some(WeightFormat::F32), variant: Some(variant), ..Default::default() };
            let mut g = GpuModel::on_llama(gpu.clone(), &config, &weights, opts).unwrap();
            let mut cpu = LlamaSession::new(config.clone(), weights.clone());
            let split = ids.len() / 2;
            let first = pollster::block_on(g.run(&ids[..split], ALL)).unwrap().logits.clone();
            let d = max_abs_diff(&first, &cpu.run(&ids[..split], ALL).unwrap().logits);
            assert!(d < 1e-3, "{name} {variant:?}: prefill differs by {d}");
            for t in split..ids.len() {
                let ours = pollster::block_on(g.run(&ids[t..t + 1], ForwardOptions::default())).unwrap();
                let want = cpu.run(&ids[t..t + 1], ForwardOptions::default()).unwrap();
                let d = max_abs_diff(ours.last_logits(), want.last_logits());
                assert!(d < 1e-3, "{name} {variant:?}: decode at {t} differs by {d}");
            }
            // Truncating keeps the prefix: rerunning the tail gives the same last logits.
            let last = pollster::block_on(g.run(&[ids[0]], ForwardOptions::default())).unwrap().logits.clone();
            g.truncate(ids.len());
            let again = pollster::block_on(g.run(&[ids[0]], ForwardOptions::default())).unwrap().logits.clone();
            assert!(max_abs_diff(&last, &again) < 1e-5, "{name} {variant:?}: truncate");
        }
    }
}

#[test]
fn greedy_on_the_device_matches_hf_and_f16_weights_agree() {
    let gpu = gpu();
    let (mut same, mut total) = (0, 0);
    for name in LLAMA_MODELS {
        let (config, weights) = model(name);
        let (cases, hf) = llama_expected(name);
        for (format, native_f16) in [(WeightFormat::F32, false), (WeightFormat::F16, false), (WeightFormat::F16, true)]
        {
            let opts = GpuOptions { format: Some(format), native_f16: Some(native_f16), ..Default::default() };
            let mut g = GpuModel::on_llama(gpu.clone(), &config, &weights, opts).unwrap();
            for (case, want) in cases.iter().zip(&hf) {
                if format == WeightFormat::F32 {
                    g.reset();
                    let mut next = pollster::block_on(g.next_greedy(&case.ids)).unwrap();
                    let mut got = vec![next];
                    while got.len() < case.greedy.len() {
                        next = pollster::block_on(g.next_greedy(&[next])).unwrap();
                        got.push(next);
                    }
                    assert_eq!(got, case.greedy, "{name}: {:?}", case.ids);
                    continue;
                }
                // f16 weights: the top token at every position against HF's f32 forward.
                g.reset();
                let ours = pollster::block_on(g.run(&case.ids, ALL)).unwrap();
                let argmax = |r: &[f32]| r.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
                for (a, b) in ours.logits.chunks(config.vocab_size).zip(want.chunks(config.vocab_size)) {
                    total += 1;
                    same += usize::from(argmax(a) == argmax(b));
                }
                assert!(max_abs_diff(&ours.logits, want) < 0.05, "{name} f16 native {native_f16}");
            }
        }
    }
    eprintln!("f16 top-1 agreement with HF: {same}/{total}");
    assert!(same as f64 >= 0.95 * total as f64, "{same}/{total}");
}

#[test]
fn sampling_on_the_device_matches_the_host_sampler() {
    use wgpt::SamplingParams;
    use wgpt::model::Draw;
    use wgpt::sampler::Sampler;
    let gpu = gpu();
    let (config, weights) = model("qwen2-bias");
    let prompt = &llama_expected("qwen2-bias").0[0].ids;
    let opts = GpuOptions { format: Some(WeightFormat::F32), ..Default::default() };
    let mut g = GpuModel::on_llama(gpu.clone(), &config, &weights, opts).unwrap();
    for (temperature, top_k, top_p) in [(1.0, 0, 1.0), (0.7, 20, 1.0), (1.3, 0, 0.8)] {
        for seed in 0..3 {
            let params = SamplingParams { temperature, top_k, top_p, repetition_penalty: 1.0, seed };
            let draws = |m: &mut dyn LanguageModel| {
                m.reset();
                let mut sampler = Sampler::new();
                let (mut feed, mut out) = (prompt.clone(), Vec::new());
                for step in 0..10 {
                    let draw = Draw { sampler: &mut sampler, history: &[], params: &params, step };
                    let next = pollster::block_on(m.next_token(&feed, draw)).unwrap();
                    out.push(next);
                    feed = vec![next];
                }
                out
            };
            let mut cpu = LlamaSession::new(config.clone(), weights.clone());
            assert_eq!(draws(&mut g), draws(&mut cpu), "{params:?}");
        }
    }
}

#[test]
fn a_block_is_five_dispatches_and_six_with_qk_norm() {
    let gpu = gpu();
    for (name, per_block) in [("llama-gqa", 5), ("qwen2-bias", 5), ("qwen3-qknorm", 6)] {
        let (config, weights) = model(name);
        let opts = GpuOptions { variant: Some(Variant::Software), ..Default::default() };
        let mut g = GpuModel::on_llama(gpu.clone(), &config, &weights, opts).unwrap();
        pollster::block_on(g.next_greedy(&[1, 2, 3])).unwrap();
        let stats = g.step_stats().unwrap();
        assert_eq!(stats.per_block, per_block, "{name}");
        assert_eq!(stats.submits, 1, "{name}");
    }
}

#[test]
fn the_kv_cache_is_capped_and_the_cap_is_enforced() {
    let gpu = gpu();
    let (config, weights) = model("llama-gqa");
    assert_eq!(config.max_position_embeddings, 64);
    let opts = GpuOptions { max_context: Some(8), ..Default::default() };
    let mut g = GpuModel::on_llama(gpu.clone(), &config, &weights, opts).unwrap();
    assert_eq!(g.n_ctx(), 8);
    let full = GpuModel::on_llama(gpu, &config, &weights, GpuOptions::default()).unwrap();
    assert!(g.footprint().scratch < full.footprint().scratch);
    let err = pollster::block_on(g.run(&[1; 9], ForwardOptions::default())).unwrap_err();
    assert_eq!(err, EngineError::ContextOverflow { needed: 9, max: 8 });
    pollster::block_on(g.run(&[1; 8], ForwardOptions::default())).unwrap();
}

/// Every position's logits, the first half of `ids` prefilled in one call and the rest decoded
/// one by one (so both the prefill kernels and matvec read the weights).
fn prefill_half_then_decode(g: &mut GpuModel, ids: &[u32]) -> Vec<f32> {
    let split = ids.len() / 2;
    let mut got = pollster::block_on(g.run(&ids[..split], ALL)).unwrap().logits.clone();
    for t in split..ids.len() {
        got.extend(pollster::block_on(g.run(&ids[t..t + 1], ALL)).unwrap().logits.clone());
    }
    got
}

/// The weights with every layer projection in GGML blocks of `ty` (the embedding, head and norms
/// as they were), as a GGUF file of that type holds them.
fn projections_in(weights: &LlamaWeights, ty: wgpt::quant::GgmlType) -> LlamaWeights {
    use wgpt::quant::Matrix;
    let mut w = weights.clone();
    for l in &mut w.layers {
        for p in l.projections_mut() {
            let t = p.weight.to_f32().into_owned();
            p.weight = Matrix::Blocks(Matrix::quantize(ty, t.shape[0], t.shape[1], &t.data).unwrap());
        }
    }
    w
}

/// Q8_0 and Q4_0 on the device: the kernels decode the blocks as the CPU reference does, whether
/// the model arrives in blocks (read as stored) or in f32 with `format` asking for blocks
/// (quantized at upload, to the same bytes) — prefill (tiled GEMM or matvec) and decode, on GQA,
/// biases, q/k norms and a head_dim of 24 (rows of three blocks).
#[test]
fn block_weights_are_decoded_in_the_kernels_as_the_cpu_reference_decodes_them() {
    use wgpt::quant::GgmlType;
    let gpu = gpu();
    for name in LLAMA_MODELS {
        let (config, weights) = model(name);
        let (cases, _) = llama_expected(name);
        let ids: Vec<u32> = cases[0].ids.iter().chain(&cases[0].greedy).copied().collect();
        for (format, ty) in [(WeightFormat::Q8_0, GgmlType::Q8_0), (WeightFormat::Q4_0, GgmlType::Q4_0)] {
            let blocks = Arc::new(projections_in(&weights, ty));
            let want = LlamaSession::new(config.clone(), blocks.clone()).run(&ids, ALL).unwrap().logits.clone();
            // As `wgpt quantize` writes it: the embedding (tied head) in Q8_0 blocks too, which
            // embed.wgsl and lm_head.wgsl then read as blocks.
            let mut whole = (*weights).clone();
            whole.quantize(ty).unwrap();
            let whole = Arc::new(whole);
            let whole_want = LlamaSession::new(config.clone(), whole.clone()).run(&ids, ALL).unwrap().logits.clone();
            for variant in [Variant::Gpu, Variant::Software] {
                let stored = GpuOptions { variant: Some(variant), ..Default::default() };
                let forced = GpuOptions { format: Some(format), ..stored };
                for (how, w, opts, want, tables) in [
                    ("stored", &blocks, stored, &want, "f32"),
                    ("quantized at upload", &weights, forced, &want, "f32"),
                    ("whole model in blocks", &whole, stored, &whole_want, "q8_0"),
                ] {
                    let mut g = GpuModel::on_llama(gpu.clone(), &config, w, opts).unwrap();
                    assert_eq!(g.format(), format, "{name} {how}");
                    assert_eq!(g.tables_format().to_string(), tables, "{name} {how}");
                    let got = prefill_half_then_decode(&mut g, &ids);
                    let d = max_abs_diff(&got, want);
                    assert!(d < 1e-3, "{name} {format} {variant:?} ({how}): logits differ from the CPU's by {d}");
                }
            }
        }
    }
}

/// Q4_K's super-blocks on the device, on a shape whose rows are whole super-blocks (hidden 256,
/// MLP 512, qwen2 biases, GQA): the matrices read as stored and quantized at upload, and a whole
/// model whose embedding (tied head) is Q4_K too — so matvec, the tiled GEMM, the embedding and
/// the head all decode d·sc·q − dmin·m as the CPU reference does, in both kernel variants.
#[test]
fn q4_k_super_blocks_are_decoded_in_the_kernels_as_the_cpu_reference_decodes_them() {
    use wgpt::quant::{GgmlType, Matrix};
    let gpu = gpu();
    let config = LlamaConfig::from_json(
        br#"{"model_type": "qwen2", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300, "max_position_embeddings": 64,
             "rms_norm_eps": 1e-6, "rope_theta": 10000, "tie_word_embeddings": true}"#,
    )
    .unwrap();
    let weights = LlamaWeights::random(&config, 7);
    let blocks = Arc::new(projections_in(&weights, GgmlType::Q4K));
    let mut whole = (*blocks).clone();
    let e = whole.embed_tokens.to_f32().into_owned();
    whole.embed_tokens = Matrix::Blocks(Matrix::quantize(GgmlType::Q4K, e.shape[0], e.shape[1], &e.data).unwrap());
    let whole = Arc::new(whole);
    let weights = Arc::new(weights);
    let ids: Vec<u32> = (0..12).map(|i| (i * 37 % 300) as u32).collect();
    let want = LlamaSession::new(config.clone(), blocks.clone()).run(&ids, ALL).unwrap().logits.clone();
    let whole_want = LlamaSession::new(config.clone(), whole.clone()).run(&ids, ALL).unwrap().logits.clone();
    for variant in [Variant::Gpu, Variant::Software] {
        let stored = GpuOptions { variant: Some(variant), ..Default::default() };
        let forced = GpuOptions { format: Some(WeightFormat::Q4K), ..stored };
        for (how, w, opts, want, tables) in [
            ("stored", &blocks, stored, &want, "f32"),
            ("quantized at upload", &weights, forced, &want, "f32"),
            ("embedding in Q4_K too", &whole, stored, &whole_want, "q4_k"),
        ] {
            let mut g = GpuModel::on_llama(gpu.clone(), &config, w, opts).unwrap();
            assert_eq!(g.format(), WeightFormat::Q4K, "{how}");
            assert_eq!(g.tables_format().to_string(), tables, "{how}");
            let got = prefill_half_then_decode(&mut g, &ids);
            let d = max_abs_diff(&got, want);
            assert!(d < 1e-3, "Q4_K {variant:?} ({how}): logits differ from the CPU's by {d}");
        }
    }
    // A shape whose rows are not whole super-blocks is refused with the reason, before upload.
    let (small, small_w) = model("llama-gqa");
    let opts = GpuOptions { format: Some(WeightFormat::Q4K), ..Default::default() };
    let err = GpuModel::on_llama(gpu, &small, &small_w, opts).err().expect("refused");
    assert!(err.to_string().contains("blocks of 256"), "{err}");
}
