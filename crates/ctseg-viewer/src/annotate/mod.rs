//! The annotator in the viewer: an editable layer (shown in the ground-truth slot)
//! started empty, from the GT or from the prediction; brush, eraser, flood fill,
//! threshold paint, polygon and lasso in every view; fill-between-slices; undo/redo;
//! safe saves, autosave to a recovery file with a restore offer on the next start, a
//! question before quitting with unsaved edits; and the correct-and-retrain loop (add
//! the case to a training set, fine-tune from the current model, re-predict, Dice
//! before/after).

mod edit;
mod input;
mod panel;
mod persist;
mod retrain;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use eframe::egui;

use ctseg_core::annotate::recovery::{Recovery, default_recovery_dir, list_recoveries};
use ctseg_core::annotate::{EditSession, EditSource};
use ctseg_core::slicing::Axis;
use ctseg_core::study::LabelLayer;

pub(super) use input::{draw_overlay, view_input};
pub(super) use panel::{modals, panel};

/// An editing tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// Left click moves the crosshair (no editing).
    Navigate,
    /// Round brush (Ctrl: erase).
    Brush,
    /// Round eraser.
    Eraser,
    /// Flood fill of the clicked region within the slice.
    Fill,
    /// Click the corners, double-click or Enter to fill.
    Polygon,
    /// Drag around a region; it is filled on release.
    Lasso,
}

impl Tool {
    /// All tools, in toolbar order.
    pub const ALL: [Tool; 6] = [
        Tool::Navigate,
        Tool::Brush,
        Tool::Eraser,
        Tool::Fill,
        Tool::Polygon,
        Tool::Lasso,
    ];

    /// Name shown on its button.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Navigate => "Navigate",
            Tool::Brush => "Brush",
            Tool::Eraser => "Eraser",
            Tool::Fill => "Fill",
            Tool::Polygon => "Polygon",
            Tool::Lasso => "Lasso",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Tool::Navigate => "Left click moves the crosshair (V)",
            Tool::Brush => "Paint the selected structure; hold Ctrl to erase; [ and ] resize (B)",
            Tool::Eraser => "Erase; [ and ] resize (E)",
            Tool::Fill => "Fill the clicked region of this slice; Ctrl erases it (F)",
            Tool::Polygon => "Click corners; double-click or Enter fills, Esc cancels (P)",
            Tool::Lasso => "Drag around a region; it is filled on release (L)",
        }
    }
}

/// Where the fine-tune loop stands.
#[derive(Debug, Clone, PartialEq)]
pub enum FineTuneStage {
    /// The training run is going.
    Training,
    /// Re-predicting the CT with the new checkpoint.
    Predicting,
    /// Waiting for the comparison with the corrected layer.
    Comparing,
    /// Finished: per structure `(label, Dice before, Dice after)`.
    Done(Vec<(u8, Option<f64>, Option<f64>)>),
    /// Something failed.
    Failed(String),
}

/// The fine-tune loop's state.
#[derive(Debug, Clone)]
pub struct FineTune {
    /// Its run folder.
    pub run_dir: PathBuf,
    /// Where it stands.
    pub stage: FineTuneStage,
    /// Per label: Dice of the old prediction against the corrected layer.
    pub before: Vec<Option<f64>>,
}

/// A stroke in progress in one view.
#[derive(Debug, Clone, Copy)]
struct ActiveStroke {
    axis: Axis,
    index: usize,
    last: (f32, f32),
    /// The view it was begun in (two views can share an axis, e.g. GT | Pred).
    view: Option<egui::Id>,
}

/// What a modal question is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    /// The window was asked to close with unsaved edits.
    Quit,
    /// "Stop editing" with unsaved edits.
    StopEditing,
}

/// State of the annotator.
pub struct Annotator {
    /// The editing session (the edited layer is `app.gt`).
    pub session: Option<EditSession>,
    /// Current tool.
    pub tool: Tool,
    /// Brush radius in pixels (along the finer pixel side).
    pub radius: f32,
    /// Leave other structures alone.
    pub protect: bool,
    /// Limit painting to an HU range.
    pub threshold: bool,
    /// HU range for threshold paint.
    pub hu_range: (i16, i16),
    /// Memory bound of the undo history in bytes.
    pub history_limit: usize,
    /// The ground truth the edited layer replaced (restored by Stop editing).
    replaced_gt: Option<Arc<LabelLayer>>,
    stroke: Option<ActiveStroke>,
    /// Polygon or lasso points (pixel coordinates) and their view and slice.
    pub outline: Vec<(f32, f32)>,
    outline_view: Option<(Axis, usize)>,
    /// Folder of recovery files.
    pub recovery_dir: PathBuf,
    /// Autosave interval.
    pub autosave_every: Duration,
    last_autosave: Instant,
    autosave_rx: Option<Receiver<(u64, Result<Recovery, String>)>>,
    /// Recovery files being written for CTs that were closed with unsaved edits:
    /// the CT's name and the result, reported as a message.
    departed_tx: crossbeam_channel::Sender<(String, Result<Recovery, String>)>,
    departed_rx: Receiver<(String, Result<Recovery, String>)>,
    /// Background recovery writers (autosave and closed CTs), joined at exit so that
    /// quitting never cuts a recovery file short.
    writers: Vec<std::thread::JoinHandle<()>>,
    /// Recovery files offered on start.
    pub offered: Vec<Recovery>,
    restore_after_ct: Option<Recovery>,
    /// Last save target and format (`true`: per-structure folder), for Ctrl+S.
    pub save_target: Option<(PathBuf, bool)>,
    pending_save: Option<(PathBuf, u64)>,
    /// An open question.
    pub question: Option<Question>,
    allow_close: bool,
    /// Training-set folder for "Add to training set".
    pub dataset_text: String,
    /// The training set the current case was added to (enables Fine-tune).
    pub dataset_ready: Option<PathBuf>,
    /// Epochs of a fine-tune run.
    pub fine_tune_epochs: usize,
    /// The fine-tune loop.
    pub fine_tune: Option<FineTune>,
    /// Start editing from this source once the startup files are loaded.
    pub edit_when_loaded: Option<EditSource>,
    /// Folder that fine-tune runs are written into.
    pub fine_tune_runs: PathBuf,
}

impl Annotator {
    /// Defaults, with recovery files in `recovery_dir`.
    pub fn new(recovery_dir: Option<PathBuf>) -> Self {
        let recovery_dir = recovery_dir.unwrap_or_else(default_recovery_dir);
        let offered = list_recoveries(&recovery_dir);
        let (departed_tx, departed_rx) = crossbeam_channel::unbounded();
        Annotator {
            session: None,
            tool: Tool::Brush,
            radius: 4.0,
            protect: true,
            threshold: false,
            hu_range: (-100, 200),
            history_limit: ctseg_core::annotate::undo::DEFAULT_HISTORY_BYTES,
            replaced_gt: None,
            stroke: None,
            outline: Vec::new(),
            outline_view: None,
            recovery_dir,
            autosave_every: Duration::from_secs(60),
            last_autosave: Instant::now(),
            autosave_rx: None,
            departed_tx,
            departed_rx,
            writers: Vec::new(),
            offered,
            restore_after_ct: None,
            save_target: None,
            pending_save: None,
            question: None,
            allow_close: false,
            dataset_text: ctseg_core::paths::corrections_dir().display().to_string(),
            dataset_ready: None,
            fine_tune_epochs: 5,
            fine_tune: None,
            edit_when_loaded: None,
            fine_tune_runs: PathBuf::from("runs"),
        }
    }

    /// Whether a layer is being edited.
    pub fn is_editing(&self) -> bool {
        self.session.is_some()
    }

    /// Unsaved edits exist.
    pub fn is_dirty(&self) -> bool {
        self.session.as_ref().is_some_and(EditSession::is_dirty)
    }

    /// The tool edits (a session is open and the tool is not Navigate).
    pub fn tool_active(&self) -> bool {
        self.session.is_some() && self.tool != Tool::Navigate
    }
}
