//! Reading and writing CT volumes and segmentations: NIfTI, DICOM series, and the
//! safe (temporary file + rename) writes every saver uses. Dataset layouts are
//! [`crate::dataset`].

pub mod atomic;
pub mod dicom;
pub mod nifti;
pub mod segmentation;

use std::path::Path;

use crate::error::{Error, Result};
use crate::volume::Volume;

pub use atomic::atomic_write;

/// Where a CT came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtFormat {
    /// A NIfTI-1 file.
    Nifti,
    /// A folder holding a DICOM series.
    Dicom,
    /// A TotalSegmentator subject folder (`ct.nii.gz` + `segmentations/`).
    TotalSeg,
}

impl CtFormat {
    /// Lower-case name used in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            CtFormat::Nifti => "nifti",
            CtFormat::Dicom => "dicom",
            CtFormat::TotalSeg => "totalseg",
        }
    }
}

/// A CT volume in Hounsfield units with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedCt {
    /// The HU voxels and geometry.
    pub volume: Volume<i16>,
    /// Source format.
    pub format: CtFormat,
    /// The on-disk voxel type (`int16`, `int32`…).
    pub dtype: String,
    /// Non-fatal remarks made while loading (e.g. clamped values, skipped files).
    pub warnings: Vec<String>,
    /// For a DICOM series: the study, series and instances it came from (what a
    /// DICOM Segmentation of it must reference).
    pub dicom: Option<dicom::DicomSource>,
}

/// Load a CT from a NIfTI file, a DICOM folder or a TotalSegmentator subject folder.
pub fn load_ct(path: &Path) -> Result<LoadedCt> {
    if path.is_dir() {
        if crate::dataset::totalseg::is_subject(path) {
            let mut ct = load_ct(&path.join("ct.nii.gz"))?;
            ct.format = CtFormat::TotalSeg;
            return Ok(ct);
        }
        let series = dicom::read_series(path)?;
        return Ok(LoadedCt {
            volume: series.volume,
            format: CtFormat::Dicom,
            dtype: series.dtype,
            warnings: series.warnings,
            dicom: Some(series.source),
        });
    }
    if !path.exists() {
        return Err(missing(path));
    }
    let image = nifti::read::<i16>(path)?;
    let warnings = ct_value_warnings(path, &image.info)?;
    Ok(LoadedCt {
        volume: image.volume,
        format: CtFormat::Nifti,
        dtype: image.info.datatype.name().to_string(),
        warnings,
        dicom: None,
    })
}

/// The error for a path that cannot be reached, saying why: nothing there, a broken
/// symbolic link (and where it points), or a loop of links.
pub fn missing(path: &Path) -> Error {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Error::format(path, "no such file or folder");
    };
    if !meta.file_type().is_symlink() {
        return match std::fs::metadata(path) {
            Err(e) => Error::io(path, e),
            Ok(_) => Error::format(path, "cannot be read"),
        };
    }
    let target = std::fs::read_link(path)
        .map(|t| t.display().to_string())
        .unwrap_or_else(|_| "?".into());
    match std::fs::canonicalize(path) {
        // ELOOP: 40 on Linux, 62 on macOS and the BSDs.
        Err(e) if matches!(e.raw_os_error(), Some(40 | 62)) => Error::format(
            path,
            format!("a loop of symbolic links (it points to {target}, which leads back)"),
        ),
        _ => Error::format(
            path,
            format!("a broken symbolic link: it points to {target}, which does not exist"),
        ),
    }
}

/// The warnings (or the refusal) a CT's voxel values call for: NaN voxels, values
/// clamped to the int16 range, and a volume that holds no number at all.
fn ct_value_warnings(path: &Path, info: &nifti::NiftiInfo) -> Result<Vec<String>> {
    let values = &info.values;
    let mut warnings = Vec::new();
    if values.range.is_none() && values.nan > 0 {
        return Err(Error::format(
            path,
            "every voxel is NaN (not a number): there is no image in this file",
        ));
    }
    if values.nan > 0 {
        warnings.push(format!(
            "{}: {} voxels are NaN (not a number); they are shown as 0 HU",
            path.display(),
            values.nan
        ));
    }
    let clamped = info.clipped_voxels.saturating_sub(values.nan);
    if clamped > 0 {
        let (lo, hi) = values.range.unwrap_or((0.0, 0.0));
        warnings.push(format!(
            "{}: {clamped} voxels outside the int16 range (values {}..{}) were clamped to -32768..32767",
            path.display(),
            crate::geometry::short_number(lo),
            crate::geometry::short_number(hi)
        ));
    }
    Ok(warnings)
}
