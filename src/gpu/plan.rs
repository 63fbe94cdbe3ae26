//! What a model needs of a device, decided before anything is allocated: whether the engine runs
//! it at all (block kind, shape limits of the kernels), the sizes of its buffers against the
//! adapter's binding limits, and how a matrix too large for one binding is split. The page asks
//! the same question before loading (`src/web.rs`), so the two cannot disagree.

use super::shape::Shape;
use super::{GpuError, WeightFormat};

/// Largest prefill chunk (rows per submission).
pub const MAX_CHUNK_ROWS: usize = 256;
/// Largest number of logit rows read back per submission when every position's logits are wanted.
pub const MAX_LOGIT_ROWS: usize = 32;
/// matvec.wgsl stages an input row of up to this many values in workgroup memory (and a norm
/// fused into it needs the whole row there).
pub const MAX_STAGED: u32 = 4096;
/// attention.wgsl holds one head's query in workgroup memory.
pub const MAX_HEAD_DIM: u32 = 256;
/// attention_prefill.wgsl stages head dimensions up to this in workgroup memory; larger heads
/// prefill with attention.wgsl.
pub const MAX_PREFILL_HEAD_DIM: u32 = 128;
/// Bytes of attention scores (`[rows, n_head, n_ctx]`) one prefill chunk may use: long contexts
/// prefill in shorter chunks rather than allocate more.
const SCORES_BUDGET: usize = 64 << 20;

/// Sizes chosen for a model on a device.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    /// The block matrices' format.
    pub format: WeightFormat,
    /// The embedding's and the head's ([`WeightFormat::tables`]).
    pub tables: WeightFormat,
    /// Rows per prefill submission.
    pub chunk_rows: usize,
    /// Logit rows per submission when every position's logits are wanted.
    pub logit_rows: usize,
    /// Rows of the embedding / head matrix per storage binding.
    pub rows_per_chunk: usize,
}

impl Plan {
    /// Checks `shape` against the engine and the device's `limits`; the error says what does not
    /// fit or is not supported.
    pub fn new(
        shape: &Shape,
        format: WeightFormat,
        tables: WeightFormat,
        limits: &wgpu::Limits,
    ) -> Result<Self, GpuError> {
        let s = shape;
        let (c, inner, v, t, heads, hd) = (s.hidden, s.inner, s.vocab, s.n_ctx, s.n_head, s.head_dim);
        // Epilogues store four columns at a time: no four may straddle q | k | v, two heads
        // (rotation pairs) or a gate | up quad.
        if !c.is_multiple_of(4) || !inner.is_multiple_of(4) || !hd.is_multiple_of(if s.rotary { 4 } else { 1 }) {
            return Err(GpuError::Unsupported(format!(
                "hidden size {c} and MLP width {inner} must be multiples of 4{} (got head_dim {hd})",
                if s.rotary { ", and head_dim too" } else { "" }
            )));
        }
        if !s.q_dim().is_multiple_of(4) || !s.kv_dim().is_multiple_of(4) {
            return Err(GpuError::Unsupported(format!(
                "q width {} and kv width {} must be multiples of 4",
                s.q_dim(),
                s.kv_dim()
            )));
        }
        if c > MAX_STAGED as usize || hd > MAX_HEAD_DIM as usize {
            return Err(GpuError::Unsupported(format!(
                "hidden size {c} > {MAX_STAGED} or head_dim {hd} > {MAX_HEAD_DIM}"
            )));
        }
        if s.n_kv_head == 0 || !heads.is_multiple_of(s.n_kv_head) {
            return Err(GpuError::Unsupported(format!("{heads} heads do not share {} KV heads evenly", s.n_kv_head)));
        }
        let max_binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let scores_row = (heads as u64).saturating_mul(t as u64 * 4);
        let budget = (SCORES_BUDGET as u64).min(max_binding);
        let chunk_rows = t.min(MAX_CHUNK_ROWS).min((budget / scores_row.max(1)).max(1) as usize);
        let logit_rows = chunk_rows.min(MAX_LOGIT_ROWS);
        // In u64: on wasm32 a stranger's config could overflow usize products.
        let bytes = |dims: &[usize]| dims.iter().fold(1u64, |acc, &d| acc.saturating_mul(d as u64));
        let matrix = |k: usize, n: usize| format.matrix_bytes(k, n);
        if let Some(ty) = format.blocks() {
            // Each output's row is whole blocks (32 values; 256 for Q4_K).
            let len = ty.block_len() as usize;
            for (what, k) in [("hidden size", c), ("MLP width", inner), ("q width", s.q_dim())] {
                if !k.is_multiple_of(len) {
                    return Err(GpuError::Unsupported(format!(
                        "{what} {k} is not a whole number of {} blocks of {len}",
                        ty.name()
                    )));
                }
            }
        }
        let sizes = [
            ("the MLP's first weight", matrix(c, s.fc_dim())),
            ("the MLP's output weight", matrix(inner, c)),
            ("the q | k | v weight", matrix(c, s.qkv_dim())),
            ("the attention output weight", matrix(s.q_dim(), c)),
            ("activations", bytes(&[chunk_rows, c.max(inner).max(s.q_dim()), 4])),
            ("logits", bytes(&[logit_rows, v, 4])),
            ("attention scratch", bytes(&[chunk_rows, heads, t, 4])),
            ("kv cache", bytes(&[t, s.kv_dim(), 4])),
            ("rotary table", if s.rotary { bytes(&[t, hd, 4]) } else { 0 }),
            ("one embedding row", tables.matrix_bytes(1, c)),
        ];
        for (what, needs) in sizes {
            if needs > max_binding {
                return Err(GpuError::TooLarge { what: what.into(), needs, limit: max_binding });
            }
        }
        // Whole rows per chunk; each chunk is packed on its own (upload.rs).
        let rows_per_chunk = ((max_binding / tables.matrix_bytes(1, c).max(1)) as usize).min(v);
        Ok(Plan { format, tables, chunk_rows, logit_rows, rows_per_chunk })
    }

    /// Whether prefill of rows without attention maps may use attention_prefill.wgsl.
    pub fn prefill_attention(shape: &Shape) -> bool {
        shape.head_dim <= MAX_PREFILL_HEAD_DIM as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GptConfig, LayerNormPosition};

    fn limits(binding: u64) -> wgpu::Limits {
        wgpu::Limits { max_storage_buffer_binding_size: binding, max_buffer_size: binding, ..Default::default() }
    }

    #[test]
    fn gpt2_wte_is_split_where_one_binding_cannot_hold_it() {
        let gpt2 = Shape::gpt(&GptConfig::preset("gpt2-124m").unwrap()).unwrap();
        // lavapipe: 128 MiB. f32 wte is 154 MB: two chunks; f16 (77 MB) fits in one.
        let plan = Plan::new(&gpt2, WeightFormat::F32, WeightFormat::F32, &limits(128 << 20)).unwrap();
        assert_eq!(plan.rows_per_chunk, (128 << 20) / (768 * 4));
        assert_eq!(gpt2.vocab.div_ceil(plan.rows_per_chunk), 2);
        let plan = Plan::new(&gpt2, WeightFormat::F16, WeightFormat::F16, &limits(128 << 20)).unwrap();
        assert_eq!(plan.rows_per_chunk, gpt2.vocab);
        assert_eq!((plan.chunk_rows, plan.logit_rows), (256, 32));
    }

    #[test]
    fn a_model_that_cannot_fit_is_refused_before_allocation() {
        let gpt2 = Shape::gpt(&GptConfig::preset("gpt2-355m").unwrap()).unwrap();
        // c_fc of GPT-2 355M in f32 is 16 MiB: a device with 8 MiB bindings cannot hold it.
        let err = Plan::new(&gpt2, WeightFormat::F32, WeightFormat::F32, &limits(8 << 20)).unwrap_err();
        let what = "the MLP's first weight";
        assert_eq!(err, GpuError::TooLarge { what: what.into(), needs: 1024 * 4096 * 4, limit: 8 << 20 });
        assert!(err.to_string().contains(what));
    }

    #[test]
    fn blocks_and_shapes_the_kernels_cannot_run_are_refused() {
        let mut post = GptConfig::preset("tiny").unwrap();
        post.layer_norm_position = LayerNormPosition::Post;
        let err = Shape::gpt(&post).unwrap_err();
        assert!(matches!(err, GpuError::Unsupported(_)), "{err}");
        let mut odd = Shape::gpt(&GptConfig::preset("tiny").unwrap()).unwrap();
        odd.hidden = 66;
        assert!(matches!(
            Plan::new(&odd, WeightFormat::F32, WeightFormat::F32, &limits(128 << 20)),
            Err(GpuError::Unsupported(_))
        ));
    }
}
