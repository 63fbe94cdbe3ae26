//! The bind groups of a model on the device: every dispatch's buffers and uniform block, made once
//! at load. Each group is filled through its kernel's bindings struct ([`super::kernels`]), so a
//! buffer goes to a binding by name.

use bytemuck::Pod;
use wgpu::util::DeviceExt;

use super::kernels::{
    ArgmaxBindings, AttentionBindings, EmbedBindings, HeadBindings, Kernel, Kernels, LinearBindings, NormBindings,
    QkNormBindings, SampleBindings,
};
use super::shape::{Norm, Shape};
use super::uniforms::{
    AttentionDims, EmbedDims, Epilogue, HeadDims, LinearDims, NormDims, QkNormDims, UNIFORM_BINDING, VocabDims,
};
use super::upload::{LayerBuffers, LinearBuffers, NormBuffers, RowChunk, Scratch, WeightBuffers};
use crate::quant::GgmlType;

/// Bind groups of one transformer block.
pub struct LayerGroups {
    /// For matvec (decode, and prefill on software adapters): the input is the residual stream
    /// and the norm is fused into the matvec.
    pub qkv: wgpu::BindGroup,
    pub attn_proj: wgpu::BindGroup,
    pub fc: wgpu::BindGroup,
    pub proj: wgpu::BindGroup,
    /// For the tiled prefill: the norm runs first into `h`, the GEMMs read `h`.
    pub qkv_tiled: wgpu::BindGroup,
    pub fc_tiled: wgpu::BindGroup,
    pub ln_1: wgpu::BindGroup,
    pub ln_2: wgpu::BindGroup,
    /// Qwen3's per-head q/k norm and rotation, after the q | k | v matvec.
    pub qk_norm: Option<wgpu::BindGroup>,
    pub attention: wgpu::BindGroup,
    /// Each matrix's block type (None: floats): the kernels that read it.
    pub blocks: LayerBlocks,
}

/// The block type of each of a layer's matrices.
pub struct LayerBlocks {
    pub qkv: Option<GgmlType>,
    pub attn_proj: Option<GgmlType>,
    pub fc: Option<GgmlType>,
    pub proj: Option<GgmlType>,
}

/// A row chunk of the embedding (or LM head) matrix, bound to one kernel.
pub struct Chunk {
    pub group: wgpu::BindGroup,
    pub rows: u32,
}

pub struct BindGroups {
    pub layers: Vec<LayerGroups>,
    pub embed: Vec<Chunk>,
    pub lm_head: Vec<Chunk>,
    pub final_norm: wgpu::BindGroup,
    pub argmax: wgpu::BindGroup,
    pub sample: wgpu::BindGroup,
    /// Every dispatch's uniform block, each at its own 256-byte slot (kept alive by the groups too).
    _dims: wgpu::Buffer,
}

/// LayerNorm's shift, else the rotary table (RMSNorm has no shift): see `LinearBindings`.
fn shift_or_rope<'a>(
    ln: &'a NormBuffers,
    rope: Option<&'a wgpu::Buffer>,
    nothing: &'a wgpu::Buffer,
) -> &'a wgpu::Buffer {
    ln.b.as_ref().or(rope).unwrap_or(nothing)
}

fn whole(b: &wgpu::Buffer) -> wgpu::BindingResource<'_> {
    b.as_entire_binding()
}

/// Uniform blocks are bound at offsets that are multiples of this (WebGPU's guaranteed limit).
const UNIFORM_SLOT: usize = 256;

/// Collects the uniform blocks of every dispatch into one buffer.
#[derive(Default)]
struct DimsBuilder {
    bytes: Vec<u8>,
}

impl DimsBuilder {
    fn push<T: Pod>(&mut self, block: T) -> u64 {
        let offset = self.bytes.len();
        self.bytes.extend_from_slice(bytemuck::bytes_of(&block));
        self.bytes.resize(offset + UNIFORM_SLOT, 0);
        offset as u64
    }
}

/// The uniform blocks of one block's dispatches (the same for every layer).
struct BlockDims {
    qkv: u64,
    attn_proj: u64,
    fc: u64,
    proj: u64,
    qkv_tiled: u64,
    fc_tiled: u64,
    ln: u64,
    qk_norm: u64,
    attention: u64,
}

pub fn bind(device: &wgpu::Device, kernels: &Kernels, shape: &Shape, w: &WeightBuffers, s: &Scratch) -> BindGroups {
    let sh = shape;
    let (c, inner, v, t, heads, hd) = (sh.hidden, sh.inner, sh.vocab, sh.n_ctx, sh.n_head, sh.head_dim);
    let eps = sh.eps;
    let (q_dim, head_dim) = (sh.q_dim() as u32, hd as u32);
    let ln_mode = match sh.norm {
        Norm::Layer => 1,
        Norm::Rms => 2,
    };
    let mut dims = DimsBuilder::default();
    let mut linear = |k: usize, n: usize, epilogue: Epilogue, ln: bool| {
        let ln = if ln { ln_mode } else { 0 };
        dims.push(LinearDims { k: k as u32, n: n as u32, mode: epilogue as u32, ln, eps, q_dim, head_dim, _pad: [0] })
    };
    // The rotation rides in the q | k | v epilogue unless a per-head norm must come first.
    let qkv_epilogue = if sh.rotary && !sh.qk_norm { Epilogue::QkvRope } else { Epilogue::QkvAppend };
    let fc_epilogue = if sh.swiglu { Epilogue::SwiGlu } else { Epilogue::Gelu };
    let (qkv_n, fc_n) = (sh.qkv_dim(), sh.fc_dim());
    let rms = u32::from(sh.norm == Norm::Rms);
    let block = BlockDims {
        qkv: linear(c, qkv_n, qkv_epilogue, true),
        attn_proj: linear(sh.q_dim(), c, Epilogue::Residual, false),
        fc: linear(c, fc_n, fc_epilogue, true),
        proj: linear(inner, c, Epilogue::Residual, false),
        qkv_tiled: linear(c, qkv_n, qkv_epilogue, false),
        fc_tiled: linear(c, fc_n, fc_epilogue, false),
        ln: dims.push(NormDims { n: c as u32, eps, only_logit_rows: 0, rms, _pad: [] }),
        qk_norm: dims.push(QkNormDims {
            q_dim,
            kv_dim: sh.kv_dim() as u32,
            head_dim,
            n_head: heads as u32,
            eps,
            _pad: [0; 3],
        }),
        attention: dims.push(AttentionDims {
            c: q_dim,
            n_head: heads as u32,
            head_dim,
            t_max: t as u32,
            scale: 1.0 / (hd as f32).sqrt(),
            kv_c: sh.kv_dim() as u32,
            group: (heads / sh.n_kv_head) as u32,
            _pad: [0],
        }),
    };
    let final_dims = dims.push(NormDims { n: c as u32, eps, only_logit_rows: 1, rms, _pad: [] });
    let positions = u32::from(w.wpe.is_some());
    let chunk_dims = |dims: &mut DimsBuilder, chunks: &[RowChunk], head: bool| -> Vec<u64> {
        chunks
            .iter()
            .map(|ch| {
                let (c, lo, rows) = (c as u32, ch.lo as u32, ch.rows as u32);
                if head {
                    dims.push(HeadDims { c, v_lo: lo, v_count: rows, vocab: v as u32, _pad: [] })
                } else {
                    dims.push(EmbedDims { c, v_lo: lo, v_count: rows, positions, _pad: [] })
                }
            })
            .collect()
    };
    let embed_dims = chunk_dims(&mut dims, &w.wte, false);
    let head_dims = chunk_dims(&mut dims, w.head(), true);
    let vocab_dims = dims.push(VocabDims { vocab: v as u32, _pad: [0; 3] });
    let dims_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("dims"),
        contents: &dims.bytes,
        usage: wgpu::BufferUsages::UNIFORM,
    });

    let at = |offset: u64| {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &dims_buf,
            offset,
            size: wgpu::BufferSize::new(UNIFORM_BINDING),
        })
    };
    let group = |kernel: &Kernel, label: &str, entries: Vec<wgpu::BindGroupEntry>| {
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &kernel.layout,
            entries: &entries,
        })
    };
    let unused = (&s.unused[0], &s.unused[1]);
    // A read-only slot with nothing to read: LayerNorm's shift of an RMSNorm without rotation,
    // GPT-2's position table in a rotary model.
    let nothing = &s.unused[2];
    // A linear layer reading `x` into `out`, with `ln` (fused when the dims say so) and the caches.
    let linear = |label: &str,
                  d: u64,
                  x: &wgpu::Buffer,
                  lin: &LinearBuffers,
                  ln: &NormBuffers,
                  out: &wgpu::Buffer,
                  (k, v): (&wgpu::Buffer, &wgpu::Buffer)| {
        let b = LinearBindings {
            step: whole(&s.step),
            dims: at(d),
            x: whole(x),
            w: whole(&lin.w),
            bias: whole(&lin.b),
            ln_g: whole(&ln.g),
            ln_b_or_rope: whole(shift_or_rope(ln, w.rope.as_ref(), nothing)),
            out: whole(out),
            k_cache: whole(k),
            v_cache: whole(v),
        };
        group(&kernels.matvec, label, b.entries())
    };
    let norm = |label: &str, d: u64, ln: &NormBuffers| {
        let b = NormBindings {
            step: whole(&s.step),
            dims: at(d),
            x: whole(&s.x),
            g: whole(&ln.g),
            b: whole(ln.b.as_ref().unwrap_or(nothing)),
            out: whole(&s.h),
        };
        group(&kernels.layernorm, label, b.entries())
    };
    let layer = |l: &LayerBuffers| {
        let kv = (&l.k_cache, &l.v_cache);
        let attention = AttentionBindings {
            step: whole(&s.step),
            dims: at(block.attention),
            q: whole(&s.q),
            k_cache: whole(&l.k_cache),
            v_cache: whole(&l.v_cache),
            out: whole(&s.att),
            probs: whole(&s.probs),
        };
        let qk_norm = l.qk_norm.as_ref().map(|(qn, kn)| {
            let b = QkNormBindings {
                step: whole(&s.step),
                dims: at(block.qk_norm),
                q: whole(&s.q),
                k_cache: whole(&l.k_cache),
                q_norm: whole(qn),
                k_norm: whole(kn),
                rope: whole(w.rope.as_ref().unwrap_or(nothing)),
            };
            group(&kernels.qk_norm, "qk_norm_rope", b.entries())
        });
        LayerGroups {
            qkv: linear("qkv", block.qkv, &s.x, &l.qkv, &l.ln_1, &s.q, kv),
            attn_proj: linear("attn_proj", block.attn_proj, &s.att, &l.attn_proj, &l.ln_1, &s.x, unused),
            fc: linear("fc", block.fc, &s.x, &l.fc, &l.ln_2, &s.fc, unused),
            proj: linear("proj", block.proj, &s.fc, &l.proj, &l.ln_2, &s.x, unused),
            qkv_tiled: linear("qkv tiled", block.qkv_tiled, &s.h, &l.qkv, &l.ln_1, &s.q, kv),
            fc_tiled: linear("fc tiled", block.fc_tiled, &s.h, &l.fc, &l.ln_2, &s.fc, unused),
            ln_1: norm("ln_1", block.ln, &l.ln_1),
            ln_2: norm("ln_2", block.ln, &l.ln_2),
            qk_norm,
            attention: group(&kernels.attention, "attention", attention.entries()),
            blocks: LayerBlocks {
                qkv: l.qkv.blocks,
                attn_proj: l.attn_proj.blocks,
                fc: l.fc.blocks,
                proj: l.proj.blocks,
            },
        }
    };
    // One group per row chunk of the embedding / head matrix.
    let chunks = |list: &[RowChunk], dims: &[u64], make: &dyn Fn(&RowChunk, u64) -> wgpu::BindGroup| -> Vec<Chunk> {
        list.iter().zip(dims).map(|(ch, &d)| Chunk { group: make(ch, d), rows: ch.rows as u32 }).collect()
    };
    let embed = chunks(&w.wte, &embed_dims, &|ch, d| {
        let b = EmbedBindings {
            step: whole(&s.step),
            dims: at(d),
            ids: whole(&s.ids),
            w: whole(&ch.buffer),
            wpe: whole(w.wpe.as_ref().unwrap_or(nothing)),
            x: whole(&s.x),
            seen: whole(&s.seen),
        };
        group(&kernels.embed, "embed", b.entries())
    });
    let lm_head = chunks(w.head(), &head_dims, &|ch, d| {
        let b = HeadBindings {
            step: whole(&s.step),
            dims: at(d),
            h: whole(&s.h),
            w: whole(&ch.buffer),
            logits: whole(&s.logits),
        };
        group(&kernels.lm_head, "lm_head", b.entries())
    });
    let argmax =
        ArgmaxBindings { step: whole(&s.step), dims: at(vocab_dims), logits: whole(&s.logits), token: whole(&s.token) };
    let sample = SampleBindings {
        step: whole(&s.step),
        dims: at(vocab_dims),
        params: whole(&s.sampling),
        logits: whole(&s.logits),
        seen: whole(&s.seen),
        scores: whole(&s.scores),
        token: whole(&s.token),
    };
    BindGroups {
        layers: w.layers.iter().map(layer).collect(),
        embed,
        lm_head,
        final_norm: norm("final norm", final_dims, &w.final_norm),
        argmax: group(&kernels.argmax, "argmax", argmax.entries()),
        sample: group(&kernels.sample, "sample", sample.entries()),
        _dims: dims_buf,
    }
}
