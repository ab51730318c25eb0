//! `ctseg eval --gt A --pred B [--json | --csv]`.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;

use crate::cli::{emit, print_warnings};
use ctseg_core::io::segmentation::{check_same_grid, load_segmentation};
use ctseg_core::metrics::{Evaluation, evaluate};
use ctseg_core::structures::catalog;

/// Arguments of `ctseg eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Ground truth: multilabel NIfTI or per-structure folder.
    #[arg(long)]
    pub gt: PathBuf,
    /// Prediction: multilabel NIfTI or per-structure folder.
    #[arg(long)]
    pub pred: PathBuf,
    /// Print JSON: every structure, the mean Dice and the number scored.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV: one row per structure.
    #[arg(long)]
    pub csv: bool,
}

/// Load both segmentations, check they share a grid, and evaluate.
pub fn evaluate_paths(args: &EvalArgs) -> Result<(Evaluation, Vec<String>)> {
    let gt = load_segmentation(&args.gt)?;
    let pred = load_segmentation(&args.pred)?;
    check_same_grid(
        &args.gt,
        gt.labels.geometry(),
        &args.pred,
        pred.labels.geometry(),
    )?;
    let mut warnings = gt.warnings;
    warnings.extend(pred.warnings);
    Ok((evaluate(&gt.labels, &pred.labels, catalog())?, warnings))
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.6}")).unwrap_or_default()
}

/// The evaluation as CSV (empty fields for undefined metrics).
pub fn to_csv(e: &Evaluation) -> String {
    let mut out = String::from(
        "label,name,dice,iou,sensitivity,specificity,gt_voxels,pred_voxels,gt_volume_ml,pred_volume_ml\n",
    );
    for s in &e.structures {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{:.4},{:.4}",
            s.label,
            s.name,
            opt(s.dice),
            opt(s.iou),
            opt(s.sensitivity),
            opt(s.specificity),
            s.gt_voxels,
            s.pred_voxels,
            s.gt_volume_ml,
            s.pred_volume_ml
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
        "{:>5}  {:<width$}  {:>6}  {:>6}  {:>6}  {:>9}  {:>10}  {:>10}",
        "label", "structure", "dice", "iou", "sens", "spec", "gt mL", "pred mL"
    );
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
    for s in rows {
        let _ = writeln!(
            out,
            "{:>5}  {:<width$}  {:>6}  {:>6}  {:>6}  {:>9}  {:>10.2}  {:>10.2}",
            s.label,
            s.name,
            f(s.dice),
            f(s.iou),
            f(s.sensitivity),
            s.specificity.map_or("-".to_string(), |x| format!("{x:.6}")),
            s.gt_volume_ml,
            s.pred_volume_ml
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
    let (e, warnings) = evaluate_paths(args)?;
    print_warnings(&warnings);
    if args.json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&e)?))
    } else if args.csv {
        emit(&to_csv(&e))
    } else {
        emit(&to_table(&e))
    }
}
