//! Whole-volume inference: geometry preserved, orientation-independent anatomy,
//! multilabel and per-structure outputs agree, determinism, bad inputs — with a small
//! model trained on s0001 on the CPU once for this test binary.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::prelude::Device;
use ctseg_core::dataset::load_subject;
use ctseg_core::io::nifti;
use ctseg_core::metrics::evaluate;
use ctseg_core::structures::catalog;
use ctseg_core::{LabelVolume, Volume};
use ctseg_ml::backend::BackendKind;
use ctseg_ml::infer::{Precision, PredictOptions, Predictor};
use ctseg_ml::train::{EventBus, TrainConfig, TrainControl, train};

/// A run folder with a small model fitted to s0001 (trained once per test binary).
fn trained_run() -> Option<&'static PathBuf> {
    static RUN: OnceLock<Option<PathBuf>> = OnceLock::new();
    RUN.get_or_init(|| {
        let subject = common::shared("totalseg/s0001")?;
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let mut c = TrainConfig::default();
        c.data.root = subject;
        c.data.cache_dir = dir.join("cache");
        c.run.backend = BackendKind::Cpu;
        c.run.epochs = 30;
        c.run.steps_per_epoch = 0;
        c.run.batch_size = 4;
        c.run.seed = 1;
        c.model.base_channels = 8;
        c.model.input_size = 64;
        c.optim.lr = 3e-3;
        c.schedule.plateau_patience = 100;
        c.schedule.early_stopping_patience = 0;
        c.augment.enabled = false;
        let run = dir.join("run");
        train(&c, &run, false, &mut EventBus::new(), &TrainControl::new()).expect("training");
        Some(run)
    })
    .as_ref()
}

fn predictor(run: &Path) -> Predictor {
    Predictor::load(run, Device::flex(), BackendKind::Cpu).expect("model loads")
}

fn predict(p: &Predictor, ct: &Volume<i16>, options: &PredictOptions) -> LabelVolume {
    p.predict(ct, options, &mut |_, _| true)
        .expect("prediction")
}

#[test]
fn s0001_prediction_keeps_the_grid_and_finds_liver_and_spleen() {
    let Some(run) = trained_run() else { return };
    let Some(dir) = common::shared("totalseg/s0001") else {
        return;
    };
    let subject = load_subject(&dir).expect("subject");
    let p = predictor(run);
    let labels = predict(&p, &subject.ct.volume, &PredictOptions::default());
    assert_eq!(labels.shape(), subject.ct.volume.shape());
    assert_eq!(
        labels.geometry().world_from_voxel,
        subject.ct.volume.geometry().world_from_voxel
    );
    let evaluation = evaluate(&subject.segmentation.labels, &labels, catalog()).expect("eval");
    let dice = |name: &str| {
        evaluation
            .structures
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.dice)
            .unwrap_or(0.0)
    };
    eprintln!(
        "s0001 on its source grid: liver Dice {:.3}, spleen Dice {:.3}, mean {:?}",
        dice("liver"),
        dice("spleen"),
        evaluation.mean_dice
    );
    // Chance level is the structure's share of the volume (a few per cent).
    assert!(dice("liver") > 0.7, "liver {}", dice("liver"));
    assert!(dice("spleen") > 0.3, "spleen {}", dice("spleen"));

    // Same input, same output.
    let again = predict(&p, &subject.ct.volume, &PredictOptions::default());
    assert_eq!(again.data(), labels.data());

    // Post-processing options keep the grid; largest-component never adds voxels.
    let options = PredictOptions {
        smooth: true,
        largest_component: true,
        batch_size: 3,
        ..PredictOptions::default()
    };
    let post = predict(&p, &subject.ct.volume, &options);
    assert_eq!(post.shape(), labels.shape());
    let liver = catalog().label_of("liver").expect("liver");
    let count = |v: &LabelVolume| v.data().iter().filter(|&&l| l == liver).count();
    assert!(count(&post) > 0);
}

/// Dice against the reference labels for `name`, 0 when undefined.
fn dice_of(reference: &LabelVolume, labels: &LabelVolume, name: &str) -> f64 {
    evaluate(reference, labels, catalog())
        .expect("eval")
        .structures
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.dice)
        .unwrap_or(0.0)
}

/// Fraction of voxels whose label differs.
fn disagreement(a: &LabelVolume, b: &LabelVolume) -> f64 {
    let differing = a
        .data()
        .iter()
        .zip(b.data())
        .filter(|(x, y)| x != y)
        .count();
    differing as f64 / a.data().len() as f64
}

#[test]
fn half_precision_changes_dice_by_less_than_a_hundredth() {
    let Some(run) = trained_run() else { return };
    let Some(dir) = common::shared("totalseg/s0001") else {
        return;
    };
    let subject = load_subject(&dir).expect("subject");
    let gt = &subject.segmentation.labels;
    let options = PredictOptions::default();
    let full = predict(&predictor(run), &subject.ct.volume, &options);
    let mut devices = vec![(BackendKind::Cpu, Device::flex(), "cpu".to_string())];
    match ctseg_ml::backend::select(BackendKind::Wgpu) {
        Ok(d) => {
            let name = d.describe();
            devices.push((BackendKind::Wgpu, d.device, name));
        }
        Err(e) => eprintln!("SKIP wgpu half precision: {e}"),
    }
    for (kind, device, name) in devices {
        for precision in [Precision::F16, Precision::Bf16] {
            if !precision.supported_on(&device) {
                eprintln!("SKIP {precision} on {name}: not supported by the device");
                let err = Predictor::load(run, device.clone(), kind)
                    .expect("model loads")
                    .with_precision(precision, &name)
                    .err()
                    .expect("refused")
                    .to_string();
                assert!(err.contains(precision.name()), "{err}");
                continue;
            }
            let p = Predictor::load(run, device.clone(), kind)
                .expect("model loads")
                .with_precision(precision, &name)
                .expect("supported");
            assert_eq!(p.precision(), precision);
            let half = predict(&p, &subject.ct.volume, &options);
            assert_eq!(half.shape(), full.shape());
            let off = disagreement(&half, &full);
            let mut line = format!(
                "{name} {precision}: {:.4} % of voxels differ from f32",
                off * 100.0
            );
            for organ in ["liver", "spleen"] {
                let (a, b) = (dice_of(gt, &full, organ), dice_of(gt, &half, organ));
                line += &format!(", {organ} Dice {a:.4} (f32) vs {b:.4} (Δ {:+.4})", b - a);
                let tolerance = if precision == Precision::F16 {
                    0.01
                } else {
                    0.03
                };
                assert!((b - a).abs() < tolerance, "{line}");
            }
            eprintln!("{line}");
            assert!(off < 0.01, "{line}");
        }
    }
}

#[test]
fn flipped_and_lps_copies_give_the_same_anatomy() {
    let Some(run) = trained_run() else { return };
    let Some(path) = common::shared("totalseg/s0001/ct.nii.gz") else {
        return;
    };
    let ct = nifti::read::<i16>(&path).expect("ct").volume;
    let p = predictor(run);
    let options = PredictOptions::default();
    let reference = predict(&p, &ct, &options);
    assert!(reference.data().iter().any(|&l| l != 0));
    for code in ["LPS", "LAS", "RAI", "PIR"] {
        let moved = ct.reoriented(code).expect("reorient");
        assert_eq!(moved.geometry().orientation(), code);
        let labels = predict(&p, &moved, &options);
        assert_eq!(labels.shape(), moved.shape());
        assert_eq!(
            labels.geometry().world_from_voxel,
            moved.geometry().world_from_voxel
        );
        // Back in the reference voxel order the labels must be identical: the same
        // anatomy at the same world positions.
        let back = labels
            .reoriented(&ct.geometry().orientation())
            .expect("back");
        assert_eq!(
            back.geometry().world_from_voxel,
            ct.geometry().world_from_voxel
        );
        let differing = back
            .data()
            .iter()
            .zip(reference.data())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(differing, 0, "{code}: {differing} voxels differ");
    }
}

#[test]
fn cli_multilabel_and_per_structure_outputs_agree() {
    let Some(run) = trained_run() else { return };
    let Some(ct) = common::shared("totalseg/s0001/ct.nii.gz") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let multi = tmp.path().join("pred.nii.gz");
    let per = tmp.path().join("pred_masks");
    let run_s = run.to_string_lossy().into_owned();
    let ct_s = ct.to_string_lossy().into_owned();
    let args = |out: &Path, extra: &[&str]| {
        let mut a: Vec<String> = [
            "predict",
            "--model",
            &run_s,
            "--input",
            &ct_s,
            "--backend",
            "cpu",
            "--quiet",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.push(out.to_string_lossy().into_owned());
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let r = common::ctseg(
        &args(&multi, &[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("slices/s"), "{}", r.stderr);
    // Half precision through the CLI: the same labels but for a few voxels.
    let half = tmp.path().join("pred_f16.nii.gz");
    let r = common::ctseg(
        &args(&half, &["--precision", "f16"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("slower than f32"), "{}", r.stderr);
    let full_labels = ctseg_core::io::segmentation::load_segmentation(&multi)
        .expect("f32")
        .labels;
    let half_labels = ctseg_core::io::segmentation::load_segmentation(&half)
        .expect("f16")
        .labels;
    assert!(disagreement(&full_labels, &half_labels) < 0.01);
    let r = common::ctseg(
        &args(&per, &["--per-structure"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let a = ctseg_core::io::segmentation::load_segmentation(&multi).expect("multilabel");
    assert!(a.named_labels, "label table in the header");
    let b = ctseg_core::io::segmentation::load_per_structure(&per, None).expect("masks");
    assert_eq!(a.labels.data(), b.labels.data());
    assert_eq!(std::fs::read_dir(&per).expect("dir").count(), 117);
    // An existing output is not overwritten without --force.
    let r = common::ctseg(
        &args(&multi, &[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    let r = common::ctseg(
        &args(&multi, &["--force"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// `ctseg bench --volume CT --model RUN` predicts the whole CT with the trained
/// weights, in the precision asked for, and reports what it found.
#[test]
fn bench_measures_a_whole_volume_with_trained_weights() {
    let Some(run) = trained_run() else { return };
    let Some(ct) = common::shared("totalseg/s0001/ct.nii.gz") else {
        return;
    };
    let r = common::ctseg(&[
        "bench",
        "--backend",
        "cpu",
        "--no-train",
        "--iters",
        "1",
        "--warmup",
        "0",
        "--batch-size",
        "2",
        "--input-size",
        "64",
        "--base-channels",
        "8",
        "--precision",
        "f16",
        "--volume",
        &ct.to_string_lossy(),
        "--model",
        &run.to_string_lossy(),
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON report");
    assert_eq!(report["precision"], "f16");
    let volume = &report["volume"];
    assert_eq!(volume["shape"], serde_json::json!([122, 101, 30]));
    assert!(volume["slices_per_s"].as_f64().is_some_and(|v| v > 0.0));
    let found = volume["structures_found"]
        .as_u64()
        .expect("structures_found");
    assert!(found >= 2, "liver and spleen at least, found {found}");
}

#[test]
fn bad_models_and_inputs_are_clear_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A model for another number of classes.
    let config = ctseg_ml::model::UNetConfig {
        num_classes: 5,
        base_channels: 2,
        depth: 2,
        input_size: 16,
        ..Default::default()
    };
    let model = config.init(&Device::flex());
    let five = tmp.path().join("five");
    ctseg_ml::model::save_weights(&five, &model, &config).expect("save");
    let err = Predictor::load(&five, Device::flex(), BackendKind::Cpu)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("5 output classes") && err.contains("117"),
        "{err}"
    );
    // A corrupt checkpoint.
    let corrupt = tmp.path().join("corrupt.safetensors");
    std::fs::write(&corrupt, [7u8; 64]).expect("write");
    let err = Predictor::load(&corrupt, Device::flex(), BackendKind::Cpu)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("corrupt.safetensors"), "{err}");
    // A non-CT input through the CLI.
    let not_ct = tmp.path().join("notes.nii.gz");
    std::fs::write(&not_ct, b"hello").expect("write");
    let out = tmp.path().join("out.nii.gz");
    let r = common::ctseg(&[
        "predict",
        "--model",
        &five.to_string_lossy(),
        "--input",
        &not_ct.to_string_lossy(),
        "--out",
        &out.to_string_lossy(),
        "--backend",
        "cpu",
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("notes.nii.gz"), "{}", r.stderr);
    assert!(!out.exists());
}

/// `ctseg predict --out X.dcm` on a DICOM series writes a DICOM Segmentation holding
/// the labels the NIfTI output holds; a NIfTI CT or an anonymised series (no UIDs
/// to reference) is refused before inference, with nothing written.
#[test]
fn cli_writes_a_dicom_segmentation_over_a_dicom_series() {
    let Some(run) = trained_run() else { return };
    let Some(series) = common::shared("totalseg/dicom_ct_pacs") else {
        return;
    };
    let Some(anonymised) = common::shared("totalseg/dicom_ct") else {
        return;
    };
    let Some(nifti_ct) = common::shared("totalseg/s0001/ct.nii.gz") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let run_s = run.to_string_lossy().into_owned();
    let predict = |input: &Path, out: &Path| {
        common::ctseg(&[
            "predict",
            "--model",
            &run_s,
            "--input",
            &input.to_string_lossy(),
            "--backend",
            "cpu",
            "--quiet",
            "--threshold",
            "0.2",
            "--out",
            &out.to_string_lossy(),
        ])
    };
    let nii = tmp.path().join("pred.nii.gz");
    let r = predict(&series, &nii);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let expected = ctseg_core::io::segmentation::load_segmentation(&nii)
        .expect("NIfTI prediction")
        .labels;
    assert!(
        expected.data().iter().any(|&l| l != 0),
        "the model finds something"
    );
    let dcm = tmp.path().join("pred.dcm");
    let r = predict(&series, &dcm);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ct = ctseg_core::io::load_ct(&series).expect("series");
    let seg = ctseg_core::io::dicom::seg::read_seg(&dcm, ct.volume.geometry(), ct.dicom.as_ref())
        .expect("the DICOM Segmentation reads");
    assert_eq!(seg.labels.data(), expected.data());
    assert!(!seg.manual);

    for (input, why) in [(&nifti_ct, "is not one"), (&anonymised, "SOPInstanceUID")] {
        let out = tmp.path().join("refused.dcm");
        let r = predict(input, &out);
        assert_ne!(r.code, 0);
        assert!(r.stderr.contains(why), "{}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        assert!(!out.exists());
    }
}
