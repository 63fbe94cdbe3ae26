//! A model on the device — GPT-2 or the Llama family, described by one [`Shape`] — in four
//! parts: [`Plan`] (sizes and limits, checked before anything is allocated) → [`upload`]
//! (weights in the kernels' layout, and working buffers) → [`bind`] (every dispatch's bind
//! group) → [`GpuModel::encode`] (a step's dispatches into one command buffer), then the
//! [`LanguageModel`] calls that submit it and read results back.

use std::sync::Arc;

use super::bind::{BindGroups, bind};
use super::kernels::{Kernels, Variant};
use super::layout::Source;
use super::plan::Plan;
use super::shape::{DEFAULT_MAX_CONTEXT, Shape};
use super::uniforms::{Sampling, Step};
use super::upload::{Scratch, WeightBuffers, upload};
use super::{Gpu, GpuError, GpuOptions, WeightFormat};
use crate::config::GptConfig;
use crate::llama::{LlamaConfig, LlamaWeights};
use crate::model::{
    Draw, EngineError, Footprint, ForwardOptions, LanguageModel, LocalFuture, Outputs, StepStats, check_input,
    device_can_pick, pick_on_host,
};
use crate::sampler::SamplingParams;
use crate::weights::ModelWeights;

/// What the step picks on the device after the logits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pick {
    Nothing,
    Greedy,
    Sample,
}

pub struct GpuModel {
    gpu: Arc<Gpu>,
    kernels: Kernels,
    shape: Shape,
    plan: Plan,
    groups: BindGroups,
    scratch: Scratch,
    /// Held for the bind groups (which keep them alive too; this makes ownership plain).
    _weights: WeightBuffers,
    pos: usize,
    /// The ids in the KV cache, so a truncation can rebuild `seen` (the repetition penalty
    /// counts the context, as the host sampler does).
    context: Vec<u32>,
    out: Outputs,
    last: StepStats,
    footprint: Footprint,
}

impl Footprint {
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

    /// [`Footprint::explain`] for an engine error.
    fn explain_engine(&self, e: EngineError) -> EngineError {
        match e {
            EngineError::Gpu(g) => EngineError::Gpu(self.explain(g)),
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
    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    pub fn format(&self) -> WeightFormat {
        self.plan.format
    }
    /// The embedding's and the head's format.
    pub fn tables_format(&self) -> WeightFormat {
        self.plan.tables
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
        self.truncate(0);
    }
    /// Keeps the first `pos` tokens; the repetition penalty forgets the dropped ones.
    pub fn truncate(&mut self, pos: usize) {
        if pos >= self.pos {
            return;
        }
        self.pos = pos;
        self.context.truncate(pos);
        self.write_seen();
    }
    /// Sets `seen` (what the repetition penalty counts) to the tokens of the context.
    fn write_seen(&self) {
        let mut seen = vec![0u32; self.shape.vocab];
        for &id in &self.context {
            seen[id as usize] = 1;
        }
        self.gpu.queue.write_buffer(&self.scratch.seen, 0, bytemuck::cast_slice(&seen));
    }
    /// Bytes of weights on the device.
    pub fn weight_bytes(&self) -> u64 {
        self.footprint.weights
    }
    /// Everything this model allocated on the device.
    pub fn footprint(&self) -> Footprint {
        self.footprint
    }

    /// Uploads a validated GPT-2 model to `gpu`.
    pub fn on(gpu: Arc<Gpu>, config: &GptConfig, w: &ModelWeights, options: GpuOptions) -> Result<Self, GpuError> {
        let format = options.format.unwrap_or_else(|| WeightFormat::for_weights(w));
        Self::load(gpu, Shape::gpt(config)?, Source::Gpt(w), format, options)
    }

    /// Uploads a validated Llama-family model to `gpu`, with a KV cache of
    /// `options.max_context` positions (default [`DEFAULT_MAX_CONTEXT`]) or the model's own
    /// limit if smaller.
    pub fn on_llama(gpu: Arc<Gpu>, c: &LlamaConfig, w: &LlamaWeights, options: GpuOptions) -> Result<Self, GpuError> {
        let format = options.format.unwrap_or_else(|| WeightFormat::for_llama(w));
        let shape = Shape::llama(c, options.max_context.unwrap_or(DEFAULT_MAX_CONTEXT));
        Self::load(gpu, shape, Source::Llama(c, w), format, options)
    }

    /// Plan, upload, bind, then every pipeline run once.
    fn load(
        gpu: Arc<Gpu>,
        shape: Shape,
        source: Source,
        format: WeightFormat,
        options: GpuOptions,
    ) -> Result<Self, GpuError> {
        let tables = source.tables(format);
        let plan = Plan::new(&shape, format, tables, &gpu.limits)?;
        let variant = options.variant.unwrap_or_else(|| Variant::for_adapter(gpu.is_software()));
        let native_f16 = options.native_f16.unwrap_or(true) && gpu.has_f16();
        let kernels = Kernels::new(&gpu.device, format, &source.block_types(format), tables, variant, native_f16);
        let (weights, scratch, footprint) = upload(&gpu.device, &shape, source, &plan)?;
        let groups = bind(&gpu.device, &kernels, &shape, &weights, &scratch);
        gpu.check().map_err(|e| footprint.explain(e))?;
        let mut model = GpuModel {
            gpu,
            kernels,
            shape,
            plan,
            groups,
            scratch,
            _weights: weights,
            pos: 0,
            context: Vec::new(),
            out: Outputs::default(),
            last: StepStats::default(),
            footprint,
        };
        model.warm_up();
        model.gpu.check().map_err(|e| footprint.explain(e))?;
        Ok(model)
    }

    /// Runs every pipeline once (a 2-row prefill where the tiled kernels serve prefill, a 1-row
    /// step with the argmax and sampling kernels), so no driver compiles on the first token.
    fn warm_up(&mut self) {
        let n_layer = self.shape.n_layer;
        let mut steps = vec![(vec![0u32], Pick::Greedy), (vec![0u32], Pick::Sample)];
        if self.kernels.variant == Variant::Gpu && self.shape.n_ctx >= 2 {
            steps.push((vec![0, 0], Pick::Nothing));
        }
        let settings = Sampling { temperature: 1.0, top_p: 1.0, penalty: 1.0, ..Default::default() };
        self.gpu.queue.write_buffer(&self.scratch.sampling, 0, bytemuck::bytes_of(&settings));
        for (ids, pick) in steps {
            let enc = self.encode(&ids, 1, pick, 0..n_layer, true, false);
            self.gpu.queue.submit([enc.finish()]);
        }
        // The warm-up ran at position 0 and marked token 0 as seen: the context is still empty.
        self.write_seen();
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
        let (gpu, s) = (&self.gpu, &self.scratch);
        let rows = ids.len();
        let step = Step { rows: rows as u32, past: self.pos as u32, logit_rows: logit_rows as u32, _pad: [0] };
        gpu.queue.write_buffer(&s.step, 0, bytemuck::bytes_of(&step));
        if embed {
            gpu.queue.write_buffer(&s.ids, 0, bytemuck::cast_slice(ids));
        }
        let sh = &self.shape;
        let (c, heads, qkv, fc) = (sh.hidden, sh.n_head, sh.qkv_dim(), sh.fc_dim());
        let qk_heads = sh.n_head + sh.n_kv_head;
        let (k, g) = (&self.kernels, &self.groups);
        let tiled = k.variant == Variant::Gpu && rows > 1;
        // The tiled prefill attention writes no probabilities; attention maps need the row kernel.
        let prefill_attention = tiled && !maps && Plan::prefill_attention(sh);
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
                for chunk in &g.embed {
                    dispatch(&k.embed.pipeline, &chunk.group, (c / 4).div_ceil(64), rows);
                }
            }
            let before_blocks = n.get();
            for l in &g.layers[layers.clone()] {
                if tiled {
                    dispatch(&k.layernorm.pipeline, &l.ln_1, rows, 1);
                    dispatch(k.tiled_for(l.blocks.qkv), &l.qkv_tiled, tiles(qkv), tiles(rows));
                    if let Some(qk_norm) = &l.qk_norm {
                        dispatch(&k.qk_norm.pipeline, qk_norm, qk_heads, rows);
                    }
                    if prefill_attention {
                        dispatch(&k.attention_prefill, &l.attention, heads, rows.div_ceil(16));
                    } else {
                        dispatch(&k.attention.pipeline, &l.attention, heads, rows);
                    }
                    dispatch(k.tiled_for(l.blocks.attn_proj), &l.attn_proj, tiles(c), tiles(rows));
                    dispatch(&k.layernorm.pipeline, &l.ln_2, rows, 1);
                    dispatch(k.tiled_for(l.blocks.fc), &l.fc_tiled, tiles(fc), tiles(rows));
                    dispatch(k.tiled_for(l.blocks.proj), &l.proj, tiles(c), tiles(rows));
                } else {
                    dispatch(k.matvec_for(l.blocks.qkv), &l.qkv, quads(qkv), rows);
                    if let Some(qk_norm) = &l.qk_norm {
                        dispatch(&k.qk_norm.pipeline, qk_norm, qk_heads, rows);
                    }
                    dispatch(&k.attention.pipeline, &l.attention, heads, rows);
                    dispatch(k.matvec_for(l.blocks.attn_proj), &l.attn_proj, quads(c), rows);
                    dispatch(k.matvec_for(l.blocks.fc), &l.fc, quads(fc), rows);
                    dispatch(k.matvec_for(l.blocks.proj), &l.proj, quads(c), rows);
                }
            }
            per_block = (n.get() - before_blocks) / layers.len().max(1);
            if logit_rows > 0 {
                dispatch(&k.layernorm.pipeline, &g.final_norm, logit_rows, 1);
                for chunk in &g.lm_head {
                    dispatch(&k.lm_head.pipeline, &chunk.group, (chunk.rows as usize).div_ceil(64), logit_rows);
                }
                match pick {
                    Pick::Greedy => dispatch(&k.argmax.pipeline, &g.argmax, 1, 1),
                    Pick::Sample => dispatch(&k.sample.pipeline, &g.sample, 1, 1),
                    Pick::Nothing => {}
                }
            }
        }
        self.last = StepStats { dispatches: n.get(), per_block, submits: 1 };
        enc
    }

    /// Appends `ids` to the context and runs them; returns logits (and attention maps on request).
    pub async fn run(&mut self, ids: &[u32], opts: ForwardOptions) -> Result<&Outputs, EngineError> {
        let footprint = self.footprint;
        match self.run_unexplained(ids, opts).await {
            Ok(()) => Ok(&self.out),
            Err(e) => Err(footprint.explain_engine(e)),
        }
    }

    async fn run_unexplained(&mut self, ids: &[u32], opts: ForwardOptions) -> Result<(), EngineError> {
        check_input(ids, self.pos, self.shape.n_ctx, self.shape.vocab)?;
        if opts.hidden_states {
            return Err(EngineError::Unsupported("hidden states (the CPU reference returns them)".into()));
        }
        self.gpu.check()?;
        let v = self.shape.vocab;
        let chunk = if opts.all_logits { self.plan.logit_rows } else { self.plan.chunk_rows };
        let past0 = self.pos;
        let total = past0 + ids.len();
        let mut out = std::mem::take(&mut self.out);
        out.logits.clear();
        out.attention.clear();
        out.rows = if opts.all_logits { ids.len() } else { 1 };
        if opts.attention {
            out.attention = vec![vec![0.0; self.shape.n_head * ids.len() * total]; self.shape.n_layer];
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
                for l in 0..self.shape.n_layer {
                    let enc = self.encode(piece, 0, Pick::Nothing, l..l + 1, l == 0, true);
                    dispatches += self.last.dispatches;
                    self.gpu.queue.submit([enc.finish()]);
                    submits += 1;
                    let map = &mut out.attention[l];
                    self.read_attention(piece.len(), past0, i * chunk, total, map).await?;
                }
                if logit_rows > 0 {
                    let enc = self.encode(piece, logit_rows, Pick::Nothing, 0..0, false, false);
                    dispatches += self.last.dispatches;
                    self.gpu.queue.submit([enc.finish()]);
                    submits += 1;
                }
            } else {
                let n_layer = self.shape.n_layer;
                let enc = self.encode(piece, logit_rows, Pick::Nothing, 0..n_layer, true, false);
                dispatches += self.last.dispatches;
                self.gpu.queue.submit([enc.finish()]);
                submits += 1;
            }
            if logit_rows > 0 {
                let s = &self.scratch;
                let bytes = self.gpu.read(&s.logits, &s.staging, (logit_rows * v * 4) as u64).await?;
                out.logits.extend(floats(&bytes));
            }
            self.advance(piece);
        }
        self.out = out;
        self.last = StepStats { dispatches, submits, ..self.last };
        Ok(())
    }

    /// Counts `piece` as run: it is in the KV cache now.
    fn advance(&mut self, piece: &[u32]) {
        self.pos += piece.len();
        self.context.extend_from_slice(piece);
    }

    /// Appends `ids` and returns the greedy next token, computed on the device: one command
    /// buffer, 4 bytes read back.
    pub async fn next_greedy(&mut self, ids: &[u32]) -> Result<u32, EngineError> {
        self.next(ids, Pick::Greedy).await
    }

    /// Appends `ids` and samples the next token on the device (`shaders/sample.wgsl`, the CPU
    /// sampler's definition; `draw` numbers the draw in the seed's stream). Greedy settings use
    /// the argmax kernel.
    pub async fn next_token(&mut self, ids: &[u32], params: &SamplingParams, draw: u32) -> Result<u32, EngineError> {
        if !device_can_pick(params) {
            // Callers that want it read the logits back and use the host sampler.
            return Err(EngineError::Unsupported("greedy decoding with a repetition penalty on the device".into()));
        }
        if params.temperature == 0.0 {
            return self.next(ids, Pick::Greedy).await;
        }
        let settings = Sampling {
            temperature: params.temperature,
            top_k: params.top_k.min(u32::MAX as usize) as u32,
            top_p: params.top_p,
            penalty: params.repetition_penalty,
            seed_lo: params.seed as u32,
            seed_hi: (params.seed >> 32) as u32,
            draw,
            _pad: [0],
        };
        self.gpu.queue.write_buffer(&self.scratch.sampling, 0, bytemuck::bytes_of(&settings));
        self.next(ids, Pick::Sample).await
    }

    async fn next(&mut self, ids: &[u32], pick: Pick) -> Result<u32, EngineError> {
        let footprint = self.footprint;
        self.next_unexplained(ids, pick).await.map_err(|e| footprint.explain_engine(e))
    }

    async fn next_unexplained(&mut self, ids: &[u32], pick: Pick) -> Result<u32, EngineError> {
        check_input(ids, self.pos, self.shape.n_ctx, self.shape.vocab)?;
        self.gpu.check()?;
        let n_layer = self.shape.n_layer;
        let chunk_rows = self.plan.chunk_rows;
        let n_pieces = ids.len().div_ceil(chunk_rows);
        let mut submits = 0;
        let mut dispatches = 0;
        for (i, piece) in ids.chunks(chunk_rows).enumerate() {
            let last = i + 1 == n_pieces;
            let mut enc =
                self.encode(piece, usize::from(last), if last { pick } else { Pick::Nothing }, 0..n_layer, true, false);
            dispatches += self.last.dispatches;
            if last {
                enc.copy_buffer_to_buffer(&self.scratch.token, 0, &self.scratch.staging, 0, 4);
            }
            self.gpu.queue.submit([enc.finish()]);
            submits += 1;
            self.advance(piece);
        }
        let bytes = self.gpu.read_staging(&self.scratch.staging, 4).await?;
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
        let (heads, t_max) = (self.shape.n_head, self.shape.n_ctx);
        let s = &self.scratch;
        let bytes = self.gpu.read(&s.probs, &s.staging, (rows * heads * t_max * 4) as u64).await?;
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

impl LanguageModel for GpuModel {
    fn n_ctx(&self) -> usize {
        self.shape.n_ctx
    }
    fn vocab_size(&self) -> usize {
        self.shape.vocab
    }
    fn position(&self) -> usize {
        self.pos
    }
    fn truncate(&mut self, pos: usize) {
        GpuModel::truncate(self, pos);
    }
    fn forward<'a>(
        &'a mut self,
        ids: &'a [u32],
        opts: ForwardOptions,
    ) -> LocalFuture<'a, Result<&'a Outputs, EngineError>> {
        Box::pin(self.run(ids, opts))
    }
    fn next_token<'a>(&'a mut self, ids: &'a [u32], draw: Draw<'a>) -> LocalFuture<'a, Result<u32, EngineError>> {
        if !device_can_pick(draw.params) {
            return pick_on_host(self, ids, draw);
        }
        Box::pin(async move { GpuModel::next_token(self, ids, draw.params, draw.step).await })
    }
    fn backend(&self) -> &'static str {
        "gpu"
    }
    fn describe(&self) -> String {
        let info = &self.gpu.info;
        format!(
            "gpu: {} ({:?}, {:?}{}), {}, weights {}{}{}, kernels {:?}",
            info.name,
            info.device_type,
            info.backend,
            if self.gpu.is_software() { ", software" } else { "" },
            self.shape.arch,
            match self.plan.format {
                WeightFormat::Mixed => {
                    let types: Vec<&str> = self.kernels.blocks.iter().map(|b| b.ty.name()).collect();
                    format!("{} {}", types.join("+"), self.plan.format)
                }
                f => f.to_string(),
            },
            if self.plan.tables != self.plan.format {
                format!(" (embedding and head {})", self.plan.tables)
            } else {
                String::new()
            },
            if self.native_f16() { " (native shader-f16)" } else { "" },
            self.variant()
        )
    }
    fn footprint(&self) -> Footprint {
        self.footprint
    }
    fn step_stats(&self) -> Option<StepStats> {
        Some(self.last)
    }
}

fn floats(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
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
}
