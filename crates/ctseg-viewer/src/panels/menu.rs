//! The menu bar (File, Edit, View, the Viewer/Training tabs, Help) and the viewer's
//! toolbar (window/level, layout, axis, comparison, layer styles). Layout, axis and
//! comparison are picked by the same functions in the View menu and the toolbar.

use std::path::PathBuf;

use eframe::egui;

use ctseg_core::slicing::Axis;
use ctseg_core::study::LayerKind;
use ctseg_core::window::{PRESETS, Window};

use crate::app::Mode;
use crate::command::Command;
use crate::dialogs::DialogPurpose;
use crate::pacs::{PacsCommand, SendWhat};
use crate::settings::{CompareMode, Layout, Settings};

/// What the menu bar needs to know about the app.
#[derive(Debug, Clone, Default)]
pub struct MenuView {
    /// A CT is open.
    pub has_ct: bool,
    /// A prediction layer is open.
    pub has_pred: bool,
    /// Why the open CT cannot take a DICOM Segmentation (`None`: it can).
    pub dicom_seg_refusal: Option<String>,
    /// Why Send to PACS is not possible (no server, or no DICOM-SEG possible).
    pub pacs_send_refusal: Option<String>,
    /// A layer is being edited.
    pub editing: bool,
    /// Description of the step Undo would revert.
    pub undo: Option<String>,
    /// Description of the step Redo would apply.
    pub redo: Option<String>,
    /// A training run is going.
    pub training: bool,
}

/// How a picker shows its choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PickerStyle {
    /// Radio buttons (in a menu).
    Radio,
    /// Selectable buttons (in the toolbar).
    Buttons,
}

fn pick<T: PartialEq + Copy>(
    ui: &mut egui::Ui,
    style: PickerStyle,
    value: &mut T,
    choice: T,
    text: &str,
) {
    match style {
        PickerStyle::Radio => ui.radio_value(value, choice, text),
        PickerStyle::Buttons => ui.selectable_value(value, choice, text),
    };
}

/// Layout, main axis and overlay/difference choices, shared by the View menu and the
/// toolbar.
fn view_pickers(ui: &mut egui::Ui, settings: &mut Settings, style: PickerStyle) {
    for layout in Layout::ALL {
        pick(ui, style, &mut settings.layout, layout, layout.name());
    }
    ui.separator();
    for axis in Axis::ALL {
        pick(ui, style, &mut settings.main_axis, axis, axis.name());
    }
    ui.separator();
    pick(
        ui,
        style,
        &mut settings.compare,
        CompareMode::Overlay,
        "Overlay",
    );
    let difference = match style {
        PickerStyle::Radio => "Difference (TP/FP/FN)",
        PickerStyle::Buttons => "Difference",
    };
    pick(
        ui,
        style,
        &mut settings.compare,
        CompareMode::Difference,
        difference,
    );
}

/// The menu bar. Settings and the tab are changed in place; everything else comes
/// back as commands.
pub fn menu_bar(
    ui: &mut egui::Ui,
    settings: &mut Settings,
    mode: &mut Mode,
    view: &MenuView,
) -> Vec<Command> {
    let mut out = Vec::new();
    egui::MenuBar::new().ui(ui, |ui| {
        ui.menu_button("File", |ui| file_menu(ui, view, &settings.recent, &mut out));
        ui.menu_button("Edit", |ui| edit_menu(ui, view, &mut out));
        ui.menu_button("View", |ui| {
            view_pickers(ui, settings, PickerStyle::Radio);
            ui.separator();
            if ui.button("Reset zoom").clicked() {
                out.push(Command::ResetZoom);
            }
            ui.checkbox(&mut settings.show_frame_time, "Show frame time");
        });
        ui.separator();
        ui.selectable_value(mode, Mode::Viewer, "Viewer");
        if ui
            .selectable_label(*mode == Mode::Training, "Training")
            .clicked()
        {
            *mode = Mode::Training;
        }
        if view.training {
            ui.spinner().on_hover_text("A training run is going");
        }
        ui.separator();
        ui.menu_button("Help", |ui| {
            ui.label(
                "Wheel / Up, Down: slice · PgUp/PgDn: 10 slices · Ctrl+wheel: zoom\n\
                 Left click/drag: crosshair · Right drag: window/level\n\
                 Middle or Shift+left drag: pan · Double-click: reset zoom\n\
                 Hold H: hide overlays · N: next GT/Pred disagreement\n\
                 Editing: B brush · E eraser · F fill · P polygon · L lasso · V navigate\n\
                 [ ] brush size · Ctrl+drag: erase · Ctrl+Z undo ·\n\
                 Ctrl+Shift+Z redo · Ctrl+S save · Enter/Esc: close/cancel polygon",
            );
        });
    });
    out
}

fn file_menu(ui: &mut egui::Ui, view: &MenuView, recent: &[PathBuf], out: &mut Vec<Command>) {
    if ui.button("Open CT…").clicked() {
        out.push(Command::Dialog(DialogPurpose::OpenCt));
    }
    if ui.button("Open DICOM or subject folder…").clicked() {
        out.push(Command::FolderDialog(DialogPurpose::OpenCt));
    }
    if ui.button("Open from PACS…").clicked() {
        out.push(Command::Pacs(PacsCommand::Show));
    }
    ui.separator();
    let items = [
        (
            view.has_ct,
            "Open ground truth…",
            DialogPurpose::OpenLayer(LayerKind::GroundTruth),
        ),
        (
            view.has_ct,
            "Open prediction…",
            DialogPurpose::OpenLayer(LayerKind::Prediction),
        ),
    ];
    for (enabled, text, purpose) in items {
        if ui.add_enabled(enabled, egui::Button::new(text)).clicked() {
            out.push(Command::Dialog(purpose));
        }
    }
    ui.separator();
    let items = [
        (
            view.has_pred,
            "Save prediction…",
            DialogPurpose::SavePrediction {
                per_structure: false,
            },
        ),
        (
            view.has_pred,
            "Save prediction as folder…",
            DialogPurpose::SavePrediction {
                per_structure: true,
            },
        ),
    ];
    for (enabled, text, purpose) in items {
        if ui.add_enabled(enabled, egui::Button::new(text)).clicked() {
            out.push(Command::Dialog(purpose));
        }
    }
    dicom_seg_item(
        ui,
        view,
        view.has_pred,
        "Save prediction as DICOM-SEG…",
        DialogPurpose::SavePredictionDicomSeg,
        out,
    );
    pacs_send_item(
        ui,
        view,
        view.has_pred,
        "Send prediction to PACS",
        SendWhat::Prediction,
        out,
    );
    if ui
        .add_enabled(view.has_ct, egui::Button::new("Export figure…"))
        .clicked()
    {
        out.push(Command::Dialog(DialogPurpose::ExportFigure));
    }
    ui.separator();
    ui.menu_button("Recent", |ui| {
        if recent.is_empty() {
            ui.label("(none)");
        }
        for p in recent {
            if ui.button(p.display().to_string()).clicked() {
                out.push(Command::OpenCt(p.clone()));
            }
        }
    });
    if ui.button("Sample data").clicked() {
        out.push(Command::OpenSample);
    }
    ui.separator();
    if ui.button("Open run folder…").clicked() {
        out.push(Command::FolderDialog(DialogPurpose::OpenRun));
    }
}

fn edit_menu(ui: &mut egui::Ui, view: &MenuView, out: &mut Vec<Command>) {
    let editing = view.editing;
    let undo_label = view
        .undo
        .as_ref()
        .map_or("Undo".to_string(), |d| format!("Undo {d}"));
    if ui
        .add_enabled(
            editing && view.undo.is_some(),
            egui::Button::new(undo_label).shortcut_text("Ctrl+Z"),
        )
        .clicked()
    {
        out.push(Command::Undo);
    }
    let redo_label = view
        .redo
        .as_ref()
        .map_or("Redo".to_string(), |d| format!("Redo {d}"));
    if ui
        .add_enabled(
            editing && view.redo.is_some(),
            egui::Button::new(redo_label).shortcut_text("Ctrl+Shift+Z"),
        )
        .clicked()
    {
        out.push(Command::Redo);
    }
    ui.separator();
    if ui
        .add_enabled(
            editing,
            egui::Button::new("Save segmentation").shortcut_text("Ctrl+S"),
        )
        .clicked()
    {
        out.push(Command::SaveEditsAgain);
    }
    for (text, per_structure) in [
        ("Save segmentation as…", false),
        ("Save segmentation as folder…", true),
    ] {
        if ui.add_enabled(editing, egui::Button::new(text)).clicked() {
            out.push(Command::Dialog(DialogPurpose::SaveEdits { per_structure }));
        }
    }
    dicom_seg_item(
        ui,
        view,
        editing,
        "Save segmentation as DICOM-SEG…",
        DialogPurpose::SaveEditsDicomSeg,
        out,
    );
    pacs_send_item(
        ui,
        view,
        editing,
        "Send segmentation to PACS",
        SendWhat::Edits,
        out,
    );
}

/// A "Send … to PACS" item: disabled, saying why, when there is no server or the CT
/// cannot take a DICOM Segmentation.
fn pacs_send_item(
    ui: &mut egui::Ui,
    view: &MenuView,
    enabled: bool,
    text: &str,
    what: SendWhat,
    out: &mut Vec<Command>,
) {
    let possible = enabled && view.pacs_send_refusal.is_none();
    let mut response = ui
        .add_enabled(possible, egui::Button::new(text))
        .on_hover_text("Write a DICOM Segmentation and store it on the server the CT came from (else the selected server)");
    if let Some(why) = &view.pacs_send_refusal {
        response = response.on_disabled_hover_text(format!("Not possible: {why}"));
    }
    if response.clicked() {
        out.push(Command::Pacs(PacsCommand::Send(what)));
    }
}

/// A "… as DICOM-SEG" item: disabled, saying why, when the CT cannot take one.
fn dicom_seg_item(
    ui: &mut egui::Ui,
    view: &MenuView,
    enabled: bool,
    text: &str,
    purpose: DialogPurpose,
    out: &mut Vec<Command>,
) {
    let possible = enabled && view.dicom_seg_refusal.is_none();
    let mut response = ui.add_enabled(possible, egui::Button::new(text));
    if let Some(why) = &view.dicom_seg_refusal {
        response = response.on_disabled_hover_text(format!("Not possible: {why}"));
    }
    if response.clicked() {
        out.push(Command::Dialog(purpose));
    }
}

/// Name of the window preset `w` is, or "Custom".
fn preset_name(w: Window) -> String {
    PRESETS
        .iter()
        .find(|p| p.window == w)
        .map_or_else(|| "Custom".to_string(), |p| p.name.to_string())
}

/// The viewer toolbar: window/level, the view pickers and the layer styles. It only
/// edits settings.
pub fn toolbar(ui: &mut egui::Ui, settings: &mut Settings) {
    ui.horizontal_wrapped(|ui| {
        egui::ComboBox::from_label("Window")
            .selected_text(preset_name(settings.window))
            .show_ui(ui, |ui| {
                for p in PRESETS {
                    ui.selectable_value(&mut settings.window, p.window, p.name);
                }
            });
        let l = ui.label("Level");
        ui.add(egui::DragValue::new(&mut settings.window.center).speed(2.0))
            .labelled_by(l.id);
        let w = ui.label("Width");
        ui.add(
            egui::DragValue::new(&mut settings.window.width)
                .speed(2.0)
                .range(1.0..=8000.0),
        )
        .labelled_by(w.id);
        ui.separator();
        view_pickers(ui, settings, PickerStyle::Buttons);
    });
    ui.horizontal_wrapped(|ui| {
        for (kind, show, style) in [
            (
                LayerKind::GroundTruth,
                &mut settings.show_gt,
                &mut settings.gt_style,
            ),
            (
                LayerKind::Prediction,
                &mut settings.show_pred,
                &mut settings.pred_style,
            ),
        ] {
            ui.checkbox(show, kind.name());
            egui::ComboBox::from_id_salt(("mode", kind.name()))
                .selected_text(style.mode.name())
                .width(110.0)
                .show_ui(ui, |ui| {
                    for m in ctseg_core::render::OverlayMode::ALL {
                        ui.selectable_value(&mut style.mode, m, m.name());
                    }
                })
                .response
                .on_hover_text(format!("{} style", kind.name()));
            ui.add(
                egui::Slider::new(&mut style.opacity, 0.0..=1.0)
                    .text("opacity")
                    .fixed_decimals(2),
            );
            ui.separator();
        }
    });
}
