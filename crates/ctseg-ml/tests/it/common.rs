//! Helpers shared by this crate's integration tests (from `ctseg_core::testdata`).
#![allow(unused_imports)]

pub use ctseg_core::testdata::{
    Header, gunzip, gzip_to, s0001_ct_gt_pred, shared_path as shared, tempdir,
};
