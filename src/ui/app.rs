//! The viewer app: state, event handling, menus and panels.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};
use eframe::egui::{self, Color32, RichText};

use crate::backend::BackendKind;
use crate::infer::{Precision, PredictOptions};
use crate::render::gpu::GpuViews;
use crate::render::{Axis, LabelTable, SliceGrid};
use crate::structures::catalog;
use crate::viewdata::{Comparison, CtView, LabelLayer};
use crate::window::{PRESETS, Window};
use crate::worker::{Event, Job, LayerKind, Worker};

use super::annotate::Annotator;
use super::settings::{CompareMode, Layout, STORAGE_KEY, Settings};
use super::slice_view::{SliceTextures, ViewContent};
use super::training::TrainingPanel;

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
    pub edit: Option<crate::annotate::EditSource>,
    /// Autosave interval for unsaved edits (default 60 s).
    pub autosave_every: Option<Duration>,
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

/// What a file dialog was opened for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DialogPurpose {
    OpenCt,
    OpenLayer(LayerKind),
    ChooseModelFile,
    ChooseModelFolder,
    SavePrediction { per_structure: bool },
    ChooseDataset,
    ChooseRunDir,
    OpenRun,
    ExportPlots,
    ExportCsv,
    ExportFigure,
    SaveEdits { per_structure: bool },
}

/// What a file dialog answered (`None`: cancelled).
pub(super) type DialogAnswer = (DialogPurpose, Option<PathBuf>);

/// UI-thread time per frame, for the status bar and benchmarks.
#[derive(Debug, Default, Clone)]
pub struct FrameTimes {
    recent: VecDeque<f64>,
}

impl FrameTimes {
    const KEEP: usize = 240;

    fn push(&mut self, ms: f64) {
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

/// The viewer application.
pub struct ViewerApp {
    /// Persisted settings.
    pub settings: Settings,
    worker: Worker,
    pending_jobs: usize,
    select_when_loaded: Option<u8>,
    after_ct: Vec<(PathBuf, LayerKind)>,
    pub(super) ct: Option<Arc<CtView>>,
    pub(super) gt: Option<Arc<LabelLayer>>,
    pub(super) pred: Option<Arc<LabelLayer>>,
    pub(super) comparison: Option<Arc<Comparison>>,
    /// Serial of the newest comparison requested, and of the one held in
    /// `comparison` (equal when no request is outstanding).
    pub(super) compare_requested: u64,
    pub(super) compare_held: u64,
    /// Crosshair voxel (display order); each view shows the slice through it.
    pub cursor: [usize; 3],
    /// Per view: zoom factor and pan offset in points.
    pub(super) zoom: HashMap<Axis, (f32, egui::Vec2)>,
    /// Colour and visibility of each structure.
    pub table: LabelTable,
    /// The selected structure.
    pub selected: Option<u8>,
    /// Structure table filter.
    pub search: String,
    /// Sort the structure table by Dice (worst first) instead of by group.
    pub sort_by_dice: bool,
    busy: Option<Busy>,
    messages: Vec<Message>,
    predict_summary: Option<String>,
    /// Voxel under the mouse.
    pub(super) hover: Option<[usize; 3]>,
    /// The view the mouse was last over (keys act on it).
    pub(super) active_axis: Axis,
    pub(super) hide_overlays: bool,
    pub(super) textures: SliceTextures,
    /// `Some(target is sRGB)` when slices are composited by the WGSL shader; `None`
    /// for the CPU compositor (no wgpu renderer, or switched off).
    pub(super) gpu_target: Option<bool>,
    frame_times: FrameTimes,
    dialogs: (Sender<DialogAnswer>, Receiver<DialogAnswer>),
    pub(super) ctx: egui::Context,
    /// The tab on show.
    pub mode: Mode,
    /// The Training tab.
    pub training: TrainingPanel,
    /// The annotator (editable layer, tools, undo, recovery, fine-tune).
    pub annotator: Annotator,
}

impl ViewerApp {
    /// Create the app: restore settings, start the worker, open what `startup` names.
    pub fn new(cc: &eframe::CreationContext<'_>, startup: Startup) -> Self {
        let settings: Settings = cc
            .storage
            .and_then(|s| eframe::get_value(s, STORAGE_KEY))
            .unwrap_or_default();
        Self::with_settings(cc, settings, startup)
    }

    /// Create the app with explicit settings (tests start from defaults). With a wgpu
    /// renderer, slices are composited by the WGSL shader.
    pub fn with_settings(
        cc: &eframe::CreationContext<'_>,
        settings: Settings,
        startup: Startup,
    ) -> Self {
        let ctx = &cc.egui_ctx;
        let gpu_target = cc.wgpu_render_state.as_ref().map(|rs| {
            rs.renderer
                .write()
                .callback_resources
                .insert(GpuViews::new(&rs.device, rs.target_format));
            rs.target_format.is_srgb()
        });
        let wake_ctx = ctx.clone();
        let worker = Worker::spawn(move || wake_ctx.request_repaint());
        let mut app = ViewerApp {
            settings,
            worker,
            pending_jobs: 0,
            select_when_loaded: None,
            after_ct: Vec::new(),
            ct: None,
            gt: None,
            pred: None,
            comparison: None,
            compare_requested: 0,
            compare_held: 0,
            cursor: [0; 3],
            zoom: HashMap::new(),
            table: LabelTable::from_catalog(catalog()),
            selected: None,
            search: String::new(),
            sort_by_dice: false,
            busy: None,
            messages: Vec::new(),
            predict_summary: None,
            hover: None,
            active_axis: Axis::Axial,
            hide_overlays: false,
            textures: SliceTextures::default(),
            gpu_target,
            frame_times: FrameTimes::default(),
            dialogs: unbounded(),
            ctx: ctx.clone(),
            mode: Mode::Viewer,
            training: TrainingPanel::default(),
            annotator: Annotator::new(startup.recovery_dir.clone()),
        };
        if let Some(model) = startup.model {
            app.settings.model = Some(model);
        }
        if let Some(layout) = startup.layout {
            app.settings.layout = layout;
        }
        if let Some(axis) = startup.axis {
            app.settings.main_axis = axis;
        }
        if let Some(compare) = startup.compare {
            app.settings.compare = compare;
        }
        if let Some(window) = startup.window {
            app.settings.window = window;
        }
        app.select_when_loaded = startup.select;
        app.annotator.edit_when_loaded = startup.edit;
        if let Some(every) = startup.autosave_every {
            app.annotator.autosave_every = every;
        }
        if let Some(ct) = startup.ct {
            app.open_ct(ct);
        } else if startup.sample {
            app.open_sample();
        }
        if let Some(gt) = startup.gt {
            app.open_layer(gt, LayerKind::GroundTruth);
        }
        if let Some(pred) = startup.pred {
            app.open_layer(pred, LayerKind::Prediction);
        }
        for run in &startup.runs {
            app.open_run(run);
        }
        if startup.train_tiny {
            super::training::Preset::Tiny.apply(&mut app.training.config);
            app.training.lr_text = app.training.config.optim.lr.to_string();
        }
        if let Some(out) = startup.train_out {
            app.training.run_dir_text = out.display().to_string();
        }
        if let Some(data) = &startup.train_data {
            app.mode = Mode::Training;
            app.training.set_dataset(data, ctx);
            if startup.train_start
                && let Err(e) = app.training.start(ctx)
            {
                app.message(Level::Error, format!("Cannot start training: {e}"));
            }
        }
        app
    }

    /// Open a run folder on the training dashboard and show the Training tab.
    pub fn open_run(&mut self, dir: &Path) {
        self.mode = Mode::Training;
        if let Err(e) = self.training.open_run(dir) {
            self.message(Level::Error, format!("Cannot open run: {e}"));
        }
    }

    /// Use a checkpoint (folder or weights file) for Predict, and show the viewer.
    pub fn use_checkpoint(&mut self, path: PathBuf) {
        self.message(
            Level::Info,
            format!("Model panel now uses {}", path.display()),
        );
        self.settings.model = Some(path);
        self.mode = Mode::Viewer;
    }

    /// Export the shown runs' curves as one PNG.
    pub fn export_plots(&mut self, path: &Path) {
        let t = &self.training;
        let chosen: Vec<&super::training::OpenRun> = t
            .runs
            .iter()
            .enumerate()
            .filter(|(i, r)| r.shown || t.primary == Some(*i))
            .map(|(_, r)| r)
            .collect();
        let names: Vec<String> = chosen.iter().map(|r| r.log.name()).collect();
        let steps: Vec<Vec<[f64; 2]>> = chosen
            .iter()
            .map(|r| crate::train::RunLog::smoothed(&r.log.step_losses(), t.smoothing))
            .collect();
        let curves: Vec<crate::train::history::RunCurves<'_>> = chosen
            .iter()
            .zip(&names)
            .zip(&steps)
            .map(|((r, name), steps)| crate::train::history::RunCurves {
                name,
                step_loss: steps,
                epochs: &r.log.epochs,
            })
            .collect();
        let result = crate::train::history::write_comparison_png(path, &curves);
        match result {
            Ok(()) => self.message(Level::Info, format!("Plots saved to {}", path.display())),
            Err(e) => self.message(Level::Error, format!("Export failed: {e}")),
        }
    }

    /// Export the primary run's metrics as CSV (epochs at `path`, steps beside it).
    pub fn export_csv(&mut self, path: &Path) {
        let Some(run) = self.training.primary_run() else {
            self.message(
                Level::Error,
                "Export failed: no run on the dashboard".into(),
            );
            return;
        };
        match run.log.write_csv(path) {
            Ok(steps) => self.message(
                Level::Info,
                format!(
                    "Metrics saved to {} and {}",
                    path.display(),
                    steps.display()
                ),
            ),
            Err(e) => self.message(Level::Error, format!("Export failed: {e}")),
        }
    }

    // ----- public API (menus, tests, command line) -----

    pub(super) fn submit(&mut self, job: Job) {
        self.pending_jobs += 1;
        self.worker.submit(job);
    }

    /// Open a CT file, DICOM folder or TotalSegmentator subject folder.
    pub fn open_ct(&mut self, path: PathBuf) {
        self.submit(Job::OpenCt(path));
    }

    /// Generate and show a synthetic phantom with its ground truth.
    pub fn open_sample(&mut self) {
        self.submit(Job::SamplePhantom { index: 0 });
    }

    /// Open a segmentation as the GT or prediction layer (after the CT if one is loading).
    pub fn open_layer(&mut self, path: PathBuf, layer: LayerKind) {
        match (&self.ct, self.pending_jobs) {
            (Some(ct), 0) => {
                let ct = ct.clone();
                self.submit(Job::OpenSegmentation { path, layer, ct });
            }
            (_, n) if n > 0 => self.after_ct.push((path, layer)),
            _ => self.message(Level::Error, "Open a CT before its segmentations.".into()),
        }
    }

    /// Run the model on the open CT.
    pub fn predict(&mut self) {
        let Some(ct) = self.ct.clone() else {
            self.message(Level::Error, "Open a CT first.".into());
            return;
        };
        let Some(model) = self.settings.model.clone() else {
            self.message(
                Level::Error,
                "Choose a model (checkpoint or run folder) first.".into(),
            );
            return;
        };
        let options = PredictOptions {
            threshold: self.settings.threshold,
            smooth: self.settings.smooth,
            largest_component: self.settings.largest_component,
            ..PredictOptions::default()
        };
        self.submit(Job::Predict {
            model,
            backend: self.settings.backend,
            precision: self.settings.precision,
            options,
            ct,
        });
    }

    /// Save the prediction layer on the CT's grid.
    pub fn save_prediction(&mut self, path: PathBuf, per_structure: bool) {
        match (&self.ct, &self.pred) {
            (Some(ct), Some(pred)) => {
                let job = Job::Save {
                    path,
                    per_structure,
                    layer: pred.clone(),
                    ct: ct.clone(),
                };
                self.submit(job);
            }
            _ => self.message(Level::Error, "There is no prediction to save.".into()),
        }
    }

    /// Stop the running job.
    pub fn cancel(&self) {
        self.worker.cancel();
    }

    /// Apply worker events until every submitted job is done or `timeout` passes;
    /// `true` when idle (tests and scripted use).
    pub fn wait_idle(&mut self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while self.pending_jobs > 0 {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if let Some(e) = self.worker.recv_timeout(left) {
                self.handle(e);
            }
        }
        true
    }

    /// The open CT.
    pub fn ct(&self) -> Option<&Arc<CtView>> {
        self.ct.as_ref()
    }

    /// A label layer.
    pub fn layer(&self, kind: LayerKind) -> Option<&Arc<LabelLayer>> {
        match kind {
            LayerKind::GroundTruth => self.gt.as_ref(),
            LayerKind::Prediction => self.pred.as_ref(),
        }
    }

    /// The GT-vs-prediction comparison, when both layers are loaded.
    pub fn comparison(&self) -> Option<&Arc<Comparison>> {
        self.comparison.as_ref()
    }

    /// How many whole-volume comparisons have been requested from the worker so far
    /// (edits update the comparison in place instead).
    pub fn compare_requests(&self) -> u64 {
        self.compare_requested
    }

    /// Messages shown to the user, oldest first.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The running job.
    pub fn busy(&self) -> Option<&Busy> {
        self.busy.as_ref()
    }

    /// Summary line of the last prediction.
    pub fn predict_summary(&self) -> Option<&str> {
        self.predict_summary.as_deref()
    }

    /// Whether slices are composited on the GPU (WGSL shader).
    pub fn gpu_compositing(&self) -> bool {
        self.gpu_target.is_some()
    }

    /// Use the CPU reference compositor even when a wgpu renderer is present.
    pub fn force_cpu_compositing(&mut self) {
        self.gpu_target = None;
        self.textures = SliceTextures::default();
    }

    /// Slices composited (CPU) or uploaded (GPU) so far.
    pub fn slice_rebuilds(&self) -> u64 {
        self.textures.rebuilds
    }

    /// Forget the recorded frame times (benchmarks measure a stretch of frames).
    pub fn reset_frame_times(&mut self) {
        self.frame_times = FrameTimes::default();
    }

    /// UI-thread frame times.
    pub fn frame_times(&self) -> &FrameTimes {
        &self.frame_times
    }

    /// Slice shown by `axis` (the crosshair's coordinate along its normal).
    pub fn slice_index(&self, axis: Axis) -> usize {
        self.cursor[axis.normal_axis()]
    }

    /// Number of slices along `axis` (0 without a CT).
    pub fn slice_count(&self, axis: Axis) -> usize {
        self.ct
            .as_ref()
            .map_or(0, |ct| ct.display.shape()[axis.normal_axis()])
    }

    /// Move `axis` by `delta` slices (clamped).
    pub fn step_slice(&mut self, axis: Axis, delta: i64) {
        let n = self.slice_count(axis);
        if n == 0 {
            return;
        }
        let a = axis.normal_axis();
        self.cursor[a] = (self.cursor[a] as i64 + delta).clamp(0, n as i64 - 1) as usize;
    }

    /// Show or hide every structure.
    pub fn set_all_visible(&mut self, visible: bool) {
        for s in catalog().all() {
            self.table.visible[s.label as usize] = visible;
        }
    }

    /// Select a structure and move the crosshair to where it is largest (GT first).
    pub fn select_structure(&mut self, label: u8) {
        self.selected = Some(label);
        let focus = [&self.gt, &self.pred]
            .into_iter()
            .flatten()
            .find_map(|l| l.focus(label));
        if let Some(v) = focus {
            self.cursor = v;
        }
    }

    /// Jump the axial view to the next slice where GT and prediction disagree most about
    /// the selected structure.
    pub fn next_disagreement(&mut self) {
        let (Some(c), Some(label)) = (&self.comparison, self.selected) else {
            return;
        };
        if let Some(k) = c.next_disagreement(label, self.cursor[2]) {
            self.cursor[2] = k;
        }
    }

    /// Grid of `axis` for the open CT.
    pub fn grid(&self, axis: Axis) -> Option<SliceGrid> {
        self.ct.as_ref().map(|ct| {
            let g = ct.display.geometry();
            SliceGrid::new(axis, g.shape, g.spacing())
        })
    }

    pub(super) fn message(&mut self, level: Level, text: String) {
        if level == Level::Error {
            log::error!("{text}");
        }
        self.messages.push(Message { level, text });
        if self.messages.len() > 50 {
            self.messages.remove(0);
        }
    }

    pub(super) fn ct_ref(&self) -> Option<&CtView> {
        self.ct.as_deref()
    }

    pub(super) fn gt_ref(&self) -> Option<&LabelLayer> {
        self.gt.as_deref()
    }

    pub(super) fn pred_ref(&self) -> Option<&LabelLayer> {
        self.pred.as_deref()
    }

    // ----- events -----

    fn handle(&mut self, event: Event) {
        match event {
            Event::Started { what } => {
                self.busy = Some(Busy {
                    what,
                    progress: None,
                    since: Instant::now(),
                })
            }
            Event::Progress { done, total } => {
                if let Some(b) = &mut self.busy {
                    b.progress = Some((done, total));
                }
            }
            Event::CtOpened { ct, gt } => {
                self.leave_editing_for_new_ct();
                if let Some(p) = &ct.path {
                    self.settings.remember(p.clone());
                }
                for w in ct.warnings.clone() {
                    self.message(Level::Warning, w);
                }
                let [ni, nj, nk] = ct.display.shape();
                self.cursor = [ni / 2, nj / 2, nk / 2];
                self.zoom.clear();
                self.ct = Some(ct);
                self.gt = None;
                self.pred = None;
                self.comparison = None;
                self.predict_summary = None;
                self.selected = None;
                if let Some(gt) = gt {
                    self.set_layer(LayerKind::GroundTruth, gt);
                }
                for (path, layer) in std::mem::take(&mut self.after_ct) {
                    if let Some(ct) = self.ct.clone() {
                        self.submit(Job::OpenSegmentation { path, layer, ct });
                    }
                }
                self.ct_opened_for_recovery();
            }
            Event::LayerReady {
                layer,
                data,
                summary,
            } => {
                if summary.is_some() {
                    self.predict_summary = summary;
                }
                if layer == LayerKind::GroundTruth && self.annotator.is_editing() {
                    // The edited layer keeps the GT slot; the file's labels come back
                    // when editing stops.
                    self.message(
                        Level::Info,
                        "Ground truth loaded; it is shown when editing stops".into(),
                    );
                    self.annotator_replace_gt(data);
                } else {
                    self.set_layer(layer, data);
                    if layer == LayerKind::Prediction {
                        self.fine_tune_predicted();
                    }
                }
            }
            Event::Compared { comparison, serial } => {
                // A result overtaken by a newer request would show stale numbers.
                if serial == self.compare_requested {
                    self.comparison = Some(comparison);
                    self.compare_held = serial;
                    self.fine_tune_compared();
                }
            }
            Event::Saved(path) => {
                self.message(Level::Info, format!("Saved {}", path.display()));
                self.saved(&path);
            }
            Event::CaseAdded { root, dir } => self.case_added(root, &dir),
            Event::Failed { what, message } => {
                self.message(Level::Error, format!("{what} failed: {message}"));
                // Layers queued behind a CT that failed to open have nothing to match.
                self.after_ct.clear();
            }
            Event::Cancelled { what } => self.message(Level::Info, format!("{what}: cancelled")),
            Event::Idle => {
                self.pending_jobs = self.pending_jobs.saturating_sub(1);
                if self.pending_jobs == 0 {
                    self.busy = None;
                }
            }
        }
    }

    pub(super) fn set_layer(&mut self, kind: LayerKind, data: Arc<LabelLayer>) {
        for w in data.warnings.clone() {
            self.message(Level::Warning, w);
        }
        match kind {
            LayerKind::GroundTruth => self.gt = Some(data),
            LayerKind::Prediction => self.pred = Some(data),
        }
        if let Some(label) = self.select_when_loaded.take() {
            self.select_structure(label);
        }
        self.comparison = None;
        self.request_compare();
    }

    /// Compare GT and prediction in the worker (when both are there).
    pub(super) fn request_compare(&mut self) {
        if let (Some(gt), Some(pred)) = (self.gt.clone(), self.pred.clone()) {
            self.compare_requested += 1;
            let serial = self.compare_requested;
            self.submit(Job::Compare { gt, pred, serial });
        }
    }

    fn poll(&mut self) {
        while let Some(e) = self.worker.try_recv() {
            self.handle(e);
        }
        while let Ok((purpose, path)) = self.dialogs.1.try_recv() {
            if let Some(path) = path {
                self.dialog_done(purpose, path);
            }
        }
    }

    /// Open a native file dialog on its own thread; the answer arrives through `poll`.
    pub(super) fn dialog(&self, purpose: DialogPurpose) {
        let tx = self.dialogs.0.clone();
        let ctx = self.ctx.clone();
        let start_dir = self
            .ct
            .as_ref()
            .and_then(|c| c.path.as_ref())
            .and_then(|p| p.parent().map(Path::to_path_buf));
        std::thread::spawn(move || {
            let mut d = rfd::FileDialog::new();
            if let Some(dir) = start_dir {
                d = d.set_directory(dir);
            }
            let nifti = ["nii", "gz"];
            let path = match purpose {
                DialogPurpose::OpenCt => d.add_filter("NIfTI", &nifti).pick_file(),
                DialogPurpose::OpenLayer(_) => d.add_filter("NIfTI", &nifti).pick_file(),
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
                DialogPurpose::ChooseDataset
                | DialogPurpose::ChooseRunDir
                | DialogPurpose::OpenRun => d.pick_folder(),
                DialogPurpose::ExportPlots => d
                    .add_filter("PNG", &["png"])
                    .set_file_name("training.png")
                    .save_file(),
                DialogPurpose::ExportCsv => d
                    .add_filter("CSV", &["csv"])
                    .set_file_name("metrics.csv")
                    .save_file(),
            };
            let _ = tx.send((purpose, path));
            ctx.request_repaint();
        });
    }

    /// A folder dialog for opening (DICOM series or subject folder).
    pub(super) fn folder_dialog(&self, purpose: DialogPurpose) {
        let tx = self.dialogs.0.clone();
        let ctx = self.ctx.clone();
        std::thread::spawn(move || {
            let path = rfd::FileDialog::new().pick_folder();
            let _ = tx.send((purpose, path));
            ctx.request_repaint();
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

    /// Write the four-panel figure (CT | GT | Pred | overlay) of the main view.
    pub fn export_figure(&mut self, path: &Path) {
        let result = super::figure::export(self, path);
        match result {
            Ok(()) => self.message(Level::Info, format!("Figure saved to {}", path.display())),
            Err(e) => self.message(Level::Error, format!("Export failed: {e:#}")),
        }
    }

    fn handle_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        for path in dropped {
            let is_labels = crate::io::nifti::read_header(&path)
                .map(|(_, info)| info.datatype == crate::io::nifti::DataType::U8)
                .unwrap_or(false);
            if is_labels && self.ct.is_some() {
                let kind = if self.gt.is_none() {
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

    fn handle_keys(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        self.annotation_keys(ctx);
        let axis = self.active_axis;
        let (up, down, pgup, pgdn, next, hide) = ctx.input(|i| {
            (
                i.key_pressed(egui::Key::ArrowUp),
                i.key_pressed(egui::Key::ArrowDown),
                i.key_pressed(egui::Key::PageUp),
                i.key_pressed(egui::Key::PageDown),
                i.key_pressed(egui::Key::N),
                i.key_down(egui::Key::H),
            )
        });
        self.hide_overlays = hide;
        let delta = i64::from(up) - i64::from(down) + 10 * (i64::from(pgup) - i64::from(pgdn));
        if delta != 0 {
            self.step_slice(axis, delta);
        }
        if next {
            self.next_disagreement();
        }
    }

    // ----- drawing -----

    fn menu_bar(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open CT…").clicked() {
                    self.dialog(DialogPurpose::OpenCt);
                }
                if ui.button("Open DICOM or subject folder…").clicked() {
                    self.folder_dialog(DialogPurpose::OpenCt);
                }
                ui.separator();
                let has_ct = self.ct.is_some();
                if ui
                    .add_enabled(has_ct, egui::Button::new("Open ground truth…"))
                    .clicked()
                {
                    self.dialog(DialogPurpose::OpenLayer(LayerKind::GroundTruth));
                }
                if ui
                    .add_enabled(has_ct, egui::Button::new("Open prediction…"))
                    .clicked()
                {
                    self.dialog(DialogPurpose::OpenLayer(LayerKind::Prediction));
                }
                ui.separator();
                let has_pred = self.pred.is_some();
                if ui
                    .add_enabled(has_pred, egui::Button::new("Save prediction…"))
                    .clicked()
                {
                    self.dialog(DialogPurpose::SavePrediction {
                        per_structure: false,
                    });
                }
                if ui
                    .add_enabled(has_pred, egui::Button::new("Save prediction as folder…"))
                    .clicked()
                {
                    self.dialog(DialogPurpose::SavePrediction {
                        per_structure: true,
                    });
                }
                if ui
                    .add_enabled(has_ct, egui::Button::new("Export figure…"))
                    .clicked()
                {
                    self.dialog(DialogPurpose::ExportFigure);
                }
                ui.separator();
                ui.menu_button("Recent", |ui| {
                    if self.settings.recent.is_empty() {
                        ui.label("(none)");
                    }
                    for p in self.settings.recent.clone() {
                        if ui.button(p.display().to_string()).clicked() {
                            self.open_ct(p);
                        }
                    }
                });
                if ui.button("Sample data").clicked() {
                    self.open_sample();
                }
                ui.separator();
                if ui.button("Open run folder…").clicked() {
                    self.folder_dialog(DialogPurpose::OpenRun);
                }
            });
            ui.menu_button("Edit", |ui| {
                let editing = self.annotator.is_editing();
                let (undo, redo) = self.annotator.session.as_ref().map_or((None, None), |s| {
                    (
                        s.history().undo_description().map(str::to_string),
                        s.history().redo_description().map(str::to_string),
                    )
                });
                let undo_label = undo.map_or("Undo".to_string(), |d| format!("Undo {d}"));
                if ui
                    .add_enabled(
                        editing && undo_label != "Undo",
                        egui::Button::new(undo_label).shortcut_text("Ctrl+Z"),
                    )
                    .clicked()
                {
                    self.undo();
                }
                let redo_label = redo.map_or("Redo".to_string(), |d| format!("Redo {d}"));
                if ui
                    .add_enabled(
                        editing && redo_label != "Redo",
                        egui::Button::new(redo_label).shortcut_text("Ctrl+Shift+Z"),
                    )
                    .clicked()
                {
                    self.redo();
                }
                ui.separator();
                if ui
                    .add_enabled(
                        editing,
                        egui::Button::new("Save segmentation").shortcut_text("Ctrl+S"),
                    )
                    .clicked()
                {
                    self.save_edits_again();
                }
                if ui
                    .add_enabled(editing, egui::Button::new("Save segmentation as…"))
                    .clicked()
                {
                    self.dialog(DialogPurpose::SaveEdits {
                        per_structure: false,
                    });
                }
                if ui
                    .add_enabled(editing, egui::Button::new("Save segmentation as folder…"))
                    .clicked()
                {
                    self.dialog(DialogPurpose::SaveEdits {
                        per_structure: true,
                    });
                }
            });
            ui.menu_button("View", |ui| {
                for layout in Layout::ALL {
                    ui.radio_value(&mut self.settings.layout, layout, layout.name());
                }
                ui.separator();
                for axis in Axis::ALL {
                    ui.radio_value(&mut self.settings.main_axis, axis, axis.name());
                }
                ui.separator();
                ui.radio_value(&mut self.settings.compare, CompareMode::Overlay, "Overlay");
                ui.radio_value(
                    &mut self.settings.compare,
                    CompareMode::Difference,
                    "Difference (TP/FP/FN)",
                );
                ui.separator();
                if ui.button("Reset zoom").clicked() {
                    self.zoom.clear();
                }
                ui.checkbox(&mut self.settings.show_frame_time, "Show frame time");
            });
            ui.separator();
            ui.selectable_value(&mut self.mode, Mode::Viewer, "Viewer");
            if ui
                .selectable_label(self.mode == Mode::Training, "Training")
                .clicked()
            {
                self.mode = Mode::Training;
            }
            if self.training.is_training() {
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
    }

    fn toolbar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            egui::ComboBox::from_label("Window")
                .selected_text(preset_name(self.settings.window))
                .show_ui(ui, |ui| {
                    for p in PRESETS {
                        ui.selectable_value(&mut self.settings.window, p.window, p.name);
                    }
                });
            let l = ui.label("Level");
            ui.add(egui::DragValue::new(&mut self.settings.window.center).speed(2.0))
                .labelled_by(l.id);
            let w = ui.label("Width");
            ui.add(
                egui::DragValue::new(&mut self.settings.window.width)
                    .speed(2.0)
                    .range(1.0..=8000.0),
            )
            .labelled_by(w.id);
            ui.separator();
            for layout in Layout::ALL {
                ui.selectable_value(&mut self.settings.layout, layout, layout.name());
            }
            ui.separator();
            for axis in Axis::ALL {
                ui.selectable_value(&mut self.settings.main_axis, axis, axis.name());
            }
            ui.separator();
            ui.selectable_value(&mut self.settings.compare, CompareMode::Overlay, "Overlay");
            ui.selectable_value(
                &mut self.settings.compare,
                CompareMode::Difference,
                "Difference",
            );
        });
        ui.horizontal_wrapped(|ui| {
            for (kind, show, style) in [
                (
                    LayerKind::GroundTruth,
                    &mut self.settings.show_gt,
                    &mut self.settings.gt_style,
                ),
                (
                    LayerKind::Prediction,
                    &mut self.settings.show_pred,
                    &mut self.settings.pred_style,
                ),
            ] {
                ui.checkbox(show, kind.name());
                egui::ComboBox::from_id_salt(("mode", kind.name()))
                    .selected_text(style.mode.name())
                    .width(110.0)
                    .show_ui(ui, |ui| {
                        for m in crate::render::OverlayMode::ALL {
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

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            if let Some(b) = self.busy.clone() {
                ui.spinner();
                ui.label(&b.what);
                if let Some((done, total)) = b.progress {
                    ui.add(
                        egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                            .desired_width(160.0)
                            .text(format!("{done}/{total}")),
                    );
                }
                if ui.button("Cancel").clicked() {
                    self.cancel();
                }
                ui.separator();
            }
            if let (Some(ct), Some(v)) = (&self.ct, self.hover) {
                let hu = ct.display.get(v).unwrap_or(0);
                let w = ct.display.geometry().world_of(v.map(|x| x as f64));
                let mut text = format!(
                    "voxel ({}, {}, {})  ({:.1}, {:.1}, {:.1}) mm  HU {hu}",
                    v[0], v[1], v[2], w[0], w[1], w[2]
                );
                let gt_name = if self.annotator.is_editing() {
                    "Edit"
                } else {
                    "GT"
                };
                for (name, layer) in [(gt_name, &self.gt), ("Pred", &self.pred)] {
                    if let Some(l) = layer {
                        let label = l.display.get(v).unwrap_or(0);
                        let s = if label == 0 {
                            "–".to_string()
                        } else {
                            catalog().name_of(label)
                        };
                        text.push_str(&format!("  {name}: {s}"));
                    }
                }
                ui.monospace(text);
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if let Some((median, max)) = self
                    .frame_times
                    .summary()
                    .filter(|_| self.settings.show_frame_time)
                {
                    ui.small(format!("UI {median:.1} ms/frame (max {max:.1})"));
                }
            });
        });
    }

    fn messages_area(&mut self, ui: &mut egui::Ui) {
        let mut dismiss = None;
        for (i, m) in self.messages.iter().enumerate().rev().take(3) {
            ui.horizontal(|ui| {
                let color = match m.level {
                    Level::Info => ui.visuals().text_color(),
                    Level::Warning => Color32::from_rgb(230, 180, 60),
                    Level::Error => Color32::from_rgb(240, 90, 80),
                };
                if ui.small_button("×").on_hover_text("Dismiss").clicked() {
                    dismiss = Some(i);
                }
                ui.label(RichText::new(&m.text).color(color));
            });
        }
        if let Some(i) = dismiss {
            self.messages.remove(i);
        }
    }

    fn model_panel(&mut self, ui: &mut egui::Ui) {
        ui.heading("Model");
        let model_text = self
            .settings
            .model
            .as_ref()
            .map_or("(none)".to_string(), |p| p.display().to_string());
        ui.label(RichText::new(model_text).monospace().small());
        ui.horizontal(|ui| {
            if ui.button("Checkpoint file…").clicked() {
                self.dialog(DialogPurpose::ChooseModelFile);
            }
            if ui.button("Run folder…").clicked() {
                self.dialog(DialogPurpose::ChooseModelFolder);
            }
        });
        egui::ComboBox::from_label("Backend")
            .selected_text(self.settings.backend.name())
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut self.settings.backend, BackendKind::Wgpu, "wgpu");
                if cfg!(feature = "cuda") {
                    ui.selectable_value(&mut self.settings.backend, BackendKind::Cuda, "cuda");
                }
                ui.selectable_value(&mut self.settings.backend, BackendKind::Cpu, "cpu");
            });
        egui::ComboBox::from_label("Precision")
            .selected_text(self.settings.precision.name())
            .show_ui(ui, |ui| {
                for p in [Precision::F32, Precision::F16, Precision::Bf16] {
                    ui.selectable_value(&mut self.settings.precision, p, p.name());
                }
            })
            .response
            .on_hover_text(
                "f16/bf16 halve memory traffic on GPUs (tensor cores on NVIDIA); \
                 the device must support the type",
            );
        ui.add(egui::Slider::new(&mut self.settings.threshold, 0.05..=0.95).text("threshold"));
        ui.checkbox(&mut self.settings.smooth, "Smooth across slices");
        ui.checkbox(&mut self.settings.largest_component, "Largest component");
        let can = self.ct.is_some() && self.settings.model.is_some() && self.busy.is_none();
        if ui.add_enabled(can, egui::Button::new("Predict")).clicked() {
            self.predict();
        }
        if let Some(s) = &self.predict_summary {
            ui.label(RichText::new(s).small());
        }
        ui.separator();
        ui.heading("Layers");
        for (name, layer) in [("GT", &self.gt), ("Pred", &self.pred)] {
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
        if let Some(c) = &self.comparison {
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
    }

    fn start_screen(&mut self, ui: &mut egui::Ui) {
        ui.vertical_centered(|ui| {
            ui.add_space(60.0);
            ui.heading(RichText::new("ctseg").size(32.0));
            ui.label("CT organ segmentation workstation");
            ui.add_space(20.0);
            if ui.button("Open CT…").clicked() {
                self.dialog(DialogPurpose::OpenCt);
            }
            if ui.button("Open DICOM or subject folder…").clicked() {
                self.folder_dialog(DialogPurpose::OpenCt);
            }
            if ui.button("Sample data").clicked() {
                self.open_sample();
            }
            ui.label(RichText::new("…or drop a file or folder here").weak());
            if !self.settings.recent.is_empty() {
                ui.add_space(20.0);
                ui.label(RichText::new("Recent").strong());
                for p in self.settings.recent.clone() {
                    if ui.link(p.display().to_string()).clicked() {
                        self.open_ct(p);
                    }
                }
            }
        });
    }

    fn views(&mut self, ui: &mut egui::Ui) {
        let rect = ui.available_rect_before_wrap();
        let gap = 4.0;
        let main = self.settings.main_axis;
        let cells: Vec<(Axis, ViewContent)> = match self.settings.layout {
            Layout::Single => vec![(main, ViewContent::Overlay)],
            Layout::ThreeViews => std::iter::once(main)
                .chain(Axis::ALL.into_iter().filter(|&a| a != main))
                .map(|a| (a, ViewContent::Overlay))
                .collect(),
            Layout::SideBySide => vec![
                (main, ViewContent::Only(LayerKind::GroundTruth)),
                (main, ViewContent::Only(LayerKind::Prediction)),
            ],
        };
        let rects: Vec<egui::Rect> = match cells.len() {
            // Three views: the main axis large on the left, the other two stacked.
            3 => {
                let half = (rect.width() - gap) / 2.0;
                let left = egui::Rect::from_min_size(rect.min, egui::vec2(half, rect.height()));
                let h = (rect.height() - gap) / 2.0;
                let right_x = rect.min.x + half + gap;
                vec![
                    left,
                    egui::Rect::from_min_size(egui::pos2(right_x, rect.min.y), egui::vec2(half, h)),
                    egui::Rect::from_min_size(
                        egui::pos2(right_x, rect.min.y + h + gap),
                        egui::vec2(half, h),
                    ),
                ]
            }
            n => {
                let w = (rect.width() - gap * (n as f32 - 1.0)) / n as f32;
                (0..n)
                    .map(|i| {
                        egui::Rect::from_min_size(
                            rect.min + egui::vec2(i as f32 * (w + gap), 0.0),
                            egui::vec2(w, rect.height()),
                        )
                    })
                    .collect()
            }
        };
        for (i, ((axis, content), r)) in cells.into_iter().zip(rects).enumerate() {
            super::slice_view::show(self, ui, r, axis, content, i);
        }
        ui.allocate_rect(rect, egui::Sense::hover());
    }
}

fn preset_name(w: Window) -> String {
    PRESETS
        .iter()
        .find(|p| p.window == w)
        .map_or_else(|| "Custom".to_string(), |p| p.name.to_string())
}

impl eframe::App for ViewerApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let start = Instant::now();
        let ctx = ui.ctx().clone();
        self.poll();
        self.training.poll(&ctx);
        for (level, text) in self.training.take_notices() {
            self.message(level, text);
        }
        self.poll_annotator(&ctx);
        self.handle_dropped_files(&ctx);
        if self.mode == Mode::Viewer {
            self.handle_keys(&ctx);
        }

        egui::Panel::top("menu").show(ui, |ui| {
            self.menu_bar(ui);
            if self.ct.is_some() && self.mode == Mode::Viewer {
                self.toolbar(ui);
            }
        });
        egui::Panel::bottom("status").show(ui, |ui| {
            self.messages_area(ui);
            self.status_bar(ui);
        });
        if self.mode == Mode::Training {
            super::training::show(self, ui);
            if self.training.is_training() || !self.training.runs.is_empty() {
                // Follow the runs' files and the training thread.
                ctx.request_repaint_after(Duration::from_millis(250));
            }
        } else if self.ct.is_some() {
            egui::Panel::left("structures")
                .default_size(330.0)
                .show(ui, |ui| super::structures_panel::show(self, ui));
            egui::Panel::right("model")
                .default_size(280.0)
                .show(ui, |ui| {
                    egui::ScrollArea::vertical().show(ui, |ui| {
                        super::annotate::panel(self, ui);
                        ui.separator();
                        self.model_panel(ui);
                    });
                });
        }
        if self.mode == Mode::Viewer {
            egui::CentralPanel::default().show(ui, |ui| {
                if self.ct.is_some() {
                    self.views(ui);
                } else {
                    self.start_screen(ui);
                }
            });
        }
        super::annotate::modals(self, &ctx);
        if self.busy.is_some() {
            // Keep the spinner turning while the worker runs.
            ctx.request_repaint_after(Duration::from_millis(100));
        }
        self.frame_times.push(start.elapsed().as_secs_f64() * 1e3);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, STORAGE_KEY, &self.settings);
    }

    fn on_exit(&mut self) {
        self.finish_writers();
    }
}
