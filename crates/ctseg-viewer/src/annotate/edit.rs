//! Editing the layer: start/stop, strokes, fill, polygon, interpolation, undo/redo.

use std::sync::Arc;

use ctseg_core::annotate::tools::{disc, flood_region, polygon, swept_disc};
use ctseg_core::annotate::undo::Edit;
use ctseg_core::annotate::{EditSession, EditSource, History, PaintRule, describe, editable_layer};
use ctseg_core::slicing::{Axis, SliceGrid};
use ctseg_core::structures::catalog;
use ctseg_core::study::LabelLayer;
use ctseg_core::study::LayerKind;
use ctseg_core::volume::Volume;

use super::*;
use crate::app::{Level, ViewerApp};

impl ViewerApp {
    /// Start editing a layer: empty, a copy of the GT or of the prediction. The edited
    /// layer takes the GT slot (the GT is kept and restored by [`Self::stop_editing`]).
    pub fn start_editing(&mut self, source: EditSource) {
        let Some(ct) = self.ct.clone() else {
            self.message(Level::Warning, "Open a CT before editing".into());
            return;
        };
        let labels = match source {
            EditSource::Empty | EditSource::Recovered => {
                Volume::zeros(ct.display.geometry().clone())
            }
            EditSource::GroundTruth => match &self.gt {
                Some(g) => g.display.clone(),
                None => {
                    self.message(Level::Warning, "No ground truth to start from".into());
                    return;
                }
            },
            EditSource::Prediction => match &self.pred {
                Some(p) => p.display.clone(),
                None => {
                    self.message(Level::Warning, "No prediction to start from".into());
                    return;
                }
            },
        };
        self.begin_session(source, labels);
    }

    pub(crate) fn begin_session(&mut self, source: EditSource, labels: ctseg_core::LabelVolume) {
        if self.annotator.session.is_none() {
            self.annotator.replaced_gt = self.gt.take();
        }
        let history = History::with_limit(self.annotator.history_limit);
        self.annotator.session = Some(EditSession::new(source, history));
        self.annotator.stroke = None;
        self.annotator.outline.clear();
        self.annotator.save_target = None;
        self.annotator.dataset_ready = None;
        self.annotator.fine_tune = None;
        if self.annotator.tool == Tool::Navigate {
            self.annotator.tool = Tool::Brush;
        }
        self.settings.show_gt = true;
        self.set_layer(LayerKind::GroundTruth, Arc::new(editable_layer(labels)));
        if self.selected.is_none() {
            self.selected = catalog().label_of("liver");
        }
    }

    /// Stop editing (unsaved edits are dropped; the UI asks first) and put the
    /// ground truth back.
    pub fn stop_editing(&mut self) {
        if self.annotator.session.take().is_none() {
            return;
        }
        self.discard_recovery_of_current();
        self.annotator.stroke = None;
        self.annotator.outline.clear();
        let gt = self.annotator.replaced_gt.take();
        self.gt = None;
        self.comparison = None;
        if let Some(gt) = gt {
            self.set_layer(LayerKind::GroundTruth, gt);
        }
    }

    /// A ground truth arrived while editing: keep it for when editing stops.
    pub(crate) fn annotator_replace_gt(&mut self, gt: Arc<LabelLayer>) {
        self.annotator.replaced_gt = Some(gt);
    }

    /// The edited layer, for reading.
    pub fn edit_layer(&self) -> Option<&LabelLayer> {
        self.annotator.session.as_ref().and(self.gt.as_deref())
    }

    pub(crate) fn paint_rule(&self, erase: bool) -> Option<PaintRule> {
        let selected = self.selected?;
        let a = &self.annotator;
        Some(PaintRule {
            value: if erase { 0 } else { selected },
            selected,
            protect: a.protect,
            hu_range: a.threshold.then_some(a.hu_range),
        })
    }

    /// Run `f` on the edited layer (copied first if a background job still reads it).
    pub(crate) fn with_edit_layer<R>(
        &mut self,
        f: impl FnOnce(&mut EditSession, &mut LabelLayer, &Volume<i16>) -> R,
    ) -> Option<R> {
        let ct = self.ct.clone()?;
        let session = self.annotator.session.as_mut()?;
        let layer = Arc::make_mut(self.gt.as_mut()?);
        Some(f(session, layer, &ct.display))
    }

    /// A step was recorded or redone (`forward`) or undone: bring the comparison with
    /// the prediction up to date. When the comparison held is current, only the
    /// step's voxels are re-counted (instant, and no background job keeps the layer
    /// alive); otherwise the worker compares the whole volume.
    pub(crate) fn edited(&mut self, forward: bool) {
        let current = self.compare_held == self.compare_requested;
        if let (true, Some(c), Some(pred), Some(session)) = (
            current,
            self.comparison.as_mut(),
            self.pred.as_ref(),
            self.annotator.session.as_ref(),
        ) {
            let step = if forward {
                session.history().newest()
            } else {
                session.history().newest_undone()
            };
            if let Some(step) = step
                && count_step(Arc::make_mut(c), step, forward, &pred.display)
            {
                return;
            }
        }
        self.request_compare();
    }

    /// Undo the newest edit.
    pub fn undo(&mut self) {
        self.annotator.stroke = None;
        if let Some(Some(d)) = self.with_edit_layer(|s, l, _| s.undo(l)) {
            self.message(Level::Info, format!("Undid: {d}"));
            self.edited(false);
        }
    }

    /// Redo the newest undone edit.
    pub fn redo(&mut self) {
        self.annotator.stroke = None;
        if let Some(Some(d)) = self.with_edit_layer(|s, l, _| s.redo(l)) {
            self.message(Level::Info, format!("Redid: {d}"));
            self.edited(true);
        }
    }

    /// Begin a brush or eraser stroke at pixel `at` of slice `index` of `grid`.
    pub fn begin_stroke(&mut self, grid: &SliceGrid, index: usize, at: (f32, f32), erase: bool) {
        let Some(rule) = self.paint_rule(erase) else {
            self.message(
                Level::Warning,
                "Select a structure in the table to paint it".into(),
            );
            return;
        };
        let tool = if erase { "Eraser" } else { "Brush" };
        let description = describe(tool, rule.selected, grid.axis, index);
        let radius = self.annotator.radius;
        self.with_edit_layer(|s, l, ct| {
            s.begin_stroke(l, description);
            s.paint(l, ct, grid, index, &disc(grid, at, radius), &rule);
        });
        self.annotator.stroke = Some(ActiveStroke {
            axis: grid.axis,
            index,
            last: at,
            view: None,
        });
    }

    /// Continue the stroke to pixel `at`.
    pub fn continue_stroke(&mut self, grid: &SliceGrid, at: (f32, f32), erase: bool) {
        let Some(stroke) = self.annotator.stroke else {
            return;
        };
        if stroke.axis != grid.axis {
            return;
        }
        let Some(rule) = self.paint_rule(erase) else {
            return;
        };
        let radius = self.annotator.radius;
        let pixels = swept_disc(grid, stroke.last, at, radius);
        self.with_edit_layer(|s, l, ct| s.paint(l, ct, grid, stroke.index, &pixels, &rule));
        self.annotator.stroke = Some(ActiveStroke { last: at, ..stroke });
    }

    /// Finish the stroke (one undo step).
    pub fn end_stroke(&mut self) {
        if self.annotator.stroke.take().is_none() {
            return;
        }
        if self.with_edit_layer(|s, l, _| s.end_stroke(l)) == Some(true) {
            self.edited(true);
        }
    }

    /// Flood-fill the region around pixel `at` of slice `index`.
    pub fn fill_at(&mut self, grid: &SliceGrid, index: usize, at: (usize, usize), erase: bool) {
        let Some(rule) = self.paint_rule(erase) else {
            self.message(Level::Warning, "Select a structure to fill with".into());
            return;
        };
        let description = describe(
            if erase { "Erase fill" } else { "Fill" },
            rule.selected,
            grid.axis,
            index,
        );
        let done = self.with_edit_layer(|s, l, ct| {
            let region = flood_region(grid, index, &l.display, ct, at, rule.hu_range);
            s.apply(l, ct, grid, index, &region, &rule, description)
        });
        if done.unwrap_or(0) > 0 {
            self.edited(true);
        }
    }

    /// Fill the polygon or lasso outline (pixel coordinates) on slice `index`.
    pub fn fill_outline(
        &mut self,
        grid: &SliceGrid,
        index: usize,
        points: &[(f32, f32)],
        erase: bool,
    ) {
        let Some(rule) = self.paint_rule(erase) else {
            self.message(Level::Warning, "Select a structure to fill with".into());
            return;
        };
        let name = if self.annotator.tool == Tool::Lasso {
            "Lasso"
        } else {
            "Polygon"
        };
        let description = describe(name, rule.selected, grid.axis, index);
        let pixels = polygon(grid, points);
        let done = self
            .with_edit_layer(|s, l, ct| s.apply(l, ct, grid, index, &pixels, &rule, description));
        if done.unwrap_or(0) > 0 {
            self.edited(true);
        }
    }

    /// Fill the selected structure in between the slices of `axis` where it is drawn.
    pub fn interpolate(&mut self, axis: Axis) {
        let (Some(grid), Some(rule)) = (self.grid(axis), self.paint_rule(false)) else {
            self.message(Level::Warning, "Select a structure to interpolate".into());
            return;
        };
        let n = self
            .with_edit_layer(|s, l, ct| s.interpolate(l, ct, &grid, &rule))
            .unwrap_or(0);
        let name = catalog().name_of(rule.selected);
        if n == 0 {
            self.message(
                Level::Info,
                format!(
                    "Nothing to interpolate: draw {name} on two {} slices with a gap between",
                    axis.name().to_lowercase()
                ),
            );
        } else {
            self.message(
                Level::Info,
                format!(
                    "Filled {name} in on {n} {} slices",
                    axis.name().to_lowercase()
                ),
            );
            self.edited(true);
        }
    }
}

/// Re-count the voxels of `step` in `comparison` (see [`Edit::changes`]); `false`
/// when the step does not fit the prediction's grid (then the caller compares anew).
fn count_step(
    comparison: &mut ctseg_core::study::Comparison,
    step: &Edit,
    forward: bool,
    pred: &ctseg_core::labels::LabelVolume,
) -> bool {
    let [ni, nj, _] = pred.shape();
    let data = pred.data();
    step.changes(forward).all(|(k, offset, old, new)| {
        offset < ni * nj
            && data
                .get(k * ni * nj + offset)
                .is_some_and(|&p| comparison.change_voxel(k, old, new, p))
    })
}
