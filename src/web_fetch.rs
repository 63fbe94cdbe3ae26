//! Model files in the browser, read in Rust through web-sys: from the Cache API when stored, else
//! from the network — or from a file the person picked — streamed chunk by chunk straight into
//! the `Vec` the model is parsed from (no second full copy in JavaScript), with progress after
//! every chunk. A download goes into the cache only once it arrived whole and, where the server
//! names its SHA-256 (the hub's `X-Linked-Etag`, or an `ETag` of 64 hex digits), matched it; a
//! broken transfer is resumed with a range request where the server allows one. Works in a worker
//! (the page's engine) and in a window (the wasm tests).

use js_sys::{Promise, Uint8Array};
use sha2::{Digest, Sha256};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Blob, Cache, CacheStorage, Headers, ReadableStream, ReadableStreamByobReader, ReadableStreamDefaultReader, Request,
    RequestInit, Response, ResponseInit,
};

/// The Cache API store the page keeps models in (listed and deleted on the Models tab).
pub const MODEL_CACHE: &str = "wgpt-models";
/// Attempts per file when the connection breaks mid-way (each resumes where the last stopped).
const ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {message}")]
    Network { url: String, message: String },
    #[error("{url}: the download broke off at {got} of {total} bytes ({message})")]
    Broken { url: String, got: u64, total: u64, message: String },
    #[error("{url}: the file's SHA-256 is {got}, the server says {want}; it was not stored")]
    Checksum { url: String, got: String, want: String },
    #[error("{name}: could not be read ({message})")]
    Unreadable { name: String, message: String },
}

impl FetchError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, FetchError::Status { status: 404, .. })
    }
}

fn message(e: JsValue) -> String {
    e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).unwrap_or_else(|| format!("{e:?}"))
}

/// `fetch` and `caches` of the global scope, worker or window.
fn global_fetch(req: &Request) -> Promise {
    let global = js_sys::global();
    if let Some(w) = global.dyn_ref::<web_sys::WorkerGlobalScope>() {
        w.fetch_with_request(req)
    } else {
        global.unchecked_into::<web_sys::Window>().fetch_with_request(req)
    }
}

fn caches() -> Option<CacheStorage> {
    let global = js_sys::global();
    let c = if let Some(w) = global.dyn_ref::<web_sys::WorkerGlobalScope>() {
        w.caches()
    } else {
        global.unchecked_into::<web_sys::Window>().caches()
    };
    c.ok()
}

async fn cache() -> Option<Cache> {
    let open = caches()?.open(MODEL_CACHE);
    JsFuture::from(open).await.ok().map(|c| c.unchecked_into())
}

/// A request with `method` and an optional `Range: bytes=from-to`, past the browser's HTTP
/// cache: the model cache holds each file once (a second copy there would double a model on
/// disk), and after a range request for a small file (`config.json` while checking a model) the
/// HTTP cache answered the whole file's GET with a 206, which the model cache does not take.
async fn request(url: &str, method: &str, range: Option<(u64, Option<u64>)>) -> Result<Response, FetchError> {
    let net = |e: JsValue| FetchError::Network { url: url.into(), message: message(e) };
    let init = RequestInit::new();
    init.set_method(method);
    init.set_cache(web_sys::RequestCache::NoStore);
    if let Some((from, to)) = range {
        let headers = Headers::new().map_err(net)?;
        let value = match to {
            Some(to) => format!("bytes={from}-{to}"),
            None => format!("bytes={from}-"),
        };
        headers.set("Range", &value).map_err(net)?;
        init.set_headers(&headers);
    }
    let req = Request::new_with_str_and_init(url, &init).map_err(net)?;
    let resp: Response = JsFuture::from(global_fetch(&req)).await.map_err(net)?.unchecked_into();
    if !resp.ok() {
        return Err(FetchError::Status { url: url.into(), status: resp.status() });
    }
    Ok(resp)
}

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers().get(name).ok().flatten()
}

/// A file's size from a HEAD request (after redirects): what a download would bring.
pub async fn size(url: &str) -> Result<Option<u64>, FetchError> {
    let resp = request(url, "HEAD", None).await?;
    Ok(header(&resp, "x-linked-size").or_else(|| header(&resp, "content-length")).and_then(|s| s.parse().ok()))
}

/// Bytes `from ..= to` of a file (a safetensors header, before deciding to download the rest).
pub async fn range(url: &str, from: u64, to: u64) -> Result<Vec<u8>, FetchError> {
    let resp = request(url, "GET", Some((from, Some(to)))).await?;
    let mut out = Vec::new();
    read_into(resp.body(), &mut out, &mut |_| ()).await.map_err(|(got, e)| FetchError::Broken {
        url: url.into(),
        got,
        total: to - from + 1,
        message: e,
    })?;
    // A server that ignores ranges sends the whole file: keep the part asked for.
    if resp.status() == 200 {
        out.truncate((to + 1) as usize);
        out.drain(..(from as usize).min(out.len()));
    }
    Ok(out)
}

/// Appends a stream (a response's body, a picked file's) to `out`, chunk by chunk, calling
/// `on_chunk(the new bytes)` after each. On a broken stream: how many bytes arrived, and why.
///
/// A byte stream (a `Blob`'s; a response body's where the browser makes it one) is read with a
/// reader that brings its own buffer: one buffer of [`BYOB_CHUNK`] bytes, lent to the stream and
/// handed back filled, read after read. A default reader hands out a new buffer per chunk
/// instead, garbage until the collector runs: loading a 529 MB file, the tab peaked 170 MB
/// higher so (BENCHMARKS.md, the page's memory). Another kind of stream takes the default reader.
async fn read_into(
    body: Option<ReadableStream>,
    out: &mut Vec<u8>,
    on_chunk: &mut dyn FnMut(&[u8]),
) -> Result<(), (u64, String)> {
    let Some(body) = body else { return Ok(()) };
    let Ok(reader) = ReadableStreamByobReader::new(&body) else {
        return read_chunks(body.get_reader().unchecked_into(), out, on_chunk).await;
    };
    let mut buffer = js_sys::ArrayBuffer::new(BYOB_CHUNK);
    loop {
        let view = Uint8Array::new_with_byte_offset_and_length(&buffer, 0, BYOB_CHUNK);
        let result = JsFuture::from(reader.read_with_array_buffer_view(&view))
            .await
            .map_err(|e| (out.len() as u64, message(e)))?;
        let done = js_sys::Reflect::get(&result, &"done".into()).map(|d| d.is_truthy()).unwrap_or(true);
        // The filled view of the same memory (the buffer was transferred to the stream and back),
        // empty when the stream has ended.
        let value = js_sys::Reflect::get(&result, &"value".into()).map_err(|e| (out.len() as u64, message(e)))?;
        if let Some(value) = value.dyn_ref::<Uint8Array>() {
            append(out, value, on_chunk);
            buffer = value.buffer();
        }
        if done {
            return Ok(());
        }
    }
}

/// Bytes a read with our own buffer asks for at once.
const BYOB_CHUNK: u32 = 1 << 20;

/// [`read_into`] with a stream's default reader.
async fn read_chunks(
    reader: ReadableStreamDefaultReader,
    out: &mut Vec<u8>,
    on_chunk: &mut dyn FnMut(&[u8]),
) -> Result<(), (u64, String)> {
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(|e| (out.len() as u64, message(e)))?;
        let done = js_sys::Reflect::get(&chunk, &"done".into()).map(|d| d.is_truthy()).unwrap_or(true);
        if done {
            return Ok(());
        }
        let value: Uint8Array =
            js_sys::Reflect::get(&chunk, &"value".into()).map_err(|e| (out.len() as u64, message(e)))?.unchecked_into();
        append(out, &value, on_chunk);
    }
}

/// Copies `value` onto the end of `out`, then tells `on_chunk`.
fn append(out: &mut Vec<u8>, value: &Uint8Array, on_chunk: &mut dyn FnMut(&[u8])) {
    if value.length() == 0 {
        return;
    }
    let at = out.len();
    out.resize(at + value.length() as usize, 0);
    value.copy_to(&mut out[at..]);
    on_chunk(&out[at..]);
}

/// Where a file came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Cache,
    Network,
    /// Downloaded whole, but the browser refused to store it (why, for the page to say): the
    /// model runs, and the next visit downloads it again.
    NotStored(String),
}

/// Why a `Cache.put` failed, in words a person can act on (a full quota is the usual case).
fn put_refusal(e: JsValue) -> String {
    let name = js_sys::Reflect::get(&e, &"name".into()).ok().and_then(|n| n.as_string()).unwrap_or_default();
    if name == "QuotaExceededError" {
        "this browser's storage for the page is full".into()
    } else {
        format!("the browser would not store it ({})", message(e))
    }
}

/// Whether the model cache holds a file (without reading it).
pub async fn is_stored(url: &str) -> bool {
    let Some(c) = cache().await else { return false };
    JsFuture::from(c.match_with_str(url)).await.is_ok_and(|hit| hit.is_instance_of::<Response>())
}

/// A file from the model cache, if stored there.
pub async fn cached(url: &str) -> Option<Vec<u8>> {
    let c = cache().await?;
    let hit = JsFuture::from(c.match_with_str(url)).await.ok()?;
    let resp = hit.dyn_ref::<Response>()?;
    let mut out = Vec::new();
    read_into(resp.body(), &mut out, &mut |_| ()).await.ok()?;
    Some(out)
}

/// Stores bytes in the model cache under `url`, with their `Content-Length` (what the Models tab
/// lists as the stored size without reading the file back). `Err(why)` when the browser refused.
async fn store(c: &Cache, url: &str, bytes: &[u8]) -> Result<(), String> {
    let copy = Uint8Array::from(bytes);
    let init = ResponseInit::new();
    let h = Headers::new().map_err(message)?;
    h.set("Content-Length", &bytes.len().to_string()).map_err(message)?;
    init.set_headers(&h);
    let r = Response::new_with_opt_buffer_source_and_init(Some(&copy), &init).map_err(message)?;
    JsFuture::from(c.put_with_str(url, &r)).await.map(drop).map_err(put_refusal)
}

/// Stores a small file the page made (a list of a model's files) in the model cache; without it
/// the model still loads, from the hub's listing.
pub async fn remember(url: &str, bytes: &[u8]) {
    if let Some(c) = cache().await {
        let _ = store(&c, url, bytes).await;
    }
}

/// A file the person picked (a `File` is a `Blob`), read into wasm memory chunk by chunk with
/// `report(loaded, total)` after each: the same path as a download, so a picked model is held once.
pub async fn blob_with(name: &str, blob: &Blob, report: &dyn Fn(u64, Option<u64>)) -> Result<Vec<u8>, FetchError> {
    let total = blob.size() as u64;
    let mut out = Vec::with_capacity(total as usize);
    let mut loaded = 0u64;
    read_into(Some(blob.stream()), &mut out, &mut |chunk| {
        loaded += chunk.len() as u64;
        report(loaded, Some(total));
    })
    .await
    .map_err(|(_, message)| FetchError::Unreadable { name: name.into(), message })?;
    Ok(out)
}

/// Drops a file from the model cache (one that arrived broken or wrong).
async fn forget(store_in: &Option<Cache>, url: &str) {
    if let Some(c) = store_in {
        let _ = JsFuture::from(c.delete_with_str(url)).await;
    }
}

/// A whole file: from the model cache if stored, else downloaded (resuming a broken transfer
/// with a range request), checked against the SHA-256 the server names, and then stored.
/// `report(loaded, total, from_cache)` after each chunk.
pub async fn file_with(url: &str, report: &dyn Fn(u64, Option<u64>, bool)) -> Result<(Vec<u8>, Source), FetchError> {
    let store_in = cache().await;
    if let Some(c) = &store_in
        && let Ok(hit) = JsFuture::from(c.match_with_str(url)).await
        && let Some(resp) = hit.dyn_ref::<Response>()
    {
        let total = header(resp, "content-length").and_then(|s| s.parse().ok());
        let mut out = Vec::with_capacity(total.unwrap_or(0) as usize);
        let mut loaded = 0u64;
        let read = read_into(resp.body(), &mut out, &mut |chunk| {
            loaded += chunk.len() as u64;
            report(loaded, total, true)
        })
        .await;
        if read.is_ok() {
            return Ok((out, Source::Cache));
        }
        // An unreadable entry: fetch it again.
        let _ = JsFuture::from(c.delete_with_str(url)).await;
    }
    let mut out: Vec<u8> = Vec::new();
    let mut hash = Sha256::new();
    let mut total = None;
    let mut want: Option<String> = None;
    let mut last_error = String::new();
    for attempt in 0..ATTEMPTS {
        let from = out.len() as u64;
        let resp = request(url, "GET", (attempt > 0 && from > 0).then_some((from, None))).await?;
        if from > 0 && resp.status() != 206 {
            out.clear(); // the server ignored the range: start over
            hash = Sha256::new();
        }
        want = want.or(crate::hub::Remote::from_headers(|h| header(&resp, h)).sha256);
        // A whole response is stored as it streams (the browser tees it; nothing is copied
        // here); the cache keeps it only if it arrives whole — a broken body fails the put.
        let storing = match (&store_in, resp.status()) {
            (Some(c), 200) => resp.clone().ok().map(|copy| JsFuture::from(c.put_with_str(url, &copy))),
            _ => None,
        };
        let length = header(&resp, "content-length").and_then(|s| s.parse::<u64>().ok());
        total = total.or(length.map(|l| l + out.len() as u64));
        if out.capacity() == 0
            && let Some(t) = total
        {
            out.reserve_exact(t as usize);
        }
        let mut loaded = out.len() as u64;
        let read = read_into(resp.body(), &mut out, &mut |chunk| {
            hash.update(chunk);
            loaded += chunk.len() as u64;
            report(loaded, total, false)
        })
        .await;
        let whole = matches!(read, Ok(())) && total.is_none_or(|t| t == out.len() as u64);
        let mut refused = None;
        if let Some(put) = storing {
            match put.await {
                // The body ended early without an error: what was stored is not the file.
                Ok(_) if !whole => forget(&store_in, url).await,
                Ok(_) => {}
                Err(e) => refused = Some(put_refusal(e)),
            }
        }
        if whole {
            let got: String = std::mem::take(&mut hash).finalize().iter().map(|b| format!("{b:02x}")).collect();
            if let Some(want) = want.filter(|w| *w != got) {
                forget(&store_in, url).await;
                return Err(FetchError::Checksum { url: url.into(), got, want });
            }
            if attempt > 0
                && let Some(c) = &store_in
            {
                // Resumed: the pieces came as partial responses, which the cache refuses; store
                // the whole file once (a transient copy, only on this path).
                refused = store(c, url, &out).await.err();
            }
            return Ok((out, refused.map_or(Source::Network, Source::NotStored)));
        }
        last_error = match read {
            Err((_, e)) => e,
            Ok(()) => "the connection closed early".into(),
        };
        if header(&resp, "accept-ranges").as_deref() != Some("bytes") {
            out.clear();
            hash = Sha256::new();
        }
    }
    Err(FetchError::Broken { url: url.into(), got: out.len() as u64, total: total.unwrap_or(0), message: last_error })
}
