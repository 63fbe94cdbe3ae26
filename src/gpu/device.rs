//! Getting a device, watching it for errors and loss, and reading buffers back asynchronously
//! (`map_async`), so the same code runs natively and on the web, where blocking is impossible.

use std::sync::{Arc, Mutex};

use super::GpuError;

/// A device with the limits the adapter offers, and a record of asynchronous failures.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    /// Set by the device-lost callback or the uncaptured-error handler.
    failure: Arc<Mutex<Option<GpuError>>>,
    /// The browser says this adapter is a fallback (software) one.
    fallback: bool,
}

impl Gpu {
    /// A device on the default adapter (high performance): natively any backend, on the web WebGPU.
    pub async fn new() -> Result<Self, GpuError> {
        let (adapter, fallback) = default_adapter().await?;
        let mut gpu = Self::from_adapter(adapter).await?;
        gpu.fallback = fallback;
        Ok(gpu)
    }

    /// The default adapter's limits and whether it is a software one, without making a device:
    /// what a fit check before loading needs.
    pub async fn adapter_limits() -> Result<(wgpu::Limits, bool), GpuError> {
        let (adapter, fallback) = default_adapter().await?;
        Ok((adapter.limits(), fallback || adapter.get_info().device_type == wgpu::DeviceType::Cpu))
    }

    pub async fn from_adapter(adapter: wgpu::Adapter) -> Result<Self, GpuError> {
        let info = adapter.get_info();
        // Ask for everything the adapter offers: models need the large storage bindings.
        let limits = adapter.limits();
        // f16 arithmetic where offered: f16 weights are then read natively (an optional fast path).
        let required_features = adapter.features() & wgpu::Features::SHADER_F16;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wgpt"),
                required_limits: limits.clone(),
                required_features,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter(format!("request_device: {e}")))?;
        let failure: Arc<Mutex<Option<GpuError>>> = Arc::default();
        let slot = failure.clone();
        device.set_device_lost_callback(move |reason, message| {
            record(&slot, GpuError::DeviceLost(format!("{reason:?}: {message}")));
        });
        let slot = failure.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let err = match e {
                wgpu::Error::OutOfMemory { .. } => GpuError::OutOfMemory(e.to_string()),
                other => GpuError::Validation(other.to_string()),
            };
            record(&slot, err);
        }));
        Ok(Gpu { device, queue, info, limits, failure, fallback: false })
    }

    /// The device can read f16 in shaders (`shader-f16`).
    pub fn has_f16(&self) -> bool {
        self.device.features().contains(wgpu::Features::SHADER_F16)
    }

    /// True for CPU implementations (lavapipe, SwiftShader): there, workgroup barriers are
    /// expensive and the barrier-light kernel variants are faster.
    pub fn is_software(&self) -> bool {
        self.fallback || self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// The first asynchronous failure since the device was made, if any.
    pub fn check(&self) -> Result<(), GpuError> {
        match self.failure.lock().map(|f| f.clone()) {
            Ok(Some(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Copies `size` bytes of `src` (a COPY_SRC buffer) into `staging` (MAP_READ | COPY_DST) in
    /// its own submission and returns them.
    pub async fn read(&self, src: &wgpu::Buffer, staging: &wgpu::Buffer, size: u64) -> Result<Vec<u8>, GpuError> {
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(src, 0, staging, 0, size);
        self.queue.submit([enc.finish()]);
        self.read_staging(staging, size).await
    }

    /// Maps the first `size` bytes of `staging` once submitted work has finished, and copies
    /// them out.
    pub async fn read_staging(&self, staging: &wgpu::Buffer, size: u64) -> Result<Vec<u8>, GpuError> {
        let slice = staging.slice(..size);
        let (tx, rx) = futures_channel::oneshot::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::DeviceLost(format!("poll: {e}")))?;
        let mapped = rx.await.map_err(|_| GpuError::DeviceLost("the readback was dropped".into()))?;
        self.check()?;
        mapped.map_err(|e| GpuError::DeviceLost(format!("map_async: {e}")))?;
        let data = slice.get_mapped_range().to_vec();
        staging.unmap();
        Ok(data)
    }
}

/// The default adapter, and whether the browser says it is a fallback (software) one.
async fn default_adapter() -> Result<(wgpu::Adapter, bool), GpuError> {
    #[cfg(target_arch = "wasm32")]
    if !webgpu_available() {
        return Err(GpuError::NoAdapter("this browser has no WebGPU (navigator.gpu is missing)".into()));
    }
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if cfg!(target_arch = "wasm32") {
        desc.backends = wgpu::Backends::BROWSER_WEBGPU;
    }
    // wgpu does not pass WebGPU's `isFallbackAdapter` on; ask the browser directly.
    #[cfg(target_arch = "wasm32")]
    let fallback = browser_adapter_is_fallback().await;
    #[cfg(not(target_arch = "wasm32"))]
    let fallback = false;
    let instance = wgpu::Instance::new(desc);
    let adapter = instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        })
        .await
        .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
    Ok((adapter, fallback))
}

/// Keeps the first failure, except that a lost device replaces the errors it caused (work
/// submitted to a device being taken away fails validation first in some browsers).
fn record(slot: &Mutex<Option<GpuError>>, e: GpuError) {
    if let Ok(mut s) = slot.lock() {
        let lost_explains = matches!(e, GpuError::DeviceLost(_)) && matches!(*s, Some(GpuError::Validation(_)));
        if s.is_none() || lost_explains {
            *s = Some(e);
        }
    }
}

/// `(await navigator.gpu.requestAdapter()).info.isFallbackAdapter` (SwiftShader says true).
#[cfg(target_arch = "wasm32")]
async fn browser_adapter_is_fallback() -> bool {
    use js_sys::{Function, Promise, Reflect};
    use wasm_bindgen::{JsCast, JsValue};
    let get = |o: &JsValue, k: &str| Reflect::get(o, &k.into()).unwrap_or(JsValue::UNDEFINED);
    let gpu = get(&get(&js_sys::global(), "navigator"), "gpu");
    let Ok(request) = get(&gpu, "requestAdapter").dyn_into::<Function>() else { return false };
    let Ok(promise) = request.call0(&gpu).and_then(|p| p.dyn_into::<Promise>()) else { return false };
    let Ok(adapter) = wasm_bindgen_futures::JsFuture::from(promise).await else { return false };
    if adapter.is_null() || adapter.is_undefined() {
        return false;
    }
    // `info.isFallbackAdapter` in current browsers, `isFallbackAdapter` on the adapter in older ones.
    get(&get(&adapter, "info"), "isFallbackAdapter")
        .as_bool()
        .or_else(|| get(&adapter, "isFallbackAdapter").as_bool())
        .unwrap_or(false)
}

#[cfg(target_arch = "wasm32")]
fn webgpu_available() -> bool {
    // wgpu's WebGPU instance panics without `navigator.gpu`: look before creating it.
    let global = js_sys::global();
    let navigator = js_sys::Reflect::get(&global, &"navigator".into()).unwrap_or(wasm_bindgen::JsValue::UNDEFINED);
    !navigator.is_undefined() && js_sys::Reflect::get(&navigator, &"gpu".into()).is_ok_and(|g| !g.is_undefined())
}

/// A plain device-to-device copy (`shaders/copy.wgsl`): its throughput is the device's own
/// memory bandwidth, measured in the same run as a benchmark.
pub struct CopyBench {
    pipeline: wgpu::ComputePipeline,
    group: wgpu::BindGroup,
    groups: (u32, u32),
    staging: wgpu::Buffer,
    src: wgpu::Buffer,
    /// Bytes read plus bytes written by one copy.
    pub bytes_moved: u64,
}

impl CopyBench {
    pub fn new(gpu: &Gpu, bytes: u64) -> Self {
        use wgpu::util::DeviceExt;
        let device = &gpu.device;
        let bytes = bytes.min(gpu.limits.max_storage_buffer_binding_size).min(gpu.limits.max_buffer_size) / 16 * 16;
        let vec4s = (bytes / 16) as u32;
        let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let buffer = |label| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: storage,
                mapped_at_creation: false,
            })
        };
        let (src, dst) = (buffer("copy src"), buffer("copy dst"));
        let workgroups = vec4s.div_ceil(256);
        let x = workgroups.min(gpu.limits.max_compute_workgroups_per_dimension);
        let groups = (x, workgroups.div_ceil(x));
        let dims = super::uniforms::CopyDims { n: vec4s, row: x * 256, _pad: [0; 2] };
        let dims = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("copy dims"),
            contents: bytemuck::bytes_of(&dims),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let kernel = super::kernels::copy_kernel(device);
        let bindings = super::kernels::CopyBindings {
            dims: dims.as_entire_binding(),
            src: src.as_entire_binding(),
            dst: dst.as_entire_binding(),
        };
        let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("copy"),
            layout: &kernel.layout,
            entries: &bindings.entries(),
        });
        let pipeline = kernel.pipeline;
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("copy readback"),
            size: 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        CopyBench { pipeline, group, groups, staging, src, bytes_moved: 2 * bytes }
    }

    /// Runs `reps` copies in one submission and waits for them.
    pub async fn run(&self, gpu: &Gpu, reps: u32) -> Result<(), GpuError> {
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &self.group, &[]);
            for _ in 0..reps {
                pass.dispatch_workgroups(self.groups.0, self.groups.1, 1);
            }
        }
        enc.copy_buffer_to_buffer(&self.src, 0, &self.staging, 0, 16);
        gpu.queue.submit([enc.finish()]);
        gpu.read_staging(&self.staging, 16).await.map(|_| ())
    }
}
