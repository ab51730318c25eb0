//! Loading and saving segmentations: multilabel NIfTI files (with TotalSegmentator's
//! label table in a header extension) and per-structure folders
//! (`<name>.nii.gz` binary masks, TotalSegmentator's layout).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::geometry::Geometry;
use crate::io::nifti::{self, Extension, ValueStats, WriteOptions};
use crate::labels::{
    LabelVolume, label_counts, label_table_xml, lut_for, parse_label_table, remap,
};
use crate::structures::{Catalog, catalog};
use crate::volume::Volume;

/// Tolerance (mm) on affine entries when two files must share one voxel grid.
pub const GRID_TOLERANCE_MM: f64 = 1e-3;

/// How a segmentation was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegFormat {
    /// One NIfTI file of label values.
    Multilabel,
    /// A folder of binary masks named after the structures.
    PerStructure,
}

/// A segmentation read from disk.
#[derive(Debug, Clone)]
pub struct LoadedSegmentation {
    /// Labels in catalog order (0 = background).
    pub labels: LabelVolume,
    /// Storage layout it came from.
    pub format: SegFormat,
    /// The file (multilabel) or folder (per-structure) read.
    pub path: PathBuf,
    /// Whether label names came from a label table (multilabel only).
    pub named_labels: bool,
    /// Voxels claimed by more than one mask (per-structure only; the later class wins).
    pub overlap_voxels: u64,
    /// Structures whose mask file was present (per-structure only).
    pub files_found: usize,
    /// Non-fatal remarks (unknown names, unmapped values…).
    pub warnings: Vec<String>,
}

/// An error unless `b` lies on the same voxel grid as `a`.
pub fn check_same_grid(a_path: &Path, a: &Geometry, b_path: &Path, b: &Geometry) -> Result<()> {
    if a.same_grid(b, GRID_TOLERANCE_MM) {
        return Ok(());
    }
    let detail = if a.shape != b.shape {
        format!("shapes {:?} and {:?} differ", a.shape, b.shape)
    } else {
        format!("affines differ by up to {:.4} mm", a.affine_difference(b))
    };
    Err(Error::GridMismatch {
        a: a_path.to_path_buf(),
        a_desc: a.describe(),
        b: b_path.to_path_buf(),
        b_desc: b.describe(),
        detail,
    })
}

/// The voxel grid of a segmentation, from headers only (the multilabel file's, or
/// the first mask's of a per-structure folder): cheap enough to check that two
/// files can be compared before reading gigabytes of voxels.
pub fn segmentation_grid(path: &Path) -> Result<Geometry> {
    if path.is_dir() {
        let dir = crate::dataset::totalseg::masks_dir(path).unwrap_or_else(|| path.to_path_buf());
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        let cat = catalog();
        let mut first: Option<PathBuf> = None;
        for entry in entries {
            let p = entry.map_err(|e| Error::io(&dir, e))?.path();
            if mask_name(&p).is_some_and(|n| cat.label_of(&n).is_some())
                && first.as_ref().is_none_or(|f| p < *f)
            {
                first = Some(p);
            }
        }
        let first = first.ok_or_else(|| {
            Error::format(
                &dir,
                "no structure masks (<name>.nii.gz named after the 117 structures) in this folder",
            )
        })?;
        return Ok(nifti::read_header(&first)?.0);
    }
    if !path.exists() {
        return Err(crate::io::missing(path));
    }
    Ok(nifti::read_header(path)?.0)
}

/// Load a segmentation from a multilabel NIfTI file or a per-structure folder (a
/// folder of masks, or a subject folder holding `segmentations/`).
pub fn load_segmentation(path: &Path) -> Result<LoadedSegmentation> {
    if path.is_dir() {
        let dir = crate::dataset::totalseg::masks_dir(path).unwrap_or_else(|| path.to_path_buf());
        load_per_structure(&dir, None)
    } else {
        load_multilabel(path)
    }
}

/// Load a multilabel NIfTI. With a CaretExtension label table, values are mapped to
/// the catalog by name; without one, TotalSegmentator v2 order is assumed.
pub fn load_multilabel(path: &Path) -> Result<LoadedSegmentation> {
    let image = nifti::read::<u8>(path)?;
    check_label_values(path, &image.info.values)?;
    let mut labels = image.volume;
    let mut table = None;
    for e in &image.info.extensions {
        if let Some(t) = parse_label_table(&e.data).map_err(|m| Error::format(path, m))? {
            table = Some(t);
            break;
        }
    }
    let counts = label_counts(&labels);
    if table.is_none() {
        let outside: Vec<usize> = (crate::structures::NUM_STRUCTURES + 1..256)
            .filter(|&v| counts[v] > 0)
            .collect();
        if let (Some(first), Some(last)) = (outside.first(), outside.last()) {
            let voxels: u64 = outside.iter().map(|&v| counts[v]).sum();
            return Err(Error::format(
                path,
                format!(
                    "{voxels} voxels have label values {first}..={last}, outside the 117 structures (1..=117), and the file has no label table naming them: not a TotalSegmentator label map"
                ),
            ));
        }
    }
    let (lut, warnings) = lut_for(table.as_deref(), catalog(), &counts);
    let identity = (0..=255u8).all(|v| lut[v as usize] == v || counts[v as usize] == 0);
    if !identity {
        remap(&mut labels, &lut);
    }
    Ok(LoadedSegmentation {
        labels,
        format: SegFormat::Multilabel,
        path: path.to_path_buf(),
        named_labels: table.is_some(),
        overlap_voxels: 0,
        files_found: 0,
        warnings: warnings
            .into_iter()
            .map(|w| format!("{}: {w}", path.display()))
            .collect(),
    })
}

/// Refuse voxel values no label map holds: NaN, negative, above 255 (a CT given
/// as a segmentation, say) or with a fractional part. Rounding or clamping them
/// would silently invent or drop structures.
fn check_label_values(path: &Path, values: &ValueStats) -> Result<()> {
    use crate::geometry::short_number;
    if values.nan > 0 {
        return Err(Error::format(
            path,
            format!(
                "{} voxels are NaN (not a number): not a label map",
                values.nan
            ),
        ));
    }
    if let Some((lo, hi)) = values.range
        && (lo < 0.0 || hi > 255.0)
    {
        let hint = if lo < -500.0 { " (a CT?)" } else { "" };
        return Err(Error::format(
            path,
            format!(
                "values range from {} to {}: not a label map{hint}; labels are whole numbers 0..=117",
                short_number(lo),
                short_number(hi)
            ),
        ));
    }
    if values.fractional > 0 {
        return Err(Error::format(
            path,
            format!(
                "{} voxels hold non-integer values (e.g. {}): not a label map; labels are whole numbers 0..=117",
                values.fractional,
                values
                    .fractional_example
                    .map(short_number)
                    .unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

/// The structure name a mask file stands for (`liver.nii.gz` → `liver`).
fn mask_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_string_lossy().to_string();
    name.strip_suffix(".nii.gz")
        .or_else(|| name.strip_suffix(".nii"))
        .map(str::to_string)
}

/// Load a folder of binary masks `<structure>.nii.gz` into one multilabel volume.
/// A missing file is an empty structure; an unknown name is a warning; where masks
/// overlap the later class wins (as in TotalSegmentator) and the voxels are counted.
/// With `reference`, every mask must lie on that grid (e.g. the CT's).
pub fn load_per_structure(
    dir: &Path,
    reference: Option<(&Path, &Geometry)>,
) -> Result<LoadedSegmentation> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut masks = Vec::new();
    let mut warnings = Vec::new();
    let cat = catalog();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let Some(name) = mask_name(&path) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        match cat.label_of(&name) {
            Some(label) => masks.push((label, path)),
            None => warnings.push(format!(
                "{}: unknown structure name {name:?}; ignored",
                path.display()
            )),
        }
    }
    if masks.is_empty() {
        return Err(Error::format(
            dir,
            "no structure masks (<name>.nii.gz named after the 117 structures) in this folder",
        ));
    }
    masks.sort();
    let mut labels: Option<LabelVolume> = None;
    let mut grid_source: Option<(PathBuf, Geometry)> =
        reference.map(|(p, g)| (p.to_path_buf(), g.clone()));
    let mut overlap = 0u64;
    for (label, path) in &masks {
        let image = nifti::read::<u8>(path)?;
        check_label_values(path, &image.info.values)?;
        let mask = image.volume;
        match &grid_source {
            Some((p, g)) => check_same_grid(p, g, path, mask.geometry())?,
            None => grid_source = Some((path.clone(), mask.geometry().clone())),
        }
        let out = labels.get_or_insert_with(|| LabelVolume::zeros(mask.geometry().clone()));
        for (o, &m) in out.data_mut().iter_mut().zip(mask.data()) {
            if m != 0 {
                overlap += (*o != 0) as u64;
                *o = *label;
            }
        }
    }
    let labels = labels.ok_or_else(|| Error::format(dir, "no structure masks"))?;
    if overlap > 0 {
        warnings.push(format!(
            "{}: {overlap} voxels belong to more than one mask; the higher label wins",
            dir.display()
        ));
    }
    Ok(LoadedSegmentation {
        labels,
        format: SegFormat::PerStructure,
        path: dir.to_path_buf(),
        named_labels: true,
        overlap_voxels: overlap,
        files_found: masks.len(),
        warnings,
    })
}

/// The header extension carrying the label table of `catalog`.
pub fn label_table_extension(catalog: &Catalog) -> Extension {
    Extension {
        code: 0,
        data: label_table_xml(catalog).into_bytes(),
    }
}

/// Save a multilabel NIfTI with the label table in its header extension (written to
/// a temporary file and renamed into place).
pub fn save_multilabel(path: &Path, labels: &LabelVolume) -> Result<()> {
    let options = WriteOptions {
        extensions: vec![label_table_extension(catalog())],
        label_map: true,
        ..WriteOptions::default()
    };
    nifti::write(path, labels, &options)
}

/// Save one binary mask `<name>.nii.gz` per catalog structure into `dir` (created if
/// needed), TotalSegmentator's layout. Each file is written safely.
pub fn save_per_structure(dir: &Path, labels: &LabelVolume) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let options = WriteOptions {
        label_map: true,
        ..WriteOptions::default()
    };
    let mut mask = Volume::<u8>::zeros(labels.geometry().clone());
    for s in catalog().all() {
        for (m, &l) in mask.data_mut().iter_mut().zip(labels.data()) {
            *m = (l == s.label) as u8;
        }
        nifti::write(dir.join(format!("{}.nii.gz", s.name)), &mask, &options)?;
    }
    Ok(())
}
