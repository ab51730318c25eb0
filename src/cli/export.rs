//! `ctseg export`: write a trained model as an ONNX file.

use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};

use crate::cli::emit;
use ctseg_ml::export::{BatchSize, DEFAULT_OPSET, ExportError, ExportOptions, export_bytes};
use ctseg_ml::model::checkpoint::write_file;

/// Arguments of `ctseg export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Run folder (its `checkpoints/best` is used), checkpoint folder or `.safetensors` file.
    #[arg(long)]
    pub model: PathBuf,
    /// Output ONNX file.
    #[arg(long)]
    pub onnx: PathBuf,
    /// Batch axis of the input and output: `dynamic` (symbolic, any size at run time)
    /// or a fixed number of slices.
    #[arg(long, default_value_t = BatchSize::Dynamic)]
    pub batch: BatchSize,
    /// ONNX opset version (11 to 21).
    #[arg(long, default_value_t = DEFAULT_OPSET, allow_negative_numbers = true)]
    pub opset: i64,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
}

/// The folder `path` lies in (`.` for a bare file name).
fn folder_of(path: &std::path::Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Run `ctseg export`.
pub fn run(args: &ExportArgs) -> Result<()> {
    let options = ExportOptions {
        batch: args.batch,
        opset: args.opset,
    };
    options.validate()?;
    if args.onnx.is_dir() {
        bail!(
            "{} is a folder: give a file name ending in .onnx (e.g. {})",
            args.onnx.display(),
            args.onnx.join("model.onnx").display()
        );
    }
    if args.onnx.exists() && !args.force {
        bail!(
            "{} already exists; pass --force to replace it",
            args.onnx.display()
        );
    }
    let parent = folder_of(&args.onnx);
    if !parent.is_dir() {
        bail!(
            "cannot write {}: the folder {} does not exist",
            args.onnx.display(),
            parent.display()
        );
    }
    let (bytes, summary) = export_bytes(&args.model, &options).map_err(|e| match e {
        // These name the file already.
        ExportError::Checkpoint(_) | ExportError::Backend(_) => anyhow!(e),
        other => anyhow!("cannot export {}: {other}", args.model.display()),
    })?;
    if let (Ok(out), Ok(weights)) = (
        std::fs::canonicalize(&args.onnx),
        std::fs::canonicalize(&summary.weights),
    ) && out == weights
    {
        bail!(
            "--onnx {} would overwrite the model's weights; choose another output",
            args.onnx.display()
        );
    }
    write_file(&args.onnx, &bytes)?;
    let c = &summary.config;
    let batch = match args.batch {
        BatchSize::Dynamic => "batch".to_string(),
        BatchSize::Fixed(n) => n.to_string(),
    };
    emit(&format!(
        "wrote {} ({:.1} MB, opset {}, IR {}, {} nodes) from {}\n  image [{batch}, {}, {s}, {s}] → logits [{batch}, {}, {s}, {s}]\n",
        args.onnx.display(),
        summary.bytes as f64 / 1e6,
        summary.options.opset,
        summary.ir_version,
        summary.nodes,
        summary.weights.display(),
        c.in_channels,
        c.num_classes,
        s = c.input_size,
    ))
}
