//! Training: configuration ([`config`]), the run folder ([`run_dir`]), the one
//! training step ([`step`]), the loop ([`trainer`]), validation ([`validation`]),
//! checkpoints and resume ([`checkpoint`]), events, schedule, clipping, the run log a
//! viewer follows ([`runlog`]) and the history plots ([`plots`]).

pub mod amp;
pub mod checkpoint;
pub mod clip;
pub mod config;
pub mod events;
pub mod plots;
pub mod run_dir;
pub mod runlog;
pub mod schedule;
pub mod step;
pub mod trainer;
pub mod validation;

pub use config::TrainConfig;
pub use events::{
    EpochRecord, EventBus, FinishReason, MetricsLine, StepRecord, TrainControl, TrainEvent,
};
pub use run_dir::{RunDir, load_run_config, read_metrics};
pub use runlog::RunLog;
pub use trainer::{TrainError, TrainSummary, train};
pub use validation::SampleSlice;
