//! The one thread that owns the compute device: it loads the served models, runs
//! inference jobs one at a time from a bounded queue, and swaps in fine-tuned
//! weights. HTTP handlers hand it jobs and await the answer; a full queue is
//! answered 503 with `Retry-After` at once.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use ctseg_core::io::load_ct;
use ctseg_core::io::segmentation::save_multilabel;
use ctseg_ml::backend::{self, BackendKind};
use ctseg_ml::infer::{InferError, PredictOptions, Predictor};
use ctseg_ml::model::UNetConfig;
use tokio::sync::oneshot;

use crate::error::{ApiError, ApiResult};
use crate::jobs::{Job, JobState, lock};

/// A served model as clients see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Its name in URLs (`/infer/{name}`).
    pub name: String,
    /// The weights file in use.
    pub weights: PathBuf,
    /// The network's settings.
    pub config: UNetConfig,
}

/// A finished prediction.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// The label volume as a gzipped NIfTI with ctseg's label table.
    pub nifti_gz: Vec<u8>,
    /// Structures present: (label value, name).
    pub present: Vec<(u8, String)>,
    /// Shape of the label volume (the CT's).
    pub shape: [usize; 3],
    /// Seconds spent reading the CT, predicting and writing the labels.
    pub seconds: [f64; 3],
    /// The model that predicted.
    pub model: String,
}

/// Something for the worker to do.
enum WorkerMsg {
    Infer(InferJob),
    Reload {
        model: String,
        weights: PathBuf,
        reply: oneshot::Sender<Result<ModelInfo, String>>,
    },
}

/// An inference job for the worker.
pub struct InferJob {
    /// The job's shared record (state, progress, cancel flag).
    pub job: Arc<Job>,
    /// The CT: NIfTI file or DICOM folder.
    pub input: PathBuf,
    /// How to name the input in messages (the client's file name or the image ID).
    pub input_name: String,
    /// Keeps a temporary input alive until the job is over.
    pub keep: Option<Box<dyn Send>>,
    /// Inference settings.
    pub options: PredictOptions,
    /// Where the answer goes; when the receiver is dropped (client gone), the job
    /// is cancelled.
    pub reply: oneshot::Sender<ApiResult<Arc<Prediction>>>,
}

/// The handle the HTTP side holds.
pub struct WorkerHandle {
    tx: Sender<WorkerMsg>,
    capacity: usize,
    device: String,
    models: Mutex<BTreeMap<String, ModelInfo>>,
}

impl WorkerHandle {
    /// Start the worker: select the device and load every `(name, weights)` model on
    /// it. Fails (before anything is served) when the device or a model is unusable.
    /// `queue` is how many jobs may wait.
    pub fn start(
        models: Vec<(String, PathBuf)>,
        backend: BackendKind,
        queue: usize,
        tmp_dir: PathBuf,
    ) -> anyhow::Result<Arc<Self>> {
        let (tx, rx) = bounded::<WorkerMsg>(queue.max(1));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("ctseg-serve-worker".into())
            .spawn(move || worker_main(models, backend, tmp_dir, rx, ready_tx))?;
        let (device, infos) = ready_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("the inference worker stopped while starting"))?
            .map_err(anyhow::Error::msg)?;
        Ok(Arc::new(WorkerHandle {
            tx,
            capacity: queue.max(1),
            device,
            models: Mutex::new(infos.into_iter().map(|m| (m.name.clone(), m)).collect()),
        }))
    }

    /// The device line (what runs, and why it was chosen).
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The served models.
    pub fn models(&self) -> Vec<ModelInfo> {
        lock(&self.models).values().cloned().collect()
    }

    /// The name of the first served model (the default of `POST /train/` and
    /// `/v1/segment`).
    pub fn first_model(&self) -> ApiResult<String> {
        lock(&self.models)
            .keys()
            .next()
            .cloned()
            .ok_or_else(|| ApiError::internal("no model is served"))
    }

    /// The served model `name`.
    pub fn model(&self, name: &str) -> Option<ModelInfo> {
        lock(&self.models).get(name).cloned()
    }

    /// Jobs waiting (not counting the one running).
    pub fn queued(&self) -> usize {
        self.tx.len()
    }

    /// How many jobs may wait.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Queue a job; a full queue is answered 503 with `Retry-After`.
    pub fn submit(&self, job: InferJob) -> ApiResult<()> {
        let record = job.job.clone();
        match self.tx.try_send(WorkerMsg::Infer(job)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                record.set_state(JobState::Failed("queue full".into()));
                Err(ApiError::busy(
                    format!(
                        "the inference queue is full ({} waiting); retry later",
                        self.capacity
                    ),
                    5,
                ))
            }
            Err(TrySendError::Disconnected(_)) => {
                record.set_state(JobState::Failed("worker stopped".into()));
                Err(ApiError::internal("the inference worker has stopped"))
            }
        }
    }

    /// Load `weights` as model `name` (after fine-tuning); jobs queued before run
    /// with the old weights.
    pub fn reload(&self, name: &str, weights: &Path) -> Result<ModelInfo, String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(WorkerMsg::Reload {
                model: name.to_string(),
                weights: weights.to_path_buf(),
                reply,
            })
            .map_err(|_| "the inference worker has stopped".to_string())?;
        let info = answer
            .blocking_recv()
            .map_err(|_| "the inference worker stopped while loading".to_string())??;
        lock(&self.models).insert(name.to_string(), info.clone());
        Ok(info)
    }
}

type Ready = Result<(String, Vec<ModelInfo>), String>;

fn worker_main(
    models: Vec<(String, PathBuf)>,
    backend: BackendKind,
    tmp_dir: PathBuf,
    rx: Receiver<WorkerMsg>,
    ready: std::sync::mpsc::Sender<Ready>,
) {
    let selected = match backend::select(backend) {
        Ok(s) => s,
        Err(e) => {
            send_ready(&ready, Err(e.to_string()));
            return;
        }
    };
    let mut predictors = BTreeMap::new();
    let mut infos = Vec::new();
    for (name, weights) in models {
        match Predictor::load(&weights, selected.device.clone(), selected.kind) {
            Ok(p) => {
                infos.push(ModelInfo {
                    name: name.clone(),
                    weights: p.weights().to_path_buf(),
                    config: p.config().clone(),
                });
                predictors.insert(name, p);
            }
            Err(e) => {
                send_ready(&ready, Err(format!("model {name:?}: {e}")));
                return;
            }
        }
    }
    send_ready(&ready, Ok((selected.describe(), infos)));
    for msg in rx {
        match msg {
            WorkerMsg::Infer(job) => {
                let Some(predictor) = predictors.get(&job.job.model) else {
                    let message = format!("unknown model {:?}", job.job.model);
                    job.job.set_state(JobState::Failed(message.clone()));
                    let _ignored_if_gone = job.reply.send(Err(ApiError::not_found(message)));
                    continue;
                };
                run_job(predictor, job, &tmp_dir);
            }
            WorkerMsg::Reload {
                model,
                weights,
                reply,
            } => {
                let loaded = Predictor::load(&weights, selected.device.clone(), selected.kind)
                    .map_err(|e| e.to_string())
                    .map(|p| {
                        let info = ModelInfo {
                            name: model.clone(),
                            weights: p.weights().to_path_buf(),
                            config: p.config().clone(),
                        };
                        predictors.insert(model, p);
                        info
                    });
                let _ignored_if_gone = reply.send(loaded);
            }
        }
    }
}

fn send_ready(ready: &std::sync::mpsc::Sender<Ready>, value: Ready) {
    if ready.send(value).is_err() {
        eprintln!("ctseg serve: the server stopped before the worker was ready");
    }
}

/// Run one job and answer it. A panic inside Burn becomes a failed job, not a dead
/// worker.
fn run_job(predictor: &Predictor, job: InferJob, tmp_dir: &Path) {
    let InferJob {
        job: record,
        input,
        input_name,
        keep,
        options,
        reply,
    } = job;
    if record.cancel.load(Ordering::Relaxed) || reply.is_closed() {
        record.set_state(JobState::Cancelled);
        return;
    }
    record.set_state(JobState::Running);
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        predict(predictor, &record, &input, &options, tmp_dir, &reply)
    }))
    .unwrap_or_else(|_| {
        Err(ApiError::internal(
            "inference failed (a panic in the compute backend)",
        ))
    });
    drop(keep);
    let outcome = outcome.map_err(|mut e| {
        e.message = e.message.replace(&input.display().to_string(), &input_name);
        e
    });
    match &outcome {
        Ok(p) => record.set_result(p.clone()),
        Err(e) if e.status.as_u16() == 499 => record.set_state(JobState::Cancelled),
        Err(e) => record.set_state(JobState::Failed(e.message.clone())),
    }
    let _ignored_if_gone = reply.send(outcome);
}

fn predict(
    predictor: &Predictor,
    record: &Job,
    input: &Path,
    options: &PredictOptions,
    tmp_dir: &Path,
    reply: &oneshot::Sender<ApiResult<Arc<Prediction>>>,
) -> ApiResult<Arc<Prediction>> {
    let t0 = Instant::now();
    let ct = load_ct(input).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let t1 = Instant::now();
    let labels = predictor
        .predict(&ct.volume, options, &mut |done, total| {
            record.done.store(done, Ordering::Relaxed);
            record.total.store(total, Ordering::Relaxed);
            !(record.cancel.load(Ordering::Relaxed) || reply.is_closed())
        })
        .map_err(|e| match e {
            InferError::Cancelled => ApiError::new(
                axum::http::StatusCode::from_u16(499).unwrap_or_default(),
                "cancelled",
            ),
            InferError::Input(e) => ApiError::unprocessable(e.to_string()),
            other => ApiError::internal(other.to_string()),
        })?;
    let t2 = Instant::now();
    drop(ct);
    let out = tempfile::Builder::new()
        .prefix("prediction-")
        .suffix(".nii.gz")
        .tempfile_in(tmp_dir)
        .map_err(|e| ApiError::internal(format!("cannot create a temporary file: {e}")))?
        .into_temp_path();
    save_multilabel(&out, &labels).map_err(|e| ApiError::internal(e.to_string()))?;
    let nifti_gz = std::fs::read(&out)
        .map_err(|e| ApiError::internal(format!("cannot read back the labels: {e}")))?;
    let catalog = ctseg_core::structures::catalog();
    let present = ctseg_core::labels::label_counts(&labels)
        .iter()
        .enumerate()
        .skip(1)
        .filter(|&(_, &n)| n > 0)
        .map(|(label, _)| (label as u8, catalog.name_of(label as u8)))
        .collect();
    Ok(Arc::new(Prediction {
        nifti_gz,
        present,
        shape: labels.shape(),
        seconds: [
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            t2.elapsed().as_secs_f64(),
        ],
        model: record.model.clone(),
    }))
}
