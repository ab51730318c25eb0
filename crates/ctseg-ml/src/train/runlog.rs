//! A run folder as the dashboard sees it: its configuration and the records of
//! `metrics.jsonl`, read incrementally so that a run another process is still writing
//! can be followed live, plus CSV export.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::config::TrainConfig;
use super::events::{EpochRecord, MetricsLine, StepRecord};
use super::run_dir::{CONFIG_TOML, METRICS_JSONL, SAMPLES_DIR, parse_metrics};
use ctseg_core::error::{Error, Result};
use ctseg_core::io::atomic_write;

/// The records of one run folder.
#[derive(Debug, Clone)]
pub struct RunLog {
    /// The run folder.
    pub dir: PathBuf,
    /// Its configuration (`None` when `config.toml` is missing or unreadable).
    pub config: Option<TrainConfig>,
    /// Why the configuration could not be read, if it could not.
    pub config_problem: Option<String>,
    /// Step records in file order.
    pub steps: Vec<StepRecord>,
    /// Epoch records in file order.
    pub epochs: Vec<EpochRecord>,
    /// Optimiser steps per epoch when known from the trainer (else inferred).
    pub steps_per_epoch: Option<usize>,
    /// Bytes of metrics.jsonl consumed so far.
    offset: u64,
    /// An unfinished last line (the writer is in the middle of it).
    partial: String,
    /// Modification time of metrics.jsonl at the last refresh.
    modified: Option<SystemTime>,
}

impl RunLog {
    /// Open a run folder: it must exist and hold `config.toml` or `metrics.jsonl`
    /// (a run that has only just started may have neither records nor samples yet).
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::format(dir, "not a folder"));
        }
        let config_path = dir.join(CONFIG_TOML);
        if !config_path.is_file() && !dir.join(METRICS_JSONL).is_file() {
            return Err(Error::format(
                dir,
                "not a run folder (no config.toml or metrics.jsonl)",
            ));
        }
        let (config, config_problem) = match TrainConfig::from_toml_file(&config_path) {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let mut log = RunLog {
            dir: dir.to_path_buf(),
            config,
            config_problem,
            steps: Vec::new(),
            epochs: Vec::new(),
            steps_per_epoch: None,
            offset: 0,
            partial: String::new(),
            modified: None,
        };
        log.refresh()?;
        Ok(log)
    }

    /// The folder's name.
    pub fn name(&self) -> String {
        self.dir.file_name().map_or_else(
            || self.dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// Read what was appended to metrics.jsonl since the last call. A file that got
    /// shorter (a resumed run drops records written after its checkpoint) is read
    /// again from the start. Returns whether any record was added or removed.
    pub fn refresh(&mut self) -> Result<bool> {
        let path = self.dir.join(METRICS_JSONL);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let meta = file.metadata().map_err(|e| Error::io(&path, e))?;
        let len = meta.len();
        self.modified = meta.modified().ok();
        let mut changed = false;
        if len < self.offset {
            self.steps.clear();
            self.epochs.clear();
            self.partial.clear();
            self.offset = 0;
            changed = true;
        }
        if len == self.offset {
            return Ok(changed);
        }
        file.seek(SeekFrom::Start(self.offset))
            .map_err(|e| Error::io(&path, e))?;
        let mut bytes = Vec::new();
        file.take(len - self.offset)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(&path, e))?;
        self.offset += bytes.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let complete = match self.partial.rfind('\n') {
            Some(i) => {
                let rest = self.partial.split_off(i + 1);
                std::mem::replace(&mut self.partial, rest)
            }
            None => return Ok(changed),
        };
        // Lines of unknown kinds (a newer ctseg) are skipped, not fatal.
        for line in parse_metrics(&complete) {
            match line {
                MetricsLine::Step(s) => self.steps.push(s),
                MetricsLine::Epoch(e) => self.epochs.push(e),
            }
            changed = true;
        }
        Ok(changed)
    }

    /// Seconds since metrics.jsonl was last written (`None` before it exists).
    pub fn seconds_since_write(&self) -> Option<f64> {
        let m = self.modified?;
        Some(
            SystemTime::now()
                .duration_since(m)
                .map_or(0.0, |d| d.as_secs_f64()),
        )
    }

    /// Epochs the configuration plans: `run.epochs`, or with a step budget
    /// (`run.max_steps`) the epochs that budget spans.
    pub fn planned_epochs(&self) -> Option<usize> {
        let config = self.config.as_ref()?;
        if config.run.max_steps == 0 {
            return Some(config.run.epochs);
        }
        Some(config.run_length(self.expected_steps_per_epoch()?).epochs)
    }

    /// Steps per epoch: the trainer's figure, else the count of the first finished
    /// epoch, else the steps seen so far in the running one.
    pub fn expected_steps_per_epoch(&self) -> Option<usize> {
        if let Some(n) = self.steps_per_epoch {
            return Some(n.max(1));
        }
        let epoch = self
            .epochs
            .first()
            .map(|e| e.epoch)
            .or_else(|| self.steps.first().map(|s| s.epoch))?;
        let n = self.steps.iter().filter(|s| s.epoch == epoch).count();
        (n > 0).then_some(n)
    }

    /// Each step's loss at its position in epochs: a step that is the `i`-th (1-based)
    /// of `n` in epoch `e` sits at `e - 1 + i / n`, so step and epoch curves share
    /// one x axis and runs with different batch sizes line up.
    pub fn step_losses(&self) -> Vec<[f64; 2]> {
        let expected = self.expected_steps_per_epoch().unwrap_or(1) as f64;
        let mut out = Vec::with_capacity(self.steps.len());
        let mut start = 0;
        while start < self.steps.len() {
            let epoch = self.steps[start].epoch;
            let end = start
                + self.steps[start..]
                    .iter()
                    .take_while(|s| s.epoch == epoch)
                    .count();
            let finished = self.epochs.iter().any(|e| e.epoch == epoch);
            let n = if finished {
                (end - start) as f64
            } else {
                expected.max((end - start) as f64)
            };
            for (i, s) in self.steps[start..end].iter().enumerate() {
                out.push([epoch as f64 - 1.0 + (i + 1) as f64 / n, s.loss]);
            }
            start = end;
        }
        out
    }

    /// Exponential moving average of `points`' y values (`weight` of the past, like
    /// TensorBoard's smoothing slider), bias-corrected so the curve starts on the data.
    pub fn smoothed(points: &[[f64; 2]], weight: f64) -> Vec<[f64; 2]> {
        let weight = weight.clamp(0.0, 0.999);
        let mut avg = 0.0;
        let mut debias = 1.0;
        points
            .iter()
            .map(|&[x, y]| {
                avg = weight * avg + (1.0 - weight) * y;
                debias *= weight;
                [x, avg / (1.0 - debias)]
            })
            .collect()
    }

    /// The checkpoint to use: `checkpoints/best`, else `checkpoints/last`.
    pub fn best_checkpoint(&self) -> Option<PathBuf> {
        ["best", "last"]
            .into_iter()
            .map(|k| self.dir.join("checkpoints").join(k))
            .find(|p| p.is_dir())
    }

    /// The newest validation sample figure (`samples/epoch_NNN.png`) and its epoch.
    pub fn latest_sample(&self) -> Option<(usize, PathBuf)> {
        let entries = std::fs::read_dir(self.dir.join(SAMPLES_DIR)).ok()?;
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let epoch = name
                    .strip_prefix("epoch_")?
                    .strip_suffix(".png")?
                    .parse()
                    .ok()?;
                Some((epoch, e.path()))
            })
            .max_by_key(|(epoch, _)| *epoch)
    }

    /// Epoch with the highest mean validation Dice (the first of equals, as the
    /// trainer keeps `best` only on a strict improvement), and that Dice.
    pub fn best_epoch(&self) -> Option<(usize, f64)> {
        self.epochs
            .iter()
            .filter_map(|e| e.val_dice_mean.map(|d| (e.epoch, d)))
            .fold(None, |best, (e, d)| match best {
                Some((_, b)) if d <= b => best,
                _ => Some((e, d)),
            })
    }

    /// Seconds spent so far: finished epochs plus the running epoch's steps at the
    /// recent throughput.
    pub fn elapsed_seconds(&self) -> f64 {
        let done: f64 = self.epochs.iter().map(|e| e.seconds).sum();
        let last_epoch = self.epochs.last().map_or(0, |e| e.epoch);
        let running: Vec<&StepRecord> =
            self.steps.iter().filter(|s| s.epoch > last_epoch).collect();
        let batch = self.config.as_ref().map_or(1, |c| c.run.batch_size) as f64;
        let rate = running.last().map_or(0.0, |s| s.slices_per_s);
        let partial = if rate > 0.0 {
            running.len() as f64 * batch / rate
        } else {
            0.0
        };
        done + partial
    }

    /// Estimated seconds until the planned epochs are done: the mean epoch time of the
    /// finished epochs, or the current throughput before the first epoch ends.
    pub fn eta_seconds(&self) -> Option<f64> {
        let planned = self.planned_epochs()?;
        let done = self.epochs.last().map_or(0, |e| e.epoch);
        if done >= planned {
            return Some(0.0);
        }
        let remaining_epochs = (planned - done) as f64;
        let last_epoch = done;
        let in_running = self.steps.iter().filter(|s| s.epoch > last_epoch).count() as f64;
        if !self.epochs.is_empty() {
            let mean =
                self.epochs.iter().map(|e| e.seconds).sum::<f64>() / self.epochs.len() as f64;
            let per_step = mean / self.expected_steps_per_epoch().unwrap_or(1) as f64;
            return Some((remaining_epochs * mean - in_running * per_step).max(0.0));
        }
        let steps = self.expected_steps_per_epoch()? as f64;
        let rate = self.steps.last()?.slices_per_s;
        let batch = self.config.as_ref().map_or(1, |c| c.run.batch_size) as f64;
        (rate > 0.0).then(|| (remaining_epochs * steps - in_running).max(0.0) * batch / rate)
    }

    /// Structures with a validation Dice in any epoch, in catalog order of names.
    pub fn structures(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.epochs.iter().flat_map(|e| e.val_dice.keys()).collect();
        set.into_iter().cloned().collect()
    }

    /// Per-epoch metrics as CSV: epoch, losses, mean Dice, learning rate, seconds, then
    /// one `dice_<structure>` column per structure (empty where undefined).
    pub fn epochs_csv(&self) -> String {
        let structures = self.structures();
        let mut out = String::from("epoch,train_loss,val_loss,val_dice_mean,lr,seconds");
        for s in &structures {
            out.push_str(",dice_");
            out.push_str(s);
        }
        out.push('\n');
        for e in &self.epochs {
            out.push_str(&format!(
                "{},{},{},{},{},{}",
                e.epoch,
                e.train_loss,
                e.val_loss,
                e.val_dice_mean.map_or(String::new(), |d| d.to_string()),
                e.lr,
                e.seconds
            ));
            for s in &structures {
                out.push(',');
                if let Some(d) = e.val_dice.get(s) {
                    out.push_str(&d.to_string());
                }
            }
            out.push('\n');
        }
        out
    }

    /// Per-step metrics as CSV: step, epoch, loss, learning rate, slices/s.
    pub fn steps_csv(&self) -> String {
        let mut out = String::from("step,epoch,loss,lr,slices_per_s\n");
        for s in &self.steps {
            out.push_str(&format!(
                "{},{},{},{},{}\n",
                s.step, s.epoch, s.loss, s.lr, s.slices_per_s
            ));
        }
        out
    }

    /// Write [`RunLog::epochs_csv`] to `path` and [`RunLog::steps_csv`] beside it
    /// (`<stem>_steps.csv`), each to a temporary file renamed into place. Returns the
    /// steps file's path.
    pub fn write_csv(&self, path: &Path) -> Result<PathBuf> {
        let stem = path.file_stem().map_or_else(
            || "metrics".to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        let steps_path = path.with_file_name(format!("{stem}_steps.csv"));
        for (p, text) in [
            (path, self.epochs_csv()),
            (steps_path.as_path(), self.steps_csv()),
        ] {
            atomic_write(p, ".csv", |tmp| {
                std::fs::write(tmp, text.as_bytes()).map_err(|e| Error::io(tmp, e))
            })?;
        }
        Ok(steps_path)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write;

    use super::*;

    fn step(epoch: usize, step: usize, loss: f64) -> String {
        serde_json::to_string(&MetricsLine::Step(StepRecord {
            epoch,
            step,
            loss,
            lr: 1e-3,
            slices_per_s: 10.0,
        }))
        .expect("json")
            + "\n"
    }

    fn epoch(epoch: usize, dice: f64) -> String {
        let mut val_dice = BTreeMap::new();
        val_dice.insert("liver".to_string(), dice);
        val_dice.insert("spleen".to_string(), dice / 2.0);
        serde_json::to_string(&MetricsLine::Epoch(EpochRecord {
            epoch,
            train_loss: 0.5,
            val_loss: 0.6,
            val_dice_mean: Some(dice * 0.75),
            val_dice,
            lr: 1e-3,
            seconds: 4.0,
        }))
        .expect("json")
            + "\n"
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        f.write_all(text.as_bytes()).expect("write");
    }

    #[test]
    fn follows_a_growing_file_and_waits_for_whole_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(CONFIG_TOML),
            "[run]\nepochs = 3\nbatch_size = 2\n",
        )
        .expect("config");
        let metrics = dir.path().join(METRICS_JSONL);
        let mut log = RunLog::open(dir.path()).expect("open");
        assert_eq!(log.planned_epochs(), Some(3));
        assert!(log.steps.is_empty());
        append(&metrics, &(step(1, 1, 1.0) + &step(1, 2, 0.8)));
        assert!(log.refresh().expect("refresh"));
        assert_eq!(log.steps.len(), 2);
        // Half a line: nothing yet, then the rest arrives.
        let line = step(1, 3, 0.7);
        let (a, b) = line.split_at(10);
        append(&metrics, a);
        assert!(!log.refresh().expect("refresh"));
        assert_eq!(log.steps.len(), 2);
        append(&metrics, &(b.to_string() + &epoch(1, 0.4)));
        assert!(log.refresh().expect("refresh"));
        assert_eq!(log.steps.len(), 3);
        assert_eq!(log.epochs.len(), 1);
        assert!(!log.refresh().expect("refresh"), "nothing new");
        // Positions: three steps fill epoch 1.
        let xs: Vec<f64> = log.step_losses().iter().map(|p| p[0]).collect();
        assert_eq!(xs.len(), 3);
        assert!((xs[2] - 1.0).abs() < 1e-12 && (xs[0] - 1.0 / 3.0).abs() < 1e-12);
        // Epoch 2 half done: its first step sits at 1 + 1/3.
        append(&metrics, &step(2, 4, 0.6));
        log.refresh().expect("refresh");
        let last = *log.step_losses().last().expect("point");
        assert!((last[0] - (1.0 + 1.0 / 3.0)).abs() < 1e-12, "{last:?}");
        // ETA: 2 epochs left at 4 s, minus one step of 4/3 s.
        let eta = log.eta_seconds().expect("eta");
        assert!((eta - (8.0 - 4.0 / 3.0)).abs() < 1e-9, "{eta}");
        assert_eq!(log.best_epoch(), Some((1, 0.30000000000000004)));
    }

    #[test]
    fn a_step_budget_plans_the_epochs_it_spans() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(CONFIG_TOML),
            "[run]\nepochs = 50\nmax_steps = 7\n",
        )
        .expect("config");
        let metrics = dir.path().join(METRICS_JSONL);
        append(&metrics, &(step(1, 1, 1.0) + &step(1, 2, 0.8)));
        let mut log = RunLog::open(dir.path()).expect("open");
        log.steps_per_epoch = Some(2);
        assert_eq!(log.planned_epochs(), Some(4), "7 steps at 2 per epoch");
    }

    #[test]
    fn a_truncated_file_is_read_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = dir.path().join(METRICS_JSONL);
        append(
            &metrics,
            &(step(1, 1, 1.0) + &step(1, 2, 0.9) + &step(1, 3, 0.8)),
        );
        let mut log = RunLog::open(dir.path()).expect("open");
        assert_eq!(log.steps.len(), 3);
        assert!(log.config.is_none() && log.config_problem.is_some());
        std::fs::write(&metrics, step(1, 1, 1.0)).expect("truncate");
        assert!(log.refresh().expect("refresh"));
        assert_eq!(log.steps.len(), 1);
    }

    #[test]
    fn not_a_run_folder_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = RunLog::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a run folder"), "{e}");
        let e = RunLog::open(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing") && e.contains("not a folder"), "{e}");
    }

    #[test]
    fn smoothing_starts_on_the_data_and_lags_behind_it() {
        let points: Vec<[f64; 2]> = (0..10)
            .map(|i| [i as f64, if i < 5 { 1.0 } else { 0.0 }])
            .collect();
        let s = RunLog::smoothed(&points, 0.6);
        assert!((s[0][1] - 1.0).abs() < 1e-12);
        assert!((s[4][1] - 1.0).abs() < 1e-12);
        assert!(s[5][1] > 0.0 && s[5][1] < 1.0 && s[9][1] < s[5][1]);
    }

    #[test]
    fn csv_has_one_column_per_structure_and_is_written_safely() {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = dir.path().join(METRICS_JSONL);
        append(
            &metrics,
            &(step(1, 1, 1.0) + &epoch(1, 0.4) + &step(2, 2, 0.5) + &epoch(2, 0.6)),
        );
        let log = RunLog::open(dir.path()).expect("open");
        let csv = log.epochs_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "epoch,train_loss,val_loss,val_dice_mean,lr,seconds,dice_liver,dice_spleen"
        );
        assert_eq!(lines.len(), 3);
        assert!(
            lines[2].starts_with("2,0.5,0.6,") && lines[2].ends_with(",0.6,0.3"),
            "{}",
            lines[2]
        );
        let out = dir.path().join("export.csv");
        let steps = log.write_csv(&out).expect("write");
        assert_eq!(steps, dir.path().join("export_steps.csv"));
        assert_eq!(std::fs::read_to_string(&out).expect("read"), csv);
        let steps_text = std::fs::read_to_string(&steps).expect("read");
        assert_eq!(steps_text.lines().count(), 3);
    }
}
