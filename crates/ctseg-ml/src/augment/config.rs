//! Augmentation settings: the master switch and one table per transform, with
//! defaults and the check of every range.

use serde::{Deserialize, Serialize};

use ctseg_core::error::{Error, Result};

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
