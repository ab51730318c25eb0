//! ctseg: CT organ segmentation — volumes, the 117 TotalSegmentator structures,
//! label volumes, metrics, and (in later layers) the model, training and the viewer.
//!
//! Lower layers (`geometry`, `volume`, `labels`, `structures`, `window`, `metrics`,
//! `io`) know nothing of Burn or egui.

#![warn(missing_docs)]

pub mod annotate;
pub mod augment;
#[cfg(feature = "ml")]
pub mod backend;
pub mod cli;
pub mod data;
pub mod error;
pub mod geometry;
#[cfg(feature = "ml")]
pub mod infer;
pub mod io;
pub mod labels;
pub mod metrics;
#[cfg(feature = "ml")]
pub mod model;
pub mod phantom;
pub mod postprocess;
pub mod render;
pub mod resample;
pub mod structures;
pub mod testdata;
#[cfg(feature = "ml")]
pub mod train;
#[cfg(feature = "gui")]
pub mod ui;
pub mod viewdata;
pub mod volume;
pub mod window;
#[cfg(feature = "ml")]
pub mod worker;

pub use error::{Error, Result};
pub use geometry::Geometry;
pub use labels::LabelVolume;
pub use volume::Volume;
