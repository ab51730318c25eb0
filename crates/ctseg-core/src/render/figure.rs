//! The four-panel figure — CT | GT | Pred | overlay — of one slice, as RGBA pixels.
//! The viewer exports it for the main view; training writes one per epoch for a
//! validation slice.

use crate::window::Window;

use super::cpu::{CompositeParams, LabelTable, LayerParams, OverlayMode, composite};

/// Pixels between panels.
pub const PANEL_GAP: usize = 4;

/// One slice and its two label layers, row-major `width × height`.
#[derive(Debug, Clone, Copy)]
pub struct FigureSlice<'a> {
    /// Hounsfield units.
    pub hu: &'a [i16],
    /// Ground-truth labels.
    pub gt: &'a [u8],
    /// Predicted labels.
    pub pred: &'a [u8],
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
}

/// Render CT | GT (fill) | Pred (fill) | Pred fill + GT outline side by side with
/// [`PANEL_GAP`] black pixels between panels. Rows are stretched to `out_height`
/// (pass `height` to keep the voxel grid). Returns `(width, height, rgba)`.
pub fn four_panels(
    slice: FigureSlice<'_>,
    out_height: usize,
    window: Window,
    table: &LabelTable,
) -> (usize, usize, Vec<u8>) {
    let FigureSlice {
        hu,
        gt,
        pred,
        width: w,
        height: h,
    } = slice;
    let out_h = out_height.max(1);
    let width = 4 * w + 3 * PANEL_GAP;
    let mut out = vec![0u8; width * out_h * 4];
    if w == 0 || h == 0 {
        return (width, out_h, out);
    }
    let fill = LayerParams {
        opacity: 0.6,
        mode: OverlayMode::Fill,
    };
    let outline = LayerParams {
        opacity: 1.0,
        mode: OverlayMode::Outline,
    };
    let gt_only = [(gt, fill)];
    let pred_only = [(pred, fill)];
    let both = [(pred, fill), (gt, outline)];
    let panels: [CompositeParams<'_>; 4] = [
        CompositeParams::Layers(&[]),
        CompositeParams::Layers(&gt_only),
        CompositeParams::Layers(&pred_only),
        CompositeParams::Layers(&both),
    ];
    // Opaque black gaps.
    for px in out.chunks_exact_mut(4) {
        px[3] = 255;
    }
    let mut rgba = Vec::new();
    for (p, params) in panels.into_iter().enumerate() {
        composite(hu, w, h, window, table, params, &mut rgba);
        let x0 = p * (w + PANEL_GAP);
        for y in 0..out_h {
            let src_row = (y * h / out_h).min(h - 1);
            let src = &rgba[src_row * w * 4..(src_row + 1) * w * 4];
            let dst = (y * width + x0) * 4;
            out[dst..dst + w * 4].copy_from_slice(src);
        }
    }
    (width, out_h, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structures::catalog;

    #[test]
    fn panels_show_ct_gt_pred_and_overlay() {
        let (w, h) = (4, 3);
        let hu = vec![50i16; w * h];
        let mut gt = vec![0u8; w * h];
        let mut pred = vec![0u8; w * h];
        gt[5] = 5;
        pred[6] = 5;
        let table = LabelTable::from_catalog(catalog());
        let window = Window {
            center: 50.0,
            width: 400.0,
        };
        let slice = FigureSlice {
            hu: &hu,
            gt: &gt,
            pred: &pred,
            width: w,
            height: h,
        };
        let (fw, fh, rgba) = four_panels(slice, 6, window, &table);
        assert_eq!((fw, fh), (4 * w + 3 * PANEL_GAP, 6));
        let px = |x: usize, y: usize| {
            let i = (y * fw + x) * 4;
            [rgba[i], rgba[i + 1], rgba[i + 2]]
        };
        let grey = px(0, 0);
        assert_eq!(grey[0], grey[1]);
        // GT pixel (1, 1) is coloured in the GT panel, not in the CT panel.
        // Source row 1 of 3 is output rows 2..4 of 6.
        let (gx, gy) = (1, 2);
        assert_eq!(px(gx, gy), grey);
        assert_ne!(px(w + PANEL_GAP + gx, gy), grey);
        // Pred pixel (2, 1) is coloured in the Pred panel only, not in GT's.
        assert_eq!(px(w + PANEL_GAP + 2, gy), grey);
        assert_ne!(px(2 * (w + PANEL_GAP) + 2, gy), grey);
        // The gap is black.
        assert_eq!(px(w, 0), [0, 0, 0]);
    }
}
