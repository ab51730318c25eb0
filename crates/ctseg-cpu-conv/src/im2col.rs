//! The tiles: im2col of a few whole output rows of one image, and the `gemm` calls
//! that consume them. Shapes are validated by the caller ([`crate::ConvShape`]).

use rayon::prelude::*;

use crate::ConvShape;
use crate::scratch::with_scratch;

/// Output pixels per tile (whole rows, at least one): 512 keeps the im2col block of a
/// 32-channel 3×3 layer (288 × 512 floats, 576 KiB) in a core's L2 cache.
pub const TILE_PIXELS: usize = 512;

/// Run `work(scratch, tile, parallelism)` for tiles `0..tiles`, with `scratch_len`
/// values of per-thread scratch ([`with_scratch`]: left over from earlier calls, so
/// `work` writes what it reads): in parallel over tiles (each gemm single-threaded)
/// when they spread evenly over rayon's threads, else one tile after another with
/// each gemm using every thread — a batch-1 bottleneck is one tile, which would
/// otherwise leave all but one core idle.
pub(crate) fn for_each_tile(
    tiles: usize,
    scratch_len: usize,
    work: impl Fn(&mut [f32], usize, gemm::Parallelism) + Send + Sync,
) {
    let threads = rayon::current_num_threads();
    if threads > 1 && tiles < 4 * threads && !tiles.is_multiple_of(threads) {
        with_scratch(scratch_len, |scratch| {
            for t in 0..tiles {
                work(scratch, t, gemm::Parallelism::Rayon(threads));
            }
        });
    } else {
        (0..tiles).into_par_iter().for_each(|t| {
            with_scratch(scratch_len, |scratch| {
                work(scratch, t, gemm::Parallelism::None)
            })
        });
    }
}

/// `Σ_tiles work(tile)` for an `[rows, cols]` result (the weight gradients), held
/// column-major while it is summed (`acc[r + c·rows]`, what [`add_a_bt`] writes) and
/// returned row-major. `work(acc, buf, tile, parallelism)` adds a tile into `acc`,
/// with `buf_len` values of per-thread scratch (contents left over: `work` writes
/// what it reads).
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
        let mut acc = vec![0f32; acc_len];
        with_scratch(buf_len, |buf| {
            for t in 0..tiles {
                work(&mut acc, buf, t, gemm::Parallelism::Rayon(threads));
            }
        });
        acc
    } else {
        (0..tiles)
            .into_par_iter()
            .fold(
                || vec![0f32; acc_len],
                |mut acc, t| {
                    with_scratch(buf_len, |buf| {
                        work(&mut acc, buf, t, gemm::Parallelism::None)
                    });
                    acc
                },
            )
            .reduce(
                || vec![0f32; acc_len],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    a
                },
            )
    };
    let mut row_major = vec![0f32; acc_len];
    // In bands of 32 rows over rayon's threads and 32 × 32 blocks within a band, so
    // that both sides stay in cache (a bottleneck layer's gradient is 512 × 4608
    // values).
    const BLOCK: usize = 32;
    row_major
        .par_chunks_mut(BLOCK * cols)
        .enumerate()
        .for_each(|(band, dst)| {
            let r0 = band * BLOCK;
            let band_rows = dst.len() / cols;
            for c0 in (0..cols).step_by(BLOCK) {
                for c in c0..(c0 + BLOCK).min(cols) {
                    for r in 0..band_rows {
                        dst[r * cols + c] = column_major[r0 + r + c * rows];
                    }
                }
            }
        });
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
/// `r0..r0 + rows` of image `n` of `x` (`[batch, in, h, w]`): one block of `kh·kw`
/// rows per input channel, the channels over rayon's threads when the tile's gemm
/// uses them too (the few-tile path, where the tiles run one after another).
fn fill_tile(
    shape: &ConvShape,
    x: &[f32],
    (n, r0, rows): (usize, usize, usize),
    col: &mut [f32],
    parallelism: gemm::Parallelism,
) {
    let [h, w] = shape.input;
    let [_, wo] = shape.output();
    let per_channel = shape.kernel[0] * shape.kernel[1] * rows * wo;
    let image = &x[n * shape.in_channels * h * w..][..shape.in_channels * h * w];
    let blocks = &mut col[..shape.in_channels * per_channel];
    let fill = |(c, block): (usize, &mut [f32])| {
        fill_channel(shape, &image[c * h * w..(c + 1) * h * w], (r0, rows), block)
    };
    if matches!(parallelism, gemm::Parallelism::Rayon(_)) {
        blocks
            .par_chunks_mut(per_channel)
            .enumerate()
            .for_each(fill);
    } else {
        blocks.chunks_mut(per_channel).enumerate().for_each(fill);
    }
}

/// One input channel's `kh·kw` im2col rows (`block`, `kh·kw × rows·wo`) from its
/// `[h, w]` plane. Output rows whose input row lies outside the image are zeros.
/// When the output is as wide as the input (a "same" convolution) the rows of a
/// kernel tap are one shifted copy of consecutive input rows, after which the
/// columns that read across a row's edge are zeroed; otherwise row by row.
fn fill_channel(shape: &ConvShape, plane: &[f32], (r0, rows): (usize, usize), block: &mut [f32]) {
    let [h, w] = shape.input;
    let [_, wo] = shape.output();
    let [kh, kw] = shape.kernel;
    let [top, _, left, _] = shape.padding;
    let pixels = rows * wo;
    for i in 0..kh {
        for j in 0..kw {
            let dst = &mut block[(i * kw + j) * pixels..][..pixels];
            // Output row r reads input row r0 + r + i − top: rows first..end do.
            let shift = (r0 + i) as isize - top as isize;
            let first = (-shift).clamp(0, rows as isize) as usize;
            let end = (h as isize - shift).clamp(first as isize, rows as isize) as usize;
            dst[..first * wo].fill(0.0);
            dst[end * wo..].fill(0.0);
            if first == end {
                continue;
            }
            let y0 = (shift + first as isize) as usize;
            // Output column x reads input column x + j − left: the valid range.
            let x_start = left.saturating_sub(j).min(wo);
            let x_end = (w + left).saturating_sub(j).min(wo).max(x_start);
            let run = &mut dst[first * wo..end * wo];
            if wo == w {
                // run[k] = plane[base + k] for every k whose source is inside the
                // plane; the values that crossed a row's edge are zeroed below.
                let base = (y0 * w) as isize + j as isize - left as isize;
                let k0 = (-base).clamp(0, run.len() as isize) as usize;
                let k1 = ((h * w) as isize - base).clamp(k0 as isize, run.len() as isize) as usize;
                let from = (base + k0 as isize) as usize;
                run[k0..k1].copy_from_slice(&plane[from..from + (k1 - k0)]);
                run[..k0].fill(0.0);
                run[k1..].fill(0.0);
                for row in run.chunks_exact_mut(w) {
                    row[..x_start].fill(0.0);
                    row[x_end..].fill(0.0);
                }
            } else {
                for (r, row) in run.chunks_exact_mut(wo).enumerate() {
                    let src_row = &plane[(y0 + r) * w..][..w];
                    row[..x_start].fill(0.0);
                    let s0 = x_start + j - left;
                    row[x_start..x_end].copy_from_slice(&src_row[s0..s0 + (x_end - x_start)]);
                    row[x_end..].fill(0.0);
                }
            }
        }
    }
}

/// `out[n, o, ·] = weight[o, ·] · col(x)` for every tile (no bias), written in full
/// at `out_addr` (the address of `batch · out · ho · wo` values).
///
/// # Safety
/// `out_addr` is the start of `batch · out_channels · ho · wo` writable values that
/// nothing else uses meanwhile.
pub(crate) unsafe fn forward(shape: &ConvShape, x: &[f32], weight: &[f32], out_addr: usize) {
    let [ho, wo] = shape.output();
    let patch = shape.patch();
    let co = shape.out_channels;
    let tiling = Tiling::of_grid(shape.output());
    let tiles = shape.batch * tiling.per_image;
    for_each_tile(tiles, patch * tiling.rows * wo, |col, t, parallelism| {
        let (n, r0, rows) = tiling.tile(t);
        let pixels = rows * wo;
        fill_tile(shape, x, (n, r0, rows), col, parallelism);
        // SAFETY: tile t writes output rows r0..r0+rows of image n in each of the
        // co planes — `co` runs of `pixels` values starting at
        // (n·co + o)·ho·wo + r0·wo — disjoint from every other tile's, and inside
        // the output (the caller's contract). `weight` is co × patch (checked by
        // the caller), `col` holds patch × pixels.
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
    });
}

/// `Σ_tiles dy[o, tile] · col(x)[·, tile]ᵀ`: `[out, patch]`.
pub(crate) fn weight_grad(shape: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let [ho, wo] = shape.output();
    let patch = shape.patch();
    let co = shape.out_channels;
    let tiling = Tiling::of_grid(shape.output());
    let tiles = shape.batch * tiling.per_image;
    sum_over_tiles(
        tiles,
        [co, patch],
        patch * tiling.rows * wo,
        |acc, col, t, parallelism| {
            let (n, r0, rows) = tiling.tile(t);
            let pixels = rows * wo;
            fill_tile(shape, x, (n, r0, rows), col, parallelism);
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
