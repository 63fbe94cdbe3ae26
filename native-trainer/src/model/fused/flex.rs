//! The fused ops on burn's CPU backend: read the operands as f32 slices (no copy when they are
//! contiguous f32, as the trainer's are), run the kernel, wrap the result.

use std::borrow::Cow;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{TensorData, TensorMetadata};

use super::FusedOps;
use super::kernels::{self, AttentionShape};

fn f32s(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(t.clone().into_data().convert::<f32>().to_vec::<f32>().expect("converted to f32")),
    }
}

fn ints(t: &FlexTensor) -> Vec<i64> {
    t.clone().into_data().convert::<i64>().to_vec::<i64>().expect("converted to i64")
}

fn out(data: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape.to_vec()))
}

/// Rows and row length of a `[rows, c]` tensor.
fn dims2(t: &FlexTensor) -> (usize, usize) {
    let shape = t.shape();
    (shape[0], shape[1])
}

fn attention_shape(qkv: &FlexTensor, batch: usize, n_head: usize) -> AttentionShape {
    let (rows, c3) = dims2(qkv);
    AttentionShape::new(rows / batch, c3 / 3, n_head)
}

impl FusedOps for Flex {
    const KERNELS: bool = true;

    fn layer_norm_rows(x: FlexTensor, w: FlexTensor, b: FlexTensor, eps: f32) -> FlexTensor {
        let (rows, c) = dims2(&x);
        out(kernels::layer_norm(&f32s(&x), &f32s(&w), &f32s(&b), c, eps), &[rows, c])
    }

    fn layer_norm_rows_backward(
        x: FlexTensor,
        w: FlexTensor,
        dy: FlexTensor,
        eps: f32,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (rows, c) = dims2(&x);
        let (dx, dw, db) = kernels::layer_norm_backward(&f32s(&x), &f32s(&w), &f32s(&dy), c, eps);
        (out(dx, &[rows, c]), out(dw, &[c]), out(db, &[c]))
    }

    fn linear_rows(x: FlexTensor, w: FlexTensor, b: FlexTensor) -> FlexTensor {
        let ((rows, k), (_, n)) = (dims2(&x), dims2(&w));
        out(kernels::linear(&f32s(&x), &f32s(&w), &f32s(&b), k), &[rows, n])
    }

    fn linear_rows_backward(x: FlexTensor, w: FlexTensor, dy: FlexTensor) -> (FlexTensor, FlexTensor, FlexTensor) {
        let ((rows, k), (_, n)) = (dims2(&x), dims2(&w));
        let (dx, dw, db) = kernels::linear_backward(&f32s(&x), &f32s(&w), &f32s(&dy), k, n);
        (out(dx, &[rows, k]), out(dw, &[k, n]), out(db, &[n]))
    }

    fn gelu_tanh(x: FlexTensor) -> FlexTensor {
        let shape = x.shape().to_vec();
        out(kernels::gelu(&f32s(&x)), &shape)
    }

    fn gelu_tanh_backward(x: FlexTensor, dy: FlexTensor) -> FlexTensor {
        let shape = x.shape().to_vec();
        out(kernels::gelu_backward(&f32s(&x), &f32s(&dy)), &shape)
    }

    fn causal_attention(qkv: FlexTensor, batch: usize, n_head: usize) -> FlexTensor {
        Self::causal_attention_with_probs(qkv, batch, n_head).0
    }

    fn causal_attention_with_probs(qkv: FlexTensor, batch: usize, n_head: usize) -> (FlexTensor, FlexTensor) {
        let s = attention_shape(&qkv, batch, n_head);
        let (y, p) = kernels::causal_attention(&f32s(&qkv), &s);
        (out(y, &[batch * s.t, s.c]), out(p, &[batch, n_head, s.t, s.t]))
    }

    fn causal_attention_backward(
        qkv: FlexTensor,
        p: FlexTensor,
        dy: FlexTensor,
        batch: usize,
        n_head: usize,
    ) -> FlexTensor {
        let s = attention_shape(&qkv, batch, n_head);
        let dqkv = kernels::causal_attention_backward(&f32s(&qkv), &f32s(&p), &f32s(&dy), &s);
        out(dqkv, &[batch * s.t, 3 * s.c])
    }

    fn target_logprobs(logits: FlexTensor, targets: FlexTensor) -> FlexTensor {
        let (rows, v) = dims2(&logits);
        out(kernels::target_logprobs(&f32s(&logits), &ints(&targets), v), &[rows])
    }

    fn target_logprobs_backward(logits: FlexTensor, targets: FlexTensor, dy: FlexTensor) -> FlexTensor {
        let (rows, v) = dims2(&logits);
        out(kernels::target_logprobs_backward(&f32s(&logits), &ints(&targets), &f32s(&dy), v), &[rows, v])
    }
}
