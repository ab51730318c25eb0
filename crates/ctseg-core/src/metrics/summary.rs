//! Per-structure statistics of an evaluation over many subjects (nnU-Net's
//! `summary.json`): mean and median of Dice, NSD and HD95 over the subjects where each
//! is defined, and the foreground mean over structures.

use serde::Serialize;

use super::Evaluation;

/// Mean and median of one metric over the subjects where it is defined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stat {
    /// Mean (`null` when no subject scored).
    pub mean: Option<f64>,
    /// Median (`null` when no subject scored).
    pub median: Option<f64>,
    /// Subjects that scored.
    pub n: usize,
}

impl Stat {
    /// The statistics of `values` (non-finite values are left out).
    pub fn of(values: &[f64]) -> Stat {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Stat::default();
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Stat {
            mean: Some(v.iter().sum::<f64>() / n as f64),
            median: Some(median),
            n,
        }
    }
}

/// One structure over every subject.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StructureSummary {
    /// Label value.
    pub label: u8,
    /// Structure name.
    pub name: String,
    /// Dice over the subjects where the structure is in GT or prediction.
    pub dice: Stat,
    /// Normalised surface Dice, likewise.
    pub nsd: Stat,
    /// HD95 in mm over the subjects where both masks are non-empty.
    pub hd95: Stat,
}

/// The whole summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetSummary {
    /// Subjects evaluated.
    pub subjects: usize,
    /// Structures scored in at least one subject, in label order.
    pub structures: Vec<StructureSummary>,
    /// Mean over those structures of their mean Dice (nnU-Net's foreground mean).
    pub mean_dice: Option<f64>,
    /// Mean over those structures of their mean NSD.
    pub mean_nsd: Option<f64>,
}

/// Summarise per-subject evaluations (each over the same catalog, in label order).
pub fn summarize(evaluations: &[&Evaluation]) -> DatasetSummary {
    let Some(first) = evaluations.first() else {
        return DatasetSummary {
            subjects: 0,
            structures: Vec::new(),
            mean_dice: None,
            mean_nsd: None,
        };
    };
    let structures: Vec<StructureSummary> = first
        .structures
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let column = |f: &dyn Fn(&super::StructureMetrics) -> Option<f64>| -> Vec<f64> {
                evaluations
                    .iter()
                    .filter_map(|e| e.structures.get(i).and_then(f))
                    .collect()
            };
            StructureSummary {
                label: s.label,
                name: s.name.clone(),
                dice: Stat::of(&column(&|m| m.dice)),
                nsd: Stat::of(&column(&|m| m.nsd)),
                hd95: Stat::of(&column(&|m| m.hd95)),
            }
        })
        .filter(|s| s.dice.n > 0)
        .collect();
    let mean_of = |f: &dyn Fn(&StructureSummary) -> Option<f64>| {
        let v: Vec<f64> = structures.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    DatasetSummary {
        subjects: evaluations.len(),
        mean_dice: mean_of(&|s| s.dice.mean),
        mean_nsd: mean_of(&|s| s.nsd.mean),
        structures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::StructureMetrics;

    fn evaluation(dice: [Option<f64>; 2], nsd: [Option<f64>; 2]) -> Evaluation {
        let structures = (0..2)
            .map(|i| StructureMetrics {
                label: i as u8 + 1,
                name: format!("s{i}"),
                dice: dice[i],
                iou: None,
                sensitivity: None,
                specificity: None,
                gt_voxels: 0,
                pred_voxels: 0,
                gt_volume_ml: 0.0,
                pred_volume_ml: 0.0,
                nsd: nsd[i],
                hd95: dice[i].map(|d| 10.0 * (1.0 - d)),
            })
            .collect();
        Evaluation {
            structures,
            mean_dice: None,
            n_scored: 0,
        }
    }

    #[test]
    fn stats_skip_undefined_values() {
        let s = Stat::of(&[0.5, 0.1, 0.9, f64::NAN]);
        assert_eq!(s.n, 3);
        assert_eq!(s.median, Some(0.5));
        assert!((s.mean.unwrap_or(0.0) - 0.5).abs() < 1e-12);
        assert_eq!(Stat::of(&[0.2, 0.4]).median, Some(0.30000000000000004));
        assert_eq!(Stat::of(&[]), Stat::default());
    }

    #[test]
    fn summary_is_per_structure_then_the_foreground_mean() {
        let a = evaluation([Some(0.8), None], [Some(0.9), None]);
        let b = evaluation([Some(0.6), Some(0.2)], [Some(0.7), Some(0.3)]);
        let summary = summarize(&[&a, &b]);
        assert_eq!(summary.subjects, 2);
        assert_eq!(summary.structures.len(), 2);
        let first = &summary.structures[0];
        assert_eq!(first.dice.n, 2);
        assert!((first.dice.mean.unwrap_or(0.0) - 0.7).abs() < 1e-12);
        assert_eq!(summary.structures[1].dice.n, 1);
        // Foreground mean: mean of (0.7, 0.2).
        assert!((summary.mean_dice.unwrap_or(0.0) - 0.45).abs() < 1e-12);
        assert!((summary.mean_nsd.unwrap_or(0.0) - 0.55).abs() < 1e-12);
        assert_eq!(summarize(&[]).subjects, 0);
    }
}
