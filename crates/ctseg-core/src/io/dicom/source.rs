//! What a CT read from DICOM keeps of its source files: the patient and study it
//! belongs to, its frame of reference, and each slice's SOP instance and position —
//! everything a derived object (a DICOM Segmentation) must reference.

use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

use super::text;

/// The patient and study attributes of a series, copied into derived objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StudyTags {
    /// PatientName (PN, `Family^Given`).
    pub patient_name: String,
    /// PatientID.
    pub patient_id: String,
    /// PatientBirthDate (`YYYYMMDD` or empty).
    pub patient_birth_date: String,
    /// PatientSex (`M`, `F`, `O` or empty).
    pub patient_sex: String,
    /// StudyInstanceUID (empty in anonymised exports).
    pub study_uid: String,
    /// StudyDate.
    pub study_date: String,
    /// StudyTime.
    pub study_time: String,
    /// StudyID.
    pub study_id: String,
    /// AccessionNumber.
    pub accession_number: String,
    /// ReferringPhysicianName.
    pub referring_physician: String,
    /// StudyDescription.
    pub study_description: String,
    /// FrameOfReferenceUID of the series.
    pub frame_of_reference_uid: String,
    /// SpecificCharacterSet of the source (how its texts were encoded).
    pub character_set: String,
}

impl StudyTags {
    /// The study attributes of one DICOM object.
    pub(super) fn read(obj: &DefaultDicomObject) -> Self {
        let t = |tag| text(obj, tag);
        StudyTags {
            patient_name: t(tags::PATIENT_NAME),
            patient_id: t(tags::PATIENT_ID),
            patient_birth_date: t(tags::PATIENT_BIRTH_DATE),
            patient_sex: t(tags::PATIENT_SEX),
            study_uid: uid(&t(tags::STUDY_INSTANCE_UID)),
            study_date: t(tags::STUDY_DATE),
            study_time: t(tags::STUDY_TIME),
            study_id: t(tags::STUDY_ID),
            accession_number: t(tags::ACCESSION_NUMBER),
            referring_physician: t(tags::REFERRING_PHYSICIAN_NAME),
            study_description: t(tags::STUDY_DESCRIPTION),
            frame_of_reference_uid: uid(&t(tags::FRAME_OF_REFERENCE_UID)),
            character_set: t(tags::SPECIFIC_CHARACTER_SET),
        }
    }
}

/// A UID as read: without the trailing NUL padding.
pub(super) fn uid(value: &str) -> String {
    value.trim_end_matches('\0').trim().to_string()
}

/// One source slice: the instance to reference and where it lies.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInstance {
    /// SOPClassUID (CT Image Storage for a CT).
    pub sop_class_uid: String,
    /// SOPInstanceUID (empty in anonymised exports).
    pub sop_instance_uid: String,
    /// ImagePositionPatient (LPS, mm) of the slice's first pixel.
    pub position_lps: [f64; 3],
}

/// The DICOM identity and geometry of a series a CT volume was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct DicomSource {
    /// Patient, study and frame of reference.
    pub study: StudyTags,
    /// SeriesInstanceUID of the source series.
    pub series_uid: String,
    /// ImageOrientationPatient shared by the slices (row direction, column direction; LPS).
    pub orientation_lps: [f64; 6],
    /// PixelSpacing: distance between rows, then between columns (mm).
    pub pixel_spacing_mm: [f64; 2],
    /// Distance between neighbouring slices (mm) along the slice normal.
    pub slice_step_mm: f64,
    /// SliceThickness of the source, when it gives one.
    pub slice_thickness_mm: Option<f64>,
    /// Rows of each slice.
    pub rows: usize,
    /// Columns of each slice.
    pub columns: usize,
    /// The slices in order along the slice normal.
    pub instances: Vec<SourceInstance>,
}

impl DicomSource {
    /// Why a derived object cannot reference this series, if it cannot: missing
    /// Study, Series, SOP Instance or Frame of Reference UIDs (anonymised exports).
    pub fn missing_identifiers(&self) -> Option<String> {
        let mut missing = Vec::new();
        if self.study.study_uid.is_empty() {
            missing.push("StudyInstanceUID".to_string());
        }
        if self.series_uid.is_empty() {
            missing.push("SeriesInstanceUID".to_string());
        }
        let without = self
            .instances
            .iter()
            .filter(|i| i.sop_instance_uid.is_empty() || i.sop_class_uid.is_empty())
            .count();
        if without > 0 {
            missing.push(format!(
                "SOPInstanceUID/SOPClassUID ({without} of {} slices)",
                self.instances.len()
            ));
        }
        if self.study.frame_of_reference_uid.is_empty() {
            missing.push("FrameOfReferenceUID".to_string());
        }
        (!missing.is_empty()).then(|| {
            format!(
                "the source series has no {} (an anonymised export?); a DICOM Segmentation must reference the study, series and each source instance — use the series as the PACS stores it",
                missing.join(", ")
            )
        })
    }
}
