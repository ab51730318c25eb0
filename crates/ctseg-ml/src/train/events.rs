//! Typed training events broadcast over crossbeam channels to any number of
//! listeners (the CLI progress bar, the `metrics.jsonl` writer, the GUI dashboard),
//! and the control handle with which another thread pauses or cancels a run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender, unbounded};
use serde::{Deserialize, Serialize};

/// One optimiser step (`{"kind":"step",…}` in metrics.jsonl).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Global step (1-based, counts optimiser steps over the whole run).
    pub step: usize,
    /// Training loss of this step's batch.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Training throughput over the last steps.
    pub slices_per_s: f64,
}

/// One finished epoch (`{"kind":"epoch",…}` in metrics.jsonl).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Mean validation loss over every slice of the validation volumes.
    pub val_loss: f64,
    /// Mean over structures of the per-volume 3-D Dice (structures present in the
    /// ground truth or the prediction of a validation volume).
    pub val_dice_mean: Option<f64>,
    /// Per-structure 3-D Dice, averaged over validation volumes where defined.
    pub val_dice: BTreeMap<String, f64>,
    /// Learning rate of the next optimiser step (after the schedule has seen the epoch).
    pub lr: f64,
    /// Wall time of the epoch including validation.
    pub seconds: f64,
}

/// A line of metrics.jsonl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MetricsLine {
    /// A step record.
    Step(StepRecord),
    /// An epoch record.
    Epoch(EpochRecord),
}

/// Why a run ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// All epochs ran.
    Completed,
    /// Validation Dice stopped improving for `early_stopping_patience` epochs.
    EarlyStopped,
    /// Cancelled (Ctrl-C or the GUI); `last` holds the state to resume from.
    Cancelled,
}

/// What training reports while it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainEvent {
    /// Preprocessing progress (subjects cached so far).
    Preparing {
        /// Subjects done.
        done: usize,
        /// Subjects in all.
        total: usize,
        /// The subject just done.
        id: String,
        /// Whether it came from the cache.
        cached: bool,
    },
    /// Training begins (or resumes).
    Started {
        /// Run folder.
        run_dir: PathBuf,
        /// Device description.
        device: String,
        /// First epoch to run (1-based).
        first_epoch: usize,
        /// Last epoch.
        epochs: usize,
        /// Optimiser steps per epoch.
        steps_per_epoch: usize,
        /// Training slices (before oversampling).
        train_slices: usize,
        /// Validation volumes.
        val_volumes: usize,
        /// Whether this continues an earlier run.
        resumed: bool,
    },
    /// An optimiser step finished.
    Step(StepRecord),
    /// Validation is running over the validation volumes.
    Validating {
        /// Epoch.
        epoch: usize,
    },
    /// An epoch finished (validated).
    Epoch(EpochRecord),
    /// The validation sample figure of an epoch (CT | GT | Pred | overlay) was written.
    Sample {
        /// Epoch.
        epoch: usize,
        /// Validation subject it shows.
        subject: String,
        /// Axial slice (model grid).
        slice: usize,
        /// The PNG.
        path: PathBuf,
    },
    /// A checkpoint was written.
    CheckpointSaved {
        /// `last` or `best`.
        kind: String,
        /// Its folder.
        path: PathBuf,
        /// Epoch it holds.
        epoch: usize,
    },
    /// Something the user should know that does not stop the run (a dataset
    /// whose meta.csv does not match its folders, validation on training data…).
    Warning {
        /// One line, naming the file or folder concerned.
        message: String,
    },
    /// Training paused from another thread.
    Paused,
    /// Training resumed after a pause.
    Resumed,
    /// The run ended.
    Finished {
        /// Why.
        reason: FinishReason,
        /// Best validation Dice seen.
        best_val_dice: Option<f64>,
        /// Epoch of the best Dice.
        best_epoch: Option<usize>,
    },
    /// The run stopped on an error (NaN loss, device error, I/O error).
    Failed {
        /// What happened.
        message: String,
    },
}

/// Fan-out of training events to every subscriber. Sending never blocks; a
/// subscriber that hung up is dropped.
#[derive(Debug, Default, Clone)]
pub struct EventBus {
    senders: Vec<Sender<TrainEvent>>,
}

impl EventBus {
    /// A bus without listeners.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a listener.
    pub fn subscribe(&mut self) -> Receiver<TrainEvent> {
        let (tx, rx) = unbounded();
        self.senders.push(tx);
        rx
    }

    /// Send `event` to every listener.
    pub fn send(&mut self, event: TrainEvent) {
        self.senders.retain(|s| s.send(event.clone()).is_ok());
    }
}

/// Pause/cancel flags shared between the training thread and its controllers.
#[derive(Debug, Default, Clone)]
pub struct TrainControl {
    cancel: Arc<AtomicBool>,
    pause: Arc<AtomicBool>,
}

impl TrainControl {
    /// New handle, neither paused nor cancelled.
    pub fn new() -> Self {
        Self::default()
    }
    /// Ask the run to stop after the current step (it saves `last` first).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
    /// Pause or resume.
    pub fn set_paused(&self, paused: bool) {
        self.pause.store(paused, Ordering::SeqCst);
    }
    /// Whether a pause was requested.
    pub fn is_paused(&self) -> bool {
        self.pause.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_lines_have_the_documented_shape() {
        let step = MetricsLine::Step(StepRecord {
            epoch: 1,
            step: 3,
            loss: 0.5,
            lr: 1e-3,
            slices_per_s: 10.0,
        });
        let json = serde_json::to_string(&step).expect("json");
        assert!(
            json.starts_with(r#"{"kind":"step","epoch":1,"step":3,"loss":0.5"#),
            "{json}"
        );
        let back: MetricsLine = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, step);
    }

    #[test]
    fn bus_reaches_every_listener_and_drops_hung_up_ones() {
        let mut bus = EventBus::new();
        let a = bus.subscribe();
        let b = bus.subscribe();
        drop(b);
        bus.send(TrainEvent::Paused);
        assert_eq!(a.try_recv().ok(), Some(TrainEvent::Paused));
        assert_eq!(bus.senders.len(), 1);
    }
}
