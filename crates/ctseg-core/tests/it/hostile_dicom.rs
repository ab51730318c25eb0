//! Hostile and odd DICOM input: huge or short headers, implausible geometry and
//! rescale values, colour images, files that are DICOM but not images, files
//! without a preamble or file meta group, undecodable pixel data. Each one gets a
//! one-line error naming the file (or a warning), never an abort or a wrong volume.
//! Most slices are written from scratch here; a few tests modify the real series.

use crate::common;

use std::path::{Path, PathBuf};

use common::{shared, tempdir};
use ctseg_core::io::dicom::{DicomSeries, MAX_SERIES_VOXELS, read_series};
use dicom_core::value::PixelFragmentSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const JPEG2000_LOSSLESS: &str = "1.2.840.10008.1.2.4.90";

/// One synthetic CT slice: 16-bit signed greyscale, uncompressed unless
/// `fragment` is set.
#[derive(Clone)]
struct Slice {
    rows: u16,
    cols: u16,
    z: f64,
    /// Raw PixelData bytes; `None`: a small ramp of Rows×Columns int16 values.
    pixels: Option<Vec<u8>>,
    /// Encapsulated pixel data (one fragment) instead of native bytes.
    fragment: Option<Vec<u8>>,
    /// DS text; empty: the attribute is left out.
    slope: String,
    intercept: String,
    spacing: String,
    thickness: String,
    photometric: &'static str,
    modality: &'static str,
    series_uid: &'static str,
    transfer_syntax: &'static str,
}

impl Default for Slice {
    fn default() -> Self {
        Slice {
            rows: 4,
            cols: 4,
            z: 0.0,
            pixels: None,
            fragment: None,
            slope: "1".into(),
            intercept: "-1024".into(),
            spacing: "0.7\\0.7".into(),
            thickness: "2".into(),
            photometric: "MONOCHROME2",
            modality: "CT",
            series_uid: "1.2.826.0.1.3680043.9.7.1",
            transfer_syntax: EXPLICIT_LE,
        }
    }
}

/// The ramp a slice holds by default: stored values 0, 10, 20….
fn ramp(rows: u16, cols: u16) -> Vec<u8> {
    (0..rows as i16 * cols as i16)
        .flat_map(|i| (i * 10).to_le_bytes())
        .collect()
}

fn element(tag: dicom_core::Tag, vr: VR, value: PrimitiveValue) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, value)
}

/// Write `s` as a DICOM file at `path`.
fn write_slice(path: &Path, s: &Slice) {
    let instance = format!("1.2.826.0.1.3680043.9.7.2.{}", (s.z * 1000.0).abs() as u64);
    let mut obj = InMemDicomObject::from_element_iter([
        element(
            tags::SOP_CLASS_UID,
            VR::UI,
            "1.2.840.10008.5.1.4.1.1.2".into(),
        ),
        element(tags::SOP_INSTANCE_UID, VR::UI, instance.as_str().into()),
        element(tags::MODALITY, VR::CS, s.modality.into()),
        element(tags::SERIES_INSTANCE_UID, VR::UI, s.series_uid.into()),
        element(
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            format!("-10\\-20\\{}", s.z).as_str().into(),
        ),
        element(
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            "1\\0\\0\\0\\1\\0".into(),
        ),
        element(tags::PIXEL_SPACING, VR::DS, s.spacing.as_str().into()),
        element(tags::SAMPLES_PER_PIXEL, VR::US, 1_u16.into()),
        element(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            s.photometric.into(),
        ),
        element(tags::ROWS, VR::US, s.rows.into()),
        element(tags::COLUMNS, VR::US, s.cols.into()),
        element(tags::BITS_ALLOCATED, VR::US, 16_u16.into()),
        element(tags::BITS_STORED, VR::US, 16_u16.into()),
        element(tags::HIGH_BIT, VR::US, 15_u16.into()),
        element(tags::PIXEL_REPRESENTATION, VR::US, 1_u16.into()),
    ]);
    for (tag, value) in [
        (tags::SLICE_THICKNESS, &s.thickness),
        (tags::RESCALE_SLOPE, &s.slope),
        (tags::RESCALE_INTERCEPT, &s.intercept),
    ] {
        if !value.is_empty() {
            obj.put(element(tag, VR::DS, value.as_str().into()));
        }
    }
    match &s.fragment {
        Some(bytes) => {
            obj.put(DataElement::new(
                tags::PIXEL_DATA,
                VR::OB,
                PixelFragmentSequence::new(Vec::<u32>::new(), vec![bytes.clone()]),
            ));
        }
        None => {
            let bytes = s.pixels.clone().unwrap_or_else(|| ramp(s.rows, s.cols));
            obj.put(element(
                tags::PIXEL_DATA,
                VR::OW,
                PrimitiveValue::from(bytes),
            ));
        }
    }
    obj.with_meta(FileMetaTableBuilder::new().transfer_syntax(s.transfer_syntax))
        .expect("meta")
        .write_to_file(path)
        .expect("write DICOM");
}

/// Write `n` slices 2 mm apart into `dir`, each edited by `edit(index, slice)`.
fn write_series(dir: &Path, n: usize, edit: impl Fn(usize, &mut Slice)) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let mut s = Slice {
                z: 2.0 * i as f64,
                ..Slice::default()
            };
            edit(i, &mut s);
            let path = dir.join(format!("IM{i:04}.dcm"));
            write_slice(&path, &s);
            path
        })
        .collect()
}

/// The error of reading `dir`, checked to be one line naming `names` (files or
/// folders) and containing every one of `parts`.
fn error_of(dir: &Path, names: &[&Path], parts: &[&str]) -> String {
    let message = read_series(dir).expect_err("must be refused").to_string();
    println!("{message}");
    assert!(!message.contains('\n'), "one line: {message}");
    for name in names {
        assert!(
            message.contains(&name.display().to_string()),
            "names {}: {message}",
            name.display()
        );
    }
    for part in parts {
        assert!(message.contains(part), "says {part:?}: {message}");
    }
    message
}

fn read_ok(dir: &Path) -> DicomSeries {
    read_series(dir).expect("readable series")
}

#[test]
fn a_synthetic_series_reads_back_in_hounsfield_units() {
    let dir = tempdir();
    write_series(dir.path(), 3, |_, _| {});
    let series = read_ok(dir.path());
    assert_eq!(series.volume.shape(), [4, 4, 3]);
    assert_eq!(series.volume.min_max(), Some((-1024, -1024 + 150)));
    assert_eq!(series.volume.geometry().spacing(), [0.7, 0.7, 2.0]);
    assert!(series.warnings.is_empty(), "{:?}", series.warnings);
}

#[test]
fn a_huge_declared_image_is_refused_before_allocating() {
    // Uncompressed: the header is checked against the bytes in the file.
    let dir = tempdir();
    let files = write_series(dir.path(), 3, |_, s| {
        (s.rows, s.cols) = (65535, 65535);
        s.pixels = Some(vec![0; 32 * 1024]);
    });
    error_of(
        dir.path(),
        &[&files[0]],
        &["Rows×Columns = 65535×65535 needs 8.0 GiB of pixel data but the file holds 32 KiB"],
    );
    // Compressed: the size of the whole series is capped.
    let dir = tempdir();
    write_series(dir.path(), 3, |_, s| {
        (s.rows, s.cols) = (65535, 65535);
        s.transfer_syntax = JPEG2000_LOSSLESS;
        s.fragment = Some(vec![0; 64]);
    });
    let limit = format!("{MAX_SERIES_VOXELS} voxels");
    error_of(
        dir.path(),
        &[dir.path()],
        &[
            "the series would be 24.0 GiB",
            "more than ctseg's limit of 4.0 GiB",
            &limit,
        ],
    );
}

#[test]
fn a_huge_header_on_real_compressed_slices_is_refused() {
    let Some(src) = shared("totalseg/dicom_ct") else {
        return;
    };
    let dir = tempdir();
    for f in real_slices(&src).iter().take(3) {
        let mut obj = dicom_object::open_file(f).expect("DICOM");
        obj.put(element(tags::ROWS, VR::US, 65535_u16.into()));
        obj.put(element(tags::COLUMNS, VR::US, 65535_u16.into()));
        obj.write_to_file(dir.path().join(f.file_name().expect("name")))
            .expect("write");
    }
    error_of(dir.path(), &[dir.path()], &["more than ctseg's limit"]);
}

#[test]
fn short_pixel_data_says_how_short() {
    let dir = tempdir();
    let files = write_series(dir.path(), 2, |i, s| {
        (s.rows, s.cols) = (8, 8);
        if i == 1 {
            s.pixels = Some(vec![0; 10]);
        }
    });
    error_of(
        dir.path(),
        &[&files[1]],
        &["pixel data holds 10 bytes; Rows×Columns×BitsAllocated (8×8×16 bits) needs 128"],
    );
}

#[test]
fn empty_images_are_refused() {
    let dir = tempdir();
    let files = write_series(dir.path(), 2, |_, s| {
        s.rows = 0;
        s.pixels = Some(Vec::new());
    });
    error_of(
        dir.path(),
        &[&files[0]],
        &["empty image: Rows×Columns = 0×4"],
    );
}

#[test]
fn implausible_geometry_is_refused() {
    // Slices 1e7 mm apart: their positions are not plausible already.
    let dir = tempdir();
    let files = write_series(dir.path(), 2, |i, s| s.z = 1e7 * i as f64);
    error_of(
        dir.path(),
        &[&files[1]],
        &["ImagePositionPatient coordinate 1e7 mm is not plausible"],
    );
    // Plausible positions, implausible step.
    let dir = tempdir();
    let files = write_series(dir.path(), 2, |i, s| s.z = -4e5 + 8e5 * i as f64);
    error_of(
        dir.path(),
        &[&files[1], &files[0]],
        &[
            "slice is 800000 mm from the slice before it",
            "0.01..=100 mm",
        ],
    );
    for (spacing, shown) in [
        ("1e30\\1e30", "1e30"),
        ("1e-9\\0.7", "1e-9"),
        ("0.7\\150", "150"),
    ] {
        let dir = tempdir();
        let files = write_series(dir.path(), 2, |_, s| s.spacing = spacing.into());
        error_of(
            dir.path(),
            &[&files[0]],
            &[&format!("PixelSpacing {shown} mm is not plausible")],
        );
    }
    // A single slice takes its thickness: that has to be plausible too.
    let dir = tempdir();
    let files = write_series(dir.path(), 1, |_, s| s.thickness = "1e30".into());
    error_of(
        dir.path(),
        &[&files[0]],
        &["slice thickness 1e30 mm is not plausible"],
    );
}

#[test]
fn implausible_rescale_is_refused() {
    for (slope, intercept, says) in [
        ("0", "0", "RescaleSlope 0 is not plausible"),
        ("-1", "0", "RescaleSlope -1 is not plausible"),
        ("1e30", "0", "RescaleSlope 1e30 is not plausible"),
        ("NaN", "0", "RescaleSlope NaN is not plausible"),
        ("inf", "0", "RescaleSlope inf is not plausible"),
        ("1", "-1e6", "RescaleIntercept -1e6 is not plausible"),
        ("1", "NaN", "RescaleIntercept NaN is not plausible"),
    ] {
        let dir = tempdir();
        // Only the last slice is wrong: the whole series is refused, not shortened.
        let files = write_series(dir.path(), 3, |i, s| {
            if i == 2 {
                (s.slope, s.intercept) = (slope.into(), intercept.into());
            }
        });
        error_of(dir.path(), &[&files[2]], &[says]);
    }
}

#[test]
fn values_beyond_int16_are_clamped_with_one_warning() {
    let read_with_slope = |slope: &str| {
        let dir = tempdir();
        write_series(dir.path(), 2, |_, s| {
            (s.slope, s.intercept) = (slope.into(), "0".into());
        });
        read_ok(dir.path())
    };
    // Stored values 0, 10 … 150: ×10 fits in int16.
    let fits = read_with_slope("10");
    assert!(fits.warnings.is_empty(), "{:?}", fits.warnings);
    assert_eq!(fits.volume.min_max(), Some((0, 1500)));
    // ×1000: stored 40 … 150 (12 voxels per slice) give 40000 … 150000 HU.
    let series = read_with_slope("1000");
    assert_eq!(series.volume.min_max(), Some((0, i16::MAX)));
    assert_eq!(series.warnings.len(), 1, "{:?}", series.warnings);
    let w = &series.warnings[0];
    assert!(
        w.contains("24 voxels outside the int16 range") && w.contains("40000..150000"),
        "{w}"
    );
}

#[test]
fn colour_images_are_refused_and_monochrome1_is_read() {
    for (kind, article) in [("PALETTE COLOR", "a"), ("RGB", "an"), ("YBR_FULL", "a")] {
        let dir = tempdir();
        let files = write_series(dir.path(), 2, |_, s| s.photometric = kind);
        error_of(
            dir.path(),
            &[&files[0]],
            &[&format!("is {article} {kind} image, not a greyscale CT")],
        );
    }
    // MONOCHROME1 only inverts the display: the HU are the same.
    let dir = tempdir();
    write_series(dir.path(), 2, |_, s| s.photometric = "MONOCHROME1");
    let mono1 = read_ok(dir.path());
    let dir = tempdir();
    write_series(dir.path(), 2, |_, _| {});
    assert_eq!(mono1.volume, read_ok(dir.path()).volume);
}

/// A DICOM file that is not an image: an RT structure set.
fn write_rtstruct(path: &Path) {
    InMemDicomObject::from_element_iter([
        element(
            tags::SOP_CLASS_UID,
            VR::UI,
            "1.2.840.10008.5.1.4.1.1.481.3".into(),
        ),
        element(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.9.7.3".into(),
        ),
        element(tags::MODALITY, VR::CS, "RTSTRUCT".into()),
        element(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.9.7.4".into(),
        ),
    ])
    .with_meta(FileMetaTableBuilder::new().transfer_syntax(EXPLICIT_LE))
    .expect("meta")
    .write_to_file(path)
    .expect("write");
}

#[test]
fn dicom_files_without_image_data_are_named() {
    let dir = tempdir();
    write_rtstruct(&dir.path().join("rs1.dcm"));
    write_rtstruct(&dir.path().join("rs2.dcm"));
    let message = error_of(
        dir.path(),
        &[dir.path()],
        &["2 DICOM files (RTSTRUCT), none of them a CT image"],
    );
    assert!(!message.contains("none of them DICOM"), "{message}");
    // Beside a CT series they are skipped with a warning.
    write_series(dir.path(), 2, |_, _| {});
    let series = read_ok(dir.path());
    assert_eq!(series.slices, 2);
    assert!(
        series
            .warnings
            .iter()
            .any(|w| w.contains("2 DICOM files holding no CT image (RTSTRUCT) were skipped")),
        "{:?}",
        series.warnings
    );
}

/// A DICOM file's bytes without its 128-byte preamble, without the "DICM" magic
/// too, and the bare data set (without the file meta group).
fn strip(path: &Path) -> [Vec<u8>; 3] {
    let bytes = std::fs::read(path).expect("read");
    assert_eq!(&bytes[128..132], b"DICM");
    // (0002,0000) UL, explicit VR: tag, "UL", length 4, value.
    let group_length = u32::from_le_bytes(bytes[140..144].try_into().expect("4 bytes"));
    [
        bytes[128..].to_vec(),
        bytes[132..].to_vec(),
        bytes[144 + group_length as usize..].to_vec(),
    ]
}

#[test]
fn files_without_preamble_or_file_meta_are_read() {
    for transfer_syntax in [EXPLICIT_LE, IMPLICIT_LE] {
        let reference = tempdir();
        let files = write_series(reference.path(), 3, |_, s| {
            s.transfer_syntax = transfer_syntax
        });
        let expected = read_ok(reference.path()).volume;
        let dirs = [tempdir(), tempdir(), tempdir()];
        for f in &files {
            for (dir, bytes) in dirs.iter().zip(strip(f)) {
                std::fs::write(dir.path().join(f.file_name().expect("name")), bytes)
                    .expect("write");
            }
        }
        for dir in &dirs {
            let series = read_ok(dir.path());
            assert_eq!(series.volume, expected, "{transfer_syntax}");
            assert!(series.warnings.is_empty(), "{:?}", series.warnings);
        }
    }
}

#[test]
fn a_series_too_deep_to_search_is_reported() {
    let dir = tempdir();
    let deep = (0..10).fold(dir.path().to_path_buf(), |p, i| p.join(format!("d{i}")));
    std::fs::create_dir_all(&deep).expect("mkdir");
    write_series(&deep, 2, |_, _| {});
    let message = error_of(
        dir.path(),
        &[dir.path()],
        &["folders more than 8 levels down were not searched"],
    );
    assert!(!message.contains("folder is empty"), "{message}");
    // With a stray file higher up, the note stays.
    std::fs::write(dir.path().join("d0/README.txt"), "exported").expect("write");
    error_of(
        dir.path(),
        &[dir.path()],
        &["no DICOM files found", "levels down were not searched"],
    );
}

#[test]
fn undecodable_pixel_data_names_the_transfer_syntax() {
    let dir = tempdir();
    let files = write_series(dir.path(), 2, |_, s| {
        s.transfer_syntax = JPEG2000_LOSSLESS;
        s.fragment = Some(vec![0x55; 64]);
    });
    error_of(
        dir.path(),
        &[&files[0]],
        &[
            "cannot decode pixel data (JPEG 2000 Image Compression (Lossless Only) 1.2.840.10008.1.2.4.90)",
        ],
    );
}

fn real_slices(src: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(src)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

/// Copy the first two real slices into `dir`, the second changed by `edit`.
fn copy_real_with(
    src: &Path,
    dir: &Path,
    edit: impl Fn(&mut dicom_object::DefaultDicomObject),
) -> PathBuf {
    let files = real_slices(src);
    std::fs::copy(&files[0], dir.join("a.dcm")).expect("copy");
    let mut obj = dicom_object::open_file(&files[1]).expect("DICOM");
    edit(&mut obj);
    let out = dir.join("b.dcm");
    obj.write_to_file(&out).expect("write");
    out
}

/// The JPEG 2000 codestream of a real slice, changed by `edit`.
fn edit_fragment(obj: &mut dicom_object::DefaultDicomObject, edit: impl Fn(&mut Vec<u8>)) {
    let mut fragments = obj
        .element(tags::PIXEL_DATA)
        .expect("pixel data")
        .value()
        .fragments()
        .expect("encapsulated")
        .to_vec();
    edit(&mut fragments[0]);
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PixelFragmentSequence::new(Vec::<u32>::new(), fragments),
    ));
}

#[test]
fn a_truncated_jpeg2000_slice_is_one_line() {
    let Some(src) = shared("totalseg/dicom_ct") else {
        return;
    };
    let dir = tempdir();
    let bad = copy_real_with(&src, dir.path(), |obj| {
        edit_fragment(obj, |f| f.truncate(f.len() / 3));
    });
    error_of(
        dir.path(),
        &[&bad],
        &[
            "cannot decode pixel data (JPEG 2000 Image Compression (Lossless Only) 1.2.840.10008.1.2.4.90)",
        ],
    );
}

#[test]
fn a_jpeg2000_image_larger_than_its_header_is_refused() {
    let Some(src) = shared("totalseg/dicom_ct") else {
        return;
    };
    // The decoder would write 512×512 pixels into a 256×256 buffer.
    let dir = tempdir();
    for f in real_slices(&src).iter().take(2) {
        let mut obj = dicom_object::open_file(f).expect("DICOM");
        obj.put(element(tags::ROWS, VR::US, 256_u16.into()));
        obj.put(element(tags::COLUMNS, VR::US, 256_u16.into()));
        obj.write_to_file(dir.path().join(f.file_name().expect("name")))
            .expect("write");
    }
    error_of(
        dir.path(),
        &[],
        &["the JPEG 2000 image is 512×512 pixels but Columns×Rows say 256×256"],
    );
}

#[test]
fn the_real_series_reads_the_same_without_preambles() {
    let Some(src) = shared("totalseg/dicom_ct") else {
        return;
    };
    let expected = read_ok(&src);
    let dir = tempdir();
    for f in real_slices(&src) {
        let [without_preamble, ..] = strip(&f);
        std::fs::write(
            dir.path().join(f.file_name().expect("name")),
            without_preamble,
        )
        .expect("write");
    }
    let series = read_ok(dir.path());
    assert_eq!(series.volume, expected.volume);
    assert_eq!(series.dtype, expected.dtype);
}
