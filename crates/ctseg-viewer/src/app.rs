//! The app shell: the viewer's state, the worker and task plumbing, worker events,
//! and the frame (panels laid out, their commands applied afterwards).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;

use ctseg_core::render::LabelTable;
use ctseg_core::slicing::{Axis, SliceGrid};
use ctseg_core::structures::catalog;
use ctseg_core::study::{Comparison, CtView, LabelLayer, LayerKind};
use ctseg_ml::infer::PredictOptions;

pub use crate::state::{Busy, FrameTimes, Level, Message, Mode, Startup};

use crate::annotate::Annotator;
use crate::gpu::GpuViews;
use crate::panels;
use crate::settings::{Layout, STORAGE_KEY, Settings};
use crate::slice_view::{SliceTextures, ViewContent};
use crate::tasks::Tasks;
use crate::training::TrainingPanel;
use crate::worker::{Event, Job, Worker};

/// The viewer application.
pub struct ViewerApp {
    /// Persisted settings.
    pub settings: Settings,
    pub(crate) worker: Worker,
    pub(crate) pending_jobs: usize,
    select_when_loaded: Option<u8>,
    after_ct: Vec<(PathBuf, LayerKind)>,
    pub(crate) ct: Option<Arc<CtView>>,
    pub(crate) gt: Option<Arc<LabelLayer>>,
    pub(crate) pred: Option<Arc<LabelLayer>>,
    pub(crate) comparison: Option<Arc<Comparison>>,
    /// Serial of the newest comparison requested, and of the one held in
    /// `comparison` (equal when no request is outstanding).
    pub(crate) compare_requested: u64,
    pub(crate) compare_held: u64,
    /// Crosshair voxel (display order); each view shows the slice through it.
    pub cursor: [usize; 3],
    /// Per view: zoom factor and pan offset in points.
    pub(crate) zoom: HashMap<Axis, (f32, egui::Vec2)>,
    /// Colour and visibility of each structure.
    pub table: LabelTable,
    /// The selected structure.
    pub selected: Option<u8>,
    /// The structure table's own state (search, sort order).
    pub structures: panels::structures::StructuresPanel,
    busy: Option<Busy>,
    messages: Vec<Message>,
    predict_summary: Option<String>,
    /// Voxel under the mouse.
    pub(crate) hover: Option<[usize; 3]>,
    /// The view the mouse was last over (keys act on it).
    pub(crate) active_axis: Axis,
    pub(crate) hide_overlays: bool,
    pub(crate) textures: SliceTextures,
    /// `Some(target is sRGB)` when slices are composited by the WGSL shader; `None`
    /// for the CPU compositor (no wgpu renderer, or switched off).
    pub(crate) gpu_target: Option<bool>,
    pub(crate) frame_times: FrameTimes,
    /// Background tasks (dialogs, exports, phantom writing, dropped files).
    pub(crate) tasks: Tasks,
    pub(crate) ctx: egui::Context,
    /// The tab on show.
    pub mode: Mode,
    /// The Training tab.
    pub training: TrainingPanel,
    /// The annotator (editable layer, tools, undo, recovery, fine-tune).
    pub annotator: Annotator,
    /// The PACS browser (File → Open from PACS…).
    pub pacs: crate::pacs::PacsBrowser,
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
            structures: Default::default(),
            busy: None,
            messages: Vec::new(),
            predict_summary: None,
            hover: None,
            active_axis: Axis::Axial,
            hide_overlays: false,
            textures: SliceTextures::default(),
            gpu_target,
            frame_times: FrameTimes::default(),
            tasks: Tasks::new({
                let ctx = ctx.clone();
                move || ctx.request_repaint()
            }),
            ctx: ctx.clone(),
            mode: Mode::Viewer,
            training: TrainingPanel::default(),
            annotator: Annotator::new(startup.recovery_dir.clone()),
            pacs: Default::default(),
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
        if let Some(pacs) = startup.pacs {
            app.pacs_start(pacs);
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

    // ----- public API (menus, tests, command line) -----

    pub(crate) fn submit(&mut self, job: Job) {
        self.pending_jobs += 1;
        self.worker.submit(job);
    }

    /// Open a CT file, DICOM folder or TotalSegmentator subject folder.
    pub fn open_ct(&mut self, path: PathBuf) {
        self.submit(Job::OpenCt(path));
    }

    /// Open the bundled sample CT (s0001) with the full model's segmentation as
    /// ground truth and the fast model's as prediction.
    pub fn open_sample(&mut self) {
        self.submit(Job::OpenSample {
            dir: ctseg_core::paths::sample_dir(),
        });
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
                let model = self.prediction_model_name();
                let job = Job::Save {
                    path,
                    model,
                    per_structure,
                    layer: pred.clone(),
                    ct: ct.clone(),
                };
                self.submit(job);
            }
            _ => self.message(Level::Error, "There is no prediction to save.".into()),
        }
    }

    /// What made the prediction layer, for a DICOM Segmentation: the model when it
    /// was predicted here, the file when it was opened.
    pub(crate) fn prediction_model_name(&self) -> Option<String> {
        match &self.pred.as_ref()?.path {
            Some(file) => Some(format!("prediction {}", file_stem(file))),
            None => self
                .settings
                .model
                .as_deref()
                .map(ctseg_core::io::dicom::seg::model_name),
        }
    }

    /// Stop the running job.
    pub fn cancel(&self) {
        self.worker.cancel();
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

    pub(crate) fn message(&mut self, level: Level, text: String) {
        if level == Level::Error {
            log::error!("{text}");
        }
        self.messages.push(Message { level, text });
        if self.messages.len() > 50 {
            self.messages.remove(0);
        }
    }

    pub(crate) fn ct_ref(&self) -> Option<&CtView> {
        self.ct.as_deref()
    }

    pub(crate) fn gt_ref(&self) -> Option<&LabelLayer> {
        self.gt.as_deref()
    }

    pub(crate) fn pred_ref(&self) -> Option<&LabelLayer> {
        self.pred.as_deref()
    }

    // ----- events -----

    pub(crate) fn handle(&mut self, event: Event) {
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

    pub(crate) fn set_layer(&mut self, kind: LayerKind, data: Arc<LabelLayer>) {
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
    pub(crate) fn request_compare(&mut self) {
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
        for command in self.tasks.finished() {
            self.apply(command);
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

    /// What the menu bar shows.
    fn menu_view(&self) -> panels::menu::MenuView {
        let (undo, redo) = self.annotator.session.as_ref().map_or((None, None), |s| {
            (
                s.history().undo_description().map(str::to_string),
                s.history().redo_description().map(str::to_string),
            )
        });
        panels::menu::MenuView {
            has_ct: self.ct.is_some(),
            has_pred: self.pred.is_some(),
            dicom_seg_refusal: self.ct.as_ref().and_then(|ct| ct.dicom_seg_refusal()),
            pacs_send_refusal: self.pacs_send_refusal(),
            editing: self.annotator.is_editing(),
            undo,
            redo,
            training: self.training.is_training(),
        }
    }

    /// What the status bar shows: the worker's job (cancellable) or else the oldest
    /// background task, and the voxel under the mouse.
    fn status_view(&self) -> panels::status::StatusView {
        let task = self.tasks.running().first().map(|t| Busy {
            what: t.name.clone(),
            progress: t.progress(),
            since: t.since,
        });
        panels::status::StatusView {
            cancellable: self.busy.is_some(),
            busy: self.busy.clone().or(task),
            hover: self.hover_text(),
            frame_time: self
                .frame_times
                .summary()
                .filter(|_| self.settings.show_frame_time),
        }
    }

    /// Voxel, world position, HU and the structures under the mouse.
    fn hover_text(&self) -> Option<String> {
        let (ct, v) = (self.ct.as_ref()?, self.hover?);
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
        Some(text)
    }

    /// What the structure table shows.
    fn structures_view(&self) -> panels::structures::StructuresView {
        panels::structures::StructuresView {
            voxel_mm3: self
                .ct
                .as_ref()
                .map_or(0.0, |ct| ct.display.geometry().voxel_volume_mm3()),
            gt: self.gt.clone(),
            pred: self.pred.clone(),
            comparison: self.comparison.clone(),
            selected: self.selected,
        }
    }

    /// What the model panel shows besides the settings.
    fn model_view(&self) -> panels::model::ModelView {
        panels::model::ModelView {
            has_ct: self.ct.is_some(),
            busy: self.busy.is_some(),
            predict_summary: self.predict_summary.clone(),
            gt: self.gt.clone(),
            pred: self.pred.clone(),
            comparison: self.comparison.clone(),
        }
    }

    /// Remove message `index` (oldest first); an index out of range is ignored.
    pub(crate) fn dismiss_message(&mut self, index: usize) {
        if index < self.messages.len() {
            self.messages.remove(index);
        }
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

impl eframe::App for ViewerApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let start = Instant::now();
        let ctx = ui.ctx().clone();
        self.poll();
        self.training.poll(&mut self.tasks);
        for (level, text) in self.training.take_notices() {
            self.message(level, text);
        }
        self.poll_annotator(&ctx);
        self.handle_dropped_files(&ctx);
        if self.mode == Mode::Viewer {
            self.handle_keys(&ctx);
        }

        let mut commands = Vec::new();
        let menu = self.menu_view();
        egui::Panel::top("menu").show(ui, |ui| {
            commands.extend(panels::menu::menu_bar(
                ui,
                &mut self.settings,
                &mut self.mode,
                &menu,
            ));
            if self.ct.is_some() && self.mode == Mode::Viewer {
                panels::menu::toolbar(ui, &mut self.settings);
            }
        });
        let status = self.status_view();
        egui::Panel::bottom("status").show(ui, |ui| {
            commands.extend(panels::status::messages(ui, &self.messages));
            commands.extend(panels::status::status_bar(ui, &status));
        });
        if self.mode == Mode::Training {
            super::training::show(self, ui);
            if self.training.is_training() || !self.training.runs.is_empty() {
                // Follow the runs' files and the training thread.
                ctx.request_repaint_after(Duration::from_millis(250));
            }
        } else if self.ct.is_some() {
            let view = self.structures_view();
            egui::Panel::left("structures")
                .default_size(330.0)
                .show(ui, |ui| {
                    commands.extend(self.structures.show(ui, &mut self.table, &view));
                });
            let model = self.model_view();
            egui::Panel::right("model")
                .default_size(280.0)
                .show(ui, |ui| {
                    egui::ScrollArea::vertical().show(ui, |ui| {
                        super::annotate::panel(self, ui);
                        ui.separator();
                        commands.extend(panels::model::show(ui, &mut self.settings, &model));
                    });
                });
        }
        if self.mode == Mode::Viewer {
            egui::CentralPanel::default().show(ui, |ui| {
                if self.ct.is_some() {
                    self.views(ui);
                } else {
                    commands.extend(panels::start::show(ui, &self.settings.recent));
                }
            });
        }
        super::annotate::modals(self, &ctx);
        let pacs = self.pacs_view();
        commands.extend(crate::pacs::window::show(
            &ctx,
            &mut self.pacs,
            &self.settings.pacs_servers,
            &pacs,
        ));
        for command in commands {
            self.apply(command);
        }
        if self.busy.is_some() || !self.tasks.running().is_empty() {
            // Keep the spinner turning while the worker or a task runs.
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

/// A file's name without `.nii.gz`, `.nii` or `.dcm`.
fn file_stem(path: &std::path::Path) -> String {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    [".nii.gz", ".nii", ".dcm"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .unwrap_or(&name)
        .to_string()
}
