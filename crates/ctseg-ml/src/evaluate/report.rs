//! The files and text of a dataset evaluation: `summary.json` (the whole
//! evaluation), `per_subject.csv` (one row per subject × scored structure), the Dice
//! box plot, and the printed summary table.

use std::fmt::Write as _;
use std::path::Path;

use super::DatasetEvaluation;
use super::boxplot::write_dice_boxplot;
use ctseg_core::error::{Error, Result};
use ctseg_core::io::atomic_write;

/// File names written by [`write_outputs`].
pub const SUMMARY_JSON: &str = "summary.json";
/// Per-subject rows.
pub const PER_SUBJECT_CSV: &str = "per_subject.csv";
/// The box plot.
pub const DICE_BOXPLOT_PNG: &str = "dice_boxplot.png";

/// Write `summary.json`, `per_subject.csv` and `dice_boxplot.png` into `dir`
/// (created if needed; each file written to a temporary name, then renamed).
pub fn write_outputs(dir: &Path, evaluation: &DatasetEvaluation) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let json = serde_json::to_string_pretty(evaluation)
        .map_err(|e| Error::Invalid(format!("the evaluation cannot be written as JSON: {e}")))?;
    let path = dir.join(SUMMARY_JSON);
    atomic_write(&path, ".json", |tmp| {
        std::fs::write(tmp, json.as_bytes()).map_err(|e| Error::io(tmp, e))
    })?;
    let csv = per_subject_csv(evaluation);
    let path = dir.join(PER_SUBJECT_CSV);
    atomic_write(&path, ".csv", |tmp| {
        std::fs::write(tmp, csv.as_bytes()).map_err(|e| Error::io(tmp, e))
    })?;
    write_dice_boxplot(&dir.join(DICE_BOXPLOT_PNG), evaluation)
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.6}")).unwrap_or_default()
}

/// One row per subject and structure present in its GT or prediction (empty fields
/// for undefined metrics).
pub fn per_subject_csv(evaluation: &DatasetEvaluation) -> String {
    let mut out = String::from(
        "subject,label,name,dice,iou,nsd,hd95,sensitivity,gt_volume_ml,pred_volume_ml\n",
    );
    for subject in &evaluation.subjects {
        for s in subject
            .evaluation
            .structures
            .iter()
            .filter(|s| s.dice.is_some())
        {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{:.4},{:.4}",
                subject.id,
                s.label,
                s.name,
                opt(s.dice),
                opt(s.iou),
                opt(s.nsd),
                opt(s.hd95),
                opt(s.sensitivity),
                s.gt_volume_ml,
                s.pred_volume_ml
            );
        }
    }
    out
}

/// The per-structure summary as an aligned table, best mean Dice first, then the
/// foreground means.
pub fn summary_table(evaluation: &DatasetEvaluation) -> String {
    let summary = &evaluation.summary;
    let mut rows: Vec<_> = summary.structures.iter().collect();
    rows.sort_by(|a, b| {
        b.dice
            .mean
            .unwrap_or(0.0)
            .total_cmp(&a.dice.mean.unwrap_or(0.0))
    });
    let width = rows.iter().map(|s| s.name.len()).max().unwrap_or(4).max(9);
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
    let mm = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2}"));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>5}  {:<width$}  {:>3}  {:>9}  {:>11}  {:>8}  {:>10}",
        "label", "structure", "n", "mean dice", "median dice", "mean nsd", "median hd95"
    );
    for s in rows {
        let _ = writeln!(
            out,
            "{:>5}  {:<width$}  {:>3}  {:>9}  {:>11}  {:>8}  {:>10}",
            s.label,
            s.name,
            s.dice.n,
            f(s.dice.mean),
            f(s.dice.median),
            f(s.nsd.mean),
            mm(s.hd95.median)
        );
    }
    let _ = writeln!(
        out,
        "{} subject(s), {} structure(s) scored; mean Dice {} · mean NSD@{} mm {}",
        summary.subjects,
        summary.structures.len(),
        f(summary.mean_dice),
        evaluation.nsd_tolerance_mm,
        f(summary.mean_nsd)
    );
    out
}
