//! Window/level: map Hounsfield units to display grey levels and to the model's input.

use serde::{Deserialize, Serialize};

/// A CT display window: HU values in `[center - width/2, center + width/2]` span the
/// grey scale; values outside clip to black or white.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Window level (centre) in HU.
    pub center: f32,
    /// Window width in HU (> 0).
    pub width: f32,
}

/// A named window preset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preset {
    /// Name shown in menus.
    pub name: &'static str,
    /// The window.
    pub window: Window,
}

/// The model's intensity window, [-200, 300] HU; also the "Soft tissue" preset.
pub const MODEL_WINDOW: Window = Window::from_range(-200.0, 300.0);

/// Standard CT presets (level/width as used in radiology teaching references).
pub const PRESETS: [Preset; 7] = [
    Preset {
        name: "Soft tissue",
        window: MODEL_WINDOW,
    },
    Preset {
        name: "Abdomen",
        window: Window {
            center: 50.0,
            width: 400.0,
        },
    },
    Preset {
        name: "Liver",
        window: Window {
            center: 30.0,
            width: 150.0,
        },
    },
    Preset {
        name: "Mediastinum",
        window: Window {
            center: 50.0,
            width: 350.0,
        },
    },
    Preset {
        name: "Lung",
        window: Window {
            center: -600.0,
            width: 1500.0,
        },
    },
    Preset {
        name: "Bone",
        window: Window {
            center: 400.0,
            width: 1800.0,
        },
    },
    Preset {
        name: "Brain",
        window: Window {
            center: 40.0,
            width: 80.0,
        },
    },
];

impl Window {
    /// The window spanning `[low, high]` HU.
    pub const fn from_range(low: f32, high: f32) -> Self {
        Self {
            center: (low + high) / 2.0,
            width: high - low,
        }
    }

    /// A preset by name (case-insensitive).
    pub fn preset(name: &str) -> Option<Window> {
        PRESETS
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.window)
    }

    /// Lowest HU of the window.
    pub fn low(&self) -> f32 {
        self.center - self.width / 2.0
    }

    /// Highest HU of the window.
    pub fn high(&self) -> f32 {
        self.center + self.width / 2.0
    }

    /// HU → [0, 1], clipped (the model input when `self` is [`MODEL_WINDOW`]).
    #[inline]
    pub fn normalize(&self, hu: f32) -> f32 {
        let width = self.width.max(f32::EPSILON);
        ((hu - self.low()) / width).clamp(0.0, 1.0)
    }

    /// HU → display grey level 0..=255.
    #[inline]
    pub fn to_u8(&self, hu: f32) -> u8 {
        (self.normalize(hu) * 255.0).round() as u8
    }

    /// Grey level of every i16 value, indexed by `(hu as i32 + 32768)`: a 64 KiB
    /// table that turns windowing a slice into one lookup per voxel.
    pub fn lut(&self) -> Vec<u8> {
        (i16::MIN..=i16::MAX)
            .map(|hu| self.to_u8(hu as f32))
            .collect()
    }
}

/// HU → model input in [0, 1] using [`MODEL_WINDOW`].
#[inline]
pub fn model_input(hu: f32) -> f32 {
    MODEL_WINDOW.normalize(hu)
}

/// One `nx × ny` HU slice as model input: windowed to [`MODEL_WINDOW`] (→ [0, 1])
/// and bilinearly resized to `size × size` into `out`; `scratch` holds `nx·ny` values.
/// Training (the cache) and inference both use this, so they see identical inputs.
pub fn model_input_slice(
    hu: &[i16],
    nx: usize,
    ny: usize,
    size: usize,
    scratch: &mut [f32],
    out: &mut [f32],
) {
    for (v, &h) in scratch.iter_mut().zip(hu) {
        *v = model_input(h as f32);
    }
    crate::resample::resize_bilinear(scratch, nx, ny, size, size, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_window_maps_range_to_unit_interval() {
        assert_eq!(model_input(-200.0), 0.0);
        assert_eq!(model_input(300.0), 1.0);
        assert_eq!(model_input(50.0), 0.5);
        assert_eq!(model_input(-1000.0), 0.0);
        assert_eq!(model_input(3000.0), 1.0);
        assert_eq!(Window::preset("soft tissue"), Some(MODEL_WINDOW));
    }

    #[test]
    fn display_mapping_clips_and_is_monotonic() {
        let w = Window::preset("Lung").expect("preset exists");
        assert_eq!((w.low(), w.high()), (-1350.0, 150.0));
        assert_eq!(w.to_u8(-2000.0), 0);
        assert_eq!(w.to_u8(1000.0), 255);
        let lut = w.lut();
        assert_eq!(lut.len(), 65536);
        assert!(lut.windows(2).all(|p| p[0] <= p[1]));
        assert_eq!(lut[(-600i32 + 32768) as usize], w.to_u8(-600.0));
    }

    #[test]
    fn all_presets_are_distinct_and_positive() {
        for p in PRESETS {
            assert!(p.window.width > 0.0, "{}", p.name);
        }
        assert_eq!(PRESETS.len(), 7);
    }
}
