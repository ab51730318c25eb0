//! "Add to training set": a corrected case is written into a dataset folder in the
//! TotalSegmentator layout (`<id>/ct.nii.gz`, `<id>/segmentations/<name>.nii.gz`) and
//! listed in `meta.csv` with split `train`. Every file is written safely.

use std::path::{Path, PathBuf};

use crate::dataset::totalseg::{Split, set_split};
use crate::ids::folder_safe;

use crate::io::nifti::{self, WriteOptions};
use crate::io::segmentation::save_per_structure;
use crate::labels::LabelVolume;
use crate::volume::Volume;
use crate::{Error, Result};

/// A folder-safe subject id from a CT name (`s0001`, `ct_0003`…).
pub fn subject_id(name: &str) -> String {
    let id = folder_safe(
        name.trim()
            .trim_end_matches(".nii.gz")
            .trim_end_matches(".nii"),
    );
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
    set_split(&root.join("meta.csv"), id, Split::Train)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::DatasetIndex;
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
}
