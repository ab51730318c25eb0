//! The canvas a phantom is painted on: HU, labels and body regions per voxel, with
//! the canonical coordinate of every voxel index.

use super::shapes::*;
use std::ops::Range;

use super::{AIR_HU, CANONICAL_FOV_MM, PhantomConfig};
use crate::structures::catalog;

/// Body regions: outside, subcutaneous fat, muscle wall, abdominal/thoracic cavity.
pub(super) const AIR: u8 = 0;
pub(super) const FAT: u8 = 1;
pub(super) const WALL: u8 = 2;
pub(super) const CAVITY: u8 = 3;

/// The HU image (before blur and noise), labels and body regions being painted, with
/// the canonical coordinate of each voxel index along each axis.
pub(super) struct Canvas {
    pub(super) shape: [usize; 3],
    pub(super) axis: [Vec<f64>; 3],
    pub(super) hu: Vec<f32>,
    pub(super) labels: Vec<u8>,
    pub(super) region: Vec<u8>,
}

impl Canvas {
    pub(super) fn new(config: &PhantomConfig) -> Self {
        let shape = config.shape;
        let axis = std::array::from_fn(|a| {
            let n = shape[a];
            let fov = n as f64 * config.spacing_mm[a];
            let scale = if fov.is_finite() && fov > 0.0 {
                CANONICAL_FOV_MM[a] / fov
            } else {
                1.0
            };
            (0..n)
                .map(|i| (i as f64 - (n as f64 - 1.0) / 2.0) * config.spacing_mm[a] * scale)
                .collect()
        });
        let count = shape.iter().product();
        Self {
            shape,
            axis,
            hu: vec![AIR_HU as f32; count],
            labels: vec![0; count],
            region: vec![AIR; count],
        }
    }

    /// Indices whose canonical coordinate along `a` lies in `[lo, hi]`.
    pub(super) fn range(&self, a: usize, [lo, hi]: [f64; 2]) -> Range<usize> {
        let c = &self.axis[a];
        let start = c.partition_point(|&v| v < lo);
        let end = c.partition_point(|&v| v <= hi).max(start);
        start..end
    }

    /// Call `f(point, region)` for every voxel of `bbox` inside the body; where it
    /// returns `(hu, label)` the voxel is painted.
    pub(super) fn paint(&mut self, bbox: Bbox, mut f: impl FnMut(Point, u8) -> Option<(f64, u8)>) {
        let [nx, ny, _] = self.shape;
        let (ri, rj, rk) = (
            self.range(0, bbox[0]),
            self.range(1, bbox[1]),
            self.range(2, bbox[2]),
        );
        for k in rk {
            let z = self.axis[2][k];
            for j in rj.clone() {
                let y = self.axis[1][j];
                let base = nx * (j + ny * k);
                for i in ri.clone() {
                    let idx = base + i;
                    let region = self.region[idx];
                    if region == AIR {
                        continue;
                    }
                    if let Some((hu, label)) = f([self.axis[0][i], y, z], region) {
                        self.hu[idx] = hu as f32;
                        self.labels[idx] = label;
                    }
                }
            }
        }
    }

    /// Paint `blob` with `label` inside the cavity (or the whole body), the HU from
    /// `hu(level, point)`.
    pub(super) fn blob(
        &mut self,
        blob: &Blob,
        label: u8,
        cavity_only: bool,
        mut hu: impl FnMut(f64, Point) -> f64,
    ) {
        self.paint(blob.bbox(), |p, region| {
            if cavity_only && region != CAVITY {
                return None;
            }
            let l = blob.level(p);
            (l < 1.0).then(|| (hu(l, p), label))
        });
    }

    /// Paint `tube` like [`Canvas::blob`].
    pub(super) fn tube(
        &mut self,
        tube: &Tube,
        label: u8,
        cavity_only: bool,
        mut hu: impl FnMut(f64, Point) -> f64,
    ) {
        self.paint(tube.bbox(), |p, region| {
            if cavity_only && region != CAVITY {
                return None;
            }
            let l = tube.level(p);
            (l < 1.0).then(|| (hu(l, p), label))
        });
    }
}

/// Label of a catalog structure (0 if the name were unknown; the tests check all
/// names used here).
pub(super) fn lab(name: &str) -> u8 {
    catalog().label_of(name).unwrap_or(0)
}

/// Vertebrae from superior to inferior; level `n` is centred `n` pitches below the
/// top of the spine.
pub(super) const VERTEBRAE: [&str; 9] = [
    "vertebrae_T10",
    "vertebrae_T11",
    "vertebrae_T12",
    "vertebrae_L1",
    "vertebrae_L2",
    "vertebrae_L3",
    "vertebrae_L4",
    "vertebrae_L5",
    "vertebrae_S1",
];
