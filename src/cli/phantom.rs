//! `ctseg phantom --out DIR [--subjects N] [--seed S] [--size N] [--slices N] [--force]`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::cli::emit;
use ctseg_core::phantom::{CANONICAL_FOV_MM, PhantomConfig, Split, write_dataset_with};

/// Arguments of `ctseg phantom`.
#[derive(Debug, clap::Args)]
pub struct PhantomArgs {
    /// Dataset folder to write: `sNNNN/ct.nii.gz`, `sNNNN/segmentations/` and `meta.csv`.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of subjects.
    #[arg(long, default_value_t = 4)]
    pub subjects: usize,
    /// Random seed: the same seed (and grid) always gives the same dataset.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Voxels along x and y; the field of view stays 320 mm (default 128: 2.5 mm).
    #[arg(long)]
    pub size: Option<usize>,
    /// Axial slices; the field of view stays 160 mm (default 64: 2.5 mm).
    #[arg(long)]
    pub slices: Option<usize>,
    /// Write into `--out` even when it already holds files (same-named files are
    /// replaced).
    #[arg(long)]
    pub force: bool,
}

/// The generator configuration for `args`: the canonical field of view on the
/// requested grid, so the anatomy keeps its size in millimetres.
pub fn config_of(args: &PhantomArgs) -> Result<PhantomConfig> {
    let defaults = PhantomConfig::default();
    let size = args.size.unwrap_or(defaults.shape[0]);
    let slices = args.slices.unwrap_or(defaults.shape[2]);
    if args.subjects == 0 {
        bail!("--subjects must be at least 1");
    }
    if !(16..=1024).contains(&size) {
        bail!("--size must be between 16 and 1024 voxels, got {size}");
    }
    if !(4..=1024).contains(&slices) {
        bail!("--slices must be between 4 and 1024, got {slices}");
    }
    let config = PhantomConfig::with_shape(args.subjects, args.seed, [size, size, slices]);
    config.validate()?;
    Ok(config)
}

/// An error when `out` is a file, or a folder with entries and `force` is not set.
fn check_output(out: &Path, force: bool) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        bail!("{} exists and is not a folder", out.display());
    }
    let mut entries =
        std::fs::read_dir(out).with_context(|| format!("cannot read {}", out.display()))?;
    if entries.next().is_some() && !force {
        bail!(
            "{} exists and is not empty; choose another --out or pass --force to write into it",
            out.display()
        );
    }
    Ok(())
}

/// Run `ctseg phantom`.
pub fn run(args: &PhantomArgs) -> Result<()> {
    let config = config_of(args)?;
    check_output(&args.out, args.force)?;
    let [nx, ny, nz] = config.shape;
    let [sx, sy, sz] = config.spacing_mm;
    emit(&format!(
        "writing {} phantom subject(s) to {} ({nx}×{ny}×{nz} voxels of {sx:.2}×{sy:.2}×{sz:.2} mm, \
         {:.0}×{:.0}×{:.0} mm, seed {})\n",
        config.subjects,
        args.out.display(),
        CANONICAL_FOV_MM[0],
        CANONICAL_FOV_MM[1],
        CANONICAL_FOV_MM[2],
        config.seed
    ))?;
    let summary = write_dataset_with(&args.out, &config, |s| {
        // Progress lines only: a failure to print must not stop the writing.
        let _ = emit(&format!(
            "{}  {:<5}  {:>3} structures  {:.2} s\n",
            s.id,
            s.split,
            s.structures.len(),
            s.seconds
        ));
    })
    .with_context(|| format!("writing the phantom dataset to {}", args.out.display()))?;
    let count = |split: Split| summary.subjects.iter().filter(|s| s.split == split).count();
    emit(&format!(
        "wrote {} subjects ({} train, {} val, {} test) with {} structures to {} in {:.1} s\n",
        summary.subjects.len(),
        count(Split::Train),
        count(Split::Val),
        count(Split::Test),
        summary.structures.len(),
        summary.root.display(),
        summary.seconds
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(out: PathBuf) -> PhantomArgs {
        PhantomArgs {
            out,
            subjects: 2,
            seed: 3,
            size: Some(32),
            slices: Some(8),
            force: false,
        }
    }

    #[test]
    fn config_keeps_the_canonical_field_of_view() {
        let config = config_of(&args(PathBuf::from("x"))).expect("valid");
        assert_eq!(config.shape, [32, 32, 8]);
        assert_eq!(config.spacing_mm, [10.0, 10.0, 20.0]);
        let mut bad = args(PathBuf::from("x"));
        bad.size = Some(4);
        assert!(config_of(&bad).is_err());
        bad.size = None;
        bad.subjects = 0;
        assert!(config_of(&bad).is_err());
    }

    #[test]
    fn refuses_a_non_empty_folder_without_force() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let out = dir.path().join("phantoms");
        run(&args(out.clone())).expect("writes into a new folder");
        assert!(out.join("meta.csv").is_file());
        assert!(out.join("s0002/segmentations/liver.nii.gz").is_file());
        let err = run(&args(out.clone())).expect_err("refuses a non-empty folder");
        assert!(err.to_string().contains("--force"), "{err}");
        let mut forced = args(out);
        forced.force = true;
        run(&forced).expect("--force writes into it");
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").expect("writable");
        assert!(run(&args(file)).is_err());
    }
}
