//! Correct and retrain: add the case to a training set, fine-tune from the current
//! checkpoint, re-predict, and Dice before/after against the corrected layer.

use std::path::{Path, PathBuf};

use crate::worker::Job;
use ctseg_core::metrics::confusion_counts;
use ctseg_core::structures::catalog;

use super::*;
use crate::app::{Level, ViewerApp};

impl ViewerApp {
    /// Add the CT and the edited layer to the training set in the form's folder.
    pub fn add_to_training_set(&mut self) {
        let (Some(ct), Some(layer)) = (self.ct.clone(), self.edit_layer().map(|_| self.gt.clone()))
        else {
            self.message(Level::Warning, "Start editing a layer first".into());
            return;
        };
        let Some(layer) = layer else { return };
        let root = PathBuf::from(self.annotator.dataset_text.trim());
        if root.as_os_str().is_empty() {
            self.message(Level::Warning, "Type a training-set folder".into());
            return;
        }
        // A subject folder's name says more than "ct.nii.gz".
        let name = ct
            .path
            .as_ref()
            .and_then(|p| {
                if p.is_dir() || p.file_name().is_some_and(|f| f == "ct.nii.gz") {
                    let dir = if p.is_dir() { p.as_path() } else { p.parent()? };
                    dir.file_name().map(|n| n.to_string_lossy().into_owned())
                } else {
                    None
                }
            })
            .unwrap_or_else(|| ct.name.clone());
        let id = ctseg_core::annotate::training_set::subject_id(&name);
        self.submit(Job::AddCase {
            root,
            id,
            layer,
            ct,
        });
    }

    /// A case was added (the worker's `CaseAdded` event).
    pub(crate) fn case_added(&mut self, root: PathBuf, dir: &Path) {
        self.message(
            Level::Info,
            format!("Added {} to the training set (split train)", dir.display()),
        );
        self.annotator.dataset_ready = Some(root);
    }

    /// Fine-tune the current model on the training set the case was added to, with
    /// the Training tab's settings (model settings come from the checkpoint). When
    /// the run ends the CT is predicted again and Dice before/after is shown.
    pub fn fine_tune(&mut self) -> Result<(), String> {
        let root = self
            .annotator
            .dataset_ready
            .clone()
            .ok_or("add the case to a training set first")?;
        let model = self
            .settings
            .model
            .clone()
            .ok_or("choose a model to fine-tune in the model panel")?;
        let edit = self.edit_layer().ok_or("no edited layer")?;
        let before = match &self.pred {
            Some(p) => confusion_counts(edit.display.data(), p.display.data())
                .iter()
                .map(|c| c.dice())
                .collect(),
            None => vec![None; 256],
        };
        let mut config = self.training.effective_config_for(&root)?;
        config.run.init_from = Some(model);
        config.run.epochs = self.annotator.fine_tune_epochs.max(1);
        let stamp = crate::training::default_run_dir();
        let name = stamp
            .file_name()
            .map_or("run".into(), |n| n.to_string_lossy().into_owned());
        let run_dir = self
            .annotator
            .fine_tune_runs
            .join(format!("{name}-finetune"));
        self.training
            .start_with(config, run_dir.clone(), &self.ctx.clone())?;
        self.annotator.fine_tune = Some(FineTune {
            run_dir,
            stage: FineTuneStage::Training,
            before,
        });
        Ok(())
    }

    /// Advance the fine-tune loop; called every frame and on worker events.
    pub(crate) fn poll_fine_tune(&mut self) {
        let Some(ft) = &self.annotator.fine_tune else {
            return;
        };
        if ft.stage != FineTuneStage::Training || self.training.is_training() {
            return;
        }
        let run_dir = ft.run_dir.clone();
        let best = run_dir.join("checkpoints").join("best");
        let last = run_dir.join("checkpoints").join("last");
        let checkpoint = if best.is_dir() { best } else { last };
        let stage = if checkpoint.is_dir() {
            self.settings.model = Some(checkpoint);
            self.predict();
            FineTuneStage::Predicting
        } else {
            FineTuneStage::Failed("the run wrote no checkpoint".into())
        };
        if let Some(ft) = &mut self.annotator.fine_tune {
            ft.stage = stage;
        }
    }

    /// The new prediction is in (LayerReady for the prediction).
    pub(crate) fn fine_tune_predicted(&mut self) {
        if let Some(ft) = &mut self.annotator.fine_tune
            && ft.stage == FineTuneStage::Predicting
        {
            ft.stage = FineTuneStage::Comparing;
        }
    }

    /// A comparison arrived; in the Comparing stage it gives the Dice after.
    pub(crate) fn fine_tune_compared(&mut self) {
        let (Some(ft), Some(c), Some(edit)) = (
            &self.annotator.fine_tune,
            &self.comparison,
            self.edit_layer(),
        ) else {
            return;
        };
        if ft.stage != FineTuneStage::Comparing {
            return;
        }
        let rows: Vec<(u8, Option<f64>, Option<f64>)> = catalog()
            .all()
            .iter()
            .filter(|s| edit.stats.counts[s.label as usize] > 0)
            .map(|s| (s.label, ft.before[s.label as usize], c.dice(s.label)))
            .collect();
        if let Some(ft) = &mut self.annotator.fine_tune {
            ft.stage = FineTuneStage::Done(rows);
        }
    }
}
