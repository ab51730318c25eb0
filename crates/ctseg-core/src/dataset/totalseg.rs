//! The TotalSegmentator dataset layout, in one place: a subject folder
//! (`<id>/ct.nii.gz` + `<id>/segmentations/<structure>.nii.gz`) and the root's
//! `meta.csv` (`image_id` and `split` columns; read, written and edited here).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Subject;
use crate::error::{Error, Result};
use crate::io::atomic_write;
use crate::io::load_ct;
use crate::io::segmentation::load_per_structure;
use crate::structures::catalog;

/// The per-structure masks folder (`segmentations/`) of a subject folder, if `dir`
/// has one. With [`is_subject`], the one place the subject layout is recognised.
pub fn masks_dir(dir: &Path) -> Option<PathBuf> {
    let masks = dir.join("segmentations");
    masks.is_dir().then_some(masks)
}

/// Whether `dir` is a TotalSegmentator subject folder (holds `ct.nii.gz`). The one
/// place this is decided: loading, dataset scans and the viewer's open all ask here.
pub fn is_subject(dir: &Path) -> bool {
    dir.join("ct.nii.gz").is_file()
}

/// Load a TotalSegmentator subject folder: the CT and its per-structure masks.
pub fn load_subject(dir: &Path) -> Result<Subject> {
    let ct_path = dir.join("ct.nii.gz");
    if !ct_path.is_file() {
        return Err(Error::format(
            dir,
            "not a TotalSegmentator subject folder: ct.nii.gz is missing",
        ));
    }
    let ct = load_ct(&ct_path)?;
    let seg_dir = dir.join("segmentations");
    if !seg_dir.is_dir() {
        return Err(Error::format(
            dir,
            "TotalSegmentator subject folder without segmentations/",
        ));
    }
    let segmentation = load_per_structure(&seg_dir, Some((&ct_path, ct.volume.geometry())))?;
    Ok(Subject {
        id: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        ct,
        segmentation,
    })
}

/// Which part of the data a case belongs to (the `split` column of `meta.csv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Used for gradient steps.
    Train,
    /// Used for per-epoch validation.
    Val,
    /// Held out (listed in meta.csv as test; not used by training).
    Test,
}

impl Split {
    /// `train`, `val` or `test`, as written in `meta.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    /// A `meta.csv` split value (`val`, `valid` and `validation` all mean [`Split::Val`]).
    pub fn parse(text: &str) -> Option<Split> {
        match text {
            "train" => Some(Split::Train),
            "val" | "valid" | "validation" => Some(Split::Val),
            "test" => Some(Split::Test),
            _ => None,
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Paths whose size and modification time key the preprocessing cache of a subject.
pub fn subject_sources(dir: &Path) -> Vec<PathBuf> {
    let mut sources = vec![dir.join("ct.nii.gz")];
    if let Ok(entries) = std::fs::read_dir(dir.join("segmentations")) {
        let mut masks: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        masks.sort();
        sources.extend(masks);
    }
    sources
}

/// Every mask in `segmentations/` must be named after a catalog structure.
pub fn check_segmentation_names(subject: &Path) -> Result<()> {
    let seg = subject.join("segmentations");
    let entries = std::fs::read_dir(&seg)
        .map_err(|_| Error::format(subject, "subject folder without a segmentations/ folder"))?;
    let mut unknown = Vec::new();
    let mut known = 0;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(&seg, e))?.path();
        let Some(file) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if file.starts_with('.') {
            continue;
        }
        let Some(name) = file
            .strip_suffix(".nii.gz")
            .or_else(|| file.strip_suffix(".nii"))
        else {
            continue;
        };
        if catalog().label_of(name).is_some() {
            known += 1;
        } else {
            unknown.push(name.to_string());
        }
    }
    if !unknown.is_empty() {
        unknown.sort();
        return Err(Error::format(
            &seg,
            format!(
                "unknown structure name(s) {} (not among the 117 TotalSegmentator structures)",
                unknown.join(", ")
            ),
        ));
    }
    if known == 0 {
        return Err(Error::format(&seg, "no structure masks (<name>.nii.gz)"));
    }
    Ok(())
}

/// The layout of a TotalSegmentator `meta.csv` header: its separator (`;`, or `,`)
/// and where the `image_id` and `split` columns are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaColumns {
    /// Field separator.
    pub sep: char,
    /// Number of columns.
    pub count: usize,
    /// Index of `image_id`.
    pub id: usize,
    /// Index of `split`.
    pub split: usize,
}

impl MetaColumns {
    /// Read a header line; `None` without both columns.
    pub fn of(header: &str) -> Option<Self> {
        let sep = if header.contains(';') { ';' } else { ',' };
        let columns: Vec<&str> = header.split(sep).map(str::trim).collect();
        Some(MetaColumns {
            sep,
            count: columns.len(),
            id: columns.iter().position(|&c| c == "image_id")?,
            split: columns.iter().position(|&c| c == "split")?,
        })
    }
}

/// The splits listed in `root/meta.csv` (`;`- or `,`-separated, `image_id` and
/// `split` columns), or `None` when there is no such file (or it is empty). A file
/// that is not text or lacks the two columns is an error, never ignored.
pub fn read_splits(root: &Path) -> Result<Option<BTreeMap<String, Split>>> {
    let path = root.join("meta.csv");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::format(
            &path,
            "not a text file (invalid UTF-8): expected a CSV with image_id and split columns; fix or remove it",
        )
    })?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Ok(None);
    };
    let Some(MetaColumns {
        sep,
        id: id_col,
        split: split_col,
        ..
    }) = MetaColumns::of(header)
    else {
        let shown: String = header.chars().take(60).collect();
        return Err(Error::format(
            &path,
            format!(
                "no image_id and split columns in its header ({shown:?}): the split cannot be read; fix or remove it"
            ),
        ));
    };
    let mut out = BTreeMap::new();
    for (n, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split(sep).map(|f| f.trim()).collect();
        let (Some(id), Some(split)) = (fields.get(id_col), fields.get(split_col)) else {
            return Err(Error::format(
                &path,
                format!("line {}: too few columns", n + 2),
            ));
        };
        let Some(split) = Split::parse(split) else {
            return Err(Error::format(
                &path,
                format!(
                    "line {}: unknown split '{split}' (train, val or test)",
                    n + 2
                ),
            ));
        };
        out.insert(id.to_string(), split);
    }
    Ok(Some(out))
}

/// Write `root/meta.csv` listing each subject's split (`image_id;split`), replacing
/// the file safely.
pub fn write_meta(root: &Path, rows: &[(String, Split)]) -> Result<()> {
    let mut meta = String::from("image_id;split\n");
    for (id, split) in rows {
        meta.push_str(&format!("{id};{split}\n"));
    }
    let path = root.join("meta.csv");
    atomic_write(&path, ".csv", |tmp| {
        std::fs::write(tmp, meta.as_bytes()).map_err(|e| Error::io(&path, e))
    })
}

/// Set `id`'s split in a TotalSegmentator `meta.csv` (`;`- or `,`-separated, with
/// `image_id` and `split` columns), adding the row or creating the file as needed.
pub fn set_split(path: &Path, id: &str, split: Split) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "image_id;split\n".to_string(),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let header = lines
        .first()
        .cloned()
        .unwrap_or_else(|| "image_id;split".into());
    if lines.is_empty() {
        lines.push(header.clone());
    }
    let Some(MetaColumns {
        sep,
        count,
        id: id_col,
        split: split_col,
    }) = MetaColumns::of(&header)
    else {
        return Err(Error::format(
            path,
            "meta.csv has no image_id and split columns; cannot list the new case",
        ));
    };
    let mut found = false;
    for line in lines.iter_mut().skip(1) {
        let mut fields: Vec<String> = line.split(sep).map(|f| f.trim().to_string()).collect();
        if fields.get(id_col).map(String::as_str) == Some(id) {
            fields.resize(count.max(fields.len()), String::new());
            fields[split_col] = split.as_str().to_string();
            *line = fields.join(&sep.to_string());
            found = true;
        }
    }
    if !found {
        let mut fields = vec![String::new(); count];
        fields[id_col] = id.to_string();
        fields[split_col] = split.as_str().to_string();
        lines.push(fields.join(&sep.to_string()));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    atomic_write(path, ".csv", |tmp| {
        std::fs::write(tmp, out.as_bytes()).map_err(|e| Error::io(tmp, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meta_csv_without_the_columns_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meta.csv");
        std::fs::write(&p, "name,age\nx,3\n").unwrap();
        let e = set_split(&p, "a", Split::Train).unwrap_err().to_string();
        assert!(e.contains("meta.csv") && e.contains("image_id"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "name,age\nx,3\n");
    }
}
