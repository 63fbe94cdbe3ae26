//! GGUF files made by llama.cpp's own tools (`convert_hf_to_gguf.py`, `llama-quantize`) from the
//! tiny HF fixtures, by scripts/make_gguf_fixtures.py: wgpt's logits on each equal HF's forward
//! on the weights as the file holds them (dequantized by llama.cpp's `gguf-py`) within 1e-4 on
//! the CPU reference and 1e-3 on the WGSL engine; the tokenizer and chat template a GGUF carries
//! tokenize and render as the HF files they came from; broken files give clear errors.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use safetensors::SafeTensors;
use wgpt::gpu::{Gpu, GpuOptions, Variant};
use wgpt::loaded::LoadedModel;
use wgpt::{ForwardOptions, LanguageModel};

fn dir() -> PathBuf {
    common::fixtures().join("gguf")
}

/// A fixture's name, its cases' ids, and HF's logits for each.
type Fixture = (String, Vec<Vec<u32>>, Vec<Vec<f32>>);

/// Every GGUF fixture.
fn fixtures() -> Vec<Fixture> {
    #[derive(serde::Deserialize)]
    struct Case {
        ids: Vec<u32>,
    }
    #[derive(serde::Deserialize)]
    struct File {
        cases: Vec<Case>,
    }
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok()?.strip_suffix(".gguf").map(String::from))
        .collect();
    names.sort();
    assert!(names.len() >= 6, "GGUF fixtures missing: {names:?}");
    names
        .into_iter()
        .map(|name| {
            let json: File =
                serde_json::from_slice(&std::fs::read(dir().join(format!("{name}.expected.json"))).unwrap()).unwrap();
            let bytes = std::fs::read(dir().join(format!("{name}.expected.safetensors"))).unwrap();
            let st = SafeTensors::deserialize(&bytes).unwrap();
            let logits = (0..json.cases.len())
                .map(|i| {
                    let v = st.tensor(&format!("case{i}.logits")).unwrap();
                    v.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
                })
                .collect();
            (name, json.cases.into_iter().map(|c| c.ids).collect(), logits)
        })
        .collect()
}

const ALL: ForwardOptions = ForwardOptions { all_logits: true, attention: false, hidden_states: false };

#[test]
fn logits_match_hf_on_the_dequantized_weights_on_both_engines() {
    let gpu = Arc::new(pollster::block_on(Gpu::new()).expect("a GPU adapter (CI uses Mesa's lavapipe)"));
    for (name, cases, want) in fixtures() {
        let loaded = LoadedModel::load(&dir().join(format!("{name}.gguf"))).unwrap();
        let mut cpu_worst = 0f32;
        let mut gpu_worst = 0f32;
        let mut format = String::new();
        for (ids, want) in cases.iter().zip(&want) {
            let mut cpu = loaded.cpu(4096);
            let d = common::max_abs_diff(&pollster::block_on(cpu.forward(ids, ALL)).unwrap().logits, want);
            cpu_worst = cpu_worst.max(d);
            assert!(d < 1e-4, "{name}: CPU logits differ from HF's by {d}");
            // The file's own format on the device (every block type read by the kernels, Q4_K_M's
            // mix of types too), through both kernel variants: matvec and the tiled GEMM.
            for variant in [Variant::Gpu, Variant::Software] {
                let opts = GpuOptions { variant: Some(variant), ..Default::default() };
                let mut g = loaded.gpu(gpu.clone(), opts).unwrap();
                format = g.describe().split("weights ").nth(1).unwrap_or("").split(',').next().unwrap().to_string();
                if name.ends_with(".f16") {
                    // F16 matrices are held as stored on the CPU, not widened.
                    let cpu = cpu.describe();
                    assert!(cpu.contains("(F16 weights"), "{name}: {cpu}");
                }
                if name.contains(".q") {
                    assert!(!format.starts_with("f32"), "{name}: blocks decoded to f32 on the device ({format})");
                    // Every matrix held in its blocks on the CPU too.
                    let cpu = cpu.describe();
                    assert!(!cpu.contains("F32"), "{name}: matrices decoded to f32 on the CPU ({cpu})");
                }
                if name.ends_with(".q4_k_m") {
                    assert!(format.contains("blocks as stored"), "{name}: {format}");
                }
                let d = common::max_abs_diff(&pollster::block_on(g.forward(ids, ALL)).unwrap().logits, want);
                gpu_worst = gpu_worst.max(d);
                assert!(d < 1e-3, "{name} ({format}, {variant:?}): WGSL logits differ from HF's by {d}");
            }
        }
        eprintln!("{name}: largest logit difference from HF: CPU {cpu_worst:.1e}, WGSL ({format}) {gpu_worst:.1e}");
    }
}

/// The CPU engine's logits are the same bits on 1, 2 and 3 threads, for both kinds of products
/// (f32 and 8-bit activations): a prompt, then decode steps — the products split rows, attention
/// splits heads, and each output is computed whole by one thread.
#[test]
fn logits_do_not_depend_on_the_thread_count() {
    use wgpt::quant::Activations;
    let names = ["tiny-f32.f32", "tiny-f32.q4_0", "llama-gqa.f32", "qwen2-bias.q4_k_m", "qwen3-qknorm.q8_0"];
    let picked: Vec<Fixture> = fixtures().into_iter().filter(|(n, ..)| names.contains(&n.as_str())).collect();
    assert_eq!(picked.len(), names.len(), "fixtures missing");
    for (name, cases, _) in picked {
        let loaded = LoadedModel::load(&dir().join(format!("{name}.gguf"))).unwrap();
        let prompt = &cases[0];
        for activations in [Activations::F32, Activations::Q8] {
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let mut model = loaded.cpu_with(4096, activations);
                    let mut all = pollster::block_on(model.forward(prompt, ALL)).unwrap().logits.clone();
                    for &id in &prompt[..3] {
                        all.extend_from_slice(&pollster::block_on(model.forward(&[id], ALL)).unwrap().logits);
                    }
                    all
                })
            };
            let one = run(1);
            for threads in [2, 3] {
                let got = run(threads);
                assert!(
                    got.iter().zip(&one).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{name}, {activations} activations: {threads} threads differ from one by {}",
                    common::max_abs_diff(&got, &one)
                );
            }
        }
    }
}

/// The CPU engine's decode — quantized matrices times activations quantized to 8 bits per
/// block of 32, integer products, as llama.cpp multiplies; the engine the CLI and the page run —
/// against the reference (f32 activations) on every quantized fixture, one token at a time and
/// as one prompt (whose Q4_0 and Q4_K rows are multiplied in integers too,
/// `quant/int8_prefill.rs`): the logits move by about what Q8_0's rounding of the weights moves
/// them, and the top token is the same almost everywhere; the engine says which it is.
#[test]
fn eight_bit_activations_stay_close_to_the_reference() {
    use wgpt::quant::Activations;
    let (mut worst, mut spread, mut same, mut total) = (0f32, 0f32, 0, 0);
    for (name, cases, _) in fixtures().into_iter().filter(|(n, ..)| n.contains(".q")) {
        let loaded = LoadedModel::load(&dir().join(format!("{name}.gguf"))).unwrap();
        let (mut reference, mut fast) = (loaded.cpu(4096), loaded.cpu_with(4096, Activations::Q8));
        assert!(fast.describe().contains("8-bit activations"), "{}", fast.describe());
        for ids in &cases {
            reference.truncate(0);
            fast.truncate(0);
            let want = pollster::block_on(reference.forward(ids, ALL)).unwrap().logits.clone();
            let decoded: Vec<f32> = ids
                .iter()
                .flat_map(|&id| pollster::block_on(fast.forward(&[id], ALL)).unwrap().logits.clone())
                .collect();
            fast.truncate(0);
            let prompt = pollster::block_on(fast.forward(ids, ALL)).unwrap().logits.clone();
            for got in [decoded, prompt] {
                worst = worst.max(common::max_abs_diff(&got, &want));
                spread = spread.max(want.iter().fold(0f32, |m, v| m.max(v.abs())));
                let v = want.len() / ids.len();
                let top = |l: &[f32]| l.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
                for (a, b) in got.chunks_exact(v).zip(want.chunks_exact(v)) {
                    same += usize::from(top(a) == top(b));
                    total += 1;
                }
            }
        }
    }
    eprintln!(
        "8-bit activations: largest logit difference {worst:.1e} (logits up to {spread:.1}), top token the same at {same}/{total}"
    );
    // Rounding the activations to 8 bits moves these logits about as much as Q8_0's rounding of
    // the weights does (HF's own logits for tiny-f32: 0.17 from F32 to Q8_0 weights, 2.2 to Q4_0).
    assert!(worst < 0.3, "8-bit activations moved a logit by {worst}");
    assert!(same * 100 >= total * 95, "the top token changed at {} of {total} positions", total - same);
}

#[test]
fn the_stored_types_are_the_files_and_the_summary_says_so() {
    let q8 = LoadedModel::load(&dir().join("chat-llama.q8_0.gguf")).unwrap();
    let s = q8.summary();
    assert_eq!(s.arch, "llama");
    assert!(s.dtypes.contains(&"Q8_0".to_string()), "{:?}", s.dtypes);
    let q4k = dir().join("llama-k.q4_k_m.gguf");
    if q4k.exists() {
        let s = LoadedModel::load(&q4k).unwrap().summary();
        for t in ["Q4_K", "Q6_K"] {
            assert!(s.dtypes.contains(&t.to_string()), "{t} not in {:?}", s.dtypes);
        }
    }
}

/// The tokenizer and template a GGUF carries (written by llama.cpp's converter from
/// `chat-llama`'s tokenizer.json and tokenizer_config.json) give what the HF files give.
#[test]
fn the_tokenizer_and_chat_template_in_a_gguf_are_the_hf_files() {
    use wgpt::chat::Message;
    let gguf = LoadedModel::load(&dir().join("chat-llama.f16.gguf")).unwrap();
    let hf = LoadedModel::load(&common::fixtures().join("llama/chat-llama")).unwrap();
    let (a, b) = (gguf.text.tokenizer.as_ref().unwrap(), hf.text.tokenizer.as_ref().unwrap());
    for text in [
        "What is the capital of France?",
        "什么是 GPT？ 🙂\n\n  tabs\tand 12345 numbers",
        "<|im_start|>user\nHi<|im_end|>",
    ] {
        assert_eq!(a.encode(text).unwrap(), b.encode(text).unwrap(), "{text:?}");
    }
    let messages = vec![Message { role: "user".into(), content: "Hi!".into() }];
    let (pa, pb) =
        (gguf.text.chat_prompt(&messages, 512, 16).unwrap(), hf.text.chat_prompt(&messages, 512, 16).unwrap());
    assert_eq!(pa.ids, pb.ids);
    assert_eq!(gguf.text.chat_format_name(), hf.text.chat_format_name());
    assert_eq!(gguf.text.stop_tokens, vec![2]);
}

/// A greedy chat reply from a Q8_0 and a Q4_0 file: the prompt HF's template gives, and HF's 8
/// greedy tokens on the dequantized weights, from the reference and from the engine the CLI and
/// the page run.
#[test]
fn a_quantized_gguf_chats_greedily_as_hf_does() {
    use wgpt::chat::Message;
    use wgpt::quant::Activations;
    #[derive(serde::Deserialize)]
    struct Chat {
        messages: Vec<Message>,
        prompt_ids: Vec<u32>,
        reply_ids: Vec<u32>,
    }
    #[derive(serde::Deserialize)]
    struct File {
        chat: Chat,
    }
    for name in ["chat-llama.q8_0", "chat-llama.q4_0"] {
        let want: File =
            serde_json::from_slice(&std::fs::read(dir().join(format!("{name}.expected.json"))).unwrap()).unwrap();
        let loaded = LoadedModel::load(&dir().join(format!("{name}.gguf"))).unwrap();
        let prompt = loaded.text.chat_prompt(&want.chat.messages, 2048, 16).unwrap();
        assert_eq!(prompt.ids, want.chat.prompt_ids, "{name}");
        // The reference, and the engine the CLI and the page run (8-bit activations in decode).
        for mut m in [loaded.cpu(2048), loaded.cpu_with(2048, Activations::default())] {
            let argmax = |l: &[f32]| l.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 as u32;
            let mut next =
                argmax(pollster::block_on(m.forward(&prompt.ids, ForwardOptions::default())).unwrap().last_logits());
            let mut got = vec![next];
            while got.len() < want.chat.reply_ids.len() {
                next = argmax(pollster::block_on(m.forward(&[next], ForwardOptions::default())).unwrap().last_logits());
                got.push(next);
            }
            assert_eq!(got, want.chat.reply_ids, "{name}, {}", m.describe());
        }
    }
}

/// A fixture's bytes with `edit` applied, as an error message.
fn broken(edit: impl Fn(&mut Vec<u8>)) -> String {
    let mut bytes = std::fs::read(dir().join("qwen3-qknorm.q8_0.gguf")).unwrap();
    edit(&mut bytes);
    let files: wgpt::loaded::Files = [("model.gguf".to_string(), bytes.as_slice())].into_iter().collect();
    match LoadedModel::from_files(&files) {
        Ok(_) => panic!("a broken file loaded"),
        Err(e) => e.to_string(),
    }
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).expect("in the file")
}

#[test]
fn broken_files_are_clear_errors() {
    let len = std::fs::read(dir().join("qwen3-qknorm.q8_0.gguf")).unwrap().len();
    // Truncated: in the tensor data, and in the header.
    let e = broken(|b| b.truncate(len - 100));
    assert!(e.contains("past the end"), "{e}");
    let e = broken(|b| b.truncate(200));
    assert!(e.contains("truncated"), "{e}");
    // Not GGUF; a future version.
    assert!(broken(|b| b[0] = b'X').contains("not a GGUF file"));
    assert!(broken(|b| b[4] = 9).contains("GGUF version 9"));
    // A tensor count of 2⁶⁰: refused before anything is sized by it.
    let e = broken(|b| b[8..16].copy_from_slice(&(1u64 << 60).to_le_bytes()));
    assert!(e.contains("cannot fit"), "{e}");
    let e = broken(|b| b[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes()));
    assert!(e.contains("cannot fit"), "{e}");
    // An unknown tensor type: the first tensor entry's type field follows its name and dims.
    let e = broken(|b| {
        let at = find(b, b"token_embd.weight") + "token_embd.weight".len();
        let n_dims = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        let ty = at + 4 + 8 * n_dims;
        b[ty..ty + 4].copy_from_slice(&99u32.to_le_bytes());
    });
    assert!(e.contains("GGML tensor type 99"), "{e}");
    // A size that disagrees with the shape: a dim doubled makes the data run past the file or
    // the shape disagree with the config.
    let e = broken(|b| {
        let at = find(b, b"output_norm.weight") + "output_norm.weight".len();
        b[at + 4..at + 12].copy_from_slice(&(1u64 << 40).to_le_bytes());
    });
    assert!(e.contains("past the end") || e.contains("shape"), "{e}");
    // Metadata of the wrong type: `qwen3.block_count` as a string.
    let e = broken(|b| {
        let at = find(b, b"qwen3.block_count") + "qwen3.block_count".len();
        b[at..at + 4].copy_from_slice(&8u32.to_le_bytes());
    });
    assert!(e.contains("qwen3.block_count") || e.contains("truncated"), "{e}");
    // An architecture we do not run.
    let e = broken(|b| {
        let at = find(b, b"qwen3");
        b[at..at + 5].copy_from_slice(b"mamba");
    });
    assert!(e.contains("\"mamba\"") && e.contains("wgpt runs"), "{e}");
    // A block whose scale is NaN: the last block of the first Q8_0 matrix.
    let e = broken(|b| {
        let gguf = wgpt::gguf::Gguf::parse(b).unwrap();
        let t = gguf.tensors.iter().find(|t| t.ty == wgpt::quant::GgmlType::Q8_0).expect("a Q8_0 matrix");
        let at = t.start + t.len - 34;
        b[at..at + 2].copy_from_slice(&half::f16::NAN.to_le_bytes());
    });
    assert!(e.contains("scale is NaN or infinite") && e.contains("GGUF tensor `"), "{e}");
}

/// `wgpt quantize`'s writer: an F32 export reads back to the same model (the same logits, for
/// each architecture and its layouts), and its Q8_0 and Q4_0 files hold exactly the bytes
/// llama.cpp's converter and `llama-quantize` wrote for the same model.
#[test]
fn exported_files_round_trip_and_equal_llama_cpp_s() {
    use wgpt::gguf::Gguf;
    use wgpt::gguf::export::{Target, export};
    use wgpt::loaded::TextFormat;
    let read = |bytes: &[u8]| {
        let files: wgpt::loaded::Files = [("m.gguf".to_string(), bytes)].into_iter().collect();
        LoadedModel::from_files(&files).unwrap()
    };
    let logits = |m: &LoadedModel, ids: &[u32]| {
        let mut s = m.cpu(512);
        pollster::block_on(s.forward(ids, ALL)).unwrap().logits.clone()
    };
    let ids = [1u32, 7, 30, 100, 5, 9];
    for source in ["llama/chat-llama", "hf/tiny-f32", "gguf/qwen3-qknorm.f16.gguf", "gguf/llama-gqa.f32.gguf"] {
        let original = LoadedModel::load(&common::fixtures().join(source)).unwrap();
        let (bytes, _) = export(&original, Target::F32).unwrap();
        let back = read(&bytes);
        // The same values in f32 (a 16-bit file's matrices are held as stored on the CPU).
        let widened = LoadedModel { arch: original.arch.clone().quantized("f32").unwrap(), text: TextFormat::none() };
        assert_eq!(logits(&back, &ids), logits(&widened, &ids), "{source}: an F32 round trip changed the model");
    }
    let original = LoadedModel::load(&common::fixtures().join("llama/chat-llama")).unwrap();
    for (target, theirs) in [(Target::Q8_0, "chat-llama.q8_0.gguf"), (Target::Q4_0, "chat-llama.q4_0.gguf")] {
        let (ours, _) = export(&original, target).unwrap();
        let theirs = std::fs::read(dir().join(theirs)).unwrap();
        let (a, b) = (Gguf::parse(&ours).unwrap(), Gguf::parse(&theirs).unwrap());
        assert_eq!(a.tensors.len(), b.tensors.len());
        for t in &b.tensors {
            let u = a.tensors.iter().find(|u| u.name == t.name).unwrap_or_else(|| panic!("{} missing", t.name));
            assert_eq!((u.ty, &u.dims), (t.ty, &t.dims), "{}", t.name);
            assert!(
                ours[u.start..u.start + u.len] == theirs[t.start..t.start + t.len],
                "{target:?} {}: bytes differ",
                t.name
            );
        }
        // And the file reads back as a model that chats.
        let back = read(&ours);
        assert_eq!(back.text.stop_tokens, original.text.stop_tokens);
        assert_eq!(back.text.chat_format_name(), original.text.chat_format_name());
    }
}

/// `wgpt quantize --to q4_k` on a shape whose rows are whole super-blocks: every projection is
/// written in Q4_K (the embedding in Q8_0), and the file reads back as the very model the
/// engines' own `--dtype q4_k` makes — the same logits, to the bit.
#[test]
fn a_q4_k_export_reads_back_as_the_engines_own_q4_k() {
    use wgpt::gguf::export::{Target, export};
    use wgpt::llama::{LlamaConfig, LlamaWeights};
    use wgpt::loaded::{Architecture, TextFormat};
    use wgpt::quant::GgmlType;
    let small = LoadedModel::load(&common::fixtures().join("llama/chat-llama")).unwrap();
    let config = LlamaConfig::from_json(
        r#"{"model_type": "llama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": VOCAB, "max_position_embeddings": 64,
             "rms_norm_eps": 1e-5, "rope_theta": 10000, "tie_word_embeddings": true}"#
            .replace("VOCAB", &small.summary().vocab_size.to_string())
            .as_bytes(),
    )
    .unwrap();
    let weights = Arc::new(LlamaWeights::random(&config, 3));
    // chat-llama's tokenizer and template: a GGUF file carries them.
    let text = LoadedModel::load(&common::fixtures().join("llama/chat-llama")).unwrap().text;
    let original = LoadedModel { arch: Architecture::Llama { config, weights }, text };
    let (bytes, counts) = export(&original, Target::Q4K).unwrap();
    assert_eq!(counts.iter().find(|(t, _)| *t == GgmlType::Q4K).map(|c| c.1), Some(2 * 7), "{counts:?}");
    assert_eq!(counts.iter().find(|(t, _)| *t == GgmlType::Q8_0).map(|c| c.1), Some(1), "{counts:?}");
    let files: wgpt::loaded::Files = [("m.gguf".to_string(), &bytes[..])].into_iter().collect();
    let back = LoadedModel::from_files(&files).unwrap();
    let ours = LoadedModel { arch: original.arch.clone().quantized("q4_k").unwrap(), text: TextFormat::none() };
    let ids = [1u32, 7, 30, 100, 5, 9];
    let logits = |m: &LoadedModel| pollster::block_on(m.cpu(64).forward(&ids, ALL)).unwrap().logits.clone();
    assert_eq!(logits(&back), logits(&ours));
    // Rows that are not whole super-blocks (chat-llama's hidden 64) fall back to Q8_0 in a file;
    // the engines' --dtype q4_k refuses them with the reason.
    let (_, counts) = export(&small, Target::Q4K).unwrap();
    assert!(counts.iter().all(|(t, _)| *t != GgmlType::Q4K), "{counts:?}");
    let err = small.arch.quantized("q4_k").err().expect("refused");
    assert!(err.contains("256"), "{err}");
}

/// A GGUF file read into memory is where its matrices stay: every matrix of a loaded Q4_0 file
/// (q and k rows put back in HF's order in place), and of an F32 one, lies inside the file's own
/// buffer, so the page and the CLI hold a model once, not as the file plus a copy.
#[test]
fn matrices_are_the_files_bytes_not_copies() {
    use wgpt::loaded::Architecture;
    use wgpt::quant::Matrix;
    for name in ["chat-llama.q4_0", "llama-gqa.f32"] {
        let bytes = std::fs::read(dir().join(format!("{name}.gguf"))).unwrap();
        let file = bytes.as_ptr_range();
        let inside = |m: &Matrix| match m {
            Matrix::Blocks(b) => {
                file.contains(&b.data.as_ptr()) && b.data.len() <= file.end as usize - b.data.as_ptr() as usize
            }
            Matrix::F32(_) => false,
        };
        let loaded = wgpt::gguf::model::load_owned(bytes).unwrap();
        let Architecture::Llama { weights, .. } = &loaded.arch else { panic!("a llama") };
        let mut matrices = 0;
        for l in &weights.layers {
            for p in l.projections() {
                assert!(inside(&p.weight), "{name}: a {} matrix outside the file's buffer", p.weight.type_name());
                matrices += 1;
            }
        }
        assert!(inside(&weights.embed_tokens), "{name}");
        assert_eq!(matrices, 7 * weights.layers.len());
    }
}
