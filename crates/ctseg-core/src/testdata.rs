//! Test support shared by every crate's tests and benchmarks: locating the shared
//! real-data folder (`../shared/data`), synthetic NIfTI headers, gzip helpers.
//!
//! When a file is missing, tests skip with a printed reason; under `CI=true` a missing
//! file is a failure.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Root of the shared data: `$CTSEG_SHARED_DATA` or `<workspace>/../shared/data`.
pub fn shared_root() -> PathBuf {
    std::env::var_os("CTSEG_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

/// `rel` under the shared data root if it exists. Otherwise prints why the caller
/// skips and returns `None` — or panics when `CI=true`, where data must be present.
pub fn shared_path(rel: &str) -> Option<PathBuf> {
    let path = shared_root().join(rel);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "shared test data {} is missing (required when CI=true)",
            path.display()
        );
    }
    // Written to the stderr handle directly (not `eprintln!`) so the test harness
    // does not capture it: the reason shows in every `cargo test` run.
    let _ = writeln!(
        std::io::stderr(),
        "skipping: shared test data {} is missing",
        path.display()
    );
    None
}

/// Print why the caller skips and return `None`; a failure under `CI=true`.
pub fn skip<T>(reason: impl std::fmt::Display) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{reason} (required when CI=true: pip install -r benches/requirements.txt)");
    }
    // Straight to the stderr handle so the harness does not capture the reason.
    let _ = writeln!(std::io::stderr(), "skipping: {reason}");
    None
}

/// The reference virtualenv's python (`$CTSEG_PYTHON`, else
/// `$HOME/.cache/ctseg-venv/bin/python`, made by `.ci/run` from
/// `benches/requirements.txt`) if it can import every module of `imports`; else the
/// caller skips ([`skip`]).
pub fn reference_python(imports: &[&str]) -> Option<PathBuf> {
    let python = match std::env::var_os("CTSEG_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".cache/ctseg-venv/bin/python"),
            None => return skip("neither CTSEG_PYTHON nor HOME is set"),
        },
    };
    let code = format!("import {}", imports.join(", "));
    match std::process::Command::new(&python)
        .args(["-c", &code])
        .output()
    {
        Ok(out) if out.status.success() => Some(python),
        Ok(out) => skip(format!(
            "{} cannot {code}: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("no message")
        )),
        Err(e) => skip(format!("cannot run {}: {e}", python.display())),
    }
}

/// s0001's CT, its full-model segmentation (as GT) and its fast-model one (as
/// prediction), or `None` (the caller skips; a failure under `CI=true`).
pub fn s0001_ct_gt_pred() -> Option<(PathBuf, PathBuf, PathBuf)> {
    Some((
        shared_path("totalseg/s0001/ct.nii.gz")?,
        shared_path("totalseg/s0001/seg_full_multilabel.nii.gz")?,
        shared_path("totalseg/s0001/seg_fast_multilabel.nii.gz")?,
    ))
}

/// Decompress a gzip file into memory.
pub fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).expect("readable"))
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

/// Gzip `bytes` into `path`.
pub fn gzip_to(path: &Path, bytes: &[u8]) {
    let mut e = flate2::write::GzEncoder::new(
        std::fs::File::create(path).expect("writable"),
        flate2::Compression::fast(),
    );
    e.write_all(bytes).expect("write");
    e.finish().expect("finish");
}

/// Fields of a synthetic NIfTI-1 header.
#[derive(Clone)]
pub struct Header {
    /// NIfTI-1 `big_endian`.
    pub big_endian: bool,
    /// NIfTI-1 `dim`.
    pub dim: [i16; 8],
    /// NIfTI-1 `datatype`.
    pub datatype: i16,
    /// NIfTI-1 `bitpix`.
    pub bitpix: i16,
    /// NIfTI-1 `pixdim`.
    pub pixdim: [f32; 8],
    /// NIfTI-1 `vox_offset`.
    pub vox_offset: f32,
    /// NIfTI-1 `scl_slope`.
    pub scl_slope: f32,
    /// NIfTI-1 `scl_inter`.
    pub scl_inter: f32,
    /// NIfTI-1 `qform_code`.
    pub qform_code: i16,
    /// NIfTI-1 `sform_code`.
    pub sform_code: i16,
    /// NIfTI-1 `quatern`.
    pub quatern: [f32; 6],
    /// NIfTI-1 `srow`.
    pub srow: [[f32; 4]; 3],
    /// NIfTI-1 `magic`.
    pub magic: [u8; 4],
}

impl Header {
    /// A 3-D single-file header of `shape` with `datatype`/`bitpix`.
    pub fn new(shape: [i16; 3], datatype: i16, bitpix: i16) -> Self {
        Header {
            big_endian: false,
            dim: [3, shape[0], shape[1], shape[2], 1, 1, 1, 1],
            datatype,
            bitpix,
            pixdim: [1.0, 1.5, 2.0, 3.0, 1.0, 0.0, 0.0, 0.0],
            vox_offset: 352.0,
            scl_slope: 1.0,
            scl_inter: 0.0,
            qform_code: 0,
            sform_code: 1,
            quatern: [0.0; 6],
            srow: [
                [1.5, 0.0, 0.0, -10.0],
                [0.0, 2.0, 0.0, 20.0],
                [0.0, 0.0, 3.0, 30.0],
            ],
            magic: *b"n+1\0",
        }
    }

    /// The 348 header bytes plus a 4-byte empty extender.
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; 352];
        let be = self.big_endian;
        let i32b = |v: i32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let i16b = |v: i16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let f32b = |v: f32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        b[0..4].copy_from_slice(&i32b(348));
        for (i, d) in self.dim.iter().enumerate() {
            b[40 + 2 * i..42 + 2 * i].copy_from_slice(&i16b(*d));
        }
        b[70..72].copy_from_slice(&i16b(self.datatype));
        b[72..74].copy_from_slice(&i16b(self.bitpix));
        for (i, p) in self.pixdim.iter().enumerate() {
            b[76 + 4 * i..80 + 4 * i].copy_from_slice(&f32b(*p));
        }
        b[108..112].copy_from_slice(&f32b(self.vox_offset));
        b[112..116].copy_from_slice(&f32b(self.scl_slope));
        b[116..120].copy_from_slice(&f32b(self.scl_inter));
        b[252..254].copy_from_slice(&i16b(self.qform_code));
        b[254..256].copy_from_slice(&i16b(self.sform_code));
        for (i, q) in self.quatern.iter().enumerate() {
            b[256 + 4 * i..260 + 4 * i].copy_from_slice(&f32b(*q));
        }
        for (r, row) in self.srow.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                let o = 280 + 16 * r + 4 * c;
                b[o..o + 4].copy_from_slice(&f32b(*v));
            }
        }
        b[344..348].copy_from_slice(&self.magic);
        b
    }
}

/// A fresh temporary folder.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}
