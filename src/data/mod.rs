//! Training data: finding cases and splitting them ([`source`]), the preprocessed
//! slice cache ([`cache`]), and epoch plans with a threaded batch loader ([`loader`]).
//! Augmentation lives in [`crate::augment`].

pub mod cache;
pub mod loader;
pub mod source;

pub use cache::{CachedSubject, default_cache_dir, load_or_build};
pub use loader::{Batch, BatchStream, SliceRef, all_slices, epoch_plan, make_batch};
pub use source::{CaseRef, DatasetIndex, DatasetLayout, Split};

/// 64-bit FNV-1a over byte strings (with a separator between parts): a stable hash
/// for cache keys and seeds (std's hasher is not guaranteed stable across releases).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
