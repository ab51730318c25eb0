//! The viewer's plain state types: what to open at start, the tab, messages, the
//! running job, frame times.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ctseg_core::slicing::Axis;
use ctseg_core::window::Window;

use crate::settings::{CompareMode, Layout};

/// What to open when the app starts (from `ctseg view`).
#[derive(Debug, Clone, Default)]
pub struct Startup {
    /// CT file, DICOM folder or subject folder.
    pub ct: Option<PathBuf>,
    /// Ground-truth segmentation.
    pub gt: Option<PathBuf>,
    /// Predicted segmentation.
    pub pred: Option<PathBuf>,
    /// Model for the Predict button.
    pub model: Option<PathBuf>,
    /// Start with the sample phantom.
    pub sample: bool,
    /// View arrangement to start with.
    pub layout: Option<Layout>,
    /// Main view.
    pub axis: Option<Axis>,
    /// Overlay or difference view.
    pub compare: Option<CompareMode>,
    /// Window preset name.
    pub window: Option<Window>,
    /// Structure to select (and jump to) once loaded.
    pub select: Option<u8>,
    /// Run folders to open on the training dashboard (the app starts on it).
    pub runs: Vec<PathBuf>,
    /// Dataset to scan in the training form (the app starts on the Training tab).
    pub train_data: Option<PathBuf>,
    /// Tiny CPU settings in the training form.
    pub train_tiny: bool,
    /// Start training with the form's settings at once.
    pub train_start: bool,
    /// Run folder for that training run.
    pub train_out: Option<PathBuf>,
    /// Folder of recovery files (default: beside the cache folder).
    pub recovery_dir: Option<PathBuf>,
    /// Start editing once everything named here is loaded.
    pub edit: Option<ctseg_core::annotate::EditSource>,
    /// Autosave interval for unsaved edits (default 60 s).
    pub autosave_every: Option<Duration>,
    /// Open the PACS browser on this server and list its studies.
    pub pacs: Option<crate::pacs::PacsStartup>,
}

/// Which tab the window shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Slices, overlays and comparison.
    Viewer,
    /// Launch, watch and compare training runs.
    Training,
}

/// How serious a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Information.
    Info,
    /// Something was not as expected but work went on.
    Warning,
    /// A job failed.
    Error,
}

/// A message shown to the user.
#[derive(Debug, Clone)]
pub struct Message {
    /// Severity.
    pub level: Level,
    /// Text.
    pub text: String,
}

/// The running job.
#[derive(Debug, Clone)]
pub struct Busy {
    /// What it does.
    pub what: String,
    /// Progress `(done, total)` if known.
    pub progress: Option<(usize, usize)>,
    /// When it started.
    pub since: Instant,
}

/// UI-thread time per frame, for the status bar and benchmarks.
#[derive(Debug, Default, Clone)]
pub struct FrameTimes {
    recent: VecDeque<f64>,
}

impl FrameTimes {
    const KEEP: usize = 240;

    pub(crate) fn push(&mut self, ms: f64) {
        if self.recent.len() == Self::KEEP {
            self.recent.pop_front();
        }
        self.recent.push_back(ms);
    }

    /// Median and maximum of the recent frames in ms.
    pub fn summary(&self) -> Option<(f64, f64)> {
        if self.recent.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = self.recent.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        Some((v[v.len() / 2], v[v.len() - 1]))
    }

    /// All recent samples in ms.
    pub fn samples(&self) -> Vec<f64> {
        self.recent.iter().copied().collect()
    }
}
