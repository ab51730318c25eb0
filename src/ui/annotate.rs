//! The annotator in the viewer: an editable layer (shown in the ground-truth slot)
//! started empty, from the GT or from the prediction; brush, eraser, flood fill,
//! threshold paint, polygon and lasso in every view; fill-between-slices; undo/redo;
//! safe saves, autosave to a recovery file with a restore offer on the next start, a
//! question before quitting with unsaved edits; and the correct-and-retrain loop (add
//! the case to a training set, fine-tune from the current model, re-predict, Dice
//! before/after).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use eframe::egui::{self, Color32, Pos2, Rect, RichText, Stroke, Vec2};

use crate::annotate::recovery::{
    Recovery, RecoveryInfo, default_recovery_dir, find_recovery, list_recoveries, read_recovery,
    remove_recovery, write_recovery,
};
use crate::annotate::tools::{disc, flood_region, polygon, swept_disc};
use crate::annotate::{EditSession, EditSource, History, PaintRule, describe, editable_layer};
use crate::metrics::confusion_counts;
use crate::render::{Axis, SliceGrid};
use crate::structures::catalog;
use crate::viewdata::LabelLayer;
use crate::volume::Volume;
use crate::worker::{Job, LayerKind};

use super::app::{DialogPurpose, Level, ViewerApp};

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
        Annotator {
            session: None,
            tool: Tool::Brush,
            radius: 4.0,
            protect: true,
            threshold: false,
            hu_range: (-100, 200),
            history_limit: crate::annotate::history::DEFAULT_HISTORY_BYTES,
            replaced_gt: None,
            stroke: None,
            outline: Vec::new(),
            outline_view: None,
            recovery_dir,
            autosave_every: Duration::from_secs(60),
            last_autosave: Instant::now(),
            autosave_rx: None,
            offered,
            restore_after_ct: None,
            save_target: None,
            pending_save: None,
            question: None,
            allow_close: false,
            dataset_text: crate::data::cache::default_cache_dir()
                .with_file_name("corrections")
                .display()
                .to_string(),
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

impl ViewerApp {
    /// Start editing a layer: empty, a copy of the GT or of the prediction. The edited
    /// layer takes the GT slot (the GT is kept and restored by [`Self::stop_editing`]).
    pub fn start_editing(&mut self, source: EditSource) {
        let Some(ct) = self.ct.clone() else {
            self.message(Level::Warning, "Open a CT before editing".into());
            return;
        };
        let labels = match source {
            EditSource::Empty | EditSource::Recovered => {
                Volume::zeros(ct.display.geometry().clone())
            }
            EditSource::GroundTruth => match &self.gt {
                Some(g) => g.display.clone(),
                None => {
                    self.message(Level::Warning, "No ground truth to start from".into());
                    return;
                }
            },
            EditSource::Prediction => match &self.pred {
                Some(p) => p.display.clone(),
                None => {
                    self.message(Level::Warning, "No prediction to start from".into());
                    return;
                }
            },
        };
        self.begin_session(source, labels);
    }

    fn begin_session(&mut self, source: EditSource, labels: crate::LabelVolume) {
        if self.annotator.session.is_none() {
            self.annotator.replaced_gt = self.gt.take();
        }
        let history = History::with_limit(self.annotator.history_limit);
        self.annotator.session = Some(EditSession::new(source, history));
        self.annotator.stroke = None;
        self.annotator.outline.clear();
        self.annotator.save_target = None;
        self.annotator.dataset_ready = None;
        self.annotator.fine_tune = None;
        if self.annotator.tool == Tool::Navigate {
            self.annotator.tool = Tool::Brush;
        }
        self.settings.show_gt = true;
        self.set_layer(LayerKind::GroundTruth, Arc::new(editable_layer(labels)));
        if self.selected.is_none() {
            self.selected = catalog().label_of("liver");
        }
    }

    /// Stop editing (unsaved edits are dropped; the UI asks first) and put the
    /// ground truth back.
    pub fn stop_editing(&mut self) {
        if self.annotator.session.take().is_none() {
            return;
        }
        self.discard_recovery_of_current();
        self.annotator.stroke = None;
        self.annotator.outline.clear();
        let gt = self.annotator.replaced_gt.take();
        self.gt = None;
        self.comparison = None;
        if let Some(gt) = gt {
            self.set_layer(LayerKind::GroundTruth, gt);
        }
    }

    /// A ground truth arrived while editing: keep it for when editing stops.
    pub(super) fn annotator_replace_gt(&mut self, gt: Arc<LabelLayer>) {
        self.annotator.replaced_gt = Some(gt);
    }

    /// Another CT is opening: the edited layer belongs to the old one. Unsaved edits
    /// go to its recovery file first (offered again on the next start).
    pub(super) fn leave_editing_for_new_ct(&mut self) {
        if self.annotator.session.is_none() {
            return;
        }
        self.end_stroke();
        if self.annotator.is_dirty()
            && let (Some(info), Some(layer)) = (self.recovery_info(), self.gt.clone())
        {
            match write_recovery(&self.annotator.recovery_dir, &info, &layer.display) {
                Ok(r) => self.message(
                    Level::Warning,
                    format!(
                        "Unsaved edits of {} kept in {}; restore them on the next start",
                        info.ct_name,
                        r.labels.display()
                    ),
                ),
                Err(e) => self.message(Level::Error, format!("Could not keep unsaved edits: {e}")),
            }
        }
        self.annotator.session = None;
        self.annotator.replaced_gt = None;
        self.annotator.stroke = None;
        self.annotator.outline.clear();
        self.annotator.fine_tune = None;
        self.annotator.dataset_ready = None;
    }

    /// The edited layer, for reading.
    pub fn edit_layer(&self) -> Option<&LabelLayer> {
        self.annotator.session.as_ref().and(self.gt.as_deref())
    }

    fn paint_rule(&self, erase: bool) -> Option<PaintRule> {
        let selected = self.selected?;
        let a = &self.annotator;
        Some(PaintRule {
            value: if erase { 0 } else { selected },
            selected,
            protect: a.protect,
            hu_range: a.threshold.then_some(a.hu_range),
        })
    }

    /// Run `f` on the edited layer (copied first if a background job still reads it).
    fn with_edit_layer<R>(
        &mut self,
        f: impl FnOnce(&mut EditSession, &mut LabelLayer, &Volume<i16>) -> R,
    ) -> Option<R> {
        let ct = self.ct.clone()?;
        let session = self.annotator.session.as_mut()?;
        let layer = Arc::make_mut(self.gt.as_mut()?);
        Some(f(session, layer, &ct.display))
    }

    /// A step was recorded or undone: refresh the comparison with the prediction.
    fn edited(&mut self) {
        if let (Some(gt), Some(pred)) = (self.gt.clone(), self.pred.clone()) {
            self.submit(Job::Compare { gt, pred });
        }
    }

    /// Undo the newest edit.
    pub fn undo(&mut self) {
        self.annotator.stroke = None;
        if let Some(Some(d)) = self.with_edit_layer(|s, l, _| s.undo(l)) {
            self.message(Level::Info, format!("Undid: {d}"));
            self.edited();
        }
    }

    /// Redo the newest undone edit.
    pub fn redo(&mut self) {
        self.annotator.stroke = None;
        if let Some(Some(d)) = self.with_edit_layer(|s, l, _| s.redo(l)) {
            self.message(Level::Info, format!("Redid: {d}"));
            self.edited();
        }
    }

    /// Begin a brush or eraser stroke at pixel `at` of slice `index` of `grid`.
    pub fn begin_stroke(&mut self, grid: &SliceGrid, index: usize, at: (f32, f32), erase: bool) {
        let Some(rule) = self.paint_rule(erase) else {
            self.message(
                Level::Warning,
                "Select a structure in the table to paint it".into(),
            );
            return;
        };
        let tool = if erase { "Eraser" } else { "Brush" };
        let description = describe(tool, rule.selected, grid.axis, index);
        let radius = self.annotator.radius;
        self.with_edit_layer(|s, l, ct| {
            s.begin_stroke(l, description);
            s.paint(l, ct, grid, index, &disc(grid, at, radius), &rule);
        });
        self.annotator.stroke = Some(ActiveStroke {
            axis: grid.axis,
            index,
            last: at,
        });
    }

    /// Continue the stroke to pixel `at`.
    pub fn continue_stroke(&mut self, grid: &SliceGrid, at: (f32, f32), erase: bool) {
        let Some(stroke) = self.annotator.stroke else {
            return;
        };
        if stroke.axis != grid.axis {
            return;
        }
        let Some(rule) = self.paint_rule(erase) else {
            return;
        };
        let radius = self.annotator.radius;
        let pixels = swept_disc(grid, stroke.last, at, radius);
        self.with_edit_layer(|s, l, ct| s.paint(l, ct, grid, stroke.index, &pixels, &rule));
        self.annotator.stroke = Some(ActiveStroke { last: at, ..stroke });
    }

    /// Finish the stroke (one undo step).
    pub fn end_stroke(&mut self) {
        if self.annotator.stroke.take().is_none() {
            return;
        }
        if self.with_edit_layer(|s, l, _| s.end_stroke(l)) == Some(true) {
            self.edited();
        }
    }

    /// Flood-fill the region around pixel `at` of slice `index`.
    pub fn fill_at(&mut self, grid: &SliceGrid, index: usize, at: (usize, usize), erase: bool) {
        let Some(rule) = self.paint_rule(erase) else {
            self.message(Level::Warning, "Select a structure to fill with".into());
            return;
        };
        let description = describe(
            if erase { "Erase fill" } else { "Fill" },
            rule.selected,
            grid.axis,
            index,
        );
        let done = self.with_edit_layer(|s, l, ct| {
            let region = flood_region(grid, index, &l.display, ct, at, rule.hu_range);
            s.apply(l, ct, grid, index, &region, &rule, description)
        });
        if done.unwrap_or(0) > 0 {
            self.edited();
        }
    }

    /// Fill the polygon or lasso outline (pixel coordinates) on slice `index`.
    pub fn fill_outline(
        &mut self,
        grid: &SliceGrid,
        index: usize,
        points: &[(f32, f32)],
        erase: bool,
    ) {
        let Some(rule) = self.paint_rule(erase) else {
            self.message(Level::Warning, "Select a structure to fill with".into());
            return;
        };
        let name = if self.annotator.tool == Tool::Lasso {
            "Lasso"
        } else {
            "Polygon"
        };
        let description = describe(name, rule.selected, grid.axis, index);
        let pixels = polygon(grid, points);
        let done = self
            .with_edit_layer(|s, l, ct| s.apply(l, ct, grid, index, &pixels, &rule, description));
        if done.unwrap_or(0) > 0 {
            self.edited();
        }
    }

    /// Fill the selected structure in between the slices of `axis` where it is drawn.
    pub fn interpolate(&mut self, axis: Axis) {
        let (Some(grid), Some(rule)) = (self.grid(axis), self.paint_rule(false)) else {
            self.message(Level::Warning, "Select a structure to interpolate".into());
            return;
        };
        let n = self
            .with_edit_layer(|s, l, ct| s.interpolate(l, ct, &grid, &rule))
            .unwrap_or(0);
        let name = catalog().name_of(rule.selected);
        if n == 0 {
            self.message(
                Level::Info,
                format!(
                    "Nothing to interpolate: draw {name} on two {} slices with a gap between",
                    axis.name().to_lowercase()
                ),
            );
        } else {
            self.message(
                Level::Info,
                format!(
                    "Filled {name} in on {n} {} slices",
                    axis.name().to_lowercase()
                ),
            );
            self.edited();
        }
    }

    /// Save the edited layer (multilabel NIfTI, or a per-structure folder) on the CT's
    /// grid. Written to a temporary file and renamed into place.
    pub fn save_edits(&mut self, path: PathBuf, per_structure: bool) {
        self.end_stroke();
        if self.annotator.session.is_none() {
            return;
        }
        let (Some(layer), Some(ct)) = (self.gt.clone(), self.ct.clone()) else {
            return;
        };
        let serial = self
            .annotator
            .session
            .as_ref()
            .map_or(0, EditSession::serial);
        self.annotator.pending_save = Some((path.clone(), serial));
        self.annotator.save_target = Some((path.clone(), per_structure));
        self.submit(Job::Save {
            path,
            per_structure,
            layer,
            ct,
        });
    }

    /// A save finished (from the worker's `Saved` event).
    pub(super) fn saved(&mut self, path: &Path) {
        if let Some((p, serial)) = self.annotator.pending_save.take() {
            if p == path {
                if let Some(s) = &mut self.annotator.session {
                    s.mark_saved(serial);
                    if !s.is_dirty() {
                        self.discard_recovery_of_current();
                    }
                }
            } else {
                self.annotator.pending_save = Some((p, serial));
            }
        }
    }

    /// Ctrl+S: save to the last target, else ask where.
    pub fn save_edits_again(&mut self) {
        match self.annotator.save_target.clone() {
            Some((path, per_structure)) => self.save_edits(path, per_structure),
            None => self.dialog(DialogPurpose::SaveEdits {
                per_structure: false,
            }),
        }
    }

    fn recovery_info(&self) -> Option<RecoveryInfo> {
        let ct = self.ct.as_ref()?;
        let s = self.annotator.session.as_ref()?;
        Some(RecoveryInfo {
            ct: ct.path.clone(),
            ct_name: ct.name.clone(),
            source: s.source.name().to_string(),
            saved_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            steps: s.history().len().0,
        })
    }

    fn discard_recovery_of_current(&mut self) {
        let Some(ct) = &self.ct else { return };
        if let Some(r) = find_recovery(&self.annotator.recovery_dir, ct.path.as_deref(), &ct.name)
            && let Err(e) = remove_recovery(&r)
        {
            self.message(
                Level::Warning,
                format!("Could not remove the recovery file: {e}"),
            );
        }
    }

    /// Write the recovery file now (in the background); the regular autosave calls
    /// this when there are edits since the last one.
    pub fn autosave_now(&mut self) {
        if self.annotator.autosave_rx.is_some() || self.annotator.stroke.is_some() {
            return;
        }
        let (Some(info), Some(layer), Some(s)) = (
            self.recovery_info(),
            self.gt.clone(),
            self.annotator.session.as_ref(),
        ) else {
            return;
        };
        let serial = s.serial();
        let dir = self.annotator.recovery_dir.clone();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let ctx = self.ctx.clone();
        std::thread::spawn(move || {
            let r = write_recovery(&dir, &info, &layer.display).map_err(|e| e.to_string());
            let _ = tx.send((serial, r));
            ctx.request_repaint();
        });
        self.annotator.autosave_rx = Some(rx);
        self.annotator.last_autosave = Instant::now();
    }

    /// Wait for a background autosave (tests).
    pub fn wait_autosave(&mut self, timeout: Duration) -> bool {
        let Some(rx) = self.annotator.autosave_rx.take() else {
            return true;
        };
        match rx.recv_timeout(timeout) {
            Ok(done) => {
                self.autosave_done(done);
                true
            }
            Err(_) => false,
        }
    }

    fn autosave_done(&mut self, (serial, result): (u64, Result<Recovery, String>)) {
        match result {
            Ok(_) => {
                if let Some(s) = &mut self.annotator.session {
                    s.mark_autosaved(serial);
                }
            }
            Err(e) => self.message(Level::Warning, format!("Autosave failed: {e}")),
        }
    }

    /// Restore offered recovery file `i`: open its CT, then make its labels the
    /// edited layer.
    pub fn restore_recovery(&mut self, i: usize) {
        if i >= self.annotator.offered.len() {
            return;
        }
        let r = self.annotator.offered.remove(i);
        let same_ct = self
            .ct
            .as_ref()
            .is_some_and(|c| c.path == r.info.ct && c.name == r.info.ct_name);
        if same_ct {
            self.apply_recovery(r);
            return;
        }
        let ct = r.info.ct.clone();
        self.annotator.restore_after_ct = Some(r);
        match ct {
            Some(path) => self.open_ct(path),
            None => self.open_sample(),
        }
    }

    /// Delete offered recovery file `i`.
    pub fn discard_offered(&mut self, i: usize) {
        if i < self.annotator.offered.len() {
            let r = self.annotator.offered.remove(i);
            if let Err(e) = remove_recovery(&r) {
                self.message(
                    Level::Warning,
                    format!("Could not remove {}: {e}", r.labels.display()),
                );
            }
        }
    }

    /// A CT was opened: apply a recovery waiting for it.
    pub(super) fn ct_opened_for_recovery(&mut self) {
        if let Some(r) = self.annotator.restore_after_ct.take() {
            self.apply_recovery(r);
        }
    }

    fn apply_recovery(&mut self, r: Recovery) {
        let Some(ct) = self.ct.clone() else { return };
        let labels = match read_recovery(&r) {
            Ok(l) => l,
            Err(e) => {
                self.message(Level::Error, format!("Cannot read the recovery file: {e}"));
                return;
            }
        };
        if labels.shape() != ct.display.shape() {
            self.message(
                Level::Error,
                format!(
                    "Recovery file {} is {:?} but {} is {:?}; not restored",
                    r.labels.display(),
                    labels.shape(),
                    ct.name,
                    ct.display.shape()
                ),
            );
            return;
        }
        // Keep the CT's geometry exactly (the file stores it rounded to f32).
        let Ok(labels) = Volume::new(ct.display.geometry().clone(), labels.into_data()) else {
            return;
        };
        self.begin_session(EditSource::Recovered, labels);
        if let Some(s) = &mut self.annotator.session {
            s.mark_unsaved();
        }
        self.message(
            Level::Info,
            format!(
                "Restored unsaved edits of {} ({} steps)",
                r.info.ct_name, r.info.steps
            ),
        );
    }

    /// Add the CT and the edited layer to the training set in the form's folder.
    pub fn add_to_training_set(&mut self) {
        let (Some(ct), Some(layer)) = (self.ct.clone(), self.edit_layer().map(|_| self.gt.clone()))
        else {
            self.message(Level::Warning, "Start editing a layer first".into());
            return;
        };
        let Some(layer) = layer else { return };
        let root = PathBuf::from(self.annotator.dataset_text.trim());
        if root.as_os_str().is_empty() {
            self.message(Level::Warning, "Type a training-set folder".into());
            return;
        }
        // A subject folder's name says more than "ct.nii.gz".
        let name = ct
            .path
            .as_ref()
            .and_then(|p| {
                if p.is_dir() || p.file_name().is_some_and(|f| f == "ct.nii.gz") {
                    let dir = if p.is_dir() { p.as_path() } else { p.parent()? };
                    dir.file_name().map(|n| n.to_string_lossy().into_owned())
                } else {
                    None
                }
            })
            .unwrap_or_else(|| ct.name.clone());
        let id = crate::annotate::dataset::subject_id(&name);
        self.submit(Job::AddCase {
            root,
            id,
            layer,
            ct,
        });
    }

    /// A case was added (the worker's `CaseAdded` event).
    pub(super) fn case_added(&mut self, root: PathBuf, dir: &Path) {
        self.message(
            Level::Info,
            format!("Added {} to the training set (split train)", dir.display()),
        );
        self.annotator.dataset_ready = Some(root);
    }

    /// Fine-tune the current model on the training set the case was added to, with
    /// the Training tab's settings (model settings come from the checkpoint). When
    /// the run ends the CT is predicted again and Dice before/after is shown.
    pub fn fine_tune(&mut self) -> Result<(), String> {
        let root = self
            .annotator
            .dataset_ready
            .clone()
            .ok_or("add the case to a training set first")?;
        let model = self
            .settings
            .model
            .clone()
            .ok_or("choose a model to fine-tune in the model panel")?;
        let edit = self.edit_layer().ok_or("no edited layer")?;
        let before = match &self.pred {
            Some(p) => confusion_counts(edit.display.data(), p.display.data())
                .iter()
                .map(|c| c.dice())
                .collect(),
            None => vec![None; 256],
        };
        let mut config = self.training.effective_config_for(&root)?;
        config.run.init_from = Some(model);
        config.run.epochs = self.annotator.fine_tune_epochs.max(1);
        let stamp = super::training::default_run_dir();
        let name = stamp
            .file_name()
            .map_or("run".into(), |n| n.to_string_lossy().into_owned());
        let run_dir = self
            .annotator
            .fine_tune_runs
            .join(format!("{name}-finetune"));
        self.training
            .start_with(config, run_dir.clone(), &self.ctx.clone())?;
        self.annotator.fine_tune = Some(FineTune {
            run_dir,
            stage: FineTuneStage::Training,
            before,
        });
        Ok(())
    }

    /// Advance the fine-tune loop; called every frame and on worker events.
    pub(super) fn poll_fine_tune(&mut self) {
        let Some(ft) = &self.annotator.fine_tune else {
            return;
        };
        if ft.stage != FineTuneStage::Training || self.training.is_training() {
            return;
        }
        let run_dir = ft.run_dir.clone();
        let best = run_dir.join("checkpoints").join("best");
        let last = run_dir.join("checkpoints").join("last");
        let checkpoint = if best.is_dir() { best } else { last };
        let stage = if checkpoint.is_dir() {
            self.settings.model = Some(checkpoint);
            self.predict();
            FineTuneStage::Predicting
        } else {
            FineTuneStage::Failed("the run wrote no checkpoint".into())
        };
        if let Some(ft) = &mut self.annotator.fine_tune {
            ft.stage = stage;
        }
    }

    /// The new prediction is in (LayerReady for the prediction).
    pub(super) fn fine_tune_predicted(&mut self) {
        if let Some(ft) = &mut self.annotator.fine_tune
            && ft.stage == FineTuneStage::Predicting
        {
            ft.stage = FineTuneStage::Comparing;
        }
    }

    /// A comparison arrived; in the Comparing stage it gives the Dice after.
    pub(super) fn fine_tune_compared(&mut self) {
        let (Some(ft), Some(c), Some(edit)) = (
            &self.annotator.fine_tune,
            &self.comparison,
            self.edit_layer(),
        ) else {
            return;
        };
        if ft.stage != FineTuneStage::Comparing {
            return;
        }
        let rows: Vec<(u8, Option<f64>, Option<f64>)> = catalog()
            .all()
            .iter()
            .filter(|s| edit.stats.counts[s.label as usize] > 0)
            .map(|s| (s.label, ft.before[s.label as usize], c.dice(s.label)))
            .collect();
        if let Some(ft) = &mut self.annotator.fine_tune {
            ft.stage = FineTuneStage::Done(rows);
        }
    }

    /// Every frame: autosave results and timer, fine-tune, close requests.
    pub(super) fn poll_annotator(&mut self, ctx: &egui::Context) {
        if self.annotator.edit_when_loaded.is_some()
            && self.ct.is_some()
            && self.busy().is_none()
            && let Some(source) = self.annotator.edit_when_loaded.take()
        {
            self.start_editing(source);
        }
        if let Some(rx) = &self.annotator.autosave_rx
            && let Ok(done) = rx.try_recv()
        {
            self.annotator.autosave_rx = None;
            self.autosave_done(done);
        }
        if self
            .annotator
            .session
            .as_ref()
            .is_some_and(EditSession::needs_autosave)
        {
            if self.annotator.last_autosave.elapsed() >= self.annotator.autosave_every {
                self.autosave_now();
            }
            ctx.request_repaint_after(self.annotator.autosave_every);
        }
        self.poll_fine_tune();
        if ctx.input(|i| i.viewport().close_requested())
            && self.annotator.is_dirty()
            && !self.annotator.allow_close
        {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            self.annotator.question = Some(Question::Quit);
        }
    }

    /// Editing keys: [ ] brush size, Ctrl+Z undo, Ctrl+Shift+Z / Ctrl+Y redo,
    /// Ctrl+S save, Enter/Esc polygon.
    pub(super) fn annotation_keys(&mut self, ctx: &egui::Context) {
        if self.annotator.session.is_none() {
            return;
        }
        let (smaller, larger, undo, redo, save, enter, esc) = ctx.input(|i| {
            let mut undo = false;
            let mut redo = false;
            let mut save = false;
            for e in &i.events {
                if let egui::Event::Key {
                    key,
                    pressed: true,
                    modifiers,
                    ..
                } = e
                    && modifiers.command
                {
                    match key {
                        egui::Key::Z if modifiers.shift => redo = true,
                        egui::Key::Z => undo = true,
                        egui::Key::Y => redo = true,
                        egui::Key::S => save = true,
                        _ => {}
                    }
                }
            }
            (
                i.key_pressed(egui::Key::OpenBracket),
                i.key_pressed(egui::Key::CloseBracket),
                undo,
                redo,
                save,
                i.key_pressed(egui::Key::Enter),
                i.key_pressed(egui::Key::Escape),
            )
        });
        let tool = ctx.input(|i| {
            if i.modifiers.any() {
                return None;
            }
            [
                (egui::Key::B, Tool::Brush),
                (egui::Key::E, Tool::Eraser),
                (egui::Key::F, Tool::Fill),
                (egui::Key::P, Tool::Polygon),
                (egui::Key::L, Tool::Lasso),
                (egui::Key::V, Tool::Navigate),
            ]
            .into_iter()
            .find(|(k, _)| i.key_pressed(*k))
            .map(|(_, t)| t)
        });
        if let Some(t) = tool {
            self.annotator.tool = t;
        }
        let r = &mut self.annotator.radius;
        if smaller {
            *r = (*r - if *r > 10.0 { 2.0 } else { 1.0 }).max(0.0);
        }
        if larger {
            *r = (*r + if *r >= 10.0 { 2.0 } else { 1.0 }).min(100.0);
        }
        if undo {
            self.undo();
        }
        if redo {
            self.redo();
        }
        if save {
            self.save_edits_again();
        }
        if esc {
            self.annotator.outline.clear();
            self.annotator.outline_view = None;
        }
        if enter {
            self.close_polygon(false);
        }
    }

    fn close_polygon(&mut self, erase: bool) {
        let points = std::mem::take(&mut self.annotator.outline);
        let Some((axis, index)) = self.annotator.outline_view.take() else {
            return;
        };
        if let Some(grid) = self.grid(axis)
            && points.len() >= 3
        {
            self.fill_outline(&grid, index, &points, erase);
        }
    }
}

/// Pixel coordinates (fractional) of screen position `pos` in image rect `img`.
fn pixel_pos(grid: &SliceGrid, img: Rect, pos: Pos2) -> (f32, f32) {
    let (w, h) = grid.size();
    (
        (pos.x - img.min.x) / img.width() * w as f32,
        (pos.y - img.min.y) / img.height() * h as f32,
    )
}

fn inside(grid: &SliceGrid, p: (f32, f32)) -> bool {
    let (w, h) = grid.size();
    p.0 >= 0.0 && p.1 >= 0.0 && p.0 < w as f32 && p.1 < h as f32
}

/// Mouse input of a slice view while a tool is active. Returns `true` when the
/// tool used the input (the view then does not move the crosshair).
pub(super) fn view_input(
    app: &mut ViewerApp,
    ui: &egui::Ui,
    response: &egui::Response,
    grid: &SliceGrid,
    img: Rect,
) -> bool {
    if !app.annotator.tool_active() {
        return false;
    }
    let (primary_down, ctrl, pos) = ui.input(|i| {
        (
            i.pointer.primary_down(),
            i.modifiers.command || i.modifiers.ctrl,
            i.pointer.interact_pos(),
        )
    });
    let index = app.cursor[grid.axis.normal_axis()];
    let on_view = response.is_pointer_button_down_on();
    let p = pos.map(|p| pixel_pos(grid, img, p));
    match app.annotator.tool {
        Tool::Navigate => false,
        Tool::Brush | Tool::Eraser => {
            let erase = app.annotator.tool == Tool::Eraser || ctrl;
            let active = app.annotator.stroke.is_some_and(|s| s.axis == grid.axis);
            if active {
                if primary_down {
                    if let Some(p) = p {
                        app.continue_stroke(grid, p, erase);
                    }
                } else {
                    app.end_stroke();
                }
                true
            } else if on_view
                && primary_down
                && let Some(p) = p.filter(|&p| inside(grid, p))
            {
                app.begin_stroke(grid, index, p, erase);
                true
            } else if response.clicked()
                && let Some(p) = p.filter(|&p| inside(grid, p))
            {
                // Press and release within one frame: a single stamp.
                app.begin_stroke(grid, index, p, erase);
                app.end_stroke();
                true
            } else {
                response.clicked()
            }
        }
        Tool::Fill => {
            if response.clicked()
                && let Some(p) = p.filter(|&p| inside(grid, p))
            {
                app.fill_at(grid, index, (p.0 as usize, p.1 as usize), ctrl);
            }
            on_view || response.clicked()
        }
        Tool::Polygon => {
            if app.annotator.outline_view != Some((grid.axis, index)) && response.clicked() {
                app.annotator.outline.clear();
                app.annotator.outline_view = Some((grid.axis, index));
            }
            if response.double_clicked() {
                app.close_polygon(ctrl);
            } else if response.clicked()
                && let Some(p) = p.filter(|&p| inside(grid, p))
            {
                app.annotator.outline.push(p);
            }
            on_view || response.clicked()
        }
        Tool::Lasso => {
            let drawing = app.annotator.outline_view == Some((grid.axis, index))
                && !app.annotator.outline.is_empty();
            if on_view && primary_down {
                if !drawing {
                    app.annotator.outline.clear();
                    app.annotator.outline_view = Some((grid.axis, index));
                }
                if let Some(p) = p {
                    let far = app
                        .annotator
                        .outline
                        .last()
                        .is_none_or(|q| (q.0 - p.0).abs() + (q.1 - p.1).abs() >= 0.5);
                    if far {
                        app.annotator.outline.push(p);
                    }
                }
                true
            } else if drawing && !primary_down {
                app.close_polygon(ctrl);
                true
            } else {
                response.clicked()
            }
        }
    }
}

/// Brush outline at the mouse and the polygon/lasso in progress.
pub(super) fn draw_overlay(
    app: &ViewerApp,
    painter: &egui::Painter,
    grid: &SliceGrid,
    img: Rect,
    hover: Option<Pos2>,
) {
    if !app.annotator.tool_active() {
        return;
    }
    let (w, h) = grid.size();
    let to_screen = |p: (f32, f32)| {
        Pos2::new(
            img.min.x + p.0 / w as f32 * img.width(),
            img.min.y + p.1 / h as f32 * img.height(),
        )
    };
    let color = app
        .selected
        .map(|l| {
            let [r, g, b] = catalog().by_label(l).map_or([255, 255, 0], |s| s.color);
            Color32::from_rgb(r, g, b)
        })
        .unwrap_or(Color32::YELLOW);
    let stroke = Stroke::new(1.5, color);
    match app.annotator.tool {
        Tool::Brush | Tool::Eraser => {
            if let Some(pos) = hover {
                // Ellipse of the brush radius (round in mm).
                let (pw, ph) = grid.pixel_mm();
                let unit = pw.min(ph).max(1e-9);
                let r = app.annotator.radius.max(0.5);
                let rx = r / (pw / unit) as f32 * img.width() / w as f32;
                let ry = r / (ph / unit) as f32 * img.height() / h as f32;
                let points: Vec<Pos2> = (0..48)
                    .map(|n| {
                        let t = n as f32 / 48.0 * std::f32::consts::TAU;
                        pos + Vec2::new(rx * t.cos(), ry * t.sin())
                    })
                    .collect();
                let dashed = app.annotator.tool == Tool::Eraser;
                let s = if dashed {
                    Stroke::new(1.5, Color32::WHITE)
                } else {
                    stroke
                };
                painter.add(egui::Shape::closed_line(points, s));
            }
        }
        Tool::Polygon | Tool::Lasso => {
            let index = app.cursor[grid.axis.normal_axis()];
            if app.annotator.outline_view == Some((grid.axis, index))
                && !app.annotator.outline.is_empty()
            {
                let mut points: Vec<Pos2> = app
                    .annotator
                    .outline
                    .iter()
                    .map(|&p| to_screen(p))
                    .collect();
                if app.annotator.tool == Tool::Polygon
                    && let Some(h) = hover
                {
                    points.push(h);
                }
                for p in &points {
                    painter.circle_filled(*p, 2.5, color);
                }
                // Dark under white: visible over any overlay colour.
                painter.add(egui::Shape::line(
                    points.clone(),
                    Stroke::new(3.0, Color32::BLACK),
                ));
                painter.add(egui::Shape::line(points, Stroke::new(1.5, Color32::WHITE)));
            }
        }
        Tool::Fill | Tool::Navigate => {}
    }
}

/// The Annotate section of the right-hand panel.
pub(super) fn panel(app: &mut ViewerApp, ui: &mut egui::Ui) {
    ui.heading("Annotate");
    if app.annotator.session.is_none() {
        ui.label("Edit a layer (shown in place of the GT):");
        ui.horizontal_wrapped(|ui| {
            if ui.button("Start empty").clicked() {
                app.start_editing(EditSource::Empty);
            }
            if ui
                .add_enabled(app.gt.is_some(), egui::Button::new("From GT"))
                .clicked()
            {
                app.start_editing(EditSource::GroundTruth);
            }
            if ui
                .add_enabled(app.pred.is_some(), egui::Button::new("From prediction"))
                .clicked()
            {
                app.start_editing(EditSource::Prediction);
            }
        });
        return;
    }
    let selected = app
        .selected
        .map_or("(select a structure)".to_string(), |l| catalog().name_of(l));
    let source = app
        .annotator
        .session
        .as_ref()
        .map_or("", |s| s.source.name());
    ui.label(format!("Editing (from {source}): {selected}"));
    ui.horizontal_wrapped(|ui| {
        for tool in Tool::ALL {
            ui.selectable_value(&mut app.annotator.tool, tool, tool.name())
                .on_hover_text(tool.hint());
        }
    });
    ui.add(
        egui::Slider::new(&mut app.annotator.radius, 0.0..=60.0)
            .step_by(1.0)
            .text("brush radius"),
    );
    ui.checkbox(&mut app.annotator.protect, "Protect other structures");
    ui.horizontal(|ui| {
        ui.checkbox(&mut app.annotator.threshold, "HU range");
        let (lo, hi) = &mut app.annotator.hu_range;
        ui.add_enabled(
            app.annotator.threshold,
            egui::DragValue::new(lo).range(-1024..=3071).prefix("from "),
        );
        ui.add_enabled(
            app.annotator.threshold,
            egui::DragValue::new(hi).range(-1024..=3071).prefix("to "),
        );
        if *lo > *hi {
            std::mem::swap(lo, hi);
        }
    });
    ui.horizontal(|ui| {
        let axis = app.active_axis;
        if ui
            .button("Interpolate")
            .on_hover_text(format!(
                "Fill the selected structure in on the {} slices between slices where it is drawn",
                axis.name().to_lowercase()
            ))
            .clicked()
        {
            app.interpolate(axis);
        }
    });
    let (undo_text, redo_text, steps, bytes) = match &app.annotator.session {
        Some(s) => (
            s.history().undo_description().map(str::to_string),
            s.history().redo_description().map(str::to_string),
            s.history().len(),
            s.history().bytes(),
        ),
        None => (None, None, (0, 0), 0),
    };
    ui.horizontal(|ui| {
        if ui
            .add_enabled(undo_text.is_some(), egui::Button::new("Undo"))
            .on_hover_text(undo_text.clone().unwrap_or_default())
            .clicked()
        {
            app.undo();
        }
        if ui
            .add_enabled(redo_text.is_some(), egui::Button::new("Redo"))
            .on_hover_text(redo_text.clone().unwrap_or_default())
            .clicked()
        {
            app.redo();
        }
        ui.small(format!(
            "{} steps, {:.1} MiB",
            steps.0,
            bytes as f64 / (1 << 20) as f64
        ));
    });
    if let Some(d) = &undo_text {
        ui.small(format!("Last: {d}"));
    }
    let dirty = app.annotator.is_dirty();
    ui.horizontal_wrapped(|ui| {
        if ui.button("Save…").clicked() {
            app.dialog(DialogPurpose::SaveEdits {
                per_structure: false,
            });
        }
        if ui.button("Save as folder…").clicked() {
            app.dialog(DialogPurpose::SaveEdits {
                per_structure: true,
            });
        }
        if ui.button("Stop editing").clicked() {
            if dirty {
                app.annotator.question = Some(Question::StopEditing);
            } else {
                app.stop_editing();
            }
        }
    });
    ui.label(if dirty {
        RichText::new("Unsaved edits (autosaved for recovery)")
            .color(Color32::from_rgb(230, 180, 60))
    } else {
        RichText::new("All edits saved").weak()
    });
    ui.separator();
    ui.label(RichText::new("Correct and retrain").strong());
    let l = ui.label("Training set");
    ui.text_edit_singleline(&mut app.annotator.dataset_text)
        .labelled_by(l.id);
    if ui.button("Add to training set").clicked() {
        app.add_to_training_set();
    }
    ui.horizontal(|ui| {
        let can = app.annotator.dataset_ready.is_some()
            && app.settings.model.is_some()
            && !app.training.is_training();
        if ui
            .add_enabled(can, egui::Button::new("Fine-tune"))
            .on_disabled_hover_text("Add the case to a training set and choose a model first")
            .clicked()
            && let Err(e) = app.fine_tune()
        {
            app.message(Level::Error, format!("Cannot fine-tune: {e}"));
        }
        ui.add(
            egui::DragValue::new(&mut app.annotator.fine_tune_epochs)
                .range(1..=500)
                .suffix(" epochs"),
        );
    });
    if let Some(ft) = &app.annotator.fine_tune {
        match &ft.stage {
            FineTuneStage::Training => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Fine-tuning (see the Training tab)");
                });
            }
            FineTuneStage::Predicting => {
                ui.label("Predicting with the fine-tuned model…");
            }
            FineTuneStage::Comparing => {
                ui.label("Comparing…");
            }
            FineTuneStage::Failed(e) => {
                ui.colored_label(Color32::from_rgb(240, 90, 80), e);
            }
            FineTuneStage::Done(rows) => {
                ui.label("Dice against the corrected layer:");
                egui::Grid::new("dice-before-after")
                    .striped(true)
                    .show(ui, |ui| {
                        ui.strong("structure");
                        ui.strong("before");
                        ui.strong("after");
                        ui.end_row();
                        let f =
                            |d: &Option<f64>| d.map_or("–".to_string(), |d| format!("{d:.3}"));
                        for (label, before, after) in rows {
                            ui.label(catalog().name_of(*label));
                            ui.label(f(before));
                            ui.label(f(after));
                            ui.end_row();
                        }
                    });
            }
        }
    }
}

/// Modal questions: restore recovery files, quit or stop with unsaved edits.
pub(super) fn modals(app: &mut ViewerApp, ctx: &egui::Context) {
    if !app.annotator.offered.is_empty() {
        let mut action = None;
        egui::Modal::new(egui::Id::unique("recovery")).show(ctx, |ui| {
            ui.heading("Unsaved edits found");
            ui.label("A previous session ended with edits that were not saved:");
            for (i, r) in app.annotator.offered.iter().enumerate() {
                ui.horizontal(|ui| {
                    let ct = r
                        .info
                        .ct
                        .as_ref()
                        .map_or_else(|| r.info.ct_name.clone(), |p| p.display().to_string());
                    let steps = match r.info.steps {
                        1 => "1 step".to_string(),
                        n => format!("{n} steps"),
                    };
                    ui.label(format!("{ct} (edited from {}, {steps})", r.info.source));
                    if ui.button("Restore").clicked() {
                        action = Some((i, true));
                    }
                    if ui.button("Discard").clicked() {
                        action = Some((i, false));
                    }
                });
            }
        });
        match action {
            Some((i, true)) => app.restore_recovery(i),
            Some((i, false)) => app.discard_offered(i),
            None => {}
        }
        return;
    }
    let Some(q) = app.annotator.question else {
        return;
    };
    let mut answer = None;
    egui::Modal::new(egui::Id::unique("unsaved")).show(ctx, |ui| {
        ui.heading("Unsaved edits");
        ui.label(match q {
            Question::Quit => "Quit and lose the unsaved edits?",
            Question::StopEditing => "Stop editing and lose the unsaved edits?",
        });
        ui.horizontal(|ui| {
            if ui.button("Save…").clicked() {
                answer = Some(0);
            }
            if ui.button("Discard edits").clicked() {
                answer = Some(1);
            }
            if ui.button("Cancel").clicked() {
                answer = Some(2);
            }
        });
    });
    match answer {
        Some(0) => {
            app.annotator.question = None;
            app.save_edits_again();
        }
        Some(1) => {
            app.annotator.question = None;
            match q {
                Question::Quit => {
                    app.discard_recovery_of_current();
                    app.annotator.allow_close = true;
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
                Question::StopEditing => app.stop_editing(),
            }
        }
        Some(_) => app.annotator.question = None,
        None => {}
    }
}
