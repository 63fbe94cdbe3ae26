//! A GGUF file as a [`LoadedModel`]: its metadata becomes the `config.json`,
//! `tokenizer.json` and `tokenizer_config.json` HF would ship (so the same checks and the same
//! code paths apply), and its tensors are dequantized to f32 under HF's names, in HF's layouts.
//!
//! Layouts: GGUF lists dims innermost first, so a `[in, out]` GGUF matrix is HF's `[out, in]`.
//! llama.cpp's converter reorders the rows of a `llama` model's q and k projections for its
//! interleaved rotary (each head's halves interleaved, `LlamaModel.permute`); that is undone
//! here. `qwen2`/`qwen3` keep HF's order. GPT-2's Conv1D matrices were transposed to `[out, in]`;
//! they are transposed back.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use super::{Gguf, GgufError, TensorInfo};
use crate::bundle::BundleError;
use crate::config::{ConfigError, GptConfig};
use crate::llama::{LlamaConfig, LlamaWeights, RopeScaling};
use crate::loaded::{Architecture, LoadedModel, TextFormat};
use crate::quant::Blocks;
use crate::weights::{ModelWeights, Source, Taker, Tensor, TensorInfo as Stored, WeightsError};

/// The `general.architecture`s wgpt runs.
pub const ARCHITECTURES: [&str; 4] = ["gpt2", "llama", "qwen2", "qwen3"];

impl From<GgufError> for BundleError {
    fn from(e: GgufError) -> Self {
        BundleError::Io { path: "model.gguf".into(), message: e.to_string() }
    }
}

fn missing(key: &str) -> BundleError {
    GgufError::Metadata { key: key.into(), reason: "is missing".into() }.into()
}

/// A GGUF's architecture and the `config.json` HF would ship for it, from its metadata (and
/// which tensors it has: a tied head, q/k/v biases).
pub fn hf_config(g: &Gguf) -> Result<(String, Vec<u8>), BundleError> {
    let arch = g.str("general.architecture")?.ok_or_else(|| missing("general.architecture"))?.to_string();
    if !ARCHITECTURES.contains(&arch.as_str()) {
        return Err(ConfigError::Unsupported {
            key: "general.architecture",
            value: format!("{arch:?} (wgpt runs {})", ARCHITECTURES.join(", ")),
        }
        .into());
    }
    let has = |name: &str| g.tensors.iter().any(|t| t.name == name);
    let vocab = g
        .tensors
        .iter()
        .find(|t| t.name == "token_embd.weight")
        .map(|t| t.shape()[0])
        .ok_or_else(|| WeightsError::MissingTensor("token_embd.weight".into()))?;
    let key = |k: &str| format!("{arch}.{k}");
    let uint = |k: &str| -> Result<u64, BundleError> { g.uint(&key(k))?.ok_or_else(|| missing(&key(k))) };
    let tokens = |k: &str| g.uint(&format!("tokenizer.ggml.{k}"));
    let eos: Vec<u64> =
        [tokens("eos_token_id")?, tokens("eot_token_id")?, tokens("eom_token_id")?].into_iter().flatten().collect();
    let bos = tokens("bos_token_id")?;
    let tied = !has("output.weight");
    let config = if arch == "gpt2" {
        json!({
            "model_type": "gpt2", "vocab_size": vocab, "n_positions": uint("context_length")?,
            "n_embd": uint("embedding_length")?, "n_layer": uint("block_count")?,
            "n_head": uint("attention.head_count")?, "n_inner": uint("feed_forward_length")?,
            "layer_norm_epsilon": g.float(&key("attention.layer_norm_epsilon"))?.unwrap_or(1e-5),
            "tie_word_embeddings": tied, "bos_token_id": bos, "eos_token_id": eos.first(),
        })
    } else {
        let heads = uint("attention.head_count")?;
        let mut c = json!({
            "model_type": arch, "vocab_size": vocab, "hidden_size": uint("embedding_length")?,
            "intermediate_size": uint("feed_forward_length")?, "num_hidden_layers": uint("block_count")?,
            "num_attention_heads": heads,
            "num_key_value_heads": g.uint(&key("attention.head_count_kv"))?.unwrap_or(heads),
            "max_position_embeddings": uint("context_length")?,
            "rms_norm_eps": g.float(&key("attention.layer_norm_rms_epsilon"))?.ok_or_else(|| missing(&key("attention.layer_norm_rms_epsilon")))?,
            "rope_theta": g.float(&key("rope.freq_base"))?.unwrap_or(10_000.0),
            "tie_word_embeddings": tied, "attention_bias": has("blk.0.attn_q.bias"),
            "bos_token_id": bos, "eos_token_id": eos,
        });
        if let Some(d) = g.uint(&key("attention.key_length"))? {
            c["head_dim"] = d.into();
        }
        match g.str(&key("rope.scaling.type"))? {
            None | Some("none") => {}
            Some("linear") => {
                let factor =
                    g.float(&key("rope.scaling.factor"))?.ok_or_else(|| missing(&key("rope.scaling.factor")))?;
                c["rope_scaling"] = json!({"rope_type": "linear", "factor": factor});
            }
            Some(other) => {
                return Err(ConfigError::Unsupported { key: "rope.scaling.type", value: format!("{other:?}") }.into());
            }
        }
        c
    };
    Ok((arch, serde_json::to_vec(&config).expect("JSON of plain values")))
}

/// What each tensor holds as stored (HF's names), sorted: what the fit check reads.
pub fn stored(g: &Gguf) -> Vec<Stored> {
    let arch = g.str("general.architecture").ok().flatten().unwrap_or("");
    let mut out: Vec<Stored> = g
        .tensors
        .iter()
        .map(|t| Stored {
            name: hf_name(arch, &t.name).unwrap_or_else(|| t.name.clone()),
            dtype: t.ty.name().into(),
            shape: t.shape(),
            bytes: t.len,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Loads a model from the bytes of a GGUF file (a copy of them is what the model keeps; see
/// [`load_owned`]).
pub fn load(bytes: &[u8]) -> Result<LoadedModel, BundleError> {
    load_owned(bytes.to_vec())
}

/// Loads a model from a GGUF file read into memory, which it keeps: the matrices that stay in
/// their blocks are ranges of these bytes (their rows put in HF's order in place first), not
/// copies, so a quantized model takes its file's size in memory, not twice that. Only the
/// tensors' bytes are kept: the header before them (the metadata, with the vocabulary and merges
/// as strings: 1 MB for a 49 k vocabulary, 4 MB for a 151 k one) is parsed, then let go.
pub fn load_owned(mut bytes: Vec<u8>) -> Result<LoadedModel, BundleError> {
    let mut g = Gguf::parse(&bytes)?;
    let (arch, config) = hf_config(&g)?;
    let heads = (arch == "llama").then(|| LlamaConfig::from_json(&config)).transpose()?;
    let heads = heads.map(|c| (c.num_attention_heads, c.num_key_value_heads));
    // q and k rows llama.cpp reordered, in blocks: put back in HF's order where they lie.
    for t in g.tensors.iter().filter(|t| keeps_blocks(&arch, t)) {
        let Some(name) = hf_name(&arch, &t.name) else { continue };
        if let Some(h) = heads_of(&name, heads) {
            unpermute(&mut bytes[t.start..t.start + t.len], t.shape()[0], h, &name)?;
        }
    }
    // The tensors' bytes moved to the front and the rest given back.
    let data_start = g.tensors.iter().map(|t| t.start).min().unwrap_or(bytes.len());
    bytes.drain(..data_start);
    bytes.shrink_to_fit();
    g.tensors.iter_mut().for_each(|t| t.start -= data_start);
    let file = Arc::new(bytes);
    let bytes = file.as_slice();
    let (tokenizer_json, tokenizer_config) = super::tokenizer::hf_files(&g)?;
    let files: BTreeMap<&str, &[u8]> =
        [("tokenizer.json", tokenizer_json.as_slice()), ("tokenizer_config.json", tokenizer_config.as_slice())]
            .into_iter()
            .collect();
    let get = |name: &str| files.get(name).copied();
    if arch == "gpt2" {
        let config = GptConfig::from_json(&config)?;
        let (take, stored) = tensors(&g, &file, &arch, None)?;
        let weights = ModelWeights::take(take, stored, &config)?;
        // The header's parsed metadata (the vocabulary and merges as strings, 10 MB for a 150 k
        // vocabulary) is in the tokenizer's text now: let go before the tokenizer is built.
        drop(g);
        let tokenizer = crate::tokenizer::Tokenizer::from_json(&tokenizer_json)?;
        tokenizer.check_fits(config.vocab_size)?;
        let bundle = crate::bundle::Bundle { config, weights: Arc::new(weights), tokenizer };
        let mut loaded = LoadedModel::from_bundle(bundle);
        loaded.text.chat = TextFormat::chat_format(loaded.text.tokenizer.as_ref(), &get)?;
        return Ok(loaded);
    }
    let mut config = LlamaConfig::from_json(&config)?;
    if let Some(t) = g.tensors.iter().find(|t| t.name == ROPE_FREQS) {
        config.rope_scaling = RopeScaling::Factors(rope_factors(t, bytes, config.head_dim)?);
    }
    let heads = (arch == "llama").then_some((config.num_attention_heads, config.num_key_value_heads));
    let (take, stored) = tensors(&g, &file, &arch, heads)?;
    let weights = LlamaWeights::take(take, stored, &config)?;
    drop(g); // as for GPT-2 above
    let text = TextFormat::llama(&config, &get)?;
    Ok(LoadedModel { arch: Architecture::Llama { config, weights: Arc::new(weights) }, text })
}

/// Llama 3.1+'s rotary frequency divisors, which the converter computes from the config's
/// `rope_scaling` rule and stores as a tensor.
const ROPE_FREQS: &str = "rope_freqs.weight";

/// `rope_freqs.weight`: `head_dim / 2` finite, positive divisors.
fn rope_factors(t: &TensorInfo, bytes: &[u8], head_dim: usize) -> Result<Vec<f32>, BundleError> {
    let bad = |reason: String| BundleError::from(GgufError::Tensor { name: ROPE_FREQS.into(), reason });
    if t.shape() != [head_dim / 2] {
        return Err(bad(format!("shape {:?}, expected [{}] (head_dim / 2)", t.shape(), head_dim / 2)));
    }
    let f = crate::quant::dequantize(t.ty, &bytes[t.start..t.start + t.len], head_dim / 2)
        .map_err(|source| GgufError::TensorType { name: ROPE_FREQS.into(), source })?;
    if let Some(x) = f.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
        return Err(bad(format!("a divisor of {x}")));
    }
    Ok(f)
}

/// GGUF's names for a model's tensors outside the blocks, and HF's (as wgpt's loaders name them).
const LLAMA_TOP: [(&str, &str); 3] = [
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];
const GPT2_TOP: [(&str, &str); 5] = [
    ("token_embd.weight", "wte.weight"),
    ("position_embd.weight", "wpe.weight"),
    ("output_norm.weight", "ln_f.weight"),
    ("output_norm.bias", "ln_f.bias"),
    ("output.weight", "lm_head.weight"),
];
/// GGUF's names for the parts of block N (`blk.N.{part}`), and HF's (`model.layers.N.{part}`,
/// `h.N.{part}`).
const LLAMA_BLOCK: [(&str, &str); 11] = [
    ("attn_norm", "input_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("attn_q_norm", "self_attn.q_norm"),
    ("attn_k_norm", "self_attn.k_norm"),
    ("ffn_norm", "post_attention_layernorm"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];
const GPT2_BLOCK: [(&str, &str); 6] = [
    ("attn_norm", "ln_1"),
    ("attn_qkv", "attn.c_attn"),
    ("attn_output", "attn.c_proj"),
    ("ffn_norm", "ln_2"),
    ("ffn_up", "mlp.c_fc"),
    ("ffn_down", "mlp.c_proj"),
];

/// Pairs of (GGUF name, HF name).
type Names = &'static [(&'static str, &'static str)];

/// The tensors outside the blocks, the parts of a block, and HF's prefix of block N.
fn tables(arch: &str) -> (Names, Names, &'static str) {
    if arch == "gpt2" { (&GPT2_TOP, &GPT2_BLOCK, "h.") } else { (&LLAMA_TOP, &LLAMA_BLOCK, "model.layers.") }
}

/// HF's name for a GGUF tensor of `arch` (None: not one wgpt knows; the loader then reports it
/// as unexpected under its GGUF name).
fn hf_name(arch: &str, name: &str) -> Option<String> {
    let (top, block, prefix) = tables(arch);
    if let Some((_, hf)) = top.iter().find(|(g, _)| *g == name) {
        return Some(hf.to_string());
    }
    let (layer, part, kind) = block_parts(name)?;
    let (_, hf) = block.iter().find(|(g, _)| *g == part)?;
    Some(format!("{prefix}{layer}.{hf}.{kind}"))
}

/// GGUF's name for an HF tensor of `arch` (the inverse of [`hf_name`]).
pub(crate) fn gguf_name(arch: &str, name: &str) -> Option<String> {
    let (top, block, prefix) = tables(arch);
    if let Some((g, _)) = top.iter().find(|(_, hf)| *hf == name) {
        return Some(g.to_string());
    }
    let rest = name.strip_prefix(prefix)?;
    let (layer, rest) = rest.split_once('.')?;
    let (part, kind) = rest.rsplit_once('.')?;
    let (g, _) = block.iter().find(|(_, hf)| *hf == part)?;
    Some(format!("blk.{}.{g}.{kind}", layer.parse::<usize>().ok()?))
}

/// `blk.{layer}.{part}.{weight|bias}` → its three parts.
fn block_parts(name: &str) -> Option<(usize, &str, &str)> {
    let rest = name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (part, kind) = rest.rsplit_once('.')?;
    Some((layer.parse().ok()?, part, kind))
}

/// Every tensor under HF's name and in HF's layout, and what was stored: a matrix stored in
/// GGML blocks stays in its blocks (rows moved, never decoded; GPT-2's stay `[out, in]`, the
/// rows its loader holds); everything else is decoded to f32. `llama_heads`: `(heads, kv_heads)` of a `llama` model whose q/k rows
/// llama.cpp reordered.
fn tensors<'a>(
    g: &Gguf,
    file: &Arc<Vec<u8>>,
    arch: &str,
    llama_heads: Option<(usize, usize)>,
) -> Result<(Taker<'a>, Vec<Stored>), BundleError> {
    let mut out = BTreeMap::new();
    let mut stored = Vec::with_capacity(g.tensors.len());
    for t in g.tensors.iter().filter(|t| t.name != ROPE_FREQS) {
        let name = hf_name(arch, &t.name).unwrap_or_else(|| t.name.clone());
        let source = decode(t, file, arch, &name, llama_heads)?;
        let shape = match &source {
            Source::Blocks(b) => vec![b.rows, b.cols],
            Source::Ready(t) => t.shape.clone(),
            Source::View(_) => unreachable!("GGUF tensors are not safetensors views"),
        };
        stored.push(Stored { name: name.clone(), dtype: t.ty.name().into(), shape, bytes: t.len });
        out.insert(name, source);
    }
    stored.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((Taker::ready(out), stored))
}

/// Whether a tensor stays as stored when loaded: a matrix — in GGML blocks, F16, BF16 or F32 —
/// but for GPT-2's position table, of which a token reads one row. (F32 matrices were read into
/// f32 tensors beside the file: an F32 file peaked at twice its size.)
fn keeps_blocks(arch: &str, t: &TensorInfo) -> bool {
    t.dims.len() == 2 && !(arch == "gpt2" && t.name == "position_embd.weight")
}

/// Bytes the engine holds for a GGUF file's weights once loaded (blocks as stored, the rest in
/// f32): what the page's fit check counts.
pub fn held_bytes(g: &Gguf) -> u64 {
    let arch = g.str("general.architecture").ok().flatten().unwrap_or("");
    g.tensors
        .iter()
        .map(|t| if keeps_blocks(arch, t) { t.len as u64 } else { t.dims.iter().product::<u64>().saturating_mul(4) })
        .fold(0u64, u64::saturating_add)
}

/// Which of `(heads, kv_heads)` a q or k tensor's rows are reordered by (llama.cpp's `permute`).
fn heads_of(name: &str, llama_heads: Option<(usize, usize)>) -> Option<usize> {
    let (q, kv) = llama_heads?;
    if name.ends_with("q_proj.weight") || name.ends_with("q_proj.bias") {
        Some(q)
    } else if name.ends_with("k_proj.weight") || name.ends_with("k_proj.bias") {
        Some(kv)
    } else {
        None
    }
}

/// A tensor as the loaders take it: blocks as a range of the file (their rows already in HF's
/// order: [`load_owned`]), anything else decoded to f32 as the file lays it out (a matrix as its
/// `[out, in]` rows: HF's layout for the Llama family, GPT-2's engine rows; `Taker::linear`).
fn decode<'a>(
    t: &TensorInfo,
    file: &Arc<Vec<u8>>,
    arch: &str,
    name: &str,
    llama_heads: Option<(usize, usize)>,
) -> Result<Source<'a>, BundleError> {
    let shape = t.shape();
    let raw = &file[t.start..t.start + t.len];
    let n = shape.iter().product();
    let error = |source| GgufError::TensorType { name: t.name.clone(), source };
    if keeps_blocks(arch, t) {
        let data = crate::quant::BlockBytes::shared(file, t.start..t.start + t.len);
        return match Blocks::new(t.ty, shape[0], shape[1], data) {
            Ok(blocks) => Ok(Source::Blocks(blocks)),
            // F32 values off a 4-byte boundary (a file whose alignment is under 4) are decoded
            // instead: their rows are in HF's order already (`load_owned`).
            Err(crate::quant::QuantError::Unaligned) => {
                Ok(Source::Ready(Tensor { shape, data: crate::quant::dequantize(t.ty, raw, n).map_err(error)? }))
            }
            Err(e) => Err(error(e).into()),
        };
    }
    let heads = heads_of(name, llama_heads);
    let data = crate::quant::dequantize(t.ty, raw, n).map_err(error)?;
    let mut tensor = Tensor { shape, data };
    if let Some(h) = heads {
        unpermute(&mut tensor.data, tensor.shape[0], h, name)?;
    }
    Ok(Source::Ready(tensor))
}

/// Undoes llama.cpp's `permute` on `rows` rows of `data` (f32 values or a row's blocks: rows
/// move whole): its rows, per head, are `[(i, half) for i in 0..d/2 for half in 0..2]`
/// (interleaved); HF's are `[(i, half) for half in 0..2 for i in 0..d/2]`.
fn unpermute<T: Copy>(data: &mut [T], rows: usize, heads: usize, name: &str) -> Result<(), BundleError> {
    if heads == 0 || !rows.is_multiple_of(2 * heads) {
        return Err(WeightsError::Malformed(format!("`{name}`: {rows} rows are not whole heads of {heads}")).into());
    }
    let row = data.len() / rows;
    let half = rows / heads / 2;
    let from_rows = data.to_vec();
    for h in 0..heads {
        for i in 0..half {
            for part in 0..2 {
                let from = h * 2 * half + i * 2 + part;
                let to = h * 2 * half + part * half + i;
                data[to * row..(to + 1) * row].copy_from_slice(&from_rows[from * row..(from + 1) * row]);
            }
        }
    }
    Ok(())
}

/// A `[r, c]` matrix as `[c, r]` (GPT-2's Conv1D weights, which GGUF stores `[out, in]`).
pub(crate) fn transpose(t: &Tensor) -> Tensor {
    let (r, c) = (t.shape[0], t.shape[1]);
    let mut data = vec![0f32; r * c];
    for i in 0..r {
        for j in 0..c {
            data[j * r + i] = t.data[i * c + j];
        }
    }
    Tensor { shape: vec![c, r], data }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::GgmlType;

    /// An F32 matrix is held where it lies in the file when its values start on a 4-byte
    /// boundary, and decoded (the same values) when they do not: a file whose alignment is
    /// under 4 still loads.
    #[test]
    fn f32_matrices_stay_in_the_file_where_aligned_else_are_decoded() {
        let values: Vec<f32> = (0..6).map(|i| i as f32 - 2.5).collect();
        for offset in [0usize, 4, 2, 1] {
            let mut bytes = vec![0u8; offset];
            bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
            let file = Arc::new(bytes);
            let t = TensorInfo {
                name: "blk.0.ffn_up.weight".into(),
                dims: vec![3, 2],
                ty: GgmlType::F32,
                start: offset,
                len: 24,
            };
            let aligned = file[offset..].as_ptr().cast::<f32>().is_aligned();
            match decode(&t, &file, "llama", "model.layers.0.mlp.up_proj.weight", None).unwrap() {
                Source::Blocks(b) => {
                    assert!(aligned, "offset {offset}: held in place off a 4-byte boundary");
                    assert_eq!(b.data.as_ptr(), file[offset..].as_ptr());
                    assert_eq!(crate::quant::Matrix::Blocks(b).to_f32().data, values);
                }
                Source::Ready(r) => {
                    assert!(!aligned, "offset {offset}: copied though aligned");
                    assert_eq!((r.shape.as_slice(), &r.data), (&[2, 3][..], &values));
                }
                Source::View(_) => unreachable!(),
            }
        }
    }
}
