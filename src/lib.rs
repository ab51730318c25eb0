//! ctseg: CT organ segmentation — volumes, the 117 TotalSegmentator structures,
//! label volumes, metrics, and (in later layers) the model, training and the viewer.
//!
//! Lower layers (`geometry`, `volume`, `labels`, `structures`, `window`, `metrics`,
//! `io`) know nothing of Burn or egui.

#![warn(missing_docs)]

pub mod cli;
pub mod error;
pub mod geometry;
pub mod io;
pub mod labels;
pub mod metrics;
pub mod structures;
pub mod testdata;
pub mod volume;
pub mod window;

pub use error::{Error, Result};
pub use geometry::Geometry;
pub use labels::LabelVolume;
pub use volume::Volume;
