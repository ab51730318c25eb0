//! `ctseg convert`: a segmentation of a CT from one format to another — a multilabel
//! NIfTI or per-structure folder to a DICOM Segmentation over the CT's series, or a
//! DICOM Segmentation back to a multilabel NIfTI on the CT's grid.

use std::path::PathBuf;

use anyhow::{Result, bail};
use ctseg_core::io::dicom::seg::{SegWriteOptions, is_dicom_seg, read_seg, write_seg};
use ctseg_core::io::load_ct;
use ctseg_core::io::segmentation::{check_same_grid, load_segmentation, save_multilabel};

use super::print_warnings;

/// Arguments of `ctseg convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// The CT the segmentation lies on: a DICOM series folder (needed for a DICOM
    /// Segmentation output), or a NIfTI file.
    #[arg(long)]
    pub ct: PathBuf,
    /// The segmentation: multilabel NIfTI, per-structure folder or DICOM Segmentation.
    #[arg(long)]
    pub labels: PathBuf,
    /// Output: `.dcm` writes a DICOM Segmentation over the CT's series; `.nii.gz` a
    /// multilabel NIfTI on the CT's grid.
    #[arg(long)]
    pub out: PathBuf,
    /// Mark the segments as drawn by hand (SegmentAlgorithmType MANUAL) instead of
    /// predicted by `--algorithm`.
    #[arg(long)]
    pub manual: bool,
    /// Name of the algorithm that made the segmentation (DICOM output).
    #[arg(long, default_value = "ctseg")]
    pub algorithm: String,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
}

/// Run `ctseg convert`.
pub fn run(args: &ConvertArgs) -> Result<()> {
    let name = args.out.to_string_lossy().to_ascii_lowercase();
    let to_dicom = name.ends_with(".dcm");
    let to_nifti = name.ends_with(".nii.gz") || name.ends_with(".nii");
    if !to_dicom && !to_nifti {
        bail!(
            "{}: the output must end in .dcm (DICOM Segmentation) or .nii.gz/.nii (multilabel NIfTI)",
            args.out.display()
        );
    }
    if args.out.exists() && !args.force {
        bail!(
            "{} already exists; pass --force to replace it",
            args.out.display()
        );
    }
    let ct = load_ct(&args.ct)?;
    print_warnings(&ct.warnings);
    let grid = ct.volume.geometry();
    let labels = if is_dicom_seg(&args.labels) {
        let seg = read_seg(&args.labels, grid, ct.dicom.as_ref())?;
        print_warnings(&seg.warnings);
        seg.labels
    } else {
        let seg = load_segmentation(&args.labels)?;
        print_warnings(&seg.warnings);
        check_same_grid(&args.ct, grid, &seg.path, seg.labels.geometry())?;
        seg.labels
    };
    if to_dicom {
        let Some(source) = &ct.dicom else {
            bail!(
                "{}: a DICOM Segmentation must reference the source DICOM series, and {} is not one; give the series folder as --ct",
                args.out.display(),
                args.ct.display()
            );
        };
        let options = if args.manual {
            SegWriteOptions::manual()
        } else {
            SegWriteOptions::prediction(&args.algorithm)
        };
        let summary = write_seg(&args.out, &labels, source, &options)?;
        eprintln!(
            "{} segments, {} frames → {} (series {})",
            summary.labels.len(),
            summary.frames,
            args.out.display(),
            summary.series_uid
        );
    } else {
        save_multilabel(&args.out, &labels)?;
        eprintln!("→ {}", args.out.display());
    }
    Ok(())
}
