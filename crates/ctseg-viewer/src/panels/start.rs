//! The start screen shown before a CT is open: open, sample data, recent files.

use std::path::PathBuf;

use eframe::egui::{self, RichText};

use crate::command::Command;
use crate::dialogs::DialogPurpose;

/// The start screen.
pub fn show(ui: &mut egui::Ui, recent: &[PathBuf]) -> Vec<Command> {
    let mut out = Vec::new();
    ui.vertical_centered(|ui| {
        ui.add_space(60.0);
        ui.heading(RichText::new("ctseg").size(32.0));
        ui.label("CT organ segmentation workstation");
        ui.add_space(20.0);
        if ui.button("Open CT…").clicked() {
            out.push(Command::Dialog(DialogPurpose::OpenCt));
        }
        if ui.button("Open DICOM or subject folder…").clicked() {
            out.push(Command::FolderDialog(DialogPurpose::OpenCt));
        }
        if ui.button("Sample data").clicked() {
            out.push(Command::OpenSample);
        }
        ui.label(RichText::new("…or drop a file or folder here").weak());
        if !recent.is_empty() {
            ui.add_space(20.0);
            ui.label(RichText::new("Recent").strong());
            for p in recent {
                if ui.link(p.display().to_string()).clicked() {
                    out.push(Command::OpenCt(p.clone()));
                }
            }
        }
    });
    out
}
