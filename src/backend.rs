//! Run-time choice of the compute device: `wgpu` (default; Vulkan/Metal/DX12),
//! `cuda` (behind the `cuda` cargo feature) or `cpu` (Burn's `flex` backend).
//!
//! Burn 0.22 has no backend type parameter: a [`Device`] value decides where tensors
//! live. [`select`] opens the device, runs a small probe so that a missing adapter is a
//! clear error here rather than a panic deep inside a training step, and says which
//! adapter was chosen.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Which compute backend to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Any Vulkan/Metal/DX12 GPU through wgpu (software Vulkan such as lavapipe too).
    Wgpu,
    /// NVIDIA GPUs through CUDA (needs the `cuda` cargo feature).
    Cuda,
    /// The CPU, through Burn's `flex` backend (multi-threaded, SIMD).
    Cpu,
}

impl BackendKind {
    /// The flag spelling: `wgpu`, `cuda` or `cpu`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
            BackendKind::Cpu => "cpu",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "wgpu" => Ok(BackendKind::Wgpu),
            "cuda" => Ok(BackendKind::Cuda),
            "cpu" | "flex" => Ok(BackendKind::Cpu),
            other => Err(format!(
                "unknown backend '{other}' (expected wgpu, cuda or cpu)"
            )),
        }
    }
}

/// Errors opening a device.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend was not compiled into this binary.
    #[error("backend '{0}' is not available in this build: {1}")]
    NotCompiled(BackendKind, &'static str),
    /// The backend is compiled in but no usable adapter/device answered.
    #[error("backend '{kind}' could not open a device: {detail}")]
    NoDevice {
        /// The requested backend.
        kind: BackendKind,
        /// What went wrong.
        detail: String,
    },
}

/// An opened device and a description of the adapter behind it.
#[derive(Debug, Clone)]
pub struct SelectedDevice {
    /// The backend asked for.
    pub kind: BackendKind,
    /// The Burn device (without autodiff; call `.autodiff()` for training).
    pub device: Device,
    /// Adapter name as the driver reports it, e.g. `NVIDIA H100 PCIe` or `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub adapter: String,
    /// `GPU`, `software` (a CPU rasterizer such as lavapipe) or `CPU`.
    pub adapter_type: &'static str,
}

impl SelectedDevice {
    /// One line for logs and progress output.
    pub fn describe(&self) -> String {
        format!("{} — {} ({})", self.kind, self.adapter, self.adapter_type)
    }
}

/// Open the device of `kind`, probe it with a tiny computation and describe its adapter.
pub fn select(kind: BackendKind) -> Result<SelectedDevice, BackendError> {
    let device = match kind {
        BackendKind::Cpu => Device::flex(),
        BackendKind::Wgpu => Device::wgpu(DeviceKind::DefaultDevice),
        BackendKind::Cuda => cuda_device()?,
    };
    probe(kind, &device)?;
    let (adapter, adapter_type) = match kind {
        BackendKind::Cpu => (
            format!(
                "Burn flex CPU backend, {} threads",
                std::thread::available_parallelism().map_or(1, |n| n.get())
            ),
            "CPU",
        ),
        _ => match device.identity() {
            Some(identity) => {
                let software = identity.physical.is_none();
                (identity.name, if software { "software" } else { "GPU" })
            }
            None => ("unknown adapter".to_string(), "GPU"),
        },
    };
    Ok(SelectedDevice {
        kind,
        device,
        adapter,
        adapter_type,
    })
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Result<Device, BackendError> {
    Ok(Device::cuda(0))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<Device, BackendError> {
    Err(BackendError::NotCompiled(
        BackendKind::Cuda,
        "rebuild with `cargo build --release --features cuda` (needs an NVIDIA driver), or use --backend wgpu",
    ))
}

/// Run a small computation and read it back; device initialisation failures (no
/// adapter, driver errors) surface as panics inside Burn, which become an error here.
fn probe(kind: BackendKind, device: &Device) -> Result<(), BackendError> {
    let device = device.clone();
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = catch_unwind(AssertUnwindSafe(move || {
        let t = Tensor::<1>::from_floats([1.0f32, 2.0, 3.0, 4.0], &device);
        t.sum().into_scalar::<f32>()
    }));
    std::panic::set_hook(previous_hook);
    match outcome {
        Ok(sum) if (sum - 10.0).abs() < 1e-4 => Ok(()),
        Ok(sum) => Err(BackendError::NoDevice {
            kind,
            detail: format!("the probe computation returned {sum} instead of 10"),
        }),
        Err(payload) => {
            let detail = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "device initialisation panicked".to_string());
            Err(BackendError::NoDevice { kind, detail })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_backend_names() {
        assert_eq!("wgpu".parse::<BackendKind>(), Ok(BackendKind::Wgpu));
        assert_eq!("CPU".parse::<BackendKind>(), Ok(BackendKind::Cpu));
        assert_eq!("flex".parse::<BackendKind>(), Ok(BackendKind::Cpu));
        assert!("tpu".parse::<BackendKind>().is_err());
    }

    #[test]
    fn cpu_device_opens_and_describes_itself() {
        let selected = select(BackendKind::Cpu).expect("cpu backend");
        assert_eq!(selected.adapter_type, "CPU");
        assert!(selected.describe().starts_with("cpu"));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        let err = select(BackendKind::Cuda).unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
