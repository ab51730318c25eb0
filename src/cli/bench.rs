//! `ctseg bench`: training and inference throughput of the U-Net on a backend, the
//! data-pipeline rate, and (`--check`) agreement of the backend with the CPU.

use std::time::Instant;

use anyhow::{Result, bail};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;
use serde::Serialize;

use crate::backend::{self, BackendKind};
use crate::cli::emit;
use crate::model::{UNetConfig, logits_to_labels, loss, one_hot_targets};

/// Arguments of `ctseg bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Backend to measure.
    #[arg(long, value_enum, default_value_t = BackendKind::Wgpu)]
    pub backend: BackendKind,
    /// Slices per batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Side of the square input.
    #[arg(long, default_value_t = 256)]
    pub input_size: usize,
    /// Width of the first U-Net level.
    #[arg(long, default_value_t = 32)]
    pub base_channels: usize,
    /// Output classes.
    #[arg(long, default_value_t = crate::structures::NUM_STRUCTURES)]
    pub classes: usize,
    /// Timed iterations (after warm-up); the median is reported.
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// Untimed warm-up iterations (kernel compilation and autotuning happen here).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Only compare the backend with the CPU on the same weights and input; exit 1 on
    /// disagreement.
    #[arg(long)]
    pub check: bool,
    /// Skip the training measurement.
    #[arg(long)]
    pub no_train: bool,
    /// Also predict this whole CT (NIfTI or DICOM folder) end to end with the
    /// benchmark model and report slices/s and peak memory.
    #[arg(long)]
    pub volume: Option<std::path::PathBuf>,
    /// Predict `--volume` with these trained weights (run folder, checkpoint folder or
    /// file) instead of the random benchmark model. A random model finds no structure,
    /// so the resampling and labelling of found structures is not measured without one.
    #[arg(long, requires = "volume")]
    pub model: Option<std::path::PathBuf>,
    /// Float type of the inference measurements (training is always f32).
    #[arg(long, value_enum, default_value_t = crate::infer::Precision::F32)]
    pub precision: crate::infer::Precision,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
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
    /// Float type of the inference measurements.
    pub precision: crate::infer::Precision,
    /// Median seconds per training step (forward, backward, Adam).
    pub train_step_s: Option<f64>,
    /// Training slices per second (median step).
    pub train_slices_per_s: Option<f64>,
    /// Median seconds per inference batch (forward, labels read back).
    pub infer_batch_s: f64,
    /// Inference slices per second.
    pub infer_slices_per_s: f64,
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

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Run `ctseg bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    let config = UNetConfig {
        in_channels: 1,
        num_classes: args.classes,
        base_channels: args.base_channels,
        depth: 4,
        input_size: args.input_size,
    };
    config.validate().map_err(anyhow::Error::msg)?;
    if args.iters == 0 || args.batch_size == 0 {
        bail!("--iters and --batch-size must be positive");
    }
    let selected = backend::select(args.backend)?;
    if args.check {
        let statistics = backend::check_batch_norm_statistics(args.backend, &selected.device);
        match &statistics {
            Ok(()) => eprintln!(
                "BatchNorm training statistics over 8×256×256 values per channel: correct"
            ),
            Err(e) => eprintln!("{e}"),
        }
        let report = check_against_cpu(&selected.device, &config, args.batch_size)?;
        let text = if args.json {
            serde_json::to_string_pretty(&report)? + "\n"
        } else {
            format!(
                "{} vs cpu: logits max |Δ| {:.3e} (scale {:.3e}), loss {:.6} vs {:.6}, after one Adam step loss {:.6} vs {:.6} → {}\n",
                selected.describe(),
                report.logits_max_abs_diff,
                report.logits_max_abs,
                report.loss_backend,
                report.loss_cpu,
                report.loss_after_step_backend,
                report.loss_after_step_cpu,
                if report.agree { "AGREE" } else { "DISAGREE" }
            )
        };
        emit(&text)?;
        statistics?;
        if !report.agree {
            bail!(
                "backend {} disagrees with the CPU on the same model and input; do not train on it",
                selected.describe()
            );
        }
        return Ok(());
    }

    let device = selected.device.clone();
    let (b, s) = (args.batch_size, args.input_size);
    // Training.
    let (train_step_s, train_slices_per_s) = if args.no_train {
        (None, None)
    } else {
        let ad = device.clone().autodiff();
        ad.seed(0);
        let mut model = config.init(&ad);
        let mut optim = AdamConfig::new().init();
        let x = Tensor::<4>::random([b, 1, s, s], Distribution::Default, &ad);
        let labels = Tensor::<3>::random([b, s, s], Distribution::Uniform(0.0, 4.0), &ad).floor();
        let targets = one_hot_targets(labels, config.num_classes);
        let mut times = Vec::new();
        for i in 0..args.warmup + args.iters {
            let t = Instant::now();
            let l = loss(
                crate::model::LossKind::Bce,
                model.forward(x.clone()),
                targets.clone(),
            );
            let grads = GradientsParams::from_grads(l.backward(), &model);
            model = optim.step(1e-3, model, grads);
            // Reading a parameter-dependent value waits for the step to finish.
            let _ = model
                .forward(x.clone().narrow(0, 0, 1))
                .sum()
                .into_scalar::<f32>();
            if i >= args.warmup {
                times.push(t.elapsed().as_secs_f64());
            }
            if !args.json {
                eprintln!("train step {}: {:.3} s", i + 1, t.elapsed().as_secs_f64());
            }
        }
        let m = median(times);
        (Some(m), Some(b as f64 / m))
    };
    // Inference.
    let precision = args.precision;
    if !precision.supported_on(&device) {
        bail!(
            "{} cannot compute in {precision}; use --precision f32",
            selected.describe()
        );
    }
    let model = {
        device.seed(0);
        config.init(&device)
    };
    let cast = crate::infer::cast_floats(model.clone(), precision);
    let x = Tensor::<4>::random([b, 1, s, s], Distribution::Default, &device);
    let mut times = Vec::new();
    for i in 0..args.warmup + args.iters {
        let t = Instant::now();
        let logits = cast
            .forward(x.clone().cast(precision.dtype()))
            .cast(burn::tensor::FloatDType::F32);
        let labels = logits_to_labels(logits, 0.5).into_data();
        std::hint::black_box(labels);
        if i >= args.warmup {
            times.push(t.elapsed().as_secs_f64());
        }
        if !args.json {
            eprintln!(
                "inference batch {}: {:.3} s",
                i + 1,
                t.elapsed().as_secs_f64()
            );
        }
    }
    let infer_batch_s = median(times);
    let pipeline_slices_per_s = pipeline_rate(s)?;
    let volume = match &args.volume {
        Some(path) => {
            let ct = crate::io::load_ct(path)?.volume;
            let predictor = match &args.model {
                Some(weights) => {
                    crate::infer::Predictor::load(weights, device.clone(), args.backend)?
                }
                None => crate::infer::Predictor::from_model(
                    model.clone(),
                    config.clone(),
                    device.clone(),
                    args.backend,
                ),
            }
            .with_precision(precision, &selected.describe())?;
            let options = crate::infer::PredictOptions {
                batch_size: b,
                ..Default::default()
            };
            let t = Instant::now();
            let labels = predictor.predict(&ct, &options, &mut |_, _| true)?;
            let seconds = t.elapsed().as_secs_f64();
            let shape = ct.shape();
            let structures_found = crate::labels::label_counts(&labels)
                .iter()
                .skip(1)
                .filter(|&&c| c > 0)
                .count();
            Some(VolumeBench {
                shape,
                structures_found,
                seconds,
                slices_per_s: shape[2] as f64 / seconds,
                peak_rss_mb: peak_rss_mb(),
            })
        }
        None => None,
    };
    let report = BenchReport {
        device: selected.describe(),
        model: config,
        batch_size: b,
        precision,
        train_step_s,
        train_slices_per_s,
        infer_batch_s,
        infer_slices_per_s: b as f64 / infer_batch_s,
        pipeline_slices_per_s,
        volume,
    };
    let text = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        let mut t = format!(
            "{}\nmodel base {} depth {} classes {} input {}², batch {}\n",
            report.device,
            report.model.base_channels,
            report.model.depth,
            report.model.num_classes,
            s,
            b
        );
        if let (Some(step), Some(rate)) = (train_step_s, train_slices_per_s) {
            t += &format!(
                "training:  {rate:.2} slices/s ({:.3} s per slice, median step {step:.3} s)\n",
                1.0 / rate
            );
        }
        t += &format!(
            "inference ({precision}): {:.2} slices/s ({:.3} s per slice)\ndata pipeline (1 thread, augmentation on): {:.0} slices/s\n",
            report.infer_slices_per_s,
            1.0 / report.infer_slices_per_s,
            report.pipeline_slices_per_s
        );
        if let Some(v) = &report.volume {
            t += &format!(
                "whole volume {}×{}×{}: {:.2} s, {:.2} slices/s, peak RSS {}, {} structures found\n",
                v.shape[0],
                v.shape[1],
                v.shape[2],
                v.seconds,
                v.slices_per_s,
                v.peak_rss_mb.map_or("-".into(), |m| format!("{m:.0} MB")),
                v.structures_found
            );
        }
        t
    };
    emit(&text)
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
/// forward, backward and Adam step) and compare logits and losses.
pub fn check_against_cpu(
    device: &Device,
    config: &UNetConfig,
    batch: usize,
) -> Result<CheckReport> {
    let cpu = Device::flex();
    cpu.seed(7);
    let s = config.input_size;
    let reference = config.init(&cpu);
    let weights = crate::model::checkpoint::weights_to_bytes(&reference, config)
        .map_err(anyhow::Error::msg)?;
    let x = Tensor::<4>::random([batch, 1, s, s], Distribution::Default, &cpu).into_data();
    let labels = Tensor::<3>::random([batch, s, s], Distribution::Uniform(0.0, 4.0), &cpu)
        .floor()
        .into_data();
    let run_on = |device: &Device| -> Result<(Vec<f32>, f64, f64)> {
        let ad = device.clone().autodiff();
        let mut model = config.init(&ad);
        let mut store = burn::store::SafetensorsStore::from_bytes(Some(weights.clone()))
            .with_from_adapter(burn::store::PyTorchToBurnAdapter);
        burn::store::ModuleSnapshot::load_from(&mut model, &mut store)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let x = Tensor::<4>::from_data(x.clone(), &ad);
        let targets = one_hot_targets(
            Tensor::<3>::from_data(labels.clone(), &ad),
            config.num_classes,
        );
        let logits = model.forward(x.clone());
        let l = loss(crate::model::LossKind::Bce, logits.clone(), targets.clone());
        let loss_value = l.clone().into_scalar::<f32>() as f64;
        let logits: Vec<f32> = logits.into_data().iter::<f32>().collect();
        let mut optim = AdamConfig::new().init();
        let grads = GradientsParams::from_grads(l.backward(), &model);
        model = optim.step(1e-3, model, grads);
        let after = loss(crate::model::LossKind::Bce, model.forward(x), targets)
            .into_scalar::<f32>() as f64;
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
fn pipeline_rate(size: usize) -> Result<f64> {
    use crate::augment::AugmentConfig;
    use crate::data::loader::{SliceRef, make_batch};
    let config = crate::phantom::PhantomConfig {
        subjects: 1,
        ..Default::default()
    };
    let (ct, labels) = crate::phantom::generate_subject(&config, 0);
    let ct = ct.reoriented(crate::data::cache::CANONICAL)?;
    let labels = labels.reoriented(crate::data::cache::CANONICAL)?;
    let bytes = crate::data::cache::preprocess("bench", &ct, &labels, size)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.bin");
    std::fs::write(&path, bytes)?;
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
