//! Every setting of a training run, written out in full to the run's `config.toml`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::augment::AugmentConfig;
use crate::backend::BackendKind;
use crate::infer::Precision;
use crate::model::{LossKind, UNetConfig};
use ctseg_core::error::{Error, Result};

/// The whole configuration of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Run-level settings: epochs, batch size, loss, seed, backend.
    pub run: RunSection,
    /// Dataset and data pipeline.
    pub data: DataSection,
    /// Optimiser and gradient handling.
    pub optim: OptimSection,
    /// Learning-rate schedule and early stopping.
    pub schedule: ScheduleSection,
    /// The network.
    pub model: UNetConfig,
    /// Augmentation of training slices.
    pub augment: AugmentConfig,
}

/// Run-level settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSection {
    /// Number of epochs (a validation after each). With `max_steps` set, the step
    /// budget ends the run instead.
    pub epochs: usize,
    /// Slices per batch.
    pub batch_size: usize,
    /// Training loss.
    pub loss: LossKind,
    /// Seed for weights, data order and augmentation.
    pub seed: u64,
    /// Compute backend.
    pub backend: BackendKind,
    /// Probability threshold for validation masks.
    pub threshold: f32,
    /// Optimiser steps per epoch, whatever the dataset's size (nnU-Net's 250); the
    /// batches cycle through the shuffled training slices as often as needed.
    /// 0 = one pass over the training slices (the seed's epoch).
    #[serde(alias = "max_steps_per_epoch")]
    pub steps_per_epoch: usize,
    /// Total optimiser-step budget (0 = none: `epochs` decides). The run ends after
    /// this many steps with a final validation, `last` and `best` saved; the poly and
    /// cosine schedules decay over it.
    pub max_steps: usize,
    /// Fine-tuning: start from these weights (file, checkpoint folder or run folder)
    /// instead of random ones; the model settings are taken from them.
    pub init_from: Option<PathBuf>,
    /// Float type of the training steps: f32, or mixed precision in f16 (with dynamic
    /// loss scaling) or bf16 on f32 master weights, BatchNorm in f32. GPUs only.
    pub precision: Precision,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            epochs: 50,
            batch_size: 8,
            loss: LossKind::CeDice,
            seed: 0,
            backend: BackendKind::Auto,
            threshold: 0.5,
            steps_per_epoch: 250,
            max_steps: 0,
            init_from: None,
            precision: Precision::F32,
        }
    }
}

/// Dataset and data pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// Dataset folder (TotalSegmentator root, nnU-Net raw dataset or one subject).
    pub root: PathBuf,
    /// Fraction of subjects used for validation when the dataset has no split.
    pub val_fraction: f64,
    /// Probability that a sample is replaced by a slice with foreground.
    pub foreground_oversample: f64,
    /// Preprocessed-slice cache (empty: the user cache folder, see `ctseg train --help`).
    pub cache_dir: PathBuf,
    /// Threads reading and augmenting batches.
    pub loader_workers: usize,
    /// Structures to train on (catalog names); every other structure counts as
    /// background in the loss and in validation. Empty: all 117.
    pub structures: Vec<String>,
}

impl Default for DataSection {
    fn default() -> Self {
        DataSection {
            root: PathBuf::new(),
            val_fraction: 0.2,
            foreground_oversample: 0.33,
            cache_dir: PathBuf::new(),
            loader_workers: 2,
            structures: Vec::new(),
        }
    }
}

/// Optimiser (Adam) and gradient handling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimSection {
    /// Initial learning rate.
    pub lr: f64,
    /// Adam β1.
    pub beta1: f32,
    /// Adam β2.
    pub beta2: f32,
    /// Adam ε.
    pub epsilon: f32,
    /// L2 weight decay added to the gradient (PyTorch `Adam(weight_decay=…)`).
    pub weight_decay: f32,
    /// Clip the global gradient norm (over all parameters, like PyTorch's
    /// `clip_grad_norm_`) to this value; 0 disables clipping.
    pub grad_clip_norm: f64,
    /// Batches whose gradients are summed (averaged) before each optimiser step.
    pub accumulate_steps: usize,
}

impl Default for OptimSection {
    fn default() -> Self {
        OptimSection {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 1e-5,
            grad_clip_norm: 1.0,
            accumulate_steps: 1,
        }
    }
}

/// How the learning rate moves during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// ReduceLROnPlateau on validation Dice (mode max): multiply by `plateau_factor`
    /// after `plateau_patience` epochs without improvement.
    Plateau,
    /// nnU-Net's polynomial decay `lr · (1 − step / total)^poly_exponent`.
    Poly,
    /// Cosine decay from `lr` to `min_lr` over the run.
    Cosine,
}

/// Learning-rate schedule and early stopping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleSection {
    /// The schedule.
    pub kind: ScheduleKind,
    /// Linear warm-up from `lr / warmup_steps` to `lr` over this many optimiser steps
    /// (0 = none); the decay of poly and cosine starts after it.
    pub warmup_steps: usize,
    /// Exponent of the poly schedule.
    pub poly_exponent: f64,
    /// Multiply the learning rate by this when validation Dice plateaus.
    pub plateau_factor: f64,
    /// Epochs without improvement before reducing.
    pub plateau_patience: usize,
    /// Improvement smaller than this (absolute Dice) does not count.
    pub plateau_threshold: f64,
    /// Start counting plateau epochs only once the validation Dice has first risen
    /// above `plateau_threshold`, so the rate cannot fall while nothing is learnt yet.
    pub plateau_after_signal: bool,
    /// Lower bound of the learning rate (plateau) and end of the cosine decay.
    pub min_lr: f64,
    /// Stop after this many epochs without a new best Dice (0 = never).
    pub early_stopping_patience: usize,
}

impl Default for ScheduleSection {
    fn default() -> Self {
        // Measured (README, "Training recipes"): on short budgets the plateau rule
        // that waits for a signal keeps the rate up while structures are still being
        // found, where poly and cosine have already decayed it.
        ScheduleSection {
            kind: ScheduleKind::Plateau,
            warmup_steps: 0,
            poly_exponent: 0.9,
            plateau_factor: 0.5,
            plateau_patience: 3,
            plateau_threshold: 1e-4,
            plateau_after_signal: true,
            min_lr: 1e-6,
            early_stopping_patience: 10,
        }
    }
}

/// Named starting points for a run's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// The measured best recipe: the defaults of [`TrainConfig`].
    Default,
    /// The design document's recipe: BCE, ReduceLROnPlateau (factor 0.5, patience 3,
    /// counting from the first epoch), no warm-up, an epoch = the dataset once.
    Seed,
}

impl Preset {
    /// Put this preset's recipe (loss, schedule, epoch length) into `config`; every
    /// other setting is kept.
    pub fn apply(self, config: &mut TrainConfig) {
        let defaults = TrainConfig::default();
        match self {
            Preset::Default => {
                config.run.loss = defaults.run.loss;
                config.run.steps_per_epoch = defaults.run.steps_per_epoch;
                config.schedule = defaults.schedule;
            }
            Preset::Seed => {
                config.run.loss = LossKind::Bce;
                config.run.steps_per_epoch = 0;
                config.schedule = ScheduleSection {
                    kind: ScheduleKind::Plateau,
                    warmup_steps: 0,
                    plateau_after_signal: false,
                    ..ScheduleSection::default()
                };
            }
        }
    }

    /// The preset whose loss and schedule `config` follows, if any. How long a run
    /// lasts is left out (epoch length, early stopping): a short smoke-test run keeps
    /// its recipe.
    pub fn of(config: &TrainConfig) -> Option<Preset> {
        [Preset::Default, Preset::Seed].into_iter().find(|p| {
            let mut c = config.clone();
            p.apply(&mut c);
            c.run.steps_per_epoch = config.run.steps_per_epoch;
            c.schedule.early_stopping_patience = config.schedule.early_stopping_patience;
            c == *config
        })
    }
}

impl DataSection {
    /// Label map applied to ground truth and predictions: identity when every
    /// structure is trained, else unselected labels become 0 (background).
    pub fn label_map(&self) -> [u8; 256] {
        let mut map: [u8; 256] = std::array::from_fn(|i| i as u8);
        if !self.structures.is_empty() {
            let keep: Vec<u8> = self
                .structures
                .iter()
                .filter_map(|n| ctseg_core::structures::catalog().label_of(n))
                .collect();
            for (i, m) in map.iter_mut().enumerate().skip(1) {
                if !keep.contains(&(i as u8)) {
                    *m = 0;
                }
            }
        }
        map
    }
}

/// How long a run lasts, from its settings and the batches of one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLength {
    /// Epochs to run (from the step budget when `run.max_steps` is set).
    pub epochs: usize,
    /// Optimiser steps of the whole run, over which poly and cosine decay.
    pub total_steps: usize,
}

impl TrainConfig {
    /// The run's length when one epoch is `batches_per_epoch` batches (the trainer
    /// and the dashboard both use this).
    pub fn run_length(&self, batches_per_epoch: usize) -> RunLength {
        let steps_per_epoch = batches_per_epoch
            .div_ceil(self.optim.accumulate_steps.max(1))
            .max(1);
        match self.run.max_steps {
            0 => RunLength {
                epochs: self.run.epochs,
                total_steps: self.run.epochs * steps_per_epoch,
            },
            n => RunLength {
                epochs: n.div_ceil(steps_per_epoch),
                total_steps: n,
            },
        }
    }

    /// Read a (possibly partial) TOML file; missing settings take their defaults.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        toml::from_str(&text).map_err(|e| Error::format(path, format!("bad training config: {e}")))
    }

    /// The full configuration as TOML (an error only for a value TOML cannot hold).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| {
            Error::Invalid(format!(
                "the training settings cannot be written as TOML: {e}"
            ))
        })
    }

    /// Check every setting; the message names the offending one.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.model.validate().map_err(|e| format!("model: {e}"))?;
        if self.model.num_classes != ctseg_core::structures::NUM_STRUCTURES {
            return Err(format!(
                "model.num_classes must be {} (the TotalSegmentator structures), got {}",
                ctseg_core::structures::NUM_STRUCTURES,
                self.model.num_classes
            ));
        }
        if self.model.in_channels != 1 {
            return Err("model.in_channels must be 1 (one CT slice)".into());
        }
        let r = &self.run;
        if r.epochs == 0 || r.batch_size == 0 {
            return Err("run.epochs and run.batch_size must be positive".into());
        }
        if !(0.0..1.0).contains(&r.threshold) || r.threshold <= 0.0 {
            return Err(format!(
                "run.threshold must be in (0, 1), got {}",
                r.threshold
            ));
        }
        let o = &self.optim;
        if !(o.lr > 0.0 && o.lr.is_finite()) {
            return Err(format!("optim.lr must be positive, got {}", o.lr));
        }
        if o.accumulate_steps == 0 {
            return Err("optim.accumulate_steps must be at least 1".into());
        }
        if o.grad_clip_norm < 0.0 {
            return Err("optim.grad_clip_norm must be ≥ 0".into());
        }
        let d = &self.data;
        if !(0.0..1.0).contains(&d.val_fraction) {
            return Err("data.val_fraction must be in [0, 1)".into());
        }
        if !(0.0..=1.0).contains(&d.foreground_oversample) {
            return Err("data.foreground_oversample must be in [0, 1]".into());
        }
        let unknown: Vec<&str> = d
            .structures
            .iter()
            .filter(|n| ctseg_core::structures::catalog().label_of(n).is_none())
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "data.structures: unknown structure name(s) {}",
                unknown.join(", ")
            ));
        }
        let s = &self.schedule;
        if !(s.plateau_factor > 0.0 && s.plateau_factor < 1.0) {
            return Err("schedule.plateau_factor must be in (0, 1)".into());
        }
        if !(s.poly_exponent > 0.0 && s.poly_exponent.is_finite()) {
            return Err("schedule.poly_exponent must be positive".into());
        }
        if !(s.min_lr >= 0.0 && s.min_lr < o.lr) {
            return Err(format!(
                "schedule.min_lr must be in [0, optim.lr = {}), got {}",
                o.lr, s.min_lr
            ));
        }
        if r.max_steps > 0 && s.warmup_steps >= r.max_steps {
            return Err(format!(
                "schedule.warmup_steps ({}) must be below run.max_steps ({})",
                s.warmup_steps, r.max_steps
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones_and_round_trip() {
        let c = TrainConfig::default();
        assert_eq!(c.optim.lr, 1e-3);
        assert_eq!(c.optim.epsilon, 1e-8);
        assert_eq!(c.optim.weight_decay, 1e-5);
        assert_eq!(c.schedule.plateau_factor, 0.5);
        assert_eq!(c.schedule.plateau_patience, 3);
        assert_eq!(c.run.steps_per_epoch, 250);
        assert_eq!(Preset::of(&c), Some(Preset::Default));
        let text = c.to_toml().expect("default settings serialise");
        assert!(
            text.contains("[optim]") && text.contains("grad_clip_norm = 1.0"),
            "{text}"
        );
        let back: TrainConfig = toml::from_str(&text).expect("parse");
        assert_eq!(back, c);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn partial_files_fill_defaults_and_typos_are_errors() {
        let c: TrainConfig = toml::from_str("[run]\nepochs = 3\n").expect("parse");
        assert_eq!(c.run.epochs, 3);
        assert_eq!(c.run.batch_size, 8);
        assert!(toml::from_str::<TrainConfig>("[run]\nepohcs = 3\n").is_err());
        // A partial [model] section keeps the other model settings.
        let c: TrainConfig = toml::from_str("[model]\ndepth = 3\n").expect("parse");
        assert_eq!(c.model.depth, 3);
        assert_eq!(c.model.base_channels, 32);
        let mut bad = TrainConfig::default();
        bad.model.input_size = 250;
        assert!(bad.validate().unwrap_err().contains("model"));
    }

    #[test]
    fn a_structure_subset_maps_the_others_to_background() {
        let mut c = TrainConfig::default();
        assert_eq!(c.data.label_map()[5], 5);
        c.data.structures = vec!["liver".into()];
        assert!(c.validate().is_ok());
        let liver = ctseg_core::structures::catalog()
            .label_of("liver")
            .expect("liver");
        let map = c.data.label_map();
        assert_eq!(map[liver as usize], liver);
        assert_eq!(map[0], 0);
        assert_eq!(map.iter().filter(|&&m| m != 0).count(), 1);
        c.data.structures.push("livre".into());
        assert!(c.validate().unwrap_err().contains("livre"));
    }

    #[test]
    fn the_seed_preset_is_bce_on_a_plateau_counting_from_the_start() {
        let mut c = TrainConfig::default();
        c.run.batch_size = 6;
        Preset::Seed.apply(&mut c);
        assert_eq!(c.run.loss, LossKind::Bce);
        assert_eq!(c.schedule.kind, ScheduleKind::Plateau);
        assert!(!c.schedule.plateau_after_signal);
        assert_eq!(c.run.steps_per_epoch, 0);
        assert_eq!(c.run.batch_size, 6, "other settings are kept");
        assert_eq!(Preset::of(&c), Some(Preset::Seed));
        c.optim.lr = 1e-2;
        assert_eq!(
            Preset::of(&c),
            Some(Preset::Seed),
            "lr is not part of a recipe"
        );
        c.run.steps_per_epoch = 6;
        assert_eq!(
            Preset::of(&c),
            Some(Preset::Seed),
            "nor is the epoch length"
        );
        c.schedule.warmup_steps = 5;
        assert_eq!(Preset::of(&c), None);
        Preset::Default.apply(&mut c);
        assert_eq!(Preset::of(&c), Some(Preset::Default));
    }

    #[test]
    fn an_old_epoch_cap_reads_as_the_epoch_length() {
        let c: TrainConfig = toml::from_str("[run]\nmax_steps_per_epoch = 7\n").expect("parse");
        assert_eq!(c.run.steps_per_epoch, 7);
    }
}
