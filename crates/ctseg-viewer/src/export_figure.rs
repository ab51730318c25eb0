//! Export a four-panel figure of the main view's current slice — CT | GT | Pred |
//! overlay — for the selected structure (all visible structures when none is
//! selected). The slices are copied on the UI thread (cheap); compositing and the PNG
//! write run as a background task.

use std::path::Path;

use anyhow::{Context, bail};

use ctseg_core::render::{FigureSlice, LabelTable, four_panels};
use ctseg_core::window::Window;

use super::app::ViewerApp;

/// Everything the figure needs, owned, so it can be drawn off the UI thread.
#[derive(Debug, Clone)]
pub struct FigureInput {
    hu: Vec<i16>,
    gt: Vec<u8>,
    pred: Vec<u8>,
    width: usize,
    height: usize,
    out_height: usize,
    window: Window,
    table: LabelTable,
}

/// Copy the main view's current slice and the display settings.
pub fn capture(app: &ViewerApp) -> anyhow::Result<FigureInput> {
    let Some(ct) = app.ct() else {
        bail!("no CT is open");
    };
    let axis = app.settings.main_axis;
    let grid = app.grid(axis).context("no CT is open")?;
    let index = app.slice_index(axis);
    let (width, height) = grid.size();
    let mut hu = Vec::new();
    grid.extract(&ct.display, index, &mut hu);
    let mut gt = vec![0u8; width * height];
    let mut pred = vec![0u8; width * height];
    if let Some(l) = app.gt_ref() {
        grid.extract(&l.display, index, &mut gt);
    }
    if let Some(l) = app.pred_ref() {
        grid.extract(&l.display, index, &mut pred);
    }
    let mut table = app.table.clone();
    if let Some(sel) = app.selected {
        table = LabelTable {
            visible: [false; 256],
            ..table
        };
        table.visible[sel as usize] = true;
    }
    // Stretch rows so that pixels are square in mm.
    let (pw, ph) = grid.pixel_mm();
    let out_height = ((height as f64 * ph / pw).round() as usize).max(1);
    Ok(FigureInput {
        hu,
        gt,
        pred,
        width,
        height,
        out_height,
        window: app.settings.window,
        table,
    })
}

impl FigureInput {
    /// The figure as RGBA: `(width, height, pixels)`. Each panel is the slice at its
    /// voxel resolution, stretched so pixels have the true aspect ratio.
    pub fn render(&self) -> (usize, usize, Vec<u8>) {
        let slice = FigureSlice {
            hu: &self.hu,
            gt: &self.gt,
            pred: &self.pred,
            width: self.width,
            height: self.height,
        };
        four_panels(slice, self.out_height, self.window, &self.table)
    }

    /// Render the figure and write it as PNG (to a temporary file, then renamed).
    pub fn write_png(&self, path: &Path) -> anyhow::Result<()> {
        let (w, h, rgba) = self.render();
        let image = image::RgbaImage::from_raw(w as u32, h as u32, rgba)
            .context("figure buffer has the wrong size")?;
        ctseg_core::io::atomic_write(path, "png", |tmp| {
            image
                .save_with_format(tmp, image::ImageFormat::Png)
                .map_err(|e| ctseg_core::Error::Invalid(format!("{}: {e}", path.display())))
        })
        .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}
