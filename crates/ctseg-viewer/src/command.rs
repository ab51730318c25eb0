//! What panels and background tasks ask the app shell to do. Panels read the state
//! they are handed and return commands; tasks return them when they finish; the
//! shell applies them after the frame ([`crate::app::ViewerApp::apply`]), so no
//! panel reaches into the whole app.

use std::path::PathBuf;

use ctseg_core::study::LayerKind;

use crate::app::Level;
use crate::dialogs::DialogPurpose;

/// One request to the app shell.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Show a message.
    Message(Level, String),
    /// Dismiss message `index` (oldest first).
    DismissMessage(usize),
    /// Ask for a file (or a folder, for folder purposes) with a native dialog.
    Dialog(DialogPurpose),
    /// Ask for a folder to open (DICOM series or subject folder).
    FolderDialog(DialogPurpose),
    /// A dialog was answered with a path.
    DialogAnswered(DialogPurpose, PathBuf),
    /// Open a CT file, DICOM folder or subject folder.
    OpenCt(PathBuf),
    /// Open the generated sample phantom.
    OpenSample,
    /// Open a segmentation as a layer.
    OpenLayer(PathBuf, LayerKind),
    /// Select a structure and move the crosshair to where it is largest.
    SelectStructure(u8),
    /// Show (`true`) or hide every structure.
    SetAllVisible(bool),
    /// Undo the last edit.
    Undo,
    /// Redo the last undone edit.
    Redo,
    /// Save the edited layer where it was saved before (or ask where).
    SaveEditsAgain,
    /// Reset zoom and pan of every view.
    ResetZoom,
    /// Run the model on the open CT.
    Predict,
    /// Stop the running worker job.
    CancelJob,
    /// Scan this dataset in the Training tab's form.
    UseDataset(PathBuf),
    /// The probe of a backend finished: its adapter, or why it cannot be opened.
    BackendProbed(ctseg_ml::backend::BackendKind, Result<String, String>),
    /// A run's sample figure was decoded (`None`: not readable yet).
    SampleDecoded {
        /// The run folder.
        run: PathBuf,
        /// Its epoch.
        epoch: usize,
        /// The pixels.
        image: Option<std::sync::Arc<eframe::egui::ColorImage>>,
    },
    /// A file or folder was dropped on the window; `labels` when it is a `uint8`
    /// NIfTI (a segmentation rather than a CT).
    OpenDropped {
        /// What was dropped.
        path: PathBuf,
        /// Whether it reads as a label volume.
        labels: bool,
    },
    /// A PACS browser request, or the answer of one of its tasks.
    Pacs(crate::pacs::PacsCommand),
}

impl Command {
    /// An information message.
    pub fn info(text: String) -> Self {
        Command::Message(Level::Info, text)
    }

    /// An error message.
    pub fn error(text: String) -> Self {
        Command::Message(Level::Error, text)
    }
}
