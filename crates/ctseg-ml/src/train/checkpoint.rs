//! Training checkpoints: the [`TrainState`] that makes a resumed run continue
//! exactly, saving `last`/`best` (swapped into place whole) and restoring `last`.
//! The weights file format itself is [`crate::model::checkpoint`].

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::events::EpochRecord;
use super::run_dir::{MetricsFile, OPTIMIZER_FILE, RunDir, STATE_FILE};
use super::schedule::Plateau;
use super::trainer::TrainError;
use crate::model::UNet;
use crate::model::checkpoint::{CheckpointError, RECORD_FILE, save_weights, write_file};

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

impl TrainState {
    /// The state of a run that has not started: epoch 1, batch 0, learning rate `lr`.
    pub fn fresh(lr: f64) -> Self {
        TrainState {
            next_epoch: 1,
            next_batch: 0,
            global_step: 0,
            plateau: Plateau::new(lr),
            best_val_dice: None,
            best_epoch: None,
            epoch_loss_sum: 0.0,
            epoch_loss_count: 0,
            epoch_seconds: 0.0,
            metrics_len: 0,
            epochs: Vec::new(),
        }
    }
}

/// Restore a run from its `last` checkpoint: weights, optimiser moments and the
/// training state; metrics written after that checkpoint are dropped.
pub fn restore_last(
    run: &RunDir,
    model: UNet,
    optim: ModuleOptimizer,
    metrics: &MetricsFile,
) -> Result<(UNet, ModuleOptimizer, TrainState), TrainError> {
    let last = run.checkpoint("last");
    let state: TrainState = read_json(&last.join(STATE_FILE))?;
    let record = read_bytes(&last.join(RECORD_FILE))?;
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(record)).map_err(|e| {
        CheckpointError::Corrupt {
            path: last.join(RECORD_FILE),
            detail: e.to_string(),
        }
    })?;
    let model = model
        .try_load_record(record)
        .map_err(|e| CheckpointError::Corrupt {
            path: last.join(RECORD_FILE),
            detail: e.to_string(),
        })?;
    let optim_bytes = read_bytes(&last.join(OPTIMIZER_FILE))?;
    let optim = optim
        .from_bytes(Bytes::from_bytes_vec(optim_bytes))
        .map_err(|e| CheckpointError::Corrupt {
            path: last.join(OPTIMIZER_FILE),
            detail: e.to_string(),
        })?;
    metrics.truncate(state.metrics_len)?;
    Ok((model, optim, state))
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, TrainError> {
    std::fs::read(path).map_err(|e| TrainError::Data(ctseg_core::Error::io(path, e)))
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
/// Sends nothing: the caller reports [`super::TrainEvent::CheckpointSaved`].
pub fn save_checkpoint(
    run: &RunDir,
    kind: &str,
    model: &UNet,
    config: &TrainConfig,
    optim: Option<&burn::optim::ModuleOptimizer>,
    state: &mut TrainState,
    metrics: &MetricsFile,
) -> Result<PathBuf, TrainError> {
    let final_dir = run.checkpoint(kind);
    let parent = run.path.join("checkpoints");
    std::fs::create_dir_all(&parent).map_err(|e| ctseg_core::Error::io(&parent, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{kind}-tmp-"))
        .tempdir_in(&parent)
        .map_err(|e| ctseg_core::Error::io(&parent, e))?;
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
    let json = serde_json::to_vec_pretty(state)
        .map_err(|e| corrupt(tmp.path().join(STATE_FILE), e.to_string()))?;
    write_file(&tmp.path().join(STATE_FILE), &json)?;
    let tmp_path = tmp.keep();
    let old = parent.join(format!(".{kind}-old"));
    remove_stale(&old)?;
    if final_dir.exists() {
        std::fs::rename(&final_dir, &old).map_err(|e| ctseg_core::Error::io(&final_dir, e))?;
    }
    std::fs::rename(&tmp_path, &final_dir).map_err(|e| ctseg_core::Error::io(&final_dir, e))?;
    // The new checkpoint is in place; a leftover old copy only costs disk space.
    if let Err(e) = remove_stale(&old) {
        log::warn!("could not remove the previous checkpoint: {e}");
    }
    Ok(final_dir)
}

/// Remove a folder left from an earlier swap; a missing folder is fine.
fn remove_stale(dir: &Path) -> Result<(), TrainError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(TrainError::Data(ctseg_core::Error::io(dir, e))),
    }
}
