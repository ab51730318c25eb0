//! Writing a label volume as a binary DICOM Segmentation over its source CT series.

use std::path::Path;

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

use super::codes::{
    Code, anatomical_structure, artificial_intelligence, cielab_from_srgb, segmentation_derivation,
    source_image_purpose, structure_code,
};
use super::grid::FramePlacement;
use super::{EXPLICIT_VR_LITTLE_ENDIAN, SEGMENTATION_STORAGE, new_uid};
use crate::error::{Error, Result};
use crate::io::atomic_write;
use crate::io::dicom::DicomSource;
use crate::labels::{LabelVolume, label_counts};
use crate::structures::catalog;

/// Who made the segments: ctseg's model, or a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentAlgorithm {
    /// A prediction: SegmentAlgorithmType AUTOMATIC with the algorithm's identity.
    Automatic {
        /// The model (run) name, e.g. `totalseg-unet`.
        model_name: String,
        /// The model's version (ctseg's version, or a checkpoint's step).
        version: String,
    },
    /// Edited or drawn by hand: SegmentAlgorithmType MANUAL.
    Manual,
}

/// How a DICOM Segmentation is described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegWriteOptions {
    /// Who made the segments.
    pub algorithm: SegmentAlgorithm,
    /// SeriesDescription of the new series.
    pub series_description: String,
    /// SeriesNumber of the new series.
    pub series_number: i32,
    /// ContentLabel (upper case letters, digits, space and `_`; up to 16).
    pub content_label: String,
    /// ContentCreatorName (PN; may be empty).
    pub content_creator: String,
}

impl SegWriteOptions {
    /// A prediction by `model_name`, series 300 "ctseg <model>".
    pub fn prediction(model_name: &str) -> Self {
        SegWriteOptions {
            algorithm: SegmentAlgorithm::Automatic {
                model_name: model_name.to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
            series_description: truncate(&format!("ctseg {model_name}"), 64),
            series_number: 300,
            content_label: "CTSEG".into(),
            content_creator: String::new(),
        }
    }

    /// A segmentation edited by hand, series 301.
    pub fn manual() -> Self {
        SegWriteOptions {
            algorithm: SegmentAlgorithm::Manual,
            series_description: "ctseg edited segmentation".into(),
            series_number: 301,
            content_label: "CTSEG_EDITED".into(),
            content_creator: String::new(),
        }
    }
}

/// The model's name for the segmentation's algorithm identification: the run
/// folder's name (or the weights file's stem).
pub fn model_name(model: &std::path::Path) -> String {
    // `RUN/checkpoints/best` and `RUN/checkpoints/best/model.safetensors` name RUN.
    let run = model
        .ancestors()
        .find(|p| {
            p.parent()
                .and_then(|q| q.file_name())
                .is_some_and(|n| n == "checkpoints")
        })
        .and_then(|checkpoint| checkpoint.parent()?.parent());
    let named = match run {
        Some(run) => run.file_name(),
        None if model.is_dir() => model.file_name(),
        None => model.file_stem(),
    };
    named.map_or_else(|| "model".to_string(), |n| n.to_string_lossy().into_owned())
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegSummary {
    /// Segments (structures present), in label order.
    pub labels: Vec<u8>,
    /// Frames (segment × source slice holding it).
    pub frames: usize,
    /// SOPInstanceUID of the new object.
    pub sop_instance_uid: String,
    /// SeriesInstanceUID of the new series.
    pub series_uid: String,
}

/// Write `labels` (on the grid of the CT read from `source`) to `path` as a binary
/// DICOM Segmentation: one segment per structure present, one frame per (segment,
/// source slice holding it). Written to a temporary file, then renamed.
pub fn write_seg(
    path: &Path,
    labels: &LabelVolume,
    source: &DicomSource,
    options: &SegWriteOptions,
) -> Result<SegSummary> {
    let (object, summary) = build_seg(path, labels, source, options)?;
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(EXPLICIT_VR_LITTLE_ENDIAN)
        .media_storage_sop_class_uid(SEGMENTATION_STORAGE)
        .media_storage_sop_instance_uid(summary.sop_instance_uid.as_str());
    let file = object
        .with_meta(meta)
        .map_err(|e| Error::format(path, format!("cannot build the DICOM file meta: {e}")))?;
    atomic_write(path, "dcm", |tmp| {
        file.write_to_file(tmp)
            .map_err(|e| Error::format(tmp, format!("cannot write DICOM: {e}")))
    })?;
    Ok(summary)
}

/// The Segmentation object `write_seg` writes (`path` only names errors).
pub fn build_seg(
    path: &Path,
    labels: &LabelVolume,
    source: &DicomSource,
    options: &SegWriteOptions,
) -> Result<(InMemDicomObject, SegSummary)> {
    if let Some(why) = source.missing_identifiers() {
        return Err(Error::format(
            path,
            format!("cannot write a DICOM Segmentation: {why}"),
        ));
    }
    let (rows, cols) = (source.rows, source.columns);
    // The label of every source pixel, slice by slice in the source's order.
    let mut frames_of_slices: Vec<Vec<u8>> = Vec::with_capacity(source.instances.len());
    let shape = labels.shape();
    for (k, instance) in source.instances.iter().enumerate() {
        let placement = FramePlacement::new(
            labels.geometry(),
            instance.position_lps,
            source.orientation_lps,
            source.pixel_spacing_mm,
        )
        .ok_or_else(|| {
            Error::format(
                path,
                format!(
                    "the segmentation ({}) does not lie on the grid of the source series (slice {} of {})",
                    labels.geometry().describe(),
                    k + 1,
                    source.instances.len()
                ),
            )
        })?;
        let mut frame = vec![0u8; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                let v = placement.voxel(r, c, shape).ok_or_else(|| {
                    Error::format(
                        path,
                        format!(
                            "slice {} of the source series reaches outside the segmentation ({})",
                            k + 1,
                            labels.geometry().describe()
                        ),
                    )
                })?;
                frame[r * cols + c] = labels.data()[labels.index(v)];
            }
        }
        frames_of_slices.push(frame);
    }
    let counts = label_counts(labels);
    let present: Vec<u8> = (1..=u8::MAX)
        .filter(|&l| counts[l as usize] > 0 && structure_code(l).is_some())
        .collect();
    if present.is_empty() {
        return Err(Error::format(
            path,
            "cannot write a DICOM Segmentation: the segmentation holds none of the 117 structures",
        ));
    }
    if let Some(unknown) =
        (1..=u8::MAX).find(|&l| counts[l as usize] > 0 && structure_code(l).is_none())
    {
        return Err(Error::format(
            path,
            format!(
                "cannot write a DICOM Segmentation: label {unknown} is none of the 117 structures"
            ),
        ));
    }

    let series_uid = new_uid();
    let sop_instance_uid = new_uid();
    let dimension_uid = new_uid();
    let now = Timestamp::now();
    let mut obj = InMemDicomObject::new_empty();
    let study = &source.study;
    put_str(&mut obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put_strs(&mut obj, tags::IMAGE_TYPE, VR::CS, &["DERIVED", "PRIMARY"]);
    put_str(&mut obj, tags::INSTANCE_CREATION_DATE, VR::DA, &now.date);
    put_str(&mut obj, tags::INSTANCE_CREATION_TIME, VR::TM, &now.time);
    put_str(&mut obj, tags::SOP_CLASS_UID, VR::UI, SEGMENTATION_STORAGE);
    put_str(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, &sop_instance_uid);
    put_str(&mut obj, tags::STUDY_DATE, VR::DA, &study.study_date);
    put_str(&mut obj, tags::SERIES_DATE, VR::DA, &now.date);
    put_str(&mut obj, tags::CONTENT_DATE, VR::DA, &now.date);
    put_str(&mut obj, tags::STUDY_TIME, VR::TM, &study.study_time);
    put_str(&mut obj, tags::SERIES_TIME, VR::TM, &now.time);
    put_str(&mut obj, tags::CONTENT_TIME, VR::TM, &now.time);
    put_str(
        &mut obj,
        tags::ACCESSION_NUMBER,
        VR::SH,
        &study.accession_number,
    );
    put_str(&mut obj, tags::MODALITY, VR::CS, "SEG");
    put_str(&mut obj, tags::MANUFACTURER, VR::LO, "ctseg");
    put_str(
        &mut obj,
        tags::REFERRING_PHYSICIAN_NAME,
        VR::PN,
        &study.referring_physician,
    );
    if !study.study_description.is_empty() {
        put_str(
            &mut obj,
            tags::STUDY_DESCRIPTION,
            VR::LO,
            &study.study_description,
        );
    }
    put_str(
        &mut obj,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        &truncate(&options.series_description, 64),
    );
    put_str(&mut obj, tags::MANUFACTURER_MODEL_NAME, VR::LO, "ctseg");
    let referenced_instances: Vec<InMemDicomObject> = source
        .instances
        .iter()
        .map(|i| {
            let mut item = InMemDicomObject::new_empty();
            put_str(
                &mut item,
                tags::REFERENCED_SOP_CLASS_UID,
                VR::UI,
                &i.sop_class_uid,
            );
            put_str(
                &mut item,
                tags::REFERENCED_SOP_INSTANCE_UID,
                VR::UI,
                &i.sop_instance_uid,
            );
            item
        })
        .collect();
    let mut series_item = InMemDicomObject::new_empty();
    put_seq(
        &mut series_item,
        tags::REFERENCED_INSTANCE_SEQUENCE,
        referenced_instances,
    );
    put_str(
        &mut series_item,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &source.series_uid,
    );
    put_seq(
        &mut obj,
        tags::REFERENCED_SERIES_SEQUENCE,
        vec![series_item],
    );
    put_str(&mut obj, tags::PATIENT_NAME, VR::PN, &study.patient_name);
    put_str(&mut obj, tags::PATIENT_ID, VR::LO, &study.patient_id);
    put_str(
        &mut obj,
        tags::PATIENT_BIRTH_DATE,
        VR::DA,
        &study.patient_birth_date,
    );
    put_str(&mut obj, tags::PATIENT_SEX, VR::CS, &study.patient_sex);
    put_str(&mut obj, tags::DEVICE_SERIAL_NUMBER, VR::LO, "1");
    put_str(
        &mut obj,
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        env!("CARGO_PKG_VERSION"),
    );
    put_str(&mut obj, tags::STUDY_INSTANCE_UID, VR::UI, &study.study_uid);
    put_str(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, &series_uid);
    put_str(&mut obj, tags::STUDY_ID, VR::SH, &study.study_id);
    put_str(
        &mut obj,
        tags::SERIES_NUMBER,
        VR::IS,
        &options.series_number.to_string(),
    );
    put_str(&mut obj, tags::INSTANCE_NUMBER, VR::IS, "1");
    put_str(
        &mut obj,
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        &study.frame_of_reference_uid,
    );
    put_str(&mut obj, tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");

    let mut organization = InMemDicomObject::new_empty();
    put_str(
        &mut organization,
        tags::DIMENSION_ORGANIZATION_UID,
        VR::UI,
        &dimension_uid,
    );
    put_seq(
        &mut obj,
        tags::DIMENSION_ORGANIZATION_SEQUENCE,
        vec![organization],
    );
    let dimension = |pointer: Tag, group: Tag, label: &str| {
        let mut item = InMemDicomObject::new_empty();
        put_str(
            &mut item,
            tags::DIMENSION_ORGANIZATION_UID,
            VR::UI,
            &dimension_uid,
        );
        item.put(DataElement::new(
            tags::DIMENSION_INDEX_POINTER,
            VR::AT,
            PrimitiveValue::Tags([pointer].into_iter().collect()),
        ));
        item.put(DataElement::new(
            tags::FUNCTIONAL_GROUP_POINTER,
            VR::AT,
            PrimitiveValue::Tags([group].into_iter().collect()),
        ));
        put_str(&mut item, tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label);
        item
    };
    put_seq(
        &mut obj,
        tags::DIMENSION_INDEX_SEQUENCE,
        vec![
            dimension(
                tags::REFERENCED_SEGMENT_NUMBER,
                tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                "ReferencedSegmentNumber",
            ),
            dimension(
                tags::IMAGE_POSITION_PATIENT,
                tags::PLANE_POSITION_SEQUENCE,
                "ImagePositionPatient",
            ),
        ],
    );

    // Frames: for each segment, the source slices holding it, in slice order.
    // Which labels each slice holds (one pass over the pixels).
    let in_slice: Vec<[bool; 256]> = frames_of_slices
        .iter()
        .map(|frame| {
            let mut seen = [false; 256];
            for &v in frame {
                seen[v as usize] = true;
            }
            seen
        })
        .collect();
    let mut frames: Vec<(u16, usize)> = Vec::new();
    // The frame of (label, slice), for packing the pixels in one pass.
    let mut frame_of: Vec<[Option<usize>; 256]> = vec![[None; 256]; source.instances.len()];
    for (s, &label) in present.iter().enumerate() {
        for (k, seen) in in_slice.iter().enumerate() {
            if seen[label as usize] {
                frame_of[k][label as usize] = Some(frames.len());
                frames.push((s as u16 + 1, k));
            }
        }
    }
    put_us(&mut obj, tags::SAMPLES_PER_PIXEL, &[1]);
    put_str(
        &mut obj,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    put_str(
        &mut obj,
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        &frames.len().to_string(),
    );
    put_us(&mut obj, tags::ROWS, &[to_u16(path, rows, "Rows")?]);
    put_us(&mut obj, tags::COLUMNS, &[to_u16(path, cols, "Columns")?]);
    put_us(&mut obj, tags::BITS_ALLOCATED, &[1]);
    put_us(&mut obj, tags::BITS_STORED, &[1]);
    put_us(&mut obj, tags::HIGH_BIT, &[0]);
    put_us(&mut obj, tags::PIXEL_REPRESENTATION, &[0]);
    put_str(&mut obj, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
    put_str(&mut obj, tags::SEGMENTATION_TYPE, VR::CS, "BINARY");
    let segments: Vec<InMemDicomObject> = present
        .iter()
        .enumerate()
        .map(|(s, &label)| segment_item(s as u16 + 1, label, &options.algorithm))
        .collect();
    put_seq(&mut obj, tags::SEGMENT_SEQUENCE, segments);
    put_str(&mut obj, tags::SEGMENTS_OVERLAP, VR::CS, "NO");
    put_str(
        &mut obj,
        tags::CONTENT_LABEL,
        VR::CS,
        &content_label(&options.content_label),
    );
    put_str(
        &mut obj,
        tags::CONTENT_DESCRIPTION,
        VR::LO,
        &truncate(&options.series_description, 64),
    );
    put_str(
        &mut obj,
        tags::CONTENT_CREATOR_NAME,
        VR::PN,
        &options.content_creator,
    );

    // Shared functional groups: pixel measures and orientation.
    let mut measures = InMemDicomObject::new_empty();
    let thickness = source.slice_thickness_mm.unwrap_or(source.slice_step_mm);
    put_str(&mut measures, tags::SLICE_THICKNESS, VR::DS, &ds(thickness));
    put_strs(
        &mut measures,
        tags::PIXEL_SPACING,
        VR::DS,
        &source.pixel_spacing_mm.map(ds),
    );
    put_str(
        &mut measures,
        tags::SPACING_BETWEEN_SLICES,
        VR::DS,
        &ds(source.slice_step_mm),
    );
    let mut orientation = InMemDicomObject::new_empty();
    put_strs(
        &mut orientation,
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        &source.orientation_lps.map(ds),
    );
    let mut shared = InMemDicomObject::new_empty();
    put_seq(&mut shared, tags::PIXEL_MEASURES_SEQUENCE, vec![measures]);
    put_seq(
        &mut shared,
        tags::PLANE_ORIENTATION_SEQUENCE,
        vec![orientation],
    );
    put_seq(
        &mut obj,
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        vec![shared],
    );

    // Per-frame functional groups and the bit-packed pixel data (frames follow one
    // another without padding; the first pixel is the lowest bit).
    let frame_pixels = rows * cols;
    let mut pixel_data = vec![0u8; (frames.len() * frame_pixels).div_ceil(8)];
    let mut per_frame = Vec::with_capacity(frames.len());
    for (k, frame) in frames_of_slices.iter().enumerate() {
        for (p, &v) in frame.iter().enumerate() {
            if let Some(f) = frame_of[k][v as usize] {
                let bit = f * frame_pixels + p;
                pixel_data[bit / 8] |= 1 << (bit % 8);
            }
        }
    }
    for &(segment, k) in &frames {
        per_frame.push(frame_item(source, segment, k));
    }
    if pixel_data.len() % 2 == 1 {
        pixel_data.push(0);
    }
    put_seq(
        &mut obj,
        tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
        per_frame,
    );
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::U8(pixel_data.into()),
    ));
    Ok((
        obj,
        SegSummary {
            labels: present,
            frames: frames.len(),
            sop_instance_uid,
            series_uid,
        },
    ))
}

/// The SegmentSequence item of structure `label`.
fn segment_item(number: u16, label: u8, algorithm: &SegmentAlgorithm) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    put_us(&mut item, tags::SEGMENT_NUMBER, &[number]);
    put_str(
        &mut item,
        tags::SEGMENT_LABEL,
        VR::LO,
        &truncate(&catalog().name_of(label), 64),
    );
    put_seq(
        &mut item,
        tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
        vec![code_item(&anatomical_structure())],
    );
    if let Some(code) = structure_code(label) {
        let mut type_item = code_item(&code.type_code);
        if let Some(modifier) = &code.modifier {
            put_seq(
                &mut type_item,
                tags::SEGMENTED_PROPERTY_TYPE_MODIFIER_CODE_SEQUENCE,
                vec![code_item(modifier)],
            );
        }
        put_seq(
            &mut item,
            tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
            vec![type_item],
        );
    }
    match algorithm {
        SegmentAlgorithm::Automatic {
            model_name,
            version,
        } => {
            put_str(&mut item, tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "AUTOMATIC");
            let name = truncate(&format!("ctseg {model_name}"), 64);
            put_str(&mut item, tags::SEGMENT_ALGORITHM_NAME, VR::LO, &name);
            let mut identification = InMemDicomObject::new_empty();
            put_seq(
                &mut identification,
                tags::ALGORITHM_FAMILY_CODE_SEQUENCE,
                vec![code_item(&artificial_intelligence())],
            );
            put_str(
                &mut identification,
                tags::ALGORITHM_VERSION,
                VR::LO,
                &truncate(version, 64),
            );
            put_str(&mut identification, tags::ALGORITHM_SOURCE, VR::LO, "ctseg");
            put_str(&mut identification, tags::ALGORITHM_NAME, VR::LO, &name);
            put_seq(
                &mut item,
                tags::SEGMENTATION_ALGORITHM_IDENTIFICATION_SEQUENCE,
                vec![identification],
            );
        }
        SegmentAlgorithm::Manual => {
            put_str(&mut item, tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "MANUAL");
        }
    }
    let color = catalog()
        .by_label(label)
        .map_or([128, 128, 128], |s| s.color);
    put_us(
        &mut item,
        tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE,
        &cielab_from_srgb(color),
    );
    item
}

/// The PerFrameFunctionalGroupsSequence item of segment `segment` on source slice `k`.
fn frame_item(source: &DicomSource, segment: u16, k: usize) -> InMemDicomObject {
    let instance = &source.instances[k];
    let mut reference = InMemDicomObject::new_empty();
    put_str(
        &mut reference,
        tags::REFERENCED_SOP_CLASS_UID,
        VR::UI,
        &instance.sop_class_uid,
    );
    put_str(
        &mut reference,
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        &instance.sop_instance_uid,
    );
    // The frame is the source slice's grid: its pixels are where the source's are.
    put_str(
        &mut reference,
        tags::SPATIAL_LOCATIONS_PRESERVED,
        VR::CS,
        "YES",
    );
    put_seq(
        &mut reference,
        tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
        vec![code_item(&source_image_purpose())],
    );
    let mut derivation = InMemDicomObject::new_empty();
    put_seq(
        &mut derivation,
        tags::DERIVATION_CODE_SEQUENCE,
        vec![code_item(&segmentation_derivation())],
    );
    put_seq(
        &mut derivation,
        tags::SOURCE_IMAGE_SEQUENCE,
        vec![reference],
    );
    let mut content = InMemDicomObject::new_empty();
    content.put(DataElement::new(
        tags::DIMENSION_INDEX_VALUES,
        VR::UL,
        PrimitiveValue::U32([u32::from(segment), k as u32 + 1].into_iter().collect()),
    ));
    let mut position = InMemDicomObject::new_empty();
    put_strs(
        &mut position,
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        &instance.position_lps.map(ds),
    );
    let mut identification = InMemDicomObject::new_empty();
    put_us(
        &mut identification,
        tags::REFERENCED_SEGMENT_NUMBER,
        &[segment],
    );
    let mut item = InMemDicomObject::new_empty();
    put_seq(&mut item, tags::DERIVATION_IMAGE_SEQUENCE, vec![derivation]);
    put_seq(&mut item, tags::FRAME_CONTENT_SEQUENCE, vec![content]);
    put_seq(&mut item, tags::PLANE_POSITION_SEQUENCE, vec![position]);
    put_seq(
        &mut item,
        tags::SEGMENT_IDENTIFICATION_SEQUENCE,
        vec![identification],
    );
    item
}

fn code_item(code: &Code) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    put_str(&mut item, tags::CODE_VALUE, VR::SH, &code.value);
    put_str(
        &mut item,
        tags::CODING_SCHEME_DESIGNATOR,
        VR::SH,
        &code.scheme,
    );
    put_str(
        &mut item,
        tags::CODE_MEANING,
        VR::LO,
        &truncate(&code.meaning, 64),
    );
    item
}

fn put_str(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str) {
    obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
}

fn put_strs<S: AsRef<str>>(obj: &mut InMemDicomObject, tag: Tag, vr: VR, values: &[S]) {
    let values = values.iter().map(|v| v.as_ref().to_string()).collect();
    obj.put(DataElement::new(tag, vr, PrimitiveValue::Strs(values)));
}

fn put_us(obj: &mut InMemDicomObject, tag: Tag, values: &[u16]) {
    let values = values.iter().copied().collect();
    obj.put(DataElement::new(tag, VR::US, PrimitiveValue::U16(values)));
}

fn put_seq(obj: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

fn to_u16(path: &Path, v: usize, name: &str) -> Result<u16> {
    u16::try_from(v)
        .map_err(|_| Error::format(path, format!("{name} {v} does not fit DICOM's 16 bits")))
}

/// `text` cut to at most `max` characters.
fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// A ContentLabel (CS): upper case, `[A-Z0-9 _]`, at most 16 characters.
fn content_label(text: &str) -> String {
    let label: String = text
        .chars()
        .map(|c| c.to_ascii_uppercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .take(16)
        .collect();
    if label.trim().is_empty() {
        "CTSEG".into()
    } else {
        label
    }
}

/// A decimal string (DS) of at most 16 characters, as precise as fits.
pub(super) fn ds(v: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v }; // no "-0"
    let shortest = format!("{v}");
    if shortest.len() <= 16 {
        return shortest;
    }
    for precision in (0..=15).rev() {
        let s = format!("{v:.precision$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        if s.len() <= 16 {
            return s;
        }
    }
    format!("{v:.0}")
}

/// Today's date and the time now (UTC), as DICOM's DA and TM.
struct Timestamp {
    date: String,
    time: String,
}

impl Timestamp {
    fn now() -> Self {
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let days = (seconds / 86_400) as i64;
        let rest = seconds % 86_400;
        let (y, m, d) = civil_from_days(days);
        Timestamp {
            date: format!("{y:04}{m:02}{d:02}"),
            time: format!("{:02}{:02}{:02}", rest / 3600, (rest / 60) % 60, rest % 60),
        }
    }
}

/// Year, month and day of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_fit_sixteen_characters() {
        assert_eq!(ds(0.9765625), "0.9765625");
        assert_eq!(ds(-0.0), "0");
        assert_eq!(ds(2.0), "2");
        let long = ds(-123.456_789_012_345_67);
        assert!(long.len() <= 16, "{long}");
        assert!((long.parse::<f64>().expect("number") + 123.456_789_012_345_67).abs() < 1e-9);
        assert!(ds(1e-20).len() <= 16);
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_787), (2026, 11, 30));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn content_labels_are_code_strings() {
        assert_eq!(content_label("ctseg-edited"), "CTSEG_EDITED");
        assert_eq!(
            content_label("a very long label indeed"),
            "A VERY LONG LABE"
        );
        assert_eq!(content_label("  "), "CTSEG");
    }
}
