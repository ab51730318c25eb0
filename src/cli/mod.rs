//! The `ctseg` command line: `info`, `eval`, `train`, `predict`, `bench`, `phantom`
//! and `view` (the desktop app).

#[cfg(feature = "ml")]
pub mod bench;
pub mod eval;
pub mod info;
pub mod phantom;
#[cfg(feature = "ml")]
pub mod predict;
#[cfg(feature = "ml")]
pub mod train;
#[cfg(feature = "gui")]
pub mod view;

use clap::{Parser, Subcommand};

/// ctseg — CT organ segmentation workstation.
#[derive(Debug, Parser)]
#[command(name = "ctseg", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Describe a CT or segmentation: NIfTI file, DICOM folder or TotalSegmentator subject folder.
    Info(info::InfoArgs),
    /// Compare a predicted segmentation with the ground truth, per structure.
    Eval(eval::EvalArgs),
    /// Train the U-Net on a dataset into a run folder.
    #[cfg(feature = "ml")]
    Train(train::TrainArgs),
    /// Segment a CT with a trained model.
    #[cfg(feature = "ml")]
    Predict(predict::PredictArgs),
    /// Measure training/inference throughput and check a backend against the CPU.
    #[cfg(feature = "ml")]
    Bench(bench::BenchArgs),
    /// Write a synthetic TotalSegmentator-layout dataset of abdominal phantoms.
    Phantom(phantom::PhantomArgs),
    /// Open the desktop viewer (also what `ctseg` without a command does).
    #[cfg(feature = "gui")]
    View(view::ViewArgs),
}

/// Print non-fatal warnings to stderr.
pub fn print_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// Write command output to stdout; a closed pipe (e.g. `| head`) is not an error.
pub fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
