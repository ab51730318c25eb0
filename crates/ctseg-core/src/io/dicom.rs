//! Reading a CT series from a folder of DICOM files (dicom-rs).
//!
//! Slices are sorted along the slice normal by ImagePositionPatient, the slice
//! spacing comes from the positions (never SliceThickness), RescaleSlope/Intercept
//! give Hounsfield units, and the LPS patient coordinates become a RAS+
//! `world_from_voxel`. The volume is finally put in the voxel order dicom2nifti
//! (and therefore TotalSegmentator) produces — the closest to LAS — so its
//! segmentations line up voxel for voxel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;

use crate::error::{Error, Result};
use crate::geometry::{Geometry, IDENTITY};
use crate::volume::{Volume, Voxel};

/// The voxel order ctseg gives DICOM volumes (as dicom2nifti does).
pub const DICOM_ORIENTATION: &str = "LAS";

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
}

/// Header fields of one slice file.
#[derive(Debug, Clone)]
struct SliceHeader {
    path: PathBuf,
    modality: String,
    series_uid: String,
    rows: usize,
    cols: usize,
    position: [f64; 3],
    orientation: [f64; 6],
    spacing: [f64; 2],
    /// SpacingBetweenSlices, else SliceThickness (used only for a single slice).
    thickness: Option<f64>,
    frames: usize,
}

/// Read the CT series in `dir` (searched recursively). When the folder holds several
/// series, the CT series with the most slices is read and the others are listed in
/// the warnings.
pub fn read_series(dir: &Path) -> Result<DicomSeries> {
    let scan = scan_folder(dir)?;
    let scan_warnings = scan.warnings(dir);
    let mut files = scan.files;
    files.sort();
    if files.is_empty() {
        let message = if scan_warnings.is_empty() {
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
    let mut unreadable = Vec::new();
    for f in &files {
        let obj = match OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(f)
        {
            Ok(o) => o,
            Err(_) => {
                not_dicom += 1;
                continue;
            }
        };
        match slice_header(&obj, f) {
            Ok(h) => headers.push(h),
            Err(e) => unreadable.push(e.to_string()),
        }
    }
    if headers.is_empty() {
        return Err(match unreadable.first() {
            Some(e) => Error::format(dir, format!("no readable DICOM image slices ({e})")),
            None => Error::format(
                dir,
                format!(
                    "no DICOM files found ({} files, none of them DICOM, no ct.nii.gz)",
                    files.len()
                ),
            ),
        });
    }
    let mut series: BTreeMap<String, Vec<SliceHeader>> = BTreeMap::new();
    for h in headers {
        series.entry(h.series_uid.clone()).or_default().push(h);
    }
    let modalities: Vec<String> = series.values().map(|s| s[0].modality.clone()).collect();
    let (uid, slices) = series
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
    for e in unreadable {
        warnings.push(format!("skipped: {e}"));
    }
    let (volume, dtype) = assemble(dir, slices.clone())?;
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
    })
}

/// Deepest folder level below the series folder that is searched.
const MAX_SCAN_DEPTH: usize = 8;
/// Most files one series folder scan lists.
const MAX_SCAN_FILES: usize = 200_000;

/// What a folder scan found, and what it left out and why.
#[derive(Debug, Default)]
struct FolderScan {
    /// Regular files inside the folder.
    files: Vec<PathBuf>,
    /// Entries left out (unreadable, not a regular file, a link leaving the folder).
    skipped: Vec<String>,
    /// Whether folders deeper than [`MAX_SCAN_DEPTH`] were not searched.
    too_deep: bool,
    /// Whether the scan stopped at [`MAX_SCAN_FILES`].
    too_many: bool,
}

impl FolderScan {
    /// Warning lines for what was left out (one line per kind of problem).
    fn warnings(&self, dir: &Path) -> Vec<String> {
        let mut w = Vec::new();
        if !self.skipped.is_empty() {
            let shown: Vec<&str> = self.skipped.iter().take(3).map(String::as_str).collect();
            w.push(format!(
                "{}: skipped {} entr{} ({}{})",
                dir.display(),
                self.skipped.len(),
                if self.skipped.len() == 1 { "y" } else { "ies" },
                shown.join("; "),
                if self.skipped.len() > 3 { "; …" } else { "" }
            ));
        }
        if self.too_deep {
            w.push(format!(
                "{}: folders more than {MAX_SCAN_DEPTH} levels down were not searched",
                dir.display()
            ));
        }
        if self.too_many {
            w.push(format!(
                "{}: the scan stopped after {MAX_SCAN_FILES} files",
                dir.display()
            ));
        }
        w
    }
}

/// List the regular files under `root`, never leaving it: symbolic links are
/// followed only when their target lies inside `root`; FIFOs, sockets and devices
/// are never opened; unreadable entries below `root` are skipped (and listed).
fn scan_folder(root: &Path) -> Result<FolderScan> {
    let canonical_root = std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
    let mut scan = FolderScan::default();
    // The folder itself must be readable; below it, unreadable entries are skipped.
    let entries = std::fs::read_dir(root).map_err(|e| Error::io(root, e))?;
    collect_entries(&canonical_root, root, entries, &mut scan, 0);
    Ok(scan)
}

fn collect_files(root: &Path, dir: &Path, scan: &mut FolderScan, depth: usize) {
    if depth > MAX_SCAN_DEPTH {
        scan.too_deep = true;
        return;
    }
    match std::fs::read_dir(dir) {
        Ok(entries) => collect_entries(root, dir, entries, scan, depth),
        Err(e) => scan.skipped.push(format!("{}: {e}", dir.display())),
    }
}

fn collect_entries(
    root: &Path,
    dir: &Path,
    entries: std::fs::ReadDir,
    scan: &mut FolderScan,
    depth: usize,
) {
    for entry in entries {
        if scan.files.len() >= MAX_SCAN_FILES {
            scan.too_many = true;
            return;
        }
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                scan.skipped.push(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name.eq_ignore_ascii_case("DICOMDIR") {
            continue;
        }
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        if is_link {
            match std::fs::canonicalize(&path) {
                Ok(target) if target.starts_with(root) => {}
                Ok(_) => {
                    scan.skipped.push(format!(
                        "{}: a link leading out of the folder",
                        path.display()
                    ));
                    continue;
                }
                Err(e) => {
                    scan.skipped.push(format!(
                        "{}: a broken or looping link ({e})",
                        path.display()
                    ));
                    continue;
                }
            }
        }
        // Follows a link (inside the folder) to what it points at.
        let file_type = match std::fs::metadata(&path) {
            Ok(m) => m.file_type(),
            Err(e) => {
                scan.skipped.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        if file_type.is_dir() {
            collect_files(root, &path, scan, depth + 1);
        } else if file_type.is_file() {
            scan.files.push(path);
        } else {
            scan.skipped.push(format!(
                "{}: not a regular file (a FIFO, socket or device)",
                path.display()
            ));
        }
    }
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
    Ok(SliceHeader {
        path: path.to_path_buf(),
        modality: text(obj, tags::MODALITY),
        series_uid: text(obj, tags::SERIES_INSTANCE_UID),
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
        frames,
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
/// (i along rows, j down columns, k along the slice normal).
fn assemble(dir: &Path, mut slices: Vec<SliceHeader>) -> Result<(Volume<i16>, String)> {
    let first = slices[0].clone();
    if first.frames > 1 {
        return Err(Error::unsupported(
            &first.path,
            format!("multi-frame (enhanced) DICOM with {} frames", first.frames),
        ));
    }
    for s in &slices {
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
    if dot(normal, normal) < 0.5 {
        return Err(Error::format(
            &first.path,
            format!("invalid ImageOrientationPatient {o:?}"),
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
        normal.map(|v| v * t)
    };

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
    let mut data = vec![0i16; geometry.voxel_count()];
    let mut dtype = String::from("int16");
    let decode = |s: &SliceHeader, out: &mut [i16]| -> Result<String> {
        let obj = OpenFileOptions::new()
            .open_file(&s.path)
            .map_err(|e| Error::format(&s.path, format!("unreadable DICOM file: {e}")))?;
        let pixels = obj
            .decode_pixel_data()
            .map_err(|e| Error::format(&s.path, format!("cannot decode pixel data: {e}")))?;
        if pixels.samples_per_pixel() != 1 {
            return Err(Error::format(&s.path, "not a greyscale image"));
        }
        let values: Vec<f32> = pixels
            .to_vec()
            .map_err(|e| Error::format(&s.path, format!("cannot convert pixel data: {e}")))?;
        if values.len() < per_slice {
            return Err(Error::format(
                &s.path,
                "pixel data shorter than Rows×Columns",
            ));
        }
        for (o, v) in out.iter_mut().zip(values) {
            *o = i16::from_f64(v as f64).0;
        }
        let signed = matches!(
            pixels.pixel_representation(),
            dicom_pixeldata::PixelRepresentation::Signed
        );
        Ok(format!(
            "{}int{}",
            if signed { "" } else { "u" },
            pixels.bits_allocated()
        ))
    };
    // Decoding (JPEG 2000 for many scanners) dominates; spread it over the cores.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(n.max(1));
    let chunk = n.div_ceil(threads);
    let results: Vec<Result<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = data
            .chunks_mut(per_slice * chunk)
            .zip(slices.chunks(chunk))
            .map(|(block, headers)| {
                scope.spawn(move || -> Result<String> {
                    let mut kind = String::new();
                    for (out, s) in block.chunks_mut(per_slice).zip(headers) {
                        kind = decode(s, out)?;
                    }
                    Ok(kind)
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
    for r in results {
        dtype = r?;
    }
    Ok((Volume::new(geometry, data)?, dtype))
}
