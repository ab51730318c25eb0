//! Voxel-grid geometry: the `world_from_voxel` affine (RAS+ millimetres, nibabel's
//! convention), spacing, orientation codes, and axis permutations/flips between grids.

use std::fmt;

/// A 4×4 homogeneous affine, row-major: `world = m · [i, j, k, 1]ᵀ`.
pub type Affine = [[f64; 4]; 4];

/// The identity affine.
pub const IDENTITY: Affine = [
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
];

/// Voxel spacings (mm) a CT can have: from micro-CT (0.01 mm) to the thickest slabs
/// (100 mm). Anything outside is a corrupt header (e.g. an sform of 1e30 mm or a
/// slice gap of kilometres), refused rather than shown squashed or stretched.
pub const PLAUSIBLE_SPACING_MM: std::ops::RangeInclusive<f64> = 0.01..=100.0;

/// A number for messages: plain with up to 4 decimals when moderate (`3`, `0.9766`),
/// in scientific notation when huge or tiny (`1e30`, `2.5e-7`).
pub fn short_number(v: f64) -> String {
    if v == 0.0 || (1e-3..1e6).contains(&v.abs()) {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:e}")
    }
}

/// Shape and placement of a 3-D voxel grid in RAS+ world space (millimetres).
#[derive(Debug, Clone, PartialEq)]
pub struct Geometry {
    /// Voxel counts along i, j, k (i varies fastest in memory, as in NIfTI).
    pub shape: [usize; 3],
    /// Maps voxel indices `[i, j, k, 1]` to RAS+ world coordinates in mm.
    pub world_from_voxel: Affine,
}

/// For each voxel axis: which world axis (0 = x/R-L, 1 = y/A-P, 2 = z/S-I) it runs
/// along, and whether it runs toward the positive (R, A, S) end.
pub type AxisOrientation = [(usize, bool); 3];

impl Geometry {
    /// A grid of `shape` voxels placed by `world_from_voxel`.
    pub fn new(shape: [usize; 3], world_from_voxel: Affine) -> Self {
        Self {
            shape,
            world_from_voxel,
        }
    }

    /// Number of voxels in the grid.
    pub fn voxel_count(&self) -> usize {
        self.shape.iter().product()
    }

    /// Voxel size in mm along i, j, k (lengths of the affine's columns).
    pub fn spacing(&self) -> [f64; 3] {
        let m = &self.world_from_voxel;
        std::array::from_fn(|c| (0..3).map(|r| m[r][c] * m[r][c]).sum::<f64>().sqrt())
    }

    /// An explanation when a spacing lies outside [`PLAUSIBLE_SPACING_MM`].
    pub fn implausible_spacing(&self) -> Option<String> {
        let spacing = self.spacing();
        spacing
            .iter()
            .any(|s| !PLAUSIBLE_SPACING_MM.contains(s))
            .then(|| {
                format!(
                    "voxel spacing {} × {} × {} mm is implausible for a CT (ctseg reads {}–{} mm): a corrupt affine?",
                    short_number(spacing[0]),
                    short_number(spacing[1]),
                    short_number(spacing[2]),
                    PLAUSIBLE_SPACING_MM.start(),
                    PLAUSIBLE_SPACING_MM.end()
                )
            })
    }

    /// Volume of one voxel in mm³ (absolute determinant of the 3×3 part).
    pub fn voxel_volume_mm3(&self) -> f64 {
        det3(&self.world_from_voxel).abs()
    }

    /// World axis and direction of each voxel axis, chosen like nibabel's
    /// `io_orientation`: the voxel axis with the most clear-cut direction claims its
    /// world axis first.
    pub fn axis_orientation(&self) -> AxisOrientation {
        let m = &self.world_from_voxel;
        let spacing = self.spacing();
        let mut cols: [[f64; 3]; 3] = std::array::from_fn(|c| {
            let s = if spacing[c] > 0.0 { spacing[c] } else { 1.0 };
            std::array::from_fn(|r| m[r][c] / s)
        });
        let mut order = [0usize, 1, 2];
        let peak = |c: &[f64; 3]| c.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        order.sort_by(|&a, &b| peak(&cols[b]).total_cmp(&peak(&cols[a])));
        let mut result = [(usize::MAX, true); 3];
        let mut used = [false; 3];
        for &c in &order {
            let col = cols[c];
            let best = (0..3)
                .filter(|r| !used[*r])
                .max_by(|&a, &b| col[a].abs().total_cmp(&col[b].abs()))
                .unwrap_or(0);
            used[best] = true;
            result[c] = (best, col[best] >= 0.0);
            for other in cols.iter_mut() {
                other[best] = 0.0;
            }
        }
        // Fill any degenerate (all-zero) axis with the world axis that is left.
        for (c, slot) in result.iter_mut().enumerate() {
            if slot.0 == usize::MAX {
                let free = (0..3).find(|r| !used[*r]).unwrap_or(c);
                used[free] = true;
                *slot = (free, true);
            }
        }
        result
    }

    /// Three-letter orientation code (nibabel's `aff2axcodes`): the direction each
    /// voxel axis increases toward, e.g. `RAS` or `LPS`.
    pub fn orientation(&self) -> String {
        self.axis_orientation()
            .iter()
            .map(|&(axis, positive)| axis_letter(axis, positive))
            .collect()
    }

    /// Whether `other` has the same shape and, within `tol_mm`, the same affine.
    pub fn same_grid(&self, other: &Geometry, tol_mm: f64) -> bool {
        self.shape == other.shape && self.affine_difference(other) <= tol_mm
    }

    /// Largest absolute difference between the affines' entries.
    pub fn affine_difference(&self, other: &Geometry) -> f64 {
        let (a, b) = (&self.world_from_voxel, &other.world_from_voxel);
        (0..3)
            .flat_map(|r| (0..4).map(move |c| (a[r][c] - b[r][c]).abs()))
            .fold(0.0, f64::max)
    }

    /// World coordinates (mm) of voxel index `v`.
    pub fn world_of(&self, v: [f64; 3]) -> [f64; 3] {
        let m = &self.world_from_voxel;
        std::array::from_fn(|r| m[r][0] * v[0] + m[r][1] * v[1] + m[r][2] * v[2] + m[r][3])
    }

    /// The inverse of `world_from_voxel`: voxel coordinates (fractional) of a RAS+
    /// world point. `None` when the affine is singular.
    pub fn voxel_from_world(&self) -> Option<Affine> {
        let m = &self.world_from_voxel;
        let det = det3(m);
        if !det.is_finite() || det.abs() < 1e-12 {
            return None;
        }
        let c = |r: usize, col: usize| m[r][col];
        // Inverse of the 3×3 part by cofactors.
        let mut inv = IDENTITY;
        for (r, row) in inv.iter_mut().enumerate().take(3) {
            let (c1, c2) = ((r + 1) % 3, (r + 2) % 3);
            for (col, value) in row.iter_mut().enumerate().take(3) {
                let (r1, r2) = ((col + 1) % 3, (col + 2) % 3);
                *value = (c(r1, c1) * c(r2, c2) - c(r1, c2) * c(r2, c1)) / det;
            }
            row[3] = -(0..3).map(|k| row[k] * m[k][3]).sum::<f64>();
        }
        Some(inv)
    }

    /// Human-readable summary: `122×101×30 RAS 3.00×3.00×3.00 mm`.
    pub fn describe(&self) -> String {
        let s = self.spacing();
        format!(
            "{}×{}×{} {} {:.2}×{:.2}×{:.2} mm",
            self.shape[0],
            self.shape[1],
            self.shape[2],
            self.orientation(),
            s[0],
            s[1],
            s[2]
        )
    }

    /// The permutation/flip that brings this grid's voxel order to `target`
    /// orientation codes (e.g. `"LAS"`, `"RAS"`), like nibabel's `as_closest_canonical`.
    pub fn transform_to(&self, target: &str) -> Option<AxisTransform> {
        let target = parse_orientation(target)?;
        let source = self.axis_orientation();
        let mut source_axis = [0usize; 3];
        let mut flip = [false; 3];
        for (n, &(world, positive)) in target.iter().enumerate() {
            let s = source.iter().position(|&(w, _)| w == world)?;
            source_axis[n] = s;
            flip[n] = source[s].1 != positive;
        }
        Some(AxisTransform { source_axis, flip })
    }

    /// The geometry of this grid after applying `t` to its voxel order: same world
    /// positions, new voxel indices.
    pub fn transformed(&self, t: &AxisTransform) -> Geometry {
        let shape = std::array::from_fn(|n| self.shape[t.source_axis[n]]);
        // old voxel = P · new voxel + offset, as a 4×4 matrix.
        let mut old_from_new = [[0.0; 4]; 4];
        old_from_new[3][3] = 1.0;
        for n in 0..3 {
            let s = t.source_axis[n];
            if t.flip[n] {
                old_from_new[s][n] = -1.0;
                old_from_new[s][3] = (self.shape[s] as f64) - 1.0;
            } else {
                old_from_new[s][n] = 1.0;
            }
        }
        Geometry::new(shape, matmul(&self.world_from_voxel, &old_from_new))
    }
}

impl fmt::Display for Geometry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A reordering of voxel axes: new axis `n` runs along source axis `source_axis[n]`,
/// reversed when `flip[n]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AxisTransform {
    /// For each new axis, the source axis it comes from.
    pub source_axis: [usize; 3],
    /// For each new axis, whether it runs opposite to its source axis.
    pub flip: [bool; 3],
}

impl AxisTransform {
    /// Whether the transform leaves the voxel order unchanged.
    pub fn is_identity(&self) -> bool {
        self.source_axis == [0, 1, 2] && self.flip == [false; 3]
    }
}

/// Letter for a world axis and direction: 0 → R/L, 1 → A/P, 2 → S/I.
fn axis_letter(axis: usize, positive: bool) -> char {
    match (axis, positive) {
        (0, true) => 'R',
        (0, false) => 'L',
        (1, true) => 'A',
        (1, false) => 'P',
        (2, true) => 'S',
        _ => 'I',
    }
}

/// Parse a 3-letter orientation code such as `"LPS"`; `None` if invalid.
pub fn parse_orientation(code: &str) -> Option<AxisOrientation> {
    let letters: Vec<char> = code.chars().map(|c| c.to_ascii_uppercase()).collect();
    if letters.len() != 3 {
        return None;
    }
    let mut out = [(0, true); 3];
    let mut seen = [false; 3];
    for (n, c) in letters.iter().enumerate() {
        let (axis, positive) = match c {
            'R' => (0, true),
            'L' => (0, false),
            'A' => (1, true),
            'P' => (1, false),
            'S' => (2, true),
            'I' => (2, false),
            _ => return None,
        };
        if seen[axis] {
            return None;
        }
        seen[axis] = true;
        out[n] = (axis, positive);
    }
    Some(out)
}

/// Product of two affines.
pub fn matmul(a: &Affine, b: &Affine) -> Affine {
    std::array::from_fn(|r| std::array::from_fn(|c| (0..4).map(|k| a[r][k] * b[k][c]).sum()))
}

/// Determinant of the upper-left 3×3 block.
pub fn det3(m: &Affine) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// NIfTI qform parameters: quaternion `(b, c, d)`, `qfac` (±1), pixdim and offset.
pub type QformParams = ([f64; 3], f64, [f64; 3], [f64; 3]);

/// NIfTI quaternion parameters of an affine without shear (nifti1_io's
/// `mat44_to_quatern`). `None` when the affine's axes are not orthogonal (a qform
/// cannot represent it) or degenerate.
pub fn affine_to_quaternion(m: &Affine) -> Option<QformParams> {
    let spacing = Geometry::new([1, 1, 1], *m).spacing();
    if spacing.iter().any(|s| *s <= 0.0 || !s.is_finite()) {
        return None;
    }
    let mut r = [[0.0f64; 3]; 3];
    for (c, s) in spacing.iter().enumerate() {
        for (row, rr) in r.iter_mut().enumerate() {
            rr[c] = m[row][c] / s;
        }
    }
    for a in 0..3 {
        for b in (a + 1)..3 {
            let dot: f64 = (0..3).map(|k| r[k][a] * r[k][b]).sum();
            if dot.abs() > 1e-4 {
                return None;
            }
        }
    }
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
        - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let qfac = if det > 0.0 { 1.0 } else { -1.0 };
    if qfac < 0.0 {
        for row in r.iter_mut() {
            row[2] = -row[2];
        }
    }
    let (r11, r12, r13) = (r[0][0], r[0][1], r[0][2]);
    let (r21, r22, r23) = (r[1][0], r[1][1], r[1][2]);
    let (r31, r32, r33) = (r[2][0], r[2][1], r[2][2]);
    let trace = r11 + r22 + r33 + 1.0;
    let (a, mut b, mut c, mut d);
    if trace > 0.5 {
        a = 0.5 * trace.sqrt();
        b = 0.25 * (r32 - r23) / a;
        c = 0.25 * (r13 - r31) / a;
        d = 0.25 * (r21 - r12) / a;
    } else {
        let xd = 1.0 + r11 - (r22 + r33);
        let yd = 1.0 + r22 - (r11 + r33);
        let zd = 1.0 + r33 - (r11 + r22);
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (r12 + r21) / b;
            d = 0.25 * (r13 + r31) / b;
            a = 0.25 * (r32 - r23) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (r12 + r21) / c;
            d = 0.25 * (r23 + r32) / c;
            a = 0.25 * (r13 - r31) / c;
        } else {
            d = 0.5 * zd.sqrt();
            b = 0.25 * (r13 + r31) / d;
            c = 0.25 * (r23 + r32) / d;
            a = 0.25 * (r21 - r12) / d;
        }
        // The quaternion's real part `a` must be non-negative (nibabel); it is not
        // returned (it follows from b, c, d), only its sign matters here.
        if a < 0.0 {
            b = -b;
            c = -c;
            d = -d;
        }
    }
    Some(([b, c, d], qfac, spacing, [m[0][3], m[1][3], m[2][3]]))
}

/// The affine of NIfTI quaternion parameters (nibabel's `quaternion_to_affine`
/// followed by the zooms). `None` when `b² + c² + d²` exceeds 1 beyond rounding.
pub fn quaternion_to_affine(
    bcd: [f64; 3],
    qfac: f64,
    pixdim: [f64; 3],
    offset: [f64; 3],
) -> Option<Affine> {
    let [b, c, d] = bcd;
    let w2 = 1.0 - (b * b + c * c + d * d);
    let a = if w2 < 0.0 {
        if w2 < -1e-6 {
            return None;
        }
        0.0
    } else {
        w2.sqrt()
    };
    let r = [
        [
            a * a + b * b - c * c - d * d,
            2.0 * (b * c - a * d),
            2.0 * (b * d + a * c),
        ],
        [
            2.0 * (b * c + a * d),
            a * a + c * c - b * b - d * d,
            2.0 * (c * d - a * b),
        ],
        [
            2.0 * (b * d - a * c),
            2.0 * (c * d + a * b),
            a * a + d * d - c * c - b * b,
        ],
    ];
    let zooms = [pixdim[0], pixdim[1], pixdim[2] * qfac];
    let mut m = IDENTITY;
    for row in 0..3 {
        for col in 0..3 {
            m[row][col] = r[row][col] * zooms[col];
        }
        m[row][3] = offset[row];
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voxel_from_world_inverts_world_from_voxel() {
        let m = [
            [-0.9, 0.1, 0.0, 12.5],
            [0.0, -0.95, 0.2, -40.0],
            [0.05, 0.0, 2.0, 100.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let g = Geometry::new([10, 10, 10], m);
        let inv = g.voxel_from_world().expect("invertible");
        let v = [3.0, -2.0, 7.5];
        let w = g.world_of(v);
        let back: Vec<f64> = (0..3)
            .map(|r| inv[r][0] * w[0] + inv[r][1] * w[1] + inv[r][2] * w[2] + inv[r][3])
            .collect();
        for r in 0..3 {
            assert!((back[r] - v[r]).abs() < 1e-9, "{back:?}");
        }
        let singular = Geometry::new([1, 1, 1], [[0.0; 4]; 4]);
        assert!(singular.voxel_from_world().is_none());
    }

    fn diag(x: f64, y: f64, z: f64) -> Affine {
        [
            [x, 0.0, 0.0, 10.0],
            [0.0, y, 0.0, 20.0],
            [0.0, 0.0, z, 30.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    }

    #[test]
    fn orientation_codes_follow_axis_signs() {
        assert_eq!(
            Geometry::new([2, 2, 2], diag(3.0, 3.0, 3.0)).orientation(),
            "RAS"
        );
        assert_eq!(
            Geometry::new([2, 2, 2], diag(-1.0, -1.0, 2.0)).orientation(),
            "LPS"
        );
        let permuted = [
            [0.0, 0.0, -2.0, 0.0],
            [1.0, 0.0, 0.0, 0.0],
            [0.0, -1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        assert_eq!(Geometry::new([2, 2, 2], permuted).orientation(), "AIL");
    }

    #[test]
    fn spacing_and_voxel_volume() {
        let g = Geometry::new([4, 5, 6], diag(-0.5, 0.5, 2.0));
        assert_eq!(g.spacing(), [0.5, 0.5, 2.0]);
        assert!((g.voxel_volume_mm3() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn transform_keeps_world_positions() {
        let g = Geometry::new([4, 5, 6], diag(-1.0, -2.0, 3.0));
        let t = g.transform_to("RAS").expect("valid code");
        assert_eq!(t.flip, [true, true, false]);
        let h = g.transformed(&t);
        assert_eq!(h.orientation(), "RAS");
        // new voxel (0,0,0) is old voxel (3,4,0)
        assert_eq!(h.world_of([0.0, 0.0, 0.0]), g.world_of([3.0, 4.0, 0.0]));
        let back = h.transformed(&h.transform_to("LPS").expect("valid code"));
        assert!(back.same_grid(&g, 1e-12));
    }

    #[test]
    fn quaternion_round_trip() {
        let c = (0.3f64).cos();
        let s = (0.3f64).sin();
        let m: Affine = [
            [c * 0.8, -s * 0.8, 0.0, -100.0],
            [s * 0.8, c * 0.8, 0.0, 50.0],
            [0.0, 0.0, -2.5, 7.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let (bcd, qfac, pixdim, offset) = affine_to_quaternion(&m).expect("orthogonal");
        assert_eq!(qfac, -1.0);
        let back = quaternion_to_affine(bcd, qfac, pixdim, offset).expect("unit quaternion");
        for r in 0..4 {
            for col in 0..4 {
                assert!((back[r][col] - m[r][col]).abs() < 1e-9, "{r},{col}");
            }
        }
    }

    #[test]
    fn sheared_affine_has_no_quaternion() {
        let mut m = diag(1.0, 1.0, 1.0);
        m[0][1] = 0.5;
        assert!(affine_to_quaternion(&m).is_none());
    }

    #[test]
    fn bad_orientation_codes_are_rejected() {
        assert!(parse_orientation("RAR").is_none());
        assert!(parse_orientation("RA").is_none());
        assert!(parse_orientation("XYZ").is_none());
        assert!(parse_orientation("lps").is_some());
    }
}
