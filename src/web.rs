//! The browser binding (wasm-bindgen, `--target web`): what the pages in `www/` call.

use std::sync::Arc;

use wasm_bindgen::prelude::*;

use crate::GptConfig;
use crate::bench::{BenchOptions, run};
use crate::gpu::{Gpu, GpuOptions, WeightFormat};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str);
}

/// Panics (bugs) reach the console with their message instead of a bare "unreachable".
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| console_error(&info.to_string())));
}

/// Benchmarks a named shape (`tiny`, `gpt2-124m`, ...) with random weights on `backend` (`cpu` or
/// `gpu`; `dtype` `f32`, `f16`, or `q8_0`/`q4_0`/`q4_k` blocks, on either); returns the report
/// as JSON.
#[wasm_bindgen]
pub async fn bench(
    shape: String,
    backend: String,
    dtype: Option<String>,
    prompt_tokens: usize,
    decode_tokens: usize,
    contexts: Option<String>,
    activations: Option<String>,
) -> Result<String, JsError> {
    // Context lengths to decode at, comma-separated (default: 16, a quarter, a half, the end).
    let contexts = contexts
        .filter(|c| !c.trim().is_empty())
        .map(|c| c.split(',').map(|n| n.trim().parse::<usize>()).collect::<Result<Vec<_>, _>>())
        .transpose()
        .map_err(|e| JsError::new(&format!("contexts: {e}")))?
        .unwrap_or_default();
    let arch = crate::loaded::Architecture::random(&shape, 0).ok_or_else(|| {
        JsError::new(&format!("unknown shape {shape:?} ({})", crate::loaded::Architecture::shape_names()))
    })?;
    let (arch, dtype) = match dtype.as_deref() {
        // Quantized as `wgpt quantize` does, for either engine (the GPU then reads the blocks).
        Some(q @ ("q8_0" | "q4_0" | "q4_k")) => (arch.quantized(q).map_err(|e| JsError::new(&e))?, None),
        // The CPU engine holds f32 or f16 matrices as asked (the GPU converts at upload).
        Some(f @ ("f32" | "f16")) if backend == "cpu" => (arch.quantized(f).map_err(|e| JsError::new(&e))?, None),
        _ => (arch, dtype),
    };
    let format = dtype.map(|d| d.parse::<WeightFormat>()).transpose().map_err(|e| JsError::new(&e))?;
    let gpu = match backend.as_str() {
        "cpu" => None,
        "gpu" => {
            let gpu = Gpu::new().await.map_err(|e| JsError::new(&e.to_string()))?;
            #[allow(clippy::arc_with_non_send_sync)] // one thread on the web; Arc is the engine's API
            let gpu = Arc::new(gpu);
            Some((gpu, GpuOptions { format, ..Default::default() }))
        }
        other => return Err(JsError::new(&format!("unknown backend {other:?} (cpu or gpu)"))),
    };
    let max_context = crate::llama::DEFAULT_MAX_CONTEXT;
    // How the CPU engine multiplies quantized matrices by a decoded token: `q8` (the page's) or
    // `f32` (the reference).
    let activations = activations.as_deref().unwrap_or("q8").parse().map_err(|e: String| JsError::new(&e))?;
    let opts = BenchOptions { prompt_tokens, decode_tokens, contexts, max_context, activations };
    let report = run(arch, gpu, &opts, || performance_now() / 1e3).await.map_err(|e| JsError::new(&e.to_string()))?;
    serde_json::to_string(&report).map_err(|e| JsError::new(&e.to_string()))
}

/// The task suite (the few-shot demo): `[{"name", "description"}, …]`.
#[wasm_bindgen]
pub fn task_list() -> String {
    let tasks: Vec<_> = crate::tasks::ALL
        .iter()
        .map(|&t| {
            let e = crate::tasks::episode(t, 0, crate::tasks::Description::Canonical, crate::tasks::Split::Eval, 0);
            serde_json::json!({"name": t.name(), "description": e.description})
        })
        .collect();
    serde_json::Value::from(tasks).to_string()
}

/// Held-out episode `seed` of `task` with `k` demonstrations, built by the same code as the
/// trainer's: `{"prompt", "answer", "task", "k", "description", "seed"}`.
#[wasm_bindgen]
pub fn task_episode(task: String, k: usize, description: bool, seed: u32) -> Result<String, JsError> {
    use crate::tasks::{Description, Split, Task, episode};
    let t = Task::from_name(&task).ok_or_else(|| JsError::new(&format!("unknown task {task:?}")))?;
    if k > 32 {
        return Err(JsError::new(&format!("{k} demonstrations: at most 32")));
    }
    let d = if description { Description::Canonical } else { Description::None };
    let e = episode(t, k, d, Split::Eval, seed.into());
    Ok(serde_json::json!({
        "prompt": e.prompt(), "answer": e.answer, "task": task, "k": k, "description": description, "seed": seed,
    })
    .to_string())
}

// ---- The page's engine: one model loaded at a time, driven by the worker (www/worker.js). ----
//
// Async calls take the engine out of its slot and put it back when done, so a call that
// arrives while another runs gets a clear "busy" error instead of a RefCell panic.

use std::cell::RefCell;

use crate::SamplingParams;
use crate::chat::Message;
use crate::engine::Engine;
use crate::loaded::LoadedModel;

/// `initThreadPool(n)` in a build with threads (`cargo xtask web` builds www/pkg-threads): starts
/// `n` workers sharing this module's memory for the CPU engine's rayon splits (www/worker.js).
#[cfg(target_feature = "atomics")]
pub use wasm_bindgen_rayon::init_thread_pool;

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// An engine error as a JS `Error` with a `kind` (`device-lost`, `out-of-memory`, `too-large`,
/// `bad-input`, …: [`crate::model::EngineError::kind`]), so the page recovers by kind, not by
/// reading the message.
fn kind_err(kind: &str, message: impl std::fmt::Display) -> JsValue {
    let e = js_sys::Error::new(&message.to_string());
    // Setting a property on a fresh Error cannot fail.
    let _ = js_sys::Reflect::set(&e, &"kind".into(), &kind.into());
    e.into()
}

fn engine_err(e: crate::generate::GenerateError) -> JsValue {
    kind_err(e.kind(), e)
}

fn take_engine() -> Result<Engine, JsError> {
    ENGINE
        .with(|slot| slot.borrow_mut().take())
        .ok_or_else(|| JsError::new("no model is loaded (or a call is still running)"))
}

fn put_engine(engine: Engine) {
    ENGINE.with(|slot| *slot.borrow_mut() = Some(engine));
}

/// Loads a model from files the person picked (`names[i]` is `files[i]`'s name, a `File` or any
/// `Blob`: `config.json`, `model.safetensors` or the shards its index names, `tokenizer.json`, and
/// for the Llama family `tokenizer_config.json` / `chat_template.jinja` /
/// `generation_config.json`) on `backend`: `cpu`, `gpu`, or `auto` (the GPU unless the adapter is
/// a software fallback, where the CPU path is far faster). Each file is read into wasm memory
/// once, with `progress` (see [`load_hub_model`]). A Llama-family model holds
/// [`crate::llama::DEFAULT_MAX_CONTEXT`] positions on either engine. Returns a JSON description.
#[wasm_bindgen]
pub async fn load_model(
    names: Vec<String>,
    files: Vec<web_sys::Blob>,
    backend: String,
    progress: Option<js_sys::Function>,
) -> Result<String, JsValue> {
    ENGINE.with(|slot| slot.borrow_mut().take()); // free the previous model first
    if names.len() != files.len() {
        return Err(kind_err("bad-input", "one name per file"));
    }
    let read = read_model(&names, Origin::Picked(&files), progress.as_ref()).await?;
    install(read, &backend).await
}

/// Loads a model the page serves (a catalogue entry): `names` under the URL `base` (ending in
/// `/`), through the model cache like a hub model, with `progress` (see [`load_hub_model`]).
#[wasm_bindgen]
pub async fn load_url_model(
    base: String,
    names: Vec<String>,
    backend: String,
    progress: Option<js_sys::Function>,
) -> Result<String, JsValue> {
    ENGINE.with(|slot| slot.borrow_mut().take());
    let url = |f: &str| format!("{base}{f}");
    let read = read_model(&names, Origin::Web(&url), progress.as_ref()).await?;
    install(read, &backend).await
}

/// Where a model's files come from: the web (the hub or the page's own catalogue; a file's URL
/// from its name), through the model cache; or files the person picked.
enum Origin<'a> {
    Web(&'a dyn Fn(&str) -> String),
    Picked(&'a [web_sys::Blob]),
}

/// Reads every file of a model into wasm memory, streamed into its final buffer with
/// `progress(file, loaded, total, cached, part, parts)` after each chunk, and parses the model;
/// the file bytes are freed once it is parsed. One path for hub ids, the catalogue and files
/// from disk.
async fn read_model(
    names: &[String],
    origin: Origin<'_>,
    progress: Option<&js_sys::Function>,
) -> Result<ReadModel, JsValue> {
    let mut owned: Vec<(String, Vec<u8>)> = Vec::with_capacity(names.len());
    let mut not_stored = Vec::new();
    let parts = names.len();
    for (part, name) in names.iter().enumerate() {
        let report = |loaded: u64, total: Option<u64>, cached: bool| {
            let Some(progress) = progress else { return };
            let args = js_sys::Array::of3(
                &name.into(),
                &(loaded as f64).into(),
                &total.map_or(JsValue::NULL, |t| (t as f64).into()),
            );
            args.push(&cached.into());
            args.push(&(part as f64).into());
            args.push(&(parts as f64).into());
            let _ = progress.apply(&JsValue::NULL, &args);
        };
        let bytes = match &origin {
            Origin::Web(url) => match crate::web_fetch::file_with(&url(name), &report).await.map_err(fetch_err)? {
                (bytes, crate::web_fetch::Source::NotStored(why)) => {
                    not_stored.push(format!("{name}: {why}"));
                    bytes
                }
                (bytes, _) => bytes,
            },
            Origin::Picked(blobs) => crate::web_fetch::blob_with(name, &blobs[part], &|n, t| report(n, t, false))
                .await
                .map_err(|e| kind_err("bad-input", e))?,
        };
        owned.push((name.clone(), bytes));
    }
    // The files' bytes become the model's: its matrices stay where they were read.
    let model = LoadedModel::from_owned_files(owned.into_iter().collect()).map_err(|e| kind_err("bad-input", e))?;
    Ok(ReadModel { model, not_stored })
}

/// A model read by [`read_model`], and the downloaded files the browser refused to store
/// (`"name: why"`): the model runs, the page says so and offers to delete stored models.
struct ReadModel {
    model: LoadedModel,
    not_stored: Vec<String>,
}

/// Puts a validated model on `backend` (see [`load_model`]) as the page's engine; returns the
/// JSON description the Models tab shows.
async fn install(read: ReadModel, backend: &str) -> Result<String, JsValue> {
    let ReadModel { model: loaded, not_stored } = read;
    let dtype = loaded.summary().dtypes.join("+");
    let mut note = String::new();
    let mut adapter_fallback = None;
    let cpu = |loaded: LoadedModel| Engine::cpu(loaded).map_err(|e| kind_err("bad-input", e));
    let engine = match backend {
        "cpu" => cpu(loaded)?,
        "gpu" | "auto" => match Gpu::new().await {
            Ok(gpu) => {
                adapter_fallback = Some(gpu.is_software());
                if backend == "auto" && gpu.is_software() {
                    note = "WebGPU runs on a software (fallback) adapter here; the CPU engine is faster".into();
                    cpu(loaded)?
                } else {
                    #[allow(clippy::arc_with_non_send_sync)] // one thread on the web
                    let gpu = Arc::new(gpu);
                    match Engine::gpu(loaded, gpu, GpuOptions::default()) {
                        Ok(e) => e,
                        Err(failed) if backend == "auto" => {
                            let (e, loaded) = *failed;
                            note = format!("the WebGPU engine could not load this model ({e}); using the CPU engine");
                            cpu(loaded)?
                        }
                        Err(failed) => return Err(kind_err(failed.0.kind(), failed.0)),
                    }
                }
            }
            Err(e) if backend == "auto" => {
                note = format!("no WebGPU ({e}); using the CPU engine");
                cpu(loaded)?
            }
            Err(e) => return Err(kind_err(e.kind(), e)),
        },
        other => return Err(kind_err("bad-input", format!("unknown backend {other:?} (auto, cpu or gpu)"))),
    };
    let s = &engine.summary;
    if engine.n_ctx() < s.model_ctx {
        let held = format!(
            "this model was made for {} positions; the page holds the newest {} (its KV cache is sized to that)",
            s.model_ctx,
            engine.n_ctx()
        );
        note = if note.is_empty() { held } else { format!("{note}; {held}") };
    }
    let info = serde_json::json!({
        "backend": engine.backend(), "engine": engine.describe(), "note": note, "adapter_fallback": adapter_fallback,
        "arch": s.arch, "parameters": s.parameters, "dtype": dtype, "n_ctx": engine.n_ctx(), "model_ctx": s.model_ctx,
        "n_layer": s.n_layer, "n_head": s.n_head, "n_kv_head": s.n_kv_head, "n_embd": s.n_embd, "vocab_size": s.vocab_size,
        "template": engine.text.chat_format_name(), "not_stored": not_stored,
        "cpu_threads": crate::cpu::ops::threads(),
    });
    put_engine(engine);
    Ok(info.to_string())
}

/// What a model picked from disk holds and whether the WebGPU engine can run it here, from its
/// `config.json`, the first bytes of its weights file (the 8-byte length and the header; the
/// first shard of a sharded model) and that file's size — before its weights are read. The
/// verdict is the engine's own ([`crate::gpu::Plan`] against this adapter's limits), so the page
/// and the engine agree.
#[wasm_bindgen]
pub async fn inspect_bundle(config: Vec<u8>, head: Vec<u8>, file_size: f64) -> Result<String, JsValue> {
    let stored = crate::weights::stored_tensors(&head, file_size as u64).map_err(|e| kind_err("bad-input", e))?;
    Ok(fit_check(&config, &stored, file_size as u64, None).await?.to_string())
}

/// [`inspect_bundle`] for a GGUF file: from its first bytes (at least its metadata and tensor
/// table) and its size.
#[wasm_bindgen]
pub async fn inspect_gguf(head: Vec<u8>, file_size: f64) -> Result<String, JsValue> {
    let f = gguf_head_facts(&head, file_size as u64)?;
    Ok(fit_check(&f.config, &f.stored, file_size as u64, Some(f.held)).await?.to_string())
}

/// What a GGUF file's first bytes say: its `config.json` equivalent, its tensors as stored, and
/// the bytes its weights take once loaded.
struct GgufFacts {
    config: Vec<u8>,
    stored: Vec<crate::weights::TensorInfo>,
    held: u64,
}

fn gguf_head_facts(head: &[u8], file_size: u64) -> Result<GgufFacts, JsValue> {
    let bad = |e: &dyn std::fmt::Display| kind_err("bad-input", e);
    let g = crate::gguf::Gguf::parse_head(head, file_size).map_err(|e| bad(&e))?;
    let (_, config) = crate::gguf::model::hf_config(&g).map_err(|e| bad(&e))?;
    Ok(GgufFacts { config, stored: crate::gguf::model::stored(&g), held: crate::gguf::model::held_bytes(&g) })
}

/// Bytes of wasm memory a page can have (wasm32's 4 GiB address space).
const WASM_MEMORY_LIMIT: u64 = 4 << 30;

/// What a model holds and whether this page can run it, from its `config.json`, its tensors as
/// stored (one file's header) and the bytes of all its weights files: the wasm memory a load
/// takes (the files, then the weights as the engine holds them: `held`, or every weight in f32)
/// against what a page can have, and the WebGPU engine's own plan against this adapter's limits.
async fn fit_check(
    config: &[u8],
    stored: &[crate::weights::TensorInfo],
    weight_bytes: u64,
    held: Option<u64>,
) -> Result<serde_json::Value, JsValue> {
    use crate::gpu::Shape;
    let bad = |e: &dyn std::fmt::Display| kind_err("bad-input", e);
    let parameters = config_parameters(config)?;
    let shape = if crate::llama::is_llama_config(config) {
        let c = crate::llama::LlamaConfig::from_json(config).map_err(|e| bad(&e))?;
        Ok(Shape::llama(&c, crate::llama::DEFAULT_MAX_CONTEXT))
    } else {
        Shape::gpt(&GptConfig::from_json(config).map_err(|e| bad(&e))?)
    };
    let format = WeightFormat::for_stored(stored);
    let limits = Gpu::adapter_limits().await;
    let (fits, verdict) = match (&shape, limits) {
        (_, Err(e)) => (false, format!("no WebGPU here ({e}): it will run on the CPU engine")),
        (Err(e), _) => (false, format!("{e}: it will run on the CPU engine")),
        (Ok(shape), Ok((limits, software))) => {
            match crate::gpu::Plan::new(shape, format, format.tables_for_stored(stored), &limits) {
                Err(e) => (false, format!("{e}: it will run on the CPU engine")),
                Ok(_) if software => {
                    (true, "fits, but the adapter is a software fallback: the CPU engine is faster here".into())
                }
                Ok(plan) => (
                    true,
                    format!(
                        "fits ({:?} weights, embedding in {} binding(s))",
                        plan.format,
                        shape.vocab.div_ceil(plan.rows_per_chunk)
                    ),
                ),
            }
        }
    };
    let info = match &shape {
        Ok(s) => serde_json::json!({"arch": s.arch, "n_ctx": s.n_ctx, "model_ctx": s.model_ctx, "n_layer": s.n_layer,
            "n_head": s.n_head, "n_kv_head": s.n_kv_head, "n_embd": s.hidden, "vocab_size": s.vocab}),
        Err(_) => serde_json::json!({"arch": "gpt1"}),
    };
    // The files are held while they are parsed into the engine's weights; then they are freed.
    let held = held.unwrap_or_else(|| crate::weights::held_bytes(stored, parameters as u64));
    let memory = weight_bytes + held;
    let gb = |b: u64| b as f64 / 1e9;
    let (fits_memory, memory_verdict) = if memory > WASM_MEMORY_LIMIT {
        (
            false,
            format!(
                "needs {:.1} GB of memory in this tab ({:.1} GB of files, then {:.1} GB of weights as the engine \
                 holds them): more than the 4.3 GB a web page can have",
                gb(memory),
                gb(weight_bytes),
                gb(held)
            ),
        )
    } else {
        let amount = if memory < 1_000_000_000 {
            format!("{:.0} MB", memory as f64 / 1e6)
        } else {
            format!("{:.1} GB", gb(memory))
        };
        (true, format!("needs about {amount} of memory in this tab while loading"))
    };
    Ok(serde_json::json!({
        "parameters": parameters, "dtypes": crate::weights::stored_dtypes(stored), "shape": info,
        "weight_bytes": weight_bytes, "memory": {"fits": fits_memory, "bytes": memory, "verdict": memory_verdict},
        "webgpu": {"fits": fits, "verdict": verdict},
    }))
}

// ---- Models by hub id (`src/hub.rs` for the layout, `src/web_fetch.rs` for the bytes). ----

/// The files a hub model has, as recorded after its first load (so a visit offline knows which
/// optional files exist without asking the network).
const MANIFEST: &str = ".wgpt-files.json";

fn hub_id(id: &str, revision: Option<String>) -> Result<crate::hub::HubId, JsValue> {
    crate::hub::HubId::parse(id.trim(), revision.as_deref().filter(|r| !r.is_empty()))
        .map_err(|e| kind_err("bad-input", e))
}

fn fetch_err(e: crate::web_fetch::FetchError) -> JsValue {
    kind_err(if e.is_not_found() { "not-found" } else { "network" }, e)
}

/// What a hub model has, asked before any weights are fetched: its `config.json`, the files to
/// fetch (the weights index's shards, or one file) and each weights file's size.
struct HubListing {
    config: Vec<u8>,
    required: Vec<String>,
    optional: Vec<String>,
    /// `(name, bytes)` of each weights file.
    weights: Vec<(String, u64)>,
}

impl HubListing {
    fn weight_bytes(&self) -> u64 {
        self.weights.iter().map(|(_, b)| b).sum()
    }
}

async fn hub_listing(id: &crate::hub::HubId, base: &str) -> Result<HubListing, JsValue> {
    use crate::web_fetch::{range, size};
    let url = |f: &str| id.url(base, f);
    let config = range(&url("config.json"), 0, 1 << 20).await.map_err(fetch_err)?;
    let index = match range(&url(crate::hub::INDEX), 0, 16 << 20).await {
        Ok(b) => Some(b),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(fetch_err(e)),
    };
    let (required, optional) = crate::hub::model_files(index.as_deref()).map_err(|e| kind_err("bad-input", e))?;
    let mut weights = Vec::new();
    for f in required.iter().filter(|f| f.ends_with(".safetensors")) {
        let bytes = size(&url(f))
            .await
            .map_err(fetch_err)?
            .ok_or_else(|| kind_err("network", format!("{f}: the server gives no size")))?;
        weights.push((f.clone(), bytes));
    }
    Ok(HubListing { config, required, optional, weights })
}

/// The parameters a `config.json` of either architecture declares.
fn config_parameters(config: &[u8]) -> Result<usize, JsValue> {
    if crate::llama::is_llama_config(config) {
        crate::llama::LlamaConfig::from_json(config).map(|c| c.parameter_count())
    } else {
        GptConfig::from_json(config).map(|c| c.parameter_count())
    }
    .map_err(|e| kind_err("bad-input", e))
}

/// Whether a hub model fits this page, before its weights are fetched: `config.json`, the
/// weights index if any, each weights file's size (HEAD) and the first one's safetensors header
/// (two range requests). Same answer shape as [`inspect_bundle`], plus `files` and `total_bytes`.
/// With `file` (a `.gguf` in the model's folder), the check is of that one file: its size and
/// the first bytes that hold its metadata and tensor table.
#[wasm_bindgen]
pub async fn hub_inspect(
    base: String,
    id: String,
    revision: Option<String>,
    file: Option<String>,
) -> Result<String, JsValue> {
    use crate::web_fetch::range;
    let id = hub_id(&id, revision)?;
    if let Some(file) = gguf_arg(file)? {
        let url = id.url(&base, &file);
        let size = remote_size(&url, &file).await?;
        let f = remote_gguf_head(&url, size).await?;
        let mut info = fit_check(&f.config, &f.stored, size, Some(f.held)).await?;
        info["id"] = id.id().into();
        info["revision"] = id.revision.clone().into();
        info["files"] = serde_json::json!([{"name": file, "size": size}]);
        info["total_bytes"] = size.into();
        return Ok(info.to_string());
    }
    let listing = hub_listing(&id, &base).await?;
    let (first_name, first_size) = &listing.weights[0];
    let first = id.url(&base, first_name);
    let len = range(&first, 0, 7).await.map_err(fetch_err)?;
    let n = u64::from_le_bytes(
        len.get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| kind_err("bad-input", "a weights file shorter than 8 bytes"))?,
    );
    if n > 100 << 20 {
        return Err(kind_err("bad-input", format!("{first_name}: a safetensors header of {n} bytes")));
    }
    let head = range(&first, 0, 8 + n - 1).await.map_err(fetch_err)?;
    let total = listing.weight_bytes();
    // A header that wasm32 cannot even express (a file past 4 GiB) only matters for a model the
    // memory check has not already refused.
    let stored = match crate::weights::stored_tensors(&head, *first_size) {
        Ok(s) => s,
        Err(_) if total > WASM_MEMORY_LIMIT => vec![],
        Err(e) => return Err(kind_err("bad-input", e)),
    };
    let mut info = fit_check(&listing.config, &stored, total, None).await?;
    info["id"] = id.id().into();
    info["revision"] = id.revision.clone().into();
    info["files"] = listing.weights.iter().map(|(f, s)| serde_json::json!({"name": f, "size": s})).collect();
    info["total_bytes"] = total.into();
    Ok(info.to_string())
}

/// A `.gguf` file's path in a model's folder, if one was given.
fn gguf_arg(file: Option<String>) -> Result<Option<String>, JsValue> {
    match file.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
        None => Ok(None),
        Some(f) => crate::hub::gguf_file(f).map(Some).map_err(|e| kind_err("bad-input", e)),
    }
}

/// A remote file's size (HEAD), required.
async fn remote_size(url: &str, name: &str) -> Result<u64, JsValue> {
    crate::web_fetch::size(url)
        .await
        .map_err(fetch_err)?
        .ok_or_else(|| kind_err("network", format!("{name}: the server gives no size")))
}

/// What a remote GGUF file holds, from its first bytes: range requests of 1 MiB, then four
/// times more while its metadata and tensor table run past them, up to 64 MiB.
async fn remote_gguf_head(url: &str, size: u64) -> Result<GgufFacts, JsValue> {
    const MAX: u64 = 64 << 20;
    let mut n = 1u64 << 20;
    loop {
        let want = n.min(size).max(1);
        let head = crate::web_fetch::range(url, 0, want - 1).await.map_err(fetch_err)?;
        match crate::gguf::Gguf::parse_head(&head, size) {
            Err(crate::gguf::GgufError::Truncated(_)) if want < size && n < MAX => n *= 4,
            Err(e) => return Err(kind_err("bad-input", e)),
            Ok(_) => return gguf_head_facts(&head, size),
        }
    }
}

/// Refuses, before anything is downloaded, a model whose load would take more wasm memory than
/// a page can have: its files, then its weights as the engine holds them (`held` bytes).
fn refuse_too_large(id: &crate::hub::HubId, weight_bytes: u64, held: u64) -> Result<(), JsValue> {
    let memory = weight_bytes + held;
    if memory > WASM_MEMORY_LIMIT {
        return Err(kind_err(
            "too-large",
            format!(
                "{} needs {:.1} GB of memory in this tab ({:.1} GB of files, then its weights as the engine holds \
                 them): more than the 4.3 GB a web page can have; nothing was downloaded",
                id.id(),
                memory as f64 / 1e9,
                weight_bytes as f64 / 1e9
            ),
        ));
    }
    Ok(())
}

/// Loads a hub model on `backend` (see [`load_model`]): every file from the model cache when
/// stored, else from the hub at `base`, streamed into wasm memory with
/// `progress(file, loaded, total, cached, part, parts)` after each chunk, and stored once whole.
/// Refuses, before fetching any weights, a model this page cannot hold ([`hub_inspect`]'s
/// memory check, from the sizes the hub reports).
/// With `file`, the model is that one `.gguf` file of the folder.
#[wasm_bindgen]
pub async fn load_hub_model(
    base: String,
    id: String,
    revision: Option<String>,
    file: Option<String>,
    backend: String,
    progress: js_sys::Function,
) -> Result<String, JsValue> {
    ENGINE.with(|slot| slot.borrow_mut().take()); // free the previous model first
    let id = hub_id(&id, revision)?;
    let url = |f: &str| id.url(&base, f);
    if let Some(file) = gguf_arg(file)? {
        if !crate::web_fetch::is_stored(&url(&file)).await {
            let size = remote_size(&url(&file), &file).await?;
            let f = remote_gguf_head(&url(&file), size).await?;
            refuse_too_large(&id, size, f.held)?;
        }
        let read = read_model(&[file], Origin::Web(&url), Some(&progress)).await?;
        return install(read, &backend).await;
    }
    // The file list: recorded at the first load (works offline), else asked of the hub.
    let listed =
        crate::web_fetch::cached(&url(MANIFEST)).await.and_then(|b| serde_json::from_slice::<Vec<String>>(&b).ok());
    let names: Vec<String> = match listed {
        Some(names) => names,
        None => {
            let listing = hub_listing(&id, &base).await?;
            // The memory check, from the sizes alone, before any weights are fetched.
            let weight_bytes = listing.weight_bytes();
            let parameters = config_parameters(&listing.config)?;
            let HubListing { mut required, optional, .. } = listing;
            refuse_too_large(&id, weight_bytes, parameters as u64 * 4)?;
            for f in optional {
                match crate::web_fetch::size(&url(&f)).await {
                    Ok(_) => required.push(f),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(fetch_err(e)),
                }
            }
            required
        }
    };
    let read = read_model(&names, Origin::Web(&url), Some(&progress)).await?;
    crate::web_fetch::remember(&url(MANIFEST), &serde_json::to_vec(&names).unwrap_or_default()).await;
    install(read, &backend).await
}

#[derive(serde::Deserialize)]
#[serde(default)]
struct ReplyParams {
    temperature: f32,
    top_k: usize,
    top_p: f32,
    repetition_penalty: f32,
    seed: u64,
    max_tokens: usize,
}

impl Default for ReplyParams {
    fn default() -> Self {
        let s = SamplingParams::default();
        ReplyParams {
            temperature: s.temperature,
            top_k: s.top_k,
            top_p: s.top_p,
            repetition_penalty: 1.0,
            seed: 0,
            max_tokens: 128,
        }
    }
}

fn parse_params(json: &str) -> Result<(SamplingParams, usize), JsError> {
    let p: ReplyParams = serde_json::from_str(json).map_err(|e| JsError::new(&format!("sampling settings: {e}")))?;
    let s = SamplingParams {
        temperature: p.temperature,
        top_k: p.top_k,
        top_p: p.top_p,
        repetition_penalty: p.repetition_penalty,
        seed: p.seed,
    };
    s.validate().map_err(js_err)?;
    Ok((s, p.max_tokens))
}

/// Starts the assistant's reply to a conversation (`[{"role", "content"}, …]`) with sampling
/// settings (`{"temperature", "top_k", "top_p", "repetition_penalty", "seed", "max_tokens"}`).
#[wasm_bindgen]
pub fn chat_start(messages: String, params: String) -> Result<String, JsError> {
    let messages: Vec<Message> =
        serde_json::from_str(&messages).map_err(|e| JsError::new(&format!("conversation: {e}")))?;
    let (sampling, max_tokens) = parse_params(&params)?;
    let mut engine = take_engine()?;
    let result = (|| {
        let reserve = max_tokens.min(engine.n_ctx() / 2);
        let prompt = engine.chat_prompt(&messages, reserve).map_err(js_err)?;
        engine.start(&prompt.ids, sampling, max_tokens, prompt.stop_tokens, prompt.stop_text).map_err(js_err)?;
        Ok(serde_json::json!({"prompt_tokens": prompt.ids.len(), "dropped_turns": prompt.dropped}).to_string())
    })();
    put_engine(engine);
    result
}

/// Starts a plain continuation of `text` (the few-shot and zero-shot prompts). A prompt longer
/// than the context minus room for the reply keeps its last tokens (`dropped_tokens`), as
/// `wgpt-train eval` does.
#[wasm_bindgen]
pub fn complete_start(text: String, params: String, stop: Option<String>) -> Result<String, JsError> {
    let (sampling, max_tokens) = parse_params(&params)?;
    let mut engine = take_engine()?;
    let result = (|| {
        let mut ids = engine.tokenizer.encode(&text).map_err(js_err)?;
        let n_ctx = engine.n_ctx();
        let room = n_ctx.saturating_sub(max_tokens.min(n_ctx / 4)).max(1);
        let dropped = ids.len().saturating_sub(room);
        ids.drain(..dropped);
        let stops = engine.text.stop_tokens.clone();
        engine.start(&ids, sampling, max_tokens, stops, stop).map_err(js_err)?;
        Ok(serde_json::json!({"prompt_tokens": ids.len(), "dropped_tokens": dropped}).to_string())
    })();
    put_engine(engine);
    result
}

/// Generates up to `n` more tokens: `{"text", "tokens", "finish"}` (`finish` null while the
/// reply goes on; else `stop_token`, `max_tokens`, `context_full` or `cancelled`).
#[wasm_bindgen]
pub async fn generate_step(n: usize) -> Result<String, JsValue> {
    let mut engine = take_engine()?;
    let step = engine.step(n.max(1)).await;
    put_engine(engine);
    Ok(serde_json::to_string(&step.map_err(engine_err)?).map_err(js_err)?)
}

/// Ends the reply being generated.
#[wasm_bindgen]
pub fn stop_generation() {
    ENGINE.with(|slot| {
        if let Some(e) = slot.borrow_mut().as_mut() {
            e.stop();
        }
    });
}

/// The `k` most likely next tokens after `text`: `[{"id", "token", "p", "partial"}, …]`.
#[wasm_bindgen]
pub async fn next_tokens(text: String, k: usize) -> Result<String, JsValue> {
    let mut engine = take_engine()?;
    let result = async {
        let ids = engine.tokenizer.encode(&text).map_err(js_err)?;
        let ids = if ids.is_empty() { engine.text.start_token.into_iter().collect() } else { ids };
        let top = engine.next_token_probs(&ids, k).await.map_err(engine_err)?;
        let rows: Vec<_> = top
            .iter()
            .map(|&(id, p)| {
                // `partial`: the token is part of a character (shown as its bytes); it cannot be typed.
                let partial = engine.tokenizer.decode(&[id]).map(|t| t.contains('\u{FFFD}')).unwrap_or(true);
                serde_json::json!({"id": id, "token": engine.tokenizer.token_text(id).unwrap_or_default(), "p": p, "partial": partial})
            })
            .collect();
        Ok::<String, JsValue>(serde_json::Value::from(rows).to_string())
    }
    .await;
    put_engine(engine);
    result
}

/// Attention maps of `text`: `{"tokens": [...], "n_layer", "n_head", "maps": [layer][head·n·n]}`.
#[wasm_bindgen]
pub async fn attention_maps(text: String) -> Result<String, JsValue> {
    let mut engine = take_engine()?;
    let result = async {
        let ids = engine.tokenizer.encode(&text).map_err(js_err)?;
        let maps = engine.attention(&ids).await.map_err(engine_err)?;
        let tokens: Vec<String> = ids.iter().map(|&id| engine.tokenizer.token_text(id).unwrap_or_default()).collect();
        let s = &engine.summary;
        Ok::<String, JsValue>(
            serde_json::json!({"tokens": tokens, "n_layer": s.n_layer, "n_head": s.n_head, "maps": maps}).to_string(),
        )
    }
    .await;
    put_engine(engine);
    result
}
