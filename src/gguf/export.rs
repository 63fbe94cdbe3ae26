//! A model as a GGUF file, optionally quantized: `wgpt quantize`. The file is what llama.cpp's
//! converter and `llama-quantize` write for the same model — its metadata keys and types, its
//! tensor names, the q/k row order llama.cpp's `llama` architecture expects, GPT-2's matrices as
//! `[out, in]` — so llama.cpp loads it and wgpt's GGUF loader reads it back.
//!
//! What is kept at higher precision, as llama.cpp does by default: norms and biases in F32, the
//! learned position table in F32, and with Q4_0 and Q4_K the token embedding and the head in Q8_0
//! (they are read for every token; 4 bits cost them most). A matrix whose rows are not whole
//! blocks of 32 stays in F16; with Q4_K, one whose rows are not whole super-blocks of 256 is
//! written in Q8_0 (llama.cpp falls back to Q5_0 there, a format wgpt reads but does not write).

use crate::bundle::BundleError;
use crate::loaded::{Architecture, ChatFormat, LoadedModel};
use crate::quant::{GgmlType, QuantError, quantize_q4_0, quantize_q4k, quantize_q8_0};
use crate::weights::Tensor;

use super::write::{Meta, TensorOut, to_bytes};

/// How many tensors a file holds in each type.
pub type TypeCounts = Vec<(GgmlType, usize)>;

/// The precision `wgpt quantize --to` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    F32,
    F16,
    Q8_0,
    Q4_0,
    Q4K,
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "f32" => Target::F32,
            "f16" => Target::F16,
            "q8_0" => Target::Q8_0,
            "q4_0" => Target::Q4_0,
            "q4_k" => Target::Q4K,
            other => return Err(format!("unknown type {other:?} (f32, f16, q8_0, q4_0 or q4_k)")),
        })
    }
}

impl Target {
    /// GGUF's `general.file_type` (llama.cpp's `LLAMA_FTYPE_*`).
    fn file_type(self) -> u32 {
        match self {
            Target::F32 => 0,
            Target::F16 => 1,
            Target::Q4_0 => 2,
            Target::Q8_0 => 7,
            Target::Q4K => 14, // MOSTLY_Q4_K_S: Q4_K throughout, no Q6_K mix
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Unsupported(String),
    #[error("tensor `{name}`: {source}")]
    Quantize { name: String, source: QuantError },
    #[error(transparent)]
    Model(#[from] BundleError),
}

/// The GGUF file of `model` with its matrices in `target`; and how many tensors each type holds.
pub fn export(model: &LoadedModel, target: Target) -> Result<(Vec<u8>, TypeCounts), ExportError> {
    let (arch, mut meta, tensors) = match &model.arch {
        Architecture::Llama { config: c, weights } => {
            let arch = c.model_type.as_str();
            let arch = if arch == "mistral" { "llama" } else { arch };
            let k = |key: &str| format!("{arch}.{key}");
            let u = |v: usize| Meta::U32(v as u32);
            let mut meta = vec![
                (k("context_length"), u(c.max_position_embeddings)),
                (k("embedding_length"), u(c.hidden_size)),
                (k("block_count"), u(c.num_hidden_layers)),
                (k("feed_forward_length"), u(c.intermediate_size)),
                (k("attention.head_count"), u(c.num_attention_heads)),
                (k("attention.head_count_kv"), u(c.num_key_value_heads)),
                (k("attention.layer_norm_rms_epsilon"), Meta::F32(c.rms_norm_eps)),
                (k("rope.freq_base"), Meta::F32(c.rope_theta)),
                (k("rope.dimension_count"), u(c.head_dim)),
                (k("attention.key_length"), u(c.head_dim)),
                (k("attention.value_length"), u(c.head_dim)),
                (k("vocab_size"), u(c.vocab_size)),
            ];
            let mut extra = Vec::new();
            match &c.rope_scaling {
                crate::llama::RopeScaling::None => {}
                crate::llama::RopeScaling::Linear { factor } => {
                    meta.push((k("rope.scaling.type"), Meta::Str("linear".into())));
                    meta.push((k("rope.scaling.factor"), Meta::F32(*factor)));
                }
                // Llama 3.1's rule, and divisors read from a GGUF: the divisors, as a tensor.
                crate::llama::RopeScaling::Llama3 { .. } | crate::llama::RopeScaling::Factors(_) => {
                    let plain =
                        crate::llama::LlamaConfig { rope_scaling: crate::llama::RopeScaling::None, ..c.clone() };
                    let data = plain.inv_freq().iter().zip(c.inv_freq()).map(|(f, g)| f / g).collect::<Vec<_>>();
                    extra.push(("rope_freqs.weight".to_string(), Tensor { shape: vec![data.len()], data }));
                }
            }
            let heads = (arch == "llama").then_some((c.num_attention_heads, c.num_key_value_heads));
            let mut named: Vec<(String, Tensor)> = Vec::new();
            for (name, t) in weights.named() {
                let mut t = t.into_owned();
                if let Some((q, kv)) = heads {
                    if name.contains("q_proj.") {
                        permute(&mut t, q);
                    } else if name.contains("k_proj.") {
                        permute(&mut t, kv);
                    }
                }
                named.push((name, t));
            }
            named.extend(extra);
            (arch, meta, named)
        }
        Architecture::Gpt { config: c, weights } => {
            if c.layer_norm_position != crate::config::LayerNormPosition::Pre {
                return Err(ExportError::Unsupported("a post-LN (GPT-1) model has no GGUF architecture".into()));
            }
            let u = |v: usize| Meta::U32(v as u32);
            let meta = vec![
                ("gpt2.context_length".to_string(), u(c.n_positions)),
                ("gpt2.embedding_length".into(), u(c.n_embd)),
                ("gpt2.block_count".into(), u(c.n_layer)),
                ("gpt2.feed_forward_length".into(), u(c.n_inner)),
                ("gpt2.attention.head_count".into(), u(c.n_head)),
                ("gpt2.attention.layer_norm_epsilon".into(), Meta::F32(c.layer_norm_epsilon)),
            ];
            // The matrices `[out, in]`, as held and as llama.cpp's converter writes them.
            let named = weights
                .named_in(crate::weights::MatrixLayout::Rows)
                .into_iter()
                .map(|(name, t)| (name, t.into_owned()))
                .collect();
            ("gpt2", meta, named)
        }
    };
    let tokenizer = model
        .text
        .tokenizer
        .as_ref()
        .ok_or_else(|| ExportError::Unsupported("the model has no tokenizer; a GGUF file carries one".into()))?;
    let json = tokenizer.to_json().map_err(BundleError::from)?;
    let vocab = match &model.arch {
        Architecture::Llama { config, .. } => config.vocab_size,
        Architecture::Gpt { config, .. } => config.vocab_size,
    };
    let mut head = vec![
        ("general.architecture".to_string(), Meta::Str(arch.into())),
        ("general.name".into(), Meta::Str("wgpt quantize".into())),
        ("general.file_type".into(), Meta::U32(target.file_type())),
        ("general.quantization_version".into(), Meta::U32(2)),
    ];
    head.append(&mut meta);
    head.extend(super::tokenizer::gguf_tokenizer(&json, vocab)?);
    let text = &model.text;
    if let Some(bos) = text.start_token {
        head.push(("tokenizer.ggml.bos_token_id".into(), Meta::U32(bos)));
    }
    // The config's end token as `eos`, then the other end tokens (generation_config's) as
    // `eot` and `eom`, the three llama.cpp and wgpt's loader read.
    let eos = match &model.arch {
        Architecture::Llama { config, .. } => config.eos_token_ids.first().copied(),
        Architecture::Gpt { config, .. } => config.eos_token_id,
    };
    let mut ends: Vec<u32> = eos.into_iter().collect();
    ends.extend(text.stop_tokens.iter().filter(|t| Some(**t) != eos));
    if ends.len() > 3 {
        return Err(ExportError::Unsupported(format!("{} end tokens; GGUF names three", ends.len())));
    }
    for (key, id) in ["eos", "eot", "eom"].iter().zip(ends) {
        head.push((format!("tokenizer.ggml.{key}_token_id"), Meta::U32(id)));
    }
    if let ChatFormat::Jinja(t) = &text.chat {
        head.push(("tokenizer.chat_template".into(), Meta::Str(t.source().to_string())));
    }
    let mut out = Vec::with_capacity(tensors.len());
    let mut counts: Vec<(GgmlType, usize)> = Vec::new();
    for (name, t) in tensors {
        let gguf = if name == "rope_freqs.weight" {
            name.clone()
        } else {
            super::model::gguf_name(arch, &name)
                .ok_or_else(|| ExportError::Unsupported(format!("tensor `{name}` has no GGUF name")))?
        };
        let ty = choose(&gguf, &t, target);
        let data = encode(&t.data, ty).map_err(|source| ExportError::Quantize { name: name.clone(), source })?;
        match counts.iter_mut().find(|(k, _)| *k == ty) {
            Some((_, n)) => *n += 1,
            None => counts.push((ty, 1)),
        }
        out.push(TensorOut { name: gguf, dims: t.shape.iter().rev().map(|&d| d as u64).collect(), ty, data });
    }
    Ok((to_bytes(&head, &out), counts))
}

/// The type a tensor is written in (see the module's notes).
fn choose(gguf: &str, t: &Tensor, target: Target) -> GgmlType {
    let row = *t.shape.last().unwrap_or(&0);
    let matrix = t.shape.len() == 2 && gguf != "position_embd.weight";
    let whole_blocks = row.is_multiple_of(32);
    match target {
        _ if !matrix => GgmlType::F32,
        Target::F32 => GgmlType::F32,
        Target::F16 => GgmlType::F16,
        _ if !whole_blocks => GgmlType::F16,
        Target::Q8_0 => GgmlType::Q8_0,
        Target::Q4_0 | Target::Q4K if gguf == "token_embd.weight" || gguf == "output.weight" => GgmlType::Q8_0,
        Target::Q4_0 => GgmlType::Q4_0,
        Target::Q4K if row.is_multiple_of(256) => GgmlType::Q4K,
        Target::Q4K => GgmlType::Q8_0,
    }
}

fn encode(x: &[f32], ty: GgmlType) -> Result<Vec<u8>, QuantError> {
    Ok(match ty {
        GgmlType::F32 => x.iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::F16 => x.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
        GgmlType::Q8_0 => quantize_q8_0(x)?,
        GgmlType::Q4_0 => quantize_q4_0(x)?,
        GgmlType::Q4K => quantize_q4k(x)?,
        other => unreachable!("wgpt quantize does not write {other:?}"),
    })
}

/// llama.cpp's `permute` of a `llama` model's q/k rows (the inverse of the loader's).
fn permute(t: &mut Tensor, heads: usize) {
    let rows = t.shape[0];
    let cols = t.data.len() / rows.max(1);
    let half = rows / heads / 2;
    let mut out = vec![0f32; t.data.len()];
    for h in 0..heads {
        for i in 0..half {
            for part in 0..2 {
                let hf = h * 2 * half + part * half + i;
                let gguf = h * 2 * half + i * 2 + part;
                out[gguf * cols..(gguf + 1) * cols].copy_from_slice(&t.data[hf * cols..(hf + 1) * cols]);
            }
        }
    }
    t.data = out;
}
