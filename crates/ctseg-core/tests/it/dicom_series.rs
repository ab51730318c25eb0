//! DICOM series assembly on copies of the real series: order from positions (not file
//! names), several series in one folder, missing slices, stray files.

use crate::common;

use std::path::{Path, PathBuf};

use common::{shared, tempdir};
use ctseg_core::io::dicom::read_series;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;

fn slice_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

#[test]
fn file_names_do_not_decide_slice_order() {
    let Some(src) = shared("totalseg/dicom_ct") else {
        return;
    };
    let reference = read_series(&src).expect("readable");
    let dir = tempdir();
    // Copy under names that sort in reverse and shuffled order, into a subfolder,
    // with a stray non-DICOM file beside them.
    let files = slice_files(&src);
    let sub = dir.path().join("study/series");
    std::fs::create_dir_all(&sub).expect("mkdir");
    for (i, f) in files.iter().enumerate() {
        let name = format!("IMG{:04}", (i * 7) % files.len());
        std::fs::copy(f, sub.join(name)).expect("copy");
    }
    std::fs::write(dir.path().join("study/README.txt"), "exported by PACS").expect("write");
    let series = read_series(dir.path()).expect("readable");
    assert_eq!(series.volume, reference.volume);
    assert!(
        series.warnings.iter().any(|w| w.contains("not DICOM")),
        "{:?}",
        series.warnings
    );
}

#[test]
fn a_missing_slice_is_an_error_not_a_stretched_volume() {
    let Some(src) = shared("totalseg/dicom_ct") else {
        return;
    };
    let dir = tempdir();
    for (i, f) in slice_files(&src).iter().enumerate() {
        if i != 10 {
            std::fs::copy(f, dir.path().join(f.file_name().expect("name"))).expect("copy");
        }
    }
    let err = read_series(dir.path()).expect_err("gap detected");
    assert!(err.to_string().contains("uneven slice spacing"), "{err}");
}

#[test]
fn the_ct_series_is_picked_among_several() {
    let Some(src) = shared("totalseg/dicom_ct") else {
        return;
    };
    let dir = tempdir();
    let files = slice_files(&src);
    // Turn the 5 highest slices into an MR series; the 15 others stay one CT series.
    let mut by_z: Vec<(f64, &PathBuf)> = files
        .iter()
        .map(|f| {
            let obj = dicom_object::open_file(f).expect("DICOM");
            let z = obj
                .element(tags::IMAGE_POSITION_PATIENT)
                .expect("IPP")
                .to_multi_float64()
                .expect("floats")[2];
            (z, f)
        })
        .collect();
    by_z.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (rank, (_, f)) in by_z.iter().enumerate() {
        let out = dir.path().join(f.file_name().expect("name"));
        if rank < 5 {
            let mut obj = dicom_object::open_file(f).expect("DICOM");
            obj.put(DataElement::new(
                tags::MODALITY,
                VR::CS,
                PrimitiveValue::from("MR"),
            ));
            obj.put(DataElement::new(
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from("1.2.3.4.5"),
            ));
            obj.write_to_file(&out).expect("write DICOM");
        } else {
            std::fs::copy(f, out).expect("copy");
        }
    }
    let series = read_series(dir.path()).expect("readable");
    assert_eq!(series.slices, 15);
    assert_eq!(series.volume.shape(), [512, 512, 15]);
    assert!(
        series.warnings.iter().any(|w| w.contains("2 series")),
        "{:?}",
        series.warnings
    );

    // Only the MR series left: a clear error that names the modality.
    for f in slice_files(dir.path()) {
        let obj = dicom_object::OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(&f)
            .expect("DICOM");
        if obj
            .element(tags::MODALITY)
            .expect("modality")
            .to_str()
            .expect("text")
            .trim()
            == "CT"
        {
            std::fs::remove_file(f).expect("remove");
        }
    }
    let err = read_series(dir.path()).expect_err("no CT");
    assert!(
        err.to_string().contains("no CT series") && err.to_string().contains("MR"),
        "{err}"
    );
}

#[test]
fn a_single_slice_takes_its_thickness() {
    let Some(src) = shared("totalseg/dicom_ct") else {
        return;
    };
    let dir = tempdir();
    let first = &slice_files(&src)[0];
    std::fs::copy(first, dir.path().join("only")).expect("copy");
    let series = read_series(dir.path()).expect("readable");
    assert_eq!(series.volume.shape(), [512, 512, 1]);
    // SliceThickness of this series is 3 mm (its positions are 2 mm apart).
    assert_eq!(series.volume.geometry().spacing()[2], 3.0);
}
