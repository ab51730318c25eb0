//! The Annotate panel and the modal questions (restore, unsaved edits).

use eframe::egui::{self, Color32, RichText};

use ctseg_core::annotate::EditSource;
use ctseg_core::structures::catalog;

use super::*;
use crate::app::{Level, ViewerApp};
use crate::dialogs::DialogPurpose;

/// The Annotate section of the right-hand panel.
pub(crate) fn panel(app: &mut ViewerApp, ui: &mut egui::Ui) {
    ui.heading("Annotate");
    if app.annotator.session.is_none() {
        ui.label("Edit a layer (shown in place of the GT):");
        ui.horizontal_wrapped(|ui| {
            if ui.button("Start empty").clicked() {
                app.start_editing(EditSource::Empty);
            }
            if ui
                .add_enabled(app.gt.is_some(), egui::Button::new("From GT"))
                .clicked()
            {
                app.start_editing(EditSource::GroundTruth);
            }
            if ui
                .add_enabled(app.pred.is_some(), egui::Button::new("From prediction"))
                .clicked()
            {
                app.start_editing(EditSource::Prediction);
            }
        });
        return;
    }
    let selected = app
        .selected
        .map_or("(select a structure)".to_string(), |l| catalog().name_of(l));
    let source = app
        .annotator
        .session
        .as_ref()
        .map_or("", |s| s.source.name());
    ui.label(format!("Editing (from {source}): {selected}"));
    ui.horizontal_wrapped(|ui| {
        for tool in Tool::ALL {
            ui.selectable_value(&mut app.annotator.tool, tool, tool.name())
                .on_hover_text(tool.hint());
        }
    });
    ui.add(
        egui::Slider::new(&mut app.annotator.radius, 0.0..=60.0)
            .step_by(1.0)
            .text("brush radius"),
    );
    ui.checkbox(&mut app.annotator.protect, "Protect other structures");
    ui.horizontal(|ui| {
        ui.checkbox(&mut app.annotator.threshold, "HU range");
        let (lo, hi) = &mut app.annotator.hu_range;
        ui.add_enabled(
            app.annotator.threshold,
            egui::DragValue::new(lo).range(-1024..=3071).prefix("from "),
        );
        ui.add_enabled(
            app.annotator.threshold,
            egui::DragValue::new(hi).range(-1024..=3071).prefix("to "),
        );
        if *lo > *hi {
            std::mem::swap(lo, hi);
        }
    });
    ui.horizontal(|ui| {
        let axis = app.active_axis;
        if ui
            .button("Interpolate")
            .on_hover_text(format!(
                "Fill the selected structure in on the {} slices between slices where it is drawn",
                axis.name().to_lowercase()
            ))
            .clicked()
        {
            app.interpolate(axis);
        }
    });
    let (undo_text, redo_text, steps, bytes) = match &app.annotator.session {
        Some(s) => (
            s.history().undo_description().map(str::to_string),
            s.history().redo_description().map(str::to_string),
            s.history().len(),
            s.history().bytes(),
        ),
        None => (None, None, (0, 0), 0),
    };
    ui.horizontal(|ui| {
        if ui
            .add_enabled(undo_text.is_some(), egui::Button::new("Undo"))
            .on_hover_text(undo_text.clone().unwrap_or_default())
            .clicked()
        {
            app.undo();
        }
        if ui
            .add_enabled(redo_text.is_some(), egui::Button::new("Redo"))
            .on_hover_text(redo_text.clone().unwrap_or_default())
            .clicked()
        {
            app.redo();
        }
        ui.small(format!(
            "{} steps, {:.1} MiB",
            steps.0,
            bytes as f64 / (1 << 20) as f64
        ));
    });
    if let Some(d) = &undo_text {
        ui.small(format!("Last: {d}"));
    }
    let dirty = app.annotator.is_dirty();
    ui.horizontal_wrapped(|ui| {
        if ui.button("Save…").clicked() {
            app.dialog(DialogPurpose::SaveEdits {
                per_structure: false,
            });
        }
        if ui.button("Save as folder…").clicked() {
            app.dialog(DialogPurpose::SaveEdits {
                per_structure: true,
            });
        }
        if ui.button("Stop editing").clicked() {
            if dirty {
                app.annotator.question = Some(Question::StopEditing);
            } else {
                app.stop_editing();
            }
        }
    });
    ui.label(if dirty {
        RichText::new("Unsaved edits (autosaved for recovery)")
            .color(Color32::from_rgb(230, 180, 60))
    } else {
        RichText::new("All edits saved").weak()
    });
    ui.separator();
    ui.label(RichText::new("Correct and retrain").strong());
    let l = ui.label("Training set");
    ui.text_edit_singleline(&mut app.annotator.dataset_text)
        .labelled_by(l.id);
    if ui.button("Add to training set").clicked() {
        app.add_to_training_set();
    }
    ui.horizontal(|ui| {
        let can = app.annotator.dataset_ready.is_some()
            && app.settings.model.is_some()
            && !app.training.is_training();
        if ui
            .add_enabled(can, egui::Button::new("Fine-tune"))
            .on_disabled_hover_text("Add the case to a training set and choose a model first")
            .clicked()
            && let Err(e) = app.fine_tune()
        {
            app.message(Level::Error, format!("Cannot fine-tune: {e}"));
        }
        ui.add(
            egui::DragValue::new(&mut app.annotator.fine_tune_epochs)
                .range(1..=500)
                .suffix(" epochs"),
        );
    });
    if let Some(ft) = &app.annotator.fine_tune {
        match &ft.stage {
            FineTuneStage::Training => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Fine-tuning (see the Training tab)");
                });
            }
            FineTuneStage::Predicting => {
                ui.label("Predicting with the fine-tuned model…");
            }
            FineTuneStage::Comparing => {
                ui.label("Comparing…");
            }
            FineTuneStage::Failed(e) => {
                ui.colored_label(Color32::from_rgb(240, 90, 80), e);
            }
            FineTuneStage::Done(rows) => {
                ui.label("Dice against the corrected layer:");
                egui::Grid::new("dice-before-after")
                    .striped(true)
                    .show(ui, |ui| {
                        ui.strong("structure");
                        ui.strong("before");
                        ui.strong("after");
                        ui.end_row();
                        let f =
                            |d: &Option<f64>| d.map_or("–".to_string(), |d| format!("{d:.3}"));
                        for (label, before, after) in rows {
                            ui.label(catalog().name_of(*label));
                            ui.label(f(before));
                            ui.label(f(after));
                            ui.end_row();
                        }
                    });
            }
        }
    }
}

/// Modal questions: restore recovery files, quit or stop with unsaved edits.
pub(crate) fn modals(app: &mut ViewerApp, ctx: &egui::Context) {
    if !app.annotator.offered.is_empty() {
        let mut action = None;
        egui::Modal::new(egui::Id::unique("recovery")).show(ctx, |ui| {
            ui.heading("Unsaved edits found");
            ui.label("A previous session ended with edits that were not saved:");
            for (i, r) in app.annotator.offered.iter().enumerate() {
                ui.horizontal(|ui| {
                    let ct = r
                        .info
                        .ct
                        .as_ref()
                        .map_or_else(|| r.info.ct_name.clone(), |p| p.display().to_string());
                    let steps = match r.info.steps {
                        1 => "1 step".to_string(),
                        n => format!("{n} steps"),
                    };
                    ui.label(format!("{ct} (edited from {}, {steps})", r.info.source));
                    if ui.button("Restore").clicked() {
                        action = Some((i, true));
                    }
                    if ui.button("Discard").clicked() {
                        action = Some((i, false));
                    }
                });
            }
        });
        match action {
            Some((i, true)) => app.restore_recovery(i),
            Some((i, false)) => app.discard_offered(i),
            None => {}
        }
        return;
    }
    let Some(q) = app.annotator.question else {
        return;
    };
    let mut answer = None;
    egui::Modal::new(egui::Id::unique("unsaved")).show(ctx, |ui| {
        ui.heading("Unsaved edits");
        ui.label(match q {
            Question::Quit => "Quit and lose the unsaved edits?",
            Question::StopEditing => "Stop editing and lose the unsaved edits?",
        });
        ui.horizontal(|ui| {
            if ui.button("Save…").clicked() {
                answer = Some(0);
            }
            if ui.button("Discard edits").clicked() {
                answer = Some(1);
            }
            if ui.button("Cancel").clicked() {
                answer = Some(2);
            }
        });
    });
    match answer {
        Some(0) => {
            app.annotator.question = None;
            app.save_edits_again();
        }
        Some(1) => {
            app.annotator.question = None;
            match q {
                Question::Quit => {
                    app.discard_recovery_of_current();
                    app.annotator.allow_close = true;
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
                Question::StopEditing => app.stop_editing(),
            }
        }
        Some(_) => app.annotator.question = None,
        None => {}
    }
}
