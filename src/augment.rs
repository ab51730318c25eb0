//! Seeded 2-D data augmentation of training samples: one axial slice `image`
//! (`h·w` values in `[0, 1]`, row-major, x fastest) and its label map `labels`
//! (same size, 0 = background, 1..=117 structures).
//!
//! Geometric transforms (rotation, flips, shift-scale-rotate, elastic deformation)
//! are composed into one inverse affine map plus an optional displacement field and
//! applied in a single resampling pass, identical for image and labels: bilinear
//! for the image, nearest-neighbour for the labels (so no label value is ever
//! invented). Samples that fall outside the slice read [`IMAGE_FILL`] /
//! [`LABEL_FILL`]. Intensity transforms (brightness, contrast, Gaussian noise) and
//! coarse dropout then touch the image only.
//!
//! The order is fixed (geometry, brightness, contrast, noise, clamp, dropout), and
//! every random draw comes from the caller's generator, so a seeded generator
//! (e.g. `rand_chacha::ChaCha8Rng::seed_from_u64`) reproduces a sample exactly.
//!
//! Defaults follow nnU-Net / albumentations practice and are cheap enough that the
//! data pipeline never limits training (several thousand 256×256 slices per second
//! per core in release builds).

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Image value read where a geometric transform samples outside the slice.
pub const IMAGE_FILL: f32 = 0.0;
/// Label read where a geometric transform samples outside the slice (background).
pub const LABEL_FILL: u8 = 0;
/// Image value written into coarse-dropout holes.
pub const DROPOUT_FILL: f32 = 0.0;

/// Augmentation settings: a master switch and one sub-table per transform, each
/// with its probability `p` (per sample, in `[0, 1]`) and its range(s).
///
/// Every field has a default, so a TOML table may name only what it changes;
/// unknown keys are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Master switch: when `false`, [`augment`] leaves the sample (and the random
    /// generator) untouched. Default `true`.
    pub enabled: bool,
    /// Clamp the image to `[0, 1]` after the intensity transforms (before
    /// dropout). Default `true`.
    pub clamp: bool,
    /// Random rotation about the slice centre. Default p 0.5, ±15°.
    pub rotate: RotateConfig,
    /// Left-right mirror (x ↦ w−1−x). Default p 0.5.
    pub hflip: FlipConfig,
    /// Top-bottom mirror (y ↦ h−1−y). Default p 0.0: anatomy is not symmetric
    /// front to back.
    pub vflip: FlipConfig,
    /// Shift, scale and rotate (albumentations `ShiftScaleRotate`). Default p 0.5,
    /// shift ±6.25 %, scale 0.9–1.1, rotate ±15°.
    pub shift_scale_rotate: ShiftScaleRotateConfig,
    /// Elastic deformation (Simard et al. 2003). Default p 0.2, alpha 150 px,
    /// sigma 10 px.
    pub elastic: ElasticConfig,
    /// Additive brightness. Default p 0.3, ±0.1.
    pub brightness: BrightnessConfig,
    /// Multiplicative contrast around the image mean. Default p 0.3, 0.9–1.1.
    pub contrast: ContrastConfig,
    /// Additive Gaussian noise. Default p 0.2, sd up to 0.03.
    pub noise: NoiseConfig,
    /// Coarse dropout: rectangular holes set to [`DROPOUT_FILL`] in the image only.
    /// Default p 0.2, 1–8 holes of 8–32 px.
    pub dropout: DropoutConfig,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            clamp: true,
            rotate: RotateConfig::default(),
            hflip: FlipConfig { p: 0.5 },
            vflip: FlipConfig { p: 0.0 },
            shift_scale_rotate: ShiftScaleRotateConfig::default(),
            elastic: ElasticConfig::default(),
            brightness: BrightnessConfig::default(),
            contrast: ContrastConfig::default(),
            noise: NoiseConfig::default(),
            dropout: DropoutConfig::default(),
        }
    }
}

/// Random rotation about the slice centre by an angle uniform in
/// `[-limit_deg, limit_deg]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RotateConfig {
    /// Probability per sample. Default 0.5.
    pub p: f32,
    /// Largest rotation in degrees. Default 15.
    pub limit_deg: f32,
}

impl Default for RotateConfig {
    fn default() -> Self {
        Self {
            p: 0.5,
            limit_deg: 15.0,
        }
    }
}

/// A mirror flip. The table must give `p` (the default differs between
/// [`AugmentConfig::hflip`] and [`AugmentConfig::vflip`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlipConfig {
    /// Probability per sample.
    pub p: f32,
}

/// Shift, scale and rotate about the slice centre in one affine transform
/// (albumentations `ShiftScaleRotate`); its rotation adds to [`RotateConfig`]'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShiftScaleRotateConfig {
    /// Probability per sample. Default 0.5.
    pub p: f32,
    /// Largest shift along each axis, as a fraction of the slice size
    /// (independent in x and y). Default 0.0625.
    pub shift_limit: f32,
    /// Smallest zoom factor (< 1 shrinks the content). Default 0.9.
    pub scale_min: f32,
    /// Largest zoom factor (> 1 enlarges the content). Default 1.1.
    pub scale_max: f32,
    /// Largest rotation in degrees. Default 15.
    pub rotate_limit_deg: f32,
}

impl Default for ShiftScaleRotateConfig {
    fn default() -> Self {
        Self {
            p: 0.5,
            shift_limit: 0.0625,
            scale_min: 0.9,
            scale_max: 1.1,
            rotate_limit_deg: 15.0,
        }
    }
}

/// Elastic deformation after Simard et al. (2003): per-pixel displacements
/// uniform in `[-1, 1]`, smoothed by a Gaussian of standard deviation `sigma` and
/// scaled by `alpha`, both in pixels. The displacement has a standard deviation of
/// about `alpha / (2·√(3π)·sigma)` pixels (≈ 2.4 px with the defaults).
///
/// The field is drawn on a grid coarser by `⌊sigma / 1.5⌋` (the smoothed field is
/// band-limited, so this loses nothing visible) and interpolated bilinearly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticConfig {
    /// Probability per sample. Default 0.2.
    pub p: f32,
    /// Displacement scale in pixels. Default 150.
    pub alpha: f32,
    /// Smoothing standard deviation in pixels (> 0). Default 10.
    pub sigma: f32,
}

impl Default for ElasticConfig {
    fn default() -> Self {
        Self {
            p: 0.2,
            alpha: 150.0,
            sigma: 10.0,
        }
    }
}

/// Additive brightness: the image plus a value uniform in `[-limit, limit]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrightnessConfig {
    /// Probability per sample. Default 0.3.
    pub p: f32,
    /// Largest shift (image units, the image spans `[0, 1]`). Default 0.1.
    pub limit: f32,
}

impl Default for BrightnessConfig {
    fn default() -> Self {
        Self { p: 0.3, limit: 0.1 }
    }
}

/// Contrast: `v ↦ mean + c·(v − mean)` with `c` uniform in `[min, max]` and `mean`
/// the image mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContrastConfig {
    /// Probability per sample. Default 0.3.
    pub p: f32,
    /// Smallest contrast factor. Default 0.9.
    pub min: f32,
    /// Largest contrast factor. Default 1.1.
    pub max: f32,
}

impl Default for ContrastConfig {
    fn default() -> Self {
        Self {
            p: 0.3,
            min: 0.9,
            max: 1.1,
        }
    }
}

/// Additive Gaussian noise, independent per pixel, with a standard deviation
/// uniform in `[0, max_sd]` per sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoiseConfig {
    /// Probability per sample. Default 0.2.
    pub p: f32,
    /// Largest standard deviation (image units). Default 0.03.
    pub max_sd: f32,
}

impl Default for NoiseConfig {
    fn default() -> Self {
        Self {
            p: 0.2,
            max_sd: 0.03,
        }
    }
}

/// Coarse dropout: a number of holes uniform in `[min_holes, max_holes]`, each a
/// rectangle whose height and width are uniform in `[min_size, max_size]` pixels
/// (capped by the slice), placed uniformly inside the slice and filled with
/// [`DROPOUT_FILL`] in the image. The labels are kept, so the model learns to infer
/// structures from context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DropoutConfig {
    /// Probability per sample. Default 0.2.
    pub p: f32,
    /// Fewest holes. Default 1.
    pub min_holes: u32,
    /// Most holes. Default 8.
    pub max_holes: u32,
    /// Smallest hole side in pixels. Default 8.
    pub min_size: u32,
    /// Largest hole side in pixels. Default 32.
    pub max_size: u32,
}

impl Default for DropoutConfig {
    fn default() -> Self {
        Self {
            p: 0.2,
            min_holes: 1,
            max_holes: 8,
            min_size: 8,
            max_size: 32,
        }
    }
}

impl AugmentConfig {
    /// No augmentation at all (`enabled = false`); the other settings keep their
    /// defaults.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Checks the settings: probabilities in `[0, 1]`, finite non-negative limits,
    /// ordered ranges, positive scales and sigma. [`augment`] never panics on an
    /// invalid configuration, but its output is then meaningless.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        let mut prob = |name: &str, p: f32| {
            if !(0.0..=1.0).contains(&p) {
                problems.push(format!("{name}.p = {p} is not in [0, 1]"));
            }
        };
        prob("rotate", self.rotate.p);
        prob("hflip", self.hflip.p);
        prob("vflip", self.vflip.p);
        prob("shift_scale_rotate", self.shift_scale_rotate.p);
        prob("elastic", self.elastic.p);
        prob("brightness", self.brightness.p);
        prob("contrast", self.contrast.p);
        prob("noise", self.noise.p);
        prob("dropout", self.dropout.p);
        let mut non_negative = |name: &str, v: f32| {
            if !(v.is_finite() && v >= 0.0) {
                problems.push(format!("{name} = {v} must be finite and >= 0"));
            }
        };
        non_negative("rotate.limit_deg", self.rotate.limit_deg);
        let ssr = &self.shift_scale_rotate;
        non_negative("shift_scale_rotate.shift_limit", ssr.shift_limit);
        non_negative("shift_scale_rotate.rotate_limit_deg", ssr.rotate_limit_deg);
        non_negative("elastic.alpha", self.elastic.alpha);
        non_negative("brightness.limit", self.brightness.limit);
        non_negative("contrast.min", self.contrast.min);
        non_negative("noise.max_sd", self.noise.max_sd);
        if !(ssr.scale_min.is_finite() && ssr.scale_min > 0.0 && ssr.scale_max.is_finite()) {
            problems.push(format!(
                "shift_scale_rotate.scale_min = {} must be finite and > 0",
                ssr.scale_min
            ));
        }
        if ssr.scale_min > ssr.scale_max {
            problems.push(format!(
                "shift_scale_rotate.scale_min = {} > scale_max = {}",
                ssr.scale_min, ssr.scale_max
            ));
        }
        if !(self.elastic.sigma.is_finite() && self.elastic.sigma > 0.0) {
            problems.push(format!(
                "elastic.sigma = {} must be finite and > 0",
                self.elastic.sigma
            ));
        }
        if !self.contrast.max.is_finite() || self.contrast.min > self.contrast.max {
            problems.push(format!(
                "contrast.min = {} must not exceed contrast.max = {}",
                self.contrast.min, self.contrast.max
            ));
        }
        let d = &self.dropout;
        if d.min_holes > d.max_holes {
            problems.push(format!(
                "dropout.min_holes = {} > max_holes = {}",
                d.min_holes, d.max_holes
            ));
        }
        if d.min_size > d.max_size {
            problems.push(format!(
                "dropout.min_size = {} > max_size = {}",
                d.min_size, d.max_size
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "invalid augmentation settings: {}",
                problems.join("; ")
            )))
        }
    }
}

/// Augments one slice in place: `image` and `labels` hold `h·w` values, row-major
/// (x fastest).
///
/// Order: one geometric resampling (rotation + shift-scale-rotate + flips composed
/// into a single affine map, plus the elastic displacement when drawn; bilinear for
/// the image, nearest for the labels, [`IMAGE_FILL`]/[`LABEL_FILL`] outside), then
/// brightness, contrast, Gaussian noise, clamping to `[0, 1]` and coarse dropout
/// (image only). Each transform is drawn with its own probability; when
/// `config.enabled` is `false` nothing is changed and `rng` is not used.
///
/// The output depends only on the inputs and the generator's state, so a seeded
/// generator makes it reproducible. Label values in the output are a subset of the
/// input's values plus [`LABEL_FILL`] (where the slice is moved out of view).
///
/// # Panics
/// If `image.len()` or `labels.len()` differs from `h * w`, or (when a geometric
/// transform other than a flip is drawn) if `h` or `w` is 2^22 or more or the slice
/// has about 2^32 pixels or more.
pub fn augment(
    image: &mut [f32],
    labels: &mut [u8],
    h: usize,
    w: usize,
    config: &AugmentConfig,
    rng: &mut impl Rng,
) {
    let n = h.checked_mul(w).expect("h * w overflows usize");
    assert_eq!(
        image.len(),
        n,
        "image has {} values, h*w = {n}",
        image.len()
    );
    assert_eq!(
        labels.len(),
        n,
        "labels have {} values, h*w = {n}",
        labels.len()
    );
    if !config.enabled {
        return;
    }

    // Geometry: draw every parameter first (fixed order), then resample once.
    let rot = coin(rng, config.rotate.p);
    let mut angle_deg = if rot {
        symmetric(rng, config.rotate.limit_deg)
    } else {
        0.0
    };
    let hflip = coin(rng, config.hflip.p);
    let vflip = coin(rng, config.vflip.p);
    let ssr_cfg = &config.shift_scale_rotate;
    let ssr = coin(rng, ssr_cfg.p);
    let (mut scale, mut shift_x, mut shift_y) = (1.0, 0.0, 0.0);
    if ssr {
        angle_deg += symmetric(rng, ssr_cfg.rotate_limit_deg);
        scale = uniform(rng, ssr_cfg.scale_min, ssr_cfg.scale_max);
        shift_x = symmetric(rng, ssr_cfg.shift_limit) * w as f32;
        shift_y = symmetric(rng, ssr_cfg.shift_limit) * h as f32;
    }
    let elastic = coin(rng, config.elastic.p)
        .then(|| ElasticField::random(h, w, config.elastic.alpha, config.elastic.sigma, rng));
    if n > 0 {
        if rot || ssr || elastic.is_some() {
            let map = Affine::inverse_map(h, w, angle_deg, scale, shift_x, shift_y, hflip, vflip);
            resample(image, labels, h, w, &map, elastic.as_ref());
        } else {
            flip_in_place(image, labels, h, w, hflip, vflip);
        }
    }

    // Intensity (image only).
    if coin(rng, config.brightness.p) {
        let delta = symmetric(rng, config.brightness.limit);
        image.iter_mut().for_each(|v| *v += delta);
    }
    if coin(rng, config.contrast.p) {
        let c = uniform(rng, config.contrast.min, config.contrast.max);
        if n > 0 {
            let mean = (image.iter().map(|&v| v as f64).sum::<f64>() / n as f64) as f32;
            image.iter_mut().for_each(|v| *v = mean + c * (*v - mean));
        }
    }
    if coin(rng, config.noise.p) {
        let sd = uniform(rng, 0.0, config.noise.max_sd);
        add_gaussian_noise(image, sd, rng);
    }
    if config.clamp {
        image.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
    }

    // Coarse dropout (image only; labels kept).
    let d = &config.dropout;
    if coin(rng, d.p) && n > 0 {
        let holes = uniform_u32(rng, d.min_holes, d.max_holes);
        for _ in 0..holes {
            let hh = (uniform_u32(rng, d.min_size, d.max_size) as usize).min(h);
            let hw = (uniform_u32(rng, d.min_size, d.max_size) as usize).min(w);
            let y0 = rng.random_range(0..=h - hh);
            let x0 = rng.random_range(0..=w - hw);
            for row in image.chunks_exact_mut(w).skip(y0).take(hh) {
                row[x0..x0 + hw].fill(DROPOUT_FILL);
            }
        }
    }
}

/// True with probability `p` (always draws one number).
fn coin(rng: &mut impl Rng, p: f32) -> bool {
    rng.random::<f32>() < p
}

/// Uniform in `[lo, hi)` (any order of the bounds; never panics).
fn uniform(rng: &mut impl Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

/// Uniform in `[-limit, limit)`.
fn symmetric(rng: &mut impl Rng, limit: f32) -> f32 {
    uniform(rng, -limit, limit)
}

/// Uniform integer in `[lo, hi]`; `lo` when the range is empty.
fn uniform_u32(rng: &mut impl Rng, lo: u32, hi: u32) -> u32 {
    if hi <= lo {
        lo
    } else {
        rng.random_range(lo..=hi)
    }
}

/// Adds N(0, sd²) noise to every value.
///
/// Box-Muller with tabulated transcendental functions: each normal pair is
/// `r·(cos θ, sin θ)` with `r = √(−2 ln u)` read from a 4096-level table of `u`
/// (midpoints, rescaled so that `E[r²]` = 2 exactly) and `θ` from a 1024-level table,
/// so one 64-bit draw yields four values without any `ln`/`sin` per pixel. The
/// marginals are Gaussian to well within augmentation needs (tails cut at ≈4.2 sd).
fn add_gaussian_noise(image: &mut [f32], sd: f32, rng: &mut impl Rng) {
    let t = noise_tables();
    let normals = |bits: u64| {
        let r1 = t.radius[(bits & 0xfff) as usize];
        let (c1, s1) = t.angle[((bits >> 12) & 0x3ff) as usize];
        let r2 = t.radius[((bits >> 22) & 0xfff) as usize];
        let (c2, s2) = t.angle[((bits >> 34) & 0x3ff) as usize];
        [r1 * c1, r1 * s1, r2 * c2, r2 * s2]
    };
    let mut quads = image.chunks_exact_mut(4);
    for quad in &mut quads {
        let n = normals(rng.random::<u64>());
        for (v, n) in quad.iter_mut().zip(n) {
            *v += sd * n;
        }
    }
    let rest = quads.into_remainder();
    if !rest.is_empty() {
        let n = normals(rng.random::<u64>());
        for (v, n) in rest.iter_mut().zip(n) {
            *v += sd * n;
        }
    }
}

/// Lookup tables of [`add_gaussian_noise`].
struct NoiseTables {
    /// √(−2 ln u) at u = (i + ½)/4096, scaled so the mean square is 2.
    radius: Vec<f32>,
    /// (cos θ, sin θ) at θ = 2π·j/1024.
    angle: Vec<(f32, f32)>,
}

fn noise_tables() -> &'static NoiseTables {
    static TABLES: std::sync::OnceLock<NoiseTables> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        const R: usize = 4096;
        const A: usize = 1024;
        let mut radius: Vec<f64> = (0..R)
            .map(|i| (-2.0 * ((i as f64 + 0.5) / R as f64).ln()).sqrt())
            .collect();
        let mean_sq = radius.iter().map(|r| r * r).sum::<f64>() / R as f64;
        let gain = (2.0 / mean_sq).sqrt();
        radius.iter_mut().for_each(|r| *r *= gain);
        let angle = (0..A)
            .map(|j| {
                let (s, c) = (std::f64::consts::TAU * j as f64 / A as f64).sin_cos();
                (c as f32, s as f32)
            })
            .collect();
        NoiseTables {
            radius: radius.into_iter().map(|r| r as f32).collect(),
            angle,
        }
    })
}

/// An affine map from output pixel `(x, y)` to source position
/// `(a·x + b·y + c, d·x + e·y + f)`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Affine {
    a: f32,
    b: f32,
    c: f32,
    d: f32,
    e: f32,
    f: f32,
}

impl Affine {
    /// The inverse of: flip(s), then rotate by `angle_deg` and zoom by `scale`
    /// about the slice centre, then shift by `(tx, ty)` pixels. Rotation and zoom
    /// are about the pixel-centre midpoint `((w−1)/2, (h−1)/2)`, so flips are exact.
    #[allow(clippy::too_many_arguments)]
    fn inverse_map(
        h: usize,
        w: usize,
        angle_deg: f32,
        scale: f32,
        tx: f32,
        ty: f32,
        hflip: bool,
        vflip: bool,
    ) -> Self {
        let cx = (w as f32 - 1.0) * 0.5;
        let cy = (h as f32 - 1.0) * 0.5;
        let (sin, cos) = (angle_deg.to_radians() as f64).sin_cos();
        let inv_s = 1.0 / scale as f64;
        // Undo shift, rotation and zoom: q = C + R(−θ)/s · (p − C − t).
        let (m00, m01, m10, m11) = (cos * inv_s, sin * inv_s, -sin * inv_s, cos * inv_s);
        let ox = (cx + tx) as f64;
        let oy = (cy + ty) as f64;
        let mut a = Affine {
            a: m00 as f32,
            b: m01 as f32,
            c: (cx as f64 - m00 * ox - m01 * oy) as f32,
            d: m10 as f32,
            e: m11 as f32,
            f: (cy as f64 - m10 * ox - m11 * oy) as f32,
        };
        // Undo the flips: x ↦ (w−1) − x, y ↦ (h−1) − y.
        if hflip {
            a.a = -a.a;
            a.b = -a.b;
            a.c = (w as f32 - 1.0) - a.c;
        }
        if vflip {
            a.d = -a.d;
            a.e = -a.e;
            a.f = (h as f32 - 1.0) - a.f;
        }
        a
    }
}

/// A smooth random displacement field on a grid `k` times coarser than the slice
/// (node `(i, j)` sits at pixel `(i·k, j·k)`), interpolated bilinearly.
struct ElasticField {
    k: usize,
    gw: usize,
    /// Displacements along x and y in pixels, `gh·gw` each.
    dx: Vec<f32>,
    dy: Vec<f32>,
    /// `i / k` for `i` in `0..k`: interpolation weights between two nodes.
    frac: Vec<f32>,
}

impl ElasticField {
    /// Simard's field: uniform [−1, 1] noise, Gaussian-smoothed with `sigma`
    /// pixels, times `alpha`. At grid spacing `k` the noise is smoothed with
    /// `sigma / k` nodes and scaled by `alpha / k`, which gives the same
    /// displacement statistics as the full-resolution construction.
    fn random(h: usize, w: usize, alpha: f32, sigma: f32, rng: &mut impl Rng) -> Self {
        let sigma = if sigma.is_finite() {
            sigma.max(0.0)
        } else {
            0.0
        };
        let k = ((sigma / 1.5) as usize).clamp(1, 64);
        let gw = w.saturating_sub(1) / k + 2;
        let gh = h.saturating_sub(1) / k + 2;
        let kernel = gaussian_kernel(sigma / k as f32);
        let gain = alpha / k as f32;
        let mut dx = smoothed_noise(gw, gh, &kernel, rng);
        let mut dy = smoothed_noise(gw, gh, &kernel, rng);
        for field in [&mut dx, &mut dy] {
            field.iter_mut().for_each(|v| *v *= gain);
        }
        let frac = (0..k).map(|i| i as f32 / k as f32).collect();
        Self {
            k,
            gw,
            dx,
            dy,
            frac,
        }
    }

    /// The displacements of output row `y`, interpolated into `row_dx`/`row_dy`
    /// (length `w`), with `tmp_x`/`tmp_y` scratch rows of `gw` nodes.
    fn row(&self, y: usize, tmp: (&mut [f32], &mut [f32]), row_dx: &mut [f32], row_dy: &mut [f32]) {
        let (gw, k) = (self.gw, self.k);
        let j = y / k;
        let fy = self.frac[y % k];
        let (tmp_x, tmp_y) = tmp;
        for (field, out) in [(&self.dx, &mut *tmp_x), (&self.dy, &mut *tmp_y)] {
            let r0 = &field[j * gw..(j + 1) * gw];
            let r1 = &field[(j + 1) * gw..(j + 2) * gw];
            for ((o, &a), &b) in out.iter_mut().zip(r0).zip(r1) {
                *o = a + fy * (b - a);
            }
        }
        // Pixels i·k .. i·k+k−1 lie between nodes i and i+1.
        for (tmp, out) in [(&*tmp_x, row_dx), (&*tmp_y, row_dy)] {
            for (nodes, chunk) in tmp.windows(2).zip(out.chunks_mut(k)) {
                let (a, b) = (nodes[0], nodes[1]);
                for (o, &f) in chunk.iter_mut().zip(&self.frac) {
                    *o = a + f * (b - a);
                }
            }
        }
    }
}

/// A normalised Gaussian kernel of standard deviation `sigma` (radius ⌈3σ⌉); `[1]`
/// for `sigma ≤ 0`.
fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    if !(sigma > 0.0 && sigma.is_finite()) {
        return vec![1.0];
    }
    let radius = (3.0 * sigma).ceil() as i64;
    let mut k: Vec<f32> = (-radius..=radius)
        .map(|t| (-((t * t) as f32) / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    k
}

/// A `gh×gw` grid of independent uniform `[-1, 1]` values smoothed by the
/// separable `kernel`. The noise is drawn with a margin of the kernel radius on
/// every side, so the smoothed values have the same statistics everywhere (no edge
/// effects).
fn smoothed_noise(gw: usize, gh: usize, kernel: &[f32], rng: &mut impl Rng) -> Vec<f32> {
    let r = kernel.len() / 2;
    let (nw, nh) = (gw + 2 * r, gh + 2 * r);
    let noise: Vec<f32> = (0..nw * nh).map(|_| symmetric(rng, 1.0)).collect();
    // Horizontal: nh rows of nw → nh rows of gw.
    let mut tmp = vec![0.0f32; nh * gw];
    for (src, dst) in noise.chunks_exact(nw).zip(tmp.chunks_exact_mut(gw)) {
        for (t, &kv) in kernel.iter().enumerate() {
            for (o, &v) in dst.iter_mut().zip(&src[t..t + gw]) {
                *o += kv * v;
            }
        }
    }
    // Vertical: whole rows at a time, nh rows → gh rows.
    let mut out = vec![0.0f32; gh * gw];
    for (y, dst) in out.chunks_exact_mut(gw).enumerate() {
        for (t, &kv) in kernel.iter().enumerate() {
            let src = &tmp[(y + t) * gw..(y + t + 1) * gw];
            for (o, &v) in dst.iter_mut().zip(src) {
                *o += kv * v;
            }
        }
    }
    out
}

/// The source of a resampling pass: image and labels copied into buffers with a
/// border of fill values (1 pixel before, 2 after, in x and in y), so that every
/// clamped sample position has all four bilinear corners inside the buffer and no
/// per-pixel bounds branch is needed.
struct PaddedSource {
    img: Vec<f32>,
    lab: Vec<u8>,
    /// Padded row length, `w + 3`.
    pw: usize,
    /// Largest padded coordinate, `w + 1` and `h + 1` (a fill column/row).
    x_max: f32,
    y_max: f32,
}

/// Per-row sampling positions, resolved into buffer offsets and weights.
struct RowTaps {
    /// Offset of the top-left bilinear corner in the padded buffer.
    corner: Vec<u32>,
    /// Offset of the nearest pixel (the corner closest to the point).
    nearest: Vec<u32>,
    /// Bilinear weights of the right and bottom corners.
    ax: Vec<f32>,
    ay: Vec<f32>,
}

/// 2^23: adding it to a float in `[0, 2^22)` leaves the integer part in the
/// mantissa's low bits, rounded to nearest.
const MAGIC: f32 = 8_388_608.0;

/// Slice sides [`augment`] resamples must be below this (the float tricks below
/// need it); the padded slice must also have fewer than 2^32 pixels.
const MAX_SIDE: usize = 1 << 22;

/// ⌊v⌋ for `v` in `[0, 2^22)`, exact, with float operations only (SSE2 lacks a
/// vector floor and a cheap saturating float-to-int conversion; this vectorises).
#[inline(always)]
fn floor_small(v: f32) -> f32 {
    let r = (v + MAGIC) - MAGIC; // v rounded to nearest
    if r > v { r - 1.0 } else { r }
}

/// The integer value of an integral float in `[0, 2^22)`.
#[inline(always)]
fn small_to_u32(v: f32) -> u32 {
    (v + MAGIC).to_bits() & 0x7f_ffff
}

impl PaddedSource {
    fn new(image: &[f32], labels: &[u8], h: usize, w: usize) -> Self {
        let (pw, ph) = (w + 3, h + 3);
        let mut img = Vec::with_capacity(pw * ph);
        let mut lab = Vec::with_capacity(pw * ph);
        img.resize(pw + 1, IMAGE_FILL);
        lab.resize(pw + 1, LABEL_FILL);
        for (img_row, lab_row) in image.chunks_exact(w).zip(labels.chunks_exact(w)) {
            img.extend_from_slice(img_row);
            img.extend_from_slice(&[IMAGE_FILL; 3]);
            lab.extend_from_slice(lab_row);
            lab.extend_from_slice(&[LABEL_FILL; 3]);
        }
        img.resize(pw * ph, IMAGE_FILL);
        lab.resize(pw * ph, LABEL_FILL);
        Self {
            img,
            lab,
            pw,
            x_max: (w + 1) as f32,
            y_max: (h + 1) as f32,
        }
    }

    /// Resolves source positions `(sx[i], sy[i])` (pixel units) into `taps`. A
    /// branch-free loop that the compiler vectorises.
    fn locate(&self, sx: &[f32], sy: &[f32], taps: &mut RowTaps) {
        let (pw, x_max, y_max) = (self.pw as u32, self.x_max, self.y_max);
        let outs = taps.corner.iter_mut().zip(taps.nearest.iter_mut());
        let weights = taps.ax.iter_mut().zip(taps.ay.iter_mut());
        for (((&sx, &sy), (corner, nearest)), (ax, ay)) in sx.iter().zip(sy).zip(outs).zip(weights)
        {
            // Padded coordinates clamped to [0, w+1] × [0, h+1] (NaN → 0): anything
            // further out lands on the fill border and reads fill.
            let px = (sx + 1.0).max(0.0).min(x_max);
            let py = (sy + 1.0).max(0.0).min(y_max);
            let (x0, y0) = (floor_small(px), floor_small(py));
            (*ax, *ay) = (px - x0, py - y0);
            *corner = small_to_u32(y0) * pw + small_to_u32(x0);
            *nearest = *corner + u32::from(*ax >= 0.5) + if *ay >= 0.5 { pw } else { 0 };
        }
    }

    /// Samples at the located taps: bilinear image values and nearest labels. The
    /// nearest pixel is the bilinear cell corner closest to the point, so both
    /// read the same cell and image and labels stay aligned.
    fn gather(&self, taps: &RowTaps, img_row: &mut [f32], lab_row: &mut [u8]) {
        let pw = self.pw;
        let outs = img_row.iter_mut().zip(lab_row.iter_mut());
        let locs = taps.corner.iter().zip(&taps.nearest);
        let weights = taps.ax.iter().zip(&taps.ay);
        for ((v, l), ((&corner, &nearest), (&ax, &ay))) in outs.zip(locs.zip(weights)) {
            let i = corner as usize;
            let top = &self.img[i..i + 2];
            let bottom = &self.img[i + pw..i + pw + 2];
            // Lerp form: a zero fraction returns the corner value exactly.
            let t = top[0] + ax * (top[1] - top[0]);
            let b = bottom[0] + ax * (bottom[1] - bottom[0]);
            *v = t + ay * (b - t);
            *l = self.lab[nearest as usize];
        }
    }
}

/// Resamples image and labels through `map` (+ `field`) in one pass.
fn resample(
    image: &mut [f32],
    labels: &mut [u8],
    h: usize,
    w: usize,
    map: &Affine,
    field: Option<&ElasticField>,
) {
    assert!(
        h < MAX_SIDE && w < MAX_SIDE && (h + 3) * (w + 3) <= u32::MAX as usize,
        "slice {h}x{w} too large to resample"
    );
    let src = PaddedSource::new(image, labels, h, w);
    let xs: Vec<f32> = (0..w).map(|x| x as f32).collect();
    let (mut sx, mut sy) = (vec![0.0f32; w], vec![0.0f32; w]);
    let mut taps = RowTaps {
        corner: vec![0; w],
        nearest: vec![0; w],
        ax: vec![0.0; w],
        ay: vec![0.0; w],
    };
    // Elastic: scratch rows of grid nodes and the row displacements.
    let gw = field.map_or(0, |f| f.gw);
    let (mut tmp_x, mut tmp_y) = (vec![0.0f32; gw], vec![0.0f32; gw]);
    let (mut row_dx, mut row_dy) = (vec![0.0f32; w], vec![0.0f32; w]);

    let rows = image.chunks_exact_mut(w).zip(labels.chunks_exact_mut(w));
    for (y, (img_row, lab_row)) in rows.enumerate() {
        let bx = map.b * y as f32 + map.c;
        let by = map.e * y as f32 + map.f;
        for ((x, sx), sy) in xs.iter().zip(&mut sx).zip(&mut sy) {
            *sx = map.a * x + bx;
            *sy = map.d * x + by;
        }
        if let Some(f) = field {
            f.row(y, (&mut tmp_x, &mut tmp_y), &mut row_dx, &mut row_dy);
            sx.iter_mut().zip(&row_dx).for_each(|(s, d)| *s += d);
            sy.iter_mut().zip(&row_dy).for_each(|(s, d)| *s += d);
        }
        src.locate(&sx, &sy, &mut taps);
        src.gather(&taps, img_row, lab_row);
    }
}

/// Exact mirror flips without resampling.
fn flip_in_place(
    image: &mut [f32],
    labels: &mut [u8],
    h: usize,
    w: usize,
    hflip: bool,
    vflip: bool,
) {
    if hflip {
        image.chunks_exact_mut(w).for_each(|r| r.reverse());
        labels.chunks_exact_mut(w).for_each(|r| r.reverse());
    }
    if vflip {
        for y in 0..h / 2 {
            let (top, bottom) = image.split_at_mut((h - 1 - y) * w);
            top[y * w..(y + 1) * w].swap_with_slice(&mut bottom[..w]);
            let (top, bottom) = labels.split_at_mut((h - 1 - y) * w);
            top[y * w..(y + 1) * w].swap_with_slice(&mut bottom[..w]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const H: usize = 96;
    const W: usize = 128;

    /// Everything off (but enabled): each test switches on what it checks.
    fn nothing() -> AugmentConfig {
        AugmentConfig {
            enabled: true,
            clamp: false,
            rotate: RotateConfig {
                p: 0.0,
                ..Default::default()
            },
            hflip: FlipConfig { p: 0.0 },
            vflip: FlipConfig { p: 0.0 },
            shift_scale_rotate: ShiftScaleRotateConfig {
                p: 0.0,
                ..Default::default()
            },
            elastic: ElasticConfig {
                p: 0.0,
                ..Default::default()
            },
            brightness: BrightnessConfig {
                p: 0.0,
                ..Default::default()
            },
            contrast: ContrastConfig {
                p: 0.0,
                ..Default::default()
            },
            noise: NoiseConfig {
                p: 0.0,
                ..Default::default()
            },
            dropout: DropoutConfig {
                p: 0.0,
                ..Default::default()
            },
        }
    }

    /// Heavy geometry, no intensity transforms, no dropout.
    fn heavy_geometry() -> AugmentConfig {
        let mut c = nothing();
        c.rotate = RotateConfig {
            p: 1.0,
            limit_deg: 30.0,
        };
        c.hflip.p = 0.5;
        c.vflip.p = 0.5;
        c.shift_scale_rotate = ShiftScaleRotateConfig {
            p: 1.0,
            shift_limit: 0.1,
            scale_min: 0.8,
            scale_max: 1.25,
            rotate_limit_deg: 30.0,
        };
        c.elastic.p = 1.0;
        c
    }

    /// Axis-aligned rectangles of many labels (1..=117) on background, some
    /// touching each other, none touching the border.
    fn rect_labels(h: usize, w: usize) -> Vec<u8> {
        let mut l = vec![0u8; h * w];
        let mut label = 1u8;
        for (i, y0) in (4..h - 16).step_by(11).enumerate() {
            for (j, x0) in (4..w - 16).step_by(13).enumerate() {
                let (rh, rw) = (6 + (i + j) % 6, 7 + (i * 3 + j) % 7);
                for y in y0..(y0 + rh).min(h - 4) {
                    for x in x0..(x0 + rw).min(w - 4) {
                        l[y * w + x] = label;
                    }
                }
                label = if label >= 117 { 1 } else { label + 1 };
            }
        }
        // One large structure with the highest label.
        for y in h / 3..h / 3 + 20 {
            for x in w / 4..w / 4 + 40 {
                l[y * w + x] = 117;
            }
        }
        l
    }

    fn image_of(labels: &[u8]) -> Vec<f32> {
        labels.iter().map(|&l| l as f32 / 117.0).collect()
    }

    fn gradient_image(h: usize, w: usize) -> Vec<f32> {
        (0..h * w)
            .map(|i| ((i % w) as f32 * 0.7 + (i / w) as f32 * 0.3) / (w + h) as f32)
            .collect()
    }

    #[test]
    fn image_and_labels_stay_aligned() {
        let config = heavy_geometry();
        let labels0 = rect_labels(H, W);
        let image0 = image_of(&labels0);
        let mut checked = 0usize;
        for seed in 0..40 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (mut img, mut lab) = (image0.clone(), labels0.clone());
            augment(&mut img, &mut lab, H, W, &config, &mut rng);
            assert_ne!(
                lab, labels0,
                "seed {seed}: geometry did not change anything"
            );
            for y in 2..H - 2 {
                for x in 2..W - 2 {
                    let l = lab[y * W + x];
                    if l == 0 {
                        continue;
                    }
                    let uniform =
                        (y - 2..=y + 2).all(|yy| (x - 2..=x + 2).all(|xx| lab[yy * W + xx] == l));
                    if uniform {
                        let v = img[y * W + x];
                        let want = l as f32 / 117.0;
                        assert!(
                            (v - want).abs() < 1e-5,
                            "seed {seed} ({x}, {y}): label {l} but image {v} (want {want})"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 10_000, "only {checked} pixels checked");
    }

    #[test]
    fn same_seed_same_result() {
        let mut config = AugmentConfig::default();
        config.elastic.p = 0.5;
        config.dropout.p = 0.5;
        config.noise.p = 0.5;
        let labels0 = rect_labels(H, W);
        let image0 = gradient_image(H, W);
        for seed in [1, 7, 42] {
            let run = || {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let (mut img, mut lab) = (image0.clone(), labels0.clone());
                let mut out = Vec::new();
                for _ in 0..5 {
                    augment(&mut img, &mut lab, H, W, &config, &mut rng);
                    out.push((img.clone(), lab.clone()));
                }
                out
            };
            let (a, b) = (run(), run());
            assert!(a == b, "seed {seed} not reproducible");
        }
        // Different seeds differ.
        let mut r1 = ChaCha8Rng::seed_from_u64(1);
        let mut r2 = ChaCha8Rng::seed_from_u64(2);
        let (mut i1, mut l1) = (image0.clone(), labels0.clone());
        let (mut i2, mut l2) = (image0.clone(), labels0.clone());
        let heavy = heavy_geometry();
        augment(&mut i1, &mut l1, H, W, &heavy, &mut r1);
        augment(&mut i2, &mut l2, H, W, &heavy, &mut r2);
        assert_ne!(i1, i2);
    }

    fn mirror_x(v: &[f32], h: usize, w: usize) -> Vec<f32> {
        (0..h * w)
            .map(|i| v[(i / w) * w + (w - 1 - i % w)])
            .collect()
    }

    fn mirror_y(v: &[f32], h: usize, w: usize) -> Vec<f32> {
        (0..h * w).map(|i| v[(h - 1 - i / w) * w + i % w]).collect()
    }

    #[test]
    fn flips_are_exact_mirrors() {
        let labels0 = rect_labels(H, W);
        let image0 = gradient_image(H, W);
        let lab_f: Vec<f32> = labels0.iter().map(|&l| l as f32).collect();
        for (hf, vf) in [(true, false), (false, true), (true, true)] {
            let mut want_img = image0.clone();
            let mut want_lab = lab_f.clone();
            if hf {
                want_img = mirror_x(&want_img, H, W);
                want_lab = mirror_x(&want_lab, H, W);
            }
            if vf {
                want_img = mirror_y(&want_img, H, W);
                want_lab = mirror_y(&want_lab, H, W);
            }
            let want_lab: Vec<u8> = want_lab.iter().map(|&v| v as u8).collect();
            let mut config = nothing();
            config.hflip.p = if hf { 1.0 } else { 0.0 };
            config.vflip.p = if vf { 1.0 } else { 0.0 };
            // The fast path (flips only) ...
            let (mut img, mut lab) = (image0.clone(), labels0.clone());
            augment(
                &mut img,
                &mut lab,
                H,
                W,
                &config,
                &mut ChaCha8Rng::seed_from_u64(3),
            );
            assert_eq!(img, want_img, "fast path {hf} {vf}");
            assert_eq!(lab, want_lab, "fast path {hf} {vf}");
            // ... and the resampling path with an identity rotation/zoom/shift.
            config.rotate = RotateConfig {
                p: 1.0,
                limit_deg: 0.0,
            };
            config.shift_scale_rotate = ShiftScaleRotateConfig {
                p: 1.0,
                shift_limit: 0.0,
                scale_min: 1.0,
                scale_max: 1.0,
                rotate_limit_deg: 0.0,
            };
            let (mut img, mut lab) = (image0.clone(), labels0.clone());
            augment(
                &mut img,
                &mut lab,
                H,
                W,
                &config,
                &mut ChaCha8Rng::seed_from_u64(3),
            );
            assert_eq!(img, want_img, "resampled {hf} {vf}");
            assert_eq!(lab, want_lab, "resampled {hf} {vf}");
        }
        // Odd sizes (a middle row/column that stays put).
        let (h, w) = (5, 7);
        let image0: Vec<f32> = (0..h * w).map(|i| i as f32).collect();
        let mut img = image0.clone();
        let mut lab: Vec<u8> = (0..h * w).map(|i| i as u8).collect();
        let mut config = nothing();
        config.hflip.p = 1.0;
        config.vflip.p = 1.0;
        augment(
            &mut img,
            &mut lab,
            h,
            w,
            &config,
            &mut ChaCha8Rng::seed_from_u64(0),
        );
        assert_eq!(img, mirror_y(&mirror_x(&image0, h, w), h, w));
        assert_eq!(lab.iter().map(|&v| v as f32).collect::<Vec<_>>(), img);
    }

    #[test]
    fn disabled_or_all_off_changes_nothing() {
        let labels0 = rect_labels(H, W);
        let image0 = gradient_image(H, W);
        let mut all_on = heavy_geometry();
        all_on.brightness.p = 1.0;
        all_on.contrast.p = 1.0;
        all_on.noise.p = 1.0;
        all_on.dropout.p = 1.0;
        all_on.enabled = false;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (mut img, mut lab) = (image0.clone(), labels0.clone());
        augment(&mut img, &mut lab, H, W, &all_on, &mut rng);
        assert_eq!(img, image0);
        assert_eq!(lab, labels0);
        // The generator was not used.
        assert_eq!(
            rng.random::<u64>(),
            ChaCha8Rng::seed_from_u64(5).random::<u64>()
        );

        let config = nothing();
        augment(&mut img, &mut lab, H, W, &config, &mut rng);
        assert_eq!(img, image0);
        assert_eq!(lab, labels0);

        // Identity geometry through the resampler is exact too.
        let mut identity = nothing();
        identity.shift_scale_rotate = ShiftScaleRotateConfig {
            p: 1.0,
            shift_limit: 0.0,
            scale_min: 1.0,
            scale_max: 1.0,
            rotate_limit_deg: 0.0,
        };
        augment(&mut img, &mut lab, H, W, &identity, &mut rng);
        assert_eq!(img, image0);
        assert_eq!(lab, labels0);
    }

    #[test]
    fn dropout_changes_image_not_labels() {
        let labels0 = rect_labels(H, W);
        let image0 = vec![0.5f32; H * W];
        let mut config = nothing();
        config.dropout = DropoutConfig {
            p: 1.0,
            min_holes: 2,
            max_holes: 4,
            min_size: 5,
            max_size: 20,
        };
        for seed in 0..10 {
            let (mut img, mut lab) = (image0.clone(), labels0.clone());
            augment(
                &mut img,
                &mut lab,
                H,
                W,
                &config,
                &mut ChaCha8Rng::seed_from_u64(seed),
            );
            assert_eq!(lab, labels0);
            let zeros = img.iter().filter(|&&v| v == DROPOUT_FILL).count();
            assert!(zeros >= 25, "seed {seed}: {zeros} pixels dropped");
            assert!(img.iter().all(|&v| v == 0.5 || v == DROPOUT_FILL));
        }
        // Holes larger than the slice are capped.
        config.dropout.min_size = 500;
        config.dropout.max_size = 1000;
        let (mut img, mut lab) = (vec![0.5f32; 6 * 4], vec![1u8; 6 * 4]);
        augment(
            &mut img,
            &mut lab,
            6,
            4,
            &config,
            &mut ChaCha8Rng::seed_from_u64(0),
        );
        assert!(img.iter().all(|&v| v == DROPOUT_FILL));
        assert!(lab.iter().all(|&v| v == 1));
    }

    #[test]
    fn intensity_transforms_leave_labels_and_clamp() {
        let labels0 = rect_labels(H, W);
        let image0 = gradient_image(H, W);
        let mut config = nothing();
        config.brightness = BrightnessConfig { p: 1.0, limit: 0.5 };
        config.contrast = ContrastConfig {
            p: 1.0,
            min: 0.5,
            max: 2.0,
        };
        config.noise = NoiseConfig {
            p: 1.0,
            max_sd: 0.2,
        };
        config.clamp = true;
        for seed in 0..5 {
            let (mut img, mut lab) = (image0.clone(), labels0.clone());
            augment(
                &mut img,
                &mut lab,
                H,
                W,
                &config,
                &mut ChaCha8Rng::seed_from_u64(seed),
            );
            assert_eq!(lab, labels0);
            assert_ne!(img, image0);
            assert!(img.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        // Brightness alone shifts every pixel by one constant.
        let mut config = nothing();
        config.brightness = BrightnessConfig { p: 1.0, limit: 0.1 };
        let mut img = image0.clone();
        let mut lab = labels0.clone();
        augment(
            &mut img,
            &mut lab,
            H,
            W,
            &config,
            &mut ChaCha8Rng::seed_from_u64(9),
        );
        let delta = img[0] - image0[0];
        assert!(delta.abs() <= 0.1 && delta != 0.0);
        assert!(
            img.iter()
                .zip(&image0)
                .all(|(a, b)| (a - b - delta).abs() < 1e-6)
        );
        // Contrast alone keeps the mean.
        let mut config = nothing();
        config.contrast = ContrastConfig {
            p: 1.0,
            min: 0.5,
            max: 0.5,
        };
        let mut img = image0.clone();
        augment(
            &mut img,
            &mut lab,
            H,
            W,
            &config,
            &mut ChaCha8Rng::seed_from_u64(9),
        );
        let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        assert!((mean(&img) - mean(&image0)).abs() < 1e-5);
    }

    #[test]
    fn gaussian_noise_has_the_right_spread() {
        let mut img = vec![0.0f32; 100_001];
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        add_gaussian_noise(&mut img, 0.5, &mut rng);
        let n = img.len() as f64;
        let mean = img.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = img.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var.sqrt() - 0.5).abs() < 0.01, "sd {}", var.sqrt());
        assert!(img.iter().all(|v| v.is_finite()));
        assert!(img[100_000] != 0.0, "odd tail left out");
    }

    #[test]
    fn labels_are_a_subset_of_the_input() {
        let values = [0u8, 3, 17, 64, 117];
        let mut rng = ChaCha8Rng::seed_from_u64(123);
        let labels0: Vec<u8> = (0..H * W)
            .map(|_| values[rng.random_range(0..values.len())])
            .collect();
        let image0 = image_of(&labels0);
        let mut config = heavy_geometry();
        config.brightness.p = 1.0;
        config.noise.p = 1.0;
        config.dropout.p = 1.0;
        for seed in 0..10 {
            let (mut img, mut lab) = (image0.clone(), labels0.clone());
            augment(
                &mut img,
                &mut lab,
                H,
                W,
                &config,
                &mut ChaCha8Rng::seed_from_u64(seed),
            );
            assert!(lab.iter().all(|l| values.contains(l)), "seed {seed}");
        }
        // Without background in the input, only the fill value can be new.
        let labels1 = vec![42u8; H * W];
        let mut lab = labels1.clone();
        let mut img = image_of(&labels1);
        augment(
            &mut img,
            &mut lab,
            H,
            W,
            &config,
            &mut ChaCha8Rng::seed_from_u64(0),
        );
        assert!(lab.iter().all(|&l| l == 42 || l == LABEL_FILL));
    }

    #[test]
    fn elastic_field_has_simard_statistics() {
        // Displacement sd of alpha · G_sigma * U(-1, 1): alpha / (2·sqrt(3π)·sigma).
        for (sigma, alpha) in [(2.0f32, 40.0f32), (10.0, 150.0), (16.0, 300.0)] {
            let want = alpha / (2.0 * (3.0 * std::f32::consts::PI).sqrt() * sigma);
            let mut rng = ChaCha8Rng::seed_from_u64(sigma as u64);
            let mut sq = 0.0f64;
            let mut count = 0usize;
            for _ in 0..20 {
                let f = ElasticField::random(256, 256, alpha, sigma, &mut rng);
                for v in f.dx.iter().chain(&f.dy) {
                    sq += (*v as f64).powi(2);
                    count += 1;
                }
            }
            let sd = (sq / count as f64).sqrt() as f32;
            assert!(
                (sd / want - 1.0).abs() < 0.1,
                "sigma {sigma}: sd {sd} px, want about {want}"
            );
        }
    }

    #[test]
    fn zoom_keeps_the_centre_fixed() {
        // A zoom of 2 keeps the centre pixel and doubles distances from it.
        let (h, w) = (33, 33);
        let mut labels0 = vec![0u8; h * w];
        labels0[16 * w + 16] = 9; // centre
        labels0[16 * w + 20] = 5; // 4 px right of the centre
        let mut config = nothing();
        config.shift_scale_rotate = ShiftScaleRotateConfig {
            p: 1.0,
            shift_limit: 0.0,
            scale_min: 2.0,
            scale_max: 2.0,
            rotate_limit_deg: 0.0,
        };
        let mut lab = labels0.clone();
        let mut img = image_of(&labels0);
        augment(
            &mut img,
            &mut lab,
            h,
            w,
            &config,
            &mut ChaCha8Rng::seed_from_u64(0),
        );
        assert_eq!(lab[16 * w + 16], 9);
        assert_eq!(lab[16 * w + 24], 5);
        assert_eq!(lab[16 * w + 12], 0);
    }

    #[test]
    fn validate_catches_bad_settings() {
        assert!(AugmentConfig::default().validate().is_ok());
        assert!(heavy_geometry().validate().is_ok());
        let mut c = AugmentConfig::default();
        c.rotate.p = 1.5;
        c.shift_scale_rotate.scale_min = 0.0;
        c.elastic.sigma = -1.0;
        c.dropout.min_size = 40;
        let msg = c.validate().unwrap_err().to_string();
        for key in ["rotate.p", "scale_min", "elastic.sigma", "dropout.min_size"] {
            assert!(msg.contains(key), "{msg}");
        }
    }

    #[test]
    fn toml_round_trip() {
        let default = AugmentConfig::default();
        let text = toml::to_string(&default).unwrap();
        assert!(text.contains("shift_limit = 0.0625"), "{text}");
        assert!(text.contains("[vflip]"), "{text}");
        assert_eq!(toml::from_str::<AugmentConfig>(&text).unwrap(), default);

        let mut custom = heavy_geometry();
        custom.dropout.max_holes = 3;
        custom.noise.max_sd = 0.05;
        let text = toml::to_string(&custom).unwrap();
        assert_eq!(toml::from_str::<AugmentConfig>(&text).unwrap(), custom);

        // Partial tables keep the defaults of what they do not name.
        let partial: AugmentConfig =
            toml::from_str("enabled = false\n[elastic]\np = 0.5\n[vflip]\np = 0.1\n").unwrap();
        let mut want = AugmentConfig::disabled();
        want.elastic.p = 0.5;
        want.vflip.p = 0.1;
        assert_eq!(partial, want);
        assert_eq!(toml::from_str::<AugmentConfig>("").unwrap(), default);
        // Unknown keys are rejected.
        assert!(toml::from_str::<AugmentConfig>("[rotate]\nlimit = 3.0\n").is_err());
        assert!(toml::from_str::<AugmentConfig>("rotation = 3.0\n").is_err());
    }

    #[test]
    fn degenerate_sizes_do_not_panic() {
        let config = heavy_geometry();
        for (h, w) in [(0, 0), (1, 1), (1, 7), (7, 1), (2, 3)] {
            let mut img = vec![0.5f32; h * w];
            let mut lab = vec![1u8; h * w];
            augment(
                &mut img,
                &mut lab,
                h,
                w,
                &config,
                &mut ChaCha8Rng::seed_from_u64(1),
            );
        }
    }
}
