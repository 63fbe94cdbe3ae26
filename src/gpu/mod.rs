//! The WGSL engine: GPT-2 and Llama-family inference with the hand-written kernels in `shaders/`, driven by wgpu,
//! natively (Vulkan, Metal, DX12) and in the browser (WebGPU).
//!
//! Weights live on the device in f32, in f16 packed two per `u32` (unpacked in the shaders with
//! `unpack2x16float`, so adapters without `shader-f16` run them), or in GGML's blocks (Q8_0,
//! Q4_0, Q5_0, Q4_K, Q6_K) decoded inside the matrix kernels; activations, the KV
//! cache and accumulation are f32. Everything is allocated and every pipeline compiled when the model is
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
    /// GGML's Q8_0 (32 int8 and one f16 scale per block), decoded inside the matrix kernels; the
    /// embedding and the head stay blocks where stored so, else f32.
    Q8_0,
    /// GGML's Q4_0 (32 4-bit codes and one f16 scale per block), likewise.
    Q4_0,
    /// GGML's Q5_0 (32 5-bit codes and one f16 scale per block), read as stored: wgpt does not
    /// quantize to it (llama.cpp's Q4_K_M files hold it where rows are not whole super-blocks).
    Q5_0,
    /// GGML's Q4_K (super-blocks of 256: 4-bit codes, a 6-bit scale and minimum per 32), likewise;
    /// every matrix's rows must be whole super-blocks.
    Q4K,
    /// GGML's Q6_K (super-blocks of 256: 6-bit codes, an 8-bit scale per 16), read as stored.
    Q6K,
    /// Each matrix as the file stores it, where the types differ from matrix to matrix (as in
    /// llama.cpp's Q4_K_M files: Q4_K, Q6_K, Q5_0, Q8_0): every matrix whose parts are all in
    /// one block type the kernels read stays in it; any other (q | k | v of two types, say) is
    /// decoded to f32.
    Mixed,
}

/// The block formats, in the order they are named.
const BLOCK_FORMATS: [WeightFormat; 5] =
    [WeightFormat::Q8_0, WeightFormat::Q4_0, WeightFormat::Q5_0, WeightFormat::Q4K, WeightFormat::Q6K];

impl WeightFormat {
    /// The GGML block type of a block format.
    pub fn blocks(self) -> Option<crate::quant::GgmlType> {
        use crate::quant::GgmlType;
        match self {
            WeightFormat::F32 | WeightFormat::F16 | WeightFormat::Mixed => None,
            WeightFormat::Q8_0 => Some(GgmlType::Q8_0),
            WeightFormat::Q4_0 => Some(GgmlType::Q4_0),
            WeightFormat::Q5_0 => Some(GgmlType::Q5_0),
            WeightFormat::Q4K => Some(GgmlType::Q4K),
            WeightFormat::Q6K => Some(GgmlType::Q6K),
        }
    }

    /// The block format of GGML type `ty`, where the kernels read one.
    pub fn of_blocks(ty: crate::quant::GgmlType) -> Option<Self> {
        BLOCK_FORMATS.into_iter().find(|f| f.blocks() == Some(ty))
    }

    /// The format of the matrices that are not blocks: f16 where asked, else f32.
    pub fn float(self) -> Self {
        if self == WeightFormat::F16 { self } else { WeightFormat::F32 }
    }

    /// Device bytes of a `[k, n]` block matrix in this format (u64: a stranger's config may
    /// overflow usize on wasm32): a block format's bytes as stored.
    pub fn matrix_bytes(self, k: usize, n: usize) -> u64 {
        let values = (k as u64).saturating_mul(n as u64);
        match (self, self.blocks()) {
            (WeightFormat::F16, _) => values.saturating_mul(2),
            // Q6_K's 210-byte super-blocks are padded to whole words on the device (the others'
            // codes and scales are packed apart: no padding but the last word's).
            (_, Some(crate::quant::GgmlType::Q6K)) => (values / 256).saturating_mul(212),
            (_, Some(ty)) => (values / ty.block_len()).saturating_mul(ty.block_bytes()),
            // A mixed model's matrix may be decoded to f32: counted so.
            _ => values.saturating_mul(4),
        }
    }

    /// The format of the embedding and the head beside matrices in `self`: where the matrices are
    /// blocks, the embedding's own blocks of a type the kernels read (an untied head stored in
    /// the same type), else f32; float formats hold them as the matrices. `embed`, `head`: GGML's
    /// names of the stored types (`Q8_0`, `F32`, …).
    pub fn tables(self, embed: &str, head: Option<&str>) -> Self {
        if matches!(self, WeightFormat::F32 | WeightFormat::F16) {
            return self;
        }
        match Self::block_named(embed) {
            Some(format) if head.is_none_or(|h| h == embed) => format,
            _ => WeightFormat::F32,
        }
    }

    /// The block format GGML calls `name` (`Q8_0`, `Q4_K`, …).
    fn block_named(name: &str) -> Option<Self> {
        BLOCK_FORMATS.into_iter().find(|f| f.blocks().is_some_and(|t| t.name() == name))
    }

    /// [`WeightFormat::tables`] from a checkpoint's stored tensors (the page's fit check).
    pub fn tables_for_stored(self, stored: &[crate::weights::TensorInfo]) -> Self {
        let dtype = |name: &str| stored.iter().find(|t| t.name == name).map(|t| t.dtype.as_str());
        let embed = dtype("model.embed_tokens.weight").or(dtype("wte.weight"));
        self.tables(embed.unwrap_or("F32"), dtype("lm_head.weight"))
    }

    /// The one rule for the default: the block format when every block matrix (a Llama-family
    /// projection, a GPT-2 Conv1D) is stored in it (the kernels read them as they are);
    /// [`WeightFormat::Mixed`] when they are in several block types the kernels read; f16 when
    /// every matrix of the checkpoint is stored in 16 bits (nothing is lost); else f32.
    pub fn for_stored(stored: &[crate::weights::TensorInfo]) -> Self {
        let block_matrix = |t: &&crate::weights::TensorInfo| {
            (t.name.starts_with("model.layers.") && t.name.ends_with("_proj.weight"))
                || (t.name.starts_with("h.") && t.name.ends_with(".weight") && t.shape.len() == 2)
        };
        let types = stored.iter().filter(block_matrix).map(|t| Self::block_named(&t.dtype).and_then(|f| f.blocks()));
        Self::for_matrices(types, stored)
    }

    /// The default for a loaded Llama-family model: its projections' block format when they are
    /// all held in one the kernels read (a GGUF file's, or quantized at load), else as
    /// [`WeightFormat::for_stored`].
    pub fn for_llama(weights: &crate::llama::LlamaWeights) -> Self {
        let types = weights.layers.iter().flat_map(|l| l.projections().map(|p| p.weight.block_type()));
        Self::for_matrices(types, &weights.stored)
    }

    /// [`WeightFormat::for_llama`] of a loaded GPT-2 model.
    pub fn for_weights(weights: &crate::weights::ModelWeights) -> Self {
        let types = weights.blocks.iter().flat_map(|b| b.linears().map(|l| l.weight.block_type()));
        Self::for_matrices(types, &weights.stored)
    }

    /// The rule of [`WeightFormat::for_stored`] over the block matrices' types (None: floats).
    fn for_matrices(
        mut types: impl Iterator<Item = Option<crate::quant::GgmlType>>,
        stored: &[crate::weights::TensorInfo],
    ) -> Self {
        let first = types.next().flatten();
        let mut readable = first.and_then(Self::of_blocks).is_some();
        let mut one = true;
        for t in types {
            one &= t == first;
            readable |= t.and_then(Self::of_blocks).is_some();
        }
        match first.and_then(Self::of_blocks) {
            Some(format) if one => format,
            _ if readable => WeightFormat::Mixed,
            _ if matrices_in_16_bits(stored) => WeightFormat::F16,
            _ => WeightFormat::F32,
        }
    }
}

/// Every matrix (2-D tensor) stored in f16 or bf16. Vectors (norms, biases) and GPT-2's position
/// table are held in f32 on the device whatever the file stores, so an f32 norm or position table
/// (as GGUF files keep them) does not matter.
fn matrices_in_16_bits(stored: &[crate::weights::TensorInfo]) -> bool {
    let mut matrices = stored.iter().filter(|t| t.shape.len() == 2 && t.name != "wpe.weight").peekable();
    matrices.peek().is_some() && matrices.all(|t| t.dtype == "F16" || t.dtype == "BF16")
}

impl std::fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WeightFormat::F32 => "f32",
            WeightFormat::F16 => "f16",
            WeightFormat::Q8_0 => "q8_0",
            WeightFormat::Q4_0 => "q4_0",
            WeightFormat::Q5_0 => "q5_0",
            WeightFormat::Q4K => "q4_k",
            WeightFormat::Q6K => "q6_k",
            WeightFormat::Mixed => "blocks as stored",
        })
    }
}

impl std::str::FromStr for WeightFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(WeightFormat::F32),
            "f16" => Ok(WeightFormat::F16),
            "q8_0" => Ok(WeightFormat::Q8_0),
            "q4_0" => Ok(WeightFormat::Q4_0),
            "q4_k" => Ok(WeightFormat::Q4K),
            other => Err(format!("unknown weight format {other:?} (f32, f16, q8_0, q4_0 or q4_k)")),
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
        TensorInfo { name: name.into(), dtype: dtype.into(), shape: vec![4, 4], bytes: 32 }
    }

    #[test]
    fn weights_are_kept_in_f16_only_when_every_tensor_was_16_bit() {
        // The page used to look at the first tensor alone: an f16 wte then chose f16 for a file
        // whose other tensors are f32, while the CLI chose f32. One rule now, over all of them.
        let mixed = [info("h.0.attn.c_attn.weight", "F16"), info("wte.weight", "F32")];
        assert_eq!(WeightFormat::for_stored(&mixed), WeightFormat::F32);
        assert_eq!(WeightFormat::for_stored(&[info("a", "F16"), info("b", "BF16")]), WeightFormat::F16);
        assert_eq!(WeightFormat::for_stored(&[]), WeightFormat::F32);
        // GGUF keeps norms in F32 beside F16 matrices: vectors are f32 on the device anyway.
        let norm = TensorInfo { shape: vec![4], ..info("model.norm.weight", "F32") };
        assert_eq!(WeightFormat::for_stored(&[info("a", "F16"), norm]), WeightFormat::F16);
    }

    #[test]
    fn block_weights_are_kept_when_every_projection_is_in_one_block_format() {
        let q4 = [
            info("model.layers.0.self_attn.q_proj.weight", "Q4_0"),
            info("model.layers.0.mlp.down_proj.weight", "Q4_0"),
            info("model.embed_tokens.weight", "Q8_0"),
            info("model.norm.weight", "F32"),
        ];
        assert_eq!(WeightFormat::for_stored(&q4), WeightFormat::Q4_0);
        // A Q4_K_M file mixes types: each matrix read in its own.
        let mixed = [
            info("model.layers.0.self_attn.q_proj.weight", "Q4_K"),
            info("model.layers.0.mlp.down_proj.weight", "Q6_K"),
        ];
        assert_eq!(WeightFormat::for_stored(&mixed), WeightFormat::Mixed);
        // Q6_K's 210-byte super-blocks take 212 on the device; a mixed model counts f32.
        assert_eq!(WeightFormat::Q6K.matrix_bytes(256, 4), 4 * 212);
        assert_eq!(WeightFormat::Mixed.matrix_bytes(256, 4), 256 * 4 * 4);
        // GPT-2's Conv1D matrices and embedding likewise (a vector is not a block matrix).
        let gpt2 = [info("h.0.attn.c_proj.weight", "Q4_0"), info("wte.weight", "Q8_0"), info("ln_f.weight", "F32")];
        assert_eq!(WeightFormat::for_stored(&gpt2), WeightFormat::Q4_0);
        assert_eq!(WeightFormat::Q4_0.tables_for_stored(&gpt2), WeightFormat::Q8_0);
        assert_eq!(WeightFormat::Q4_0.matrix_bytes(64, 96), 64 * 96 / 32 * 18);
        // The embedding and head: the stored blocks where the matrices are blocks, else f32.
        assert_eq!(WeightFormat::for_stored(&q4).tables_for_stored(&q4), WeightFormat::Q8_0);
        assert_eq!(WeightFormat::Q4_0.tables("Q8_0", Some("Q4_0")), WeightFormat::F32);
        assert_eq!(WeightFormat::Q8_0.tables("F32", None), WeightFormat::F32);
        assert_eq!(WeightFormat::F16.tables("Q8_0", None), WeightFormat::F16);
        assert_eq!("q8_0".parse::<WeightFormat>().unwrap().to_string(), "q8_0");
    }
}
