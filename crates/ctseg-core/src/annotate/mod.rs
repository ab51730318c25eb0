//! Annotation: editing a label layer with brush, eraser, flood fill, threshold paint,
//! polygon/lasso and fill-between-slices; undo/redo as sparse per-slice differences
//! with a memory bound; recovery files for unsaved edits; and the correct-and-retrain
//! helpers (adding a corrected case to a training set). Knows nothing of egui.

pub mod interpolate;
pub mod recovery;
pub mod session;
pub mod tools;
pub mod training_set;
pub mod undo;

pub use session::{EditSession, EditSource, describe, editable_layer};
pub use tools::PaintRule;
pub use undo::{Edit, History, SliceDiff, StrokeRecorder};
