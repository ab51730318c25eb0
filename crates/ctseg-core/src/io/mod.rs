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
        });
    }
    if !path.exists() {
        return Err(Error::io(
            path,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    let image = nifti::read::<i16>(path)?;
    let mut warnings = Vec::new();
    if image.info.clipped_voxels > 0 {
        warnings.push(format!(
            "{}: {} voxels outside the int16 range were clamped",
            path.display(),
            image.info.clipped_voxels
        ));
    }
    Ok(LoadedCt {
        volume: image.volume,
        format: CtFormat::Nifti,
        dtype: image.info.datatype.name().to_string(),
        warnings,
    })
}
