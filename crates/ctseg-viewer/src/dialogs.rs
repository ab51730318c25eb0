//! Native file dialogs (rfd): what each dialog is for and how it asks. Dialogs run
//! as background [`crate::tasks`]; the answer comes back as
//! [`Command::DialogAnswered`].

use std::path::PathBuf;

use ctseg_core::study::LayerKind;

use crate::command::Command;

/// What a file dialog was opened for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogPurpose {
    /// Open a CT.
    OpenCt,
    /// Open a segmentation as a layer.
    OpenLayer(LayerKind),
    /// Choose a weights file for the model panel.
    ChooseModelFile,
    /// Choose a run or checkpoint folder for the model panel.
    ChooseModelFolder,
    /// Save the prediction (multilabel file or per-structure folder).
    SavePrediction {
        /// A folder of per-structure masks instead of one file.
        per_structure: bool,
    },
    /// Save the prediction as a DICOM Segmentation over the CT's series.
    SavePredictionDicomSeg,
    /// Save the edited layer as a DICOM Segmentation (segments marked MANUAL).
    SaveEditsDicomSeg,
    /// Choose the training dataset.
    ChooseDataset,
    /// Choose the folder of a new run.
    ChooseRunDir,
    /// Open a run folder on the dashboard.
    OpenRun,
    /// Export the dashboard's curves as PNG.
    ExportPlots,
    /// Export the primary run's metrics as CSV.
    ExportCsv,
    /// Export the four-panel figure.
    ExportFigure,
    /// Save the edited layer.
    SaveEdits {
        /// A folder of per-structure masks instead of one file.
        per_structure: bool,
    },
}

/// Show the native dialog for `purpose` (blocking: call it from a task) starting in
/// `start_dir`; `None` when cancelled.
pub fn pick(purpose: DialogPurpose, start_dir: Option<PathBuf>) -> Option<PathBuf> {
    let mut d = rfd::FileDialog::new();
    if let Some(dir) = start_dir {
        d = d.set_directory(dir);
    }
    let nifti = ["nii", "gz"];
    match purpose {
        DialogPurpose::OpenCt => d.add_filter("NIfTI", &nifti).pick_file(),
        DialogPurpose::OpenLayer(_) => d
            .add_filter("Segmentation (NIfTI, DICOM-SEG)", &["nii", "gz", "dcm"])
            .add_filter("All files", &["*"])
            .pick_file(),
        DialogPurpose::SavePredictionDicomSeg => d
            .add_filter("DICOM", &["dcm"])
            .set_file_name("prediction.dcm")
            .save_file(),
        DialogPurpose::SaveEditsDicomSeg => d
            .add_filter("DICOM", &["dcm"])
            .set_file_name("segmentation.dcm")
            .save_file(),
        DialogPurpose::ChooseModelFile => d
            .add_filter("Weights", &["safetensors", "pt", "pth"])
            .pick_file(),
        DialogPurpose::ChooseModelFolder => d.pick_folder(),
        DialogPurpose::SavePrediction {
            per_structure: false,
        } => d
            .add_filter("NIfTI", &nifti)
            .set_file_name("prediction.nii.gz")
            .save_file(),
        DialogPurpose::SavePrediction {
            per_structure: true,
        } => d.pick_folder(),
        DialogPurpose::SaveEdits {
            per_structure: false,
        } => d
            .add_filter("NIfTI", &nifti)
            .set_file_name("segmentation.nii.gz")
            .save_file(),
        DialogPurpose::SaveEdits {
            per_structure: true,
        } => d.pick_folder(),
        DialogPurpose::ExportFigure => d
            .add_filter("PNG", &["png"])
            .set_file_name("figure.png")
            .save_file(),
        DialogPurpose::ChooseDataset | DialogPurpose::ChooseRunDir | DialogPurpose::OpenRun => {
            d.pick_folder()
        }
        DialogPurpose::ExportPlots => d
            .add_filter("PNG", &["png"])
            .set_file_name("training.png")
            .save_file(),
        DialogPurpose::ExportCsv => d
            .add_filter("CSV", &["csv"])
            .set_file_name("metrics.csv")
            .save_file(),
    }
}

/// Show a folder dialog (blocking: call it from a task).
pub fn pick_folder() -> Option<PathBuf> {
    rfd::FileDialog::new().pick_folder()
}

/// The command a dialog's answer becomes (nothing when cancelled).
pub fn answered(purpose: DialogPurpose, path: Option<PathBuf>) -> Vec<Command> {
    path.map(|p| Command::DialogAnswered(purpose, p))
        .into_iter()
        .collect()
}
