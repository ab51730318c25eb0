//! Export a four-panel figure of the main view's current slice — CT | GT | Pred |
//! overlay — for the selected structure (all visible structures when none is selected).

use std::path::Path;

use anyhow::{Context, bail};

use crate::render::{FigureSlice, LabelTable, four_panels};

use super::app::ViewerApp;

/// Render the figure as RGBA: `(width, height, pixels)`. Each panel is the slice at its
/// voxel resolution, stretched so pixels have the true aspect ratio.
pub fn render(app: &ViewerApp) -> anyhow::Result<(usize, usize, Vec<u8>)> {
    let Some(ct) = app.ct.as_ref() else {
        bail!("no CT is open");
    };
    let axis = app.settings.main_axis;
    let grid = app.grid(axis).context("no CT is open")?;
    let index = app.slice_index(axis);
    let (w, h) = grid.size();
    let mut hu = Vec::new();
    grid.extract(&ct.display, index, &mut hu);
    let empty = vec![0u8; w * h];
    let mut gt = empty.clone();
    let mut pred = empty.clone();
    if let Some(l) = &app.gt {
        grid.extract(&l.display, index, &mut gt);
    }
    if let Some(l) = &app.pred {
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
    let out_h = ((h as f64 * ph / pw).round() as usize).max(1);
    let slice = FigureSlice {
        hu: &hu,
        gt: &gt,
        pred: &pred,
        width: w,
        height: h,
    };
    Ok(four_panels(slice, out_h, app.settings.window, &table))
}

/// Render the figure and write it as PNG (to a temporary file, then renamed).
pub fn export(app: &ViewerApp, path: &Path) -> anyhow::Result<()> {
    let (w, h, rgba) = render(app)?;
    let image = image::RgbaImage::from_raw(w as u32, h as u32, rgba)
        .context("figure buffer has the wrong size")?;
    crate::io::atomic_write(path, "png", |tmp| {
        image
            .save_with_format(tmp, image::ImageFormat::Png)
            .map_err(|e| crate::Error::Invalid(format!("{}: {e}", path.display())))
    })
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
