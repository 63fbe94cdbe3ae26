//! Fused ops: the model's LayerNorm, linear layer (matmul + bias), GELU, causal attention and target log-probabilities,
//! each one op with its own backward instead of a chain of burn ops.
//!
//! Why: on burn's CPU backend (`flex`) every op allocates its output and walks memory once, and
//! broadcasting ops are 10–80× slower than same-shape ones; the composed LayerNorm, GELU and
//! softmax with their autodiff nodes were most of a training step beside the matmuls, and the
//! head split/merge copies around attention's small batched matmuls another sixth. Here the CPU
//! backend runs one loop per op (`kernels.rs`) forward and backward; every other backend keeps the
//! composed tensor ops (`composed.rs`), which burn's autodiff differentiates as before.
//!
//! [`FusedOps`] is a backend extension in burn's usual pattern: the inner backend computes
//! (`Flex`: kernels; others: composed), and `Autodiff<B>` records one node whose backward calls
//! the inner backend's backward kernel (`autodiff.rs`).

mod autodiff;
pub mod composed;
mod flex;
pub mod kernels;
mod matmul;

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{Int, Tensor, TensorPrimitive};

/// The fused ops of a backend. The defaults are the composed tensor ops; a backend with its own
/// kernels overrides every method and sets [`FusedOps::KERNELS`].
pub trait FusedOps: Backend {
    /// Whether this backend has the kernels, backward ones included. Without them the `*_backward`
    /// methods are never called: autodiff differentiates the composed forward instead.
    const KERNELS: bool = false;

    /// `[rows, c]`, `[c]`, `[c]` → `[rows, c]`.
    fn layer_norm_rows(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        eps: f32,
    ) -> FloatTensor<Self> {
        prim(composed::layer_norm::<Self>(tensor(x), tensor(w), tensor(b), eps))
    }
    /// `(dx, dw, db)`.
    fn layer_norm_rows_backward(
        _x: FloatTensor<Self>,
        _w: FloatTensor<Self>,
        _dy: FloatTensor<Self>,
        _eps: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("called only when KERNELS is true")
    }
    /// `[rows, k]`·`[k, n]` + `[n]` → `[rows, n]`.
    fn linear_rows(x: FloatTensor<Self>, w: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        prim(composed::linear::<Self>(tensor(x), tensor(w), tensor(b)))
    }
    /// `(dx, dw, db)`.
    fn linear_rows_backward(
        _x: FloatTensor<Self>,
        _w: FloatTensor<Self>,
        _dy: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("called only when KERNELS is true")
    }
    /// `[rows, c]` → `[rows, c]`.
    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        prim(composed::gelu::<Self>(tensor(x)))
    }
    fn gelu_tanh_backward(_x: FloatTensor<Self>, _dy: FloatTensor<Self>) -> FloatTensor<Self> {
        unreachable!("called only when KERNELS is true")
    }
    /// `[batch·t, 3c]` packed `q | k | v` → `[batch·t, c]` (see [`composed::causal_attention`]).
    fn causal_attention(qkv: FloatTensor<Self>, batch: usize, n_head: usize) -> FloatTensor<Self> {
        prim(composed::causal_attention::<Self>(tensor(qkv), batch, n_head))
    }
    /// The output and the probabilities `[batch, n_head, t, t]` that the backward reads.
    fn causal_attention_with_probs(
        _qkv: FloatTensor<Self>,
        _batch: usize,
        _n_head: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        unreachable!("called only when KERNELS is true")
    }
    /// From `qkv`, the probabilities and the output's gradient, the gradient of `qkv`.
    fn causal_attention_backward(
        _qkv: FloatTensor<Self>,
        _p: FloatTensor<Self>,
        _dy: FloatTensor<Self>,
        _batch: usize,
        _n_head: usize,
    ) -> FloatTensor<Self> {
        unreachable!("called only when KERNELS is true")
    }
    /// `[rows, v]` logits, `[rows]` targets → `[rows]` log-probabilities of the targets.
    fn target_logprobs(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        prim(composed::target_logprobs::<Self>(tensor(logits), Tensor::from_primitive(targets)))
    }
    fn target_logprobs_backward(
        _logits: FloatTensor<Self>,
        _targets: IntTensor<Self>,
        _dy: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        unreachable!("called only when KERNELS is true")
    }
}

/// What the trainer needs of a backend: autodiff, and fused ops on it and on its inner backend
/// (validation and generation run on the inner one).
pub trait TrainBackend: AutodiffBackend<InnerBackend: FusedOps> + FusedOps {}
impl<B: AutodiffBackend<InnerBackend: FusedOps> + FusedOps> TrainBackend for B {}

#[cfg(feature = "wgpu")]
impl FusedOps for burn::backend::Wgpu {}
#[cfg(feature = "cuda")]
impl FusedOps for burn::backend::Cuda {}

fn tensor<B: Backend, const D: usize>(p: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

fn prim<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

// The model's entry points, on tensors.

pub fn layer_norm<B: FusedOps>(x: Tensor<B, 2>, w: Tensor<B, 1>, b: Tensor<B, 1>, eps: f32) -> Tensor<B, 2> {
    tensor(B::layer_norm_rows(prim(x), prim(w), prim(b), eps))
}

pub fn linear<B: FusedOps>(x: Tensor<B, 2>, w: Tensor<B, 2>, b: Tensor<B, 1>) -> Tensor<B, 2> {
    tensor(B::linear_rows(prim(x), prim(w), prim(b)))
}

pub fn gelu<B: FusedOps>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    tensor(B::gelu_tanh(prim(x)))
}

pub fn causal_attention<B: FusedOps>(qkv: Tensor<B, 2>, batch: usize, n_head: usize) -> Tensor<B, 2> {
    tensor(B::causal_attention(prim(qkv), batch, n_head))
}

pub fn target_logprobs<B: FusedOps>(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    tensor(B::target_logprobs(prim(logits), targets.into_primitive()))
}
