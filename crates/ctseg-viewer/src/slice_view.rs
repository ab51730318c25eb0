//! One slice view: composited image, crosshair, orientation letters, and the mouse
//! (crosshair, slice scrolling, zoom, pan, window/level drag).

use std::collections::HashMap;
use std::sync::Arc;

use eframe::egui::{self, Color32, Pos2, Rect, Sense, Vec2};
use eframe::egui_wgpu;

use crate::gpu::{SliceCallback, SliceUpload, shader_inputs, shader_params};
use ctseg_core::render::{CompositeParams, LabelTable, LayerParams, composite};
use ctseg_core::slicing::{Axis, SliceGrid};
use ctseg_core::study::LayerKind;
use ctseg_core::window::Window;

use super::app::ViewerApp;
use super::settings::CompareMode;

/// What a view draws over the CT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum ViewContent {
    /// The layers per the settings (overlay or difference).
    Overlay,
    /// Only one layer (side-by-side layout).
    Only(LayerKind),
}

/// Everything a composited slice depends on; a texture is rebuilt only when it changes.
#[derive(Debug, Clone, PartialEq)]
struct TextureKey {
    axis: Axis,
    index: usize,
    /// Window and label table: part of the pixels only on the CPU path (the GPU path
    /// applies them in the shader every frame).
    display: Option<(Window, LabelTable)>,
    /// Per layer: identity, edit revision and style.
    layers: Vec<(usize, u64, LayerParams)>,
    difference: Option<f32>,
    ct: usize,
}

/// Cached slice images, one per view slot.
#[derive(Default)]
pub(super) struct SliceTextures {
    keys: HashMap<usize, TextureKey>,
    handles: HashMap<usize, egui::TextureHandle>,
    hu: Vec<i16>,
    gt: Vec<u8>,
    pred: Vec<u8>,
    rgba: Vec<u8>,
    /// GPU path: the current pixels of each slot and their generation.
    uploads: HashMap<usize, (u64, Arc<SliceUpload>)>,
    generation: u64,
    /// Slices composited or uploaded so far (cache misses), for tests and benchmarks.
    pub rebuilds: u64,
}

fn ptr<T>(a: &T) -> usize {
    a as *const T as usize
}

/// How a view's image is drawn this frame.
enum Draw {
    /// A CPU-composited texture.
    Texture(egui::TextureId),
    /// The WGSL shader through a paint callback.
    Gpu(Box<SliceCallback>),
}

/// Prepare the image of a view slot, compositing or uploading only if its inputs changed.
fn prepare(
    app: &mut ViewerApp,
    ctx: &egui::Context,
    slot: usize,
    grid: &SliceGrid,
    content: ViewContent,
    image_frac: [f32; 4],
) -> Option<Draw> {
    let ct = app.ct.clone()?;
    let index = app.cursor[grid.axis.normal_axis()];
    let s = &app.settings;
    let (window, gt_style, pred_style) = (s.window, s.gt_style, s.pred_style);
    let hide = app.hide_overlays;
    let show = |kind: LayerKind| {
        !hide
            && match content {
                ViewContent::Overlay => match kind {
                    LayerKind::GroundTruth => s.show_gt,
                    LayerKind::Prediction => s.show_pred,
                },
                ViewContent::Only(k) => k == kind,
            }
    };
    let gt = app.gt.clone().filter(|_| show(LayerKind::GroundTruth));
    let pred = app.pred.clone().filter(|_| show(LayerKind::Prediction));
    let difference = (content == ViewContent::Overlay
        && s.compare == CompareMode::Difference
        && gt.is_some()
        && pred.is_some())
    .then_some(pred_style.opacity.max(0.5));
    let mut layers = Vec::new();
    if let Some(g) = &gt {
        layers.push((ptr(&**g), g.revision, gt_style));
    }
    if let Some(p) = &pred {
        layers.push((ptr(&**p), p.revision, pred_style));
    }
    let gpu = app.gpu_target;
    let key = TextureKey {
        axis: grid.axis,
        index,
        display: gpu.is_none().then(|| (window, app.table.clone())),
        layers,
        difference,
        ct: ptr(&*ct),
    };
    let fresh = app.textures.keys.get(&slot) == Some(&key);
    if fresh
        && gpu.is_none()
        && let Some(tex) = app.textures.handles.get(&slot)
    {
        return Some(Draw::Texture(tex.id()));
    }
    let t = &mut app.textures;
    let (w, h) = grid.size();
    if !fresh {
        grid.extract(&ct.display, index, &mut t.hu);
        if let Some(g) = &gt {
            grid.extract(&g.display, index, &mut t.gt);
        }
        if let Some(p) = &pred {
            grid.extract(&p.display, index, &mut t.pred);
        }
    }
    let mut drawn: Vec<(&[u8], LayerParams)> = Vec::new();
    if gt.is_some() {
        drawn.push((&t.gt, gt_style));
    }
    if pred.is_some() {
        drawn.push((&t.pred, pred_style));
    }
    let params = match difference {
        Some(opacity) => CompositeParams::Difference {
            gt: &t.gt,
            pred: &t.pred,
            opacity,
        },
        None => CompositeParams::Layers(&drawn),
    };
    if let Some(srgb) = gpu {
        // Which layers are drawn is already decided above; the scratch buffers may hold
        // another view's pixels when this one is fresh, so their lengths say nothing.
        let mut shader = shader_params(0, window, &app.table, params);
        shader.image_rect = image_frac;
        shader.linear_output = srgb;
        if !fresh || !t.uploads.contains_key(&slot) {
            let (upload, _) = shader_inputs(&t.hu, w, h, window, &app.table, params);
            t.generation += 1;
            t.uploads.insert(slot, (t.generation, Arc::new(upload)));
            t.rebuilds += 1;
            t.keys.insert(slot, key);
        }
        let upload = t.uploads.get(&slot)?.clone();
        return Some(Draw::Gpu(Box::new(SliceCallback {
            slot,
            upload,
            params: shader,
        })));
    }
    composite(&t.hu, w, h, window, &app.table, params, &mut t.rgba);
    t.rebuilds += 1;
    let image = egui::ColorImage::from_rgba_unmultiplied([w, h], &t.rgba);
    let options = egui::TextureOptions::NEAREST;
    t.keys.insert(slot, key);
    let id = match t.handles.get_mut(&slot) {
        Some(tex) => {
            tex.set(image, options);
            tex.id()
        }
        None => {
            let tex = ctx.load_texture(format!("slice-{slot}"), image, options);
            let id = tex.id();
            t.handles.insert(slot, tex);
            id
        }
    };
    Some(Draw::Texture(id))
}

/// Where the slice image lies in `rect` (aspect from voxel spacing, zoom and pan).
pub(super) fn image_rect(grid: &SliceGrid, rect: Rect, zoom: f32, pan: Vec2) -> Rect {
    let (w, h) = grid.size();
    let (pw, ph) = grid.pixel_mm();
    let mm = Vec2::new((w as f64 * pw) as f32, (h as f64 * ph) as f32);
    let scale = (rect.width() / mm.x).min(rect.height() / mm.y).max(1e-6) * zoom;
    Rect::from_center_size(rect.center() + pan, mm * scale)
}

/// Pixel `(col, row)` under screen position `pos`, if inside the image.
fn pixel_at(grid: &SliceGrid, img: Rect, pos: Pos2) -> Option<(usize, usize)> {
    let (w, h) = grid.size();
    let u = (pos.x - img.min.x) / img.width();
    let v = (pos.y - img.min.y) / img.height();
    ((0.0..1.0).contains(&u) && (0.0..1.0).contains(&v))
        .then_some(((u * w as f32) as usize, (v * h as f32) as usize))
}

/// Draw view `slot` of `axis` in `rect` and handle its mouse input.
pub(super) fn show(
    app: &mut ViewerApp,
    ui: &mut egui::Ui,
    rect: Rect,
    axis: Axis,
    content: ViewContent,
    slot: usize,
) {
    let Some(grid) = app.grid(axis) else { return };
    let response = ui.interact(
        rect,
        ui.scope_id().with(("slice-view", slot)),
        Sense::click_and_drag(),
    );
    let (zoom, pan) = app.zoom.get(&axis).copied().unwrap_or((1.0, Vec2::ZERO));
    let img = image_rect(&grid, rect, zoom, pan);
    let ctx = ui.ctx().clone();

    // ----- input -----
    let pointer = response.hover_pos();
    if response.hovered() {
        app.active_axis = axis;
        let (zoom_delta, steps) = ui.input(|i| {
            let mut steps = 0.0f32;
            for e in &i.events {
                if let egui::Event::MouseWheel {
                    unit,
                    delta,
                    modifiers,
                    ..
                } = e
                    && !modifiers.command
                {
                    steps += match unit {
                        egui::MouseWheelUnit::Point => delta.y / 40.0,
                        _ => delta.y.signum() * delta.y.abs().max(1.0),
                    };
                }
            }
            (i.zoom_delta(), steps)
        });
        if steps.abs() >= 0.5 {
            app.step_slice(axis, steps.round() as i64);
        }
        if zoom_delta != 1.0 {
            let new_zoom = (zoom * zoom_delta).clamp(0.25, 40.0);
            // Keep the point under the mouse fixed.
            let anchor = pointer.unwrap_or(rect.center()) - rect.center();
            let f = new_zoom / zoom;
            let new_pan = anchor - (anchor - pan) * f;
            app.zoom.insert(axis, (new_zoom, new_pan));
        }
    }
    let shift = ui.input(|i| i.modifiers.shift);
    let tool_used = !shift
        && !response.dragged_by(egui::PointerButton::Middle)
        && super::annotate::view_input(app, ui, &response, &grid, img);
    if tool_used {
        // The editing tool took the left button.
    } else if response.double_clicked() {
        app.zoom.remove(&axis);
    } else if response.dragged_by(egui::PointerButton::Middle)
        || (shift && response.dragged_by(egui::PointerButton::Primary))
    {
        let (z, p) = app.zoom.get(&axis).copied().unwrap_or((1.0, Vec2::ZERO));
        app.zoom.insert(axis, (z, p + response.drag_delta()));
    } else if response.dragged_by(egui::PointerButton::Secondary) {
        let d = response.drag_delta();
        let w = &mut app.settings.window;
        let per_point = (w.width / 256.0).max(0.5);
        w.width = (w.width + d.x * per_point).clamp(1.0, 8000.0);
        w.center -= d.y * per_point;
    } else if (response.clicked() || response.dragged_by(egui::PointerButton::Primary))
        && let Some(pos) = response.interact_pointer_pos()
        && let Some((c, r)) = pixel_at(&grid, img, pos)
    {
        let index = app.cursor[axis.normal_axis()];
        let v = grid.voxel(index, c, r);
        app.cursor = v;
        if response.clicked() {
            let label = [app.gt_ref(), app.pred_ref()]
                .into_iter()
                .flatten()
                .map(|l| l.display.get(v).unwrap_or(0))
                .find(|&l| l != 0);
            if let Some(l) = label {
                app.selected = Some(l);
            }
        }
    }
    if let Some(pos) = pointer {
        let index = app.cursor[axis.normal_axis()];
        if let Some((c, r)) = pixel_at(&grid, img, pos) {
            app.hover = Some(grid.voxel(index, c, r));
        }
    }

    // ----- drawing -----
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, Color32::BLACK);
    let (zoom, pan) = app.zoom.get(&axis).copied().unwrap_or((1.0, Vec2::ZERO));
    let img = image_rect(&grid, rect, zoom, pan);
    let image_frac = [
        (img.min.x - rect.min.x) / rect.width(),
        (img.min.y - rect.min.y) / rect.height(),
        img.width() / rect.width(),
        img.height() / rect.height(),
    ];
    match prepare(app, &ctx, slot, &grid, content, image_frac) {
        Some(Draw::Texture(tex)) => {
            painter.image(
                tex,
                img,
                Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)),
                Color32::WHITE,
            );
        }
        Some(Draw::Gpu(callback)) => {
            painter.add(egui_wgpu::Callback::new_paint_callback(rect, *callback));
        }
        None => {}
    }
    super::annotate::draw_overlay(app, &painter, &grid, img, pointer);
    let (w, h) = grid.size();
    let (col, row, index) = grid.pixel_of(app.cursor);
    let x = img.min.x + (col as f32 + 0.5) / w as f32 * img.width();
    let y = img.min.y + (row as f32 + 0.5) / h as f32 * img.height();
    let cross = egui::Stroke::new(1.0, Color32::from_rgba_unmultiplied(255, 220, 0, 110));
    painter.line_segment(
        [Pos2::new(x, rect.top()), Pos2::new(x, rect.bottom())],
        cross,
    );
    painter.line_segment(
        [Pos2::new(rect.left(), y), Pos2::new(rect.right(), y)],
        cross,
    );

    let letters = axis.edge_letters();
    let font = egui::FontId::proportional(16.0);
    let color = Color32::from_rgb(255, 200, 80);
    let m = 6.0;
    painter.text(
        Pos2::new(rect.left() + m, rect.center().y),
        egui::Align2::LEFT_CENTER,
        letters[0],
        font.clone(),
        color,
    );
    painter.text(
        Pos2::new(rect.right() - m, rect.center().y),
        egui::Align2::RIGHT_CENTER,
        letters[1],
        font.clone(),
        color,
    );
    painter.text(
        Pos2::new(rect.center().x, rect.top() + m + 18.0),
        egui::Align2::CENTER_TOP,
        letters[2],
        font.clone(),
        color,
    );
    painter.text(
        Pos2::new(rect.center().x, rect.bottom() - m - 18.0),
        egui::Align2::CENTER_BOTTOM,
        letters[3],
        font,
        color,
    );
    let position_mm = app.ct_ref().map_or(0.0, |ct| {
        ct.display.geometry().world_of(app.cursor.map(|v| v as f64))[axis.normal_axis()]
    });
    let coord = ["x", "y", "z"][axis.normal_axis()];
    let title = match content {
        ViewContent::Overlay => String::new(),
        ViewContent::Only(LayerKind::GroundTruth) if app.annotator.is_editing() => "Edit  ".into(),
        ViewContent::Only(k) => format!("{}  ", k.name()),
    };
    painter.text(
        rect.left_top() + Vec2::new(m, m),
        egui::Align2::LEFT_TOP,
        format!(
            "{title}{} {}/{}  {coord} = {position_mm:.1} mm",
            axis.name(),
            index + 1,
            grid.count()
        ),
        egui::FontId::monospace(12.0),
        Color32::from_gray(220),
    );
    let wl = app.settings.window;
    painter.text(
        rect.left_bottom() + Vec2::new(m, -m),
        egui::Align2::LEFT_BOTTOM,
        format!(
            "L {:.0} W {:.0}  zoom {:.0}%",
            wl.center,
            wl.width,
            zoom * 100.0
        ),
        egui::FontId::monospace(12.0),
        Color32::from_gray(200),
    );
}
