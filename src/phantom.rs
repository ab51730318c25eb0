//! Deterministic synthetic abdominal CT phantoms with exact ground-truth labels.
//!
//! [`generate_subject`] draws one axial abdominal CT in RAS orientation: an elliptical
//! body with subcutaneous fat and a muscle wall, the abdominal organs, the vessels, the
//! lumbar/lower thoracic spine split into vertebrae, paraspinal and psoas muscles, and
//! the lung bases and the heart apex in the superior slices. Every structure is
//! painted with a TotalSegmentator v2 label (see [`crate::structures`]), so the labels
//! are exclusive per voxel and mark exactly where each organ was drawn. The HU image
//! then gets partial-volume blur and spatially correlated noise (the labels do not).
//!
//! The anatomy is laid out in a canonical frame of [`CANONICAL_FOV_MM`] that is
//! stretched to the configured field of view: with the default configuration (or
//! [`PhantomConfig::with_shape`]) it is real millimetres. Every subject varies body
//! size, fat thickness, organ sizes, positions and shapes, spine level and
//! curvature, all from a ChaCha8 stream keyed by `(seed, index)`: the same seed and
//! index always give bit-identical volumes, whatever the shape.
//!
//! [`write_dataset`] writes subjects in TotalSegmentator's layout
//! (`sNNNN/ct.nii.gz`, `sNNNN/segmentations/<name>.nii.gz`, `meta.csv`).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::geometry::Geometry;
use crate::io::{atomic_write, nifti, segmentation};
use crate::labels::{LabelVolume, label_counts};
use crate::structures::catalog;
use crate::volume::Volume;

/// Field of view (mm, x × y × z) the anatomy is laid out in; it is stretched to the
/// configured field of view along each axis.
pub const CANONICAL_FOV_MM: [f64; 3] = [320.0, 320.0, 160.0];

/// HU written outside the body.
pub const AIR_HU: f64 = -1000.0;

/// How many phantoms to make, and on which voxel grid.
#[derive(Debug, Clone, PartialEq)]
pub struct PhantomConfig {
    /// Number of subjects [`write_dataset`] writes.
    pub subjects: usize,
    /// Seed of the whole dataset; subject `i` uses stream `i` of this seed.
    pub seed: u64,
    /// Voxel counts `[nx, ny, nz]` (x = right, y = anterior, z = superior).
    pub shape: [usize; 3],
    /// Voxel size in mm along x, y, z.
    pub spacing_mm: [f64; 3],
}

impl Default for PhantomConfig {
    /// 4 subjects, seed 0, 128 × 128 × 64 voxels of 2.5 mm (the canonical field of
    /// view, about 1 M voxels per subject).
    fn default() -> Self {
        Self {
            subjects: 4,
            seed: 0,
            shape: [128, 128, 64],
            spacing_mm: [2.5, 2.5, 2.5],
        }
    }
}

impl PhantomConfig {
    /// A configuration of `shape` voxels whose spacing covers [`CANONICAL_FOV_MM`], so
    /// the anatomy keeps its physical size in millimetres at any resolution.
    pub fn with_shape(subjects: usize, seed: u64, shape: [usize; 3]) -> Self {
        let spacing_mm = std::array::from_fn(|a| CANONICAL_FOV_MM[a] / (shape[a].max(1) as f64));
        Self {
            subjects,
            seed,
            shape,
            spacing_mm,
        }
    }

    /// An error unless the grid has at least 2 voxels along each axis and a positive,
    /// finite spacing.
    pub fn validate(&self) -> Result<()> {
        if self.shape.iter().any(|&n| n < 2) {
            return Err(Error::Invalid(format!(
                "phantom shape {:?} needs at least 2 voxels along each axis",
                self.shape
            )));
        }
        if self.shape.iter().product::<usize>() > 1 << 28 {
            return Err(Error::Invalid(format!(
                "phantom shape {:?} is too large",
                self.shape
            )));
        }
        if self.spacing_mm.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::Invalid(format!(
                "phantom spacing {:?} must be positive",
                self.spacing_mm
            )));
        }
        Ok(())
    }

    /// The voxel grid of every subject: RAS, `diag(spacing)`, centred on the world
    /// origin.
    pub fn geometry(&self) -> Geometry {
        let s = self.spacing_mm;
        let origin: [f64; 3] = std::array::from_fn(|a| -(self.shape[a] as f64 - 1.0) / 2.0 * s[a]);
        Geometry::new(
            self.shape,
            [
                [s[0], 0.0, 0.0, origin[0]],
                [0.0, s[1], 0.0, origin[1]],
                [0.0, 0.0, s[2], origin[2]],
                [0.0, 0.0, 0.0, 1.0],
            ],
        )
    }
}

/// The dataset split a subject belongs to (the `split` column of `meta.csv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Training subject.
    Train,
    /// Validation subject.
    Val,
    /// Held-out test subject.
    Test,
}

impl Split {
    /// `train`, `val` or `test`, as written in `meta.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Split of subject `index` of `subjects`: about 20 % validation (at least one when
/// there are 2 or more subjects), about 10 % test (only from 10 subjects on), the
/// rest training. Training subjects come first, then validation, then test.
pub fn split_of(index: usize, subjects: usize) -> Split {
    let test = if subjects >= 10 {
        (subjects + 5) / 10
    } else {
        0
    };
    let val = if subjects >= 2 {
        ((subjects * 2 + 5) / 10).max(1)
    } else {
        0
    };
    let train = subjects - test - val;
    if index < train {
        Split::Train
    } else if index < train + val {
        Split::Val
    } else {
        Split::Test
    }
}

/// Folder name of subject `index`: `s0001` for index 0.
pub fn subject_id(index: usize) -> String {
    format!("s{:04}", index + 1)
}

/// One subject written by [`write_dataset`].
#[derive(Debug, Clone, PartialEq)]
pub struct PhantomSubject {
    /// Subject id (folder name), e.g. `s0001`.
    pub id: String,
    /// Its split in `meta.csv`.
    pub split: Split,
    /// Structures with at least one voxel, in label order.
    pub structures: Vec<String>,
    /// Seconds spent generating and writing it.
    pub seconds: f64,
}

/// What [`write_dataset`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct PhantomSummary {
    /// The dataset folder.
    pub root: PathBuf,
    /// The subjects, in order.
    pub subjects: Vec<PhantomSubject>,
    /// Structures present in at least one subject, in label order.
    pub structures: Vec<String>,
    /// Seconds spent on the whole dataset.
    pub seconds: f64,
}

/// Generate subject `index` of `config`: the CT (int16 HU) and its labels, both on
/// [`PhantomConfig::geometry`]. Deterministic in `(config.seed, index, shape,
/// spacing)`; `config.subjects` plays no part.
pub fn generate_subject(config: &PhantomConfig, index: usize) -> (Volume<i16>, LabelVolume) {
    let geometry = config.geometry();
    let mut rng = Rng::new(config.seed, index);
    let canvas = render(config, &mut rng);
    let hu = finish(canvas.hu, config.shape, &mut rng);
    let mut ct = Volume::<i16>::zeros(geometry.clone());
    ct.data_mut().copy_from_slice(&hu);
    let mut labels = LabelVolume::zeros(geometry);
    labels.data_mut().copy_from_slice(&canvas.labels);
    (ct, labels)
}

/// Write `config.subjects` phantoms to `out` in TotalSegmentator's layout:
/// `out/sNNNN/ct.nii.gz` (int16), `out/sNNNN/segmentations/<name>.nii.gz` for all
/// 117 structures, and `out/meta.csv` (`image_id;split`). Existing files of the same
/// names are replaced; other files are left alone.
pub fn write_dataset(out: &Path, config: &PhantomConfig) -> Result<PhantomSummary> {
    write_dataset_with(out, config, |_| {})
}

/// [`write_dataset`], calling `on_subject` after each subject is written.
pub fn write_dataset_with(
    out: &Path,
    config: &PhantomConfig,
    mut on_subject: impl FnMut(&PhantomSubject),
) -> Result<PhantomSummary> {
    config.validate()?;
    if config.subjects == 0 {
        return Err(Error::Invalid(
            "a phantom dataset needs at least 1 subject".into(),
        ));
    }
    let start = Instant::now();
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut subjects = Vec::with_capacity(config.subjects);
    let mut present = [false; 256];
    let mut meta = String::from("image_id;split\n");
    for index in 0..config.subjects {
        let t0 = Instant::now();
        let id = subject_id(index);
        let dir = out.join(&id);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let (ct, labels) = generate_subject(config, index);
        nifti::write(dir.join("ct.nii.gz"), &ct, &nifti::WriteOptions::default())?;
        segmentation::save_per_structure(&dir.join("segmentations"), &labels)?;
        let counts = label_counts(&labels);
        let structures = catalog()
            .all()
            .iter()
            .filter(|s| counts[s.label as usize] > 0)
            .map(|s| {
                present[s.label as usize] = true;
                s.name.clone()
            })
            .collect();
        let split = split_of(index, config.subjects);
        meta.push_str(&format!("{id};{split}\n"));
        let subject = PhantomSubject {
            id,
            split,
            structures,
            seconds: t0.elapsed().as_secs_f64(),
        };
        on_subject(&subject);
        subjects.push(subject);
    }
    let meta_path = out.join("meta.csv");
    atomic_write(&meta_path, ".csv", |tmp| {
        std::fs::write(tmp, meta.as_bytes()).map_err(|e| Error::io(&meta_path, e))
    })?;
    let structures = catalog()
        .all()
        .iter()
        .filter(|s| present[s.label as usize])
        .map(|s| s.name.clone())
        .collect();
    Ok(PhantomSummary {
        root: out.to_path_buf(),
        subjects,
        structures,
        seconds: start.elapsed().as_secs_f64(),
    })
}

// ---------------------------------------------------------------------------------
// Random numbers

/// The seeded stream of one subject. Only `next_u64` is used, so values do not
/// depend on `rand`'s distribution algorithms.
struct Rng(ChaCha8Rng);

impl Rng {
    fn new(seed: u64, index: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(index as u64);
        Self(rng)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in `[-a, a)`.
    fn jit(&mut self, a: f64) -> f64 {
        self.range(-a, a)
    }

    /// Two independent standard normal values (Box–Muller).
    fn normal_pair(&mut self) -> (f64, f64) {
        let u = 1.0 - self.unit(); // (0, 1]
        let v = self.unit();
        let r = (-2.0 * u.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * v).sin_cos();
        (r * c, r * s)
    }
}

// ---------------------------------------------------------------------------------
// Shapes

type Point = [f64; 3];
/// `[min, max]` per canonical axis.
type Bbox = [[f64; 2]; 3];

/// A smooth deformation term `amp · sin(k · p + phase)` in normalised coordinates.
#[derive(Debug, Clone, Copy)]
struct Wave {
    k: Point,
    phase: f64,
    amp: f64,
}

impl Wave {
    fn at(&self, p: Point) -> f64 {
        self.amp * (self.k[0] * p[0] + self.k[1] * p[1] + self.k[2] * p[2] + self.phase).sin()
    }
}

/// Two random low-frequency waves with amplitudes up to `amp`.
fn waves(rng: &mut Rng, amp: f64) -> [Wave; 2] {
    std::array::from_fn(|_| {
        let (a, b) = rng.normal_pair();
        let (c, _) = rng.normal_pair();
        let norm = (a * a + b * b + c * c).sqrt().max(1e-9);
        let freq = rng.range(1.5, 3.5);
        Wave {
            k: [a / norm * freq, b / norm * freq, c / norm * freq],
            phase: rng.range(0.0, std::f64::consts::TAU),
            amp: rng.range(0.4, 1.0) * amp,
        }
    })
}

/// A deformed superellipsoid: in-plane superellipse (exponent `p`) combined with the
/// z axis (exponent `q`), rotated by `angle` about z, plus smooth waves.
#[derive(Debug, Clone, Copy)]
struct Blob {
    c: Point,
    s: Point,
    angle: f64,
    p: f64,
    q: f64,
    waves: [Wave; 2],
}

impl Blob {
    fn new(c: Point, s: Point, angle: f64, wobble: f64, rng: &mut Rng) -> Self {
        Self {
            c,
            s,
            angle,
            p: 2.0,
            q: 2.0,
            waves: waves(rng, wobble),
        }
    }

    fn powers(mut self, p: f64, q: f64) -> Self {
        self.p = p;
        self.q = q;
        self
    }

    /// Normalised local coordinates of `p` (the blob is the unit ball there).
    fn local(&self, p: Point) -> Point {
        let (dx, dy) = (p[0] - self.c[0], p[1] - self.c[1]);
        let (sin, cos) = self.angle.sin_cos();
        [
            (cos * dx + sin * dy) / self.s[0],
            (-sin * dx + cos * dy) / self.s[1],
            (p[2] - self.c[2]) / self.s[2],
        ]
    }

    /// Below 1 inside; about the fraction of the way from the centre to the surface.
    fn level(&self, p: Point) -> f64 {
        let n = self.local(p);
        let r = if self.p == 2.0 && self.q == 2.0 {
            (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt()
        } else {
            let s = (n[0].abs().powf(self.p) + n[1].abs().powf(self.p)).powf(1.0 / self.p);
            (s.powf(self.q) + n[2].abs().powf(self.q)).powf(1.0 / self.q)
        };
        r + self.waves[0].at(n) + self.waves[1].at(n)
    }

    fn bbox(&self) -> Bbox {
        let m = 1.02 + self.waves[0].amp.abs() + self.waves[1].amp.abs();
        let r = self.s[0].max(self.s[1]) * m;
        [
            [self.c[0] - r, self.c[0] + r],
            [self.c[1] - r, self.c[1] + r],
            [self.c[2] - self.s[2] * m, self.c[2] + self.s[2] * m],
        ]
    }
}

/// A tube around a polyline with a radius interpolated between its points.
#[derive(Debug, Clone)]
struct Tube {
    points: Vec<Point>,
    radii: Vec<f64>,
}

impl Tube {
    fn new(points: Vec<Point>, radii: Vec<f64>) -> Self {
        Self { points, radii }
    }

    /// Smallest `distance / radius` to the centre line (below 1 inside).
    fn level(&self, p: Point) -> f64 {
        let mut best = f64::INFINITY;
        for (seg, w) in self.points.windows(2).enumerate() {
            let (a, b) = (w[0], w[1]);
            let ab = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
            let ap = [p[0] - a[0], p[1] - a[1], p[2] - a[2]];
            let len2 = ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2];
            let t = if len2 > 0.0 {
                ((ap[0] * ab[0] + ap[1] * ab[1] + ap[2] * ab[2]) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let d = [ap[0] - t * ab[0], ap[1] - t * ab[1], ap[2] - t * ab[2]];
            let r = self.radii[seg] + t * (self.radii[seg + 1] - self.radii[seg]);
            let level = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt() / r.max(1e-6);
            best = best.min(level);
        }
        best
    }

    fn bbox(&self) -> Bbox {
        let r = self.radii.iter().fold(0.0f64, |a, &b| a.max(b)) * 1.02;
        std::array::from_fn(|a| {
            let lo = self
                .points
                .iter()
                .map(|p| p[a])
                .fold(f64::INFINITY, f64::min);
            let hi = self
                .points
                .iter()
                .map(|p| p[a])
                .fold(f64::NEG_INFINITY, f64::max);
            [lo - r, hi + r]
        })
    }
}

/// `sin(a·x + φ0) · sin(a·y + φ1) · sin(a·z + φ2)`: a smooth texture in [-1, 1].
#[derive(Debug, Clone, Copy)]
struct Texture {
    freq: f64,
    phase: Point,
}

impl Texture {
    fn new(rng: &mut Rng, freq: f64) -> Self {
        let tau = std::f64::consts::TAU;
        Self {
            freq,
            phase: [
                rng.range(0.0, tau),
                rng.range(0.0, tau),
                rng.range(0.0, tau),
            ],
        }
    }

    /// The texture's factor along each axis of a grid (it is separable).
    fn axis_factors(&self, axis: &[Vec<f64>; 3]) -> [Vec<f64>; 3] {
        std::array::from_fn(|a| {
            axis[a]
                .iter()
                .map(|&c| (self.freq * c + self.phase[a]).sin())
                .collect()
        })
    }

    fn at(&self, p: Point) -> f64 {
        (self.freq * p[0] + self.phase[0]).sin()
            * (self.freq * p[1] + self.phase[1]).sin()
            * (self.freq * p[2] + self.phase[2]).sin()
    }
}

/// A randomly rotated gyroid, `sin x cos y + sin y cos z + sin z cos x` (in [-1.5,
/// 1.5]): its positive part is a labyrinth of connected tubes.
#[derive(Debug, Clone, Copy)]
struct Gyroid {
    rotation: [Point; 3],
    phase: Point,
}

impl Gyroid {
    fn new(rng: &mut Rng, freq: f64) -> Self {
        let tau = std::f64::consts::TAU;
        let (a, b, c) = (
            rng.range(0.0, tau),
            rng.range(0.0, tau),
            rng.range(0.0, tau),
        );
        let (sa, ca) = a.sin_cos();
        let (sb, cb) = b.sin_cos();
        let (sc, cc) = c.sin_cos();
        // Z(a) · X(b) · Z(c), scaled by the frequency.
        let m = [
            [ca * cc - sa * cb * sc, -ca * sc - sa * cb * cc, sa * sb],
            [sa * cc + ca * cb * sc, -sa * sc + ca * cb * cc, -ca * sb],
            [sb * sc, sb * cc, cb],
        ];
        Self {
            rotation: m.map(|row| row.map(|v| v * freq)),
            phase: [
                rng.range(0.0, tau),
                rng.range(0.0, tau),
                rng.range(0.0, tau),
            ],
        }
    }

    fn at(&self, p: Point) -> f64 {
        let q: Point = std::array::from_fn(|r| {
            let m = self.rotation[r];
            m[0] * p[0] + m[1] * p[1] + m[2] * p[2] + self.phase[r]
        });
        let (s, c) = (q.map(f64::sin), q.map(f64::cos));
        s[0] * c[1] + s[1] * c[2] + s[2] * c[0]
    }
}

// ---------------------------------------------------------------------------------
// Canvas

/// Body regions: outside, subcutaneous fat, muscle wall, abdominal/thoracic cavity.
const AIR: u8 = 0;
const FAT: u8 = 1;
const WALL: u8 = 2;
const CAVITY: u8 = 3;

/// The HU image (before blur and noise), labels and body regions being painted, with
/// the canonical coordinate of each voxel index along each axis.
struct Canvas {
    shape: [usize; 3],
    axis: [Vec<f64>; 3],
    hu: Vec<f32>,
    labels: Vec<u8>,
    region: Vec<u8>,
}

impl Canvas {
    fn new(config: &PhantomConfig) -> Self {
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
    fn range(&self, a: usize, [lo, hi]: [f64; 2]) -> Range<usize> {
        let c = &self.axis[a];
        let start = c.partition_point(|&v| v < lo);
        let end = c.partition_point(|&v| v <= hi).max(start);
        start..end
    }

    /// Call `f(point, region)` for every voxel of `bbox` inside the body; where it
    /// returns `(hu, label)` the voxel is painted.
    fn paint(&mut self, bbox: Bbox, mut f: impl FnMut(Point, u8) -> Option<(f64, u8)>) {
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
    fn blob(
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
    fn tube(
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
fn lab(name: &str) -> u8 {
    catalog().label_of(name).unwrap_or(0)
}

/// Vertebrae from superior to inferior; level `n` is centred `n` pitches below the
/// top of the spine.
const VERTEBRAE: [&str; 9] = [
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

// ---------------------------------------------------------------------------------
// Anatomy

/// Paint one subject's anatomy. Canonical frame: x toward the patient's right, y
/// anterior, z superior, mm, the volume spanning ±160 × ±160 × ±80.
fn render(config: &PhantomConfig, rng: &mut Rng) -> Canvas {
    let mut cv = Canvas::new(config);

    // Whole-subject variation: body size, position, fat, spine level.
    let fx = rng.range(0.86, 1.04);
    let fy = rng.range(0.82, 1.04);
    let shift = [rng.jit(6.0), rng.jit(6.0), rng.jit(8.0)];
    let pos =
        |x: f64, y: f64, z: f64| -> Point { [x * fx + shift[0], y * fy + shift[1], z + shift[2]] };
    let organ_scale = 0.6 + 0.4 * (fx + fy) / 2.0;
    let size = |rng: &mut Rng, a: f64, b: f64, c: f64| -> Point {
        [
            a * organ_scale * rng.range(0.88, 1.12),
            b * organ_scale * rng.range(0.88, 1.12),
            c * rng.range(0.88, 1.12),
        ]
    };
    let hu_fat = -100.0 + rng.jit(8.0);
    let hu_visceral_fat = -90.0 + rng.jit(8.0);
    let hu_muscle = 45.0 + rng.jit(5.0);

    // Body outline: superellipse (rounder anteriorly, flatter posteriorly), then
    // subcutaneous fat, the muscle wall, and the cavity inside.
    let ax = 140.0 * fx;
    let by = 105.0 * fy;
    let fat_ant = rng.range(8.0, 30.0);
    let fat_lat = fat_ant * rng.range(0.7, 1.0);
    let fat_post = fat_ant * 0.4 + 4.0;
    let wall = rng.range(7.0, 12.0);
    let body_waves = waves(rng, 0.025);
    let body_texture = Texture::new(rng, 0.05);
    {
        let (cx, cy) = (shift[0], shift[1]);
        // Superellipse radius for given insets (the waves are added by the caller).
        let level =
            |x: f64, y: f64, taper: f64, inset_lat: f64, inset_ant: f64, inset_post: f64| {
                let u = (x - cx) / (ax * taper - inset_lat);
                if y >= cy {
                    let v = (y - cy) / (by - inset_ant);
                    (u * u + v * v).sqrt()
                } else {
                    let v = (y - cy) / (by - inset_post);
                    let (u2, v2) = (u * u, v * v);
                    (u2 * u2 + v2 * v2).sqrt().sqrt()
                }
            };
        let texture = body_texture.axis_factors(&cv.axis);
        let [nx, ny, nz] = cv.shape;
        for k in 0..nz {
            let z = cv.axis[2][k];
            let taper = 1.0 + 0.04 * z / 80.0;
            for j in 0..ny {
                let y = cv.axis[1][j];
                let row = nx * (j + ny * k);
                for i in 0..nx {
                    let x = cv.axis[0][i];
                    let n = [(x - cx) / ax, (y - cy) / by, z / 200.0];
                    let wave = body_waves[0].at(n) + body_waves[1].at(n);
                    if level(x, y, taper, 0.0, 0.0, 0.0) + wave >= 1.0 {
                        continue;
                    }
                    let (region, hu) = if level(x, y, taper, fat_lat, fat_ant, fat_post) + wave
                        >= 1.0
                    {
                        (FAT, hu_fat)
                    } else if level(x, y, taper, fat_lat + wall, fat_ant + wall, fat_post + wall)
                        + wave
                        >= 1.0
                    {
                        (WALL, hu_muscle)
                    } else {
                        (CAVITY, hu_visceral_fat)
                    };
                    cv.region[row + i] = region;
                    cv.hu[row + i] =
                        (hu + 6.0 * texture[0][i] * texture[1][j] * texture[2][k]) as f32;
                }
            }
        }
    }

    // Spine position (needed by several organs): lordosis and a slight scoliosis.
    let pitch = rng.range(30.0, 34.0);
    let spine_top = 102.0 + rng.jit(10.0) + shift[2];
    let lordosis = rng.range(0.0, 8.0);
    let scoliosis = rng.jit(4.0);
    let vb_y0 = -38.0 * fy + shift[1];
    let spine_x = move |z: f64| shift[0] + scoliosis * z / 80.0;
    let spine_y = move |z: f64| vb_y0 - lordosis * z / 80.0;
    let vb_semi = [22.0 * organ_scale, 16.0 * organ_scale];

    // Small bowel: loops (wall and fluid, a little gas) in the lower anterior
    // abdomen; the fat between loops stays unlabelled.
    let bowel = Blob::new(
        pos(0.0, 30.0, -50.0),
        size(rng, 80.0, 55.0, 45.0),
        rng.jit(0.2),
        0.08,
        rng,
    );
    let loops = Gyroid::new(rng, 0.12);
    let gas = Texture::new(rng, 0.11);
    let small_bowel = lab("small_bowel");
    cv.blob(&bowel, 0, true, |_, _| hu_visceral_fat);
    cv.paint(bowel.bbox(), |p, region| {
        if region != CAVITY || bowel.level(p) >= 1.0 {
            return None;
        }
        // One labyrinth of the gyroid: tortuous, branching tubes like bowel loops.
        let g = loops.at(p);
        if g < 0.2 {
            return None;
        }
        let hu = if g < 0.55 {
            40.0
        } else if gas.at(p) > 0.5 {
            -850.0
        } else {
            20.0
        };
        Some((hu, small_bowel))
    });

    // Colon: ascending (right), transverse (anterior), descending (left); gas and
    // mottled stool inside a wall.
    let colon = Tube::new(
        vec![
            pos(95.0, 5.0, -95.0),
            pos(95.0 + rng.jit(5.0), 8.0, -15.0),
            pos(78.0, 38.0, 2.0 + rng.jit(6.0)),
            pos(0.0, 62.0 + rng.jit(6.0), -18.0 + rng.jit(10.0)),
            pos(-75.0, 35.0, 18.0 + rng.jit(6.0)),
            pos(-95.0 + rng.jit(5.0), 0.0, -10.0),
            pos(-92.0, 5.0, -95.0),
        ],
        vec![20.0, 20.0, 19.0, 18.0, 19.0, 18.0, 18.0]
            .into_iter()
            .map(|r| r * organ_scale * rng.range(0.85, 1.15))
            .collect(),
    );
    let stool = Gyroid::new(rng, 0.25);
    cv.tube(&colon, lab("colon"), true, |l, p| {
        if l > 0.82 {
            40.0
        } else {
            let s = stool.at(p);
            if s > 0.1 { -900.0 } else { -60.0 - 100.0 * s }
        }
    });

    // Duodenum: the C-loop around the pancreatic head.
    let duodenum = Tube::new(
        vec![
            pos(30.0, 30.0, 12.0),
            pos(48.0, 12.0, 0.0),
            pos(46.0, -5.0, -22.0),
            pos(20.0, -8.0, -36.0),
            pos(-12.0, -2.0, -32.0),
        ],
        vec![11.0, 12.0, 12.0, 11.0, 10.0],
    );
    cv.tube(&duodenum, lab("duodenum"), true, |l, p| {
        if l < 0.35 && gas.at(p) > 0.3 {
            -800.0
        } else if l > 0.75 {
            45.0
        } else {
            25.0
        }
    });

    // Liver: a right lobe and a left lobe reaching across the midline anteriorly,
    // with brighter hepatic veins running to the IVC.
    let right_lobe = Blob::new(
        pos(62.0, 5.0, 22.0 + rng.jit(6.0)),
        size(rng, 70.0, 80.0, 62.0),
        rng.jit(0.15),
        0.05,
        rng,
    )
    .powers(2.4, 2.0);
    let left_lobe = Blob::new(
        pos(5.0, 48.0, 36.0 + rng.jit(6.0)),
        size(rng, 60.0, 32.0, 30.0),
        0.25 + rng.jit(0.15),
        0.06,
        rng,
    );
    let ivc_top = pos(18.0, 2.0, 62.0);
    let hepatic_veins = Tube::new(
        vec![
            pos(95.0, -5.0, 28.0 + rng.jit(8.0)),
            ivc_top,
            pos(45.0, 60.0, 32.0 + rng.jit(8.0)),
        ],
        vec![3.0, 6.0, 3.0],
    );
    let middle_vein = Tube::new(vec![ivc_top, pos(-20.0, 52.0, 40.0)], vec![5.0, 3.0]);
    let hu_liver = 64.0 + rng.jit(4.0);
    let liver_texture = Texture::new(rng, 0.12);
    for lobe in [&right_lobe, &left_lobe] {
        cv.blob(lobe, lab("liver"), true, |_, p| {
            if hepatic_veins.level(p) < 1.0 || middle_vein.level(p) < 1.0 {
                hu_liver + 40.0
            } else {
                hu_liver + 4.0 * liver_texture.at(p)
            }
        });
    }

    // Spleen: left, posterolateral, under the left dome.
    let spleen = Blob::new(
        pos(-88.0, -30.0, 28.0 + rng.jit(6.0)),
        size(rng, 28.0, 55.0, 45.0),
        -0.6 + rng.jit(0.2),
        0.06,
        rng,
    );
    let hu_spleen = 50.0 + rng.jit(5.0);
    cv.blob(&spleen, lab("spleen"), true, |_, _| hu_spleen);

    // Kidneys: cortex, medulla and a medial sinus; the right one lower.
    for (side, name, dz) in [(1.0, "kidney_right", -24.0), (-1.0, "kidney_left", -12.0)] {
        let c = pos(58.0 * side, -42.0, dz + rng.jit(8.0));
        let s = size(rng, 26.0, 21.0, 48.0);
        let angle = side * (0.5 + rng.jit(0.15));
        let kidney = Blob::new(c, s, angle, 0.04, rng);
        // The sinus opens toward the hilum (anteromedial).
        let sinus = Blob::new(
            [c[0] - side * 0.55 * s[0], c[1] + 0.25 * s[1], c[2]],
            [0.45 * s[0], 0.4 * s[1], 0.5 * s[2]],
            angle,
            0.0,
            rng,
        );
        let cortex = 145.0 + rng.jit(10.0);
        let medulla = 95.0 + rng.jit(10.0);
        cv.blob(&kidney, lab(name), true, |l, p| {
            if sinus.level(p) < 1.0 {
                20.0
            } else if l > 0.75 {
                cortex
            } else {
                medulla
            }
        });
        // Adrenal gland: a thin plate above the upper pole, medially.
        let adrenal = Blob::new(
            [
                c[0] - side * 0.6 * s[0],
                c[1] + 0.3 * s[1],
                c[2] + 0.8 * s[2],
            ],
            [4.0, 14.0, 12.0],
            side * 0.6,
            0.05,
            rng,
        );
        let adrenal_name = if side > 0.0 {
            "adrenal_gland_right"
        } else {
            "adrenal_gland_left"
        };
        cv.blob(&adrenal, lab(adrenal_name), true, |_, _| 35.0);
    }

    // Gallbladder: under the liver, anterior right.
    let gallbladder = Blob::new(
        pos(42.0, 52.0, -8.0 + rng.jit(6.0)),
        size(rng, 16.0, 14.0, 30.0),
        0.7 + rng.jit(0.3),
        0.05,
        rng,
    );
    cv.blob(&gallbladder, lab("gallbladder"), true, |_, _| 12.0);

    // Stomach: left upper quadrant; wall, fluid, and gas anteriorly (supine).
    let stomach = Blob::new(
        pos(-45.0, 38.0, 35.0 + rng.jit(6.0)),
        size(rng, 45.0, 38.0, 45.0),
        -0.5 + rng.jit(0.2),
        0.06,
        rng,
    );
    let gas_level = stomach.c[1] + stomach.s[1] * rng.range(0.1, 0.6);
    cv.blob(&stomach, lab("stomach"), true, |l, p| {
        if l > 0.86 {
            45.0
        } else if p[1] > gas_level {
            -950.0
        } else {
            20.0
        }
    });

    // Pancreas: tail at the splenic hilum, body over the spine, head in the C-loop.
    let pancreas = Tube::new(
        vec![
            pos(-72.0, -18.0, 12.0 + rng.jit(5.0)),
            pos(-20.0, 12.0, 8.0),
            pos(10.0, 14.0, 2.0),
            pos(30.0, 6.0, -8.0 + rng.jit(5.0)),
        ],
        vec![9.0, 11.0, 11.0, 15.0]
            .into_iter()
            .map(|r| r * organ_scale * rng.range(0.85, 1.15))
            .collect(),
    );
    let lobules = Texture::new(rng, 0.5);
    cv.tube(&pancreas, lab("pancreas"), true, |_, p| {
        45.0 + 12.0 * lobules.at(p)
    });

    // Splenic vein along the back of the pancreas, joining the portal vein that
    // runs up to the liver hilum.
    let portal = Tube::new(
        vec![
            pos(-75.0, -25.0, 14.0),
            pos(-20.0, 2.0, 8.0),
            pos(8.0, 5.0, 6.0),
            pos(32.0, 18.0, 28.0),
            pos(55.0, 15.0, 34.0),
        ],
        vec![5.0, 5.5, 7.0, 7.0, 5.0],
    );
    let hu_portal = 150.0 + rng.jit(15.0);
    cv.tube(
        &portal,
        lab("portal_vein_and_splenic_vein"),
        true,
        |_, _| hu_portal,
    );

    // Lung bases above the diaphragm domes (right higher), with the oblique fissure
    // separating the lower lobes from the middle lobe / lingula anteriorly.
    let vessels = Gyroid::new(rng, 0.3);
    for (side, apex, lower, upper) in [
        (
            1.0,
            48.0 + rng.jit(8.0),
            "lung_lower_lobe_right",
            "lung_middle_lobe_right",
        ),
        (
            -1.0,
            40.0 + rng.jit(8.0),
            "lung_lower_lobe_left",
            "lung_upper_lobe_left",
        ),
    ] {
        let c = pos(68.0 * side, -15.0, 0.0);
        let (sx, sy) = (60.0 * fx, 72.0 * fy);
        let apex = apex + shift[2];
        let depth = rng.range(30.0, 45.0);
        let fissure = rng.range(30.0, 50.0);
        let (lower, upper) = (lab(lower), lab(upper));
        let bbox = [
            [c[0] - sx, c[0] + sx],
            [c[1] - sy, c[1] + sy],
            [apex - depth - 1.0, 1000.0],
        ];
        cv.paint(bbox, |p, region| {
            if region != CAVITY {
                return None;
            }
            let (u, v) = ((p[0] - c[0]) / sx, (p[1] - c[1]) / sy);
            let rho2 = u * u + v * v;
            if rho2 >= 1.0 || p[2] <= apex - depth * rho2 {
                return None;
            }
            let hu = if vessels.at(p) > 1.2 { -550.0 } else { -860.0 };
            let anterior = p[1] > c[1] + fissure - (p[2] - apex + 20.0);
            Some((hu, if anterior { upper } else { lower }))
        });
    }

    // Heart apex in the top slices, above the left dome.
    let heart = Blob::new(
        pos(-18.0, 30.0, 96.0 + rng.jit(6.0)),
        size(rng, 62.0, 48.0, 52.0),
        0.5 + rng.jit(0.2),
        0.04,
        rng,
    );
    cv.blob(&heart, lab("heart"), true, |l, _| {
        if l > 0.8 { 45.0 } else { 140.0 }
    });

    // Esophagus: behind the heart, left of the aorta, down to the cardia.
    let esophagus = Tube::new(
        vec![
            [spine_x(95.0) - 5.0, spine_y(95.0) + 24.0, 95.0 + shift[2]],
            [spine_x(60.0) - 12.0, spine_y(60.0) + 30.0, 60.0 + shift[2]],
            pos(-30.0, 20.0, 40.0),
        ],
        vec![8.0, 8.0, 8.0],
    );
    cv.tube(&esophagus, lab("esophagus"), true, |l, _| {
        if l < 0.3 { -700.0 } else { 40.0 }
    });

    // Vessels: IVC (right, entering the liver and the heart), aorta (left anterior
    // of the spine).
    let ivc = Tube::new(
        vec![
            [
                spine_x(-95.0) + 22.0,
                spine_y(-95.0) + 28.0,
                -95.0 + shift[2],
            ],
            [spine_x(20.0) + 24.0, spine_y(20.0) + 34.0, 20.0 + shift[2]],
            ivc_top,
            pos(5.0, 20.0, 100.0),
        ],
        vec![10.0, 11.0, 12.0, 12.0],
    );
    let hu_ivc = 130.0 + rng.jit(15.0);
    cv.tube(&ivc, lab("inferior_vena_cava"), true, |_, _| hu_ivc);
    let aorta_r = 11.0 * organ_scale * rng.range(0.9, 1.1);
    let aorta = Tube::new(
        [95.0, 40.0, 0.0, -40.0, -95.0]
            .into_iter()
            .map(|z: f64| {
                // Posterior mediastinum in the thorax, anterior to the spine below.
                let t = ((z - 40.0) / 55.0).clamp(0.0, 1.0);
                let x = spine_x(z) - 14.0 - 6.0 * t;
                let y = spine_y(z) + vb_semi[1] + aorta_r + 2.0 - 16.0 * t;
                [x, y, z + shift[2]]
            })
            .collect(),
        vec![
            aorta_r * 1.1,
            aorta_r,
            aorta_r,
            aorta_r * 0.95,
            aorta_r * 0.9,
        ],
    );
    let hu_aorta = 180.0 + rng.jit(20.0);
    cv.tube(&aorta, lab("aorta"), true, |_, _| hu_aorta);

    // Paraspinal muscles behind the spine, psoas beside the lumbar bodies. Bounds
    // below cover the spine's drift along z.
    let canal_y = move |z: f64| spine_y(z) - vb_semi[1] - 8.0;
    let drift_x = [
        shift[0] - 1.3 * scoliosis.abs(),
        shift[0] + 1.3 * scoliosis.abs(),
    ];
    let drift_y = [vb_y0 - 1.3 * lordosis, vb_y0 + 1.3 * lordosis];
    for (side, name, psoas) in [
        (1.0, "autochthon_right", "iliopsoas_right"),
        (-1.0, "autochthon_left", "iliopsoas_left"),
    ] {
        let (w, h) = (
            20.0 * fx * rng.range(0.9, 1.1),
            17.0 * fy * rng.range(0.9, 1.1),
        );
        let (off_x, off_y) = (side * 26.0 * fx, -vb_semi[1] - 8.0 - 15.0 * fy);
        let bbox = [
            [drift_x[0] + off_x - w, drift_x[1] + off_x + w],
            [drift_y[0] + off_y - h, drift_y[1] + off_y + h],
            [f64::NEG_INFINITY, f64::INFINITY],
        ];
        let (label, hu) = (lab(name), hu_muscle + 5.0);
        cv.paint(bbox, |p, _| {
            let z = p[2] - shift[2];
            let u = (p[0] - spine_x(z) - off_x) / w;
            let v = (p[1] - spine_y(z) - off_y) / h;
            (u * u + v * v < 1.0).then_some((hu, label))
        });
        let top = spine_top - 2.6 * pitch - shift[2];
        let low = -95.0;
        let psoas_tube = Tube::new(
            vec![
                [
                    spine_x(top) + side * (vb_semi[0] + 6.0),
                    spine_y(top) + 2.0,
                    top + shift[2],
                ],
                [
                    spine_x(low) + side * (vb_semi[0] + 32.0),
                    spine_y(low) + 10.0,
                    low + shift[2],
                ],
            ],
            vec![3.0, 24.0 * organ_scale * rng.range(0.85, 1.15)],
        );
        cv.tube(&psoas_tube, lab(psoas), false, |_, _| hu_muscle + 5.0);
    }

    // The spine: an intervertebral disc column, then each vertebra (body with a
    // cortical shell, neural arch, spinous and transverse processes), then the canal
    // and the cord.
    let disc_bbox = [
        [drift_x[0] - vb_semi[0], drift_x[1] + vb_semi[0]],
        [drift_y[0] - vb_semi[1], drift_y[1] + vb_semi[1]],
        [f64::NEG_INFINITY, f64::INFINITY],
    ];
    cv.paint(disc_bbox, |p, _| {
        let z = p[2] - shift[2];
        let u = (p[0] - spine_x(z)) / (vb_semi[0] * 0.95);
        let v = (p[1] - spine_y(z)) / (vb_semi[1] * 0.95);
        (u * u + v * v < 1.0).then_some((90.0, 0))
    });
    let hu_cortical = 700.0 + rng.jit(60.0);
    let hu_cancellous = 250.0 + rng.jit(40.0);
    let spinous_len = 38.0 * fy;
    for (n, name) in VERTEBRAE.iter().enumerate() {
        let zc = spine_top - n as f64 * pitch;
        let grow = 1.0 + 0.03 * n as f64;
        let (a, b) = (vb_semi[0] * grow, vb_semi[1] * grow);
        let hz = (pitch * 0.5 - 3.5).max(4.0);
        let (cx, cy, yc) = (
            spine_x(zc - shift[2]),
            spine_y(zc - shift[2]),
            canal_y(zc - shift[2]),
        );
        let tp_len = 30.0 + 8.0 * grow;
        let shell = 2.5 / a.min(b).min(hz);
        let label = lab(name);
        let bbox = [
            [cx - tp_len, cx + tp_len],
            [yc - spinous_len, cy + b],
            [zc - hz - 0.35 * spinous_len - 8.0, zc + hz],
        ];
        cv.paint(bbox, |p, _| {
            let (dx, dz) = (p[0] - cx, p[2] - zc);
            // Vertebral body: an elliptic cylinder with rounded rims.
            let (u, v, w) = (dx / a, (p[1] - cy) / b, dz / hz);
            let s = u * u + v * v;
            let r = (s * s + w * w * w * w).sqrt().sqrt();
            if r < 1.0 {
                let hu = if r > 1.0 - shell {
                    hu_cortical
                } else {
                    hu_cancellous
                };
                return Some((hu, label));
            }
            // Posterior elements around the canal; the spinous process slopes down.
            let dy = p[1] - yc;
            let ring = (dx * dx + 1.4 * dy * dy).sqrt();
            let arch = ring > 9.0 && ring < 16.0 && dy < 4.0 && dz.abs() < hz * 0.75;
            let spinous =
                dx.abs() < 4.0 && dy < -10.0 && dy > -spinous_len && (dz - 0.35 * dy).abs() < 8.0;
            let transverse =
                (dy - 3.0).abs() < 5.0 && dx.abs() > 10.0 && dx.abs() < tp_len && dz.abs() < 6.0;
            (arch || spinous || transverse).then_some((450.0, label))
        });
    }
    // Spinal canal (CSF, unlabelled) and the cord, which ends at the L1/L2 disc.
    let canal_line = |zs: &[f64]| -> Vec<Point> {
        zs.iter()
            .map(|&z| [spine_x(z), canal_y(z), z + shift[2]])
            .collect()
    };
    let canal = Tube::new(canal_line(&[-130.0, -40.0, 40.0, 130.0]), vec![8.5; 4]);
    cv.tube(&canal, 0, false, |_, _| 10.0);
    let conus = spine_top - 3.5 * pitch - shift[2];
    let cord = Tube::new(canal_line(&[conus, 40.0, 130.0]), vec![4.5; 3]);
    cv.tube(&cord, lab("spinal_cord"), false, |_, _| 35.0);

    cv
}

/// Partial-volume blur and correlated noise, then rounding to int16 HU.
fn finish(mut hu: Vec<f32>, shape: [usize; 3], rng: &mut Rng) -> Vec<i16> {
    // White noise blurred with the partial-volume kernel becomes correlated noise of
    // about 11 HU; a little white noise (5 HU) is added after.
    add_noise(&mut hu, rng, 24.0);
    for axis in 0..3 {
        blur_axis(&mut hu, shape, axis);
    }
    add_noise(&mut hu, rng, 5.0);
    hu.iter()
        .map(|&v| v.round().clamp(-1024.0, 3071.0) as i16)
        .collect()
}

/// Add approximately Gaussian noise of standard deviation `sd`: the number of set
/// bits of a random 64-bit word is binomial (mean 32, sd 4), which is close enough.
/// The words come from a SplitMix64 sequence seeded from the subject's stream (much
/// faster than ChaCha in unoptimised builds).
fn add_noise(hu: &mut [f32], rng: &mut Rng, sd: f64) {
    let scale = (sd / 4.0) as f32;
    let mut state = rng.0.next_u64();
    for v in hu.iter_mut() {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        *v += (z.count_ones() as f32 - 32.0) * scale;
    }
}

/// Blur along one axis with the kernel `[1, 6, 1] / 8` (edges clamped): partial
/// volume of a point spread about one voxel wide.
fn blur_axis(data: &mut [f32], shape: [usize; 3], axis: usize) {
    let n = shape[axis];
    if n < 2 || data.is_empty() {
        return;
    }
    let stride = [1, shape[0], shape[0] * shape[1]][axis];
    let others: Vec<usize> = (0..3).filter(|&a| a != axis).collect();
    let strides = [1, shape[0], shape[0] * shape[1]];
    let mut line = vec![0f32; n];
    for b in 0..shape[others[1]] {
        for a in 0..shape[others[0]] {
            let start = a * strides[others[0]] + b * strides[others[1]];
            for (t, v) in line.iter_mut().enumerate() {
                *v = data[start + t * stride];
            }
            for t in 0..n {
                let prev = line[t.saturating_sub(1)];
                let next = line[(t + 1).min(n - 1)];
                data[start + t * stride] = 0.125 * prev + 0.75 * line[t] + 0.125 * next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::dataset::load_totalseg_subject;

    /// Every structure name the phantom draws.
    const DRAWN: &[&str] = &[
        "spleen",
        "kidney_right",
        "kidney_left",
        "gallbladder",
        "liver",
        "stomach",
        "pancreas",
        "adrenal_gland_right",
        "adrenal_gland_left",
        "lung_upper_lobe_left",
        "lung_lower_lobe_left",
        "lung_middle_lobe_right",
        "lung_lower_lobe_right",
        "esophagus",
        "small_bowel",
        "duodenum",
        "colon",
        "heart",
        "aorta",
        "inferior_vena_cava",
        "portal_vein_and_splenic_vein",
        "spinal_cord",
        "autochthon_left",
        "autochthon_right",
        "iliopsoas_left",
        "iliopsoas_right",
    ];

    fn small() -> PhantomConfig {
        PhantomConfig::with_shape(3, 7, [96, 96, 48])
    }

    /// Mean of `values` where `labels == label`, and the voxel count.
    fn mean_where(ct: &Volume<i16>, labels: &LabelVolume, label: u8) -> (f64, usize) {
        let mut sum = 0.0;
        let mut n = 0;
        for (&v, &l) in ct.data().iter().zip(labels.data()) {
            if l == label {
                sum += v as f64;
                n += 1;
            }
        }
        (sum / n.max(1) as f64, n)
    }

    /// Mean HU over the interior of `label` (voxels whose 6 neighbours share it),
    /// away from partial-volume edges, and the voxel count.
    fn interior_mean(ct: &Volume<i16>, labels: &LabelVolume, label: u8) -> (f64, usize) {
        let [nx, ny, nz] = labels.shape();
        let l = labels.data();
        let (mut sum, mut n) = (0.0, 0);
        for k in 1..nz - 1 {
            for j in 1..ny - 1 {
                for i in 1..nx - 1 {
                    let idx = i + nx * (j + ny * k);
                    let inside = [idx, idx - 1, idx + 1, idx - nx, idx + nx]
                        .into_iter()
                        .chain([idx - nx * ny, idx + nx * ny])
                        .all(|v| l[v] == label);
                    if inside {
                        sum += ct.data()[idx] as f64;
                        n += 1;
                    }
                }
            }
        }
        (sum / n.max(1) as f64, n)
    }

    /// Mean world position of `label`.
    fn centroid(labels: &LabelVolume, label: u8) -> Point {
        let [nx, ny, _] = labels.shape();
        let mut sum = [0.0; 3];
        let mut n = 0.0;
        for (idx, &l) in labels.data().iter().enumerate() {
            if l == label {
                let v = [
                    (idx % nx) as f64,
                    ((idx / nx) % ny) as f64,
                    (idx / (nx * ny)) as f64,
                ];
                let w = labels.geometry().world_of(v);
                for (s, c) in sum.iter_mut().zip(w) {
                    *s += c;
                }
                n += 1.0;
            }
        }
        sum.map(|s| s / n)
    }

    #[test]
    fn every_drawn_name_is_in_the_catalog() {
        for name in DRAWN.iter().chain(VERTEBRAE.iter()) {
            assert!(catalog().label_of(name).is_some(), "{name}");
        }
    }

    #[test]
    fn same_seed_gives_identical_volumes() {
        let config = small();
        let a = generate_subject(&config, 1);
        let b = generate_subject(&config, 1);
        assert_eq!(a, b);
        let other_seed = PhantomConfig {
            seed: 8,
            ..config.clone()
        };
        let c = generate_subject(&other_seed, 1);
        assert_ne!(a.0.data(), c.0.data());
        assert_ne!(a.1.data(), c.1.data());
        let d = generate_subject(&config, 2);
        assert_ne!(a.0.data(), d.0.data());
        // The number of subjects plays no part.
        let more = PhantomConfig {
            subjects: 50,
            ..config
        };
        assert_eq!(generate_subject(&more, 1), a);
    }

    #[test]
    fn geometry_is_ras_and_centred() {
        let config = small();
        let (ct, labels) = generate_subject(&config, 0);
        assert_eq!(ct.geometry().orientation(), "RAS");
        assert_eq!(ct.geometry(), labels.geometry());
        assert_eq!(ct.shape(), [96, 96, 48]);
        let spacing = ct.geometry().spacing();
        for (got, want) in spacing.iter().zip(config.spacing_mm) {
            assert!((got - want).abs() < 1e-12);
        }
        let centre = ct.geometry().world_of([47.5, 47.5, 23.5]);
        assert!(centre.iter().all(|c| c.abs() < 1e-9), "{centre:?}");
    }

    #[test]
    fn default_subject_has_the_main_structures_with_plausible_hu() {
        let config = PhantomConfig::default();
        let t0 = Instant::now();
        let (ct, labels) = generate_subject(&config, 0);
        eprintln!(
            "one default subject ({:?}) generated in {:.3} s",
            config.shape,
            t0.elapsed().as_secs_f64()
        );
        let counts = label_counts(&labels);
        for name in [
            "liver",
            "spleen",
            "kidney_left",
            "kidney_right",
            "aorta",
            "inferior_vena_cava",
            "stomach",
            "pancreas",
            "gallbladder",
            "colon",
            "small_bowel",
            "spinal_cord",
            "lung_lower_lobe_right",
            "lung_lower_lobe_left",
            "autochthon_left",
            "iliopsoas_right",
            "vertebrae_L1",
            "vertebrae_L2",
        ] {
            assert!(
                counts[lab(name) as usize] > 50,
                "{name}: {}",
                counts[lab(name) as usize]
            );
        }
        // The whole liver, partial-volume edges included, averages about 60 HU.
        let (liver, _) = mean_where(&ct, &labels, lab("liver"));
        assert!((liver - 60.0).abs() < 20.0, "liver: mean {liver:.1} HU");
        let expect = [
            ("liver", 62.0, 10.0),
            ("spleen", 50.0, 10.0),
            ("aorta", 180.0, 25.0),
            ("inferior_vena_cava", 130.0, 20.0),
            ("kidney_left", 115.0, 40.0),
            ("lung_lower_lobe_right", -850.0, 40.0),
            ("vertebrae_L2", 300.0, 120.0),
            ("autochthon_left", 50.0, 10.0),
        ];
        for (name, hu, tol) in expect {
            let (mean, n) = interior_mean(&ct, &labels, lab(name));
            assert!(
                n > 0 && (mean - hu).abs() < tol,
                "{name}: mean {mean:.1} HU over {n}"
            );
        }
        // Laterality in RAS: liver at +x (patient's right), spleen at -x.
        assert!(centroid(&labels, lab("liver"))[0] > 20.0);
        assert!(centroid(&labels, lab("spleen"))[0] < -40.0);
        assert!(centroid(&labels, lab("kidney_right"))[0] > 20.0);
        assert!(centroid(&labels, lab("kidney_left"))[0] < -20.0);
        // The aorta lies anterior to the vertebral bodies; T12 above L1 above L2.
        assert!(centroid(&labels, lab("aorta"))[1] > centroid(&labels, lab("vertebrae_L1"))[1]);
        let z = |n: &str| centroid(&labels, lab(n))[2];
        assert!(z("vertebrae_T12") > z("vertebrae_L1") && z("vertebrae_L1") > z("vertebrae_L2"));
        // Lungs only in the superior part.
        assert!(z("lung_lower_lobe_right") > z("liver"));
    }

    #[test]
    fn every_subject_has_the_core_structures() {
        let config = PhantomConfig::with_shape(6, 3, [64, 64, 32]);
        for index in 0..6 {
            let (_, labels) = generate_subject(&config, index);
            let counts = label_counts(&labels);
            for name in ["liver", "spleen", "kidney_left", "kidney_right", "aorta"] {
                assert!(counts[lab(name) as usize] > 20, "subject {index}: {name}");
            }
            let vertebrae = VERTEBRAE
                .iter()
                .filter(|n| counts[lab(n) as usize] > 20)
                .count();
            assert!(vertebrae >= 4, "subject {index}: {vertebrae} vertebrae");
        }
    }

    #[test]
    fn air_outside_and_labels_inside_the_body() {
        let config = small();
        for index in 0..3 {
            let mut rng = Rng::new(config.seed, index);
            let canvas = render(&config, &mut rng);
            let (ct, labels) = generate_subject(&config, index);
            assert_eq!(labels.data(), &canvas.labels[..]);
            let mut air = (0.0, 0usize);
            for ((&l, &r), &hu) in labels.data().iter().zip(&canvas.region).zip(ct.data()) {
                if r == AIR {
                    assert_eq!(l, 0, "label outside the body");
                    air.0 += hu as f64;
                    air.1 += 1;
                }
            }
            assert!(air.1 > 1000);
            let mean_air = air.0 / air.1 as f64;
            assert!(mean_air < -950.0, "mean air {mean_air}");
            // Corners of every slice are air.
            let [nx, ny, nz] = ct.shape();
            for k in 0..nz {
                for (i, j) in [(0, 0), (nx - 1, 0), (0, ny - 1), (nx - 1, ny - 1)] {
                    let v = ct.get([i, j, k]).unwrap_or(0);
                    assert!(v < -900, "corner ({i}, {j}, {k}) = {v}");
                }
            }
            // The body holds fat, muscle wall and cavity.
            for region in [FAT, WALL, CAVITY] {
                assert!(canvas.region.contains(&region));
            }
        }
    }

    #[test]
    fn splits_are_deterministic_and_sized() {
        let count = |n: usize, s: Split| (0..n).filter(|&i| split_of(i, n) == s).count();
        assert_eq!(split_of(0, 1), Split::Train);
        assert_eq!((count(2, Split::Train), count(2, Split::Val)), (1, 1));
        assert_eq!((count(4, Split::Val), count(4, Split::Test)), (1, 0));
        assert_eq!(
            (
                count(10, Split::Train),
                count(10, Split::Val),
                count(10, Split::Test)
            ),
            (7, 2, 1)
        );
        assert_eq!(count(100, Split::Val), 20);
        assert_eq!(count(100, Split::Test), 10);
        assert_eq!(subject_id(0), "s0001");
        assert_eq!(subject_id(41), "s0042");
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let zero = PhantomConfig {
            subjects: 0,
            ..PhantomConfig::default()
        };
        assert!(matches!(
            write_dataset(dir.path(), &zero),
            Err(Error::Invalid(_))
        ));
        let flat = PhantomConfig {
            shape: [8, 8, 1],
            ..PhantomConfig::default()
        };
        assert!(flat.validate().is_err());
        let bad = PhantomConfig {
            spacing_mm: [1.0, 0.0, 1.0],
            ..PhantomConfig::default()
        };
        assert!(bad.validate().is_err());
        // Degenerate shapes still generate without panicking.
        let (ct, _) = generate_subject(&flat, 0);
        assert_eq!(ct.data().len(), 64);
    }

    #[test]
    fn dataset_round_trips_through_totalsegmentator_layout() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let config = PhantomConfig::with_shape(2, 5, [48, 48, 16]);
        let mut seen = Vec::new();
        let summary =
            write_dataset_with(dir.path(), &config, |s| seen.push(s.id.clone())).expect("written");
        assert_eq!(seen, ["s0001", "s0002"]);
        assert_eq!(summary.subjects.len(), 2);
        assert_eq!(summary.subjects[0].split, Split::Train);
        assert_eq!(summary.subjects[1].split, Split::Val);
        assert!(summary.structures.iter().any(|s| s == "liver"));
        let meta = std::fs::read_to_string(dir.path().join("meta.csv")).expect("meta.csv");
        assert_eq!(meta, "image_id;split\ns0001;train\ns0002;val\n");
        for (index, s) in summary.subjects.iter().enumerate() {
            let subject = load_totalseg_subject(&dir.path().join(&s.id)).expect("loads");
            assert_eq!(subject.id, s.id);
            let (ct, labels) = generate_subject(&config, index);
            assert_eq!(subject.ct.volume.data(), ct.data());
            assert_eq!(subject.ct.dtype, "int16");
            assert_eq!(subject.segmentation.labels.data(), labels.data());
            assert_eq!(subject.segmentation.files_found, 117);
            assert_eq!(subject.segmentation.overlap_voxels, 0);
            assert_eq!(subject.ct.volume.geometry().orientation(), "RAS");
            assert!(subject.ct.volume.geometry().same_grid(ct.geometry(), 1e-4));
            let counts = label_counts(&labels);
            let present: Vec<String> = catalog()
                .all()
                .iter()
                .filter(|c| counts[c.label as usize] > 0)
                .map(|c| c.name.clone())
                .collect();
            assert_eq!(s.structures, present);
        }
    }
}
