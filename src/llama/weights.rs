//! The Llama family's tensors, under the names HF stores them (`model.layers.N.self_attn.q_proj.weight`,
//! …), matrices `[out, in]`; from one `model.safetensors` or from shards.

use std::borrow::Cow;

use safetensors::SafeTensors;

use super::config::LlamaConfig;
use crate::quant::Matrix;
use crate::weights::{Taker, Tensor, TensorInfo, WeightsError};

/// A projection `y = W·x (+ b)`, `W` `[out, in]`: f32, or the GGML blocks a GGUF file stored.
#[derive(Debug, Clone)]
pub struct Proj {
    pub weight: Matrix,
    pub bias: Option<Tensor>,
}

#[derive(Debug, Clone)]
pub struct LlamaLayer {
    pub input_layernorm: Tensor,
    pub q_proj: Proj,
    pub k_proj: Proj,
    pub v_proj: Proj,
    pub o_proj: Proj,
    /// Qwen3's per-head RMSNorm gains of q and k, `[head_dim]`.
    pub q_norm: Option<Tensor>,
    pub k_norm: Option<Tensor>,
    pub post_attention_layernorm: Tensor,
    pub gate_proj: Proj,
    pub up_proj: Proj,
    pub down_proj: Proj,
}

impl LlamaLayer {
    /// q, k, v, o, gate, up, down.
    pub fn projections(&self) -> [&Proj; 7] {
        [&self.q_proj, &self.k_proj, &self.v_proj, &self.o_proj, &self.gate_proj, &self.up_proj, &self.down_proj]
    }

    /// [`LlamaLayer::projections`], to change.
    pub fn projections_mut(&mut self) -> [&mut Proj; 7] {
        [
            &mut self.q_proj,
            &mut self.k_proj,
            &mut self.v_proj,
            &mut self.o_proj,
            &mut self.gate_proj,
            &mut self.up_proj,
            &mut self.down_proj,
        ]
    }
}

#[derive(Debug, Clone)]
pub struct LlamaWeights {
    /// `[vocab, hidden]`; also the head when tied.
    pub embed_tokens: Matrix,
    pub layers: Vec<LlamaLayer>,
    pub norm: Tensor,
    /// `[vocab, hidden]`, only when the head is not tied.
    pub lm_head: Option<Matrix>,
    /// The files' tensors as stored, sorted by name.
    pub stored: Vec<TensorInfo>,
}

impl LlamaWeights {
    /// Random weights of `config`'s shape (the benchmarks' models), scaled so activations stay O(1).
    pub fn random(config: &LlamaConfig, seed: u64) -> Self {
        let mut t = crate::weights::random_tensors(seed);
        let c = config;
        let (d, f, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
        let (q, kv) = (c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
        let mut proj = |out: usize, inp: usize, bias: bool| Proj {
            weight: Matrix::F32(t(&[out, inp], 0.0, 1.0 / (inp as f32).sqrt())),
            bias: bias.then(|| t(&[out], 0.0, 0.2)),
        };
        let layers = (0..c.num_hidden_layers)
            .map(|_| LlamaLayer {
                q_proj: proj(q, d, c.qkv_bias),
                k_proj: proj(kv, d, c.qkv_bias),
                v_proj: proj(kv, d, c.qkv_bias),
                o_proj: proj(d, q, c.o_bias),
                gate_proj: proj(f, d, false),
                up_proj: proj(f, d, false),
                down_proj: proj(d, f, false),
                input_layernorm: Tensor { shape: vec![d], data: vec![1.0; d] },
                post_attention_layernorm: Tensor { shape: vec![d], data: vec![1.0; d] },
                q_norm: c.qk_norm.then(|| Tensor { shape: vec![c.head_dim], data: vec![1.0; c.head_dim] }),
                k_norm: c.qk_norm.then(|| Tensor { shape: vec![c.head_dim], data: vec![1.0; c.head_dim] }),
            })
            .collect();
        let mut t = crate::weights::random_tensors(seed ^ 1);
        LlamaWeights {
            embed_tokens: Matrix::F32(t(&[v, d], 0.0, 0.8)),
            norm: Tensor { shape: vec![d], data: vec![1.0; d] },
            lm_head: (!c.tie_word_embeddings).then(|| Matrix::F32(t(&[v, d], 0.0, 0.8))),
            layers,
            stored: vec![],
        }
    }

    /// Every tensor under HF's name, in the order HF lists them, in f32 (decoded from blocks).
    pub fn named(&self) -> Vec<(String, Cow<'_, Tensor>)> {
        let mut out = vec![("model.embed_tokens.weight".to_string(), self.embed_tokens.to_f32())];
        for (i, l) in self.layers.iter().enumerate() {
            let p = |part: &str| format!("model.layers.{i}.{part}");
            out.push((p("input_layernorm.weight"), Cow::Borrowed(&l.input_layernorm)));
            for (name, proj) in [
                ("self_attn.q_proj", &l.q_proj),
                ("self_attn.k_proj", &l.k_proj),
                ("self_attn.v_proj", &l.v_proj),
                ("self_attn.o_proj", &l.o_proj),
            ] {
                out.push((p(&format!("{name}.weight")), proj.weight.to_f32()));
                if let Some(b) = &proj.bias {
                    out.push((p(&format!("{name}.bias")), Cow::Borrowed(b)));
                }
            }
            if let (Some(q), Some(k)) = (&l.q_norm, &l.k_norm) {
                out.push((p("self_attn.q_norm.weight"), Cow::Borrowed(q)));
                out.push((p("self_attn.k_norm.weight"), Cow::Borrowed(k)));
            }
            out.push((p("post_attention_layernorm.weight"), Cow::Borrowed(&l.post_attention_layernorm)));
            for (name, proj) in
                [("mlp.gate_proj", &l.gate_proj), ("mlp.up_proj", &l.up_proj), ("mlp.down_proj", &l.down_proj)]
            {
                out.push((p(&format!("{name}.weight")), proj.weight.to_f32()));
            }
        }
        out.push(("model.norm.weight".to_string(), Cow::Borrowed(&self.norm)));
        if let Some(h) = &self.lm_head {
            out.push(("lm_head.weight".to_string(), h.to_f32()));
        }
        out
    }

    /// The LM head, `[vocab, hidden]`.
    pub fn head(&self) -> &Matrix {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    /// Every matrix held in `ty`, as `--dtype` asks. F32, F16, BF16: every matrix in it (blocks
    /// decoded). Q8_0, Q4_0, Q4_K: every float matrix in GGML blocks of `ty`, as `wgpt quantize`
    /// writes them (matrices already quantized stay as they are) — the embedding and the head in
    /// Q8_0, as llama.cpp keeps them at 4 bits; with Q8_0 and Q4_0 a matrix whose rows are not
    /// whole 32-value blocks stays as it was; with Q4_K rows that are not whole 256-value
    /// super-blocks are refused (llama.cpp would fall back to Q5_0 for them, which wgpt does not
    /// write). (The benchmarks' quantized shapes.)
    pub fn quantize(&mut self, ty: crate::quant::GgmlType) -> Result<(), crate::quant::QuantError> {
        use crate::quant::GgmlType;
        let encode = |m: &mut Matrix, ty: GgmlType| -> Result<(), crate::quant::QuantError> {
            let [rows, cols] = m.shape();
            let held = m.block_type().unwrap_or(GgmlType::F32);
            if held == ty || (!ty.is_float() && (!m.is_float() || (!cols.is_multiple_of(32) && ty != GgmlType::Q4K))) {
                return Ok(());
            }
            let t = m.to_f32();
            *m = match ty {
                GgmlType::F32 => Matrix::F32(t.into_owned()),
                ty => Matrix::Blocks(Matrix::quantize(ty, rows, cols, &t.data)?),
            };
            Ok(())
        };
        for l in &mut self.layers {
            for p in l.projections_mut() {
                encode(&mut p.weight, ty)?;
            }
        }
        let table = if ty.is_float() { ty } else { GgmlType::Q8_0 };
        encode(&mut self.embed_tokens, table)?;
        if let Some(h) = &mut self.lm_head {
            encode(h, table)?;
        }
        Ok(())
    }

    /// Bytes the weights hold in memory (blocks as stored, everything else in f32).
    pub fn bytes(&self) -> usize {
        let t = |t: &Tensor| t.data.len() * 4;
        let proj = |p: &Proj| p.weight.bytes() + p.bias.as_ref().map_or(0, t);
        let layer = |l: &LlamaLayer| {
            t(&l.input_layernorm)
                + t(&l.post_attention_layernorm)
                + l.projections().into_iter().map(proj).sum::<usize>()
                + l.q_norm.as_ref().map_or(0, t)
                + l.k_norm.as_ref().map_or(0, t)
        };
        self.embed_tokens.bytes()
            + self.lm_head.as_ref().map_or(0, Matrix::bytes)
            + t(&self.norm)
            + self.layers.iter().map(layer).sum::<usize>()
    }

    /// The matrices' stored types, each once (`["F32"]`, `["Q4_0", "Q8_0"]`, …).
    pub fn matrix_types(&self) -> Vec<&'static str> {
        let mut types: Vec<&'static str> = std::iter::once(&self.embed_tokens)
            .chain(&self.lm_head)
            .chain(self.layers.iter().flat_map(|l| l.projections().map(|p| &p.weight)))
            .map(Matrix::type_name)
            .collect();
        types.sort_unstable();
        types.dedup();
        types
    }

    /// Parses and validates the safetensors file(s) of a model — one, or every shard — against
    /// `config`.
    pub fn from_files(files: &[&[u8]], config: &LlamaConfig) -> Result<Self, WeightsError> {
        let parsed = files.iter().map(|b| SafeTensors::deserialize(b)).collect::<Result<Vec<_>, _>>()?;
        let (take, stored) = Self::taker(&parsed)?;
        Self::take(take, stored, config)
    }

    /// [`LlamaWeights::from_files`] of files given up to the model: its matrices (F32, F16,
    /// BF16) stay where they lie in them, so a model is held once, not as its files plus a copy.
    pub fn from_owned_files(files: Vec<std::sync::Arc<Vec<u8>>>, config: &LlamaConfig) -> Result<Self, WeightsError> {
        let parsed = files.iter().map(|b| SafeTensors::deserialize(b)).collect::<Result<Vec<_>, _>>()?;
        let (take, stored) = Self::taker(&parsed)?;
        Self::take(take.in_buffers(files.clone()), stored, config)
    }

    fn taker<'a>(parsed: &[SafeTensors<'a>]) -> Result<(Taker<'a>, Vec<TensorInfo>), WeightsError> {
        // Older files carry the rotary frequencies as a buffer; they are not parameters.
        Taker::new(parsed, |name| (!name.ends_with("rotary_emb.inv_freq")).then_some(name))
    }

    /// The model's tensors from `take` (HF's names), checked against `config`.
    pub(crate) fn take(mut take: Taker, stored: Vec<TensorInfo>, config: &LlamaConfig) -> Result<Self, WeightsError> {
        let c = config;
        let (d, f, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
        let (q, kv) = (c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
        let embed_tokens = take.matrix("model.embed_tokens.weight", &[v, d])?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let p = format!("model.layers.{i}.");
            let mut proj = |name: &str, out: usize, inp: usize, bias: bool| -> Result<Proj, WeightsError> {
                Ok(Proj {
                    weight: take.matrix(&format!("{p}{name}.weight"), &[out, inp])?,
                    bias: if bias { Some(take.tensor(&format!("{p}{name}.bias"), &[out])?) } else { None },
                })
            };
            let q_proj = proj("self_attn.q_proj", q, d, c.qkv_bias)?;
            let k_proj = proj("self_attn.k_proj", kv, d, c.qkv_bias)?;
            let v_proj = proj("self_attn.v_proj", kv, d, c.qkv_bias)?;
            let o_proj = proj("self_attn.o_proj", d, q, c.o_bias)?;
            let gate_proj = proj("mlp.gate_proj", f, d, false)?;
            let up_proj = proj("mlp.up_proj", f, d, false)?;
            let down_proj = proj("mlp.down_proj", d, f, false)?;
            let mut norm = |name: &str, n: usize| take.tensor(&format!("{p}{name}.weight"), &[n]);
            let (q_norm, k_norm) = if c.qk_norm {
                (Some(norm("self_attn.q_norm", c.head_dim)?), Some(norm("self_attn.k_norm", c.head_dim)?))
            } else {
                (None, None)
            };
            layers.push(LlamaLayer {
                input_layernorm: norm("input_layernorm", d)?,
                post_attention_layernorm: norm("post_attention_layernorm", d)?,
                q_proj,
                k_proj,
                v_proj,
                o_proj,
                q_norm,
                k_norm,
                gate_proj,
                up_proj,
                down_proj,
            });
        }
        let norm = take.tensor("model.norm.weight", &[d])?;
        let lm_head = take.head(c.tie_word_embeddings, &embed_tokens)?;
        take.finish()?;
        Ok(LlamaWeights { embed_tokens, layers, norm, lm_head, stored })
    }
}
