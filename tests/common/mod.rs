//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `rel` under `../shared/data`, or `None` (test skips; fails under CI=true).
pub fn shared(rel: &str) -> Option<PathBuf> {
    ctseg::testdata::shared_path(rel)
}

/// s0001's CT, its full-model segmentation (as GT) and its fast-model one (as
/// prediction), or `None` (test skips; fails under CI=true).
pub fn s0001_ct_gt_pred() -> Option<(PathBuf, PathBuf, PathBuf)> {
    Some((
        shared("totalseg/s0001/ct.nii.gz")?,
        shared("totalseg/s0001/seg_full_multilabel.nii.gz")?,
        shared("totalseg/s0001/seg_fast_multilabel.nii.gz")?,
    ))
}

/// Output of one `ctseg` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run the `ctseg` binary with `args`.
pub fn ctseg(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_ctseg"))
        .args(args)
        .output()
        .expect("the ctseg binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
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
    pub big_endian: bool,
    pub dim: [i16; 8],
    pub datatype: i16,
    pub bitpix: i16,
    pub pixdim: [f32; 8],
    pub vox_offset: f32,
    pub scl_slope: f32,
    pub scl_inter: f32,
    pub qform_code: i16,
    pub sform_code: i16,
    pub quatern: [f32; 6],
    pub srow: [[f32; 4]; 3],
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

/// Draw frames of a kittest harness, giving background threads time, until `done`
/// holds; fails after five minutes naming `what`.
#[cfg(feature = "gui")]
pub fn wait_for(
    h: &mut egui_kittest::Harness<'static, ctseg::ui::ViewerApp>,
    what: &str,
    mut done: impl FnMut(&ctseg::ui::ViewerApp) -> bool,
) {
    let start = std::time::Instant::now();
    loop {
        h.run_steps(1);
        if done(h.state()) {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(300),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
