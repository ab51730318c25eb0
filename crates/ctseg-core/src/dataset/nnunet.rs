//! The nnU-Net raw dataset layout: `dataset.json`, `imagesTr/<case>_0000.nii.gz`,
//! `labelsTr/<case>.nii.gz`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Subject;
use crate::error::{Error, Result};
use crate::io::segmentation::{LoadedSegmentation, SegFormat, check_same_grid};
use crate::io::{load_ct, nifti};
use crate::labels::{LabelEntry, label_counts, lut_for, remap};
use crate::structures::catalog;

/// One training case of an nnU-Net raw dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct NnUnetCase {
    /// Case identifier.
    pub id: String,
    /// `imagesTr/<id>_0000<ending>`.
    pub image: PathBuf,
    /// `labelsTr/<id><ending>`.
    pub label: PathBuf,
}

/// An nnU-Net raw dataset folder (v1 or v2 `dataset.json`).
#[derive(Debug, Clone)]
pub struct NnUnetDataset {
    /// Dataset folder.
    pub root: PathBuf,
    /// Label table from `dataset.json`: file value → structure name.
    pub labels: Vec<LabelEntry>,
    /// Training cases, sorted by id.
    pub cases: Vec<NnUnetCase>,
    /// Label names not in the catalog, or other remarks.
    pub warnings: Vec<String>,
}

impl NnUnetDataset {
    /// Open an nnU-Net raw dataset: read `dataset.json` and pair images with labels.
    pub fn open(root: &Path) -> Result<Self> {
        let json_path = root.join("dataset.json");
        let text = std::fs::read_to_string(&json_path).map_err(|e| Error::io(&json_path, e))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::format(&json_path, format!("invalid JSON: {e}")))?;
        let labels = parse_labels(&json).map_err(|m| Error::format(&json_path, m))?;
        if let Some(channels) = json.get("channel_names").or_else(|| json.get("modality"))
            && let Some(obj) = channels.as_object()
            && obj.len() != 1
        {
            return Err(Error::unsupported(
                &json_path,
                format!(
                    "{} input channels; ctseg's model reads one CT channel",
                    obj.len()
                ),
            ));
        }
        let ending = json
            .get("file_ending")
            .and_then(|v| v.as_str())
            .unwrap_or(".nii.gz")
            .to_string();
        let images_dir = root.join("imagesTr");
        let labels_dir = root.join("labelsTr");
        let entries = std::fs::read_dir(&images_dir).map_err(|e| Error::io(&images_dir, e))?;
        let mut cases = Vec::new();
        for entry in entries {
            let image = entry.map_err(|e| Error::io(&images_dir, e))?.path();
            let name = image
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let Some(id) = name.strip_suffix(&format!("_0000{ending}")) else {
                continue;
            };
            let label = labels_dir.join(format!("{id}{ending}"));
            if !label.is_file() {
                return Err(Error::format(
                    &image,
                    format!("no label file {}", label.display()),
                ));
            }
            cases.push(NnUnetCase {
                id: id.to_string(),
                image,
                label,
            });
        }
        if cases.is_empty() {
            return Err(Error::format(
                &images_dir,
                format!("no images named <case>_0000{ending}"),
            ));
        }
        cases.sort_by(|a, b| a.id.cmp(&b.id));
        let warnings = labels
            .iter()
            .filter(|l| catalog().label_of(&l.name).is_none())
            .map(|l| {
                format!(
                    "{}: label {} ({:?}) is not one of the 117 structures; ignored",
                    json_path.display(),
                    l.key,
                    l.name
                )
            })
            .collect();
        Ok(Self {
            root: root.to_path_buf(),
            labels,
            cases,
            warnings,
        })
    }

    /// Load case `index`: its CT and its labels mapped to the catalog by name.
    pub fn load_case(&self, index: usize) -> Result<Subject> {
        let case = self.cases.get(index).ok_or_else(|| {
            Error::Invalid(format!(
                "case {index} out of range ({} cases)",
                self.cases.len()
            ))
        })?;
        let ct = load_ct(&case.image)?;
        let image = nifti::read::<u8>(&case.label)?;
        check_same_grid(
            &case.image,
            ct.volume.geometry(),
            &case.label,
            image.volume.geometry(),
        )?;
        let mut labels = image.volume;
        let counts = label_counts(&labels);
        let (lut, warnings) = lut_for(Some(&self.labels), catalog(), &counts);
        remap(&mut labels, &lut);
        Ok(Subject {
            id: case.id.clone(),
            ct,
            segmentation: LoadedSegmentation {
                labels,
                format: SegFormat::Multilabel,
                path: case.label.clone(),
                named_labels: true,
                overlap_voxels: 0,
                files_found: 0,
                warnings: warnings
                    .into_iter()
                    .map(|w| format!("{}: {w}", case.label.display()))
                    .collect(),
            },
        })
    }
}

/// The `labels` of a dataset.json: v2 `{name: value}` or v1 `{"value": name}`.
fn parse_labels(json: &serde_json::Value) -> std::result::Result<Vec<LabelEntry>, String> {
    let obj = json
        .get("labels")
        .and_then(|l| l.as_object())
        .ok_or("dataset.json has no \"labels\" object")?;
    let mut by_key = BTreeMap::new();
    for (k, v) in obj {
        let (key, name) = match (v, k.parse::<u32>()) {
            (serde_json::Value::Number(n), _) => (
                n.as_u64().ok_or(format!("label {k:?} has value {n}"))? as u32,
                k.clone(),
            ),
            (serde_json::Value::String(s), Ok(key)) => (key, s.clone()),
            (serde_json::Value::Array(_), _) => {
                return Err(format!(
                    "label {k:?} is a region (list of labels); ctseg reads plain labels"
                ));
            }
            _ => return Err(format!("label {k:?}: unrecognised value {v}")),
        };
        if key > 255 {
            return Err(format!("label {name:?} has value {key} > 255"));
        }
        by_key.insert(key, name);
    }
    Ok(by_key
        .into_iter()
        .filter(|(k, _)| *k != 0)
        .map(|(key, name)| LabelEntry {
            key,
            name,
            rgb: None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dataset_json_labels_v1_and_v2() {
        let v2 = json!({"labels": {"background": 0, "liver": 1, "spleen": 2}});
        let l = parse_labels(&v2).expect("valid");
        assert_eq!(l.len(), 2);
        assert_eq!((l[0].key, l[0].name.as_str()), (1, "liver"));
        let v1 = json!({"labels": {"0": "background", "1": "spleen"}});
        let l = parse_labels(&v1).expect("valid");
        assert_eq!((l[0].key, l[0].name.as_str()), (1, "spleen"));
        assert!(parse_labels(&json!({"labels": {"organ": [1, 2]}})).is_err());
        assert!(parse_labels(&json!({"name": "x"})).is_err());
    }
}
