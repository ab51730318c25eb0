//! Multi-label segmentation losses on logits `[batch, classes, h, w]` and one-hot
//! targets of the same shape: BCE with logits, soft Dice, and their sum.

use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};

/// Which loss to train with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Binary cross-entropy with logits, averaged over every element.
    Bce,
    /// Soft Dice, `1 - mean_c (2 Σ p t + 1) / (Σ p + Σ t + 1)` over the batch.
    Dice,
    /// BCE + soft Dice.
    BceDice,
}

/// Numerically stable binary cross-entropy with logits, mean over all elements:
/// `max(x, 0) - x t + log(1 + exp(-|x|))`.
pub fn bce_with_logits(logits: Tensor<4>, targets: Tensor<4>) -> Tensor<1> {
    let positive = logits.clone().clamp_min(0.0);
    let log_term = logits.clone().abs().neg().exp().log1p();
    (positive - logits * targets + log_term).mean()
}

/// Soft Dice loss with smoothing 1, per class over the whole batch, averaged over
/// classes. A class absent from both prediction and target scores (close to) 1.
pub fn soft_dice(logits: Tensor<4>, targets: Tensor<4>) -> Tensor<1> {
    let [b, c, h, w] = logits.dims();
    let p = sigmoid(logits).swap_dims(0, 1).reshape([c, b * h * w]);
    let t = targets.swap_dims(0, 1).reshape([c, b * h * w]);
    let intersection = (p.clone() * t.clone()).sum_dim(1);
    let denominator = p.sum_dim(1) + t.sum_dim(1);
    let dice = (intersection * 2.0 + 1.0) / (denominator + 1.0);
    dice.mean().neg() + 1.0
}

/// The configured loss.
pub fn loss(kind: LossKind, logits: Tensor<4>, targets: Tensor<4>) -> Tensor<1> {
    match kind {
        LossKind::Bce => bce_with_logits(logits, targets),
        LossKind::Dice => soft_dice(logits, targets),
        LossKind::BceDice => {
            bce_with_logits(logits.clone(), targets.clone()) + soft_dice(logits, targets)
        }
    }
}

/// One-hot targets `[batch, classes, h, w]` from label maps `[batch, h, w]` given as a
/// float tensor of label values (0 = background, 1..=classes). Built on the device so
/// that only the compact label map crosses the bus.
pub fn one_hot_targets(labels: Tensor<3>, num_classes: usize) -> Tensor<4> {
    let [b, h, w] = labels.dims();
    let device = labels.device();
    let classes = Tensor::<1, Int>::arange(1..num_classes as i64 + 1, &device)
        .float()
        .reshape([1, num_classes, 1, 1])
        .expand([b, num_classes, h, w]);
    labels
        .reshape([b, 1, h, w])
        .expand([b, num_classes, h, w])
        .equal(classes)
        .float()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_scalar::<f32>()
    }

    #[test]
    fn bce_matches_the_definition() {
        let device = Device::flex();
        let logits = Tensor::<4>::from_floats([[[[2.0, -1.0], [0.0, 30.0]]]], &device);
        let targets = Tensor::<4>::from_floats([[[[1.0, 0.0], [1.0, 0.0]]]], &device);
        let expected = [
            (1.0 + (-2.0f64).exp()).ln(),
            (1.0 + (-1.0f64).exp()).ln(),
            2.0f64.ln(),
            30.0 + (-30.0f64).exp().ln_1p(),
        ];
        let mean = expected.iter().sum::<f64>() / 4.0;
        assert!((scalar(bce_with_logits(logits, targets)) as f64 - mean).abs() < 1e-4);
    }

    #[test]
    fn dice_is_zero_for_a_confident_perfect_prediction() {
        let device = Device::flex();
        let targets = Tensor::<4>::from_floats([[[[1.0, 0.0], [0.0, 1.0]]]], &device);
        let logits = targets.clone() * 40.0 - 20.0;
        assert!(scalar(soft_dice(logits.clone(), targets.clone())) < 1e-3);
        let wrong = logits.neg();
        assert!(scalar(soft_dice(wrong, targets)) > 0.6);
    }

    #[test]
    fn one_hot_puts_each_label_in_its_channel() {
        let device = Device::flex();
        let labels = Tensor::<3>::from_floats([[[0.0, 1.0], [3.0, 2.0]]], &device);
        let one_hot = one_hot_targets(labels, 3);
        assert_eq!(one_hot.dims(), [1, 3, 2, 2]);
        let data: Vec<f32> = one_hot.into_data().iter::<f32>().collect();
        #[rustfmt::skip]
        let expected = vec![
            0.0, 1.0, 0.0, 0.0, // class 1
            0.0, 0.0, 0.0, 1.0, // class 2
            0.0, 0.0, 1.0, 0.0, // class 3
        ];
        assert_eq!(data, expected);
    }
}
