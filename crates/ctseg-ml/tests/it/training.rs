//! Training engine end to end on the CPU backend with a small U-Net: learning on real
//! data, run-folder contents, exact resume, and dataset errors.

use crate::common;

use std::path::{Path, PathBuf};

use ctseg_ml::backend::BackendKind;
use ctseg_ml::train::{
    EventBus, FinishReason, MetricsLine, TrainConfig, TrainControl, TrainEvent, read_metrics, train,
};

/// A small, fast configuration: base 8, depth 3, 64² input, all 117 classes.
fn small_config(data: &Path, cache: &Path) -> TrainConfig {
    let mut c = TrainConfig::default();
    c.data.root = data.to_path_buf();
    c.data.cache_dir = cache.to_path_buf();
    c.data.loader_workers = 2;
    c.run.backend = BackendKind::Cpu;
    c.run.batch_size = 6;
    c.run.seed = 3;
    c.model.base_channels = 8;
    c.model.depth = 3;
    c.model.input_size = 64;
    c.schedule.early_stopping_patience = 0;
    // An epoch = the dataset once, so the tests' epoch counts stay small.
    c.run.steps_per_epoch = 0;
    c
}

fn step_losses(run: &Path) -> Vec<(usize, f64)> {
    read_metrics(&run.join("metrics.jsonl"))
        .expect("metrics")
        .into_iter()
        .filter_map(|l| match l {
            MetricsLine::Step(s) => Some((s.step, s.loss)),
            MetricsLine::Epoch(_) => None,
        })
        .collect()
}

fn phantom_dataset(dir: &Path, subjects: usize) -> PathBuf {
    let out = dir.join("phantoms");
    let config = ctseg_core::phantom::PhantomConfig {
        subjects,
        seed: 11,
        shape: [48, 48, 12],
        ..Default::default()
    };
    ctseg_core::phantom::write_dataset(&out, &config).expect("phantoms");
    out
}

#[test]
fn fitting_s0001_lowers_the_loss_and_finds_the_liver() {
    let Some(subject) = common::shared("totalseg/s0001") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut config = small_config(&subject, &tmp.path().join("cache"));
    config.run.epochs = 30;
    config.run.batch_size = 4;
    config.model.depth = 4;
    config.optim.lr = 3e-3;
    // Dice is ~0 for the first epochs; keep the learning rate up meanwhile.
    config.schedule.plateau_patience = 100;
    config.augment.enabled = false;
    let run = tmp.path().join("run");
    let summary = train(
        &config,
        &run,
        false,
        &mut EventBus::new(),
        &TrainControl::new(),
    )
    .expect("training runs");
    assert_eq!(summary.reason, FinishReason::Completed);
    let first = &summary.epochs[0];
    let last = summary.epochs.last().expect("epochs");
    eprintln!(
        "s0001: train loss {:.4} → {:.4}, val Dice {:?} → {:?}, liver {:?}",
        first.train_loss,
        last.train_loss,
        first.val_dice_mean,
        last.val_dice_mean,
        last.val_dice.get("liver")
    );
    assert!(
        last.train_loss < 0.5 * first.train_loss,
        "loss did not fall"
    );
    let liver = last.val_dice.get("liver").copied().unwrap_or(0.0);
    let first_liver = first.val_dice.get("liver").copied().unwrap_or(0.0);
    assert!(liver > 0.7, "liver Dice {liver}");
    assert!(
        liver > first_liver,
        "liver Dice did not rise: {first_liver} → {liver}"
    );
}

#[test]
fn a_run_folder_has_all_its_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = phantom_dataset(tmp.path(), 3);
    let mut config = small_config(&data, &tmp.path().join("cache"));
    config.run.epochs = 2;
    config.run.steps_per_epoch = 2;
    let run = tmp.path().join("run");
    let mut bus = EventBus::new();
    let events = bus.subscribe();
    train(&config, &run, false, &mut bus, &TrainControl::new()).expect("training runs");
    for f in [
        "config.toml",
        "metrics.jsonl",
        "history.png",
        "checkpoints/last/model.safetensors",
        "checkpoints/last/model.json",
        "checkpoints/last/model.bpk",
        "checkpoints/last/optimizer.bpk",
        "checkpoints/last/state.json",
        "checkpoints/best/model.safetensors",
        "checkpoints/best/model.json",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    // config.toml holds every setting and reloads to the same configuration.
    let written = TrainConfig::from_toml_file(&run.join("config.toml")).expect("config");
    assert_eq!(written, config);
    let lines = read_metrics(&run.join("metrics.jsonl")).expect("metrics");
    let steps = lines
        .iter()
        .filter(|l| matches!(l, MetricsLine::Step(_)))
        .count();
    let epochs: Vec<_> = lines
        .iter()
        .filter_map(|l| match l {
            MetricsLine::Epoch(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(steps, 4);
    assert_eq!(epochs.len(), 2);
    assert!(epochs[1].val_loss.is_finite() && epochs[1].seconds > 0.0);
    // Events arrived in order: prepared, started, steps, epochs, finished.
    let events: Vec<TrainEvent> = events.try_iter().collect();
    assert!(matches!(events.first(), Some(TrainEvent::Preparing { .. })));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, TrainEvent::Started { .. }))
    );
    assert!(matches!(
        events.last(),
        Some(TrainEvent::Finished {
            reason: FinishReason::Completed,
            ..
        })
    ));
    // The best checkpoint predicts on its own.
    let (model, model_config, _) =
        ctseg_ml::model::load_model(&run, &burn::prelude::Device::flex()).expect("best loads");
    assert_eq!(model_config, config.model);
    drop(model);
    // A second run into the same folder is refused.
    let err = train(
        &config,
        &run,
        false,
        &mut EventBus::new(),
        &TrainControl::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("--resume"), "{err}");
}

#[test]
fn resume_continues_exactly_like_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = phantom_dataset(tmp.path(), 3);
    let mut config = small_config(&data, &tmp.path().join("cache"));
    config.run.epochs = 3;
    config.run.steps_per_epoch = 3;
    config.optim.accumulate_steps = 1;

    let straight = tmp.path().join("straight");
    train(
        &config,
        &straight,
        false,
        &mut EventBus::new(),
        &TrainControl::new(),
    )
    .expect("run");
    let reference = step_losses(&straight);
    assert_eq!(reference.len(), 9);

    // Interrupted in the middle of epoch 2 (after step 5), then resumed.
    let interrupted = tmp.path().join("interrupted");
    let control = TrainControl::new();
    let mut bus = EventBus::new();
    let events = bus.subscribe();
    let canceller = {
        let control = control.clone();
        std::thread::spawn(move || {
            for e in events {
                if let TrainEvent::Step(s) = e
                    && s.step == 5
                {
                    control.cancel();
                }
            }
        })
    };
    let summary = train(&config, &interrupted, false, &mut bus, &control).expect("run");
    drop(bus);
    let _ = canceller.join();
    assert_eq!(summary.reason, FinishReason::Cancelled);
    let partial = step_losses(&interrupted);
    assert!(partial.len() >= 5 && partial.len() < 9, "{partial:?}");

    let summary = train(
        &config,
        &interrupted,
        true,
        &mut EventBus::new(),
        &TrainControl::new(),
    )
    .expect("resume");
    assert_eq!(summary.reason, FinishReason::Completed);
    let resumed = step_losses(&interrupted);
    assert_eq!(
        resumed.len(),
        9,
        "metrics.jsonl holds each step once: {resumed:?}"
    );
    for ((sa, a), (sb, b)) in reference.iter().zip(&resumed) {
        assert_eq!(sa, sb);
        assert!(
            (a - b).abs() <= 1e-4 * a.abs().max(1.0),
            "step {sa}: uninterrupted {a} vs resumed {b}"
        );
    }
    assert_eq!(summary.epochs.len(), 3);
}

#[test]
fn bad_datasets_fail_before_training_with_clear_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = tmp.path().join("cache");
    let run = tmp.path().join("run");
    let attempt = |data: &Path| {
        let config = small_config(data, &cache);
        train(
            &config,
            &run,
            false,
            &mut EventBus::new(),
            &TrainControl::new(),
        )
        .unwrap_err()
        .to_string()
    };
    // Empty folder.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    assert!(attempt(&empty).contains("no training data"));

    // A subject without its CT.
    let data = phantom_dataset(tmp.path(), 2);
    std::fs::remove_file(data.join("s0002/ct.nii.gz")).expect("remove");
    let err = attempt(&data);
    assert!(err.contains("s0002") && err.contains("ct.nii.gz"), "{err}");

    // Unknown structure names.
    let data = tmp.path().join("unknown");
    let config = ctseg_core::phantom::PhantomConfig {
        subjects: 1,
        shape: [32, 32, 8],
        ..Default::default()
    };
    ctseg_core::phantom::write_dataset(&data, &config).expect("phantom");
    std::fs::copy(
        data.join("s0001/segmentations/liver.nii.gz"),
        data.join("s0001/segmentations/livr.nii.gz"),
    )
    .expect("copy");
    let err = attempt(&data);
    assert!(
        err.contains("livr") && err.contains("unknown structure"),
        "{err}"
    );

    // A mask on another grid than its CT.
    let data = tmp.path().join("mismatch");
    ctseg_core::phantom::write_dataset(&data, &config).expect("phantom");
    let other = ctseg_core::phantom::PhantomConfig {
        shape: [32, 32, 9],
        ..config.clone()
    };
    let (_, labels) = ctseg_core::phantom::generate_subject(&other, 0);
    ctseg_core::io::segmentation::save_per_structure(&tmp.path().join("masks9"), &labels)
        .expect("save");
    std::fs::copy(
        tmp.path().join("masks9/liver.nii.gz"),
        data.join("s0001/segmentations/liver.nii.gz"),
    )
    .expect("copy");
    let err = attempt(&data);
    assert!(err.contains("liver.nii.gz"), "{err}");
    assert!(
        !run.join("config.toml").exists(),
        "nothing is written for a bad dataset"
    );
}

#[test]
fn fine_tuning_starts_from_the_given_weights_and_their_model_settings() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = phantom_dataset(tmp.path(), 3);
    let mut base = small_config(&data, &tmp.path().join("cache"));
    base.model.input_size = 32;
    base.run.epochs = 4;
    base.run.steps_per_epoch = 20;
    base.run.loss = ctseg_ml::model::LossKind::CeDice;
    base.optim.lr = 1e-2;
    let first = tmp.path().join("first");
    train(
        &base,
        &first,
        false,
        &mut EventBus::new(),
        &TrainControl::new(),
    )
    .expect("first run");

    // Fine-tune with different model settings in the form: the checkpoint's win.
    let mut tune = base.clone();
    tune.run.epochs = 1;
    tune.run.steps_per_epoch = 1;
    tune.model.base_channels = 16;
    tune.run.init_from = Some(first.join("checkpoints").join("last"));
    let tuned = tmp.path().join("tuned");
    train(
        &tune,
        &tuned,
        false,
        &mut EventBus::new(),
        &TrainControl::new(),
    )
    .expect("fine-tune");
    let saved = ctseg_ml::train::load_run_config(&tuned).expect("config");
    assert_eq!(saved.model, base.model);

    // The fine-tuned run picks up where the first run ended; the same epoch from
    // random weights starts where the first run started.
    let mut fresh = base.clone();
    fresh.run.epochs = 1;
    fresh.run.steps_per_epoch = 1;
    let scratch = tmp.path().join("scratch");
    train(
        &fresh,
        &scratch,
        false,
        &mut EventBus::new(),
        &TrainControl::new(),
    )
    .expect("fresh");
    let tuned_first = step_losses(&tuned)[0].1;
    let fresh_first = step_losses(&scratch)[0].1;
    let first_last = step_losses(&first).last().expect("steps").1;
    eprintln!(
        "first step loss: fine-tuned {tuned_first:.4}, fresh {fresh_first:.4}; end of first run {first_last:.4}"
    );
    // (Step losses are of different batches, so they are noisy: "much closer to the
    // first run's end than to a fresh start" is the test.)
    assert!(
        (tuned_first - first_last).abs() < 0.5 * (fresh_first - first_last).abs(),
        "fine-tuned {tuned_first}, fresh {fresh_first}, end of first run {first_last}"
    );

    // A missing checkpoint is a clear error naming it.
    let mut bad = base.clone();
    bad.run.init_from = Some(tmp.path().join("nope"));
    let e = train(
        &bad,
        &tmp.path().join("bad"),
        false,
        &mut EventBus::new(),
        &TrainControl::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn a_step_budget_ends_the_run_with_a_final_validation_and_checkpoints() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = phantom_dataset(tmp.path(), 3);
    let mut config = small_config(&data, &tmp.path().join("cache"));
    // 5 steps per epoch, more than the dataset's slices: batches cycle through
    // reshuffled passes. The budget of 7 ends the second epoch after 2 steps.
    config.run.steps_per_epoch = 5;
    config.run.max_steps = 7;
    config.run.epochs = 1;
    config.schedule.kind = ctseg_ml::train::config::ScheduleKind::Poly;
    config.schedule.warmup_steps = 2;
    let run = tmp.path().join("run");
    let summary = train(
        &config,
        &run,
        false,
        &mut EventBus::new(),
        &TrainControl::new(),
    )
    .expect("training runs");
    assert_eq!(summary.reason, FinishReason::Completed);
    let lines = read_metrics(&run.join("metrics.jsonl")).expect("metrics");
    let steps: Vec<_> = lines
        .iter()
        .filter_map(|l| match l {
            MetricsLine::Step(s) => Some(s.clone()),
            MetricsLine::Epoch(_) => None,
        })
        .collect();
    let epochs: Vec<_> = lines
        .iter()
        .filter_map(|l| match l {
            MetricsLine::Epoch(e) => Some(e.clone()),
            MetricsLine::Step(_) => None,
        })
        .collect();
    assert_eq!(steps.len(), 7, "the budget, whatever run.epochs says");
    assert_eq!(
        epochs.len(),
        2,
        "a validation after each epoch and at the end"
    );
    assert_eq!(
        steps.iter().map(|s| s.epoch).collect::<Vec<_>>(),
        [1, 1, 1, 1, 1, 2, 2]
    );
    // Warm-up over 2 steps, then poly decay over the other 5.
    let lr = config.optim.lr;
    let expected = [
        lr * 0.5,
        lr,
        lr,
        lr * 0.8f64.powf(0.9),
        lr * 0.6f64.powf(0.9),
        lr * 0.4f64.powf(0.9),
        lr * 0.2f64.powf(0.9),
    ];
    for (s, e) in steps.iter().zip(expected) {
        assert!(
            (s.lr - e).abs() < 1e-12,
            "step {}: lr {} vs {e}",
            s.step,
            s.lr
        );
    }
    for f in [
        "checkpoints/last/state.json",
        "checkpoints/best/model.safetensors",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    // The budget is spent: resuming runs nothing more.
    let again = train(
        &config,
        &run,
        true,
        &mut EventBus::new(),
        &TrainControl::new(),
    )
    .expect("resume");
    assert_eq!(again.epochs.len(), 2);
}

#[test]
fn a_run_that_stopped_before_its_first_checkpoint_says_what_to_do() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = phantom_dataset(tmp.path(), 3);
    let config = small_config(&data, &tmp.path().join("cache"));
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).expect("run folder");
    std::fs::write(run.join("config.toml"), config.to_toml().expect("toml")).expect("config");
    let again = |resume: bool| {
        train(
            &config,
            &run,
            resume,
            &mut EventBus::new(),
            &TrainControl::new(),
        )
        .unwrap_err()
        .to_string()
    };
    let fresh = again(false);
    assert!(
        fresh.contains("stopped before its first checkpoint")
            && fresh.contains("delete the folder"),
        "{fresh}"
    );
    let resumed = again(true);
    assert!(resumed.contains("delete the folder"), "{resumed}");
}

/// A `meta.csv` whose validation subjects are not in the folder: training goes on
/// (a user may have copied part of a dataset) but says so, twice — the missing
/// subjects, and that it validates on the training subjects — never silently.
#[test]
fn validating_on_training_subjects_is_said_not_silent() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = phantom_dataset(tmp.path(), 2);
    let ids: Vec<String> = std::fs::read_dir(&data)
        .expect("dataset")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut meta = String::from("image_id;split\n");
    for id in &ids {
        meta.push_str(&format!("{id};train\n"));
    }
    meta.push_str("s9998;val\ns9999;val\n");
    std::fs::write(data.join("meta.csv"), meta).expect("meta.csv");
    let mut config = small_config(&data, &tmp.path().join("cache"));
    config.run.epochs = 1;
    config.run.steps_per_epoch = 1;
    let mut bus = EventBus::new();
    let events = bus.subscribe();
    train(
        &config,
        &tmp.path().join("run"),
        false,
        &mut bus,
        &TrainControl::new(),
    )
    .expect("training runs");
    let warnings: Vec<String> = events
        .try_iter()
        .filter_map(|e| match e {
            TrainEvent::Warning { message } => Some(message),
            _ => None,
        })
        .collect();
    let text = warnings.join("\n");
    assert!(
        text.contains("2 val subjects") && text.contains("s9998"),
        "{text}"
    );
    assert!(
        text.contains("validating on the 2 training subjects"),
        "{text}"
    );
}
