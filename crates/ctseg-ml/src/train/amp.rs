//! Mixed-precision training (AMP): the forward and backward passes in f16 or bf16
//! ([`crate::model::UNet::forward_mixed`]) on f32 master weights, BatchNorm in f32,
//! and for f16 dynamic loss scaling with PyTorch `GradScaler`'s policy: the loss is
//! multiplied by a scale (2¹⁶ at first) before the backward pass so that small
//! gradients do not flush to zero in f16; the gradients are divided by it before
//! clipping and the update; a step whose gradients overflowed (inf/NaN) is skipped
//! and the scale halved; after 2000 good steps in a row the scale doubles. bf16 has
//! f32's range and needs no scaling.

use burn::optim::GradientsParams;
use burn::prelude::*;

use super::clip::{global_norm, scale_gradients};
use crate::backend::BackendKind;
use crate::infer::Precision;
use crate::model::UNet;

/// The loss scale an f16 run starts with (PyTorch's default).
pub const INITIAL_LOSS_SCALE: f64 = 65536.0;
/// Good steps in a row after which the scale doubles (PyTorch's default).
pub const GROWTH_INTERVAL: u32 = 2000;
/// The scale never goes below this (a run that needs less has a real divergence).
const MIN_LOSS_SCALE: f64 = 1.0 / 65536.0;

/// Whether `precision` can train on `kind`/`device`: an error message naming the
/// device and what to do otherwise.
pub fn check_training_precision(
    precision: Precision,
    kind: BackendKind,
    device: &Device,
    device_name: &str,
) -> Result<(), String> {
    if precision == Precision::F32 {
        return Ok(());
    }
    if kind == BackendKind::Cpu {
        return Err(format!(
            "mixed-precision training ({precision}) is not supported on the CPU backend: the \
             CPU has no half-precision arithmetic there, so {precision} would only be slower. \
             Train with precision f32 on the CPU, or with {precision} on a GPU (wgpu or cuda)"
        ));
    }
    if !precision.supported_on(device) {
        return Err(format!(
            "{device_name} cannot compute in {precision}; train with precision f32{}",
            if precision == Precision::Bf16 {
                " or f16"
            } else {
                ""
            }
        ));
    }
    Ok(())
}

/// The precision of a run's training steps and, for f16, its loss scale.
#[derive(Debug, Clone, PartialEq)]
pub struct MixedPrecision {
    precision: Precision,
    scale: f64,
    good_steps: u32,
    skipped_steps: u64,
}

impl MixedPrecision {
    /// Training in `precision` (f32: plain training, no scaling).
    pub fn new(precision: Precision) -> Self {
        MixedPrecision {
            precision,
            scale: if precision == Precision::F16 {
                INITIAL_LOSS_SCALE
            } else {
                1.0
            },
            good_steps: 0,
            skipped_steps: 0,
        }
    }

    /// The float type of the forward and backward passes.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The factor the loss is multiplied by before the backward pass (1 unless f16).
    pub fn loss_scale(&self) -> f64 {
        self.scale
    }

    /// Optimiser steps skipped so far because the scaled gradients overflowed.
    pub fn skipped_steps(&self) -> u64 {
        self.skipped_steps
    }

    /// Divide `grads` (of the scaled loss) by the loss scale. Returns false, halving
    /// the scale, when any gradient is infinite or NaN: the caller must skip this
    /// update. Without scaling (f32, bf16) this does nothing and returns true.
    pub fn unscale(&mut self, model: &UNet, grads: &mut GradientsParams) -> bool {
        if self.precision != Precision::F16 {
            return true;
        }
        let finite = global_norm(model, grads)
            .map(|n| n.into_scalar::<f32>().is_finite())
            .unwrap_or(true);
        if !finite {
            self.scale = (self.scale * 0.5).max(MIN_LOSS_SCALE);
            self.good_steps = 0;
            self.skipped_steps += 1;
            return false;
        }
        scale_gradients(model, grads, 1.0 / self.scale);
        self.good_steps += 1;
        if self.good_steps >= GROWTH_INTERVAL {
            self.scale *= 2.0;
            self.good_steps = 0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_and_bf16_do_not_scale() {
        assert_eq!(MixedPrecision::new(Precision::F32).loss_scale(), 1.0);
        assert_eq!(MixedPrecision::new(Precision::Bf16).loss_scale(), 1.0);
        assert_eq!(
            MixedPrecision::new(Precision::F16).loss_scale(),
            INITIAL_LOSS_SCALE
        );
    }

    #[test]
    fn the_cpu_refuses_half_precision_training() {
        let device = Device::flex();
        let e =
            check_training_precision(Precision::F16, BackendKind::Cpu, &device, "cpu").unwrap_err();
        assert!(
            e.contains("not supported on the CPU") && e.contains("f32"),
            "{e}"
        );
        assert!(check_training_precision(Precision::F32, BackendKind::Cpu, &device, "cpu").is_ok());
    }

    #[test]
    fn overflow_skips_and_halves_then_good_steps_unscale() {
        use crate::model::UNetConfig;
        let device = Device::flex().autodiff();
        let config = UNetConfig {
            in_channels: 1,
            num_classes: 2,
            base_channels: 2,
            depth: 1,
            input_size: 4,
        };
        let model = config.init_seeded(&device, 1);
        let x = Tensor::<4>::ones([1, 1, 4, 4], &device);
        let grads_of = |factor: f32| {
            let loss = model.forward(x.clone()).sum().mul_scalar(factor);
            GradientsParams::from_grads(loss.backward(), &model)
        };
        let mut amp = MixedPrecision::new(Precision::F16);
        let mut overflowed = grads_of(f32::INFINITY);
        assert!(!amp.unscale(&model, &mut overflowed));
        assert_eq!(amp.loss_scale(), INITIAL_LOSS_SCALE / 2.0);
        assert_eq!(amp.skipped_steps(), 1);

        // A good step divides by the scale: the result equals the unscaled gradients.
        let scale = amp.loss_scale() as f32;
        let mut scaled = grads_of(scale);
        assert!(amp.unscale(&model, &mut scaled));
        let plain = grads_of(1.0);
        let a = global_norm(&model, &scaled).map(|n| n.into_scalar::<f32>());
        let b = global_norm(&model, &plain).map(|n| n.into_scalar::<f32>());
        let (Some(a), Some(b)) = (a, b) else {
            panic!("no gradients");
        };
        assert!((a - b).abs() <= 1e-4 * b.max(1.0), "{a} vs {b}");
    }
}
