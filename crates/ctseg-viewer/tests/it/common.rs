//! Helpers shared by the viewer's integration tests.
#![allow(unused_imports)]

pub use ctseg_core::testdata::{
    Header, gunzip, gzip_to, s0001_ct_gt_pred, shared_path as shared, tempdir,
};

pub use ctseg_viewer::testing::wait_for;
