//! Segmentation losses on logits `[batch, classes, h, w]` and one-hot targets of the
//! same shape: BCE with logits, batch soft Dice over the classes present, their sum,
//! and softmax cross-entropy + Dice over background and the classes.

use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, log_softmax, sigmoid};
use serde::{Deserialize, Serialize};

/// Smoothing of the soft Dice (added to numerator and denominator).
pub const DICE_SMOOTH: f32 = 1.0;

/// Which loss to train with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Binary cross-entropy with logits, averaged over every element (the seed's
    /// loss: each structure an independent sigmoid).
    Bce,
    /// Batch soft Dice over the classes present (see [`soft_dice`]).
    Dice,
    /// BCE + batch soft Dice on the sigmoid probabilities.
    BceDice,
    /// Softmax cross-entropy over background + the classes, plus batch soft Dice on
    /// the softmax probabilities. The background logit is fixed at 0, so the model
    /// keeps one output per structure and "logit > 0" (sigmoid > 0.5) still means
    /// "this structure beats background": inference is unchanged.
    CeDice,
}

impl LossKind {
    /// The name used in settings files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::Bce => "bce",
            LossKind::Dice => "dice",
            LossKind::BceDice => "bce-dice",
            LossKind::CeDice => "ce-dice",
        }
    }
}

/// Numerically stable binary cross-entropy with logits, mean over all elements:
/// `max(x, 0) - x t + log(1 + exp(-|x|))`, computed as `x (1 - t) - log σ(x)` —
/// the same value, with log σ one fused, stable operation (and its gradient one
/// pass), so the loss over 117 × 256² values per image costs a few passes, not
/// a dozen.
pub fn bce_with_logits(logits: Tensor<4>, targets: Tensor<4>) -> Tensor<1> {
    let not_target = targets.neg().add_scalar(1.0);
    (logits.clone() * not_target - log_sigmoid(logits)).mean()
}

/// Batch soft Dice loss of class probabilities `[b, c, h, w]` against one-hot targets:
/// per class over the whole batch, `(2 Σ p t + s) / (Σ p + Σ t + s)` with
/// `s` = [`DICE_SMOOTH`], averaged over the classes present in the batch's target or
/// in its prediction (some probability above 0.5); `1 -` that mean. Classes absent
/// from both are left out, so the loss is not swamped by the many structures a batch
/// does not show; a batch without any class gives 0.
pub fn soft_dice_of_probabilities(probabilities: Tensor<4>, targets: Tensor<4>) -> Tensor<1> {
    let [b, c, h, w] = probabilities.dims();
    let p = probabilities.swap_dims(0, 1).reshape([c, b * h * w]);
    let t = targets.swap_dims(0, 1).reshape([c, b * h * w]);
    let target_sum = t.clone().sum_dim(1);
    let present = target_sum
        .clone()
        .greater_elem(0.0)
        .bool_or(p.clone().max_dim(1).greater_elem(0.5))
        .float();
    let intersection = (p.clone() * t).sum_dim(1);
    let denominator = p.sum_dim(1) + target_sum;
    let dice = (intersection * 2.0 + DICE_SMOOTH) / (denominator + DICE_SMOOTH);
    let count = present.clone().sum().clamp_min(1.0);
    ((dice - 1.0) * present).sum().neg() / count
}

/// Batch soft Dice loss on sigmoid probabilities (see [`soft_dice_of_probabilities`]).
pub fn soft_dice(logits: Tensor<4>, targets: Tensor<4>) -> Tensor<1> {
    soft_dice_of_probabilities(sigmoid(logits), targets)
}

/// Log-probabilities `[b, 1 + c, h, w]` of background (a fixed logit 0) and the `c`
/// classes.
pub fn log_softmax_with_background(logits: Tensor<4>) -> Tensor<4> {
    let [b, _, h, w] = logits.dims();
    let background = Tensor::<4>::zeros([b, 1, h, w], &logits.device());
    log_softmax(Tensor::cat(vec![background, logits], 1), 1)
}

/// Softmax cross-entropy (mean over pixels) over background + classes, plus the batch
/// soft Dice of the classes' softmax probabilities.
pub fn ce_dice(logits: Tensor<4>, targets: Tensor<4>) -> Tensor<1> {
    let [_, c, _, _] = logits.dims();
    let log_p = log_softmax_with_background(logits);
    let background = targets.clone().sum_dim(1).neg() + 1.0;
    let full_targets = Tensor::cat(vec![background, targets.clone()], 1);
    let ce = (full_targets * log_p.clone()).sum_dim(1).mean().neg();
    let probabilities = log_p.narrow(1, 1, c).exp();
    ce + soft_dice_of_probabilities(probabilities, targets)
}

/// The configured loss.
pub fn loss(kind: LossKind, logits: Tensor<4>, targets: Tensor<4>) -> Tensor<1> {
    match kind {
        LossKind::Bce => bce_with_logits(logits, targets),
        LossKind::Dice => soft_dice(logits, targets),
        LossKind::BceDice => {
            bce_with_logits(logits.clone(), targets.clone()) + soft_dice(logits, targets)
        }
        LossKind::CeDice => ce_dice(logits, targets),
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
    use burn::tensor::TensorData;

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
    fn bce_gradient_is_sigmoid_minus_target_over_n() {
        let device = Device::flex().autodiff();
        let x = [2.0f32, -1.0, 0.0, 30.0, -40.0, 0.5];
        let t = [1.0f32, 0.0, 1.0, 0.0, 1.0, 1.0];
        let logits = Tensor::<4>::from_floats(TensorData::new(x.to_vec(), [1, 1, 2, 3]), &device)
            .require_grad();
        let targets = Tensor::<4>::from_floats(TensorData::new(t.to_vec(), [1, 1, 2, 3]), &device);
        let grads = bce_with_logits(logits.clone(), targets).backward();
        let grad: Vec<f32> = logits
            .grad(&grads)
            .expect("a gradient")
            .into_data()
            .iter::<f32>()
            .collect();
        for ((g, &x), &t) in grad.iter().zip(&x).zip(&t) {
            let expected = (1.0 / (1.0 + (-x as f64).exp()) - t as f64) / 6.0;
            assert!(
                (*g as f64 - expected).abs() < 1e-6,
                "x {x} t {t}: {g} vs {expected}"
            );
        }
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
    fn dice_leaves_out_classes_absent_from_target_and_prediction() {
        let device = Device::flex();
        // Class 1 present and predicted perfectly; class 2 absent and predicted absent.
        let targets = Tensor::<4>::from_floats(
            [[[[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]]],
            &device,
        );
        let logits = targets.clone() * 40.0 - 20.0;
        assert!(scalar(soft_dice(logits.clone(), targets.clone())) < 1e-3);
        // Predicting class 2 where it is absent brings it into the mean at Dice ≈ 0.
        let mut fp: Vec<f32> = logits.into_data().iter::<f32>().collect();
        fp[4] = 20.0;
        let fp = Tensor::<4>::from_data(TensorData::new(fp, [1, 2, 2, 2]), &device);
        let value = scalar(soft_dice(fp, targets));
        assert!((value - 0.25).abs() < 0.05, "{value}");
    }

    #[test]
    fn ce_dice_matches_softmax_cross_entropy_with_a_zero_background_logit() {
        let device = Device::flex();
        // One pixel, two classes: logits (1, -1), target class 1; one pixel of background.
        let logits = Tensor::<4>::from_floats([[[[1.0, 0.5]], [[-1.0, 0.0]]]], &device);
        let targets = Tensor::<4>::from_floats([[[[1.0, 0.0]], [[0.0, 0.0]]]], &device);
        let z0 = [0.0f64, 1.0, -1.0];
        let z1 = [0.0f64, 0.5, 0.0];
        let lse = |z: &[f64; 3]| z.iter().map(|v| v.exp()).sum::<f64>().ln();
        let ce = ((lse(&z0) - z0[1]) + (lse(&z1) - z1[0])) / 2.0;
        let p = |z: &[f64; 3], k: usize| z[k].exp() / z.iter().map(|v| v.exp()).sum::<f64>();
        // Class 1 is present (target); class 2 is absent and below 0.5 everywhere.
        let (p0, p1) = (p(&z0, 1), p(&z1, 1));
        let dice1 = (2.0 * p0 + 1.0) / (p0 + p1 + 1.0 + 1.0);
        let expected = ce + (1.0 - dice1);
        let got = scalar(ce_dice(logits, targets)) as f64;
        assert!((got - expected).abs() < 1e-4, "{got} vs {expected}");
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
