//! 2×2 max pooling with stride 2 (the U-Net's downsampling), NCHW, no padding, the
//! output rounded down: one pass over each pair of input rows, parallel over planes.
//! The indices are what Burn's CPU backend returns and its backward reads: per
//! plane, `row · width + column` of the window's maximum; ties keep the first value
//! in row-major order, and a NaN wins (the last NaN of the window), as in PyTorch.

use rayon::prelude::*;

use crate::{ConvError, check_len};

/// Planes (`batch · channels`) of `height × width` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolShape {
    /// `batch · channels`.
    pub planes: usize,
    /// Input height and width.
    pub input: [usize; 2],
}

impl PoolShape {
    /// Output height and width: the input's halved, rounded down.
    pub fn output(&self) -> [usize; 2] {
        [self.input[0] / 2, self.input[1] / 2]
    }

    fn validate(&self, x: &[f32]) -> Result<(), ConvError> {
        let [ho, wo] = self.output();
        if self.planes == 0 || ho == 0 || wo == 0 {
            return Err(ConvError::Shape(format!(
                "2×2 pooling needs at least one plane of 2×2 values: {self:?}"
            )));
        }
        check_len(
            "input",
            x.len(),
            self.planes * self.input[0] * self.input[1],
        )
    }
}

/// The maximum of one window and its index in the plane, in the order of the
/// generic kernel: (r, c), (r, c + 1), (r + 1, c), (r + 1, c + 1).
#[inline(always)]
fn window(values: [f32; 4], indices: [usize; 4]) -> (f32, usize) {
    let (mut best, mut at) = (values[0], indices[0]);
    for k in 1..4 {
        let v = values[k];
        if v > best || v.is_nan() {
            best = v;
            at = indices[k];
        }
    }
    (best, at)
}

/// Pool every plane of `x` into `out`, and write each window's index into `indices`
/// when given.
fn pool_rows(shape: &PoolShape, x: &[f32], out: &mut [f32], indices: Option<&mut [i64]>) {
    let [h, w] = shape.input;
    let [ho, wo] = shape.output();
    let planes_in = x.par_chunks_exact(h * w);
    match indices {
        Some(indices) => planes_in
            .zip(out.par_chunks_exact_mut(ho * wo))
            .zip(indices.par_chunks_exact_mut(ho * wo))
            .for_each(|((plane, out), idx)| {
                for r in 0..ho {
                    let (top, bottom) = (2 * r * w, (2 * r + 1) * w);
                    for c in 0..wo {
                        let i = [
                            top + 2 * c,
                            top + 2 * c + 1,
                            bottom + 2 * c,
                            bottom + 2 * c + 1,
                        ];
                        let (v, at) =
                            window([plane[i[0]], plane[i[1]], plane[i[2]], plane[i[3]]], i);
                        out[r * wo + c] = v;
                        idx[r * wo + c] = at as i64;
                    }
                }
            }),
        None => planes_in
            .zip(out.par_chunks_exact_mut(ho * wo))
            .for_each(|(plane, out)| {
                for r in 0..ho {
                    let top = &plane[2 * r * w..2 * r * w + 2 * wo];
                    let bottom = &plane[(2 * r + 1) * w..(2 * r + 1) * w + 2 * wo];
                    let row = &mut out[r * wo..(r + 1) * wo];
                    for ((o, t), b) in row
                        .iter_mut()
                        .zip(top.chunks_exact(2))
                        .zip(bottom.chunks_exact(2))
                    {
                        *o = window([t[0], t[1], b[0], b[1]], [0; 4]).0;
                    }
                }
            }),
    }
}

/// 2×2 stride-2 max pooling of `x` (`planes × h × w`): the output
/// (`planes × ⌊h/2⌋ × ⌊w/2⌋`).
pub fn max_pool_2x2(shape: &PoolShape, x: &[f32]) -> Result<Vec<f32>, ConvError> {
    shape.validate(x)?;
    let [ho, wo] = shape.output();
    let mut out = vec![0f32; shape.planes * ho * wo];
    pool_rows(shape, x, &mut out, None);
    Ok(out)
}

/// [`max_pool_2x2`] and, per output value, the index in its plane
/// (`row · w + column`) of the input value it took.
pub fn max_pool_2x2_with_indices(
    shape: &PoolShape,
    x: &[f32],
) -> Result<(Vec<f32>, Vec<i64>), ConvError> {
    shape.validate(x)?;
    let [ho, wo] = shape.output();
    let mut out = vec![0f32; shape.planes * ho * wo];
    let mut indices = vec![0i64; shape.planes * ho * wo];
    pool_rows(shape, x, &mut out, Some(&mut indices));
    Ok((out, indices))
}
