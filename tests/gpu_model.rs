//! The WGSL engine (natively on whatever Vulkan device there is; in CI Mesa's lavapipe) against
//! the CPU reference: whole models, both kernel variants, f32 and f16 weights.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::sync::Arc;

use common::{HF_MODELS, hf_model_dir, max_abs_diff};
use wgpt::gpu::{Gpu, GpuModel, GpuOptions, Variant, WeightFormat};
use wgpt::{Bundle, ForwardOptions};

fn gpu() -> Arc<Gpu> {
    Arc::new(pollster::block_on(Gpu::new()).expect("a GPU adapter (CI uses Mesa's lavapipe)"))
}

#[test]
fn f32_logits_match_the_cpu_reference_in_both_variants() {
    let gpu = gpu();
    for name in HF_MODELS {
        let bundle = Bundle::load(&hf_model_dir(name)).unwrap();
        for variant in [Variant::Gpu, Variant::Software] {
            let opts = GpuOptions { format: Some(WeightFormat::F32), variant: Some(variant), ..Default::default() };
            let mut g = GpuModel::on(gpu.clone(), &bundle.config, &bundle.weights, opts).unwrap();
            for case in common::expected(name).cases {
                // Without attention maps the GPU variant uses the tiled prefill attention.
                g.reset();
                let all = ForwardOptions { all_logits: true, ..Default::default() };
                let plain = pollster::block_on(g.run(&case.ids, all)).unwrap().logits.clone();
                g.reset();
                let maps = ForwardOptions { all_logits: true, attention: true, ..Default::default() };
                let ours = pollster::block_on(g.run(&case.ids, maps)).unwrap();
                let mut cpu = bundle.cpu_session();
                let want = cpu.run(&case.ids, maps).unwrap();
                let d = max_abs_diff(&ours.logits, &want.logits);
                assert!(d < 1e-3, "{name} {variant:?}: logits differ by {d}");
                let d = max_abs_diff(&plain, &want.logits);
                assert!(d < 1e-3, "{name} {variant:?}, no maps: logits differ by {d}");
                assert_eq!(ours.attention.len(), bundle.config.n_layer);
                for (l, (a, b)) in ours.attention.iter().zip(&want.attention).enumerate() {
                    let d = max_abs_diff(a, b);
                    assert!(d < 1e-4, "{name} {variant:?}: attention of layer {l} differs by {d}");
                }
            }
        }
    }
}

/// Runs `ids` on the GPU and the CPU reference: prefill of `split` tokens, then one at a time.
fn compare_stepwise(g: &mut GpuModel, cpu: &mut wgpt::CpuSession, ids: &[u32], split: usize, tol: f32) {
    let all = ForwardOptions { all_logits: true, ..Default::default() };
    let first = pollster::block_on(g.run(&ids[..split], all)).unwrap();
    let want = cpu.run(&ids[..split], ForwardOptions { all_logits: true, ..Default::default() }).unwrap();
    let d = max_abs_diff(&first.logits, &want.logits);
    assert!(d < tol, "prefill of {split}: {d}");
    for t in split..ids.len() {
        let out = pollster::block_on(g.run(&ids[t..t + 1], ForwardOptions::default())).unwrap();
        let want = cpu.run(&ids[t..t + 1], ForwardOptions::default()).unwrap();
        let d = max_abs_diff(&out.logits, want.last_logits());
        assert!(d < tol, "decode at {t}: {d}");
    }
    assert_eq!(g.position(), ids.len());
}

#[test]
fn awkward_shapes_prefill_and_decode() {
    let gpu = gpu();
    // (vocab, context, n_embd, layers, heads, n_inner): widths that are not multiples of the
    // workgroup size, one head, a context of 1, a prompt longer than one prefill chunk (256).
    let shapes = [(7, 1, 4, 1, 1, 4), (13, 9, 20, 2, 1, 12), (77, 19, 36, 2, 3, 52), (300, 300, 8, 1, 2, 16)];
    for (i, &(v, t, c, l, h, inner)) in shapes.iter().enumerate() {
        let (config, weights) = common::random_model(v, t, c, l, h, inner, i as u64);
        let weights = Arc::new(weights);
        let ids: Vec<u32> = (0..t as u32).map(|k| (k * 7 + 3) % v as u32).collect();
        for variant in [Variant::Gpu, Variant::Software] {
            let opts = GpuOptions { format: Some(WeightFormat::F32), variant: Some(variant), ..Default::default() };
            let mut g = GpuModel::on(gpu.clone(), &config, &weights, opts).unwrap();
            let mut cpu = wgpt::CpuSession::new(config.clone(), weights.clone());
            let split = (t / 2).max(1).min(t);
            compare_stepwise(&mut g, &mut cpu, &ids, split, 1e-3);
            // The whole prompt at once, past the 256-row chunk where the context allows.
            g.reset();
            cpu.reset();
            compare_stepwise(&mut g, &mut cpu, &ids, t, 1e-3);
        }
    }
}

/// GPT-2 in GGML blocks on the device (Q8_0, Q4_0, and Q4_K on a shape whose rows are whole
/// 256-value super-blocks), decoded in the kernels as the CPU reference decodes them — prefill
/// (the tiled GEMM or matvec) and decode, in both kernel variants — whether the model arrives
/// quantized as `--dtype` and `wgpt quantize` make it (matrices in blocks, the embedding in Q8_0),
/// with only its matrices in blocks, or in f32 with a block format asked for at upload.
#[test]
fn gpt2_block_weights_are_decoded_in_the_kernels_as_the_cpu_reference_decodes_them() {
    let gpu = gpu();
    let (config, weights) = common::random_model(300, 32, 256, 2, 4, 512, 5);
    let ids: Vec<u32> = (0..12).map(|i| (i * 37 % 300) as u32).collect();
    for format in [WeightFormat::Q8_0, WeightFormat::Q4_0, WeightFormat::Q4K] {
        let mut whole = weights.clone();
        whole.quantize(format.blocks().unwrap()).unwrap();
        let matrices = wgpt::weights::ModelWeights { wte: weights.wte.clone(), ..whole.clone() };
        let f32_weights = Arc::new(weights.clone());
        for variant in [Variant::Gpu, Variant::Software] {
            let stored = GpuOptions { variant: Some(variant), ..Default::default() };
            let forced = GpuOptions { format: Some(format), ..stored };
            for (how, w, cpu_w, opts, tables) in [
                ("whole model in blocks", Arc::new(whole.clone()), None, stored, "q8_0"),
                ("matrices in blocks", Arc::new(matrices.clone()), None, stored, "f32"),
                ("quantized at upload", f32_weights.clone(), Some(Arc::new(matrices.clone())), forced, "f32"),
            ] {
                let mut g = GpuModel::on(gpu.clone(), &config, &w, opts).unwrap();
                assert_eq!(g.format(), format, "{how}");
                assert_eq!(g.tables_format().to_string(), tables, "{how}");
                let mut cpu = wgpt::CpuSession::new(config.clone(), cpu_w.unwrap_or(w));
                compare_stepwise(&mut g, &mut cpu, &ids, 6, 1e-3);
            }
        }
    }
}

#[test]
fn greedy_on_the_device_matches_hf() {
    let gpu = gpu();
    for name in HF_MODELS {
        let bundle = Bundle::load(&hf_model_dir(name)).unwrap();
        // f16 both ways: unpacked from u32 pairs, and natively where the device has shader-f16.
        for (format, native_f16) in [(WeightFormat::F32, false), (WeightFormat::F16, false), (WeightFormat::F16, true)]
        {
            let opts =
                GpuOptions { format: Some(format), variant: None, native_f16: Some(native_f16), ..Default::default() };
            let mut g = GpuModel::on(gpu.clone(), &bundle.config, &bundle.weights, opts).unwrap();
            for case in common::expected(name).cases {
                g.reset();
                let mut next = pollster::block_on(g.next_greedy(&case.ids)).unwrap();
                let mut got = vec![next];
                while got.len() < case.greedy.len() {
                    next = pollster::block_on(g.next_greedy(&[next])).unwrap();
                    got.push(next);
                }
                assert_eq!(got, case.greedy, "{name} {format:?} native {native_f16}: {:?}", case.text);
            }
        }
    }
}

#[test]
fn f16_weights_agree_on_the_top_token() {
    // Forced decoding over every fixture prompt: the f16 engine's top-1 token against the f32
    // CPU reference.
    let gpu = gpu();
    let (mut same, mut total) = (0, 0);
    for (name, native_f16) in HF_MODELS.iter().flat_map(|n| [(*n, false), (*n, true)]) {
        let bundle = Bundle::load(&hf_model_dir(name)).unwrap();
        let opts = GpuOptions {
            format: Some(WeightFormat::F16),
            variant: None,
            native_f16: Some(native_f16),
            ..Default::default()
        };
        let mut g = GpuModel::on(gpu.clone(), &bundle.config, &bundle.weights, opts).unwrap();
        if native_f16 {
            assert_eq!(g.native_f16(), gpu.has_f16());
        }
        let v = bundle.config.vocab_size;
        for case in common::expected(name).cases {
            g.reset();
            let all = ForwardOptions { all_logits: true, ..Default::default() };
            let ours = pollster::block_on(g.run(&case.ids, all)).unwrap();
            let mut cpu = bundle.cpu_session();
            let want = cpu.run(&case.ids, ForwardOptions { all_logits: true, ..Default::default() }).unwrap();
            let argmax = |r: &[f32]| r.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
            for (a, b) in ours.logits.chunks(v).zip(want.logits.chunks(v)) {
                total += 1;
                same += usize::from(argmax(a) == argmax(b));
            }
        }
    }
    let agreement = same as f64 / total as f64;
    eprintln!("f16 top-1 agreement: {same}/{total}");
    assert!(agreement >= 0.99, "{same}/{total}");
}

#[test]
fn bad_input_is_an_error() {
    use wgpt::EngineError;
    use wgpt::gpu::GpuError;
    let gpu = gpu();
    let bundle = Bundle::load(&hf_model_dir("tiny-f32")).unwrap();
    let mut g = GpuModel::on(gpu.clone(), &bundle.config, &bundle.weights, GpuOptions::default()).unwrap();
    let run = |g: &mut GpuModel, ids: &[u32]| pollster::block_on(g.run(ids, ForwardOptions::default())).err();
    assert_eq!(run(&mut g, &[]), Some(EngineError::EmptyInput));
    assert_eq!(run(&mut g, &[512]), Some(EngineError::TokenOutOfRange { id: 512, vocab_size: 512 }));
    assert_eq!(run(&mut g, &[1; 65]), Some(EngineError::ContextOverflow { needed: 65, max: 64 }));
    assert_eq!(g.position(), 0);
    // GPT-1 style post-LN blocks are CPU-only for now: a clear error, not wrong numbers.
    let mut config = bundle.config.clone();
    config.layer_norm_position = wgpt::config::LayerNormPosition::Post;
    let err = GpuModel::on(gpu, &config, &bundle.weights, GpuOptions::default()).err().unwrap();
    assert!(matches!(err, GpuError::Unsupported(_)), "{err}");
}

#[test]
fn sampling_on_the_device_matches_the_cpu_sampler() {
    use wgpt::SamplingParams;
    use wgpt::generate::{GenerateParams, generate};
    let gpu = gpu();
    let settings =
        [(1.0, 0, 1.0, 1.0), (0.7, 20, 1.0, 1.0), (1.3, 0, 0.8, 1.0), (0.9, 40, 0.9, 1.3), (2.0, 3, 0.5, 1.0)];
    let (mut same, mut total) = (0, 0);
    for name in HF_MODELS {
        let bundle = Bundle::load(&hf_model_dir(name)).unwrap();
        let opts = GpuOptions { format: Some(WeightFormat::F32), ..Default::default() };
        let mut g = GpuModel::on(gpu.clone(), &bundle.config, &bundle.weights, opts).unwrap();
        // Both engines on the weights in f32 (the CPU holds a 16-bit file's as stored otherwise).
        let mut weights = (*bundle.weights).clone();
        weights.quantize(wgpt::quant::GgmlType::F32).unwrap();
        let weights = Arc::new(weights);
        let prompt = &common::expected(name).cases[0].ids;
        for (temperature, top_k, top_p, repetition_penalty) in settings {
            for seed in 0..3 {
                let sampling = SamplingParams { temperature, top_k, top_p, repetition_penalty, seed };
                let params = GenerateParams { max_tokens: 12, sampling, stop_tokens: vec![] };
                let mut cpu = wgpt::CpuSession::new(bundle.config.clone(), weights.clone());
                let want = generate(&mut cpu, &bundle.tokenizer, prompt, &params, |_| true).unwrap();
                g.reset();
                let got = generate(&mut g, &bundle.tokenizer, prompt, &params, |_| true).unwrap();
                total += 1;
                same += usize::from(got.ids == want.ids);
                if got.ids != want.ids {
                    eprintln!("{name} {sampling:?}: GPU {:?}, CPU {:?}", got.ids, want.ids);
                }
            }
        }
    }
    eprintln!("GPU-sampled sequences equal to the CPU sampler's: {same}/{total}");
    // The two engines' logits differ by ~1e-6 (another order of additions), so a draw that lands
    // within that of a boundary between two tokens' shares picks the neighbour: near-flat
    // distributions (temperature 1.3 over random weights) make that rare, not impossible. A
    // sampler that differed in anything but rounding would part on most sequences.
    assert!(same * 20 >= total * 19, "only {same} of {total} sampled sequences equal the CPU's");
}

#[test]
fn the_footprint_counts_weights_and_kv_cache() {
    let gpu = gpu();
    let bundle = Bundle::load(&hf_model_dir("tiny-f32")).unwrap();
    let c = &bundle.config;
    let params = bundle.config.parameter_count() as u64;
    for (format, bytes) in [(WeightFormat::F32, 4), (WeightFormat::F16, 2)] {
        let opts = GpuOptions { format: Some(format), ..Default::default() };
        let f = GpuModel::on(gpu.clone(), c, &bundle.weights, opts).unwrap().footprint();
        // Every parameter once (the tied head reuses wte), biases and norms stay f32.
        assert!(f.weights >= params * bytes && f.weights <= params * 4, "{format:?}: {f:?} for {params} parameters");
        let kv = (2 * c.n_layer * c.n_positions * c.n_embd * 4) as u64;
        assert!(f.scratch > kv, "{f:?}: the KV cache alone is {kv} bytes");
    }
}

#[test]
fn a_lost_device_is_an_error_not_a_hang() {
    use wgpt::EngineError;
    use wgpt::gpu::GpuError;
    let gpu = gpu();
    let bundle = Bundle::load(&hf_model_dir("tiny-f32")).unwrap();
    let mut g = GpuModel::on(gpu.clone(), &bundle.config, &bundle.weights, GpuOptions::default()).unwrap();
    pollster::block_on(g.next_greedy(&[1, 2, 3])).unwrap();
    gpu.device.destroy();
    let err = pollster::block_on(g.next_greedy(&[4])).unwrap_err();
    assert!(matches!(err, EngineError::Gpu(GpuError::DeviceLost(_) | GpuError::Validation(_))), "{err}");
    // And it stays an error.
    assert!(pollster::block_on(g.run(&[5], ForwardOptions::default())).is_err());
}
