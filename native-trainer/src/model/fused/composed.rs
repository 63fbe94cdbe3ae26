//! The fused ops written as plain burn tensor ops: what every backend without its own kernels
//! runs (the GPU backends, where these are a handful of fast kernels each), differentiated by
//! burn's autodiff like any other op. The CPU kernels in `kernels.rs` compute the same math.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, DType, FloatDType, Int, Tensor, activation};

/// LayerNorm over the last axis of `[rows, n]`, biased variance (as PyTorch).
pub fn layer_norm<B: Backend>(x: Tensor<B, 2>, w: Tensor<B, 1>, b: Tensor<B, 1>, eps: f32) -> Tensor<B, 2> {
    let mean = x.clone().mean_dim(1);
    let centered = x - mean;
    let var = centered.clone().square().mean_dim(1);
    let normed = centered / (var + eps as f64).sqrt();
    normed * w.unsqueeze::<2>() + b.unsqueeze::<2>()
}

/// `x·w + b`, `b` added to every row.
pub fn linear<B: Backend>(x: Tensor<B, 2>, w: Tensor<B, 2>, b: Tensor<B, 1>) -> Tensor<B, 2> {
    x.matmul(w) + b.unsqueeze::<2>()
}

/// GPT-2's GELU, `0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))`.
pub fn gelu<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
    let u = (x.clone() * x.clone() * x.clone() * 0.044715 + x.clone()) * SQRT_2_OVER_PI;
    x * (u.tanh() + 1.0) * 0.5
}

/// Causal multi-head self-attention of packed `[batch·t, 3c]` rows `q | k | v` → `[batch·t, c]`:
/// each head (`d = c / n_head` columns of each third) attends with `softmax(q·kᵀ/√d)`, query `i`
/// seeing keys `0..=i`, and the heads' outputs are concatenated in order. The two matmuls run in
/// `qkv`'s dtype (bf16 in mixed precision), the softmax in f32.
pub fn causal_attention<B: Backend>(qkv: Tensor<B, 2>, batch: usize, n_head: usize) -> Tensor<B, 2> {
    let dtype = qkv.dtype();
    let [rows, c3] = qkv.dims();
    let (t, c) = (rows / batch, c3 / 3);
    let d = c / n_head;
    let heads =
        |i: usize| qkv.clone().slice([0..rows, i * c..(i + 1) * c]).reshape([batch, t, n_head, d]).swap_dims(1, 2);
    let (q, k, v) = (heads(0), heads(1), heads(2));
    let mut scores = q.matmul(k.swap_dims(2, 3)).reshape([batch * n_head * t, t]);
    if dtype != DType::F32 {
        scores = scores.cast(FloatDType::F32);
    }
    let mut probs = causal_softmax(scores, t, 1.0 / (d as f32).sqrt()).reshape([batch, n_head, t, t]);
    if dtype != DType::F32 {
        probs = probs.cast(dtype);
    }
    probs.matmul(v).swap_dims(1, 2).reshape([rows, c])
}

/// Softmax of `scale·scores` over rows of `[groups·t, t]`, each `[t, t]` block causal: query `i`
/// sees keys `0..=i`, the masked entries are exactly 0.
fn causal_softmax<B: Backend>(scores: Tensor<B, 2>, t: usize, scale: f32) -> Tensor<B, 2> {
    let rows = scores.dims()[0];
    // burn's `tril_mask` is true outside the lower triangle: the future keys.
    let future = Tensor::<B, 2, Bool>::tril_mask([t, t], 0, &scores.device()).unsqueeze::<3>().expand([rows / t, t, t]);
    let masked = (scores.reshape([rows / t, t, t]) * scale as f64).mask_fill(future, -1e9);
    activation::softmax(masked, 2).reshape([rows, t])
}

/// `log softmax(logits[r])[targets[r]]` for each row of `[rows, v]` → `[rows]`.
pub fn target_logprobs<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let rows = logits.dims()[0];
    activation::log_softmax(logits, 1).gather(1, targets.reshape([rows, 1])).reshape([rows])
}
