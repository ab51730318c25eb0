//! The structure table: 117 rows grouped by anatomy, search, visibility per structure,
//! group or all, colour, volume per layer and Dice; clicking a row jumps to the slice
//! where the structure is largest. The panel keeps its own widget state (search,
//! sort order), edits the visibility in the label table it is handed, and returns
//! the selection as a command.

use std::sync::Arc;

use eframe::egui::{self, Color32, RichText, Sense, Vec2};

use ctseg_core::render::LabelTable;
use ctseg_core::structures::{Structure, catalog};
use ctseg_core::study::{Comparison, LabelLayer};

use crate::command::Command;

/// The table's own widget state.
#[derive(Debug, Clone, Default)]
pub struct StructuresPanel {
    /// Filter text.
    pub search: String,
    /// Sort by Dice (worst first) instead of by group.
    pub sort_by_dice: bool,
}

/// What the table shows.
#[derive(Clone, Default)]
pub struct StructuresView {
    /// Volume of one voxel of the open CT, mm³.
    pub voxel_mm3: f64,
    /// The GT (or edited) layer.
    pub gt: Option<Arc<LabelLayer>>,
    /// The prediction layer.
    pub pred: Option<Arc<LabelLayer>>,
    /// Their comparison.
    pub comparison: Option<Arc<Comparison>>,
    /// The selected structure.
    pub selected: Option<u8>,
}

impl StructuresView {
    fn volume_ml(&self, label: u8, gt: bool) -> Option<f64> {
        let layer = if gt {
            self.gt.as_ref()?
        } else {
            self.pred.as_ref()?
        };
        Some(layer.stats.counts[label as usize] as f64 * self.voxel_mm3 / 1000.0)
    }

    fn present(&self, label: usize) -> bool {
        self.gt.as_ref().is_some_and(|x| x.stats.counts[label] > 0)
            || self
                .pred
                .as_ref()
                .is_some_and(|x| x.stats.counts[label] > 0)
    }
}

fn row(
    ui: &mut egui::Ui,
    table: &mut LabelTable,
    view: &StructuresView,
    s: &Structure,
    out: &mut Vec<Command>,
) {
    let l = s.label as usize;
    ui.add(egui::Checkbox::without_text(&mut table.visible[l]))
        .on_hover_text(format!("Show {}", s.name));
    let (rect, _) = ui.allocate_exact_size(Vec2::splat(12.0), Sense::hover());
    let [r, g, b] = table.colors[l];
    ui.painter()
        .rect_filled(rect, 2.0, Color32::from_rgb(r, g, b));
    let selected = view.selected == Some(s.label);
    let mut text = RichText::new(&s.name);
    if !view.present(l) {
        text = text.weak();
    }
    if ui.selectable_label(selected, text).clicked() {
        out.push(Command::SelectStructure(s.label));
    }
    for gt in [true, false] {
        match view.volume_ml(s.label, gt) {
            Some(v) if v > 0.0 => ui.label(format!("{v:.1}")),
            Some(_) => ui.label(RichText::new("0").weak()),
            None => ui.label(""),
        };
    }
    match view.comparison.as_ref().and_then(|c| c.dice(s.label)) {
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

impl StructuresPanel {
    /// Draw the structure table.
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        table: &mut LabelTable,
        view: &StructuresView,
    ) -> Vec<Command> {
        let mut out = Vec::new();
        self.draw(ui, table, view, &mut out);
        out
    }

    fn draw(
        &mut self,
        ui: &mut egui::Ui,
        table: &mut LabelTable,
        view: &StructuresView,
        out: &mut Vec<Command>,
    ) {
        ui.heading("Structures");
        ui.add(egui::TextEdit::singleline(&mut self.search).hint_text("Search structures"));
        ui.horizontal(|ui| {
            if ui.button("Show all").clicked() {
                out.push(Command::SetAllVisible(true));
            }
            if ui.button("Hide all").clicked() {
                out.push(Command::SetAllVisible(false));
            }
            let can_sort = view.comparison.is_some();
            ui.add_enabled_ui(can_sort, |ui| {
                ui.toggle_value(&mut self.sort_by_dice, "Sort by Dice")
                    .on_hover_text("Worst first; needs both GT and prediction");
            });
        });
        if let Some(l) = view.selected {
            ui.label(format!("Selected: {}", catalog().name_of(l)));
        }
        ui.separator();
        let search = self.search.trim().to_lowercase();
        egui::ScrollArea::vertical()
            .auto_shrink(false)
            .show(ui, |ui| {
                if self.sort_by_dice && view.comparison.is_some() || !search.is_empty() {
                    let mut rows: Vec<&Structure> = catalog()
                        .all()
                        .iter()
                        .filter(|s| search.is_empty() || s.name.to_lowercase().contains(&search))
                        .collect();
                    if self.sort_by_dice
                        && let Some(c) = view.comparison.clone()
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
                                row(ui, table, view, s, out);
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
                    let all_visible = members.iter().all(|s| table.visible[s.label as usize]);
                    let present = members
                        .iter()
                        .filter(|s| view.present(s.label as usize))
                        .count();
                    // Separate open/closed state before and after layers load, so groups with
                    // structures open once there is something to show.
                    let loaded = view.gt.is_some() || view.pred.is_some();
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
                                table.visible[s.label as usize] = v;
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
                                    row(ui, table, view, s, out);
                                }
                            });
                    });
                }
            });
    }
}
