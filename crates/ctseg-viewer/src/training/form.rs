//! Left side of the Training tab: dataset, settings, Start/Pause/Stop, and the list of
//! runs on the dashboard.

use eframe::egui::{self, Color32, RichText};

use ctseg_core::structures::catalog;
use ctseg_ml::backend::BackendKind;
use ctseg_ml::infer::Precision;
use ctseg_ml::model::LossKind;
use ctseg_ml::train::config::{Preset as Recipe, ScheduleKind};

use super::{Preset, SessionStatus};
use crate::ViewerApp;
use crate::app::Level;
use crate::dialogs::DialogPurpose;

const INPUT_SIZES: [usize; 9] = [64, 96, 128, 160, 192, 224, 256, 384, 512];
const BASE_WIDTHS: [usize; 5] = [4, 8, 16, 32, 64];
const ERROR: Color32 = Color32::from_rgb(240, 90, 80);

/// Draw the form and the run list.
pub fn show(app: &mut ViewerApp, ui: &mut egui::Ui) {
    egui::ScrollArea::vertical().show(ui, |ui| {
        ui.heading("New training run");
        dataset(app, ui);
        ui.separator();
        settings(app, ui);
        ui.separator();
        controls(app, ui);
        ui.separator();
        runs(app, ui);
    });
}

fn labelled_text(ui: &mut egui::Ui, label: &str, text: &mut String) -> egui::Response {
    let l = ui.label(label);
    ui.add(egui::TextEdit::singleline(text).desired_width(f32::INFINITY))
        .labelled_by(l.id)
}

fn dataset(app: &mut ViewerApp, ui: &mut egui::Ui) {
    let ctx = ui.ctx().clone();
    let t = &mut app.training;
    let edit = labelled_text(ui, "Dataset folder", &mut t.data_text);
    let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
    let mut browse = false;
    let mut phantoms = false;
    ui.horizontal(|ui| {
        browse = ui.button("Browse…").clicked();
        if ui
            .button("Sample phantoms")
            .on_hover_text("Write 4 synthetic phantom subjects to the cache folder and use them")
            .clicked()
        {
            phantoms = true;
        }
        if ui.button("Scan").clicked() || enter {
            t.scan_dataset(&ctx);
        }
    });
    if browse {
        app.folder_dialog(DialogPurpose::ChooseDataset);
    }
    if phantoms {
        app.write_sample_phantoms();
    }
    let Some(scan) = &app.training.scan else {
        ui.label(
            RichText::new("A TotalSegmentator root, an nnU-Net raw dataset or one subject folder")
                .weak(),
        );
        return;
    };
    if let Some(e) = &scan.error {
        ui.label(RichText::new(e).color(ERROR));
        return;
    }
    if let Some(layout) = &scan.layout {
        ui.label(format!("Layout: {layout}"));
        ui.label(format!(
            "Subjects: {} train, {} validation, {} test (split from {})",
            scan.train.len(),
            scan.val.len(),
            scan.test,
            scan.split_source
        ));
    }
    if !scan.done {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(format!("Reading subjects {}/{}", scan.read, scan.total()));
        });
    }
    if scan.read > 0 {
        ui.collapsing(
            format!("Structures present: {} of 117", scan.structures.len()),
            |ui| {
                let names: Vec<String> = scan
                    .structures
                    .iter()
                    .map(|(&l, &n)| format!("{} ({n})", catalog().name_of(l)))
                    .collect();
                ui.label(RichText::new(names.join(", ")).small());
            },
        );
    }
    for p in scan.problems.iter().take(5) {
        ui.label(RichText::new(p).color(ERROR).small());
    }
    if scan.problems.len() > 5 {
        ui.label(
            RichText::new(format!("…and {} more problems", scan.problems.len() - 5)).color(ERROR),
        );
    }
}

fn settings(app: &mut ViewerApp, ui: &mut egui::Ui) {
    let t = &mut app.training;
    ui.horizontal_wrapped(|ui| {
        ui.label("Preset:");
        for p in Preset::ALL {
            if ui.button(p.name()).clicked() {
                p.apply(&mut t.config);
                t.lr_text = t.config.optim.lr.to_string();
            }
        }
    });
    ui.horizontal_wrapped(|ui| {
        ui.label("Recipe:");
        for r in [Recipe::Default, Recipe::Seed] {
            let chosen = Recipe::of(&t.config) == Some(r);
            if ui.selectable_label(chosen, recipe_name(r)).clicked() {
                r.apply(&mut t.config);
            }
        }
    });
    let mut probe = false;
    let super::TrainingPanel {
        config: c,
        lr_text,
        adapter,
        ..
    } = t;
    egui::Grid::new("train-settings")
        .num_columns(2)
        .spacing([12.0, 4.0])
        .show(ui, |ui| {
            let drag = |ui: &mut egui::Ui, label: &str, v: &mut usize, lo: usize, hi: usize| {
                let l = ui.label(label);
                ui.add(egui::DragValue::new(v).range(lo..=hi))
                    .labelled_by(l.id);
                ui.end_row();
            };
            drag(ui, "Epochs", &mut c.run.epochs, 1, 10_000);
            drag(ui, "Batch size", &mut c.run.batch_size, 1, 512);
            let l = ui.label("Steps per epoch");
            ui.horizontal(|ui| {
                ui.add(egui::DragValue::new(&mut c.run.steps_per_epoch).range(0..=1_000_000))
                    .labelled_by(l.id)
                    .on_hover_text(
                        "Optimiser steps between validations; 0 = every training slice once",
                    );
            });
            ui.end_row();
            let l = ui.label("Max steps");
            ui.add(egui::DragValue::new(&mut c.run.max_steps).range(0..=10_000_000))
                .labelled_by(l.id)
                .on_hover_text("Step budget of the whole run (0 = none: the epochs decide)");
            ui.end_row();
            let factor = 1usize << c.model.depth;
            let l = ui.label("Input size");
            egui::ComboBox::from_id_salt("input-size")
                .selected_text(format!("{0}×{0}", c.model.input_size))
                .show_ui(ui, |ui| {
                    for s in INPUT_SIZES.into_iter().filter(|s| s % factor == 0) {
                        ui.selectable_value(&mut c.model.input_size, s, format!("{s}×{s}"));
                    }
                })
                .response
                .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("Base width");
            egui::ComboBox::from_id_salt("base-width")
                .selected_text(c.model.base_channels.to_string())
                .show_ui(ui, |ui| {
                    for w in BASE_WIDTHS {
                        ui.selectable_value(&mut c.model.base_channels, w, w.to_string());
                    }
                })
                .response
                .labelled_by(l.id)
                .on_hover_text("Channels of the first U-Net level (doubling per level)");
            ui.end_row();
            drag(ui, "Depth", &mut c.model.depth, 2, 6);
            let l = ui.label("Loss");
            egui::ComboBox::from_id_salt("loss")
                .selected_text(loss_name(c.run.loss))
                .show_ui(ui, |ui| {
                    for k in [
                        LossKind::CeDice,
                        LossKind::Bce,
                        LossKind::Dice,
                        LossKind::BceDice,
                    ] {
                        ui.selectable_value(&mut c.run.loss, k, loss_name(k));
                    }
                })
                .response
                .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("Schedule");
            egui::ComboBox::from_id_salt("schedule")
                .selected_text(schedule_name(c.schedule.kind))
                .show_ui(ui, |ui| {
                    for k in [
                        ScheduleKind::Poly,
                        ScheduleKind::Cosine,
                        ScheduleKind::Plateau,
                    ] {
                        ui.selectable_value(&mut c.schedule.kind, k, schedule_name(k));
                    }
                })
                .response
                .labelled_by(l.id);
            ui.end_row();
            drag(
                ui,
                "Warm-up steps",
                &mut c.schedule.warmup_steps,
                0,
                100_000,
            );
            let l = ui.label("Learning rate");
            let ok = lr_text.trim().parse::<f64>().is_ok_and(|v| v > 0.0);
            ui.add(
                egui::TextEdit::singleline(lr_text)
                    .desired_width(90.0)
                    .text_color_opt((!ok).then_some(ERROR)),
            )
            .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("Validation fraction");
            ui.add(egui::Slider::new(&mut c.data.val_fraction, 0.0..=0.5).fixed_decimals(2))
                .labelled_by(l.id)
                .on_hover_text("Used when the dataset has no split of its own");
            ui.end_row();
            let l = ui.label("Seed");
            ui.add(egui::DragValue::new(&mut c.run.seed))
                .labelled_by(l.id);
            ui.end_row();
            ui.label("Augmentation");
            ui.checkbox(&mut c.augment.enabled, "flip, rotate, scale, intensity");
            ui.end_row();
            let l = ui.label("Backend");
            ui.horizontal(|ui| {
                let before = c.run.backend;
                egui::ComboBox::from_id_salt("train-backend")
                    .selected_text(c.run.backend.name())
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut c.run.backend, BackendKind::Auto, "auto");
                        ui.selectable_value(&mut c.run.backend, BackendKind::Wgpu, "wgpu");
                        if BackendKind::Cuda.is_compiled_in() {
                            ui.selectable_value(&mut c.run.backend, BackendKind::Cuda, "cuda");
                        }
                        ui.selectable_value(&mut c.run.backend, BackendKind::Cpu, "cpu");
                    })
                    .response
                    .labelled_by(l.id);
                if before != c.run.backend {
                    *adapter = None;
                    if c.run.backend == BackendKind::Cpu {
                        // The CPU trains in f32 only (the trainer refuses f16/bf16 there).
                        c.run.precision = Precision::F32;
                    }
                }
                if ui
                    .button("Probe")
                    .on_hover_text("Open the device and show its adapter")
                    .clicked()
                {
                    probe = true;
                }
            });
            ui.end_row();
            let l = ui.label("Training precision");
            let on_cpu = c.run.backend == BackendKind::Cpu;
            egui::ComboBox::from_id_salt("train-precision")
                .selected_text(c.run.precision.name())
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut c.run.precision, Precision::F32, "f32");
                    for p in [Precision::F16, Precision::Bf16] {
                        ui.add_enabled_ui(!on_cpu, |ui| {
                            ui.selectable_value(&mut c.run.precision, p, p.name());
                        });
                    }
                })
                .response
                .labelled_by(l.id)
                .on_hover_text(
                    "f16/bf16: mixed precision on a GPU (wgpu, cuda): half-precision \
                     convolutions on f32 weights, BatchNorm in f32, loss scaling for f16. \
                     The CPU trains in f32.",
                );
            ui.end_row();
        });
    if probe {
        let kind = t.config.run.backend;
        app.probe_backend(kind);
    }
    let t = &app.training;
    match &t.adapter {
        Some((kind, Ok(d))) if *kind == t.config.run.backend => {
            ui.label(RichText::new(d).small());
        }
        Some((kind, Err(e))) if *kind == t.config.run.backend => {
            ui.label(RichText::new(e).small().color(ERROR));
        }
        _ => {}
    }
    structures(app, ui);
    let t = &mut app.training;
    labelled_text(ui, "Run folder", &mut t.run_dir_text);
    if ui.small_button("Choose run folder…").clicked() {
        app.folder_dialog(DialogPurpose::ChooseRunDir);
    }
}

fn structures(app: &mut ViewerApp, ui: &mut egui::Ui) {
    let t = &mut app.training;
    let chosen = &mut t.config.data.structures;
    let title = if chosen.is_empty() {
        "Structures: all 117".to_string()
    } else {
        format!("Structures: {} chosen", chosen.len())
    };
    ui.collapsing(title, |ui| {
        let present: Vec<u8> = t
            .scan
            .as_ref()
            .map(|s| s.structures.keys().copied().collect())
            .unwrap_or_default();
        ui.horizontal(|ui| {
            if ui.button("All").clicked() {
                chosen.clear();
            }
            if ui
                .add_enabled(
                    !present.is_empty(),
                    egui::Button::new("Present in the data"),
                )
                .clicked()
            {
                *chosen = present.iter().map(|&l| catalog().name_of(l)).collect();
            }
        });
        ui.label(
            RichText::new("Unchecked structures count as background. None checked = all.").weak(),
        );
        egui::ScrollArea::vertical()
            .max_height(180.0)
            .id_salt("train-structures")
            .show(ui, |ui| {
                for s in catalog().all() {
                    let mut on = chosen.iter().any(|c| c == &s.name);
                    let mut text = RichText::new(&s.name);
                    if !present.is_empty() && !present.contains(&s.label) {
                        text = text.weak();
                    }
                    if ui.checkbox(&mut on, text).changed() {
                        if on {
                            chosen.push(s.name.clone());
                        } else {
                            chosen.retain(|c| c != &s.name);
                        }
                    }
                }
            });
    });
}

fn loss_name(k: LossKind) -> &'static str {
    match k {
        LossKind::Bce => "BCE",
        LossKind::Dice => "Soft Dice",
        LossKind::BceDice => "BCE + Dice",
        LossKind::CeDice => "Softmax CE + Dice",
    }
}

fn schedule_name(k: ScheduleKind) -> &'static str {
    match k {
        ScheduleKind::Poly => "Poly (nnU-Net)",
        ScheduleKind::Cosine => "Cosine",
        ScheduleKind::Plateau => "Plateau on val Dice",
    }
}

fn recipe_name(r: Recipe) -> &'static str {
    match r {
        Recipe::Default => "Measured default",
        Recipe::Seed => "Seed recipe (BCE + plateau)",
    }
}

fn controls(app: &mut ViewerApp, ui: &mut egui::Ui) {
    let ctx = ui.ctx().clone();
    let t = &mut app.training;
    let training = t.is_training();
    let mut error = None;
    ui.horizontal(|ui| {
        if ui
            .add_enabled(!training, egui::Button::new("Start"))
            .clicked()
            && let Err(e) = t.start(&ctx)
        {
            error = Some(e);
        }
        let paused = t
            .session
            .as_ref()
            .is_some_and(|s| s.control.is_paused() && training);
        if paused {
            if ui.button("Resume").clicked() {
                t.set_paused(false);
            }
        } else if ui
            .add_enabled(training, egui::Button::new("Pause"))
            .clicked()
        {
            t.set_paused(true);
        }
        if ui
            .add_enabled(training, egui::Button::new("Stop"))
            .on_hover_text("Stop after this step; the last checkpoint is kept and can be continued")
            .clicked()
        {
            t.stop();
        }
        let stopped = t.session.as_ref().is_some_and(|s| {
            matches!(
                s.status,
                SessionStatus::Finished {
                    reason: ctseg_ml::train::FinishReason::Cancelled,
                    ..
                }
            )
        });
        if stopped
            && ui
                .button("Continue run")
                .on_hover_text("Resume from the last checkpoint")
                .clicked()
            && let Err(e) = t.continue_run(&ctx)
        {
            error = Some(e);
        }
    });
    if let Err(e) = t.effective_config()
        && !training
    {
        ui.label(
            RichText::new(format!("Cannot start: {e}"))
                .color(ERROR)
                .small(),
        );
    }
    if let Some(s) = &t.session {
        let color = match s.status {
            SessionStatus::Failed(_) => ERROR,
            _ => ui.visuals().text_color(),
        };
        ui.horizontal(|ui| {
            if s.status.is_active() {
                ui.spinner();
            }
            ui.label(RichText::new(s.status.describe()).color(color));
        });
        if let SessionStatus::Preparing { done, total } = s.status
            && total > 0
        {
            ui.add(
                egui::ProgressBar::new(done as f32 / total as f32).text(format!("{done}/{total}")),
            );
        }
        if let Some(d) = &s.device {
            ui.label(RichText::new(d).small());
        }
        ui.label(
            RichText::new(s.run_dir.display().to_string())
                .small()
                .monospace(),
        );
    }
    if let Some(e) = error {
        app.message(Level::Error, format!("Cannot start training: {e}"));
    }
}

fn runs(app: &mut ViewerApp, ui: &mut egui::Ui) {
    ui.heading("Runs");
    if ui.button("Open run folder…").clicked() {
        app.folder_dialog(DialogPurpose::OpenRun);
    }
    let t = &mut app.training;
    if t.runs.is_empty() {
        ui.label(RichText::new("Open a run folder to plot it; tick several to compare.").weak());
    }
    let mut close = None;
    let mut select = None;
    for (i, run) in t.runs.iter_mut().enumerate() {
        ui.horizontal(|ui| {
            let [r, g, b] = ctseg_ml::train::plots::RUN_COLORS
                [run.color % ctseg_ml::train::plots::RUN_COLORS.len()];
            let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
            ui.painter()
                .rect_filled(rect, 2.0, Color32::from_rgb(r, g, b));
            ui.add(egui::Checkbox::without_text(&mut run.shown))
                .on_hover_text(format!("Compare {}", run.log.name()));
            let primary = t.primary == Some(i);
            if ui
                .selectable_label(primary, run.log.name())
                .on_hover_text(run.log.dir.display().to_string())
                .clicked()
            {
                select = Some(i);
            }
            if run.log.seconds_since_write().is_some_and(|s| s < 30.0) {
                ui.label(
                    RichText::new("live")
                        .color(Color32::from_rgb(90, 200, 90))
                        .small(),
                );
            }
            if ui
                .small_button("×")
                .on_hover_text(format!("Close {}", run.log.name()))
                .clicked()
            {
                close = Some(i);
            }
        });
    }
    if let Some(i) = select {
        t.primary = Some(i);
    }
    if let Some(i) = close {
        t.close_run(i);
    }
}
