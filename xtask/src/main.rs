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
  test     every test: format and lint checks, native tests (GPU ones on Vulkan or lavapipe),
           wasm tests in headless Chromium (CPU reference and WGSL engine on WebGPU)
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
    step("cargo clippy -D warnings (native, then wasm32)");
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    run(cargo().args(["clippy", "--target", WASM_TARGET, "--lib", "--tests", "--", "-D", "warnings"]))
}

fn test() -> Result<()> {
    let chromedriver = ensure_tools()?;
    lint()?;
    step("native tests (the GPU ones on the machine's Vulkan device; without a GPU, Mesa's lavapipe)");
    run(cargo().args(["test", "--workspace"]).env("XDG_RUNTIME_DIR", runtime_dir()?))?;
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

/// Installs the wasm target, wasm-bindgen-cli, a Vulkan driver and Chromium + chromedriver
/// when missing.
/// Returns the chromedriver to use.
fn ensure_tools() -> Result<PathBuf> {
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
    let can_apt = output("id", &["-u"]).is_some_and(|u| u.trim() == "0") && output("apt-get", &["--version"]).is_some();
    // A Vulkan driver for the native GPU tests: without a GPU, Mesa's lavapipe (software).
    let has_vulkan = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"]
        .iter()
        .any(|d| std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_some()));
    if !has_vulkan && can_apt {
        apt_install(&["mesa-vulkan-drivers", "libvulkan1"])?;
    }
    if let Some(found) = find_chromedriver() {
        return Ok(found);
    }
    if can_apt {
        apt_install(&["chromium", "chromium-driver"])?;
        if let Some(found) = find_chromedriver() {
            return Ok(found);
        }
    }
    bail!(
        "the browser tests need Chromium and its chromedriver; install them (Debian: \
         `sudo apt-get install chromium chromium-driver`) or set CHROMEDRIVER to a chromedriver"
    )
}

fn apt_install(packages: &[&str]) -> Result<()> {
    step(&format!("installing {} with apt-get (first run only)", packages.join(" ")));
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get").args(["install", "-y", "-qq"]).args(packages).env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Mesa complains on every device creation when XDG_RUNTIME_DIR is unset; give it one.
fn runtime_dir() -> Result<PathBuf> {
    if let Some(dir) = env::var_os("XDG_RUNTIME_DIR") {
        return Ok(dir.into());
    }
    let dir = root().join("target").join("xdg-runtime");
    std::fs::create_dir_all(&dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(dir)
}

fn find_chromedriver() -> Option<PathBuf> {
    if let Ok(p) = env::var("CHROMEDRIVER") {
        return Some(PathBuf::from(p));
    }
    output("which", &["chromedriver"]).map(|p| PathBuf::from(p.trim())).filter(|p| p.is_file())
}
