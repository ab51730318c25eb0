//! The training loop: data preparation, optimiser steps, per-epoch validation on whole
//! volumes, the plateau schedule, checkpoints, resume, pause/cancel and NaN guard.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, TensorData};
use serde::{Deserialize, Serialize};

use super::clip::clip_global_norm;
use super::config::TrainConfig;
use super::events::{
    EpochRecord, EventBus, FinishReason, MetricsLine, StepRecord, TrainControl, TrainEvent,
};
use super::history::write_history_png;
use super::schedule::Plateau;
use crate::backend::{self, BackendError};
use crate::data::{
    BatchStream, CachedSubject, DatasetIndex, Split, all_slices, default_cache_dir, epoch_plan,
    load_or_build,
};
use crate::geometry::IDENTITY;
use crate::metrics::evaluate;
use crate::model::checkpoint::{
    CheckpointError, RECORD_FILE, config_from_header, load_weights, read_header, resolve_weights,
    save_weights, write_file,
};
use crate::model::{UNet, logits_to_labels, loss, one_hot_targets};
use crate::render::{FigureSlice, LabelTable, four_panels};
use crate::structures::catalog;
use crate::window::MODEL_WINDOW;
use crate::{Geometry, LabelVolume};

/// File names inside a run folder.
pub const CONFIG_TOML: &str = "config.toml";
/// One JSON object per line: step and epoch records.
pub const METRICS_JSONL: &str = "metrics.jsonl";
/// Loss, Dice and learning-rate curves.
pub const HISTORY_PNG: &str = "history.png";
/// Folder of per-epoch validation sample figures.
pub const SAMPLES_DIR: &str = "samples";
/// Optimiser state inside a `last` checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.bpk";
/// Training state inside a checkpoint.
pub const STATE_FILE: &str = "state.json";

/// Errors that stop a run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A setting is invalid.
    #[error("invalid training configuration: {0}")]
    Config(String),
    /// The dataset or a file could not be read/written.
    #[error(transparent)]
    Data(#[from] crate::Error),
    /// The device could not be opened.
    #[error(transparent)]
    Device(#[from] BackendError),
    /// A checkpoint could not be read/written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The loss became NaN or infinite.
    #[error(
        "training loss became {value} at epoch {epoch}, step {step}; stopped. {}",
        match last_good { Some(p) => format!("The last good checkpoint is {}", p.display()), None => "No checkpoint was saved yet.".to_string() }
    )]
    NonFiniteLoss {
        /// The loss value.
        value: f64,
        /// Epoch.
        epoch: usize,
        /// Global step.
        step: usize,
        /// Last checkpoint written.
        last_good: Option<PathBuf>,
    },
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    /// Why it ended.
    pub reason: FinishReason,
    /// Best validation Dice.
    pub best_val_dice: Option<f64>,
    /// Its epoch.
    pub best_epoch: Option<usize>,
    /// Epoch records of the whole run (including before a resume).
    pub epochs: Vec<EpochRecord>,
}

/// Everything needed to continue a run exactly, saved as `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epoch to run next (1-based).
    pub next_epoch: usize,
    /// Batch of that epoch to run next.
    pub next_batch: usize,
    /// Optimiser steps done.
    pub global_step: usize,
    /// Learning-rate schedule and early-stopping counters.
    pub plateau: Plateau,
    /// Best validation Dice so far.
    pub best_val_dice: Option<f64>,
    /// Its epoch.
    pub best_epoch: Option<usize>,
    /// Partial sums of the running epoch's training loss.
    pub epoch_loss_sum: f64,
    /// Steps in that sum.
    pub epoch_loss_count: usize,
    /// Seconds already spent on the running epoch before an interruption.
    pub epoch_seconds: f64,
    /// Length of metrics.jsonl when this state was saved (later lines are dropped on
    /// resume, so the file never holds steps twice).
    pub metrics_len: u64,
    /// Epoch records so far.
    pub epochs: Vec<EpochRecord>,
}

/// Paths of a run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The folder.
    pub path: PathBuf,
}

impl RunDir {
    /// `config.toml`.
    pub fn config(&self) -> PathBuf {
        self.path.join(CONFIG_TOML)
    }
    /// `metrics.jsonl`.
    pub fn metrics(&self) -> PathBuf {
        self.path.join(METRICS_JSONL)
    }
    /// `history.png`.
    pub fn history(&self) -> PathBuf {
        self.path.join(HISTORY_PNG)
    }
    /// `checkpoints/<kind>`.
    pub fn checkpoint(&self, kind: &str) -> PathBuf {
        self.path.join("checkpoints").join(kind)
    }
    /// `samples/epoch_NNN.png`: the validation sample figure after `epoch`.
    pub fn sample(&self, epoch: usize) -> PathBuf {
        self.path
            .join(SAMPLES_DIR)
            .join(format!("epoch_{epoch:03}.png"))
    }
}

/// Read the `epoch` and `step` records of a metrics.jsonl (skipping a torn last line,
/// which a run being written can have).
pub fn read_metrics(path: &Path) -> crate::Result<Vec<MetricsLine>> {
    let text = std::fs::read_to_string(path).map_err(|e| crate::Error::io(path, e))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<MetricsLine>(l).ok())
        .collect())
}

/// Load the configuration of an existing run folder.
pub fn load_run_config(run_dir: &Path) -> crate::Result<TrainConfig> {
    TrainConfig::from_toml_file(&run_dir.join(CONFIG_TOML))
}

struct Metrics {
    path: PathBuf,
}

impl Metrics {
    fn append(&self, line: &MetricsLine) -> crate::Result<()> {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| crate::Error::io(&self.path, e))?;
        let mut text = serde_json::to_string(line).unwrap_or_default();
        text.push('\n');
        f.write_all(text.as_bytes())
            .map_err(|e| crate::Error::io(&self.path, e))
    }
    fn len(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }
}

/// Train according to `config` into `run_dir`. With `resume`, continue the run in
/// `run_dir` from its `last` checkpoint (optimiser, schedule, data position restored).
/// Events go to `bus`; `control` pauses or cancels from another thread.
pub fn train(
    config: &TrainConfig,
    run_dir: &Path,
    resume: bool,
    bus: &mut EventBus,
    control: &TrainControl,
) -> Result<TrainSummary, TrainError> {
    let result = train_inner(config, run_dir, resume, bus, control);
    if let Err(e) = &result {
        bus.send(TrainEvent::Failed {
            message: e.to_string(),
        });
    }
    result
}

fn train_inner(
    config: &TrainConfig,
    run_dir: &Path,
    resume: bool,
    bus: &mut EventBus,
    control: &TrainControl,
) -> Result<TrainSummary, TrainError> {
    config.validate().map_err(TrainError::Config)?;
    // Fine-tuning: the model settings come from the starting weights.
    let fine_tuned;
    let config = match (&config.run.init_from, resume) {
        (Some(init), false) => {
            let weights = resolve_weights(init)?;
            let header = read_header(&weights)?;
            let mut c = config.clone();
            c.model = config_from_header(&weights, &header)?;
            fine_tuned = c;
            &fine_tuned
        }
        _ => config,
    };
    let run = RunDir {
        path: run_dir.to_path_buf(),
    };
    if !resume && run.config().exists() {
        return Err(TrainError::Config(format!(
            "{} already holds a run; continue it with --resume or choose another --out",
            run_dir.display()
        )));
    }
    if resume && !run.checkpoint("last").join(STATE_FILE).is_file() {
        return Err(TrainError::Config(format!(
            "{}: no checkpoints/last/{STATE_FILE} to resume from",
            run_dir.display()
        )));
    }

    // Data first: a bad dataset fails before any device or file work.
    let index = DatasetIndex::open(&config.data.root, config.data.val_fraction, config.run.seed)?;
    let train_cases = index.split(Split::Train);
    let mut val_cases = index.split(Split::Val);
    if train_cases.is_empty() {
        return Err(TrainError::Data(crate::Error::format(
            &config.data.root,
            "no training subjects after the split",
        )));
    }
    if val_cases.is_empty() {
        val_cases = train_cases.clone();
    }
    let cache_dir = if config.data.cache_dir.as_os_str().is_empty() {
        default_cache_dir()
    } else {
        config.data.cache_dir.clone()
    };
    let size = config.model.input_size;
    let total = train_cases.len() + val_cases.len();
    let mut prepare = |cases: &[&crate::data::CaseRef], done: &mut usize| {
        cases
            .iter()
            .map(|case| {
                let (subject, built) = load_or_build(&index, case, size, &cache_dir)?;
                *done += 1;
                bus.send(TrainEvent::Preparing {
                    done: *done,
                    total,
                    id: case.id.clone(),
                    cached: !built,
                });
                Ok(subject)
            })
            .collect::<Result<Vec<CachedSubject>, crate::Error>>()
    };
    let mut done = 0;
    let train_subjects = Arc::new(prepare(&train_cases, &mut done)?);
    let val_subjects = prepare(&val_cases, &mut done)?;

    let selected = backend::select(config.run.backend)?;
    if selected.kind != backend::BackendKind::Cpu {
        backend::check_batch_norm_statistics(selected.kind, &selected.device)?;
    }
    let device = selected.device.clone().autodiff();

    std::fs::create_dir_all(&run.path).map_err(|e| crate::Error::io(&run.path, e))?;
    let metrics = Metrics {
        path: run.metrics(),
    };
    let adam = AdamConfig::new()
        .with_beta_1(config.optim.beta1)
        .with_beta_2(config.optim.beta2)
        .with_epsilon(config.optim.epsilon)
        .with_weight_decay(
            (config.optim.weight_decay > 0.0)
                .then(|| WeightDecayConfig::new(config.optim.weight_decay)),
        );
    let mut optim = adam.init();
    device.seed(config.run.seed);
    let mut model: UNet = config.model.init(&device);
    if !resume && let Some(init) = &config.run.init_from {
        model = load_weights(init, &device)?.0;
    }

    let mut state = if resume {
        let last = run.checkpoint("last");
        let state: TrainState = read_json(&last.join(STATE_FILE))?;
        let record = read_bytes(&last.join(RECORD_FILE))?;
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(record)).map_err(|e| {
            CheckpointError::Corrupt {
                path: last.join(RECORD_FILE),
                detail: e.to_string(),
            }
        })?;
        model = model
            .try_load_record(record)
            .map_err(|e| CheckpointError::Corrupt {
                path: last.join(RECORD_FILE),
                detail: e.to_string(),
            })?;
        let optim_bytes = read_bytes(&last.join(OPTIMIZER_FILE))?;
        optim = optim
            .from_bytes(Bytes::from_bytes_vec(optim_bytes))
            .map_err(|e| CheckpointError::Corrupt {
                path: last.join(OPTIMIZER_FILE),
                detail: e.to_string(),
            })?;
        // Drop metrics written after the checkpoint: they will be produced again.
        if let Ok(f) = OpenOptions::new().write(true).open(&metrics.path) {
            let _ = f.set_len(state.metrics_len);
        }
        state
    } else {
        write_file(&run.config(), config.to_toml().as_bytes())?;
        TrainState {
            next_epoch: 1,
            next_batch: 0,
            global_step: 0,
            plateau: Plateau::new(config.optim.lr),
            best_val_dice: None,
            best_epoch: None,
            epoch_loss_sum: 0.0,
            epoch_loss_count: 0,
            epoch_seconds: 0.0,
            metrics_len: 0,
            epochs: Vec::new(),
        }
    };

    let (slices, foreground) = all_slices(&train_subjects);
    let batch_size = config.run.batch_size;
    let accumulate = config.optim.accumulate_steps;
    let num_classes = config.model.num_classes;
    let label_map = config.data.label_map();
    let full_steps = slices.len().div_ceil(batch_size);
    let steps_per_epoch = match config.run.max_steps_per_epoch {
        0 => full_steps,
        n => n.min(full_steps),
    };
    bus.send(TrainEvent::Started {
        run_dir: run.path.clone(),
        device: selected.describe(),
        first_epoch: state.next_epoch,
        epochs: config.run.epochs,
        steps_per_epoch,
        train_slices: slices.len(),
        val_volumes: val_subjects.len(),
        resumed: resume,
    });

    let mut last_saved: Option<PathBuf> = resume.then(|| run.checkpoint("last"));
    let mut reason = FinishReason::Completed;
    'epochs: while state.next_epoch <= config.run.epochs {
        let epoch = state.next_epoch;
        let epoch_start = Instant::now()
            .checked_sub(Duration::from_secs_f64(state.epoch_seconds))
            .unwrap_or_else(Instant::now);
        let plan = Arc::new(epoch_plan(
            &slices,
            &foreground,
            epoch,
            config.run.seed,
            config.data.foreground_oversample,
            batch_size,
        ));
        let augment = config.augment.enabled.then(|| config.augment.clone());
        let mut stream = BatchStream::spawn(
            train_subjects.clone(),
            plan.clone(),
            batch_size,
            state.next_batch,
            augment,
            config.run.seed,
            epoch,
            config.data.loader_workers,
        );
        let mut accumulator = GradientsAccumulator::<UNet>::new();
        let mut in_accumulation = 0usize;
        let mut group_start = state.next_batch;
        let mut recent: Vec<(usize, Duration)> = Vec::new();
        let mut batch_index = state.next_batch;
        while batch_index < steps_per_epoch {
            // Pause / cancel between steps.
            if control.is_paused() {
                bus.send(TrainEvent::Paused);
                while control.is_paused() && !control.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(100));
                }
                bus.send(TrainEvent::Resumed);
            }
            if control.is_cancelled() {
                // Batches of an unfinished accumulation group are redone on resume.
                state.next_batch = group_start;
                state.epoch_seconds = epoch_start.elapsed().as_secs_f64();
                let path = save_checkpoint(
                    &run,
                    "last",
                    &model,
                    config,
                    Some(&optim),
                    &mut state,
                    &metrics,
                )?;
                bus.send(TrainEvent::CheckpointSaved {
                    kind: "last".into(),
                    path,
                    epoch: epoch.saturating_sub(1),
                });
                reason = FinishReason::Cancelled;
                break 'epochs;
            }
            let step_start = Instant::now();
            let Some(batch) = stream.next() else { break };
            let mut batch = batch?;
            if !config.data.structures.is_empty() {
                for l in &mut batch.labels {
                    *l = label_map[*l as usize] as f32;
                }
            }
            let b = batch.len;
            let s = batch.size;
            let x = Tensor::<4>::from_data(TensorData::new(batch.images, [b, 1, s, s]), &device);
            let labels = Tensor::<3>::from_data(TensorData::new(batch.labels, [b, s, s]), &device);
            let targets = one_hot_targets(labels, num_classes);
            let logits = model.forward(x);
            let mut step_loss = loss(config.run.loss, logits, targets);
            let loss_value = step_loss.clone().into_scalar::<f32>() as f64;
            if !loss_value.is_finite() {
                return Err(TrainError::NonFiniteLoss {
                    value: loss_value,
                    epoch,
                    step: state.global_step + 1,
                    last_good: last_saved,
                });
            }
            if accumulate > 1 {
                step_loss = step_loss / accumulate as f32;
            }
            let grads = GradientsParams::from_grads(step_loss.backward(), &model);
            accumulator.accumulate(&model, grads);
            in_accumulation += 1;
            batch_index += 1;
            state.epoch_loss_sum += loss_value;
            state.epoch_loss_count += 1;
            if in_accumulation == accumulate || batch_index == steps_per_epoch {
                let mut grads = accumulator.grads();
                if config.optim.grad_clip_norm > 0.0 {
                    clip_global_norm(&model, &mut grads, config.optim.grad_clip_norm);
                }
                model = optim.step(state.plateau.lr, model, grads);
                in_accumulation = 0;
                group_start = batch_index;
                state.global_step += 1;
            }
            recent.push((b, step_start.elapsed()));
            if recent.len() > 20 {
                recent.remove(0);
            }
            let (n, t) = recent.iter().fold((0usize, 0f64), |(n, t), (b, d)| {
                (n + b, t + d.as_secs_f64())
            });
            let record = StepRecord {
                epoch,
                step: state.global_step,
                loss: loss_value,
                lr: state.plateau.lr,
                slices_per_s: if t > 0.0 { n as f64 / t } else { 0.0 },
            };
            metrics.append(&MetricsLine::Step(record.clone()))?;
            bus.send(TrainEvent::Step(record));
            state.next_batch = batch_index;
        }
        drop(stream);

        bus.send(TrainEvent::Validating { epoch });
        let valid_model = model.valid();
        let validation = validate(
            &valid_model,
            &val_subjects,
            batch_size,
            &selected.device,
            config.run.threshold,
            config,
        )?;
        state
            .plateau
            .observe(validation.dice_mean, &config.schedule);
        let record = EpochRecord {
            epoch,
            train_loss: state.epoch_loss_sum / state.epoch_loss_count.max(1) as f64,
            val_loss: validation.loss,
            val_dice_mean: validation.dice_mean,
            val_dice: validation.dice,
            lr: state.plateau.lr,
            seconds: epoch_start.elapsed().as_secs_f64(),
        };
        metrics.append(&MetricsLine::Epoch(record.clone()))?;
        state.epochs.push(record.clone());
        bus.send(TrainEvent::Epoch(record.clone()));
        write_history_png(&run.history(), &state.epochs)?;
        if let Some(sample) = &validation.sample {
            let path = run.sample(epoch);
            sample.write_png(&path)?;
            bus.send(TrainEvent::Sample {
                epoch,
                subject: sample.subject.clone(),
                slice: sample.slice,
                path,
            });
        }

        let is_best = match (record.val_dice_mean, state.best_val_dice) {
            (Some(d), Some(best)) => d > best,
            (Some(_), None) => true,
            _ => state.best_epoch.is_none(),
        };
        if is_best {
            state.best_val_dice = record.val_dice_mean;
            state.best_epoch = Some(epoch);
        }
        state.next_epoch = epoch + 1;
        state.next_batch = 0;
        state.epoch_loss_sum = 0.0;
        state.epoch_loss_count = 0;
        state.epoch_seconds = 0.0;
        if is_best {
            let path = save_checkpoint(&run, "best", &model, config, None, &mut state, &metrics)?;
            bus.send(TrainEvent::CheckpointSaved {
                kind: "best".into(),
                path,
                epoch,
            });
        }
        let path = save_checkpoint(
            &run,
            "last",
            &model,
            config,
            Some(&optim),
            &mut state,
            &metrics,
        )?;
        last_saved = Some(path.clone());
        bus.send(TrainEvent::CheckpointSaved {
            kind: "last".into(),
            path,
            epoch,
        });
        if state.plateau.should_stop(&config.schedule) {
            reason = FinishReason::EarlyStopped;
            break;
        }
    }
    bus.send(TrainEvent::Finished {
        reason,
        best_val_dice: state.best_val_dice,
        best_epoch: state.best_epoch,
    });
    Ok(TrainSummary {
        reason,
        best_val_dice: state.best_val_dice,
        best_epoch: state.best_epoch,
        epochs: state.epochs,
    })
}

/// Validation results of one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    /// Mean loss over all validation slices.
    pub loss: f64,
    /// Per-structure Dice averaged over the volumes where it is defined.
    pub dice: BTreeMap<String, f64>,
    /// Mean of `dice` over structures.
    pub dice_mean: Option<f64>,
    /// The slice of the first validation volume with the most ground-truth pixels,
    /// with its prediction (for the per-epoch sample figure).
    pub sample: Option<SampleSlice>,
}

/// One validation slice at model resolution, with its ground truth and prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleSlice {
    /// Subject id.
    pub subject: String,
    /// Axial slice index (canonical LPS order).
    pub slice: usize,
    /// Side of the square slice.
    pub size: usize,
    /// Model input in [0, 1] (the HU window [-200, 300]).
    pub image: Vec<f32>,
    /// Ground-truth labels.
    pub gt: Vec<u8>,
    /// Predicted labels.
    pub pred: Vec<u8>,
}

impl SampleSlice {
    /// The four-panel figure CT | GT | Pred | overlay as RGBA `(width, height, pixels)`;
    /// rows run anterior → posterior and columns right → left (radiological view).
    pub fn figure(&self) -> (usize, usize, Vec<u8>) {
        let hu: Vec<i16> = self
            .image
            .iter()
            .map(|&v| {
                let lo = MODEL_WINDOW.center - MODEL_WINDOW.width / 2.0;
                (lo + v * MODEL_WINDOW.width).round() as i16
            })
            .collect();
        let slice = FigureSlice {
            hu: &hu,
            gt: &self.gt,
            pred: &self.pred,
            width: self.size,
            height: self.size,
        };
        let table = LabelTable::from_catalog(catalog());
        four_panels(slice, self.size, MODEL_WINDOW, &table)
    }

    /// Write [`SampleSlice::figure`] as a PNG (temporary file, then renamed).
    pub fn write_png(&self, path: &Path) -> crate::Result<()> {
        let (w, h, rgba) = self.figure();
        let image = image::RgbaImage::from_raw(w as u32, h as u32, rgba)
            .ok_or_else(|| crate::Error::Invalid("sample figure has the wrong size".into()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
        }
        crate::io::atomic_write(path, "png", |tmp| {
            image
                .save_with_format(tmp, image::ImageFormat::Png)
                .map_err(|e| crate::Error::format(path, e.to_string()))
        })
    }
}

/// Predict every slice of each validation volume and compare the 3-D label volumes
/// at model resolution (the cached grid) with the ground truth.
pub fn validate(
    model: &UNet,
    subjects: &[CachedSubject],
    batch_size: usize,
    device: &Device,
    threshold: f32,
    config: &TrainConfig,
) -> Result<Validation, TrainError> {
    let mut loss_sum = 0.0;
    let mut loss_slices = 0usize;
    let mut dice_sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let mut sample = None;
    let label_map = config.data.label_map();
    for subject in subjects {
        let size = subject.header.size;
        let n = size * size;
        let slices = subject.header.slices;
        let mut predicted = Vec::with_capacity(slices * n);
        let mut image = vec![0f32; n];
        let mut label_buf = vec![0u8; n];
        let mut k = 0;
        while k < slices {
            let b = batch_size.min(slices - k);
            let mut images = Vec::with_capacity(b * n);
            let mut labels = Vec::with_capacity(b * n);
            for j in 0..b {
                subject.read_slice(k + j, &mut image, &mut label_buf)?;
                images.extend_from_slice(&image);
                labels.extend(label_buf.iter().map(|&l| label_map[l as usize] as f32));
            }
            let x = Tensor::<4>::from_data(TensorData::new(images, [b, 1, size, size]), device);
            let y = Tensor::<3>::from_data(TensorData::new(labels, [b, size, size]), device);
            let logits = model.forward(x);
            let targets = one_hot_targets(y, config.model.num_classes);
            let l = loss(config.run.loss, logits.clone(), targets).into_scalar::<f32>() as f64;
            loss_sum += l * b as f64;
            loss_slices += b;
            let labels = logits_to_labels(logits, threshold).into_data();
            predicted.extend(
                labels
                    .iter::<i64>()
                    .map(|v| label_map[v.clamp(0, 255) as usize]),
            );
            k += b;
        }
        let spacing = subject.header.source_spacing;
        let [sx, sy, _] = subject.header.source_shape;
        let mut affine = IDENTITY;
        affine[0][0] = spacing[0] * sx as f64 / size as f64;
        affine[1][1] = spacing[1] * sy as f64 / size as f64;
        affine[2][2] = spacing[2];
        let geometry = Geometry::new([size, size, slices], affine);
        let mut gt_labels = subject.read_all_labels()?;
        for l in &mut gt_labels {
            *l = label_map[*l as usize];
        }
        if sample.is_none() {
            sample = sample_slice(subject, &gt_labels, &predicted)?;
        }
        let gt = LabelVolume::new(geometry.clone(), gt_labels)?;
        let pred = LabelVolume::new(geometry, predicted)?;
        let evaluation = evaluate(&gt, &pred, catalog())?;
        for s in evaluation.structures {
            if let Some(d) = s.dice {
                let e = dice_sums.entry(s.name).or_insert((0.0, 0));
                e.0 += d;
                e.1 += 1;
            }
        }
    }
    let dice: BTreeMap<String, f64> = dice_sums
        .into_iter()
        .map(|(name, (sum, count))| (name, sum / count as f64))
        .collect();
    let dice_mean = (!dice.is_empty()).then(|| dice.values().sum::<f64>() / dice.len() as f64);
    Ok(Validation {
        loss: loss_sum / loss_slices.max(1) as f64,
        dice,
        dice_mean,
        sample,
    })
}

/// The slice of `subject` with the most labelled ground-truth pixels (the middle slice
/// when none has any).
fn sample_slice(
    subject: &CachedSubject,
    gt: &[u8],
    pred: &[u8],
) -> Result<Option<SampleSlice>, TrainError> {
    let n = subject.slice_len();
    let slices = subject.header.slices;
    if n == 0 || slices == 0 || gt.len() != n * slices || pred.len() != n * slices {
        return Ok(None);
    }
    let best = (0..slices)
        .map(|k| (gt[k * n..(k + 1) * n].iter().filter(|&&l| l > 0).count(), k))
        .max_by_key(|&(count, k)| (count, std::cmp::Reverse(k)))
        .filter(|&(count, _)| count > 0)
        .map_or(slices / 2, |(_, k)| k);
    let mut image = vec![0f32; n];
    let mut labels = vec![0u8; n]; // read_slice fills both; the remapped `gt` is used
    subject.read_slice(best, &mut image, &mut labels)?;
    Ok(Some(SampleSlice {
        subject: subject.header.id.clone(),
        slice: best,
        size: subject.header.size,
        image,
        gt: gt[best * n..(best + 1) * n].to_vec(),
        pred: pred[best * n..(best + 1) * n].to_vec(),
    }))
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, TrainError> {
    std::fs::read(path).map_err(|e| TrainError::Data(crate::Error::io(path, e)))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, TrainError> {
    let bytes = read_bytes(path)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        TrainError::Checkpoint(CheckpointError::Corrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
    })
}

/// Write checkpoint `kind` (`last` with optimiser, or `best`) into a temporary folder
/// and swap it into place, so an interruption never leaves a half-written checkpoint.
fn save_checkpoint(
    run: &RunDir,
    kind: &str,
    model: &UNet,
    config: &TrainConfig,
    optim: Option<&burn::optim::ModuleOptimizer>,
    state: &mut TrainState,
    metrics: &Metrics,
) -> Result<PathBuf, TrainError> {
    let final_dir = run.checkpoint(kind);
    let parent = run.path.join("checkpoints");
    std::fs::create_dir_all(&parent).map_err(|e| crate::Error::io(&parent, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{kind}-tmp-"))
        .tempdir_in(&parent)
        .map_err(|e| crate::Error::io(&parent, e))?;
    save_weights(tmp.path(), model, &config.model)?;
    let corrupt = |path: PathBuf, e: String| CheckpointError::Corrupt { path, detail: e };
    let record = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| corrupt(tmp.path().join(RECORD_FILE), e.to_string()))?;
    write_file(&tmp.path().join(RECORD_FILE), &record)?;
    if let Some(optim) = optim {
        let bytes = optim
            .into_bytes()
            .map_err(|e| corrupt(tmp.path().join(OPTIMIZER_FILE), e.to_string()))?;
        write_file(&tmp.path().join(OPTIMIZER_FILE), &bytes)?;
    }
    state.metrics_len = metrics.len();
    let json = serde_json::to_vec_pretty(state).unwrap_or_default();
    write_file(&tmp.path().join(STATE_FILE), &json)?;
    let tmp_path = tmp.keep();
    let old = parent.join(format!(".{kind}-old"));
    let _ = std::fs::remove_dir_all(&old);
    if final_dir.exists() {
        std::fs::rename(&final_dir, &old).map_err(|e| crate::Error::io(&final_dir, e))?;
    }
    std::fs::rename(&tmp_path, &final_dir).map_err(|e| crate::Error::io(&final_dir, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(final_dir)
}
