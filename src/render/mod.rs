//! Slice display: which voxels a view shows ([`slice`]) and how a slice of HU plus
//! label layers becomes RGBA pixels ([`cpu`], the reference compositor; the GPU
//! shader in `shaders/slice.wgsl` must agree with it).

pub mod cpu;
pub mod figure;
#[cfg(feature = "gui")]
pub mod gpu;
pub mod slice;

pub use cpu::{CompositeParams, LabelTable, LayerParams, OverlayMode, composite};
pub use figure::{FigureSlice, four_panels};
pub use slice::{Axis, DISPLAY_ORIENTATION, SliceGrid};
