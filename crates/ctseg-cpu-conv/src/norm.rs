//! BatchNorm over `[batch, channels, spatial…]` in one or two passes per channel:
//! training (batch statistics, normalise, and the backward pass) and inference
//! (running statistics folded into one scale and shift per channel). Parallel over
//! channels; sums run in f32 lanes over short blocks and add up in f64, so a
//! 131072-value channel keeps f64-like accuracy.

use rayon::prelude::*;

use crate::scratch::{map_planes, zip_planes};
use crate::{ConvError, check_len};

/// The layout BatchNorm sees: `batch` images of `channels` planes of `spatial` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormShape {
    /// Images in the batch.
    pub batch: usize,
    /// Channels (BatchNorm's features).
    pub channels: usize,
    /// Values per plane (height × width).
    pub spatial: usize,
}

impl NormShape {
    fn len(&self) -> usize {
        self.batch * self.channels * self.spatial
    }

    fn validate(&self, x: usize, per_channel: &[(&'static str, usize)]) -> Result<(), ConvError> {
        if self.batch == 0 || self.channels == 0 || self.spatial == 0 {
            return Err(ConvError::Shape(format!("a zero dimension in {self:?}")));
        }
        check_len("input", x, self.len())?;
        for &(what, len) in per_channel {
            check_len(what, len, self.channels)?;
        }
        Ok(())
    }

    /// The planes of channel `c`: `batch` slices of `spatial` values.
    fn planes<'a>(&self, values: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> {
        (0..self.batch)
            .map(move |n| &values[(n * self.channels + c) * self.spatial..][..self.spatial])
    }
}

/// Values per block summed in f32 before the block's sum joins the f64 total.
const BLOCK: usize = 256;

/// `Σ f(v)` over `values`, in eight f32 lanes per block and f64 across blocks.
fn sum_by(values: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    values
        .chunks(BLOCK)
        .map(|block| {
            let mut lanes = [0f32; 8];
            let mut chunks = block.chunks_exact(8);
            for chunk in &mut chunks {
                for (lane, &v) in lanes.iter_mut().zip(chunk) {
                    *lane += f(v);
                }
            }
            let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
            lanes.iter().map(|&l| l as f64).sum::<f64>() + tail as f64
        })
        .sum()
}

/// `Σ f(a, b)` over two equally long slices, like [`sum_by`].
fn sum_pairs_by(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    a.chunks(BLOCK)
        .zip(b.chunks(BLOCK))
        .map(|(ab, bb)| {
            let mut lanes = [0f32; 8];
            let mut ac = ab.chunks_exact(8);
            let mut bc = bb.chunks_exact(8);
            for (x, y) in (&mut ac).zip(&mut bc) {
                for ((lane, &u), &v) in lanes.iter_mut().zip(x).zip(y) {
                    *lane += f(u, v);
                }
            }
            let tail: f32 = ac
                .remainder()
                .iter()
                .zip(bc.remainder())
                .map(|(&u, &v)| f(u, v))
                .sum();
            lanes.iter().map(|&l| l as f64).sum::<f64>() + tail as f64
        })
        .sum()
}

/// Write `out[n, c, ·] = (x[n, c, ·] − mean[c]) · scale[c] + shift[c]`, parallel over
/// planes (centred first: no cancellation when the mean is large).
fn normalise(shape: &NormShape, x: &[f32], mean: &[f32], scale: &[f32], shift: &[f32]) -> Vec<f32> {
    map_planes(x, shape.spatial, |plane| {
        let c = plane % shape.channels;
        let (m, a, b) = (mean[c], scale[c], shift[c]);
        move |v| (v - m) * a + b
    })
}

/// BatchNorm with the batch's own statistics, as in training.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNormTrain {
    /// The normalised, scaled and shifted input (the input's layout).
    pub output: Vec<f32>,
    /// The batch mean per channel.
    pub mean: Vec<f32>,
    /// The biased batch variance per channel (what a training path feeds its running
    /// statistics, as Burn and PyTorch do).
    pub variance: Vec<f32>,
}

/// BatchNorm of `x` with the batch's statistics: `(x − mean) / √(var + ε) · γ + β`.
pub fn batch_norm_train(
    shape: &NormShape,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
) -> Result<BatchNormTrain, ConvError> {
    shape.validate(x.len(), &[("gamma", gamma.len()), ("beta", beta.len())])?;
    let count = (shape.batch * shape.spatial) as f64;
    // Two passes per channel (mean, then the centred squares): no cancellation, and
    // a channel's planes stay in cache between them.
    let stats: Vec<(f64, f64)> = (0..shape.channels)
        .into_par_iter()
        .map(|c| {
            let mean = shape.planes(x, c).map(|p| sum_by(p, |v| v)).sum::<f64>() / count;
            let m = mean as f32;
            let var = shape
                .planes(x, c)
                .map(|p| {
                    sum_by(p, |v| {
                        let d = v - m;
                        d * d
                    })
                })
                .sum::<f64>()
                / count;
            (mean, var)
        })
        .collect();
    let mean: Vec<f32> = stats.iter().map(|s| s.0 as f32).collect();
    let variance: Vec<f32> = stats.iter().map(|s| s.1 as f32).collect();
    let scale: Vec<f32> = (0..shape.channels)
        .map(|c| (gamma[c] as f64 / (stats[c].1 + epsilon).sqrt()) as f32)
        .collect();
    Ok(BatchNormTrain {
        output: normalise(shape, x, &mean, &scale, beta),
        mean,
        variance,
    })
}

/// The gradients of [`batch_norm_train`]: input, γ and β.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNormGrads {
    /// Gradient of the input (the input's layout).
    pub x: Vec<f32>,
    /// Gradient of γ per channel.
    pub gamma: Vec<f32>,
    /// Gradient of β per channel.
    pub beta: Vec<f32>,
}

/// The gradients of [`batch_norm_train`] from its input, γ, the statistics it
/// returned and the output gradient `dy`:
/// `dβ = Σ dy`, `dγ = Σ dy·x̂`, `dx = γ/σ · (dy − dβ/N − x̂·dγ/N)`.
pub fn batch_norm_train_backward(
    shape: &NormShape,
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    variance: &[f32],
    epsilon: f64,
    dy: &[f32],
) -> Result<BatchNormGrads, ConvError> {
    shape.validate(
        x.len(),
        &[
            ("gamma", gamma.len()),
            ("mean", mean.len()),
            ("variance", variance.len()),
        ],
    )?;
    check_len("output gradient", dy.len(), shape.len())?;
    let count = (shape.batch * shape.spatial) as f64;
    let sums: Vec<(f64, f64)> = (0..shape.channels)
        .into_par_iter()
        .map(|c| {
            let m = mean[c];
            let mut sum_dy = 0f64;
            let mut sum_dy_centred = 0f64;
            for (xp, dp) in shape.planes(x, c).zip(shape.planes(dy, c)) {
                sum_dy += sum_by(dp, |g| g);
                sum_dy_centred += sum_pairs_by(xp, dp, |v, g| (v - m) * g);
            }
            (sum_dy, sum_dy_centred)
        })
        .collect();
    let mut gamma_grad = Vec::with_capacity(shape.channels);
    let mut beta_grad = Vec::with_capacity(shape.channels);
    // dx = a·dy + b·(x − m) + d per channel, with x̂ = (x − m)·inv:
    //   a = γ·inv, b = −γ·inv³·Σ dy(x − m)/N, d = −a·Σdy/N.
    let mut coefficients = Vec::with_capacity(shape.channels);
    for (c, &(sum_dy, sum_dy_centred)) in sums.iter().enumerate() {
        let inv = 1.0 / (variance[c] as f64 + epsilon).sqrt();
        beta_grad.push(sum_dy as f32);
        gamma_grad.push((sum_dy_centred * inv) as f32);
        let a = gamma[c] as f64 * inv;
        let b = -a * inv * inv * sum_dy_centred / count;
        let d = -a * sum_dy / count;
        coefficients.push((a as f32, b as f32, d as f32));
    }
    let dx = zip_planes(x, dy, shape.spatial, |plane| {
        let c = plane % shape.channels;
        let ((a, b, d), m) = (coefficients[c], mean[c]);
        move |v, g| a * g + b * (v - m) + d
    });
    Ok(BatchNormGrads {
        x: dx,
        gamma: gamma_grad,
        beta: beta_grad,
    })
}

/// Per-channel sums of `values` (`[batch, channels, spatial]`): a bias gradient.
pub fn channel_sums(shape: &NormShape, values: &[f32]) -> Result<Vec<f32>, ConvError> {
    shape.validate(values.len(), &[])?;
    Ok(crate::channel_sums(values, shape.channels, shape.spatial))
}

/// BatchNorm with given statistics (inference): `(x − mean) / √(var + ε) · γ + β`,
/// as one scale and shift per channel.
pub fn batch_norm(
    shape: &NormShape,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    variance: &[f32],
    epsilon: f64,
) -> Result<Vec<f32>, ConvError> {
    shape.validate(
        x.len(),
        &[
            ("gamma", gamma.len()),
            ("beta", beta.len()),
            ("mean", mean.len()),
            ("variance", variance.len()),
        ],
    )?;
    let scale: Vec<f32> = (0..shape.channels)
        .map(|c| (gamma[c] as f64 / (variance[c] as f64 + epsilon).sqrt()) as f32)
        .collect();
    Ok(normalise(shape, x, mean, &scale, beta))
}
