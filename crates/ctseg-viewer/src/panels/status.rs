//! The bottom of the window: the latest messages (dismissable) and the status bar
//! (running job with progress and Cancel, the voxel under the mouse, frame time).

use eframe::egui::{self, Color32, RichText};

use crate::app::{Busy, Level, Message};
use crate::command::Command;

/// What the status bar shows.
#[derive(Debug, Clone, Default)]
pub struct StatusView {
    /// The running worker job or background task.
    pub busy: Option<Busy>,
    /// Whether the running work can be cancelled from here.
    pub cancellable: bool,
    /// Voxel, world position, HU and structures under the mouse.
    pub hover: Option<String>,
    /// Median and maximum UI frame time (ms), when shown.
    pub frame_time: Option<(f64, f64)>,
}

/// The three newest messages, newest first, each with a dismiss button.
pub fn messages(ui: &mut egui::Ui, messages: &[Message]) -> Vec<Command> {
    let mut out = Vec::new();
    for (i, m) in messages.iter().enumerate().rev().take(3) {
        ui.horizontal(|ui| {
            let color = match m.level {
                Level::Info => ui.visuals().text_color(),
                Level::Warning => Color32::from_rgb(230, 180, 60),
                Level::Error => Color32::from_rgb(240, 90, 80),
            };
            if ui.small_button("×").on_hover_text("Dismiss").clicked() {
                out.push(Command::DismissMessage(i));
            }
            // Wrapped, never cut at the window edge: an error names a file and
            // the reason, and both must be readable whole.
            ui.add(
                egui::Label::new(RichText::new(&m.text).color(color))
                    .wrap_mode(egui::TextWrapMode::Wrap),
            );
        });
    }
    out
}

/// The status bar.
pub fn status_bar(ui: &mut egui::Ui, view: &StatusView) -> Vec<Command> {
    let mut out = Vec::new();
    ui.horizontal(|ui| {
        if let Some(b) = &view.busy {
            ui.spinner();
            ui.label(&b.what);
            if let Some((done, total)) = b.progress {
                ui.add(
                    egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                        .desired_width(160.0)
                        .text(format!("{done}/{total}")),
                );
            }
            if view.cancellable && ui.button("Cancel").clicked() {
                out.push(Command::CancelJob);
            }
            ui.separator();
        }
        if let Some(text) = &view.hover {
            ui.monospace(text);
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if let Some((median, max)) = view.frame_time {
                ui.small(format!("UI {median:.1} ms/frame (max {max:.1})"));
            }
        });
    });
    out
}
