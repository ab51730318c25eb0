//! The training step, written once: batch tensors, forward, loss, backward, global
//! gradient clipping and the Adam update. The trainer, per-epoch validation (its
//! forward and loss) and `ctseg bench` all call these functions, so the benchmark
//! times exactly what training runs.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::TensorData;

use super::amp::MixedPrecision;
use super::clip::clip_global_norm;
use super::config::OptimSection;
use crate::infer::Precision;
use crate::model::{LossKind, UNet, loss, one_hot_targets};

/// The optimiser of every training step: Adam with the configured β₁, β₂, ε and L2
/// weight decay.
pub fn optimizer(optim: &OptimSection) -> ModuleOptimizer {
    AdamConfig::new()
        .with_beta_1(optim.beta1)
        .with_beta_2(optim.beta2)
        .with_epsilon(optim.epsilon)
        .with_weight_decay(
            (optim.weight_decay > 0.0).then(|| WeightDecayConfig::new(optim.weight_decay)),
        )
        .init()
}

/// A batch on `device`: images `[b, 1, s, s]` in [0, 1] and one-hot targets
/// `[b, classes, s, s]` from label values `[b, s, s]` (0 = background).
pub fn batch_tensors(
    images: Vec<f32>,
    labels: Vec<f32>,
    batch: usize,
    size: usize,
    classes: usize,
    device: &Device,
) -> (Tensor<4>, Tensor<4>) {
    let x = Tensor::<4>::from_data(TensorData::new(images, [batch, 1, size, size]), device);
    let y = Tensor::<3>::from_data(TensorData::new(labels, [batch, size, size]), device);
    (x, one_hot_targets(y, classes))
}

/// Forward pass and loss: the logits and the (scalar) loss tensor, still on the
/// device.
pub fn forward_loss(
    model: &UNet,
    x: Tensor<4>,
    targets: Tensor<4>,
    kind: LossKind,
) -> (Tensor<4>, Tensor<1>) {
    forward_loss_in(model, x, targets, kind, Precision::F32)
}

/// [`forward_loss`] with the forward pass in `precision` (mixed precision: see
/// [`UNet::forward_mixed`]); logits and loss in f32.
pub fn forward_loss_in(
    model: &UNet,
    x: Tensor<4>,
    targets: Tensor<4>,
    kind: LossKind,
    precision: Precision,
) -> (Tensor<4>, Tensor<1>) {
    let logits = model.forward_mixed(x, precision.dtype());
    let l = loss(kind, logits.clone(), targets);
    (logits, l)
}

/// Forward, loss and backward of one batch in `amp`'s precision: the gradients (of
/// the loss divided by `accumulate`, so accumulated groups average, and multiplied
/// by `amp`'s loss scale) and the loss value read back, unscaled. The value is
/// returned even when it is not finite; the caller decides what that means.
pub fn gradients(
    model: &UNet,
    x: Tensor<4>,
    targets: Tensor<4>,
    kind: LossKind,
    accumulate: usize,
    amp: &MixedPrecision,
) -> (GradientsParams, f64) {
    let (_, mut l) = forward_loss_in(model, x, targets, kind, amp.precision());
    let value = l.clone().into_scalar::<f32>() as f64;
    let factor = amp.loss_scale() / accumulate.max(1) as f64;
    if factor != 1.0 {
        l = l.mul_scalar(factor);
    }
    (GradientsParams::from_grads(l.backward(), model), value)
}

/// Undo `amp`'s loss scale, clip the gradients to a global norm of `clip_norm`
/// (PyTorch's `clip_grad_norm_`; 0 = off) and take one optimiser step at `lr`.
/// Returns the model and whether the step was taken: an f16 step whose gradients
/// overflowed is skipped (the model is returned unchanged, the scale lowered).
pub fn apply_gradients(
    model: UNet,
    optim: &mut ModuleOptimizer,
    mut grads: GradientsParams,
    lr: f64,
    clip_norm: f64,
    amp: &mut MixedPrecision,
) -> (UNet, bool) {
    if !amp.unscale(&model, &mut grads) {
        return (model, false);
    }
    if clip_norm > 0.0 {
        clip_global_norm(&model, &mut grads, clip_norm);
    }
    (optim.step(lr, model, grads), true)
}

/// One whole training step without accumulation: [`gradients`] then
/// [`apply_gradients`] with the configured clipping, in `amp`'s precision. Returns
/// the model (updated unless an f16 overflow skipped the step) and the loss value
/// before the update.
#[allow(clippy::too_many_arguments)]
pub fn train_step(
    model: UNet,
    optim: &mut ModuleOptimizer,
    x: Tensor<4>,
    targets: Tensor<4>,
    kind: LossKind,
    lr: f64,
    settings: &OptimSection,
    amp: &mut MixedPrecision,
) -> (UNet, f64) {
    let (grads, value) = gradients(&model, x, targets, kind, 1, amp);
    let (model, _) = apply_gradients(model, optim, grads, lr, settings.grad_clip_norm, amp);
    (model, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UNetConfig;

    fn tiny() -> UNetConfig {
        UNetConfig {
            in_channels: 1,
            num_classes: 3,
            base_channels: 4,
            depth: 2,
            input_size: 16,
        }
    }

    #[test]
    fn a_step_lowers_the_loss_on_its_batch() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let config = tiny();
        let mut model = config.init(&device);
        let settings = OptimSection::default();
        let mut optim = optimizer(&settings);
        let (b, s) = (2, 16);
        let images: Vec<f32> = (0..b * s * s).map(|i| (i % 7) as f32 / 7.0).collect();
        let labels: Vec<f32> = (0..b * s * s).map(|i| ((i / s) % 3) as f32).collect();
        let (x, targets) = batch_tensors(images, labels, b, s, config.num_classes, &device);
        let mut losses = Vec::new();
        for _ in 0..5 {
            let (next, value) = train_step(
                model,
                &mut optim,
                x.clone(),
                targets.clone(),
                LossKind::Bce,
                1e-2,
                &settings,
                &mut MixedPrecision::new(Precision::F32),
            );
            model = next;
            losses.push(value);
        }
        assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
        assert!(losses[4] < losses[0], "{losses:?}");
    }

    #[test]
    fn accumulated_gradients_are_averaged() {
        let device = Device::flex().autodiff();
        device.seed(5);
        let config = tiny();
        let model = config.init(&device);
        let (b, s) = (1, 16);
        let images: Vec<f32> = (0..s * s).map(|i| (i % 5) as f32 / 5.0).collect();
        let labels: Vec<f32> = (0..s * s).map(|i| (i % 3) as f32).collect();
        let (x, t) = batch_tensors(images, labels, b, s, config.num_classes, &device);
        let f32 = MixedPrecision::new(Precision::F32);
        let (_, one) = gradients(&model, x.clone(), t.clone(), LossKind::Bce, 1, &f32);
        let (_, four) = gradients(&model, x, t, LossKind::Bce, 4, &f32);
        // The reported loss is the batch's own; only the gradients are scaled.
        assert!((one - four).abs() < 1e-6, "{one} vs {four}");
    }
}
