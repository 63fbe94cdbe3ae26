//! A model of either architecture, validated with everything that comes with it — tokenizer,
//! chat format, end-of-generation tokens — from a folder or from its files' bytes (the page's
//! path): what the CLI and the page open. The GPT-2 bundle (`crate::bundle`) is one kind; the
//! Llama family (`config.json` `model_type` llama, mistral, qwen2, qwen3) is the other.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::bundle::{Bundle, BundleError, TokenizerFiles};
use crate::chat::{self, ChatError, ChatPrompt, Message};
use crate::chat_template::ChatTemplate;
use crate::config::GptConfig;
use crate::gpu::{Gpu, GpuError, GpuModel, GpuOptions};
use crate::llama::{self, LlamaConfig, LlamaSession, LlamaWeights};
use crate::model::LanguageModel;
use crate::quant::Activations;
use crate::tokenizer::Tokenizer;
use crate::weights::{ModelWeights, TensorInfo};

/// The weights and configuration of one architecture.
#[derive(Clone)]
pub enum Architecture {
    Gpt { config: GptConfig, weights: Arc<ModelWeights> },
    Llama { config: LlamaConfig, weights: Arc<LlamaWeights> },
}

impl Architecture {
    /// A named shape with random weights: GPT-2's sizes ([`crate::config::PRESETS`]) or a real
    /// Llama-family model's ([`crate::llama::config::PRESETS`]).
    pub fn random(shape: &str, seed: u64) -> Option<Self> {
        if let Some(config) = GptConfig::preset(shape) {
            let weights = Arc::new(ModelWeights::random(&config, seed));
            return Some(Architecture::Gpt { config, weights });
        }
        let config = LlamaConfig::preset(shape)?;
        let weights = Arc::new(LlamaWeights::random(&config, seed));
        Some(Architecture::Llama { config, weights })
    }

    /// The model with its matrices in GGML blocks (`q8_0`, `q4_0` or `q4_k`), as `wgpt quantize`
    /// writes them — what both engines read directly (the benchmarks' quantized rows) — or all in
    /// `f32`, `f16` or `bf16` (the CPU engine's `--dtype`).
    pub fn quantized(self, ty: &str) -> Result<Self, String> {
        use crate::quant::GgmlType;
        let ty = match ty {
            "q8_0" => GgmlType::Q8_0,
            "q4_0" => GgmlType::Q4_0,
            "q4_k" => GgmlType::Q4K,
            "f32" => GgmlType::F32,
            "f16" => GgmlType::F16,
            "bf16" => GgmlType::BF16,
            other => return Err(format!("{other:?}: q8_0, q4_0, q4_k, f32, f16 or bf16")),
        };
        match self {
            Architecture::Llama { config, weights } => {
                let mut w = Arc::unwrap_or_clone(weights);
                w.quantize(ty).map_err(|e| e.to_string())?;
                Ok(Architecture::Llama { config, weights: Arc::new(w) })
            }
            Architecture::Gpt { config, weights } => {
                let mut w = Arc::unwrap_or_clone(weights);
                w.quantize(ty).map_err(|e| e.to_string())?;
                Ok(Architecture::Gpt { config, weights: Arc::new(w) })
            }
        }
    }

    /// Every name [`Architecture::random`] takes, for messages.
    pub fn shape_names() -> String {
        let llama: Vec<&str> = llama::config::PRESETS.iter().map(|(n, _)| *n).collect();
        format!("{}, {}", GptConfig::preset_names(), llama.join(", "))
    }
}

/// How a conversation becomes a prompt.
pub enum ChatFormat {
    /// The project's own: ChatML where the tokenizer has its tokens, else a plain transcript.
    Builtin(chat::Template),
    /// The model's own Jinja template.
    Jinja(Box<ChatTemplate>),
}

/// The sizes a page or a `describe` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// `gpt2`, or the Llama family's `model_type`.
    pub arch: String,
    pub parameters: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub n_embd: usize,
    pub vocab_size: usize,
    /// Positions the model was made for (an engine may hold fewer).
    pub model_ctx: usize,
    /// The stored dtypes, e.g. `["BF16"]`.
    pub dtypes: Vec<String>,
}

pub struct LoadedModel {
    pub arch: Architecture,
    pub text: TextFormat,
}

/// How a model's text is written: its tokenizer, its chat format and the tokens that end it —
/// what a chat needs once the weights are on an engine.
pub struct TextFormat {
    /// Required for GPT-2 bundles; a Llama-family folder may come without one (ids in, logits out).
    pub tokenizer: Option<Tokenizer>,
    pub chat: ChatFormat,
    /// Every one of these ends generation (`config.json`'s and `generation_config.json`'s).
    pub stop_tokens: Vec<u32>,
    /// What an empty prompt starts from.
    pub start_token: Option<u32>,
}

/// A model's files by name (`config.json`, `model.safetensors` or the shards its index names,
/// `tokenizer.json`, `tokenizer_config.json`, `generation_config.json`, …).
pub type Files<'a> = BTreeMap<String, &'a [u8]>;

impl LoadedModel {
    /// Validates a model given as its files (or one `.gguf` file among them).
    pub fn from_files(files: &Files) -> Result<Self, BundleError> {
        if let Some((_, gguf)) = files.iter().find(|(name, _)| name.ends_with(".gguf")) {
            return crate::gguf::model::load(gguf);
        }
        let get = |name: &str| files.get(name).copied();
        let need =
            |name: &str| get(name).ok_or_else(|| BundleError::Io { path: name.into(), message: "missing".into() });
        let config = need("config.json")?;
        check_model_type(config)?;
        if !llama::is_llama_config(config) {
            let tokenizer = gpt2_tokenizer_files(&get)?;
            return Ok(Self::from_bundle(Bundle::from_parts(config, need("model.safetensors")?, tokenizer)?));
        }
        let config = LlamaConfig::from_json(config)?;
        let shards = weight_files(get("model.safetensors.index.json"))?;
        let bytes = shards.iter().map(|s| need(s)).collect::<Result<Vec<_>, _>>()?;
        let weights = LlamaWeights::from_files(&bytes, &config)?;
        let text = TextFormat::llama(&config, &get)?;
        Ok(LoadedModel { arch: Architecture::Llama { config, weights: Arc::new(weights) }, text })
    }

    /// [`LoadedModel::from_files`] of files given up to the model (read from disk, downloaded):
    /// the matrices stay where they lie in them — a GGUF file's, a safetensors checkpoint's
    /// (GPT-2's Conv1D matrices turned into rows in place) — so the model is held once, not as
    /// its files plus a copy.
    pub fn from_owned_files(mut owned: BTreeMap<String, Vec<u8>>) -> Result<Self, BundleError> {
        if let Some(name) = owned.keys().find(|name| name.ends_with(".gguf")).cloned() {
            return crate::gguf::model::load_owned(owned.remove(&name).expect("a key"));
        }
        let llama = match owned.get("config.json") {
            Some(config) => {
                check_model_type(config)?;
                llama::is_llama_config(config).then(|| LlamaConfig::from_json(config)).transpose()?
            }
            None => None,
        };
        let Some(config) = llama else {
            let (Some(weights), Some(config)) = (owned.remove("model.safetensors"), owned.get("config.json")) else {
                return Self::from_files(&owned.iter().map(|(n, b)| (n.clone(), b.as_slice())).collect());
            };
            let tokenizer = gpt2_tokenizer_files(&|name: &str| owned.get(name).map(Vec::as_slice))?;
            return Ok(Self::from_bundle(Bundle::from_owned_parts(config, weights, tokenizer)?));
        };
        let shards = weight_files(owned.get("model.safetensors.index.json").map(Vec::as_slice))?;
        let mut weights = Vec::with_capacity(shards.len());
        for name in &shards {
            let bytes =
                owned.remove(name).ok_or_else(|| BundleError::Io { path: name.clone(), message: "missing".into() })?;
            weights.push(Arc::new(bytes));
        }
        let weights = LlamaWeights::from_owned_files(weights, &config)?;
        let get = |name: &str| owned.get(name).map(Vec::as_slice);
        let text = TextFormat::llama(&config, &get)?;
        Ok(LoadedModel { arch: Architecture::Llama { config, weights: Arc::new(weights) }, text })
    }

    /// A GPT-2 bundle, with the project's own chat format.
    pub fn from_bundle(b: Bundle) -> Self {
        let c = &b.config;
        let text = TextFormat {
            stop_tokens: c.eos_token_id.into_iter().collect(),
            start_token: c.bos_token_id.or(c.eos_token_id),
            chat: ChatFormat::Builtin(chat::template(&b.tokenizer)),
            tokenizer: Some(b.tokenizer),
        };
        LoadedModel { arch: Architecture::Gpt { config: b.config, weights: b.weights }, text }
    }

    /// Reads a model folder: the files [`LoadedModel::from_files`] takes that are there (and
    /// the shards an index names); or a `.gguf` file.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(dir: &std::path::Path) -> Result<Self, BundleError> {
        if dir.is_file() && dir.extension().is_some_and(|e| e == "gguf") {
            return crate::gguf::model::load_owned(read(dir)?).map_err(|e| match e {
                BundleError::Io { path, message } if path == "model.gguf" => {
                    BundleError::Io { path: dir.display().to_string(), message }
                }
                other => other,
            });
        }
        if !dir.is_dir() {
            return Err(BundleError::Io { path: dir.display().to_string(), message: "not a directory".into() });
        }
        let mut names: Vec<String> = [
            "config.json",
            "model.safetensors",
            "model.safetensors.index.json",
            "tokenizer.json",
            "encoder.json",
            "vocab.bpe",
            "vocab.json",
            "merges.txt",
            "tokenizer_config.json",
            "chat_template.jinja",
            "generation_config.json",
        ]
        .map(String::from)
        .into();
        let index = dir.join("model.safetensors.index.json");
        if index.is_file() {
            let bytes = read(&index)?;
            names.extend(shard_names(&bytes)?);
        }
        let mut owned = BTreeMap::new();
        for name in names {
            let path = dir.join(&name);
            if path.is_file() {
                owned.insert(name, read(&path)?);
            }
        }
        Self::from_owned_files(owned).map_err(|e| match e {
            BundleError::Io { path, message } if !path.starts_with('/') => {
                BundleError::Io { path: dir.join(path).display().to_string(), message }
            }
            other => other,
        })
    }

    /// A session on the CPU reference engine (f32 products: [`Activations::F32`]) holding at most
    /// `max_context` positions (the Llama family; GPT-2 always holds its whole learned table).
    pub fn cpu(&self, max_context: usize) -> Box<dyn LanguageModel> {
        self.cpu_with(max_context, Activations::F32)
    }

    /// [`LoadedModel::cpu`] multiplying quantized matrices with `activations` (8-bit: the fast
    /// path the CLI and the page run).
    pub fn cpu_with(&self, max_context: usize, activations: Activations) -> Box<dyn LanguageModel> {
        match &self.arch {
            Architecture::Gpt { config, weights } => {
                Box::new(crate::CpuSession::new(config.clone(), weights.clone()).with_activations(activations))
            }
            Architecture::Llama { config, weights } => Box::new(
                LlamaSession::new(config.clone(), weights.clone())
                    .with_context(max_context)
                    .with_activations(activations),
            ),
        }
    }

    /// The model on the WGSL engine (checked against the device first: [`crate::gpu::Plan`]).
    pub fn gpu(&self, gpu: Arc<Gpu>, options: GpuOptions) -> Result<GpuModel, GpuError> {
        match &self.arch {
            Architecture::Gpt { config, weights } => GpuModel::on(gpu, config, weights, options),
            Architecture::Llama { config, weights } => GpuModel::on_llama(gpu, config, weights, options),
        }
    }

    pub fn summary(&self) -> Summary {
        match &self.arch {
            Architecture::Gpt { config: c, weights } => Summary {
                arch: "gpt2".into(),
                parameters: c.parameter_count(),
                n_layer: c.n_layer,
                n_head: c.n_head,
                n_kv_head: c.n_head,
                n_embd: c.n_embd,
                vocab_size: c.vocab_size,
                model_ctx: c.n_positions,
                dtypes: weights.stored_dtypes().into_iter().map(String::from).collect(),
            },
            Architecture::Llama { config: c, weights } => Summary {
                arch: c.model_type.clone(),
                parameters: c.parameter_count(),
                n_layer: c.num_hidden_layers,
                n_head: c.num_attention_heads,
                n_kv_head: c.num_key_value_heads,
                n_embd: c.hidden_size,
                vocab_size: c.vocab_size,
                model_ctx: c.max_position_embeddings,
                dtypes: crate::weights::stored_dtypes(&weights.stored).into_iter().map(String::from).collect(),
            },
        }
    }

    /// The tensors as stored.
    pub fn stored(&self) -> &[TensorInfo] {
        match &self.arch {
            Architecture::Gpt { weights, .. } => &weights.stored,
            Architecture::Llama { weights, .. } => &weights.stored,
        }
    }
}

impl TextFormat {
    /// A Llama-family model's text format from its files (`tokenizer.json`,
    /// `tokenizer_config.json` / `chat_template.jinja`, `generation_config.json`; each optional).
    pub(crate) fn llama<'f>(config: &LlamaConfig, get: &dyn Fn(&str) -> Option<&'f [u8]>) -> Result<Self, BundleError> {
        let tokenizer = get("tokenizer.json").map(Tokenizer::from_json).transpose()?;
        if let Some(tok) = &tokenizer {
            tok.check_fits(config.vocab_size)?;
        }
        let chat = Self::chat_format(tokenizer.as_ref(), get)?;
        let mut stop_tokens = config.eos_token_ids.clone();
        if let Some(bytes) = get("generation_config.json") {
            stop_tokens.extend(generation_eos(bytes, config.vocab_size)?);
        }
        stop_tokens.sort_unstable();
        stop_tokens.dedup();
        let start_token = config.bos_token_id.or(stop_tokens.first().copied());
        Ok(TextFormat { tokenizer, chat, stop_tokens, start_token })
    }

    /// The model's own template (`tokenizer_config.json`'s `chat_template` or
    /// `chat_template.jinja`), else the project's format for this tokenizer.
    pub(crate) fn chat_format<'f>(
        tokenizer: Option<&Tokenizer>,
        get: &dyn Fn(&str) -> Option<&'f [u8]>,
    ) -> Result<ChatFormat, BundleError> {
        let chat = match (get("tokenizer_config.json"), get("chat_template.jinja")) {
            (None, None) => None,
            (tc, jinja) => {
                let jinja = jinja.map(|j| String::from_utf8_lossy(j).into_owned());
                match ChatTemplate::from_config(tc.unwrap_or(b"{}"), jinja.as_deref()) {
                    Ok(t) => Some(ChatFormat::Jinja(Box::new(t))),
                    Err(crate::chat_template::TemplateError::Missing) => None,
                    Err(e) => return Err(BundleError::Template(e)),
                }
            }
        };
        Ok(chat.unwrap_or_else(|| ChatFormat::Builtin(tokenizer.map_or(chat::Template::Plain, chat::template))))
    }

    /// No tokenizer: a model that is only run on ids (the benchmarks' random ones).
    pub fn none() -> Self {
        TextFormat {
            tokenizer: None,
            chat: ChatFormat::Builtin(chat::Template::Plain),
            stop_tokens: vec![],
            start_token: None,
        }
    }

    pub fn tokenizer(&self) -> Result<&Tokenizer, BundleError> {
        self.tokenizer.as_ref().ok_or_else(|| BundleError::NoTokenizer("the model".into()))
    }

    /// The prompt for the assistant's next reply within `n_ctx` positions, leaving `reserve`.
    pub fn chat_prompt(&self, messages: &[Message], n_ctx: usize, reserve: usize) -> Result<ChatPrompt, ChatError> {
        let tok = self.tokenizer.as_ref().ok_or(ChatError::NoTokenizer)?;
        self.chat_prompt_with(tok, messages, n_ctx, reserve)
    }

    /// [`TextFormat::chat_prompt`] with the tokenizer held elsewhere (the page's engine holds it).
    pub fn chat_prompt_with(
        &self,
        tok: &Tokenizer,
        messages: &[Message],
        n_ctx: usize,
        reserve: usize,
    ) -> Result<ChatPrompt, ChatError> {
        match &self.chat {
            ChatFormat::Jinja(t) => chat::build_template_prompt(tok, t, &self.stop_tokens, messages, n_ctx, reserve),
            ChatFormat::Builtin(_) => {
                let mut p = chat::build_prompt(tok, self.stop_tokens.first().copied(), messages, n_ctx, reserve)?;
                p.stop_tokens.extend(&self.stop_tokens);
                p.stop_tokens.sort_unstable();
                p.stop_tokens.dedup();
                Ok(p)
            }
        }
    }

    /// `chatml`, `plain` or `jinja`: which format [`LoadedModel::chat_prompt`] uses.
    pub fn chat_format_name(&self) -> &'static str {
        match &self.chat {
            ChatFormat::Builtin(chat::Template::ChatMl { .. }) => "chatml",
            ChatFormat::Builtin(chat::Template::Plain) => "plain",
            ChatFormat::Jinja(_) => "jinja",
        }
    }
}

/// A GPT-2 checkpoint's tokenizer among its files: `tokenizer.json`, else GPT-2's own
/// `encoder.json` + `vocab.bpe` (or `vocab.json` + `merges.txt`).
fn gpt2_tokenizer_files<'a>(get: &dyn Fn(&str) -> Option<&'a [u8]>) -> Result<TokenizerFiles<'a>, BundleError> {
    Ok(match (get("tokenizer.json"), get("encoder.json"), get("vocab.bpe")) {
        (Some(json), ..) => TokenizerFiles::Json(json),
        (None, Some(vocab), Some(merges)) => TokenizerFiles::Gpt2 { vocab, merges },
        _ => match (get("vocab.json"), get("merges.txt")) {
            (Some(vocab), Some(merges)) => TokenizerFiles::Gpt2 { vocab, merges },
            _ => return Err(BundleError::NoTokenizer("the model's files".into())),
        },
    })
}

/// The files a Llama-family checkpoint's weights are in: the shards its index names, or
/// `model.safetensors`.
fn weight_files(index: Option<&[u8]>) -> Result<Vec<String>, BundleError> {
    index.map_or_else(|| Ok(vec!["model.safetensors".into()]), shard_names)
}

/// The shard files `model.safetensors.index.json` names, each once, sorted; a name with a path
/// in it is refused (shards live beside the index).
pub fn shard_names(index: &[u8]) -> Result<Vec<String>, BundleError> {
    let io = |message: String| BundleError::Io { path: "model.safetensors.index.json".into(), message };
    let v: serde_json::Value = serde_json::from_slice(index).map_err(|e| io(format!("not JSON: {e}")))?;
    let map = v["weight_map"].as_object().ok_or_else(|| io("no `weight_map`".into()))?;
    let mut shards: Vec<String> = map.values().filter_map(|f| f.as_str().map(String::from)).collect();
    shards.sort_unstable();
    shards.dedup();
    if shards.iter().any(|s| s.contains('/') || s.contains('\\') || s.starts_with('.')) {
        return Err(io("a shard name is a path; shards live beside the index".into()));
    }
    if shards.is_empty() {
        return Err(io("`weight_map` names no files".into()));
    }
    Ok(shards)
}

/// `model_type`s of the GPT-2 bundle (absent in the project's own early bundles).
const GPT_MODEL_TYPES: [&str; 2] = ["gpt2", "openai-gpt"];

/// Refuses a `config.json` of an architecture neither engine runs, by name, before anything else
/// is read.
fn check_model_type(config: &[u8]) -> Result<(), BundleError> {
    let v: serde_json::Value =
        serde_json::from_slice(config).map_err(|e| crate::config::ConfigError::Json(e.to_string()))?;
    match v["model_type"].as_str() {
        None => Ok(()),
        Some(t) if GPT_MODEL_TYPES.contains(&t) || llama::config::MODEL_TYPES.contains(&t) => Ok(()),
        Some(t) => Err(crate::config::ConfigError::Unsupported {
            key: "model_type",
            value: format!(
                "{t:?} (wgpt runs {} and {})",
                GPT_MODEL_TYPES.join(", "),
                llama::config::MODEL_TYPES.join(", ")
            ),
        }
        .into()),
    }
}

/// `generation_config.json`'s `eos_token_id` (one id or a list), the ids inside the vocabulary.
fn generation_eos(bytes: &[u8], vocab: usize) -> Result<Vec<u32>, BundleError> {
    let io = |message: String| BundleError::Io { path: "generation_config.json".into(), message };
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| io(format!("not JSON: {e}")))?;
    let ids: Vec<u64> = match &v["eos_token_id"] {
        serde_json::Value::Array(list) => list.iter().filter_map(|x| x.as_u64()).collect(),
        x => x.as_u64().into_iter().collect(),
    };
    Ok(ids.into_iter().filter(|&i| (i as usize) < vocab).map(|i| i as u32).collect())
}

/// A model file's bytes, read whole into a buffer that asks Linux for transparent huge pages
/// first ([`ask_huge_pages`]).
#[cfg(not(target_arch = "wasm32"))]
fn read(path: &std::path::Path) -> Result<Vec<u8>, BundleError> {
    use std::io::Read;
    let io = |e: std::io::Error| BundleError::Io { path: path.display().to_string(), message: e.to_string() };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = usize::try_from(file.metadata().map_err(io)?.len()).unwrap_or(usize::MAX);
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(len).map_err(|e| io(std::io::Error::new(std::io::ErrorKind::OutOfMemory, e)))?;
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    ask_huge_pages(bytes.spare_capacity_mut());
    file.read_to_end(&mut bytes).map_err(io)?;
    Ok(bytes)
}

/// Asks Linux to back the whole 2 MiB pages inside `buf` with huge pages (`MADV_HUGEPAGE`; most
/// distributions enable them only where asked). A decode step reads every weight once: in
/// 4 KiB pages that is a TLB miss every 4 KiB (22,000 for GPT-2 Q4_0's 90 MB), in 2 MiB pages
/// 45, and decode ran 8 % faster (CHANGELOG.md, session 31). Nothing changes where the kernel says no.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn ask_huge_pages(buf: &mut [std::mem::MaybeUninit<u8>]) {
    const HUGE: usize = 2 << 20;
    let at = buf.as_ptr() as usize;
    let (start, end) = (at.next_multiple_of(HUGE), (at + buf.len()) / HUGE * HUGE);
    if end > start {
        // SAFETY: the range lies inside `buf`, which is borrowed mutably; the advice changes how
        // the kernel backs those pages, not what they hold.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

impl From<Bundle> for LoadedModel {
    fn from(b: Bundle) -> Self {
        LoadedModel::from_bundle(b)
    }
}
