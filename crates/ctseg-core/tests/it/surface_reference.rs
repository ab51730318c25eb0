//! Surface metrics (NSD, HD95) against DeepMind's surface-distance, run by
//! `benches/surface_reference.py` with the venv of `benches/requirements.txt`
//! (`$CTSEG_PYTHON`, else `$HOME/.cache/ctseg-venv/bin/python`), on real
//! segmentations: s0001's full vs fast model, and the DICOM series' segmentation vs a
//! perturbed copy of itself (eroded, shifted, dilated, removed and added structures).

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::{s0001_ct_gt_pred, shared, tempdir};
use ctseg_core::LabelVolume;
use ctseg_core::io::nifti::{self, WriteOptions};
use ctseg_core::labels::label_counts;
use ctseg_core::metrics::surface::surface_metrics;

/// Largest allowed |ΔNSD| between ctseg and surface-distance.
const NSD_TOLERANCE: f64 = 1e-3;

/// NSD and HD95 of one label, `None` where undefined (surface-distance: inf/nan).
type Scores = BTreeMap<u8, (Option<f64>, Option<f64>)>;

/// The reference venv's python, if it can import surface_distance and nibabel.
fn reference_python() -> Option<PathBuf> {
    ctseg_core::testdata::reference_python(&["surface_distance", "nibabel"])
}

/// surface-distance's scores for every label of the two files.
fn reference_scores(python: &Path, gt: &Path, pred: &Path, tolerance_mm: f64) -> Scores {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/surface_reference.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(gt)
        .arg(pred)
        .arg(tolerance_mm.to_string())
        .output()
        .expect("the reference script runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", script.display());
    eprintln!("{}", stderr.trim());
    let json: BTreeMap<String, BTreeMap<String, Option<f64>>> =
        serde_json::from_slice(&out.stdout).expect("the script prints JSON");
    json.into_iter()
        .map(|(label, m)| {
            let label: u8 = label.parse().expect("labels are u8");
            (label, (m["nsd"], m["hd95"]))
        })
        .collect()
}

/// ctseg's scores against surface-distance's on `gt_path` and `pred_path`; returns the
/// largest |ΔNSD| and |ΔHD95| after asserting they are within bounds.
fn check_against_reference(
    python: &Path,
    gt_path: &Path,
    pred_path: &Path,
    tolerance_mm: f64,
) -> (f64, f64) {
    let gt = nifti::read::<u8>(gt_path).expect("readable").volume;
    let pred = nifti::read::<u8>(pred_path).expect("readable").volume;
    let start = Instant::now();
    let ours: Scores = surface_metrics(&gt, &pred, tolerance_mm)
        .expect("same grid")
        .into_iter()
        .map(|m| (m.label, (m.nsd, m.hd95)))
        .collect();
    let seconds = start.elapsed().as_secs_f64();
    let theirs = reference_scores(python, gt_path, pred_path, tolerance_mm);
    let name = pred_path.display();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{name}: labels"
    );
    let [sx, sy, sz] = gt.geometry().spacing();
    let voxel_diagonal = (sx * sx + sy * sy + sz * sz).sqrt();
    let (mut max_nsd, mut max_hd) = (0.0f64, 0.0f64);
    for (label, (nsd, hd95)) in &ours {
        let (ref_nsd, ref_hd95) = theirs[label];
        let diff = |a: Option<f64>, b: Option<f64>, what: &str| match (a, b) {
            (Some(a), Some(b)) => (a - b).abs(),
            (None, None) => 0.0,
            _ => panic!("{name} label {label} {what}: ctseg {a:?}, surface-distance {b:?}"),
        };
        let d_nsd = diff(*nsd, ref_nsd, "NSD");
        let d_hd = diff(*hd95, ref_hd95, "HD95");
        assert!(
            d_nsd <= NSD_TOLERANCE,
            "{name} label {label}: NSD {nsd:?} vs {ref_nsd:?}"
        );
        assert!(
            d_hd <= voxel_diagonal,
            "{name} label {label}: HD95 {hd95:?} vs {ref_hd95:?}"
        );
        max_nsd = max_nsd.max(d_nsd);
        max_hd = max_hd.max(d_hd);
    }
    eprintln!(
        "{name} at {tolerance_mm} mm: {} labels, ctseg {seconds:.3} s; max |ΔNSD| {max_nsd:.3e}, max |ΔHD95| {max_hd:.3e} mm",
        ours.len()
    );
    (max_nsd, max_hd)
}

#[test]
fn s0001_full_vs_fast_agrees_with_surface_distance() {
    let Some((_, gt, pred)) = s0001_ct_gt_pred() else {
        return;
    };
    let Some(python) = reference_python() else {
        return;
    };
    // 3 mm voxels: 2 mm counts only touching surfels, 3 mm is a tie at one voxel.
    for tolerance_mm in [2.0, 3.0] {
        check_against_reference(&python, &gt, &pred, tolerance_mm);
    }
}

#[test]
fn dicom_segmentation_vs_perturbed_copy_agrees_with_surface_distance() {
    let Some(gt_path) = shared("totalseg/dicom_ct_seg_multilabel.nii.gz") else {
        return;
    };
    let Some(python) = reference_python() else {
        return;
    };
    let gt = nifti::read::<u8>(&gt_path).expect("readable").volume;
    let pred = perturbed(&gt);
    let dir = tempdir();
    let pred_path = dir.path().join("perturbed.nii.gz");
    nifti::write(&pred_path, &pred, &WriteOptions::default()).expect("writable");
    let scores: Vec<f64> = surface_metrics(&gt, &pred, 2.0)
        .expect("same grid")
        .iter()
        .filter_map(|m| m.nsd)
        .collect();
    assert!(
        scores.iter().any(|&s| 0.0 < s && s < 0.9),
        "the perturbation should leave some structures far apart: {scores:?}"
    );
    // 0.98 × 0.98 × 2 mm voxels: 2 mm is a tie at one slice.
    for tolerance_mm in [1.0, 2.0] {
        check_against_reference(&python, &gt_path, &pred_path, tolerance_mm);
    }
}

/// A copy of `gt` with its four largest structures eroded, shifted, dilated and
/// removed, and a structure it lacks added as a box.
fn perturbed(gt: &LabelVolume) -> LabelVolume {
    let counts = label_counts(gt);
    let mut by_size: Vec<u8> = (1..=255u8).filter(|&l| counts[l as usize] > 0).collect();
    by_size.sort_by_key(|&l| std::cmp::Reverse(counts[l as usize]));
    assert!(by_size.len() >= 4, "labels {by_size:?}");
    let [nx, ny, nz] = gt.shape();
    let at = |i: usize, j: usize, k: usize| i + nx * (j + ny * k);
    let src = gt.data();
    let mut out = gt.clone();
    let dst = out.data_mut();
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let v = src[at(i, j, k)];
                let neighbours = [
                    (i > 0).then(|| at(i - 1, j, k)),
                    (i + 1 < nx).then(|| at(i + 1, j, k)),
                    (j > 0).then(|| at(i, j - 1, k)),
                    (j + 1 < ny).then(|| at(i, j + 1, k)),
                    (k > 0).then(|| at(i, j, k - 1)),
                    (k + 1 < nz).then(|| at(i, j, k + 1)),
                ];
                let touches = |l: u8| neighbours.iter().flatten().any(|&n| src[n] == l);
                let on_boundary = neighbours.iter().flatten().any(|&n| src[n] != v);
                if v == by_size[0] && on_boundary {
                    dst[at(i, j, k)] = 0; // eroded by one voxel
                } else if v == by_size[1] || v == by_size[3] {
                    dst[at(i, j, k)] = 0; // shifted below, or removed
                } else if v == 0 && touches(by_size[2]) {
                    dst[at(i, j, k)] = by_size[2]; // dilated by one voxel
                }
            }
        }
    }
    // Shift the second largest by 3 voxels along i and 1 along k.
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                if src[at(i, j, k)] == by_size[1] && i + 3 < nx && k + 1 < nz {
                    dst[at(i + 3, j, k + 1)] = by_size[1];
                }
            }
        }
    }
    // A structure only the copy has: a 6×5×3 box.
    let added = (1..=117u8)
        .find(|&l| counts[l as usize] == 0)
        .expect("a free label");
    for k in nz / 2..nz / 2 + 3 {
        for j in 10..15 {
            for i in 10..16 {
                dst[at(i, j, k)] = added;
            }
        }
    }
    out
}
