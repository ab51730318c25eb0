//! The `ctseg` command line: `info`, `eval`, `train`, `predict`, `convert`, `serve`, `export`,
//! `dicomweb`, `bench`, `phantom` and `view` (the desktop app).

pub mod bench;
pub mod convert;
pub mod dicomweb;
pub mod eval;
pub mod eval_dataset;
pub mod export;
pub mod info;
pub mod phantom;
pub mod predict;
pub mod serve;
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
    /// Score a prediction against ground truth, or a model over a dataset split
    /// (Dice, IoU, normalised surface Dice, HD95 per structure).
    Eval(eval::EvalArgs),
    /// Train the U-Net on a dataset into a run folder.
    Train(train::TrainArgs),
    /// Segment a CT with a trained model.
    Predict(predict::PredictArgs),
    /// Serve models over HTTP: MONAI Label's API (3D Slicer, OHIF, its Python
    /// client) and plain /v1 endpoints.
    Serve(serve::ServeArgs),
    /// Convert a segmentation of a CT between multilabel NIfTI, per-structure masks
    /// and DICOM Segmentation.
    Convert(convert::ConvertArgs),
    /// Write a trained model as an ONNX file (for onnxruntime and other runtimes).
    Export(export::ExportArgs),
    /// Search, retrieve from and store to a PACS over DICOMweb (QIDO-RS, WADO-RS,
    /// STOW-RS).
    Dicomweb(dicomweb::DicomwebArgs),
    /// Measure training/inference throughput and check a backend against the CPU.
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// The README's command synopsis lists every flag every subcommand has.
    #[test]
    fn readme_lists_every_flag() {
        let readme = include_str!("../../README.md");
        let mut missing = Vec::new();
        let cli = Cli::command();
        // Subcommands and their own subcommands (`dicomweb search`…).
        let subs = cli
            .get_subcommands()
            .flat_map(|s| std::iter::once(s).chain(s.get_subcommands()));
        for sub in subs {
            for arg in sub.get_arguments() {
                if let Some(long) = arg.get_long()
                    && !matches!(long, "help" | "version")
                    && !readme.contains(&format!("--{long}"))
                {
                    missing.push(format!("{} --{long}", sub.get_name()));
                }
            }
        }
        assert!(missing.is_empty(), "README lacks {missing:?}");
    }
}
