//! 2-D resampling of slices between the source grid and the model's square input:
//! bilinear for intensities, nearest for labels. Both use half-pixel centres (the
//! convention of PyTorch `align_corners=False` and OpenCV), so resizing there and back
//! keeps structures in place.

/// For an output axis of length `out_len` resampled from `in_len`, the source
/// coordinate of output sample `o` (half-pixel centres).
#[inline]
pub fn source_coord(o: usize, in_len: usize, out_len: usize) -> f32 {
    (o as f32 + 0.5) * (in_len as f32 / out_len as f32) - 0.5
}

/// Precomputed bilinear taps along one axis: (index0, index1, weight of index1).
fn taps(in_len: usize, out_len: usize) -> Vec<(usize, usize, f32)> {
    (0..out_len)
        .map(|o| {
            let c = source_coord(o, in_len, out_len).clamp(0.0, (in_len - 1) as f32);
            let i0 = c.floor() as usize;
            let i1 = (i0 + 1).min(in_len - 1);
            (i0, i1, c - i0 as f32)
        })
        .collect()
}

/// Bilinear resize of a row-major `in_w × in_h` image (x fastest) to `out_w × out_h`.
pub fn resize_bilinear(
    input: &[f32],
    in_w: usize,
    in_h: usize,
    out_w: usize,
    out_h: usize,
    output: &mut [f32],
) {
    debug_assert_eq!(input.len(), in_w * in_h);
    debug_assert_eq!(output.len(), out_w * out_h);
    if in_w == out_w && in_h == out_h {
        output.copy_from_slice(input);
        return;
    }
    let tx = taps(in_w, out_w);
    let ty = taps(in_h, out_h);
    for (oy, &(y0, y1, wy)) in ty.iter().enumerate() {
        let row0 = &input[y0 * in_w..(y0 + 1) * in_w];
        let row1 = &input[y1 * in_w..(y1 + 1) * in_w];
        let out_row = &mut output[oy * out_w..(oy + 1) * out_w];
        for (o, &(x0, x1, wx)) in out_row.iter_mut().zip(&tx) {
            let top = row0[x0] + (row0[x1] - row0[x0]) * wx;
            let bottom = row1[x0] + (row1[x1] - row1[x0]) * wx;
            *o = top + (bottom - top) * wy;
        }
    }
}

/// Nearest-neighbour resize of a label map (same conventions as [`resize_bilinear`]).
pub fn resize_nearest<T: Copy>(
    input: &[T],
    in_w: usize,
    in_h: usize,
    out_w: usize,
    out_h: usize,
    output: &mut [T],
) {
    debug_assert_eq!(input.len(), in_w * in_h);
    debug_assert_eq!(output.len(), out_w * out_h);
    let nearest = |o: usize, in_len: usize, out_len: usize| {
        let c = (o as f32 + 0.5) * (in_len as f32 / out_len as f32);
        (c.floor() as usize).min(in_len - 1)
    };
    let xs: Vec<usize> = (0..out_w).map(|o| nearest(o, in_w, out_w)).collect();
    for oy in 0..out_h {
        let y = nearest(oy, in_h, out_h);
        let row = &input[y * in_w..(y + 1) * in_w];
        for (o, &x) in output[oy * out_w..(oy + 1) * out_w].iter_mut().zip(&xs) {
            *o = row[x];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_size_is_a_copy() {
        let input: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let mut out = vec![0.0; 12];
        resize_bilinear(&input, 4, 3, 4, 3, &mut out);
        assert_eq!(out, input);
    }

    #[test]
    fn bilinear_preserves_a_linear_ramp_inside() {
        let input: Vec<f32> = (0..8).map(|x| x as f32).collect(); // 8×1 ramp
        let mut out = vec![0.0; 16];
        resize_bilinear(&input, 8, 1, 16, 1, &mut out);
        // Interior samples lie on the ramp: x_src = (o + 0.5)/2 - 0.5.
        for (o, &v) in out.iter().enumerate().take(15).skip(1) {
            let expected = (o as f32 + 0.5) / 2.0 - 0.5;
            assert!((v - expected).abs() < 1e-5, "{o}: {v} vs {expected}");
        }
    }

    #[test]
    fn nearest_down_and_up_keeps_blocks() {
        // 4×4 with a 2×2 block of label 7 in the top-left corner.
        let mut labels = vec![0u8; 16];
        for y in 0..2 {
            for x in 0..2 {
                labels[y * 4 + x] = 7;
            }
        }
        let mut up = vec![0u8; 64];
        resize_nearest(&labels, 4, 4, 8, 8, &mut up);
        assert_eq!(up.iter().filter(|&&l| l == 7).count(), 16);
        let mut down = vec![0u8; 16];
        resize_nearest(&up, 8, 8, 4, 4, &mut down);
        assert_eq!(down, labels);
    }
}
