//! The pixels an editing tool touches in one slice of a view: round brush stamps and
//! swept strokes, flood fill, polygon/lasso fill, and the rule that decides which of
//! those voxels may change (eraser, protected structures, HU range).

use std::collections::VecDeque;

use crate::labels::LabelVolume;
use crate::slicing::SliceGrid;
use crate::volume::Volume;

/// Which voxels a tool may change, and to what.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaintRule {
    /// Value written: the selected structure, or 0 to erase.
    pub value: u8,
    /// The structure being edited (erasing with `protect` removes only this one).
    pub selected: u8,
    /// Leave voxels of other structures alone.
    pub protect: bool,
    /// Only voxels whose HU lies in this inclusive range (threshold paint).
    pub hu_range: Option<(i16, i16)>,
}

impl PaintRule {
    /// May a voxel now labelled `current`, of intensity `hu`, be changed?
    pub fn allows(&self, current: u8, hu: i16) -> bool {
        if let Some((lo, hi)) = self.hu_range
            && !(lo..=hi).contains(&hu)
        {
            return false;
        }
        if self.value == 0 {
            !self.protect || current == self.selected
        } else {
            !self.protect || current == 0 || current == self.value
        }
    }
}

/// Pixels `(col, row)` of a round brush of `radius` pixels centred on `centre`
/// (pixel coordinates, pixel centres at `x + 0.5`). The radius is measured along the
/// finer pixel side, so the brush is round in millimetres on anisotropic grids.
/// Radius 0 is the single pixel under `centre`.
pub fn disc(grid: &SliceGrid, centre: (f32, f32), radius: f32) -> Vec<(usize, usize)> {
    let (w, h) = grid.size();
    let (pw, ph) = grid.pixel_mm();
    let unit = pw.min(ph).max(1e-9);
    let (sx, sy) = ((pw / unit) as f32, (ph / unit) as f32);
    let r = radius.max(0.0);
    let mut out = Vec::new();
    if r < 0.5 {
        let (c, row) = (centre.0.floor(), centre.1.floor());
        if c >= 0.0 && row >= 0.0 && (c as usize) < w && (row as usize) < h {
            out.push((c as usize, row as usize));
        }
        return out;
    }
    let c0 = ((centre.0 - r / sx).floor().max(0.0)) as usize;
    let c1 = ((centre.0 + r / sx).ceil().max(0.0) as usize).min(w);
    let r0 = ((centre.1 - r / sy).floor().max(0.0)) as usize;
    let r1 = ((centre.1 + r / sy).ceil().max(0.0) as usize).min(h);
    for row in r0..r1 {
        for col in c0..c1 {
            let dx = (col as f32 + 0.5 - centre.0) * sx;
            let dy = (row as f32 + 0.5 - centre.1) * sy;
            if dx * dx + dy * dy <= r * r {
                out.push((col, row));
            }
        }
    }
    out
}

/// Pixels swept by the brush moving from `a` to `b` (stamps at most half a radius
/// apart, so fast mouse moves leave no gaps). Pixels may repeat.
pub fn swept_disc(
    grid: &SliceGrid,
    a: (f32, f32),
    b: (f32, f32),
    radius: f32,
) -> Vec<(usize, usize)> {
    let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
    let step = (radius * 0.5).max(0.5);
    let n = (len / step).ceil().max(1.0) as usize;
    let mut out = Vec::new();
    for s in 0..=n {
        let t = s as f32 / n as f32;
        let p = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
        out.extend(disc(grid, p, radius));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The 4-connected region of slice `index` around `seed` that has the seed's label
/// (and, with `hu_range`, lies in that HU range), as pixels.
pub fn flood_region(
    grid: &SliceGrid,
    index: usize,
    labels: &LabelVolume,
    ct: &Volume<i16>,
    seed: (usize, usize),
    hu_range: Option<(i16, i16)>,
) -> Vec<(usize, usize)> {
    let (w, h) = grid.size();
    if seed.0 >= w || seed.1 >= h || index >= grid.count() {
        return Vec::new();
    }
    let mut lab = Vec::new();
    grid.extract(labels, index, &mut lab);
    let mut hu = Vec::new();
    if hu_range.is_some() {
        grid.extract(ct, index, &mut hu);
    }
    let inside = |p: usize, target: u8| {
        lab[p] == target && hu_range.is_none_or(|(lo, hi)| (lo..=hi).contains(&hu[p]))
    };
    let target = lab[seed.1 * w + seed.0];
    let start = seed.1 * w + seed.0;
    if !inside(start, target) {
        return Vec::new();
    }
    let mut seen = vec![false; w * h];
    let mut queue = VecDeque::from([start]);
    seen[start] = true;
    let mut out = Vec::new();
    while let Some(p) = queue.pop_front() {
        let (c, r) = (p % w, p / w);
        out.push((c, r));
        let mut visit = |q: usize| {
            if !seen[q] && inside(q, target) {
                seen[q] = true;
                queue.push_back(q);
            }
        };
        if c > 0 {
            visit(p - 1);
        }
        if c + 1 < w {
            visit(p + 1);
        }
        if r > 0 {
            visit(p - w);
        }
        if r + 1 < h {
            visit(p + w);
        }
    }
    out
}

/// Pixels whose centres lie inside the closed polygon `points` (pixel coordinates;
/// even-odd rule, so a lasso that crosses itself leaves the crossed loops out).
pub fn polygon(grid: &SliceGrid, points: &[(f32, f32)]) -> Vec<(usize, usize)> {
    let (w, h) = grid.size();
    if points.len() < 3 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut xs: Vec<f32> = Vec::new();
    for row in 0..h {
        let y = row as f32 + 0.5;
        xs.clear();
        for (n, &a) in points.iter().enumerate() {
            let b = points[(n + 1) % points.len()];
            if (a.1 <= y) != (b.1 <= y) {
                xs.push(a.0 + (y - a.1) / (b.1 - a.1) * (b.0 - a.0));
            }
        }
        xs.sort_by(f32::total_cmp);
        for pair in xs.chunks_exact(2) {
            // Pixel centres c + 0.5 in [x0, x1).
            let c0 = (pair[0] - 0.5).ceil().max(0.0) as usize;
            let c1 = ((pair[1] - 0.5).ceil().max(0.0) as usize).min(w);
            out.extend((c0..c1).map(|c| (c, row)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Geometry, IDENTITY};
    use crate::slicing::Axis;

    fn grid(shape: [usize; 3], spacing: [f64; 3]) -> SliceGrid {
        SliceGrid::new(Axis::Axial, shape, spacing)
    }

    #[test]
    fn a_disc_is_round_in_millimetres() {
        let g = grid([40, 40, 1], [1.0, 1.0, 1.0]);
        let d = disc(&g, (20.0, 20.0), 3.0);
        // Area close to π r² = 28.3 pixels.
        assert!((25..=32).contains(&d.len()), "{}", d.len());
        assert!(d.contains(&(20, 20)) && d.contains(&(17, 19)) && !d.contains(&(16, 20)));
        // Rows twice as tall as wide: half as many rows.
        let g2 = grid([40, 40, 1], [1.0, 2.0, 1.0]);
        let d2 = disc(&g2, (20.0, 20.0), 4.0);
        let rows = d2
            .iter()
            .map(|p| p.1)
            .collect::<std::collections::BTreeSet<_>>();
        let cols = d2
            .iter()
            .map(|p| p.0)
            .collect::<std::collections::BTreeSet<_>>();
        assert_eq!(cols.len(), 8);
        assert_eq!(rows.len(), 4);
        assert_eq!(disc(&g, (3.7, 9.2), 0.0), vec![(3, 9)]);
        assert!(disc(&g, (-5.0, 3.0), 0.0).is_empty());
        // Clipped at the image edge.
        assert!(
            disc(&g, (0.0, 0.0), 3.0)
                .iter()
                .all(|&(c, r)| c < 4 && r < 4)
        );
    }

    #[test]
    fn a_swept_stroke_has_no_gaps() {
        let g = grid([100, 20, 1], [1.0; 3]);
        let s = swept_disc(&g, (5.0, 10.0), (95.0, 10.0), 2.0);
        for c in 5..95 {
            assert!(s.contains(&(c, 10)), "gap at {c}");
        }
    }

    #[test]
    fn flood_fill_stays_in_its_region_and_hu_range() {
        // Label 2 on columns 0-3; a wall of label 5 at column 4; background beyond.
        let shape = [10, 4, 1];
        let g = grid(shape, [1.0; 3]);
        let geom = Geometry::new(shape, IDENTITY);
        let labels = Volume::new(
            geom.clone(),
            (0..40)
                .map(|p| match p % 10 {
                    0..=3 => 2,
                    4 => 5,
                    _ => 0,
                })
                .collect(),
        )
        .unwrap();
        let ct = Volume::new(
            geom,
            (0..40)
                .map(|p| if p % 10 == 8 { 500 } else { 40 })
                .collect(),
        )
        .unwrap();
        let r = flood_region(&g, 0, &labels, &ct, (6, 1), None);
        assert_eq!(r.len(), 5 * 4);
        assert!(r.iter().all(|&(c, _)| c >= 5));
        let r = flood_region(&g, 0, &labels, &ct, (6, 1), Some((0, 100)));
        assert_eq!(
            r.len(),
            3 * 4,
            "column 8 is out of range and cuts column 9 off"
        );
        assert!(flood_region(&g, 0, &labels, &ct, (8, 1), Some((0, 100))).is_empty());
        assert_eq!(flood_region(&g, 0, &labels, &ct, (1, 1), None).len(), 16);
    }

    #[test]
    fn polygon_fill_covers_pixel_centres_inside() {
        let g = grid([20, 20, 1], [1.0; 3]);
        let sq = polygon(&g, &[(2.0, 2.0), (8.0, 2.0), (8.0, 6.0), (2.0, 6.0)]);
        assert_eq!(sq.len(), 6 * 4);
        let tri = polygon(&g, &[(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)]);
        assert!((40..=60).contains(&tri.len()), "{}", tri.len());
        assert!(polygon(&g, &[(0.0, 0.0), (5.0, 5.0)]).is_empty());
    }

    #[test]
    fn paint_rules() {
        let brush = PaintRule {
            value: 3,
            selected: 3,
            protect: true,
            hu_range: None,
        };
        assert!(brush.allows(0, 0) && brush.allows(3, 0) && !brush.allows(4, 0));
        let over = PaintRule {
            protect: false,
            ..brush
        };
        assert!(over.allows(4, 0));
        let erase = PaintRule { value: 0, ..brush };
        assert!(erase.allows(3, 0) && !erase.allows(4, 0));
        let erase_all = PaintRule {
            value: 0,
            protect: false,
            ..brush
        };
        assert!(erase_all.allows(4, 0));
        let thr = PaintRule {
            hu_range: Some((-50, 150)),
            ..brush
        };
        assert!(thr.allows(0, 100) && !thr.allows(0, 300) && !thr.allows(0, -51));
    }
}
