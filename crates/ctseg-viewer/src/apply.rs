//! The app shell's side of commands: applying what panels and tasks ask for, and
//! starting the background tasks behind dialogs, exports and dropped files.

use std::path::{Path, PathBuf};

use eframe::egui;

use ctseg_core::study::LayerKind;
use ctseg_ml::train::plots::{RunCurves, write_comparison_png};
use ctseg_ml::train::{EpochRecord, RunLog};

use crate::app::{Level, ViewerApp};
use crate::command::Command;
use crate::dialogs::{self, DialogPurpose};

impl ViewerApp {
    /// Apply one command (after the frame that produced it, or when its task ends).
    pub fn apply(&mut self, command: Command) {
        match command {
            Command::Message(level, text) => self.message(level, text),
            Command::DismissMessage(i) => self.dismiss_message(i),
            Command::Dialog(purpose) => self.dialog(purpose),
            Command::FolderDialog(purpose) => self.folder_dialog(purpose),
            Command::DialogAnswered(purpose, path) => self.dialog_done(purpose, path),
            Command::OpenCt(path) => self.open_ct(path),
            Command::OpenSample => self.open_sample(),
            Command::OpenLayer(path, kind) => self.open_layer(path, kind),
            Command::SelectStructure(label) => self.select_structure(label),
            Command::SetAllVisible(visible) => self.set_all_visible(visible),
            Command::Undo => self.undo(),
            Command::Redo => self.redo(),
            Command::SaveEditsAgain => self.save_edits_again(),
            Command::ResetZoom => self.zoom.clear(),
            Command::Predict => self.predict(),
            Command::CancelJob => self.cancel(),
            Command::UseDataset(dir) => self.training.set_dataset(&dir, &self.ctx.clone()),
            Command::SampleDecoded { run, epoch, image } => {
                let ctx = self.ctx.clone();
                self.training.sample_decoded(&ctx, &run, epoch, image);
            }
            Command::BackendProbed(kind, result) => self.training.adapter = Some((kind, result)),
            Command::Pacs(command) => self.apply_pacs(command),
            Command::OpenDropped { path, labels } => {
                if labels && self.ct().is_some() {
                    let kind = if self.gt_ref().is_none() {
                        LayerKind::GroundTruth
                    } else {
                        LayerKind::Prediction
                    };
                    self.open_layer(path, kind);
                } else {
                    self.open_ct(path);
                }
            }
        }
    }

    /// Open the native file dialog for `purpose` (as a task; the answer comes back as
    /// a command).
    pub(crate) fn dialog(&mut self, purpose: DialogPurpose) {
        let start_dir = self
            .ct()
            .and_then(|c| c.path.as_ref())
            .and_then(|p| p.parent().map(Path::to_path_buf));
        self.tasks.spawn("File dialog", move |_| {
            dialogs::answered(purpose, dialogs::pick(purpose, start_dir))
        });
    }

    /// A folder dialog for opening (DICOM series or subject folder).
    pub(crate) fn folder_dialog(&mut self, purpose: DialogPurpose) {
        self.tasks.spawn("Folder dialog", move |_| {
            dialogs::answered(purpose, dialogs::pick_folder())
        });
    }

    fn dialog_done(&mut self, purpose: DialogPurpose, path: PathBuf) {
        match purpose {
            DialogPurpose::OpenCt => self.open_ct(path),
            DialogPurpose::OpenLayer(kind) => self.open_layer(path, kind),
            DialogPurpose::ChooseModelFile | DialogPurpose::ChooseModelFolder => {
                self.settings.model = Some(path)
            }
            DialogPurpose::SavePrediction { per_structure } => {
                self.save_prediction(path, per_structure)
            }
            DialogPurpose::SavePredictionDicomSeg => {
                self.save_prediction(with_dcm_extension(path), false)
            }
            DialogPurpose::SaveEditsDicomSeg => self.save_edits(with_dcm_extension(path), false),
            DialogPurpose::ExportFigure => self.export_figure(&path),
            DialogPurpose::SaveEdits { per_structure } => self.save_edits(path, per_structure),
            DialogPurpose::ChooseDataset => self.training.set_dataset(&path, &self.ctx.clone()),
            DialogPurpose::ChooseRunDir => {
                self.training.run_dir_text = path.display().to_string();
            }
            DialogPurpose::OpenRun => self.open_run(&path),
            DialogPurpose::ExportPlots => self.export_plots(&path),
            DialogPurpose::ExportCsv => self.export_csv(&path),
        }
    }

    /// Write the four-panel figure (CT | GT | Pred | overlay) of the main view, in the
    /// background.
    pub fn export_figure(&mut self, path: &Path) {
        let input = match crate::export_figure::capture(self) {
            Ok(input) => input,
            Err(e) => return self.message(Level::Error, format!("Export failed: {e:#}")),
        };
        let path = path.to_path_buf();
        self.tasks
            .spawn("Exporting figure", move |_| match input.write_png(&path) {
                Ok(()) => vec![Command::info(format!("Figure saved to {}", path.display()))],
                Err(e) => vec![Command::error(format!("Export failed: {e:#}"))],
            });
    }

    /// Export the shown runs' curves as one PNG, in the background.
    pub fn export_plots(&mut self, path: &Path) {
        let t = &self.training;
        let runs: Vec<(String, Vec<[f64; 2]>, Vec<EpochRecord>)> = t
            .runs
            .iter()
            .enumerate()
            .filter(|(i, r)| r.shown || t.primary == Some(*i))
            .map(|(_, r)| {
                (
                    r.log.name(),
                    RunLog::smoothed(&r.log.step_losses(), t.smoothing),
                    r.log.epochs.clone(),
                )
            })
            .collect();
        let path = path.to_path_buf();
        self.tasks.spawn("Exporting plots", move |_| {
            let curves: Vec<RunCurves<'_>> = runs
                .iter()
                .map(|(name, steps, epochs)| RunCurves {
                    name,
                    step_loss: steps,
                    epochs,
                })
                .collect();
            match write_comparison_png(&path, &curves) {
                Ok(()) => vec![Command::info(format!("Plots saved to {}", path.display()))],
                Err(e) => vec![Command::error(format!("Export failed: {e}"))],
            }
        });
    }

    /// Export the primary run's metrics as CSV (epochs at `path`, steps beside it), in
    /// the background.
    pub fn export_csv(&mut self, path: &Path) {
        let Some(run) = self.training.primary_run() else {
            self.message(
                Level::Error,
                "Export failed: no run on the dashboard".into(),
            );
            return;
        };
        let log = run.log.clone();
        let path = path.to_path_buf();
        self.tasks
            .spawn("Exporting metrics", move |_| match log.write_csv(&path) {
                Ok(steps) => vec![Command::info(format!(
                    "Metrics saved to {} and {}",
                    path.display(),
                    steps.display()
                ))],
                Err(e) => vec![Command::error(format!("Export failed: {e}"))],
            });
    }

    /// Write the sample phantom dataset (4 subjects) into ctseg's folder, once, and
    /// scan it in the Training tab.
    pub fn write_sample_phantoms(&mut self) {
        let dir = ctseg_core::paths::sample_phantoms_dir();
        self.tasks.spawn("Writing sample phantoms", move |task| {
            if !dir.join("meta.csv").is_file() {
                let config = ctseg_core::phantom::PhantomConfig::default();
                let total = config.subjects;
                let mut done = 0;
                task.progress(0, total);
                let written = ctseg_core::phantom::write_dataset_with(&dir, &config, |_| {
                    done += 1;
                    task.progress(done, total);
                });
                if let Err(e) = written {
                    return vec![Command::error(format!(
                        "Could not write sample phantoms: {e}"
                    ))];
                }
            }
            vec![Command::UseDataset(dir)]
        });
    }

    /// Open the training form's backend in the background and report its adapter.
    pub fn probe_backend(&mut self, kind: ctseg_ml::backend::BackendKind) {
        self.tasks.spawn("Probing the backend", move |_| {
            let result = ctseg_ml::backend::select(kind)
                .map(|d| d.describe())
                .map_err(|e| e.to_string());
            vec![Command::BackendProbed(kind, result)]
        });
    }

    /// Files dropped on the window: a `uint8` NIfTI on an open CT becomes a layer,
    /// anything else is opened as a CT. The header is read in a task.
    pub(crate) fn handle_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if dropped.is_empty() {
            return;
        }
        self.tasks.spawn("Reading dropped files", move |_| {
            dropped
                .into_iter()
                .map(|path| {
                    // A file that cannot be read as NIfTI is opened as a CT, whose
                    // loader names the problem.
                    let labels =
                        ctseg_core::io::nifti::read_header(&path).is_ok_and(|(_, info)| {
                            info.datatype == ctseg_core::io::nifti::DataType::U8
                        });
                    Command::OpenDropped { path, labels }
                })
                .collect()
        });
    }
}

/// `path` ending in `.dcm` (what makes the worker write a DICOM Segmentation).
fn with_dcm_extension(path: PathBuf) -> PathBuf {
    if crate::worker::is_dcm(&path) {
        path
    } else {
        let mut name = path.into_os_string();
        name.push(".dcm");
        PathBuf::from(name)
    }
}
