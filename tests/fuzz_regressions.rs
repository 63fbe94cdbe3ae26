//! The fuzz targets' regression corpus, on stable Rust: every input `cargo xtask fuzz` ever
//! crashed on (kept under `tests/fuzz-regressions/<target>/`) and every seed (the fixtures), each
//! through its target's body (`fuzz/src/targets.rs`: no panic, and no allocation larger than
//! `allowed(len)` — claims checked before they size anything).
//!
//! With `WGPT_WRITE_SEEDS=DIR` it also writes the seeds to `DIR/<target>/` (`cargo xtask fuzz`
//! starts each target's corpus from them).
#![cfg(not(target_arch = "wasm32"))]

#[path = "../fuzz/src/targets.rs"]
mod targets;

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_seed_and_every_saved_crash_is_handled() {
    let seeds = targets::seeds(&root());
    let write = std::env::var_os("WGPT_WRITE_SEEDS").map(PathBuf::from);
    let mut ran = std::collections::BTreeMap::<&str, usize>::new();
    for (target, name, bytes) in &seeds {
        let run = targets::TARGETS.iter().find(|(t, _)| t == target).expect("a target").1;
        run(bytes);
        *ran.entry(target).or_default() += 1;
        if let Some(dir) = &write {
            let dir = dir.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    for (target, run) in targets::TARGETS {
        let dir = root().join("tests/fuzz-regressions").join(target);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            eprintln!("{target}: {}", path.display());
            run(&std::fs::read(&path).unwrap());
            *ran.entry(target).or_default() += 1;
        }
    }
    eprintln!("inputs per target: {ran:?}");
    for (target, _) in targets::TARGETS {
        assert!(ran.get(target).copied().unwrap_or(0) > 0, "no input for {target}");
    }
}

/// The guard itself: an allocation sized by a claim, not by the input, fails the target.
#[test]
#[should_panic(expected = "made an allocation of")]
fn an_allocation_beyond_the_input_fails_a_target() {
    fn claims_a_gigabyte(data: &[u8]) {
        let v: Vec<u8> = Vec::with_capacity(1 << 30);
        std::hint::black_box((v, data));
    }
    targets::bounded_for_tests(b"tiny", claims_a_gigabyte);
}
