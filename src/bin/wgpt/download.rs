//! `wgpt download ORG/NAME[@REVISION] [--hub URL]`: a model from a hub (the public Hugging Face
//! hub, or any mirror in its URL layout, `src/hub.rs`) into the local cache, where `--model
//! ORG/NAME` then finds it in every command. Each file arrives as `NAME.part` and is renamed only
//! when whole (and, where the hub gives a SHA-256, checked): an interrupted download resumes with
//! an HTTP range request, and a partial file is never taken for a model.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use sha2::{Digest, Sha256};
use wgpt::hub::{DEFAULT_HUB, HubId, INDEX, Remote, model_files};

#[derive(Args)]
pub struct DownloadArgs {
    /// ORG/NAME, optionally @REVISION (a branch, tag or commit; default main).
    id: String,
    /// A revision (instead of @REVISION).
    #[arg(long)]
    revision: Option<String>,
    /// The hub's base URL (a mirror in the hub's layout); default $WGPT_HUB or the public hub.
    #[arg(long)]
    hub: Option<String>,
}

/// Where downloaded models live: `$WGPT_CACHE`, else `$XDG_CACHE_HOME/wgpt/hub`, else
/// `~/.cache/wgpt/hub`.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("WGPT_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("wgpt").join("hub")
}

/// `ORG/NAME[@REVISION]` as a hub id.
fn parse(id: &str, revision: Option<&str>) -> Result<HubId> {
    let (id, at) = match id.split_once('@') {
        Some((id, rev)) => (id, Some(rev)),
        None => (id, None),
    };
    if at.is_some() && revision.is_some() {
        bail!("give the revision once: ORG/NAME@REVISION or --revision");
    }
    Ok(HubId::parse(id, at.or(revision))?)
}

/// A `--model` value: a folder, or the id of a downloaded model.
pub fn model_dir(model: &Path) -> Result<PathBuf> {
    if model.exists() {
        return Ok(model.to_path_buf());
    }
    let Some(text) = model.to_str().filter(|t| t.contains('/') && !t.starts_with(['.', '/'])) else {
        return Ok(model.to_path_buf()); // the loader says what is missing
    };
    let Ok(id) = parse(text, None) else { return Ok(model.to_path_buf()) };
    let dir = id.cache_dir(&cache_root());
    if !dir.join(COMPLETE).is_file() {
        bail!("{text}: no such folder, and not downloaded yet (wgpt download {text})");
    }
    Ok(dir)
}

/// Written last, when every required file is whole: the folder is a model.
const COMPLETE: &str = ".wgpt-complete";

pub fn run(a: DownloadArgs) -> Result<()> {
    let id = parse(&a.id, a.revision.as_deref())?;
    let hub = a.hub.or_else(|| std::env::var("WGPT_HUB").ok()).unwrap_or_else(|| DEFAULT_HUB.into());
    let dir = id.cache_dir(&cache_root());
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let agent = ureq::AgentBuilder::new().redirects(0).timeout_connect(Duration::from_secs(30)).build();
    let get = |file: &str, required: bool| fetch(&agent, &id.url(&hub, file), &dir.join(file), required);
    get("config.json", true)?;
    let index = if get(INDEX, false)? { Some(std::fs::read(dir.join(INDEX))?) } else { None };
    let (required, optional) = model_files(index.as_deref())?;
    for file in &required {
        get(file, true)?;
    }
    for file in &optional {
        get(file, false)?;
    }
    // Check the folder opens as a model before calling it one.
    wgpt::LoadedModel::load(&dir)
        .with_context(|| format!("{} downloaded, but it is not a model wgpt runs", id.id()))?;
    std::fs::write(dir.join(COMPLETE), required.join("\n"))?;
    println!("{}", dir.display());
    Ok(())
}

/// Downloads `url` to `path` unless it is there; false when an optional file does not exist.
fn fetch(agent: &ureq::Agent, url: &str, path: &Path, required: bool) -> Result<bool> {
    if path.is_file() {
        return Ok(true);
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_string();
    let part = path.with_file_name(format!("{name}.part"));
    let have = part.metadata().map(|m| m.len()).unwrap_or(0);
    let (resp, remote) = match request(agent, url, have)? {
        Some(r) => r,
        None if required => bail!("{url}: not found (HTTP 404)"),
        None => return Ok(false),
    };
    let resumed = resp.status() == 206;
    let mut out = OpenOptions::new().create(true).append(resumed).write(true).truncate(!resumed).open(&part)?;
    let start = if resumed { have } else { 0 };
    let total =
        remote.size.or_else(|| resp.header("content-length").and_then(|l| l.parse::<u64>().ok()).map(|l| l + start));
    let mut reader = resp.into_reader();
    let mut done = start;
    let mut buf = vec![0u8; 1 << 16];
    let (began, mut shown) = (Instant::now(), Instant::now());
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => bail!("{url}: the download broke off after {done} bytes ({e}); run the command again to resume"),
        };
        out.write_all(&buf[..n])?;
        done += n as u64;
        if shown.elapsed() > Duration::from_millis(250) {
            progress(&name, done, total, done - start, began.elapsed());
            shown = Instant::now();
        }
    }
    out.flush()?;
    progress(&name, done, total, done - start, began.elapsed());
    eprintln!();
    if let Some(t) = total.filter(|&t| t != done) {
        bail!("{url}: the download broke off at {done} of {t} bytes; run the command again to resume");
    }
    if let Some(want) = &remote.sha256 {
        let got = sha256(&part)?;
        if &got != want {
            std::fs::remove_file(&part)?;
            bail!("{url}: the file's SHA-256 is {got}, the hub says {want}; the partial file was deleted");
        }
    }
    std::fs::rename(&part, path)?;
    Ok(true)
}

/// A GET from byte `from` on, following redirects by hand so the hub's own headers (size and
/// checksum, on its redirect to the file store) are read. None: 404.
fn request(agent: &ureq::Agent, url: &str, from: u64) -> Result<Option<(ureq::Response, Remote)>> {
    let mut url = url.to_string();
    let mut remote = Remote::default();
    for _ in 0..5 {
        let mut req = agent.get(&url);
        if from > 0 {
            req = req.set("Range", &format!("bytes={from}-"));
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(404, _)) => return Ok(None),
            // The part file is already whole (the server has nothing past it).
            Err(ureq::Error::Status(416, r)) => return Ok(Some((r, remote))),
            Err(ureq::Error::Status(code, _)) => bail!("{url}: HTTP {code}"),
            Err(e) => bail!("{url}: {e}"),
        };
        let here = Remote::from_headers(|k| resp.header(k).map(str::to_string));
        if (300..400).contains(&resp.status()) {
            // The hub's redirect carries X-Linked-Size / X-Linked-Etag.
            remote = Remote { size: remote.size.or(here.size), sha256: remote.sha256.or(here.sha256) };
            let location = resp.header("location").context("a redirect without a Location")?;
            url = if location.starts_with('/') {
                let origin: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
                format!("{origin}{location}")
            } else {
                location.to_string()
            };
            continue;
        }
        let size = remote.size.or(if resp.status() == 200 { here.size } else { None });
        return Ok(Some((resp, Remote { size, sha256: remote.sha256.or(here.sha256) })));
    }
    bail!("{url}: too many redirects")
}

fn progress(name: &str, done: u64, total: Option<u64>, this_run: u64, elapsed: Duration) {
    let mb = |b: u64| b as f64 / 1e6;
    let speed = mb(this_run) / elapsed.as_secs_f64().max(1e-3);
    match total {
        Some(t) => eprint!(
            "\r{name}: {:.1} / {:.1} MB ({:.0} %), {speed:.1} MB/s   ",
            mb(done),
            mb(t),
            100.0 * done as f64 / t.max(1) as f64
        ),
        None => eprint!("\r{name}: {:.1} MB, {speed:.1} MB/s   ", mb(done)),
    }
}

fn sha256(path: &Path) -> Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
