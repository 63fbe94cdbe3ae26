//! The uniform blocks the kernels read, each defined once: the Rust struct (written to the device
//! with `bytemuck`) and the WGSL `struct` the shaders see are made from the same field list by
//! [`uniform!`], so their layouts cannot drift apart. Every block is padded to 16 bytes (WGSL's
//! uniform alignment) with `_pN: u32` fields.

use bytemuck::{Pod, Zeroable};

/// Defines a `#[repr(C)]` Pod struct of 4-byte fields and its WGSL twin (`wgsl(name)`).
macro_rules! uniform {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident: $ty:ident),* $(,)? } pad $pad:literal) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, Default, PartialEq, Pod, Zeroable)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            pub _pad: [u32; $pad],
        }

        impl $name {
            /// The WGSL declaration of this block, as `struct {wgsl_name} { … }`.
            pub fn wgsl(wgsl_name: &str) -> String {
                let mut fields: Vec<String> = vec![$(format!("{}: {}", stringify!($field), stringify!($ty))),*];
                fields.extend((0..$pad).map(|i| format!("_p{i}: u32")));
                format!("struct {wgsl_name} {{ {} }}\n", fields.join(", "))
            }
        }

        const _: () = assert!(std::mem::size_of::<$name>() % 16 == 0 && std::mem::size_of::<$name>() <= UNIFORM_BINDING as usize);
    };
}

/// Bytes each dims block is bound with (and at most holds).
pub const UNIFORM_BINDING: u64 = 32;

uniform! {
    /// The step every kernel of a forward reads: how many new rows, at which position, and how
    /// many of the last rows get logits.
    Step { rows: u32, past: u32, logit_rows: u32 } pad 1
}

/// What a linear layer's kernel (matvec, tiled GEMM) does with `y = x·W + b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Epilogue {
    /// `out = y`.
    Plain = 0,
    /// `out = gelu_tanh(y)` (the MLP's up-projection).
    Gelu = 1,
    /// `out += y` (an output projection onto the residual stream).
    Residual = 2,
    /// `q | k | v` (widths `q_dim`, then `kv_dim` twice): q to `out`, k and v appended to the KV
    /// cache at `past + row`.
    QkvAppend = 3,
    /// [`Epilogue::QkvAppend`] with the rotary embedding of q and k: their columns come in
    /// pairs `(i, i + head_dim/2)` of one head (the upload's order, `src/gpu/layout.rs`), turned
    /// by the angle of `(past + row, i)` and stored in HF's order.
    QkvRope = 4,
    /// SwiGLU: columns come as `gate 2m, gate 2m+1, up 2m, up 2m+1`; `out[2m + j] =
    /// silu(gate) · up` (the MLP's gate and up projections in one matrix).
    SwiGlu = 5,
}

uniform! {
    /// matvec.wgsl, matmul_tiled.wgsl.
    LinearDims {
        k: u32,
        n: u32,
        /// An [`Epilogue`].
        mode: u32,
        /// 1: LayerNorm the input row first (matvec only), with `eps`; 2: RMSNorm it.
        ln: u32,
        eps: f32,
        /// `q | k | v` epilogues: the width of q, and of one head.
        q_dim: u32,
        head_dim: u32,
    } pad 1
}

uniform! {
    /// layernorm.wgsl.
    NormDims {
        n: u32,
        eps: f32,
        /// 1: only the last `step.logit_rows` rows (the final norm before the head).
        only_logit_rows: u32,
        /// 1: RMSNorm (no mean, no shift) instead of LayerNorm.
        rms: u32,
    } pad 0
}

uniform! {
    /// attention.wgsl, attention_prefill.wgsl: `c` is the width of q and of the output
    /// (`n_head · head_dim`), `kv_c` the width of a cache row; `group` query heads share one KV
    /// head (grouped-query attention; 1 for GPT-2).
    AttentionDims { c: u32, n_head: u32, head_dim: u32, t_max: u32, scale: f32, kv_c: u32, group: u32 } pad 1
}

uniform! {
    /// embed.wgsl: one row chunk `v_lo .. v_lo + v_count` of the embedding; `positions` 1 adds
    /// the learned position embedding (GPT-2; rotary models have none).
    EmbedDims { c: u32, v_lo: u32, v_count: u32, positions: u32 } pad 0
}

uniform! {
    /// qk_norm_rope.wgsl: Qwen3's per-head RMSNorm of q and the new keys, then their rotation.
    QkNormDims { q_dim: u32, kv_dim: u32, head_dim: u32, n_head: u32, eps: f32 } pad 3
}

uniform! {
    /// lm_head.wgsl: one row chunk of the head.
    HeadDims { c: u32, v_lo: u32, v_count: u32, vocab: u32 } pad 0
}

uniform! {
    /// argmax.wgsl, sample.wgsl.
    VocabDims { vocab: u32 } pad 3
}

uniform! {
    /// sample.wgsl's settings: the host sampler's parameters and the draw's place in the seed's
    /// stream.
    Sampling { temperature: f32, top_k: u32, top_p: f32, penalty: f32, seed_lo: u32, seed_hi: u32, draw: u32 } pad 1
}

uniform! {
    /// copy.wgsl: `n` vec4s, `row` invocations per row of the dispatch grid.
    CopyDims { n: u32, row: u32 } pad 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_and_wgsl_blocks_have_the_same_fields_in_order() {
        assert_eq!(
            LinearDims::wgsl("Dims"),
            "struct Dims { k: u32, n: u32, mode: u32, ln: u32, eps: f32, q_dim: u32, head_dim: u32, _p0: u32 }\n"
        );
        assert_eq!(std::mem::size_of::<LinearDims>(), 32);
        assert_eq!(std::mem::size_of::<Step>(), 16);
        let d = LinearDims {
            k: 1,
            n: 2,
            mode: Epilogue::QkvAppend as u32,
            ln: 1,
            eps: 0.5,
            q_dim: 6,
            head_dim: 7,
            _pad: [0],
        };
        let words: &[u32] = bytemuck::cast_slice(bytemuck::bytes_of(&d));
        assert_eq!(words, [1, 2, 3, 1, 0.5f32.to_bits(), 6, 7, 0]);
    }
}
