//! Hostile NIfTI input and datasets, made in the test: volumes that are not label
//! maps, implausible geometry, NaN CTs, mislabelled headers, links that lead
//! nowhere, and `meta.csv` files that do not match their folders. Each is refused
//! with a message naming the file and the problem, or read with one clear warning.

use crate::common;

use std::path::Path;

use common::{Header, tempdir};
use ctseg_core::Volume;
use ctseg_core::dataset::{DatasetIndex, Split};
use ctseg_core::geometry::{Geometry, IDENTITY};
use ctseg_core::io::load_ct;
use ctseg_core::io::nifti::{self, WriteOptions};
use ctseg_core::io::segmentation::{load_segmentation, segmentation_grid};

fn grid() -> Geometry {
    let mut m = IDENTITY;
    m[0][0] = 1.5;
    m[1][1] = 1.5;
    m[2][2] = 3.0;
    Geometry::new([6, 5, 4], m)
}

/// A NIfTI file of `values` (repeated over the 6×5×4 grid) as `T`.
fn write_volume<T: ctseg_core::volume::Voxel>(path: &Path, values: &[T]) {
    let g = grid();
    let data: Vec<T> = (0..g.voxel_count())
        .map(|i| values[i % values.len()])
        .collect();
    let volume = Volume::new(g, data).expect("volume");
    nifti::write(path, &volume, &WriteOptions::default()).expect("written");
}

fn refusal(path: &Path) -> String {
    load_segmentation(path)
        .expect_err("refused as a label map")
        .to_string()
}

#[test]
fn a_ct_given_as_a_segmentation_is_refused_not_turned_into_confetti() {
    let dir = tempdir();
    let p = dir.path().join("ct_as_gt.nii.gz");
    write_volume::<i16>(&p, &[-1000, -80, 40, 700, 1200]);
    let e = refusal(&p);
    assert!(
        e.contains("ct_as_gt.nii.gz") && e.contains("not a label map") && e.contains("-1000"),
        "{e}"
    );
    assert!(e.contains("a CT?"), "{e}");
}

#[test]
fn negative_labels_and_labels_beyond_255_are_refused_with_their_real_values() {
    let dir = tempdir();
    let p = dir.path().join("negative.nii.gz");
    write_volume::<i16>(&p, &[0, 5, -1]);
    let e = refusal(&p);
    assert!(e.contains("from -1 to 5"), "{e}");
    let p = dir.path().join("big.nii.gz");
    write_volume::<i32>(&p, &[0, 3, 70005]);
    let e = refusal(&p);
    // The value in the file, not what it would have been clamped to.
    assert!(e.contains("70005") && !e.contains("255 "), "{e}");
}

#[test]
fn labels_above_117_without_a_label_table_are_refused() {
    let dir = tempdir();
    let p = dir.path().join("other_scheme.nii.gz");
    write_volume::<u8>(&p, &[0, 5, 118, 200]);
    let e = refusal(&p);
    assert!(
        e.contains("118..=200") && e.contains("no label table") && e.contains("other_scheme"),
        "{e}"
    );
}

#[test]
fn nan_and_fractional_labels_are_refused_not_rounded() {
    let dir = tempdir();
    let p = dir.path().join("nan.nii.gz");
    write_volume::<f32>(&p, &[0.0, 1.0, f32::NAN]);
    let e = refusal(&p);
    assert!(e.contains("NaN") && e.contains("not a label map"), "{e}");
    let p = dir.path().join("half.nii.gz");
    write_volume::<f32>(&p, &[0.0, 1.0, 1.5]);
    let e = refusal(&p);
    assert!(e.contains("non-integer") && e.contains("1.5"), "{e}");
    // Whole numbers stored as floats are a label map like any other.
    let p = dir.path().join("float_labels.nii.gz");
    write_volume::<f32>(&p, &[0.0, 1.0, 5.0]);
    let seg = load_segmentation(&p).expect("whole-number floats are labels");
    assert!(seg.labels.data().contains(&5));
}

#[test]
fn a_mask_folder_with_a_non_mask_file_is_refused() {
    let dir = tempdir();
    write_volume::<u8>(&dir.path().join("liver.nii.gz"), &[0, 1]);
    write_volume::<f32>(&dir.path().join("spleen.nii.gz"), &[0.0, 0.25]);
    let e = refusal(dir.path());
    assert!(
        e.contains("spleen.nii.gz") && e.contains("non-integer"),
        "{e}"
    );
}

#[test]
fn an_all_nan_ct_is_refused_and_a_partly_nan_ct_says_so() {
    let dir = tempdir();
    let p = dir.path().join("all_nan.nii.gz");
    write_volume::<f32>(&p, &[f32::NAN]);
    let e = load_ct(&p).expect_err("no image").to_string();
    assert!(
        e.contains("all_nan.nii.gz") && e.contains("every voxel is NaN"),
        "{e}"
    );

    let p = dir.path().join("some_nan.nii.gz");
    write_volume::<f32>(&p, &[-1000.0, 40.0, f32::NAN, 100000.0]);
    let ct = load_ct(&p).expect("readable");
    let nan: Vec<&String> = ct.warnings.iter().filter(|w| w.contains("NaN")).collect();
    assert_eq!(nan.len(), 1, "{:?}", ct.warnings);
    // The NaN voxels are not reported as out of range; the 1e5 ones are, with
    // the real values.
    let clamped: Vec<&String> = ct
        .warnings
        .iter()
        .filter(|w| w.contains("clamped"))
        .collect();
    assert_eq!(clamped.len(), 1, "{:?}", ct.warnings);
    assert!(
        clamped[0].contains("30 voxels") && clamped[0].contains("100000"),
        "{clamped:?}"
    );
}

#[test]
fn implausible_spacing_is_refused() {
    let dir = tempdir();
    for (name, scale) in [("huge.nii", 1e30f32), ("tiny.nii", 1e-9)] {
        let mut h = Header::new([4, 4, 2], 4, 16);
        h.srow[0][0] = scale;
        let mut bytes = h.bytes();
        bytes.extend(vec![0u8; 4 * 4 * 2 * 2]);
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).expect("write");
        let e = load_ct(&p).expect_err("implausible").to_string();
        assert!(
            e.contains(name) && e.contains("implausible") && e.contains("e"),
            "{e}"
        );
    }
}

#[test]
fn an_ni1_header_in_a_single_file_is_named_as_such() {
    let dir = tempdir();
    let mut h = Header::new([4, 4, 2], 4, 16);
    h.magic = *b"ni1\0";
    let mut bytes = h.bytes();
    bytes.extend(vec![0u8; 4 * 4 * 2 * 2]);
    let p = dir.path().join("mislabelled.nii");
    std::fs::write(&p, bytes).expect("write");
    let e = load_ct(&p).expect_err("mislabelled").to_string();
    assert!(e.contains("ni1") && e.contains("separate .img"), "{e}");
}

#[cfg(unix)]
#[test]
fn broken_and_looping_links_say_what_they_are() {
    let dir = tempdir();
    let broken = dir.path().join("broken.nii.gz");
    std::os::unix::fs::symlink(dir.path().join("gone.nii.gz"), &broken).expect("link");
    let e = load_ct(&broken).expect_err("broken").to_string();
    assert!(
        e.contains("broken symbolic link") && e.contains("gone.nii.gz"),
        "{e}"
    );
    let e = segmentation_grid(&broken).expect_err("broken").to_string();
    assert!(e.contains("broken symbolic link"), "{e}");

    let a = dir.path().join("a.nii.gz");
    let b = dir.path().join("b.nii.gz");
    std::os::unix::fs::symlink(&b, &a).expect("link");
    std::os::unix::fs::symlink(&a, &b).expect("link");
    let e = load_ct(&a).expect_err("loop").to_string();
    assert!(e.contains("loop of symbolic links"), "{e}");
    let e = load_ct(&dir.path().join("nothing.nii.gz"))
        .expect_err("missing")
        .to_string();
    assert!(e.contains("no such file"), "{e}");
}

/// A dataset of `ids` (tiny subjects with one liver voxel block each).
fn dataset(root: &Path, ids: &[&str]) {
    for id in ids {
        let seg = root.join(id).join("segmentations");
        std::fs::create_dir_all(&seg).expect("mkdir");
        write_volume::<i16>(&root.join(id).join("ct.nii.gz"), &[-1000, 40]);
        write_volume::<u8>(&seg.join("liver.nii.gz"), &[0, 1]);
    }
}

#[test]
fn a_meta_csv_naming_missing_subjects_is_reported() {
    let dir = tempdir();
    dataset(dir.path(), &["s1", "s2", "s3"]);
    std::fs::write(
        dir.path().join("meta.csv"),
        "image_id;split\ns1;train\ns2;train\ns9;val\ns8;val\n",
    )
    .expect("write");
    let index = DatasetIndex::open(dir.path(), 0.2, 0).expect("opens");
    assert!(index.split(Split::Val).is_empty());
    let text = index.warnings.join("\n");
    assert!(
        text.contains("2 val subjects") && text.contains("s8, s9"),
        "{text}"
    );
    assert!(
        text.contains("1 subject not listed") && text.contains("s3"),
        "{text}"
    );
}

#[test]
fn a_meta_csv_that_is_not_a_split_table_is_refused() {
    let dir = tempdir();
    dataset(dir.path(), &["s1", "s2"]);
    let meta = dir.path().join("meta.csv");
    std::fs::write(&meta, [0xffu8, 0xfe, 0x00, 0x9c, 0x80, 0x12]).expect("write");
    let e = DatasetIndex::open(dir.path(), 0.5, 0)
        .expect_err("binary")
        .to_string();
    assert!(
        e.contains("meta.csv") && e.contains("not a text file"),
        "{e}"
    );
    std::fs::write(&meta, "name,age\ns1,40\n").expect("write");
    let e = DatasetIndex::open(dir.path(), 0.5, 0)
        .expect_err("no split column")
        .to_string();
    assert!(
        e.contains("meta.csv") && e.contains("image_id and split"),
        "{e}"
    );
}
