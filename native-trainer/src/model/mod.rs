//! The GPT, in burn, with exactly the bundle's math — read it in one sitting.
//!
//! Parameter paths are HF GPT-2 names (`wte.weight`, `h.3.attn.c_attn.weight`, `ln_f.bias`), so a
//! checkpoint, an export and an import are the same name → tensor map. Linear weights are
//! `[in, out]` (HF Conv1D, and burn's own layout); `c_attn`'s output columns are q | k | v.
//! Blocks are pre-LN (GPT-2, with a final `ln_f`) or post-LN (GPT-1, no `ln_f`); GELU is the tanh
//! form; the LM head is `wte` unless the config unties it (`lm_head.weight`, same layout as `wte`).
//! LayerNorm, the bias adds, GELU, the causal softmax and the log-probabilities are `fused` ops:
//! one op with its own backward on the CPU backend, plain burn ops elsewhere (see `fused/`).
//! With [`Precision::Bf16`] every matmul's operands are rounded to bf16 (mixed precision, as
//! PyTorch's autocast): parameters, optimizer state, the residual stream, LayerNorm, softmax and
//! the loss stay f32.

pub mod fused;
pub mod init;
pub mod optim;

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, Int, Tensor, TensorData};
use wgpt::config::{GptConfig, LayerNormPosition};
use wgpt::quant::Matrix;
use wgpt::weights::{self, ModelWeights};

use fused::FusedOps;

/// The dtype of the matmuls: f32, or bf16 operands (tensor cores on a GPU) with f32 master
/// weights. The f32 path has no casts at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

/// `x` in the matmuls' dtype (a no-op in f32, and when it already is).
fn operand<B: Backend, const D: usize>(x: Tensor<B, D>, p: Precision) -> Tensor<B, D> {
    match p {
        Precision::Bf16 if x.dtype() != DType::BF16 => x.cast(FloatDType::BF16),
        _ => x,
    }
}

/// `x` back in f32 for the residual stream, the norms and the loss (a no-op when it is).
fn full<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if x.dtype() == DType::F32 { x } else { x.cast(FloatDType::F32) }
}

#[derive(Module, Debug)]
pub struct Embedding<B: Backend> {
    /// `[rows, n_embd]`.
    pub weight: Param<Tensor<B, 2>>,
}

#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub bias: Param<Tensor<B, 1>>,
}

#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// `[in, out]`: `y = x @ weight + bias`.
    pub weight: Param<Tensor<B, 2>>,
    pub bias: Param<Tensor<B, 1>>,
}

#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    pub c_attn: Linear<B>,
    pub c_proj: Linear<B>,
}

#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub c_fc: Linear<B>,
    pub c_proj: Linear<B>,
}

#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    pub ln_1: LayerNorm<B>,
    pub attn: Attention<B>,
    pub ln_2: LayerNorm<B>,
    pub mlp: Mlp<B>,
}

#[derive(Module, Debug)]
pub struct Gpt<B: Backend> {
    pub wte: Embedding<B>,
    pub wpe: Embedding<B>,
    pub h: Vec<Block<B>>,
    pub ln_f: Option<LayerNorm<B>>,
    pub lm_head: Option<Embedding<B>>,
    #[module(skip)]
    pub config: GptConfig,
    #[module(skip)]
    pub precision: Precision,
}

impl<B: FusedOps> LayerNorm<B> {
    /// Over the last axis of `[rows, n]`, biased variance (as PyTorch).
    fn forward(&self, x: Tensor<B, 2>, eps: f32) -> Tensor<B, 2> {
        fused::layer_norm(x, self.weight.val(), self.bias.val(), eps)
    }
}

impl<B: FusedOps> Linear<B> {
    /// `[rows, in]` → `[rows, out]`, in the matmul's dtype.
    fn forward(&self, x: Tensor<B, 2>, p: Precision) -> Tensor<B, 2> {
        fused::linear(operand(x, p), operand(self.weight.val(), p), operand(self.bias.val(), p))
    }
}

impl<B: FusedOps> Attention<B> {
    /// Causal multi-head self-attention over `[batch·time, n_embd]` (its softmax in f32).
    fn forward(&self, x: Tensor<B, 2>, b: usize, n_head: usize, p: Precision) -> Tensor<B, 2> {
        let qkv = operand(self.c_attn.forward(x, p), p);
        let y = fused::causal_attention(qkv, b, n_head);
        full(self.c_proj.forward(y, p))
    }
}

impl<B: FusedOps> Mlp<B> {
    fn forward(&self, x: Tensor<B, 2>, p: Precision) -> Tensor<B, 2> {
        full(self.c_proj.forward(fused::gelu(self.c_fc.forward(x, p)), p))
    }
}

impl<B: FusedOps> Block<B> {
    fn forward(&self, x: Tensor<B, 2>, b: usize, config: &GptConfig, p: Precision) -> Tensor<B, 2> {
        let eps = config.layer_norm_epsilon;
        let h = config.n_head;
        match config.layer_norm_position {
            LayerNormPosition::Pre => {
                let x = x.clone() + self.attn.forward(self.ln_1.forward(x, eps), b, h, p);
                x.clone() + self.mlp.forward(self.ln_2.forward(x, eps), p)
            }
            LayerNormPosition::Post => {
                let x = self.ln_1.forward(x.clone() + self.attn.forward(x, b, h, p), eps);
                self.ln_2.forward(x.clone() + self.mlp.forward(x, p), eps)
            }
        }
    }
}

impl<B: Backend> Gpt<B> {
    pub fn config(&self) -> &GptConfig {
        &self.config
    }

    /// The same model computing its matmuls in `precision`.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }
}

impl<B: FusedOps> Gpt<B> {
    /// The last hidden states `[b·t, n_embd]` (after `ln_f` when the model has one) for token ids
    /// `[batch, time]` (time ≤ n_positions).
    pub fn hidden(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        let config = self.config();
        let [b, t] = ids.dims();
        let device = ids.device();
        let tok = self.wte.weight.val().select(0, ids.reshape([b * t]));
        let positions = Tensor::<B, 1, Int>::from_data(
            TensorData::new((0..t as i32).cycle().take(b * t).collect(), [b * t]),
            &device,
        );
        let pos = self.wpe.weight.val().select(0, positions);
        let mut x = tok + pos;
        for block in &self.h {
            x = block.forward(x, b, config, self.precision);
        }
        if let Some(ln_f) = &self.ln_f {
            x = ln_f.forward(x, config.layer_norm_epsilon);
        }
        x
    }

    fn head(&self) -> Tensor<B, 2> {
        self.lm_head.as_ref().unwrap_or(&self.wte).weight.val()
    }

    /// `hidden · wᵀ` (`[rows, n_embd]`, `[n, n_embd]` → `[rows, n]`, f32) in the matmuls' dtype.
    fn project(&self, hidden: Tensor<B, 2>, w: Tensor<B, 2>) -> Tensor<B, 2> {
        let p = self.precision;
        full(operand(hidden, p).matmul(operand(w, p).transpose()))
    }

    /// Logits `[b, t, vocab_size]`.
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [b, t] = ids.dims();
        self.project(self.hidden(ids), self.head()).reshape([b, t, self.config.vocab_size])
    }

    /// The head's row `row` read at every position, `[b, t]`: a linear head `h · w` (the reward
    /// model's score, the PPO critic's value).
    pub fn position_scores(&self, ids: Tensor<B, 2, Int>, row: usize) -> Tensor<B, 2> {
        let [b, t] = ids.dims();
        let c = self.config.n_embd;
        let w = self.head().slice([row..row + 1, 0..c]);
        self.project(self.hidden(ids), w).reshape([b, t])
    }

    /// One scalar per sequence: [`Self::position_scores`] at the position `at` marks with a 1
    /// (`[b, t]`, one 1 per row) → `[b]`.
    pub fn score(&self, ids: Tensor<B, 2, Int>, at: Tensor<B, 2>, row: usize) -> Tensor<B, 1> {
        let b = ids.dims()[0];
        (self.position_scores(ids, row) * at).sum_dim(1).reshape([b])
    }

    /// `log p(ids[t+1] | ids[..=t])` for every `t`, `[b, t − 1]`.
    pub fn token_logprobs(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        let [b, t] = ids.dims();
        let v = self.config.vocab_size;
        let logits = self.forward(ids.clone().slice([0..b, 0..t - 1])).reshape([b * (t - 1), v]);
        let next = ids.slice([0..b, 1..t]).reshape([b * (t - 1)]);
        fused::target_logprobs(logits, next).reshape([b, t - 1])
    }

    /// Mean next-token cross-entropy of `targets` `[batch, time]` under the logits of `ids`;
    /// with `weights` (`[batch, time]`, 0 or 1) only the weighted positions count.
    pub fn loss(
        &self,
        ids: Tensor<B, 2, Int>,
        targets: Tensor<B, 2, Int>,
        weights: Option<Tensor<B, 2>>,
    ) -> Tensor<B, 1> {
        cross_entropy(self.forward(ids), targets, weights)
    }
}

impl<B: Backend> Gpt<B> {
    /// Builds the model from bundle weights (a fresh init, an import, or a checkpoint).
    pub fn from_weights(config: &GptConfig, w: &ModelWeights, device: &B::Device) -> Self {
        let t2 = |t: &weights::Tensor| {
            Param::from_tensor(Tensor::from_data(TensorData::new(t.data.clone(), [t.shape[0], t.shape[1]]), device))
        };
        let t1 = |t: &weights::Tensor| {
            Param::from_tensor(Tensor::from_data(TensorData::new(t.data.clone(), [t.shape[0]]), device))
        };
        let ln = |l: &weights::LayerNorm| LayerNorm { weight: t1(&l.weight), bias: t1(&l.bias) };
        // Blocks (a GGUF file's) are decoded: the trainer holds f32.
        let lin = |l: &weights::Linear| Linear { weight: t2(&l.conv1d()), bias: t1(&l.bias) };
        Gpt {
            wte: Embedding { weight: t2(&w.wte.to_f32()) },
            wpe: Embedding { weight: t2(&w.wpe) },
            h: w.blocks
                .iter()
                .map(|b| Block {
                    ln_1: ln(&b.ln_1),
                    attn: Attention { c_attn: lin(&b.c_attn), c_proj: lin(&b.attn_proj) },
                    ln_2: ln(&b.ln_2),
                    mlp: Mlp { c_fc: lin(&b.c_fc), c_proj: lin(&b.mlp_proj) },
                })
                .collect(),
            ln_f: w.ln_f.as_ref().map(ln),
            lm_head: w.lm_head.as_ref().map(|m| Embedding { weight: t2(&m.to_f32()) }),
            config: config.clone(),
            precision: Precision::F32,
        }
    }

    /// The parameters as bundle weights (f32, read back from the device).
    pub fn to_weights(&self) -> ModelWeights {
        fn read<B: Backend, const D: usize>(p: &Param<Tensor<B, D>>) -> weights::Tensor {
            let t = p.val();
            let shape = t.dims().to_vec();
            weights::Tensor { shape, data: t.into_data().convert::<f32>().to_vec::<f32>().expect("f32 data") }
        }
        let ln = |l: &LayerNorm<B>| weights::LayerNorm { weight: read(&l.weight), bias: read(&l.bias) };
        let lin = |l: &Linear<B>| weights::Linear::from_conv1d(&read(&l.weight), read(&l.bias));
        ModelWeights {
            wte: Matrix::F32(read(&self.wte.weight)),
            wpe: read(&self.wpe.weight),
            blocks: self
                .h
                .iter()
                .map(|b| weights::Block {
                    ln_1: ln(&b.ln_1),
                    c_attn: lin(&b.attn.c_attn),
                    attn_proj: lin(&b.attn.c_proj),
                    ln_2: ln(&b.ln_2),
                    c_fc: lin(&b.mlp.c_fc),
                    mlp_proj: lin(&b.mlp.c_proj),
                })
                .collect(),
            ln_f: self.ln_f.as_ref().map(ln),
            lm_head: self.lm_head.as_ref().map(|e| Matrix::F32(read(&e.weight))),
            stored: vec![],
        }
    }
}

/// Mean cross-entropy over positions: `logits` `[b, t, v]`, `targets` `[b, t]`, optional 0/1
/// `weights` `[b, t]` (mean over the weighted positions only).
pub fn cross_entropy<B: FusedOps>(
    logits: Tensor<B, 3>,
    targets: Tensor<B, 2, Int>,
    weights: Option<Tensor<B, 2>>,
) -> Tensor<B, 1> {
    let [b, t, v] = logits.dims();
    let picked = fused::target_logprobs(logits.reshape([b * t, v]), targets.reshape([b * t]));
    match weights {
        None => picked.mean().neg(),
        Some(w) => {
            let w = w.reshape([b * t]);
            (picked * w.clone()).sum().neg() / w.sum().clamp_min(1.0)
        }
    }
}
