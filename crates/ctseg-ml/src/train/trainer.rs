//! The training loop: data preparation, optimiser steps (one [`super::step`] for
//! every caller), per-epoch validation on whole volumes, the plateau schedule,
//! checkpoints, resume, pause/cancel and the NaN guard.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::module::Module;
use burn::optim::{GradientsAccumulator, ModuleOptimizer};
use burn::prelude::*;

use super::amp::{MixedPrecision, check_training_precision};
use super::checkpoint::{TrainState, restore_last, save_checkpoint};
use super::config::TrainConfig;
use super::events::{
    EpochRecord, EventBus, FinishReason, MetricsLine, StepRecord, TrainControl, TrainEvent,
};
use super::plots::write_history_png;
use super::run_dir::{MetricsFile, RunDir, STATE_FILE};
use super::schedule::learning_rate;
use super::step::{apply_gradients, batch_tensors, gradients, optimizer};
use super::validation::run_validation;
use crate::backend::{self, BackendError, SelectedDevice};
use crate::data::{
    BatchStream, CachedSubject, SliceRef, all_slices, epoch_plan_of_batches, load_or_build,
};
use crate::infer::Precision;
use crate::model::UNet;
use crate::model::checkpoint::{
    CheckpointError, config_from_header, load_weights, read_header, resolve_weights, write_file,
};
use ctseg_core::dataset::{CaseRef, DatasetIndex, Split};

/// Errors that stop a run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A setting is invalid.
    #[error("invalid training configuration: {0}")]
    Config(String),
    /// The dataset or a file could not be read/written.
    #[error(transparent)]
    Data(#[from] ctseg_core::Error),
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
    let config = effective_config(config, resume)?;
    let run = RunDir {
        path: run_dir.to_path_buf(),
    };
    check_run_folder(&run, resume)?;
    // Data first: a bad dataset fails before any device or file work.
    let data = prepare_data(&config, bus)?;
    let selected = backend::select(config.run.backend)?;
    check_training_precision(
        config.run.precision,
        selected.kind,
        &selected.device,
        &selected.describe(),
    )
    .map_err(TrainError::Config)?;
    if selected.kind != backend::BackendKind::Cpu {
        backend::check_batch_norm_statistics(selected.kind, &selected.device)?;
    }
    std::fs::create_dir_all(&run.path).map_err(|e| ctseg_core::Error::io(&run.path, e))?;
    let metrics = MetricsFile::of(&run);
    let device = selected.device.clone().autodiff();
    let mut model: UNet = config.model.init_seeded(&device, config.run.seed);
    if !resume && let Some(init) = &config.run.init_from {
        model = load_weights(init, &device)?.0;
    }
    let optim = optimizer(&config.optim);
    let (model, optim, state) = if resume {
        restore_last(&run, model, optim, &metrics)?
    } else {
        write_file(&run.config(), config.to_toml()?.as_bytes())?;
        (model, optim, TrainState::fresh(config.optim.lr))
    };
    let mut session = Session {
        config: &config,
        run,
        metrics,
        selected,
        device,
        data,
        optim,
        state,
        last_saved: None,
        amp: MixedPrecision::new(config.run.precision),
        bus,
        control,
    };
    if resume {
        session.last_saved = Some(session.run.checkpoint("last"));
    }
    session.run_epochs(model, resume)
}

/// The configuration a run uses: for fine-tuning (`run.init_from` on a new run) the
/// model settings come from the starting weights.
fn effective_config(config: &TrainConfig, resume: bool) -> Result<TrainConfig, TrainError> {
    let mut config = config.clone();
    if let (Some(init), false) = (&config.run.init_from, resume) {
        let weights = resolve_weights(init)?;
        let header = read_header(&weights)?;
        config.model = config_from_header(&weights, &header)?;
    }
    Ok(config)
}

/// A new run needs a folder without a run; a resumed one needs `last`.
fn check_run_folder(run: &RunDir, resume: bool) -> Result<(), TrainError> {
    let has_checkpoint = run.checkpoint("last").join(STATE_FILE).is_file();
    if !resume && run.config().exists() {
        return Err(TrainError::Config(if has_checkpoint {
            format!(
                "{} already holds a run; continue it with --resume or choose another --out",
                run.path.display()
            )
        } else {
            format!(
                "{} holds a run that stopped before its first checkpoint, so there is nothing to resume; delete the folder to start again, or choose another --out",
                run.path.display()
            )
        }));
    }
    if resume && !has_checkpoint {
        return Err(TrainError::Config(format!(
            "{}: no checkpoints/last/{STATE_FILE} to resume from (the run stopped before its first checkpoint); delete the folder and start the run again",
            run.path.display()
        )));
    }
    Ok(())
}

/// The preprocessed training and validation subjects.
struct TrainData {
    train: Arc<Vec<CachedSubject>>,
    val: Vec<CachedSubject>,
    /// Every training slice, and which of them hold foreground (listed once).
    slices: Vec<SliceRef>,
    foreground: Vec<usize>,
}

/// Open the dataset, split it and preprocess every subject into the slice cache
/// (reporting [`TrainEvent::Preparing`] per subject).
fn prepare_data(config: &TrainConfig, bus: &mut EventBus) -> Result<TrainData, TrainError> {
    let index = DatasetIndex::open(&config.data.root, config.data.val_fraction, config.run.seed)?;
    let train_cases = index.split(Split::Train);
    let mut val_cases = index.split(Split::Val);
    if train_cases.is_empty() {
        return Err(TrainError::Data(ctseg_core::Error::format(
            &config.data.root,
            "no training subjects after the split",
        )));
    }
    for message in &index.warnings {
        bus.send(TrainEvent::Warning {
            message: message.clone(),
        });
    }
    if val_cases.is_empty() {
        bus.send(TrainEvent::Warning {
            message: format!(
                "{}: no validation subjects ({}); validating on the {} training subjects, so the validation Dice measures fit, not generalisation",
                config.data.root.display(),
                index.split_source,
                train_cases.len()
            ),
        });
        val_cases = train_cases.clone();
    }
    let cache_dir = if config.data.cache_dir.as_os_str().is_empty() {
        ctseg_core::paths::slice_cache_dir()
    } else {
        config.data.cache_dir.clone()
    };
    let size = config.model.input_size;
    let total = train_cases.len() + val_cases.len();
    let mut done = 0;
    let mut prepare = |cases: &[&CaseRef]| {
        cases
            .iter()
            .map(|case| {
                let (subject, built) = load_or_build(&index, case, size, &cache_dir)?;
                done += 1;
                bus.send(TrainEvent::Preparing {
                    done,
                    total,
                    id: case.id.clone(),
                    cached: !built,
                });
                Ok(subject)
            })
            .collect::<Result<Vec<CachedSubject>, ctseg_core::Error>>()
    };
    let train = Arc::new(prepare(&train_cases)?);
    let val = prepare(&val_cases)?;
    let (slices, foreground) = all_slices(&train);
    Ok(TrainData {
        train,
        val,
        slices,
        foreground,
    })
}

/// The length of a run.
struct RunPlan {
    /// Batches per epoch (optimiser steps × accumulation).
    batches_per_epoch: usize,
    /// Epochs to run (from the step budget when `run.max_steps` is set).
    epochs: usize,
    /// Optimiser steps of the whole run, over which poly and cosine decay.
    total_steps: usize,
}

/// How an epoch's batches ended.
enum EpochEnd {
    /// Every batch of the epoch ran.
    Completed,
    /// Cancelled between steps; `last` has been saved.
    Cancelled,
}

/// A running training session: the model, optimiser and state, and where they go.
struct Session<'a> {
    config: &'a TrainConfig,
    run: RunDir,
    metrics: MetricsFile,
    selected: SelectedDevice,
    device: Device,
    data: TrainData,
    optim: ModuleOptimizer,
    state: TrainState,
    last_saved: Option<PathBuf>,
    /// The steps' precision and, for f16, the loss scale (it restarts at its initial
    /// value on resume and settles again within a few steps).
    amp: MixedPrecision,
    bus: &'a mut EventBus,
    control: &'a TrainControl,
}

impl Session<'_> {
    /// Run epochs until the configured number, early stopping or cancellation. The
    /// model is passed by value (never cloned), so Burn can update its parameters in
    /// place.
    fn run_epochs(mut self, mut model: UNet, resumed: bool) -> Result<TrainSummary, TrainError> {
        let plan = self.plan();
        self.bus.send(TrainEvent::Started {
            run_dir: self.run.path.clone(),
            device: match self.config.run.precision {
                Precision::F32 => self.selected.describe(),
                p => format!("{} · {p} mixed precision", self.selected.describe()),
            },
            first_epoch: self.state.next_epoch,
            epochs: plan.epochs,
            steps_per_epoch: plan.batches_per_epoch,
            train_slices: self.data.slices.len(),
            val_volumes: self.data.val.len(),
            resumed,
        });
        let mut reason = FinishReason::Completed;
        while self.state.next_epoch <= plan.epochs && !self.budget_spent(&plan) {
            let epoch = self.state.next_epoch;
            let epoch_start = Instant::now()
                .checked_sub(Duration::from_secs_f64(self.state.epoch_seconds))
                .unwrap_or_else(Instant::now);
            let (next, end) = self.run_batches(model, epoch, epoch_start, &plan)?;
            model = next;
            if let EpochEnd::Cancelled = end {
                reason = FinishReason::Cancelled;
                break;
            }
            if self.end_epoch(&model, epoch, epoch_start, &plan)? {
                reason = FinishReason::EarlyStopped;
                break;
            }
        }
        self.bus.send(TrainEvent::Finished {
            reason,
            best_val_dice: self.state.best_val_dice,
            best_epoch: self.state.best_epoch,
        });
        Ok(TrainSummary {
            reason,
            best_val_dice: self.state.best_val_dice,
            best_epoch: self.state.best_epoch,
            epochs: self.state.epochs,
        })
    }

    /// The run's length from its settings and the number of training slices.
    fn plan(&self) -> RunPlan {
        let run = &self.config.run;
        let accumulate = self.config.optim.accumulate_steps;
        let batches_per_epoch = match run.steps_per_epoch {
            0 => self.data.slices.len().div_ceil(run.batch_size),
            n => n * accumulate,
        };
        let length = self.config.run_length(batches_per_epoch);
        RunPlan {
            batches_per_epoch,
            epochs: length.epochs,
            total_steps: length.total_steps,
        }
    }

    /// Whether the step budget (`run.max_steps`) is used up.
    fn budget_spent(&self, plan: &RunPlan) -> bool {
        self.config.run.max_steps > 0 && self.state.global_step >= plan.total_steps
    }

    /// The learning rate of the next optimiser step.
    fn next_lr(&self, plan: &RunPlan) -> f64 {
        learning_rate(
            &self.config.schedule,
            self.config.optim.lr,
            self.state.plateau.lr,
            self.state.global_step,
            plan.total_steps,
        )
    }

    /// The optimiser steps of one epoch, from the state's batch position.
    fn run_batches(
        &mut self,
        mut model: UNet,
        epoch: usize,
        epoch_start: Instant,
        plan: &RunPlan,
    ) -> Result<(UNet, EpochEnd), TrainError> {
        let config = self.config;
        let batch_size = config.run.batch_size;
        let accumulate = config.optim.accumulate_steps;
        let label_map = config.data.label_map();
        let batches_per_epoch = plan.batches_per_epoch;
        let slice_plan = Arc::new(epoch_plan_of_batches(
            &self.data.slices,
            &self.data.foreground,
            epoch,
            config.run.seed,
            config.data.foreground_oversample,
            batch_size,
            batches_per_epoch,
        ));
        let augment = config.augment.enabled.then(|| config.augment.clone());
        let mut stream = BatchStream::spawn(
            self.data.train.clone(),
            slice_plan,
            batch_size,
            self.state.next_batch,
            augment,
            config.run.seed,
            epoch,
            config.data.loader_workers,
        );
        let mut accumulator = GradientsAccumulator::<UNet>::new();
        let mut in_accumulation = 0usize;
        let mut group_start = self.state.next_batch;
        let mut recent: Vec<(usize, Duration)> = Vec::new();
        let mut batch_index = self.state.next_batch;
        while batch_index < batches_per_epoch {
            if in_accumulation == 0 && self.budget_spent(plan) {
                break;
            }
            self.wait_while_paused();
            if self.control.is_cancelled() {
                // Batches of an unfinished accumulation group are redone on resume.
                self.state.next_batch = group_start;
                self.state.epoch_seconds = epoch_start.elapsed().as_secs_f64();
                self.save(&model, "last", true, epoch.saturating_sub(1))?;
                return Ok((model, EpochEnd::Cancelled));
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
            let (x, targets) = batch_tensors(
                batch.images,
                batch.labels,
                b,
                batch.size,
                config.model.num_classes,
                &self.device,
            );
            let (grads, loss_value) =
                gradients(&model, x, targets, config.run.loss, accumulate, &self.amp);
            if !loss_value.is_finite() {
                return Err(TrainError::NonFiniteLoss {
                    value: loss_value,
                    epoch,
                    step: self.state.global_step + 1,
                    last_good: self.last_saved.clone(),
                });
            }
            accumulator.accumulate(&model, grads);
            in_accumulation += 1;
            batch_index += 1;
            self.state.epoch_loss_sum += loss_value;
            self.state.epoch_loss_count += 1;
            let lr = self.next_lr(plan);
            if in_accumulation == accumulate || batch_index == batches_per_epoch {
                let applied;
                (model, applied) = apply_gradients(
                    model,
                    &mut self.optim,
                    accumulator.grads(),
                    lr,
                    config.optim.grad_clip_norm,
                    &mut self.amp,
                );
                let skipped = self.amp.skipped_steps();
                // Reported at 1, 2, 4, 8, … skips: a few at the start are normal
                // while the loss scale settles.
                if !applied && skipped.is_power_of_two() {
                    self.bus.send(TrainEvent::Warning {
                        message: format!(
                            "{} gradients overflowed at step {}: the update was skipped and the loss scale lowered to {} ({skipped} skipped so far)",
                            self.amp.precision(),
                            self.state.global_step + 1,
                            self.amp.loss_scale()
                        ),
                    });
                }
                in_accumulation = 0;
                group_start = batch_index;
                self.state.global_step += 1;
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
                step: self.state.global_step,
                loss: loss_value,
                lr,
                slices_per_s: if t > 0.0 { n as f64 / t } else { 0.0 },
            };
            self.metrics.append(&MetricsLine::Step(record.clone()))?;
            self.bus.send(TrainEvent::Step(record));
            self.state.next_batch = batch_index;
        }
        Ok((model, EpochEnd::Completed))
    }

    /// Block between steps while paused (until resumed or cancelled).
    fn wait_while_paused(&mut self) {
        if self.control.is_paused() {
            self.bus.send(TrainEvent::Paused);
            while self.control.is_paused() && !self.control.is_cancelled() {
                std::thread::sleep(Duration::from_millis(100));
            }
            self.bus.send(TrainEvent::Resumed);
        }
    }

    /// Validate, record the epoch, update the schedule and save checkpoints. Returns
    /// whether early stopping ends the run.
    fn end_epoch(
        &mut self,
        model: &UNet,
        epoch: usize,
        epoch_start: Instant,
        plan: &RunPlan,
    ) -> Result<bool, TrainError> {
        let config = self.config;
        self.bus.send(TrainEvent::Validating { epoch });
        let valid_model = model.valid();
        let validation = run_validation(
            &valid_model,
            &self.data.val,
            config.run.batch_size,
            &self.selected.device,
            config.run.threshold,
            config,
        )?;
        self.state
            .plateau
            .observe(validation.dice_mean, &config.schedule);
        let lr = self.next_lr(plan);
        let state = &mut self.state;
        let record = EpochRecord {
            epoch,
            train_loss: state.epoch_loss_sum / state.epoch_loss_count.max(1) as f64,
            val_loss: validation.loss,
            val_dice_mean: validation.dice_mean,
            val_dice: validation.dice,
            lr,
            seconds: epoch_start.elapsed().as_secs_f64(),
        };
        self.metrics.append(&MetricsLine::Epoch(record.clone()))?;
        state.epochs.push(record.clone());
        self.bus.send(TrainEvent::Epoch(record.clone()));
        write_history_png(&self.run.history(), &state.epochs)?;
        if let Some(sample) = &validation.sample {
            let path = self.run.sample(epoch);
            sample.write_png(&path)?;
            self.bus.send(TrainEvent::Sample {
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
            self.save(model, "best", false, epoch)?;
        }
        let path = self.save(model, "last", true, epoch)?;
        self.last_saved = Some(path);
        Ok(self.state.plateau.should_stop(&config.schedule))
    }

    /// Save checkpoint `kind` (with the optimiser when `with_optimizer`) and report it.
    fn save(
        &mut self,
        model: &UNet,
        kind: &str,
        with_optimizer: bool,
        epoch: usize,
    ) -> Result<PathBuf, TrainError> {
        let path = save_checkpoint(
            &self.run,
            kind,
            model,
            self.config,
            with_optimizer.then_some(&self.optim),
            &mut self.state,
            &self.metrics,
        )?;
        self.bus.send(TrainEvent::CheckpointSaved {
            kind: kind.into(),
            path: path.clone(),
            epoch,
        });
        Ok(path)
    }
}
