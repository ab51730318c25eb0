//! ctseg-core: the foundation every other ctseg crate builds on — volumes and their
//! geometry, label volumes and the 117 TotalSegmentator structures, window/level,
//! NIfTI and DICOM, dataset layouts, metrics, slicing into the three views, the CPU
//! compositor, synthetic phantoms and the annotation model (edits, undo, recovery).
//!
//! It knows nothing of Burn or egui: `cargo tree -p ctseg-core` shows neither, so no
//! code here can reach the model or the GUI.

#![warn(missing_docs)]

pub mod annotate;
pub mod dataset;
pub mod error;
pub mod geometry;
pub mod ids;
pub mod io;
pub mod labels;
pub mod memory;
pub mod metrics;
pub mod paths;
pub mod phantom;
pub mod postprocess;
pub mod render;
pub mod resample;
pub mod sample;
pub mod slicing;
pub mod structures;
pub mod study;
pub mod testdata;
pub mod volume;
pub mod window;

pub use error::{Error, Result};
pub use geometry::Geometry;
pub use labels::LabelVolume;
pub use volume::Volume;
