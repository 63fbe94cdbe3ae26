//! The burn model against independent implementations: HF `transformers` (loss, logits,
//! gradients, AdamW steps recorded by scripts/make_train_fixtures.py) and the wgpt CPU
//! reference (logits, pre- and post-LN, tied and untied).

use std::path::PathBuf;
use std::sync::Arc;

use burn::optim::GradientsParams;
use burn::tensor::{Int, Tensor, TensorData};
use safetensors::SafeTensors;
use wgpt::config::GptConfig;
use wgpt::weights::ModelWeights;
use wgpt::{CpuSession, ForwardOptions};
use wgpt_train::model::optim::{AdamW, AdamWConfig, named_grads, param_ids};
use wgpt_train::model::{Gpt, Precision};

type Cpu = burn::backend::Flex;
type Train = burn::backend::Autodiff<Cpu>;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hf")
}

fn read_json(path: PathBuf) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn f32s(file: &SafeTensors, name: &str) -> Vec<f32> {
    let v = file.tensor(name).unwrap_or_else(|_| panic!("fixture tensor {name}"));
    v.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// max |a − b| / max(1, max |b|): absolute for small values, relative for large.
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1.0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max) / scale
}

fn ids_tensor<B: burn::tensor::backend::Backend>(
    ids: &[u32],
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    let n = ids.len() - 1;
    let x: Vec<i32> = ids[..n].iter().map(|&i| i as i32).collect();
    let y: Vec<i32> = ids[1..].iter().map(|&i| i as i32).collect();
    (Tensor::from_data(TensorData::new(x, [1, n]), device), Tensor::from_data(TensorData::new(y, [1, n]), device))
}

fn case_ids(case: &serde_json::Value) -> Vec<u32> {
    case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect()
}

const HF_FIXTURES: [&str; 3] = ["tiny-f32", "gpt2vocab-f16", "tiny-bf16-untied"];

#[test]
fn loss_and_logits_match_hf() {
    let device = Default::default();
    for name in HF_FIXTURES {
        let bundle = wgpt::bundle::Bundle::load(&fixtures().join(name)).unwrap();
        let model = Gpt::<Cpu>::from_weights(&bundle.config, &bundle.weights, &device);
        let expected = read_json(fixtures().join(format!("{name}.expected.json")));
        let bytes = std::fs::read(fixtures().join(format!("{name}.expected.safetensors"))).unwrap();
        let tensors = SafeTensors::deserialize(&bytes).unwrap();
        for (i, case) in expected["cases"].as_array().unwrap().iter().enumerate() {
            let ids = case_ids(case);
            let all: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
            let logits = model.forward(Tensor::from_data(TensorData::new(all, [1, ids.len()]), &device));
            let logits = logits.into_data().to_vec::<f32>().unwrap();
            let err = rel_err(&logits, &f32s(&tensors, &format!("case{i}.logits")));
            assert!(err < 1e-4, "{name} case {i}: logits differ from HF by {err}");
            if ids.len() >= 2 {
                let (x, y) = ids_tensor::<Cpu>(&ids, &device);
                let loss: f32 = model.loss(x, y, None).into_scalar();
                let want = case["loss"].as_f64().unwrap() as f32;
                assert!((loss - want).abs() < 1e-4 * want.abs().max(1.0), "{name} case {i}: loss {loss} vs HF {want}");
            }
        }
    }
}

/// PyTorch's gradients for `step` (1-based) as burn gradients of `model`'s parameters.
fn fixture_grads(model: &Gpt<Train>, file: &SafeTensors, step: usize) -> GradientsParams {
    let device = Default::default();
    let mut grads = GradientsParams::new();
    for (name, id) in param_ids(model) {
        let view = file.tensor(&format!("grad{step}.{name}")).unwrap();
        let data = f32s(file, &format!("grad{step}.{name}"));
        match view.shape() {
            [n] => grads.register::<Cpu, 1>(id, Tensor::from_data(TensorData::new(data, [*n]), &device)),
            [r, c] => grads.register::<Cpu, 2>(id, Tensor::from_data(TensorData::new(data, [*r, *c]), &device)),
            s => panic!("{name}: rank {}", s.len()),
        }
    }
    grads
}

/// A fixture bundle, its `.train.json` record and its `.train.safetensors` bytes.
fn train_fixture(name: &str) -> (wgpt::Bundle, serde_json::Value, Vec<u8>) {
    let bundle = wgpt::bundle::Bundle::load(&fixtures().join(name)).unwrap();
    let record = read_json(fixtures().join(format!("{name}.train.json")));
    let bytes = std::fs::read(fixtures().join(format!("{name}.train.safetensors"))).unwrap();
    (bundle, record, bytes)
}

#[test]
fn gradients_match_pytorch() {
    let device = Default::default();
    for name in ["tiny-f32", "tiny-bf16-untied"] {
        let (bundle, record, bytes) = train_fixture(name);
        let want = SafeTensors::deserialize(&bytes).unwrap();
        let cases = read_json(fixtures().join(format!("{name}.expected.json")))["cases"].as_array().unwrap().clone();
        let model = Gpt::<Train>::from_weights(&bundle.config, &bundle.weights, &device);
        let rec = &record["steps"][0];
        let ids = case_ids(&cases[rec["case"].as_u64().unwrap() as usize]);
        let (x, y) = ids_tensor::<Train>(&ids, &device);
        let loss = model.loss(x, y, None);
        let got_loss: f32 = loss.clone().into_scalar();
        assert!((got_loss as f64 - rec["loss"].as_f64().unwrap()).abs() < 1e-4);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let got = named_grads(&model, &grads);
        assert_eq!(got.len(), bundle.weights.named().len(), "{name}: every parameter has a gradient");
        let mut worst = 0.0f32;
        for (param, g) in &got {
            let err = rel_err(g, &f32s(&want, &format!("grad1.{param}")));
            assert!(err < 1e-4, "{name}: gradient of {param} differs from PyTorch by {err}");
            worst = worst.max(err);
        }
        eprintln!("{name}: {} gradients, worst relative error {worst:.2e}", got.len());
    }
}

/// Mixed precision (every matmul's operands rounded to bf16, the rest f32): the loss and the
/// gradients stay within bf16's round-off of PyTorch's f32 ones, and the gradients are further
/// from them than the f32 path's 1e-4, so the casts really happen.
#[test]
fn bf16_mixed_precision_stays_near_pytorch_f32() {
    let device = Default::default();
    let (bundle, record, bytes) = train_fixture("tiny-f32");
    let want = SafeTensors::deserialize(&bytes).unwrap();
    let cases = read_json(fixtures().join("tiny-f32.expected.json"))["cases"].as_array().unwrap().clone();
    let model = Gpt::<Train>::from_weights(&bundle.config, &bundle.weights, &device).with_precision(Precision::Bf16);
    let rec = &record["steps"][0];
    let (x, y) = ids_tensor::<Train>(&case_ids(&cases[rec["case"].as_u64().unwrap() as usize]), &device);
    let loss = model.loss(x, y, None);
    let got_loss: f32 = loss.clone().into_scalar();
    let loss_err = (got_loss as f64 - rec["loss"].as_f64().unwrap()).abs();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let got = named_grads(&model, &grads);
    assert_eq!(got.len(), bundle.weights.named().len(), "every parameter has a gradient");
    let worst = got.iter().map(|(param, g)| rel_err(g, &f32s(&want, &format!("grad1.{param}")))).fold(0.0f32, f32::max);
    eprintln!("bf16: loss error {loss_err:.2e}, worst gradient error {worst:.2e}");
    assert!(loss_err < 3e-2, "bf16 loss {got_loss} is {loss_err} from PyTorch's f32 loss");
    assert!(worst < 5e-2, "a bf16 gradient differs from PyTorch's f32 one by {worst}");
    assert!(worst > 1e-4, "bf16 gradients within f32 round-off ({worst}): were the operands cast?");
}

/// Two AdamW steps fed PyTorch's own gradients: the update rule, parameter groups, clipping and
/// bias correction, isolated from gradient round-off (which AdamW amplifies where a gradient is
/// pure noise, e.g. the key bias, whose true gradient is 0).
#[test]
fn adamw_steps_match_pytorch() {
    let device = Default::default();
    for name in ["tiny-f32", "tiny-bf16-untied"] {
        let (bundle, record, bytes) = train_fixture(name);
        let want = SafeTensors::deserialize(&bytes).unwrap();
        let h = &record["hyper"];
        let mut opt = AdamW::<Cpu>::new(AdamWConfig {
            beta1: h["beta1"].as_f64().unwrap(),
            beta2: h["beta2"].as_f64().unwrap(),
            eps: h["eps"].as_f64().unwrap(),
            weight_decay: h["weight_decay"].as_f64().unwrap(),
            grad_clip: h["grad_clip"].as_f64().unwrap(),
        });
        let lr = h["lr"].as_f64().unwrap();
        let mut model = Gpt::<Train>::from_weights(&bundle.config, &bundle.weights, &device);
        for (step, rec) in record["steps"].as_array().unwrap().iter().enumerate() {
            let grads = fixture_grads(&model, &want, step + 1);
            let (next, norm) = opt.step(lr, model, grads);
            model = next;
            let want_norm = rec["grad_norm"].as_f64().unwrap();
            assert!((norm - want_norm).abs() < 1e-5 * want_norm, "{name} step {step}: grad norm {norm} vs {want_norm}");
            let weights = model.to_weights();
            let mut worst = 0.0f32;
            for (param, t) in weights.named() {
                let err = rel_err(&t.data, &f32s(&want, &format!("step{}.{param}", step + 1)));
                worst = worst.max(err);
                assert!(err < 1e-6, "{name} step {}: {param} differs from PyTorch's AdamW by {err}", step + 1);
            }
            eprintln!("{name}: AdamW step {}, worst parameter error {worst:.2e}", step + 1);
        }
    }
}

fn config(pre: bool, tied: bool) -> GptConfig {
    let json = format!(
        r#"{{"vocab_size":97,"n_positions":24,"n_embd":24,"n_layer":2,"n_head":3,"tie_word_embeddings":{tied},"layer_norm_position":"{}"}}"#,
        if pre { "pre" } else { "post" }
    );
    GptConfig::from_json(json.as_bytes()).unwrap()
}

#[test]
fn logits_match_the_cpu_reference() {
    let device = Default::default();
    for (pre, tied) in [(true, true), (false, true), (true, false), (false, false)] {
        let config = config(pre, tied);
        let weights = ModelWeights::random(&config, 5);
        let ids: Vec<u32> = (0..17).map(|i| (i * 31 + 7) % 97).collect();
        let mut session = CpuSession::new(config.clone(), Arc::new(weights.clone()));
        let want = session.run(&ids, ForwardOptions { all_logits: true, ..Default::default() }).unwrap().logits.clone();
        let model = Gpt::<Cpu>::from_weights(&config, &weights, &device);
        let x: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
        let got = model
            .forward(Tensor::from_data(TensorData::new(x, [1, ids.len()]), &device))
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let err = rel_err(&got, &want);
        assert!(err < 1e-4, "pre-LN {pre}, tied {tied}: burn vs CPU reference {err}");
    }
}

#[test]
fn weights_round_trip_through_the_model() {
    let config = config(true, false);
    let weights = ModelWeights::random(&config, 9);
    let model = Gpt::<Cpu>::from_weights(&config, &weights, &Default::default());
    let back = model.to_weights();
    for ((a, x), (b, y)) in weights.named().into_iter().zip(back.named()) {
        assert_eq!(a, b);
        assert_eq!(x, y, "{a} changed on the way through burn");
    }
}
