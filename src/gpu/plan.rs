//! What a model needs of a device, decided before anything is allocated: whether the engine runs
//! it at all (block kind, shape limits of the kernels), the sizes of its buffers against the
//! adapter's binding limits, and how a matrix too large for one binding is split. The page asks
//! the same question before loading (`src/web.rs`), so the two cannot disagree.

use super::{GpuError, WeightFormat};
use crate::config::{GptConfig, LayerNormPosition};

/// Largest prefill chunk (rows per submission).
pub const MAX_CHUNK_ROWS: usize = 256;
/// Largest number of logit rows read back per submission when every position's logits are wanted.
pub const MAX_LOGIT_ROWS: usize = 32;
/// matvec.wgsl stages an input row of up to this many values in workgroup memory (and LayerNorm
/// fused into it needs the whole row there).
pub const MAX_STAGED: u32 = 4096;
/// attention.wgsl holds one head's query in workgroup memory.
pub const MAX_HEAD_DIM: u32 = 256;
/// attention_prefill.wgsl stages head dimensions up to this in workgroup memory; larger heads
/// prefill with attention.wgsl.
pub const MAX_PREFILL_HEAD_DIM: u32 = 128;

/// Sizes chosen for a model on a device.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub format: WeightFormat,
    /// Rows per prefill submission.
    pub chunk_rows: usize,
    /// Logit rows per submission when every position's logits are wanted.
    pub logit_rows: usize,
    /// Rows of the embedding / head matrix per storage binding.
    pub rows_per_chunk: usize,
}

impl Plan {
    /// Checks `config` against the engine and the device's `limits`; the error says what does not
    /// fit or is not supported.
    pub fn new(config: &GptConfig, format: WeightFormat, limits: &wgpu::Limits) -> Result<Self, GpuError> {
        let (c, inner, v, t, heads) =
            (config.n_embd, config.n_inner, config.vocab_size, config.n_positions, config.n_head);
        let hd = config.head_dim();
        if config.layer_norm_position == LayerNormPosition::Post {
            return Err(GpuError::Unsupported("post-LN (GPT-1) blocks; use the CPU engine".into()));
        }
        if !c.is_multiple_of(4) || !inner.is_multiple_of(4) || c > MAX_STAGED as usize || hd > MAX_HEAD_DIM as usize {
            return Err(GpuError::Unsupported(format!(
                "n_embd {c} and n_inner {inner} must be multiples of 4, n_embd ≤ {MAX_STAGED}, head_dim ≤ {MAX_HEAD_DIM} (got {hd})"
            )));
        }
        let max_binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let chunk_rows = t.min(MAX_CHUNK_ROWS);
        let logit_rows = chunk_rows.min(MAX_LOGIT_ROWS);
        let elem = format.bytes();
        let sizes = [
            ("c_fc weight", c * inner * elem),
            ("c_attn weight", c * 3 * c * elem),
            ("activations", chunk_rows * c.max(inner) * 4),
            ("logits", logit_rows * v * 4),
            ("attention scratch", chunk_rows * heads * t * 4),
            ("kv cache", t * c * 4),
            ("one embedding row", c * elem),
        ];
        for (what, bytes) in sizes {
            if bytes as u64 > max_binding {
                return Err(GpuError::TooLarge { what: what.into(), needs: bytes as u64, limit: max_binding });
            }
        }
        let rows_per_chunk = ((max_binding / (c * elem) as u64) as usize).min(v);
        Ok(Plan { format, chunk_rows, logit_rows, rows_per_chunk })
    }

    /// Whether prefill of rows without attention maps may use attention_prefill.wgsl.
    pub fn prefill_attention(config: &GptConfig) -> bool {
        config.head_dim() <= MAX_PREFILL_HEAD_DIM as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(binding: u64) -> wgpu::Limits {
        wgpu::Limits { max_storage_buffer_binding_size: binding, max_buffer_size: binding, ..Default::default() }
    }

    #[test]
    fn gpt2_wte_is_split_where_one_binding_cannot_hold_it() {
        let gpt2 = GptConfig::preset("gpt2-124m").unwrap();
        // lavapipe: 128 MiB. f32 wte is 154 MB: two chunks; f16 (77 MB) fits in one.
        let plan = Plan::new(&gpt2, WeightFormat::F32, &limits(128 << 20)).unwrap();
        assert_eq!(plan.rows_per_chunk, (128 << 20) / (768 * 4));
        assert_eq!(gpt2.vocab_size.div_ceil(plan.rows_per_chunk), 2);
        let plan = Plan::new(&gpt2, WeightFormat::F16, &limits(128 << 20)).unwrap();
        assert_eq!(plan.rows_per_chunk, gpt2.vocab_size);
        assert_eq!((plan.chunk_rows, plan.logit_rows), (256, 32));
    }

    #[test]
    fn a_model_that_cannot_fit_is_refused_before_allocation() {
        let gpt2 = GptConfig::preset("gpt2-355m").unwrap();
        // c_fc of GPT-2 355M in f32 is 16 MiB: a device with 8 MiB bindings cannot hold it.
        let err = Plan::new(&gpt2, WeightFormat::F32, &limits(8 << 20)).unwrap_err();
        assert_eq!(err, GpuError::TooLarge { what: "c_fc weight".into(), needs: 1024 * 4096 * 4, limit: 8 << 20 });
        assert!(err.to_string().contains("c_fc weight"));
    }

    #[test]
    fn blocks_and_shapes_the_kernels_cannot_run_are_refused() {
        let mut post = GptConfig::preset("tiny").unwrap();
        post.layer_norm_position = LayerNormPosition::Post;
        let err = Plan::new(&post, WeightFormat::F32, &limits(128 << 20)).unwrap_err();
        assert!(matches!(err, GpuError::Unsupported(_)), "{err}");
        let mut odd = GptConfig::preset("tiny").unwrap();
        odd.n_embd = 66;
        assert!(matches!(Plan::new(&odd, WeightFormat::F32, &limits(128 << 20)), Err(GpuError::Unsupported(_))));
    }
}
