//! The WGSL kernels in `shaders/` (one per file), their bindings and uniform blocks, and their
//! pipelines, compiled once at load.
//!
//! Each kernel's bindings are declared once, here, by `bindings!`: the struct the engine fills
//! to make a bind group, the bind group layout and the WGSL `@binding` declarations the shader
//! is compiled with all come from that one list, so their order cannot disagree. A shader file
//! holds its header (math, layout, dispatch) and its code; [`compose`] puts in front of it the
//! uniform blocks (`uniforms.rs`), the declarations, `shaders/prelude.wgsl` and, for
//! kernels that read weights, the loader `w4` of the weight format.

use super::WeightFormat;
use super::plan::{MAX_HEAD_DIM, MAX_PREFILL_HEAD_DIM, MAX_STAGED};
use super::uniforms::{
    AttentionDims, CopyDims, EmbedDims, Epilogue, HeadDims, LinearDims, NormDims, QkNormDims, Sampling, Step, VocabDims,
};
use crate::quant::GgmlType;

/// How a binding is used.
#[derive(Clone, Copy)]
pub enum Slot {
    Uniform,
    Read,
    ReadWrite,
}

/// Defines a kernel's bindings, in binding order: a struct of resources with `entries()`, the
/// layout's [`Slot`]s, and the WGSL declarations (`WEIGHT_ARRAY` is the weight format's array type).
macro_rules! bindings {
    ($(#[$meta:meta])* $name:ident { $($field:ident: $slot:ident $wgsl:literal),* $(,)? }) => {
        $(#[$meta])*
        pub struct $name<'a> {
            $(pub $field: wgpu::BindingResource<'a>,)*
        }

        impl<'a> $name<'a> {
            pub const SLOTS: &'static [Slot] = &[$(Slot::$slot),*];

            /// `@group(0) @binding(i) var<…> field: type;` for each field, in order.
            pub fn wgsl() -> String {
                declarations(&[$((stringify!($field), Slot::$slot, $wgsl)),*])
            }

            pub fn entries(self) -> Vec<wgpu::BindGroupEntry<'a>> {
                let resources = [$(self.$field),*];
                resources
                    .into_iter()
                    .enumerate()
                    .map(|(i, resource)| wgpu::BindGroupEntry { binding: i as u32, resource })
                    .collect()
            }
        }
    };
}

fn declarations(list: &[(&str, Slot, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, slot, ty)) in list.iter().enumerate() {
        let space = match slot {
            Slot::Uniform => "uniform",
            Slot::Read => "storage, read",
            Slot::ReadWrite => "storage, read_write",
        };
        out += &format!("@group(0) @binding({i}) var<{space}> {name}: {ty};\n");
    }
    out
}

bindings! {
    /// matvec.wgsl and matmul_tiled.wgsl (unused parts bound to whatever fits: `ln_*` when no
    /// norm is fused, the caches outside the `q | k | v` epilogue). `ln_b_or_rope` is LayerNorm's
    /// shift, or for RMSNorm, which has none, the rotary table of the `QkvRope` epilogue (a
    /// ninth storage binding would pass WebGPU's guaranteed 8 per stage).
    LinearBindings {
        step: Uniform "Step",
        dims: Uniform "Dims",
        x: Read "array<f32>",
        w: Read "WEIGHT_ARRAY",
        bias: Read "array<f32>",
        ln_g: Read "array<f32>",
        ln_b_or_rope: Read "array<f32>",
        out: ReadWrite "array<f32>",
        k_cache: ReadWrite "array<f32>",
        v_cache: ReadWrite "array<f32>",
    }
}

bindings! {
    /// attention.wgsl and attention_prefill.wgsl.
    AttentionBindings {
        step: Uniform "Step",
        dims: Uniform "Dims",
        q: Read "array<f32>",
        k_cache: Read "array<f32>",
        v_cache: Read "array<f32>",
        out: ReadWrite "array<f32>",
        probs: ReadWrite "array<f32>",
    }
}

bindings! {
    /// qk_norm_rope.wgsl.
    QkNormBindings {
        step: Uniform "Step",
        dims: Uniform "Dims",
        q: ReadWrite "array<f32>",
        k_cache: ReadWrite "array<f32>",
        q_norm: Read "array<f32>",
        k_norm: Read "array<f32>",
        rope: Read "array<vec2<f32>>",
    }
}

bindings! {
    /// layernorm.wgsl.
    NormBindings {
        step: Uniform "Step",
        dims: Uniform "Dims",
        x: Read "array<f32>",
        g: Read "array<f32>",
        b: Read "array<f32>",
        out: ReadWrite "array<f32>",
    }
}

bindings! {
    /// embed.wgsl.
    EmbedBindings {
        step: Uniform "Step",
        dims: Uniform "Dims",
        ids: Read "array<u32>",
        w: Read "WEIGHT_ARRAY",
        wpe: Read "array<f32>",
        x: ReadWrite "array<f32>",
        seen: ReadWrite "array<u32>",
    }
}

bindings! {
    /// lm_head.wgsl.
    HeadBindings {
        step: Uniform "Step",
        dims: Uniform "Dims",
        h: Read "array<vec4<f32>>",
        w: Read "WEIGHT_ARRAY",
        logits: ReadWrite "array<f32>",
    }
}

bindings! {
    /// argmax.wgsl.
    ArgmaxBindings {
        step: Uniform "Step",
        dims: Uniform "Dims",
        logits: Read "array<f32>",
        token: ReadWrite "array<u32>",
    }
}

bindings! {
    /// sample.wgsl.
    SampleBindings {
        step: Uniform "Step",
        dims: Uniform "Dims",
        params: Uniform "Sampling",
        logits: Read "array<f32>",
        seen: Read "array<u32>",
        scores: ReadWrite "array<f32>",
        token: ReadWrite "array<u32>",
    }
}

bindings! {
    /// copy.wgsl.
    CopyBindings {
        dims: Uniform "Dims",
        src: Read "array<vec4<f32>>",
        dst: ReadWrite "array<vec4<f32>>",
    }
}

/// Which matmul kernels to use; chosen per adapter (see [`Variant::for_adapter`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Real GPUs: matvec with the K dimension split over 4 threads, tiled GEMM for prefill.
    Gpu,
    /// CPU implementations (SwiftShader, lavapipe), where barriers and workgroup memory are
    /// expensive: matvec without a K split, and matvec (one row per workgroup row) for prefill.
    Software,
}

impl Variant {
    pub fn for_adapter(software: bool) -> Self {
        if software { Variant::Software } else { Variant::Gpu }
    }

    /// matvec.wgsl's `KSPLIT` override: threads that share one column's K sum.
    fn ksplit(self) -> f64 {
        match self {
            Variant::Gpu => 4.0,
            Variant::Software => 1.0,
        }
    }
}

pub struct Kernel {
    pub layout: wgpu::BindGroupLayout,
    pub pipeline: wgpu::ComputePipeline,
}

/// matvec and the tiled GEMM compiled for one block type.
pub struct BlockKernels {
    pub ty: GgmlType,
    pub matvec: wgpu::ComputePipeline,
    pub tiled: wgpu::ComputePipeline,
}

pub struct Kernels {
    pub variant: Variant,
    /// f16 weights are read as WGSL `f16` (else unpacked from u32 pairs).
    pub native_f16: bool,
    /// For matrices in floats (f32, or f16 where the model is).
    pub matvec: Kernel,
    /// Same bind group layout as `matvec`.
    pub tiled: Kernel,
    /// For matrices in GGML blocks: matvec and the tiled GEMM of each block type the model holds
    /// (same bind group layout as `matvec`).
    pub blocks: Vec<BlockKernels>,
    pub attention: Kernel,
    /// Same bind group layout as `attention`.
    pub attention_prefill: wgpu::ComputePipeline,
    pub layernorm: Kernel,
    pub qk_norm: Kernel,
    pub embed: Kernel,
    pub lm_head: Kernel,
    pub argmax: Kernel,
    pub sample: Kernel,
}

/// What every kernel may use (`gelu_tanh`); `compose` adds the [`Epilogue`] constants.
const PRELUDE: &str = include_str!("../../shaders/prelude.wgsl");
/// The epilogue matvec and the tiled GEMM share.
const LINEAR_EPILOGUE: &str = include_str!("../../shaders/linear_epilogue.wgsl");

/// The matrix kernels' loaders, by weight format: `w_kn4(k, n)` (W[k, n .. n + 4], the tiled
/// GEMM's load) and matvec's inner sum `column_sums`.
const MATVEC_FLOATS: &str = include_str!("../../shaders/matvec_floats.wgsl");
const MATVEC_BLOCKS: &str = include_str!("../../shaders/matvec_blocks.wgsl");
const BLOCKS: &str = include_str!("../../shaders/blocks.wgsl");
const TILED_BLOCKS: &str = include_str!("../../shaders/tiled_blocks.wgsl");
const TABLE_BLOCKS: &str = include_str!("../../shaders/table_blocks.wgsl");
const Q8_0_CODES: &str = include_str!("../../shaders/q8_0.wgsl");
const Q4_0_CODES: &str = include_str!("../../shaders/q4_0.wgsl");
const Q5_0_CODES: &str = include_str!("../../shaders/q5_0.wgsl");
const Q4_K_BLOCKS: &str = include_str!("../../shaders/q4_k.wgsl");
const Q6_K_BLOCKS: &str = include_str!("../../shaders/q6_k.wgsl");

/// A block type's interface for the readers (blocks.wgsl): its codes and, for the formats of
/// one scale per 32 values, where the scales are (blocks.wgsl itself).
fn block_codes(ty: GgmlType) -> String {
    match ty {
        GgmlType::Q4K => Q4_K_BLOCKS.to_string(),
        GgmlType::Q6K => Q6_K_BLOCKS.to_string(),
        GgmlType::Q4_0 => format!("{Q4_0_CODES}{BLOCKS}"),
        GgmlType::Q5_0 => format!("{Q5_0_CODES}{BLOCKS}"),
        _ => format!("{Q8_0_CODES}{BLOCKS}"),
    }
}

/// What a matrix kernel needs to read weights in floats (`None`) or blocks of `ty`: `w_kn4` for
/// the tiled GEMM, `column_sums` for matvec.
fn linear_loaders(blocks: Option<GgmlType>, matvec: bool) -> String {
    match (blocks, matvec) {
        (None, true) => MATVEC_FLOATS.to_string(),
        (None, false) => "fn w_kn4(k: u32, n: u32) -> vec4<f32> { return w4((k * dims.n + n) / 4u); }\n".to_string(),
        (Some(ty), true) => block_codes(ty) + MATVEC_BLOCKS,
        (Some(ty), false) => block_codes(ty) + TILED_BLOCKS,
    }
}

/// What embed.wgsl and lm_head.wgsl need beyond `compose`'s float `w4`: a block table's `w4`.
fn table_loader(fmt: WeightFormat) -> String {
    fmt.blocks().map(|ty| block_codes(ty) + TABLE_BLOCKS).unwrap_or_default()
}

/// A kernel's full WGSL: `enable f16;` where weights are read natively, its uniform blocks, its
/// binding declarations, the prelude, the size limits the plan checks (`MAX_*`, from
/// [`super::plan`]), for kernels that read weights (`weights` = Some) the loader `w4(i)` (four
/// consecutive weights as f32) of a float format or the `array<u32>` of a block format, then
/// `body`.
pub fn compose(body: &str, uniforms: &[String], bindings: &str, weights: Option<(WeightFormat, bool)>) -> String {
    let (array, load) = match weights {
        None | Some((WeightFormat::F32, _)) => ("array<vec4<f32>>", Some("w[i]")),
        Some((WeightFormat::F16, false)) => {
            ("array<vec2<u32>>", Some("vec4<f32>(unpack2x16float(w[i].x), unpack2x16float(w[i].y))"))
        }
        Some((WeightFormat::F16, true)) => ("array<vec4<f16>>", Some("vec4<f32>(w[i])")),
        Some((_, _)) => ("array<u32>", None),
    };
    let mut out = String::new();
    if weights == Some((WeightFormat::F16, true)) {
        out += "enable f16;\n";
    }
    for u in uniforms {
        out += u;
    }
    out += &bindings.replace("WEIGHT_ARRAY", array);
    out += PRELUDE;
    for (name, value) in [
        ("EPILOGUE_PLAIN", Epilogue::Plain),
        ("EPILOGUE_GELU", Epilogue::Gelu),
        ("EPILOGUE_RESIDUAL", Epilogue::Residual),
        ("EPILOGUE_QKV_APPEND", Epilogue::QkvAppend),
        ("EPILOGUE_QKV_ROPE", Epilogue::QkvRope),
        ("EPILOGUE_SWIGLU", Epilogue::SwiGlu),
    ] {
        out += &format!("const {name}: u32 = {}u;\n", value as u32);
    }
    for (name, value) in
        [("MAX_STAGED", MAX_STAGED), ("MAX_HEAD_DIM", MAX_HEAD_DIM), ("MAX_PREFILL_HEAD_DIM", MAX_PREFILL_HEAD_DIM)]
    {
        out += &format!("const {name}: u32 = {value}u;\n");
    }
    if let (Some(_), Some(load)) = (weights, load) {
        out += &format!("fn w4(i: u32) -> vec4<f32> {{ return {load}; }}\n");
    }
    out + body
}

pub fn layout(device: &wgpu::Device, label: &str, slots: &[Slot]) -> wgpu::BindGroupLayout {
    let entries: Vec<wgpu::BindGroupLayoutEntry> = slots
        .iter()
        .enumerate()
        .map(|(i, slot)| wgpu::BindGroupLayoutEntry {
            binding: i as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: match slot {
                Slot::Uniform => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                Slot::Read | Slot::ReadWrite => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: matches!(slot, Slot::Read) },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
            },
            count: None,
        })
        .collect();
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(label), entries: &entries })
}

pub fn pipeline(
    device: &wgpu::Device,
    label: &str,
    wgsl: &str,
    layout: &wgpu::BindGroupLayout,
    constants: &[(&str, f64)],
) -> wgpu::ComputePipeline {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(wgsl.into()),
    });
    let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(label),
        bind_group_layouts: &[Some(layout)],
        immediate_size: 0,
    });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(label),
        layout: Some(&pl),
        module: &module,
        entry_point: Some("main"),
        compilation_options: wgpu::PipelineCompilationOptions { constants, ..Default::default() },
        cache: None,
    })
}

fn kernel(device: &wgpu::Device, label: &str, wgsl: &str, slots: &[Slot], constants: &[(&str, f64)]) -> Kernel {
    let layout = layout(device, label, slots);
    let pipeline = pipeline(device, label, wgsl, &layout, constants);
    Kernel { layout, pipeline }
}

impl Kernels {
    /// `native_f16`: the device has `SHADER_F16` and f16 weights are read natively.
    /// `fmt`: the matrices' format (its `float()` for matrices not in blocks); `blocks`: the
    /// block types the matrices are in; `tables`: the embedding's and the head's format.
    pub fn new(
        device: &wgpu::Device,
        fmt: WeightFormat,
        blocks: &[GgmlType],
        tables: WeightFormat,
        variant: Variant,
        native_f16: bool,
    ) -> Self {
        let float = fmt.float();
        let native_f16 = native_f16 && float == WeightFormat::F16;
        let table_format = tables;
        let tables = Some((tables, native_f16 && tables == WeightFormat::F16));
        let step = Step::wgsl("Step");
        let linear = |body: &str, matvec: bool, ty: Option<GgmlType>| {
            let body = format!("{LINEAR_EPILOGUE}{}{body}", linear_loaders(ty, matvec));
            let weights = match ty {
                Some(ty) => (WeightFormat::of_blocks(ty).expect("a block type the kernels read"), false),
                None => (float, native_f16),
            };
            compose(&body, &[step.clone(), LinearDims::wgsl("Dims")], &LinearBindings::wgsl(), Some(weights))
        };
        const MATVEC: &str = include_str!("../../shaders/matvec.wgsl");
        const TILED: &str = include_str!("../../shaders/matmul_tiled.wgsl");
        let ksplit = [("KSPLIT", variant.ksplit())];
        let matvec = kernel(device, "matvec", &linear(MATVEC, true, None), LinearBindings::SLOTS, &ksplit);
        let tiled = Kernel {
            pipeline: pipeline(device, "matmul_tiled", &linear(TILED, false, None), &matvec.layout, &[]),
            layout: matvec.layout.clone(),
        };
        let blocks = blocks
            .iter()
            .map(|&ty| {
                let mv = pipeline(device, "matvec", &linear(MATVEC, true, Some(ty)), &matvec.layout, &ksplit);
                let tl = pipeline(device, "matmul_tiled", &linear(TILED, false, Some(ty)), &matvec.layout, &[]);
                BlockKernels { ty, matvec: mv, tiled: tl }
            })
            .collect();
        let attention_source =
            |body: &str| compose(body, &[step.clone(), AttentionDims::wgsl("Dims")], &AttentionBindings::wgsl(), None);
        let attention = kernel(
            device,
            "attention",
            &attention_source(include_str!("../../shaders/attention.wgsl")),
            AttentionBindings::SLOTS,
            &[],
        );
        let attention_prefill = pipeline(
            device,
            "attention_prefill",
            &attention_source(include_str!("../../shaders/attention_prefill.wgsl")),
            &attention.layout,
            &[],
        );
        // A kernel with the step block, its own uniform block(s) and its bindings.
        let simple = |label: &str, body: &str, dims: String, bindings: String, slots: &[Slot], weights| {
            kernel(device, label, &compose(body, &[step.clone(), dims], &bindings, weights), slots, &[])
        };
        Kernels {
            variant,
            native_f16,
            matvec,
            tiled,
            blocks,
            attention,
            attention_prefill,
            layernorm: simple(
                "layernorm",
                include_str!("../../shaders/layernorm.wgsl"),
                NormDims::wgsl("Dims"),
                NormBindings::wgsl(),
                NormBindings::SLOTS,
                None,
            ),
            qk_norm: simple(
                "qk_norm_rope",
                include_str!("../../shaders/qk_norm_rope.wgsl"),
                QkNormDims::wgsl("Dims"),
                QkNormBindings::wgsl(),
                QkNormBindings::SLOTS,
                None,
            ),
            embed: simple(
                "embed",
                &(table_loader(table_format) + include_str!("../../shaders/embed.wgsl")),
                EmbedDims::wgsl("Dims"),
                EmbedBindings::wgsl(),
                EmbedBindings::SLOTS,
                tables,
            ),
            lm_head: simple(
                "lm_head",
                &(table_loader(table_format) + include_str!("../../shaders/lm_head.wgsl")),
                HeadDims::wgsl("Dims"),
                HeadBindings::wgsl(),
                HeadBindings::SLOTS,
                tables,
            ),
            argmax: simple(
                "argmax",
                include_str!("../../shaders/argmax.wgsl"),
                VocabDims::wgsl("Dims"),
                ArgmaxBindings::wgsl(),
                ArgmaxBindings::SLOTS,
                None,
            ),
            sample: simple(
                "sample",
                include_str!("../../shaders/sample.wgsl"),
                VocabDims::wgsl("Dims") + &Sampling::wgsl("Sampling"),
                SampleBindings::wgsl(),
                SampleBindings::SLOTS,
                None,
            ),
        }
    }
}

impl Kernels {
    /// matvec for a matrix in floats (`None`) or blocks of `ty`.
    pub fn matvec_for(&self, blocks: Option<GgmlType>) -> &wgpu::ComputePipeline {
        self.block(blocks).map_or(&self.matvec.pipeline, |b| &b.matvec)
    }

    /// The tiled GEMM for a matrix in floats (`None`) or blocks of `ty`.
    pub fn tiled_for(&self, blocks: Option<GgmlType>) -> &wgpu::ComputePipeline {
        self.block(blocks).map_or(&self.tiled.pipeline, |b| &b.tiled)
    }

    fn block(&self, blocks: Option<GgmlType>) -> Option<&BlockKernels> {
        let ty = blocks?;
        Some(self.blocks.iter().find(|b| b.ty == ty).expect("kernels compiled for every block type uploaded"))
    }
}

/// copy.wgsl, for the bandwidth reference of benchmarks.
pub fn copy_kernel(device: &wgpu::Device) -> Kernel {
    let source =
        compose(include_str!("../../shaders/copy.wgsl"), &[CopyDims::wgsl("Dims")], &CopyBindings::wgsl(), None);
    kernel(device, "copy", &source, CopyBindings::SLOTS, &[])
}
