//! Training parity with PyTorch (short version of `cargo bench --bench parity`): the
//! same tiny U-Net from the same initial weights, on the same fixed batches of s0001
//! (augmentation off), with the same loss, Adam, L2 decay and clipping, loses the
//! same amount step for step. Needs the reference venv with torch
//! (`benches/requirements.txt`); skips with a reason without it, fails under CI=true.

use std::path::PathBuf;

use ctseg_core::testdata::{reference_python, shared_path};
use ctseg_ml::model::LossKind;
use ctseg_ml::parity::{ParitySettings, compare_with_pytorch};

/// Largest relative difference of a step's loss allowed over the first steps.
const RELATIVE_TOLERANCE: f64 = 1e-3;

fn check(loss: LossKind) {
    let Some(data) = shared_path("totalseg/s0001") else {
        return;
    };
    let Some(python) = reference_python(&["torch", "safetensors", "numpy"]) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let settings = ParitySettings::tiny(data, tmp.path().join("cache"), 20, loss);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../benches/pytorch/parity.py");
    let report = compare_with_pytorch(&settings, &python, &script, tmp.path()).expect("parity run");
    for (i, (a, b)) in report
        .ctseg_losses
        .iter()
        .zip(&report.torch_losses)
        .enumerate()
    {
        eprintln!("{loss:?} step {:>2}: ctseg {a:.6}  torch {b:.6}", i + 1);
    }
    assert_eq!(report.ctseg_losses.len(), 20);
    assert_eq!(report.torch_losses.len(), 20);
    let worst = report.max_relative_difference(20);
    assert!(
        worst <= RELATIVE_TOLERANCE,
        "{loss:?}: losses differ by up to {worst:.2e} (relative) within 20 steps"
    );
    // The comparison is not trivial: training lowered the loss (per-batch losses are
    // noisy, so compare the means of the first and last five steps).
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (first, last) = (
        mean(&report.ctseg_losses[..5]),
        mean(&report.ctseg_losses[15..]),
    );
    assert!(last < first * 0.98, "{loss:?}: loss {first:.4} → {last:.4}");
}

#[test]
fn ce_dice_steps_match_pytorch() {
    check(LossKind::CeDice);
}

#[test]
fn bce_steps_match_pytorch() {
    check(LossKind::Bce);
}
