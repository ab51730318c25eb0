//! Boundary metrics of one structure: normalised surface Dice (NSD) at a tolerance
//! and the 95th-percentile Hausdorff distance (HD95), ported from DeepMind's
//! `surface-distance` package (`compute_surface_distances`,
//! `compute_surface_dice_at_tolerance`, `compute_robust_hausdorff`; pinned in
//! `benches/requirements.txt`, checked against it by `tests/it/surface_reference.rs`).
//!
//! As there, the surface of a mask is the set of voxel corners whose 2×2×2
//! neighbourhood is neither empty nor full; each such corner carries the marching-cubes
//! surfel area of its neighbour code (scaled to the spacing), and its distance to the
//! other mask's surface is the exact Euclidean distance between corners, in mm. Both
//! are computed only on the corners of the two masks' joint bounding box (one voxel
//! wider), which holds every surface corner.
//!
//! Undefined cases are `None` rather than surface-distance's `nan`/`inf`:
//! - both masks empty: NSD `None` (surface-distance: `nan`, 0/0), HD95 `None`
//!   (surface-distance: `inf`);
//! - exactly one mask empty: NSD `Some(0.0)` (as surface-distance), HD95 `None`
//!   (surface-distance: `inf`).

mod edt;
mod lookup_tables;

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::io::segmentation::GRID_TOLERANCE_MM;
use crate::labels::LabelVolume;
use lookup_tables::{FULL_CODE, code_bit, neighbour_code_to_surface_area};

/// The percentile of [`SurfaceDistances::hd95`].
pub const HD95_PERCENT: f64 = 95.0;

/// Most structures [`surface_metrics`] works on at once: each holds about 10 bytes
/// per corner of its bounding box (codes and the distance field) while it runs.
const MAX_THREADS: usize = 8;

/// Distances from every surfel of one mask to the other mask's surface, with the
/// surfel areas: surface-distance's `compute_surface_distances` result. Each side is
/// sorted by (distance, area); a side is empty when its mask is, and its distances
/// are all `f64::INFINITY` when the other mask is empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SurfaceDistances {
    gt_to_pred: Vec<f64>,
    areas_gt: Vec<f64>,
    pred_to_gt: Vec<f64>,
    areas_pred: Vec<f64>,
}

impl SurfaceDistances {
    /// Distances (mm) from the ground-truth surfels to the predicted surface, ascending.
    pub fn distances_gt_to_pred(&self) -> &[f64] {
        &self.gt_to_pred
    }

    /// Areas (mm²) of the ground-truth surfels, in the order of their distances.
    pub fn surfel_areas_gt(&self) -> &[f64] {
        &self.areas_gt
    }

    /// Distances (mm) from the predicted surfels to the ground-truth surface, ascending.
    pub fn distances_pred_to_gt(&self) -> &[f64] {
        &self.pred_to_gt
    }

    /// Areas (mm²) of the predicted surfels, in the order of their distances.
    pub fn surfel_areas_pred(&self) -> &[f64] {
        &self.areas_pred
    }

    /// Normalised surface Dice: the area of both surfaces within `tolerance_mm` of the
    /// other over the total area (`compute_surface_dice_at_tolerance`). `None` when
    /// both masks are empty; `Some(0.0)` when exactly one is.
    pub fn normalized_surface_dice(&self, tolerance_mm: f64) -> Option<f64> {
        let within = |d: &[f64], a: &[f64]| -> f64 {
            d.iter()
                .zip(a)
                .filter(|(d, _)| **d <= tolerance_mm)
                .map(|(_, a)| a)
                .sum()
        };
        let overlap_gt = within(&self.gt_to_pred, &self.areas_gt);
        let overlap_pred = within(&self.pred_to_gt, &self.areas_pred);
        let total = self.areas_gt.iter().sum::<f64>() + self.areas_pred.iter().sum::<f64>();
        (total > 0.0).then(|| (overlap_gt + overlap_pred) / total)
    }

    /// Robust Hausdorff distance (mm): the larger of the two directed area-weighted
    /// `percent` percentiles (`compute_robust_hausdorff`). `None` when either mask is
    /// empty.
    pub fn robust_hausdorff(&self, percent: f64) -> Option<f64> {
        let gt = percentile(&self.gt_to_pred, &self.areas_gt, percent)?;
        let pred = percentile(&self.pred_to_gt, &self.areas_pred, percent)?;
        Some(gt.max(pred))
    }

    /// HD95: [`Self::robust_hausdorff`] at 95 %.
    pub fn hd95(&self) -> Option<f64> {
        self.robust_hausdorff(HD95_PERCENT)
    }
}

/// The distance at which the cumulative area share of sorted surfels first reaches
/// `percent` % (numpy `searchsorted` on `cumsum(areas) / sum(areas)`); `None` when empty.
fn percentile(distances: &[f64], areas: &[f64], percent: f64) -> Option<f64> {
    let last = *distances.last()?;
    let total: f64 = areas.iter().sum();
    let p = percent / 100.0;
    let mut cumulative = 0.0;
    for (&d, &a) in distances.iter().zip(areas) {
        cumulative += a;
        if cumulative / total >= p {
            return Some(d);
        }
    }
    Some(last)
}

/// Surface distances between two boolean masks on one grid of `shape` (`[nx, ny, nz]`,
/// x fastest, as [`crate::Volume`] stores voxels) with voxels of `spacing_mm`.
/// An error when a mask does not hold `shape`'s voxel count or the spacing is not
/// positive.
pub fn compute_surface_distances(
    gt: &[bool],
    pred: &[bool],
    shape: [usize; 3],
    spacing_mm: [f64; 3],
) -> Result<SurfaceDistances> {
    let n: usize = shape.iter().product();
    if gt.len() != n || pred.len() != n {
        return Err(Error::Invalid(format!(
            "masks of {} and {} voxels do not fit a grid of shape {shape:?}",
            gt.len(),
            pred.len()
        )));
    }
    check_spacing(spacing_mm)?;
    let mut bbox: Option<Bbox> = None;
    for (idx, (&g, &p)) in gt.iter().zip(pred).enumerate() {
        if g || p {
            let [nx, ny, _] = shape;
            let point = [idx % nx, (idx / nx) % ny, idx / (nx * ny)];
            bbox = Some(bbox.map_or(Bbox::point(point), |b| b.including(point)));
        }
    }
    let Some(bbox) = bbox else {
        return Ok(SurfaceDistances::default());
    };
    let areas = neighbour_code_to_surface_area(spacing_mm);
    let inside = |idx: usize| gt[idx] as u8 | (pred[idx] as u8) << 1;
    Ok(distances_in_box(
        shape,
        spacing_mm,
        bbox,
        &areas,
        inside,
        &mut edt::Scratch::default(),
    ))
}

/// NSD and HD95 of one structure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SurfaceMetrics {
    /// Label value.
    pub label: u8,
    /// Normalised surface Dice at the tolerance asked for; 0 when one volume lacks the
    /// structure.
    pub nsd: Option<f64>,
    /// 95th-percentile Hausdorff distance in mm; `null` when one volume lacks it.
    pub hd95: Option<f64>,
}

/// NSD at `tolerance_mm` and HD95 of every label (1..=255) present in `gt` or `pred`,
/// in label order, each computed in its own bounding box; structures run on the
/// available cores. The spacing is `gt`'s ([`crate::Geometry::spacing`], nibabel's
/// zooms for an affine without shear). An error when the volumes do not share one
/// voxel grid or the tolerance is negative.
pub fn surface_metrics(
    gt: &LabelVolume,
    pred: &LabelVolume,
    tolerance_mm: f64,
) -> Result<Vec<SurfaceMetrics>> {
    if !gt.geometry().same_grid(pred.geometry(), GRID_TOLERANCE_MM) {
        return Err(Error::Invalid(format!(
            "cannot compare segmentations on different voxel grids: {} and {}",
            gt.geometry().describe(),
            pred.geometry().describe()
        )));
    }
    if !(tolerance_mm >= 0.0 && tolerance_mm.is_finite()) {
        return Err(Error::Invalid(format!(
            "surface Dice tolerance must be a distance ≥ 0 mm, got {tolerance_mm}"
        )));
    }
    let shape = gt.shape();
    let spacing_mm = gt.geometry().spacing();
    check_spacing(spacing_mm)?;
    let gt_boxes = label_boxes(gt.data(), shape);
    let pred_boxes = label_boxes(pred.data(), shape);
    let mut jobs: Vec<(u8, Bbox)> = (1..=255u8)
        .filter_map(|l| {
            let b = match (gt_boxes[l as usize], pred_boxes[l as usize]) {
                (Some(g), Some(p)) => g.union(p),
                (Some(b), None) | (None, Some(b)) => b,
                (None, None) => return None,
            };
            Some((l, b))
        })
        .collect();
    // Largest boxes first, so the last structure to finish is a small one.
    jobs.sort_by_key(|(_, b)| std::cmp::Reverse(b.corner_count()));
    let areas = neighbour_code_to_surface_area(spacing_mm);
    let (gt_data, pred_data) = (gt.data(), pred.data());
    let next = AtomicUsize::new(0);
    let worker = || {
        let mut scratch = edt::Scratch::default();
        let mut done = Vec::new();
        while let Some(&(label, bbox)) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
            let inside =
                |idx: usize| (gt_data[idx] == label) as u8 | ((pred_data[idx] == label) as u8) << 1;
            let d = distances_in_box(shape, spacing_mm, bbox, &areas, inside, &mut scratch);
            done.push(SurfaceMetrics {
                label,
                nsd: d.normalized_surface_dice(tolerance_mm),
                hd95: d.hd95(),
            });
        }
        done
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS)
        .min(jobs.len().max(1));
    let mut results: Vec<SurfaceMetrics> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(worker)).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().map_err(|payload| {
                    Error::Invalid(format!(
                        "surface metrics worker crashed: {}",
                        crate::error::panic_message(payload.as_ref())
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()
    })?
    .into_iter()
    .flatten()
    .collect();
    results.sort_by_key(|m| m.label);
    Ok(results)
}

/// An error unless every spacing is a positive, finite length.
fn check_spacing(spacing_mm: [f64; 3]) -> Result<()> {
    if spacing_mm.iter().all(|s| s.is_finite() && *s > 0.0) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "voxel spacing must be positive, got {spacing_mm:?} mm"
        )))
    }
}

/// An inclusive box of voxel indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bbox {
    min: [usize; 3],
    max: [usize; 3],
}

impl Bbox {
    /// The box of one voxel.
    fn point(p: [usize; 3]) -> Self {
        Bbox { min: p, max: p }
    }

    /// The box grown to hold `p`.
    fn including(self, p: [usize; 3]) -> Self {
        self.union(Bbox::point(p))
    }

    /// The smallest box holding both.
    fn union(self, o: Bbox) -> Self {
        Bbox {
            min: std::array::from_fn(|a| self.min[a].min(o.min[a])),
            max: std::array::from_fn(|a| self.max[a].max(o.max[a])),
        }
    }

    /// Voxels along each axis.
    fn extent(&self) -> [usize; 3] {
        std::array::from_fn(|a| self.max[a] - self.min[a] + 1)
    }

    /// Corners between and around its voxels: `(extent + 1)` along each axis.
    fn corner_count(&self) -> usize {
        self.extent().iter().map(|e| e + 1).product()
    }
}

/// The bounding box of every label value in one pass over `data`.
fn label_boxes(data: &[u8], shape: [usize; 3]) -> Vec<Option<Bbox>> {
    let [nx, ny, _] = shape;
    let mut boxes: Vec<Option<Bbox>> = vec![None; 256];
    for (row_index, row) in data.chunks_exact(nx.max(1)).enumerate() {
        let (j, k) = (row_index % ny, row_index / ny);
        for (i, &l) in row.iter().enumerate() {
            if l != 0 {
                let slot = &mut boxes[l as usize];
                *slot = Some(slot.map_or(Bbox::point([i, j, k]), |b| b.including([i, j, k])));
            }
        }
    }
    boxes
}

/// Surface distances of the two masks described by `inside` (bit 0: ground truth,
/// bit 1: prediction, for a voxel's linear index) inside `bbox`, which holds every
/// voxel of both. Works on `bbox` grown by one voxel on each side; nothing the size
/// of the whole grid is allocated.
fn distances_in_box(
    shape: [usize; 3],
    spacing_mm: [f64; 3],
    bbox: Bbox,
    areas: &[f64; 256],
    inside: impl Fn(usize) -> u8,
    scratch: &mut edt::Scratch,
) -> SurfaceDistances {
    let [nx, ny, _] = shape;
    let ext = bbox.extent();
    // Both masks, padded with one empty voxel on each side: padded index p holds voxel
    // bbox.min + p − 1.
    let pd = ext.map(|e| e + 2);
    let mut padded = vec![0u8; pd.iter().product()];
    for k in 0..ext[2] {
        for j in 0..ext[1] {
            let src = bbox.min[0] + nx * ((bbox.min[1] + j) + ny * (bbox.min[2] + k));
            let dst = 1 + pd[0] * ((j + 1) + pd[1] * (k + 1));
            for (i, v) in padded[dst..dst + ext[0]].iter_mut().enumerate() {
                *v = inside(src + i);
            }
        }
    }
    // Neighbour codes of each corner c, which sits between padded voxels c and c + 1
    // along every axis (scipy's 2×2×2 correlation, kept in full).
    let cd = ext.map(|e| e + 1);
    let offsets: [(usize, u8); 8] = std::array::from_fn(|n| {
        let (a, b, c) = (n >> 2, (n >> 1) & 1, n & 1);
        (a + pd[0] * (b + pd[1] * c), code_bit(a, b, c))
    });
    let corners = cd.iter().product();
    let mut codes_gt = vec![0u8; corners];
    let mut codes_pred = vec![0u8; corners];
    let mut out = 0;
    for ck in 0..cd[2] {
        for cj in 0..cd[1] {
            let base = pd[0] * (cj + pd[1] * ck);
            for ci in 0..cd[0] {
                let (mut g, mut p) = (0u8, 0u8);
                for &(off, bit) in &offsets {
                    let v = padded[base + ci + off];
                    g |= bit & 0u8.wrapping_sub(v & 1);
                    p |= bit & 0u8.wrapping_sub(v >> 1);
                }
                codes_gt[out] = g;
                codes_pred[out] = p;
                out += 1;
            }
        }
    }
    drop(padded);
    let mut field = vec![0.0f64; corners];
    let gt = distances_to_surface(
        &codes_gt,
        &codes_pred,
        areas,
        cd,
        spacing_mm,
        &mut field,
        scratch,
    );
    let pred = distances_to_surface(
        &codes_pred,
        &codes_gt,
        areas,
        cd,
        spacing_mm,
        &mut field,
        scratch,
    );
    SurfaceDistances {
        gt_to_pred: gt.0,
        areas_gt: gt.1,
        pred_to_gt: pred.0,
        areas_pred: pred.1,
    }
}

/// Whether a neighbour code is a surface corner.
fn is_border(code: u8) -> bool {
    code != 0 && code != FULL_CODE
}

/// The surfels of `from` (by neighbour code) with their distances to the surface of
/// `to` (infinite when `to` has none), sorted by (distance, area); `field` is the
/// corner-sized buffer the distance transform runs in.
fn distances_to_surface(
    from: &[u8],
    to: &[u8],
    areas: &[f64; 256],
    corner_dims: [usize; 3],
    spacing_mm: [f64; 3],
    field: &mut [f64],
    scratch: &mut edt::Scratch,
) -> (Vec<f64>, Vec<f64>) {
    for (f, &code) in field.iter_mut().zip(to) {
        *f = if is_border(code) { 0.0 } else { f64::INFINITY };
    }
    edt::squared_edt(field, corner_dims, spacing_mm, scratch);
    let mut surfels: Vec<(f64, f64)> = from
        .iter()
        .zip(field.iter())
        .filter(|(code, _)| is_border(**code))
        .map(|(&code, &d2)| (d2.sqrt(), areas[code as usize]))
        .collect();
    surfels.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    surfels.into_iter().unzip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Geometry, IDENTITY};

    const SPACING: [f64; 3] = [1.0, 1.5, 2.5];

    /// A mask of `shape` holding the voxels `lo..hi` along each axis.
    fn boxed(shape: [usize; 3], lo: [usize; 3], hi: [usize; 3]) -> Vec<bool> {
        let [nx, ny, nz] = shape;
        (0..nx * ny * nz)
            .map(|n| {
                let p = [n % nx, (n / nx) % ny, n / (nx * ny)];
                (0..3).all(|a| lo[a] <= p[a] && p[a] < hi[a])
            })
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn identical_masks_score_nsd_one_and_hd95_zero() {
        // A slab touching three faces of the grid: the padding must close it.
        let shape = [4, 4, 4];
        let m = boxed(shape, [0, 0, 1], [4, 2, 3]);
        let d = compute_surface_distances(&m, &m, shape, SPACING).expect("valid");
        assert_eq!(d.normalized_surface_dice(0.0), Some(1.0));
        assert_eq!(d.hd95(), Some(0.0));
        assert!(d.distances_gt_to_pred().iter().all(|&x| x == 0.0));
        // Total surfel area as surface-distance 0.1 reports it for this slab.
        let area: f64 = d.surfel_areas_gt().iter().sum();
        assert!((area - 70.83448108389763).abs() < 1e-9, "{area}");
    }

    #[test]
    fn cube_shifted_by_one_voxel_has_hd95_of_the_spacing() {
        let shape = [8, 8, 8];
        let gt = boxed(shape, [2, 2, 2], [5, 5, 5]);
        // NSD at tolerance 0 for a shift along i, j, k, from surface-distance 0.1.
        let nsd_at_zero = [0.5606682580597318, 0.6694366625317004, 0.7488018093768182];
        for axis in 0..3 {
            let mut lo = [2, 2, 2];
            let mut hi = [5, 5, 5];
            lo[axis] += 1;
            hi[axis] += 1;
            let pred = boxed(shape, lo, hi);
            let d = compute_surface_distances(&gt, &pred, shape, SPACING).expect("valid");
            assert_eq!(d.hd95(), Some(SPACING[axis]), "axis {axis}");
            // Within the shift every surfel counts (the tolerance is inclusive)…
            assert_eq!(d.normalized_surface_dice(SPACING[axis]), Some(1.0));
            // …just below it only part of the surfaces does.
            let below = d
                .normalized_surface_dice(SPACING[axis] - 1e-9)
                .expect("both");
            assert!(below < 1.0);
            let zero = d.normalized_surface_dice(0.0).expect("both");
            assert!(close(zero, nsd_at_zero[axis]), "axis {axis}: {zero}");
        }
    }

    #[test]
    fn two_single_voxels_apart_along_j() {
        // Voxels 3 apart along j: each has 8 equal corner surfels, 4 at 2·1.5 mm from
        // the other voxel's corners and 4 at 3·1.5 mm.
        let shape = [3, 6, 2];
        let mut gt = vec![false; 36];
        let mut pred = vec![false; 36];
        gt[1] = true; // [1, 0, 0]
        pred[1 + 3 * 3] = true; // [1, 3, 0]
        let d = compute_surface_distances(&gt, &pred, shape, SPACING).expect("valid");
        assert_eq!(
            d.distances_gt_to_pred(),
            &[3.0, 3.0, 3.0, 3.0, 4.5, 4.5, 4.5, 4.5]
        );
        // The corner-triangle area: ⅛·|(1.5·2.5, 1·2.5, 1·1.5)| = ⅛·4.75.
        assert!(d.surfel_areas_pred().iter().all(|&a| close(a, 0.59375)));
        assert_eq!(d.hd95(), Some(4.5));
        assert_eq!(d.robust_hausdorff(50.0), Some(3.0));
        assert_eq!(d.normalized_surface_dice(2.9), Some(0.0));
        assert_eq!(d.normalized_surface_dice(3.0), Some(0.5));
        assert_eq!(d.normalized_surface_dice(4.4), Some(0.5));
        assert_eq!(d.normalized_surface_dice(4.5), Some(1.0));
    }

    #[test]
    fn empty_masks() {
        let shape = [4, 4, 4];
        let empty = vec![false; 64];
        let m = boxed(shape, [1, 1, 1], [3, 3, 3]);
        let both = compute_surface_distances(&empty, &empty, shape, SPACING).expect("valid");
        assert_eq!(both, SurfaceDistances::default());
        assert_eq!(both.normalized_surface_dice(1.0), None);
        assert_eq!(both.hd95(), None);
        for (gt, pred) in [(&m, &empty), (&empty, &m)] {
            let d = compute_surface_distances(gt, pred, shape, SPACING).expect("valid");
            assert_eq!(d.normalized_surface_dice(100.0), Some(0.0));
            assert_eq!(d.hd95(), None);
            let far = [d.distances_gt_to_pred(), d.distances_pred_to_gt()].concat();
            assert!(!far.is_empty() && far.iter().all(|x| x.is_infinite()));
        }
    }

    #[test]
    fn bad_arguments_are_errors() {
        let m = vec![false; 8];
        assert!(compute_surface_distances(&m, &m[..7], [2, 2, 2], SPACING).is_err());
        assert!(compute_surface_distances(&m, &m, [2, 2, 2], [1.0, 0.0, 1.0]).is_err());
        let g = Geometry::new([2, 2, 2], IDENTITY);
        let v = LabelVolume::new(g, vec![1; 8]).expect("8 voxels");
        assert!(surface_metrics(&v, &v, -1.0).is_err());
        assert!(surface_metrics(&v, &v, f64::NAN).is_err());
        let other = LabelVolume::zeros(Geometry::new([2, 4, 1], IDENTITY));
        assert!(surface_metrics(&v, &other, 1.0).is_err());
        let mut moved = IDENTITY;
        moved[0][3] = 5.0;
        let shifted = LabelVolume::new(Geometry::new([2, 2, 2], moved), vec![1; 8]).expect("8");
        assert!(surface_metrics(&v, &shifted, 1.0).is_err());
    }

    #[test]
    fn label_volumes_match_the_masks_one_by_one() {
        let shape = [8, 7, 6];
        let mut m = IDENTITY;
        for (a, s) in SPACING.iter().enumerate() {
            m[a][a] = *s;
        }
        let g = Geometry::new(shape, m);
        let mut gt = LabelVolume::zeros(g.clone());
        let mut pred = LabelVolume::zeros(g);
        let fill = |v: &mut LabelVolume, label: u8, lo: [usize; 3], hi: [usize; 3]| {
            for (x, inside) in v.data_mut().iter_mut().zip(boxed(shape, lo, hi)) {
                if inside {
                    *x = label;
                }
            }
        };
        fill(&mut gt, 3, [0, 0, 0], [4, 3, 2]);
        fill(&mut pred, 3, [1, 0, 0], [5, 3, 3]);
        fill(&mut gt, 7, [5, 4, 3], [8, 7, 6]);
        fill(&mut pred, 7, [5, 4, 3], [8, 7, 6]);
        fill(&mut pred, 9, [0, 5, 4], [2, 7, 6]);
        let metrics = surface_metrics(&gt, &pred, 1.5).expect("same grid");
        let labels: Vec<u8> = metrics.iter().map(|m| m.label).collect();
        assert_eq!(labels, [3, 7, 9]);
        for sm in &metrics {
            let mask = |v: &LabelVolume| -> Vec<bool> {
                v.data().iter().map(|&x| x == sm.label).collect()
            };
            let d =
                compute_surface_distances(&mask(&gt), &mask(&pred), shape, SPACING).expect("valid");
            assert_eq!(sm.nsd, d.normalized_surface_dice(1.5), "label {}", sm.label);
            assert_eq!(sm.hd95, d.hd95(), "label {}", sm.label);
        }
        assert_eq!(metrics[1].nsd, Some(1.0));
        assert_eq!(metrics[1].hd95, Some(0.0));
        assert_eq!(metrics[2].nsd, Some(0.0));
        assert_eq!(metrics[2].hd95, None);
        let json = serde_json::to_value(metrics[2]).expect("serialisable");
        assert!(json["hd95"].is_null());
    }
}
