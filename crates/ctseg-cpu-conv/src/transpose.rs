//! Transposed convolutions whose stride equals their kernel (the U-Net's 2×2, stride-2
//! upsampling), no padding, one group: every input pixel owns its own `kh × kw` block
//! of the output, so the forward pass is one GEMM per tile of input rows plus a
//! depth-to-space write, and both gradients are one GEMM per tile on the output
//! gradient gathered space-to-depth. Parallel over tiles like the convolutions.

use std::mem::MaybeUninit;

use crate::im2col::{Tiling, add_a_bt, for_each_tile, sum_over_tiles};
use crate::scratch::written_in_full;
use crate::{ConvError, check_len};

/// The shape of a transposed convolution with stride = kernel: input
/// `[batch, in_channels, height, width]`, weight `[in_channels, out_channels, kh, kw]`
/// (Burn's and PyTorch's layout), output `[batch, out_channels, height·kh, width·kw]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpShape {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Kernel height and width, which are also the strides.
    pub kernel: [usize; 2],
}

impl UpShape {
    /// Output height and width: the input's times the kernel's.
    pub fn output(&self) -> [usize; 2] {
        [
            self.input[0] * self.kernel[0],
            self.input[1] * self.kernel[1],
        ]
    }

    /// Rows of the GEMMs' `out_channels · kh · kw` side.
    fn block(&self) -> usize {
        self.out_channels * self.kernel[0] * self.kernel[1]
    }

    fn validate(&self) -> Result<(), ConvError> {
        let [h, w] = self.input;
        let [kh, kw] = self.kernel;
        if [
            self.batch,
            self.in_channels,
            self.out_channels,
            h,
            w,
            kh,
            kw,
        ]
        .contains(&0)
        {
            return Err(ConvError::Shape(format!("a zero dimension in {self:?}")));
        }
        Ok(())
    }

    fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.input[0] * self.input[1]
    }

    fn output_len(&self) -> usize {
        let [ho, wo] = self.output();
        self.batch * self.out_channels * ho * wo
    }

    /// Its input cut into tiles of whole rows.
    fn tiling(&self) -> Tiling {
        Tiling::of_grid(self.input)
    }
}

/// The transposed convolution of `x` with `weight` plus `bias` (`[out]`).
pub fn conv_transpose2d(
    shape: &UpShape,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
) -> Result<Vec<f32>, ConvError> {
    shape.validate()?;
    check_len("input", x.len(), shape.input_len())?;
    check_len("weight", weight.len(), shape.in_channels * shape.block())?;
    if let Some(b) = bias {
        check_len("bias", b.len(), shape.out_channels)?;
    }
    let [h, w] = shape.input;
    let [kh, kw] = shape.kernel;
    let [ho, wo] = shape.output();
    let (ci, co, block) = (shape.in_channels, shape.out_channels, shape.block());
    let tiling = shape.tiling();
    let fill = |out_addr: usize| {
        for_each_tile(
            shape.batch * tiling.per_image,
            block * tiling.rows * w,
            |blocks, t, parallelism| {
                let (n, r0, rows) = tiling.tile(t);
                let pixels = rows * w;
                let x_tile = &x[n * ci * h * w + r0 * w..];
                // blocks[(o, a, b), p] = Σ_c weight[c, (o, a, b)] · x[n, c, p].
                // SAFETY: weight is ci × block (checked); x_tile holds ci rows of
                // `pixels` values at stride h·w inside x (checked length, p < h·w − r0·w);
                // blocks holds block × pixels.
                unsafe {
                    gemm::gemm(
                        block,
                        pixels,
                        ci,
                        blocks.as_mut_ptr(),
                        1,
                        pixels as isize,
                        false,
                        weight.as_ptr(),
                        block as isize,
                        1,
                        x_tile.as_ptr(),
                        1,
                        (h * w) as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        parallelism,
                    );
                }
                for o in 0..co {
                    let b = bias.map_or(0.0, |b| b[o]);
                    // Output rows r0·kh .. (r0 + rows)·kh of plane (n, o): this tile's
                    // alone.
                    // SAFETY: inside the output (n < batch, o < co, rows within the
                    // image), and no other tile writes these rows. Not yet written:
                    // seen as MaybeUninit.
                    let plane = unsafe {
                        std::slice::from_raw_parts_mut(
                            (out_addr as *mut MaybeUninit<f32>)
                                .add((n * co + o) * ho * wo + r0 * kh * wo),
                            rows * kh * wo,
                        )
                    };
                    for a in 0..kh {
                        for bj in 0..kw {
                            let src = &blocks[((o * kh + a) * kw + bj) * pixels..][..pixels];
                            for r in 0..rows {
                                let dst = &mut plane[(r * kh + a) * wo..][..wo];
                                let src_row = &src[r * w..][..w];
                                for (j, &v) in src_row.iter().enumerate() {
                                    dst[j * kw + bj] = MaybeUninit::new(v + b);
                                }
                            }
                        }
                    }
                }
            },
        )
    };
    // SAFETY: the tiles cover every input row of every image, and each writes all
    // kh·wo output values per input row in every plane: (a, b, j) over kh × kw × w.
    Ok(unsafe { written_in_full(shape.output_len(), fill) })
}

/// Gather the output gradient of input rows `r0..r0 + rows` of image `n`
/// space-to-depth: `blocks[(o, a, b), r·w + j] = dy[n, o, (r0 + r)·kh + a, j·kw + b]`.
fn gather(shape: &UpShape, dy: &[f32], n: usize, r0: usize, rows: usize, blocks: &mut [f32]) {
    let [_, w] = shape.input;
    let [kh, kw] = shape.kernel;
    let [ho, wo] = shape.output();
    let co = shape.out_channels;
    let pixels = rows * w;
    for o in 0..co {
        let plane = &dy[(n * co + o) * ho * wo + r0 * kh * wo..][..rows * kh * wo];
        for a in 0..kh {
            for bj in 0..kw {
                let dst = &mut blocks[((o * kh + a) * kw + bj) * pixels..][..pixels];
                for r in 0..rows {
                    let src = &plane[(r * kh + a) * wo..][..wo];
                    for (j, d) in dst[r * w..][..w].iter_mut().enumerate() {
                        *d = src[j * kw + bj];
                    }
                }
            }
        }
    }
}

/// The gradient of [`conv_transpose2d`] with respect to its input, from the output
/// gradient `dy`: `[batch, in, h, w]`.
pub fn conv_transpose2d_input_grad(
    shape: &UpShape,
    dy: &[f32],
    weight: &[f32],
) -> Result<Vec<f32>, ConvError> {
    shape.validate()?;
    check_len("output gradient", dy.len(), shape.output_len())?;
    check_len("weight", weight.len(), shape.in_channels * shape.block())?;
    let [h, w] = shape.input;
    let (ci, block) = (shape.in_channels, shape.block());
    let tiling = shape.tiling();
    let fill = |dx_addr: usize| {
        for_each_tile(
            shape.batch * tiling.per_image,
            block * tiling.rows * w,
            |blocks, t, parallelism| {
                let (n, r0, rows) = tiling.tile(t);
                let pixels = rows * w;
                gather(shape, dy, n, r0, rows, blocks);
                // dx[n, c, tile] = weight[c, ·] · blocks.
                // SAFETY: this tile alone writes rows r0..r0+rows of image n in each
                // of the ci planes, inside dx (length = input_len); weight is
                // ci × block, blocks block × pixels.
                unsafe {
                    gemm::gemm(
                        ci,
                        pixels,
                        block,
                        (dx_addr as *mut f32).add(n * ci * h * w + r0 * w),
                        1,
                        (h * w) as isize,
                        false,
                        weight.as_ptr(),
                        1,
                        block as isize,
                        blocks.as_ptr(),
                        1,
                        pixels as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        parallelism,
                    );
                }
            },
        )
    };
    // SAFETY: the tiles cover every row of every image, and each tile's gemm writes
    // its rows in all ci planes (no read of the destination).
    Ok(unsafe { written_in_full(shape.input_len(), fill) })
}

/// The gradient of [`conv_transpose2d`] with respect to its weight
/// (`[in, out, kh, kw]`), from the input `x` and the output gradient `dy`.
pub fn conv_transpose2d_weight_grad(
    shape: &UpShape,
    x: &[f32],
    dy: &[f32],
) -> Result<Vec<f32>, ConvError> {
    shape.validate()?;
    check_len("input", x.len(), shape.input_len())?;
    check_len("output gradient", dy.len(), shape.output_len())?;
    let [h, w] = shape.input;
    let (ci, block) = (shape.in_channels, shape.block());
    let tiling = shape.tiling();
    Ok(sum_over_tiles(
        shape.batch * tiling.per_image,
        [ci, block],
        block * tiling.rows * w,
        |acc, blocks, t, parallelism| {
            let (n, r0, rows) = tiling.tile(t);
            let pixels = rows * w;
            gather(shape, dy, n, r0, rows, blocks);
            let x_tile = &x[n * ci * h * w + r0 * w..];
            // acc[c, ·] += x[n, c, tile] · blocksᵀ.
            // SAFETY: acc is ci × block; x_tile's ci rows of `pixels` values at
            // stride h·w lie inside x (checked); blocks holds block rows of
            // `pixels` values.
            unsafe {
                add_a_bt(
                    [ci, block, pixels],
                    acc,
                    (x_tile.as_ptr(), h * w),
                    (blocks.as_ptr(), pixels),
                    parallelism,
                );
            }
        },
    ))
}

/// The gradient of [`conv_transpose2d`] with respect to its bias: `dy` summed over
/// the batch and the pixels, per output channel.
pub fn conv_transpose2d_bias_grad(shape: &UpShape, dy: &[f32]) -> Result<Vec<f32>, ConvError> {
    shape.validate()?;
    check_len("output gradient", dy.len(), shape.output_len())?;
    let [ho, wo] = shape.output();
    Ok(crate::channel_sums(dy, shape.out_channels, ho * wo))
}
