//! What the trainer's end-to-end tests share: running the binary, reading its output, a prepared
//! corpus.
#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgpt-train")).args(args).output().unwrap()
}

pub fn ok(args: &[&str]) -> String {
    let out = train(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Must fail with a message, no panic; returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = train(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert!(stderr.contains("error: "), "{args:?}: {stderr}");
    stderr
}

pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The shipped corpus, prepared with a small vocabulary (shared by the tests of this file).
pub fn prepared(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    ok(&["prepare", "--out", s(&data), "--vocab-size", "512"]);
    data
}

pub const NANO: [&str; 12] =
    ["--preset", "nano", "--batch", "8", "--warmup", "10", "--lr", "1e-2", "--min-lr", "1e-3", "--eval-batches", "4"];

pub fn read(p: PathBuf) -> Vec<u8> {
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Copies a folder tree (a run, or one checkpoint of it).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
