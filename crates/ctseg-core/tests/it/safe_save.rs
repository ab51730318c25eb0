//! Saving never damages the previous file: a save that fails or panics half-way
//! through writing leaves the old segmentation byte-for-byte intact and no temporary
//! file behind, and a save that succeeds replaces it completely.

use std::path::Path;

use ctseg_core::geometry::{Geometry, IDENTITY};
use ctseg_core::io::atomic_write;
use ctseg_core::io::segmentation::{load_multilabel, save_multilabel};
use ctseg_core::labels::LabelVolume;
use ctseg_core::volume::Volume;

fn labels(seed: u8) -> LabelVolume {
    let g = Geometry::new([40, 30, 20], IDENTITY);
    let data = (0..24_000u32)
        .map(|v| ((v / 97) as u8).wrapping_add(seed) % 118)
        .collect();
    Volume::new(g, data).expect("volume")
}

fn folder_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The bytes a save of `l` writes, for a realistic half-written file.
fn encoded(l: &LabelVolume, scratch: &Path) -> Vec<u8> {
    let p = scratch.join("scratch.nii.gz");
    save_multilabel(&p, l).expect("scratch save");
    std::fs::read(&p).expect("read scratch")
}

#[test]
fn an_interrupted_save_leaves_the_previous_file_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scratch = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("segmentation.nii.gz");
    let old = labels(0);
    save_multilabel(&path, &old).expect("first save");
    let old_bytes = std::fs::read(&path).expect("read");
    let new_bytes = encoded(&labels(7), scratch.path());

    // 1. The write fails half-way (disk full, device gone…).
    let result = atomic_write(&path, ".nii.gz", |tmp| {
        std::fs::write(tmp, &new_bytes[..new_bytes.len() / 2]).expect("partial write");
        Err(ctseg_core::Error::Invalid(
            "simulated failure mid-write".into(),
        ))
    });
    assert!(result.is_err());
    assert_eq!(
        std::fs::read(&path).expect("read"),
        old_bytes,
        "old file intact"
    );
    assert_eq!(
        folder_entries(dir.path()),
        vec!["segmentation.nii.gz"],
        "no temp left"
    );

    // 2. The writer panics half-way.
    let panicked = std::panic::catch_unwind(|| {
        let _ = atomic_write(&path, ".nii.gz", |tmp| {
            std::fs::write(tmp, &new_bytes[..new_bytes.len() / 3]).expect("partial write");
            panic!("simulated crash mid-write");
        });
    });
    assert!(panicked.is_err());
    assert_eq!(
        std::fs::read(&path).expect("read"),
        old_bytes,
        "old file intact"
    );
    assert_eq!(
        folder_entries(dir.path()),
        vec!["segmentation.nii.gz"],
        "no temp left"
    );
    assert_eq!(
        load_multilabel(&path).expect("still loads").labels.data(),
        old.data()
    );

    // 3. A successful save replaces the file completely.
    let new = labels(7);
    save_multilabel(&path, &new).expect("second save");
    assert_eq!(
        load_multilabel(&path).expect("reload").labels.data(),
        new.data()
    );
    assert_eq!(folder_entries(dir.path()), vec!["segmentation.nii.gz"]);
}

#[test]
fn a_save_into_a_missing_folder_fails_by_name_without_side_effects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no-such-folder").join("seg.nii.gz");
    let e = save_multilabel(&path, &labels(1)).unwrap_err().to_string();
    assert!(e.contains("no-such-folder"), "{e}");
    assert!(folder_entries(dir.path()).is_empty());
}
