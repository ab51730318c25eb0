//! Training parity with PyTorch, full version: `cargo bench --bench parity`.
//!
//! The tiny U-Net (64², base 8, depth 3, 117 classes) from the same seeded initial
//! weights trains 300 steps on the same fixed batches of s0001 (batch 6, augmentation
//! off, constant lr 1e-3, Adam + L2 1e-5 + clipping at 1.0) in ctseg and in PyTorch
//! (`benches/pytorch/parity.py`); both final models are validated by ctseg's code.
//! Prints the loss at chosen steps, the largest relative loss difference over the
//! first 20 steps, and the Dice of both. `CTSEG_PARITY_STEPS`, `CTSEG_PARITY_LOSS`
//! (ce-dice, bce, bce-dice, dice) change the experiment. Needs the reference venv
//! (`benches/requirements.txt`, with torch) and ../shared/data.

use std::path::PathBuf;

use clap::ValueEnum;
use ctseg_core::testdata::{reference_python, shared_path};
use ctseg_ml::model::LossKind;
use ctseg_ml::parity::{ParitySettings, compare_with_pytorch};

fn main() -> anyhow::Result<()> {
    let Some(data) = shared_path("totalseg/s0001") else {
        return Ok(());
    };
    let Some(python) = reference_python(&["torch", "safetensors", "numpy"]) else {
        return Ok(());
    };
    let steps = std::env::var("CTSEG_PARITY_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let loss = match std::env::var("CTSEG_PARITY_LOSS") {
        Ok(name) => LossKind::from_str(&name, true).map_err(anyhow::Error::msg)?,
        Err(_) => LossKind::CeDice,
    };
    let tmp = tempfile::tempdir()?;
    let settings = ParitySettings::tiny(data, tmp.path().join("cache"), steps, loss);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/pytorch/parity.py");
    let report = compare_with_pytorch(&settings, &python, &script, tmp.path())?;
    println!(
        "parity: {} steps, loss {}, torch {}",
        steps,
        loss.name(),
        report.torch_version
    );
    println!("| step | ctseg loss | PyTorch loss | relative difference |");
    println!("| --- | --- | --- | --- |");
    for step in [1usize, 2, 5, 10, 20, 50, 100, 200, 300] {
        if let (Some(a), Some(b)) = (
            report.ctseg_losses.get(step - 1),
            report.torch_losses.get(step - 1),
        ) {
            println!(
                "| {step} | {a:.5} | {b:.5} | {:.1e} |",
                (a - b).abs() / b.abs()
            );
        }
    }
    println!(
        "largest relative loss difference, steps 1–20: {:.2e}",
        report.max_relative_difference(20)
    );
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.3}"));
    println!("| Dice after {steps} steps | ctseg | PyTorch |");
    println!("| --- | --- | --- |");
    println!(
        "| mean (present) | {} | {} |",
        f(report.ctseg_dice),
        f(report.torch_dice)
    );
    for (name, ours, theirs) in &report.dice_by_structure {
        println!("| {name} | {} | {} |", f(*ours), f(*theirs));
    }
    Ok(())
}
