//! The bundled sample: TotalSegmentator's s0001 abdominal CT with its full-model
//! segmentation (shown as ground truth) and its fast-model segmentation (shown as
//! prediction), compiled into the program so that a fresh machine can show a real
//! CT and a real comparison. Source and licence: `assets/sample/README.md`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::atomic_write;

/// The CT (122×101×30 voxels, 3 mm, int16 HU), as gzipped NIfTI.
const CT: &[u8] = include_bytes!("../../../assets/sample/s0001/ct.nii.gz");
/// The full-resolution model's segmentation (multilabel NIfTI with a label table).
const GT: &[u8] = include_bytes!("../../../assets/sample/s0001/seg_full_multilabel.nii.gz");
/// The fast model's segmentation (multilabel NIfTI with a label table).
const PRED: &[u8] = include_bytes!("../../../assets/sample/s0001/seg_fast_multilabel.nii.gz");

/// Where the sample's files come from, for display beside them.
pub const SOURCE: &str = "s0001 from the TotalSegmentator repository's test files (Apache-2.0)";

/// The sample's files on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleFiles {
    /// The CT.
    pub ct: PathBuf,
    /// The segmentation shown as ground truth (full model).
    pub gt: PathBuf,
    /// The segmentation shown as prediction (fast model).
    pub pred: PathBuf,
}

/// Write the bundled sample into `dir` (created if needed) and return its paths. A
/// file already there with the bundled bytes is kept; any other is replaced safely,
/// so a damaged copy heals itself.
pub fn write_sample(dir: &Path) -> Result<SampleFiles> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let files = SampleFiles {
        ct: dir.join("ct.nii.gz"),
        gt: dir.join("seg_full_multilabel.nii.gz"),
        pred: dir.join("seg_fast_multilabel.nii.gz"),
    };
    for (path, bytes) in [(&files.ct, CT), (&files.gt, GT), (&files.pred, PRED)] {
        let same = std::fs::read(path).is_ok_and(|on_disk| on_disk == bytes);
        if !same {
            atomic_write(path, ".nii.gz", |tmp| {
                std::fs::write(tmp, bytes).map_err(|e| Error::io(tmp, e))
            })?;
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::load_ct;
    use crate::io::segmentation::{check_same_grid, load_segmentation};

    #[test]
    fn the_sample_is_a_real_ct_with_two_segmentations_on_its_grid() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = write_sample(dir.path()).expect("written");
        let ct = load_ct(&files.ct).expect("CT");
        assert_eq!(ct.volume.shape(), [122, 101, 30]);
        assert!(ct.warnings.is_empty(), "{:?}", ct.warnings);
        // Real anatomy: air outside the body, soft tissue and bone inside.
        let (min, max) = ct
            .volume
            .data()
            .iter()
            .fold((i16::MAX, i16::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert!(min <= -900 && max >= 500, "HU range {min}..{max}");
        for path in [&files.gt, &files.pred] {
            let seg = load_segmentation(path).expect("segmentation");
            check_same_grid(&files.ct, ct.volume.geometry(), path, seg.labels.geometry())
                .expect("same grid");
            assert!(seg.named_labels);
            let liver = crate::structures::catalog()
                .label_of("liver")
                .expect("liver");
            assert!(seg.labels.data().contains(&liver));
        }
    }

    #[test]
    fn a_damaged_copy_is_replaced_and_an_intact_one_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = write_sample(dir.path()).expect("written");
        std::fs::write(&files.gt, b"truncated").expect("damage");
        let before = std::fs::metadata(&files.ct)
            .and_then(|m| m.modified())
            .expect("mtime");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let again = write_sample(dir.path()).expect("written again");
        assert_eq!(again, files);
        assert_eq!(std::fs::read(&files.gt).expect("read"), GT);
        let after = std::fs::metadata(&files.ct)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert_eq!(before, after, "an intact file is not rewritten");
    }
}
