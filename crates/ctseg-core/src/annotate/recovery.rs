//! Recovery files: unsaved edits are written at intervals to a recovery folder (a
//! multilabel NIfTI in display voxel order plus a small JSON description), so a crash
//! or a killed app loses at most one interval of work; the next start offers them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::io::atomic_write;
use crate::io::nifti::{self, WriteOptions};
use crate::labels::LabelVolume;
use crate::{Error, Result};

/// What a recovery file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryInfo {
    /// The CT the edits belong to (`None`: the generated sample).
    pub ct: Option<PathBuf>,
    /// The CT's short name.
    pub ct_name: String,
    /// Where the edited layer started from.
    pub source: String,
    /// When it was written (Unix seconds).
    pub saved_at: u64,
    /// Undoable steps at the time.
    pub steps: usize,
}

/// A recovery file found on disk.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// Its description.
    pub info: RecoveryInfo,
    /// The labels file.
    pub labels: PathBuf,
    /// The description file.
    pub json: PathBuf,
}

/// `$CTSEG_RECOVERY_DIR`, else `recovery` under ctseg's folder ([`crate::paths`]).
pub fn default_recovery_dir() -> PathBuf {
    crate::paths::recovery_dir()
}

/// File stem for the edits of `ct`: the CT's name and a hash of its path, so two CTs
/// called `ct.nii.gz` in different folders do not share a recovery file.
pub fn recovery_key(ct: Option<&Path>, ct_name: &str) -> String {
    let text = ct.map_or_else(|| "sample".to_string(), |p| p.display().to_string());
    let hash = crate::ids::fnv1a_plain(text.as_bytes());
    let name: String = crate::ids::folder_safe(ct_name).chars().take(40).collect();
    format!("{name}-{hash:016x}")
}

/// Write the recovery file of `info.ct` (labels first, then the description, both
/// through temporary files, so a listed recovery is always complete).
pub fn write_recovery(dir: &Path, info: &RecoveryInfo, labels: &LabelVolume) -> Result<Recovery> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let key = recovery_key(info.ct.as_deref(), &info.ct_name);
    let labels_path = dir.join(format!("{key}.nii.gz"));
    let json_path = dir.join(format!("{key}.json"));
    let options = WriteOptions {
        label_map: true,
        ..WriteOptions::default()
    };
    nifti::write(&labels_path, labels, &options)?;
    let text = serde_json::to_string_pretty(info)
        .map_err(|e| Error::Invalid(format!("recovery description: {e}")))?;
    atomic_write(&json_path, ".json", |tmp| {
        std::fs::write(tmp, text.as_bytes()).map_err(|e| Error::io(tmp, e))
    })?;
    Ok(Recovery {
        info: info.clone(),
        labels: labels_path,
        json: json_path,
    })
}

/// Recovery files in `dir`, newest first (incomplete or unreadable ones are skipped).
pub fn list_recoveries(dir: &Path) -> Vec<Recovery> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Recovery> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|json| {
            let info: RecoveryInfo = serde_json::from_slice(&std::fs::read(&json).ok()?).ok()?;
            let labels = json.with_extension("nii.gz");
            labels.is_file().then_some(Recovery { info, labels, json })
        })
        .collect();
    out.sort_by_key(|r| std::cmp::Reverse(r.info.saved_at));
    out
}

/// Read the labels of a recovery file.
pub fn read_recovery(recovery: &Recovery) -> Result<LabelVolume> {
    Ok(nifti::read::<u8>(&recovery.labels)?.volume)
}

/// Delete a recovery file (after a save, or when the user discards it).
pub fn remove_recovery(recovery: &Recovery) -> Result<()> {
    for p in [&recovery.json, &recovery.labels] {
        match std::fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(p, e)),
        }
    }
    Ok(())
}

/// The recovery file of `ct` in `dir`, if there is one.
pub fn find_recovery(dir: &Path, ct: Option<&Path>, ct_name: &str) -> Option<Recovery> {
    let key = recovery_key(ct, ct_name);
    list_recoveries(dir).into_iter().find(|r| {
        r.json
            .file_stem()
            .is_some_and(|s| s.to_string_lossy() == key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Geometry, IDENTITY};
    use crate::volume::Volume;

    #[test]
    fn write_list_read_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let g = Geometry::new([5, 4, 3], IDENTITY);
        let labels = Volume::new(g, (0..60).map(|v| (v % 7) as u8).collect()).unwrap();
        let info = RecoveryInfo {
            ct: Some(PathBuf::from("/data/s0001/ct.nii.gz")),
            ct_name: "s0001".into(),
            source: "prediction".into(),
            saved_at: 1_700_000_000,
            steps: 3,
        };
        let r = write_recovery(dir.path(), &info, &labels).unwrap();
        let listed = list_recoveries(dir.path());
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].info, info);
        assert_eq!(read_recovery(&listed[0]).unwrap().data(), labels.data());
        let found = find_recovery(dir.path(), info.ct.as_deref(), "s0001").unwrap();
        assert_eq!(found.labels, r.labels);
        assert!(find_recovery(dir.path(), Some(Path::new("/other/ct.nii.gz")), "s0001").is_none());
        remove_recovery(&r).unwrap();
        assert!(list_recoveries(dir.path()).is_empty());
        // A description without labels (a write cut short) is not offered.
        std::fs::write(
            dir.path().join("x.json"),
            serde_json::to_string(&info).unwrap(),
        )
        .unwrap();
        assert!(list_recoveries(dir.path()).is_empty());
    }
}
