//! Epoch plans (which slices, in which order) and a multi-threaded batch loader
//! that reads cached slices and augments them off the training thread.
//!
//! Everything random is a function of (seed, epoch, position), never of thread
//! timing: the same run resumed at any step sees exactly the same batches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, bounded};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::cache::CachedSubject;
use crate::augment::{AugmentConfig, augment};
use ctseg_core::error::Result;

/// One training slice: subject index and slice index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceRef {
    /// Index into the subject list.
    pub subject: usize,
    /// Axial slice.
    pub slice: usize,
}

/// All slices of `subjects`, and the indices (into that list) of slices with foreground.
pub fn all_slices(subjects: &[CachedSubject]) -> (Vec<SliceRef>, Vec<usize>) {
    let mut slices = Vec::new();
    let mut foreground = Vec::new();
    for (s, subject) in subjects.iter().enumerate() {
        for (k, &fg) in subject.header.foreground.iter().enumerate() {
            if fg {
                foreground.push(slices.len());
            }
            slices.push(SliceRef {
                subject: s,
                slice: k,
            });
        }
    }
    (slices, foreground)
}

/// A seeded RNG for (seed, stream, a, b).
pub fn rng_for(seed: u64, stream: &str, a: u64, b: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(ctseg_core::ids::fnv1a(&[
        &seed.to_le_bytes(),
        stream.as_bytes(),
        &a.to_le_bytes(),
        &b.to_le_bytes(),
    ]))
}

/// The slices of one epoch in order: a seeded permutation of all slices, where each
/// position is, with probability `foreground_oversample`, replaced by a random slice
/// that contains foreground; padded with random slices to a multiple of `batch_size`
/// so every batch is full.
pub fn epoch_plan(
    slices: &[SliceRef],
    foreground: &[usize],
    epoch: usize,
    seed: u64,
    foreground_oversample: f64,
    batch_size: usize,
) -> Vec<SliceRef> {
    if slices.is_empty() || batch_size == 0 {
        return Vec::new();
    }
    pass_plan(
        slices,
        foreground,
        epoch,
        0,
        seed,
        foreground_oversample,
        batch_size,
    )
}

/// The slices of an epoch of exactly `batches` batches: one shuffled pass
/// ([`epoch_plan`]) after another, each pass with its own seeded order, cut at
/// `batches × batch_size`. `batches` = 0 gives one pass.
pub fn epoch_plan_of_batches(
    slices: &[SliceRef],
    foreground: &[usize],
    epoch: usize,
    seed: u64,
    foreground_oversample: f64,
    batch_size: usize,
    batches: usize,
) -> Vec<SliceRef> {
    if slices.is_empty() || batch_size == 0 {
        return Vec::new();
    }
    let wanted = batches * batch_size;
    let mut plan = Vec::new();
    let mut pass = 0u64;
    // Pass 0 is exactly [`epoch_plan`]'s order.
    while pass == 0 || plan.len() < wanted {
        plan.extend(pass_plan(
            slices,
            foreground,
            epoch,
            pass,
            seed,
            foreground_oversample,
            batch_size,
        ));
        pass += 1;
    }
    if batches > 0 {
        plan.truncate(wanted);
    }
    plan
}

/// One shuffled, oversampled pass over `slices`, padded to whole batches.
fn pass_plan(
    slices: &[SliceRef],
    foreground: &[usize],
    epoch: usize,
    pass: u64,
    seed: u64,
    foreground_oversample: f64,
    batch_size: usize,
) -> Vec<SliceRef> {
    let mut rng = rng_for(seed, "epoch", epoch as u64, pass);
    let mut plan: Vec<SliceRef> = slices.to_vec();
    plan.shuffle(&mut rng);
    if foreground_oversample > 0.0 && !foreground.is_empty() {
        for s in plan.iter_mut() {
            if rng.random::<f64>() < foreground_oversample {
                *s = slices[foreground[rng.random_range(0..foreground.len())]];
            }
        }
    }
    while !plan.len().is_multiple_of(batch_size) {
        plan.push(slices[rng.random_range(0..slices.len())]);
    }
    plan
}

/// A batch ready for the device: `images` and `labels` are `len × size × size`,
/// labels as float label values.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Position of the batch in its epoch.
    pub index: usize,
    /// Slices in the batch.
    pub len: usize,
    /// Side of the square slices.
    pub size: usize,
    /// Windowed intensities in [0, 1].
    pub images: Vec<f32>,
    /// Label values (0 = background).
    pub labels: Vec<f32>,
}

/// Assemble batch `index` of `plan` (augmented with `augment_config` when given).
pub fn make_batch(
    subjects: &[CachedSubject],
    plan: &[SliceRef],
    index: usize,
    batch_size: usize,
    augment_config: Option<&AugmentConfig>,
    seed: u64,
    epoch: usize,
) -> Result<Batch> {
    let size = subjects.first().map_or(0, |s| s.header.size);
    let n = size * size;
    let start = (index * batch_size).min(plan.len());
    let end = (start + batch_size).min(plan.len());
    let len = end - start;
    let mut images = vec![0f32; len * n];
    let mut labels = vec![0f32; len * n];
    let mut label_buf = vec![0u8; n];
    for (j, slice) in plan[start..end].iter().enumerate() {
        let image = &mut images[j * n..(j + 1) * n];
        subjects[slice.subject].read_slice(slice.slice, image, &mut label_buf)?;
        if let Some(config) = augment_config {
            let mut rng = rng_for(seed, "augment", epoch as u64, (start + j) as u64);
            augment(image, &mut label_buf, size, size, config, &mut rng);
        }
        for (l, &v) in labels[j * n..(j + 1) * n].iter_mut().zip(&label_buf) {
            *l = v as f32;
        }
    }
    Ok(Batch {
        index,
        len,
        size,
        images,
        labels,
    })
}

/// Batches of one epoch produced by worker threads, delivered in order.
pub struct BatchStream {
    receiver: Receiver<(usize, Result<Batch>)>,
    pending: BTreeMap<usize, Result<Batch>>,
    next: usize,
    end: usize,
    stop: Arc<AtomicBool>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl BatchStream {
    /// Start `workers` threads producing batches `first..plan.len()/batch_size`.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn(
        subjects: Arc<Vec<CachedSubject>>,
        plan: Arc<Vec<SliceRef>>,
        batch_size: usize,
        first: usize,
        augment_config: Option<AugmentConfig>,
        seed: u64,
        epoch: usize,
        workers: usize,
    ) -> Self {
        let end = plan.len().div_ceil(batch_size.max(1));
        let workers = workers.max(1);
        let (sender, receiver) = bounded(2 * workers);
        let stop = Arc::new(AtomicBool::new(false));
        let augment_config = Arc::new(augment_config);
        let handles = (0..workers)
            .map(|w| {
                let sender = sender.clone();
                let subjects = subjects.clone();
                let plan = plan.clone();
                let stop = stop.clone();
                let augment_config = augment_config.clone();
                std::thread::spawn(move || {
                    let mut index = first + w;
                    while index < end && !stop.load(Ordering::Relaxed) {
                        let batch = make_batch(
                            &subjects,
                            &plan,
                            index,
                            batch_size,
                            augment_config.as_ref().as_ref(),
                            seed,
                            epoch,
                        );
                        if sender.send((index, batch)).is_err() {
                            break;
                        }
                        index += workers;
                    }
                })
            })
            .collect();
        BatchStream {
            receiver,
            pending: BTreeMap::new(),
            next: first,
            end,
            stop,
            workers: handles,
        }
    }
}

impl Iterator for BatchStream {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        loop {
            if let Some(batch) = self.pending.remove(&self.next) {
                self.next += 1;
                return Some(batch);
            }
            match self.receiver.recv() {
                Ok((index, batch)) => {
                    self.pending.insert(index, batch);
                }
                Err(_) => return None,
            }
        }
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblock workers waiting on a full channel, then wait for them.
        while self.receiver.try_recv().is_ok() {}
        for handle in self.workers.drain(..) {
            while !handle.is_finished() {
                while self.receiver.try_recv().is_ok() {}
                std::thread::yield_now();
            }
            if handle.join().is_err() {
                log::error!("a batch loader thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_plan_is_seeded_full_and_oversamples_foreground() {
        let slices: Vec<SliceRef> = (0..10)
            .map(|k| SliceRef {
                subject: 0,
                slice: k,
            })
            .collect();
        let foreground = vec![7];
        let a = epoch_plan(&slices, &foreground, 3, 42, 0.5, 4);
        assert_eq!(a, epoch_plan(&slices, &foreground, 3, 42, 0.5, 4));
        assert_ne!(a, epoch_plan(&slices, &foreground, 4, 42, 0.5, 4));
        assert_eq!(a.len(), 12);
        let fg = a.iter().filter(|s| s.slice == 7).count();
        assert!(fg >= 3, "{fg} foreground draws of 12");
        let long = epoch_plan_of_batches(&slices, &foreground, 3, 42, 0.5, 4, 100);
        assert_eq!(long.len(), 400);
        assert_eq!(
            long[..a.len()],
            a[..],
            "the first pass is the plain epoch plan"
        );
        assert_ne!(long[a.len()..2 * a.len()], a[..], "later passes reshuffle");
        let short = epoch_plan_of_batches(&slices, &foreground, 3, 42, 0.5, 4, 1);
        assert_eq!(short[..], a[..4]);
        let plain = epoch_plan(&slices, &foreground, 3, 42, 0.0, 5);
        let mut sorted: Vec<usize> = plain.iter().map(|s| s.slice).collect();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
    }
}
