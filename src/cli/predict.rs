//! `ctseg predict`: segment a CT with a trained model.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::print_warnings;
use ctseg_core::io::dicom::seg::{SegWriteOptions, model_name, write_seg};
use ctseg_core::io::load_ct;
use ctseg_core::io::segmentation::{save_multilabel, save_per_structure};
use ctseg_ml::backend::{self, BackendKind};
use ctseg_ml::infer::{Precision, PredictOptions, Predictor};

/// Arguments of `ctseg predict`.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// Run folder (its `checkpoints/best` is used), checkpoint folder or `.safetensors` file.
    #[arg(long)]
    pub model: PathBuf,
    /// CT: NIfTI file or DICOM folder.
    #[arg(long)]
    pub input: PathBuf,
    /// Output `.nii.gz` multilabel file (label names in the header); `.dcm`: a DICOM
    /// Segmentation over the input series (a DICOM input only); with
    /// `--per-structure` a folder of `<name>.nii.gz` masks.
    #[arg(long)]
    pub out: PathBuf,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    pub backend: BackendKind,
    /// Slices per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Float type of the forward pass: f32, or f16/bf16 (mixed precision: half the
    /// memory traffic; the logits are turned back into f32 before thresholding).
    /// Refused on a device that does not support the type.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    /// Probability above which a structure is present.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
    /// Write one mask per structure (TotalSegmentator layout) instead of one multilabel file.
    #[arg(long)]
    pub per_structure: bool,
    /// Average probabilities with the neighbouring slices (¼, ½, ¼) before thresholding.
    #[arg(long)]
    pub smooth: bool,
    /// Keep only the largest connected component of single-object structures.
    #[arg(long)]
    pub largest_component: bool,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The folder `path` lies in (`.` for a bare file name).
fn folder_of(path: &std::path::Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Refuse, before any inference, an output that is the input itself or that
/// cannot be written where it should go.
fn check_output_place(args: &PredictArgs) -> Result<()> {
    if let (Ok(out), Ok(input)) = (
        std::fs::canonicalize(&args.out),
        std::fs::canonicalize(&args.input),
    ) && (out == input || out.starts_with(&input) || input.starts_with(&out))
    {
        bail!(
            "--out {} would overwrite the input {}; choose another output",
            args.out.display(),
            args.input.display()
        );
    }
    let parent = folder_of(&args.out);
    if !parent.is_dir() {
        bail!(
            "cannot write {}: the folder {} does not exist",
            args.out.display(),
            parent.display()
        );
    }
    tempfile::Builder::new()
        .prefix(".ctseg-write-check-")
        .tempfile_in(&parent)
        .with_context(|| {
            format!(
                "cannot write {}: the folder {} is not writable",
                args.out.display(),
                parent.display()
            )
        })?;
    Ok(())
}

/// Whether the output is a DICOM Segmentation (a file name ending in `.dcm`).
fn writes_dicom_seg(args: &PredictArgs) -> bool {
    !args.per_structure
        && args
            .out
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("dcm"))
}

/// Run `ctseg predict`.
pub fn run(args: &PredictArgs) -> Result<()> {
    if !(args.threshold > 0.0 && args.threshold < 1.0) {
        bail!("--threshold must be in (0, 1), got {}", args.threshold);
    }
    if args.batch_size == 0 {
        bail!("--batch-size must be positive");
    }
    // What the output must be comes before whether it may be replaced, so that
    // the advice given (--force) is one that then works.
    if !args.per_structure {
        if args.out.is_dir() {
            bail!(
                "{} is a folder: give a file name ending in .nii.gz (e.g. {}), or --per-structure to write one mask per structure into the folder",
                args.out.display(),
                args.out.join("labels.nii.gz").display()
            );
        }
        let name = args.out.to_string_lossy();
        if !(name.ends_with(".nii.gz") || name.ends_with(".nii") || writes_dicom_seg(args)) {
            bail!(
                "{}: the multilabel output must end in .nii.gz or .nii, or .dcm for a DICOM Segmentation (or use --per-structure for a folder)",
                args.out.display()
            );
        }
    } else if args.out.exists() && !args.out.is_dir() {
        bail!(
            "{} exists and is not a folder: --per-structure writes a folder of masks",
            args.out.display()
        );
    }
    if args.out.exists() && !args.force {
        bail!(
            "{} already exists; pass --force to replace it",
            args.out.display()
        );
    }
    check_output_place(args)?;
    let mut loaded = load_ct(&args.input)?;
    print_warnings(&loaded.warnings);
    // A DICOM Segmentation references its source series: refused before inference
    // when there is none to reference.
    let dicom_source = if writes_dicom_seg(args) {
        let Some(source) = loaded.dicom.take() else {
            bail!(
                "{}: a DICOM Segmentation (--out {}) must reference the source DICOM series, and {} is not one; write .nii.gz instead",
                args.input.display(),
                args.out.display(),
                args.input.display()
            );
        };
        if let Some(why) = source.missing_identifiers() {
            bail!(
                "{}: cannot write a DICOM Segmentation: {why}",
                args.input.display()
            );
        }
        Some(source)
    } else {
        None
    };
    let selected = backend::select(args.backend)?;
    let predictor = Predictor::load(&args.model, selected.device.clone(), selected.kind)?
        .with_precision(args.precision, &selected.describe())?;
    if selected.kind == BackendKind::Cpu && args.precision != Precision::F32 {
        eprintln!(
            "warning: {} on the CPU is slower than f32 (no native half arithmetic); it pays off on GPUs",
            args.precision
        );
    }
    if !args.quiet {
        eprintln!(
            "model {} in {} on {}",
            predictor.weights().display(),
            args.precision,
            selected.describe()
        );
    }
    let [_, _, nz] = loaded.volume.shape();
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(nz as u64).with_style(
            ProgressStyle::with_template(
                "predicting [{bar:30.cyan/blue}] {pos}/{len} slices ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        )
    };
    let options = PredictOptions {
        threshold: args.threshold,
        batch_size: args.batch_size,
        smooth: args.smooth,
        largest_component: args.largest_component,
    };
    let start = Instant::now();
    let labels = predictor.predict(&loaded.volume, &options, &mut |done, _| {
        bar.set_position(done as u64);
        true
    })?;
    // The CT is not needed for saving: its memory goes back before the output's
    // buffers are made.
    drop(loaded);
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    if args.per_structure {
        // Write into a sibling temporary folder, then swap it in (that the output is
        // a folder, if it exists, was checked before inference).
        let parent = folder_of(&args.out);
        let tmp = tempfile::Builder::new()
            .prefix(".ctseg-tmp-")
            .tempdir_in(&parent)
            .with_context(|| format!("cannot create a temporary folder in {}", parent.display()))?;
        save_per_structure(tmp.path(), &labels)?;
        let tmp = tmp.keep();
        if args.out.exists() {
            std::fs::remove_dir_all(&args.out)
                .with_context(|| format!("cannot replace {}", args.out.display()))?;
        }
        std::fs::rename(&tmp, &args.out)
            .with_context(|| format!("cannot move the masks to {}", args.out.display()))?;
    } else if let Some(source) = &dicom_source {
        let options = SegWriteOptions::prediction(&model_name(&args.model));
        let summary = write_seg(&args.out, &labels, source, &options)?;
        if !args.quiet {
            eprintln!(
                "DICOM Segmentation: {} segments, {} frames, series {}",
                summary.labels.len(),
                summary.frames,
                summary.series_uid
            );
        }
    } else {
        save_multilabel(&args.out, &labels)?;
    }
    let present = ctseg_core::labels::label_counts(&labels)
        .iter()
        .skip(1)
        .filter(|&&c| c > 0)
        .count();
    eprintln!(
        "{} slices in {seconds:.2} s ({:.1} slices/s), {present} structures found → {}",
        nz,
        nz as f64 / seconds.max(1e-9),
        args.out.display()
    );
    Ok(())
}
