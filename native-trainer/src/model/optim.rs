//! AdamW as PyTorch's `torch.optim.AdamW`, with GPT parameter groups and global-norm clipping.
//!
//! Per parameter `p` with gradient `g` at step `t` (1-based):
//! `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
//! `p ← p·(1 − lr·wd) − lr · (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε)`.
//! Weight decay applies to the matrices of the blocks only — not to biases, LayerNorms or the
//! embeddings/LM head (`wd = 0` there). Before the update all gradients are scaled by
//! `min(1, max_norm / (‖g‖₂ + 1e-6))`, ‖g‖₂ over every parameter (as `clip_grad_norm_`).
//!
//! burn ships an AdamW, but it clips per tensor and decays every parameter alike; the state here
//! is keyed by parameter *name*, so a checkpoint is a plain name → tensor file.

use std::collections::BTreeMap;

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Global gradient-norm clip; 0 disables clipping.
    pub grad_clip: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1, grad_clip: 1.0 }
    }
}

/// The optimizer state: the step count and the two moments of every parameter, flattened.
pub struct AdamW<B: Backend> {
    pub config: AdamWConfig,
    pub step: u64,
    pub moments: BTreeMap<String, (Tensor<B, 1>, Tensor<B, 1>)>,
}

/// Whether weight decay applies to the parameter of this (HF) name.
pub fn decays(name: &str, rank: usize) -> bool {
    rank == 2 && !matches!(name, "wte.weight" | "wpe.weight" | "lm_head.weight")
}

impl<B: Backend> AdamW<B> {
    pub fn new(config: AdamWConfig) -> Self {
        AdamW { config, step: 0, moments: BTreeMap::new() }
    }

    /// One update of `model` with `grads` at learning rate `lr`; returns the pre-clip global
    /// gradient norm.
    pub fn step<AB, M>(&mut self, lr: f64, model: M, grads: GradientsParams) -> (M, f64)
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<AB>,
    {
        let mut norm = SquaredNorm::<B> { grads: &grads, sum: None };
        model.visit(&mut norm);
        let norm = norm.sum.map_or(0.0, |s| s.into_scalar().elem::<f64>()).sqrt();
        let clip = if self.config.grad_clip > 0.0 { (self.config.grad_clip / (norm + 1e-6)).min(1.0) } else { 1.0 };
        self.step += 1;
        let mut update = Update { opt: self, grads, lr, clip, path: Vec::new() };
        (model.map(&mut update), norm)
    }
}

struct SquaredNorm<'a, B: Backend> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<B, 1>>,
}

impl<AB: AutodiffBackend<InnerBackend = B>, B: Backend> ModuleVisitor<AB> for SquaredNorm<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
        if let Some(g) = self.grads.get::<B, D>(param.id) {
            let s = g.square().sum();
            self.sum = Some(match self.sum.take() {
                Some(acc) => acc + s,
                None => s,
            });
        }
    }
}

struct Update<'a, B: Backend> {
    opt: &'a mut AdamW<B>,
    grads: GradientsParams,
    lr: f64,
    clip: f64,
    path: Vec<String>,
}

impl<AB: AutodiffBackend<InnerBackend = B>, B: Backend> ModuleMapper<AB> for Update<'_, B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<AB, D>>) -> Param<Tensor<AB, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<B, D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let name = self.path.join(".");
        let c = self.opt.config;
        let shape = tensor.shape();
        let n = shape.num_elements();
        let g = grad.reshape([n]) * self.clip;
        let (m, v) = match self.opt.moments.remove(&name) {
            Some((m, v)) => (m * c.beta1 + g.clone() * (1.0 - c.beta1), v * c.beta2 + g.square() * (1.0 - c.beta2)),
            None => (g.clone() * (1.0 - c.beta1), g.square() * (1.0 - c.beta2)),
        };
        let t = self.opt.step as i32;
        let (bc1, bc2) = (1.0 - c.beta1.powi(t), 1.0 - c.beta2.powi(t));
        let wd = if decays(&name, D) { c.weight_decay } else { 0.0 };
        let p = tensor.inner().reshape([n]);
        let p = if wd > 0.0 { p * (1.0 - self.lr * wd) } else { p };
        let denom = (v.clone() / bc2).sqrt() + c.eps;
        let p = p - (m.clone() / denom) * (self.lr / bc1);
        self.opt.moments.insert(name, (m, v));
        let p = Tensor::<AB, D>::from_inner(p.reshape(shape)).require_grad();
        Param::from_mapped_value(id, p, mapper)
    }
}

/// The gradients by parameter name, flattened (for tests and inspection).
pub fn named_grads<AB: AutodiffBackend, M: AutodiffModule<AB>>(
    model: &M,
    grads: &GradientsParams,
) -> BTreeMap<String, Vec<f32>> {
    struct Collect<'a> {
        grads: &'a GradientsParams,
        path: Vec<String>,
        out: BTreeMap<String, Vec<f32>>,
    }
    impl<AB: AutodiffBackend> ModuleVisitor<AB> for Collect<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
            if let Some(g) = self.grads.get::<AB::InnerBackend, D>(param.id) {
                let data = g.into_data().convert::<f32>().to_vec::<f32>().expect("f32");
                self.out.insert(self.path.join("."), data);
            }
        }
    }
    let mut c = Collect { grads, path: vec![], out: BTreeMap::new() };
    model.visit(&mut c);
    c.out
}

/// Parameter ids by name, to hand the optimizer gradients computed elsewhere (tests).
pub fn param_ids<AB: AutodiffBackend, M: AutodiffModule<AB>>(model: &M) -> BTreeMap<String, burn::module::ParamId> {
    struct Ids {
        path: Vec<String>,
        out: BTreeMap<String, burn::module::ParamId>,
    }
    impl<AB: AutodiffBackend> ModuleVisitor<AB> for Ids {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
            self.out.insert(self.path.join("."), param.id);
        }
    }
    let mut ids = Ids { path: vec![], out: BTreeMap::new() };
    model.visit(&mut ids);
    ids.out
}
