//! Backends must agree: the same weights and input through `cpu` and `wgpu` (lavapipe
//! in CI) give the same logits and losses, and a backend that computes wrong BatchNorm
//! statistics is refused for training instead of silently training garbage.

use ctseg_ml::backend::{self, BackendError, BackendKind, SelectedDevice};
use ctseg_ml::bench::check_against_cpu;
use ctseg_ml::model::UNetConfig;
use ctseg_ml::train::{EventBus, TrainConfig, TrainControl, train};

/// The wgpu device, or `None` (skip, with the reason printed) when this machine has
/// no Vulkan/Metal/DX12 adapter. With `CTSEG_REQUIRE_WGPU=1` (set by .ci/run once it
/// has installed lavapipe) a missing adapter is a failure.
fn wgpu() -> Option<SelectedDevice> {
    match backend::select(BackendKind::Wgpu) {
        Ok(d) => Some(d),
        Err(e) if std::env::var("CTSEG_REQUIRE_WGPU").is_ok_and(|v| v == "1") => {
            panic!("CTSEG_REQUIRE_WGPU=1 but no wgpu adapter: {e}")
        }
        Err(e) => {
            eprintln!("SKIP: no wgpu adapter on this machine ({e})");
            None
        }
    }
}

#[test]
fn wgpu_and_cpu_agree_on_the_same_weights_and_input() {
    let Some(device) = wgpu() else { return };
    let config = UNetConfig {
        in_channels: 1,
        num_classes: 3,
        base_channels: 2,
        depth: 2,
        input_size: 16,
    };
    let report = check_against_cpu(&device.device, &config, 2).expect("both backends run");
    eprintln!("{}: {report:?}", device.describe());
    assert!(report.agree, "{report:?}");
    assert!(report.logits_max_abs_diff < 1e-3);
    assert!((report.loss_cpu - report.loss_backend).abs() < 1e-4);
}

#[test]
fn training_refuses_a_backend_with_wrong_batch_norm_statistics() {
    let Some(device) = wgpu() else { return };
    let statistics = backend::check_batch_norm_statistics(BackendKind::Wgpu, &device.device);
    eprintln!(
        "{}: BatchNorm statistics check: {statistics:?}",
        device.describe()
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let phantoms = ctseg_core::phantom::PhantomConfig {
        subjects: 2,
        shape: [32, 32, 8],
        ..Default::default()
    };
    ctseg_core::phantom::write_dataset(&data, &phantoms).expect("phantoms");
    let mut config = TrainConfig::default();
    config.data.root = data;
    config.data.cache_dir = tmp.path().join("cache");
    config.run.backend = BackendKind::Wgpu;
    config.run.epochs = 1;
    config.run.batch_size = 2;
    config.run.steps_per_epoch = 1;
    config.model.base_channels = 2;
    config.model.depth = 2;
    config.model.input_size = 16;
    let result = train(
        &config,
        &tmp.path().join("run"),
        false,
        &mut EventBus::new(),
        &TrainControl::new(),
    );
    match statistics {
        Err(BackendError::WrongResults { .. }) => {
            let err = result
                .expect_err("training must refuse this backend")
                .to_string();
            assert!(err.contains("computes wrong results"), "{err}");
            assert!(!tmp.path().join("run/checkpoints").exists());
        }
        Err(other) => panic!("unexpected error from the check: {other}"),
        Ok(()) => {
            let summary = result.expect("a correct backend trains");
            assert!(summary.epochs[0].train_loss.is_finite());
        }
    }
}

/// `auto` takes a hardware GPU when wgpu finds one, and the CPU backend otherwise —
/// never a software Vulkan device (lavapipe here: it used to be chosen and ran 30
/// slices in 79 s that the CPU does in 0.1 s) — and says why.
#[test]
fn auto_never_chooses_a_software_vulkan_device() {
    let auto = backend::select(BackendKind::Auto).expect("auto always finds the CPU");
    assert_ne!(auto.kind, BackendKind::Auto, "auto is resolved");
    let why = auto.chosen_because.clone().unwrap_or_default();
    assert!(
        auto.describe().contains("chosen automatically"),
        "{}",
        auto.describe()
    );
    match wgpu() {
        Some(gpu) if gpu.adapter_type == "software" && !BackendKind::Cuda.is_compiled_in() => {
            assert_eq!(auto.kind, BackendKind::Cpu, "{}", auto.describe());
            assert!(
                why.contains("software renderer") && why.contains(&gpu.adapter),
                "{why}"
            );
        }
        Some(gpu) if gpu.adapter_type == "GPU" && !BackendKind::Cuda.is_compiled_in() => {
            assert_eq!(auto.kind, BackendKind::Wgpu, "{}", auto.describe());
        }
        _ => assert_ne!(auto.adapter_type, "software", "{}", auto.describe()),
    }
    // An explicit request is still honoured.
    assert_eq!("auto".parse::<BackendKind>(), Ok(BackendKind::Auto));
}
