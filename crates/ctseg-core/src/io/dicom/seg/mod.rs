//! DICOM Segmentation objects (the Segmentation IOD, PS3.3 A.51): writing a label
//! volume over the CT series it was made on, and reading one back onto a CT.
//!
//! Written objects are binary segmentations with one segment per structure present,
//! SNOMED CT codes from `assets/structure_codes.tsv`, the structure's display colour
//! in CIELab, and one frame per (segment, source slice holding it) that references
//! its source instance. Reading places every frame by its ImagePositionPatient on
//! the CT's voxel grid and matches segments to the 117 structures by label or code.

mod codes;
mod grid;
mod read;
mod write;

pub use codes::{
    Code, StructureCode, cielab_from_srgb, label_for_code, structure_code, structure_codes,
};
pub use read::{LoadedDicomSeg, SegmentMatch, is_dicom_seg, read_seg};
pub use write::{SegSummary, SegWriteOptions, SegmentAlgorithm, build_seg, model_name, write_seg};

/// SOP Class UID of Segmentation Storage.
pub const SEGMENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.4";

/// Transfer syntax ctseg writes: Explicit VR Little Endian.
const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";

/// A new globally unique UID: `2.25.` and a random 122-bit UUID as a decimal
/// number (PS3.5 B.2).
pub fn new_uid() -> String {
    use rand::Rng;
    let mut value: u128 = rand::rng().random();
    // A version-4 UUID: version and variant bits set.
    value = (value & !(0xF << 76)) | (0x4 << 76);
    value = (value & !(0x3 << 62)) | (0x2 << 62);
    format!("2.25.{value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_unique_and_valid() {
        let a = new_uid();
        let b = new_uid();
        assert_ne!(a, b);
        assert!(a.len() <= 64, "{a}");
        assert!(a.starts_with("2.25.") && a[5..].chars().all(|c| c.is_ascii_digit()));
        assert!(!a[5..].starts_with('0'));
    }
}
