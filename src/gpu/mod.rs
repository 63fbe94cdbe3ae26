//! The WGSL engine: GPT-2 and Llama-family inference with the hand-written kernels in `shaders/`, driven by wgpu,
//! natively (Vulkan, Metal, DX12) and in the browser (WebGPU).
//!
//! Weights live on the device in f32 or in f16 packed two per `u32` (unpacked in the shaders with
//! `unpack2x16float`, so adapters without `shader-f16` run them); activations, the KV cache and
//! accumulation are f32. Everything is allocated and every pipeline compiled when the model is
//! loaded; a decode step is one command buffer.

mod bind;
mod device;
pub mod kernels;
mod layout;
mod model;
pub mod plan;
pub mod shape;
mod uniforms;
mod upload;

use thiserror::Error;

pub use device::{CopyBench, Gpu};
pub use kernels::Variant;
pub use model::GpuModel;
pub use plan::Plan;
pub use shape::{DEFAULT_MAX_CONTEXT, Shape};

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
}

impl GpuError {
    /// A stable name for the kind of failure (see [`crate::model::EngineError::kind`]).
    pub fn kind(&self) -> &'static str {
        match self {
            GpuError::NoAdapter(_) => "no-adapter",
            GpuError::TooLarge { .. } => "too-large",
            GpuError::Unsupported(_) => "unsupported",
            GpuError::DeviceLost(_) => "device-lost",
            GpuError::OutOfMemory(_) => "out-of-memory",
            GpuError::Validation(_) => "gpu-validation",
        }
    }
}

/// How matrix weights are stored on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    F32,
    /// Packed two per u32, unpacked with `unpack2x16float`.
    F16,
}

impl WeightFormat {
    /// Bytes per weight on the device.
    pub fn bytes(self) -> usize {
        match self {
            WeightFormat::F32 => 4,
            WeightFormat::F16 => 2,
        }
    }

    /// The one rule for the default: f16 when every tensor of the checkpoint is stored in 16
    /// bits (nothing is lost), else f32.
    pub fn for_stored(stored: &[crate::weights::TensorInfo]) -> Self {
        if crate::weights::stored_in_16_bits(stored) { WeightFormat::F16 } else { WeightFormat::F32 }
    }

    /// [`WeightFormat::for_stored`] of a loaded checkpoint.
    pub fn for_weights(weights: &crate::weights::ModelWeights) -> Self {
        Self::for_stored(&weights.stored)
    }
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
    /// Weight storage; default: [`WeightFormat::for_weights`].
    pub format: Option<WeightFormat>,
    /// Kernel variant; default: chosen from the adapter type.
    pub variant: Option<Variant>,
    /// Read f16 weights as WGSL `f16` when the device has `shader-f16` (default: yes); else
    /// unpack them from u32 pairs, which every adapter runs.
    pub native_f16: Option<bool>,
    /// KV-cache positions to allocate for a model whose own limit is larger (the Llama family;
    /// default [`DEFAULT_MAX_CONTEXT`]). GPT-2's learned position table is always held whole.
    pub max_context: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::TensorInfo;

    fn info(name: &str, dtype: &str) -> TensorInfo {
        TensorInfo { name: name.into(), dtype: dtype.into(), shape: vec![4], bytes: 8 }
    }

    #[test]
    fn weights_are_kept_in_f16_only_when_every_tensor_was_16_bit() {
        // The page used to look at the first tensor alone: an f16 wte then chose f16 for a file
        // whose other tensors are f32, while the CLI chose f32. One rule now, over all of them.
        let mixed = [info("h.0.attn.c_attn.weight", "F16"), info("wte.weight", "F32")];
        assert_eq!(WeightFormat::for_stored(&mixed), WeightFormat::F32);
        assert_eq!(WeightFormat::for_stored(&[info("a", "F16"), info("b", "BF16")]), WeightFormat::F16);
        assert_eq!(WeightFormat::for_stored(&[]), WeightFormat::F32);
    }
}
