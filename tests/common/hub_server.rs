//! A local server in the Hugging Face hub's URL layout for the download tests: small files at
//! `/{org}/{name}/resolve/{rev}/{file}` with `Content-Length` and `ETag`; weights (`*.safetensors`)
//! answered there with a 302 to `/cdn/…` carrying `X-Linked-Size` and `X-Linked-Etag` (the
//! SHA-256), as the hub does, and served from the CDN path with range requests. Faults on
//! request: a connection cut after some bytes (once), a 500, a wrong checksum.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

#[derive(Default)]
pub struct Faults {
    /// Cut the next response of this file after this many bytes (then serve normally).
    pub cut: Option<(String, usize)>,
    /// Answer this file with HTTP 500.
    pub error_500: Option<String>,
    /// Announce a wrong SHA-256 for this file.
    pub wrong_sha: Option<String>,
}

pub struct HubServer {
    pub base: String,
    pub faults: Arc<Mutex<Faults>>,
    /// Every request line and its Range header, in order.
    pub log: Arc<Mutex<Vec<String>>>,
}

/// Serves `dir`'s files as model `org/name` at revision `main`.
pub fn serve(dir: &Path, org_name: &str) -> HubServer {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            files.insert(name, std::fs::read(&path).unwrap());
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let faults = Arc::new(Mutex::new(Faults::default()));
    let log = Arc::new(Mutex::new(Vec::new()));
    let (f, l, prefix) = (faults.clone(), log.clone(), format!("/{org_name}/resolve/main/"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = answer(stream, &files, &prefix, &f, &l);
        }
    });
    HubServer { base, faults, log }
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn answer(
    mut stream: TcpStream,
    files: &BTreeMap<String, Vec<u8>>,
    prefix: &str,
    faults: &Mutex<Faults>,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut range_from = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("range:") {
            range_from = v.trim().strip_prefix("bytes=").and_then(|r| r.trim_end_matches('-').parse::<usize>().ok());
        }
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("").to_string());
    log.lock().unwrap().push(format!("{method} {path} {range_from:?}"));
    let cors = "Access-Control-Allow-Origin: *\r\nAccess-Control-Expose-Headers: Content-Length, Content-Range, ETag, X-Linked-Size, X-Linked-Etag\r\nAccess-Control-Allow-Headers: Range\r\n";
    let send = |stream: &mut TcpStream, status: &str, headers: &str, body: &[u8]| -> std::io::Result<()> {
        write!(stream, "HTTP/1.1 {status}\r\n{cors}{headers}Connection: close\r\n\r\n")?;
        if method != "HEAD" {
            stream.write_all(body)?;
        }
        Ok(())
    };
    if method == "OPTIONS" {
        return send(&mut stream, "204 No Content", "Access-Control-Allow-Methods: GET, HEAD\r\n", b"");
    }
    let (file, via_cdn) = if let Some(f) = path.strip_prefix(prefix) {
        (f.to_string(), false)
    } else if let Some(f) = path.strip_prefix("/cdn/") {
        (f.to_string(), true)
    } else {
        return send(&mut stream, "404 Not Found", "Content-Length: 0\r\n", b"");
    };
    let Some(bytes) = files.get(&file) else {
        return send(&mut stream, "404 Not Found", "Content-Length: 9\r\n", b"not found");
    };
    let mut f = faults.lock().unwrap();
    if f.error_500.as_deref() == Some(file.as_str()) {
        return send(&mut stream, "500 Internal Server Error", "Content-Length: 5\r\n", b"oops!");
    }
    let sha = if f.wrong_sha.as_deref() == Some(file.as_str()) { "0".repeat(64) } else { sha256(bytes) };
    if file.ends_with(".safetensors") && !via_cdn {
        // The hub: size and checksum on the redirect to the file store.
        let headers = format!(
            "Location: /cdn/{file}\r\nX-Linked-Size: {}\r\nX-Linked-Etag: \"{sha}\"\r\nContent-Length: 0\r\n",
            bytes.len()
        );
        return send(&mut stream, "302 Found", &headers, b"");
    }
    let from = range_from.unwrap_or(0).min(bytes.len());
    let body = &bytes[from..];
    let cut = match &f.cut {
        Some((name, n)) if *name == file => {
            let n = *n;
            f.cut = None;
            Some(n.min(body.len()))
        }
        _ => None,
    };
    drop(f);
    let etag = if file.ends_with(".safetensors") { String::new() } else { format!("ETag: \"{sha}\"\r\n") };
    let (status, range) = if range_from.is_some() {
        ("206 Partial Content", format!("Content-Range: bytes {from}-{}/{}\r\n", bytes.len().max(1) - 1, bytes.len()))
    } else {
        ("200 OK", String::new())
    };
    let headers = format!("Content-Length: {}\r\nAccept-Ranges: bytes\r\n{etag}{range}", body.len());
    match cut {
        Some(n) => {
            write!(stream, "HTTP/1.1 {status}\r\n{cors}{headers}Connection: close\r\n\r\n")?;
            stream.write_all(&body[..n])?;
            stream.flush()?;
            let _ = stream.shutdown(std::net::Shutdown::Both);
            Ok(())
        }
        None => send(&mut stream, status, &headers, body),
    }
}

/// Reads a whole response body (for tests that call the server directly).
pub fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    v
}
