//! An editing session on a label layer: strokes painted straight into the layer and
//! recorded for undo, one-shot edits (fill, polygon, interpolation), undo/redo, and
//! whether there are unsaved changes.

use crate::labels::LabelVolume;
use crate::slicing::{Axis, SliceGrid};
use crate::structures::catalog;
use crate::study::LabelLayer;
use crate::volume::Volume;

use super::interpolate::between_slices;
use super::tools::PaintRule;
use super::undo::{History, StrokeRecorder};

/// Where the edited layer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditSource {
    /// An empty layer.
    Empty,
    /// A copy of the ground truth.
    GroundTruth,
    /// A copy of the prediction.
    Prediction,
    /// A recovery file of an earlier session.
    Recovered,
}

impl EditSource {
    /// Name shown in the UI.
    pub fn name(self) -> &'static str {
        match self {
            EditSource::Empty => "empty",
            EditSource::GroundTruth => "ground truth",
            EditSource::Prediction => "prediction",
            EditSource::Recovered => "recovery file",
        }
    }
}

/// The undo history and stroke state of one edited layer.
#[derive(Debug, Clone)]
pub struct EditSession {
    /// Where the layer came from.
    pub source: EditSource,
    history: History,
    stroke: Option<StrokeRecorder>,
    /// Changes applied so far (edits, undos and redos each count one).
    serial: u64,
    saved_serial: u64,
    autosaved_serial: u64,
}

/// "Brush on liver, axial 120": a step's description (slice numbers from 1).
pub fn describe(tool: &str, label: u8, axis: Axis, index: usize) -> String {
    let what = if label == 0 {
        "background".to_string()
    } else {
        catalog().name_of(label)
    };
    format!(
        "{tool} on {what}, {} {}",
        axis.name().to_lowercase(),
        index + 1
    )
}

impl EditSession {
    /// A session with a memory-bounded history.
    pub fn new(source: EditSource, history: History) -> Self {
        EditSession {
            source,
            history,
            stroke: None,
            serial: 0,
            saved_serial: 0,
            autosaved_serial: 0,
        }
    }

    /// The undo/redo history.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// A stroke is being painted.
    pub fn in_stroke(&self) -> bool {
        self.stroke.is_some()
    }

    /// Start a stroke (ends a stroke still open).
    pub fn begin_stroke(&mut self, layer: &mut LabelLayer, description: String) {
        self.end_stroke(layer);
        self.stroke = Some(StrokeRecorder::new(description));
    }

    /// Paint `pixels` of slice `index` of `grid` under `rule` into the open stroke
    /// (a stroke is begun if none is open). Returns the voxels changed now.
    pub fn paint(
        &mut self,
        layer: &mut LabelLayer,
        ct: &Volume<i16>,
        grid: &SliceGrid,
        index: usize,
        pixels: &[(usize, usize)],
        rule: &PaintRule,
    ) -> usize {
        let stroke = self
            .stroke
            .get_or_insert_with(|| StrokeRecorder::new("Edit".into()));
        let (w, h) = grid.size();
        if index >= grid.count() {
            return 0;
        }
        let mut changed = 0;
        for &(c, r) in pixels {
            if c >= w || r >= h {
                continue;
            }
            let v = grid.voxel(index, c, r);
            let idx = layer.display.index(v);
            let (Some(&current), Some(&hu)) = (layer.display.data().get(idx), ct.data().get(idx))
            else {
                continue;
            };
            if current != rule.value && rule.allows(current, hu) {
                stroke.set(&mut layer.display, &mut layer.stats.counts, idx, rule.value);
                changed += 1;
            }
        }
        if changed > 0 {
            layer.revision += 1;
        }
        changed
    }

    /// Finish the open stroke and record it; `true` if it changed anything.
    pub fn end_stroke(&mut self, layer: &mut LabelLayer) -> bool {
        let Some(stroke) = self.stroke.take() else {
            return false;
        };
        let recorded = self.history.push(stroke.finish(&layer.display));
        if recorded {
            self.serial += 1;
        }
        recorded
    }

    /// A one-step edit: paint `pixels` and record them as `description`.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        layer: &mut LabelLayer,
        ct: &Volume<i16>,
        grid: &SliceGrid,
        index: usize,
        pixels: &[(usize, usize)],
        rule: &PaintRule,
        description: String,
    ) -> usize {
        self.begin_stroke(layer, description);
        let n = self.paint(layer, ct, grid, index, pixels, rule);
        self.end_stroke(layer);
        n
    }

    /// Fill `rule.selected` in on the slices of `grid` between slices where it is
    /// drawn, as one step. Returns the slices filled.
    pub fn interpolate(
        &mut self,
        layer: &mut LabelLayer,
        ct: &Volume<i16>,
        grid: &SliceGrid,
        rule: &PaintRule,
    ) -> usize {
        let filled = between_slices(grid, &layer.display, rule.selected);
        if filled.is_empty() {
            return 0;
        }
        let first = filled.first().map_or(0, |f| f.index);
        let last = filled.last().map_or(0, |f| f.index);
        let description = format!(
            "Interpolate {}, {} {}-{}",
            catalog().name_of(rule.selected),
            grid.axis.name().to_lowercase(),
            first + 1,
            last + 1
        );
        self.begin_stroke(layer, description);
        for f in &filled {
            self.paint(layer, ct, grid, f.index, &f.pixels, rule);
        }
        self.end_stroke(layer);
        filled.len()
    }

    /// Undo the newest step; returns its description.
    pub fn undo(&mut self, layer: &mut LabelLayer) -> Option<String> {
        self.end_stroke(layer);
        let d = self
            .history
            .undo(&mut layer.display, &mut layer.stats.counts)?;
        self.changed(layer);
        Some(d)
    }

    /// Redo the newest undone step; returns its description.
    pub fn redo(&mut self, layer: &mut LabelLayer) -> Option<String> {
        self.end_stroke(layer);
        let d = self
            .history
            .redo(&mut layer.display, &mut layer.stats.counts)?;
        self.changed(layer);
        Some(d)
    }

    fn changed(&mut self, layer: &mut LabelLayer) {
        self.serial += 1;
        layer.revision += 1;
    }

    /// Changes since the last save.
    pub fn is_dirty(&self) -> bool {
        self.serial != self.saved_serial
    }

    /// Changes since the last autosave (or save).
    pub fn needs_autosave(&self) -> bool {
        self.serial != self.autosaved_serial && self.is_dirty()
    }

    /// The state's number, to pass to [`EditSession::mark_saved`] once a save of it
    /// finishes.
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// The state numbered `serial` was saved.
    pub fn mark_saved(&mut self, serial: u64) {
        self.saved_serial = serial;
        self.autosaved_serial = self.autosaved_serial.max(serial);
    }

    /// The state numbered `serial` was written to the recovery file.
    pub fn mark_autosaved(&mut self, serial: u64) {
        self.autosaved_serial = serial;
    }

    /// Treat the current state as having unsaved changes (e.g. restored from a
    /// recovery file).
    pub fn mark_unsaved(&mut self) {
        self.serial += 1;
    }
}

/// A new label layer for editing: `labels` (display order) with fresh statistics.
pub fn editable_layer(labels: LabelVolume) -> LabelLayer {
    LabelLayer::new(None, labels, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotate::tools::{disc, swept_disc};
    use crate::geometry::{Geometry, IDENTITY};
    use crate::labels::label_counts;

    /// Paint `label`, leaving other structures alone.
    fn brush(label: u8) -> PaintRule {
        PaintRule {
            value: label,
            selected: label,
            protect: true,
            hu_range: None,
        }
    }

    fn setup() -> (LabelLayer, Volume<i16>) {
        let g = Geometry::new([30, 20, 10], IDENTITY);
        let ct = Volume::new(g.clone(), (0..6000).map(|v| (v % 30) as i16 * 10).collect()).unwrap();
        (editable_layer(Volume::zeros(g)), ct)
    }

    #[test]
    fn strokes_paint_protect_and_undo_in_any_view() {
        let (mut layer, ct) = setup();
        let mut s = EditSession::new(EditSource::Empty, History::default());
        let rule = brush(5);
        for axis in Axis::ALL {
            let grid = SliceGrid::new(axis, layer.display.shape(), [1.0; 3]);
            let before = layer.display.clone();
            s.begin_stroke(&mut layer, describe("Brush", 5, axis, 3));
            let n = s.paint(
                &mut layer,
                &ct,
                &grid,
                3,
                &swept_disc(&grid, (2.0, 2.0), (8.0, 4.0), 1.5),
                &rule,
            );
            assert!(n > 10);
            assert!(s.end_stroke(&mut layer));
            assert_eq!(layer.stats.counts, label_counts(&layer.display));
            assert!(s.is_dirty());
            let after = layer.display.clone();
            assert_eq!(
                s.undo(&mut layer).as_deref(),
                Some(describe("Brush", 5, axis, 3).as_str())
            );
            assert_eq!(layer.display, before);
            s.redo(&mut layer);
            assert_eq!(layer.display, after);
        }
        // Another structure is protected from the brush but not without protection.
        let grid = SliceGrid::new(Axis::Axial, layer.display.shape(), [1.0; 3]);
        let other = brush(8);
        let pixels = disc(&grid, (5.0, 3.0), 2.0);
        let painted_5 = layer.stats.counts[5];
        s.apply(
            &mut layer,
            &ct,
            &grid,
            3,
            &pixels,
            &other,
            "Brush on 8".into(),
        );
        assert_eq!(layer.stats.counts[5], painted_5);
        let over = PaintRule {
            protect: false,
            ..other
        };
        s.apply(
            &mut layer,
            &ct,
            &grid,
            3,
            &pixels,
            &over,
            "Brush on 8".into(),
        );
        assert!(layer.stats.counts[5] < painted_5);
        // Threshold paint only touches voxels in the HU range (HU = 10·i here).
        let thr = PaintRule {
            hu_range: Some((100, 150)),
            ..brush(9)
        };
        let all: Vec<(usize, usize)> = (0..30).flat_map(|c| (0..20).map(move |r| (c, r))).collect();
        let n = s.apply(&mut layer, &ct, &grid, 0, &all, &thr, "Threshold".into());
        assert_eq!(n, 6 * 20);
        assert_eq!(layer.stats.counts, label_counts(&layer.display));
    }

    #[test]
    fn interpolation_is_one_undoable_step() {
        let (mut layer, ct) = setup();
        let mut s = EditSession::new(EditSource::Empty, History::default());
        let rule = brush(4);
        let grid = SliceGrid::new(Axis::Axial, layer.display.shape(), [1.0; 3]);
        s.apply(
            &mut layer,
            &ct,
            &grid,
            1,
            &disc(&grid, (10.0, 10.0), 3.0),
            &rule,
            "a".into(),
        );
        s.apply(
            &mut layer,
            &ct,
            &grid,
            6,
            &disc(&grid, (14.0, 10.0), 5.0),
            &rule,
            "b".into(),
        );
        let before = layer.display.clone();
        assert_eq!(s.interpolate(&mut layer, &ct, &grid, &rule), 4);
        for k in 2..6 {
            assert!(layer.display.slice_k(k).unwrap().contains(&4), "slice {k}");
        }
        assert!(!layer.display.slice_k(7).unwrap().contains(&4));
        assert!(
            s.history()
                .undo_description()
                .unwrap()
                .starts_with("Interpolate")
        );
        s.undo(&mut layer);
        assert_eq!(layer.display, before);
    }

    #[test]
    fn dirty_tracking_follows_saves() {
        let (mut layer, ct) = setup();
        let mut s = EditSession::new(EditSource::Empty, History::default());
        assert!(!s.is_dirty() && !s.needs_autosave());
        let grid = SliceGrid::new(Axis::Axial, layer.display.shape(), [1.0; 3]);
        let rule = brush(4);
        s.apply(&mut layer, &ct, &grid, 1, &[(1, 1)], &rule, "a".into());
        assert!(s.is_dirty() && s.needs_autosave());
        s.mark_autosaved(s.serial());
        assert!(s.is_dirty() && !s.needs_autosave());
        s.mark_saved(s.serial());
        assert!(!s.is_dirty());
        // A stroke that changes nothing is no change.
        s.apply(&mut layer, &ct, &grid, 1, &[(1, 1)], &rule, "again".into());
        assert!(!s.is_dirty());
    }
}
