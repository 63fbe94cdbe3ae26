//! The compute backend, chosen at run time from those compiled in: `cpu` (burn's `flex`, always
//! built), `wgpu` (feature `wgpu`; Vulkan/Metal/DX12) and `cuda` (feature `cuda`; NVIDIA, the
//! driver's libcuda loaded at run time). burn panics when a GPU backend finds no device, so the
//! device is probed first and its absence is an error that says what to do.
//!
//! `--devices N` asks for data-parallel training on the first N devices of the backend (CUDA
//! ordinals 0..N, wgpu's discrete GPUs 0..N; see `train::train_loop`). The CPU backend has one
//! device; there N replicas share it, which runs the same data-parallel path (tests use it to check
//! that path against the one-device loop) but is no faster.

use anyhow::bail;
use burn::prelude::DeviceOps;
use burn::tensor::backend::{Backend, DeviceId};

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

/// The devices a run trains on: the backend's default device alone, or the first `n` of its kind.
pub fn devices<B: Backend>(kind: BackendKind, n: usize) -> anyhow::Result<Vec<B::Device>> {
    if n == 0 {
        bail!("--devices must be at least 1");
    }
    if n == 1 || kind == BackendKind::Cpu {
        return Ok(vec![B::Device::default(); n]);
    }
    // wgpu's default device stands for "the best one"; several are taken from its discrete GPUs.
    let type_id = match kind {
        BackendKind::Wgpu => 0,
        _ => B::Device::default().to_id().type_id,
    };
    let have = B::device_count(type_id);
    if have < n {
        let what = if kind == BackendKind::Wgpu { "discrete GPU(s) that wgpu" } else { "GPU(s) that CUDA" };
        bail!("--devices {n}: this machine has {have} {what} can use; lower --devices");
    }
    Ok((0..n).map(|i| B::Device::from_id(DeviceId::new(type_id, i as u16))).collect())
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

/// Runs `$body` with `$B` bound to the autodiff backend of `$kind` and `$device` to its device,
/// or, in the second form, `$devices` to a `Vec` of the first `$n` devices (see [`devices`]).
#[macro_export]
macro_rules! with_backend {
    ($kind:expr, |$B:ident, $device:ident| $body:expr) => {
        $crate::with_backend!($kind, 1, |$B, devices| {
            let $device = devices[0].clone();
            $body
        })
    };
    ($kind:expr, $n:expr, |$B:ident, $devices:ident| $body:expr) => {{
        $crate::backend::check($kind)?;
        match $kind {
            #[cfg(feature = "wgpu")]
            $crate::backend::BackendKind::Wgpu => {
                type $B = burn::backend::Autodiff<$crate::backend::Wgpu>;
                let $devices = $crate::backend::devices::<$B>($kind, $n)?;
                $body
            }
            #[cfg(feature = "cuda")]
            $crate::backend::BackendKind::Cuda => {
                type $B = burn::backend::Autodiff<$crate::backend::Cuda>;
                let $devices = $crate::backend::devices::<$B>($kind, $n)?;
                $body
            }
            _ => {
                type $B = burn::backend::Autodiff<$crate::backend::Cpu>;
                let $devices = $crate::backend::devices::<$B>($kind, $n)?;
                $body
            }
        }
    }};
}
