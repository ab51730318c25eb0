//! Integration tests, one binary (linked once): each module is one former test file.

mod common;
mod dicom_series;
mod nifti_formats;
mod safe_save;
mod surface_reference;
