//! The segmentation model: the 2-D U-Net, its losses and its checkpoints.

pub mod checkpoint;
pub mod loss;
pub mod unet;

pub use checkpoint::{CheckpointError, load_model, save_weights};
pub use loss::{LossKind, loss, one_hot_targets};
pub use unet::{UNet, UNetConfig};

use burn::prelude::*;

/// Per-pixel label from logits `[batch, classes, h, w]`: the most probable class
/// (1-based) when its probability exceeds `threshold`, else 0 (background). Runs on
/// the device; `sigmoid(x) > t` is tested as `x > logit(t)`.
pub fn logits_to_labels(logits: Tensor<4>, threshold: f32) -> Tensor<4, Int> {
    let t = threshold.clamp(1e-6, 1.0 - 1e-6) as f64;
    let logit_t = (t / (1.0 - t)).ln();
    let (max, index) = logits.max_dim_with_indices(1);
    let background = max.lower_equal_elem(logit_t);
    index.add_scalar(1).mask_fill(background, 0)
}
