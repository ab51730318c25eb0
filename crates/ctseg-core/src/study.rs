//! The open study as the viewer shows it, prepared off the UI thread: the CT and label layers in
//! display voxel order ([`DISPLAY_ORIENTATION`]), per-structure statistics for the
//! structure table, and the GT-vs-prediction comparison.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::geometry::Geometry;
use crate::io::dicom::DicomSource;
use crate::io::segmentation::check_same_grid;
use crate::labels::LabelVolume;
use crate::metrics::{Confusion, confusion_counts};
use crate::slicing::DISPLAY_ORIENTATION;
use crate::volume::{Volume, Voxel};
use crate::{Error, Result};

/// Which label layer a segmentation goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum LayerKind {
    /// Ground truth (reference).
    GroundTruth,
    /// Model prediction.
    Prediction,
}

impl LayerKind {
    /// Name shown in the UI.
    pub fn name(self) -> &'static str {
        match self {
            LayerKind::GroundTruth => "GT",
            LayerKind::Prediction => "Pred",
        }
    }
}

/// A CT ready for display.
#[derive(Debug, Clone)]
pub struct CtView {
    /// Where it came from (`None` for generated sample data).
    pub path: Option<PathBuf>,
    /// Short name for titles.
    pub name: String,
    /// Geometry of the file as stored (label layers are saved on this grid).
    pub source: Geometry,
    /// HU voxels in display order.
    pub display: Volume<i16>,
    /// Non-fatal remarks from loading.
    pub warnings: Vec<String>,
    /// For a DICOM series: what a DICOM Segmentation of it references.
    pub dicom: Option<Arc<DicomSource>>,
}

impl CtView {
    /// The same view, remembering the DICOM series it was read from.
    pub fn with_dicom(mut self, source: Option<DicomSource>) -> Self {
        self.dicom = source.map(Arc::new);
        self
    }

    /// Why a DICOM Segmentation cannot be written over this CT, if it cannot.
    pub fn dicom_seg_refusal(&self) -> Option<String> {
        match &self.dicom {
            None => Some(
                "the CT was not read from a DICOM series: a DICOM Segmentation has no source instances to reference"
                    .into(),
            ),
            Some(source) => source.missing_identifiers(),
        }
    }

    /// Reorient `volume` for display.
    pub fn new(
        path: Option<PathBuf>,
        name: String,
        volume: &Volume<i16>,
        warnings: Vec<String>,
    ) -> Result<Self> {
        let display = volume.reoriented(DISPLAY_ORIENTATION)?;
        Ok(CtView {
            path,
            name,
            source: volume.geometry().clone(),
            display,
            warnings,
            dicom: None,
        })
    }

    /// A label volume on the CT's source grid in display order; errors name `path`.
    pub fn to_display(&self, path: &Path, labels: &LabelVolume) -> Result<LabelVolume> {
        check_same_grid(
            self.path.as_deref().unwrap_or(Path::new("sample CT")),
            &self.source,
            path,
            labels.geometry(),
        )?;
        labels.reoriented(DISPLAY_ORIENTATION)
    }

    /// A display-order volume (labels or the CT itself) back in the source voxel
    /// order (for saving).
    pub fn to_source<T: Voxel>(&self, labels: &Volume<T>) -> Result<Volume<T>> {
        let t = labels
            .geometry()
            .transform_to(&self.source.orientation())
            .ok_or_else(|| Error::Invalid("label layer has no clear axis orientation".into()))?;
        Ok(labels.transformed(&t))
    }
}

/// Per-structure facts of a label layer.
#[derive(Debug, Clone)]
pub struct LayerStats {
    /// Voxels per label value.
    pub counts: [u64; 256],
    /// Per label: the display voxel to jump to — the centre of the structure in the
    /// axial slice where it is largest. Computed at layer revision
    /// [`LayerStats::revision`]; use [`LabelLayer::focus`], which knows about edits.
    pub focus: Vec<Option<[usize; 3]>>,
    /// The layer revision `focus` belongs to (counts are kept current by edits).
    pub revision: u64,
}

impl LayerStats {
    /// Count voxels and find each structure's largest axial slice.
    pub fn compute(labels: &LabelVolume) -> Self {
        let [ni, nj, nk] = labels.shape();
        let mut counts = [0u64; 256];
        let mut best: Vec<(u64, [usize; 3])> = vec![(0, [0; 3]); 256];
        let mut slice_count = [0u64; 256];
        let mut sum_i = [0u64; 256];
        let mut sum_j = [0u64; 256];
        for k in 0..nk {
            slice_count.fill(0);
            sum_i.fill(0);
            sum_j.fill(0);
            let Some(slice) = labels.slice_k(k) else {
                break;
            };
            for j in 0..nj {
                let row = &slice[j * ni..(j + 1) * ni];
                for (i, &l) in row.iter().enumerate() {
                    let l = l as usize;
                    slice_count[l] += 1;
                    sum_i[l] += i as u64;
                    sum_j[l] += j as u64;
                }
            }
            for l in 1..256 {
                let c = slice_count[l];
                counts[l] += c;
                if c > best[l].0 {
                    best[l] = (c, [(sum_i[l] / c) as usize, (sum_j[l] / c) as usize, k]);
                }
            }
        }
        counts[0] = (ni * nj * nk) as u64 - counts[1..].iter().sum::<u64>();
        let focus = best
            .into_iter()
            .map(|(c, v)| (c > 0).then_some(v))
            .collect();
        LayerStats {
            counts,
            focus,
            revision: 0,
        }
    }

    /// The centre of `label` in the axial slice where it is largest (one pass over the
    /// volume; for a layer whose edits made [`LayerStats::focus`] stale).
    pub fn focus_of(labels: &LabelVolume, label: u8) -> Option<[usize; 3]> {
        let [ni, nj, nk] = labels.shape();
        let mut best: (u64, [usize; 3]) = (0, [0; 3]);
        for k in 0..nk {
            let slice = labels.slice_k(k)?;
            let (mut count, mut sum_i, mut sum_j) = (0u64, 0u64, 0u64);
            for (j, row) in slice.chunks_exact(ni).take(nj).enumerate() {
                for (i, _) in row.iter().enumerate().filter(|&(_, &l)| l == label) {
                    count += 1;
                    sum_i += i as u64;
                    sum_j += j as u64;
                }
            }
            if count > best.0 {
                best = (
                    count,
                    [(sum_i / count) as usize, (sum_j / count) as usize, k],
                );
            }
        }
        (best.0 > 0).then_some(best.1)
    }
}

/// A label layer ready for display.
#[derive(Debug, Clone)]
pub struct LabelLayer {
    /// File it was read from or saved to, if any.
    pub path: Option<PathBuf>,
    /// Labels in display order, on the CT's grid.
    pub display: LabelVolume,
    /// Per-structure statistics.
    pub stats: LayerStats,
    /// Non-fatal remarks from loading.
    pub warnings: Vec<String>,
    /// Bumped on every in-place edit (display caches key on it).
    pub revision: u64,
}

impl LabelLayer {
    /// Wrap display-order labels and compute their statistics.
    pub fn new(path: Option<PathBuf>, display: LabelVolume, warnings: Vec<String>) -> Self {
        let stats = LayerStats::compute(&display);
        LabelLayer {
            path,
            display,
            stats,
            warnings,
            revision: 0,
        }
    }

    /// Where to jump for `label`: the centre of its largest axial slice, `None` when
    /// the layer does not contain it. Edited layers are searched afresh.
    pub fn focus(&self, label: u8) -> Option<[usize; 3]> {
        if self.stats.counts[label as usize] == 0 {
            return None;
        }
        if self.stats.revision == self.revision {
            self.stats.focus.get(label as usize).copied().flatten()
        } else {
            LayerStats::focus_of(&self.display, label)
        }
    }
}

/// Ground truth vs prediction for every structure.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Per label value: TP/FP/FN/TN over the volume.
    pub confusion: Vec<Confusion>,
    /// Per axial slice and label: voxels where GT and prediction disagree about that
    /// label (`disagreement[k][label]`).
    pub disagreement: Vec<Vec<u32>>,
}

impl Comparison {
    /// Compare two display-order layers on the same grid.
    pub fn compute(gt: &LabelVolume, pred: &LabelVolume) -> Result<Self> {
        if gt.shape() != pred.shape() {
            return Err(Error::Invalid(format!(
                "ground truth {:?} and prediction {:?} have different shapes",
                gt.shape(),
                pred.shape()
            )));
        }
        let confusion = confusion_counts(gt.data(), pred.data());
        let [_, _, nk] = gt.shape();
        let mut disagreement = Vec::with_capacity(nk);
        for k in 0..nk {
            let mut d = vec![0u32; 256];
            if let (Some(g), Some(p)) = (gt.slice_k(k), pred.slice_k(k)) {
                for (&a, &b) in g.iter().zip(p) {
                    if a != b {
                        d[a as usize] += 1;
                        d[b as usize] += 1;
                    }
                }
            }
            disagreement.push(d);
        }
        Ok(Comparison {
            confusion,
            disagreement,
        })
    }

    /// Dice of `label` (`None` when neither layer has it).
    pub fn dice(&self, label: u8) -> Option<f64> {
        self.confusion.get(label as usize).and_then(Confusion::dice)
    }

    /// Account for one ground-truth voxel of axial slice `k` that changed from `old`
    /// to `new` where the prediction is `pred`: the confusion counts and the slice's
    /// disagreement of the (at most three) labels involved move with it. `false`
    /// (nothing changed) when `k` is not a slice of this comparison.
    pub fn change_voxel(&mut self, k: usize, old: u8, new: u8, pred: u8) -> bool {
        if k >= self.disagreement.len() || self.confusion.len() < 256 {
            return false;
        }
        if old == new {
            return true;
        }
        let mut labels = [old, new, pred];
        labels.sort_unstable();
        for (n, &l) in labels.iter().enumerate() {
            if n > 0 && labels[n - 1] == l {
                continue;
            }
            let p = pred == l;
            let c = &mut self.confusion[l as usize];
            for (g, delta) in [(old == l, -1i64), (new == l, 1)] {
                let cell = match (g, p) {
                    (true, true) => &mut c.tp,
                    (true, false) => &mut c.fn_,
                    (false, true) => &mut c.fp,
                    (false, false) => &mut c.tn,
                };
                *cell = cell.saturating_add_signed(delta);
            }
            let d = &mut self.disagreement[k][l as usize];
            let before = u32::from((old == l) != p);
            let after = u32::from((new == l) != p);
            *d = (*d + after).saturating_sub(before);
        }
        true
    }

    /// The axial slice after `current` in the order of decreasing disagreement about
    /// `label` (ties by slice index), cycling; `None` when the layers agree everywhere.
    pub fn next_disagreement(&self, label: u8, current: usize) -> Option<usize> {
        let mut slices: Vec<(u32, usize)> = self
            .disagreement
            .iter()
            .enumerate()
            .filter_map(|(k, d)| {
                let n = d[label as usize];
                (n > 0).then_some((n, k))
            })
            .collect();
        if slices.is_empty() {
            return None;
        }
        slices.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let pos = slices.iter().position(|&(_, k)| k == current);
        Some(match pos {
            Some(p) => slices[(p + 1) % slices.len()].1,
            None => slices[0].1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::IDENTITY;

    fn labels(shape: [usize; 3], f: impl Fn([usize; 3]) -> u8) -> LabelVolume {
        let mut data = Vec::new();
        for k in 0..shape[2] {
            for j in 0..shape[1] {
                for i in 0..shape[0] {
                    data.push(f([i, j, k]));
                }
            }
        }
        Volume::new(Geometry::new(shape, IDENTITY), data).unwrap()
    }

    #[test]
    fn focus_is_the_centre_of_the_largest_slice() {
        // Label 3: a 3×3 square at k=1, a single voxel at k=0.
        let l = labels([6, 6, 3], |[i, j, k]| {
            u8::from(
                (k == 1 && (1..4).contains(&i) && (2..5).contains(&j))
                    || (k == 0 && i == 0 && j == 0),
            ) * 3
        });
        let s = LayerStats::compute(&l);
        assert_eq!(s.counts[3], 10);
        assert_eq!(s.counts[0], 108 - 10);
        assert_eq!(s.focus[3], Some([2, 3, 1]));
        assert_eq!(s.focus[4], None);
        for label in [3u8, 4] {
            assert_eq!(LayerStats::focus_of(&l, label), s.focus[label as usize]);
        }
        // An edited layer (revision ahead of its stats) is searched afresh.
        let mut layer = LabelLayer::new(None, l, Vec::new());
        assert_eq!(layer.focus(3), Some([2, 3, 1]));
        for i in 0..6 {
            for j in 0..6 {
                let index = layer.display.index([i, j, 2]);
                layer.display.data_mut()[index] = 3;
            }
        }
        layer.stats.counts[3] += 36;
        layer.revision += 1;
        assert_eq!(layer.focus(3), Some([2, 2, 2]), "the new largest slice");
        assert_eq!(layer.focus(4), None);
    }

    #[test]
    fn voxel_changes_keep_the_comparison_equal_to_a_fresh_one() {
        // Pseudo-random GT and prediction over labels 0..4, then 500 random GT edits.
        let mut seed = 12345u64;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) % n) as u8
        };
        let shape = [7, 5, 4];
        let mut gt = labels(shape, |_| 0);
        for v in gt.data_mut() {
            *v = next(4);
        }
        let mut pred = labels(shape, |_| 0);
        for v in pred.data_mut() {
            *v = next(4);
        }
        let mut c = Comparison::compute(&gt, &pred).unwrap();
        let slice = shape[0] * shape[1];
        for _ in 0..500 {
            let index = next(gt.data().len() as u64) as usize;
            let new = next(5);
            let old = gt.data()[index];
            assert!(c.change_voxel(index / slice, old, new, pred.data()[index]));
            gt.data_mut()[index] = new;
        }
        let fresh = Comparison::compute(&gt, &pred).unwrap();
        assert_eq!(c.confusion, fresh.confusion);
        assert_eq!(c.disagreement, fresh.disagreement);
        assert!(!c.change_voxel(shape[2], 1, 2, 0), "slice out of range");
    }

    #[test]
    fn next_disagreement_walks_slices_by_decreasing_difference() {
        let gt = labels([4, 1, 3], |[i, _, _]| u8::from(i < 3) * 5);
        // Prediction misses 1 voxel at k=0, 2 at k=2, none at k=1.
        let pred = labels([4, 1, 3], |[i, _, k]| {
            let missing = match k {
                0 => i == 0,
                2 => i < 2,
                _ => false,
            };
            u8::from(i < 3 && !missing) * 5
        });
        let c = Comparison::compute(&gt, &pred).unwrap();
        assert_eq!(c.next_disagreement(5, 1), Some(2));
        assert_eq!(c.next_disagreement(5, 2), Some(0));
        assert_eq!(c.next_disagreement(5, 0), Some(2));
        assert_eq!(c.next_disagreement(7, 0), None);
        let d = c.dice(5).unwrap();
        assert!((d - 2.0 * 6.0 / (9.0 + 6.0)).abs() < 1e-12);
    }
}
