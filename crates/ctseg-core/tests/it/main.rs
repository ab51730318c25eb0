//! Integration tests, one binary (linked once): each module is one former test file.

mod common;
mod dicom_seg;
mod dicom_series;
mod hostile_dicom;
mod hostile_input;
mod nifti_formats;
mod safe_save;
mod surface_reference;
