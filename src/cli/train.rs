//! `ctseg train`: train the U-Net on a dataset into a run folder, with a progress bar,
//! Ctrl-C saving `last`, and `--resume`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use ctseg_ml::backend::BackendKind;
use ctseg_ml::model::LossKind;
use ctseg_ml::train::{
    EventBus, FinishReason, TrainConfig, TrainControl, TrainEvent, load_run_config, train,
};

/// Arguments of `ctseg train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Dataset: TotalSegmentator root (subject folders, optional meta.csv split), nnU-Net
    /// raw dataset, or one subject folder.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Run folder to create (config.toml, metrics.jsonl, checkpoints/, history.png).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// TOML file with settings (any subset; see a run's config.toml for all of them).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue a run from its `last` checkpoint: `--resume RUN_DIR`, or `--resume`
    /// with `--out RUN_DIR`.
    #[arg(long, num_args = 0..=1, value_name = "RUN_DIR")]
    pub resume: Option<Option<PathBuf>>,
    /// Compute backend.
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// Number of epochs (when resuming: the new total).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Slices per batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Side of the square model input.
    #[arg(long)]
    pub input_size: Option<usize>,
    /// Width of the first U-Net level.
    #[arg(long)]
    pub base_channels: Option<usize>,
    /// Initial learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Loss function.
    #[arg(long, value_enum)]
    pub loss: Option<LossKind>,
    /// Seed for weights, data order and augmentation.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop each epoch after this many steps (quick experiments).
    #[arg(long)]
    pub max_steps_per_epoch: Option<usize>,
    /// Preprocessed-slice cache folder (default: $CTSEG_CACHE_DIR, else ~/.cache/ctseg/slices).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Turn augmentation off.
    #[arg(long)]
    pub no_augment: bool,
    /// Fine-tune: start from these weights (weights file, checkpoint folder or run
    /// folder); the model settings are taken from them.
    #[arg(long, value_name = "CHECKPOINT")]
    pub init_from: Option<PathBuf>,
    /// No progress bar; one line per epoch.
    #[arg(long)]
    pub quiet: bool,
}

/// Build the effective configuration: the run's own config when resuming, else the
/// file (or defaults), then the flags on top.
pub fn effective_config(args: &TrainArgs) -> Result<(TrainConfig, PathBuf, bool)> {
    let resume_dir = match &args.resume {
        Some(Some(dir)) => Some(dir.clone()),
        Some(None) => Some(
            args.out
                .clone()
                .context("--resume without a folder needs --out RUN_DIR")?,
        ),
        None => None,
    };
    if let Some(dir) = resume_dir {
        let mut config =
            load_run_config(&dir).with_context(|| format!("cannot resume {}", dir.display()))?;
        if args.config.is_some()
            || args.batch_size.is_some()
            || args.input_size.is_some()
            || args.base_channels.is_some()
            || args.lr.is_some()
            || args.loss.is_some()
            || args.seed.is_some()
            || args.init_from.is_some()
        {
            bail!(
                "a resumed run keeps its config.toml; only --epochs, --backend, --data, --cache-dir and --max-steps-per-epoch may change"
            );
        }
        if let Some(e) = args.epochs {
            config.run.epochs = e;
        }
        if let Some(b) = args.backend {
            config.run.backend = b;
        }
        if let Some(d) = &args.data {
            config.data.root = d.clone();
        }
        if let Some(c) = &args.cache_dir {
            config.data.cache_dir = c.clone();
        }
        if let Some(m) = args.max_steps_per_epoch {
            config.run.max_steps_per_epoch = m;
        }
        return Ok((config, dir, true));
    }
    let mut config = match &args.config {
        Some(path) => TrainConfig::from_toml_file(path)?,
        None => TrainConfig::default(),
    };
    if let Some(d) = &args.data {
        config.data.root = d.clone();
    }
    if config.data.root.as_os_str().is_empty() {
        bail!("--data DIR is required (or data.root in the --config file)");
    }
    // An absolute path keeps the run resumable from any working directory.
    if let Ok(abs) = std::fs::canonicalize(&config.data.root) {
        config.data.root = abs;
    }
    let out = args.out.clone().context("--out RUN_DIR is required")?;
    if let Some(init) = &args.init_from {
        // Absolute, like the data root: the run stays resumable from anywhere.
        config.run.init_from = Some(std::fs::canonicalize(init).unwrap_or_else(|_| init.clone()));
    }
    if let Some(b) = args.backend {
        config.run.backend = b;
    }
    if let Some(e) = args.epochs {
        config.run.epochs = e;
    }
    if let Some(b) = args.batch_size {
        config.run.batch_size = b;
    }
    if let Some(s) = args.input_size {
        config.model.input_size = s;
    }
    if let Some(c) = args.base_channels {
        config.model.base_channels = c;
    }
    if let Some(lr) = args.lr {
        config.optim.lr = lr;
    }
    if let Some(l) = args.loss {
        config.run.loss = l;
    }
    if let Some(s) = args.seed {
        config.run.seed = s;
    }
    if let Some(m) = args.max_steps_per_epoch {
        config.run.max_steps_per_epoch = m;
    }
    if let Some(c) = &args.cache_dir {
        config.data.cache_dir = c.clone();
    }
    if args.no_augment {
        config.augment.enabled = false;
    }
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid training configuration: {e}"))?;
    Ok((config, out, false))
}

/// Run `ctseg train`.
pub fn run(args: &TrainArgs) -> Result<()> {
    let (config, run_dir, resume) = effective_config(args)?;
    let control = TrainControl::new();
    {
        let control = control.clone();
        let mut presses = 0;
        // A second Ctrl-C quits at once.
        let handler = ctrlc::set_handler(move || {
            presses += 1;
            if presses > 1 {
                std::process::exit(130);
            }
            eprintln!(
                "\nstopping after this step: saving checkpoints/last (Ctrl-C again to quit now)"
            );
            control.cancel();
        });
        // Without the handler Ctrl-C ends the process at once and `last` is not
        // saved: say so rather than promise a clean stop.
        if let Err(e) = handler {
            eprintln!(
                "warning: could not install the Ctrl-C handler ({e}); Ctrl-C will stop without saving checkpoints/last"
            );
        }
    }
    let mut bus = EventBus::new();
    let events = bus.subscribe();
    let quiet = args.quiet;
    let printer = std::thread::spawn(move || print_progress(events, quiet));
    let result = train(&config, &run_dir, resume, &mut bus, &control);
    drop(bus);
    if printer.join().is_err() {
        eprintln!("warning: the progress printer stopped early; the run itself is unaffected");
    }
    let summary = result?;
    let best = match (summary.best_val_dice, summary.best_epoch) {
        (Some(d), Some(e)) => format!("best val Dice {d:.4} at epoch {e}"),
        _ => "no validation Dice yet".to_string(),
    };
    match summary.reason {
        FinishReason::Completed => eprintln!("done: {best}; run folder {}", run_dir.display()),
        FinishReason::EarlyStopped => {
            eprintln!("early stop: {best}; run folder {}", run_dir.display())
        }
        FinishReason::Cancelled => eprintln!(
            "stopped: {best}; continue with `ctseg train --resume {}`",
            run_dir.display()
        ),
    }
    Ok(())
}

fn print_progress(events: crossbeam_channel::Receiver<TrainEvent>, quiet: bool) {
    let mut bar: Option<ProgressBar> = None;
    let mut epochs = 0;
    let mut last_dice: Option<f64> = None;
    let style =
        ProgressStyle::with_template("{prefix} [{bar:30.cyan/blue}] {pos}/{len} {msg} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    let say = |bar: &Option<ProgressBar>, text: String| match bar {
        Some(b) if !b.is_hidden() => b.println(text),
        _ => eprintln!("{text}"),
    };
    for event in events {
        match event {
            TrainEvent::Preparing {
                done,
                total,
                id,
                cached,
            } => {
                if !quiet {
                    eprintln!(
                        "data {done}/{total}: {id} {}",
                        if cached { "(cached)" } else { "(preprocessed)" }
                    );
                }
            }
            TrainEvent::Started {
                device,
                first_epoch,
                epochs: e,
                steps_per_epoch,
                train_slices,
                val_volumes,
                resumed,
                run_dir,
            } => {
                epochs = e;
                eprintln!(
                    "{} {} on {device}: {train_slices} training slices, {steps_per_epoch} steps/epoch, {val_volumes} validation volume(s), epochs {first_epoch}..={e}",
                    if resumed { "resuming" } else { "training" },
                    run_dir.display()
                );
                if !quiet {
                    let b = ProgressBar::new(steps_per_epoch as u64).with_style(style.clone());
                    bar = Some(b);
                }
            }
            TrainEvent::Step(s) => {
                if let Some(b) = &bar {
                    b.set_prefix(format!("epoch {}/{epochs}", s.epoch));
                    b.inc(1);
                    let dice = last_dice.map_or("-".to_string(), |d| format!("{d:.3}"));
                    b.set_message(format!(
                        "loss {:.4} · val Dice {dice} · {:.1} slices/s · lr {:.1e}",
                        s.loss, s.slices_per_s, s.lr
                    ));
                }
            }
            TrainEvent::Validating { epoch } => {
                if let Some(b) = &bar {
                    b.set_message(format!("validating epoch {epoch}…"));
                }
            }
            TrainEvent::Epoch(e) => {
                last_dice = e.val_dice_mean;
                say(
                    &bar,
                    format!(
                        "epoch {:>3}: train loss {:.4} · val loss {:.4} · val Dice {} · lr {:.1e} · {:.1} s",
                        e.epoch,
                        e.train_loss,
                        e.val_loss,
                        e.val_dice_mean.map_or("-".into(), |d| format!("{d:.4}")),
                        e.lr,
                        e.seconds
                    ),
                );
                if let Some(b) = &bar {
                    b.set_position(0);
                }
            }
            TrainEvent::CheckpointSaved { kind, path, .. } => {
                if kind == "best" {
                    say(&bar, format!("  saved best checkpoint {}", path.display()));
                }
            }
            TrainEvent::Sample { .. } => {}
            TrainEvent::Paused => say(&bar, "paused".into()),
            TrainEvent::Resumed => say(&bar, "resumed".into()),
            TrainEvent::Finished { .. } | TrainEvent::Failed { .. } => {
                if let Some(b) = &bar {
                    b.finish_and_clear();
                }
            }
        }
    }
}
