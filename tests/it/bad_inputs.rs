//! Every kind of bad input gives a non-zero exit and one line naming the file and
//! the problem — never a panic.

use crate::common;

use std::path::{Path, PathBuf};

use common::{Header, ctseg, gunzip, gzip_to, shared, tempdir};
use ctseg_core::Volume;
use ctseg_core::geometry::Geometry;
use ctseg_core::io::nifti::{self, WriteOptions};

/// A valid, poorly compressible CT-like file (pseudo-random HU).
fn valid_ct(dir: &Path) -> PathBuf {
    let g = Geometry::new(
        [64, 64, 16],
        [
            [0.8, 0.0, 0.0, 0.0],
            [0.0, 0.8, 0.0, 0.0],
            [0.0, 0.0, 2.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ],
    );
    let mut x = 12345u32;
    let data: Vec<i16> = (0..g.voxel_count())
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((x >> 16) % 3000) as i16 - 1000
        })
        .collect();
    let path = dir.join("valid.nii.gz");
    nifti::write(
        &path,
        &Volume::new(g, data).expect("voxels"),
        &WriteOptions::default(),
    )
    .expect("write");
    path
}

/// Assert `ctseg args` fails cleanly with a message naming `names` and `expected`.
fn assert_clean_failure(case: &str, args: &[&str], names: &[&str], expected: &str) {
    let run = ctseg(args);
    assert_ne!(run.code, 0, "{case}: should fail\nstdout: {}", run.stdout);
    assert!(
        !run.stderr.contains("panicked"),
        "{case}: panicked: {}",
        run.stderr
    );
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "{case}: one error line expected: {}",
        run.stderr
    );
    let line = errors[0];
    for n in names {
        assert!(line.contains(n), "{case}: {line:?} should name {n}");
    }
    assert!(
        line.to_lowercase().contains(&expected.to_lowercase()),
        "{case}: {line:?} should say {expected:?}"
    );
    assert!(run.stdout.is_empty(), "{case}: no output on failure");
}

#[test]
fn bad_files_give_one_clear_line() {
    let dir = tempdir();
    let d = dir.path();
    let valid = valid_ct(d);
    let compressed = std::fs::read(&valid).expect("read");
    let raw = gunzip(&valid);

    let mut cases: Vec<(&str, PathBuf, &str)> = Vec::new();
    let mut add = |name: &'static str, file: &str, bytes: Vec<u8>, expected: &'static str| {
        let p = d.join(file);
        std::fs::write(&p, bytes).expect("write");
        cases.push((name, p, expected));
    };
    add("empty file", "empty.nii.gz", vec![], "empty file");
    add(
        "garbage",
        "garbage.nii",
        (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        "not a NIfTI file",
    );
    add(
        "garbage named .gz",
        "garbage.nii.gz",
        b"this is a text file, not a CT".repeat(40),
        "not a NIfTI file",
    );
    add(
        "truncated gzip",
        "truncated.nii.gz",
        compressed[..compressed.len() / 2].to_vec(),
        "truncated",
    );
    let mut corrupt = compressed.clone();
    let mid = corrupt.len() / 2;
    for b in &mut corrupt[mid..mid + 64] {
        *b ^= 0x5a;
    }
    add("corrupt gzip", "corrupt.nii.gz", corrupt, "corrupt");
    add(
        "header only (raw)",
        "header_only.nii",
        raw[..352].to_vec(),
        "truncated",
    );
    add(
        "short header",
        "short.nii",
        raw[..100].to_vec(),
        "not a NIfTI file",
    );
    let mut two = vec![0u8; 600];
    two[0..4].copy_from_slice(&540i32.to_le_bytes());
    add("NIfTI-2", "nifti2.nii", two, "NIfTI-2");
    let mut h = Header::new([4, 4, 4], 4, 16);
    h.dim = [4, 4, 4, 4, 5, 1, 1, 1];
    let mut four = h.bytes();
    four.extend(vec![0u8; 4 * 4 * 4 * 5 * 2]);
    add("4-D", "fourd.nii", four, "4-D");
    let mut complex = Header::new([2, 2, 2], 32, 64).bytes();
    complex.extend(vec![0u8; 64]);
    add("complex voxels", "complex.nii", complex, "voxel type");
    let mut zero_dim = Header::new([2, 0, 2], 4, 16).bytes();
    zero_dim.extend(vec![0u8; 16]);
    add("zero dimension", "zerodim.nii", zero_dim, "invalid dim");
    let mut negative_dim = Header::new([2, -3, 2], 4, 16).bytes();
    negative_dim.extend(vec![0u8; 16]);
    add(
        "negative dimension",
        "negdim.nii",
        negative_dim,
        "invalid dim[2] = -3",
    );
    let mut lying = Header::new([30000, 30000, 30000], 4, 16).bytes();
    lying.extend(vec![0u8; 64]);
    add(
        "absurd shape (raw)",
        "lying.nii",
        lying.clone(),
        "truncated",
    );
    let mut bad_offset = Header::new([2, 2, 2], 4, 16);
    bad_offset.vox_offset = 100.0;
    let mut bytes = bad_offset.bytes();
    bytes.extend(vec![0u8; 16]);
    add(
        "vox_offset inside header",
        "offset.nii",
        bytes,
        "vox_offset",
    );
    let mut nan_affine = Header::new([2, 2, 2], 4, 16);
    nan_affine.srow[0][0] = f32::NAN;
    let mut bytes = nan_affine.bytes();
    bytes.extend(vec![0u8; 16]);
    add("NaN affine", "nan.nii", bytes, "affine");
    let lying_gz = d.join("lying.nii.gz");
    gzip_to(&lying_gz, &lying);
    cases.push(("absurd shape (gz)", lying_gz, "corrupt header"));

    for (name, path, expected) in &cases {
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert_clean_failure(
            name,
            &["info", path.to_str().unwrap_or("")],
            &[file],
            expected,
        );
        // The file against itself: the grids (from the headers) agree, so the
        // error is the file's own.
        assert_clean_failure(
            name,
            &[
                "eval",
                "--gt",
                path.to_str().unwrap_or(""),
                "--pred",
                path.to_str().unwrap_or(""),
            ],
            &[file],
            expected,
        );
    }
}

#[test]
fn bad_folders_and_paths() {
    let dir = tempdir();
    let d = dir.path();
    let missing = d.join("nope.nii.gz");
    assert_clean_failure(
        "missing file",
        &["info", missing.to_str().unwrap_or("")],
        &["nope.nii.gz"],
        "no such file",
    );
    let empty = d.join("emptydir");
    std::fs::create_dir(&empty).expect("mkdir");
    assert_clean_failure(
        "empty folder",
        &["info", empty.to_str().unwrap_or("")],
        &["emptydir"],
        "empty",
    );
    let texts = d.join("notes");
    std::fs::create_dir(&texts).expect("mkdir");
    std::fs::write(texts.join("a.txt"), "hello").expect("write");
    std::fs::write(texts.join("b.dcm"), vec![0u8; 300]).expect("write");
    assert_clean_failure(
        "folder without DICOM",
        &["info", texts.to_str().unwrap_or("")],
        &["notes"],
        "no DICOM files",
    );
    assert_clean_failure(
        "eval on a folder without masks",
        &[
            "eval",
            "--gt",
            texts.to_str().unwrap_or(""),
            "--pred",
            texts.to_str().unwrap_or(""),
        ],
        &["notes"],
        "no structure masks",
    );
    let subject = d.join("s0002");
    std::fs::create_dir_all(subject.join("segmentations")).expect("mkdir");
    std::fs::write(subject.join("ct.nii.gz"), b"").expect("write");
    assert_clean_failure(
        "subject with empty CT",
        &["info", subject.to_str().unwrap_or("")],
        &["ct.nii.gz"],
        "empty file",
    );
}

#[test]
fn eval_of_different_grids_names_both_files_and_shapes() {
    let (Some(a), Some(b)) = (
        shared("totalseg/s0001/seg_full_multilabel.nii.gz"),
        shared("totalseg/dicom_ct_seg_multilabel.nii.gz"),
    ) else {
        return;
    };
    assert_clean_failure(
        "shape mismatch",
        &[
            "eval",
            "--gt",
            a.to_str().unwrap_or(""),
            "--pred",
            b.to_str().unwrap_or(""),
        ],
        &[
            "seg_full_multilabel.nii.gz",
            "dicom_ct_seg_multilabel.nii.gz",
            "122×101×30",
            "512×512×20",
        ],
        "do not share one voxel grid",
    );
}

#[test]
fn fifos_devices_links_out_of_a_folder_and_outputs_over_the_input() {
    let dir = tempdir();
    let d = dir.path();
    let mkfifo = |p: &Path| {
        let made = std::process::Command::new("mkfifo").arg(p).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", p.display());
    };
    // A FIFO or a device as the CT is refused up front (it used to hang or read
    // /dev/zero as "empty").
    let fifo = d.join("pipe.nii.gz");
    mkfifo(&fifo);
    assert_clean_failure(
        "a FIFO as the CT",
        &["info", fifo.to_str().unwrap_or("")],
        &["pipe.nii.gz"],
        "not a regular file",
    );
    assert_clean_failure(
        "a device as the CT",
        &["info", "/dev/zero"],
        &["/dev/zero"],
        "not a regular file",
    );

    // Output checks come before any inference (the model path does not even exist).
    let ct = valid_ct(d);
    let model = d.join("no-model");
    let s = |p: &Path| p.to_str().unwrap_or("").to_string();
    assert_clean_failure(
        "--out over the input",
        &[
            "predict",
            "--model",
            &s(&model),
            "--input",
            &s(&ct),
            "--out",
            &s(&ct),
            "--force",
        ],
        &["valid.nii.gz"],
        "would overwrite the input",
    );
    let nowhere = d.join("no").join("such").join("out.nii.gz");
    assert_clean_failure(
        "--out in a missing folder",
        &[
            "predict",
            "--model",
            &s(&model),
            "--input",
            &s(&ct),
            "--out",
            &s(&nowhere),
        ],
        &["out.nii.gz"],
        "does not exist",
    );
    assert!(ct.is_file(), "the input is still there");

    // A DICOM series folder with a FIFO, a link to / and a dangling link beside the
    // slices: the series is read, the rest skipped with one warning.
    let Some(source) = shared("totalseg/dicom_ct") else {
        return;
    };
    let series = d.join("series");
    std::fs::create_dir(&series).expect("mkdir");
    for entry in std::fs::read_dir(&source).expect("series folder") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), series.join(entry.file_name())).expect("copy");
    }
    mkfifo(&series.join("zz_pipe"));
    std::os::unix::fs::symlink("/", series.join("escape")).expect("symlink");
    std::os::unix::fs::symlink(series.join("nope"), series.join("dangling")).expect("symlink");
    let run = ctseg(&["info", &s(&series)]);
    assert_eq!(
        run.code, 0,
        "the series beside them is read: {}",
        run.stderr
    );
    for expected in [
        "a link leading out of the folder",
        "not a regular file",
        "broken or looping link",
    ] {
        assert!(
            run.stderr.contains(expected),
            "warning about {expected:?}: {}",
            run.stderr
        );
    }
    assert!(run.stdout.contains("20"), "all 20 slices: {}", run.stdout);
}

#[test]
fn absurd_model_sizes_are_refused_before_allocating() {
    let dir = tempdir();
    let d = dir.path().to_str().unwrap_or("").to_string();
    let out = dir.path().join("run");
    let out = out.to_str().unwrap_or("");
    for (flag, value, expected) in [
        (
            "--input-size",
            "100000",
            "input_size 100000 is above the limit",
        ),
        (
            "--base-channels",
            "100000",
            "base_channels 100000 is above the limit",
        ),
    ] {
        assert_clean_failure(
            flag,
            &[
                "train",
                "--data",
                &d,
                "--out",
                out,
                "--backend",
                "cpu",
                flag,
                value,
            ],
            &["100000"],
            expected,
        );
    }
}

/// A multilabel file on `shape` (1 mm grid) holding `values` cyclically.
fn label_file<T: ctseg_core::volume::Voxel>(path: &Path, shape: [usize; 3], values: &[T]) {
    let g = Geometry::new(shape, ctseg_core::geometry::IDENTITY);
    let data: Vec<T> = (0..g.voxel_count())
        .map(|i| values[i % values.len()])
        .collect();
    nifti::write(
        path,
        &Volume::new(g, data).expect("voxels"),
        &WriteOptions::default(),
    )
    .expect("write");
}

#[test]
fn eval_refuses_what_is_not_a_label_map_and_checks_grids_from_the_headers() {
    let dir = tempdir();
    let d = dir.path();
    let s = |p: &Path| p.to_str().unwrap_or("").to_string();
    let gt = d.join("gt.nii.gz");
    label_file::<u8>(&gt, [8, 8, 4], &[0, 5, 6]);
    // A CT given as the prediction: refused with its values, not scored as confetti.
    let ct_on_grid = d.join("ct_on_grid.nii.gz");
    label_file::<i16>(&ct_on_grid, [8, 8, 4], &[-1000, 40, 700]);
    assert_clean_failure(
        "a CT as the prediction",
        &["eval", "--gt", &s(&gt), "--pred", &s(&ct_on_grid)],
        &["ct_on_grid.nii.gz", "-1000"],
        "not a label map",
    );
    // Fractional labels are refused, not rounded.
    let half = d.join("half.nii.gz");
    label_file::<f32>(&half, [8, 8, 4], &[0.0, 1.5]);
    assert_clean_failure(
        "fractional labels",
        &["eval", "--gt", &s(&gt), "--pred", &s(&half)],
        &["half.nii.gz", "1.5"],
        "non-integer",
    );
    // 70005 is reported as 70005 (it used to be "label value 255").
    let big = d.join("big.nii.gz");
    label_file::<i32>(&big, [8, 8, 4], &[0, 70005]);
    assert_clean_failure(
        "label 70005",
        &["eval", "--gt", &s(&gt), "--pred", &s(&big)],
        &["big.nii.gz", "70005"],
        "not a label map",
    );
    // A prediction on another grid whose voxel data is cut short: the grid
    // mismatch is found from the headers, before any voxel is read.
    let other = d.join("other.nii");
    let mut header = Header::new([16, 16, 4], 2, 8);
    header.srow = [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
    ];
    std::fs::write(&other, header.bytes()).expect("write");
    assert_clean_failure(
        "grid mismatch from the headers",
        &["eval", "--gt", &s(&gt), "--pred", &s(&other)],
        &["gt.nii.gz", "other.nii", "8×8×4", "16×16×4"],
        "do not share one voxel grid",
    );
    // The JSON output carries the warnings made while reading.
    let unnamed = d.join("unnamed.nii.gz");
    label_file::<u8>(&unnamed, [8, 8, 4], &[0, 5, 6]);
    let run = ctseg(&["eval", "--gt", &s(&gt), "--pred", &s(&unnamed), "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert!(json["warnings"].is_array(), "{}", run.stdout);
    assert!(json["structures"].is_array(), "{}", run.stdout);
}

#[test]
fn predict_into_a_folder_says_what_to_give_instead_of_advising_force() {
    let dir = tempdir();
    let d = dir.path();
    let s = |p: &Path| p.to_str().unwrap_or("").to_string();
    let ct = valid_ct(d);
    let out = d.join("results");
    std::fs::create_dir(&out).expect("mkdir");
    for force in [false, true] {
        let mut args = vec![
            "predict".to_string(),
            "--model".into(),
            s(&d.join("no-model")),
            "--input".into(),
            s(&ct),
            "--out".into(),
            s(&out),
        ];
        if force {
            args.push("--force".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_clean_failure(
            "--out is a folder",
            &args,
            &["results", "labels.nii.gz", "--per-structure"],
            "is a folder",
        );
    }
}

#[cfg(unix)]
#[test]
fn broken_links_are_named_as_broken_links() {
    let dir = tempdir();
    let link = dir.path().join("scan.nii.gz");
    std::os::unix::fs::symlink(dir.path().join("moved-away.nii.gz"), &link).expect("link");
    let s = link.to_str().unwrap_or("");
    assert_clean_failure(
        "a dangling link",
        &["info", s],
        &["scan.nii.gz", "moved-away.nii.gz"],
        "broken symbolic link",
    );
    assert_clean_failure(
        "a dangling link in view",
        &["view", s],
        &["scan.nii.gz"],
        "broken symbolic link",
    );
}
