//! Helpers shared by the integration tests.
#![allow(dead_code, unused_imports)]

pub use ctseg_core::testdata::{
    Header, gunzip, gzip_to, s0001_ct_gt_pred, shared_path as shared, tempdir,
};

use std::process::Command;

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
