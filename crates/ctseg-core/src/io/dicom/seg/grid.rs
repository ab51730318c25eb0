//! Where the pixels of a DICOM frame (an image plane placed by ImagePositionPatient,
//! ImageOrientationPatient and PixelSpacing in LPS) fall in a ctseg volume (RAS+).

use crate::geometry::Geometry;

/// Largest distance (in voxels) of a frame's first pixel from a voxel centre for the
/// frame to count as lying on the volume's grid. Slice positions may wander a little
/// (the series reader accepts steps within 10 % of the median).
const ORIGIN_TOLERANCE_VOXELS: f64 = 0.2;

/// Largest deviation of a row or column step from a whole voxel step.
const STEP_TOLERANCE_VOXELS: f64 = 1e-3;

/// A frame's pixels as voxel indices: pixel `(row, col)` is voxel
/// `origin + col · col_step + row · row_step`, all whole numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FramePlacement {
    origin: [i64; 3],
    col_step: [i64; 3],
    row_step: [i64; 3],
}

/// The world (RAS+) point of pixel `(row, col)` of a frame.
fn world_of_pixel(
    position_lps: [f64; 3],
    orientation_lps: [f64; 6],
    spacing_mm: [f64; 2],
    row: f64,
    col: f64,
) -> [f64; 3] {
    let lps: [f64; 3] = std::array::from_fn(|a| {
        position_lps[a]
            + col * spacing_mm[1] * orientation_lps[a]
            + row * spacing_mm[0] * orientation_lps[3 + a]
    });
    [-lps[0], -lps[1], lps[2]]
}

impl FramePlacement {
    /// Place a frame in `grid`, or `None` when its pixels do not fall on voxel
    /// centres (another grid: resampling would be needed).
    pub(super) fn new(
        grid: &Geometry,
        position_lps: [f64; 3],
        orientation_lps: [f64; 6],
        spacing_mm: [f64; 2],
    ) -> Option<Self> {
        let inv = grid.voxel_from_world()?;
        let voxel = |w: [f64; 3]| -> [f64; 3] {
            std::array::from_fn(|r| {
                inv[r][0] * w[0] + inv[r][1] * w[1] + inv[r][2] * w[2] + inv[r][3]
            })
        };
        let at = |row, col| {
            voxel(world_of_pixel(
                position_lps,
                orientation_lps,
                spacing_mm,
                row,
                col,
            ))
        };
        let o = at(0.0, 0.0);
        let c = at(0.0, 1.0);
        let r = at(1.0, 0.0);
        let whole = |v: f64, tol: f64| (v - v.round()).abs() <= tol;
        let mut origin = [0i64; 3];
        let mut col_step = [0i64; 3];
        let mut row_step = [0i64; 3];
        for a in 0..3 {
            let (dc, dr) = (c[a] - o[a], r[a] - o[a]);
            if !whole(o[a], ORIGIN_TOLERANCE_VOXELS)
                || !whole(dc, STEP_TOLERANCE_VOXELS)
                || !whole(dr, STEP_TOLERANCE_VOXELS)
            {
                return None;
            }
            origin[a] = o[a].round() as i64;
            col_step[a] = dc.round() as i64;
            row_step[a] = dr.round() as i64;
        }
        // Each step must be exactly one voxel along one axis.
        let unit = |s: [i64; 3]| s.iter().map(|v| v.abs()).sum::<i64>() == 1;
        (unit(col_step) && unit(row_step) && col_step != row_step).then_some(FramePlacement {
            origin,
            col_step,
            row_step,
        })
    }

    /// The voxel index (i, j, k) of pixel `(row, col)`, if inside `shape`.
    pub(super) fn voxel(&self, row: usize, col: usize, shape: [usize; 3]) -> Option<[usize; 3]> {
        let mut v = [0usize; 3];
        for a in 0..3 {
            let x = self.origin[a] + col as i64 * self.col_step[a] + row as i64 * self.row_step[a];
            if x < 0 || x >= shape[a] as i64 {
                return None;
            }
            v[a] = x as usize;
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::IDENTITY;

    /// A DICOM-order grid (i along rows, j down columns, k up the slices) in RAS+.
    fn axial_grid() -> Geometry {
        let mut m = IDENTITY;
        // LPS row direction (1,0,0), column direction (0,1,0), step (0,0,2):
        // RAS+ negates x and y.
        m[0][0] = -0.5;
        m[1][1] = -0.75;
        m[2][2] = 2.0;
        m[0][3] = 100.0; // -LPS x of -100
        m[1][3] = 50.0;
        m[2][3] = -30.0;
        Geometry::new([4, 3, 5], m)
    }

    #[test]
    fn frames_on_the_grid_map_pixels_to_voxels() {
        let g = axial_grid();
        let orientation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        // Slice k = 2 starts at LPS (-100, -50, -26).
        let p = FramePlacement::new(&g, [-100.0, -50.0, -26.0], orientation, [0.75, 0.5])
            .expect("on grid");
        assert_eq!(p.voxel(0, 0, g.shape), Some([0, 0, 2]));
        assert_eq!(p.voxel(2, 3, g.shape), Some([3, 2, 2]));
        assert_eq!(p.voxel(3, 0, g.shape), None);
        // The same frame in a grid flipped along i (LAS-like voxel order).
        let t = g.transform_to("RPS").expect("transform");
        let flipped = g.transformed(&t);
        let q = FramePlacement::new(&flipped, [-100.0, -50.0, -26.0], orientation, [0.75, 0.5])
            .expect("on grid");
        assert_eq!(q.voxel(0, 0, flipped.shape), Some([3, 0, 2]));
    }

    #[test]
    fn frames_off_the_grid_are_refused() {
        let g = axial_grid();
        let orientation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        // Half a slice off.
        assert!(
            FramePlacement::new(&g, [-100.0, -50.0, -27.0], orientation, [0.75, 0.5]).is_none()
        );
        // Another pixel spacing.
        assert!(FramePlacement::new(&g, [-100.0, -50.0, -26.0], orientation, [0.7, 0.5]).is_none());
        // A tilted plane.
        let tilted = [0.8, 0.6, 0.0, -0.6, 0.8, 0.0];
        assert!(FramePlacement::new(&g, [-100.0, -50.0, -26.0], tilted, [0.75, 0.5]).is_none());
    }
}
