//! Every way a bundle can be broken gets a typed error that names the problem, never a panic.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use wgpt::bundle::{Bundle, BundleError};
use wgpt::config::ConfigError;
use wgpt::tokenizer::TokenizerError;
use wgpt::weights::WeightsError;

/// The tiny-f32 fixture's tensors as (dtype, shape, bytes).
type Tensors = BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>;

fn source() -> &'static Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| common::hf_model_dir("tiny-f32"))
}

fn tensors() -> Tensors {
    let bytes = std::fs::read(source().join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.iter().map(|(k, v)| (k.to_string(), (v.dtype(), v.shape().to_vec(), v.data().to_vec()))).collect()
}

fn serialize(t: &Tensors) -> Vec<u8> {
    let views: Vec<(String, TensorView)> =
        t.iter().map(|(k, (d, s, b))| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    safetensors::serialize(views, None).unwrap()
}

/// A bundle directory: the fixture's files, with `model.safetensors` and `config.json` replaced.
fn bundle_with(weights: &[u8], config: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(source().join("tokenizer.json"), dir.path().join("tokenizer.json")).unwrap();
    match config {
        Some(c) => std::fs::write(dir.path().join("config.json"), c).unwrap(),
        None => drop(std::fs::copy(source().join("config.json"), dir.path().join("config.json")).unwrap()),
    }
    std::fs::write(dir.path().join("model.safetensors"), weights).unwrap();
    dir
}

fn load_err(weights: &[u8], config: Option<&str>) -> BundleError {
    let dir = bundle_with(weights, config);
    match Bundle::load(dir.path()) {
        Ok(_) => panic!("the broken bundle loaded"),
        Err(e) => {
            assert!(!e.to_string().is_empty());
            e
        }
    }
}

fn config_with(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(source().join("config.json")).unwrap()).unwrap();
    edit(&mut v);
    v.to_string()
}

#[test]
fn the_unbroken_copy_loads() {
    let dir = bundle_with(&serialize(&tensors()), None);
    Bundle::load(dir.path()).unwrap();
}

#[test]
fn missing_extra_and_misshapen_tensors() {
    let mut t = tensors();
    t.remove("transformer.h.1.mlp.c_fc.bias");
    let e = load_err(&serialize(&t), None);
    assert!(matches!(&e, BundleError::Weights(WeightsError::MissingTensor(n)) if n == "h.1.mlp.c_fc.bias"), "{e}");

    let mut t = tensors();
    t.insert("transformer.h.7.attn.c_attn.weight".into(), (Dtype::F32, vec![1], vec![0; 4]));
    let e = load_err(&serialize(&t), None);
    assert!(matches!(&e, BundleError::Weights(WeightsError::UnexpectedTensor(n)) if n == "h.7.attn.c_attn.weight"));

    let mut t = tensors();
    t.insert("transformer.ln_f.weight".into(), (Dtype::F32, vec![16], vec![0; 64]));
    let e = load_err(&serialize(&t), None);
    assert!(
        matches!(&e, BundleError::Weights(WeightsError::Shape { name, expected, found })
            if name == "ln_f.weight" && expected == &[32] && found == &[16]),
        "{e}"
    );
}

#[test]
fn unsupported_dtype_and_non_finite_values() {
    let mut t = tensors();
    let (_, shape, bytes) = t["transformer.ln_f.bias"].clone();
    t.insert("transformer.ln_f.bias".into(), (Dtype::I32, shape, bytes));
    let e = load_err(&serialize(&t), None);
    assert!(matches!(&e, BundleError::Weights(WeightsError::Dtype { name, .. }) if name == "ln_f.bias"), "{e}");

    let mut t = tensors();
    let bytes = &mut t.get_mut("transformer.h.0.ln_1.weight").unwrap().2;
    bytes[12..16].copy_from_slice(&f32::NAN.to_le_bytes());
    let e = load_err(&serialize(&t), None);
    assert!(
        matches!(&e, BundleError::Weights(WeightsError::NonFinite { name, index: 3, .. }) if name == "h.0.ln_1.weight"),
        "{e}"
    );

    // An f32 Conv1D is read straight into rows: the index is still the file's.
    let mut t = tensors();
    let bytes = &mut t.get_mut("transformer.h.0.mlp.c_fc.weight").unwrap().2;
    bytes[28..32].copy_from_slice(&f32::INFINITY.to_le_bytes());
    let e = load_err(&serialize(&t), None);
    assert!(
        matches!(&e, BundleError::Weights(WeightsError::NonFinite { name, index: 7, .. }) if name == "h.0.mlp.c_fc.weight"),
        "{e}"
    );

    // A 16-bit matrix is held as stored, not widened: its values are checked all the same, and
    // the index is the file's (a Conv1D is transposed into rows after the check).
    for (dtype, nan) in [(Dtype::F16, half::f16::NAN.to_le_bytes()), (Dtype::BF16, half::bf16::NAN.to_le_bytes())] {
        let mut t = tensors();
        let (_, shape, bytes) = t["transformer.h.0.attn.c_attn.weight"].clone();
        let mut halves: Vec<u8> = bytes
            .chunks_exact(4)
            .flat_map(|b| half::f16::from_f32(f32::from_le_bytes(b.try_into().unwrap())).to_le_bytes())
            .collect();
        if dtype == Dtype::BF16 {
            halves = bytes
                .chunks_exact(4)
                .flat_map(|b| half::bf16::from_f32(f32::from_le_bytes(b.try_into().unwrap())).to_le_bytes())
                .collect();
        }
        halves[10..12].copy_from_slice(&nan);
        t.insert("transformer.h.0.attn.c_attn.weight".into(), (dtype, shape, halves));
        let e = load_err(&serialize(&t), None);
        assert!(
            matches!(&e, BundleError::Weights(WeightsError::NonFinite { name, index: 5, .. }) if name == "h.0.attn.c_attn.weight"),
            "{dtype:?}: {e}"
        );
    }
}

#[test]
fn truncated_files_and_lying_headers() {
    let good = serialize(&tensors());
    let e = load_err(&good[..good.len() - 10], None);
    assert!(matches!(e, BundleError::Weights(WeightsError::Truncated(_))), "{e}");
    let e = load_err(&good[..5], None);
    assert!(matches!(e, BundleError::Weights(WeightsError::Truncated(_))), "{e}");
    let e = load_err(&[], None);
    assert!(matches!(e, BundleError::Weights(WeightsError::Truncated(_))), "{e}");

    // A header length beyond the end of the file.
    let mut lying = good.clone();
    lying[..8].copy_from_slice(&(good.len() as u64).to_le_bytes());
    let e = load_err(&lying, None);
    assert!(matches!(e, BundleError::Weights(WeightsError::HeaderLargerThanFile)), "{e}");
    // An absurd header length: refused before any allocation of that size.
    let mut lying = good.clone();
    lying[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let e = load_err(&lying, None);
    assert!(matches!(e, BundleError::Weights(WeightsError::HeaderTooLarge | WeightsError::HeaderLargerThanFile)));

    // A header whose offsets claim a petabyte tensor.
    let header = r#"{"wte.weight":{"dtype":"F32","shape":[1000000000,1000000],"data_offsets":[0,4000000000000000]}}"#;
    let mut bogus = (header.len() as u64).to_le_bytes().to_vec();
    bogus.extend_from_slice(header.as_bytes());
    let e = load_err(&bogus, None);
    assert!(matches!(e, BundleError::Weights(WeightsError::Truncated(_) | WeightsError::Malformed(_))), "{e}");
    // Garbage.
    let e = load_err(b"this is not a safetensors file at all", None);
    assert!(matches!(e, BundleError::Weights(_)), "{e}");
}

#[test]
fn inconsistent_config_and_oversized_tokenizer() {
    let good = serialize(&tensors());
    let e = load_err(&good, Some(&config_with(|v| v["n_head"] = 5.into())));
    assert!(matches!(e, BundleError::Config(ConfigError::Invalid { key: "n_head", .. })), "{e}");
    let e = load_err(&good, Some("{\"n_embd\": 32,"));
    assert!(matches!(e, BundleError::Config(ConfigError::Json(_))), "{e}");
    // A config whose shape disagrees with the weights is a shape error naming the tensor.
    let e = load_err(&good, Some(&config_with(|v| v["n_positions"] = 128.into())));
    assert!(matches!(&e, BundleError::Weights(WeightsError::Shape { name, .. }) if name == "wpe.weight"), "{e}");
    // The tokenizer has 512 ids; a model with 300 cannot embed them all.
    let e = load_err(&good, Some(&config_with(|v| v["vocab_size"] = 300.into())));
    assert!(matches!(e, BundleError::Tokenizer(TokenizerError::VocabTooLarge { max_id: 511, vocab_size: 300 })), "{e}");
    // A config that would need terabytes: refused by the shape check, never allocated.
    let e = load_err(&good, Some(&config_with(|v| v["n_layer"] = 1000.into())));
    assert!(matches!(e, BundleError::Weights(WeightsError::MissingTensor(_))), "{e}");
}

#[test]
fn tied_head_copy_must_match() {
    let mut t = tensors();
    let wte = t["transformer.wte.weight"].clone();
    t.insert("lm_head.weight".into(), wte.clone());
    let dir = bundle_with(&serialize(&t), None);
    Bundle::load(dir.path()).unwrap();
    let mut other = wte;
    other.2[0] ^= 1;
    t.insert("lm_head.weight".into(), other);
    let e = load_err(&serialize(&t), None);
    assert!(matches!(e, BundleError::Weights(WeightsError::TiedHeadMismatch)), "{e}");
}

#[test]
fn missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let e = Bundle::load(dir.path()).err().unwrap();
    assert!(matches!(&e, BundleError::Io { path, .. } if path.ends_with("config.json")), "{e}");
    std::fs::copy(source().join("config.json"), dir.path().join("config.json")).unwrap();
    let e = Bundle::load(dir.path()).err().unwrap();
    assert!(matches!(e, BundleError::NoTokenizer(_)), "{e}");
    std::fs::copy(source().join("tokenizer.json"), dir.path().join("tokenizer.json")).unwrap();
    let e = Bundle::load(dir.path()).err().unwrap();
    assert!(matches!(&e, BundleError::Io { path, .. } if path.ends_with("model.safetensors")), "{e}");
    let e = Bundle::load(&dir.path().join("nope")).err().unwrap();
    assert!(matches!(e, BundleError::Io { .. }), "{e}");
}

#[test]
fn engine_and_generation_errors() {
    use wgpt::generate::{GenerateError, GenerateParams, generate};
    use wgpt::{EngineError, ForwardOptions};
    let bundle = Bundle::load(source()).unwrap();
    let mut s = bundle.cpu_session();
    assert_eq!(s.run(&[], ForwardOptions::default()).err(), Some(EngineError::EmptyInput));
    assert_eq!(
        s.run(&[512], ForwardOptions::default()).err(),
        Some(EngineError::TokenOutOfRange { id: 512, vocab_size: 512 })
    );
    assert_eq!(
        s.run(&[1; 65], ForwardOptions::default()).err(),
        Some(EngineError::ContextOverflow { needed: 65, max: 64 })
    );
    // Errors leave the session usable.
    assert_eq!(s.position(), 0);
    s.run(&[1; 60], ForwardOptions::default()).unwrap();
    let params = GenerateParams::new(&bundle.config, 100);
    let e = generate(&mut s, &bundle.tokenizer, &[1; 5], &params, |_| true).unwrap_err();
    assert!(matches!(e, GenerateError::PromptTooLong { tokens: 5, used: 60, max: 64 }), "{e}");
    // Generation that fills the context stops there.
    let out = generate(&mut s, &bundle.tokenizer, &[1; 2], &GenerateParams { stop_tokens: vec![], ..params }, |_| true)
        .unwrap();
    assert_eq!(out.finish, wgpt::FinishReason::ContextFull);
    assert_eq!(s.position(), 64);
}

#[test]
fn the_header_alone_tells_what_the_file_holds() {
    use wgpt::weights::stored_tensors;
    for name in ["tiny-f32", "gpt2vocab-f16", "tiny-bf16-untied"] {
        let dir = common::hf_model_dir(name);
        let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let stored = stored_tensors(&bytes[..8 + n], bytes.len() as u64).unwrap();
        assert_eq!(stored, Bundle::load(&dir).unwrap().weights.stored, "{name}");
        // A file shorter or longer than its header says is refused before any weight is read.
        let short = stored_tensors(&bytes[..8 + n], bytes.len() as u64 - 1).unwrap_err();
        assert!(matches!(short, WeightsError::Truncated(_)), "{short}");
        assert!(matches!(stored_tensors(&bytes[..8 + n], 8), Err(WeightsError::HeaderLargerThanFile)));
        assert!(matches!(stored_tensors(&bytes[..8 + n / 2], bytes.len() as u64), Err(WeightsError::Truncated(_))));
    }
}
