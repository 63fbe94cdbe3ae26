//! Each stage of the story through the trainer's binary, in the article's order, over one shared
//! prepared run: prepare (with task episodes) → pretrain → finetune + the k-shot eval → SFT + the
//! chat eval → reward model → PPO. A stage's test runs the stages before it once (`OnceLock`),
//! whichever test asks first; each asserts only its own stage.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;
use serde_json::Value;

/// The shared run's folder (under cargo's per-target temporary folder), fresh for each test run.
fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("stages-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// The shipped corpus with 25 % task episodes, a 512-token vocabulary.
fn data() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        let data = root().join("data");
        ok(&["prepare", "--out", s(&data), "--vocab-size", "512", "--episodes", "0.25"]);
        data
    })
}

/// A nano model pre-trained 20 steps on [`data`].
fn pretrained() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let run = root().join("run");
        let mut args = vec!["pretrain", "--data", s(data()), "--out", s(&run), "--steps", "20", "--ckpt-every", "10"];
        args.extend(NANO);
        ok(&args);
        run
    })
}

/// The SFT run on [`pretrained`], with its summary line.
fn sft() -> &'static (PathBuf, Value) {
    static SFT: OnceLock<(PathBuf, Value)> = OnceLock::new();
    SFT.get_or_init(|| {
        let sft = root().join("sft");
        let out = ok(&[
            "sft",
            "--init-from",
            s(pretrained()),
            "--out",
            s(&sft),
            "--steps",
            "20",
            "--lr",
            "1e-2",
            "--warmup",
            "5",
            "--eval-batches",
            "2",
        ]);
        (sft, serde_json::from_str(out.trim()).unwrap())
    })
}

/// The reward model trained from [`sft`] (`extra` flags appended), with its summary line.
fn reward(out: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["reward", "--init-from", s(&sft().0), "--out", s(out), "--steps", "20", "--batch", "4"];
    args.extend(["--accum", "2", "--warmup", "5", "--eval-batches", "2"]);
    args.extend(extra);
    serde_json::from_str(ok(&args).trim()).unwrap()
}

fn reward_model() -> &'static (PathBuf, Value) {
    static RM: OnceLock<(PathBuf, Value)> = OnceLock::new();
    RM.get_or_init(|| {
        let rm = root().join("rm");
        let summary = reward(&rm, &[]);
        (rm, summary)
    })
}

fn report() -> PathBuf {
    root().join("report")
}

#[test]
fn prepare_mixes_in_episodes_and_repeats_the_natural_text() {
    let data = data();
    let meta: Value = serde_json::from_slice(&std::fs::read(data.join("meta.json")).unwrap()).unwrap();
    let sources = meta["sources"].as_array().unwrap();
    let episodes = sources.iter().find(|s| s["file"].as_str().unwrap().starts_with("task-suite episodes")).unwrap();
    let bytes = |s: &Value| s["bytes"].as_f64().unwrap();
    let share = bytes(episodes) / sources.iter().map(bytes).sum::<f64>();
    assert!((0.24..0.27).contains(&share), "episodes are {share} of the bytes");
    assert!(episodes["val_tokens"].as_u64().unwrap() > 0);

    // Two passes of the natural text: its training tokens exactly double, the episodes fill the
    // same share of the larger whole (so about twice as many), validation is unchanged.
    let twice = root().join("twice");
    let tokenizer = data.join("tokenizer.json");
    ok(&["prepare", "--out", s(&twice), "--tokenizer", s(&tokenizer), "--episodes", "0.25", "--natural-passes", "2"]);
    let meta2: Value = serde_json::from_slice(&std::fs::read(twice.join("meta.json")).unwrap()).unwrap();
    let count = |s: &Value, k: &str| s[k].as_u64().unwrap() as f64;
    for (one, two) in sources.iter().zip(meta2["sources"].as_array().unwrap()) {
        assert_eq!(one["val_tokens"], two["val_tokens"]);
        let ratio = count(two, "train_tokens") / count(one, "train_tokens");
        if one == episodes {
            assert!((1.9..2.1).contains(&ratio), "episodes grew {ratio}×");
            assert_eq!(two["passes"], 1);
        } else {
            assert_eq!(one["file"], two["file"]);
            assert_eq!(ratio, 2.0, "{}", one["file"]);
            assert_eq!(two["passes"], 2);
        }
    }
    let first = read(data.join("train.bin"));
    let doubled = read(twice.join("train.bin"));
    let n = 2 * count(&sources[0], "train_tokens") as usize;
    assert_eq!(doubled[..n], first[..n]);
    assert_eq!(doubled[n..2 * n], first[..n], "the second pass repeats the first source");

    assert!(fails(&["prepare", "--out", s(data), "--episodes", "1.5"]).contains("--episodes"));
    assert!(fails(&["prepare", "--out", s(data), "--natural-passes", "0"]).contains("--natural-passes"));
    assert!(fails(&["prepare", "--out", s(data), "--natural-passes", "1000000"]).contains("1..=100"));
}

#[test]
fn finetune_learns_a_task_and_eval_writes_the_k_shot_report() {
    let run = pretrained();
    let ft = root().join("ft");
    let out = ok(&[
        "finetune",
        "--init-from",
        s(run),
        "--task",
        "copy",
        "--out",
        s(&ft),
        "--steps",
        "30",
        "--lr",
        "1e-2",
        "--warmup",
        "5",
        "--eval-every",
        "10",
        "--eval-batches",
        "2",
    ]);
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(summary["last_loss"].as_f64().unwrap() < summary["first_loss"].as_f64().unwrap());
    let state: Value = serde_json::from_slice(&read(ft.join("ckpt-000030/state.json"))).unwrap();
    assert_eq!(state["run"]["task"], "copy");

    let report = root().join("icl-report");
    let md = ok(&[
        "eval",
        "--model",
        &format!("base={}", s(run)),
        "--model",
        &format!("ft={}", s(&ft)),
        "--k",
        "0,2",
        "--episodes",
        "4",
        "--out",
        s(&report),
        "--curve",
        s(run),
    ]);
    assert!(md.contains("| base + desc · lookup |") && md.contains("| ft | "));
    let json: Value = serde_json::from_slice(&read(report.join("icl.json"))).unwrap();
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2 * 10 * 2 * 2);
    assert!(cells.iter().all(|c| c["total"] == 4 && (0.0..=1.0).contains(&c["accuracy"].as_f64().unwrap())));
    let curve: Value = serde_json::from_slice(&read(report.join("icl-curve.json"))).unwrap();
    assert_eq!(curve.as_array().unwrap().len(), 2);
    for png in ["icl.png", "icl-curve.png"] {
        assert!(read(report.join(png)).starts_with(b"\x89PNG"), "{png}");
    }

    assert!(fails(&["eval", "--model", s(run), "--out", s(&report), "--tasks", "juggle"]).contains("unknown task"));
    assert!(fails(&["eval", "--model", s(run), "--out", s(&report), "--k", "1,x"]).contains("--k"));
    assert!(fails(&["finetune", "--init-from", s(data()), "--task", "copy", "--out", s(&ft)]).contains("checkpoint"));
}

#[test]
fn sft_learns_and_the_chat_eval_scores_it() {
    let (sft, summary) = sft();
    assert!(summary["last_loss"].as_f64().unwrap() < summary["first_loss"].as_f64().unwrap());
    let report = root().join("chat-report");
    let chat =
        ok(&["eval", "--suite", "chat", "--model", &format!("sft={}", s(sft)), "--episodes", "4", "--out", s(&report)]);
    assert!(chat.contains("| sft |") && chat.contains("article zh"));
    let json: Value = serde_json::from_slice(&read(report.join("chat.json"))).unwrap();
    assert_eq!(json["cells"].as_array().unwrap().len(), 8);

    // A model whose tokenizer has no chat tokens (HF GPT-2's) cannot be SFT'd or chat-evaluated.
    let gpt2 = root().join("gpt2");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/hf/tiny-f32");
    ok(&["import", "--model", fixture, "--out", s(&gpt2)]);
    assert!(fails(&["sft", "--init-from", s(&gpt2), "--out", s(&root().join("x"))]).contains("<|im_start|>"));
    assert!(fails(&["eval", "--suite", "chat", "--model", s(&gpt2), "--out", s(&report)]).contains("<|im_start|>"));
}

#[test]
fn the_reward_model_learns_to_rank_and_trains_the_same_on_two_devices() {
    // The reward model starts at ln 2 (a zero head ranks nothing) and reports its held-out pair
    // accuracy.
    let (rm, summary) = reward_model();
    assert!((summary["first_loss"].as_f64().unwrap() - 2f64.ln()).abs() < 1e-5, "{summary}");
    assert!(summary["last_loss"].as_f64().unwrap() < 2f64.ln());
    assert!((0.0..=1.0).contains(&summary["val_pair_accuracy"].as_f64().unwrap()));
    // The ranking loss through the data-parallel path: two replicas, the same reward model.
    let rm2 = root().join("rm2");
    reward(&rm2, &["--devices", "2"]);
    let f = "ckpt-000020/model.safetensors";
    assert!(read(rm.join(f)) == read(rm2.join(f)), "the reward model differs on two devices");
}

#[test]
fn ppo_resumes_to_the_same_policy_and_critic_even_from_a_torn_save() {
    let (sft, rm) = (&sft().0, &reward_model().0);
    // PPO for a few iterations, killed-and-resumed equal to unbroken (rollouts are a function of
    // the seed and the iteration).
    let ppo = |out: &Path, steps: &str, resume: bool| {
        let mut a = vec![
            "ppo",
            "--sft",
            s(sft),
            "--reward-model",
            s(rm),
            "--out",
            s(out),
            "--steps",
            steps,
            "--batch",
            "4",
            "--lr",
            "1e-3",
            "--min-lr",
            "1e-3",
            "--warmup",
            "0",
            "--eval-every",
            "2",
            "--ckpt-every",
            "2",
            "--eval-prompts",
            "4",
            "--max-new",
            "8",
        ];
        if resume {
            a.push("--resume");
        }
        ok(&a)
    };
    let p2 = root().join("p2");
    let ppo_flags = ["--sft", s(sft), "--reward-model", s(rm), "--out", s(&p2), "--devices", "2"];
    assert!(fails(&[&["ppo"], ppo_flags.as_slice()].concat()).contains("one device"));
    let (whole, split) = (root().join("ppo"), root().join("ppo-split"));
    let out: Value = serde_json::from_str(ppo(&whole, "4", false).trim()).unwrap();
    assert!(out["val_reward"].as_f64().unwrap().is_finite());
    let metrics = String::from_utf8(read(whole.join("metrics.jsonl"))).unwrap();
    assert_eq!(metrics.lines().count(), 4);
    assert!(metrics.lines().all(|l| ["reward", "kl", "policy_loss", "value_loss"].iter().all(|k| l.contains(k))));
    assert!(read(whole.join("ppo.png")).starts_with(b"\x89PNG"));
    ppo(&split, "2", false);
    // A kill between the two saves of iteration 4 leaves one model a step ahead of the other:
    // the resume starts from iteration 2, which both hold.
    let killed = root().join("ppo-killed");
    copy_dir(&split, &killed);
    copy_dir(&whole.join("ckpt-000004"), &killed.join("ckpt-000004"));
    ppo(&split, "4", true);
    ppo(&killed, "4", true);
    for f in ["ckpt-000004/model.safetensors", "critic/ckpt-000004/model.safetensors"] {
        assert!(read(whole.join(f)) == read(split.join(f)), "{f} differs after a resume");
        assert!(read(whole.join(f)) == read(killed.join(f)), "{f} differs after a resume from a torn save");
    }
    wgpt::bundle::Bundle::load(&whole.join("ckpt-000004")).unwrap();
    let report = report();
    let chat = ok(&[
        "eval",
        "--suite",
        "chat",
        "--model",
        &format!("sft={}", s(sft)),
        "--model",
        &format!("ppo={}", s(&whole)),
        "--reward-model",
        s(rm),
        "--episodes",
        "2",
        "--out",
        s(&report),
    ]);
    assert!(chat.contains("| ppo | 8 |") && chat.contains("| sft | 8 |"), "{chat}");
    assert!(
        fails(&["ppo", "--sft", s(sft), "--reward-model", s(sft), "--out", s(&root().join("y"))])
            .contains("reward model")
    );
}
