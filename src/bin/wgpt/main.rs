//! `wgpt`: generate, chat, tokenize, logits, inspect, chat-template and bench on a model folder (a
//! GPT-2 bundle or a Llama-family model). The JSON shapes of tokenize, logits, inspect and
//! chat-template are stable: scripts and benchmarks call them.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    malloc_settings();
    match cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// glibc malloc's settings for the engine, each unless its environment variable
/// (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`) says otherwise:
/// - One arena for the whole process. The CPU engine's passes run on the thread pool's workers,
///   and glibc gives each thread that allocates an arena of its own: the KV cache's pages and
///   each pass's buffers spread over several heaps, each with a high-water mark of its own
///   (SmolLM2-135M Q4_0 decoding 256 tokens peaked 1–3 MB higher: `benches/load_memory.sh`). The
///   engine allocates a few buffers per product, not per value: on 2 threads `wgpt bench`
///   decodes as fast with one arena.
/// - Buffers up to 32 MiB from the heap, and the heap's free top kept. A long prompt's passes
///   allocate buffers of megabytes per layer (a 960-token prompt's MLP: 6 MB each); glibc
///   mapped each afresh (its threshold rises only as far as the last freed one) or trimmed the
///   heap after it, so every pass wrote to new pages, and the kernel's faults and zeroing took
///   13 % of a 960-token SmolLM2 prefill, 20 % of its time (`perf`). Peak memory is the same:
///   only what is freed stays.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn malloc_settings() {
    let set = |variable: &str, parameter: libc::c_int, value: libc::c_int| {
        if std::env::var_os(variable).is_none() {
            // SAFETY: first thing in `main`, before any other thread; it sets one malloc parameter.
            unsafe { libc::mallopt(parameter, value) };
        }
    };
    set("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 1);
    set("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 32 << 20);
    set("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
}

#[cfg(all(not(target_arch = "wasm32"), not(all(target_os = "linux", target_env = "gnu"))))]
fn malloc_settings() {}

#[cfg(not(target_arch = "wasm32"))]
mod bench;
#[cfg(not(target_arch = "wasm32"))]
mod chat;
#[cfg(not(target_arch = "wasm32"))]
mod download;
#[cfg(not(target_arch = "wasm32"))]
mod perplexity;
#[cfg(not(target_arch = "wasm32"))]
mod quantize;

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use std::io::{BufWriter, Write};
    use std::path::PathBuf;
    use std::time::Instant;

    use anyhow::{Context, Result, bail};
    use clap::{Args, Parser, Subcommand};
    use serde_json::json;
    use wgpt::generate::{GenerateParams, generate};
    use wgpt::gpu::{GpuOptions, WeightFormat};
    use wgpt::loaded::Architecture;
    use wgpt::model::block_on;
    use wgpt::{ForwardOptions, LanguageModel, LoadedModel, SamplingParams};

    use crate::download::model_dir;

    /// Which engine runs the model.
    #[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
    pub enum Backend {
        /// The plain-Rust CPU reference.
        Cpu,
        /// The WGSL engine on the default GPU adapter.
        Gpu,
    }

    #[derive(Args)]
    pub struct EngineArgs {
        #[arg(long, value_enum, default_value = "cpu")]
        pub backend: Backend,
        /// How the engine holds the matrices: f32, f16, q8_0, q4_0 or q4_k (GGML blocks;
        /// converted at load where the file holds something else).
        /// Default: as stored where the engine can (blocks; F16/BF16 on the CPU, f16 on the GPU), else f32.
        #[arg(long)]
        pub dtype: Option<WeightFormat>,
        /// How the CPU engine multiplies quantized matrices: q8 (the activations quantized to 8
        /// bits per block of 32, integer products, as llama.cpp does: faster for Q4_0 and Q4_K,
        /// not exact; a prompt's rows so only for Q4_0 and Q4_K on x86-64, other prompts in f32)
        /// or f32 (the reference: exact to the decoded weights).
        #[arg(long, default_value = "q8")]
        pub activations: wgpt::quant::Activations,
        /// Positions the engine holds for a Llama-family model (default 4096, or the model's own
        /// limit if smaller): its KV cache is sized to this, not to the 32 k – 128 k it claims.
        #[arg(long)]
        pub context: Option<usize>,
    }

    impl EngineArgs {
        pub fn gpu_options(&self) -> Result<GpuOptions> {
            if self.context == Some(0) {
                bail!("--context must be at least 1");
            }
            Ok(GpuOptions { format: self.dtype, max_context: self.context, ..Default::default() })
        }

        /// The model as `--dtype` asks: q8_0, q4_0 and q4_k quantize the float matrices as `wgpt
        /// quantize` does (the embedding and head in Q8_0), for either engine; f32 and f16 are
        /// the GPU's upload format, and on the CPU every matrix held in that type.
        pub fn arch_for(&self, arch: Architecture) -> Result<Architecture> {
            match self.dtype {
                Some(f @ (WeightFormat::F32 | WeightFormat::F16)) if self.backend == Backend::Cpu => {
                    arch.quantized(&f.to_string()).map_err(|e| anyhow::anyhow!("--dtype {e}"))
                }
                Some(q @ (WeightFormat::Q8_0 | WeightFormat::Q4_0 | WeightFormat::Q4K)) => {
                    arch.quantized(&q.to_string()).map_err(|e| anyhow::anyhow!("--dtype {e}"))
                }
                _ => Ok(arch),
            }
        }

        fn max_context(&self) -> usize {
            self.context.unwrap_or(wgpt::llama::DEFAULT_MAX_CONTEXT)
        }
    }

    /// The engine `--backend` names, with the model loaded into it; the GPU says what it runs on.
    pub fn engine(model: &LoadedModel, args: &EngineArgs) -> Result<Box<dyn LanguageModel>> {
        let options = args.gpu_options()?;
        let model = LoadedModel { arch: args.arch_for(model.arch.clone())?, text: wgpt::loaded::TextFormat::none() };
        Ok(match args.backend {
            Backend::Cpu => model.cpu_with(args.max_context(), args.activations),
            Backend::Gpu => {
                let gpu = std::sync::Arc::new(block_on(wgpt::gpu::Gpu::new())?);
                let gpu_model = model.gpu(gpu, options)?;
                eprintln!("[{}]", gpu_model.describe());
                Box::new(gpu_model)
            }
        })
    }

    #[derive(Parser)]
    #[command(
        name = "wgpt",
        version,
        about = "GPT inference on a model bundle (config.json + model.safetensors + tokenizer)"
    )]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Continue a prompt, streaming the generated text to stdout.
        Generate(GenerateArgs),
        /// Chat in the terminal, reply by reply, with the model's own chat template.
        Chat(crate::chat::ChatArgs),
        /// Download a model from a hub (ORG/NAME) into the local cache; `--model ORG/NAME` then
        /// works in every command.
        Download(crate::download::DownloadArgs),
        /// Score a text: tokens, mean negative log-likelihood and perplexity (and top-1 agreement
        /// with a reference model).
        Perplexity(crate::perplexity::PerplexityArgs),
        /// Write a model as one GGUF file, its matrices in f32, f16, q8_0, q4_0 or q4_k.
        Quantize(crate::quantize::QuantizeArgs),
        /// Print the token ids of a text.
        Tokenize {
            #[arg(long)]
            model: PathBuf,
            #[arg(long)]
            text: String,
            /// Print `{"ids":[...]}`.
            #[arg(long)]
            json: bool,
        },
        /// Print the logits at every position (the full vocabulary).
        Logits {
            #[arg(long)]
            model: PathBuf,
            #[command(flatten)]
            input: Input,
            /// Print `{"ids":[...],"logits":[[...],...]}`.
            #[arg(long)]
            json: bool,
            #[command(flatten)]
            engine: EngineArgs,
        },
        /// Measure prefill and decode speed, dispatches per token and decode efficiency.
        Bench(crate::bench::BenchArgs),
        /// Print the config, parameter count, dtypes and sizes of a bundle.
        Inspect {
            #[arg(long)]
            model: PathBuf,
            #[arg(long)]
            json: bool,
        },
        /// Render a conversation with the model's own chat template (tokenizer_config.json's
        /// `chat_template`, or chat_template.jinja) as HF `apply_chat_template` does.
        ChatTemplate {
            /// A folder with tokenizer.json and tokenizer_config.json (weights are not needed).
            #[arg(long)]
            model: PathBuf,
            /// A JSON file: `[{"role": "user", "content": "…"}, …]`.
            #[arg(long)]
            messages: PathBuf,
            /// End after the last message instead of where the assistant's reply begins.
            #[arg(long)]
            no_generation_prompt: bool,
            /// Print `{"text": "…", "ids": [...]}`.
            #[arg(long)]
            json: bool,
        },
    }

    #[derive(Args)]
    #[group(required = true, multiple = false)]
    struct Input {
        /// Comma-separated token ids, e.g. 1,2,3.
        #[arg(long)]
        ids: Option<String>,
        /// Text to tokenize.
        #[arg(long)]
        prompt: Option<String>,
    }

    /// Sampling settings (`generate`, `chat`).
    #[derive(Args)]
    pub struct Sampling {
        /// 0 = greedy.
        #[arg(long, allow_negative_numbers = true, default_value_t = SamplingParams::default().temperature)]
        temperature: f32,
        /// 0 = no limit.
        #[arg(long, default_value_t = SamplingParams::default().top_k)]
        top_k: usize,
        #[arg(long, allow_negative_numbers = true, default_value_t = SamplingParams::default().top_p)]
        top_p: f32,
        #[arg(long, allow_negative_numbers = true, default_value_t = SamplingParams::default().repetition_penalty)]
        repetition_penalty: f32,
        /// Random seed; without it one is drawn and printed, so any run can be repeated.
        #[arg(long)]
        seed: Option<u64>,
    }

    impl Sampling {
        /// The validated parameters, and the seed (drawn when not given).
        pub fn params(&self) -> Result<(SamplingParams, u64)> {
            let seed = self.seed.unwrap_or_else(|| {
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
            });
            let params = SamplingParams {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                repetition_penalty: self.repetition_penalty,
                seed,
            };
            params.validate()?;
            Ok((params, seed))
        }
    }

    #[derive(Args)]
    struct GenerateArgs {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value_t = 100)]
        max_tokens: usize,
        #[command(flatten)]
        sampling: Sampling,
        /// Print the prompt before the continuation.
        #[arg(long)]
        echo: bool,
        /// Do not stop at the end-of-text token.
        #[arg(long)]
        ignore_eos: bool,
        #[command(flatten)]
        engine: EngineArgs,
    }

    pub fn run() -> Result<()> {
        match Cli::parse().command {
            Command::Generate(args) => run_generate(args),
            Command::Chat(args) => crate::chat::run(args),
            Command::Download(args) => crate::download::run(args),
            Command::Tokenize { model, text, json } => {
                let tok = tokenizer(&model_dir(&model)?)?;
                let ids = tok.encode(&text)?;
                if json {
                    println!("{}", json!({ "ids": ids }));
                } else {
                    for id in ids {
                        println!("{id}\t{:?}", tok.token_text(id)?);
                    }
                }
                Ok(())
            }
            Command::Logits { model, input, json, engine } => run_logits(model, input, json, engine),
            Command::Bench(args) => crate::bench::run(args),
            Command::Perplexity(args) => crate::perplexity::run(args),
            Command::Quantize(args) => crate::quantize::run(args),
            Command::Inspect { model, json } => run_inspect(model_dir(&model)?, json),
            Command::ChatTemplate { model, messages, no_generation_prompt, json } => {
                run_chat_template(model_dir(&model)?, messages, !no_generation_prompt, json)
            }
        }
    }

    /// A `.gguf` file (whose metadata holds everything).
    fn is_gguf(model: &std::path::Path) -> bool {
        model.is_file() && model.extension().is_some_and(|e| e == "gguf")
    }

    /// The model's tokenizer, without loading its weights where they are apart from it.
    fn tokenizer(model: &std::path::Path) -> Result<wgpt::Tokenizer> {
        if is_gguf(model) {
            return open(model)?.text.tokenizer.context("the model has no tokenizer");
        }
        Ok(wgpt::bundle::load_tokenizer(model)?)
    }

    fn run_chat_template(model: PathBuf, messages: PathBuf, generation_prompt: bool, json: bool) -> Result<()> {
        let template = if is_gguf(&model) {
            match open(&model)?.text.chat {
                wgpt::loaded::ChatFormat::Jinja(t) => *t,
                wgpt::loaded::ChatFormat::Builtin(_) => bail!("{}: no chat template in the file", model.display()),
            }
        } else {
            let read = |name: &str| {
                let path = model.join(name);
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
            };
            let config = read("tokenizer_config.json")?;
            let jinja = std::fs::read_to_string(model.join("chat_template.jinja")).ok();
            wgpt::chat_template::ChatTemplate::from_config(&config, jinja.as_deref())
                .with_context(|| model.display().to_string())?
        };
        let conversation: Vec<wgpt::chat::Message> = serde_json::from_slice(
            &std::fs::read(&messages).with_context(|| format!("cannot read {}", messages.display()))?,
        )
        .with_context(|| format!("{}: not a list of {{\"role\", \"content\"}} messages", messages.display()))?;
        let text = template.render(&conversation, generation_prompt)?;
        let tok = tokenizer(&model)?;
        let ids = tok.encode(&text)?;
        if json {
            println!("{}", json!({ "text": text, "ids": ids }));
        } else {
            print!("{text}");
        }
        Ok(())
    }

    /// A model folder of either architecture (a GPT-2 bundle, or `model_type` llama, mistral,
    /// qwen2, qwen3) — or the ORG/NAME of a downloaded one — validated.
    pub fn open(dir: &std::path::Path) -> Result<LoadedModel> {
        let dir = model_dir(dir)?;
        LoadedModel::load(&dir).with_context(|| format!("cannot load the model {}", dir.display()))
    }

    fn run_generate(a: GenerateArgs) -> Result<()> {
        let (sampling, seed) = a.sampling.params()?;
        a.engine.gpu_options()?;
        let mut loaded = open(&a.model)?;
        let mut model = engine(&loaded, &a.engine)?;
        let tok = loaded.text.tokenizer.take().context("the model folder has no tokenizer.json")?;
        let mut ids = tok.encode(&a.prompt)?;
        if ids.is_empty() {
            // An empty prompt starts from the model's bos (or eos) token, as GPT-2's samples do.
            ids.extend(loaded.text.start_token);
        }
        let stop_tokens = if a.ignore_eos { vec![] } else { loaded.text.stop_tokens.clone() };
        let params = GenerateParams { max_tokens: a.max_tokens, sampling, stop_tokens };
        let mut stdout = std::io::stdout().lock();
        if a.echo {
            write!(stdout, "{}", a.prompt)?;
        }
        let start = Instant::now();
        let mut write_err = None;
        let out = generate(&mut *model, &tok, &ids, &params, |piece| {
            // A closed pipe (`| head`) ends generation quietly rather than with a panic.
            match stdout.write_all(piece.as_bytes()).and_then(|_| stdout.flush()) {
                Ok(()) => true,
                Err(e) => {
                    write_err = Some(e);
                    false
                }
            }
        })?;
        if write_err.is_none() {
            writeln!(stdout)?;
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "[{} prompt + {} generated tokens in {:.2} s ({:.1} tokens/s), finish: {:?}, seed {}]",
            ids.len(),
            out.ids.len(),
            secs,
            out.ids.len() as f64 / secs.max(1e-9),
            out.finish,
            seed
        );
        // What the engine holds now, for the peak-memory benchmark (benches/load_memory.sh).
        let held = model.footprint();
        eprintln!("[held: weights {} bytes, KV cache and buffers {} bytes]", held.weights, held.scratch);
        Ok(())
    }

    /// The stored tensors as `inspect --json` lists them.
    fn tensors_json(stored: &[wgpt::weights::TensorInfo]) -> Vec<serde_json::Value> {
        stored.iter().map(|t| json!({ "name": t.name, "dtype": t.dtype, "shape": t.shape, "bytes": t.bytes })).collect()
    }

    /// `inspect` of a Llama-family folder: its shape, parameters and tensors.
    fn inspect_llama(
        dir: &std::path::Path,
        c: &wgpt::llama::LlamaConfig,
        w: &wgpt::llama::LlamaWeights,
        json: bool,
    ) -> Result<()> {
        let bytes: usize = w.stored.iter().map(|t| t.bytes).sum();
        let dtypes = wgpt::weights::stored_dtypes(&w.stored);
        let params = c.parameter_count();
        if json {
            let tensors = tensors_json(&w.stored);
            let v = json!({ "model_type": c.model_type, "parameters": params, "dtypes": dtypes,
                "weight_bytes": bytes, "tensors": tensors });
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!("model        {} ({})", dir.display(), c.model_type);
            println!(
                "shape        {} layers, {} heads ({} key/value), hidden {}, head_dim {}, MLP {}, context {}, vocab {}",
                c.num_hidden_layers,
                c.num_attention_heads,
                c.num_key_value_heads,
                c.hidden_size,
                c.head_dim,
                c.intermediate_size,
                c.max_position_embeddings,
                c.vocab_size
            );
            println!(
                "block        RMSNorm, rotary θ {} ({:?}), SwiGLU{}{}, tied head: {}",
                c.rope_theta,
                c.rope_scaling,
                if c.qkv_bias { ", q/k/v biases" } else { "" },
                if c.qk_norm { ", q/k RMSNorm" } else { "" },
                c.tie_word_embeddings
            );
            println!("parameters   {params} ({:.2} M)", params as f64 / 1e6);
            println!("weights      {} tensors, {} ({:.2} MB)", w.stored.len(), dtypes.join("+"), bytes as f64 / 1e6);
            println!("tokens       bos {:?}, eos {:?}", c.bos_token_id, c.eos_token_ids);
        }
        Ok(())
    }

    fn parse_ids(s: &str) -> Result<Vec<u32>> {
        s.split(',')
            .map(|t| t.trim().parse::<u32>().with_context(|| format!("--ids: {t:?} is not a token id")))
            .collect()
    }

    fn run_logits(model: PathBuf, input: Input, json: bool, engine: EngineArgs) -> Result<()> {
        engine.gpu_options()?;
        let loaded = open(&model)?;
        let mut session = self::engine(&loaded, &engine)?;
        let ids = match (input.ids, input.prompt) {
            (Some(ids), _) => parse_ids(&ids)?,
            (None, Some(text)) => loaded.text.tokenizer()?.encode(&text)?,
            (None, None) => bail!("give --ids or --prompt"),
        };
        if ids.is_empty() {
            bail!("the input has no tokens");
        }
        let all_logits = ForwardOptions { all_logits: true, ..Default::default() };
        let logits = block_on(session.forward(&ids, all_logits))?.logits.clone();
        let vocab = session.vocab_size();
        let mut w = BufWriter::new(std::io::stdout().lock());
        if json {
            let rows: Vec<&[f32]> = logits.chunks_exact(vocab).collect();
            serde_json::to_writer(&mut w, &json!({ "ids": ids, "logits": rows }))?;
            writeln!(w)?;
        } else {
            for (t, row) in logits.chunks_exact(vocab).enumerate() {
                let mut top: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
                top.sort_by(|a, b| b.1.total_cmp(&a.1));
                let text = |id: u32| {
                    loaded.text.tokenizer.as_ref().and_then(|tok| tok.token_text(id).ok()).unwrap_or_default()
                };
                let top: Vec<String> =
                    top[..5.min(vocab)].iter().map(|&(i, l)| format!("{:?} {l:.3}", text(i as u32))).collect();
                writeln!(w, "{t}\t{}\t{:?}\t-> {}", ids[t], text(ids[t]), top.join(", "))?;
            }
        }
        w.flush()?;
        Ok(())
    }

    fn run_inspect(model: PathBuf, json: bool) -> Result<()> {
        let loaded = open(&model)?;
        match &loaded.arch {
            wgpt::loaded::Architecture::Llama { config, weights } => inspect_llama(&model, config, weights, json),
            wgpt::loaded::Architecture::Gpt { config, weights } => {
                let id_bound = loaded.text.tokenizer.as_ref().map(|t| t.id_bound());
                inspect_gpt(&model, config, weights, id_bound, json)
            }
        }
    }

    fn inspect_gpt(
        model: &std::path::Path,
        c: &wgpt::GptConfig,
        w: &wgpt::weights::ModelWeights,
        id_bound: Option<u32>,
        json: bool,
    ) -> Result<()> {
        let bytes: usize = w.stored.iter().map(|t| t.bytes).sum();
        let dtypes = w.stored_dtypes();
        let params = c.parameter_count();
        if json {
            let tensors = tensors_json(&w.stored);
            let cfg: serde_json::Value = serde_json::from_str(&c.to_json())?;
            let v = json!({ "config": cfg, "parameters": params, "dtypes": dtypes,
                "weight_bytes": bytes, "tokenizer_ids": id_bound, "tensors": tensors });
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!("model        {}", model.display());
            println!(
                "shape        {} layers, {} heads, n_embd {}, n_inner {}, context {}, vocab {}",
                c.n_layer, c.n_head, c.n_embd, c.n_inner, c.n_positions, c.vocab_size
            );
            println!(
                "block        {:?}-LN, {}, tied head: {}",
                c.layer_norm_position, c.activation_function, c.tie_word_embeddings
            );
            println!("parameters   {params} ({:.2} M)", params as f64 / 1e6);
            println!("weights      {} tensors, {} ({:.2} MB)", w.stored.len(), dtypes.join("+"), bytes as f64 / 1e6);
            println!("tokenizer    {} ids, bos {:?}, eos {:?}", id_bound.unwrap_or(0), c.bos_token_id, c.eos_token_id);
        }
        Ok(())
    }
}
