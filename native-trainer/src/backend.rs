//! The compute backend, chosen at run time from those compiled in: `cpu` (burn's `flex`, always
//! built), `wgpu` (feature `wgpu`; Vulkan/Metal/DX12) and `cuda` (feature `cuda`; NVIDIA, the
//! driver's libcuda loaded at run time). burn panics when a GPU backend finds no device, so the
//! device is probed first and its absence is an error that says what to do.

use anyhow::bail;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    Cpu,
    Wgpu,
    Cuda,
}

pub type Cpu = burn::backend::Flex;
#[cfg(feature = "wgpu")]
pub type Wgpu = burn::backend::Wgpu;
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;

/// Errors unless this binary has the backend and the machine has its device.
pub fn check(kind: BackendKind) -> anyhow::Result<()> {
    match kind {
        BackendKind::Cpu => Ok(()),
        BackendKind::Wgpu if cfg!(feature = "wgpu") => probe_wgpu(),
        BackendKind::Cuda if cfg!(feature = "cuda") => probe_cuda(),
        other => {
            let name = format!("{other:?}").to_lowercase();
            bail!(
                "this wgpt-train was built without the {name} backend: rebuild with `cargo build --release -p wgpt-train --features {name}`"
            )
        }
    }
}

fn probe_wgpu() -> anyhow::Result<()> {
    match pollster::block_on(wgpt::gpu::Gpu::new()) {
        Ok(_) => Ok(()),
        Err(e) => bail!("--backend wgpu: no usable GPU adapter ({e}); use --backend cpu"),
    }
}

/// libcuda comes with the NVIDIA driver; without it cudarc would panic inside burn.
fn probe_cuda() -> anyhow::Result<()> {
    let mut dirs: Vec<String> =
        std::env::var("LD_LIBRARY_PATH").unwrap_or_default().split(':').map(String::from).collect();
    dirs.extend(
        [
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib64",
            "/usr/lib",
            "/usr/local/cuda/lib64",
            "/usr/local/cuda/compat",
            "/usr/lib/wsl/lib",
        ]
        .map(String::from),
    );
    let found = dirs.iter().filter(|d| !d.is_empty()).any(|d| {
        let d = std::path::Path::new(d);
        d.join("libcuda.so.1").exists() || d.join("libcuda.so").exists()
    });
    if !found {
        bail!(
            "--backend cuda: no NVIDIA driver found (libcuda.so.1 is not in LD_LIBRARY_PATH or the system library folders); use --backend cpu or wgpu"
        );
    }
    Ok(())
}

/// Runs `$body` with `$B` bound to the autodiff backend of `$kind` and `$device` to its device.
#[macro_export]
macro_rules! with_backend {
    ($kind:expr, |$B:ident, $device:ident| $body:expr) => {{
        $crate::backend::check($kind)?;
        match $kind {
            #[cfg(feature = "wgpu")]
            $crate::backend::BackendKind::Wgpu => {
                type $B = burn::backend::Autodiff<$crate::backend::Wgpu>;
                let $device = Default::default();
                $body
            }
            #[cfg(feature = "cuda")]
            $crate::backend::BackendKind::Cuda => {
                type $B = burn::backend::Autodiff<$crate::backend::Cuda>;
                let $device = Default::default();
                $body
            }
            _ => {
                type $B = burn::backend::Autodiff<$crate::backend::Cpu>;
                let $device = Default::default();
                $body
            }
        }
    }};
}
