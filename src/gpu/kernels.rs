//! The WGSL kernels in `shaders/` (one per file), their bind group layouts, and their pipelines,
//! compiled once at load.

use super::WeightFormat;

/// How a binding is used, in binding order.
#[derive(Clone, Copy)]
pub enum Slot {
    Uniform,
    Read,
    ReadWrite,
}

pub const LINEAR_SLOTS: [Slot; 10] = {
    use Slot::*;
    [Uniform, Uniform, Read, Read, Read, Read, Read, ReadWrite, ReadWrite, ReadWrite]
};
pub const ATTENTION_SLOTS: [Slot; 7] = {
    use Slot::*;
    [Uniform, Uniform, Read, Read, Read, ReadWrite, ReadWrite]
};
pub const LAYERNORM_SLOTS: [Slot; 6] = {
    use Slot::*;
    [Uniform, Uniform, Read, Read, Read, ReadWrite]
};
pub const EMBED_SLOTS: [Slot; 7] = {
    use Slot::*;
    [Uniform, Uniform, Read, Read, Read, ReadWrite, ReadWrite]
};
pub const SAMPLE_SLOTS: [Slot; 7] = {
    use Slot::*;
    [Uniform, Uniform, Uniform, Read, Read, ReadWrite, ReadWrite]
};
pub const LM_HEAD_SLOTS: [Slot; 5] = {
    use Slot::*;
    [Uniform, Uniform, Read, Read, ReadWrite]
};
pub const ARGMAX_SLOTS: [Slot; 4] = {
    use Slot::*;
    [Uniform, Uniform, Read, ReadWrite]
};
pub const COPY_SLOTS: [Slot; 3] = {
    use Slot::*;
    [Uniform, Read, ReadWrite]
};

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
}

pub struct Kernel {
    pub layout: wgpu::BindGroupLayout,
    pub pipeline: wgpu::ComputePipeline,
}

pub struct Kernels {
    pub variant: Variant,
    /// f16 weights are read as WGSL `f16` (else unpacked from u32 pairs).
    pub native_f16: bool,
    pub matvec: Kernel,
    /// Same bind group layout as `matvec`.
    pub tiled: Kernel,
    pub attention: Kernel,
    /// Same bind group layout as `attention`.
    pub attention_prefill: wgpu::ComputePipeline,
    pub layernorm: Kernel,
    pub embed: Kernel,
    pub lm_head: Kernel,
    pub argmax: Kernel,
    pub sample: Kernel,
}

/// Binds the weight loader `w4(i)` (four consecutive elements) for the storage format.
/// `native_f16` reads the same bytes as `array<vec4<f16>>` (adapters with `shader-f16`).
fn source(text: &str, fmt: WeightFormat, native_f16: bool) -> String {
    let (array, load) = match (fmt, native_f16) {
        (WeightFormat::F32, _) => ("array<vec4<f32>>", "w[i]"),
        (WeightFormat::F16, false) => {
            ("array<vec2<u32>>", "vec4<f32>(unpack2x16float(w[i].x), unpack2x16float(w[i].y))")
        }
        (WeightFormat::F16, true) => ("array<vec4<f16>>", "vec4<f32>(w[i])"),
    };
    let body = text.replace("WEIGHT_ARRAY", array).replace("WEIGHT_LOAD", load);
    if native_f16 && fmt == WeightFormat::F16 { format!("enable f16;\n{body}") } else { body }
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
    pub fn new(device: &wgpu::Device, fmt: WeightFormat, variant: Variant, native_f16: bool) -> Self {
        let source = |text: &str, fmt| source(text, fmt, native_f16);
        let ksplit = match variant {
            Variant::Gpu => 4.0,
            Variant::Software => 1.0,
        };
        let matvec = kernel(
            device,
            "matvec",
            &source(include_str!("../../shaders/matvec.wgsl"), fmt),
            &LINEAR_SLOTS,
            &[("KSPLIT", ksplit)],
        );
        let tiled = Kernel {
            pipeline: pipeline(
                device,
                "matmul_tiled",
                &source(include_str!("../../shaders/matmul_tiled.wgsl"), fmt),
                &matvec.layout,
                &[],
            ),
            layout: matvec.layout.clone(),
        };
        let attention =
            kernel(device, "attention", include_str!("../../shaders/attention.wgsl"), &ATTENTION_SLOTS, &[]);
        let attention_prefill = pipeline(
            device,
            "attention_prefill",
            include_str!("../../shaders/attention_prefill.wgsl"),
            &attention.layout,
            &[],
        );
        Kernels {
            variant,
            native_f16: native_f16 && fmt == WeightFormat::F16,
            matvec,
            tiled,
            attention,
            attention_prefill,
            layernorm: kernel(device, "layernorm", include_str!("../../shaders/layernorm.wgsl"), &LAYERNORM_SLOTS, &[]),
            embed: kernel(device, "embed", &source(include_str!("../../shaders/embed.wgsl"), fmt), &EMBED_SLOTS, &[]),
            lm_head: kernel(
                device,
                "lm_head",
                &source(include_str!("../../shaders/lm_head.wgsl"), fmt),
                &LM_HEAD_SLOTS,
                &[],
            ),
            argmax: kernel(device, "argmax", include_str!("../../shaders/argmax.wgsl"), &ARGMAX_SLOTS, &[]),
            sample: kernel(device, "sample", include_str!("../../shaders/sample.wgsl"), &SAMPLE_SLOTS, &[]),
        }
    }
}
