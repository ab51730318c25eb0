//! The datastore folder, in MONAI Label's local-datastore layout: images as
//! `<root>/<id>.nii.gz` (or `.nii`), labels as `<root>/labels/<tag>/<id>.nii.gz`.
//! ctseg's own files live in `<root>/.ctseg/`: `tmp/` for uploads in progress
//! (emptied at start, so a killed server leaves nothing half-written in view) and
//! `train/` for fine-tuning runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::ids::parse_id;
use crate::upload::{FileKind, Upload, clean_temporary_folder};

/// The tag of finished (training-ready) labels.
pub const FINAL_TAG: &str = "final";

/// Endings an image or label can be stored under, in the order looked up.
const ENDINGS: [&str; 2] = [".nii.gz", ".nii"];

/// A datastore folder.
#[derive(Debug, Clone)]
pub struct Datastore {
    root: PathBuf,
}

impl Datastore {
    /// Open (creating if needed) the datastore at `root`, and empty its temporary
    /// folder. Returns the datastore and how many leftovers were removed.
    pub fn open(root: &Path) -> std::io::Result<(Self, usize)> {
        std::fs::create_dir_all(root.join("labels").join(FINAL_TAG))?;
        let store = Datastore {
            root: root.to_path_buf(),
        };
        std::fs::create_dir_all(store.tmp_dir())?;
        std::fs::create_dir_all(store.train_dir())?;
        let removed = clean_temporary_folder(&store.tmp_dir())?;
        Ok((store, removed))
    }

    /// The datastore folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where uploads are written before they are renamed into place.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join(".ctseg").join("tmp")
    }

    /// Where fine-tuning runs are kept.
    pub fn train_dir(&self) -> PathBuf {
        self.root.join(".ctseg").join("train")
    }

    fn labels_dir(&self, tag: &str) -> PathBuf {
        self.root.join("labels").join(tag)
    }

    /// The stored file of image `id`, if there is one.
    pub fn image_path(&self, id: &str) -> Option<PathBuf> {
        find_with_ending(&self.root, id)
    }

    /// The stored file of the label of image `id` with `tag`, if there is one.
    pub fn label_path(&self, id: &str, tag: &str) -> Option<PathBuf> {
        find_with_ending(&self.labels_dir(tag), id)
    }

    /// The image IDs, sorted.
    pub fn images(&self) -> Vec<String> {
        ids_in(&self.root)
    }

    /// The label tags present (sub-folders of `labels/`), sorted.
    pub fn tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = std::fs::read_dir(self.root.join("labels"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|t| parse_id(t).is_ok())
            .collect();
        tags.sort();
        tags
    }

    /// Images that have a label with `tag`, sorted.
    pub fn labelled(&self, tag: &str) -> Vec<String> {
        self.images()
            .into_iter()
            .filter(|id| self.label_path(id, tag).is_some())
            .collect()
    }

    /// Store an uploaded image as `id` (replacing an older one atomically; an older
    /// file with the other NIfTI ending is removed after).
    pub fn store_image(&self, id: &str, upload: Upload) -> ApiResult<PathBuf> {
        let dest = self
            .root
            .join(format!("{id}{}", nifti_ending(upload.kind)?));
        upload.persist(&dest)?;
        remove_other_endings(&self.root, id, &dest);
        Ok(dest)
    }

    /// Store an uploaded label for image `id` under `tag`.
    pub fn store_label(&self, id: &str, tag: &str, upload: Upload) -> ApiResult<PathBuf> {
        let dir = self.labels_dir(tag);
        std::fs::create_dir_all(&dir)
            .map_err(|e| ApiError::internal(format!("cannot create the label folder: {e}")))?;
        let dest = dir.join(format!("{id}{}", nifti_ending(upload.kind)?));
        upload.persist(&dest)?;
        remove_other_endings(&dir, id, &dest);
        Ok(dest)
    }

    /// `GET /datastore/` (`output=stats`): counts, as MONAI Label's `status()`.
    pub fn status(&self) -> Value {
        let images = self.images();
        let mut tags = BTreeMap::new();
        for tag in self.tags() {
            let n = images
                .iter()
                .filter(|id| self.label_path(id, &tag).is_some())
                .count();
            tags.insert(tag, n);
        }
        json!({
            "total": images.len(),
            "completed": self.labelled(FINAL_TAG).len(),
            "label_tags": tags,
        })
    }

    /// `GET /datastore/?output=all`: every image with its labels, as MONAI Label's
    /// local datastore describes itself.
    pub fn describe(&self) -> Value {
        let tags = self.tags();
        let mut objects = serde_json::Map::new();
        for id in self.images() {
            let Some(image) = self.image_path(&id) else {
                continue;
            };
            let mut labels = serde_json::Map::new();
            for tag in &tags {
                if let Some(label) = self.label_path(&id, tag) {
                    labels.insert(tag.clone(), entry_json(&label));
                }
            }
            objects.insert(
                id.clone(),
                json!({ "image": entry_json(&image), "labels": labels }),
            );
        }
        json!({
            "name": "ctseg datastore",
            "description": "images and labels served by ctseg serve",
            "images_dir": ".",
            "labels_dir": "labels",
            "objects": objects,
        })
    }

    /// `GET /datastore/?output=train`: image/label pairs with the final tag.
    pub fn datalist(&self) -> Value {
        let pairs: Vec<Value> = self
            .labelled(FINAL_TAG)
            .iter()
            .filter_map(|id| {
                Some(json!({
                    "image": self.image_path(id)?,
                    "label": self.label_path(id, FINAL_TAG)?,
                }))
            })
            .collect();
        Value::Array(pairs)
    }
}

/// The NIfTI ending of an upload, or a refusal for other kinds.
fn nifti_ending(kind: FileKind) -> ApiResult<&'static str> {
    match kind {
        FileKind::NiftiGz | FileKind::Nifti => Ok(kind.ending()),
        FileKind::Zip => Err(ApiError::unprocessable(
            "a zip archive cannot be stored in the datastore: upload a NIfTI (.nii.gz) file",
        )),
    }
}

fn entry_json(path: &Path) -> Value {
    let meta = std::fs::metadata(path).ok();
    let ext = ENDINGS
        .iter()
        .find(|e| path.to_string_lossy().ends_with(*e))
        .copied()
        .unwrap_or("");
    let ts = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    json!({ "ext": ext, "info": { "ts": ts, "size": meta.map(|m| m.len()).unwrap_or(0) } })
}

fn find_with_ending(dir: &Path, id: &str) -> Option<PathBuf> {
    ENDINGS
        .iter()
        .map(|e| dir.join(format!("{id}{e}")))
        .find(|p| p.is_file())
}

fn remove_other_endings(dir: &Path, id: &str, keep: &Path) {
    for e in ENDINGS {
        let other = dir.join(format!("{id}{e}"));
        if other != keep && other.is_file() && std::fs::remove_file(&other).is_err() {
            eprintln!("warning: could not remove the older {}", other.display());
        }
    }
}

/// IDs of the NIfTI files directly in `dir`, sorted and de-duplicated.
fn ids_in(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let stem = ENDINGS.iter().find_map(|end| name.strip_suffix(end))?;
            parse_id(stem).ok()
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_status_and_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let (store, removed) = Datastore::open(dir.path()).unwrap();
        assert_eq!(removed, 0);
        std::fs::write(dir.path().join("b.nii.gz"), b"x").unwrap();
        std::fs::write(dir.path().join("a.nii"), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        std::fs::write(dir.path().join("labels/final/b.nii.gz"), b"x").unwrap();
        std::fs::write(store.tmp_dir().join("upload-1.nii.gz"), b"half").unwrap();
        assert_eq!(store.images(), ["a", "b"]);
        assert_eq!(store.labelled(FINAL_TAG), ["b"]);
        let status = store.status();
        assert_eq!(status["total"], 2);
        assert_eq!(status["completed"], 1);
        assert_eq!(status["label_tags"]["final"], 1);
        assert_eq!(
            store.describe()["objects"]["b"]["labels"]["final"]["ext"],
            ".nii.gz"
        );
        // Reopening (a restart) removes the half-written upload.
        let (_, removed) = Datastore::open(dir.path()).unwrap();
        assert_eq!(removed, 1);
    }
}
