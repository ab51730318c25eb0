//! The viewer's worker thread: every slow job (loading, comparing, predicting, saving)
//! runs here, never on the UI thread. The UI sends [`Job`]s and polls [`Event`]s; the
//! worker calls the `wake` hook after each event so the UI repaints. Long jobs report
//! progress and stop early when [`Worker::cancel`] is called. A failing or panicking
//! job becomes an [`Event::Failed`]; the worker lives on.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, unbounded};

use ctseg_core::io::dicom::seg::{SegWriteOptions, is_dicom_seg, read_seg, write_seg};
use ctseg_core::io::load_ct;
use ctseg_core::io::segmentation::{load_segmentation, save_multilabel, save_per_structure};
use ctseg_core::study::{Comparison, CtView, LabelLayer, LayerKind};
use ctseg_ml::backend::{self, BackendKind};
use ctseg_ml::infer::{Precision, PredictOptions, Predictor};

/// Work for the worker thread.
#[derive(Debug, Clone)]
pub enum Job {
    /// Open a CT (NIfTI file, DICOM folder, or TotalSegmentator subject folder, whose
    /// `segmentations/` becomes the ground truth).
    OpenCt(PathBuf),
    /// Unpack the bundled sample (s0001) into `dir` and open its CT, with the full
    /// model's segmentation as ground truth and the fast model's as prediction.
    OpenSample {
        /// Where the sample's files are written.
        dir: PathBuf,
    },
    /// Open a segmentation (multilabel NIfTI or per-structure folder) as a layer of `ct`.
    OpenSegmentation {
        /// File or folder.
        path: PathBuf,
        /// Target layer.
        layer: LayerKind,
        /// The CT it must match.
        ct: Arc<CtView>,
    },
    /// Per-structure GT-vs-prediction comparison.
    Compare {
        /// Ground truth.
        gt: Arc<LabelLayer>,
        /// Prediction.
        pred: Arc<LabelLayer>,
        /// Echoed in [`Event::Compared`], so that a result overtaken by a newer
        /// request can be told apart.
        serial: u64,
    },
    /// Run the model on `ct`.
    Predict {
        /// Weights file, checkpoint folder or run folder.
        model: PathBuf,
        /// Backend to run on.
        backend: BackendKind,
        /// Float type of the forward pass.
        precision: Precision,
        /// Inference settings.
        options: PredictOptions,
        /// The CT.
        ct: Arc<CtView>,
    },
    /// Save a label layer on the CT's grid.
    Save {
        /// Output path (`.nii.gz` file, a `.dcm` DICOM Segmentation, or a folder with
        /// `per_structure`).
        path: PathBuf,
        /// For a DICOM Segmentation: the model that predicted the layer, `None` for
        /// an edited layer (segments marked MANUAL).
        model: Option<String>,
        /// Folder of `<name>.nii.gz` masks instead of one multilabel file.
        per_structure: bool,
        /// Labels to save.
        layer: Arc<LabelLayer>,
        /// The CT whose grid they are saved on.
        ct: Arc<CtView>,
    },
    /// Add the CT and a (corrected) segmentation to a training set as a new subject.
    AddCase {
        /// Dataset folder (TotalSegmentator layout).
        root: PathBuf,
        /// Subject id.
        id: String,
        /// The segmentation.
        layer: Arc<LabelLayer>,
        /// The CT.
        ct: Arc<CtView>,
    },
}

impl Job {
    /// Short description for progress displays.
    pub fn describe(&self) -> String {
        match self {
            Job::OpenCt(p) => format!("Opening {}", p.display()),
            Job::OpenSample { .. } => "Opening the sample CT (s0001)".into(),
            Job::OpenSegmentation { path, layer, .. } => {
                format!("Opening {} as {}", path.display(), layer.name())
            }
            Job::Compare { .. } => "Comparing GT and prediction".into(),
            Job::Predict { backend, .. } => format!("Predicting ({})", backend.name()),
            Job::Save { path, .. } => format!("Saving {}", path.display()),
            Job::AddCase { root, id, .. } => {
                format!("Adding {id} to the training set {}", root.display())
            }
        }
    }
}

/// What the worker reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// A job began.
    Started {
        /// Its description.
        what: String,
    },
    /// Progress of the running job.
    Progress {
        /// Units done.
        done: usize,
        /// Units in all.
        total: usize,
    },
    /// A CT was opened (with its ground truth if it was a subject folder).
    CtOpened {
        /// The CT.
        ct: Arc<CtView>,
        /// Ground truth found beside it.
        gt: Option<Arc<LabelLayer>>,
    },
    /// A label layer is ready.
    LayerReady {
        /// Which layer.
        layer: LayerKind,
        /// The labels.
        data: Arc<LabelLayer>,
        /// For predictions: what ran, e.g. `"3.1 s, 97 slices/s on wgpu (NVIDIA…)"`.
        summary: Option<String>,
    },
    /// A comparison finished.
    Compared {
        /// The result.
        comparison: Arc<Comparison>,
        /// The request's serial.
        serial: u64,
    },
    /// A layer was saved.
    Saved(PathBuf),
    /// A case was added to a training set.
    CaseAdded {
        /// The dataset folder.
        root: PathBuf,
        /// The subject folder written.
        dir: PathBuf,
    },
    /// A job failed; `message` is meant for the user.
    Failed {
        /// The job.
        what: String,
        /// Why.
        message: String,
    },
    /// A job stopped because it was cancelled.
    Cancelled {
        /// The job.
        what: String,
    },
    /// The worker is idle again.
    Idle,
}

/// Handle to the worker thread (dropping it stops the thread after the current job).
pub struct Worker {
    jobs: Option<Sender<Job>>,
    events: Receiver<Event>,
    /// For reporting jobs that cannot reach the thread (it failed to start or died).
    failures: Sender<Event>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Start the thread; `wake` is called after every event (e.g. `ctx.request_repaint`).
    pub fn spawn(wake: impl Fn() + Send + 'static) -> Self {
        let (job_tx, job_rx) = unbounded::<Job>();
        let (event_tx, event_rx) = unbounded::<Event>();
        let cancel = Arc::new(AtomicBool::new(false));
        let thread_cancel = cancel.clone();
        let failures = event_tx.clone();
        let spawned = std::thread::Builder::new()
            .name("ctseg-worker".into())
            .spawn(move || {
                let mut state = WorkerState::default();
                let send = |e: Event| {
                    // Fails only when the Worker handle (the app) is gone: nobody
                    // is left to tell.
                    if event_tx.send(e).is_ok() {
                        wake();
                    }
                };
                for job in job_rx {
                    thread_cancel.store(false, Ordering::SeqCst);
                    let what = job.describe();
                    send(Event::Started { what: what.clone() });
                    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        state.run(job, &thread_cancel, &send)
                    }));
                    match result {
                        Ok(Ok(events)) => events.into_iter().for_each(&send),
                        Ok(Err(JobError::Cancelled)) => send(Event::Cancelled { what }),
                        Ok(Err(JobError::Failed(e))) => send(Event::Failed {
                            what,
                            message: format!("{e:#}"),
                        }),
                        Err(panic) => send(Event::Failed {
                            what,
                            message: format!(
                                "internal error: {}",
                                ctseg_core::error::panic_message(panic.as_ref())
                            ),
                        }),
                    }
                    send(Event::Idle);
                }
            });
        let (jobs, thread) = match spawned {
            Ok(thread) => (Some(job_tx), Some(thread)),
            Err(e) => {
                log::error!("could not start the worker thread: {e}");
                (None, None)
            }
        };
        Worker {
            jobs,
            events: event_rx,
            failures,
            cancel,
            thread,
        }
    }

    /// Queue a job. A job that cannot reach the worker thread (it could not be
    /// started) comes back at once as [`Event::Failed`] and [`Event::Idle`], so the UI
    /// never waits for it.
    pub fn submit(&self, job: Job) {
        let job = match &self.jobs {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                Err(unsent) => unsent.0,
            },
            None => job,
        };
        let what = job.describe();
        for event in [
            Event::Failed {
                what,
                message: "the background worker thread is not running (it could not be started); restart ctseg".into(),
            },
            Event::Idle,
        ] {
            // The receiver is our own field, so this cannot fail while `self` lives.
            if self.failures.send(event).is_err() {
                log::error!("the worker's event channel is closed");
            }
        }
    }

    /// Ask the running job to stop.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// The next event, if any.
    pub fn try_recv(&self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// Wait up to `timeout` for the next event (for tests and headless use).
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<Event> {
        self.events.recv_timeout(timeout).ok()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.cancel();
        self.jobs = None;
        // The thread ends after its current job; don't block the UI waiting for it.
        drop(self.thread.take());
    }
}

enum JobError {
    Cancelled,
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for JobError {
    fn from(e: E) -> Self {
        JobError::Failed(e.into())
    }
}

#[derive(Default)]
struct WorkerState {
    /// The last model loaded, kept between predictions.
    predictor: Option<(PathBuf, BackendKind, String, Predictor)>,
}

/// Whether `path` names a DICOM file (`.dcm`): saved as a DICOM Segmentation.
pub fn is_dcm(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("dcm"))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| path.display().to_string())
}

impl WorkerState {
    fn run(
        &mut self,
        job: Job,
        cancel: &AtomicBool,
        send: &dyn Fn(Event),
    ) -> Result<Vec<Event>, JobError> {
        match job {
            Job::OpenCt(path) => {
                let loaded = load_ct(&path)?;
                let name = file_name(&path);
                let ct = Arc::new(
                    CtView::new(Some(path.clone()), name, &loaded.volume, loaded.warnings)?
                        .with_dicom(loaded.dicom),
                );
                let gt = if ctseg_core::dataset::totalseg::masks_dir(&path).is_some() {
                    let seg = load_segmentation(&path)?;
                    let display = ct.to_display(&seg.path, &seg.labels)?;
                    Some(Arc::new(LabelLayer::new(
                        Some(seg.path),
                        display,
                        seg.warnings,
                    )))
                } else {
                    None
                };
                Ok(vec![Event::CtOpened { ct, gt }])
            }
            Job::OpenSample { dir } => {
                let files = ctseg_core::sample::write_sample(&dir)?;
                let loaded = load_ct(&files.ct)?;
                let ct = Arc::new(CtView::new(
                    Some(files.ct.clone()),
                    "Sample CT s0001".into(),
                    &loaded.volume,
                    loaded.warnings,
                )?);
                let layer = |path: &Path| -> Result<Arc<LabelLayer>, JobError> {
                    let seg = load_segmentation(path)?;
                    let display = ct.to_display(&seg.path, &seg.labels)?;
                    Ok(Arc::new(LabelLayer::new(
                        Some(seg.path),
                        display,
                        seg.warnings,
                    )))
                };
                let gt = layer(&files.gt)?;
                let pred = layer(&files.pred)?;
                Ok(vec![
                    Event::CtOpened {
                        ct: ct.clone(),
                        gt: Some(gt),
                    },
                    Event::LayerReady {
                        layer: LayerKind::Prediction,
                        data: pred,
                        summary: Some(format!(
                            "Sample: {}; ground truth = full model, prediction = fast model",
                            ctseg_core::sample::SOURCE
                        )),
                    },
                ])
            }
            Job::OpenSegmentation { path, layer, ct } => {
                let data = if is_dicom_seg(&path) {
                    let seg = read_seg(&path, &ct.source, ct.dicom.as_deref())?;
                    let display = ct.to_display(&path, &seg.labels)?;
                    Arc::new(LabelLayer::new(Some(path), display, seg.warnings))
                } else {
                    let seg = load_segmentation(&path)?;
                    let display = ct.to_display(&seg.path, &seg.labels)?;
                    Arc::new(LabelLayer::new(Some(seg.path), display, seg.warnings))
                };
                Ok(vec![Event::LayerReady {
                    layer,
                    data,
                    summary: None,
                }])
            }
            Job::Compare { gt, pred, serial } => {
                let c = Comparison::compute(&gt.display, &pred.display)?;
                Ok(vec![Event::Compared {
                    comparison: Arc::new(c),
                    serial,
                }])
            }
            Job::Predict {
                model,
                backend,
                precision,
                options,
                ct,
            } => {
                let reuse = matches!(&self.predictor, Some((p, b, _, predictor))
                    if *p == model && *b == backend && predictor.precision() == precision);
                if !reuse {
                    self.predictor = None;
                    backend::init_kernel_cache();
                    let selected = backend::select(backend)?;
                    let described = selected.describe();
                    let predictor = Predictor::load(&model, selected.device, selected.kind)?
                        .with_precision(precision, &described)?;
                    let adapter = format!("{described} in {precision}");
                    self.predictor = Some((model.clone(), backend, adapter, predictor));
                }
                let Some((_, _, adapter, predictor)) = &self.predictor else {
                    return Err(JobError::Failed(anyhow::anyhow!("no model loaded")));
                };
                let start = Instant::now();
                let mut progress = |done: usize, total: usize| {
                    send(Event::Progress { done, total });
                    !cancel.load(Ordering::SeqCst)
                };
                // The display volume is a valid CT in its own right; predicting it
                // gives labels in display order directly.
                let labels = match predictor.predict(&ct.display, &options, &mut progress) {
                    Ok(l) => l,
                    Err(ctseg_ml::infer::InferError::Cancelled) => return Err(JobError::Cancelled),
                    Err(e) => return Err(e.into()),
                };
                let secs = start.elapsed().as_secs_f64();
                let slices = ct.display.shape()[2];
                let summary = format!(
                    "{} slices in {secs:.1} s ({:.1} slices/s) on {adapter}, weights {}",
                    slices,
                    slices as f64 / secs.max(1e-9),
                    predictor.weights().display()
                );
                let data = Arc::new(LabelLayer::new(None, labels, Vec::new()));
                Ok(vec![Event::LayerReady {
                    layer: LayerKind::Prediction,
                    data,
                    summary: Some(summary),
                }])
            }
            Job::Save {
                path,
                model,
                per_structure,
                layer,
                ct,
            } => {
                let labels = ct.to_source(&layer.display)?;
                if per_structure {
                    save_per_structure(&path, &labels)?;
                } else if is_dcm(&path) {
                    let source = ct.dicom.as_deref().ok_or_else(|| {
                        anyhow::anyhow!(
                            "{}: {}",
                            path.display(),
                            ct.dicom_seg_refusal().unwrap_or_default()
                        )
                    })?;
                    let options = match &model {
                        Some(name) => SegWriteOptions::prediction(name),
                        None => SegWriteOptions::manual(),
                    };
                    write_seg(&path, &labels, source, &options)?;
                } else {
                    save_multilabel(&path, &labels)?;
                }
                Ok(vec![Event::Saved(path)])
            }
            Job::AddCase {
                root,
                id,
                layer,
                ct,
            } => {
                let labels = ct.to_source(&layer.display)?;
                let volume = ct.to_source(&ct.display)?;
                let dir =
                    ctseg_core::annotate::training_set::add_case(&root, &id, &volume, &labels)?;
                Ok(vec![Event::CaseAdded { root, dir }])
            }
        }
    }
}
