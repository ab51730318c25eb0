//! Reading a DICOM Segmentation onto a CT: frames placed by their positions on the
//! CT's voxel grid, segments matched to the 117 structures by label or code.

use std::io::Read;
use std::path::Path;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::SEGMENTATION_STORAGE;
use super::codes::{Code, label_for_code};
use super::grid::FramePlacement;
use crate::error::{Error, Result};
use crate::geometry::Geometry;
use crate::io::dicom::{DicomSource, open_dicom, source::uid};
use crate::labels::LabelVolume;
use crate::structures::catalog;
use crate::volume::Volume;

/// How a segment of the file was matched to a structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentMatch {
    /// SegmentNumber in the file.
    pub number: u16,
    /// SegmentLabel in the file.
    pub segment_label: String,
    /// The structure it became, if any.
    pub label: Option<u8>,
    /// Voxels of the segment on the CT.
    pub voxels: u64,
}

/// A DICOM Segmentation read onto a CT grid.
#[derive(Debug, Clone)]
pub struct LoadedDicomSeg {
    /// Labels on the CT grid (0 = background).
    pub labels: LabelVolume,
    /// Every segment of the file and what it became.
    pub segments: Vec<SegmentMatch>,
    /// Voxels in more than one segment (each got its smallest segment).
    pub overlap_voxels: u64,
    /// Whether the file says its segments were drawn by hand (all MANUAL).
    pub manual: bool,
    /// Non-fatal remarks (unmatched segments, overlaps, another series).
    pub warnings: Vec<String>,
}

/// Whether `path` is a DICOM file holding a Segmentation (reads its header only).
pub fn is_dicom_seg(path: &Path) -> bool {
    let mut head = [0u8; 132];
    let is_dicom = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head[128..] == b"DICM");
    is_dicom
        && open_dicom(path, true).is_ok_and(|o| {
            uid(&super::super::text(&o, tags::SOP_CLASS_UID)) == SEGMENTATION_STORAGE
        })
}

/// Read the DICOM Segmentation `path` onto the voxel grid `ct` (the grid of the CT
/// it was made on; `ct_source` when that CT came from DICOM, to check the frame of
/// reference). Frames must lie on the grid: ctseg does not resample.
pub fn read_seg(
    path: &Path,
    ct: &Geometry,
    ct_source: Option<&DicomSource>,
) -> Result<LoadedDicomSeg> {
    let file = open_dicom(path, false)
        .map_err(|e| Error::format(path, format!("unreadable DICOM file: {e}")))?;
    let ts = file
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .trim()
        .to_string();
    let obj: &InMemDicomObject = &file;
    let class = uid(&text(obj, tags::SOP_CLASS_UID));
    if class != SEGMENTATION_STORAGE {
        return Err(Error::format(
            path,
            format!(
                "not a DICOM Segmentation (SOP class {class}, modality {})",
                text(obj, tags::MODALITY)
            ),
        ));
    }
    if !matches!(
        ts.as_str(),
        "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1" | "1.2.840.10008.1.2.1.99"
    ) {
        return Err(Error::unsupported(
            path,
            format!("compressed pixel data in a DICOM Segmentation (transfer syntax {ts})"),
        ));
    }
    let mut warnings = Vec::new();
    if let Some(src) = ct_source {
        let seg_for = uid(&text(obj, tags::FRAME_OF_REFERENCE_UID));
        if !seg_for.is_empty()
            && !src.study.frame_of_reference_uid.is_empty()
            && seg_for != src.study.frame_of_reference_uid
        {
            return Err(Error::format(
                path,
                format!(
                    "the segmentation's frame of reference ({seg_for}) is not the CT's ({}): it was made on another scan",
                    src.study.frame_of_reference_uid
                ),
            ));
        }
        let referenced = referenced_series(obj);
        if !referenced.is_empty()
            && !src.series_uid.is_empty()
            && !referenced.contains(&src.series_uid)
        {
            warnings.push(format!(
                "{}: the segmentation references series {}, not the open CT's {}; it was placed by its positions",
                path.display(),
                referenced.join(", "),
                src.series_uid
            ));
        }
    }
    let kind = text(obj, tags::SEGMENTATION_TYPE).to_ascii_uppercase();
    let rows = uint(obj, tags::ROWS)
        .ok_or_else(|| Error::format(path, "DICOM Segmentation without Rows"))?;
    let cols = uint(obj, tags::COLUMNS)
        .ok_or_else(|| Error::format(path, "DICOM Segmentation without Columns"))?;
    let frames = uint(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1);
    let bits = uint(obj, tags::BITS_ALLOCATED).unwrap_or(1);
    let threshold = match (kind.as_str(), bits) {
        ("BINARY", 1) => 1,
        ("FRACTIONAL", 8) => uint(obj, tags::MAXIMUM_FRACTIONAL_VALUE)
            .unwrap_or(255)
            .div_ceil(2)
            .max(1),
        ("LABELMAP", 8 | 16) => 1,
        _ => {
            return Err(Error::unsupported(
                path,
                format!("SegmentationType {kind} with BitsAllocated {bits}"),
            ));
        }
    };
    let frame_pixels = rows * cols;
    let pixel_bytes = obj
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .ok_or_else(|| Error::format(path, "DICOM Segmentation without pixel data"))?
        .to_bytes()
        .map_err(|e| Error::format(path, format!("unreadable pixel data: {e}")))?;
    let needed = (frames * frame_pixels * bits).div_ceil(8);
    if pixel_bytes.len() < needed {
        return Err(Error::format(
            path,
            format!(
                "pixel data holds {} bytes; {frames} frames of {cols}×{rows} at {bits} bits need {needed}",
                pixel_bytes.len()
            ),
        ));
    }
    let pixel = |frame: usize, p: usize| -> usize {
        let i = frame * frame_pixels + p;
        match bits {
            1 => usize::from((pixel_bytes[i / 8] >> (i % 8)) & 1),
            8 => usize::from(pixel_bytes[i]),
            _ => usize::from(u16::from_le_bytes([
                pixel_bytes[2 * i],
                pixel_bytes[2 * i + 1],
            ])),
        }
    };

    // Segments and what they become.
    let segment_items = obj
        .element_opt(tags::SEGMENT_SEQUENCE)
        .ok()
        .flatten()
        .and_then(|e| e.items())
        .unwrap_or(&[]);
    if segment_items.is_empty() {
        return Err(Error::format(
            path,
            "DICOM Segmentation without segments (empty SegmentSequence)",
        ));
    }
    let mut segments: Vec<SegmentMatch> = Vec::new();
    let mut all_manual = true;
    for item in segment_items {
        let number = uint(item, tags::SEGMENT_NUMBER)
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| Error::format(path, "a segment without SegmentNumber"))?;
        let segment_label = text(item, tags::SEGMENT_LABEL);
        let label = structure_of(item, &segment_label);
        all_manual &= text(item, tags::SEGMENT_ALGORITHM_TYPE).eq_ignore_ascii_case("MANUAL");
        segments.push(SegmentMatch {
            number,
            segment_label,
            label,
            voxels: 0,
        });
    }

    let shared = first_item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let per_frame = obj
        .element_opt(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .ok()
        .flatten()
        .and_then(|e| e.items())
        .unwrap_or(&[]);
    if per_frame.len() < frames {
        return Err(Error::format(
            path,
            format!(
                "{frames} frames but {} per-frame functional groups",
                per_frame.len()
            ),
        ));
    }
    // Look a functional group up in the frame's groups, else in the shared ones.
    let group = |frame, seq| functional_group(frame, shared, seq);
    // Each frame: its placement and which segment (None: a label map).
    let mut placed: Vec<(FramePlacement, Option<u16>)> = Vec::with_capacity(frames);
    for (f, frame) in per_frame.iter().take(frames).enumerate() {
        let position = group(frame, tags::PLANE_POSITION_SEQUENCE)
            .and_then(|g| floats(g, tags::IMAGE_POSITION_PATIENT, 3))
            .ok_or_else(|| {
                Error::format(path, format!("frame {} has no ImagePositionPatient", f + 1))
            })?;
        let orientation = group(frame, tags::PLANE_ORIENTATION_SEQUENCE)
            .and_then(|g| floats(g, tags::IMAGE_ORIENTATION_PATIENT, 6))
            .ok_or_else(|| {
                Error::format(
                    path,
                    format!("frame {} has no ImageOrientationPatient", f + 1),
                )
            })?;
        let spacing = group(frame, tags::PIXEL_MEASURES_SEQUENCE)
            .and_then(|g| floats(g, tags::PIXEL_SPACING, 2))
            .ok_or_else(|| Error::format(path, format!("frame {} has no PixelSpacing", f + 1)))?;
        let placement = FramePlacement::new(
            ct,
            [position[0], position[1], position[2]],
            std::array::from_fn(|i| orientation[i]),
            [spacing[0], spacing[1]],
        )
        .ok_or_else(|| {
            Error::format(
                path,
                format!(
                    "frame {} does not lie on the CT's voxel grid ({}): another spacing, orientation or position — ctseg does not resample segmentations",
                    f + 1,
                    ct.describe()
                ),
            )
        })?;
        let segment = if kind == "LABELMAP" {
            None
        } else {
            Some(
                group(frame, tags::SEGMENT_IDENTIFICATION_SEQUENCE)
                    .and_then(|g| uint(g, tags::REFERENCED_SEGMENT_NUMBER))
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| {
                        Error::format(path, format!("frame {} names no segment", f + 1))
                    })?,
            )
        };
        placed.push((placement, segment));
    }

    // Voxels per segment on the CT (pixels outside the CT counted apart).
    let numbers: Vec<u16> = segments.iter().map(|s| s.number).collect();
    let index_of = |n: u16| numbers.iter().position(|&m| m == n);
    let mut outside = 0u64;
    let mut voxel_counts = vec![0u64; segments.len()];
    let each_voxel = |f: usize, visit: &mut dyn FnMut(Option<[usize; 3]>, usize)| {
        let (placement, _) = placed[f];
        let mut p = 0;
        while p < frame_pixels {
            // Most of a binary frame is empty: eight pixels at a time.
            let bit = f * frame_pixels + p;
            if bits == 1
                && bit.is_multiple_of(8)
                && p + 8 <= frame_pixels
                && pixel_bytes[bit / 8] == 0
            {
                p += 8;
                continue;
            }
            let value = pixel(f, p);
            if value >= threshold {
                visit(placement.voxel(p / cols, p % cols, ct.shape), value);
            }
            p += 1;
        }
    };
    for (f, &(_, segment)) in placed.iter().enumerate() {
        each_voxel(f, &mut |v, value| {
            let number = segment.or_else(|| u16::try_from(value).ok());
            match (v, number.and_then(index_of)) {
                (None, _) => outside += 1,
                (Some(_), Some(s)) => voxel_counts[s] += 1,
                (Some(_), None) => {}
            }
        });
    }

    // Paint segments from the largest to the smallest: where segments overlap, the
    // smaller one (a cyst in a kidney, a vessel in an organ) stays visible.
    let mut order: Vec<usize> = (0..segments.len())
        .filter(|&s| segments[s].label.is_some())
        .collect();
    order.sort_by_key(|&s| std::cmp::Reverse(voxel_counts[s]));
    let rank: Vec<usize> = {
        let mut r = vec![usize::MAX; segments.len()];
        for (i, &s) in order.iter().enumerate() {
            r[s] = i;
        }
        r
    };
    let structure_labels: Vec<Option<u8>> = segments.iter().map(|s| s.label).collect();
    let mut labels: LabelVolume = Volume::zeros(ct.clone());
    let mut painted_by: Vec<u16> = vec![u16::MAX; ct.voxel_count()];
    let mut overlapped = vec![false; 0];
    let mut overlap_voxels = 0u64;
    let mut frames_in_order: Vec<usize> = (0..frames).collect();
    // Label maps paint pixel by pixel below; binary frames by segment rank.
    frames_in_order.sort_by_key(|&f| placed[f].1.and_then(index_of).map_or(0, |s| rank[s]));
    for f in frames_in_order {
        each_voxel(f, &mut |v, value| {
            let Some(v) = v else { return };
            let number = placed[f].1.or_else(|| u16::try_from(value).ok());
            let Some(s) = number.and_then(index_of) else {
                return;
            };
            let Some(label) = structure_labels[s] else {
                return;
            };
            let i = labels.index(v);
            let before = painted_by[i];
            if before != u16::MAX && before as usize != s {
                if overlapped.is_empty() {
                    overlapped = vec![false; ct.voxel_count()];
                }
                if !overlapped[i] {
                    overlapped[i] = true;
                    overlap_voxels += 1;
                }
                if rank[s] < rank[before as usize] {
                    return; // a larger segment does not cover a smaller one
                }
            }
            painted_by[i] = s as u16;
            labels.data_mut()[i] = label;
        });
    }

    for (s, n) in segments.iter_mut().zip(&voxel_counts) {
        s.voxels = *n;
    }
    for s in &segments {
        if s.label.is_none() {
            warnings.push(format!(
                "{}: segment {} \"{}\" matches none of the 117 structures (by name or SNOMED code); left out",
                path.display(),
                s.number,
                s.segment_label
            ));
        }
    }
    if overlap_voxels > 0 {
        warnings.push(format!(
            "{}: {overlap_voxels} voxels belong to more than one segment; each was given the smallest of its segments",
            path.display()
        ));
    }
    if outside > 0 {
        warnings.push(format!(
            "{}: {outside} segmented pixels lie outside the CT and were left out",
            path.display()
        ));
    }
    Ok(LoadedDicomSeg {
        labels,
        segments,
        overlap_voxels,
        manual: all_manual,
        warnings,
    })
}

/// The structure a segment stands for: its label as a structure name (spaces or
/// case aside), else its SNOMED type code and laterality when they name exactly one.
fn structure_of(item: &InMemDicomObject, segment_label: &str) -> Option<u8> {
    let cat = catalog();
    let normalised = segment_label.trim().replace([' ', '-'], "_");
    if let Some(l) = cat.label_of(&normalised) {
        return Some(l);
    }
    if let Some(s) = cat
        .all()
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(&normalised))
    {
        return Some(s.label);
    }
    let type_item = first_item(item, tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE)?;
    let type_code = code_of(type_item)?;
    // The modifier sits in the type code item (current standard) or beside it (older).
    let modifier = first_item(
        type_item,
        tags::SEGMENTED_PROPERTY_TYPE_MODIFIER_CODE_SEQUENCE,
    )
    .or_else(|| first_item(item, tags::SEGMENTED_PROPERTY_TYPE_MODIFIER_CODE_SEQUENCE))
    .and_then(code_of);
    label_for_code(&type_code, modifier.as_ref())
}

fn code_of(item: &InMemDicomObject) -> Option<Code> {
    let value = text(item, tags::CODE_VALUE);
    (!value.is_empty()).then(|| Code {
        value,
        scheme: text(item, tags::CODING_SCHEME_DESIGNATOR),
        meaning: text(item, tags::CODE_MEANING),
    })
}

fn referenced_series(obj: &InMemDicomObject) -> Vec<String> {
    obj.element_opt(tags::REFERENCED_SERIES_SEQUENCE)
        .ok()
        .flatten()
        .and_then(|e| e.items())
        .unwrap_or(&[])
        .iter()
        .map(|i| uid(&text(i, tags::SERIES_INSTANCE_UID)))
        .filter(|u| !u.is_empty())
        .collect()
}

/// A functional group of a frame: its own, else the shared one.
fn functional_group<'a>(
    frame: &'a InMemDicomObject,
    shared: Option<&'a InMemDicomObject>,
    seq: Tag,
) -> Option<&'a InMemDicomObject> {
    first_item(frame, seq).or_else(|| shared.and_then(|s| first_item(s, seq)))
}

fn first_item(obj: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.items())
        .and_then(|i| i.first())
}

fn text(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| {
            e.to_str()
                .ok()
                .map(|s| s.trim_end_matches('\0').trim().to_string())
        })
        .unwrap_or_default()
}

fn uint(obj: &InMemDicomObject, tag: Tag) -> Option<usize> {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_int::<u32>().ok())
        .map(|v| v as usize)
}

fn floats(obj: &InMemDicomObject, tag: Tag, n: usize) -> Option<Vec<f64>> {
    let v = obj
        .element_opt(tag)
        .ok()
        .flatten()?
        .to_multi_float64()
        .ok()?;
    (v.len() >= n && v.iter().all(|x| x.is_finite())).then_some(v)
}
