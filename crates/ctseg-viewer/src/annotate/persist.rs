//! Nothing is lost: safe saves, autosave to the recovery file, restore on start,
//! and unsaved edits kept when another CT is opened.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eframe::egui;

use crate::worker::Job;
use ctseg_core::annotate::recovery::{
    Recovery, RecoveryInfo, find_recovery, read_recovery, remove_recovery, write_recovery,
};
use ctseg_core::annotate::{EditSession, EditSource};
use ctseg_core::volume::Volume;

use super::*;
use crate::app::{Level, ViewerApp};
use crate::dialogs::DialogPurpose;

impl ViewerApp {
    /// Save the edited layer (multilabel NIfTI, or a per-structure folder) on the CT's
    /// grid. Written to a temporary file and renamed into place.
    pub fn save_edits(&mut self, path: PathBuf, per_structure: bool) {
        self.end_stroke();
        if self.annotator.session.is_none() {
            return;
        }
        let (Some(layer), Some(ct)) = (self.gt.clone(), self.ct.clone()) else {
            return;
        };
        let serial = self
            .annotator
            .session
            .as_ref()
            .map_or(0, EditSession::serial);
        self.annotator.pending_save = Some((path.clone(), serial));
        self.annotator.save_target = Some((path.clone(), per_structure));
        self.submit(Job::Save {
            path,
            model: None,
            per_structure,
            layer,
            ct,
        });
    }

    /// A save finished (from the worker's `Saved` event).
    pub(crate) fn saved(&mut self, path: &Path) {
        if let Some((p, serial)) = self.annotator.pending_save.take() {
            if p == path {
                if let Some(s) = &mut self.annotator.session {
                    s.mark_saved(serial);
                    if !s.is_dirty() {
                        self.discard_recovery_of_current();
                    }
                }
            } else {
                self.annotator.pending_save = Some((p, serial));
            }
        }
    }

    /// Ctrl+S: save to the last target, else ask where.
    pub fn save_edits_again(&mut self) {
        match self.annotator.save_target.clone() {
            Some((path, per_structure)) => self.save_edits(path, per_structure),
            None => self.dialog(DialogPurpose::SaveEdits {
                per_structure: false,
            }),
        }
    }

    pub(crate) fn recovery_info(&self) -> Option<RecoveryInfo> {
        let ct = self.ct.as_ref()?;
        let s = self.annotator.session.as_ref()?;
        Some(RecoveryInfo {
            ct: ct.path.clone(),
            ct_name: ct.name.clone(),
            source: s.source.name().to_string(),
            saved_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            steps: s.history().len().0,
        })
    }

    pub(crate) fn discard_recovery_of_current(&mut self) {
        // An autosave still in flight would write the file again after its removal.
        self.wait_autosave(Duration::from_secs(60));
        let Some(ct) = &self.ct else { return };
        if let Some(r) = find_recovery(&self.annotator.recovery_dir, ct.path.as_deref(), &ct.name)
            && let Err(e) = remove_recovery(&r)
        {
            self.message(
                Level::Warning,
                format!("Could not remove the recovery file: {e}"),
            );
        }
    }

    /// Another CT is opening: the edited layer belongs to the old one. Unsaved edits
    /// go to its recovery file first (offered again on the next start), written on a
    /// background thread; the outcome arrives as a message.
    pub(crate) fn leave_editing_for_new_ct(&mut self) {
        if self.annotator.session.is_none() {
            return;
        }
        self.end_stroke();
        if self.annotator.is_dirty()
            && let (Some(info), Some(layer)) = (self.recovery_info(), self.gt.clone())
        {
            // A running autosave of the same CT must not finish after this write and
            // replace it with older labels: the writer waits for it first.
            let autosave = self.annotator.autosave_rx.take();
            let dir = self.annotator.recovery_dir.clone();
            let tx = self.annotator.departed_tx.clone();
            let ctx = self.ctx.clone();
            let name = info.ct_name.clone();
            self.spawn_writer(move || {
                if let Some(rx) = autosave {
                    let _ = rx.recv();
                }
                let r = write_recovery(&dir, &info, &layer.display).map_err(|e| e.to_string());
                let _ = tx.send((name, r));
                ctx.request_repaint();
            });
        }
        self.annotator.session = None;
        self.annotator.replaced_gt = None;
        self.annotator.stroke = None;
        self.annotator.outline.clear();
        self.annotator.fine_tune = None;
        self.annotator.dataset_ready = None;
    }

    /// Write the recovery file now (in the background); the regular autosave calls
    /// this when there are edits since the last one.
    pub fn autosave_now(&mut self) {
        if self.annotator.autosave_rx.is_some() || self.annotator.stroke.is_some() {
            return;
        }
        let (Some(info), Some(layer), Some(s)) = (
            self.recovery_info(),
            self.gt.clone(),
            self.annotator.session.as_ref(),
        ) else {
            return;
        };
        let serial = s.serial();
        let dir = self.annotator.recovery_dir.clone();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let ctx = self.ctx.clone();
        self.spawn_writer(move || {
            let r = write_recovery(&dir, &info, &layer.display).map_err(|e| e.to_string());
            let _ = tx.send((serial, r));
            ctx.request_repaint();
        });
        self.annotator.autosave_rx = Some(rx);
        self.annotator.last_autosave = Instant::now();
    }

    /// Run a recovery writer on its own thread, remembered for [`Self::finish_writers`].
    fn spawn_writer(&mut self, write: impl FnOnce() + Send + 'static) {
        self.annotator.writers.retain(|h| !h.is_finished());
        self.annotator.writers.push(std::thread::spawn(write));
    }

    /// Wait until every background recovery write has finished (at exit, and in tests).
    pub fn finish_writers(&mut self) {
        for handle in self.annotator.writers.drain(..) {
            let _ = handle.join();
        }
        while let Ok(done) = self.annotator.departed_rx.try_recv() {
            self.departed(done);
        }
    }

    fn departed(&mut self, (name, result): (String, Result<Recovery, String>)) {
        match result {
            Ok(r) => self.message(
                Level::Warning,
                format!(
                    "Unsaved edits of {name} kept in {}; restore them on the next start",
                    r.labels.display()
                ),
            ),
            Err(e) => self.message(
                Level::Error,
                format!("Could not keep the unsaved edits of {name}: {e}"),
            ),
        }
    }

    /// Wait for a background autosave (tests).
    pub fn wait_autosave(&mut self, timeout: Duration) -> bool {
        let Some(rx) = self.annotator.autosave_rx.take() else {
            return true;
        };
        match rx.recv_timeout(timeout) {
            Ok(done) => {
                self.autosave_done(done);
                true
            }
            Err(_) => false,
        }
    }

    pub(crate) fn autosave_done(&mut self, (serial, result): (u64, Result<Recovery, String>)) {
        match result {
            Ok(_) => {
                if let Some(s) = &mut self.annotator.session {
                    s.mark_autosaved(serial);
                }
            }
            Err(e) => self.message(Level::Warning, format!("Autosave failed: {e}")),
        }
    }

    /// Restore offered recovery file `i`: open its CT, then make its labels the
    /// edited layer.
    pub fn restore_recovery(&mut self, i: usize) {
        if i >= self.annotator.offered.len() {
            return;
        }
        let r = self.annotator.offered.remove(i);
        let same_ct = self
            .ct
            .as_ref()
            .is_some_and(|c| c.path == r.info.ct && c.name == r.info.ct_name);
        if same_ct {
            self.apply_recovery(r);
            return;
        }
        let ct = r.info.ct.clone();
        self.annotator.restore_after_ct = Some(r);
        match ct {
            Some(path) => self.open_ct(path),
            None => self.open_sample(),
        }
    }

    /// Delete offered recovery file `i`.
    pub fn discard_offered(&mut self, i: usize) {
        if i < self.annotator.offered.len() {
            let r = self.annotator.offered.remove(i);
            if let Err(e) = remove_recovery(&r) {
                self.message(
                    Level::Warning,
                    format!("Could not remove {}: {e}", r.labels.display()),
                );
            }
        }
    }

    /// A CT was opened: apply a recovery waiting for it.
    pub(crate) fn ct_opened_for_recovery(&mut self) {
        if let Some(r) = self.annotator.restore_after_ct.take() {
            self.apply_recovery(r);
        }
    }

    pub(crate) fn apply_recovery(&mut self, r: Recovery) {
        let Some(ct) = self.ct.clone() else { return };
        let labels = match read_recovery(&r) {
            Ok(l) => l,
            Err(e) => {
                self.message(Level::Error, format!("Cannot read the recovery file: {e}"));
                return;
            }
        };
        if labels.shape() != ct.display.shape() {
            self.message(
                Level::Error,
                format!(
                    "Recovery file {} is {:?} but {} is {:?}; not restored",
                    r.labels.display(),
                    labels.shape(),
                    ct.name,
                    ct.display.shape()
                ),
            );
            return;
        }
        // Keep the CT's geometry exactly (the file stores it rounded to f32).
        let Ok(labels) = Volume::new(ct.display.geometry().clone(), labels.into_data()) else {
            return;
        };
        self.begin_session(EditSource::Recovered, labels);
        if let Some(s) = &mut self.annotator.session {
            s.mark_unsaved();
        }
        self.message(
            Level::Info,
            format!(
                "Restored unsaved edits of {} ({} steps)",
                r.info.ct_name, r.info.steps
            ),
        );
    }

    /// Every frame: autosave results and timer, fine-tune, close requests.
    pub(crate) fn poll_annotator(&mut self, ctx: &egui::Context) {
        if self.annotator.edit_when_loaded.is_some()
            && self.ct.is_some()
            && self.busy().is_none()
            && let Some(source) = self.annotator.edit_when_loaded.take()
        {
            self.start_editing(source);
        }
        if let Some(rx) = &self.annotator.autosave_rx
            && let Ok(done) = rx.try_recv()
        {
            self.annotator.autosave_rx = None;
            self.autosave_done(done);
        }
        while let Ok(done) = self.annotator.departed_rx.try_recv() {
            self.departed(done);
        }
        if self
            .annotator
            .session
            .as_ref()
            .is_some_and(EditSession::needs_autosave)
        {
            if self.annotator.last_autosave.elapsed() >= self.annotator.autosave_every {
                self.autosave_now();
            }
            ctx.request_repaint_after(self.annotator.autosave_every);
        }
        self.poll_fine_tune();
        if ctx.input(|i| i.viewport().close_requested())
            && self.annotator.is_dirty()
            && !self.annotator.allow_close
        {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            self.annotator.question = Some(Question::Quit);
        }
    }
}
