//! Fill-between-slices: a structure drawn on non-adjacent slices of a view is filled
//! in on the slices between them by shape-based interpolation (the signed distance
//! maps of the two drawn outlines are blended linearly, and the zero level is kept).

use crate::labels::LabelVolume;
use crate::slicing::SliceGrid;

/// One slice to fill: its index along the view's normal and the pixels inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilledSlice {
    /// Slice index.
    pub index: usize,
    /// Pixels `(col, row)` that the interpolated shape covers.
    pub pixels: Vec<(usize, usize)>,
}

/// Slices of `grid` between slices that hold `label`, with the interpolated shape.
/// Slices that already hold the label are left alone; only gaps between two drawn
/// slices are filled (nothing is extrapolated past the first or last).
pub fn between_slices(grid: &SliceGrid, labels: &LabelVolume, label: u8) -> Vec<FilledSlice> {
    let (w, h) = grid.size();
    let mut buf = Vec::new();
    let mut masks: Vec<Option<Vec<bool>>> = Vec::with_capacity(grid.count());
    for index in 0..grid.count() {
        grid.extract(labels, index, &mut buf);
        let m: Vec<bool> = buf.iter().map(|&l| l == label).collect();
        masks.push(m.iter().any(|&b| b).then_some(m));
    }
    let drawn: Vec<usize> = (0..masks.len()).filter(|&i| masks[i].is_some()).collect();
    let mut out = Vec::new();
    for pair in drawn.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b - a < 2 {
            continue;
        }
        let (Some(ma), Some(mb)) = (&masks[a], &masks[b]) else {
            continue;
        };
        let da = signed_distance(ma, w, h);
        let db = signed_distance(mb, w, h);
        for index in a + 1..b {
            let t = (index - a) as f32 / (b - a) as f32;
            let pixels: Vec<(usize, usize)> = (0..w * h)
                .filter(|&p| (1.0 - t) * da[p] + t * db[p] <= 0.0)
                .map(|p| (p % w, p / w))
                .collect();
            out.push(FilledSlice { index, pixels });
        }
    }
    out
}

/// Signed distance in pixels to the mask's edge: negative inside, positive outside
/// (±0.5 at pixels next to the edge). Two-pass 3×3 chamfer distance.
fn signed_distance(mask: &[bool], w: usize, h: usize) -> Vec<f32> {
    let to_inside = chamfer(mask, w, h, true);
    let to_outside = chamfer(mask, w, h, false);
    mask.iter()
        .zip(to_inside.iter().zip(&to_outside))
        .map(|(&m, (&di, &dout))| if m { -(dout - 0.5) } else { di - 0.5 })
        .collect()
}

/// Distance from each pixel to the nearest pixel whose mask equals `target`.
fn chamfer(mask: &[bool], w: usize, h: usize, target: bool) -> Vec<f32> {
    const DIAG: f32 = std::f32::consts::SQRT_2;
    let far = (w + h) as f32 * 2.0;
    let mut d: Vec<f32> = mask
        .iter()
        .map(|&m| if m == target { 0.0 } else { far })
        .collect();
    for r in 0..h {
        for c in 0..w {
            let p = r * w + c;
            let mut v = d[p];
            if c > 0 {
                v = v.min(d[p - 1] + 1.0);
            }
            if r > 0 {
                v = v.min(d[p - w] + 1.0);
                if c > 0 {
                    v = v.min(d[p - w - 1] + DIAG);
                }
                if c + 1 < w {
                    v = v.min(d[p - w + 1] + DIAG);
                }
            }
            d[p] = v;
        }
    }
    for r in (0..h).rev() {
        for c in (0..w).rev() {
            let p = r * w + c;
            let mut v = d[p];
            if c + 1 < w {
                v = v.min(d[p + 1] + 1.0);
            }
            if r + 1 < h {
                v = v.min(d[p + w] + 1.0);
                if c + 1 < w {
                    v = v.min(d[p + w + 1] + DIAG);
                }
                if c > 0 {
                    v = v.min(d[p + w - 1] + DIAG);
                }
            }
            d[p] = v;
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Geometry, IDENTITY};
    use crate::slicing::Axis;
    use crate::volume::Volume;

    /// Squares of half-width `r0` at k=0 and `r1` at k=4 around (16,16), label 9.
    fn two_squares(r0: usize, r1: usize) -> LabelVolume {
        let shape = [32, 32, 5];
        let mut l: LabelVolume = Volume::zeros(Geometry::new(shape, IDENTITY));
        for (k, r) in [(0, r0), (4, r1)] {
            for j in 16 - r..16 + r {
                for i in 16 - r..16 + r {
                    let idx = l.index([i, j, k]);
                    l.data_mut()[idx] = 9;
                }
            }
        }
        l
    }

    #[test]
    fn the_shape_grows_linearly_between_drawn_slices() {
        let l = two_squares(4, 12);
        let grid = SliceGrid::new(Axis::Axial, l.shape(), [1.0; 3]);
        let filled = between_slices(&grid, &l, 9);
        assert_eq!(
            filled.iter().map(|f| f.index).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        // Expected half-widths 6, 8, 10: areas 144, 256, 400 (chamfer corners round a
        // little).
        for (f, side) in filled.iter().zip([12usize, 16, 20]) {
            let area = f.pixels.len() as f64;
            let want = (side * side) as f64;
            assert!(
                (area - want).abs() / want < 0.08,
                "slice {}: {area} vs {want}",
                f.index
            );
            assert!(f.pixels.contains(&(16, 16)));
        }
    }

    #[test]
    fn no_gap_means_nothing_to_fill_and_other_views_work() {
        let l = two_squares(3, 3);
        let grid = SliceGrid::new(Axis::Axial, l.shape(), [1.0; 3]);
        assert!(between_slices(&grid, &l, 7).is_empty(), "absent label");
        // In a coronal view the squares are two short lines per slice with a gap in k;
        // they are not separate slices along j, so nothing is filled there.
        let coronal = SliceGrid::new(Axis::Coronal, l.shape(), [1.0; 3]);
        assert!(between_slices(&coronal, &l, 9).is_empty());
    }
}
