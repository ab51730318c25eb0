//! Slice geometry: the canonical voxel order ([`CANONICAL_ORIENTATION`], L-P-S) and
//! slicing a volume stored in it into the three radiological views ([`Axis`],
//! [`SliceGrid`]).
//!
//! Radiological convention: the patient's right is on the screen's left in axial and
//! coronal views; axial views have anterior at the top; coronal and sagittal views have
//! superior at the top; sagittal views have anterior on the left.

use crate::volume::{Volume, Voxel};

/// The one canonical voxel order of ctseg: i → patient left, j → posterior,
/// k → superior (nibabel-style axis codes). Volumes handed to the viewer and the
/// model's training and inference slices both use it, so an axial slice is a
/// row-major image with no flips — the radiological view.
pub const CANONICAL_ORIENTATION: &str = "LPS";

/// Voxel order of volumes handed to the viewer: [`CANONICAL_ORIENTATION`].
pub const DISPLAY_ORIENTATION: &str = CANONICAL_ORIENTATION;

/// A viewing direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Axis {
    /// Transverse slices (constant k).
    Axial,
    /// Frontal slices (constant j).
    Coronal,
    /// Side slices (constant i).
    Sagittal,
}

impl Axis {
    /// All three views, in the usual order.
    pub const ALL: [Axis; 3] = [Axis::Axial, Axis::Coronal, Axis::Sagittal];

    /// Name shown in the UI.
    pub fn name(self) -> &'static str {
        match self {
            Axis::Axial => "Axial",
            Axis::Coronal => "Coronal",
            Axis::Sagittal => "Sagittal",
        }
    }

    /// The voxel axis held constant by this view.
    pub fn normal_axis(self) -> usize {
        match self {
            Axis::Axial => 2,
            Axis::Coronal => 1,
            Axis::Sagittal => 0,
        }
    }

    /// Orientation letters at the screen edges: left, right, top, bottom.
    pub fn edge_letters(self) -> [&'static str; 4] {
        match self {
            Axis::Axial => ["R", "L", "A", "P"],
            Axis::Coronal => ["R", "L", "S", "I"],
            Axis::Sagittal => ["A", "P", "S", "I"],
        }
    }
}

/// How the pixels of one view map to voxels of a display-oriented volume.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliceGrid {
    /// The view.
    pub axis: Axis,
    /// Volume shape `[ni, nj, nk]`.
    pub shape: [usize; 3],
    /// Voxel spacing in mm.
    pub spacing: [f64; 3],
}

impl SliceGrid {
    /// The grid of `axis` for a volume of `shape` and `spacing`.
    pub fn new(axis: Axis, shape: [usize; 3], spacing: [f64; 3]) -> Self {
        SliceGrid {
            axis,
            shape,
            spacing,
        }
    }

    /// Number of slices along the view's normal.
    pub fn count(&self) -> usize {
        self.shape[self.axis.normal_axis()]
    }

    /// Image size `(width, height)` in pixels.
    pub fn size(&self) -> (usize, usize) {
        let [ni, nj, nk] = self.shape;
        match self.axis {
            Axis::Axial => (ni, nj),
            Axis::Coronal => (ni, nk),
            Axis::Sagittal => (nj, nk),
        }
    }

    /// Pixel size `(width, height)` in mm, for the correct aspect ratio.
    pub fn pixel_mm(&self) -> (f64, f64) {
        let [si, sj, sk] = self.spacing;
        match self.axis {
            Axis::Axial => (si, sj),
            Axis::Coronal => (si, sk),
            Axis::Sagittal => (sj, sk),
        }
    }

    /// The voxel shown at pixel `(col, row)` of slice `index` (no bounds check beyond
    /// debug assertions; callers clamp).
    #[inline]
    pub fn voxel(&self, index: usize, col: usize, row: usize) -> [usize; 3] {
        let nk = self.shape[2];
        match self.axis {
            Axis::Axial => [col, row, index],
            Axis::Coronal => [col, index, nk - 1 - row],
            Axis::Sagittal => [index, col, nk - 1 - row],
        }
    }

    /// The pixel `(col, row)` and slice index that show voxel `v`.
    pub fn pixel_of(&self, v: [usize; 3]) -> (usize, usize, usize) {
        let nk = self.shape[2];
        match self.axis {
            Axis::Axial => (v[0], v[1], v[2]),
            Axis::Coronal => (v[0], nk - 1 - v[2], v[1]),
            Axis::Sagittal => (v[1], nk - 1 - v[2], v[0]),
        }
    }

    /// Copy slice `index` of `volume` into a row-major image (`width·height` values).
    /// `index` is clamped to the volume.
    pub fn extract<T: Voxel>(&self, volume: &Volume<T>, index: usize, out: &mut Vec<T>) {
        let (w, h) = self.size();
        out.clear();
        out.reserve(w * h);
        if self.count() == 0 || w * h == 0 {
            return;
        }
        let index = index.min(self.count() - 1);
        let data = volume.data();
        let [ni, nj, nk] = self.shape;
        match self.axis {
            Axis::Axial => out.extend_from_slice(&data[index * ni * nj..(index + 1) * ni * nj]),
            Axis::Coronal => {
                for row in 0..nk {
                    let k = nk - 1 - row;
                    let start = ni * (index + nj * k);
                    out.extend_from_slice(&data[start..start + ni]);
                }
            }
            Axis::Sagittal => {
                for row in 0..nk {
                    let k = nk - 1 - row;
                    out.extend((0..nj).map(|j| data[index + ni * (j + nj * k)]));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Geometry, IDENTITY};

    fn numbered(shape: [usize; 3]) -> Volume<i16> {
        let n = shape.iter().product::<usize>();
        Volume::new(
            Geometry::new(shape, IDENTITY),
            (0..n).map(|v| v as i16).collect(),
        )
        .unwrap()
    }

    #[test]
    fn extracted_pixels_are_the_voxels_the_grid_names() {
        let shape = [4, 3, 5];
        let vol = numbered(shape);
        for axis in Axis::ALL {
            let grid = SliceGrid::new(axis, shape, [1.0, 2.0, 3.0]);
            let (w, h) = grid.size();
            let mut img = Vec::new();
            for index in 0..grid.count() {
                grid.extract(&vol, index, &mut img);
                assert_eq!(img.len(), w * h);
                for row in 0..h {
                    for col in 0..w {
                        let v = grid.voxel(index, col, row);
                        assert_eq!(img[row * w + col], vol.get(v).unwrap(), "{axis:?}");
                        assert_eq!(grid.pixel_of(v), (col, row, index));
                    }
                }
            }
        }
    }

    #[test]
    fn superior_is_at_the_top_of_coronal_and_sagittal_views() {
        let shape = [2, 2, 3];
        for axis in [Axis::Coronal, Axis::Sagittal] {
            let grid = SliceGrid::new(axis, shape, [1.0; 3]);
            // k grows superior in LPS; the top row shows the highest k.
            assert_eq!(grid.voxel(0, 0, 0)[2], 2);
            assert_eq!(grid.voxel(0, 0, 2)[2], 0);
        }
        assert_eq!(
            SliceGrid::new(Axis::Sagittal, shape, [0.5, 0.7, 2.5]).pixel_mm(),
            (0.7, 2.5)
        );
    }
}
