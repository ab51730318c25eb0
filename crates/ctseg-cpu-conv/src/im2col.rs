//! The tiles: im2col of a few whole output rows of one image, and the `gemm` calls
//! that consume them. Shapes are validated by the caller ([`crate::ConvShape`]).

use rayon::prelude::*;

use crate::ConvShape;

/// Output pixels per tile (whole rows, at least one): 512 keeps the im2col block of a
/// 32-channel 3×3 layer (288 × 512 floats, 576 KiB) in a core's L2 cache.
pub const TILE_PIXELS: usize = 512;

/// Run `work(state, tile, parallelism)` for tiles `0..tiles`: in parallel over tiles
/// (each gemm single-threaded) when they spread evenly over rayon's threads, else one
/// tile after another with each gemm using every thread — a batch-1 bottleneck is one
/// tile, which would otherwise leave all but one core idle.
pub(crate) fn for_each_tile<S>(
    tiles: usize,
    init: impl Fn() -> S + Send + Sync,
    work: impl Fn(&mut S, usize, gemm::Parallelism) + Send + Sync,
) {
    let threads = rayon::current_num_threads();
    if threads > 1 && tiles < 4 * threads && !tiles.is_multiple_of(threads) {
        let mut state = init();
        for t in 0..tiles {
            work(&mut state, t, gemm::Parallelism::Rayon(threads));
        }
    } else {
        (0..tiles)
            .into_par_iter()
            .for_each_init(init, |state, t| work(state, t, gemm::Parallelism::None));
    }
}

/// `Σ_tiles work(tile)` for an `[rows, cols]` result (the weight gradients), held
/// column-major while it is summed (`acc[r + c·rows]`, what [`add_a_bt`] writes) and
/// returned row-major. `work(acc, buf, tile, parallelism)` adds a tile into `acc`,
/// with a `buf_len` scratch buffer.
///
/// With many tiles, each rayon job keeps its own accumulator and the jobs' sums are
/// added at the end. With few (no more than two per thread: the bottleneck layers at
/// a small batch, whose accumulators are the largest, 512 × 4608 values), the tiles
/// run one after another into one accumulator, each gemm on every thread.
pub(crate) fn sum_over_tiles(
    tiles: usize,
    [rows, cols]: [usize; 2],
    buf_len: usize,
    work: impl Fn(&mut [f32], &mut [f32], usize, gemm::Parallelism) + Send + Sync,
) -> Vec<f32> {
    let acc_len = rows * cols;
    let threads = rayon::current_num_threads();
    let column_major = if threads > 1 && tiles <= 2 * threads {
        let (mut acc, mut buf) = (vec![0f32; acc_len], vec![0f32; buf_len]);
        for t in 0..tiles {
            work(&mut acc, &mut buf, t, gemm::Parallelism::Rayon(threads));
        }
        acc
    } else {
        (0..tiles)
            .into_par_iter()
            .fold(
                || (vec![0f32; acc_len], vec![0f32; buf_len]),
                |(mut acc, mut buf), t| {
                    work(&mut acc, &mut buf, t, gemm::Parallelism::None);
                    (acc, buf)
                },
            )
            .map(|(acc, _)| acc)
            .reduce(
                || vec![0f32; acc_len],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    a
                },
            )
    };
    let mut row_major = vec![0f32; acc_len];
    // In 32 × 32 blocks, so that both sides stay in cache (a bottleneck layer's
    // gradient is 512 × 4608 values).
    const BLOCK: usize = 32;
    for c0 in (0..cols).step_by(BLOCK) {
        for r0 in (0..rows).step_by(BLOCK) {
            for c in c0..(c0 + BLOCK).min(cols) {
                for r in r0..(r0 + BLOCK).min(rows) {
                    row_major[r * cols + c] = column_major[r + c * rows];
                }
            }
        }
    }
    row_major
}

/// `acc += A · Bᵀ` with `acc` `[m, n]` column-major, `A` `m` rows of `k` values
/// `a_stride` apart and `B` `n` rows of `k` values `b_stride` apart (both contiguous
/// along `k`). A column-major destination lets gemm run its fast kernels here: about
/// 3× the throughput of a row-major one for the weight gradients' narrow shapes
/// (measured with gemm 0.19, AVX-512, 32 × 288 × 512).
///
/// # Safety
/// `acc` holds `m·n` values; `a` reaches `(m − 1)·a_stride + k` values and `b`
/// `(n − 1)·b_stride + k`.
pub(crate) unsafe fn add_a_bt(
    [m, n, k]: [usize; 3],
    acc: &mut [f32],
    (a, a_stride): (*const f32, usize),
    (b, b_stride): (*const f32, usize),
    parallelism: gemm::Parallelism,
) {
    debug_assert_eq!(acc.len(), m * n, "accumulator length");
    // SAFETY: the caller's bounds; acc is m × n with row stride 1, column stride m.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            acc.as_mut_ptr(),
            m as isize,
            1,
            true,
            a,
            1,
            a_stride as isize,
            b,
            b_stride as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// How a grid of `height × width` values per image is cut into tiles of whole rows,
/// about [`TILE_PIXELS`] values each (the convolutions tile their output, the
/// transposed convolutions their input).
pub(crate) struct Tiling {
    /// Rows per tile (the last tile of an image may have fewer).
    pub(crate) rows: usize,
    /// Tiles per image.
    pub(crate) per_image: usize,
    height: usize,
}

impl Tiling {
    /// The tiling of an `[height, width]` grid.
    pub(crate) fn of_grid([height, width]: [usize; 2]) -> Tiling {
        let rows = (TILE_PIXELS / width.max(1)).clamp(1, height.max(1));
        Tiling {
            rows,
            per_image: height.div_ceil(rows),
            height,
        }
    }

    /// (image, first row, rows) of tile `t`.
    pub(crate) fn tile(&self, t: usize) -> (usize, usize, usize) {
        let image = t / self.per_image;
        let r0 = (t % self.per_image) * self.rows;
        (image, r0, self.rows.min(self.height - r0))
    }
}

/// Fill `col` (`patch × rows·wo`, row-major) with the im2col block of output rows
/// `r0..r0 + rows` of `image` (the image's `[in, h, w]` values).
fn fill_tile(shape: &ConvShape, image: &[f32], r0: usize, rows: usize, col: &mut [f32]) {
    let [h, w] = shape.input;
    let [_, wo] = shape.output();
    let [kh, kw] = shape.kernel;
    let [top, _, left, _] = shape.padding;
    let pixels = rows * wo;
    for c in 0..shape.in_channels {
        let plane = &image[c * h * w..(c + 1) * h * w];
        for i in 0..kh {
            for j in 0..kw {
                let row = ((c * kh + i) * kw + j) * pixels;
                // Output column x reads input column x + j − left: the valid range.
                let x_start = left.saturating_sub(j).min(wo);
                let x_end = (w + left).saturating_sub(j).min(wo).max(x_start);
                for r in 0..rows {
                    let dst = &mut col[row + r * wo..row + (r + 1) * wo];
                    let y = (r0 + r + i) as isize - top as isize;
                    if y < 0 || y >= h as isize {
                        dst.fill(0.0);
                        continue;
                    }
                    let src_row = &plane[y as usize * w..(y as usize + 1) * w];
                    dst[..x_start].fill(0.0);
                    let s0 = x_start + j - left;
                    dst[x_start..x_end].copy_from_slice(&src_row[s0..s0 + (x_end - x_start)]);
                    dst[x_end..].fill(0.0);
                }
            }
        }
    }
}

/// `out[n, o, ·] = weight[o, ·] · col(x)` for every tile (no bias).
pub(crate) fn forward(shape: &ConvShape, x: &[f32], weight: &[f32], out: &mut [f32]) {
    let [h, w] = shape.input;
    let [ho, wo] = shape.output();
    let patch = shape.patch();
    let (ci, co) = (shape.in_channels, shape.out_channels);
    let tiling = Tiling::of_grid(shape.output());
    let tiles = shape.batch * tiling.per_image;
    assert_eq!(out.len(), shape.batch * co * ho * wo, "output length");
    let out_addr = out.as_mut_ptr() as usize;
    for_each_tile(
        tiles,
        || vec![0f32; patch * tiling.rows * wo],
        |col, t, parallelism| {
            let (n, r0, rows) = tiling.tile(t);
            let pixels = rows * wo;
            fill_tile(
                shape,
                &x[n * ci * h * w..(n + 1) * ci * h * w],
                r0,
                rows,
                col,
            );
            // SAFETY: tile t writes output rows r0..r0+rows of image n in each of the
            // co planes — `co` runs of `pixels` values starting at
            // (n·co + o)·ho·wo + r0·wo — disjoint from every other tile's, and inside
            // `out` (asserted length). `weight` is co × patch (checked by the caller),
            // `col` holds patch × pixels.
            unsafe {
                let dst = (out_addr as *mut f32).add(n * co * ho * wo + r0 * wo);
                gemm::gemm(
                    co,
                    pixels,
                    patch,
                    dst,
                    1,
                    (ho * wo) as isize,
                    false,
                    weight.as_ptr(),
                    1,
                    patch as isize,
                    col.as_ptr(),
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
    );
}

/// `Σ_tiles dy[o, tile] · col(x)[·, tile]ᵀ`: `[out, patch]`.
pub(crate) fn weight_grad(shape: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let [h, w] = shape.input;
    let [ho, wo] = shape.output();
    let patch = shape.patch();
    let (ci, co) = (shape.in_channels, shape.out_channels);
    let tiling = Tiling::of_grid(shape.output());
    let tiles = shape.batch * tiling.per_image;
    sum_over_tiles(
        tiles,
        [co, patch],
        patch * tiling.rows * wo,
        |acc, col, t, parallelism| {
            let (n, r0, rows) = tiling.tile(t);
            let pixels = rows * wo;
            fill_tile(
                shape,
                &x[n * ci * h * w..(n + 1) * ci * h * w],
                r0,
                rows,
                col,
            );
            let dy_tile = &dy[n * co * ho * wo + r0 * wo..];
            // acc[o, ·] += dy[n, o, tile] · col(x)ᵀ.
            // SAFETY: acc is co × patch; dy_tile's co rows of `pixels` values at
            // stride ho·wo lie inside dy (lengths checked by the caller); col holds
            // patch rows of `pixels` values.
            unsafe {
                add_a_bt(
                    [co, patch, pixels],
                    acc,
                    (dy_tile.as_ptr(), ho * wo),
                    (col.as_ptr(), pixels),
                    parallelism,
                );
            }
        },
    )
}
