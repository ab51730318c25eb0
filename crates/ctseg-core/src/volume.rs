//! `Volume<T>`: a 3-D voxel array with its geometry. CT volumes are `Volume<i16>` in
//! Hounsfield units; segmentations are `Volume<u8>` (see [`crate::labels`]).

use crate::error::{Error, Result};
use crate::geometry::{AxisTransform, Geometry};

/// A scalar voxel type ctseg stores in memory.
pub trait Voxel: bytemuck::Pod + Default + PartialOrd + Send + Sync + 'static {
    /// Name of the type as NIfTI/numpy spell it (`int16`, `uint8`…).
    const NAME: &'static str;
    /// Convert from a real value: rounded to the nearest integer and saturated to the
    /// type's range for integer types (NaN becomes 0). Returns the value and whether
    /// it had to be clamped.
    fn from_f64(v: f64) -> (Self, bool);
    /// The value as `f64`.
    fn to_f64(self) -> f64;
}

macro_rules! int_voxel {
    ($t:ty, $name:literal) => {
        impl Voxel for $t {
            const NAME: &'static str = $name;
            #[inline]
            fn from_f64(v: f64) -> (Self, bool) {
                let r = v.round();
                let clamped = !(r >= <$t>::MIN as f64 && r <= <$t>::MAX as f64);
                (r as $t, clamped)
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    };
}
int_voxel!(u8, "uint8");
int_voxel!(i16, "int16");
int_voxel!(i32, "int32");

impl Voxel for f32 {
    const NAME: &'static str = "float32";
    #[inline]
    fn from_f64(v: f64) -> (Self, bool) {
        (v as f32, false)
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

/// Where each voxel of an axis-transformed grid lies in the source buffer: the
/// linear source index of new voxel `(i, j, k)` is `start + i·step[0] + j·step[1] +
/// k·step[2]`. Lets a transformed volume be read or written slice by slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexMap {
    /// Shape of the transformed grid.
    pub new_shape: [usize; 3],
    /// Source index of new voxel `(0, 0, 0)`.
    pub start: isize,
    /// Source index step per new axis.
    pub step: [isize; 3],
}

impl IndexMap {
    /// The map from the grid `t` makes of a `source_shape` grid back into the source.
    pub fn new(source_shape: [usize; 3], t: &AxisTransform) -> Self {
        let old = source_shape;
        let old_stride = [1, old[0], old[0] * old[1]];
        let mut step = [0isize; 3];
        let mut start = 0isize;
        for ((st, &s), &flip) in step.iter_mut().zip(&t.source_axis).zip(&t.flip) {
            if flip {
                *st = -(old_stride[s] as isize);
                start += (old[s].saturating_sub(1) * old_stride[s]) as isize;
            } else {
                *st = old_stride[s] as isize;
            }
        }
        IndexMap {
            new_shape: t.source_axis.map(|s| old[s]),
            start,
            step,
        }
    }

    /// The source index of new voxel `(i, j, k)`.
    #[inline]
    pub fn source_index(&self, i: usize, j: usize, k: usize) -> usize {
        (self.start
            + self.step[0] * i as isize
            + self.step[1] * j as isize
            + self.step[2] * k as isize) as usize
    }
}

/// A 3-D array of voxels, `i` fastest (NIfTI/Fortran order), with its grid geometry.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume<T> {
    geometry: Geometry,
    data: Vec<T>,
}

impl<T: Voxel> Volume<T> {
    /// A volume from its voxels; fails when `data` does not hold `shape`'s voxel count.
    pub fn new(geometry: Geometry, data: Vec<T>) -> Result<Self> {
        if data.len() != geometry.voxel_count() {
            return Err(Error::Invalid(format!(
                "volume of shape {:?} needs {} voxels, got {}",
                geometry.shape,
                geometry.voxel_count(),
                data.len()
            )));
        }
        Ok(Self { geometry, data })
    }

    /// A volume filled with `T::default()` (zero).
    pub fn zeros(geometry: Geometry) -> Self {
        let data = vec![T::default(); geometry.voxel_count()];
        Self { geometry, data }
    }

    /// The grid geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Voxel counts `[nx, ny, nz]`.
    pub fn shape(&self) -> [usize; 3] {
        self.geometry.shape
    }

    /// All voxels, `i` fastest.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// All voxels, mutable.
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Take the voxel buffer.
    pub fn into_data(self) -> Vec<T> {
        self.data
    }

    /// Linear index of voxel `[i, j, k]`.
    #[inline]
    pub fn index(&self, [i, j, k]: [usize; 3]) -> usize {
        let [nx, ny, _] = self.geometry.shape;
        i + nx * (j + ny * k)
    }

    /// Voxel `[i, j, k]`, or `None` outside the grid.
    pub fn get(&self, v: [usize; 3]) -> Option<T> {
        let s = self.geometry.shape;
        (v[0] < s[0] && v[1] < s[1] && v[2] < s[2]).then(|| self.data[self.index(v)])
    }

    /// The `k`-th slice along the third voxel axis (`nx·ny` voxels), or `None`.
    pub fn slice_k(&self, k: usize) -> Option<&[T]> {
        let [nx, ny, nz] = self.geometry.shape;
        (k < nz).then(|| &self.data[k * nx * ny..(k + 1) * nx * ny])
    }

    /// Smallest and largest voxel values (`None` for an empty volume).
    pub fn min_max(&self) -> Option<(T, T)> {
        let first = *self.data.first()?;
        Some(self.data.iter().fold((first, first), |(lo, hi), &v| {
            (if v < lo { v } else { lo }, if v > hi { v } else { hi })
        }))
    }

    /// A copy with the voxel axes permuted/flipped by `t`; world positions of the
    /// voxels are unchanged (the affine is updated).
    pub fn transformed(&self, t: &AxisTransform) -> Volume<T> {
        if t.is_identity() {
            return self.clone();
        }
        let geometry = self.geometry.transformed(t);
        let data = self.transformed_slices(t, 0..geometry.shape[2]);
        Volume { geometry, data }
    }

    /// Slices `k_range` of [`Volume::transformed`]'s result, without building the
    /// whole transformed volume (what a slice-by-slice reader of a large CT needs).
    pub fn transformed_slices(&self, t: &AxisTransform, k_range: std::ops::Range<usize>) -> Vec<T> {
        let map = IndexMap::new(self.geometry.shape, t);
        let [nx, ny, _] = map.new_shape;
        let mut data = Vec::with_capacity(k_range.len() * nx * ny);
        for k in k_range {
            for j in 0..ny {
                let mut p = map.start + map.step[2] * k as isize + map.step[1] * j as isize;
                for _ in 0..nx {
                    data.push(self.data[p as usize]);
                    p += map.step[0];
                }
            }
        }
        data
    }

    /// A copy in the voxel order of `orientation` codes (e.g. `"RAS"`).
    pub fn reoriented(&self, orientation: &str) -> Result<Volume<T>> {
        let t = self
            .geometry
            .transform_to(orientation)
            .ok_or_else(|| Error::Invalid(format!("invalid orientation code {orientation:?}")))?;
        Ok(self.transformed(&t))
    }

    /// Apply `f` to every voxel, keeping the geometry.
    pub fn map<U: Voxel>(&self, f: impl Fn(T) -> U) -> Volume<U> {
        Volume {
            geometry: self.geometry.clone(),
            data: self.data.iter().map(|&v| f(v)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> Volume<i16> {
        let g = Geometry::new(
            [3, 4, 2],
            [
                [-2.0, 0.0, 0.0, 5.0],
                [0.0, 1.0, 0.0, -3.0],
                [0.0, 0.0, 4.0, 1.0],
                [0.0, 0.0, 0.0, 1.0],
            ],
        );
        Volume::new(g, (0..24).collect()).expect("24 voxels")
    }

    #[test]
    fn new_checks_length() {
        let g = Geometry::new([2, 2, 2], crate::geometry::IDENTITY);
        assert!(Volume::<u8>::new(g, vec![0; 7]).is_err());
    }

    #[test]
    fn reorienting_keeps_each_voxel_at_its_world_position() {
        let v = ramp();
        assert_eq!(v.geometry().orientation(), "LAS");
        for code in ["RAS", "LPI", "SAR", "PIL"] {
            let r = v.reoriented(code).expect("valid code");
            assert_eq!(r.geometry().orientation(), code);
            let [nx, ny, nz] = r.shape();
            for k in 0..nz {
                for j in 0..ny {
                    for i in 0..nx {
                        let w = r.geometry().world_of([i as f64, j as f64, k as f64]);
                        // find the old voxel at the same world position
                        let old = v.geometry();
                        let m = &old.world_from_voxel;
                        let oi = ((w[0] - m[0][3]) / m[0][0]).round() as usize;
                        let oj = ((w[1] - m[1][3]) / m[1][1]).round() as usize;
                        let ok = ((w[2] - m[2][3]) / m[2][2]).round() as usize;
                        assert_eq!(r.get([i, j, k]), v.get([oi, oj, ok]), "{code}");
                    }
                }
            }
        }
    }

    #[test]
    fn voxel_conversion_rounds_and_saturates() {
        assert_eq!(i16::from_f64(-1024.4), (-1024, false));
        assert_eq!(i16::from_f64(40000.0), (i16::MAX, true));
        assert_eq!(u8::from_f64(-1.0), (0, true));
        assert_eq!(u8::from_f64(f64::NAN), (0, true));
        assert_eq!(u8::from_f64(116.6), (117, false));
    }

    #[test]
    fn min_max_and_slices() {
        let v = ramp();
        assert_eq!(v.min_max(), Some((0, 23)));
        assert_eq!(v.slice_k(1).map(|s| s[0]), Some(12));
        assert!(v.slice_k(2).is_none());
    }
}
