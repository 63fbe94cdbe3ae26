//! `model.safetensors`: HF GPT-2 tensor names and layouts, validated and converted to f32.
//!
//! Names are the checkpoint's own (`h.{i}.attn.c_attn.weight`, ...), with or without the
//! `transformer.` prefix that `GPT2LMHeadModel` checkpoints carry. Conv1D weights are `[in, out]`
//! in the file and held `[out, in]` ([`Linear`]); `c_attn`'s output columns are q | k | v. The LM head is `wte` unless `tie_word_embeddings` is
//! false, then `lm_head.weight` (`[vocab, n_embd]`, the same layout as `wte`). The causal-mask
//! buffers `attn.bias` / `attn.masked_bias` of older checkpoints are ignored.
//!
//! Every size used for an allocation comes from a tensor whose bytes are present in the file:
//! shapes are checked against the config before any data is converted.

use std::borrow::Cow;
use std::collections::BTreeMap;

use safetensors::{Dtype, SafeTensorError, SafeTensors};
use thiserror::Error;

use crate::config::{GptConfig, LayerNormPosition};
use crate::quant::{Blocks, GgmlType, Matrix};

#[derive(Debug, Error)]
pub enum WeightsError {
    #[error("model.safetensors is truncated: {0}")]
    Truncated(&'static str),
    #[error("model.safetensors: the header claims more bytes than the file has")]
    HeaderLargerThanFile,
    #[error("model.safetensors: the header is over safetensors' 100 MB limit")]
    HeaderTooLarge,
    #[error("model.safetensors is malformed: {0}")]
    Malformed(String),
    #[error("model.safetensors: missing tensor `{0}`")]
    MissingTensor(String),
    #[error("model.safetensors: unexpected tensor `{0}` (not part of a model with this config)")]
    UnexpectedTensor(String),
    #[error("model.safetensors: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    Shape { name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("model.safetensors: tensor `{name}` has dtype {dtype}, supported are F32, F16, BF16")]
    Dtype { name: String, dtype: String },
    #[error("model.safetensors: tensor `{name}` holds a non-finite value ({value}) at index {index}")]
    NonFinite { name: String, index: usize, value: f32 },
    #[error("model.safetensors: `lm_head.weight` differs from the token embedding but tie_word_embeddings is true")]
    TiedHeadMismatch,
}

impl From<SafeTensorError> for WeightsError {
    fn from(e: SafeTensorError) -> Self {
        match e {
            SafeTensorError::HeaderTooSmall => WeightsError::Truncated("shorter than the 8-byte header length"),
            SafeTensorError::MetadataIncompleteBuffer => {
                WeightsError::Truncated("the data section does not match the header's offsets")
            }
            SafeTensorError::InvalidHeaderLength => WeightsError::HeaderLargerThanFile,
            SafeTensorError::HeaderTooLarge => WeightsError::HeaderTooLarge,
            other => WeightsError::Malformed(other.to_string()),
        }
    }
}

/// A dense row-major f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// LayerNorm `gamma` (`.weight`) and `beta` (`.bias`), each `[n]`.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
}

/// A Conv1D/Linear: `y = x @ weight^T + bias`, `bias` `[out]`. The weight is held `[out, in]`
/// — row `o` is output `o`, as `nn.Linear`, GGUF and the Llama projections hold theirs — in f32,
/// F16/BF16 or GGML blocks as the file stored them, so every product is a dot product over a row.
/// HF GPT-2's Conv1D `[in, out]` f32 matrices are transposed once, at load ([`Linear::from_conv1d`]).
/// How a block's matrices are written out: HF's Conv1D `[in, out]` (a bundle), or the rows the
/// engines hold, `[out, in]` (a GGUF file, as llama.cpp's converter writes GPT-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatrixLayout {
    Conv1D,
    Rows,
}

#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Matrix,
    pub bias: Tensor,
}

impl Linear {
    /// From a Conv1D's `[in, out]` f32 weight (HF's and the trainer's layout).
    pub fn from_conv1d(weight: &Tensor, bias: Tensor) -> Self {
        Linear { weight: Matrix::F32(crate::gguf::model::transpose(weight)), bias }
    }

    /// The weight as a Conv1D's `[in, out]` in f32, decoded and transposed (the trainer, the
    /// exporter, the f32 GPU upload).
    pub fn conv1d(&self) -> Tensor {
        crate::gguf::model::transpose(&self.weight.to_f32())
    }

    pub fn n_in(&self) -> usize {
        self.weight.shape()[1]
    }

    pub fn n_out(&self) -> usize {
        self.weight.shape()[0]
    }
}

/// The parts of block `i`, under `h.{i}.` as HF GPT-2 names them. Loading, export and the GPU's
/// buffer labels all spell a part through these, so a name is written once.
pub mod part {
    pub const LN_1: &str = "ln_1";
    pub const C_ATTN: &str = "attn.c_attn";
    pub const ATTN_PROJ: &str = "attn.c_proj";
    pub const LN_2: &str = "ln_2";
    pub const C_FC: &str = "mlp.c_fc";
    pub const MLP_PROJ: &str = "mlp.c_proj";

    /// `h.{layer}.{part}`.
    pub fn in_block(layer: usize, part: &str) -> String {
        format!("h.{layer}.{part}")
    }
}

#[derive(Debug, Clone)]
pub struct Block {
    /// [`part::LN_1`].
    pub ln_1: LayerNorm,
    /// [`part::C_ATTN`]: `[n_embd, 3 * n_embd]`, output columns q | k | v, heads contiguous inside each.
    pub c_attn: Linear,
    /// [`part::ATTN_PROJ`]: the attention's output projection.
    pub attn_proj: Linear,
    /// [`part::LN_2`].
    pub ln_2: LayerNorm,
    /// [`part::C_FC`].
    pub c_fc: Linear,
    /// [`part::MLP_PROJ`]: the MLP's output projection.
    pub mlp_proj: Linear,
}

impl Block {
    /// Every tensor of the block with its name under `h.{i}.` (`ln_1.weight`, …), in HF's order,
    /// the matrices in `layout` (blocks decoded).
    pub fn tensors(&self, layout: MatrixLayout) -> [(String, Cow<'_, Tensor>); 12] {
        fn norm<'a>(name: &str, ln: &'a LayerNorm) -> [(String, Cow<'a, Tensor>); 2] {
            [(format!("{name}.weight"), Cow::Borrowed(&ln.weight)), (format!("{name}.bias"), Cow::Borrowed(&ln.bias))]
        }
        fn linear<'a>(name: &str, l: &'a Linear, layout: MatrixLayout) -> [(String, Cow<'a, Tensor>); 2] {
            let weight = match layout {
                MatrixLayout::Conv1D => Cow::Owned(l.conv1d()),
                MatrixLayout::Rows => l.weight.to_f32(),
            };
            [(format!("{name}.weight"), weight), (format!("{name}.bias"), Cow::Borrowed(&l.bias))]
        }
        let [a, b] = norm(part::LN_1, &self.ln_1);
        let [c, d] = linear(part::C_ATTN, &self.c_attn, layout);
        let [e, f] = linear(part::ATTN_PROJ, &self.attn_proj, layout);
        let [g, h] = norm(part::LN_2, &self.ln_2);
        let [i, j] = linear(part::C_FC, &self.c_fc, layout);
        let [k, l] = linear(part::MLP_PROJ, &self.mlp_proj, layout);
        [a, b, c, d, e, f, g, h, i, j, k, l]
    }

    /// The four matrices.
    pub fn linears(&self) -> [&Linear; 4] {
        [&self.c_attn, &self.attn_proj, &self.c_fc, &self.mlp_proj]
    }

    fn linears_mut(&mut self) -> [&mut Linear; 4] {
        [&mut self.c_attn, &mut self.attn_proj, &mut self.c_fc, &mut self.mlp_proj]
    }
}

/// What the file held for one tensor, for `wgpt inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub bytes: usize,
}

#[derive(Debug, Clone)]
pub struct ModelWeights {
    /// `[vocab_size, n_embd]`; also the LM head when tied.
    pub wte: Matrix,
    /// `[n_positions, n_embd]`.
    pub wpe: Tensor,
    pub blocks: Vec<Block>,
    /// Present for pre-LN (GPT-2) models, absent for post-LN (GPT-1).
    pub ln_f: Option<LayerNorm>,
    /// `[vocab_size, n_embd]`, only when the head is not tied.
    pub lm_head: Option<Matrix>,
    /// The file's tensors as stored (canonical names, sorted).
    pub stored: Vec<TensorInfo>,
}

/// A tensor's canonical name (without HF's `transformer.` prefix), or None for the causal-mask
/// buffers old GPT-2 files carry, which are not parameters.
fn canonical(name: &str) -> Option<&str> {
    let canonical = name.strip_prefix("transformer.").unwrap_or(name);
    (!canonical.ends_with(".attn.bias") && !canonical.ends_with(".attn.masked_bias")).then_some(canonical)
}

/// The tensors a safetensors file holds (canonical names, sorted), read from its first bytes
/// alone — the 8-byte length and the header, `head` — and checked against the file's size: what
/// the page inspects before it reads any weights.
pub fn stored_tensors(head: &[u8], file_size: u64) -> Result<Vec<TensorInfo>, WeightsError> {
    let len = head.get(..8).ok_or(WeightsError::Truncated("shorter than the 8-byte header length"))?;
    let n = u64::from_le_bytes(len.try_into().expect("8 bytes"));
    if n > 100_000_000 {
        return Err(WeightsError::HeaderTooLarge);
    }
    if 8 + n > file_size {
        return Err(WeightsError::HeaderLargerThanFile);
    }
    let header = head.get(8..8 + n as usize).ok_or(WeightsError::Truncated("the header was cut short"))?;
    let meta: safetensors::tensor::Metadata =
        serde_json::from_slice(header).map_err(|e| WeightsError::Malformed(e.to_string()))?;
    let mut stored = Vec::new();
    let mut end = 0;
    for (name, info) in meta.tensors() {
        end = end.max(info.data_offsets.1);
        if let Some(name) = canonical(&name) {
            stored.push(TensorInfo {
                name: name.to_string(),
                dtype: format!("{:?}", info.dtype),
                shape: info.shape.clone(),
                bytes: info.data_offsets.1.saturating_sub(info.data_offsets.0),
            });
        }
    }
    if 8 + n + end as u64 != file_size {
        return Err(WeightsError::Truncated("the data section does not match the header's offsets"));
    }
    stored.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(stored)
}

/// Every tensor was stored in 16 bits (F16 or BF16): the precision a device may keep.
pub fn stored_in_16_bits(stored: &[TensorInfo]) -> bool {
    !stored.is_empty() && stored.iter().all(|t| t.dtype == "F16" || t.dtype == "BF16")
}

/// Bytes the CPU engine holds for a safetensors checkpoint's `parameters` once loaded, from its
/// stored tensors: a 16-bit matrix as stored (GPT-2's position table aside: widened), every other
/// value in f32.
pub fn held_bytes(stored: &[TensorInfo], parameters: u64) -> u64 {
    let kept =
        |t: &&TensorInfo| t.shape.len() == 2 && (t.dtype == "F16" || t.dtype == "BF16") && t.name != "wpe.weight";
    let (values, bytes) = stored
        .iter()
        .filter(kept)
        .fold((0u64, 0u64), |(v, b), t| (v + t.shape.iter().product::<usize>() as u64, b + t.bytes as u64));
    parameters.saturating_sub(values).saturating_mul(4).saturating_add(bytes)
}

/// The dtypes of `stored`, each once, sorted (`["F16"]`, `["F16", "F32"]`).
pub fn stored_dtypes(stored: &[TensorInfo]) -> Vec<&str> {
    let mut dtypes: Vec<&str> = stored.iter().map(|t| t.dtype.as_str()).collect();
    dtypes.sort_unstable();
    dtypes.dedup();
    dtypes
}

impl ModelWeights {
    /// Every tensor under its HF GPT-2 name (no `transformer.` prefix) and in HF's layout, in
    /// f32 (blocks decoded): what a bundle stores.
    pub fn named(&self) -> Vec<(String, Cow<'_, Tensor>)> {
        self.named_in(MatrixLayout::Conv1D)
    }

    /// [`ModelWeights::named`] with the blocks' matrices in `layout` (GGUF's export takes them
    /// as held, `[out, in]`).
    pub fn named_in(&self, layout: MatrixLayout) -> Vec<(String, Cow<'_, Tensor>)> {
        let mut out =
            vec![("wte.weight".to_string(), self.wte.to_f32()), ("wpe.weight".to_string(), Cow::Borrowed(&self.wpe))];
        for (i, b) in self.blocks.iter().enumerate() {
            out.extend(b.tensors(layout).map(|(name, t)| (format!("h.{i}.{name}"), t)));
        }
        if let Some(ln) = &self.ln_f {
            out.push(("ln_f.weight".into(), Cow::Borrowed(&ln.weight)));
            out.push(("ln_f.bias".into(), Cow::Borrowed(&ln.bias)));
        }
        if let Some(head) = &self.lm_head {
            out.push(("lm_head.weight".into(), head.to_f32()));
        }
        out
    }

    /// The LM head, `[vocab_size, n_embd]`: logits = h @ head^T.
    pub fn head(&self) -> &Matrix {
        self.lm_head.as_ref().unwrap_or(&self.wte)
    }

    /// Bytes the weights hold in memory (blocks as stored, everything else in f32).
    pub fn bytes(&self) -> usize {
        let t = |t: &Tensor| t.data.len() * 4;
        let norm = |ln: &LayerNorm| t(&ln.weight) + t(&ln.bias);
        let block = |b: &Block| {
            norm(&b.ln_1) + norm(&b.ln_2) + b.linears().iter().map(|l| l.weight.bytes() + t(&l.bias)).sum::<usize>()
        };
        self.wte.bytes()
            + t(&self.wpe)
            + self.lm_head.as_ref().map_or(0, Matrix::bytes)
            + self.ln_f.as_ref().map_or(0, norm)
            + self.blocks.iter().map(block).sum::<usize>()
    }

    /// The matrices' stored types, each once (`["F32"]`, `["Q4_0", "Q8_0"]`, …).
    pub fn matrix_types(&self) -> Vec<&'static str> {
        let mut types: Vec<&'static str> = std::iter::once(self.wte.type_name())
            .chain(self.lm_head.as_ref().map(Matrix::type_name))
            .chain(self.blocks.iter().flat_map(|b| b.linears().map(|l| l.weight.type_name())))
            .collect();
        types.sort_unstable();
        types.dedup();
        types
    }

    /// Every matrix held in `ty`, as `--dtype` asks: F32 (blocks decoded), F16 or BF16; or Q8_0,
    /// Q4_0, Q4_K — every float matrix in GGML blocks of `ty`, as `wgpt quantize` writes them,
    /// with the token embedding (and an untied head) in Q8_0, as llama.cpp keeps them at 4 bits;
    /// matrices already quantized stay as they are. Always rows of `[out, in]`. The position
    /// table stays f32 (one row is read per token). Rows that are not whole blocks are refused.
    pub fn quantize(&mut self, ty: GgmlType) -> Result<(), crate::quant::QuantError> {
        // Whether a matrix held as `held` (None: f32) becomes `ty`.
        let converts = |held: Option<GgmlType>| match held {
            Some(h) => h != ty && (ty.is_float() || h.is_float()),
            None => ty != GgmlType::F32,
        };
        for b in &mut self.blocks {
            for l in b.linears_mut() {
                if !converts(l.weight.block_type()) {
                    continue;
                }
                let rows = l.weight.to_f32().into_owned();
                let [n_out, n_in] = [rows.shape[0], rows.shape[1]];
                l.weight = if ty == GgmlType::F32 {
                    Matrix::F32(rows)
                } else {
                    Matrix::Blocks(Matrix::quantize(ty, n_out, n_in, &rows.data)?)
                };
            }
        }
        let table = if ty.is_float() { ty } else { GgmlType::Q8_0 };
        for m in std::iter::once(&mut self.wte).chain(&mut self.lm_head) {
            let held = m.block_type().unwrap_or(GgmlType::F32);
            if held == table || (!table.is_float() && !m.is_float()) {
                continue;
            }
            let t = m.to_f32();
            *m = match table {
                GgmlType::F32 => Matrix::F32(t.into_owned()),
                table => Matrix::Blocks(Matrix::quantize(table, t.shape[0], t.shape[1], &t.data)?),
            };
        }
        Ok(())
    }

    /// The file's dtypes, each once, sorted.
    pub fn stored_dtypes(&self) -> Vec<&str> {
        stored_dtypes(&self.stored)
    }

    /// Parses and validates a safetensors file against `config`.
    pub fn from_safetensors(bytes: &[u8], config: &GptConfig) -> Result<Self, WeightsError> {
        let file = SafeTensors::deserialize(bytes)?;
        let (take, stored) = Taker::new(std::slice::from_ref(&file), canonical)?;
        Self::take(take, stored, config)
    }

    /// [`ModelWeights::from_safetensors`] of a file given up to the model (read from disk,
    /// downloaded): each Conv1D matrix (`[in, out]`, F32, F16 or BF16) is turned into its
    /// `[out, in]` rows where it lies in the file, one matrix's copy at a time, and every matrix
    /// is then a range of the file — held once, not as the file plus a transposed copy.
    pub fn from_owned_safetensors(mut bytes: Vec<u8>, config: &GptConfig) -> Result<Self, WeightsError> {
        let conv1d = conv1d_in_file(&bytes, config)?;
        for (name, range, n_in, n_out, ty) in &conv1d {
            let region = &mut bytes[range.clone()];
            // Checked where they lie, so a bad value's index is the file's.
            finite_as_stored(name, *ty, region)?;
            let (columns, size) = (region.to_vec(), ty.block_bytes() as usize);
            for (k, value) in columns.chunks_exact(size).enumerate() {
                let (i, o) = (k / n_out, k % n_out);
                region[(o * n_in + i) * size..][..size].copy_from_slice(value);
            }
        }
        let file = std::sync::Arc::new(bytes);
        let parsed = SafeTensors::deserialize(&file)?;
        let (mut take, stored) = Taker::new(std::slice::from_ref(&parsed), canonical)?;
        take.rows_in_place = conv1d.into_iter().map(|(name, ..)| name).collect();
        Self::take(take.in_buffers(vec![file.clone()]), stored, config)
    }

    /// The model's tensors from `take` (HF's names), checked against `config`.
    pub(crate) fn take(mut take: Taker, stored: Vec<TensorInfo>, config: &GptConfig) -> Result<Self, WeightsError> {
        let (c, v, t, f) = (config.n_embd, config.vocab_size, config.n_positions, config.n_inner);
        let wte = take.matrix("wte.weight", &[v, c])?;
        let wpe = take.tensor("wpe.weight", &[t, c])?;
        let mut blocks = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let p = |name| part::in_block(i, name);
            blocks.push(Block {
                ln_1: take.layer_norm(&p(part::LN_1), c)?,
                c_attn: take.linear(&p(part::C_ATTN), c, 3 * c)?,
                attn_proj: take.linear(&p(part::ATTN_PROJ), c, c)?,
                ln_2: take.layer_norm(&p(part::LN_2), c)?,
                c_fc: take.linear(&p(part::C_FC), c, f)?,
                mlp_proj: take.linear(&p(part::MLP_PROJ), f, c)?,
            });
        }
        let ln_f = match config.layer_norm_position {
            LayerNormPosition::Pre => Some(take.layer_norm("ln_f", c)?),
            LayerNormPosition::Post => None,
        };
        let lm_head = take.head(config.tie_word_embeddings, &wte)?;
        take.finish()?;
        Ok(ModelWeights { wte, wpe, blocks, ln_f, lm_head, stored })
    }
}

impl ModelWeights {
    /// Random weights for `config` (deterministic in `seed`), with LayerNorm gains away from 1
    /// and non-zero biases: for benchmarks of named shapes and tests of shapes no file has.
    pub fn random(config: &GptConfig, seed: u64) -> Self {
        let mut t = random_tensors(seed);
        let (c, f, v) = (config.n_embd, config.n_inner, config.vocab_size);
        // Scales keep activations O(1) whatever the width.
        let w = 1.0 / (c as f32).sqrt();
        let mut blocks = Vec::with_capacity(config.n_layer);
        for _ in 0..config.n_layer {
            blocks.push(Block {
                ln_1: LayerNorm { weight: t(&[c], 1.0, 0.3), bias: t(&[c], 0.0, 0.2) },
                c_attn: Linear::from_conv1d(&t(&[c, 3 * c], 0.0, 2.0 * w), t(&[3 * c], 0.0, 0.2)),
                attn_proj: Linear::from_conv1d(&t(&[c, c], 0.0, w), t(&[c], 0.0, 0.2)),
                ln_2: LayerNorm { weight: t(&[c], 1.0, 0.3), bias: t(&[c], 0.0, 0.2) },
                c_fc: Linear::from_conv1d(&t(&[c, f], 0.0, w), t(&[f], 0.0, 0.2)),
                mlp_proj: Linear::from_conv1d(&t(&[f, c], 0.0, 1.0 / (f as f32).sqrt()), t(&[c], 0.0, 0.2)),
            });
        }
        let ln_f = match config.layer_norm_position {
            LayerNormPosition::Pre => Some(LayerNorm { weight: t(&[c], 1.0, 0.3), bias: t(&[c], 0.0, 0.2) }),
            LayerNormPosition::Post => None,
        };
        let lm_head = (!config.tie_word_embeddings).then(|| Matrix::F32(t(&[v, c], 0.0, 0.8)));
        ModelWeights {
            wte: Matrix::F32(t(&[v, c], 0.0, 0.8)),
            wpe: t(&[config.n_positions, c], 0.0, 0.8),
            blocks,
            ln_f,
            lm_head,
            stored: vec![],
        }
    }
}

/// Makes tensors of random weights (the benchmarks' models): `t(shape, center, scale)` draws
/// each value uniformly from `center ± scale`, from one fast seeded stream.
pub(crate) fn random_tensors(seed: u64) -> impl FnMut(&[usize], f32, f32) -> Tensor {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    move |shape: &[usize], center: f32, scale: f32| Tensor {
        shape: shape.to_vec(),
        data: (0..shape.iter().product())
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                center + scale * (((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
            })
            .collect(),
    }
}

/// Removes tensors from the file's map as the model claims them, so leftovers are "unexpected".
/// Every architecture's loader takes its tensors through one, whatever the file format.
pub(crate) struct Taker<'a> {
    views: BTreeMap<String, Source<'a>>,
    /// The buffers the views lie in, where the caller gave them up (an owned file): a matrix
    /// held as stored is then a range of its file, not a copy ([`Taker::as_stored`]).
    buffers: Vec<std::sync::Arc<Vec<u8>>>,
    /// Conv1D matrices whose bytes were turned into `[out, in]` rows where they lie
    /// ([`ModelWeights::from_owned_safetensors`]).
    rows_in_place: std::collections::BTreeSet<String>,
}

/// A tensor still in a safetensors file, or already decoded (a GGUF file's, dequantized under
/// HF's name by `crate::gguf::model`; a matrix in GGUF's `[out, in]` rows, as the engines hold it).
pub(crate) enum Source<'a> {
    View(safetensors::tensor::TensorView<'a>),
    Ready(Tensor),
    /// A matrix in GGML blocks (a GGUF file's), kept as blocks by [`Taker::matrix`].
    Blocks(crate::quant::Blocks),
}

impl Source<'_> {
    fn shape(&self) -> Vec<usize> {
        match self {
            Source::View(v) => v.shape().to_vec(),
            Source::Ready(t) => t.shape.clone(),
            Source::Blocks(b) => vec![b.rows, b.cols],
        }
    }
}

impl<'a> Taker<'a> {
    /// The tensors of `files` (one, or every shard of a model) under the names `canonical` gives
    /// (None: a buffer that is not a parameter), and what they held as stored, sorted by name.
    pub(crate) fn new(
        files: &[SafeTensors<'a>],
        canonical: impl Fn(&str) -> Option<&str>,
    ) -> Result<(Self, Vec<TensorInfo>), WeightsError> {
        let mut views = BTreeMap::new();
        for file in files {
            for (name, view) in file.iter() {
                let Some(name) = canonical(name) else { continue };
                if views.insert(name.to_string(), Source::View(view)).is_some() {
                    return Err(WeightsError::Malformed(format!("tensor `{name}` appears twice")));
                }
            }
        }
        let stored = views
            .iter()
            .filter_map(|(name, v)| match v {
                Source::View(v) => Some(TensorInfo {
                    name: name.clone(),
                    dtype: format!("{:?}", v.dtype()),
                    shape: v.shape().to_vec(),
                    bytes: v.data().len(),
                }),
                Source::Ready(_) | Source::Blocks(_) => None,
            })
            .collect();
        Ok((Taker { views, buffers: Vec::new(), rows_in_place: Default::default() }, stored))
    }

    /// Tensors already decoded (or kept in blocks), by name.
    pub(crate) fn ready(tensors: BTreeMap<String, Source<'a>>) -> Self {
        Taker { views: tensors, buffers: Vec::new(), rows_in_place: Default::default() }
    }

    /// This taker's views lie in `buffers` (the files they were parsed from, given up by the
    /// caller): matrices held as stored become ranges of them.
    pub(crate) fn in_buffers(self, buffers: Vec<std::sync::Arc<Vec<u8>>>) -> Self {
        Taker { buffers, ..self }
    }

    /// A matrix's stored bytes as [`Blocks`] of `ty`: a range of the buffer they lie in where
    /// there is one (and, for F32, where they start on a 4-byte boundary), else a copy.
    fn as_stored(&self, name: &str, ty: GgmlType, shape: &[usize], bytes: &[u8]) -> Result<Blocks, WeightsError> {
        let range = bytes.as_ptr_range();
        let shared = self.buffers.iter().find_map(|b| {
            let whole = b.as_ptr_range();
            (whole.start <= range.start && range.end <= whole.end).then(|| {
                let start = range.start as usize - whole.start as usize;
                crate::quant::BlockBytes::shared(b, start..start + bytes.len())
            })
        });
        let bad = |e| WeightsError::Malformed(format!("`{name}`: {e}"));
        match shared.map(|data| Blocks::new(ty, shape[0], shape[1], data)) {
            Some(Ok(blocks)) => Ok(blocks),
            Some(Err(crate::quant::QuantError::Unaligned)) | None => {
                Blocks::new(ty, shape[0], shape[1], bytes.to_vec()).map_err(bad)
            }
            Some(Err(e)) => Err(bad(e)),
        }
    }

    /// A matrix `[out, in]`: as blocks if the file stored blocks, in F16 or BF16 if it stored
    /// those (held as stored, not widened), else in f32 (checked as [`Taker::tensor`] checks).
    pub(crate) fn matrix(&mut self, name: &str, shape: &[usize]) -> Result<Matrix, WeightsError> {
        match self.views.get(name) {
            Some(Source::Blocks(b)) if [b.rows, b.cols] == shape => {
                let Some(Source::Blocks(b)) = self.views.remove(name) else { unreachable!() };
                finite_as_stored(name, b.ty, &b.data)?;
                Ok(Matrix::Blocks(b))
            }
            Some(Source::View(v)) if v.shape() == shape && sixteen_bits(v.dtype()).is_some() => {
                let Some(Source::View(v)) = self.views.remove(name) else { unreachable!() };
                let ty = sixteen_bits(v.dtype()).expect("checked above");
                finite_as_stored(name, ty, v.data())?;
                Ok(Matrix::Blocks(self.as_stored(name, ty, shape, v.data())?))
            }
            // F32 rows held where they lie, where the file was given up; else decoded below.
            Some(Source::View(v)) if v.shape() == shape && v.dtype() == Dtype::F32 && !self.buffers.is_empty() => {
                let Some(Source::View(v)) = self.views.remove(name) else { unreachable!() };
                finite_as_stored(name, GgmlType::F32, v.data())?;
                Ok(Matrix::Blocks(self.as_stored(name, GgmlType::F32, shape, v.data())?))
            }
            _ => self.tensor(name, shape).map(Matrix::F32),
        }
    }

    /// The LM head `lm_head.weight`, shaped as `embedding` (in blocks where the file stored
    /// blocks); None when the head is tied (HF drops the tied copy on save, but some writers keep
    /// it: it must then be a copy).
    pub(crate) fn head(
        &mut self,
        tied: bool,
        embedding: &crate::quant::Matrix,
    ) -> Result<Option<crate::quant::Matrix>, WeightsError> {
        let shape = embedding.shape();
        if !tied {
            return Ok(Some(self.matrix("lm_head.weight", &shape)?));
        }
        if self.views.contains_key("lm_head.weight") && self.matrix("lm_head.weight", &shape)? != *embedding {
            return Err(WeightsError::TiedHeadMismatch);
        }
        Ok(None)
    }

    /// A tensor no part claimed is an error.
    pub(crate) fn finish(self) -> Result<(), WeightsError> {
        match self.views.into_keys().next() {
            Some(name) => Err(WeightsError::UnexpectedTensor(name)),
            None => Ok(()),
        }
    }

    /// The tensor `name` in f32, checked for its shape and finite values.
    pub(crate) fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<Tensor, WeightsError> {
        let source = self.views.remove(name).ok_or_else(|| WeightsError::MissingTensor(name.to_string()))?;
        if source.shape() != shape {
            return Err(WeightsError::Shape {
                name: name.into(),
                expected: shape.to_vec(),
                found: source.shape().to_vec(),
            });
        }
        let data = match source {
            Source::View(view) => to_f32(name, view.dtype(), view.data())?,
            Source::Ready(t) => t.data,
            Source::Blocks(b) => crate::quant::dequantize(b.ty, &b.data, b.rows * b.cols)
                .map_err(|e| WeightsError::Malformed(format!("`{name}`: {e}")))?,
        };
        if let Some((index, &value)) = data.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(WeightsError::NonFinite { name: name.into(), index, value });
        }
        Ok(Tensor { shape: shape.to_vec(), data })
    }

    fn layer_norm(&mut self, prefix: &str, n: usize) -> Result<LayerNorm, WeightsError> {
        Ok(LayerNorm {
            weight: self.tensor(&format!("{prefix}.weight"), &[n])?,
            bias: self.tensor(&format!("{prefix}.bias"), &[n])?,
        })
    }

    /// A Conv1D `[n_in, n_out]` as its `[n_out, n_in]` rows: blocks as the file stored them
    /// (GGUF's are rows already, f32 ones too), F16 or BF16 transposed and held as stored, f32
    /// transposed.
    fn linear(&mut self, prefix: &str, n_in: usize, n_out: usize) -> Result<Linear, WeightsError> {
        let name = format!("{prefix}.weight");
        let weight = match self.views.get(&name) {
            // Rows already, checked before they were turned (`from_owned_safetensors`).
            Some(Source::View(_)) if self.rows_in_place.contains(&name) => {
                let Some(Source::View(v)) = self.views.remove(&name) else { unreachable!() };
                let ty = float_type(v.dtype()).expect("a float matrix");
                Matrix::Blocks(self.as_stored(&name, ty, &[n_out, n_in], v.data())?)
            }
            Some(Source::Blocks(b)) if [b.rows, b.cols] == [n_out, n_in] => {
                let Some(Source::Blocks(b)) = self.views.remove(&name) else { unreachable!() };
                finite_as_stored(&name, b.ty, &b.data)?;
                Matrix::Blocks(b)
            }
            Some(Source::View(v)) if v.shape() == [n_in, n_out] && sixteen_bits(v.dtype()).is_some() => {
                let Some(Source::View(v)) = self.views.remove(&name) else { unreachable!() };
                let ty = sixteen_bits(v.dtype()).expect("checked above");
                finite_as_stored(&name, ty, v.data())?;
                let (halves, _) = v.data().as_chunks::<2>();
                let rows = conv1d_rows(n_in, n_out, |k| halves[k]).into_flattened();
                let b = Blocks::new(ty, n_out, n_in, rows)
                    .map_err(|e| WeightsError::Malformed(format!("`{name}`: {e}")))?;
                Matrix::Blocks(b)
            }
            Some(Source::View(v)) if v.shape() == [n_in, n_out] && v.dtype() == Dtype::F32 => {
                // Read straight into rows: no `[in, out]` copy beside them while loading.
                let Some(Source::View(v)) = self.views.remove(&name) else { unreachable!() };
                let value = |k: usize| f32::from_le_bytes(v.data()[4 * k..4 * k + 4].try_into().expect("4 bytes"));
                if let Some(index) = (0..n_in * n_out).find(|&k| !value(k).is_finite()) {
                    return Err(WeightsError::NonFinite { name, index, value: value(index) });
                }
                Matrix::F32(Tensor { shape: vec![n_out, n_in], data: conv1d_rows(n_in, n_out, value) })
            }
            // A GGUF file's f32 matrix: rows already.
            Some(Source::Ready(_)) => Matrix::F32(self.tensor(&name, &[n_out, n_in])?),
            _ => Matrix::F32(crate::gguf::model::transpose(&self.tensor(&name, &[n_in, n_out])?)),
        };
        Ok(Linear { weight, bias: self.tensor(&format!("{prefix}.bias"), &[n_out])? })
    }
}

/// A Conv1D's `[n_in, n_out]` values (`value(k)`, `k` in the file's order) as `[n_out, n_in]` rows.
fn conv1d_rows<T: Copy + Default>(n_in: usize, n_out: usize, value: impl Fn(usize) -> T) -> Vec<T> {
    let mut rows = vec![T::default(); n_in * n_out];
    for i in 0..n_in {
        for o in 0..n_out {
            rows[o * n_in + i] = value(i * n_out + o);
        }
    }
    rows
}

/// A Conv1D matrix in a file: canonical name, byte range, `in`, `out` and type.
type Conv1dInFile = (String, std::ops::Range<usize>, usize, usize, GgmlType);

/// The Conv1D matrices of a GPT-2 safetensors file that `config` expects `[in, out]` and that
/// are stored so, in F32, F16 or BF16.
fn conv1d_in_file(bytes: &[u8], config: &GptConfig) -> Result<Vec<Conv1dInFile>, WeightsError> {
    let (c, f) = (config.n_embd, config.n_inner);
    let shapes = [(part::C_ATTN, c, 3 * c), (part::ATTN_PROJ, c, c), (part::C_FC, c, f), (part::MLP_PROJ, f, c)];
    let expected: BTreeMap<String, (usize, usize)> = (0..config.n_layer)
        .flat_map(|i| shapes.map(|(p, n_in, n_out)| (format!("{}.weight", part::in_block(i, p)), (n_in, n_out))))
        .collect();
    let file = SafeTensors::deserialize(bytes)?;
    let mut found = Vec::new();
    for (name, view) in file.iter() {
        let Some(name) = canonical(name) else { continue };
        let Some(&(n_in, n_out)) = expected.get(name) else { continue };
        let Some(ty) = float_type(view.dtype()) else { continue };
        if view.shape() == [n_in, n_out] {
            let start = view.data().as_ptr() as usize - bytes.as_ptr() as usize;
            found.push((name.to_string(), start..start + view.data().len(), n_in, n_out, ty));
        }
    }
    Ok(found)
}

/// The type a float matrix of `dtype` is held in as stored.
fn float_type(dtype: Dtype) -> Option<GgmlType> {
    if dtype == Dtype::F32 { Some(GgmlType::F32) } else { sixteen_bits(dtype) }
}

/// The GGML type of a 16-bit safetensors dtype, held as stored.
fn sixteen_bits(dtype: Dtype) -> Option<GgmlType> {
    match dtype {
        Dtype::F16 => Some(GgmlType::F16),
        Dtype::BF16 => Some(GgmlType::BF16),
        _ => None,
    }
}

/// A matrix held as stored in F32, F16 or BF16 must be finite, as one decoded to f32 is checked
/// to be ([`Taker::tensor`]); the index is in the file's layout.
fn finite_as_stored(name: &str, ty: GgmlType, bytes: &[u8]) -> Result<(), WeightsError> {
    if !ty.is_float() {
        return Ok(());
    }
    match crate::quant::first_non_finite_float(ty, bytes) {
        Some((index, value)) => Err(WeightsError::NonFinite { name: name.into(), index, value }),
        None => Ok(()),
    }
}

/// Little-endian bytes to f32. safetensors has already checked that `bytes` matches the shape.
fn to_f32(name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>, WeightsError> {
    let halves = || bytes.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    Ok(match dtype {
        Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => halves().map(|h| half::f16::from_bits(h).to_f32()).collect(),
        Dtype::BF16 => halves().map(|h| half::bf16::from_bits(h).to_f32()).collect(),
        other => return Err(WeightsError::Dtype { name: name.into(), dtype: format!("{other:?}") }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value a model holds, counted from its tensors.
    fn values(w: &ModelWeights) -> usize {
        let norm = |ln: &LayerNorm| ln.weight.data.len() + ln.bias.data.len();
        let linear = |l: &Linear| l.n_in() * l.n_out() + l.bias.data.len();
        let block = |b: &Block| {
            norm(&b.ln_1)
                + norm(&b.ln_2)
                + linear(&b.c_attn)
                + linear(&b.attn_proj)
                + linear(&b.c_fc)
                + linear(&b.mlp_proj)
        };
        let matrix = |m: &Matrix| m.shape().iter().product::<usize>();
        matrix(&w.wte)
            + w.wpe.data.len()
            + w.lm_head.as_ref().map_or(0, matrix)
            + w.ln_f.as_ref().map_or(0, norm)
            + w.blocks.iter().map(block).sum::<usize>()
    }

    #[test]
    fn the_config_counts_the_parameters_the_weights_hold() {
        for (tied, pos) in [(true, "pre"), (false, "pre"), (true, "post"), (false, "post")] {
            let json = format!(
                r#"{{"vocab_size":50,"n_positions":9,"n_embd":12,"n_layer":2,"n_head":3,"n_inner":20,
                "tie_word_embeddings":{tied},"layer_norm_position":"{pos}"}}"#
            );
            let config = GptConfig::from_json(json.as_bytes()).unwrap();
            assert_eq!(config.parameter_count(), values(&ModelWeights::random(&config, 1)), "tied {tied}, {pos}-LN");
        }
        // GPT-2 small: the 124,439,808 of the paper's table as HF counts it (tied head).
        assert_eq!(GptConfig::preset("gpt2-124m").unwrap().parameter_count(), 124_439_808);
    }
}
