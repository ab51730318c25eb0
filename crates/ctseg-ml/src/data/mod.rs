//! Training data on the model side: the preprocessed slice cache ([`cache`]) and
//! epoch plans with a threaded batch loader ([`loader`]). Finding a dataset's cases
//! and splitting them is [`ctseg_core::dataset`]; augmentation is [`crate::augment`].

pub mod cache;
pub mod loader;

pub use cache::{CachedSubject, load_or_build};
pub use loader::{
    Batch, BatchStream, SliceRef, all_slices, epoch_plan, epoch_plan_of_batches, make_batch,
};
