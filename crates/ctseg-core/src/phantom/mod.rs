//! Deterministic synthetic abdominal CT phantoms with exact ground-truth labels.
//!
//! [`generate_subject`] draws one axial abdominal CT in RAS orientation: an elliptical
//! body with subcutaneous fat and a muscle wall, the abdominal organs, the vessels, the
//! lumbar/lower thoracic spine split into vertebrae, paraspinal and psoas muscles, and
//! the lung bases and the heart apex in the superior slices. Every structure is
//! painted with a TotalSegmentator v2 label (see [`crate::structures`]), so the labels
//! are exclusive per voxel and mark exactly where each organ was drawn. The HU image
//! then gets partial-volume blur and spatially correlated noise (the labels do not).
//!
//! The anatomy is laid out in a canonical frame of [`CANONICAL_FOV_MM`] that is
//! stretched to the configured field of view: with the default configuration (or
//! [`PhantomConfig::with_shape`]) it is real millimetres. Every subject varies body
//! size, fat thickness, organ sizes, positions and shapes, spine level and
//! curvature, all from a ChaCha8 stream keyed by `(seed, index)`: the same seed and
//! index always give bit-identical volumes, whatever the shape.
//!
//! [`write_dataset`] writes subjects in TotalSegmentator's layout
//! (`sNNNN/ct.nii.gz`, `sNNNN/segmentations/<name>.nii.gz`, `meta.csv`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::geometry::Geometry;
mod anatomy;
mod canvas;
mod imaging;
mod shapes;

use anatomy::draw_anatomy;
use imaging::finish;
use shapes::Rng;

pub use crate::dataset::Split;
use crate::dataset::totalseg::write_meta;
use crate::io::{nifti, segmentation};
use crate::labels::{LabelVolume, label_counts};
use crate::structures::catalog;
use crate::volume::Volume;

/// Field of view (mm, x × y × z) the anatomy is laid out in; it is stretched to the
/// configured field of view along each axis.
pub const CANONICAL_FOV_MM: [f64; 3] = [320.0, 320.0, 160.0];

/// HU written outside the body.
pub const AIR_HU: f64 = -1000.0;

/// How many phantoms to make, and on which voxel grid.
#[derive(Debug, Clone, PartialEq)]
pub struct PhantomConfig {
    /// Number of subjects [`write_dataset`] writes.
    pub subjects: usize,
    /// Seed of the whole dataset; subject `i` uses stream `i` of this seed.
    pub seed: u64,
    /// Voxel counts `[nx, ny, nz]` (x = right, y = anterior, z = superior).
    pub shape: [usize; 3],
    /// Voxel size in mm along x, y, z.
    pub spacing_mm: [f64; 3],
}

impl Default for PhantomConfig {
    /// 4 subjects, seed 0, 128 × 128 × 64 voxels of 2.5 mm (the canonical field of
    /// view, about 1 M voxels per subject).
    fn default() -> Self {
        Self {
            subjects: 4,
            seed: 0,
            shape: [128, 128, 64],
            spacing_mm: [2.5, 2.5, 2.5],
        }
    }
}

impl PhantomConfig {
    /// A configuration of `shape` voxels whose spacing covers [`CANONICAL_FOV_MM`], so
    /// the anatomy keeps its physical size in millimetres at any resolution.
    pub fn with_shape(subjects: usize, seed: u64, shape: [usize; 3]) -> Self {
        let spacing_mm = std::array::from_fn(|a| CANONICAL_FOV_MM[a] / (shape[a].max(1) as f64));
        Self {
            subjects,
            seed,
            shape,
            spacing_mm,
        }
    }

    /// An error unless the grid has at least 2 voxels along each axis and a positive,
    /// finite spacing.
    pub fn validate(&self) -> Result<()> {
        if self.shape.iter().any(|&n| n < 2) {
            return Err(Error::Invalid(format!(
                "phantom shape {:?} needs at least 2 voxels along each axis",
                self.shape
            )));
        }
        if self.shape.iter().product::<usize>() > 1 << 28 {
            return Err(Error::Invalid(format!(
                "phantom shape {:?} is too large",
                self.shape
            )));
        }
        if self.spacing_mm.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::Invalid(format!(
                "phantom spacing {:?} must be positive",
                self.spacing_mm
            )));
        }
        Ok(())
    }

    /// The voxel grid of every subject: RAS, `diag(spacing)`, centred on the world
    /// origin.
    pub fn geometry(&self) -> Geometry {
        let s = self.spacing_mm;
        let origin: [f64; 3] = std::array::from_fn(|a| -(self.shape[a] as f64 - 1.0) / 2.0 * s[a]);
        Geometry::new(
            self.shape,
            [
                [s[0], 0.0, 0.0, origin[0]],
                [0.0, s[1], 0.0, origin[1]],
                [0.0, 0.0, s[2], origin[2]],
                [0.0, 0.0, 0.0, 1.0],
            ],
        )
    }
}

/// Split of subject `index` of `subjects`: about 20 % validation (at least one when
/// there are 2 or more subjects), about 10 % test (only from 10 subjects on), the
/// rest training. Training subjects come first, then validation, then test.
pub fn split_of(index: usize, subjects: usize) -> Split {
    let test = if subjects >= 10 {
        (subjects + 5) / 10
    } else {
        0
    };
    let val = if subjects >= 2 {
        ((subjects * 2 + 5) / 10).max(1)
    } else {
        0
    };
    let train = subjects - test - val;
    if index < train {
        Split::Train
    } else if index < train + val {
        Split::Val
    } else {
        Split::Test
    }
}

/// Folder name of subject `index`: `s0001` for index 0.
pub fn subject_id(index: usize) -> String {
    format!("s{:04}", index + 1)
}

/// One subject written by [`write_dataset`].
#[derive(Debug, Clone, PartialEq)]
pub struct PhantomSubject {
    /// Subject id (folder name), e.g. `s0001`.
    pub id: String,
    /// Its split in `meta.csv`.
    pub split: Split,
    /// Structures with at least one voxel, in label order.
    pub structures: Vec<String>,
    /// Seconds spent generating and writing it.
    pub seconds: f64,
}

/// What [`write_dataset`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct PhantomSummary {
    /// The dataset folder.
    pub root: PathBuf,
    /// The subjects, in order.
    pub subjects: Vec<PhantomSubject>,
    /// Structures present in at least one subject, in label order.
    pub structures: Vec<String>,
    /// Seconds spent on the whole dataset.
    pub seconds: f64,
}

/// Generate subject `index` of `config`: the CT (int16 HU) and its labels, both on
/// [`PhantomConfig::geometry`]. Deterministic in `(config.seed, index, shape,
/// spacing)`; `config.subjects` plays no part.
pub fn generate_subject(config: &PhantomConfig, index: usize) -> (Volume<i16>, LabelVolume) {
    let geometry = config.geometry();
    let mut rng = Rng::new(config.seed, index);
    let canvas = draw_anatomy(config, &mut rng);
    let hu = finish(canvas.hu, config.shape, &mut rng);
    let mut ct = Volume::<i16>::zeros(geometry.clone());
    ct.data_mut().copy_from_slice(&hu);
    let mut labels = LabelVolume::zeros(geometry);
    labels.data_mut().copy_from_slice(&canvas.labels);
    (ct, labels)
}

/// Write `config.subjects` phantoms to `out` in TotalSegmentator's layout:
/// `out/sNNNN/ct.nii.gz` (int16), `out/sNNNN/segmentations/<name>.nii.gz` for all
/// 117 structures, and `out/meta.csv` (`image_id;split`). Existing files of the same
/// names are replaced; other files are left alone.
pub fn write_dataset(out: &Path, config: &PhantomConfig) -> Result<PhantomSummary> {
    write_dataset_with(out, config, |_| {})
}

/// [`write_dataset`], calling `on_subject` after each subject is written.
pub fn write_dataset_with(
    out: &Path,
    config: &PhantomConfig,
    mut on_subject: impl FnMut(&PhantomSubject),
) -> Result<PhantomSummary> {
    config.validate()?;
    if config.subjects == 0 {
        return Err(Error::Invalid(
            "a phantom dataset needs at least 1 subject".into(),
        ));
    }
    let start = Instant::now();
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut subjects = Vec::with_capacity(config.subjects);
    let mut present = [false; 256];
    let mut meta = Vec::with_capacity(config.subjects);
    for index in 0..config.subjects {
        let t0 = Instant::now();
        let id = subject_id(index);
        let dir = out.join(&id);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let (ct, labels) = generate_subject(config, index);
        nifti::write(dir.join("ct.nii.gz"), &ct, &nifti::WriteOptions::default())?;
        segmentation::save_per_structure(&dir.join("segmentations"), &labels)?;
        let counts = label_counts(&labels);
        let structures = catalog()
            .all()
            .iter()
            .filter(|s| counts[s.label as usize] > 0)
            .map(|s| {
                present[s.label as usize] = true;
                s.name.clone()
            })
            .collect();
        let split = split_of(index, config.subjects);
        meta.push((id.clone(), split));
        let subject = PhantomSubject {
            id,
            split,
            structures,
            seconds: t0.elapsed().as_secs_f64(),
        };
        on_subject(&subject);
        subjects.push(subject);
    }
    write_meta(out, &meta)?;
    let structures = catalog()
        .all()
        .iter()
        .filter(|s| present[s.label as usize])
        .map(|s| s.name.clone())
        .collect();
    Ok(PhantomSummary {
        root: out.to_path_buf(),
        subjects,
        structures,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::canvas::{AIR, CAVITY, FAT, VERTEBRAE, WALL, lab};
    use super::shapes::Point;
    use super::*;
    use crate::dataset::load_subject;

    /// Every structure name the phantom draws.
    const DRAWN: &[&str] = &[
        "spleen",
        "kidney_right",
        "kidney_left",
        "gallbladder",
        "liver",
        "stomach",
        "pancreas",
        "adrenal_gland_right",
        "adrenal_gland_left",
        "lung_upper_lobe_left",
        "lung_lower_lobe_left",
        "lung_middle_lobe_right",
        "lung_lower_lobe_right",
        "esophagus",
        "small_bowel",
        "duodenum",
        "colon",
        "heart",
        "aorta",
        "inferior_vena_cava",
        "portal_vein_and_splenic_vein",
        "spinal_cord",
        "autochthon_left",
        "autochthon_right",
        "iliopsoas_left",
        "iliopsoas_right",
    ];

    fn small() -> PhantomConfig {
        PhantomConfig::with_shape(3, 7, [96, 96, 48])
    }

    /// Mean of `values` where `labels == label`, and the voxel count.
    fn mean_where(ct: &Volume<i16>, labels: &LabelVolume, label: u8) -> (f64, usize) {
        let mut sum = 0.0;
        let mut n = 0;
        for (&v, &l) in ct.data().iter().zip(labels.data()) {
            if l == label {
                sum += v as f64;
                n += 1;
            }
        }
        (sum / n.max(1) as f64, n)
    }

    /// Mean HU over the interior of `label` (voxels whose 6 neighbours share it),
    /// away from partial-volume edges, and the voxel count.
    fn interior_mean(ct: &Volume<i16>, labels: &LabelVolume, label: u8) -> (f64, usize) {
        let [nx, ny, nz] = labels.shape();
        let l = labels.data();
        let (mut sum, mut n) = (0.0, 0);
        for k in 1..nz - 1 {
            for j in 1..ny - 1 {
                for i in 1..nx - 1 {
                    let idx = i + nx * (j + ny * k);
                    let inside = [idx, idx - 1, idx + 1, idx - nx, idx + nx]
                        .into_iter()
                        .chain([idx - nx * ny, idx + nx * ny])
                        .all(|v| l[v] == label);
                    if inside {
                        sum += ct.data()[idx] as f64;
                        n += 1;
                    }
                }
            }
        }
        (sum / n.max(1) as f64, n)
    }

    /// Mean world position of `label`.
    fn centroid(labels: &LabelVolume, label: u8) -> Point {
        let [nx, ny, _] = labels.shape();
        let mut sum = [0.0; 3];
        let mut n = 0.0;
        for (idx, &l) in labels.data().iter().enumerate() {
            if l == label {
                let v = [
                    (idx % nx) as f64,
                    ((idx / nx) % ny) as f64,
                    (idx / (nx * ny)) as f64,
                ];
                let w = labels.geometry().world_of(v);
                for (s, c) in sum.iter_mut().zip(w) {
                    *s += c;
                }
                n += 1.0;
            }
        }
        sum.map(|s| s / n)
    }

    #[test]
    fn every_drawn_name_is_in_the_catalog() {
        for name in DRAWN.iter().chain(VERTEBRAE.iter()) {
            assert!(catalog().label_of(name).is_some(), "{name}");
        }
    }

    #[test]
    fn same_seed_gives_identical_volumes() {
        let config = small();
        let a = generate_subject(&config, 1);
        let b = generate_subject(&config, 1);
        assert_eq!(a, b);
        let other_seed = PhantomConfig {
            seed: 8,
            ..config.clone()
        };
        let c = generate_subject(&other_seed, 1);
        assert_ne!(a.0.data(), c.0.data());
        assert_ne!(a.1.data(), c.1.data());
        let d = generate_subject(&config, 2);
        assert_ne!(a.0.data(), d.0.data());
        // The number of subjects plays no part.
        let more = PhantomConfig {
            subjects: 50,
            ..config
        };
        assert_eq!(generate_subject(&more, 1), a);
    }

    #[test]
    fn geometry_is_ras_and_centred() {
        let config = small();
        let (ct, labels) = generate_subject(&config, 0);
        assert_eq!(ct.geometry().orientation(), "RAS");
        assert_eq!(ct.geometry(), labels.geometry());
        assert_eq!(ct.shape(), [96, 96, 48]);
        let spacing = ct.geometry().spacing();
        for (got, want) in spacing.iter().zip(config.spacing_mm) {
            assert!((got - want).abs() < 1e-12);
        }
        let centre = ct.geometry().world_of([47.5, 47.5, 23.5]);
        assert!(centre.iter().all(|c| c.abs() < 1e-9), "{centre:?}");
    }

    #[test]
    fn default_subject_has_the_main_structures_with_plausible_hu() {
        let config = PhantomConfig::default();
        let t0 = Instant::now();
        let (ct, labels) = generate_subject(&config, 0);
        eprintln!(
            "one default subject ({:?}) generated in {:.3} s",
            config.shape,
            t0.elapsed().as_secs_f64()
        );
        let counts = label_counts(&labels);
        for name in [
            "liver",
            "spleen",
            "kidney_left",
            "kidney_right",
            "aorta",
            "inferior_vena_cava",
            "stomach",
            "pancreas",
            "gallbladder",
            "colon",
            "small_bowel",
            "spinal_cord",
            "lung_lower_lobe_right",
            "lung_lower_lobe_left",
            "autochthon_left",
            "iliopsoas_right",
            "vertebrae_L1",
            "vertebrae_L2",
        ] {
            assert!(
                counts[lab(name) as usize] > 50,
                "{name}: {}",
                counts[lab(name) as usize]
            );
        }
        // The whole liver, partial-volume edges included, averages about 60 HU.
        let (liver, _) = mean_where(&ct, &labels, lab("liver"));
        assert!((liver - 60.0).abs() < 20.0, "liver: mean {liver:.1} HU");
        let expect = [
            ("liver", 62.0, 10.0),
            ("spleen", 50.0, 10.0),
            ("aorta", 180.0, 25.0),
            ("inferior_vena_cava", 130.0, 20.0),
            ("kidney_left", 115.0, 40.0),
            ("lung_lower_lobe_right", -850.0, 40.0),
            ("vertebrae_L2", 300.0, 120.0),
            ("autochthon_left", 50.0, 10.0),
        ];
        for (name, hu, tol) in expect {
            let (mean, n) = interior_mean(&ct, &labels, lab(name));
            assert!(
                n > 0 && (mean - hu).abs() < tol,
                "{name}: mean {mean:.1} HU over {n}"
            );
        }
        // Laterality in RAS: liver at +x (patient's right), spleen at -x.
        assert!(centroid(&labels, lab("liver"))[0] > 20.0);
        assert!(centroid(&labels, lab("spleen"))[0] < -40.0);
        assert!(centroid(&labels, lab("kidney_right"))[0] > 20.0);
        assert!(centroid(&labels, lab("kidney_left"))[0] < -20.0);
        // The aorta lies anterior to the vertebral bodies; T12 above L1 above L2.
        assert!(centroid(&labels, lab("aorta"))[1] > centroid(&labels, lab("vertebrae_L1"))[1]);
        let z = |n: &str| centroid(&labels, lab(n))[2];
        assert!(z("vertebrae_T12") > z("vertebrae_L1") && z("vertebrae_L1") > z("vertebrae_L2"));
        // Lungs only in the superior part.
        assert!(z("lung_lower_lobe_right") > z("liver"));
    }

    #[test]
    fn every_subject_has_the_core_structures() {
        let config = PhantomConfig::with_shape(6, 3, [64, 64, 32]);
        for index in 0..6 {
            let (_, labels) = generate_subject(&config, index);
            let counts = label_counts(&labels);
            for name in ["liver", "spleen", "kidney_left", "kidney_right", "aorta"] {
                assert!(counts[lab(name) as usize] > 20, "subject {index}: {name}");
            }
            let vertebrae = VERTEBRAE
                .iter()
                .filter(|n| counts[lab(n) as usize] > 20)
                .count();
            assert!(vertebrae >= 4, "subject {index}: {vertebrae} vertebrae");
        }
    }

    #[test]
    fn air_outside_and_labels_inside_the_body() {
        let config = small();
        for index in 0..3 {
            let mut rng = Rng::new(config.seed, index);
            let canvas = draw_anatomy(&config, &mut rng);
            let (ct, labels) = generate_subject(&config, index);
            assert_eq!(labels.data(), &canvas.labels[..]);
            let mut air = (0.0, 0usize);
            for ((&l, &r), &hu) in labels.data().iter().zip(&canvas.region).zip(ct.data()) {
                if r == AIR {
                    assert_eq!(l, 0, "label outside the body");
                    air.0 += hu as f64;
                    air.1 += 1;
                }
            }
            assert!(air.1 > 1000);
            let mean_air = air.0 / air.1 as f64;
            assert!(mean_air < -950.0, "mean air {mean_air}");
            // Corners of every slice are air.
            let [nx, ny, nz] = ct.shape();
            for k in 0..nz {
                for (i, j) in [(0, 0), (nx - 1, 0), (0, ny - 1), (nx - 1, ny - 1)] {
                    let v = ct.get([i, j, k]).unwrap_or(0);
                    assert!(v < -900, "corner ({i}, {j}, {k}) = {v}");
                }
            }
            // The body holds fat, muscle wall and cavity.
            for region in [FAT, WALL, CAVITY] {
                assert!(canvas.region.contains(&region));
            }
        }
    }

    #[test]
    fn splits_are_deterministic_and_sized() {
        let count = |n: usize, s: Split| (0..n).filter(|&i| split_of(i, n) == s).count();
        assert_eq!(split_of(0, 1), Split::Train);
        assert_eq!((count(2, Split::Train), count(2, Split::Val)), (1, 1));
        assert_eq!((count(4, Split::Val), count(4, Split::Test)), (1, 0));
        assert_eq!(
            (
                count(10, Split::Train),
                count(10, Split::Val),
                count(10, Split::Test)
            ),
            (7, 2, 1)
        );
        assert_eq!(count(100, Split::Val), 20);
        assert_eq!(count(100, Split::Test), 10);
        assert_eq!(subject_id(0), "s0001");
        assert_eq!(subject_id(41), "s0042");
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let zero = PhantomConfig {
            subjects: 0,
            ..PhantomConfig::default()
        };
        assert!(matches!(
            write_dataset(dir.path(), &zero),
            Err(Error::Invalid(_))
        ));
        let flat = PhantomConfig {
            shape: [8, 8, 1],
            ..PhantomConfig::default()
        };
        assert!(flat.validate().is_err());
        let bad = PhantomConfig {
            spacing_mm: [1.0, 0.0, 1.0],
            ..PhantomConfig::default()
        };
        assert!(bad.validate().is_err());
        // Degenerate shapes still generate without panicking.
        let (ct, _) = generate_subject(&flat, 0);
        assert_eq!(ct.data().len(), 64);
    }

    #[test]
    fn dataset_round_trips_through_totalsegmentator_layout() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let config = PhantomConfig::with_shape(2, 5, [48, 48, 16]);
        let mut seen = Vec::new();
        let summary =
            write_dataset_with(dir.path(), &config, |s| seen.push(s.id.clone())).expect("written");
        assert_eq!(seen, ["s0001", "s0002"]);
        assert_eq!(summary.subjects.len(), 2);
        assert_eq!(summary.subjects[0].split, Split::Train);
        assert_eq!(summary.subjects[1].split, Split::Val);
        assert!(summary.structures.iter().any(|s| s == "liver"));
        let meta = std::fs::read_to_string(dir.path().join("meta.csv")).expect("meta.csv");
        assert_eq!(meta, "image_id;split\ns0001;train\ns0002;val\n");
        for (index, s) in summary.subjects.iter().enumerate() {
            let subject = load_subject(&dir.path().join(&s.id)).expect("loads");
            assert_eq!(subject.id, s.id);
            let (ct, labels) = generate_subject(&config, index);
            assert_eq!(subject.ct.volume.data(), ct.data());
            assert_eq!(subject.ct.dtype, "int16");
            assert_eq!(subject.segmentation.labels.data(), labels.data());
            assert_eq!(subject.segmentation.files_found, 117);
            assert_eq!(subject.segmentation.overlap_voxels, 0);
            assert_eq!(subject.ct.volume.geometry().orientation(), "RAS");
            assert!(subject.ct.volume.geometry().same_grid(ct.geometry(), 1e-4));
            let counts = label_counts(&labels);
            let present: Vec<String> = catalog()
                .all()
                .iter()
                .filter(|c| counts[c.label as usize] > 0)
                .map(|c| c.name.clone())
                .collect();
            assert_eq!(s.structures, present);
        }
    }
}
