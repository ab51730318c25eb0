//! Fine-tuning on the datastore (`POST /train/{model}`, `GET /train/`,
//! `DELETE /train/`): one run at a time, through ctseg's trainer, starting from the
//! served model's weights and training on the images that have a `final` label.
//! Each run snapshots its data into an nnU-Net raw dataset folder (hard links, so
//! later uploads do not change a running run) under `.ctseg/train/<id>/`; when it
//! completes, the served model switches to the run's best checkpoint.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ctseg_ml::backend::BackendKind;
use ctseg_ml::train::{EventBus, FinishReason, TrainConfig, TrainControl, TrainEvent};
use serde_json::{Value, json};

use crate::datastore::{Datastore, FINAL_TAG};
use crate::error::{ApiError, ApiResult};
use crate::jobs::lock;
use crate::worker::WorkerHandle;

/// Detail lines kept per task (the latest).
const KEPT_DETAILS: usize = 200;

/// Fine-tuning settings a client may send (all optional).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TrainParams {
    /// Optimiser steps.
    pub max_steps: usize,
    /// Slices per batch.
    pub batch_size: usize,
    /// Learning rate (lower than training from scratch: the weights are good already).
    pub lr: f64,
    /// Seed for data order and augmentation.
    pub seed: u64,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            max_steps: 200,
            batch_size: 4,
            lr: 1e-4,
            seed: 0,
        }
    }
}

impl TrainParams {
    /// Read the request body's settings (unknown keys such as `client_id` are
    /// ignored) and check their ranges.
    pub fn from_json(body: &Value) -> ApiResult<Self> {
        let params: TrainParams = if body.is_null() {
            TrainParams::default()
        } else {
            serde_json::from_value(body.clone())
                .map_err(|e| ApiError::bad_request(format!("training parameters: {e}")))?
        };
        if !(1..=1_000_000).contains(&params.max_steps) {
            return Err(ApiError::bad_request("max_steps must be in 1..=1000000"));
        }
        if !(1..=256).contains(&params.batch_size) {
            return Err(ApiError::bad_request("batch_size must be in 1..=256"));
        }
        if !(params.lr > 0.0 && params.lr < 1.0) {
            return Err(ApiError::bad_request("lr must be in (0, 1)"));
        }
        Ok(params)
    }
}

/// One fine-tuning run as `GET /train/` reports it (MONAI Label's task record, with
/// ctseg's progress fields).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainTask {
    /// Task ID (`train-<unix seconds>-<n>`).
    pub id: String,
    /// Always `train`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `RUNNING`, `DONE`, `STOPPED` or `ERROR`.
    pub status: &'static str,
    /// The model fine-tuned.
    pub model: String,
    /// Start time, Unix seconds.
    pub start_ts: u64,
    /// End time, Unix seconds.
    pub end_ts: Option<u64>,
    /// The settings used.
    pub request: Value,
    /// Log lines (the latest [`KEPT_DETAILS`]).
    pub details: Vec<String>,
    /// Steps done.
    pub step: usize,
    /// Steps planned.
    pub max_steps: usize,
    /// Latest training loss.
    pub loss: Option<f64>,
    /// Best validation Dice so far.
    pub best_val_dice: Option<f64>,
    /// The run folder.
    pub run_dir: PathBuf,
}

impl TrainTask {
    fn log(&mut self, line: String) {
        self.details.push(line);
        if self.details.len() > KEPT_DETAILS {
            let extra = self.details.len() - KEPT_DETAILS;
            self.details.drain(..extra);
        }
    }
}

#[derive(Default)]
struct Inner {
    running: Option<TrainControl>,
    tasks: Vec<Arc<Mutex<TrainTask>>>,
    started: usize,
}

/// Runs fine-tuning, one run at a time.
pub struct TrainManager {
    inner: Mutex<Inner>,
    datastore: Datastore,
    worker: Arc<WorkerHandle>,
    backend: BackendKind,
}

impl TrainManager {
    /// A manager training on `datastore` with `backend`, swapping results into `worker`.
    pub fn new(datastore: Datastore, worker: Arc<WorkerHandle>, backend: BackendKind) -> Self {
        TrainManager {
            inner: Mutex::new(Inner::default()),
            datastore,
            worker,
            backend,
        }
    }

    /// Whether a run is going.
    pub fn is_running(&self) -> bool {
        lock(&self.inner).running.is_some()
    }

    /// The latest task (or all, oldest first), `None` when there was none.
    pub fn status(&self, all: bool) -> Option<Value> {
        let inner = lock(&self.inner);
        let tasks: Vec<Value> = inner
            .tasks
            .iter()
            .map(|t| serde_json::to_value(&*lock(t)).unwrap_or(Value::Null))
            .collect();
        if all {
            Some(Value::Array(tasks))
        } else {
            tasks.last().cloned()
        }
    }

    /// Stop the running task (it ends at its next step, keeping the served weights).
    pub fn stop(&self) -> Value {
        let inner = lock(&self.inner);
        match &inner.running {
            Some(control) => {
                control.cancel();
                json!({ "stopping": true })
            }
            None => json!({}),
        }
    }

    /// Start fine-tuning `model` with `params`.
    pub fn start(
        self: &Arc<Self>,
        model: &str,
        params: TrainParams,
        request: Value,
    ) -> ApiResult<Value> {
        let info = self
            .worker
            .model(model)
            .ok_or_else(|| ApiError::not_found(format!("no model named {model:?}")))?;
        let labelled = self.datastore.labelled(FINAL_TAG);
        if labelled.is_empty() {
            return Err(ApiError::bad_request(
                "no image in the datastore has a final label yet: save one (PUT /datastore/label?image=ID&tag=final) before training",
            ));
        }
        let mut inner = lock(&self.inner);
        if inner.running.is_some() {
            return Err(ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "a training task is already running; stop it (DELETE /train/) or wait",
            ));
        }
        inner.started += 1;
        let now = unix_now();
        let id = format!("train-{now}-{}", inner.started);
        let folder = self.datastore.train_dir().join(&id);
        let dataset = folder.join("dataset");
        let skipped = snapshot_dataset(&self.datastore, &labelled, &dataset)
            .map_err(|e| ApiError::internal(format!("preparing the training data: {e}")))?;
        let run_dir = folder.join("run");
        let mut config = TrainConfig::default();
        config.data.root = dataset;
        config.data.cache_dir = self.datastore.root().join(".ctseg").join("cache");
        config.run.init_from = Some(info.weights.clone());
        config.run.backend = self.backend;
        config.run.max_steps = params.max_steps;
        config.run.steps_per_epoch = params.max_steps.min(250);
        config.run.batch_size = params.batch_size;
        config.run.seed = params.seed;
        config.optim.lr = params.lr;
        config.model = info.config.clone();
        config.validate().map_err(ApiError::bad_request)?;
        let mut task = TrainTask {
            id: id.clone(),
            kind: "train",
            status: "RUNNING",
            model: model.to_string(),
            start_ts: now,
            end_ts: None,
            request,
            details: Vec::new(),
            step: 0,
            max_steps: params.max_steps,
            loss: None,
            best_val_dice: None,
            run_dir: run_dir.clone(),
        };
        task.log(format!(
            "fine-tuning {model} from {} on {} labelled images",
            info.weights.display(),
            labelled.len() - skipped.len()
        ));
        for s in skipped {
            task.log(format!("skipped {s}"));
        }
        let task = Arc::new(Mutex::new(task));
        let control = TrainControl::new();
        inner.running = Some(control.clone());
        inner.tasks.push(task.clone());
        if inner.tasks.len() > 50 {
            inner.tasks.remove(0);
        }
        drop(inner);
        let manager = self.clone();
        let model = model.to_string();
        let spawned = std::thread::Builder::new()
            .name("ctseg-serve-train".into())
            .spawn(move || manager.run(&model, &config, &run_dir, &control, &task));
        if let Err(e) = spawned {
            lock(&self.inner).running = None;
            return Err(ApiError::internal(format!("cannot start training: {e}")));
        }
        Ok(json!({ "id": id, "status": "RUNNING" }))
    }

    fn run(
        &self,
        model: &str,
        config: &TrainConfig,
        run_dir: &Path,
        control: &TrainControl,
        task: &Arc<Mutex<TrainTask>>,
    ) {
        let mut bus = EventBus::new();
        let events = bus.subscribe();
        let follower = {
            let task = task.clone();
            std::thread::spawn(move || {
                for event in events {
                    follow(&task, event);
                }
            })
        };
        let result = ctseg_ml::train::train(config, run_dir, false, &mut bus, control);
        drop(bus);
        if follower.join().is_err() {
            eprintln!("ctseg serve: the training event follower panicked");
        }
        let (status, line) = match result {
            Ok(summary) if summary.reason == FinishReason::Cancelled => (
                "STOPPED",
                "stopped; the served weights are unchanged".to_string(),
            ),
            Ok(_) => match self.worker.reload(model, run_dir) {
                Ok(info) => (
                    "DONE",
                    format!("model {model} now uses {}", info.weights.display()),
                ),
                Err(e) => (
                    "ERROR",
                    format!("training finished but loading its weights failed: {e}"),
                ),
            },
            Err(e) => ("ERROR", format!("training failed: {e}")),
        };
        eprintln!("ctseg serve: training {model}: {line}");
        {
            let mut task = lock(task);
            task.status = status;
            task.end_ts = Some(unix_now());
            task.log(line);
        }
        lock(&self.inner).running = None;
    }
}

/// Keep a task's progress up to date from the trainer's events.
fn follow(task: &Mutex<TrainTask>, event: TrainEvent) {
    let mut task = lock(task);
    match event {
        TrainEvent::Started {
            device,
            train_slices,
            val_volumes,
            ..
        } => task.log(format!(
            "started on {device}: {train_slices} training slices, {val_volumes} validation volumes"
        )),
        TrainEvent::Step(s) => {
            task.step = s.step;
            task.loss = Some(s.loss);
        }
        TrainEvent::Epoch(e) => {
            if let Some(d) = e.val_dice_mean {
                task.best_val_dice = Some(task.best_val_dice.map_or(d, |b| b.max(d)));
            }
            task.log(format!(
                "epoch {}: train loss {:.4}, val loss {:.4}, val Dice {}",
                e.epoch,
                e.train_loss,
                e.val_loss,
                e.val_dice_mean.map_or("-".into(), |d| format!("{d:.4}"))
            ));
        }
        TrainEvent::Warning { message } => task.log(format!("warning: {message}")),
        TrainEvent::Failed { message } => task.log(format!("failed: {message}")),
        _ => {}
    }
}

/// Write `dest` as an nnU-Net raw dataset of the `ids` with final labels: hard links
/// where possible (copies otherwise), `.nii` files gzipped. Returns what was skipped.
fn snapshot_dataset(
    store: &Datastore,
    ids: &[String],
    dest: &Path,
) -> std::io::Result<Vec<String>> {
    let images = dest.join("imagesTr");
    let labels = dest.join("labelsTr");
    std::fs::create_dir_all(&images)?;
    std::fs::create_dir_all(&labels)?;
    let mut skipped = Vec::new();
    let mut n = 0;
    for id in ids {
        let (Some(image), Some(label)) = (store.image_path(id), store.label_path(id, FINAL_TAG))
        else {
            skipped.push(format!("{id}: image or label removed meanwhile"));
            continue;
        };
        link_gz(&image, &images.join(format!("{id}_0000.nii.gz")))?;
        link_gz(&label, &labels.join(format!("{id}.nii.gz")))?;
        n += 1;
    }
    let mut names = serde_json::Map::new();
    names.insert("background".into(), json!(0));
    for s in ctseg_core::structures::catalog().all() {
        names.insert(s.name.clone(), json!(s.label));
    }
    let dataset = json!({
        "name": "ctseg serve datastore",
        "channel_names": { "0": "CT" },
        "labels": names,
        "numTraining": n,
        "file_ending": ".nii.gz",
    });
    std::fs::write(
        dest.join("dataset.json"),
        serde_json::to_vec_pretty(&dataset)?,
    )?;
    Ok(skipped)
}

/// Put `src` at `dest` (a `.nii.gz` path): a hard link or copy of a `.nii.gz`, a
/// gzipped copy of a `.nii`.
fn link_gz(src: &Path, dest: &Path) -> std::io::Result<()> {
    if src.to_string_lossy().ends_with(".nii.gz") {
        if std::fs::hard_link(src, dest).is_err() {
            std::fs::copy(src, dest)?;
        }
        return Ok(());
    }
    let mut input = std::fs::File::open(src)?;
    let out = std::fs::File::create(dest)?;
    let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    std::io::copy(&mut input, &mut encoder)?;
    encoder.finish()?.flush()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
