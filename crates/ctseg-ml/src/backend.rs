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
    /// The best device this machine has: CUDA when built in and present, else a
    /// hardware GPU through wgpu, else the CPU. A software Vulkan device (lavapipe,
    /// llvmpipe, SwiftShader) is never chosen automatically: the CPU backend is
    /// hundreds of times faster than it.
    Auto,
    /// Any Vulkan/Metal/DX12 GPU through wgpu (software Vulkan such as lavapipe too).
    Wgpu,
    /// NVIDIA GPUs through CUDA (needs the `cuda` cargo feature).
    Cuda,
    /// The CPU, through Burn's `flex` backend (multi-threaded, SIMD).
    Cpu,
}

impl BackendKind {
    /// Whether this build can open the backend (`cuda` needs the `cuda` feature).
    pub fn is_compiled_in(self) -> bool {
        match self {
            BackendKind::Cuda => cfg!(feature = "cuda"),
            BackendKind::Auto | BackendKind::Wgpu | BackendKind::Cpu => true,
        }
    }

    /// The flag spelling: `wgpu`, `cuda` or `cpu`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Auto => "auto",
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
            "auto" => Ok(BackendKind::Auto),
            "wgpu" => Ok(BackendKind::Wgpu),
            "cuda" => Ok(BackendKind::Cuda),
            "cpu" | "flex" => Ok(BackendKind::Cpu),
            other => Err(format!(
                "unknown backend '{other}' (expected auto, wgpu, cuda or cpu)"
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
    /// The device computes wrong results (checked against exact values).
    #[error(
        "backend '{kind}' computes wrong results ({detail}); training on it would produce garbage — use --backend cpu or another GPU/driver"
    )]
    WrongResults {
        /// The backend.
        kind: BackendKind,
        /// What differed.
        detail: String,
    },
}

/// An opened device and a description of the adapter behind it.
#[derive(Debug, Clone)]
pub struct SelectedDevice {
    /// The backend that runs (never [`BackendKind::Auto`]: what it chose).
    pub kind: BackendKind,
    /// The Burn device (without autodiff; call `.autodiff()` for training).
    pub device: Device,
    /// Adapter name as the driver reports it, e.g. `NVIDIA H100 PCIe` or `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub adapter: String,
    /// `GPU`, `software` (a CPU rasterizer such as lavapipe) or `CPU`.
    pub adapter_type: &'static str,
    /// How the automatic choice was made (`None` when a backend was asked for).
    pub chosen_because: Option<String>,
}

impl SelectedDevice {
    /// One line for logs and progress output.
    pub fn describe(&self) -> String {
        let mut line = format!("{} — {} ({})", self.kind, self.adapter, self.adapter_type);
        if let Some(why) = &self.chosen_because {
            line.push_str(&format!("; chosen automatically: {why}"));
        }
        line
    }
}

/// Where compiled GPU kernels and autotune results are kept: `$CTSEG_KERNEL_CACHE`,
/// else the user cache folder (`~/.cache/ctseg/kernels`). Without this, Burn's cache
/// lands in `target/environment` under the nearest Cargo project above the working
/// directory.
pub fn kernel_cache_dir() -> std::path::PathBuf {
    ctseg_core::paths::kernel_cache_dir()
}

/// Point Burn's kernel cache at [`kernel_cache_dir`] (once per process).
pub fn init_kernel_cache() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let dir = kernel_cache_dir();
        if std::fs::create_dir_all(&dir).is_ok() {
            cubecl_environment::environment::set_root(dir);
        }
    });
}

/// Open the device of `kind`, probe it with a tiny computation and describe its
/// adapter. [`BackendKind::Auto`] tries CUDA (when built in), then a hardware GPU
/// through wgpu, then the CPU, and says why it chose what it did.
pub fn select(kind: BackendKind) -> Result<SelectedDevice, BackendError> {
    if kind == BackendKind::Auto {
        return select_auto();
    }
    init_kernel_cache();
    let device = match kind {
        BackendKind::Cpu => Device::flex(),
        BackendKind::Wgpu => Device::wgpu(DeviceKind::DefaultDevice),
        BackendKind::Cuda => cuda_device()?,
        BackendKind::Auto => unreachable_auto()?,
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
        chosen_because: None,
    })
}

/// [`BackendKind::Auto`] is resolved before a device is opened; reaching it there is
/// a bug, reported as an error rather than a panic.
fn unreachable_auto() -> Result<Device, BackendError> {
    Err(BackendError::NoDevice {
        kind: BackendKind::Auto,
        detail: "the automatic choice must be resolved first".into(),
    })
}

/// The automatic choice: CUDA, else a hardware GPU through wgpu, else the CPU.
fn select_auto() -> Result<SelectedDevice, BackendError> {
    let mut passed_over = Vec::new();
    if BackendKind::Cuda.is_compiled_in() {
        match select(BackendKind::Cuda) {
            Ok(mut d) => {
                d.chosen_because = Some("a CUDA GPU".into());
                return Ok(d);
            }
            Err(e) => passed_over.push(format!("no CUDA device ({e})")),
        }
    }
    match select(BackendKind::Wgpu) {
        Ok(mut d) if d.adapter_type == "GPU" => {
            d.chosen_because = Some("a hardware GPU".into());
            return Ok(d);
        }
        Ok(d) => passed_over.push(format!(
            "the only Vulkan device, {}, is a software renderer (far slower than the CPU backend)",
            d.adapter
        )),
        Err(_) => passed_over.push("no GPU through wgpu".into()),
    }
    let mut d = select(BackendKind::Cpu)?;
    d.chosen_because = Some(passed_over.join("; "));
    Ok(d)
}

/// Check that `device` computes BatchNorm training statistics correctly over a
/// full-size activation (batch 8 × 256 × 256 = 524288 values per channel, as in a
/// training step of the design's model) by comparing with exact values.
/// A backend that fails would train garbage, so training refuses it.
pub fn check_batch_norm_statistics(kind: BackendKind, device: &Device) -> Result<(), BackendError> {
    let (n, c, h, w) = (8usize, 2usize, 256usize, 256usize);
    // Deterministic values with a known mean and variance per channel.
    let values: Vec<f32> = (0..n * c * h * w)
        .map(|i| {
            let channel = (i / (h * w)) % c;
            let v = ((i * 7919) % 1000) as f32 / 1000.0;
            v * (channel as f32 + 1.0) + channel as f32 * 10.0
        })
        .collect();
    let mut sums = vec![0f64; c];
    let mut squares = vec![0f64; c];
    for (i, &v) in values.iter().enumerate() {
        let channel = (i / (h * w)) % c;
        sums[channel] += v as f64;
        squares[channel] += (v as f64) * (v as f64);
    }
    let count = (n * h * w) as f64;
    let x = Tensor::<4>::from_data(burn::tensor::TensorData::new(values, [n, c, h, w]), device);
    let out = burn::tensor::module::batch_norm_train(
        x,
        Tensor::ones([c], device),
        Tensor::zeros([c], device),
        1e-5,
    );
    let means: Vec<f32> = out.mean.into_data().iter::<f32>().collect();
    let vars: Vec<f32> = out.variance.into_data().iter::<f32>().collect();
    for ch in 0..c {
        let mean = sums[ch] / count;
        let var = squares[ch] / count - mean * mean;
        let (got_mean, got_var) = (
            means.get(ch).copied().unwrap_or(f32::NAN) as f64,
            vars.get(ch).copied().unwrap_or(f32::NAN) as f64,
        );
        // Unbiased vs biased variance differ by 1/count: far below the tolerance.
        let ok = (got_mean - mean).abs() <= 1e-3 * mean.abs().max(1.0)
            && (got_var - var).abs() <= 1e-2 * var.abs().max(1e-3);
        if !ok {
            return Err(BackendError::WrongResults {
                kind,
                detail: format!(
                    "BatchNorm statistics over {count} values: mean {got_mean:.5} (exact {mean:.5}), variance {got_var:.5} (exact {var:.5})"
                ),
            });
        }
    }
    Ok(())
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
            let detail = format!(
                "device initialisation panicked: {}",
                ctseg_core::error::panic_message(payload.as_ref())
            );
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

    #[test]
    fn cpu_batch_norm_statistics_are_right() {
        check_batch_norm_statistics(BackendKind::Cpu, &Device::flex()).expect("flex is exact");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        let err = select(BackendKind::Cuda).unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
