//! Integration tests, one binary (linked once): each module is one former test file.

mod annotate_gui;
mod common;
/// The root crate's Orthanc harness, shared without a copy.
#[path = "../../../../tests/it/orthanc.rs"]
mod orthanc;
mod pacs;
mod training_gui;
mod viewer;
