//! Finding the cases of a training dataset and splitting them into train and
//! validation by subject (never by slice).
//!
//! Accepted layouts: a TotalSegmentator root (subject folders with `ct.nii.gz` and
//! `segmentations/`, optional semicolon-separated `meta.csv` with a `split` column), an
//! nnU-Net raw dataset (`dataset.json`, `imagesTr/`, `labelsTr/`), or one subject folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::totalseg::{
    Split, check_segmentation_names, is_subject, load_subject, read_splits, subject_sources,
};
use super::{NnUnetDataset, Subject};
use crate::error::{Error, Result};
use crate::structures::catalog;

/// Layout of the dataset folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DatasetLayout {
    /// Folder of TotalSegmentator subjects.
    TotalSegmentator,
    /// nnU-Net raw dataset.
    NnUnet,
    /// A single TotalSegmentator subject folder (used for both training and validation).
    SingleSubject,
}

/// Where one case's files are.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseFiles {
    /// A TotalSegmentator subject folder.
    Subject(PathBuf),
    /// Case `index` of the nnU-Net dataset.
    NnUnet(usize),
}

/// One case of the dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRef {
    /// Subject / case id.
    pub id: String,
    /// Its split.
    pub split: Split,
    /// Where its files are.
    pub files: CaseFiles,
    /// Paths whose size and modification time key the preprocessing cache.
    pub sources: Vec<PathBuf>,
}

/// The cases of a dataset folder.
#[derive(Debug, Clone)]
pub struct DatasetIndex {
    /// The dataset folder.
    pub root: PathBuf,
    /// Its layout.
    pub layout: DatasetLayout,
    /// All cases, sorted by id.
    pub cases: Vec<CaseRef>,
    /// How the split was decided.
    pub split_source: String,
    /// What a user should know about the split (subjects `meta.csv` names that are
    /// missing, subjects it does not list), one line each.
    pub warnings: Vec<String>,
    nnunet: Option<NnUnetDataset>,
}

impl DatasetIndex {
    /// Open `root` and split its cases. `val_fraction` applies when the dataset carries
    /// no split of its own; the split is a deterministic function of the subject ids
    /// and `seed`. Errors name the folder and what is wrong.
    pub fn open(root: &Path, val_fraction: f64, seed: u64) -> Result<Self> {
        if !root.is_dir() {
            return Err(Error::format(
                root,
                "dataset folder not found (or not a folder)",
            ));
        }
        if is_subject(root) {
            let id = root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "subject".into());
            check_segmentation_names(root)?;
            let sources = subject_sources(root);
            return Ok(DatasetIndex {
                root: root.to_path_buf(),
                layout: DatasetLayout::SingleSubject,
                cases: vec![CaseRef {
                    id,
                    split: Split::Train,
                    files: CaseFiles::Subject(root.to_path_buf()),
                    sources,
                }],
                split_source: "single subject: trained and validated on the same volume".into(),
                warnings: Vec::new(),
                nnunet: None,
            });
        }
        if root.join("dataset.json").is_file() {
            let dataset = NnUnetDataset::open(root)?;
            let mut unknown: Vec<&str> = dataset
                .labels
                .iter()
                .filter(|l| l.key != 0 && catalog().label_of(&l.name).is_none())
                .map(|l| l.name.as_str())
                .collect();
            if !unknown.is_empty() {
                unknown.sort();
                return Err(Error::format(
                    root.join("dataset.json"),
                    format!(
                        "unknown structure name(s) {} (not among the 117 TotalSegmentator structures)",
                        unknown.join(", ")
                    ),
                ));
            }
            if dataset.cases.is_empty() {
                return Err(Error::format(root, "nnU-Net dataset has no training cases"));
            }
            let ids: Vec<String> = dataset.cases.iter().map(|c| c.id.clone()).collect();
            let splits = hash_split(&ids, val_fraction, seed);
            let cases = dataset
                .cases
                .iter()
                .enumerate()
                .map(|(i, c)| CaseRef {
                    id: c.id.clone(),
                    split: splits[i],
                    files: CaseFiles::NnUnet(i),
                    sources: vec![c.image.clone(), c.label.clone()],
                })
                .collect();
            return Ok(DatasetIndex {
                root: root.to_path_buf(),
                layout: DatasetLayout::NnUnet,
                cases,
                split_source: format!(
                    "deterministic by case id, {:.0}% validation",
                    val_fraction * 100.0
                ),
                warnings: Vec::new(),
                nnunet: Some(dataset),
            });
        }
        let mut subjects: Vec<PathBuf> = std::fs::read_dir(root)
            .map_err(|e| Error::io(root, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        subjects.sort();
        let mut missing_ct = Vec::new();
        subjects.retain(|p| {
            let ok = is_subject(p);
            if !ok && p.join("segmentations").is_dir() {
                missing_ct.push(p.clone());
            }
            ok
        });
        if let Some(p) = missing_ct.first() {
            return Err(Error::format(
                p,
                "subject folder has segmentations/ but no ct.nii.gz",
            ));
        }
        if subjects.is_empty() {
            return Err(Error::format(
                root,
                "no training data: expected TotalSegmentator subject folders (sXXXX/ct.nii.gz + segmentations/), an nnU-Net dataset (dataset.json) or one subject folder",
            ));
        }
        for s in &subjects {
            check_segmentation_names(s)?;
        }
        let ids: Vec<String> = subjects
            .iter()
            .map(|p| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        let mut warnings = Vec::new();
        let (splits, split_source) = match read_splits(root)? {
            Some(meta) => {
                let splits = ids
                    .iter()
                    .map(|id| meta.get(id).copied().unwrap_or(Split::Train))
                    .collect();
                warnings = meta_mismatches(root, &meta, &ids);
                (splits, "meta.csv split column".to_string())
            }
            None => (
                hash_split(&ids, val_fraction, seed),
                format!(
                    "deterministic by subject id, {:.0}% validation",
                    val_fraction * 100.0
                ),
            ),
        };
        let cases = subjects
            .iter()
            .zip(ids)
            .zip(splits)
            .map(|((dir, id), split)| CaseRef {
                id,
                split,
                files: CaseFiles::Subject(dir.clone()),
                sources: subject_sources(dir),
            })
            .collect();
        Ok(DatasetIndex {
            root: root.to_path_buf(),
            layout: DatasetLayout::TotalSegmentator,
            cases,
            split_source,
            warnings,
            nnunet: None,
        })
    }

    /// Cases of one split. For a single subject, validation uses the training subject.
    pub fn split(&self, split: Split) -> Vec<&CaseRef> {
        if self.layout == DatasetLayout::SingleSubject && split == Split::Val {
            return self.cases.iter().collect();
        }
        self.cases.iter().filter(|c| c.split == split).collect()
    }

    /// Load a case's CT and segmentation (checked to share one grid).
    pub fn load(&self, case: &CaseRef) -> Result<Subject> {
        match &case.files {
            CaseFiles::Subject(dir) => load_subject(dir),
            CaseFiles::NnUnet(i) => match &self.nnunet {
                Some(d) => d.load_case(*i),
                None => Err(Error::Invalid("nnU-Net case without its dataset".into())),
            },
        }
    }
}

/// Warnings for a `meta.csv` that does not match the subject folders: subjects it
/// names that are missing (per split), and subjects it does not list (trained on).
fn meta_mismatches(root: &Path, meta: &BTreeMap<String, Split>, ids: &[String]) -> Vec<String> {
    let present: std::collections::BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    // "3 val subjects … (s1, s2, s3, …)"
    let counted = |what: &str, some: &[&str]| {
        let shown: Vec<&str> = some.iter().take(3).copied().collect();
        let more = if some.len() > 3 { ", …" } else { "" };
        let plural = if some.len() == 1 { "" } else { "s" };
        (
            format!("{} {what}{plural}", some.len()),
            format!("({}{more})", shown.join(", ")),
        )
    };
    let mut warnings = Vec::new();
    for split in [Split::Train, Split::Val, Split::Test] {
        let missing: Vec<&str> = meta
            .iter()
            .filter(|(id, s)| **s == split && !present.contains(id.as_str()))
            .map(|(id, _)| id.as_str())
            .collect();
        if !missing.is_empty() {
            let (count, list) = counted(&format!("{split} subject"), &missing);
            let verb = if missing.len() == 1 { "is" } else { "are" };
            warnings.push(format!(
                "{}: {count} listed in meta.csv {verb} not in the folder {list}",
                root.display()
            ));
        }
    }
    let unlisted: Vec<&str> = ids
        .iter()
        .filter(|id| !meta.contains_key(id.as_str()))
        .map(String::as_str)
        .collect();
    if !unlisted.is_empty() {
        let (count, list) = counted("subject", &unlisted);
        warnings.push(format!(
            "{}: {count} not listed in meta.csv, used for training {list}",
            root.display()
        ));
    }
    warnings
}

/// Deterministic split: subjects ordered by a hash of (seed, id); the first
/// `round(fraction·n)` (at least one when n ≥ 2) are validation.
pub fn hash_split(ids: &[String], val_fraction: f64, seed: u64) -> Vec<Split> {
    let n = ids.len();
    let mut n_val = (val_fraction * n as f64).round() as usize;
    if n >= 2 && val_fraction > 0.0 {
        n_val = n_val.clamp(1, n - 1);
    } else if n < 2 {
        n_val = 0;
    }
    let mut order: Vec<(u64, usize)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (crate::ids::fnv1a(&[&seed.to_le_bytes(), id.as_bytes()]), i))
        .collect();
    order.sort();
    let mut splits = vec![Split::Train; n];
    for &(_, i) in order.iter().take(n_val) {
        splits[i] = Split::Val;
    }
    splits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_split_is_deterministic_and_keeps_subjects_whole() {
        let ids: Vec<String> = (1..=10).map(|i| format!("s{i:04}")).collect();
        let a = hash_split(&ids, 0.2, 7);
        assert_eq!(a, hash_split(&ids, 0.2, 7));
        assert_eq!(a.iter().filter(|&&s| s == Split::Val).count(), 2);
        let two: Vec<String> = vec!["a".into(), "b".into()];
        assert_eq!(
            hash_split(&two, 0.2, 0)
                .iter()
                .filter(|&&s| s == Split::Val)
                .count(),
            1
        );
        assert_eq!(hash_split(&two[..1], 0.2, 0), vec![Split::Train]);
    }

    #[test]
    fn empty_and_missing_folders_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = DatasetIndex::open(dir.path(), 0.2, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no training data"), "{err}");
        let err = DatasetIndex::open(&dir.path().join("nope"), 0.2, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not found"), "{err}");
    }

    #[test]
    fn unknown_structure_names_and_missing_ct_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = dir.path().join("s0001");
        std::fs::create_dir_all(s.join("segmentations")).expect("mkdir");
        std::fs::write(s.join("segmentations/liver.nii.gz"), b"").expect("write");
        let err = DatasetIndex::open(dir.path(), 0.2, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no ct.nii.gz"), "{err}");
        std::fs::write(s.join("ct.nii.gz"), b"").expect("write");
        std::fs::write(s.join("segmentations/livr.nii.gz"), b"").expect("write");
        let err = DatasetIndex::open(dir.path(), 0.2, 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("livr") && err.contains("unknown structure"),
            "{err}"
        );
    }

    #[test]
    fn nnunet_labels_must_be_catalog_structures() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("imagesTr")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("labelsTr")).expect("mkdir");
        std::fs::write(dir.path().join("imagesTr/case_0000.nii.gz"), b"").expect("write");
        std::fs::write(dir.path().join("labelsTr/case.nii.gz"), b"").expect("write");
        std::fs::write(
            dir.path().join("dataset.json"),
            r#"{"labels": {"background": 0, "liver": 1, "tumour": 2}, "channel_names": {"0": "CT"}, "file_ending": ".nii.gz", "numTraining": 1}"#,
        )
        .expect("write");
        let err = DatasetIndex::open(dir.path(), 0.2, 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tumour") && err.contains("dataset.json"),
            "{err}"
        );
    }

    #[test]
    fn meta_csv_split_is_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        for id in ["s0001", "s0002", "s0003"] {
            let s = dir.path().join(id);
            std::fs::create_dir_all(s.join("segmentations")).expect("mkdir");
            std::fs::write(s.join("ct.nii.gz"), b"").expect("write");
            std::fs::write(s.join("segmentations/liver.nii.gz"), b"").expect("write");
        }
        std::fs::write(
            dir.path().join("meta.csv"),
            "image_id;age;split\ns0001;50;train\ns0002;60;val\ns0003;70;test\n",
        )
        .expect("write");
        let index = DatasetIndex::open(dir.path(), 0.2, 0).expect("open");
        let splits: Vec<Split> = index.cases.iter().map(|c| c.split).collect();
        assert_eq!(splits, vec![Split::Train, Split::Val, Split::Test]);
        assert_eq!(index.split(Split::Val).len(), 1);
    }
}
