//! The fused ops on burn's CPU backend: read the operands as f32 slices (no copy when they are
//! contiguous f32, as the trainer's are), run the kernel, wrap the result.

use std::borrow::Cow;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{TensorData, TensorMetadata};

use super::{FusedOps, kernels};

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

    fn add_rows(x: FlexTensor, b: FlexTensor) -> FlexTensor {
        let (rows, c) = dims2(&x);
        out(kernels::add_rows(&f32s(&x), &f32s(&b), c), &[rows, c])
    }

    fn column_sums(dy: FlexTensor) -> FlexTensor {
        let (_, c) = dims2(&dy);
        out(kernels::column_sums(&f32s(&dy), c), &[c])
    }

    fn gelu_tanh(x: FlexTensor) -> FlexTensor {
        let shape = x.shape().to_vec();
        out(kernels::gelu(&f32s(&x)), &shape)
    }

    fn gelu_tanh_backward(x: FlexTensor, dy: FlexTensor) -> FlexTensor {
        let shape = x.shape().to_vec();
        out(kernels::gelu_backward(&f32s(&x), &f32s(&dy)), &shape)
    }

    fn causal_softmax(scores: FlexTensor, t: usize, scale: f32) -> FlexTensor {
        let shape = scores.shape().to_vec();
        out(kernels::causal_softmax(&f32s(&scores), t, scale), &shape)
    }

    fn causal_softmax_backward(p: FlexTensor, dp: FlexTensor, t: usize, scale: f32) -> FlexTensor {
        let shape = p.shape().to_vec();
        out(kernels::causal_softmax_backward(&f32s(&p), &f32s(&dp), t, scale), &shape)
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
