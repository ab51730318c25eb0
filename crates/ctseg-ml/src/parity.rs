//! Training parity with the PyTorch reference (`benches/pytorch/parity.py`): a fixed
//! sequence of batches from ctseg's own data pipeline (augmentation off), written
//! for the reference to read, and the same steps taken by ctseg's training step, so
//! the two engines can be compared loss for loss from the same initial weights.

use std::path::Path;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{CachedSubject, all_slices, epoch_plan_of_batches, load_or_build, make_batch};
use crate::infer::Precision;
use crate::model::{LossKind, UNet};
use crate::train::amp::MixedPrecision;
use crate::train::config::OptimSection;
use crate::train::step::{batch_tensors, optimizer, train_step};
use ctseg_core::dataset::{DatasetIndex, Split};
use ctseg_core::error::{Error, Result};
use ctseg_core::io::atomic_write;

/// File of the batches' pixels: every batch's images, then every batch's labels, as
/// little-endian f32.
pub const BATCHES_BIN: &str = "batches.f32";
/// Its description ([`BatchesHeader`]) as JSON.
pub const BATCHES_JSON: &str = "batches.json";

/// What [`BATCHES_BIN`] holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchesHeader {
    /// Number of batches.
    pub steps: usize,
    /// Slices per batch.
    pub batch_size: usize,
    /// Side of the square slices.
    pub size: usize,
}

/// A fixed sequence of training batches and the subjects to validate on.
pub struct FixedBatches {
    /// Their shape.
    pub header: BatchesHeader,
    /// Per batch: windowed images `[b, 1, s, s]`, flattened.
    pub images: Vec<Vec<f32>>,
    /// Per batch: label values `[b, s, s]`, flattened.
    pub labels: Vec<Vec<f32>>,
    /// The validation subjects of the dataset (the subject itself for one subject).
    pub val: Vec<CachedSubject>,
}

impl FixedBatches {
    /// `steps` batches of `batch_size` slices at `size`² from the training split of
    /// `data`, in the trainer's seeded order with its foreground oversampling.
    pub fn from_dataset(
        data: &Path,
        size: usize,
        batch_size: usize,
        steps: usize,
        seed: u64,
        cache_dir: &Path,
    ) -> Result<Self> {
        let index = DatasetIndex::open(data, 0.2, seed)?;
        let load = |split: Split| -> Result<Vec<CachedSubject>> {
            index
                .split(split)
                .into_iter()
                .map(|case| load_or_build(&index, case, size, cache_dir).map(|(s, _)| s))
                .collect()
        };
        let train = load(Split::Train)?;
        let val = load(Split::Val)?;
        let (slices, foreground) = all_slices(&train);
        let plan = epoch_plan_of_batches(&slices, &foreground, 1, seed, 0.33, batch_size, steps);
        let mut images = Vec::with_capacity(steps);
        let mut labels = Vec::with_capacity(steps);
        for i in 0..steps {
            let batch = make_batch(&train, &plan, i, batch_size, None, seed, 1)?;
            if batch.len != batch_size {
                return Err(Error::Invalid(format!(
                    "{}: batch {i} has {} slices, not {batch_size}",
                    data.display(),
                    batch.len
                )));
            }
            images.push(batch.images);
            labels.push(batch.labels);
        }
        Ok(FixedBatches {
            header: BatchesHeader {
                steps,
                batch_size,
                size,
            },
            images,
            labels,
            val,
        })
    }

    /// Write [`BATCHES_BIN`] and [`BATCHES_JSON`] into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let mut bytes = Vec::new();
        for v in self.images.iter().chain(&self.labels) {
            for x in v {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
        }
        let bin = dir.join(BATCHES_BIN);
        atomic_write(&bin, ".f32", |tmp| {
            std::fs::write(tmp, &bytes).map_err(|e| Error::io(tmp, e))
        })?;
        let json = serde_json::to_string(&self.header)
            .map_err(|e| Error::Invalid(format!("batches header: {e}")))?;
        let path = dir.join(BATCHES_JSON);
        atomic_write(&path, ".json", |tmp| {
            std::fs::write(tmp, json.as_bytes()).map_err(|e| Error::io(tmp, e))
        })
    }

    /// Take one optimiser step per batch, in order, at a constant learning rate (the
    /// trainer's step: Adam with the settings' β, ε, L2 decay and global-norm
    /// clipping), for a model of `classes` outputs. Returns the trained model and each step's loss before its update.
    pub fn train(
        &self,
        mut model: UNet,
        classes: usize,
        loss: LossKind,
        lr: f64,
        settings: &OptimSection,
        device: &Device,
    ) -> (UNet, Vec<f64>) {
        let mut optim = optimizer(settings);
        let BatchesHeader {
            batch_size, size, ..
        } = self.header;
        let mut losses = Vec::with_capacity(self.images.len());
        for (images, labels) in self.images.iter().zip(&self.labels) {
            let (x, targets) = batch_tensors(
                images.clone(),
                labels.clone(),
                batch_size,
                size,
                classes,
                device,
            );
            let (next, value) = train_step(
                model,
                &mut optim,
                x,
                targets,
                loss,
                lr,
                settings,
                &mut MixedPrecision::new(Precision::F32),
            );
            model = next;
            losses.push(value);
        }
        (model, losses)
    }
}

/// One parity experiment.
#[derive(Debug, Clone)]
pub struct ParitySettings {
    /// Dataset (e.g. the s0001 subject folder).
    pub data: std::path::PathBuf,
    /// Preprocessed-slice cache folder.
    pub cache_dir: std::path::PathBuf,
    /// The model (its `num_classes` must be the catalog's for validation).
    pub model: crate::model::UNetConfig,
    /// Optimiser steps (one batch each).
    pub steps: usize,
    /// Slices per batch.
    pub batch_size: usize,
    /// Loss of both engines.
    pub loss: LossKind,
    /// Constant learning rate.
    pub lr: f64,
    /// Seed of the initial weights and of the batch order.
    pub seed: u64,
    /// CPU threads of the PyTorch side.
    pub torch_threads: usize,
}

impl ParitySettings {
    /// The harness's experiment: the tiny U-Net (64², base 8, depth 3, the 117
    /// structures), batch 6, constant lr 1e-3, seed 7, two PyTorch threads.
    pub fn tiny(
        data: std::path::PathBuf,
        cache_dir: std::path::PathBuf,
        steps: usize,
        loss: LossKind,
    ) -> Self {
        ParitySettings {
            data,
            cache_dir,
            model: crate::model::UNetConfig {
                in_channels: 1,
                num_classes: ctseg_core::structures::NUM_STRUCTURES,
                base_channels: 8,
                depth: 3,
                input_size: 64,
            },
            steps,
            batch_size: 6,
            loss,
            lr: 1e-3,
            seed: 7,
            torch_threads: 2,
        }
    }
}

/// What a parity experiment measured.
#[derive(Debug, Clone, Serialize)]
pub struct ParityReport {
    /// ctseg's loss per step.
    pub ctseg_losses: Vec<f64>,
    /// PyTorch's loss per step.
    pub torch_losses: Vec<f64>,
    /// PyTorch's version.
    pub torch_version: String,
    /// Mean validation Dice (model resolution) of ctseg's final model.
    pub ctseg_dice: Option<f64>,
    /// The same for PyTorch's final weights, validated by ctseg's code.
    pub torch_dice: Option<f64>,
    /// Per-structure Dice of ctseg's and PyTorch's final models (liver, spleen, …).
    pub dice_by_structure: Vec<(String, Option<f64>, Option<f64>)>,
}

impl ParityReport {
    /// Largest |ctseg − torch| / |torch| over the first `n` steps.
    pub fn max_relative_difference(&self, n: usize) -> f64 {
        self.ctseg_losses
            .iter()
            .zip(&self.torch_losses)
            .take(n)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1e-12))
            .fold(0.0, f64::max)
    }
}

#[derive(Deserialize)]
struct TorchLosses {
    torch: String,
    losses: Vec<f64>,
}

/// Run the experiment in `dir`: seeded initial weights (written as
/// `init.safetensors`), the fixed batches, the PyTorch side (`python script`), the
/// ctseg side, and both final models validated by ctseg's validation code.
pub fn compare_with_pytorch(
    settings: &ParitySettings,
    python: &Path,
    script: &Path,
    dir: &Path,
) -> Result<ParityReport> {
    use crate::model::checkpoint::{load_weights, weights_to_bytes, write_file};
    use crate::train::TrainConfig;
    use crate::train::validation::run_validation;

    let device = Device::flex().autodiff();
    let model: UNet = settings.model.init_seeded(&device, settings.seed);
    let bytes = weights_to_bytes(&model, &settings.model).map_err(Error::Invalid)?;
    write_file(&dir.join("init.safetensors"), &bytes).map_err(|e| Error::Invalid(e.to_string()))?;
    let batches = FixedBatches::from_dataset(
        &settings.data,
        settings.model.input_size,
        settings.batch_size,
        settings.steps,
        settings.seed,
        &settings.cache_dir,
    )?;
    batches.write(dir)?;

    let output = std::process::Command::new(python)
        .arg(script)
        .arg("--dir")
        .arg(dir)
        .args(["--loss", settings.loss.name()])
        .args(["--lr", &settings.lr.to_string()])
        .args(["--threads", &settings.torch_threads.to_string()])
        .output()
        .map_err(|e| Error::io(python, e))?;
    if !output.status.success() {
        return Err(Error::Invalid(format!(
            "{} {} failed: {}",
            python.display(),
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let losses_path = dir.join("torch_losses.json");
    let text = std::fs::read_to_string(&losses_path).map_err(|e| Error::io(&losses_path, e))?;
    let torch: TorchLosses = serde_json::from_str(&text)
        .map_err(|e| Error::format(&losses_path, format!("not the expected JSON: {e}")))?;

    let optim = TrainConfig::default().optim;
    let (trained, ctseg_losses) = batches.train(
        model,
        settings.model.num_classes,
        settings.loss,
        settings.lr,
        &optim,
        &device,
    );
    let mut config = TrainConfig {
        model: settings.model.clone(),
        ..TrainConfig::default()
    };
    config.run.loss = settings.loss;
    let cpu = Device::flex();
    let validate = |m: &UNet| -> Result<crate::train::validation::Validation> {
        run_validation(m, &batches.val, settings.batch_size, &cpu, 0.5, &config)
            .map_err(|e| Error::Invalid(e.to_string()))
    };
    let ours = validate(&trained.valid())?;
    let (torch_model, _, _) = load_weights(&dir.join("torch_final.safetensors"), &cpu)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let theirs = validate(&torch_model)?;
    let dice_by_structure = ["liver", "spleen", "kidney_right", "kidney_left", "stomach"]
        .iter()
        .map(|name| {
            (
                name.to_string(),
                ours.dice.get(*name).copied(),
                theirs.dice.get(*name).copied(),
            )
        })
        .collect();
    Ok(ParityReport {
        ctseg_losses,
        torch_losses: torch.losses,
        torch_version: torch.torch,
        ctseg_dice: ours.dice_mean,
        torch_dice: theirs.dice_mean,
        dice_by_structure,
    })
}
