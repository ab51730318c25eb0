//! CPU convolution kernels for ctseg's U-Net (2-D, NCHW, stride 1, dilation 1, one
//! group, any kernel size and padding): the forward pass, the input gradient and the
//! weight gradient, each as tiled im2col + one `gemm` per tile.
//!
//! A tile is a few whole output rows of one image (about [`TILE_PIXELS`] pixels), so
//! its im2col block (`c·kh·kw` rows × the tile's pixels) stays in the core's cache
//! and the tile's output rows are contiguous in the NCHW result: no layout round trip
//! and no scatter. Tiles run in parallel on rayon's global pool (`RAYON_NUM_THREADS`),
//! each `gemm` single-threaded.
//!
//! - forward: `y[n, o, tile] = W[o, c·kh·kw] · col(x)[c·kh·kw, tile]` (+ bias);
//! - input gradient: the forward pass of `dy` with the kernel flipped and its two
//!   channel axes swapped, padded by `k − 1 − pad`;
//! - weight gradient: `dW = Σ_tiles dy[o, tile] · col(x)[c·kh·kw, tile]ᵀ`, one
//!   accumulator per rayon job, summed at the end.
//!
//! Beside the convolutions: the transposed convolutions whose stride equals their
//! kernel ([`transpose`], the U-Net's upsampling), BatchNorm in training and
//! inference ([`norm`]), 2×2 max pooling ([`pool`]) and the BCE's `log σ` and its
//! derivative without libm ([`activation`]). Burn's CPU backend runs all of them for
//! f32 through `vendor/burn-flex` (`src/ops/ctseg_*.rs`, `src/ops/activation.rs`).

pub mod activation;
mod im2col;
pub mod norm;
pub mod pool;
mod scratch;
pub mod simd;
pub mod transpose;

use rayon::prelude::*;

pub use im2col::TILE_PIXELS;
pub use norm::{BatchNormGrads, BatchNormTrain, NormShape};
pub use pool::PoolShape;
pub use transpose::UpShape;

/// A shape the kernels cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvError {
    /// A buffer's length does not match the shape.
    #[error("{what} has {got} values, the shape needs {expected}")]
    Length {
        /// Which buffer.
        what: &'static str,
        /// Its length.
        got: usize,
        /// The length the shape implies.
        expected: usize,
    },
    /// The padded input is smaller than the kernel, or a dimension is zero.
    #[error("invalid convolution shape: {0}")]
    Shape(String),
}

/// The shape of a stride-1 convolution: input `[batch, in_channels, height, width]`,
/// weight `[out_channels, in_channels, kernel[0], kernel[1]]`, padding
/// `[top, bottom, left, right]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Zero padding: top, bottom, left, right.
    pub padding: [usize; 4],
}

impl ConvShape {
    /// Output height and width.
    pub fn output(&self) -> [usize; 2] {
        let [h, w] = self.input;
        let [t, b, l, r] = self.padding;
        [
            (h + t + b).saturating_sub(self.kernel[0] - 1),
            (w + l + r).saturating_sub(self.kernel[1] - 1),
        ]
    }

    /// Values per output channel's weights: `in_channels · kh · kw`.
    fn patch(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }

    fn validate(&self) -> Result<(), ConvError> {
        let [h, w] = self.input;
        let [t, b, l, r] = self.padding;
        let [kh, kw] = self.kernel;
        if self.batch == 0 || self.in_channels == 0 || self.out_channels == 0 || kh == 0 || kw == 0
        {
            return Err(ConvError::Shape(format!("a zero dimension in {self:?}")));
        }
        if h + t + b < kh || w + l + r < kw {
            return Err(ConvError::Shape(format!(
                "the padded input {}×{} is smaller than the kernel {kh}×{kw}",
                h + t + b,
                w + l + r
            )));
        }
        if t >= kh || b >= kh || l >= kw || r >= kw {
            return Err(ConvError::Shape(format!(
                "padding {:?} must be smaller than the kernel {kh}×{kw}",
                self.padding
            )));
        }
        Ok(())
    }

    /// The shape of the input gradient's convolution: `dy` convolved with the flipped,
    /// channel-swapped kernel, padded by `k − 1 − pad`.
    fn transposed(&self) -> ConvShape {
        let [kh, kw] = self.kernel;
        let [t, b, l, r] = self.padding;
        ConvShape {
            batch: self.batch,
            in_channels: self.out_channels,
            out_channels: self.in_channels,
            input: self.output(),
            kernel: self.kernel,
            padding: [kh - 1 - t, kh - 1 - b, kw - 1 - l, kw - 1 - r],
        }
    }
}

fn check_len(what: &'static str, got: usize, expected: usize) -> Result<(), ConvError> {
    if got == expected {
        Ok(())
    } else {
        Err(ConvError::Length {
            what,
            got,
            expected,
        })
    }
}

/// The convolution of `x` (`[batch, in, h, w]`) with `weight` (`[out, in, kh, kw]`)
/// plus `bias` (`[out]`): `[batch, out, ho, wo]`.
pub fn conv2d(
    shape: &ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
) -> Result<Vec<f32>, ConvError> {
    shape.validate()?;
    let [h, w] = shape.input;
    let [ho, wo] = shape.output();
    check_len("input", x.len(), shape.batch * shape.in_channels * h * w)?;
    check_len("weight", weight.len(), shape.out_channels * shape.patch())?;
    if let Some(b) = bias {
        check_len("bias", b.len(), shape.out_channels)?;
    }
    // SAFETY: im2col::forward writes all batch·out·ho·wo values (every tile's rows
    // of every plane; the tiles cover each image's rows).
    let mut out = unsafe {
        scratch::written_in_full(shape.batch * shape.out_channels * ho * wo, |addr| {
            im2col::forward(shape, x, weight, addr)
        })
    };
    if let Some(bias) = bias {
        out.par_chunks_mut(ho * wo)
            .enumerate()
            .for_each(|(i, plane)| {
                let b = bias[i % shape.out_channels];
                plane.iter_mut().for_each(|v| *v += b);
            });
    }
    Ok(out)
}

/// The gradient of [`conv2d`] with respect to its input, from the output gradient
/// `dy` (`[batch, out, ho, wo]`): `[batch, in, h, w]`.
pub fn conv2d_input_grad(
    shape: &ConvShape,
    dy: &[f32],
    weight: &[f32],
) -> Result<Vec<f32>, ConvError> {
    shape.validate()?;
    let [ho, wo] = shape.output();
    check_len(
        "output gradient",
        dy.len(),
        shape.batch * shape.out_channels * ho * wo,
    )?;
    check_len("weight", weight.len(), shape.out_channels * shape.patch())?;
    let [kh, kw] = shape.kernel;
    let (ci, co) = (shape.in_channels, shape.out_channels);
    // W'[c, o, i, j] = W[o, c, kh − 1 − i, kw − 1 − j], one input channel's block per
    // rayon job (a bottleneck layer's weight has 2.4 M values).
    let mut flipped = vec![0f32; weight.len()];
    flipped
        .par_chunks_mut(co * kh * kw)
        .enumerate()
        .for_each(|(c, block)| {
            for o in 0..co {
                for i in 0..kh {
                    for j in 0..kw {
                        block[(o * kh + i) * kw + j] =
                            weight[((o * ci + c) * kh + (kh - 1 - i)) * kw + (kw - 1 - j)];
                    }
                }
            }
        });
    let transposed = shape.transposed();
    let [h, w] = shape.input;
    // SAFETY: as in conv2d: the forward pass of the transposed shape writes all
    // batch·in·h·w values.
    Ok(unsafe {
        scratch::written_in_full(shape.batch * ci * h * w, |addr| {
            im2col::forward(&transposed, dy, &flipped, addr)
        })
    })
}

/// The gradient of [`conv2d`] with respect to its weight (`[out, in, kh, kw]`), from
/// the input `x` and the output gradient `dy`.
pub fn conv2d_weight_grad(shape: &ConvShape, x: &[f32], dy: &[f32]) -> Result<Vec<f32>, ConvError> {
    shape.validate()?;
    let [h, w] = shape.input;
    let [ho, wo] = shape.output();
    check_len("input", x.len(), shape.batch * shape.in_channels * h * w)?;
    check_len(
        "output gradient",
        dy.len(),
        shape.batch * shape.out_channels * ho * wo,
    )?;
    Ok(im2col::weight_grad(shape, x, dy))
}

/// The gradient of [`conv2d`] with respect to its bias: `dy` summed over the batch and
/// the pixels, per output channel.
pub fn conv2d_bias_grad(shape: &ConvShape, dy: &[f32]) -> Result<Vec<f32>, ConvError> {
    shape.validate()?;
    let [ho, wo] = shape.output();
    let co = shape.out_channels;
    check_len("output gradient", dy.len(), shape.batch * co * ho * wo)?;
    Ok(channel_sums(dy, co, ho * wo))
}

/// Per-channel sums of `[batch, channels, plane]` values, in f64 per plane.
pub(crate) fn channel_sums(values: &[f32], channels: usize, plane: usize) -> Vec<f32> {
    let sums: Vec<f64> = values
        .par_chunks(plane)
        .map(|p| p.iter().map(|&v| v as f64).sum())
        .collect();
    let mut totals = vec![0f64; channels];
    for (i, s) in sums.iter().enumerate() {
        totals[i % channels] += s;
    }
    totals.into_iter().map(|s| s as f32).collect()
}

#[cfg(test)]
mod tests;
