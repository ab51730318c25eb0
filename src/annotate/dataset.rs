//! "Add to training set": a corrected case is written into a dataset folder in the
//! TotalSegmentator layout (`<id>/ct.nii.gz`, `<id>/segmentations/<name>.nii.gz`) and
//! listed in `meta.csv` with split `train`. Every file is written safely.

use std::path::{Path, PathBuf};

use crate::data::source::MetaColumns;
use crate::io::atomic_write;
use crate::io::nifti::{self, WriteOptions};
use crate::io::segmentation::save_per_structure;
use crate::labels::LabelVolume;
use crate::volume::Volume;
use crate::{Error, Result};

/// A folder-safe subject id from a CT name (`s0001`, `ct_0003`…).
pub fn subject_id(name: &str) -> String {
    let id: String = name
        .trim()
        .trim_end_matches(".nii.gz")
        .trim_end_matches(".nii")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if id.is_empty() { "case".into() } else { id }
}

/// Write `ct` and `labels` (on the CT's grid, in its stored voxel order) as subject
/// `id` of the dataset at `root`, and mark it `train` in `meta.csv`. An existing
/// subject of that id is replaced file by file. Returns the subject folder.
pub fn add_case(root: &Path, id: &str, ct: &Volume<i16>, labels: &LabelVolume) -> Result<PathBuf> {
    if ct.shape() != labels.shape() {
        return Err(Error::Invalid(format!(
            "segmentation {:?} does not match the CT {:?}",
            labels.shape(),
            ct.shape()
        )));
    }
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    nifti::write(dir.join("ct.nii.gz"), ct, &WriteOptions::default())?;
    save_per_structure(&dir.join("segmentations"), labels)?;
    set_split(&root.join("meta.csv"), id, "train")?;
    Ok(dir)
}

/// Set `id`'s split in a TotalSegmentator `meta.csv` (`;`- or `,`-separated, with
/// `image_id` and `split` columns), adding the row or creating the file as needed.
pub fn set_split(path: &Path, id: &str, split: &str) -> Result<()> {
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
            fields[split_col] = split.to_string();
            *line = fields.join(&sep.to_string());
            found = true;
        }
    }
    if !found {
        let mut fields = vec![String::new(); count];
        fields[id_col] = id.to_string();
        fields[split_col] = split.to_string();
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
    use crate::data::source::{DatasetIndex, Split};
    use crate::geometry::{Geometry, IDENTITY};
    use crate::structures::catalog;

    #[test]
    fn a_case_is_written_in_the_totalsegmentator_layout_and_split_train() {
        let root = tempfile::tempdir().unwrap();
        // An existing meta.csv with more columns and another subject.
        std::fs::write(
            root.path().join("meta.csv"),
            "image_id;age;split\ns0009;60;val\n",
        )
        .unwrap();
        let g = Geometry::new([6, 5, 4], IDENTITY);
        let ct = Volume::new(g.clone(), (0..120).map(|v| v as i16).collect()).unwrap();
        let liver = catalog().label_of("liver").unwrap();
        let labels = Volume::new(
            g,
            (0..120).map(|v| if v < 30 { liver } else { 0 }).collect(),
        )
        .unwrap();
        let dir = add_case(root.path(), &subject_id("my ct.nii.gz"), &ct, &labels).unwrap();
        assert!(dir.ends_with("my_ct"));
        let meta = std::fs::read_to_string(root.path().join("meta.csv")).unwrap();
        assert_eq!(meta, "image_id;age;split\ns0009;60;val\nmy_ct;;train\n");
        // Adding it again replaces, not duplicates, the row.
        add_case(root.path(), "my_ct", &ct, &labels).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.path().join("meta.csv")).unwrap(),
            meta
        );
        let index = DatasetIndex::open(root.path(), 0.2, 0).unwrap();
        let train = index.split(Split::Train);
        assert_eq!(train.len(), 1);
        let subject = index.load(train[0]).unwrap();
        assert_eq!(subject.ct.volume.data(), ct.data());
        assert_eq!(subject.segmentation.labels.data(), labels.data());
    }

    #[test]
    fn a_meta_csv_without_the_columns_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meta.csv");
        std::fs::write(&p, "name,age\nx,3\n").unwrap();
        let e = set_split(&p, "a", "train").unwrap_err().to_string();
        assert!(e.contains("meta.csv") && e.contains("image_id"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "name,age\nx,3\n");
    }
}
