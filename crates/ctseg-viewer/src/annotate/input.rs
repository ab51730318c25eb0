//! Keys and mouse of the editing tools in the slice views, and their cursor overlay.

use eframe::egui::{self, Color32, Pos2, Rect, Stroke, Vec2};

use ctseg_core::slicing::SliceGrid;
use ctseg_core::structures::catalog;

use super::*;
use crate::app::ViewerApp;

impl ViewerApp {
    /// Editing keys: [ ] brush size, Ctrl+Z undo, Ctrl+Shift+Z / Ctrl+Y redo,
    /// Ctrl+S save, Enter/Esc polygon.
    pub(crate) fn annotation_keys(&mut self, ctx: &egui::Context) {
        if self.annotator.session.is_none() {
            return;
        }
        let (smaller, larger, undo, redo, save, enter, esc) = ctx.input(|i| {
            let mut undo = false;
            let mut redo = false;
            let mut save = false;
            for e in &i.events {
                if let egui::Event::Key {
                    key,
                    pressed: true,
                    modifiers,
                    ..
                } = e
                    && modifiers.command
                {
                    match key {
                        egui::Key::Z if modifiers.shift => redo = true,
                        egui::Key::Z => undo = true,
                        egui::Key::Y => redo = true,
                        egui::Key::S => save = true,
                        _ => {}
                    }
                }
            }
            (
                i.key_pressed(egui::Key::OpenBracket),
                i.key_pressed(egui::Key::CloseBracket),
                undo,
                redo,
                save,
                i.key_pressed(egui::Key::Enter),
                i.key_pressed(egui::Key::Escape),
            )
        });
        let tool = ctx.input(|i| {
            if i.modifiers.any() {
                return None;
            }
            [
                (egui::Key::B, Tool::Brush),
                (egui::Key::E, Tool::Eraser),
                (egui::Key::F, Tool::Fill),
                (egui::Key::P, Tool::Polygon),
                (egui::Key::L, Tool::Lasso),
                (egui::Key::V, Tool::Navigate),
            ]
            .into_iter()
            .find(|(k, _)| i.key_pressed(*k))
            .map(|(_, t)| t)
        });
        if let Some(t) = tool {
            self.annotator.tool = t;
        }
        let r = &mut self.annotator.radius;
        if smaller {
            *r = (*r - if *r > 10.0 { 2.0 } else { 1.0 }).max(0.0);
        }
        if larger {
            *r = (*r + if *r >= 10.0 { 2.0 } else { 1.0 }).min(100.0);
        }
        if undo {
            self.undo();
        }
        if redo {
            self.redo();
        }
        if save {
            self.save_edits_again();
        }
        if esc {
            self.annotator.outline.clear();
            self.annotator.outline_view = None;
        }
        if enter {
            self.close_polygon(false);
        }
    }

    pub(crate) fn close_polygon(&mut self, erase: bool) {
        let points = std::mem::take(&mut self.annotator.outline);
        let Some((axis, index)) = self.annotator.outline_view.take() else {
            return;
        };
        if let Some(grid) = self.grid(axis)
            && points.len() >= 3
        {
            self.fill_outline(&grid, index, &points, erase);
        }
    }
}

/// Pixel coordinates (fractional) of screen position `pos` in image rect `img`.
fn pixel_pos(grid: &SliceGrid, img: Rect, pos: Pos2) -> (f32, f32) {
    let (w, h) = grid.size();
    (
        (pos.x - img.min.x) / img.width() * w as f32,
        (pos.y - img.min.y) / img.height() * h as f32,
    )
}

fn inside(grid: &SliceGrid, p: (f32, f32)) -> bool {
    let (w, h) = grid.size();
    p.0 >= 0.0 && p.1 >= 0.0 && p.0 < w as f32 && p.1 < h as f32
}

/// Mouse input of a slice view while a tool is active. Returns `true` when the
/// tool used the input (the view then does not move the crosshair).
pub(crate) fn view_input(
    app: &mut ViewerApp,
    ui: &egui::Ui,
    response: &egui::Response,
    grid: &SliceGrid,
    img: Rect,
) -> bool {
    if !app.annotator.tool_active() {
        return false;
    }
    let (primary_down, ctrl, pos) = ui.input(|i| {
        (
            i.pointer.primary_down(),
            i.modifiers.command || i.modifiers.ctrl,
            i.pointer.interact_pos(),
        )
    });
    let index = app.cursor[grid.axis.normal_axis()];
    let on_view = response.is_pointer_button_down_on();
    let p = pos.map(|p| pixel_pos(grid, img, p));
    match app.annotator.tool {
        Tool::Navigate => false,
        Tool::Brush | Tool::Eraser => {
            let erase = app.annotator.tool == Tool::Eraser || ctrl;
            let active = app
                .annotator
                .stroke
                .is_some_and(|s| s.axis == grid.axis && s.view.is_none_or(|v| v == response.id));
            if active {
                if primary_down {
                    if let Some(p) = p {
                        app.continue_stroke(grid, p, erase);
                    }
                } else {
                    app.end_stroke();
                }
                true
            } else if on_view
                && primary_down
                && let Some(p) = p.filter(|&p| inside(grid, p))
            {
                app.begin_stroke(grid, index, p, erase);
                if let Some(s) = &mut app.annotator.stroke {
                    s.view = Some(response.id);
                }
                true
            } else if response.clicked()
                && let Some(p) = p.filter(|&p| inside(grid, p))
            {
                // Press and release within one frame: a single stamp.
                app.begin_stroke(grid, index, p, erase);
                app.end_stroke();
                true
            } else {
                response.clicked()
            }
        }
        Tool::Fill => {
            if response.clicked()
                && let Some(p) = p.filter(|&p| inside(grid, p))
            {
                app.fill_at(grid, index, (p.0 as usize, p.1 as usize), ctrl);
            }
            on_view || response.clicked()
        }
        Tool::Polygon => {
            if app.annotator.outline_view != Some((grid.axis, index)) && response.clicked() {
                app.annotator.outline.clear();
                app.annotator.outline_view = Some((grid.axis, index));
            }
            if response.double_clicked() {
                app.close_polygon(ctrl);
            } else if response.clicked()
                && let Some(p) = p.filter(|&p| inside(grid, p))
            {
                app.annotator.outline.push(p);
            }
            on_view || response.clicked()
        }
        Tool::Lasso => {
            let drawing = app.annotator.outline_view == Some((grid.axis, index))
                && !app.annotator.outline.is_empty();
            if on_view && primary_down {
                if !drawing {
                    app.annotator.outline.clear();
                    app.annotator.outline_view = Some((grid.axis, index));
                }
                if let Some(p) = p {
                    let far = app
                        .annotator
                        .outline
                        .last()
                        .is_none_or(|q| (q.0 - p.0).abs() + (q.1 - p.1).abs() >= 0.5);
                    if far {
                        app.annotator.outline.push(p);
                    }
                }
                true
            } else if drawing && !primary_down {
                app.close_polygon(ctrl);
                true
            } else {
                response.clicked()
            }
        }
    }
}

/// Brush outline at the mouse and the polygon/lasso in progress.
pub(crate) fn draw_overlay(
    app: &ViewerApp,
    painter: &egui::Painter,
    grid: &SliceGrid,
    img: Rect,
    hover: Option<Pos2>,
) {
    if !app.annotator.tool_active() {
        return;
    }
    let (w, h) = grid.size();
    let to_screen = |p: (f32, f32)| {
        Pos2::new(
            img.min.x + p.0 / w as f32 * img.width(),
            img.min.y + p.1 / h as f32 * img.height(),
        )
    };
    let color = app
        .selected
        .map(|l| {
            let [r, g, b] = catalog().by_label(l).map_or([255, 255, 0], |s| s.color);
            Color32::from_rgb(r, g, b)
        })
        .unwrap_or(Color32::YELLOW);
    let stroke = Stroke::new(1.5, color);
    match app.annotator.tool {
        Tool::Brush | Tool::Eraser => {
            if let Some(pos) = hover {
                // Ellipse of the brush radius (round in mm).
                let (pw, ph) = grid.pixel_mm();
                let unit = pw.min(ph).max(1e-9);
                let r = app.annotator.radius.max(0.5);
                let rx = r / (pw / unit) as f32 * img.width() / w as f32;
                let ry = r / (ph / unit) as f32 * img.height() / h as f32;
                let points: Vec<Pos2> = (0..48)
                    .map(|n| {
                        let t = n as f32 / 48.0 * std::f32::consts::TAU;
                        pos + Vec2::new(rx * t.cos(), ry * t.sin())
                    })
                    .collect();
                let dashed = app.annotator.tool == Tool::Eraser;
                let s = if dashed {
                    Stroke::new(1.5, Color32::WHITE)
                } else {
                    stroke
                };
                painter.add(egui::Shape::closed_line(points, s));
            }
        }
        Tool::Polygon | Tool::Lasso => {
            let index = app.cursor[grid.axis.normal_axis()];
            if app.annotator.outline_view == Some((grid.axis, index))
                && !app.annotator.outline.is_empty()
            {
                let mut points: Vec<Pos2> = app
                    .annotator
                    .outline
                    .iter()
                    .map(|&p| to_screen(p))
                    .collect();
                if app.annotator.tool == Tool::Polygon
                    && let Some(h) = hover
                {
                    points.push(h);
                }
                for p in &points {
                    painter.circle_filled(*p, 2.5, color);
                }
                // Dark under white: visible over any overlay colour.
                painter.add(egui::Shape::line(
                    points.clone(),
                    Stroke::new(3.0, Color32::BLACK),
                ));
                painter.add(egui::Shape::line(points, Stroke::new(1.5, Color32::WHITE)));
            }
        }
        Tool::Fill | Tool::Navigate => {}
    }
}
