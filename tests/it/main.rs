//! Integration tests, one binary (linked once): each module is one former test file.

mod bad_inputs;
mod common;
mod cpu_vs_pytorch;
mod dashboard_follows_cli;
mod dicomweb;
mod eval_dataset;
mod export;
mod gpu_check;
mod orthanc;
mod pacs_seg;
mod predict;
mod real_data;
mod serve;
mod stack_pins;
