//! The model panel: checkpoint, backend, precision and prediction settings, Predict,
//! and a summary of the loaded layers and their agreement.

use std::sync::Arc;

use eframe::egui::{self, RichText};

use ctseg_core::structures::catalog;
use ctseg_core::study::{Comparison, LabelLayer};
use ctseg_ml::backend::BackendKind;
use ctseg_ml::infer::Precision;

use crate::command::Command;
use crate::dialogs::DialogPurpose;
use crate::settings::Settings;

/// What the model panel shows besides the settings.
#[derive(Clone, Default)]
pub struct ModelView {
    /// A CT is open.
    pub has_ct: bool,
    /// Work is running (Predict waits).
    pub busy: bool,
    /// Summary line of the last prediction.
    pub predict_summary: Option<String>,
    /// The GT (or edited) layer.
    pub gt: Option<Arc<LabelLayer>>,
    /// The prediction layer.
    pub pred: Option<Arc<LabelLayer>>,
    /// Their comparison.
    pub comparison: Option<Arc<Comparison>>,
}

/// The model panel.
pub fn show(ui: &mut egui::Ui, settings: &mut Settings, view: &ModelView) -> Vec<Command> {
    let mut out = Vec::new();
    ui.heading("Model");
    let model_text = settings
        .model
        .as_ref()
        .map_or("(none)".to_string(), |p| p.display().to_string());
    ui.label(RichText::new(model_text).monospace().small());
    ui.horizontal(|ui| {
        if ui.button("Checkpoint file…").clicked() {
            out.push(Command::Dialog(DialogPurpose::ChooseModelFile));
        }
        if ui.button("Run folder…").clicked() {
            out.push(Command::Dialog(DialogPurpose::ChooseModelFolder));
        }
    });
    egui::ComboBox::from_label("Backend")
        .selected_text(settings.backend.name())
        .show_ui(ui, |ui| {
            ui.selectable_value(&mut settings.backend, BackendKind::Auto, "auto");
            ui.selectable_value(&mut settings.backend, BackendKind::Wgpu, "wgpu");
            if BackendKind::Cuda.is_compiled_in() {
                ui.selectable_value(&mut settings.backend, BackendKind::Cuda, "cuda");
            }
            ui.selectable_value(&mut settings.backend, BackendKind::Cpu, "cpu");
        });
    egui::ComboBox::from_label("Precision")
        .selected_text(settings.precision.name())
        .show_ui(ui, |ui| {
            for p in [Precision::F32, Precision::F16, Precision::Bf16] {
                ui.selectable_value(&mut settings.precision, p, p.name());
            }
        })
        .response
        .on_hover_text(
            "f16/bf16 halve memory traffic on GPUs (tensor cores on NVIDIA); \
             the device must support the type",
        );
    ui.add(egui::Slider::new(&mut settings.threshold, 0.05..=0.95).text("threshold"));
    ui.checkbox(&mut settings.smooth, "Smooth across slices");
    ui.checkbox(&mut settings.largest_component, "Largest component");
    let can = view.has_ct && settings.model.is_some() && !view.busy;
    if ui.add_enabled(can, egui::Button::new("Predict")).clicked() {
        out.push(Command::Predict);
    }
    if let Some(s) = &view.predict_summary {
        ui.label(RichText::new(s).small());
    }
    ui.separator();
    ui.heading("Layers");
    for (name, layer) in [("GT", &view.gt), ("Pred", &view.pred)] {
        let text = match layer {
            Some(l) => format!(
                "{name}: {} structures, {}",
                l.stats.counts[1..].iter().filter(|&&c| c > 0).count(),
                l.path
                    .as_ref()
                    .and_then(|p| p.file_name())
                    .map_or("in memory".into(), |f| f.to_string_lossy().to_string())
            ),
            None => format!("{name}: none"),
        };
        ui.label(text);
    }
    if let Some(c) = &view.comparison {
        let dices: Vec<f64> = catalog()
            .all()
            .iter()
            .filter(|s| c.confusion[s.label as usize].gt_voxels() > 0)
            .filter_map(|s| c.dice(s.label))
            .collect();
        if !dices.is_empty() {
            ui.label(format!(
                "Mean Dice over {} GT structures: {:.3} (per volume)",
                dices.len(),
                dices.iter().sum::<f64>() / dices.len() as f64
            ));
        }
    }
    out
}
