//! Reading a CT series from a folder of DICOM files (dicom-rs).
//!
//! Slices are sorted along the slice normal by ImagePositionPatient, the slice
//! spacing comes from the positions (never SliceThickness), RescaleSlope/Intercept
//! give Hounsfield units, and the LPS patient coordinates become a RAS+
//! `world_from_voxel`. The volume is finally put in the voxel order dicom2nifti
//! (and therefore TotalSegmentator) produces — the closest to LAS — so its
//! segmentations line up voxel for voxel.
//!
//! Headers are distrusted: implausible sizes, geometry, rescale values and colour
//! images are refused with one line naming the file before anything big is
//! allocated, and the series as a whole is capped at [`MAX_SERIES_VOXELS`].

use std::collections::BTreeMap;
use std::io::Read;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, FileMetaTableBuilder, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;

mod scan;
pub mod seg;
mod source;

use scan::{MAX_SCAN_DEPTH, scan_folder};
pub use source::{DicomSource, SourceInstance, StudyTags};

use crate::error::{Error, Result, panic_message};
use crate::geometry::{Geometry, IDENTITY, PLAUSIBLE_SPACING_MM, short_number};
use crate::volume::{Volume, Voxel};

/// The voxel order ctseg gives DICOM volumes (as dicom2nifti does).
pub const DICOM_ORIENTATION: &str = "LAS";

/// Most voxels one series may have: 2³¹, i.e. 4 GiB of `i16` (8192 slices of
/// 512×512). Bigger headers are refused before anything is allocated.
pub const MAX_SERIES_VOXELS: u64 = 1 << 31;

/// Plausible PixelSpacing values in mm ([`PLAUSIBLE_SPACING_MM`], as for NIfTI);
/// anything outside is refused as corrupt.
pub const PIXEL_SPACING_RANGE_MM: RangeInclusive<f64> = PLAUSIBLE_SPACING_MM;

/// Plausible distances between neighbouring slices in mm (from ImagePositionPatient,
/// or the thickness of a single slice; [`PLAUSIBLE_SPACING_MM`]); anything outside
/// is refused as corrupt.
pub const SLICE_STEP_RANGE_MM: RangeInclusive<f64> = PLAUSIBLE_SPACING_MM;

/// Plausible RescaleSlope values: 0, negative, non-finite or absurd slopes are
/// refused.
pub const RESCALE_SLOPE_RANGE: RangeInclusive<f64> = 1e-4..=1e4;

/// Largest plausible magnitude of RescaleIntercept (HU).
pub const MAX_RESCALE_INTERCEPT: f64 = 1e5;

/// Largest plausible magnitude of an ImagePositionPatient coordinate in mm (1 km).
pub const MAX_POSITION_MM: f64 = 1e6;

/// Most decoded pixels held by all decoding threads at once (2²⁸, about 1.5 GiB
/// with the decoder's own buffers): fewer threads for huge slices.
const MAX_PIXELS_IN_FLIGHT: usize = 1 << 28;

/// A CT series read from DICOM files.
#[derive(Debug, Clone)]
pub struct DicomSeries {
    /// HU voxels with RAS+ geometry.
    pub volume: Volume<i16>,
    /// Stored pixel type (`int16`/`uint16`).
    pub dtype: String,
    /// SeriesInstanceUID of the series that was read.
    pub series_uid: String,
    /// Number of slice files.
    pub slices: usize,
    /// Non-fatal remarks (other series skipped, files that are not DICOM…).
    pub warnings: Vec<String>,
    /// The study, series and instances the volume came from (for DICOM-SEG).
    pub source: DicomSource,
}

/// Header fields of one slice file.
#[derive(Debug, Clone)]
struct SliceHeader {
    path: PathBuf,
    modality: String,
    series_uid: String,
    /// SOPClassUID of the slice.
    sop_class_uid: String,
    /// SOPInstanceUID of the slice (empty in anonymised exports).
    sop_instance_uid: String,
    /// Patient, study and frame of reference of the slice.
    study: StudyTags,
    rows: usize,
    cols: usize,
    position: [f64; 3],
    orientation: [f64; 6],
    spacing: [f64; 2],
    /// SpacingBetweenSlices, else SliceThickness (used only for a single slice).
    thickness: Option<f64>,
    /// SliceThickness alone (what a derived object repeats).
    slice_thickness: Option<f64>,
    frames: usize,
    /// PhotometricInterpretation (empty when absent).
    photometric: String,
    samples_per_pixel: usize,
    bits_allocated: usize,
    bits_stored: usize,
    slope: f64,
    intercept: f64,
    /// Transfer syntax UID of the file.
    transfer_syntax: String,
    /// Size of the file on disk.
    file_bytes: u64,
}

/// Read the CT series in `dir` (searched recursively). When the folder holds several
/// series, the CT series with the most slices is read and the others are listed in
/// the warnings.
pub fn read_series(dir: &Path) -> Result<DicomSeries> {
    let scan = scan_folder(dir)?;
    let scan_warnings = scan.warnings(dir);
    // Said in every "nothing found" error: the files may sit deeper.
    let deep_note = if scan.too_deep {
        format!("; folders more than {MAX_SCAN_DEPTH} levels down were not searched")
    } else {
        String::new()
    };
    let mut files = scan.files;
    files.sort();
    if files.is_empty() {
        let message = if scan.too_deep {
            format!("no DICOM files or CT found{deep_note}")
        } else if scan_warnings.is_empty() {
            "folder is empty: no DICOM files or CT found".to_string()
        } else {
            format!(
                "no files to read: no DICOM files or CT found ({})",
                scan_warnings.join("; ")
            )
        };
        return Err(Error::format(dir, message));
    }
    let mut headers = Vec::new();
    let mut not_dicom = 0usize;
    // Modality (or SOP class) → count, for DICOM files without image data.
    let mut not_images: BTreeMap<String, usize> = BTreeMap::new();
    let mut unreadable = Vec::new();
    for f in &files {
        let Ok(obj) = open_dicom(f, true) else {
            not_dicom += 1;
            continue;
        };
        // A Segmentation has pixels but is no CT slice: listed, not read.
        if !has_image(&obj)
            || source::uid(&text(&obj, tags::SOP_CLASS_UID)) == seg::SEGMENTATION_STORAGE
        {
            *not_images.entry(object_kind(&obj)).or_default() += 1;
            continue;
        }
        match slice_header(&obj, f) {
            Ok(h) => headers.push(h),
            Err(e) => unreadable.push(e.to_string()),
        }
    }
    let non_images: usize = not_images.values().sum();
    let kinds = not_images.keys().cloned().collect::<Vec<_>>().join(", ");
    if headers.is_empty() {
        let message = match unreadable.first() {
            Some(e) => format!("no readable DICOM image slices ({e}){deep_note}"),
            None if non_images > 0 => format!(
                "{non_images} DICOM file{} ({kinds}), none of them a CT image{deep_note}",
                if non_images == 1 { "" } else { "s" }
            ),
            None => format!(
                "no DICOM files found ({} files, none of them DICOM, no ct.nii.gz){deep_note}",
                files.len()
            ),
        };
        return Err(Error::format(dir, message));
    }
    let mut series: BTreeMap<String, Vec<SliceHeader>> = BTreeMap::new();
    for h in headers {
        series.entry(h.series_uid.clone()).or_default().push(h);
    }
    let modalities: Vec<String> = series.values().map(|s| s[0].modality.clone()).collect();
    let (uid, mut slices) = series
        .iter()
        .filter(|(_, s)| s[0].modality == "CT")
        .max_by_key(|(_, s)| s.len())
        .map(|(u, s)| (u.clone(), s.clone()))
        .ok_or_else(|| {
            Error::format(
                dir,
                format!(
                    "no CT series among the DICOM files (modalities found: {})",
                    modalities.join(", ")
                ),
            )
        })?;
    let mut warnings = scan_warnings;
    if series.len() > 1 {
        warnings.push(format!(
            "{}: {} series found; read the CT series {} ({} slices)",
            dir.display(),
            series.len(),
            uid,
            slices.len()
        ));
    }
    if not_dicom > 0 {
        warnings.push(format!(
            "{}: {not_dicom} files that are not DICOM were skipped",
            dir.display()
        ));
    }
    if non_images > 0 {
        warnings.push(format!(
            "{}: {non_images} DICOM files holding no CT image ({kinds}) were skipped",
            dir.display()
        ));
    }
    for e in unreadable {
        warnings.push(format!("skipped: {e}"));
    }
    let (volume, dtype, clamp_warning) = assemble(dir, &mut slices)?;
    warnings.extend(clamp_warning);
    let source = dicom_source(&slices, &volume);
    let t = volume
        .geometry()
        .transform_to(DICOM_ORIENTATION)
        .ok_or_else(|| Error::format(dir, "cannot orient the series"))?;
    Ok(DicomSeries {
        volume: volume.transformed(&t),
        dtype,
        series_uid: uid,
        slices: slices.len(),
        warnings,
        source,
    })
}

/// Open a DICOM file, up to its pixel data when `header_only`: a standard file with
/// or without the 128-byte preamble, a file meta group without the "DICM" magic, or
/// a bare data set without any file meta group (as some exports write). The error
/// is dicom-rs's for the standard reading.
fn open_dicom(path: &Path, header_only: bool) -> std::result::Result<DefaultDicomObject, String> {
    let options = || {
        let o = OpenFileOptions::new();
        if header_only {
            o.read_until(tags::PIXEL_DATA)
        } else {
            o
        }
    };
    let error = match options().open_file(path) {
        Ok(obj) => return Ok(obj),
        Err(e) => e.to_string(),
    };
    let mut head = [0u8; 8];
    let Ok(mut file) = std::fs::File::open(path) else {
        return Err(error);
    };
    if file.read_exact(&mut head).is_err() {
        return Err(error);
    }
    // Little-endian group number of the first element; an explicit VR has two
    // capital letters after the tag.
    let group = u16::from_le_bytes([head[0], head[1]]);
    let explicit = head[4].is_ascii_uppercase() && head[5].is_ascii_uppercase();
    let mut prefix = b"DICM".to_vec();
    match group {
        0x0002 if explicit => {}
        0x0008 => {
            let ts = if explicit {
                "1.2.840.10008.1.2.1"
            } else {
                "1.2.840.10008.1.2"
            };
            // The SOP class and instance are placeholders: ctseg reads them from
            // the data set.
            let meta = FileMetaTableBuilder::new()
                .transfer_syntax(ts)
                .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
                .media_storage_sop_instance_uid("1.2.3")
                .build()
                .map_err(|_| error.clone())?;
            meta.write(&mut prefix).map_err(|_| error.clone())?;
        }
        _ => return Err(error),
    }
    let Ok(file) = std::fs::File::open(path) else {
        return Err(error);
    };
    options()
        .from_reader(std::io::Cursor::new(prefix).chain(std::io::BufReader::new(file)))
        .map_err(|_| error)
}

/// Whether a DICOM object is an image (has Rows and Columns); RTSTRUCT, SR, KO…
/// are not.
fn has_image(obj: &DefaultDicomObject) -> bool {
    [tags::ROWS, tags::COLUMNS]
        .into_iter()
        .all(|t| obj.element_opt(t).ok().flatten().is_some())
}

/// What a DICOM object is, for messages: its Modality, else its SOP class.
fn object_kind(obj: &DefaultDicomObject) -> String {
    let modality = text(obj, tags::MODALITY);
    if !modality.is_empty() {
        return modality;
    }
    let class = text(obj, tags::SOP_CLASS_UID);
    if class.is_empty() {
        "no Modality".to_string()
    } else {
        format!("SOP class {}", class.trim_end_matches('\0'))
    }
}

/// Transfer syntaxes whose pixel data is stored uncompressed in the file.
fn is_native(transfer_syntax: &str) -> bool {
    matches!(
        transfer_syntax,
        "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1" | "1.2.840.10008.1.2.2"
    )
}

/// A transfer syntax for messages: its name (for the common ones) and UID.
fn transfer_syntax_label(uid: &str) -> String {
    let name = match uid {
        "1.2.840.10008.1.2" => "Implicit VR Little Endian",
        "1.2.840.10008.1.2.1" => "Explicit VR Little Endian",
        "1.2.840.10008.1.2.1.99" => "Deflated Explicit VR Little Endian",
        "1.2.840.10008.1.2.2" => "Explicit VR Big Endian",
        "1.2.840.10008.1.2.4.50" => "JPEG Baseline (Process 1)",
        "1.2.840.10008.1.2.4.51" => "JPEG Extended (Process 2 & 4)",
        "1.2.840.10008.1.2.4.57" => "JPEG Lossless, Non-Hierarchical (Process 14)",
        "1.2.840.10008.1.2.4.70" => "JPEG Lossless, Non-Hierarchical, First-Order Prediction",
        "1.2.840.10008.1.2.4.80" => "JPEG-LS Lossless Image Compression",
        "1.2.840.10008.1.2.4.81" => "JPEG-LS Lossy (Near-Lossless) Image Compression",
        "1.2.840.10008.1.2.4.90" => "JPEG 2000 Image Compression (Lossless Only)",
        "1.2.840.10008.1.2.4.91" => "JPEG 2000 Image Compression",
        "1.2.840.10008.1.2.4.201" => "High-Throughput JPEG 2000 (Lossless Only)",
        "1.2.840.10008.1.2.4.202" => "High-Throughput JPEG 2000 with RPCL Options (Lossless Only)",
        "1.2.840.10008.1.2.4.203" => "High-Throughput JPEG 2000",
        "1.2.840.10008.1.2.5" => "RLE Lossless",
        _ => "transfer syntax",
    };
    format!("{name} {uid}")
}

/// A byte count for messages: `512 bytes`, `32 KiB`, `8.0 GiB`.
fn byte_size(n: u128) -> String {
    const KIB: u128 = 1 << 10;
    const MIB: u128 = 1 << 20;
    const GIB: u128 = 1 << 30;
    match n {
        GIB.. => format!("{:.1} GiB", n as f64 / GIB as f64),
        MIB.. => format!("{:.1} MiB", n as f64 / MIB as f64),
        KIB.. => format!("{} KiB", n / KIB),
        _ => format!("{n} bytes"),
    }
}

/// Bytes of uncompressed pixel data the header of a slice declares.
fn declared_pixel_bytes(s: &SliceHeader) -> u128 {
    (s.rows as u128 * s.cols as u128 * s.frames as u128 * s.samples_per_pixel as u128)
        .saturating_mul(s.bits_allocated as u128)
        .div_ceil(8)
}

/// Refuse a slice whose header is not a plausible greyscale CT image, before any
/// pixel data is read or memory allocated.
fn check_slice(s: &SliceHeader) -> Result<()> {
    let refuse = |message: String| Err(Error::format(&s.path, message));
    if s.rows == 0 || s.cols == 0 || s.frames == 0 {
        return refuse(format!(
            "empty image: Rows×Columns = {}×{}, {} frames",
            s.rows, s.cols, s.frames
        ));
    }
    if !matches!(s.photometric.as_str(), "MONOCHROME1" | "MONOCHROME2" | "") {
        let article = if s
            .photometric
            .starts_with(['A', 'E', 'H', 'I', 'O', 'R', 'U'])
        {
            "an"
        } else {
            "a"
        };
        return refuse(format!(
            "is {article} {} image, not a greyscale CT",
            s.photometric
        ));
    }
    if s.samples_per_pixel != 1 {
        return refuse(format!(
            "{} samples per pixel: a colour image, not a greyscale CT",
            s.samples_per_pixel
        ));
    }
    if !matches!(s.bits_allocated, 8 | 16 | 32)
        || s.bits_stored == 0
        || s.bits_stored > s.bits_allocated
    {
        return refuse(format!(
            "BitsAllocated {} with BitsStored {}: not a CT pixel format",
            s.bits_allocated, s.bits_stored
        ));
    }
    if !RESCALE_SLOPE_RANGE.contains(&s.slope) {
        return refuse(format!(
            "RescaleSlope {} is not plausible (ctseg reads {}..={})",
            short_number(s.slope),
            short_number(*RESCALE_SLOPE_RANGE.start()),
            short_number(*RESCALE_SLOPE_RANGE.end())
        ));
    }
    if !(-MAX_RESCALE_INTERCEPT..=MAX_RESCALE_INTERCEPT).contains(&s.intercept) {
        return refuse(format!(
            "RescaleIntercept {} is not plausible (ctseg reads ±{})",
            short_number(s.intercept),
            short_number(MAX_RESCALE_INTERCEPT)
        ));
    }
    if let Some(v) = s
        .spacing
        .iter()
        .find(|v| !PIXEL_SPACING_RANGE_MM.contains(v))
    {
        return refuse(format!(
            "PixelSpacing {} mm is not plausible (ctseg reads {}..={} mm)",
            short_number(*v),
            short_number(*PIXEL_SPACING_RANGE_MM.start()),
            short_number(*PIXEL_SPACING_RANGE_MM.end())
        ));
    }
    if let Some(v) = s.position.iter().find(|v| v.abs() > MAX_POSITION_MM) {
        return refuse(format!(
            "ImagePositionPatient coordinate {} mm is not plausible (ctseg reads ±{} mm)",
            short_number(*v),
            short_number(MAX_POSITION_MM)
        ));
    }
    let needed = declared_pixel_bytes(s);
    if is_native(&s.transfer_syntax) && needed > u128::from(s.file_bytes) {
        return refuse(format!(
            "Rows×Columns = {}×{} needs {} of pixel data but the file holds {}",
            s.rows,
            s.cols,
            byte_size(needed),
            byte_size(u128::from(s.file_bytes))
        ));
    }
    Ok(())
}

/// Check the pixel data of a fully read slice against its header: enough bytes for
/// native data; for JPEG 2000, a codestream of the declared size (the decoder
/// writes past its buffer otherwise).
fn check_pixel_data(obj: &DefaultDicomObject, s: &SliceHeader) -> Result<()> {
    let element = obj
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .ok_or_else(|| Error::format(&s.path, "DICOM image without PixelData"))?;
    if let Some(native) = element.value().primitive() {
        let held = native.calculate_byte_len() as u128;
        let needed = declared_pixel_bytes(s);
        if held < needed {
            return Err(Error::format(
                &s.path,
                format!(
                    "pixel data holds {held} bytes; Rows×Columns×BitsAllocated ({}×{}×{} bits) needs {needed}",
                    s.rows, s.cols, s.bits_allocated
                ),
            ));
        }
    } else if let Some(fragments) = element.value().fragments() {
        let Some(first) = fragments.iter().find(|f| !f.is_empty()) else {
            return Err(Error::format(
                &s.path,
                "compressed pixel data without any data fragment",
            ));
        };
        if let Some((width, height)) = j2k_size(first)
            && (width as usize != s.cols || height as usize != s.rows)
        {
            return Err(Error::format(
                &s.path,
                format!(
                    "the JPEG 2000 image is {width}×{height} pixels but Columns×Rows say {}×{}",
                    s.cols, s.rows
                ),
            ));
        }
    }
    Ok(())
}

/// Width and height of a JPEG 2000 codestream, from its SIZ marker segment (None
/// when the bytes do not start with one).
fn j2k_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || bytes[0..4] != [0xFF, 0x4F, 0xFF, 0x51] {
        return None;
    }
    let at = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let (x, y, x0, y0) = (at(8), at(12), at(16), at(20));
    Some((x.checked_sub(x0)?, y.checked_sub(y0)?))
}

fn text(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> String {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok().map(|s| s.trim().to_string()))
        .unwrap_or_default()
}

fn floats(
    obj: &DefaultDicomObject,
    tag: dicom_core::Tag,
    name: &str,
    path: &Path,
    n: usize,
) -> Result<Vec<f64>> {
    let v = obj
        .element_opt(tag)
        .ok()
        .flatten()
        .ok_or_else(|| Error::format(path, format!("DICOM slice without {name}")))?
        .to_multi_float64()
        .map_err(|e| Error::format(path, format!("invalid {name}: {e}")))?;
    if v.len() < n || v.iter().any(|x| !x.is_finite()) {
        return Err(Error::format(path, format!("invalid {name}: {v:?}")));
    }
    Ok(v)
}

fn slice_header(obj: &DefaultDicomObject, path: &Path) -> Result<SliceHeader> {
    let int = |tag, name: &str| -> Result<usize> {
        obj.element_opt(tag)
            .ok()
            .flatten()
            .ok_or_else(|| Error::format(path, format!("DICOM image without {name}")))?
            .to_int::<u32>()
            .map(|v| v as usize)
            .map_err(|e| Error::format(path, format!("invalid {name}: {e}")))
    };
    let rows = int(tags::ROWS, "Rows")?;
    let cols = int(tags::COLUMNS, "Columns")?;
    let frames = obj
        .element_opt(tags::NUMBER_OF_FRAMES)
        .ok()
        .flatten()
        .and_then(|e| e.to_int::<u32>().ok())
        .unwrap_or(1) as usize;
    let p = floats(
        obj,
        tags::IMAGE_POSITION_PATIENT,
        "ImagePositionPatient",
        path,
        3,
    )?;
    let o = floats(
        obj,
        tags::IMAGE_ORIENTATION_PATIENT,
        "ImageOrientationPatient",
        path,
        6,
    )?;
    let s = floats(obj, tags::PIXEL_SPACING, "PixelSpacing", path, 2)?;
    if s[0] <= 0.0 || s[1] <= 0.0 {
        return Err(Error::format(path, format!("invalid PixelSpacing {s:?}")));
    }
    // Absent or empty: the default; present but not a number: an error.
    let given = |tag| {
        obj.element_opt(tag)
            .ok()
            .flatten()
            .filter(|e| e.to_str().is_ok_and(|v| !v.trim().is_empty()))
    };
    let optional_int = |tag, name: &str, default: usize| -> Result<usize> {
        given(tag).map_or(Ok(default), |e| {
            e.to_int::<u32>()
                .map(|v| v as usize)
                .map_err(|e| Error::format(path, format!("invalid {name}: {e}")))
        })
    };
    let optional_float = |tag, name: &str, default: f64| -> Result<f64> {
        given(tag).map_or(Ok(default), |e| {
            e.to_float64()
                .map_err(|e| Error::format(path, format!("invalid {name}: {e}")))
        })
    };
    let bits_allocated = int(tags::BITS_ALLOCATED, "BitsAllocated")?;
    let file_bytes = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    Ok(SliceHeader {
        path: path.to_path_buf(),
        modality: text(obj, tags::MODALITY),
        series_uid: source::uid(&text(obj, tags::SERIES_INSTANCE_UID)),
        sop_class_uid: source::uid(&text(obj, tags::SOP_CLASS_UID)),
        sop_instance_uid: source::uid(&text(obj, tags::SOP_INSTANCE_UID)),
        study: StudyTags::read(obj),
        rows,
        cols,
        position: [p[0], p[1], p[2]],
        orientation: [o[0], o[1], o[2], o[3], o[4], o[5]],
        spacing: [s[0], s[1]],
        thickness: [tags::SPACING_BETWEEN_SLICES, tags::SLICE_THICKNESS]
            .into_iter()
            .filter_map(|t| {
                obj.element_opt(t)
                    .ok()
                    .flatten()
                    .and_then(|e| e.to_float64().ok())
            })
            .find(|v| v.is_finite() && *v > 0.0),
        slice_thickness: obj
            .element_opt(tags::SLICE_THICKNESS)
            .ok()
            .flatten()
            .and_then(|e| e.to_float64().ok())
            .filter(|v| v.is_finite() && *v > 0.0),
        frames,
        photometric: text(obj, tags::PHOTOMETRIC_INTERPRETATION),
        samples_per_pixel: optional_int(tags::SAMPLES_PER_PIXEL, "SamplesPerPixel", 1)?,
        bits_allocated,
        bits_stored: optional_int(tags::BITS_STORED, "BitsStored", bits_allocated)?,
        slope: optional_float(tags::RESCALE_SLOPE, "RescaleSlope", 1.0)?,
        intercept: optional_float(tags::RESCALE_INTERCEPT, "RescaleIntercept", 0.0)?,
        transfer_syntax: obj
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .trim()
            .to_string(),
        file_bytes,
    })
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Sort, validate and decode the slices of one series into a volume in DICOM order
/// (i along rows, j down columns, k along the slice normal); also the stored pixel
/// type and a warning when rescaled values had to be clamped to int16.
fn assemble(
    dir: &Path,
    slices: &mut [SliceHeader],
) -> Result<(Volume<i16>, String, Option<String>)> {
    let first = slices[0].clone();
    if first.frames > 1 {
        return Err(Error::unsupported(
            &first.path,
            format!("multi-frame (enhanced) DICOM with {} frames", first.frames),
        ));
    }
    for s in slices.iter() {
        check_slice(s)?;
        if s.rows != first.rows || s.cols != first.cols {
            return Err(Error::format(
                &s.path,
                format!(
                    "slice is {}×{}, the series is {}×{}",
                    s.cols, s.rows, first.cols, first.rows
                ),
            ));
        }
        if s.orientation
            .iter()
            .zip(first.orientation)
            .any(|(a, b)| (a - b).abs() > 1e-3)
        {
            return Err(Error::format(
                &s.path,
                "slice orientation differs from the rest of the series",
            ));
        }
    }
    let o = first.orientation;
    let row_dir = [o[0], o[1], o[2]];
    let col_dir = [o[3], o[4], o[5]];
    let normal = cross(row_dir, col_dir);
    let unit = |v: [f64; 3]| (dot(v, v).sqrt() - 1.0).abs() <= 0.01;
    if !unit(row_dir) || !unit(col_dir) || dot(row_dir, col_dir).abs() > 0.01 {
        return Err(Error::format(
            &first.path,
            format!("invalid ImageOrientationPatient {o:?}: not two perpendicular unit vectors"),
        ));
    }
    slices.sort_by(|a, b| dot(a.position, normal).total_cmp(&dot(b.position, normal)));
    let z: Vec<f64> = slices.iter().map(|s| dot(s.position, normal)).collect();
    let gaps: Vec<f64> = z.windows(2).map(|w| w[1] - w[0]).collect();
    if let Some(i) = gaps.iter().position(|g| g.abs() < 1e-4) {
        return Err(Error::format(
            dir,
            format!(
                "two slices at the same position ({} and {}): several acquisitions in one series?",
                slices[i].path.display(),
                slices[i + 1].path.display()
            ),
        ));
    }
    let (lo, hi) = (SLICE_STEP_RANGE_MM.start(), SLICE_STEP_RANGE_MM.end());
    if let Some(i) = gaps.iter().position(|g| !SLICE_STEP_RANGE_MM.contains(g)) {
        return Err(Error::format(
            &slices[i + 1].path,
            format!(
                "slice is {} mm from the slice before it ({}); ctseg reads slice steps of {}..={} mm",
                short_number(gaps[i]),
                slices[i].path.display(),
                short_number(*lo),
                short_number(*hi)
            ),
        ));
    }
    let n = slices.len();
    let step = if n > 1 {
        let mut sorted = gaps.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let worst = gaps.iter().map(|g| (g - median).abs()).fold(0.0, f64::max);
        if worst > 0.1 * median {
            return Err(Error::format(
                dir,
                format!(
                    "uneven slice spacing (median {median:.3} mm, off by up to {worst:.3} mm): missing slices?"
                ),
            ));
        }
        let (a, b) = (slices[0].position, slices[n - 1].position);
        std::array::from_fn(|r| (b[r] - a[r]) / (n - 1) as f64)
    } else {
        // One slice: its thickness is the only spacing there is.
        let t = first.thickness.unwrap_or(1.0);
        if !SLICE_STEP_RANGE_MM.contains(&t) {
            return Err(Error::format(
                &first.path,
                format!(
                    "slice thickness {} mm is not plausible (ctseg reads {}..={} mm)",
                    short_number(t),
                    short_number(*lo),
                    short_number(*hi)
                ),
            ));
        }
        normal.map(|v| v * t)
    };

    let voxels = first.cols as u128 * first.rows as u128 * n as u128;
    if voxels > u128::from(MAX_SERIES_VOXELS) {
        return Err(Error::format(
            dir,
            format!(
                "the series would be {} ({}×{}×{n} voxels of int16), more than ctseg's limit of {} ({MAX_SERIES_VOXELS} voxels)",
                byte_size(voxels * 2),
                first.cols,
                first.rows,
                byte_size(u128::from(MAX_SERIES_VOXELS) * 2)
            ),
        ));
    }

    // LPS world_from_voxel, then RAS+ by negating x and y.
    let (dr, dc) = (first.spacing[1], first.spacing[0]); // column spacing, row spacing
    let p0 = slices[0].position;
    let mut m = IDENTITY;
    for r in 0..3 {
        m[r][0] = row_dir[r] * dr;
        m[r][1] = col_dir[r] * dc;
        m[r][2] = step[r];
        m[r][3] = p0[r];
    }
    for row in m.iter_mut().take(2) {
        for v in row.iter_mut() {
            *v = -*v;
        }
    }
    let geometry = Geometry::new([first.cols, first.rows, n], m);
    let per_slice = first.cols * first.rows;
    let mut data: Vec<i16> = Vec::new();
    data.try_reserve_exact(geometry.voxel_count())
        .map_err(|e| {
            Error::format(
                dir,
                format!(
                    "cannot allocate {} for the series: {e}",
                    byte_size(voxels * 2)
                ),
            )
        })?;
    data.resize(geometry.voxel_count(), 0);
    let decode = |s: &SliceHeader, out: &mut [i16]| -> Result<Decoded> {
        let obj = open_dicom(&s.path, false)
            .map_err(|e| Error::format(&s.path, format!("unreadable DICOM file: {e}")))?;
        check_pixel_data(&obj, s)?;
        let pixels = obj.decode_pixel_data().map_err(|e| {
            Error::format(
                &s.path,
                format!(
                    "cannot decode pixel data ({}): {}",
                    transfer_syntax_label(&s.transfer_syntax),
                    error_chain(&e)
                ),
            )
        })?;
        if pixels.samples_per_pixel() != 1 {
            return Err(Error::format(&s.path, "not a greyscale image"));
        }
        // The modality LUT (RescaleSlope/Intercept) is applied here; MONOCHROME1
        // is not inverted, which is right for HU.
        let values: Vec<f32> = pixels.to_vec().map_err(|e| {
            Error::format(
                &s.path,
                format!("cannot convert pixel data: {}", error_chain(&e)),
            )
        })?;
        if values.len() < per_slice {
            return Err(Error::format(
                &s.path,
                "pixel data shorter than Rows×Columns",
            ));
        }
        let mut d = Decoded::default();
        for (o, v) in out.iter_mut().zip(values) {
            let (value, clamped) = i16::from_f64(f64::from(v));
            *o = value;
            if clamped {
                d.clamp(f64::from(v));
            }
        }
        let signed = matches!(
            pixels.pixel_representation(),
            dicom_pixeldata::PixelRepresentation::Signed
        );
        d.dtype = format!(
            "{}int{}",
            if signed { "" } else { "u" },
            pixels.bits_allocated()
        );
        Ok(d)
    };
    // A panicking decoder (a malformed codestream) fails its slice, named.
    let decode_slice = |s: &SliceHeader, out: &mut [i16]| -> Result<Decoded> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode(s, out))).unwrap_or_else(
            |payload| {
                Err(Error::format(
                    &s.path,
                    format!("the DICOM decoder crashed: {}", panic_message(&*payload)),
                ))
            },
        )
    };
    // Decoding (JPEG 2000 for many scanners) dominates; spread it over the cores,
    // with fewer threads for huge slices.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(n.max(1))
        .min((MAX_PIXELS_IN_FLIGHT / per_slice).max(1));
    let chunk = n.div_ceil(threads);
    let results: Vec<Result<Decoded>> = std::thread::scope(|scope| {
        let handles: Vec<_> = data
            .chunks_mut(per_slice * chunk)
            .zip(slices.chunks(chunk))
            .map(|(block, headers)| {
                scope.spawn(move || -> Result<Decoded> {
                    let mut total = Decoded::default();
                    for (out, s) in block.chunks_mut(per_slice).zip(headers) {
                        total.merge(decode_slice(s, out)?);
                    }
                    Ok(total)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::format(dir, "DICOM decoder crashed")))
            })
            .collect()
    });
    let mut total = Decoded::default();
    for r in results {
        total.merge(r?);
    }
    let warning = (total.clamped > 0).then(|| {
        format!(
            "{}: {} voxels outside the int16 range after RescaleSlope/Intercept (values {}..{}) were clamped to -32768..32767",
            dir.display(),
            total.clamped,
            short_number(total.clamped_range.0),
            short_number(total.clamped_range.1)
        )
    });
    Ok((Volume::new(geometry, data)?, total.dtype, warning))
}

/// The source description of sorted, assembled slices (`volume` in DICOM order).
fn dicom_source(slices: &[SliceHeader], volume: &Volume<i16>) -> DicomSource {
    let first = &slices[0];
    let step = volume.geometry().spacing()[2];
    DicomSource {
        study: first.study.clone(),
        series_uid: first.series_uid.clone(),
        orientation_lps: first.orientation,
        pixel_spacing_mm: first.spacing,
        slice_step_mm: step,
        slice_thickness_mm: first.slice_thickness,
        rows: first.rows,
        columns: first.cols,
        instances: slices
            .iter()
            .map(|s| SourceInstance {
                sop_class_uid: s.sop_class_uid.clone(),
                sop_instance_uid: s.sop_instance_uid.clone(),
                position_lps: s.position,
            })
            .collect(),
    }
}

/// What decoding slices gave besides the voxels.
#[derive(Debug)]
struct Decoded {
    /// Stored pixel type (`int16`, `uint16`…).
    dtype: String,
    /// Voxels whose rescaled value did not fit in int16.
    clamped: u64,
    /// Lowest and highest of those values.
    clamped_range: (f64, f64),
}

impl Default for Decoded {
    fn default() -> Self {
        Decoded {
            dtype: String::from("int16"),
            clamped: 0,
            clamped_range: (f64::INFINITY, f64::NEG_INFINITY),
        }
    }
}

impl Decoded {
    fn clamp(&mut self, v: f64) {
        self.clamped += 1;
        self.clamped_range = (self.clamped_range.0.min(v), self.clamped_range.1.max(v));
    }

    fn merge(&mut self, other: Decoded) {
        self.dtype = other.dtype;
        self.clamped += other.clamped;
        self.clamped_range = (
            self.clamped_range.0.min(other.clamped_range.0),
            self.clamped_range.1.max(other.clamped_range.1),
        );
    }
}

/// An error of a library with its causes, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts
        .join(": ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
