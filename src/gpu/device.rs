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
}

impl Gpu {
    /// The default adapter (high performance), natively any backend, on the web WebGPU.
    pub async fn new() -> Result<Self, GpuError> {
        #[cfg(target_arch = "wasm32")]
        if !webgpu_available() {
            return Err(GpuError::NoAdapter("this browser has no WebGPU (navigator.gpu is missing)".into()));
        }
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if cfg!(target_arch = "wasm32") {
            desc.backends = wgpu::Backends::BROWSER_WEBGPU;
        }
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        Self::from_adapter(adapter).await
    }

    pub async fn from_adapter(adapter: wgpu::Adapter) -> Result<Self, GpuError> {
        let info = adapter.get_info();
        // Ask for everything the adapter offers: models need the large storage bindings.
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wgpt"),
                required_limits: limits.clone(),
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
        Ok(Gpu { device, queue, info, limits, failure })
    }

    /// True for CPU implementations (lavapipe, SwiftShader): there, workgroup barriers are
    /// expensive and the barrier-light kernel variants are faster.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
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

fn record(slot: &Mutex<Option<GpuError>>, e: GpuError) {
    if let Ok(mut s) = slot.lock() {
        s.get_or_insert(e);
    }
}

#[cfg(target_arch = "wasm32")]
fn webgpu_available() -> bool {
    // wgpu's WebGPU instance panics without `navigator.gpu`: look before creating it.
    let global = js_sys::global();
    let navigator = js_sys::Reflect::get(&global, &"navigator".into()).unwrap_or(wasm_bindgen::JsValue::UNDEFINED);
    !navigator.is_undefined() && js_sys::Reflect::get(&navigator, &"gpu".into()).is_ok_and(|g| !g.is_undefined())
}
