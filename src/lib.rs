//! The `ctseg` command line: argument parsing and output for `info`, `eval`,
//! `phantom`, `train`, `predict`, `export`, `bench` and `view`. The work itself lives
//! in the `ctseg-core`, `ctseg-ml` and `ctseg-viewer` crates.

#![warn(missing_docs)]

pub mod cli;
pub mod heap;
