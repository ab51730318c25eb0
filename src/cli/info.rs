//! `ctseg info PATH [--json]`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use std::fmt::Write as _;

use crate::cli::{emit, print_warnings};
use ctseg_core::dataset;
use ctseg_core::geometry::{Affine, Geometry};
use ctseg_core::io::segmentation::{LoadedSegmentation, load_per_structure, load_segmentation};
use ctseg_core::io::{CtFormat, LoadedCt, load_ct, nifti};
use ctseg_core::labels::label_counts;
use ctseg_core::structures::catalog;

/// Arguments of `ctseg info`.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// NIfTI file, DICOM folder, TotalSegmentator subject folder or a folder of structure masks.
    pub path: PathBuf,
    /// Print one JSON object instead of a readable summary.
    #[arg(long)]
    pub json: bool,
}

/// One structure present in a segmentation.
#[derive(Debug, Serialize)]
pub struct LabelInfo {
    /// Label value.
    pub label: u8,
    /// Structure name.
    pub name: String,
    /// Voxel count.
    pub voxels: u64,
    /// Volume in mL.
    pub volume_ml: f64,
}

/// What `ctseg info --json` prints.
#[derive(Debug, Serialize)]
pub struct InfoReport {
    /// The path given.
    pub path: String,
    /// `nifti`, `dicom` or `totalseg`.
    pub format: String,
    /// Voxel counts [x, y, z].
    pub shape: [usize; 3],
    /// Voxel size [x, y, z] in mm.
    pub spacing: [f64; 3],
    /// Orientation codes, e.g. `RAS`.
    pub orientation: String,
    /// 4×4 voxel-to-world (RAS+ mm) affine.
    pub world_from_voxel: Affine,
    /// On-disk voxel type.
    pub dtype: String,
    /// Lowest HU (CT only).
    pub hu_min: Option<i16>,
    /// Highest HU (CT only).
    pub hu_max: Option<i16>,
    /// Structures present (segmentations only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<LabelInfo>>,
    /// Non-fatal remarks made while reading.
    pub warnings: Vec<String>,
}

/// Whether a NIfTI header describes a label map rather than a CT: a label table
/// extension, the NIFTI_INTENT_LABEL intent, or uint8 voxels (never used for CT).
fn is_label_map(info: &nifti::NiftiInfo) -> bool {
    let has_table = info
        .extensions
        .iter()
        .any(|e| matches!(ctseg_core::labels::parse_label_table(&e.data), Ok(Some(_))));
    has_table || info.intent_code == nifti::INTENT_LABEL || info.datatype == nifti::DataType::U8
}

fn labels_of(seg: &LoadedSegmentation) -> Vec<LabelInfo> {
    let counts = label_counts(&seg.labels);
    let ml = seg.labels.geometry().voxel_volume_mm3() / 1000.0;
    catalog()
        .all()
        .iter()
        .filter(|s| counts[s.label as usize] > 0)
        .map(|s| LabelInfo {
            label: s.label,
            name: s.name.clone(),
            voxels: counts[s.label as usize],
            volume_ml: counts[s.label as usize] as f64 * ml,
        })
        .collect()
}

fn report(path: &Path, format: &str, geometry: &Geometry, dtype: String) -> InfoReport {
    InfoReport {
        path: path.display().to_string(),
        format: format.to_string(),
        shape: geometry.shape,
        spacing: geometry.spacing(),
        orientation: geometry.orientation(),
        world_from_voxel: geometry.world_from_voxel,
        dtype,
        hu_min: None,
        hu_max: None,
        labels: None,
        warnings: Vec::new(),
    }
}

fn ct_report(path: &Path, ct: &LoadedCt) -> InfoReport {
    let mut r = report(
        path,
        ct.format.name(),
        ct.volume.geometry(),
        ct.dtype.clone(),
    );
    if let Some((lo, hi)) = ct.volume.min_max() {
        r.hu_min = Some(lo);
        r.hu_max = Some(hi);
    }
    r.warnings.extend(ct.warnings.iter().cloned());
    r
}

fn seg_report(path: &Path, format: &str, seg: &LoadedSegmentation, dtype: String) -> InfoReport {
    let mut r = report(path, format, seg.labels.geometry(), dtype);
    r.labels = Some(labels_of(seg));
    r.warnings.extend(seg.warnings.iter().cloned());
    r
}

/// Build the report for `path`.
pub fn build_report(path: &Path) -> Result<InfoReport> {
    if path.is_dir() {
        if dataset::is_subject(path) {
            let subject = dataset::load_subject(path)?;
            let mut r = ct_report(path, &subject.ct);
            r.format = CtFormat::TotalSeg.name().to_string();
            r.labels = Some(labels_of(&subject.segmentation));
            r.warnings
                .extend(subject.segmentation.warnings.iter().cloned());
            return Ok(r);
        }
        let has_masks = std::fs::read_dir(path)?.filter_map(|e| e.ok()).any(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.strip_suffix(".nii.gz")
                .is_some_and(|stem| catalog().label_of(stem).is_some())
        });
        if has_masks {
            let seg = load_per_structure(path, None)?;
            return Ok(seg_report(
                path,
                CtFormat::TotalSeg.name(),
                &seg,
                "uint8".into(),
            ));
        }
        let ct = load_ct(path)?;
        return Ok(ct_report(path, &ct));
    }
    let (_, info) = nifti::read_header(path)?;
    if is_label_map(&info) {
        let seg = load_segmentation(path)?;
        return Ok(seg_report(
            path,
            "nifti",
            &seg,
            info.datatype.name().to_string(),
        ));
    }
    let ct = load_ct(path)?;
    Ok(ct_report(path, &ct))
}

/// Run `ctseg info`.
pub fn run(args: &InfoArgs) -> Result<()> {
    let r = build_report(&args.path)?;
    if args.json {
        return emit(&format!("{}\n", serde_json::to_string_pretty(&r)?));
    }
    print_warnings(&r.warnings);
    let mut out = String::new();
    let _ = writeln!(out, "path:         {}", r.path);
    let _ = writeln!(out, "format:       {} ({})", r.format, r.dtype);
    let _ = writeln!(
        out,
        "shape:        {} × {} × {} voxels",
        r.shape[0], r.shape[1], r.shape[2]
    );
    let _ = writeln!(
        out,
        "spacing:      {:.3} × {:.3} × {:.3} mm",
        r.spacing[0], r.spacing[1], r.spacing[2]
    );
    let _ = writeln!(out, "orientation:  {}", r.orientation);
    let _ = writeln!(out, "world_from_voxel (RAS+ mm):");
    for row in &r.world_from_voxel {
        let _ = writeln!(
            out,
            "  [{:>10.4} {:>10.4} {:>10.4} {:>11.4}]",
            row[0], row[1], row[2], row[3]
        );
    }
    if let (Some(lo), Some(hi)) = (r.hu_min, r.hu_max) {
        let _ = writeln!(out, "HU range:     {lo} .. {hi}");
    }
    if let Some(labels) = &r.labels {
        let _ = writeln!(out, "structures:   {} present", labels.len());
        if !labels.is_empty() {
            let width = labels
                .iter()
                .map(|l| l.name.len())
                .max()
                .unwrap_or(4)
                .max(4);
            let _ = writeln!(
                out,
                "  {:>5}  {:<width$}  {:>10}  {:>11}",
                "label", "name", "voxels", "volume (mL)"
            );
            for l in labels {
                let _ = writeln!(
                    out,
                    "  {:>5}  {:<width$}  {:>10}  {:>11.2}",
                    l.label, l.name, l.voxels, l.volume_ml
                );
            }
        }
    }
    emit(&out)
}
