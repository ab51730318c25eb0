//! The Training tab: launch a run on a dataset ([`form`]), watch it live and compare
//! it with other runs ([`dashboard`]). Training runs in its own thread through the
//! engine's event stream; every plotted number comes from the runs' `metrics.jsonl`
//! (read incrementally by [`RunLog`]), so a run started here and one written by a
//! separate `ctseg train` process are shown the same way.

mod dashboard;
mod form;
mod scan;

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::sync::Arc;

use crossbeam_channel::Receiver;
use eframe::egui;

use crate::command::Command;
use crate::tasks::Tasks;

use ctseg_ml::backend::BackendKind;
use ctseg_ml::train::{
    EventBus, FinishReason, RunLog, TrainConfig, TrainControl, TrainEvent, load_run_config, train,
};

pub use dashboard::PlottedPoints;
pub use scan::DatasetScan;

use super::app::Level;

/// How often open runs are re-read from disk.
const REFRESH: Duration = Duration::from_millis(500);

/// Ready-made settings for the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// The design's model and schedule (256², base 32, depth 4, batch 8, 50 epochs).
    Design,
    /// A small model that trains on the CPU in seconds: a smoke test of a dataset.
    Tiny,
}

impl Preset {
    /// All presets, for the menu.
    pub const ALL: [Preset; 2] = [Preset::Design, Preset::Tiny];

    /// Name shown in the UI.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Design => "Design defaults (256², base 32)",
            Preset::Tiny => "Tiny (CPU smoke test)",
        }
    }

    /// Apply to `config`, keeping the dataset.
    pub fn apply(self, config: &mut TrainConfig) {
        let root = config.data.root.clone();
        let structures = config.data.structures.clone();
        *config = TrainConfig::default();
        config.data.root = root;
        config.data.structures = structures;
        if self == Preset::Tiny {
            config.run.epochs = 4;
            config.run.batch_size = 4;
            config.run.backend = BackendKind::Cpu;
            config.run.steps_per_epoch = 6;
            config.model.input_size = 64;
            config.model.base_channels = 8;
            config.model.depth = 3;
            config.schedule.early_stopping_patience = 0;
        }
    }
}

/// What a training session started from the panel is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionStatus {
    /// Reading and caching subjects.
    Preparing {
        /// Subjects done.
        done: usize,
        /// Subjects in all.
        total: usize,
    },
    /// Optimiser steps of an epoch.
    Training {
        /// Epoch.
        epoch: usize,
    },
    /// Validating after an epoch.
    Validating {
        /// Epoch.
        epoch: usize,
    },
    /// Paused between steps.
    Paused,
    /// Stop was pressed; the run saves `last` and ends.
    Stopping,
    /// The run ended.
    Finished {
        /// Why.
        reason: FinishReason,
        /// Best validation Dice.
        best: Option<f64>,
    },
    /// The run stopped on an error.
    Failed(String),
}

impl SessionStatus {
    /// Whether the training thread is still working.
    pub fn is_active(&self) -> bool {
        !matches!(
            self,
            SessionStatus::Finished { .. } | SessionStatus::Failed(_)
        )
    }

    /// One line for the panel.
    pub fn describe(&self) -> String {
        match self {
            SessionStatus::Preparing { done, total } => format!("Preparing data {done}/{total}"),
            SessionStatus::Training { epoch } => format!("Training epoch {epoch}"),
            SessionStatus::Validating { epoch } => format!("Validating epoch {epoch}"),
            SessionStatus::Paused => "Paused".into(),
            SessionStatus::Stopping => "Stopping (saving last checkpoint)…".into(),
            SessionStatus::Finished { reason, best } => format!(
                "Finished ({}), best mean Dice {}",
                match reason {
                    FinishReason::Completed => "all epochs",
                    FinishReason::EarlyStopped => "early stop",
                    FinishReason::Cancelled => "stopped",
                },
                best.map_or("–".into(), |d| format!("{d:.3}"))
            ),
            SessionStatus::Failed(m) => format!("Failed: {m}"),
        }
    }
}

/// A training run launched from the panel.
pub struct Session {
    /// Its run folder.
    pub run_dir: PathBuf,
    /// Pause/stop handle.
    pub control: TrainControl,
    /// What it is doing.
    pub status: SessionStatus,
    /// Device description from the engine.
    pub device: Option<String>,
    /// Validation volumes.
    pub val_volumes: Option<usize>,
    /// Checkpoints written (best and last).
    pub checkpoints: Vec<PathBuf>,
    /// Validation subject and slice of the sample figure.
    pub sample_source: Option<(String, usize)>,
    events: Receiver<TrainEvent>,
    thread: Option<JoinHandle<()>>,
}

/// A run shown on the dashboard.
pub struct OpenRun {
    /// Its records.
    pub log: RunLog,
    /// Drawn in the comparison plots.
    pub shown: bool,
    /// Index into the run colours.
    pub color: usize,
    last_refresh: Instant,
    sample: Option<(usize, egui::TextureHandle)>,
    /// Epoch of a sample figure being decoded in a task.
    sample_pending: Option<usize>,
}

impl OpenRun {
    /// Epoch of the sample figure on display.
    pub fn sample_epoch(&self) -> Option<usize> {
        self.sample.as_ref().map(|(e, _)| *e)
    }
}

/// State of the Training tab.
pub struct TrainingPanel {
    /// The settings form (the dataset is `config.data.root`).
    pub config: TrainConfig,
    /// Dataset folder as typed.
    pub data_text: String,
    /// Run folder as typed.
    pub run_dir_text: String,
    /// Learning rate as typed.
    pub lr_text: String,
    /// What a scan of the dataset found.
    pub scan: Option<DatasetScan>,
    scan_rx: Option<Receiver<scan::ScanMessage>>,
    /// Result of probing the chosen backend: adapter description or error.
    pub adapter: Option<(BackendKind, Result<String, String>)>,
    /// The run launched from the panel.
    pub session: Option<Session>,
    /// Runs on the dashboard.
    pub runs: Vec<OpenRun>,
    /// The run whose details (heat map, structures, sample) are shown.
    pub primary: Option<usize>,
    /// Structures drawn in the Dice plot besides the mean.
    pub plotted_structures: Vec<String>,
    /// Smoothing weight of the training-loss curve (0 = raw).
    pub smoothing: f64,
    /// Points the plots were given in the last frame.
    pub plotted: PlottedPoints,
    notices: Vec<(Level, String)>,
    next_color: usize,
}

impl Default for TrainingPanel {
    fn default() -> Self {
        let config = TrainConfig::default();
        TrainingPanel {
            lr_text: config.optim.lr.to_string(),
            config,
            data_text: String::new(),
            run_dir_text: default_run_dir().display().to_string(),
            scan: None,
            scan_rx: None,
            adapter: None,
            session: None,
            runs: Vec::new(),
            primary: None,
            plotted_structures: Vec::new(),
            smoothing: 0.6,
            plotted: PlottedPoints::default(),
            notices: Vec::new(),
            next_color: 0,
        }
    }
}

/// `runs/run-YYYYmmdd-HHMMSS` (UTC) under the working folder.
pub fn default_run_dir() -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    PathBuf::from("runs").join(format!("run-{}", utc_stamp(secs)))
}

/// `YYYYmmdd-HHMMSS` of a Unix time (UTC), by the civil-from-days algorithm.
fn utc_stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

impl TrainingPanel {
    /// Messages for the app's message area since the last call.
    pub fn take_notices(&mut self) -> Vec<(Level, String)> {
        std::mem::take(&mut self.notices)
    }

    fn notice(&mut self, level: Level, text: String) {
        self.notices.push((level, text));
    }

    /// Use `folder` as the dataset and scan it in the background.
    pub fn set_dataset(&mut self, folder: &Path, ctx: &egui::Context) {
        self.data_text = folder.display().to_string();
        self.scan_dataset(ctx);
    }

    /// Scan the dataset folder typed in the form (subjects, split, structures).
    pub fn scan_dataset(&mut self, ctx: &egui::Context) {
        let root = PathBuf::from(self.data_text.trim());
        self.config.data.root = root.clone();
        let (scan, rx) = scan::start(
            root,
            self.config.data.val_fraction,
            self.config.run.seed,
            ctx.clone(),
        );
        self.scan = Some(scan);
        self.scan_rx = Some(rx);
    }

    /// The form's configuration with the typed fields applied and checked.
    pub fn effective_config(&self) -> Result<TrainConfig, String> {
        let root = PathBuf::from(self.data_text.trim());
        if root.as_os_str().is_empty() {
            return Err("choose a dataset folder".into());
        }
        let mut config = self.effective_config_or_default()?;
        config.data.root = root;
        config.validate()?;
        Ok(config)
    }

    /// The form's configuration for training on `root` instead of the form's dataset.
    pub fn effective_config_for(&self, root: &Path) -> Result<TrainConfig, String> {
        let mut config = self.effective_config_or_default()?;
        config.data.root = root.to_path_buf();
        config.data.structures.clear();
        config.validate()?;
        Ok(config)
    }

    /// The form's settings with the typed learning rate (the one place it is parsed).
    fn effective_config_or_default(&self) -> Result<TrainConfig, String> {
        let mut config = self.config.clone();
        config.optim.lr = self
            .lr_text
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("learning rate {:?} is not a number", self.lr_text))?;
        Ok(config)
    }

    /// Start a run with an explicit configuration (fine-tuning from the viewer); the
    /// form shows its dataset and run folder.
    pub fn start_with(
        &mut self,
        config: TrainConfig,
        run_dir: PathBuf,
        ctx: &egui::Context,
    ) -> Result<(), String> {
        if self.is_training() {
            return Err("a run is already training; stop it first".into());
        }
        config.validate()?;
        if run_dir.join(ctseg_ml::train::run_dir::CONFIG_TOML).exists() {
            return Err(format!("{} already holds a run", run_dir.display()));
        }
        self.data_text = config.data.root.display().to_string();
        self.run_dir_text = run_dir.display().to_string();
        self.launch(config, run_dir, false, ctx);
        Ok(())
    }

    /// Whether a session is running (or pausing/stopping).
    pub fn is_training(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.status.is_active())
    }

    /// Start a run with the form's settings into the typed run folder.
    pub fn start(&mut self, ctx: &egui::Context) -> Result<(), String> {
        if self.is_training() {
            return Err("a run is already training; stop it first".into());
        }
        let config = self.effective_config()?;
        let run_dir = PathBuf::from(self.run_dir_text.trim());
        if run_dir.as_os_str().is_empty() {
            return Err("choose a run folder".into());
        }
        if run_dir.join(ctseg_ml::train::run_dir::CONFIG_TOML).exists() {
            return Err(format!(
                "{} already holds a run; choose another folder",
                run_dir.display()
            ));
        }
        self.launch(config, run_dir, false, ctx);
        Ok(())
    }

    /// Continue the session's run (stopped with Stop) from its `last` checkpoint.
    pub fn continue_run(&mut self, ctx: &egui::Context) -> Result<(), String> {
        let Some(session) = &self.session else {
            return Err("no run to continue".into());
        };
        if session.status.is_active() {
            return Err("the run is still training".into());
        }
        let run_dir = session.run_dir.clone();
        let config = load_run_config(&run_dir).map_err(|e| e.to_string())?;
        self.launch(config, run_dir, true, ctx);
        Ok(())
    }

    fn launch(&mut self, config: TrainConfig, run_dir: PathBuf, resume: bool, ctx: &egui::Context) {
        let control = TrainControl::new();
        let mut bus = EventBus::new();
        let events = bus.subscribe();
        let thread_control = control.clone();
        let thread_dir = run_dir.clone();
        let wake = ctx.clone();
        let thread = std::thread::Builder::new()
            .name("ctseg-train".into())
            .spawn(move || {
                // Errors arrive as TrainEvent::Failed.
                let _ = train(&config, &thread_dir, resume, &mut bus, &thread_control);
                wake.request_repaint();
            });
        let (thread, status) = match thread {
            Ok(t) => (Some(t), SessionStatus::Preparing { done: 0, total: 0 }),
            Err(e) => (
                None,
                SessionStatus::Failed(format!("cannot start a thread: {e}")),
            ),
        };
        self.session = Some(Session {
            run_dir,
            control,
            status,
            device: None,
            val_volumes: None,
            checkpoints: Vec::new(),
            sample_source: None,
            events,
            thread,
        });
    }

    /// Pause or resume the session.
    pub fn set_paused(&mut self, paused: bool) {
        if let Some(s) = &mut self.session
            && s.status.is_active()
        {
            s.control.set_paused(paused);
        }
    }

    /// Stop the session after the current step; it saves `last` first.
    pub fn stop(&mut self) {
        if let Some(s) = &mut self.session
            && s.status.is_active()
        {
            s.control.cancel();
            s.status = SessionStatus::Stopping;
        }
    }

    /// Open a run folder on the dashboard (it becomes the primary run). Opening one
    /// that is open already just selects it.
    pub fn open_run(&mut self, dir: &Path) -> Result<usize, String> {
        if let Some(i) = self.runs.iter().position(|r| same_path(&r.log.dir, dir)) {
            self.primary = Some(i);
            return Ok(i);
        }
        let log = RunLog::open(dir).map_err(|e| e.to_string())?;
        self.runs.push(OpenRun {
            log,
            shown: true,
            color: self.next_color,
            last_refresh: Instant::now(),
            sample: None,
            sample_pending: None,
        });
        self.next_color += 1;
        let i = self.runs.len() - 1;
        self.primary = Some(i);
        Ok(i)
    }

    /// Close run `i` of the dashboard.
    pub fn close_run(&mut self, i: usize) {
        if i < self.runs.len() {
            self.runs.remove(i);
            self.primary = match self.primary {
                Some(p) if p == i => (!self.runs.is_empty()).then_some(0),
                Some(p) if p > i => Some(p - 1),
                p => p,
            };
        }
    }

    /// The primary run.
    pub fn primary_run(&self) -> Option<&OpenRun> {
        self.runs.get(self.primary?)
    }

    /// Take session events, scan and probe results, and re-read the open runs.
    /// Returns whether anything changed (the caller repaints).
    pub fn poll(&mut self, tasks: &mut Tasks) -> bool {
        let mut changed = self.poll_session();
        if let Some(rx) = &self.scan_rx {
            let messages: Vec<scan::ScanMessage> = rx.try_iter().collect();
            if let Some(scan) = &mut self.scan {
                for m in messages {
                    changed = true;
                    scan.apply(m);
                }
                if scan.done {
                    self.scan_rx = None;
                }
            }
        }
        let now = Instant::now();
        for run in &mut self.runs {
            if now.duration_since(run.last_refresh) < REFRESH && run.sample.is_some() {
                continue;
            }
            run.last_refresh = now;
            match run.log.refresh() {
                Ok(c) => changed |= c,
                Err(e) => {
                    self.notices
                        .push((Level::Warning, format!("{}: {e}", run.log.dir.display())));
                }
            }
            if let Some((epoch, path)) = run.log.latest_sample()
                && run.sample_epoch() != Some(epoch)
                && run.sample_pending != Some(epoch)
            {
                run.sample_pending = Some(epoch);
                let dir = run.log.dir.clone();
                tasks.spawn("Loading a sample figure", move |_| {
                    vec![Command::SampleDecoded {
                        run: dir,
                        epoch,
                        image: decode_png(&path).map(Arc::new),
                    }]
                });
            }
        }
        changed
    }

    fn poll_session(&mut self) -> bool {
        let Some(session) = &mut self.session else {
            return false;
        };
        let events: Vec<TrainEvent> = session.events.try_iter().collect();
        let changed = !events.is_empty();
        let mut open = None;
        let mut steps_per_epoch = None;
        let mut notices = Vec::new();
        for event in events {
            match event {
                TrainEvent::Preparing { done, total, .. } => {
                    session.status = SessionStatus::Preparing { done, total };
                }
                TrainEvent::Started {
                    run_dir,
                    device,
                    steps_per_epoch: n,
                    val_volumes,
                    first_epoch,
                    ..
                } => {
                    session.device = Some(device);
                    session.val_volumes = Some(val_volumes);
                    session.status = SessionStatus::Training { epoch: first_epoch };
                    steps_per_epoch = Some(n);
                    open = Some(run_dir);
                }
                TrainEvent::Step(s) => {
                    if session.status != SessionStatus::Stopping {
                        session.status = SessionStatus::Training { epoch: s.epoch };
                    }
                }
                TrainEvent::Validating { epoch } => {
                    if session.status != SessionStatus::Stopping {
                        session.status = SessionStatus::Validating { epoch };
                    }
                }
                TrainEvent::Epoch(_) => {}
                TrainEvent::Sample { subject, slice, .. } => {
                    session.sample_source = Some((subject, slice))
                }
                TrainEvent::CheckpointSaved { path, .. } => {
                    if !session.checkpoints.contains(&path) {
                        session.checkpoints.push(path);
                    }
                }
                TrainEvent::Warning { message } => notices.push((Level::Warning, message)),
                TrainEvent::Paused => session.status = SessionStatus::Paused,
                TrainEvent::Resumed => {
                    session.status = SessionStatus::Training { epoch: 0 };
                }
                TrainEvent::Finished {
                    reason,
                    best_val_dice,
                    ..
                } => {
                    session.status = SessionStatus::Finished {
                        reason,
                        best: best_val_dice,
                    };
                    notices.push((
                        Level::Info,
                        format!(
                            "Training {}: {}",
                            session.run_dir.display(),
                            session.status.describe()
                        ),
                    ));
                }
                TrainEvent::Failed { message } => {
                    notices.push((Level::Error, format!("Training failed: {message}")));
                    session.status = SessionStatus::Failed(message);
                }
            }
        }
        // A thread that ended without a final event panicked.
        if session.thread.as_ref().is_some_and(|t| t.is_finished())
            && let Some(t) = session.thread.take()
            && let Err(panic) = t.join()
            && session.status.is_active()
        {
            let what = ctseg_core::error::panic_message(panic.as_ref());
            let message = format!("the training thread crashed: {what}");
            notices.push((Level::Error, format!("Training failed: {message}")));
            session.status = SessionStatus::Failed(message);
        }
        self.notices.extend(notices);
        if let Some(dir) = open {
            match self.open_run(&dir) {
                Ok(i) => {
                    self.runs[i].log.steps_per_epoch = steps_per_epoch;
                }
                Err(e) => self.notice(Level::Warning, e),
            }
        }
        changed
    }
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Decode a sample figure (in a task). `None` when it cannot be read: a figure being
/// renamed into place can be missing for a moment, so the next refresh tries again.
fn decode_png(path: &Path) -> Option<egui::ColorImage> {
    let image = image::open(path).ok()?.to_rgba8();
    let size = [image.width() as usize, image.height() as usize];
    Some(egui::ColorImage::from_rgba_unmultiplied(
        size,
        image.as_raw(),
    ))
}

impl TrainingPanel {
    /// Show a decoded sample figure of run `dir` (from [`Command::SampleDecoded`]).
    pub fn sample_decoded(
        &mut self,
        ctx: &egui::Context,
        dir: &Path,
        epoch: usize,
        image: Option<Arc<egui::ColorImage>>,
    ) {
        let Some(run) = self.runs.iter_mut().find(|r| r.log.dir == dir) else {
            return;
        };
        run.sample_pending = None;
        if let Some(image) = image {
            let texture = ctx.load_texture(
                format!("sample:{}:{epoch}", dir.display()),
                Arc::unwrap_or_clone(image),
                egui::TextureOptions::NEAREST,
            );
            run.sample = Some((epoch, texture));
        }
    }
}

/// Draw the Training tab: the launch form and run list on the left, the dashboard in
/// the middle.
pub fn show(app: &mut super::ViewerApp, ui: &mut egui::Ui) {
    egui::Panel::left("training-form")
        .default_size(360.0)
        .show(ui, |ui| form::show(app, ui));
    egui::CentralPanel::default().show(ui, |ui| dashboard::show(app, ui));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_are_calendar_dates() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        // 2026-11-20 13:45:06 UTC.
        assert_eq!(utc_stamp(1_795_182_306), "20261120-134506");
        // A leap day.
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
    }

    #[test]
    fn presets_keep_the_dataset_and_validate() {
        let mut c = TrainConfig::default();
        c.data.root = PathBuf::from("/data");
        for p in Preset::ALL {
            p.apply(&mut c);
            assert_eq!(c.data.root, PathBuf::from("/data"));
            assert!(c.validate().is_ok(), "{}", p.name());
        }
        assert_eq!(c.run.backend, BackendKind::Cpu);
    }

    #[test]
    fn starting_needs_a_dataset_and_a_number_for_the_learning_rate() {
        let mut p = TrainingPanel::default();
        assert!(p.effective_config().unwrap_err().contains("dataset"));
        p.data_text = "/data".into();
        p.lr_text = "fast".into();
        assert!(p.effective_config().unwrap_err().contains("fast"));
        p.lr_text = "3e-4".into();
        assert_eq!(p.effective_config().expect("config").optim.lr, 3e-4);
    }
}
