//! The README's commands (cargo-xtask convention): `cargo xtask test` runs every test,
//! `cargo xtask serve` serves the page. Each installs what a fresh machine lacks, saying so.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Must equal the `wasm-bindgen` version pinned in Cargo.toml (and locked in Cargo.lock).
const WASM_BINDGEN_VERSION: &str = "0.2.130";
const WASM_TARGET: &str = "wasm32-unknown-unknown";

const USAGE: &str = "usage: cargo xtask <command>

commands:
  test     every test: format and lint checks, native tests, wasm tests in headless Chromium
  lint     cargo fmt --check and cargo clippy -D warnings only
  serve    serve the chat page";

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("lint") => lint(),
        Some("serve") => serve(),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn step(what: &str) {
    eprintln!("\n==> {what}");
}

/// Runs a command in the workspace root; fails with the command line if it fails.
fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.current_dir(root()).status().with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn cargo() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn lint() -> Result<()> {
    step("cargo fmt --check");
    run(cargo().args(["fmt", "--all", "--check"]))?;
    step("cargo clippy -D warnings");
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))
}

fn test() -> Result<()> {
    let chromedriver = ensure_browser_tools()?;
    lint()?;
    step("native tests");
    run(cargo().args(["test", "--workspace"]))?;
    step("wasm tests in headless Chromium (WebGPU enabled)");
    run(cargo()
        .args(["test", "--target", WASM_TARGET, "--test", "web"])
        .env("CHROMEDRIVER", chromedriver)
        .env("WASM_BINDGEN_TEST_WEBDRIVER_JSON", root().join("webdriver.json"))
        .env("WASM_BINDGEN_TEST_TIMEOUT", "600"))?;
    eprintln!("\nxtask: every test passed");
    Ok(())
}

fn serve() -> Result<()> {
    bail!(
        "the chat page is not built yet (it arrives with the page issue). What runs today is the CLI, e.g.\n  \
         cargo run --release --bin wgpt -- generate --model tests/fixtures/hf/tiny-f32 --prompt \"You are\"\n\
         (the fixture models are tiny random GPT-2s, so the text is noise)"
    )
}

/// Installs the wasm target, wasm-bindgen-cli and Chromium + chromedriver when missing.
/// Returns the chromedriver to use.
fn ensure_browser_tools() -> Result<PathBuf> {
    let installed = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == WASM_TARGET) {
        step(&format!("installing the Rust target {WASM_TARGET} (first run only)"));
        run(Command::new("rustup").args(["target", "add", WASM_TARGET]))?;
    }
    let runner = output("wasm-bindgen-test-runner", &["--version"]).unwrap_or_default();
    if !runner.contains(WASM_BINDGEN_VERSION) {
        step(&format!(
            "installing wasm-bindgen-cli {WASM_BINDGEN_VERSION} (first run only, a few minutes; found: {})",
            if runner.is_empty() { "none" } else { runner.trim() }
        ));
        // Not --locked: its lockfile names a webpki-roots release some registry mirrors lack.
        run(cargo().args(["install", "wasm-bindgen-cli", "--version", WASM_BINDGEN_VERSION]))?;
    }
    if let Some(found) = find_chromedriver() {
        return Ok(found);
    }
    let is_root = output("id", &["-u"]).is_some_and(|u| u.trim() == "0");
    if is_root && output("apt-get", &["--version"]).is_some() {
        step("installing chromium and chromium-driver with apt-get (first run only)");
        run(Command::new("apt-get").arg("update").arg("-qq"))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "chromium", "chromium-driver"])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
        if let Some(found) = find_chromedriver() {
            return Ok(found);
        }
    }
    bail!(
        "the browser tests need Chromium and its chromedriver; install them (Debian: \
         `sudo apt-get install chromium chromium-driver`) or set CHROMEDRIVER to a chromedriver"
    )
}

fn find_chromedriver() -> Option<PathBuf> {
    if let Ok(p) = env::var("CHROMEDRIVER") {
        return Some(PathBuf::from(p));
    }
    output("which", &["chromedriver"]).map(|p| PathBuf::from(p.trim())).filter(|p| p.is_file())
}
