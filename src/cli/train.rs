//! `ctseg train`: train the U-Net on a dataset into a run folder, with a progress bar,
//! Ctrl-C saving `last`, and `--resume`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use ctseg_ml::backend::BackendKind;
use ctseg_ml::infer::Precision;
use ctseg_ml::model::LossKind;
use ctseg_ml::train::config::{Preset, ScheduleKind};
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
    /// Float type of the training steps: f32, or mixed precision in f16 (dynamic loss
    /// scaling) or bf16 on f32 master weights; f16/bf16 need a GPU backend.
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
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
    /// Optimiser steps per epoch (default 250; 0 = one pass over the training slices).
    #[arg(long, visible_alias = "max-steps-per-epoch")]
    pub steps_per_epoch: Option<usize>,
    /// Total optimiser-step budget: the run ends after N steps with a final
    /// validation and `last`/`best` saved (when resuming: the new budget).
    #[arg(long, value_name = "N")]
    pub max_steps: Option<usize>,
    /// Learning-rate schedule.
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleKind>,
    /// Linear learning-rate warm-up over N optimiser steps.
    #[arg(long, value_name = "N")]
    pub warmup_steps: Option<usize>,
    /// Stop after N epochs without a new best validation Dice (0 = never).
    #[arg(long, value_name = "N")]
    pub early_stopping: Option<usize>,
    /// Recipe (loss, schedule, epoch length): `default`, the measured best, or
    /// `seed`, the design document's BCE + ReduceLROnPlateau. It replaces those
    /// settings of the --config file; the other flags come on top.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
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
        let changed = fixed_settings_changed(args, &config);
        if !changed.is_empty() {
            bail!(
                "a resumed run keeps its config.toml ({}); these flags differ from it: {}. Only --epochs, --max-steps, --steps-per-epoch, --backend, --precision, --data and --cache-dir may change",
                dir.join("config.toml").display(),
                changed.join("; ")
            );
        }
        if let Some(e) = args.epochs {
            config.run.epochs = e;
        }
        if let Some(m) = args.max_steps {
            config.run.max_steps = m;
        }
        if let Some(b) = args.backend {
            config.run.backend = b;
        }
        if let Some(p) = args.precision {
            config.run.precision = p;
        }
        if let Some(d) = &args.data {
            config.data.root = d.clone();
        }
        if let Some(c) = &args.cache_dir {
            config.data.cache_dir = c.clone();
        }
        if let Some(m) = args.steps_per_epoch {
            config.run.steps_per_epoch = m;
        }
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid training configuration: {e}"))?;
        return Ok((config, dir, true));
    }
    let mut config = match &args.config {
        Some(path) => TrainConfig::from_toml_file(path)?,
        None => TrainConfig::default(),
    };
    if let Some(preset) = args.preset {
        preset.apply(&mut config);
    }
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
    if let Some(p) = args.precision {
        config.run.precision = p;
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
    if let Some(m) = args.steps_per_epoch {
        config.run.steps_per_epoch = m;
    }
    if let Some(m) = args.max_steps {
        config.run.max_steps = m;
    }
    if let Some(k) = args.schedule {
        config.schedule.kind = k;
    }
    if let Some(w) = args.warmup_steps {
        config.schedule.warmup_steps = w;
    }
    if let Some(p) = args.early_stopping {
        config.schedule.early_stopping_patience = p;
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

/// The flags of a resumed run that differ from its saved settings, each as
/// "--flag VALUE (the run has OLD)". A flag equal to the saved value is no change.
fn fixed_settings_changed(args: &TrainArgs, run: &TrainConfig) -> Vec<String> {
    let mut changed = Vec::new();
    let mut check = |flag: &str, given: Option<String>, saved: String| {
        if let Some(given) = given
            && given != saved
        {
            changed.push(format!("--{flag} {given} (the run has {saved})"));
        }
    };
    check(
        "batch-size",
        args.batch_size.map(|v| v.to_string()),
        run.run.batch_size.to_string(),
    );
    check(
        "input-size",
        args.input_size.map(|v| v.to_string()),
        run.model.input_size.to_string(),
    );
    check(
        "base-channels",
        args.base_channels.map(|v| v.to_string()),
        run.model.base_channels.to_string(),
    );
    check(
        "lr",
        args.lr.map(|v| v.to_string()),
        run.optim.lr.to_string(),
    );
    check(
        "loss",
        args.loss.map(|v| v.name().to_string()),
        run.run.loss.name().to_string(),
    );
    check(
        "seed",
        args.seed.map(|v| v.to_string()),
        run.run.seed.to_string(),
    );
    check(
        "schedule",
        args.schedule.map(|v| format!("{v:?}").to_lowercase()),
        format!("{:?}", run.schedule.kind).to_lowercase(),
    );
    check(
        "early-stopping",
        args.early_stopping.map(|v| v.to_string()),
        run.schedule.early_stopping_patience.to_string(),
    );
    check(
        "warmup-steps",
        args.warmup_steps.map(|v| v.to_string()),
        run.schedule.warmup_steps.to_string(),
    );
    if args.no_augment && run.augment.enabled {
        changed.push("--no-augment (the run augments)".into());
    }
    if let Some(preset) = args.preset
        && Preset::of(run) != Some(preset)
    {
        changed.push(format!(
            "--preset {} (the run follows {})",
            format!("{preset:?}").to_lowercase(),
            Preset::of(run).map_or("no preset".to_string(), |p| format!("{p:?}").to_lowercase())
        ));
    }
    if let Some(init) = &args.init_from {
        let same = run.run.init_from.as_ref().is_some_and(|saved| {
            std::fs::canonicalize(init).ok() == std::fs::canonicalize(saved).ok()
        });
        if !same {
            changed.push(format!("--init-from {}", init.display()));
        }
    }
    if let Some(path) = &args.config {
        match TrainConfig::from_toml_file(path) {
            Ok(file) if same_recipe(&file, run) => {}
            Ok(_) => changed.push(format!(
                "--config {} (its settings differ from the run's)",
                path.display()
            )),
            Err(e) => changed.push(format!("--config {}: {e}", path.display())),
        }
    }
    changed
}

/// Whether two configurations agree on everything a resume may not change.
fn same_recipe(a: &TrainConfig, b: &TrainConfig) -> bool {
    let mut a = a.clone();
    a.run.epochs = b.run.epochs;
    a.run.max_steps = b.run.max_steps;
    a.run.steps_per_epoch = b.run.steps_per_epoch;
    a.run.backend = b.run.backend;
    a.run.precision = b.run.precision;
    a.data.root = b.data.root.clone();
    a.data.cache_dir = b.data.cache_dir.clone();
    a == *b
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
            TrainEvent::Warning { message } => say(&bar, format!("warning: {message}")),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::path::Path;

    fn train_args(extra: &[&str]) -> TrainArgs {
        let mut argv = vec!["ctseg", "train"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(argv) {
            Ok(crate::cli::Cli {
                command: Some(crate::cli::Command::Train(args)),
            }) => args,
            other => panic!("not a train command: {other:?}"),
        }
    }

    /// A run folder holding only the config.toml of `flags` on a dataset path.
    fn run_folder(dir: &Path, flags: &[&str]) -> PathBuf {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("data folder");
        let run = dir.join("run");
        let mut all = vec!["--data", data.to_str().expect("utf-8"), "--out", "unused"];
        all.extend_from_slice(flags);
        let (config, _, _) = effective_config(&train_args(&all)).expect("config");
        std::fs::create_dir_all(&run).expect("run folder");
        std::fs::write(run.join("config.toml"), config.to_toml().expect("toml"))
            .expect("config.toml");
        run
    }

    #[test]
    fn resuming_with_the_flags_the_run_started_with_is_no_change() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let flags = [
            "--batch-size",
            "6",
            "--input-size",
            "64",
            "--base-channels",
            "8",
            "--lr",
            "0.003",
            "--loss",
            "bce-dice",
            "--seed",
            "4",
            "--schedule",
            "cosine",
            "--warmup-steps",
            "10",
        ];
        let run = run_folder(tmp.path(), &flags);
        let run_text = run.to_str().expect("utf-8");
        let mut again = vec!["--resume", run_text, "--epochs", "9", "--max-steps", "500"];
        again.extend_from_slice(&flags);
        let (config, dir, resume) = effective_config(&train_args(&again)).expect("accepted");
        assert!(resume);
        assert_eq!(dir, run);
        assert_eq!(config.run.epochs, 9);
        assert_eq!(config.run.max_steps, 500);
        assert_eq!(config.run.batch_size, 6);

        let changed = train_args(&["--resume", run_text, "--batch-size", "4", "--lr", "0.003"]);
        let err = effective_config(&changed)
            .expect_err("a real change")
            .to_string();
        assert!(err.contains("--batch-size 4 (the run has 6)"), "{err}");
        assert!(
            !err.contains("--lr"),
            "an unchanged --lr is not named: {err}"
        );
    }

    #[test]
    fn a_run_from_before_schedule_kinds_resumes_on_its_plateau() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let run = run_folder(tmp.path(), &[]);
        let path = run.join("config.toml");
        let text = std::fs::read_to_string(&path).expect("read");
        let old: String = text
            .lines()
            .filter(|l| {
                !l.starts_with("kind =")
                    && !l.starts_with("warmup_steps")
                    && !l.starts_with("poly_exponent")
                    && !l.starts_with("plateau_after_signal")
                    && !l.starts_with("max_steps =")
            })
            .map(|l| l.replace("steps_per_epoch", "max_steps_per_epoch") + "\n")
            .collect();
        std::fs::write(&path, old).expect("write");
        let config = load_run_config(&run).expect("old config loads");
        assert_eq!(config.schedule.kind, ScheduleKind::Plateau);
        assert!(!config.schedule.plateau_after_signal);
        assert_eq!(config.schedule.warmup_steps, 0);
    }
}
