//! A GPT on the device: weights, activations, KV cache and bind groups made once at load, and
//! the forward pass encoded into one command buffer per step.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use super::kernels::{Kernel, Kernels, Variant};
use super::{Gpu, GpuError, GpuOptions, WeightFormat};
use crate::config::{GptConfig, LayerNormPosition};
use crate::cpu::EngineError;
use crate::sampler::SamplingParams;
use crate::weights::{ModelWeights, Tensor};

/// What the step picks on the device after the logits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pick {
    Nothing,
    Greedy,
    Sample,
}

/// Largest prefill chunk (rows per submission).
const MAX_CHUNK_ROWS: usize = 256;
/// Largest number of logit rows read back per submission when every position's logits are wanted.
const MAX_LOGIT_ROWS: usize = 32;
/// The matvec kernel stages an input row of up to this many values in workgroup memory.
const MAX_STAGED: usize = 4096;
const MAX_HEAD_DIM: usize = 256;
/// attention_prefill.wgsl stages head dimensions up to this in workgroup memory.
const MAX_PREFILL_HEAD_DIM: usize = 128;

/// What a forward call returns besides the last position's logits.
#[derive(Debug, Clone, Copy, Default)]
pub struct GpuForward {
    pub all_logits: bool,
    pub attention: bool,
}

#[derive(Debug, Default)]
pub struct GpuOutputs {
    /// `[rows, vocab]`: every new position with `all_logits`, else the last.
    pub logits: Vec<f32>,
    /// Per layer `[n_head, new, past + new]`, as the CPU reference returns them.
    pub attention: Vec<Vec<f32>>,
}

/// Counts from the last submitted step, for benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepStats {
    pub dispatches: usize,
    /// Dispatches per transformer block (the rest: embedding, final LayerNorm, head, argmax).
    pub per_block: usize,
    pub submits: usize,
}

/// Bind groups of one transformer block.
struct Layer {
    /// For matvec (decode, and prefill on software adapters): the input is the residual
    /// stream and LayerNorm is fused (`ln` = 1).
    qkv: wgpu::BindGroup,
    proj: wgpu::BindGroup,
    fc: wgpu::BindGroup,
    proj2: wgpu::BindGroup,
    /// For the tiled prefill: LayerNorm runs first into `h`, the GEMMs read `h`.
    qkv_tiled: wgpu::BindGroup,
    fc_tiled: wgpu::BindGroup,
    ln_1: wgpu::BindGroup,
    ln_2: wgpu::BindGroup,
    attention: wgpu::BindGroup,
}

/// A row chunk of the embedding (or LM head) matrix, bound to one kernel.
struct Chunk {
    group: wgpu::BindGroup,
    v_count: u32,
}

pub struct GpuModel {
    gpu: Arc<Gpu>,
    kernels: Kernels,
    config: GptConfig,
    format: WeightFormat,
    chunk_rows: usize,
    logit_rows: usize,
    step: wgpu::Buffer,
    ids: wgpu::Buffer,
    logits: wgpu::Buffer,
    probs: wgpu::Buffer,
    token: wgpu::Buffer,
    seen: wgpu::Buffer,
    sampling: wgpu::Buffer,
    staging: wgpu::Buffer,
    layers: Vec<Layer>,
    embed: Vec<Chunk>,
    lm_head: Vec<Chunk>,
    ln_f: wgpu::BindGroup,
    argmax: wgpu::BindGroup,
    sample: wgpu::BindGroup,
    pos: usize,
    last: StepStats,
    footprint: Footprint,
    /// Keeps every buffer alive (bind groups hold them too; this makes ownership plain).
    _buffers: Vec<wgpu::Buffer>,
}

/// Sizes chosen for a model on a device, checked against its limits before anything is allocated.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    /// Rows per prefill submission.
    chunk_rows: usize,
    /// Logit rows per submission when every position's logits are wanted.
    logit_rows: usize,
    /// Rows of the embedding / head matrix per storage binding.
    rows_per_chunk: usize,
}

impl Plan {
    fn new(config: &GptConfig, format: WeightFormat, limits: &wgpu::Limits) -> Result<Self, GpuError> {
        let (c, inner, v, t, heads) =
            (config.n_embd, config.n_inner, config.vocab_size, config.n_positions, config.n_head);
        let max_binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let chunk_rows = t.min(MAX_CHUNK_ROWS);
        let logit_rows = chunk_rows.min(MAX_LOGIT_ROWS);
        let elem = match format {
            WeightFormat::F32 => 4,
            WeightFormat::F16 => 2,
        };
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
        Ok(Plan { chunk_rows, logit_rows, rows_per_chunk })
    }
}

/// Uniform blocks are bound at offsets that are multiples of this (WebGPU's guaranteed limit).
const UNIFORM_SLOT: usize = 256;

/// Collects the small uniform "dims" blocks of every dispatch into one buffer.
#[derive(Default)]
struct DimsBuilder {
    bytes: Vec<u8>,
}

impl DimsBuilder {
    fn push(&mut self, words: [u32; 8]) -> u64 {
        let offset = self.bytes.len();
        self.bytes.extend(words.iter().flat_map(|w| w.to_le_bytes()));
        self.bytes.resize(offset + UNIFORM_SLOT, 0);
        offset as u64
    }
}

fn f(x: f32) -> u32 {
    x.to_bits()
}

/// The device memory a model holds, so an out-of-memory error can say what the model needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Footprint {
    /// Weights as stored on the device (f32, or f16 packed two per u32).
    pub weights: u64,
    /// KV cache, activations, logits and the readback buffer.
    pub scratch: u64,
}

impl Footprint {
    pub fn total(&self) -> u64 {
        self.weights + self.scratch
    }

    /// Adds what the model needs to an out-of-memory error; other errors pass unchanged.
    pub fn explain(&self, e: GpuError) -> GpuError {
        let mb = |b: u64| b as f64 / 1e6;
        match e {
            GpuError::OutOfMemory(m) => GpuError::OutOfMemory(format!(
                "{m}; this model needs {:.1} MB of GPU memory ({:.1} MB of weights, {:.1} MB of KV cache and scratch)",
                mb(self.total()),
                mb(self.weights),
                mb(self.scratch)
            )),
            other => other,
        }
    }
}

impl GpuModel {
    /// Uploads a validated model to a new device.
    pub async fn new(config: &GptConfig, weights: &ModelWeights, options: GpuOptions) -> Result<Self, GpuError> {
        // On wasm the device is not Send; Arc still serves (one thread), and keeps one API.
        #[allow(clippy::arc_with_non_send_sync)]
        let gpu = Arc::new(Gpu::new().await?);
        Self::on(gpu, config, weights, options)
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }
    pub fn config(&self) -> &GptConfig {
        &self.config
    }
    pub fn format(&self) -> WeightFormat {
        self.format
    }
    pub fn variant(&self) -> Variant {
        self.kernels.variant
    }
    /// f16 weights are read as WGSL `f16` (not unpacked from u32 pairs).
    pub fn native_f16(&self) -> bool {
        self.kernels.native_f16
    }
    pub fn position(&self) -> usize {
        self.pos
    }
    /// Forgets the context (and the tokens the repetition penalty has seen).
    pub fn reset(&mut self) {
        self.pos = 0;
        self.gpu.queue.write_buffer(&self.seen, 0, &vec![0u8; self.config.vocab_size * 4]);
    }
    /// Keeps the first `pos` tokens. The repetition penalty still counts the dropped ones.
    pub fn truncate(&mut self, pos: usize) {
        self.pos = self.pos.min(pos);
    }
    /// Dispatches and submits of the last step.
    pub fn last_step(&self) -> StepStats {
        self.last
    }
    /// Bytes of weights on the device.
    pub fn weight_bytes(&self) -> u64 {
        self.footprint.weights
    }
    /// Everything this model allocated on the device.
    pub fn footprint(&self) -> Footprint {
        self.footprint
    }

    /// Uploads a validated model to `gpu`.
    pub fn on(gpu: Arc<Gpu>, config: &GptConfig, w: &ModelWeights, options: GpuOptions) -> Result<Self, GpuError> {
        let c = config.n_embd;
        let (hd, inner) = (config.head_dim(), config.n_inner);
        if config.layer_norm_position == LayerNormPosition::Post {
            return Err(GpuError::Unsupported("post-LN (GPT-1) blocks; use the CPU engine".into()));
        }
        if !c.is_multiple_of(4) || !inner.is_multiple_of(4) || c > MAX_STAGED || hd > MAX_HEAD_DIM {
            return Err(GpuError::Unsupported(format!(
                "n_embd {c} and n_inner {inner} must be multiples of 4, n_embd ≤ {MAX_STAGED}, head_dim ≤ {MAX_HEAD_DIM} (got {hd})"
            )));
        }
        let format = options.format.unwrap_or_else(|| {
            let half = !w.stored.is_empty() && w.stored.iter().all(|t| t.dtype == "F16" || t.dtype == "BF16");
            if half { WeightFormat::F16 } else { WeightFormat::F32 }
        });
        let variant = options.variant.unwrap_or_else(|| Variant::for_adapter(gpu.is_software()));
        let device = &gpu.device;
        let (v, t, heads) = (config.vocab_size, config.n_positions, config.n_head);
        let Plan { chunk_rows, logit_rows, rows_per_chunk } = Plan::new(config, format, &gpu.limits)?;

        let native_f16 = options.native_f16.unwrap_or(true) && gpu.has_f16();
        let kernels = Kernels::new(device, format, variant, native_f16);
        let mut buffers = Vec::new();
        let mut weight_bytes = 0u64;
        let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
        let mut upload = |label: &str, bytes: &[u8]| -> wgpu::Buffer {
            weight_bytes += bytes.len() as u64;
            let padded;
            let contents = if bytes.len() < 16 {
                padded = [bytes, &[0u8; 16][..16 - bytes.len()]].concat();
                &padded[..]
            } else {
                bytes
            };
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: storage,
            })
        };
        let matrix = |name: &str, data: &[f32]| -> Result<Vec<u8>, GpuError> { encode(name, data, format) };
        let params = |t: &Tensor| -> Vec<u8> { t.data.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let scratch_bytes = std::cell::Cell::new(0u64);
        let empty = |label: &str, bytes: usize| -> wgpu::Buffer {
            let size = (bytes as u64).max(16).next_multiple_of(16);
            scratch_bytes.set(scratch_bytes.get() + size);
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: storage,
                mapped_at_creation: false,
            })
        };

        // Activations and scratch.
        let x = empty("x", chunk_rows * c * 4);
        let h = empty("h", chunk_rows * c * 4);
        let q = empty("q", chunk_rows * c * 4);
        let att = empty("att", chunk_rows * c * 4);
        let fc = empty("fc", chunk_rows * inner * 4);
        let ids = empty("ids", chunk_rows * 4);
        let logits = empty("logits", logit_rows * v * 4);
        let probs = empty("probs", chunk_rows * heads * t * 4);
        let token = empty("token", 16);
        let seen = empty("seen", v * 4);
        let scores = empty("sample scores", v * 4);
        let sampling = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("sampling"),
            size: 32,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let dummy_rw = [empty("unused k", 16), empty("unused v", 16)];
        let staging_size = (logit_rows * v * 4).max(chunk_rows * heads * t * 4).max(16);
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: staging_size as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let step = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("step"),
            size: 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });

        let mut dims = DimsBuilder::default();
        let eps = f(config.layer_norm_epsilon);
        // Linear dims: k, n, mode, ln, eps.
        let lin = |dims: &mut DimsBuilder, k: usize, n: usize, mode: u32, ln: u32| {
            dims.push([k as u32, n as u32, mode, ln, eps, 0, 0, 0])
        };

        // Per-layer weights, then the bind groups that use them.
        let wpe = upload("wpe", &params(&w.wpe));
        let mut layer_bufs = Vec::new();
        let mut k_caches = Vec::new();
        let mut v_caches = Vec::new();
        for (l, b) in w.blocks.iter().enumerate() {
            let p = format!("h.{l}.");
            layer_bufs.push([
                upload(
                    &format!("{p}c_attn.weight"),
                    &matrix(&format!("{p}attn.c_attn.weight"), &b.c_attn.weight.data)?,
                ),
                upload(&format!("{p}c_attn.bias"), &params(&b.c_attn.bias)),
                upload(
                    &format!("{p}attn.c_proj.weight"),
                    &matrix(&format!("{p}attn.c_proj.weight"), &b.attn_proj.weight.data)?,
                ),
                upload(&format!("{p}attn.c_proj.bias"), &params(&b.attn_proj.bias)),
                upload(&format!("{p}mlp.c_fc.weight"), &matrix(&format!("{p}mlp.c_fc.weight"), &b.c_fc.weight.data)?),
                upload(&format!("{p}mlp.c_fc.bias"), &params(&b.c_fc.bias)),
                upload(
                    &format!("{p}mlp.c_proj.weight"),
                    &matrix(&format!("{p}mlp.c_proj.weight"), &b.mlp_proj.weight.data)?,
                ),
                upload(&format!("{p}mlp.c_proj.bias"), &params(&b.mlp_proj.bias)),
                upload(&format!("{p}ln_1.weight"), &params(&b.ln_1.weight)),
                upload(&format!("{p}ln_1.bias"), &params(&b.ln_1.bias)),
                upload(&format!("{p}ln_2.weight"), &params(&b.ln_2.weight)),
                upload(&format!("{p}ln_2.bias"), &params(&b.ln_2.bias)),
            ]);
            k_caches.push(empty(&format!("k cache {l}"), t * c * 4));
            v_caches.push(empty(&format!("v cache {l}"), t * c * 4));
        }
        let ln_f = w.ln_f.as_ref().expect("pre-LN models have ln_f");
        let ln_f_g = upload("ln_f.weight", &params(&ln_f.weight));
        let ln_f_b = upload("ln_f.bias", &params(&ln_f.bias));

        // Embedding / head matrices, split by rows where one binding cannot hold them.
        let split = |name: &str, t: &Tensor| -> Result<Vec<(usize, usize, Vec<u8>)>, GpuError> {
            let mut out = Vec::new();
            let mut lo = 0;
            while lo < v {
                let n = rows_per_chunk.min(v - lo);
                out.push((lo, n, encode(name, &t.data[lo * c..(lo + n) * c], format)?));
                lo += n;
            }
            Ok(out)
        };
        let wte_chunks: Vec<(usize, usize, wgpu::Buffer)> =
            split("wte.weight", &w.wte)?.into_iter().map(|(lo, n, bytes)| (lo, n, upload("wte", &bytes))).collect();
        let head_chunks: Option<Vec<(usize, usize, wgpu::Buffer)>> = match &w.lm_head {
            None => None,
            Some(t) => Some(
                split("lm_head.weight", t)?
                    .into_iter()
                    .map(|(lo, n, bytes)| (lo, n, upload("lm_head", &bytes)))
                    .collect(),
            ),
        };

        // Dims blocks.
        let d_qkv = lin(&mut dims, c, 3 * c, 3, 1);
        let d_proj = lin(&mut dims, c, c, 2, 0);
        let d_fc = lin(&mut dims, c, inner, 1, 1);
        let d_proj2 = lin(&mut dims, inner, c, 2, 0);
        let d_qkv_tiled = lin(&mut dims, c, 3 * c, 3, 0);
        let d_fc_tiled = lin(&mut dims, c, inner, 1, 0);
        let d_ln = dims.push([c as u32, eps, 0, 0, 0, 0, 0, 0]);
        let d_ln_f = dims.push([c as u32, eps, 1, 0, 0, 0, 0, 0]);
        let d_att = dims.push([c as u32, heads as u32, hd as u32, t as u32, f(1.0 / (hd as f32).sqrt()), 0, 0, 0]);
        let d_embed: Vec<u64> =
            wte_chunks.iter().map(|(lo, n, _)| dims.push([c as u32, *lo as u32, *n as u32, 0, 0, 0, 0, 0])).collect();
        let head_list = head_chunks.as_ref().unwrap_or(&wte_chunks);
        let d_head: Vec<u64> = head_list
            .iter()
            .map(|(lo, n, _)| dims.push([c as u32, *lo as u32, *n as u32, v as u32, 0, 0, 0, 0]))
            .collect();
        let d_argmax = dims.push([v as u32, 0, 0, 0, 0, 0, 0, 0]);
        let dims_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("dims"),
            contents: &dims.bytes,
            usage: wgpu::BufferUsages::UNIFORM,
        });

        fn whole(b: &wgpu::Buffer) -> wgpu::BindingResource<'_> {
            b.as_entire_binding()
        }
        let dims_at = |offset: u64| {
            wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &dims_buf,
                offset,
                size: wgpu::BufferSize::new(32),
            })
        };
        let group = |kernel: &Kernel, label: &str, resources: Vec<wgpu::BindingResource>| -> wgpu::BindGroup {
            let entries: Vec<wgpu::BindGroupEntry> = resources
                .into_iter()
                .enumerate()
                .map(|(i, r)| wgpu::BindGroupEntry { binding: i as u32, resource: r })
                .collect();
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(label),
                layout: &kernel.layout,
                entries: &entries,
            })
        };
        // matvec / tiled: step, dims, x, w, bias, ln_g, ln_b, out, k, v.
        let linear = |label: &str,
                      d: u64,
                      input: &wgpu::Buffer,
                      wb: &wgpu::Buffer,
                      bias: &wgpu::Buffer,
                      ln: (&wgpu::Buffer, &wgpu::Buffer),
                      out: &wgpu::Buffer,
                      kv: (&wgpu::Buffer, &wgpu::Buffer)| {
            group(
                &kernels.matvec,
                label,
                vec![
                    whole(&step),
                    dims_at(d),
                    whole(input),
                    whole(wb),
                    whole(bias),
                    whole(ln.0),
                    whole(ln.1),
                    whole(out),
                    whole(kv.0),
                    whole(kv.1),
                ],
            )
        };
        let unused_kv = (&dummy_rw[0], &dummy_rw[1]);
        let mut layers = Vec::new();
        for (l, lb) in layer_bufs.iter().enumerate() {
            let [w_qkv, b_qkv, w_proj, b_proj, w_fc, b_fc, w_proj2, b_proj2, g1, be1, g2, be2] = lb;
            let kv = (&k_caches[l], &v_caches[l]);
            layers.push(Layer {
                qkv: linear("qkv", d_qkv, &x, w_qkv, b_qkv, (g1, be1), &q, kv),
                proj: linear("proj", d_proj, &att, w_proj, b_proj, (g1, be1), &x, unused_kv),
                fc: linear("fc", d_fc, &x, w_fc, b_fc, (g2, be2), &fc, unused_kv),
                proj2: linear("proj2", d_proj2, &fc, w_proj2, b_proj2, (g2, be2), &x, unused_kv),
                qkv_tiled: linear("qkv tiled", d_qkv_tiled, &h, w_qkv, b_qkv, (g1, be1), &q, kv),
                fc_tiled: linear("fc tiled", d_fc_tiled, &h, w_fc, b_fc, (g2, be2), &fc, unused_kv),
                ln_1: group(
                    &kernels.layernorm,
                    "ln_1",
                    vec![whole(&step), dims_at(d_ln), whole(&x), whole(g1), whole(be1), whole(&h)],
                ),
                ln_2: group(
                    &kernels.layernorm,
                    "ln_2",
                    vec![whole(&step), dims_at(d_ln), whole(&x), whole(g2), whole(be2), whole(&h)],
                ),
                attention: group(
                    &kernels.attention,
                    "attention",
                    vec![whole(&step), dims_at(d_att), whole(&q), whole(kv.0), whole(kv.1), whole(&att), whole(&probs)],
                ),
            });
        }
        let embed = wte_chunks
            .iter()
            .zip(&d_embed)
            .map(|((_, n, buf), &d)| Chunk {
                group: group(
                    &kernels.embed,
                    "embed",
                    vec![whole(&step), dims_at(d), whole(&ids), whole(buf), whole(&wpe), whole(&x), whole(&seen)],
                ),
                v_count: *n as u32,
            })
            .collect();
        let lm_head = head_list
            .iter()
            .zip(&d_head)
            .map(|((_, n, buf), &d)| Chunk {
                group: group(
                    &kernels.lm_head,
                    "lm_head",
                    vec![whole(&step), dims_at(d), whole(&h), whole(buf), whole(&logits)],
                ),
                v_count: *n as u32,
            })
            .collect();
        let ln_f = group(
            &kernels.layernorm,
            "ln_f",
            vec![whole(&step), dims_at(d_ln_f), whole(&x), whole(&ln_f_g), whole(&ln_f_b), whole(&h)],
        );
        let argmax =
            group(&kernels.argmax, "argmax", vec![whole(&step), dims_at(d_argmax), whole(&logits), whole(&token)]);
        let sample = group(
            &kernels.sample,
            "sample",
            vec![
                whole(&step),
                dims_at(d_argmax),
                whole(&sampling),
                whole(&logits),
                whole(&seen),
                whole(&scores),
                whole(&token),
            ],
        );

        let mut keep = vec![x, h, q, att, fc, wpe, ln_f_g, ln_f_b, dims_buf, scores];
        keep.extend(dummy_rw);
        keep.extend(layer_bufs.into_iter().flatten());
        keep.extend(k_caches);
        keep.extend(v_caches);
        keep.extend(wte_chunks.into_iter().map(|(_, _, b)| b));
        keep.extend(head_chunks.into_iter().flatten().map(|(_, _, b)| b));
        buffers.extend(keep);
        // `empty` made all but the readback buffer (added here) and the few-byte uniform blocks.
        let footprint = Footprint { weights: weight_bytes, scratch: scratch_bytes.get() + staging_size as u64 };
        gpu.check().map_err(|e| footprint.explain(e))?;
        let mut model = GpuModel {
            gpu,
            kernels,
            config: config.clone(),
            format,
            chunk_rows,
            logit_rows,
            step,
            ids,
            logits,
            probs,
            token,
            seen,
            sampling,
            staging,
            layers,
            embed,
            lm_head,
            ln_f,
            argmax,
            sample,
            pos: 0,
            last: StepStats::default(),
            footprint,
            _buffers: buffers,
        };
        model.warm_up();
        model.gpu.check().map_err(|e| footprint.explain(e))?;
        Ok(model)
    }

    /// Runs every pipeline once (a 2-row prefill where the tiled kernels serve prefill, a 1-row
    /// step with the argmax and sampling kernels), so no driver compiles on the first token.
    fn warm_up(&mut self) {
        let n_layer = self.config.n_layer;
        let mut steps = vec![(vec![0u32], Pick::Greedy), (vec![0u32], Pick::Sample)];
        if self.kernels.variant == Variant::Gpu && self.config.n_positions >= 2 {
            steps.push((vec![0, 0], Pick::Nothing));
        }
        let words = [1.0f32.to_bits(), 0, 1.0f32.to_bits(), 1.0f32.to_bits(), 0, 0, 0, 0];
        self.gpu.queue.write_buffer(&self.sampling, 0, &words_bytes(&words));
        for (ids, pick) in steps {
            let enc = self.encode(&ids, 1, pick, 0..n_layer, true, false);
            self.gpu.queue.submit([enc.finish()]);
        }
        self.reset();
    }

    fn validate(&self, ids: &[u32]) -> Result<(), GpuError> {
        let cfg = &self.config;
        if ids.is_empty() {
            return Err(EngineError::EmptyInput.into());
        }
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= cfg.vocab_size) {
            return Err(EngineError::TokenOutOfRange { id, vocab_size: cfg.vocab_size }.into());
        }
        if self.pos + ids.len() > cfg.n_positions {
            return Err(EngineError::ContextOverflow { needed: self.pos + ids.len(), max: cfg.n_positions }.into());
        }
        Ok(())
    }

    /// Encodes one chunk: `ids` at positions `pos ..`; the last `logit_rows` rows get logits
    /// (0: none), and `pick` appends the argmax or sampling kernel. With `layers`, only those blocks and no
    /// head (used to read attention maps layer by layer).
    fn encode(
        &mut self,
        ids: &[u32],
        logit_rows: usize,
        pick: Pick,
        layers: std::ops::Range<usize>,
        embed: bool,
        maps: bool,
    ) -> wgpu::CommandEncoder {
        let gpu = &self.gpu;
        let rows = ids.len();
        let step = [rows as u32, self.pos as u32, logit_rows as u32, 0];
        gpu.queue.write_buffer(&self.step, 0, &words_bytes(&step));
        if embed {
            gpu.queue.write_buffer(&self.ids, 0, &words_bytes(ids));
        }
        let (c, inner, heads) = (self.config.n_embd, self.config.n_inner, self.config.n_head);
        let k = &self.kernels;
        let tiled = k.variant == Variant::Gpu && rows > 1;
        // The tiled prefill attention writes no probabilities; attention maps need the row kernel.
        let prefill_attention = tiled && !maps && self.config.head_dim() <= MAX_PREFILL_HEAD_DIM;
        let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("step") });
        let n = std::cell::Cell::new(0);
        let per_block;
        {
            let mut pass =
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("forward"), timestamp_writes: None });
            let mut dispatch = |kernel: &wgpu::ComputePipeline, group: &wgpu::BindGroup, x: usize, y: usize| {
                pass.set_pipeline(kernel);
                pass.set_bind_group(0, group, &[]);
                pass.dispatch_workgroups(x as u32, y as u32, 1);
                n.set(n.get() + 1);
            };
            let quads = |cols: usize| cols.div_ceil(256);
            let tiles = |cols: usize| cols.div_ceil(64);
            if embed {
                for chunk in &self.embed {
                    dispatch(&k.embed.pipeline, &chunk.group, (c / 4).div_ceil(64), rows);
                }
            }
            let before_blocks = n.get();
            for l in &self.layers[layers.clone()] {
                if tiled {
                    dispatch(&k.layernorm.pipeline, &l.ln_1, rows, 1);
                    dispatch(&k.tiled.pipeline, &l.qkv_tiled, tiles(3 * c), tiles(rows));
                    if prefill_attention {
                        dispatch(&k.attention_prefill, &l.attention, heads, rows.div_ceil(16));
                    } else {
                        dispatch(&k.attention.pipeline, &l.attention, heads, rows);
                    }
                    dispatch(&k.tiled.pipeline, &l.proj, tiles(c), tiles(rows));
                    dispatch(&k.layernorm.pipeline, &l.ln_2, rows, 1);
                    dispatch(&k.tiled.pipeline, &l.fc_tiled, tiles(inner), tiles(rows));
                    dispatch(&k.tiled.pipeline, &l.proj2, tiles(c), tiles(rows));
                } else {
                    dispatch(&k.matvec.pipeline, &l.qkv, quads(3 * c), rows);
                    dispatch(&k.attention.pipeline, &l.attention, heads, rows);
                    dispatch(&k.matvec.pipeline, &l.proj, quads(c), rows);
                    dispatch(&k.matvec.pipeline, &l.fc, quads(inner), rows);
                    dispatch(&k.matvec.pipeline, &l.proj2, quads(c), rows);
                }
            }
            per_block = (n.get() - before_blocks) / layers.len().max(1);
            if logit_rows > 0 {
                dispatch(&k.layernorm.pipeline, &self.ln_f, logit_rows, 1);
                for chunk in &self.lm_head {
                    dispatch(&k.lm_head.pipeline, &chunk.group, (chunk.v_count as usize).div_ceil(64), logit_rows);
                }
                match pick {
                    Pick::Greedy => dispatch(&k.argmax.pipeline, &self.argmax, 1, 1),
                    Pick::Sample => dispatch(&k.sample.pipeline, &self.sample, 1, 1),
                    Pick::Nothing => {}
                }
            }
        }
        self.last = StepStats { dispatches: n.get(), per_block, submits: 1 };
        enc
    }

    /// Appends `ids` to the context and runs them; returns logits (and attention maps on request).
    pub async fn forward(&mut self, ids: &[u32], opts: GpuForward) -> Result<GpuOutputs, GpuError> {
        let footprint = self.footprint;
        self.forward_unexplained(ids, opts).await.map_err(|e| footprint.explain(e))
    }

    async fn forward_unexplained(&mut self, ids: &[u32], opts: GpuForward) -> Result<GpuOutputs, GpuError> {
        self.validate(ids)?;
        self.gpu.check()?;
        let v = self.config.vocab_size;
        let chunk = if opts.all_logits { self.logit_rows } else { self.chunk_rows };
        let past0 = self.pos;
        let total = past0 + ids.len();
        let mut out = GpuOutputs::default();
        if opts.attention {
            out.attention = vec![vec![0.0; self.config.n_head * ids.len() * total]; self.config.n_layer];
        }
        let pieces: Vec<&[u32]> = ids.chunks(chunk).collect();
        let mut submits = 0;
        let mut dispatches = 0;
        for (i, piece) in pieces.iter().enumerate() {
            let last = i + 1 == pieces.len();
            let logit_rows = if opts.all_logits {
                piece.len()
            } else if last {
                1
            } else {
                0
            };
            if opts.attention {
                // Layer by layer, reading each layer's probabilities before the next overwrites them.
                for l in 0..self.config.n_layer {
                    let enc = self.encode(piece, 0, Pick::Nothing, l..l + 1, l == 0, true);
                    dispatches += self.last.dispatches;
                    self.gpu.queue.submit([enc.finish()]);
                    submits += 1;
                    self.read_attention(piece.len(), past0, i * chunk, total, &mut out.attention[l]).await?;
                }
                if logit_rows > 0 {
                    let enc = self.encode(piece, logit_rows, Pick::Nothing, 0..0, false, false);
                    dispatches += self.last.dispatches;
                    self.gpu.queue.submit([enc.finish()]);
                    submits += 1;
                }
            } else {
                let n_layer = self.config.n_layer;
                let enc = self.encode(piece, logit_rows, Pick::Nothing, 0..n_layer, true, false);
                dispatches += self.last.dispatches;
                self.gpu.queue.submit([enc.finish()]);
                submits += 1;
            }
            if logit_rows > 0 {
                let bytes = self.gpu.read(&self.logits, &self.staging, (logit_rows * v * 4) as u64).await?;
                out.logits.extend(floats(&bytes));
            }
            self.pos += piece.len();
        }
        self.last = StepStats { dispatches, submits, ..self.last };
        Ok(out)
    }

    /// Appends `ids` and returns the greedy next token, computed on the device: one command
    /// buffer, 4 bytes read back.
    pub async fn next_greedy(&mut self, ids: &[u32]) -> Result<u32, GpuError> {
        self.next(ids, Pick::Greedy).await
    }

    /// Appends `ids` and samples the next token on the device (`shaders/sample.wgsl`, the CPU
    /// sampler's definition; `draw` numbers the draw in the seed's stream). Greedy settings use
    /// the argmax kernel.
    pub async fn next_token(&mut self, ids: &[u32], params: &SamplingParams, draw: u32) -> Result<u32, GpuError> {
        if params.temperature == 0.0 {
            if params.repetition_penalty != 1.0 {
                // Callers that want it read the logits back and use the CPU sampler.
                return Err(GpuError::Unsupported("greedy decoding with a repetition penalty on the device".into()));
            }
            return self.next(ids, Pick::Greedy).await;
        }
        let words = [
            params.temperature.to_bits(),
            params.top_k.min(u32::MAX as usize) as u32,
            params.top_p.to_bits(),
            params.repetition_penalty.to_bits(),
            params.seed as u32,
            (params.seed >> 32) as u32,
            draw,
            0,
        ];
        self.gpu.queue.write_buffer(&self.sampling, 0, &words_bytes(&words));
        self.next(ids, Pick::Sample).await
    }

    async fn next(&mut self, ids: &[u32], pick: Pick) -> Result<u32, GpuError> {
        let footprint = self.footprint;
        self.next_unexplained(ids, pick).await.map_err(|e| footprint.explain(e))
    }

    async fn next_unexplained(&mut self, ids: &[u32], pick: Pick) -> Result<u32, GpuError> {
        self.validate(ids)?;
        self.gpu.check()?;
        let n_layer = self.config.n_layer;
        let n_pieces = ids.len().div_ceil(self.chunk_rows);
        let mut submits = 0;
        let mut dispatches = 0;
        for (i, piece) in ids.chunks(self.chunk_rows).enumerate() {
            let last = i + 1 == n_pieces;
            let mut enc =
                self.encode(piece, usize::from(last), if last { pick } else { Pick::Nothing }, 0..n_layer, true, false);
            dispatches += self.last.dispatches;
            if last {
                enc.copy_buffer_to_buffer(&self.token, 0, &self.staging, 0, 4);
            }
            self.gpu.queue.submit([enc.finish()]);
            submits += 1;
            self.pos += piece.len();
        }
        let bytes = self.gpu.read_staging(&self.staging, 4).await?;
        self.last = StepStats { dispatches, submits, ..self.last };
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// Reads `[rows, n_head, t_max]` probabilities and stores them as `[n_head, new, total]`.
    async fn read_attention(
        &self,
        rows: usize,
        past0: usize,
        row0: usize,
        total: usize,
        dst: &mut [f32],
    ) -> Result<(), GpuError> {
        let (heads, t_max) = (self.config.n_head, self.config.n_positions);
        let bytes = self.gpu.read(&self.probs, &self.staging, (rows * heads * t_max * 4) as u64).await?;
        let p: Vec<f32> = floats(&bytes).collect();
        let new = dst.len() / heads / total;
        for r in 0..rows {
            let visible = past0 + row0 + r + 1;
            for h in 0..heads {
                let src = &p[(r * heads + h) * t_max..][..visible];
                let d = &mut dst[(h * new + row0 + r) * total..][..total];
                d[..visible].copy_from_slice(src);
                d[visible..].fill(0.0);
            }
        }
        Ok(())
    }
}

fn words_bytes(w: &[u32]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn floats(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// A matrix in the device format: f32 little-endian, or f16 pairs packed into u32 (element 2i
/// in the low half, as `unpack2x16float` reads it).
fn encode(name: &str, data: &[f32], format: WeightFormat) -> Result<Vec<u8>, GpuError> {
    match format {
        WeightFormat::F32 => Ok(data.iter().flat_map(|x| x.to_le_bytes()).collect()),
        WeightFormat::F16 => {
            let mut out = Vec::with_capacity(data.len() * 2);
            for &x in data {
                let h = half::f16::from_f32(x);
                if h.is_infinite() {
                    return Err(GpuError::Unsupported(format!("{name} holds {x}, beyond f16's range; load it as f32")));
                }
                out.extend(h.to_le_bytes());
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_says_what_the_model_needs() {
        let footprint = Footprint { weights: 248_000_000, scratch: 76_500_000 };
        let e = footprint.explain(GpuError::OutOfMemory("Not enough memory left".into()));
        assert_eq!(
            e.to_string(),
            "the GPU is out of memory: Not enough memory left; this model needs 324.5 MB of GPU memory \
             (248.0 MB of weights, 76.5 MB of KV cache and scratch)"
        );
        let lost = GpuError::DeviceLost("gone".into());
        assert_eq!(footprint.explain(lost.clone()), lost);
    }

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
}
