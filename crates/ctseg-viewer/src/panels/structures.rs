//! The structure table: 117 rows grouped by anatomy, search, visibility per structure,
//! group or all, colour, volume per layer and Dice; clicking a row jumps to the slice
//! where the structure is largest.

use eframe::egui::{self, Color32, RichText, Sense, Vec2};

use ctseg_core::structures::{Structure, catalog};

use crate::app::ViewerApp;

fn volume_ml(app: &ViewerApp, label: u8, gt: bool) -> Option<f64> {
    let ct = app.ct.as_ref()?;
    let layer = if gt {
        app.gt.as_ref()?
    } else {
        app.pred.as_ref()?
    };
    let voxel_mm3 = ct.display.geometry().voxel_volume_mm3();
    Some(layer.stats.counts[label as usize] as f64 * voxel_mm3 / 1000.0)
}

fn row(app: &mut ViewerApp, ui: &mut egui::Ui, s: &Structure) {
    let l = s.label as usize;
    ui.add(egui::Checkbox::without_text(&mut app.table.visible[l]))
        .on_hover_text(format!("Show {}", s.name));
    let (rect, _) = ui.allocate_exact_size(Vec2::splat(12.0), Sense::hover());
    let [r, g, b] = app.table.colors[l];
    ui.painter()
        .rect_filled(rect, 2.0, Color32::from_rgb(r, g, b));
    let selected = app.selected == Some(s.label);
    let present = app.gt.as_ref().is_some_and(|x| x.stats.counts[l] > 0)
        || app.pred.as_ref().is_some_and(|x| x.stats.counts[l] > 0);
    let mut text = RichText::new(&s.name);
    if !present {
        text = text.weak();
    }
    if ui.selectable_label(selected, text).clicked() {
        app.select_structure(s.label);
    }
    for gt in [true, false] {
        match volume_ml(app, s.label, gt) {
            Some(v) if v > 0.0 => ui.label(format!("{v:.1}")),
            Some(_) => ui.label(RichText::new("0").weak()),
            None => ui.label(""),
        };
    }
    match app.comparison.as_ref().and_then(|c| c.dice(s.label)) {
        Some(d) => {
            let color = if d < 0.5 {
                Color32::from_rgb(240, 90, 80)
            } else if d < 0.8 {
                Color32::from_rgb(230, 180, 60)
            } else {
                ui.visuals().text_color()
            };
            ui.label(RichText::new(format!("{d:.3}")).color(color))
        }
        None => ui.label(""),
    };
    ui.end_row();
}

fn header(ui: &mut egui::Ui) {
    ui.label("");
    ui.label("");
    ui.label(RichText::new("structure").strong());
    ui.label(RichText::new("GT mL").strong());
    ui.label(RichText::new("Pred mL").strong());
    ui.label(RichText::new("Dice").strong())
        .on_hover_text("Per-volume Dice of GT vs prediction on the CT's voxel grid");
    ui.end_row();
}

/// Draw the structure table.
pub fn show(app: &mut ViewerApp, ui: &mut egui::Ui) {
    ui.heading("Structures");
    ui.add(egui::TextEdit::singleline(&mut app.search).hint_text("Search structures"));
    ui.horizontal(|ui| {
        if ui.button("Show all").clicked() {
            app.set_all_visible(true);
        }
        if ui.button("Hide all").clicked() {
            app.set_all_visible(false);
        }
        let can_sort = app.comparison.is_some();
        ui.add_enabled_ui(can_sort, |ui| {
            ui.toggle_value(&mut app.sort_by_dice, "Sort by Dice")
                .on_hover_text("Worst first; needs both GT and prediction");
        });
    });
    if let Some(l) = app.selected {
        ui.label(format!("Selected: {}", catalog().name_of(l)));
    }
    ui.separator();
    let search = app.search.trim().to_lowercase();
    egui::ScrollArea::vertical()
        .auto_shrink(false)
        .show(ui, |ui| {
            if app.sort_by_dice && app.comparison.is_some() || !search.is_empty() {
                let mut rows: Vec<&Structure> = catalog()
                    .all()
                    .iter()
                    .filter(|s| search.is_empty() || s.name.to_lowercase().contains(&search))
                    .collect();
                if app.sort_by_dice
                    && let Some(c) = app.comparison.clone()
                {
                    rows.retain(|s| c.dice(s.label).is_some());
                    rows.sort_by(|a, b| {
                        let da = c.dice(a.label).unwrap_or(1.0);
                        let db = c.dice(b.label).unwrap_or(1.0);
                        da.total_cmp(&db)
                    });
                }
                egui::Grid::new("structures-flat")
                    .striped(true)
                    .show(ui, |ui| {
                        header(ui);
                        for s in rows {
                            row(app, ui, s);
                        }
                    });
                return;
            }
            for group in catalog().groups() {
                let members: Vec<&Structure> = catalog()
                    .all()
                    .iter()
                    .filter(|s| s.group == group)
                    .collect();
                let all_visible = members.iter().all(|s| app.table.visible[s.label as usize]);
                let present = members
                    .iter()
                    .filter(|s| {
                        let l = s.label as usize;
                        app.gt.as_ref().is_some_and(|x| x.stats.counts[l] > 0)
                            || app.pred.as_ref().is_some_and(|x| x.stats.counts[l] > 0)
                    })
                    .count();
                // Separate open/closed state before and after layers load, so groups with
                // structures open once there is something to show.
                let loaded = app.gt.is_some() || app.pred.is_some();
                let id = ui.make_persistent_id(("group", group, loaded));
                egui::collapsing_header::CollapsingState::load_with_default_open(
                    ui.ctx(),
                    id,
                    present > 0,
                )
                .show_header(ui, |ui| {
                    let mut v = all_visible;
                    if ui
                        .add(egui::Checkbox::without_text(&mut v))
                        .on_hover_text(format!("Show group {group}"))
                        .changed()
                    {
                        for s in &members {
                            app.table.visible[s.label as usize] = v;
                        }
                    }
                    ui.label(format!("{group} ({present}/{})", members.len()));
                })
                .body(|ui| {
                    egui::Grid::new(("structures", group))
                        .striped(true)
                        .show(ui, |ui| {
                            header(ui);
                            for s in &members {
                                row(app, ui, s);
                            }
                        });
                });
            }
        });
}
