//! `wgpt download` and `--model ORG/NAME` against a local server in the hub's URL layout
//! (tests/common/hub_server.rs: redirects with the hub's size and checksum headers, ranges, faults).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::hub_server::{HubServer, serve};
use common::llama_dir;

const ID: &str = "test-org/chat-llama";

fn wgpt(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgpt")).env("WGPT_CACHE", cache).args(args).output().unwrap()
}

fn download(cache: &Path, hub: &HubServer) -> Output {
    wgpt(cache, &["download", ID, "--hub", &hub.base])
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn model_dir(cache: &Path) -> PathBuf {
    cache.join("test-org").join("chat-llama").join("main")
}

fn same_files(dir: &Path) {
    for entry in std::fs::read_dir(llama_dir().join("chat-llama")).unwrap() {
        let src = entry.unwrap().path();
        let got = std::fs::read(dir.join(src.file_name().unwrap())).unwrap();
        assert_eq!(got, std::fs::read(&src).unwrap(), "{}", src.display());
    }
    let parts: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "part"))
        .collect();
    assert!(parts.is_empty(), "partial files left: {parts:?}");
}

#[test]
fn a_downloaded_model_works_in_every_command_by_its_id() {
    let hub = serve(&llama_dir().join("chat-llama"), ID);
    let cache = tempfile::tempdir().unwrap();
    let out = download(cache.path(), &hub);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = model_dir(cache.path());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), dir.display().to_string());
    same_files(&dir);
    // The weights came through the hub's redirect, with its checksum.
    let log = hub.log.lock().unwrap().join("\n");
    assert!(log.contains("GET /cdn/model-00001-of-00002.safetensors"), "{log}");
    // Again: nothing is fetched twice.
    let before = hub.log.lock().unwrap().len();
    assert!(download(cache.path(), &hub).status.success());
    assert!(!hub.log.lock().unwrap()[before..].iter().any(|l| l.contains(".safetensors")));

    let inspect = wgpt(cache.path(), &["inspect", "--model", ID, "--json"]);
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgpt"))
        .env("WGPT_CACHE", cache.path())
        .args(["chat", "--model", ID, "--temperature", "0", "--max-tokens", "8"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.as_mut().unwrap(), "What is the capital of France?").unwrap();
    let out = child.wait_with_output().unwrap();
    let want: serde_json::Value =
        serde_json::from_slice(&std::fs::read(llama_dir().join("chat-llama.expected.json")).unwrap()).unwrap();
    let reply = want["cases"][0]["reply"].as_str().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(reply), "{}", stderr(&out));
}

#[test]
fn a_broken_download_resumes_and_a_bad_checksum_is_refused() {
    let hub = serve(&llama_dir().join("chat-llama"), ID);
    let cache = tempfile::tempdir().unwrap();
    let shard = "model-00002-of-00002.safetensors";
    hub.faults.lock().unwrap().cut = Some((shard.into(), 40_000));
    let out = download(cache.path(), &hub);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("broke off") && !stderr(&out).contains("panicked"), "{}", stderr(&out));
    let dir = model_dir(cache.path());
    assert!(!dir.join(shard).exists(), "a partial file was taken for the shard");
    assert_eq!(std::fs::metadata(dir.join(format!("{shard}.part"))).unwrap().len(), 40_000);
    assert!(
        wgpt(cache.path(), &["inspect", "--model", ID])
            .stderr
            .starts_with(b"error: test-org/chat-llama: no such folder, and not downloaded")
    );
    // The next run asks for the rest only.
    let out = download(cache.path(), &hub);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(hub.log.lock().unwrap().iter().any(|l| l.contains(&format!("/cdn/{shard} Some(40000)"))));
    same_files(&dir);

    // A file whose bytes do not match the hub's SHA-256 is deleted, not kept.
    let cache = tempfile::tempdir().unwrap();
    hub.faults.lock().unwrap().wrong_sha = Some(shard.into());
    let out = download(cache.path(), &hub);
    assert!(stderr(&out).contains("SHA-256"), "{}", stderr(&out));
    let dir = model_dir(cache.path());
    assert!(!dir.join(shard).exists() && !dir.join(format!("{shard}.part")).exists());
}

#[test]
fn hub_errors_are_clear() {
    let hub = serve(&llama_dir().join("chat-llama"), ID);
    let cache = tempfile::tempdir().unwrap();
    hub.faults.lock().unwrap().error_500 = Some("tokenizer.json".into());
    let out = download(cache.path(), &hub);
    assert!(stderr(&out).contains("HTTP 500"), "{}", stderr(&out));
    let missing = wgpt(cache.path(), &["download", "test-org/nothing-here", "--hub", &hub.base]);
    assert!(stderr(&missing).contains("not found"), "{}", stderr(&missing));
    for bad in ["../etc", "a/b/c", "no-slash", "a/.git"] {
        let out = wgpt(cache.path(), &["download", bad, "--hub", &hub.base]);
        assert!(stderr(&out).contains("not a model id"), "{bad}: {}", stderr(&out));
    }
    let out = wgpt(cache.path(), &["generate", "--model", "test-org/never-downloaded", "--prompt", "x"]);
    assert!(stderr(&out).contains("not downloaded yet (wgpt download test-org/never-downloaded)"), "{}", stderr(&out));
}
