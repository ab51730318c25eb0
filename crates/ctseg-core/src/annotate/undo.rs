//! Undo/redo of label edits, stored as sparse per-slice differences (never copies of
//! the volume), with a memory bound: the oldest steps are dropped first.

use std::collections::{HashMap, VecDeque};

use crate::labels::LabelVolume;

/// Changed voxels of one axial slice (display order, constant `k`): their offsets in
/// the slice (`i + ni·j`) and the values before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceDiff {
    /// Axial slice index.
    pub k: usize,
    /// Offsets within the slice, ascending.
    pub offsets: Vec<u32>,
    /// Values before the edit.
    pub before: Vec<u8>,
    /// Values after the edit.
    pub after: Vec<u8>,
}

impl SliceDiff {
    /// Bytes this difference holds (heap and inline).
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.offsets.capacity() * 4
            + self.before.capacity()
            + self.after.capacity()
    }
}

/// One undoable step, e.g. a brush stroke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// What it did, e.g. "Brush on liver, axial 120".
    pub description: String,
    /// Changed voxels, per axial slice.
    pub slices: Vec<SliceDiff>,
}

impl Edit {
    /// Number of voxels changed.
    pub fn voxels(&self) -> usize {
        self.slices.iter().map(|s| s.offsets.len()).sum()
    }

    /// Every changed voxel as (axial slice, offset within the slice, old value, new
    /// value), replayed forward (redo) or backward (undo).
    pub fn changes(&self, forward: bool) -> impl Iterator<Item = (usize, usize, u8, u8)> + '_ {
        self.slices.iter().flat_map(move |s| {
            s.offsets
                .iter()
                .zip(s.before.iter().zip(&s.after))
                .map(move |(&o, (&b, &a))| {
                    let (old, new) = if forward { (b, a) } else { (a, b) };
                    (s.k, o as usize, old, new)
                })
        })
    }

    /// Bytes this step holds.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.description.capacity()
            + self.slices.iter().map(SliceDiff::bytes).sum::<usize>()
    }

    /// Write the `after` (forward) or `before` values into `labels`, keeping the
    /// per-label voxel `counts` in step.
    pub fn apply(&self, labels: &mut LabelVolume, counts: &mut [u64; 256], forward: bool) {
        let [ni, nj, _] = labels.shape();
        let data = labels.data_mut();
        for s in &self.slices {
            let base = s.k * ni * nj;
            let (from, to) = if forward {
                (&s.before, &s.after)
            } else {
                (&s.after, &s.before)
            };
            for ((&o, &a), &b) in s.offsets.iter().zip(from).zip(to) {
                let v = &mut data[base + o as usize];
                debug_assert_eq!(*v, a);
                counts[*v as usize] -= 1;
                counts[b as usize] += 1;
                *v = b;
            }
        }
    }
}

/// Collects the changes of one stroke while it is painted straight into the volume:
/// the first value seen at a voxel is its value before the stroke.
#[derive(Debug, Clone, Default)]
pub struct StrokeRecorder {
    description: String,
    before: HashMap<usize, u8>,
}

impl StrokeRecorder {
    /// Start recording a step called `description`.
    pub fn new(description: String) -> Self {
        StrokeRecorder {
            description,
            before: HashMap::new(),
        }
    }

    /// Set voxel `index` (linear) of `labels` to `value`, remembering its old value.
    pub fn set(
        &mut self,
        labels: &mut LabelVolume,
        counts: &mut [u64; 256],
        index: usize,
        value: u8,
    ) {
        let Some(v) = labels.data_mut().get_mut(index) else {
            return;
        };
        if *v == value {
            return;
        }
        self.before.entry(index).or_insert(*v);
        counts[*v as usize] -= 1;
        counts[value as usize] += 1;
        *v = value;
    }

    /// Voxels touched so far.
    pub fn touched(&self) -> usize {
        self.before.len()
    }

    /// The finished step (voxels painted back to their old value are left out).
    pub fn finish(self, labels: &LabelVolume) -> Edit {
        let [ni, nj, _] = labels.shape();
        let plane = ni * nj;
        let mut changed: Vec<(usize, u8, u8)> = self
            .before
            .into_iter()
            .filter_map(|(idx, b)| {
                let a = labels.data()[idx];
                (a != b).then_some((idx, b, a))
            })
            .collect();
        changed.sort_unstable_by_key(|c| c.0);
        let mut slices: Vec<SliceDiff> = Vec::new();
        for (idx, b, a) in changed {
            let k = idx / plane;
            if slices.last().is_none_or(|s| s.k != k) {
                slices.push(SliceDiff {
                    k,
                    offsets: Vec::new(),
                    before: Vec::new(),
                    after: Vec::new(),
                });
            }
            if let Some(s) = slices.last_mut() {
                s.offsets.push((idx - k * plane) as u32);
                s.before.push(b);
                s.after.push(a);
            }
        }
        for s in &mut slices {
            s.offsets.shrink_to_fit();
            s.before.shrink_to_fit();
            s.after.shrink_to_fit();
        }
        Edit {
            description: self.description,
            slices,
        }
    }
}

/// Undo and redo stacks with a memory bound.
#[derive(Debug, Clone)]
pub struct History {
    undo: VecDeque<Edit>,
    redo: Vec<Edit>,
    bytes: usize,
    limit: usize,
    dropped: usize,
}

/// Default bound on the memory of the undo and redo stacks together.
pub const DEFAULT_HISTORY_BYTES: usize = 256 << 20;

impl Default for History {
    fn default() -> Self {
        History::with_limit(DEFAULT_HISTORY_BYTES)
    }
}

impl History {
    /// Empty history holding at most about `limit` bytes (the newest step is always
    /// kept, even when it alone is larger).
    pub fn with_limit(limit: usize) -> Self {
        History {
            undo: VecDeque::new(),
            redo: Vec::new(),
            bytes: 0,
            limit,
            dropped: 0,
        }
    }

    /// Record a step that has been applied; clears redo. Empty steps are ignored
    /// (returns `false`).
    pub fn push(&mut self, edit: Edit) -> bool {
        if edit.slices.is_empty() {
            return false;
        }
        for r in self.redo.drain(..) {
            self.bytes -= r.bytes();
        }
        self.bytes += edit.bytes();
        self.undo.push_back(edit);
        while self.bytes > self.limit && self.undo.len() > 1 {
            if let Some(old) = self.undo.pop_front() {
                self.bytes -= old.bytes();
                self.dropped += 1;
            }
        }
        true
    }

    /// Undo the newest step; returns its description.
    pub fn undo(&mut self, labels: &mut LabelVolume, counts: &mut [u64; 256]) -> Option<String> {
        let edit = self.undo.pop_back()?;
        edit.apply(labels, counts, false);
        let d = edit.description.clone();
        self.redo.push(edit);
        Some(d)
    }

    /// Redo the newest undone step; returns its description.
    pub fn redo(&mut self, labels: &mut LabelVolume, counts: &mut [u64; 256]) -> Option<String> {
        let edit = self.redo.pop()?;
        edit.apply(labels, counts, true);
        let d = edit.description.clone();
        self.undo.push_back(edit);
        Some(d)
    }

    /// The step Undo would revert (the newest done or redone step).
    pub fn newest(&self) -> Option<&Edit> {
        self.undo.back()
    }

    /// The step Redo would apply (the newest undone step).
    pub fn newest_undone(&self) -> Option<&Edit> {
        self.redo.last()
    }

    /// Description of the step Undo would revert.
    pub fn undo_description(&self) -> Option<&str> {
        self.undo.back().map(|e| e.description.as_str())
    }

    /// Description of the step Redo would apply.
    pub fn redo_description(&self) -> Option<&str> {
        self.redo.last().map(|e| e.description.as_str())
    }

    /// Undoable steps, oldest first.
    pub fn undo_steps(&self) -> impl Iterator<Item = &Edit> {
        self.undo.iter()
    }

    /// Number of undoable and redoable steps.
    pub fn len(&self) -> (usize, usize) {
        (self.undo.len(), self.redo.len())
    }

    /// No steps at all.
    pub fn is_empty(&self) -> bool {
        self.undo.is_empty() && self.redo.is_empty()
    }

    /// Bytes held by both stacks.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The memory bound.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Steps dropped to stay under the bound.
    pub fn dropped(&self) -> usize {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Geometry, IDENTITY};
    use crate::labels::label_counts;
    use crate::volume::Volume;

    fn volume() -> LabelVolume {
        Volume::zeros(Geometry::new([8, 6, 5], IDENTITY))
    }

    fn stroke(labels: &mut LabelVolume, counts: &mut [u64; 256], voxels: &[usize], v: u8) -> Edit {
        let mut r = StrokeRecorder::new(format!("paint {v}"));
        for &i in voxels {
            r.set(labels, counts, i, v);
        }
        r.finish(labels)
    }

    #[test]
    fn undo_and_redo_restore_exact_voxels_and_counts() {
        let mut l = volume();
        let mut counts = label_counts(&l);
        let mut h = History::default();
        let start = l.clone();
        let e1 = stroke(&mut l, &mut counts, &[0, 1, 2, 100, 200], 3);
        assert_eq!(e1.voxels(), 5);
        assert_eq!(
            e1.slices.len(),
            3,
            "voxels 0-2 on k=0, 100 on k=2, 200 on k=4"
        );
        h.push(e1);
        let after1 = l.clone();
        // Overpaint part of the first stroke, touching one voxel twice.
        let e2 = stroke(&mut l, &mut counts, &[1, 2, 2, 3], 7);
        h.push(e2);
        let after2 = l.clone();
        assert_eq!(counts, label_counts(&l));
        assert_eq!(h.undo(&mut l, &mut counts).as_deref(), Some("paint 7"));
        assert_eq!(l, after1);
        assert_eq!(h.undo(&mut l, &mut counts).as_deref(), Some("paint 3"));
        assert_eq!(l, start);
        assert_eq!(counts, label_counts(&l));
        assert_eq!(h.undo(&mut l, &mut counts), None);
        h.redo(&mut l, &mut counts);
        h.redo(&mut l, &mut counts);
        assert_eq!(l, after2);
        assert_eq!(counts, label_counts(&l));
        assert_eq!(h.redo(&mut l, &mut counts), None);
    }

    #[test]
    fn a_new_step_clears_redo_and_no_op_strokes_are_not_recorded() {
        let mut l = volume();
        let mut counts = label_counts(&l);
        let mut h = History::default();
        h.push(stroke(&mut l, &mut counts, &[5], 2));
        h.undo(&mut l, &mut counts);
        assert_eq!(h.len(), (0, 1));
        h.push(stroke(&mut l, &mut counts, &[6], 2));
        assert_eq!(h.len(), (1, 0));
        // Painting a voxel and painting it back is no step at all.
        let mut r = StrokeRecorder::new("back and forth".into());
        r.set(&mut l, &mut counts, 9, 4);
        r.set(&mut l, &mut counts, 9, 0);
        assert!(!h.push(r.finish(&l)));
        assert_eq!(h.len(), (1, 0));
    }

    #[test]
    fn memory_stays_bounded_and_oldest_steps_go_first() {
        let mut l: LabelVolume = Volume::zeros(Geometry::new([64, 64, 4], IDENTITY));
        let mut counts = label_counts(&l);
        let mut h = History::with_limit(64 << 10);
        for n in 0..500usize {
            let voxels: Vec<usize> = (0..400)
                .map(|i| (n * 37 + i * 13) % l.data().len())
                .collect();
            h.push(stroke(&mut l, &mut counts, &voxels, (n % 5 + 1) as u8));
            assert!(h.bytes() <= h.limit(), "{} > {}", h.bytes(), h.limit());
        }
        assert!(h.dropped() > 0);
        assert!(h.len().0 > 5);
        // The kept steps still undo correctly.
        let newest = h.undo_description().map(str::to_string);
        assert_eq!(h.undo(&mut l, &mut counts), newest);
        assert_eq!(counts, label_counts(&l));
    }
}
