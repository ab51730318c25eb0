//! Throughput measurement of the U-Net on a device — the training step the trainer
//! runs ([`crate::train::step`]), inference batches, the data pipeline and whole
//! volumes — and the agreement check of a backend against the CPU. `ctseg bench`
//! parses its flags and prints what these functions measure.

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use serde::Serialize;

use crate::infer::{Precision, PredictOptions, Predictor};
use crate::model::{LossKind, UNetConfig, logits_to_labels, one_hot_targets};
use crate::train::amp::MixedPrecision;
use crate::train::config::OptimSection;
use crate::train::step::{forward_loss, optimizer, train_step};

/// What can stop a measurement.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Reading or preparing data failed.
    #[error(transparent)]
    Data(#[from] ctseg_core::Error),
    /// The model could not be built, copied or loaded.
    #[error("model: {0}")]
    Model(String),
    /// Inference failed (boxed: the error is large and rare).
    #[error(transparent)]
    Infer(#[from] Box<crate::infer::InferError>),
}

impl From<crate::infer::InferError> for BenchError {
    fn from(e: crate::infer::InferError) -> Self {
        BenchError::Infer(Box::new(e))
    }
}

/// Median seconds of `iters` training steps (after `warmup` untimed ones) of the
/// model `config` at batch `batch` in `precision`: the trainer's own step
/// ([`train_step`]: forward, BCE, loss read back, backward, global clipping, Adam
/// with L2 weight decay), nothing else. Each step's loss read waits for the previous
/// update, so queued GPU work is timed in the next step. `on_step(i, seconds)` sees
/// every step.
pub fn time_training(
    device: &Device,
    config: &UNetConfig,
    batch: usize,
    precision: Precision,
    warmup: usize,
    iters: usize,
    on_step: &mut dyn FnMut(usize, f64),
) -> f64 {
    let s = config.input_size;
    let ad = device.clone().autodiff();
    ad.seed(0);
    // In an Option so the step can take it by value (no second handle on the
    // parameters, which would keep Burn from updating them in place).
    let mut model = Some(config.init(&ad));
    let settings = OptimSection::default();
    let mut optim = optimizer(&settings);
    let x = Tensor::<4>::random([batch, 1, s, s], Distribution::Default, &ad);
    let labels = Tensor::<3>::random([batch, s, s], Distribution::Uniform(0.0, 4.0), &ad).floor();
    let targets = one_hot_targets(labels, config.num_classes);
    let mut amp = MixedPrecision::new(precision);
    time_iterations(warmup, iters, on_step, || {
        let Some(current) = model.take() else {
            return;
        };
        let (next, loss_value) = train_step(
            current,
            &mut optim,
            x.clone(),
            targets.clone(),
            LossKind::Bce,
            settings.lr,
            &settings,
            &mut amp,
        );
        std::hint::black_box(loss_value);
        model = Some(next);
    })
}

/// Run `body` `warmup + iters` times; the median seconds of the last `iters`.
/// `on_iter(i, seconds)` sees every run.
fn time_iterations(
    warmup: usize,
    iters: usize,
    on_iter: &mut dyn FnMut(usize, f64),
    mut body: impl FnMut(),
) -> f64 {
    let mut times = Vec::new();
    for i in 0..warmup + iters {
        let t = Instant::now();
        body();
        let seconds = t.elapsed().as_secs_f64();
        if i >= warmup {
            times.push(seconds);
        }
        on_iter(i, seconds);
    }
    median(times)
}

/// Median seconds of `iters` inference batches (after `warmup`) of the random model
/// `config` in `precision`: forward pass and labels read back.
pub fn time_inference(
    device: &Device,
    config: &UNetConfig,
    batch: usize,
    precision: Precision,
    warmup: usize,
    iters: usize,
    on_batch: &mut dyn FnMut(usize, f64),
) -> f64 {
    let s = config.input_size;
    device.seed(0);
    let model = config.init(device);
    let cast = crate::infer::cast_floats(model, precision);
    let x = Tensor::<4>::random([batch, 1, s, s], Distribution::Default, device);
    time_iterations(warmup, iters, on_batch, || {
        let logits = cast
            .forward(x.clone().cast(precision.dtype()))
            .cast(burn::tensor::FloatDType::F32);
        let labels = logits_to_labels(logits, 0.5).into_data();
        std::hint::black_box(labels);
    })
}

/// Predict the whole CT `ct` end to end with `predictor` and report the rate and
/// peak memory.
pub fn time_volume(
    predictor: &Predictor,
    ct: &ctseg_core::Volume<i16>,
    batch: usize,
) -> Result<VolumeBench, BenchError> {
    let options = PredictOptions {
        batch_size: batch,
        ..Default::default()
    };
    let t = Instant::now();
    let labels = predictor.predict(ct, &options, &mut |_, _| true)?;
    let seconds = t.elapsed().as_secs_f64();
    let shape = ct.shape();
    let structures_found = ctseg_core::labels::label_counts(&labels)
        .iter()
        .skip(1)
        .filter(|&&c| c > 0)
        .count();
    Ok(VolumeBench {
        shape,
        structures_found,
        seconds,
        slices_per_s: shape[2] as f64 / seconds,
        peak_rss_mb: peak_rss_mb(),
    })
}

/// Results of `ctseg bench`.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Backend and adapter.
    pub device: String,
    /// Model shape.
    pub model: UNetConfig,
    /// Batch size.
    pub batch_size: usize,
    /// Float type of the measurements (training: mixed precision unless f32).
    pub precision: Precision,
    /// Median seconds per training step (forward, loss, backward, clipping, Adam).
    pub train_step_s: Option<f64>,
    /// Training slices per second (median step).
    pub train_slices_per_s: Option<f64>,
    /// Median seconds per inference batch (forward, labels read back).
    pub infer_batch_s: f64,
    /// Inference slices per second.
    pub infer_slices_per_s: f64,
    /// Median seconds per inference of a single slice (batch 1).
    pub infer_batch1_s: f64,
    /// Data pipeline (cache read + augmentation), slices per second on one thread.
    pub pipeline_slices_per_s: f64,
    /// Whole-volume prediction (`--volume`): shape, seconds, slices/s, peak RSS in MB.
    pub volume: Option<VolumeBench>,
}

/// Whole-volume prediction throughput.
#[derive(Debug, Serialize)]
pub struct VolumeBench {
    /// CT shape.
    pub shape: [usize; 3],
    /// Structures in the prediction (none with the random benchmark model).
    pub structures_found: usize,
    /// End-to-end seconds (preprocessing, inference, resampling, labels).
    pub seconds: f64,
    /// Axial slices per second.
    pub slices_per_s: f64,
    /// Peak resident memory of the process (Linux), MB.
    pub peak_rss_mb: Option<f64>,
}

/// Peak resident memory of this process in MB (Linux `VmHWM`), if known.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The median of `v` (the upper one for an even count); `v` must not be empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Agreement of a backend with the CPU.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// Largest |logit difference| in a training-mode forward pass (BatchNorm batch statistics).
    pub logits_max_abs_diff: f64,
    /// Largest |logit| on the CPU (the scale of the comparison).
    pub logits_max_abs: f64,
    /// Loss on the CPU.
    pub loss_cpu: f64,
    /// Loss on the backend.
    pub loss_backend: f64,
    /// Loss on the CPU after one Adam step.
    pub loss_after_step_cpu: f64,
    /// Loss on the backend after one Adam step.
    pub loss_after_step_backend: f64,
    /// Whether the two agree within tolerance (logits 1e-3 relative, losses 1e-3 relative).
    pub agree: bool,
}

/// Run the same weights and input through the CPU and `device` in training mode (one
/// training step exactly as the trainer takes it: forward, BCE, backward, global
/// clipping, Adam with weight decay) and compare logits and losses.
pub fn check_against_cpu(
    device: &Device,
    config: &UNetConfig,
    batch: usize,
) -> Result<CheckReport, BenchError> {
    let cpu = Device::flex();
    cpu.seed(7);
    let s = config.input_size;
    let reference = config.init(&cpu);
    let weights = crate::model::checkpoint::weights_to_bytes(&reference, config)
        .map_err(BenchError::Model)?;
    let x = Tensor::<4>::random([batch, 1, s, s], Distribution::Default, &cpu).into_data();
    let labels = Tensor::<3>::random([batch, s, s], Distribution::Uniform(0.0, 4.0), &cpu)
        .floor()
        .into_data();
    let settings = OptimSection::default();
    let run_on = |device: &Device| -> Result<(Vec<f32>, f64, f64), BenchError> {
        let ad = device.clone().autodiff();
        let mut model = config.init(&ad);
        let mut store = burn::store::SafetensorsStore::from_bytes(Some(weights.clone()))
            .with_from_adapter(burn::store::PyTorchToBurnAdapter);
        burn::store::ModuleSnapshot::load_from(&mut model, &mut store)
            .map_err(|e| BenchError::Model(e.to_string()))?;
        let x = Tensor::<4>::from_data(x.clone(), &ad);
        let targets = one_hot_targets(
            Tensor::<3>::from_data(labels.clone(), &ad),
            config.num_classes,
        );
        let (logits, _) = forward_loss(&model, x.clone(), targets.clone(), LossKind::Bce);
        let logits: Vec<f32> = logits.into_data().iter::<f32>().collect();
        let mut optim = optimizer(&settings);
        let (next, loss_value) = train_step(
            model,
            &mut optim,
            x.clone(),
            targets.clone(),
            LossKind::Bce,
            settings.lr,
            &settings,
            &mut MixedPrecision::new(Precision::F32),
        );
        model = next;
        let (_, after) = forward_loss(&model, x, targets, LossKind::Bce);
        let after = after.into_scalar::<f32>() as f64;
        Ok((logits, loss_value, after))
    };
    let (cpu_logits, cpu_loss, cpu_after) = run_on(&cpu)?;
    let (dev_logits, dev_loss, dev_after) = run_on(device)?;
    let max_abs = cpu_logits.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
    let max_diff = cpu_logits
        .iter()
        .zip(&dev_logits)
        .fold(0f64, |m, (&a, &b)| m.max((a - b).abs() as f64));
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-3 * a.abs().max(b.abs()).max(1e-3);
    let agree = dev_logits.len() == cpu_logits.len()
        && max_diff <= 1e-3 * max_abs.max(1.0)
        && close(cpu_loss, dev_loss)
        && close(cpu_after, dev_after);
    Ok(CheckReport {
        logits_max_abs_diff: max_diff,
        logits_max_abs: max_abs,
        loss_cpu: cpu_loss,
        loss_backend: dev_loss,
        loss_after_step_cpu: cpu_after,
        loss_after_step_backend: dev_after,
        agree,
    })
}

/// Slices per second of reading a cached subject and augmenting it on one thread.
pub fn pipeline_rate(size: usize) -> Result<f64, BenchError> {
    use crate::augment::AugmentConfig;
    use crate::data::loader::{SliceRef, make_batch};
    let config = ctseg_core::phantom::PhantomConfig {
        subjects: 1,
        ..Default::default()
    };
    let (ct, labels) = ctseg_core::phantom::generate_subject(&config, 0);
    let ct = ct.reoriented(ctseg_core::slicing::CANONICAL_ORIENTATION)?;
    let labels = labels.reoriented(ctseg_core::slicing::CANONICAL_ORIENTATION)?;
    let bytes = crate::data::cache::preprocess("bench", &ct, &labels, size)?;
    let dir = tempfile::tempdir().map_err(|e| ctseg_core::Error::io(std::env::temp_dir(), e))?;
    let path = dir.path().join("bench.bin");
    std::fs::write(&path, bytes).map_err(|e| ctseg_core::Error::io(&path, e))?;
    let subjects = vec![crate::data::cache::open(&path)?];
    let slices = subjects[0].header.slices;
    let plan: Vec<SliceRef> = (0..64)
        .map(|i| SliceRef {
            subject: 0,
            slice: i % slices,
        })
        .collect();
    let augment = AugmentConfig::default();
    let t = Instant::now();
    for index in 0..plan.len() / 8 {
        std::hint::black_box(make_batch(
            &subjects,
            &plan,
            index,
            8,
            Some(&augment),
            0,
            1,
        )?);
    }
    Ok(plan.len() as f64 / t.elapsed().as_secs_f64())
}
