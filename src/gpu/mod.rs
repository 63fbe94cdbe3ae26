//! The WGSL engine: GPT inference with the hand-written kernels in `shaders/`, driven by wgpu,
//! natively (Vulkan, Metal, DX12) and in the browser (WebGPU).
//!
//! Weights live on the device in f32 or in f16 packed two per `u32` (unpacked in the shaders with
//! `unpack2x16float`, so adapters without `shader-f16` run them); activations, the KV cache and
//! accumulation are f32. Everything is allocated and every pipeline compiled when the model is
//! loaded; a decode step is one command buffer.

mod device;
pub mod kernels;
mod model;

use thiserror::Error;

pub use device::{CopyBench, Gpu};
pub use kernels::Variant;
pub use model::{Footprint, GpuForward, GpuModel, GpuOutputs, StepStats};

use crate::cpu::EngineError;

#[derive(Debug, Clone, Error, PartialEq)]
pub enum GpuError {
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    #[error("the model does not fit this device: {what} needs {needs} bytes in one binding, the limit is {limit}")]
    TooLarge { what: String, needs: u64, limit: u64 },
    #[error("not supported by the GPU engine: {0}")]
    Unsupported(String),
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
    #[error("the GPU is out of memory: {0}")]
    OutOfMemory(String),
    #[error("GPU validation error: {0}")]
    Validation(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// How matrix weights are stored on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    F32,
    /// Packed two per u32, unpacked with `unpack2x16float`.
    F16,
}

impl std::str::FromStr for WeightFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(WeightFormat::F32),
            "f16" => Ok(WeightFormat::F16),
            other => Err(format!("unknown weight format {other:?} (f32 or f16)")),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct GpuOptions {
    /// Weight storage; default: f16 when the checkpoint is f16/bf16, else f32.
    pub format: Option<WeightFormat>,
    /// Kernel variant; default: chosen from the adapter type.
    pub variant: Option<Variant>,
    /// Read f16 weights as WGSL `f16` when the device has `shader-f16` (default: yes); else
    /// unpack them from u32 pairs, which every adapter runs.
    pub native_f16: Option<bool>,
}

/// The GPU engine behind the synchronous [`LanguageModel`](crate::generate::LanguageModel)
/// interface, for native callers (the CLI); it blocks on each step. Greedy decoding picks the
/// token on the device.
#[cfg(not(target_arch = "wasm32"))]
pub struct BlockingGpu {
    pub model: GpuModel,
    logits: Vec<f32>,
}

#[cfg(not(target_arch = "wasm32"))]
impl BlockingGpu {
    pub fn new(model: GpuModel) -> Self {
        BlockingGpu { model, logits: Vec::new() }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl crate::generate::LanguageModel for BlockingGpu {
    fn n_ctx(&self) -> usize {
        self.model.config().n_positions
    }
    fn position(&self) -> usize {
        self.model.position()
    }
    fn feed(&mut self, ids: &[u32]) -> Result<&[f32], crate::generate::GenerateError> {
        self.logits = pollster::block_on(self.model.forward(ids, GpuForward::default()))?.logits;
        Ok(&self.logits)
    }
    fn feed_and_pick(
        &mut self,
        ids: &[u32],
        sampler: &mut crate::sampler::Sampler,
        history: &[u32],
        params: &crate::sampler::SamplingParams,
        step: u32,
    ) -> Result<u32, crate::generate::GenerateError> {
        if params.temperature == 0.0 && params.repetition_penalty != 1.0 {
            // Not done on the device: read the logits back.
            let logits = self.feed(ids)?;
            return Ok(sampler.sample(logits, history, params, step));
        }
        Ok(pollster::block_on(self.model.next_token(ids, params, step))?)
    }
}
