//! The layout of a run folder: `config.toml`, `metrics.jsonl`, `history.png`,
//! `samples/epoch_NNN.png` and `checkpoints/{last,best}`; reading its metrics and
//! configuration, and appending to its metrics file.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::config::{ScheduleKind, TrainConfig};
use super::events::MetricsLine;

/// File names inside a run folder.
pub const CONFIG_TOML: &str = "config.toml";
/// One JSON object per line: step and epoch records.
pub const METRICS_JSONL: &str = "metrics.jsonl";
/// Loss, Dice and learning-rate curves.
pub const HISTORY_PNG: &str = "history.png";
/// Folder of per-epoch validation sample figures.
pub const SAMPLES_DIR: &str = "samples";
/// Optimiser state inside a `last` checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.bpk";
/// Training state inside a checkpoint.
pub const STATE_FILE: &str = "state.json";

/// Paths of a run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The folder.
    pub path: PathBuf,
}

impl RunDir {
    /// `config.toml`.
    pub fn config(&self) -> PathBuf {
        self.path.join(CONFIG_TOML)
    }
    /// `metrics.jsonl`.
    pub fn metrics(&self) -> PathBuf {
        self.path.join(METRICS_JSONL)
    }
    /// `history.png`.
    pub fn history(&self) -> PathBuf {
        self.path.join(HISTORY_PNG)
    }
    /// `checkpoints/<kind>`.
    pub fn checkpoint(&self, kind: &str) -> PathBuf {
        self.path.join("checkpoints").join(kind)
    }
    /// `samples/epoch_NNN.png`: the validation sample figure after `epoch`.
    pub fn sample(&self, epoch: usize) -> PathBuf {
        self.path
            .join(SAMPLES_DIR)
            .join(format!("epoch_{epoch:03}.png"))
    }
}

/// Read the `epoch` and `step` records of a metrics.jsonl (skipping a torn last line,
/// which a run being written can have).
pub fn read_metrics(path: &Path) -> ctseg_core::Result<Vec<MetricsLine>> {
    let text = std::fs::read_to_string(path).map_err(|e| ctseg_core::Error::io(path, e))?;
    Ok(parse_metrics(&text))
}

/// Load the configuration of an existing run folder.
///
/// A run written before the schedule had a `kind` (every run folder before the
/// poly/cosine schedules) keeps the schedule it was started with: plateau from the
/// first epoch, no warm-up.
pub fn load_run_config(run_dir: &Path) -> ctseg_core::Result<TrainConfig> {
    let path = run_dir.join(CONFIG_TOML);
    let mut config = TrainConfig::from_toml_file(&path)?;
    let text = std::fs::read_to_string(&path).map_err(|e| ctseg_core::Error::io(&path, e))?;
    let has_kind = text
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("schedule")?.get("kind").cloned())
        .is_some();
    if !has_kind {
        config.schedule.kind = ScheduleKind::Plateau;
        config.schedule.plateau_after_signal = false;
        config.schedule.warmup_steps = 0;
    }
    Ok(config)
}

/// The records of metrics.jsonl text; lines that do not parse (a torn last line of a
/// run being written) are skipped. The one parser of the format: [`super::RunLog`]
/// uses it too.
pub fn parse_metrics(text: &str) -> Vec<MetricsLine> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<MetricsLine>(l).ok())
        .collect()
}

/// The run's `metrics.jsonl`, appended one JSON line per record.
pub struct MetricsFile {
    path: PathBuf,
}

impl MetricsFile {
    /// The metrics file of `run`.
    pub fn of(run: &RunDir) -> Self {
        MetricsFile {
            path: run.metrics(),
        }
    }

    /// Append one record as a line.
    pub fn append(&self, line: &MetricsLine) -> ctseg_core::Result<()> {
        let mut text = serde_json::to_string(line).map_err(|e| {
            ctseg_core::Error::Invalid(format!(
                "{}: could not encode a metrics record: {e}",
                self.path.display()
            ))
        })?;
        text.push('\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| ctseg_core::Error::io(&self.path, e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| ctseg_core::Error::io(&self.path, e))
    }

    /// Its length in bytes (0 when it does not exist yet).
    pub fn len(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// Whether it is empty or missing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cut it back to `len` bytes: lines written after a checkpoint are dropped on
    /// resume, so the file never holds a step twice. A missing file is fine (nothing
    /// to drop); any other failure is an error, since continuing would duplicate steps.
    pub fn truncate(&self, len: u64) -> ctseg_core::Result<()> {
        match OpenOptions::new().write(true).open(&self.path) {
            Ok(f) => f
                .set_len(len)
                .map_err(|e| ctseg_core::Error::io(&self.path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ctseg_core::Error::io(&self.path, e)),
        }
    }
}
