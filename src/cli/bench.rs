//! `ctseg bench`: training and inference throughput of the U-Net on a backend, the
//! data-pipeline rate, and (`--check`) agreement of the backend with the CPU.

use anyhow::{Result, bail};
use ctseg_ml::backend::{self, BackendKind};
use ctseg_ml::bench::{
    BenchReport, check_against_cpu, pipeline_rate, time_inference, time_training, time_volume,
};
use ctseg_ml::infer::{Precision, Predictor};
use ctseg_ml::model::UNetConfig;
use ctseg_ml::train::amp::check_training_precision;

use crate::cli::emit;

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
    #[arg(long, default_value_t = ctseg_core::structures::NUM_STRUCTURES)]
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
    /// Float type of the measurements: f32, or f16/bf16 (inference in that type;
    /// training in mixed precision, which needs a GPU backend).
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
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
        let statistics = backend::check_batch_norm_statistics(selected.kind, &selected.device);
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
    let verbose = !args.json;
    let precision = args.precision;
    if !precision.supported_on(&device) {
        bail!(
            "{} cannot compute in {precision}; use --precision f32",
            selected.describe()
        );
    }
    if !args.no_train
        && let Err(e) =
            check_training_precision(precision, selected.kind, &device, &selected.describe())
    {
        bail!("{e} (add --no-train to measure only inference)");
    }
    let (train_step_s, train_slices_per_s) = if args.no_train {
        (None, None)
    } else {
        let m = time_training(
            &device,
            &config,
            b,
            precision,
            args.warmup,
            args.iters,
            &mut |i, t| {
                if verbose {
                    eprintln!("train step {}: {t:.3} s", i + 1);
                }
            },
        );
        (Some(m), Some(b as f64 / m))
    };
    let time_batches = |batch: usize, label: &str| {
        time_inference(
            &device,
            &config,
            batch,
            precision,
            args.warmup,
            args.iters,
            &mut |i, t| {
                if verbose {
                    eprintln!("{label} {}: {t:.3} s", i + 1);
                }
            },
        )
    };
    let infer_batch_s = time_batches(b, "inference batch");
    let infer_batch1_s = if b == 1 {
        infer_batch_s
    } else {
        time_batches(1, "inference of one slice")
    };
    let pipeline_slices_per_s = pipeline_rate(s)?;
    let volume = match &args.volume {
        Some(path) => {
            let ct = ctseg_core::io::load_ct(path)?.volume;
            let predictor = match &args.model {
                Some(weights) => Predictor::load(weights, device.clone(), selected.kind)?,
                None => {
                    // The same random model the inference batches timed.
                    device.seed(0);
                    Predictor::from_model(
                        config.init(&device),
                        config.clone(),
                        device.clone(),
                        selected.kind,
                    )
                }
            }
            .with_precision(precision, &selected.describe())?;
            Some(time_volume(&predictor, &ct, b)?)
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
        infer_batch1_s,
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
                "training ({precision}): {rate:.2} slices/s ({:.3} s per slice, median step {step:.3} s)\n",
                1.0 / rate
            );
        }
        t += &format!(
            "inference ({precision}): {:.2} slices/s ({:.3} s per slice at batch {b}; {:.3} s for a single slice)\ndata pipeline (1 thread, augmentation on): {:.0} slices/s\n",
            report.infer_slices_per_s,
            1.0 / report.infer_slices_per_s,
            report.infer_batch1_s,
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
