//! NIfTI-1 reading on synthetic files: every datatype, both endiannesses, scaling,
//! qform/pixdim geometry, header/image pairs, 4-D and NIfTI-2 handling, and writing.

use crate::common;

use common::{Header, gzip_to, tempdir};
use ctseg_core::geometry::{Geometry, IDENTITY};
use ctseg_core::io::atomic_write;
use ctseg_core::io::nifti::{self, AffineSource, Extension, WriteOptions};
use ctseg_core::{Error, Volume};

/// Raw voxel values used for every datatype (all representable in i8..f64).
const VALUES: [f64; 6] = [0.0, 1.0, -3.0, 100.0, 27.0, -100.0];

fn encode(values: &[f64], datatype: i16, big: bool) -> Vec<u8> {
    let mut out = Vec::new();
    macro_rules! put {
        ($t:ty) => {
            for v in values {
                let x = *v as $t;
                out.extend_from_slice(&if big {
                    x.to_be_bytes()
                } else {
                    x.to_le_bytes()
                });
            }
        };
    }
    match datatype {
        2 => put!(u8),
        4 => put!(i16),
        8 => put!(i32),
        16 => put!(f32),
        64 => put!(f64),
        256 => put!(i8),
        512 => put!(u16),
        768 => put!(u32),
        1024 => put!(i64),
        1280 => put!(u64),
        _ => unreachable!(),
    }
    out
}

#[test]
fn every_datatype_and_endianness_with_scaling() {
    let dir = tempdir();
    let types: [(i16, i16, bool); 10] = [
        (2, 8, false),
        (4, 16, true),
        (8, 32, true),
        (16, 32, true),
        (64, 64, true),
        (256, 8, true),
        (512, 16, false),
        (768, 32, false),
        (1024, 64, true),
        (1280, 64, false),
    ];
    for (datatype, bitpix, signed) in types {
        let values: Vec<f64> = VALUES
            .iter()
            .map(|v| if signed { *v } else { v.abs() })
            .collect();
        for big in [false, true] {
            for (slope, inter) in [(1.0f32, 0.0f32), (2.0, -1024.0), (0.0, 5.0)] {
                let mut h = Header::new([3, 2, 1], datatype, bitpix);
                h.big_endian = big;
                h.scl_slope = slope;
                h.scl_inter = inter;
                let mut bytes = h.bytes();
                bytes.extend(encode(&values, datatype, big));
                for gz in [false, true] {
                    let path = dir.path().join(format!(
                        "t{datatype}_{big}_{slope}_{gz}.nii{}",
                        if gz { ".gz" } else { "" }
                    ));
                    if gz {
                        gzip_to(&path, &bytes);
                    } else {
                        std::fs::write(&path, &bytes).expect("write");
                    }
                    let img = nifti::read::<i16>(&path).expect("readable");
                    // slope 0 means "no scaling" (NIfTI spec / nibabel).
                    let (s, i) = if slope == 0.0 {
                        (1.0, 0.0)
                    } else {
                        (slope as f64, inter as f64)
                    };
                    let expected: Vec<i16> =
                        values.iter().map(|v| (v * s + i).round() as i16).collect();
                    assert_eq!(
                        img.volume.data(),
                        &expected[..],
                        "datatype {datatype} big {big} slope {slope} gz {gz}"
                    );
                    assert_eq!(img.info.big_endian, big);
                    assert_eq!(img.info.compressed, gz);
                    assert_eq!(img.volume.shape(), [3, 2, 1]);
                }
            }
        }
    }
}

#[test]
fn values_beyond_int16_are_clamped_and_counted() {
    let dir = tempdir();
    let h = Header::new([2, 1, 1], 16, 32);
    let mut bytes = h.bytes();
    bytes.extend(encode(&[40000.0, -5.5], 16, false));
    let path = dir.path().join("f.nii");
    std::fs::write(&path, &bytes).expect("write");
    let img = nifti::read::<i16>(&path).expect("readable");
    assert_eq!(img.volume.data(), &[i16::MAX, -6]);
    assert_eq!(img.info.clipped_voxels, 1);
}

#[test]
fn qform_geometry_when_sform_is_unset() {
    let dir = tempdir();
    let mut h = Header::new([2, 2, 2], 2, 8);
    h.sform_code = 0;
    h.qform_code = 1;
    // 180° about z (quaternion d = 1), qfac -1, offsets.
    h.quatern = [0.0, 0.0, 1.0, 5.0, 6.0, 7.0];
    h.pixdim = [-1.0, 1.5, 2.0, 3.0, 1.0, 0.0, 0.0, 0.0];
    let mut bytes = h.bytes();
    bytes.extend([0u8; 8]);
    let path = dir.path().join("q.nii");
    std::fs::write(&path, &bytes).expect("write");
    let img = nifti::read::<u8>(&path).expect("readable");
    assert_eq!(img.info.affine_source, AffineSource::Qform);
    let expected = [
        [-1.5, 0.0, 0.0, 5.0],
        [0.0, -2.0, 0.0, 6.0],
        [0.0, 0.0, -3.0, 7.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let got = img.volume.geometry().world_from_voxel;
    for r in 0..4 {
        for c in 0..4 {
            assert!((got[r][c] - expected[r][c]).abs() < 1e-6, "{got:?}");
        }
    }
    assert_eq!(img.volume.geometry().orientation(), "LPI");
}

#[test]
fn pixdim_geometry_when_no_transform_is_set() {
    let dir = tempdir();
    let mut h = Header::new([4, 3, 2], 2, 8);
    h.sform_code = 0;
    h.qform_code = 0;
    let mut bytes = h.bytes();
    bytes.extend([0u8; 24]);
    let path = dir.path().join("p.nii");
    std::fs::write(&path, &bytes).expect("write");
    let img = nifti::read::<u8>(&path).expect("readable");
    // nibabel's shape_zoom_affine: x flipped, centred.
    let expected = [
        [-1.5, 0.0, 0.0, 2.25],
        [0.0, 2.0, 0.0, -2.0],
        [0.0, 0.0, 3.0, -1.5],
        [0.0, 0.0, 0.0, 1.0],
    ];
    assert_eq!(img.volume.geometry().world_from_voxel, expected);
    assert_eq!(img.info.affine_source, AffineSource::Pixdim);
}

#[test]
fn header_image_pairs_are_read() {
    let dir = tempdir();
    let mut h = Header::new([3, 2, 1], 4, 16);
    h.magic = *b"ni1\0";
    h.vox_offset = 0.0;
    std::fs::write(dir.path().join("pair.hdr"), h.bytes()).expect("write");
    std::fs::write(dir.path().join("pair.img"), encode(&VALUES, 4, false)).expect("write");
    for name in ["pair.hdr", "pair.img"] {
        let img = nifti::read::<i16>(dir.path().join(name)).expect("readable pair");
        assert_eq!(img.volume.data(), &[0, 1, -3, 100, 27, -100]);
    }
    std::fs::remove_file(dir.path().join("pair.img")).expect("remove");
    let err = nifti::read::<i16>(dir.path().join("pair.hdr")).expect_err("no image file");
    assert!(err.to_string().contains(".img"), "{err}");
}

#[test]
fn four_d_is_refused_unless_it_holds_one_volume() {
    let dir = tempdir();
    let mut h = Header::new([2, 2, 2], 2, 8);
    h.dim = [4, 2, 2, 2, 3, 1, 1, 1];
    let mut bytes = h.bytes();
    bytes.extend([0u8; 24]);
    let path = dir.path().join("4d.nii");
    std::fs::write(&path, &bytes).expect("write");
    let err = nifti::read::<i16>(&path).expect_err("4-D refused");
    assert!(matches!(err, Error::Unsupported { .. }));
    assert!(err.to_string().contains("3 volumes"), "{err}");

    h.dim = [4, 2, 2, 2, 1, 1, 1, 1];
    let mut bytes = h.bytes();
    bytes.extend([7u8; 8]);
    std::fs::write(&path, &bytes).expect("write");
    let img = nifti::read::<i16>(&path).expect("one volume is 3-D");
    assert_eq!(img.volume.shape(), [2, 2, 2]);
}

#[test]
fn nifti2_and_analyze_are_refused_clearly() {
    let dir = tempdir();
    let mut b = vec![0u8; 600];
    b[0..4].copy_from_slice(&540i32.to_le_bytes());
    b[4..8].copy_from_slice(b"n+2\0");
    let path = dir.path().join("two.nii");
    std::fs::write(&path, &b).expect("write");
    let err = nifti::read::<i16>(&path).expect_err("NIfTI-2 refused");
    assert!(err.to_string().contains("NIfTI-2"), "{err}");

    let mut h = Header::new([2, 1, 1], 2, 8);
    h.magic = [0; 4];
    let mut bytes = h.bytes();
    bytes.extend([0u8; 2]);
    let path = dir.path().join("analyze.nii");
    std::fs::write(&path, &bytes).expect("write");
    let err = nifti::read::<i16>(&path).expect_err("Analyze refused");
    assert!(err.to_string().contains("Analyze"), "{err}");
}

fn oblique_lps() -> Geometry {
    let (c, s) = (0.2f64.cos(), 0.2f64.sin());
    Geometry::new(
        [5, 4, 3],
        [
            [-0.7 * c, 0.7 * s, 0.0, 120.25],
            [-0.7 * s, -0.7 * c, 0.0, 80.5],
            [0.0, 0.0, 2.5, -300.0],
            [0.0, 0.0, 0.0, 1.0],
        ],
    )
}

#[test]
fn write_read_round_trip_keeps_data_affine_and_extensions() {
    let dir = tempdir();
    let g = oblique_lps();
    let data: Vec<i16> = (0..60).map(|v| v * 37 - 1000).collect();
    let vol = Volume::new(g.clone(), data).expect("60 voxels");
    let ext = Extension {
        code: 0,
        data: b"<CaretExtension/>".to_vec(),
    };
    let options = WriteOptions {
        extensions: vec![ext.clone()],
        ..WriteOptions::default()
    };
    for name in ["rt.nii.gz", "rt.nii"] {
        let path = dir.path().join(name);
        nifti::write(&path, &vol, &options).expect("written");
        let back = nifti::read::<i16>(&path).expect("readable");
        assert_eq!(back.volume.data(), vol.data());
        let diff = back.volume.geometry().affine_difference(&g);
        assert!(diff < 1e-4, "affine changed by {diff}");
        assert_eq!(back.volume.geometry().orientation(), g.orientation());
        assert_eq!(back.info.extensions.len(), 1);
        assert!(back.info.extensions[0].data.starts_with(&ext.data));
        // a second round trip is exact (f32 storage is a fixed point)
        nifti::write(&path, &back.volume, &options).expect("rewritten");
        let again = nifti::read::<i16>(&path).expect("readable");
        assert_eq!(again.volume.geometry(), back.volume.geometry());
    }
    // The qform written alongside the sform encodes the same affine.
    let path = dir.path().join("rt.nii");
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[254..256].copy_from_slice(&0i16.to_le_bytes()); // sform_code = 0
    std::fs::write(&path, &bytes).expect("write");
    let q = nifti::read::<i16>(&path).expect("readable");
    assert_eq!(q.info.affine_source, AffineSource::Qform);
    assert!(q.volume.geometry().affine_difference(&g) < 1e-4);
}

#[test]
fn a_failed_write_leaves_the_previous_file_intact() {
    let dir = tempdir();
    let path = dir.path().join("keep.nii.gz");
    let vol =
        Volume::new(Geometry::new([2, 2, 1], IDENTITY), vec![1i16, 2, 3, 4]).expect("4 voxels");
    nifti::write(&path, &vol, &WriteOptions::default()).expect("first write");
    let before = std::fs::read(&path).expect("read");
    let result = atomic_write(&path, ".nii.gz", |tmp| {
        std::fs::write(tmp, b"half a file").expect("partial write");
        Err(Error::Invalid("simulated failure mid-write".into()))
    });
    assert!(result.is_err());
    assert_eq!(
        std::fs::read(&path).expect("read"),
        before,
        "original untouched"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
    assert_eq!(leftovers.len(), 1, "temporary file removed");
    assert!(nifti::write(dir.path().join("x.png"), &vol, &WriteOptions::default()).is_err());
}
