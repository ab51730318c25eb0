//! `ctseg eval`: score a prediction against ground truth (`--gt A --pred B`), or a
//! model over a dataset split (`--model RUN --data DIR [--split S] [--out DIR]`),
//! with overlap and surface metrics.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;

use crate::cli::{emit, print_warnings};
use ctseg_core::io::segmentation::{check_same_grid, load_segmentation, segmentation_grid};
use ctseg_core::metrics::{Evaluation, evaluate_with_surface};
use ctseg_core::structures::catalog;
use ctseg_ml::backend::BackendKind;
use ctseg_ml::evaluate::{DEFAULT_NSD_TOLERANCE_MM, EvalSplit};

/// Arguments of `ctseg eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Ground truth: multilabel NIfTI or per-structure folder.
    #[arg(long, requires = "pred", conflicts_with_all = ["model", "data"])]
    pub gt: Option<PathBuf>,
    /// Prediction: multilabel NIfTI or per-structure folder.
    #[arg(long, requires = "gt")]
    pub pred: Option<PathBuf>,
    /// Model to evaluate over a dataset: run folder (its `checkpoints/best`),
    /// checkpoint folder or `.safetensors` file.
    #[arg(long, requires = "data")]
    pub model: Option<PathBuf>,
    /// Dataset folder (TotalSegmentator root with meta.csv, nnU-Net raw dataset).
    #[arg(long, requires = "model")]
    pub data: Option<PathBuf>,
    /// Subjects of the dataset to evaluate.
    #[arg(long, value_enum, default_value_t = EvalSplit::Test)]
    pub split: EvalSplit,
    /// Folder for summary.json, per_subject.csv and dice_boxplot.png.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Compute backend for the predictions.
    #[arg(long, value_enum, default_value_t = BackendKind::Wgpu)]
    pub backend: BackendKind,
    /// Slices per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Tolerance of the normalised surface Dice, in mm.
    #[arg(long, value_name = "MM", default_value_t = DEFAULT_NSD_TOLERANCE_MM)]
    pub nsd_tolerance: f64,
    /// Print JSON: every structure (with `nsd` and `hd95`), the mean Dice and the
    /// number scored; over a dataset, the whole summary.json.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV: one row per structure (per subject and structure over a dataset).
    #[arg(long)]
    pub csv: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Load both segmentations, check they share a grid, and evaluate (overlap and
/// surface metrics).
pub fn evaluate_paths(
    gt_path: &std::path::Path,
    pred_path: &std::path::Path,
    nsd_tolerance: f64,
) -> Result<(Evaluation, Vec<String>)> {
    // The grids first, from the headers: a mismatch is found before either
    // volume is read (seconds and gigabytes on a large CT).
    check_same_grid(
        gt_path,
        &segmentation_grid(gt_path)?,
        pred_path,
        &segmentation_grid(pred_path)?,
    )?;
    let gt = load_segmentation(gt_path)?;
    let pred = load_segmentation(pred_path)?;
    check_same_grid(
        gt_path,
        gt.labels.geometry(),
        pred_path,
        pred.labels.geometry(),
    )?;
    let mut warnings = gt.warnings;
    warnings.extend(pred.warnings);
    Ok((
        evaluate_with_surface(&gt.labels, &pred.labels, catalog(), nsd_tolerance)?,
        warnings,
    ))
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.6}")).unwrap_or_default()
}

/// The evaluation as CSV (empty fields for undefined metrics).
pub fn to_csv(e: &Evaluation) -> String {
    let mut out = String::from(
        "label,name,dice,iou,sensitivity,specificity,gt_voxels,pred_voxels,gt_volume_ml,pred_volume_ml,nsd,hd95\n",
    );
    for s in &e.structures {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{:.4},{:.4},{},{}",
            s.label,
            s.name,
            opt(s.dice),
            opt(s.iou),
            opt(s.sensitivity),
            opt(s.specificity),
            s.gt_voxels,
            s.pred_voxels,
            s.gt_volume_ml,
            s.pred_volume_ml,
            opt(s.nsd),
            opt(s.hd95)
        );
    }
    out
}

/// The evaluation as an aligned table of structures present in either volume,
/// best Dice first, then the mean.
pub fn to_table(e: &Evaluation) -> String {
    let mut rows: Vec<_> = e.structures.iter().filter(|s| s.dice.is_some()).collect();
    rows.sort_by(|a, b| b.dice.unwrap_or(0.0).total_cmp(&a.dice.unwrap_or(0.0)));
    let width = rows.iter().map(|s| s.name.len()).max().unwrap_or(4).max(9);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>5}  {:<width$}  {:>6}  {:>6}  {:>6}  {:>9}  {:>10}  {:>10}  {:>6}  {:>8}",
        "label", "structure", "dice", "iou", "sens", "spec", "gt mL", "pred mL", "nsd", "hd95 mm"
    );
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
    for s in rows {
        let _ = writeln!(
            out,
            "{:>5}  {:<width$}  {:>6}  {:>6}  {:>6}  {:>9}  {:>10.2}  {:>10.2}  {:>6}  {:>8}",
            s.label,
            s.name,
            f(s.dice),
            f(s.iou),
            f(s.sensitivity),
            s.specificity.map_or("-".to_string(), |x| format!("{x:.6}")),
            s.gt_volume_ml,
            s.pred_volume_ml,
            f(s.nsd),
            s.hd95.map_or("-".to_string(), |x| format!("{x:.2}"))
        );
    }
    let _ = writeln!(
        out,
        "mean Dice (per volume) over {} structures present in either: {}",
        e.n_scored,
        f(e.mean_dice)
    );
    out
}

/// Run `ctseg eval`.
pub fn run(args: &EvalArgs) -> Result<()> {
    if !(args.nsd_tolerance >= 0.0 && args.nsd_tolerance.is_finite()) {
        anyhow::bail!("--nsd-tolerance must be ≥ 0 mm, got {}", args.nsd_tolerance);
    }
    let (gt, pred) = match (&args.gt, &args.pred, &args.model, &args.data) {
        (Some(gt), Some(pred), _, _) => (gt, pred),
        (_, _, Some(model), Some(data)) => {
            return super::eval_dataset::run(args, model, data);
        }
        _ => anyhow::bail!(
            "give --gt SEG --pred SEG to score a prediction, or --model RUN --data DIR to evaluate a model over a dataset"
        ),
    };
    let (e, warnings) = evaluate_paths(gt, pred, args.nsd_tolerance)?;
    print_warnings(&warnings);
    if args.json {
        /// The evaluation with the warnings made while reading the files.
        #[derive(serde::Serialize)]
        struct WithWarnings<'a> {
            #[serde(flatten)]
            evaluation: &'a Evaluation,
            warnings: &'a [String],
        }
        let out = WithWarnings {
            evaluation: &e,
            warnings: &warnings,
        };
        emit(&format!("{}\n", serde_json::to_string_pretty(&out)?))
    } else if args.csv {
        emit(&to_csv(&e))
    } else {
        emit(&to_table(&e))
    }
}
