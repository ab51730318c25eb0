//! Slice display on the CPU: how a slice of HU plus label layers becomes RGBA pixels
//! ([`cpu`], the reference compositor; the viewer's GPU shader in
//! `shaders/slice.wgsl` must agree with it) and the four-panel figure ([`figure`]).
//! Which voxels a view shows is [`crate::slicing`].

pub mod cpu;
pub mod figure;

pub use cpu::{CompositeParams, LabelTable, LayerParams, OverlayMode, composite};
pub use figure::{FigureSlice, four_panels};
