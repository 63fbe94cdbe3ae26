//! The fused ops under autodiff: with an inner backend that has the kernels, each op is one node
//! whose backward calls the inner backward kernel; without, the composed ops are recorded (and
//! differentiated) one by one, as before.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::tensor::ops::{FloatTensor, IntTensor};

use super::{FusedOps, composed, prim, tensor};

#[derive(Debug)]
struct LayerNormOp;

impl<B: FusedOps> Backward<B, 3> for LayerNormOp {
    type State = (FloatTensor<B>, FloatTensor<B>, f32);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (x, w, eps) = ops.state;
        let (dx, dw, db) = B::layer_norm_rows_backward(x, w, dy, eps);
        for (node, grad) in [(node_x, dx), (node_w, dw), (node_b, db)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

#[derive(Debug)]
struct LinearOp;

impl<B: FusedOps> Backward<B, 3> for LinearOp {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (x, w) = ops.state;
        let (dx, dw, db) = B::linear_rows_backward(x, w, dy);
        for (node, grad) in [(node_x, dx), (node_w, dw), (node_b, db)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

#[derive(Debug)]
struct GeluOp;

impl<B: FusedOps> Backward<B, 1> for GeluOp {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |dy| B::gelu_tanh_backward(x, dy));
    }
}

#[derive(Debug)]
struct CausalAttentionOp;

impl<B: FusedOps> Backward<B, 1> for CausalAttentionOp {
    /// `qkv` (the input), the probabilities, the batch size, the heads.
    type State = (FloatTensor<B>, FloatTensor<B>, usize, usize);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (qkv, p, batch, n_head) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |dy| B::causal_attention_backward(qkv, p, dy, batch, n_head));
    }
}

#[derive(Debug)]
struct TargetLogprobsOp;

impl<B: FusedOps> Backward<B, 1> for TargetLogprobsOp {
    type State = (FloatTensor<B>, IntTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (logits, targets) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |dy| B::target_logprobs_backward(logits, targets, dy));
    }
}

impl<B: FusedOps, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn layer_norm_rows(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        eps: f32,
    ) -> FloatTensor<Self> {
        if !B::KERNELS {
            return prim(composed::layer_norm::<Self>(tensor(x), tensor(w), tensor(b), eps));
        }
        let nodes = [x.node.clone(), w.node.clone(), b.node.clone()];
        match LayerNormOp.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(
                (x.primitive.clone(), w.primitive.clone(), eps),
                B::layer_norm_rows(x.primitive, w.primitive, b.primitive, eps),
            ),
            OpsKind::UnTracked(prep) => prep.finish(B::layer_norm_rows(x.primitive, w.primitive, b.primitive, eps)),
        }
    }

    fn linear_rows(x: FloatTensor<Self>, w: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        if !B::KERNELS {
            return prim(composed::linear::<Self>(tensor(x), tensor(w), tensor(b)));
        }
        let nodes = [x.node.clone(), w.node.clone(), b.node.clone()];
        match LinearOp.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(
                (x.primitive.clone(), w.primitive.clone()),
                B::linear_rows(x.primitive, w.primitive, b.primitive),
            ),
            OpsKind::UnTracked(prep) => prep.finish(B::linear_rows(x.primitive, w.primitive, b.primitive)),
        }
    }

    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        if !B::KERNELS {
            return prim(composed::gelu::<Self>(tensor(x)));
        }
        match GeluOp.prepare::<C>([x.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(x.primitive.clone(), B::gelu_tanh(x.primitive)),
            OpsKind::UnTracked(prep) => prep.finish(B::gelu_tanh(x.primitive)),
        }
    }

    fn causal_attention(qkv: FloatTensor<Self>, batch: usize, n_head: usize) -> FloatTensor<Self> {
        if !B::KERNELS {
            return prim(composed::causal_attention::<Self>(tensor(qkv), batch, n_head));
        }
        match CausalAttentionOp.prepare::<C>([qkv.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, p) = B::causal_attention_with_probs(qkv.primitive.clone(), batch, n_head);
                prep.finish((qkv.primitive, p, batch, n_head), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::causal_attention(qkv.primitive, batch, n_head)),
        }
    }

    fn target_logprobs(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        if !B::KERNELS {
            return prim(composed::target_logprobs::<Self>(
                tensor(logits),
                burn::tensor::Tensor::from_primitive(targets),
            ));
        }
        match TargetLogprobsOp.prepare::<C>([logits.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                prep.finish((logits.primitive.clone(), targets.clone()), B::target_logprobs(logits.primitive, targets))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::target_logprobs(logits.primitive, targets)),
        }
    }
}
