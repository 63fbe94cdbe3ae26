//! How each architecture's tensors are laid out for the kernels. Every matrix is `[K, N]` (input
//! rows, output columns: GPT-2's Conv1D layout, which matvec.wgsl reads four columns at a time),
//! a block's q | k | v is one matrix, and so is the MLP's first layer. The engines hold every
//! matrix `[out, in]`; here they are transposed, one layer at a time while uploading — GPT-2's
//! back to its Conv1D layout, the Llama family's in the column order their epilogues expect
//! (`shaders/linear_epilogue.wgsl`):
//! - q and k, when the rotation is fused (no q/k norm): within each head, column `2j` is HF's
//!   dimension `j` and column `2j + 1` is `j + head_dim/2`, the pair one rotation turns;
//! - gate and up: columns `4m .. 4m + 3` are gate `2m`, `2m + 1`, up `2m`, `2m + 1`.
//!
//! In a block format (Q8_0, Q4_0, …) a matrix stays `[N, K]`: output column `n` is one row of
//! GGML blocks — a Llama matrix's rows gathered in that same column order (a row is copied whole,
//! never decoded), GPT-2's as a GGUF file stores them — quantized here only where the checkpoint
//! stored the matrix otherwise.

use std::borrow::Cow;

use super::shape::Shape;
use super::{GpuError, WeightFormat};
use crate::llama::weights::{LlamaLayer, Proj};
use crate::llama::{LlamaConfig, LlamaWeights};
use crate::quant::{Blocks, GgmlType, Matrix};
use crate::weights::{LayerNorm, Linear, ModelWeights, Tensor, part};

/// A norm's gain, and LayerNorm's shift.
pub struct HostNorm<'a> {
    pub g: &'a [f32],
    pub b: Option<&'a [f32]>,
}

/// A matrix as the kernels read it.
pub enum HostMatrix<'a> {
    /// `[K, N]` in f32 (written in the device's float format at upload).
    Kn(Cow<'a, [f32]>),
    /// `N` rows of `K` values in GGML blocks: row `n` is output column `n`.
    Rows(Blocks),
}

/// The embedding or the head as uploaded: rows in f32 (borrowed, or decoded from blocks), or the
/// stored blocks (`tables` a block format).
pub enum HostTable<'a> {
    F32(Cow<'a, Tensor>),
    Blocks(&'a Blocks),
}

fn table(m: &Matrix, tables: WeightFormat) -> HostTable<'_> {
    match m {
        Matrix::Blocks(b) if tables.blocks() == Some(b.ty) => HostTable::Blocks(b),
        m => HostTable::F32(m.to_f32()),
    }
}

/// A linear layer as the kernels read it: `w` `[K, N]` or its rows of blocks, `b` `[N]` (zeros
/// where the model has none).
pub struct HostLinear<'a> {
    pub w: HostMatrix<'a>,
    pub b: Cow<'a, [f32]>,
}

/// One block's tensors in the kernels' layout, with the names its buffers are labelled by.
pub struct HostLayer<'a> {
    pub ln_1: HostNorm<'a>,
    pub qkv: HostLinear<'a>,
    pub attn_proj: HostLinear<'a>,
    pub ln_2: HostNorm<'a>,
    pub fc: HostLinear<'a>,
    pub proj: HostLinear<'a>,
    /// Qwen3's per-head gains of q and k.
    pub qk_norm: Option<(&'a [f32], &'a [f32])>,
    /// `[ln_1, qkv, attn_proj, ln_2, fc, proj]` as the checkpoint names them.
    pub names: [String; 6],
}

/// A validated checkpoint of either architecture.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    Gpt(&'a ModelWeights),
    Llama(&'a LlamaConfig, &'a LlamaWeights),
}

impl<'a> Source<'a> {
    /// The format of the embedding and the head beside matrices in `format`
    /// ([`WeightFormat::tables`]).
    pub fn tables(&self, format: WeightFormat) -> WeightFormat {
        match self {
            Source::Gpt(w) => format.tables(w.wte.type_name(), w.lm_head.as_ref().map(Matrix::type_name)),
            Source::Llama(_, w) => format.tables(w.embed_tokens.type_name(), w.lm_head.as_ref().map(Matrix::type_name)),
        }
    }
    /// `[vocab, hidden]` in `tables`' format, and its name.
    pub fn embed(&self, tables: WeightFormat) -> (HostTable<'a>, &'static str) {
        match self {
            Source::Gpt(w) => (table(&w.wte, tables), "wte.weight"),
            Source::Llama(_, w) => (table(&w.embed_tokens, tables), "model.embed_tokens.weight"),
        }
    }
    /// An untied head `[vocab, hidden]`, in `tables`' format.
    pub fn lm_head(&self, tables: WeightFormat) -> Option<HostTable<'a>> {
        match self {
            Source::Gpt(w) => w.lm_head.as_ref().map(|m| table(m, tables)),
            Source::Llama(_, w) => w.lm_head.as_ref().map(|m| table(m, tables)),
        }
    }
    /// GPT-2's learned positions `[n_positions, hidden]`.
    pub fn wpe(&self) -> Option<&'a Tensor> {
        match self {
            Source::Gpt(w) => Some(&w.wpe),
            Source::Llama(..) => None,
        }
    }
    /// The norm before the head, and its name.
    pub fn final_norm(&self) -> Option<(HostNorm<'a>, &'static str)> {
        match self {
            Source::Gpt(w) => w.ln_f.as_ref().map(|ln| (layer_norm(ln), "ln_f")),
            Source::Llama(_, w) => Some((HostNorm { g: &w.norm.data, b: None }, "model.norm")),
        }
    }
    /// `[n_ctx, head_dim/2]` pairs `(cos θ, sin θ)`, `θ = pos · f_j` — computed as the CPU
    /// reference computes them, so both engines turn by the same angles.
    pub fn rope_table(&self, n_ctx: usize) -> Option<Vec<f32>> {
        let Source::Llama(c, _) = self else { return None };
        let inv_freq = c.inv_freq();
        let mut table = Vec::with_capacity(n_ctx * inv_freq.len() * 2);
        for pos in 0..n_ctx {
            for &f in &inv_freq {
                let (sin, cos) = (pos as f32 * f).sin_cos();
                table.extend([cos, sin]);
            }
        }
        Some(table)
    }

    /// Block `l` in the kernels' layout, its matrices in `format`'s blocks, as stored
    /// ([`WeightFormat::Mixed`]) or in floats.
    pub fn layer(&self, shape: &Shape, l: usize, format: WeightFormat) -> Result<HostLayer<'a>, GpuError> {
        let choice = match format {
            WeightFormat::F32 | WeightFormat::F16 => Choice::Floats,
            WeightFormat::Mixed => Choice::AsStored,
            f => Choice::Blocks(f.blocks().expect("a block format")),
        };
        match *self {
            Source::Gpt(w) => {
                let b = &w.blocks[l];
                let name = |p: &str| part::in_block(l, p);
                Ok(HostLayer {
                    ln_1: layer_norm(&b.ln_1),
                    qkv: conv1d(&b.c_attn, choice)?,
                    attn_proj: conv1d(&b.attn_proj, choice)?,
                    ln_2: layer_norm(&b.ln_2),
                    fc: conv1d(&b.c_fc, choice)?,
                    proj: conv1d(&b.mlp_proj, choice)?,
                    qk_norm: None,
                    names: [part::LN_1, part::C_ATTN, part::ATTN_PROJ, part::LN_2, part::C_FC, part::MLP_PROJ]
                        .map(name),
                })
            }
            Source::Llama(_, w) => llama_layer(&w.layers[l], shape, l, choice),
        }
    }

    /// The block types the layers' matrices will be uploaded in (the kernels compiled for them).
    pub fn block_types(&self, format: WeightFormat) -> Vec<GgmlType> {
        if format != WeightFormat::Mixed {
            return format.blocks().into_iter().collect();
        }
        let mut types: Vec<GgmlType> = match self {
            Source::Gpt(w) => w.blocks.iter().flat_map(|b| b.linears()).filter_map(|l| l.weight.block_type()).collect(),
            Source::Llama(_, w) => {
                w.layers.iter().flat_map(|l| l.projections()).filter_map(|p| p.weight.block_type()).collect()
            }
        };
        types.retain(|&t| WeightFormat::of_blocks(t).is_some());
        types.sort_by_key(|t| t.name());
        types.dedup();
        types
    }
}

/// How a layer's matrices are held: in floats, in blocks of one type (quantized where stored
/// otherwise), or as stored where the kernels read the stored blocks.
#[derive(Clone, Copy, PartialEq)]
enum Choice {
    Floats,
    Blocks(GgmlType),
    AsStored,
}

fn layer_norm(ln: &LayerNorm) -> HostNorm<'_> {
    HostNorm { g: &ln.weight.data, b: Some(&ln.bias.data) }
}

/// A GPT-2 matrix in `choice`'s format: f32 `[K, N]` (transposed from the rows it is held in,
/// decoded where they are blocks), rows of blocks as stored, or quantized here. GPT-2's columns
/// need no reordering (its q | k | v are already whole heads in order, and GELU takes one column).
fn conv1d(l: &Linear, choice: Choice) -> Result<HostLinear<'_>, GpuError> {
    let readable = |b: &Blocks| WeightFormat::of_blocks(b.ty).is_some();
    let w = match (choice, &l.weight) {
        (Choice::AsStored, Matrix::Blocks(b)) if readable(b) => HostMatrix::Rows(b.clone()),
        (Choice::Blocks(ty), Matrix::Blocks(b)) if b.ty == ty => HostMatrix::Rows(b.clone()),
        (Choice::Blocks(ty), w) => {
            let rows = w.to_f32();
            let [n, k] = [rows.shape[0], rows.shape[1]];
            let blocks = Matrix::quantize(ty, n, k, &rows.data)
                .map_err(|e| GpuError::Unsupported(format!("{} weights: {e}", ty.name())))?;
            HostMatrix::Rows(blocks)
        }
        (Choice::Floats | Choice::AsStored, _) => HostMatrix::Kn(Cow::Owned(l.conv1d().data)),
    };
    Ok(HostLinear { w, b: Cow::Borrowed(&l.bias.data) })
}

/// A projection's `[out, K]` rows — f32 (borrowed, or decoded from blocks), or blocks of the
/// device's type (borrowed, or quantized from what the file stored) — and its bias.
struct Rows<'a> {
    w: RowData<'a>,
    b: Option<&'a Tensor>,
}

enum RowData<'a> {
    F32(Cow<'a, Tensor>),
    Blocks(Cow<'a, Blocks>),
}

impl<'a> Rows<'a> {
    fn of(p: &'a Proj, choice: Choice) -> Result<Self, GpuError> {
        let w = match (choice, &p.weight) {
            (Choice::AsStored, Matrix::Blocks(b)) if WeightFormat::of_blocks(b.ty).is_some() => {
                RowData::Blocks(Cow::Borrowed(b))
            }
            (Choice::Floats | Choice::AsStored, m) => RowData::F32(m.to_f32()),
            (Choice::Blocks(ty), Matrix::Blocks(b)) if b.ty == ty => RowData::Blocks(Cow::Borrowed(b)),
            (Choice::Blocks(ty), m) => {
                let t = m.to_f32();
                let [rows, cols] = [t.shape[0], t.shape[1]];
                let blocks = Matrix::quantize(ty, rows, cols, &t.data)
                    .map_err(|e| GpuError::Unsupported(format!("{} weights: {e}", ty.name())))?;
                RowData::Blocks(Cow::Owned(blocks))
            }
        };
        Ok(Rows { w, b: p.bias.as_ref() })
    }
}

/// Column `n` of the kernels' matrix is row `rows[n]` of an `[out, K]` one (with its bias): its
/// block rows copied in that order where every row is in one block type, else transposed into
/// `[K, N]` f32 (rows in blocks decoded: q | k | v of a file that stores v in another type).
fn columns(rows: &[(&Rows, usize)], k: usize) -> HostLinear<'static> {
    let n = rows.len();
    let b = rows.iter().map(|&(p, r)| p.b.map_or(0.0, |b| b.data[r])).collect();
    let ty = |p: &Rows| match &p.w {
        RowData::Blocks(b) => Some(b.ty),
        RowData::F32(_) => None,
    };
    let first = rows.first().and_then(|(p, _)| ty(p));
    let w = match first {
        Some(t) if rows.iter().all(|(p, _)| ty(p) == Some(t)) => {
            let mut data = Vec::new();
            for &(p, r) in rows {
                let RowData::Blocks(blocks) = &p.w else { unreachable!("every row in blocks of one type") };
                data.extend_from_slice(blocks.row(r));
            }
            HostMatrix::Rows(Blocks::new(t, n, k, data).expect("whole rows of one type"))
        }
        _ => {
            let mut w = vec![0.0f32; k * n];
            let mut row = vec![0.0f32; k];
            for (col, &(p, r)) in rows.iter().enumerate() {
                let values = match &p.w {
                    RowData::F32(t) => &t.data[r * k..][..k],
                    RowData::Blocks(b) => {
                        crate::quant::dequantize_into(b.ty, b.row(r), &mut row).expect("checked when built");
                        &row[..]
                    }
                };
                for (i, &v) in values.iter().enumerate() {
                    w[i * n + col] = v;
                }
            }
            HostMatrix::Kn(Cow::Owned(w))
        }
    };
    HostLinear { w, b: Cow::Owned(b) }
}

fn llama_layer<'a>(layer: &'a LlamaLayer, s: &Shape, l: usize, choice: Choice) -> Result<HostLayer<'a>, GpuError> {
    let hd = s.head_dim;
    let fused_rotation = !s.qk_norm;
    let [q, k, v, o, gate, up, down] = [
        &layer.q_proj,
        &layer.k_proj,
        &layer.v_proj,
        &layer.o_proj,
        &layer.gate_proj,
        &layer.up_proj,
        &layer.down_proj,
    ]
    .map(|p| Rows::of(p, choice));
    let [q, k, v, o, gate, up, down] = [q?, k?, v?, o?, gate?, up?, down?];
    // Heads of q or k, in the epilogue's pair order when it rotates them.
    fn heads<'r>(p: &'r Rows<'r>, n_heads: usize, hd: usize, fused_rotation: bool) -> Vec<(&'r Rows<'r>, usize)> {
        let half = hd / 2;
        (0..n_heads * hd)
            .map(|c| {
                let (head, i) = (c / hd, c % hd);
                let dim = if fused_rotation { i / 2 + (i % 2) * half } else { i };
                (p, head * hd + dim)
            })
            .collect()
    }
    let mut qkv = heads(&q, s.n_head, hd, fused_rotation);
    qkv.extend(heads(&k, s.n_kv_head, hd, fused_rotation));
    qkv.extend((0..s.kv_dim()).map(|r| (&v, r)));
    let gate_up: Vec<(&Rows, usize)> = (0..2 * s.inner)
        .map(|c| {
            let (m, j) = (c / 4, c % 4);
            if j < 2 { (&gate, 2 * m + j) } else { (&up, 2 * m + j - 2) }
        })
        .collect();
    fn straight<'r>(p: &'r Rows<'r>, out: usize) -> Vec<(&'r Rows<'r>, usize)> {
        (0..out).map(|r| (p, r)).collect()
    }
    let name = |p: &str| format!("model.layers.{l}.{p}");
    Ok(HostLayer {
        ln_1: HostNorm { g: &layer.input_layernorm.data, b: None },
        qkv: columns(&qkv, s.hidden),
        attn_proj: columns(&straight(&o, s.hidden), s.q_dim()),
        ln_2: HostNorm { g: &layer.post_attention_layernorm.data, b: None },
        fc: columns(&gate_up, s.hidden),
        proj: columns(&straight(&down, s.hidden), s.inner),
        qk_norm: layer.q_norm.as_ref().zip(layer.k_norm.as_ref()).map(|(q, k)| (&q.data[..], &k.data[..])),
        names: [
            "input_layernorm",
            "self_attn.q_proj|k_proj|v_proj",
            "self_attn.o_proj",
            "post_attention_layernorm",
            "mlp.gate_proj|up_proj",
            "mlp.down_proj",
        ]
        .map(name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_transpose_out_in_rows_into_k_n() {
        let data = (0..6).map(|i| i as f32).collect(); // rows [0,1], [2,3], [4,5]
        let p = Rows { w: RowData::F32(Cow::Owned(Tensor { shape: vec![3, 2], data })), b: None };
        let lin = columns(&[(&p, 2), (&p, 0)], 2);
        // K = 2 rows of N = 2 columns: column 0 is row 2, column 1 is row 0.
        let HostMatrix::Kn(w) = &lin.w else { panic!("f32 rows give a [K, N] matrix") };
        assert_eq!(&w[..], &[4.0, 0.0, 5.0, 1.0]);
        assert_eq!(&lin.b[..], &[0.0, 0.0]);
    }

    #[test]
    fn block_rows_are_copied_whole_in_column_order() {
        // Three rows of one Q8_0 block each; the kernels' column 0 is row 2, column 1 row 0.
        let x: Vec<f32> = (0..96).map(|i| i as f32 - 40.0).collect();
        let data = crate::quant::quantize_q8_0(&x).unwrap();
        let blocks = Blocks::new(GgmlType::Q8_0, 3, 32, data.clone()).unwrap();
        let p = Rows { w: RowData::Blocks(Cow::Owned(blocks)), b: None };
        let lin = columns(&[(&p, 2), (&p, 0)], 32);
        let HostMatrix::Rows(rows) = &lin.w else { panic!("block rows stay blocks") };
        assert_eq!((rows.rows, rows.cols), (2, 32));
        assert_eq!(*rows.data, [&data[68..102], &data[0..34]].concat());
    }
}
