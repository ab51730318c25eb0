//! DICOM Segmentations on the shared DICOM series (`totalseg/dicom_ct_pacs`, the
//! series with its UIDs, and TotalSegmentator's labels for it): what ctseg writes
//! passes `dciodvfy` (dicom3tools) and reads back in highdicom with the right labels,
//! codes and colours voxel for voxel; what highdicom writes opens in ctseg.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{shared, tempdir};
use ctseg_core::LabelVolume;
use ctseg_core::io::dicom::seg::{
    SegWriteOptions, cielab_from_srgb, read_seg, structure_code, write_seg,
};
use ctseg_core::io::segmentation::load_multilabel;
use ctseg_core::io::{LoadedCt, load_ct};
use ctseg_core::labels::label_counts;
use ctseg_core::structures::catalog;

/// The series with UIDs, its CT and TotalSegmentator's labels on it.
fn series() -> Option<(PathBuf, LoadedCt, LabelVolume, PathBuf)> {
    let dir = shared("totalseg/dicom_ct_pacs")?;
    let labels_path = shared("totalseg/dicom_ct_seg_multilabel.nii.gz")?;
    let ct = load_ct(&dir).expect("the series loads");
    let labels = load_multilabel(&labels_path).expect("labels load").labels;
    assert!(ct.volume.geometry().same_grid(labels.geometry(), 1e-3));
    Some((dir, ct, labels, labels_path))
}

fn python() -> Option<PathBuf> {
    ctseg_core::testdata::reference_python(&["highdicom", "pydicom", "nibabel"])
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/dicom_seg_check.py")
}

fn run_script(python: &Path, args: &[&Path]) -> serde_json::Value {
    let out = Command::new(python)
        .arg(script())
        .args(args)
        .output()
        .expect("the reference script runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dicom_seg_check.py failed: {stderr}");
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

/// dciodvfy's errors on `path` (its warnings are printed), or `None` when dicom3tools
/// is missing (a skip; a failure under `CI=true`).
fn dciodvfy_errors(path: &Path) -> Option<Vec<String>> {
    let out = match Command::new("dciodvfy").arg(path).output() {
        Ok(out) => out,
        Err(e) => {
            return ctseg_core::testdata::skip(format!(
                "dciodvfy (Debian package dicom3tools) cannot run: {e}"
            ));
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for line in text.lines().filter(|l| l.starts_with("Warning")) {
        eprintln!("dciodvfy: {line}");
    }
    Some(
        text.lines()
            .filter(|l| l.starts_with("Error"))
            .map(str::to_string)
            .collect(),
    )
}

#[test]
fn ctseg_seg_is_valid_and_reads_back_in_highdicom() {
    let Some((dir, ct, labels, labels_path)) = series() else {
        return;
    };
    let source = ct.dicom.as_ref().expect("a DICOM series keeps its source");
    assert_eq!(source.instances.len(), 20);
    let out = tempdir();
    let seg_path = out.path().join("prediction.dcm");
    let summary = write_seg(
        &seg_path,
        &labels,
        source,
        &SegWriteOptions::prediction("tiny-unet"),
    )
    .expect("the segmentation is written");
    let counts = label_counts(&labels);
    let present: Vec<u8> = (1..=117u8).filter(|&l| counts[l as usize] > 0).collect();
    assert_eq!(summary.labels, present);
    assert!(summary.frames >= present.len());

    if let Some(errors) = dciodvfy_errors(&seg_path) {
        assert!(errors.is_empty(), "dciodvfy: {errors:#?}");
    }

    // ctseg reads its own object back voxel for voxel.
    let back = read_seg(&seg_path, ct.volume.geometry(), Some(source)).expect("reads back");
    assert_eq!(back.labels.data(), labels.data());
    assert_eq!(back.overlap_voxels, 0);
    assert!(!back.manual);
    assert!(back.warnings.is_empty(), "{:?}", back.warnings);

    let Some(python) = python() else {
        return;
    };
    let report = run_script(&python, &[Path::new("read"), &seg_path, &dir, &labels_path]);
    assert_eq!(report["compared_voxels"], 20 * 512 * 512);
    assert_eq!(
        report["mismatches"], 0,
        "highdicom's pixels differ from the labels"
    );
    assert!(report["nonzero"].as_u64().expect("count") > 0);
    assert_eq!(report["frames"], summary.frames);
    assert_eq!(report["study"], source.study.study_uid.as_str());
    assert_eq!(
        report["frame_of_reference"],
        source.study.frame_of_reference_uid.as_str()
    );
    assert_eq!(report["referenced_series"][0], source.series_uid.as_str());
    let segments = report["segments"].as_array().expect("segments");
    assert_eq!(segments.len(), present.len());
    for (segment, &label) in segments.iter().zip(&present) {
        let structure = catalog().by_label(label).expect("structure");
        assert_eq!(segment["label"], structure.name.as_str());
        assert_eq!(segment["category"]["value"], "91723000");
        let code = structure_code(label).expect("code");
        assert_eq!(segment["type"]["value"], code.type_code.value.as_str());
        assert_eq!(segment["type"]["scheme"], "SCT");
        assert_eq!(
            segment["modifier"]["value"].as_str(),
            code.modifier.as_ref().map(|m| m.value.as_str()),
            "{}",
            structure.name
        );
        let lab: Vec<u16> = serde_json::from_value(segment["cielab"].clone()).expect("cielab");
        assert_eq!(lab, cielab_from_srgb(structure.color).to_vec());
        assert_eq!(segment["algorithm_type"], "AUTOMATIC");
        assert_eq!(segment["algorithm"]["name"], "ctseg tiny-unet");
        assert_eq!(segment["algorithm"]["family"]["value"], "123110");
    }
}

#[test]
fn an_edited_segmentation_is_manual() {
    let Some((_, ct, labels, _)) = series() else {
        return;
    };
    let source = ct.dicom.as_ref().expect("source");
    let out = tempdir();
    let path = out.path().join("edited.dcm");
    write_seg(&path, &labels, source, &SegWriteOptions::manual()).expect("written");
    if let Some(errors) = dciodvfy_errors(&path) {
        assert!(errors.is_empty(), "dciodvfy: {errors:#?}");
    }
    let back = read_seg(&path, ct.volume.geometry(), Some(source)).expect("reads back");
    assert!(back.manual);
    assert_eq!(back.labels.data(), labels.data());
}

#[test]
fn a_highdicom_segmentation_opens_on_the_ct() {
    let Some((dir, ct, labels, labels_path)) = series() else {
        return;
    };
    let Some(python) = python() else {
        return;
    };
    let Some(codes) = shared("structures/total_colors.tsv") else {
        return;
    };
    let out = tempdir();
    let seg_path = out.path().join("highdicom.dcm");
    let report = run_script(
        &python,
        &[Path::new("write"), &dir, &labels_path, &codes, &seg_path],
    );
    assert!(report["segments"].as_u64().expect("segments") > 2);
    let source = ct.dicom.as_ref().expect("source");
    let back =
        read_seg(&seg_path, ct.volume.geometry(), Some(source)).expect("highdicom's SEG opens");
    assert!(
        back.segments.iter().all(|s| s.label.is_some()),
        "{:?}",
        back.segments
    );
    assert!(
        back.segments
            .iter()
            .any(|s| s.segment_label.starts_with("segment "))
    );
    assert!(back.manual);
    assert_eq!(back.overlap_voxels, 0);
    let differ = back
        .labels
        .data()
        .iter()
        .zip(labels.data())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(differ, 0, "voxels differ from the NIfTI labels");
}

#[test]
fn a_seg_of_another_scan_or_grid_is_refused() {
    let Some((_, ct, labels, _)) = series() else {
        return;
    };
    let source = ct.dicom.as_ref().expect("source");
    let out = tempdir();
    let path = out.path().join("seg.dcm");
    write_seg(&path, &labels, source, &SegWriteOptions::prediction("m")).expect("written");

    let mut other = source.clone();
    other.study.frame_of_reference_uid = "1.2.3.4".into();
    let e = read_seg(&path, ct.volume.geometry(), Some(&other)).expect_err("another scan");
    assert!(e.to_string().contains("frame of reference"), "{e}");

    let Some(s0001) = shared("totalseg/s0001/ct.nii.gz") else {
        return;
    };
    let grid = load_ct(&s0001).expect("s0001").volume.geometry().clone();
    let e = read_seg(&path, &grid, None).expect_err("another grid");
    assert!(e.to_string().contains("voxel grid"), "{e}");
    assert!(e.to_string().contains("seg.dcm"), "{e}");

    let e = read_seg(&s0001, ct.volume.geometry(), None).expect_err("not DICOM");
    assert!(e.to_string().contains("ct.nii.gz"), "{e}");
}

#[test]
fn an_anonymised_series_cannot_be_referenced() {
    let Some(dir) = shared("totalseg/dicom_ct") else {
        return;
    };
    let Some(labels_path) = shared("totalseg/dicom_ct_seg_multilabel.nii.gz") else {
        return;
    };
    let ct = load_ct(&dir).expect("loads");
    let labels = load_multilabel(&labels_path).expect("labels").labels;
    let source = ct.dicom.as_ref().expect("source");
    let out = tempdir();
    let path = out.path().join("seg.dcm");
    let e = write_seg(&path, &labels, source, &SegWriteOptions::prediction("m"))
        .expect_err("no UIDs to reference");
    let message = e.to_string();
    assert!(message.contains("SOPInstanceUID"), "{message}");
    assert!(message.contains("seg.dcm"), "{message}");
    assert!(!path.exists());
    assert_eq!(
        std::fs::read_dir(out.path()).expect("dir").count(),
        0,
        "nothing half-written"
    );
}

#[test]
fn an_empty_segmentation_is_refused() {
    let Some((_, ct, labels, _)) = series() else {
        return;
    };
    let empty = labels.map(|_| 0u8);
    let out = tempdir();
    let path = out.path().join("empty.dcm");
    let e = write_seg(
        &path,
        &empty,
        ct.dicom.as_ref().expect("source"),
        &SegWriteOptions::manual(),
    )
    .expect_err("nothing to write");
    assert!(e.to_string().contains("none of the 117 structures"), "{e}");
    assert!(!path.exists());
}

/// Segments that overlap (highdicom writes one more segment over part of the largest
/// structure): each voxel gets the smallest of its segments, and the overlap is
/// counted in a warning.
#[test]
fn overlapping_segments_keep_the_smaller_one_and_are_counted() {
    let Some((dir, ct, labels, labels_path)) = series() else {
        return;
    };
    let Some(python) = python() else {
        return;
    };
    let Some(codes) = shared("structures/total_colors.tsv") else {
        return;
    };
    let out = tempdir();
    let seg_path = out.path().join("overlap.dcm");
    let report = run_script(
        &python,
        &[
            Path::new("write"),
            &dir,
            &labels_path,
            &codes,
            &seg_path,
            Path::new("--overlap"),
        ],
    );
    let extra = report["extra_label"].as_u64().expect("extra label") as u8;
    let covered = report["covered_label"].as_u64().expect("covered label") as u8;
    let extra_voxels = report["extra_voxels"].as_u64().expect("count");
    assert!(extra_voxels > 0);
    let back = read_seg(&seg_path, ct.volume.geometry(), ct.dicom.as_ref()).expect("opens");
    assert_eq!(back.overlap_voxels, extra_voxels);
    let painted = back.labels.data().iter().filter(|&&l| l == extra).count() as u64;
    assert_eq!(
        painted, extra_voxels,
        "the smaller segment wins everywhere it overlaps"
    );
    for (got, want) in back.labels.data().iter().zip(labels.data()) {
        if *got == extra {
            assert_eq!(*want, covered);
        } else {
            assert_eq!(got, want);
        }
    }
    let warning = back
        .warnings
        .iter()
        .find(|w| w.contains("more than one segment"))
        .expect("the overlap is said");
    assert!(warning.contains(&extra_voxels.to_string()), "{warning}");
}
