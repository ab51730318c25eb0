//! Training dataset layouts and finding their cases: the TotalSegmentator layout
//! ([`totalseg`], with `meta.csv` and its [`Split`]), the nnU-Net raw layout
//! ([`nnunet`]), and the [`index`] of a dataset folder split into train and validation
//! by subject.

pub mod index;
pub mod nnunet;
pub mod totalseg;

pub use index::{CaseFiles, CaseRef, DatasetIndex, DatasetLayout, hash_split};
pub use nnunet::NnUnetDataset;
pub use totalseg::{Split, is_subject, load_subject};

use crate::io::LoadedCt;
use crate::io::segmentation::LoadedSegmentation;

/// A CT with its segmentation, checked to share one voxel grid.
#[derive(Debug, Clone)]
pub struct Subject {
    /// Subject name (folder name or nnU-Net case id).
    pub id: String,
    /// The CT.
    pub ct: LoadedCt,
    /// Its segmentation in catalog labels.
    pub segmentation: LoadedSegmentation,
}
