//! The reference slice compositor: window/level, then label overlays (fill, outline or
//! both, per layer), or a TP/FP/FN difference view. The WGSL shader in
//! `shaders/slice.wgsl` implements the same arithmetic and is tested against this.

use crate::structures::Catalog;
use crate::window::Window;

/// How a label layer is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OverlayMode {
    /// Translucent fill at the layer's opacity.
    Fill,
    /// An opaque one-pixel outline where the label changes.
    Outline,
    /// Translucent fill with an opaque outline.
    FillAndOutline,
}

impl OverlayMode {
    /// All modes, for menus.
    pub const ALL: [OverlayMode; 3] = [
        OverlayMode::Fill,
        OverlayMode::Outline,
        OverlayMode::FillAndOutline,
    ];

    /// Name shown in the UI.
    pub fn name(self) -> &'static str {
        match self {
            OverlayMode::Fill => "Fill",
            OverlayMode::Outline => "Outline",
            OverlayMode::FillAndOutline => "Fill + outline",
        }
    }

    /// Whether the interior is filled.
    pub fn fills(self) -> bool {
        matches!(self, OverlayMode::Fill | OverlayMode::FillAndOutline)
    }

    /// Whether the boundary is outlined.
    pub fn outlines(self) -> bool {
        matches!(self, OverlayMode::Outline | OverlayMode::FillAndOutline)
    }
}

/// Style of one label layer.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerParams {
    /// Fill opacity in [0, 1].
    pub opacity: f32,
    /// Fill, outline or both.
    pub mode: OverlayMode,
}

/// Colour and visibility of every label value (label 0, background, is never drawn).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelTable {
    /// sRGB colour per label value.
    pub colors: [[u8; 3]; 256],
    /// Whether the label is drawn (in the difference view: whether it is compared).
    pub visible: [bool; 256],
}

impl LabelTable {
    /// Catalog colours, every structure visible.
    pub fn from_catalog(catalog: &Catalog) -> Self {
        let mut colors = [[0u8; 3]; 256];
        let mut visible = [false; 256];
        for s in catalog.all() {
            colors[s.label as usize] = s.color;
            visible[s.label as usize] = true;
        }
        LabelTable { colors, visible }
    }

    /// Whether `label` is drawn.
    #[inline]
    pub fn shows(&self, label: u8) -> bool {
        label != 0 && self.visible[label as usize]
    }
}

/// Colours of the difference view.
pub const TRUE_POSITIVE: [u8; 3] = [40, 200, 60];
/// Predicted but not in the ground truth.
pub const FALSE_POSITIVE: [u8; 3] = [230, 50, 50];
/// In the ground truth but not predicted (as that structure).
pub const FALSE_NEGATIVE: [u8; 3] = [50, 120, 255];

/// What is drawn over the CT.
#[derive(Debug, Clone, Copy)]
pub enum CompositeParams<'a> {
    /// Up to two label layers drawn in order (e.g. GT then prediction).
    Layers(&'a [(&'a [u8], LayerParams)]),
    /// Per pixel: true positive, false positive or false negative for the visible labels.
    /// A pixel of a visible GT structure predicted as something else counts as a false
    /// negative.
    Difference {
        /// Ground-truth labels of the slice.
        gt: &'a [u8],
        /// Predicted labels of the slice.
        pred: &'a [u8],
        /// Fill opacity.
        opacity: f32,
    },
}

/// Blend `color` over `base` with opacity `a` (rounded like the shader).
#[inline]
fn blend(base: [f32; 3], color: [u8; 3], a: f32) -> [f32; 3] {
    [
        base[0] * (1.0 - a) + color[0] as f32 * a,
        base[1] * (1.0 - a) + color[1] as f32 * a,
        base[2] * (1.0 - a) + color[2] as f32 * a,
    ]
}

/// Whether the pixel at `(x, y)` lies on the boundary of its label: a 4-neighbour has
/// another label or lies outside the image.
#[inline]
pub fn is_boundary(labels: &[u8], w: usize, h: usize, x: usize, y: usize) -> bool {
    let l = labels[y * w + x];
    x == 0
        || y == 0
        || x + 1 == w
        || y + 1 == h
        || labels[y * w + x - 1] != l
        || labels[y * w + x + 1] != l
        || labels[(y - 1) * w + x] != l
        || labels[(y + 1) * w + x] != l
}

/// Composite a `w×h` slice of HU values with overlays into RGBA8 (`out` is resized).
/// Label slices must have `w·h` values; shorter ones are ignored.
pub fn composite(
    hu: &[i16],
    w: usize,
    h: usize,
    window: Window,
    table: &LabelTable,
    overlays: CompositeParams<'_>,
    out: &mut Vec<u8>,
) {
    let n = w * h;
    out.clear();
    out.resize(n * 4, 255);
    if hu.len() < n {
        return;
    }
    for y in 0..h {
        for x in 0..w {
            let p = y * w + x;
            let g = window.to_u8(hu[p] as f32) as f32;
            let mut c = [g, g, g];
            match overlays {
                CompositeParams::Layers(layers) => {
                    for (labels, params) in layers {
                        if labels.len() < n {
                            continue;
                        }
                        let l = labels[p];
                        if !table.shows(l) {
                            continue;
                        }
                        let color = table.colors[l as usize];
                        if params.mode.outlines() && is_boundary(labels, w, h, x, y) {
                            c = blend(c, color, 1.0);
                        } else if params.mode.fills() {
                            c = blend(c, color, params.opacity.clamp(0.0, 1.0));
                        }
                    }
                }
                CompositeParams::Difference { gt, pred, opacity } => {
                    if gt.len() >= n && pred.len() >= n {
                        let (g_l, p_l) = (gt[p], pred[p]);
                        let color = if table.shows(g_l) {
                            Some(if p_l == g_l {
                                TRUE_POSITIVE
                            } else {
                                FALSE_NEGATIVE
                            })
                        } else if table.shows(p_l) {
                            Some(FALSE_POSITIVE)
                        } else {
                            None
                        };
                        if let Some(color) = color {
                            c = blend(c, color, opacity.clamp(0.0, 1.0));
                        }
                    }
                }
            }
            let o = &mut out[p * 4..p * 4 + 4];
            o[0] = c[0].round() as u8;
            o[1] = c[1].round() as u8;
            o[2] = c[2].round() as u8;
            o[3] = 255;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structures::catalog;

    fn table() -> LabelTable {
        LabelTable::from_catalog(catalog())
    }

    #[test]
    fn window_maps_hu_to_grey() {
        let w = Window::from_range(-100.0, 100.0);
        let mut out = Vec::new();
        composite(
            &[-1000, 0, 1000],
            3,
            1,
            w,
            &table(),
            CompositeParams::Layers(&[]),
            &mut out,
        );
        assert_eq!(
            out,
            vec![0, 0, 0, 255, 128, 128, 128, 255, 255, 255, 255, 255]
        );
    }

    #[test]
    fn fill_blends_and_outline_is_opaque_on_the_boundary() {
        // 5×5 square of liver (label 5) inside a background slice.
        let (w, h) = (7, 7);
        let hu = vec![-1000i16; w * h]; // black
        let mut labels = vec![0u8; w * h];
        for y in 1..6 {
            for x in 1..6 {
                labels[y * w + x] = 5;
            }
        }
        let t = table();
        let liver = t.colors[5];
        let mut out = Vec::new();
        let fill = LayerParams {
            opacity: 0.5,
            mode: OverlayMode::FillAndOutline,
        };
        composite(
            &hu,
            w,
            h,
            Window::from_range(0.0, 1.0),
            &t,
            CompositeParams::Layers(&[(&labels, fill)]),
            &mut out,
        );
        let px = |x: usize, y: usize| {
            [
                out[(y * w + x) * 4],
                out[(y * w + x) * 4 + 1],
                out[(y * w + x) * 4 + 2],
            ]
        };
        assert_eq!(px(0, 0), [0, 0, 0]);
        assert_eq!(px(1, 1), liver, "boundary is opaque");
        let half = liver.map(|c| (c as f32 * 0.5).round() as u8);
        assert_eq!(px(3, 3), half, "interior is half transparent");

        // Hidden structure: nothing drawn.
        let mut hidden = t.clone();
        hidden.visible[5] = false;
        composite(
            &hu,
            w,
            h,
            Window::from_range(0.0, 1.0),
            &hidden,
            CompositeParams::Layers(&[(&labels, fill)]),
            &mut out,
        );
        assert!(out.chunks(4).all(|p| p[..3] == [0, 0, 0]));
    }

    #[test]
    fn difference_view_colours_tp_fp_fn() {
        let hu = vec![-1000i16; 4];
        let gt = [5u8, 5, 0, 5];
        let pred = [5u8, 0, 5, 6];
        let mut out = Vec::new();
        composite(
            &hu,
            4,
            1,
            Window::from_range(0.0, 1.0),
            &table(),
            CompositeParams::Difference {
                gt: &gt,
                pred: &pred,
                opacity: 1.0,
            },
            &mut out,
        );
        let colors: Vec<[u8; 3]> = out.chunks(4).map(|p| [p[0], p[1], p[2]]).collect();
        assert_eq!(
            colors,
            vec![
                TRUE_POSITIVE,
                FALSE_NEGATIVE,
                FALSE_POSITIVE,
                FALSE_NEGATIVE
            ]
        );
    }
}
