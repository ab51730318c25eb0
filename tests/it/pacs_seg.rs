//! The PACS round trip through the `ctseg` binary against a real Orthanc with its
//! DICOMweb plugin ([`crate::orthanc`]): get the CT series, predict it as a DICOM
//! Segmentation, store it, see Orthanc list the SEG under the study, get it back and
//! open it on the CT with the same labels. Also TotalSegmentator's labels for the
//! same series converted to DICOM-SEG make the same round trip.

use std::path::{Path, PathBuf};

use burn::prelude::Device;
use ctseg_core::io::dicom::seg::read_seg;
use ctseg_core::io::load_ct;
use ctseg_core::io::segmentation::load_multilabel;
use ctseg_ml::model::{UNetConfig, save_weights};

use crate::common::{self, shared};
use crate::orthanc::Orthanc;

const STUDY: &str = "1.2.826.0.1.3680043.8.498.87979699539472021332348858016319296264";

fn run_ok(args: &[&str]) -> common::Run {
    let r = common::ctseg(args);
    assert_eq!(r.code, 0, "ctseg {}: {}", args.join(" "), r.stderr);
    r
}

/// The series of `study` as `ctseg dicomweb series --json` lists them.
fn series_of(url: &str) -> Vec<serde_json::Value> {
    let r = run_ok(&["dicomweb", "series", url, "--study", STUDY, "--json"]);
    serde_json::from_str(&r.stdout).expect("series JSON")
}

/// Every `.dcm` file under `dir`.
fn dcm_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("readable").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(dcm_files(&p));
        } else if p.extension().is_some_and(|x| x == "dcm") {
            out.push(p);
        }
    }
    out
}

#[test]
fn predict_store_and_get_back_a_dicom_segmentation() {
    let Some(folder) = shared("totalseg/dicom_ct_pacs") else {
        return;
    };
    let Some(labels_path) = shared("totalseg/dicom_ct_seg_multilabel.nii.gz") else {
        return;
    };
    let Some(orthanc) = Orthanc::start(None) else {
        return;
    };
    assert_eq!(orthanc.upload_folder(&folder), 20);
    let url = orthanc.dicomweb();
    let tmp = common::tempdir();
    let s = |p: &Path| p.to_string_lossy().into_owned();

    // Get the study; predict on what arrived.
    let cache = tmp.path().join("cache");
    run_ok(&[
        "dicomweb",
        "get",
        &url,
        "--study",
        STUDY,
        "--out",
        &s(&cache),
    ]);
    let study_dir = cache.join(STUDY);
    assert_eq!(dcm_files(&study_dir).len(), 20);
    let ct = load_ct(&study_dir).expect("the retrieved study opens");
    let source = ct.dicom.clone().expect("a DICOM source");

    let config = UNetConfig {
        base_channels: 4,
        input_size: 32,
        ..UNetConfig::default()
    };
    let model = tmp.path().join("tiny-model");
    save_weights(&model, &config.init_seeded(&Device::flex(), 5), &config).expect("save");
    let pred_dcm = tmp.path().join("pred.dcm");
    let pred_nii = tmp.path().join("pred.nii.gz");
    for out in [&pred_dcm, &pred_nii] {
        run_ok(&[
            "predict",
            "--model",
            &s(&model),
            "--input",
            &s(&study_dir),
            "--backend",
            "cpu",
            "--threshold",
            "0.01",
            "--quiet",
            "--out",
            &s(out),
        ]);
    }
    let predicted = load_multilabel(&pred_nii).expect("NIfTI prediction").labels;
    assert!(
        predicted.data().iter().any(|&l| l != 0),
        "the tiny model marks something"
    );

    // TotalSegmentator's labels for the series, converted.
    let totalseg_dcm = tmp.path().join("totalseg.dcm");
    run_ok(&[
        "convert",
        "--ct",
        &s(&study_dir),
        "--labels",
        &s(&labels_path),
        "--out",
        &s(&totalseg_dcm),
        "--algorithm",
        "TotalSegmentator",
    ]);
    let totalseg = load_multilabel(&labels_path).expect("labels").labels;

    // Store both; Orthanc lists two SEG series under the study.
    let r = run_ok(&["dicomweb", "store", &url, &s(&pred_dcm), &s(&totalseg_dcm)]);
    assert!(
        r.stdout.contains('2') || r.stderr.contains('2'),
        "{}{}",
        r.stdout,
        r.stderr
    );
    let series = series_of(&url);
    let segs: Vec<&serde_json::Value> = series.iter().filter(|x| x["modality"] == "SEG").collect();
    assert_eq!(segs.len(), 2, "{series:?}");

    // Get each back, into the cache beside the CT, and open it on the CT: the labels
    // are the ones stored.
    let mut found = Vec::new();
    for seg in segs {
        let uid = seg["series_uid"].as_str().expect("series uid");
        run_ok(&[
            "dicomweb",
            "get",
            &url,
            "--study",
            STUDY,
            "--series",
            uid,
            "--out",
            &s(&cache),
        ]);
        let files = dcm_files(&study_dir.join(uid));
        assert_eq!(files.len(), 1);
        let seg =
            read_seg(&files[0], ct.volume.geometry(), Some(&source)).expect("opens on the CT");
        found.push(seg.labels);
    }
    assert!(
        found.iter().any(|l| l.data() == predicted.data()),
        "the prediction came back"
    );
    assert!(
        found.iter().any(|l| l.data() == totalseg.data()),
        "TotalSegmentator's labels came back"
    );

    // The study folder now holds the CT and its segmentations: predict still reads the
    // CT, and says what it left aside.
    let again = tmp.path().join("again.nii.gz");
    let r = run_ok(&[
        "predict",
        "--model",
        &s(&model),
        "--input",
        &s(&study_dir),
        "--backend",
        "cpu",
        "--threshold",
        "0.01",
        "--out",
        &s(&again),
    ]);
    assert!(r.stderr.contains("SEG"), "{}", r.stderr);
    let again = load_multilabel(&again).expect("prediction").labels;
    assert_eq!(again.data(), predicted.data());
}
