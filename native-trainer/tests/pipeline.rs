//! The trainer end to end through its binary: prepare → pretrain → export → the bundle in the
//! inference engine; kill and resume; clear errors (never a panic) on bad input.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use wgpt::generate::{GenerateParams, generate, next_token_loss};
use wgpt::{CpuSession, ForwardOptions};

#[test]
fn pretrain_export_and_run_in_the_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let data = prepared(tmp.path());
    let meta: Value = serde_json::from_slice(&std::fs::read(data.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["sources"].as_array().unwrap().len(), 4);
    assert!(meta["val_tokens"].as_u64().unwrap() > 1000);

    let run = tmp.path().join("run");
    let mut args = vec![
        "pretrain",
        "--data",
        s(&data),
        "--out",
        s(&run),
        "--steps",
        "300",
        "--eval-every",
        "100",
        "--ckpt-every",
        "100",
    ];
    args.extend(NANO);
    let summary: Value = serde_json::from_str(&ok(&args)).unwrap();
    let metrics: Vec<Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(metrics.len(), 300);
    let val: Vec<f64> = metrics.iter().filter_map(|m| m["val_loss"].as_f64()).collect();
    assert_eq!(val.len(), 3);
    // From ln(512) ≈ 6.24 at init; a bigram model of this text is far below.
    assert!(val[2] < 5.0 && val[2] < val[0], "validation loss did not fall: {val:?}");
    assert!(summary["last_loss"].as_f64().unwrap() < summary["first_loss"].as_f64().unwrap() - 1.0);
    ok(&["plot", "--run", s(&run)]);
    assert!(read(run.join("loss.png")).starts_with(b"\x89PNG"), "plot wrote no PNG");

    for dtype in ["f32", "f16"] {
        let bundle = tmp.path().join(format!("bundle-{dtype}"));
        ok(&["export", "--checkpoint", s(&run), "--out", s(&bundle), "--dtype", dtype]);
        let b = wgpt::bundle::Bundle::load(&bundle).unwrap();
        // The engine's loss (what `wgpt logits` computes) agrees with the trainer's `loss`.
        let ids = b.tokenizer.encode("And God said, Let there be light: and there was light.").unwrap();
        let mut session = CpuSession::new(b.config.clone(), b.weights.clone());
        let logits =
            session.run(&ids, ForwardOptions { all_logits: true, ..Default::default() }).unwrap().logits.clone();
        let engine_loss = next_token_loss(&logits, &ids).unwrap();
        let ids_arg = ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let out: Value =
            serde_json::from_str(&ok(&["loss", "--model", s(&bundle), "--ids", &ids_arg, "--json"])).unwrap();
        let trainer_loss = out["loss"].as_f64().unwrap() as f32;
        assert!((engine_loss - trainer_loss).abs() < 1e-4, "{dtype}: engine {engine_loss} vs trainer {trainer_loss}");
        // And it writes text.
        session.reset();
        let prompt = b.tokenizer.encode("And").unwrap();
        let generation =
            generate(&mut session, &b.tokenizer, &prompt, &GenerateParams::new(&b.config, 20), |_| true).unwrap();
        assert!(!generation.ids.is_empty() && !generation.text.trim().is_empty(), "{dtype}: no text generated");
    }
    // A checkpoint is itself a bundle.
    let newest = run.join("ckpt-000300");
    wgpt::bundle::Bundle::load(&newest).unwrap();
    let kept: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("ckpt-"))
        .collect();
    assert_eq!(kept.len(), 3, "keeps the last 3 checkpoints");
}

/// `--precision bf16` (mixed precision) trains: the loss falls as in f32, and the run differs
/// from the same run in f32, so the flag reached the model (its numerics are checked against
/// PyTorch in `parity.rs`).
#[test]
fn pretrain_in_bf16_mixed_precision_learns() {
    let tmp = tempfile::tempdir().unwrap();
    let data = prepared(tmp.path());
    let last_loss = |precision: &str| {
        let run = tmp.path().join(precision);
        let mut args = vec!["pretrain", "--data", s(&data), "--out", s(&run), "--steps", "150"];
        args.extend(["--precision", precision, "--eval-every", "150", "--ckpt-every", "150"]);
        args.extend(NANO);
        let summary: Value = serde_json::from_str(&ok(&args)).unwrap();
        let (first, last) = (summary["first_loss"].as_f64().unwrap(), summary["last_loss"].as_f64().unwrap());
        assert!(last < first - 1.0, "{precision}: the loss did not fall: {first} → {last}");
        last
    };
    let (bf16, f32) = (last_loss("bf16"), last_loss("f32"));
    assert!((bf16 - f32).abs() > 1e-6, "bf16 ended exactly where f32 did ({bf16}): no bf16 round-off");
    assert!((bf16 - f32).abs() < 0.2, "bf16 ended far from f32: {bf16} against {f32}");
    assert!(fails(&["bench", "--preset", "nano", "--precision", "f8"]).contains("f8"));
}

#[test]
fn a_killed_run_resumes_to_the_same_parameters() {
    let tmp = tempfile::tempdir().unwrap();
    let data = prepared(tmp.path());
    let base = |out: &Path| {
        let mut a: Vec<String> = [
            "pretrain",
            "--data",
            s(&data),
            "--out",
            s(out),
            "--steps",
            "60",
            "--eval-every",
            "20",
            "--ckpt-every",
            "5",
            "--keep",
            "2",
        ]
        .map(String::from)
        .to_vec();
        a.extend(NANO.map(String::from));
        a
    };
    let unbroken = tmp.path().join("unbroken");
    let status = Command::new(env!("CARGO_BIN_EXE_wgpt-train"))
        .args(base(&unbroken))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    // Kill -9 as soon as the first checkpoint lands, mid-run.
    let broken = tmp.path().join("broken");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgpt-train"))
        .args(base(&broken))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !broken.join("ckpt-000005").exists() {
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!broken.join("ckpt-000060").exists(), "the run finished before it could be killed");
    // Whatever the kill interrupted, every checkpoint folder present is complete.
    for e in std::fs::read_dir(&broken).unwrap() {
        let path = e.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("ckpt-") {
            for f in ["config.json", "model.safetensors", "tokenizer.json", "optim.safetensors", "state.json"] {
                assert!(path.join(f).is_file(), "{} lacks {f}", path.display());
            }
            wgpt::bundle::Bundle::load(&path).unwrap();
        }
    }
    // A save killed half-way leaves only a hidden temporary folder, which resume ignores.
    std::fs::create_dir_all(broken.join(".ckpt-000099.tmp-1")).unwrap();
    std::fs::write(broken.join(".ckpt-000099.tmp-1/model.safetensors"), b"half").unwrap();

    let mut resume = base(&broken);
    resume.push("--resume".into());
    let out = Command::new(env!("CARGO_BIN_EXE_wgpt-train")).args(&resume).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("resuming from"), "{stderr}");
    assert!(!broken.join(".ckpt-000099.tmp-1").exists());

    for f in ["model.safetensors", "optim.safetensors"] {
        let a = read(unbroken.join("ckpt-000060").join(f));
        let b = read(broken.join("ckpt-000060").join(f));
        assert!(a == b, "{f} differs between the unbroken and the resumed run");
    }
    // The metrics file holds each step once.
    let steps: Vec<u64> = std::fs::read_to_string(broken.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=60).collect::<Vec<_>>());
}

/// `--devices N` shares a step's micro-batches among N replicas (on the CPU backend they share
/// the one CPU, the same code path a multi-GPU run takes) and sums their gradients in micro-batch
/// order: the update is bit for bit the one-device update, and a run resumes on another count.
#[test]
fn data_parallel_devices_give_the_one_device_update() {
    let tmp = tempfile::tempdir().unwrap();
    let data = prepared(tmp.path());
    let run = |out: &Path, devices: &str, resume: bool| {
        let mut a = vec!["pretrain", "--data", s(&data), "--out", s(out), "--steps", "20", "--accum", "4"];
        a.extend(["--devices", devices, "--eval-every", "10", "--ckpt-every", "10", "--keep", "2"]);
        a.extend(NANO);
        if resume {
            a.push("--resume");
        }
        serde_json::from_str::<Value>(&ok(&a)).unwrap()
    };
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    let (a, b) = (run(&one, "1", false), run(&two, "2", false));
    assert!(a["last_loss"].as_f64().unwrap() < a["first_loss"].as_f64().unwrap() - 0.5, "{a}");
    for k in ["first_loss", "last_loss", "val_loss"] {
        assert_eq!(a[k], b[k], "{k}");
    }
    for f in ["model.safetensors", "optim.safetensors"] {
        assert!(read(one.join("ckpt-000020").join(f)) == read(two.join("ckpt-000020").join(f)), "{f} differs");
    }
    // Stopped after step 10 on one device, resumed on four: the same parameters again.
    let moved = tmp.path().join("moved");
    run(&moved, "1", false);
    std::fs::remove_dir_all(moved.join("ckpt-000020")).unwrap();
    run(&moved, "4", true);
    assert!(read(one.join("ckpt-000020/model.safetensors")) == read(moved.join("ckpt-000020/model.safetensors")));
    // Every device must get the same share.
    let x = tmp.path().join("x");
    let mut a = vec!["pretrain", "--data", s(&data), "--out", s(&x), "--accum", "4"];
    a.extend(NANO);
    assert!(fails(&[a.as_slice(), &["--devices", "3"]].concat()).contains("multiple of --devices 3"));
    assert!(fails(&[a.as_slice(), &["--devices", "0"]].concat()).contains("at least 1"));
}

#[test]
fn bad_input_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let out = t.join("out");

    let empty = t.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(fails(&["prepare", "--corpus", s(&empty), "--out", s(&out)]).contains("no .txt files"));
    std::fs::write(empty.join("a.txt"), "  \n\n \n").unwrap();
    assert!(fails(&["prepare", "--corpus", s(&empty), "--out", s(&out)]).contains("no text"));

    let binary = t.join("binary");
    std::fs::create_dir_all(&binary).unwrap();
    std::fs::write(binary.join("a.txt"), b"fine text \xff\xfe then junk").unwrap();
    assert!(
        fails(&["prepare", "--corpus", s(&binary), "--out", s(&out)])
            .contains("not UTF-8 text (invalid byte at offset 10)")
    );
    assert!(fails(&["prepare", "--corpus", s(&t.join("missing")), "--out", s(&out)]).contains("missing"));
    assert!(fails(&["prepare", "--out", s(&out), "--vocab-size", "10"]).contains("vocab size"));

    assert!(fails(&["pretrain", "--data", s(&t.join("missing")), "--out", s(&out)]).contains("meta.json"));

    let data = prepared(t);
    let run = t.join("run");
    let args = |steps: &'static str, extra: &[&'static str]| {
        let mut a = vec![
            "pretrain".to_string(),
            "--data".into(),
            s(&data).into(),
            "--out".into(),
            s(&run).into(),
            "--steps".into(),
            steps.into(),
        ];
        a.extend(["--ckpt-every", "2"].iter().chain(NANO.iter()).chain(extra).map(|x| x.to_string()));
        a
    };
    ok(&strs(&args("4", &[])));
    // Same folder again without --resume, a resume with another model shape, with other settings.
    assert!(fails(&strs(&args("4", &[]))).contains("--resume"));
    assert!(fails(&strs(&args("8", &["--resume", "--n-embd", "64"]))).contains("differs"));
    assert!(fails(&strs(&args("8", &["--resume", "--seed", "2"]))).contains("other settings"));
    assert!(fails(&strs(&args("4", &["--resume"]))).contains("raise --steps"));
    // A model that cannot fit in memory.
    let (huge_out, init_out, init_from) = (t.join("huge"), t.join("init"), run.join("ckpt-000004"));
    let huge = [
        "pretrain",
        "--data",
        s(&data),
        "--out",
        s(&huge_out),
        "--preset",
        "gpt2-355m",
        "--batch",
        "4096",
        "--steps",
        "1",
    ];
    assert!(fails(&huge).contains("GiB"));
    // Starting from weights of another shape.
    let mut init = vec!["pretrain", "--data", s(&data), "--out", s(&init_out), "--init-from", s(&init_from)];
    init.extend(NANO);
    init.extend(["--n-layer", "3"]);
    assert!(fails(&init).contains("differs"));
    // Exports and losses of things that are not models.
    assert!(fails(&["export", "--checkpoint", s(&data), "--out", s(&t.join("b"))]).contains("neither a checkpoint"));
    assert!(fails(&["loss", "--model", s(&run.join("ckpt-000004")), "--ids", "1,x"]).contains("not a token id"));
    assert!(fails(&["loss", "--model", s(&run.join("ckpt-000004")), "--ids", "1,99999"]).contains("vocab_size"));
    assert!(
        fails(&["pretrain", "--data", s(&data), "--out", s(&t.join("p")), "--preset", "enormous"])
            .contains("unknown preset")
    );
    assert!(fails(&["bench", "--preset", "nano", "--batch", "0"]).contains("at least 1"));
    assert!(fails(&["bench", "--preset", "nano", "--n-head", "3"]).contains("model flags: `n_head`"));
    let backend = fails(&["pretrain", "--data", s(&data), "--out", s(&t.join("c")), "--backend", "cuda"]);
    assert!(backend.contains("cuda"), "{backend}");
}
