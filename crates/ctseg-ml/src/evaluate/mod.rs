//! Evaluation of a model over a dataset split: predict every subject, score it
//! against its segmentation (overlap and surface metrics on the CT's own grid), and
//! summarise per structure like nnU-Net's `summary.json`.

mod boxplot;
mod report;

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::infer::{InferError, PredictOptions, Predictor};
use ctseg_core::dataset::{CaseRef, DatasetIndex, Split};
use ctseg_core::metrics::summary::{DatasetSummary, summarize};
use ctseg_core::metrics::{Evaluation, evaluate_with_surface};
use ctseg_core::structures::catalog;

pub use boxplot::write_dice_boxplot;
pub use report::{per_subject_csv, summary_table, write_outputs};

/// NSD tolerance TotalSegmentator reports (mm).
pub const DEFAULT_NSD_TOLERANCE_MM: f64 = 3.0;

/// Which subjects to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EvalSplit {
    /// The training subjects.
    Train,
    /// The validation subjects.
    Val,
    /// The held-out subjects.
    Test,
    /// Every subject.
    All,
}

impl EvalSplit {
    /// The cases of `index` in this split.
    pub fn cases(self, index: &DatasetIndex) -> Vec<&CaseRef> {
        match self {
            EvalSplit::Train => index.split(Split::Train),
            EvalSplit::Val => index.split(Split::Val),
            EvalSplit::Test => index.split(Split::Test),
            EvalSplit::All => index.cases.iter().collect(),
        }
    }
}

/// One subject's scores.
#[derive(Debug, Clone, Serialize)]
pub struct SubjectEvaluation {
    /// Subject id.
    pub id: String,
    /// Every structure's metrics.
    pub evaluation: Evaluation,
    /// Seconds spent predicting it.
    pub predict_seconds: f64,
}

/// The evaluation of a split.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetEvaluation {
    /// The weights evaluated.
    pub model: PathBuf,
    /// The dataset folder.
    pub data: PathBuf,
    /// The split.
    pub split: EvalSplit,
    /// NSD tolerance in mm.
    pub nsd_tolerance_mm: f64,
    /// Per structure over subjects, and the foreground means.
    pub summary: DatasetSummary,
    /// Per subject.
    pub subjects: Vec<SubjectEvaluation>,
    /// What the user should know (split mismatches, clamped CT values, unnamed
    /// labels…), one line each, naming the file or folder.
    pub warnings: Vec<String>,
}

/// Errors of a dataset evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The split has no subjects.
    #[error("{data}: the {split:?} split has no subjects ({source_of_split})")]
    EmptySplit {
        /// Dataset folder.
        data: PathBuf,
        /// The split asked for.
        split: EvalSplit,
        /// How the dataset's split was decided.
        source_of_split: String,
    },
    /// A subject could not be read or scored.
    #[error("subject {id}: {source}")]
    Subject {
        /// Subject id.
        id: String,
        /// What went wrong.
        source: Box<ctseg_core::Error>,
    },
    /// Prediction failed.
    #[error("subject {id}: {source}")]
    Predict {
        /// Subject id.
        id: String,
        /// What went wrong.
        source: Box<InferError>,
    },
}

/// Predict and score every subject of `split`. `progress(done, total, id)` is called
/// before each subject and once at the end.
pub fn evaluate_dataset(
    predictor: &Predictor,
    index: &DatasetIndex,
    split: EvalSplit,
    options: &PredictOptions,
    nsd_tolerance_mm: f64,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<DatasetEvaluation, EvalError> {
    let cases = split.cases(index);
    if cases.is_empty() {
        return Err(EvalError::EmptySplit {
            data: index.root.clone(),
            split,
            source_of_split: index.split_source.clone(),
        });
    }
    let total = cases.len();
    let mut subjects = Vec::with_capacity(total);
    let mut warnings = index.warnings.clone();
    for (done, case) in cases.iter().enumerate() {
        progress(done, total, &case.id);
        let subject = index.load(case).map_err(|source| EvalError::Subject {
            id: case.id.clone(),
            source: Box::new(source),
        })?;
        warnings.extend(subject.ct.warnings.iter().cloned());
        warnings.extend(subject.segmentation.warnings.iter().cloned());
        let start = Instant::now();
        let predicted = predictor
            .predict(&subject.ct.volume, options, &mut |_, _| true)
            .map_err(|source| EvalError::Predict {
                id: case.id.clone(),
                source: Box::new(source),
            })?;
        let predict_seconds = start.elapsed().as_secs_f64();
        let evaluation = evaluate_with_surface(
            &subject.segmentation.labels,
            &predicted,
            catalog(),
            nsd_tolerance_mm,
        )
        .map_err(|source| EvalError::Subject {
            id: case.id.clone(),
            source: Box::new(source),
        })?;
        subjects.push(SubjectEvaluation {
            id: case.id.clone(),
            evaluation,
            predict_seconds,
        });
    }
    progress(total, total, "");
    let evaluations: Vec<&Evaluation> = subjects.iter().map(|s| &s.evaluation).collect();
    Ok(DatasetEvaluation {
        model: predictor.weights().to_path_buf(),
        data: index.root.clone(),
        split,
        nsd_tolerance_mm,
        summary: summarize(&evaluations),
        subjects,
        warnings,
    })
}
