//! Training: configuration, the loop, events, schedule, clipping and history plots.

pub mod clip;
pub mod config;
pub mod events;
pub mod history;
pub mod runlog;
pub mod schedule;
pub mod trainer;

pub use config::TrainConfig;
pub use events::{
    EpochRecord, EventBus, FinishReason, MetricsLine, StepRecord, TrainControl, TrainEvent,
};
pub use runlog::RunLog;
pub use trainer::{
    RunDir, SampleSlice, TrainError, TrainSummary, load_run_config, read_metrics, train,
};
