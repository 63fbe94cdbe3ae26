//! What the WGSL engine needs to know of a model, whatever its architecture. A GPT-2 block and a
//! Llama-family block run the same five dispatches (norm fused into the q | k | v matvec,
//! attention, output projection, norm fused into the MLP's first matvec, its second matvec);
//! they differ in the norm, in how positions enter, in the MLP's activation and in how many KV
//! heads there are — which is what this holds. (Qwen3's per-head q/k norm adds a sixth.)

use super::GpuError;
use crate::config::{GptConfig, LayerNormPosition};
use crate::llama::LlamaConfig;

pub use crate::llama::DEFAULT_MAX_CONTEXT;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Norm {
    Layer,
    Rms,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// For messages and `describe`: `gpt2`, or the Llama family's `model_type`.
    pub arch: String,
    pub hidden: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    /// The MLP's width (`n_inner`, `intermediate_size`).
    pub inner: usize,
    pub vocab: usize,
    pub n_layer: usize,
    /// Positions the KV cache holds: the model's own limit, or less where the caller capped it.
    pub n_ctx: usize,
    /// Positions the model itself was made for.
    pub model_ctx: usize,
    pub norm: Norm,
    pub eps: f32,
    /// Rotary positions (and no learned position table).
    pub rotary: bool,
    /// SwiGLU MLP (gate and up projections) instead of GELU.
    pub swiglu: bool,
    /// Per-head RMSNorm of q and k (Qwen3).
    pub qk_norm: bool,
}

impl Shape {
    /// Width of q and of the attention's output.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }
    /// Width of a key (or value) row of the cache.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_head * self.head_dim
    }
    /// Columns of the fused q | k | v matrix.
    pub fn qkv_dim(&self) -> usize {
        self.q_dim() + 2 * self.kv_dim()
    }
    /// Columns of the MLP's first matrix (gate and up interleaved for SwiGLU).
    pub fn fc_dim(&self) -> usize {
        if self.swiglu { 2 * self.inner } else { self.inner }
    }

    /// A GPT-2 (pre-LN) model; GPT-1's post-LN blocks are the CPU engine's.
    pub fn gpt(c: &GptConfig) -> Result<Self, GpuError> {
        if c.layer_norm_position == LayerNormPosition::Post {
            return Err(GpuError::Unsupported("post-LN (GPT-1) blocks; use the CPU engine".into()));
        }
        Ok(Shape {
            arch: "gpt2".into(),
            hidden: c.n_embd,
            n_head: c.n_head,
            n_kv_head: c.n_head,
            head_dim: c.head_dim(),
            inner: c.n_inner,
            vocab: c.vocab_size,
            n_layer: c.n_layer,
            // The learned position table is the limit; it is small enough to hold whole.
            n_ctx: c.n_positions,
            model_ctx: c.n_positions,
            norm: Norm::Layer,
            eps: c.layer_norm_epsilon,
            rotary: false,
            swiglu: false,
            qk_norm: false,
        })
    }

    /// A Llama-family model with a KV cache of `min(max_position_embeddings, max_context)`
    /// positions.
    pub fn llama(c: &LlamaConfig, max_context: usize) -> Self {
        Shape {
            arch: c.model_type.clone(),
            hidden: c.hidden_size,
            n_head: c.num_attention_heads,
            n_kv_head: c.num_key_value_heads,
            head_dim: c.head_dim,
            inner: c.intermediate_size,
            vocab: c.vocab_size,
            n_layer: c.num_hidden_layers,
            n_ctx: c.max_position_embeddings.min(max_context.max(1)),
            model_ctx: c.max_position_embeddings,
            norm: Norm::Rms,
            eps: c.rms_norm_eps,
            rotary: true,
            swiglu: true,
            qk_norm: c.qk_norm,
        }
    }
}
