//! A model's weights and working buffers on the device: uploaded once, one layer at a time in
//! the kernels' layout ([`super::layout`]), named per part (the checkpoint's names label each
//! buffer), and counted for the footprint.

use wgpu::util::DeviceExt;

use super::layout::{HostLinear, HostMatrix, HostNorm, HostTable, Source};
use super::plan::Plan;
use super::shape::Shape;
use super::{GpuError, WeightFormat};
use crate::model::Footprint;

/// A norm's gain, and LayerNorm's shift (f32).
pub struct NormBuffers {
    pub g: wgpu::Buffer,
    pub b: Option<wgpu::Buffer>,
}

/// A linear layer: the matrix in the device format, the bias in f32.
pub struct LinearBuffers {
    pub w: wgpu::Buffer,
    pub b: wgpu::Buffer,
    /// The block type `w` is in, or None for floats: which kernels read it.
    pub blocks: Option<crate::quant::GgmlType>,
}

/// One block's weights and its slice of the KV cache.
pub struct LayerBuffers {
    pub ln_1: NormBuffers,
    /// q | k | v, `[hidden, q_dim + 2·kv_dim]`.
    pub qkv: LinearBuffers,
    pub attn_proj: LinearBuffers,
    pub ln_2: NormBuffers,
    /// The MLP's first layer (GPT-2's `c_fc`; gate and up for SwiGLU).
    pub fc: LinearBuffers,
    /// The MLP's output projection.
    pub proj: LinearBuffers,
    /// Qwen3's per-head gains of q and k.
    pub qk_norm: Option<(wgpu::Buffer, wgpu::Buffer)>,
    /// `[n_ctx, kv_dim]` f32 each.
    pub k_cache: wgpu::Buffer,
    pub v_cache: wgpu::Buffer,
}

/// Rows `lo .. lo + rows` of the embedding or head matrix: a matrix larger than one storage
/// binding is split by rows ([`Plan::rows_per_chunk`]).
pub struct RowChunk {
    pub lo: usize,
    pub rows: usize,
    pub buffer: wgpu::Buffer,
}

pub struct WeightBuffers {
    /// GPT-2's learned positions.
    pub wpe: Option<wgpu::Buffer>,
    /// Rotary models' `[n_ctx, head_dim/2]` (cos, sin) table.
    pub rope: Option<wgpu::Buffer>,
    pub layers: Vec<LayerBuffers>,
    /// The norm before the head.
    pub final_norm: NormBuffers,
    pub wte: Vec<RowChunk>,
    /// An untied head; the tied one is `wte`.
    pub lm_head: Option<Vec<RowChunk>>,
}

impl WeightBuffers {
    pub fn head(&self) -> &[RowChunk] {
        self.lm_head.as_deref().unwrap_or(&self.wte)
    }
}

/// Activations, the logits and what the pick kernels read and write; sized for one prefill chunk.
pub struct Scratch {
    /// The residual stream `[chunk_rows, n_embd]`.
    pub x: wgpu::Buffer,
    /// Normed rows (the tiled prefill's GEMM input, the head's input).
    pub h: wgpu::Buffer,
    pub q: wgpu::Buffer,
    pub att: wgpu::Buffer,
    pub fc: wgpu::Buffer,
    pub ids: wgpu::Buffer,
    pub logits: wgpu::Buffer,
    /// Attention probabilities `[chunk_rows, n_head, n_positions]`, read back for maps.
    pub probs: wgpu::Buffer,
    pub token: wgpu::Buffer,
    /// `[vocab]` u32: 1 for the tokens in the context (the repetition penalty).
    pub seen: wgpu::Buffer,
    pub scores: wgpu::Buffer,
    /// Bound where a kernel's unused slots need a buffer: the caches outside the q | k | v
    /// epilogue, and a read-only input a model lacks.
    pub unused: [wgpu::Buffer; 3],
    /// Uniforms written per step.
    pub step: wgpu::Buffer,
    pub sampling: wgpu::Buffer,
    /// MAP_READ: logits, attention probabilities or a token id come back through it.
    pub staging: wgpu::Buffer,
}

/// Makes buffers and counts their bytes.
struct Allocator<'a> {
    device: &'a wgpu::Device,
    /// The block matrices' format, and the embedding's and the head's.
    format: WeightFormat,
    tables: WeightFormat,
    footprint: Footprint,
}

const STORAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_DST).union(wgpu::BufferUsages::COPY_SRC);

impl Allocator<'_> {
    fn weights(&mut self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        self.footprint.weights += bytes.len() as u64;
        // Bindings of fewer than 16 bytes are not portable.
        let padded;
        let contents = if bytes.len() < 16 {
            padded = [bytes, &[0u8; 16][..16 - bytes.len()]].concat();
            &padded[..]
        } else {
            bytes
        };
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: STORAGE,
        })
    }

    /// A vector kept in f32 (biases, norms, position embeddings).
    fn f32s(&mut self, label: &str, v: &[f32]) -> wgpu::Buffer {
        self.weights(label, bytemuck::cast_slice(v))
    }

    /// A float matrix in `format`.
    fn matrix(&mut self, label: &str, data: &[f32], format: WeightFormat) -> Result<wgpu::Buffer, GpuError> {
        let bytes = encode(label, data, format)?;
        Ok(self.weights(label, &bytes))
    }

    fn norm(&mut self, name: &str, n: &HostNorm) -> NormBuffers {
        NormBuffers {
            g: self.f32s(&format!("{name}.weight"), n.g),
            b: n.b.map(|b| self.f32s(&format!("{name}.bias"), b)),
        }
    }

    fn linear(&mut self, name: &str, l: &HostLinear) -> Result<LinearBuffers, GpuError> {
        let label = format!("{name}.weight");
        let w = match &l.w {
            HostMatrix::Kn(w) => self.matrix(&label, w, self.format.float())?,
            HostMatrix::Rows(b) => self.weights(&label, &pack_blocks(b.ty, &b.data)),
        };
        let blocks = match &l.w {
            HostMatrix::Kn(_) => None,
            HostMatrix::Rows(b) => Some(b.ty),
        };
        Ok(LinearBuffers { w, b: self.f32s(&format!("{name}.bias"), &l.b), blocks })
    }

    /// A `[vocab, n_embd]` table in row chunks of at most `rows_per_chunk`.
    fn rows(&mut self, name: &str, t: &HostTable, rows_per_chunk: usize) -> Result<Vec<RowChunk>, GpuError> {
        let (v, row_len) = match t {
            HostTable::F32(t) => (t.shape[0], t.shape[1]),
            HostTable::Blocks(b) => (b.rows, b.row_bytes()),
        };
        let mut out = Vec::new();
        let mut lo = 0;
        while lo < v {
            let rows = rows_per_chunk.min(v - lo);
            let span = lo * row_len..(lo + rows) * row_len;
            let buffer = match t {
                HostTable::F32(t) => self.matrix(name, &t.data[span], self.tables)?,
                HostTable::Blocks(b) => self.weights(name, &pack_blocks(b.ty, &b.data[span])),
            };
            out.push(RowChunk { lo, rows, buffer });
            lo += rows;
        }
        Ok(out)
    }

    fn empty(&mut self, label: &str, bytes: usize) -> wgpu::Buffer {
        let size = (bytes as u64).max(16).next_multiple_of(16);
        self.footprint.scratch += size;
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: STORAGE,
            mapped_at_creation: false,
        })
    }

    fn uniform(&mut self, label: &str, size: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }
}

/// Uploads validated weights and makes the working buffers that `plan` sized.
pub fn upload(
    device: &wgpu::Device,
    shape: &Shape,
    source: Source,
    plan: &Plan,
) -> Result<(WeightBuffers, Scratch, Footprint), GpuError> {
    let mut a = Allocator { device, format: plan.format, tables: plan.tables, footprint: Footprint::default() };
    let (c, v, t, heads) = (shape.hidden, shape.vocab, shape.n_ctx, shape.n_head);
    let (rows, logit_rows) = (plan.chunk_rows, plan.logit_rows);

    let mut layers = Vec::with_capacity(shape.n_layer);
    for l in 0..shape.n_layer {
        // Llama matrices are transposed here, one layer at a time: the host never holds a
        // second copy of the whole model.
        let h = source.layer(shape, l, plan.format)?;
        let [ln_1, qkv, attn_proj, ln_2, fc, proj] = &h.names;
        layers.push(LayerBuffers {
            ln_1: a.norm(ln_1, &h.ln_1),
            qkv: a.linear(qkv, &h.qkv)?,
            attn_proj: a.linear(attn_proj, &h.attn_proj)?,
            ln_2: a.norm(ln_2, &h.ln_2),
            fc: a.linear(fc, &h.fc)?,
            proj: a.linear(proj, &h.proj)?,
            qk_norm: h
                .qk_norm
                .map(|(q, k)| (a.f32s(&format!("layer {l} q_norm"), q), a.f32s(&format!("layer {l} k_norm"), k))),
            k_cache: a.empty(&format!("layer {l} k cache"), t * shape.kv_dim() * 4),
            v_cache: a.empty(&format!("layer {l} v cache"), t * shape.kv_dim() * 4),
        });
    }
    let (final_norm, norm_name) =
        source.final_norm().ok_or_else(|| GpuError::Unsupported("a model without a final norm".into()))?;
    let (embed, embed_name) = source.embed(plan.tables);
    let weights = WeightBuffers {
        wpe: source.wpe().map(|w| a.f32s("wpe.weight", &w.data)),
        rope: source.rope_table(t).map(|table| a.f32s("rotary table", &table)),
        final_norm: a.norm(norm_name, &final_norm),
        wte: a.rows(embed_name, &embed, plan.rows_per_chunk)?,
        lm_head: source.lm_head(plan.tables).map(|h| a.rows("lm_head.weight", &h, plan.rows_per_chunk)).transpose()?,
        layers,
    };
    let staging_size = (logit_rows * v * 4).max(rows * heads * t * 4).max(16) as u64;
    let scratch = Scratch {
        x: a.empty("x", rows * c * 4),
        h: a.empty("h", rows * c * 4),
        q: a.empty("q", rows * shape.q_dim() * 4),
        att: a.empty("att", rows * shape.q_dim() * 4),
        fc: a.empty("fc", rows * shape.inner * 4),
        ids: a.empty("ids", rows * 4),
        logits: a.empty("logits", logit_rows * v * 4),
        probs: a.empty("probs", rows * heads * t * 4),
        token: a.empty("token", 16),
        seen: a.empty("seen", v * 4),
        scores: a.empty("sample scores", v * 4),
        unused: [a.empty("unused k", 16), a.empty("unused v", 16), a.empty("unused input", 16)],
        step: a.uniform("step", std::mem::size_of::<super::uniforms::Step>() as u64),
        sampling: a.uniform("sampling", std::mem::size_of::<super::uniforms::Sampling>() as u64),
        staging: device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: staging_size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }),
    };
    a.footprint.scratch += staging_size;
    Ok((weights, scratch, a.footprint))
}

/// GGML block rows as the block kernels read them (`shaders/blocks.wgsl`): every block's
/// codes first — Q8_0's 32 bytes as 8 u32, Q4_0's 16 bytes as 4 u32, GGML's byte order kept —
/// then every block's f16 scale, two per u32. Apart, both are 4-byte aligned (a GGML block of 34
/// or 18 bytes is not), and the kernels index them without a stride of odd bytes. Q4_K's
/// 144-byte super-blocks are whole words already and stay as stored (`shaders/q4_k.wgsl`).
fn pack_blocks(ty: crate::quant::GgmlType, data: &[u8]) -> Vec<u8> {
    use crate::quant::GgmlType;
    match ty {
        // 144-byte super-blocks are already whole words: kept as the file has them (q4_k.wgsl).
        GgmlType::Q4K => return data.to_vec(),
        // 210-byte super-blocks, each padded to 212 (q6_k.wgsl).
        GgmlType::Q6K => return data.chunks_exact(210).flat_map(|b| b.iter().copied().chain([0, 0])).collect(),
        _ => {}
    }
    let block = ty.block_bytes() as usize;
    let n_blocks = data.len() / block;
    let mut codes = Vec::with_capacity(n_blocks * (block - 2) + n_blocks * 2 + 2);
    let mut scales = Vec::with_capacity(n_blocks * 2 + 2);
    for chunk in data.chunks_exact(block) {
        scales.extend_from_slice(&chunk[..2]);
        codes.extend_from_slice(&chunk[2..]);
    }
    codes.extend(scales);
    codes.resize(codes.len().next_multiple_of(4), 0);
    codes
}

/// A matrix in the device format: f32 little-endian, or f16 pairs packed into u32 (element 2i
/// in the low half, as `unpack2x16float` reads it).
fn encode(name: &str, data: &[f32], format: WeightFormat) -> Result<Vec<u8>, GpuError> {
    match format {
        WeightFormat::F32 => Ok(bytemuck::cast_slice(data).to_vec()),
        WeightFormat::Q8_0
        | WeightFormat::Q4_0
        | WeightFormat::Q5_0
        | WeightFormat::Q4K
        | WeightFormat::Q6K
        | WeightFormat::Mixed => {
            Err(GpuError::Unsupported(format!("{name}: f32 values cannot be uploaded as {format} here")))
        }
        WeightFormat::F16 => {
            let mut out = Vec::with_capacity(data.len() * 2);
            for &x in data {
                let h = half::f16::from_f32(x);
                if h.is_infinite() {
                    return Err(GpuError::Unsupported(format!("{name} holds {x}, beyond f16's range; load it as f32")));
                }
                out.extend(h.to_le_bytes());
            }
            Ok(out)
        }
    }
}
