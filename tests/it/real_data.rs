//! Foundation tests on the real CT data in ../shared/data (skipped with a printed
//! reason when it is missing; required under CI=true).

use crate::common;

use common::{ctseg, shared, tempdir};
use ctseg_core::dataset;
use ctseg_core::io::dicom::read_series;
use ctseg_core::io::nifti::{self, Extension, WriteOptions};
use ctseg_core::io::segmentation::{
    check_same_grid, load_multilabel, load_per_structure, load_segmentation, save_multilabel,
    save_per_structure,
};
use ctseg_core::io::{CtFormat, load_ct};
use ctseg_core::labels::label_table_xml;
use ctseg_core::metrics::evaluate;
use ctseg_core::structures::catalog;
use ctseg_core::{Error, LabelVolume};

const S0001_AFFINE: [[f64; 4]; 4] = [
    [3.0, 0.0, 0.0, -177.95632935],
    [0.0, 3.0, 0.0, 11.31900024],
    [0.0, 0.0, 3.0, 94.30175781],
    [0.0, 0.0, 0.0, 1.0],
];

#[test]
fn s0001_ct_geometry_and_values() {
    let Some(path) = shared("totalseg/s0001/ct.nii.gz") else {
        return;
    };
    let ct = load_ct(&path).expect("readable CT");
    let v = &ct.volume;
    assert_eq!(ct.format, CtFormat::Nifti);
    assert_eq!(ct.dtype, "int16");
    assert_eq!(v.shape(), [122, 101, 30]);
    assert_eq!(v.geometry().spacing(), [3.0, 3.0, 3.0]);
    assert_eq!(v.geometry().orientation(), "RAS");
    assert!(
        v.geometry()
            .affine_difference(&ctseg_core::Geometry::new([122, 101, 30], S0001_AFFINE))
            < 1e-6
    );
    // Values read with nibabel (np.asanyarray(img.dataobj)) from the same file.
    assert_eq!(v.min_max(), Some((-1100, 1207)));
    assert_eq!(v.get([60, 50, 15]), Some(-17));
    assert_eq!(v.get([0, 0, 0]), Some(-1024));
    assert_eq!(v.get([121, 100, 29]), Some(-997));
    let sum: i64 = v.data().iter().map(|&x| x as i64).sum();
    assert_eq!(sum, -130_894_872);
    // A CT costs its voxel bytes: the buffer holds exactly one i16 per voxel.
    assert_eq!(std::mem::size_of_val(v.data()), 122 * 101 * 30 * 2);
}

#[test]
fn int32_source_reads_to_the_same_hu() {
    let (Some(long), Some(short)) = (
        shared("totalseg/ct_112slices.nii.gz"),
        shared("totalseg/s0001/ct.nii.gz"),
    ) else {
        return;
    };
    let long = load_ct(&long).expect("readable");
    let short = load_ct(&short).expect("readable");
    assert_eq!(long.dtype, "int32");
    assert_eq!(long.volume.shape(), [122, 101, 112]);
    // s0001 was cropped from slices 82..112 of the long scan.
    let per_slice = 122 * 101;
    assert_eq!(&long.volume.data()[82 * per_slice..], short.volume.data());
}

#[test]
fn dicom_series_lines_up_with_its_totalsegmentator_output() {
    let (Some(dir), Some(seg_path)) = (
        shared("totalseg/dicom_ct"),
        shared("totalseg/dicom_ct_seg_multilabel.nii.gz"),
    ) else {
        return;
    };
    let series = read_series(&dir).expect("readable series");
    let seg = load_multilabel(&seg_path).expect("readable segmentation");
    let ct = &series.volume;
    assert_eq!(series.slices, 20);
    assert_eq!(ct.shape(), [512, 512, 20]);
    assert_eq!(
        ct.geometry().spacing(),
        [0.9765625, 0.9765625, 2.0],
        "spacing from positions, not SliceThickness (3)"
    );
    check_same_grid(&dir, ct.geometry(), &seg_path, seg.labels.geometry())
        .expect("same voxel grid");
    assert_eq!(ct.geometry().orientation(), "LAS");
    // Voxel for voxel: the anatomy under each label has that tissue's HU.
    let mean_hu = |label: u8| {
        let (sum, n) = ct
            .data()
            .iter()
            .zip(seg.labels.data())
            .filter(|(_, l)| **l == label)
            .fold((0f64, 0u64), |(s, n), (hu, _)| (s + *hu as f64, n + 1));
        assert!(n > 100, "label {label} has {n} voxels");
        sum / n as f64
    };
    let liver = mean_hu(5);
    let spleen = mean_hu(1);
    let vertebra = mean_hu(catalog().label_of("vertebrae_T12").expect("in catalog"));
    assert!((20.0..200.0).contains(&liver), "liver mean HU {liver}");
    assert!((20.0..200.0).contains(&spleen), "spleen mean HU {spleen}");
    assert!(vertebra > 150.0, "vertebra mean HU {vertebra}");
    // Background outside the body is air.
    assert!(ct.get([0, 0, 0]).is_some_and(|v| v < -900));
    // Read in DICOM's own row order (not flipped to LAS), the labels would land on
    // other tissue: the liver label's mean HU moves far from the liver's.
    let flipped = ct.reoriented("LPS").expect("valid code");
    let (sum, n) = flipped
        .data()
        .iter()
        .zip(seg.labels.data())
        .filter(|(_, l)| **l == 5)
        .fold((0f64, 0u64), |(s, n), (hu, _)| (s + *hu as f64, n + 1));
    let misaligned = sum / n as f64;
    eprintln!(
        "liver {liver:.1} HU, spleen {spleen:.1} HU, T12 {vertebra:.1} HU, liver label on flipped rows {misaligned:.1} HU"
    );
    assert!(
        (misaligned - liver).abs() > 50.0,
        "flipping rows must break the alignment"
    );
}

#[test]
fn per_structure_folder_equals_multilabel_file() {
    let (Some(folder), Some(multi)) = (
        shared("totalseg/s0001/segmentations"),
        shared("totalseg/s0001/seg_fast_multilabel.nii.gz"),
    ) else {
        return;
    };
    let a = load_per_structure(&folder, None).expect("readable folder");
    let b = load_multilabel(&multi).expect("readable file");
    assert_eq!(a.files_found, 117);
    assert_eq!(a.overlap_voxels, 0);
    assert!(b.named_labels, "label names come from the CaretExtension");
    assert_eq!(a.labels.geometry().shape, b.labels.geometry().shape);
    assert_eq!(a.labels.data(), b.labels.data());
}

#[test]
fn labels_are_mapped_by_name_from_the_extension() {
    let Some(path) = shared("totalseg/s0001/seg_full_multilabel.nii.gz") else {
        return;
    };
    let original = load_multilabel(&path).expect("readable");
    // Write a copy whose file values are permuted (value = 118 - label) with a table
    // that says so; loading must undo the permutation by name.
    let permuted = original
        .labels
        .map(|l: u8| if l == 0 { 0 } else { 118 - l });
    let mut xml =
        String::from("<?xml version=\"1.0\"?><CaretExtension><VolumeInformation><LabelTable>");
    for s in catalog().all() {
        xml.push_str(&format!(
            "<Label Key=\"{}\" Red=\"1\" Green=\"0\" Blue=\"0\" Alpha=\"1\"><![CDATA[{}]]></Label>",
            118 - s.label,
            s.name
        ));
    }
    xml.push_str("</LabelTable></VolumeInformation></CaretExtension>");
    let dir = tempdir();
    let out = dir.path().join("permuted.nii.gz");
    let options = WriteOptions {
        extensions: vec![Extension {
            code: 0,
            data: xml.into_bytes(),
        }],
        ..Default::default()
    };
    nifti::write(&out, &permuted, &options).expect("written");
    let back = load_multilabel(&out).expect("readable");
    assert_eq!(back.labels.data(), original.labels.data());
    assert!(back.warnings.is_empty(), "{:?}", back.warnings);
}

#[test]
fn eval_full_vs_fast_matches_direct_counts() {
    let (Some(gt_path), Some(pred_path)) = (
        shared("totalseg/s0001/seg_full_multilabel.nii.gz"),
        shared("totalseg/s0001/seg_fast_multilabel.nii.gz"),
    ) else {
        return;
    };
    let gt = load_multilabel(&gt_path).expect("gt");
    let pred = load_multilabel(&pred_path).expect("pred");
    let e = evaluate(&gt.labels, &pred.labels, catalog()).expect("same grid");
    // Independent computation: per structure, count voxels directly.
    let (g, p) = (gt.labels.data(), pred.labels.data());
    let mut dices = Vec::new();
    for s in catalog().all() {
        let l = s.label;
        let gt_n = g.iter().filter(|&&v| v == l).count() as f64;
        let pred_n = p.iter().filter(|&&v| v == l).count() as f64;
        let both = g
            .iter()
            .zip(p)
            .filter(|(a, b)| **a == l && **b == l)
            .count() as f64;
        let m = &e.structures[l as usize - 1];
        assert_eq!(m.name, s.name);
        assert_eq!(m.gt_voxels as f64, gt_n);
        assert_eq!(m.pred_voxels as f64, pred_n);
        if gt_n + pred_n == 0.0 {
            assert_eq!(m.dice, None);
            continue;
        }
        let dice = 2.0 * both / (gt_n + pred_n);
        let iou = both / (gt_n + pred_n - both);
        assert!(
            (m.dice.expect("defined") - dice).abs() < 1e-12,
            "{}",
            s.name
        );
        assert!((m.iou.expect("defined") - iou).abs() < 1e-12, "{}", s.name);
        assert!((m.gt_volume_ml - gt_n * 27.0 / 1000.0).abs() < 1e-9);
        dices.push(dice);
    }
    let mean = dices.iter().sum::<f64>() / dices.len() as f64;
    assert_eq!(e.n_scored, dices.len());
    assert!((e.mean_dice.expect("some scored") - mean).abs() < 1e-12);
    assert!(
        mean > 0.5 && mean < 1.0,
        "two real segmentations of one CT agree well but not perfectly: {mean}"
    );

    // The CLI prints the same numbers.
    let run = ctseg(&[
        "eval",
        "--gt",
        gt_path.to_str().unwrap_or(""),
        "--pred",
        pred_path.to_str().unwrap_or(""),
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON output");
    assert_eq!(json["structures"].as_array().map(Vec::len), Some(117));
    assert!((json["mean_dice"].as_f64().unwrap_or(0.0) - mean).abs() < 1e-12);
    assert_eq!(json["n_scored"].as_u64(), Some(dices.len() as u64));
    let liver = &json["structures"][4];
    assert_eq!(liver["name"], "liver");
    for key in [
        "label",
        "name",
        "dice",
        "iou",
        "sensitivity",
        "specificity",
        "gt_voxels",
        "pred_voxels",
        "gt_volume_ml",
        "pred_volume_ml",
    ] {
        assert!(liver.get(key).is_some(), "missing {key}");
    }
    let absent = json["structures"].as_array().and_then(|a| {
        a.iter()
            .find(|s| s["gt_voxels"] == 0 && s["pred_voxels"] == 0)
    });
    assert!(absent.is_some_and(|s| s["dice"].is_null()));

    let csv = ctseg(&[
        "eval",
        "--gt",
        gt_path.to_str().unwrap_or(""),
        "--pred",
        pred_path.to_str().unwrap_or(""),
        "--csv",
    ]);
    assert_eq!(csv.code, 0);
    assert_eq!(csv.stdout.lines().count(), 118);
    let table = ctseg(&[
        "eval",
        "--gt",
        gt_path.to_str().unwrap_or(""),
        "--pred",
        pred_path.to_str().unwrap_or(""),
    ]);
    assert!(table.stdout.contains("liver") && table.stdout.contains("mean Dice"));
}

#[test]
fn segmentation_save_load_round_trips() {
    let Some(path) = shared("totalseg/s0001/seg_full_multilabel.nii.gz") else {
        return;
    };
    let seg = load_multilabel(&path).expect("readable");
    let dir = tempdir();
    let multi = dir.path().join("out.nii.gz");
    save_multilabel(&multi, &seg.labels).expect("saved");
    let back = load_multilabel(&multi).expect("readable");
    assert!(back.named_labels);
    assert_eq!(back.labels, seg.labels);
    let (_, info) = nifti::read_header(&multi).expect("header");
    assert_eq!(info.intent_code, nifti::INTENT_LABEL);
    assert!(
        String::from_utf8_lossy(&info.extensions[0].data).starts_with(&label_table_xml(catalog()))
    );

    let folder = dir.path().join("segmentations");
    save_per_structure(&folder, &seg.labels).expect("saved");
    assert_eq!(std::fs::read_dir(&folder).expect("list").count(), 117);
    let back = load_segmentation(&folder).expect("readable");
    assert_eq!(back.labels, seg.labels);
}

#[test]
fn totalseg_subject_warnings_overlaps_and_mismatches() {
    let Some(ct_path) = shared("totalseg/s0001/ct.nii.gz") else {
        return;
    };
    let ct = load_ct(&ct_path).expect("CT");
    let dir = tempdir();
    let subject = dir.path().join("s9999");
    let seg_dir = subject.join("segmentations");
    std::fs::create_dir_all(&seg_dir).expect("mkdir");
    std::fs::copy(&ct_path, subject.join("ct.nii.gz")).expect("copy");
    let g = ct.volume.geometry().clone();
    let n = g.voxel_count();
    // liver (5) covers voxels [0, 100); spleen (1) covers [50, 150): 50 overlap, liver wins.
    let mask = |range: std::ops::Range<usize>| {
        LabelVolume::new(
            g.clone(),
            (0..n).map(|i| range.contains(&i) as u8).collect(),
        )
        .expect("mask")
    };
    let opts = WriteOptions::default();
    nifti::write(seg_dir.join("liver.nii.gz"), &mask(0..100), &opts).expect("write");
    nifti::write(seg_dir.join("spleen.nii.gz"), &mask(50..150), &opts).expect("write");
    nifti::write(seg_dir.join("tumour.nii.gz"), &mask(0..10), &opts).expect("write");
    let s = dataset::load_subject(&subject).expect("loads");
    assert_eq!(s.segmentation.overlap_voxels, 50);
    assert_eq!(s.segmentation.files_found, 2);
    let d = s.segmentation.labels.data();
    assert_eq!((d[0], d[60], d[120], d[200]), (5, 5, 1, 0));
    assert!(s.segmentation.warnings.iter().any(|w| w.contains("tumour")));
    assert!(
        s.segmentation
            .warnings
            .iter()
            .any(|w| w.contains("50 voxels"))
    );
    assert_eq!(s.ct.format, CtFormat::Nifti);

    // A mask on another grid is an error naming both files and both shapes.
    let small = LabelVolume::zeros(ctseg_core::Geometry::new([10, 10, 10], g.world_from_voxel));
    nifti::write(seg_dir.join("aorta.nii.gz"), &small, &opts).expect("write");
    let err = dataset::load_subject(&subject).expect_err("mismatch");
    let msg = err.to_string();
    assert!(matches!(err, Error::GridMismatch { .. }));
    assert!(
        msg.contains("ct.nii.gz") && msg.contains("aorta.nii.gz"),
        "{msg}"
    );
    assert!(
        msg.contains("122×101×30") && msg.contains("10×10×10"),
        "{msg}"
    );
}

#[test]
fn nnunet_dataset_labels_are_mapped_by_name() {
    let (Some(ct_path), Some(seg_path)) = (
        shared("totalseg/s0001/ct.nii.gz"),
        shared("totalseg/s0001/seg_full_multilabel.nii.gz"),
    ) else {
        return;
    };
    let seg = load_multilabel(&seg_path).expect("seg");
    let dir = tempdir();
    let root = dir.path().join("Dataset001_Test");
    std::fs::create_dir_all(root.join("imagesTr")).expect("mkdir");
    std::fs::create_dir_all(root.join("labelsTr")).expect("mkdir");
    std::fs::write(
        root.join("dataset.json"),
        r#"{"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "spleen": 2, "lesion": 3}, "numTraining": 1, "file_ending": ".nii.gz"}"#,
    )
    .expect("write");
    std::fs::copy(&ct_path, root.join("imagesTr/case_001_0000.nii.gz")).expect("copy");
    let nn = seg.labels.map(|l: u8| match l {
        5 => 1,
        1 => 2,
        _ => 0,
    });
    nifti::write(
        root.join("labelsTr/case_001.nii.gz"),
        &nn,
        &WriteOptions::default(),
    )
    .expect("write");
    let ds = dataset::NnUnetDataset::open(&root).expect("opens");
    assert_eq!(ds.cases.len(), 1);
    assert_eq!(ds.cases[0].id, "case_001");
    assert!(ds.warnings.iter().any(|w| w.contains("lesion")));
    let case = ds.load_case(0).expect("loads");
    let expected = seg.labels.map(|l: u8| if l == 5 || l == 1 { l } else { 0 });
    assert_eq!(case.segmentation.labels.data(), expected.data());
    assert_eq!(case.ct.volume.shape(), [122, 101, 30]);
}

#[test]
fn info_json_reports_the_contract_fields() {
    let (Some(ct), Some(subject), Some(seg), Some(dicom)) = (
        shared("totalseg/s0001/ct.nii.gz"),
        shared("totalseg/s0001"),
        shared("totalseg/s0001/seg_fast_multilabel.nii.gz"),
        shared("totalseg/dicom_ct"),
    ) else {
        return;
    };
    let json = |p: &std::path::Path| -> serde_json::Value {
        let run = ctseg(&["info", p.to_str().unwrap_or(""), "--json"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        serde_json::from_str(&run.stdout).expect("JSON")
    };
    let j = json(&ct);
    assert_eq!(j["format"], "nifti");
    assert_eq!(j["shape"], serde_json::json!([122, 101, 30]));
    assert_eq!(j["spacing"], serde_json::json!([3.0, 3.0, 3.0]));
    assert_eq!(j["orientation"], "RAS");
    assert_eq!(j["dtype"], "int16");
    assert_eq!(
        (j["hu_min"].as_i64(), j["hu_max"].as_i64()),
        (Some(-1100), Some(1207))
    );
    let m = &j["world_from_voxel"];
    assert!((m[0][3].as_f64().unwrap_or(0.0) - S0001_AFFINE[0][3]).abs() < 1e-5);
    assert_eq!(m[3], serde_json::json!([0.0, 0.0, 0.0, 1.0]));

    let j = json(&subject);
    assert_eq!(j["format"], "totalseg");
    let labels = j["labels"].as_array().expect("labels");
    let liver = labels
        .iter()
        .find(|l| l["name"] == "liver")
        .expect("liver present");
    assert_eq!(liver["label"], 5);
    let voxels = liver["voxels"].as_f64().unwrap_or(0.0);
    assert!((liver["volume_ml"].as_f64().unwrap_or(0.0) - voxels * 0.027).abs() < 1e-6);

    let j = json(&seg);
    assert_eq!(j["dtype"], "uint8");
    assert!(j["labels"].as_array().is_some_and(|l| !l.is_empty()));

    let j = json(&dicom);
    assert_eq!(j["format"], "dicom");
    assert_eq!(j["orientation"], "LAS");
    assert_eq!(j["shape"], serde_json::json!([512, 512, 20]));

    let human = ctseg(&["info", ct.to_str().unwrap_or("")]);
    assert!(human.stdout.contains("RAS") && human.stdout.contains("122 × 101 × 30"));
}
