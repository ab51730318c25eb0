//! Per-structure overlap metrics between a ground-truth and a predicted multilabel
//! volume, from confusion counts over the whole volume ("per volume" metrics).
//!
//! When a structure is absent from both volumes its Dice and IoU are undefined
//! (`None`, JSON `null`) and it is left out of means (nnU-Net's convention).
//!
//! Boundary metrics (normalised surface Dice, HD95) are in [`surface`].

pub mod summary;
pub mod surface;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::labels::LabelVolume;
use crate::structures::Catalog;

/// Confusion counts of one structure over one volume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confusion {
    /// Voxels labelled with the structure in both volumes.
    pub tp: u64,
    /// Voxels labelled with it in the prediction only.
    pub fp: u64,
    /// Voxels labelled with it in the ground truth only.
    pub fn_: u64,
    /// Voxels labelled with it in neither.
    pub tn: u64,
}

impl Confusion {
    /// Dice = 2·TP / (2·TP + FP + FN); `None` when both masks are empty.
    pub fn dice(&self) -> Option<f64> {
        let d = 2 * self.tp + self.fp + self.fn_;
        (d > 0).then(|| 2.0 * self.tp as f64 / d as f64)
    }
    /// IoU = TP / (TP + FP + FN); `None` when both masks are empty.
    pub fn iou(&self) -> Option<f64> {
        let d = self.tp + self.fp + self.fn_;
        (d > 0).then(|| self.tp as f64 / d as f64)
    }
    /// Sensitivity = TP / (TP + FN); `None` when the ground truth is empty.
    pub fn sensitivity(&self) -> Option<f64> {
        let d = self.tp + self.fn_;
        (d > 0).then(|| self.tp as f64 / d as f64)
    }
    /// Specificity = TN / (TN + FP); `None` when every voxel is ground truth.
    pub fn specificity(&self) -> Option<f64> {
        let d = self.tn + self.fp;
        (d > 0).then(|| self.tn as f64 / d as f64)
    }
    /// Ground-truth voxel count.
    pub fn gt_voxels(&self) -> u64 {
        self.tp + self.fn_
    }
    /// Predicted voxel count.
    pub fn pred_voxels(&self) -> u64 {
        self.tp + self.fp
    }
}

/// Confusion counts of every label value (index = label; 0 is background) in one
/// pass over the volumes. Panics only if the two slices differ in length, which
/// callers rule out by checking the grids first.
pub fn confusion_counts(gt: &[u8], pred: &[u8]) -> Vec<Confusion> {
    assert_eq!(
        gt.len(),
        pred.len(),
        "volumes must have the same voxel count"
    );
    let mut tp = [0u64; 256];
    let mut gt_n = [0u64; 256];
    let mut pred_n = [0u64; 256];
    for (&g, &p) in gt.iter().zip(pred) {
        gt_n[g as usize] += 1;
        pred_n[p as usize] += 1;
        tp[g as usize] += (g == p) as u64;
    }
    let total = gt.len().min(pred.len()) as u64;
    (0..256)
        .map(|l| {
            let fn_ = gt_n[l] - tp[l];
            let fp = pred_n[l] - tp[l];
            Confusion {
                tp: tp[l],
                fp,
                fn_,
                tn: total - tp[l] - fp - fn_,
            }
        })
        .collect()
}

/// Metrics of one structure, as written by `ctseg eval --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StructureMetrics {
    /// Label value.
    pub label: u8,
    /// Structure name.
    pub name: String,
    /// Dice coefficient (per volume); `null` when absent from both.
    pub dice: Option<f64>,
    /// Intersection over union; `null` when absent from both.
    pub iou: Option<f64>,
    /// True-positive rate; `null` when absent from the ground truth.
    pub sensitivity: Option<f64>,
    /// True-negative rate.
    pub specificity: Option<f64>,
    /// Ground-truth voxels.
    pub gt_voxels: u64,
    /// Predicted voxels.
    pub pred_voxels: u64,
    /// Ground-truth volume in mL.
    pub gt_volume_ml: f64,
    /// Predicted volume in mL.
    pub pred_volume_ml: f64,
    /// Normalised surface Dice at the evaluation's tolerance (see [`surface`]);
    /// `null` when absent from both or when surface metrics were not asked for.
    pub nsd: Option<f64>,
    /// 95th-percentile Hausdorff distance in mm; `null` when either mask is empty or
    /// when surface metrics were not asked for.
    pub hd95: Option<f64>,
}

/// Metrics of every catalog structure plus the mean Dice over scored structures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// One entry per catalog structure, in label order.
    pub structures: Vec<StructureMetrics>,
    /// Mean Dice over structures present in either volume (`null` if none).
    pub mean_dice: Option<f64>,
    /// Number of structures in the mean.
    pub n_scored: usize,
}

/// Evaluate `pred` against `gt` for every structure of `catalog`; an error when the
/// shapes differ (check the affines too, e.g. with
/// [`crate::io::segmentation::check_same_grid`]).
pub fn evaluate(gt: &LabelVolume, pred: &LabelVolume, catalog: &Catalog) -> Result<Evaluation> {
    if gt.shape() != pred.shape() {
        return Err(Error::Invalid(format!(
            "cannot compare segmentations of shapes {:?} and {:?}",
            gt.shape(),
            pred.shape()
        )));
    }
    let counts = confusion_counts(gt.data(), pred.data());
    let ml_per_voxel = gt.geometry().voxel_volume_mm3() / 1000.0;
    let structures: Vec<StructureMetrics> = catalog
        .all()
        .iter()
        .map(|s| {
            let c = counts[s.label as usize];
            StructureMetrics {
                label: s.label,
                name: s.name.clone(),
                dice: c.dice(),
                iou: c.iou(),
                sensitivity: c.sensitivity(),
                specificity: c.specificity(),
                gt_voxels: c.gt_voxels(),
                pred_voxels: c.pred_voxels(),
                gt_volume_ml: c.gt_voxels() as f64 * ml_per_voxel,
                pred_volume_ml: c.pred_voxels() as f64 * ml_per_voxel,
                nsd: None,
                hd95: None,
            }
        })
        .collect();
    let scored: Vec<f64> = structures.iter().filter_map(|s| s.dice).collect();
    let mean_dice = (!scored.is_empty()).then(|| scored.iter().sum::<f64>() / scored.len() as f64);
    Ok(Evaluation {
        n_scored: scored.len(),
        mean_dice,
        structures,
    })
}

/// [`evaluate`] plus the surface metrics of every structure present in either
/// volume: NSD at `tolerance_mm` and HD95, on the volumes' true voxel spacing.
pub fn evaluate_with_surface(
    gt: &LabelVolume,
    pred: &LabelVolume,
    catalog: &Catalog,
    tolerance_mm: f64,
) -> Result<Evaluation> {
    let mut evaluation = evaluate(gt, pred, catalog)?;
    for m in surface::surface_metrics(gt, pred, tolerance_mm)? {
        if let Some(s) = evaluation
            .structures
            .iter_mut()
            .find(|s| s.label == m.label)
        {
            s.nsd = m.nsd;
            s.hd95 = m.hd95;
        }
    }
    Ok(evaluation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Geometry, IDENTITY};
    use crate::structures::catalog;

    #[test]
    fn confusion_of_a_known_case() {
        // gt:   1 1 1 0 2 0
        // pred: 1 1 0 1 0 0
        let c = confusion_counts(&[1, 1, 1, 0, 2, 0], &[1, 1, 0, 1, 0, 0]);
        assert_eq!(
            c[1],
            Confusion {
                tp: 2,
                fp: 1,
                fn_: 1,
                tn: 2
            }
        );
        assert_eq!(c[1].dice(), Some(4.0 / 6.0));
        assert_eq!(c[1].iou(), Some(0.5));
        assert_eq!(c[1].sensitivity(), Some(2.0 / 3.0));
        assert_eq!(c[1].specificity(), Some(2.0 / 3.0));
        assert_eq!(c[2].dice(), Some(0.0));
        assert_eq!(c[2].sensitivity(), Some(0.0));
        assert_eq!(c[3].dice(), None);
        assert_eq!(c[3].iou(), None);
        assert_eq!(c[3].sensitivity(), None);
        assert_eq!(c[3].specificity(), Some(1.0));
    }

    #[test]
    fn evaluation_excludes_absent_structures_from_the_mean() {
        let mut m = IDENTITY;
        m[2][2] = 2.0; // 2 mm³ voxels
        let g = Geometry::new([4, 1, 1], m);
        let gt = LabelVolume::new(g.clone(), vec![5, 5, 1, 0]).expect("4 voxels");
        let pred = LabelVolume::new(g, vec![5, 0, 1, 0]).expect("4 voxels");
        let e = evaluate(&gt, &pred, catalog()).expect("same shape");
        assert_eq!(e.structures.len(), 117);
        assert_eq!(e.n_scored, 2);
        let liver = &e.structures[4];
        assert_eq!(liver.name, "liver");
        assert_eq!(liver.dice, Some(2.0 / 3.0));
        assert_eq!(liver.gt_voxels, 2);
        assert!((liver.gt_volume_ml - 0.004).abs() < 1e-12);
        assert_eq!(e.mean_dice, Some((1.0 + 2.0 / 3.0) / 2.0));
        let json = serde_json::to_value(&e.structures[2]).expect("serialisable");
        assert!(json["dice"].is_null());
    }

    #[test]
    fn identical_volumes_score_one() {
        let g = Geometry::new([3, 1, 1], IDENTITY);
        let v = LabelVolume::new(g, vec![1, 2, 3]).expect("3 voxels");
        let e = evaluate(&v, &v, catalog()).expect("same shape");
        assert_eq!(e.mean_dice, Some(1.0));
        assert_eq!(e.n_scored, 3);
        let other = LabelVolume::zeros(Geometry::new([1, 3, 1], IDENTITY));
        assert!(evaluate(&v, &other, catalog()).is_err());
    }
}
