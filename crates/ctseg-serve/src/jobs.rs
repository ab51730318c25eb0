//! Inference jobs: their state and progress, shared between the HTTP handlers that
//! ask about them and the worker that runs them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::worker::Prediction;

/// Finished jobs kept for `GET /v1/jobs/{id}` (the oldest are forgotten first).
pub const KEPT_JOBS: usize = 256;

/// Where a job is.
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    /// Waiting for the worker.
    Queued,
    /// Being predicted.
    Running,
    /// Finished; the result is kept until fetched or forgotten.
    Done,
    /// Failed with this message.
    Failed(String),
    /// The client went away before it finished.
    Cancelled,
}

impl JobState {
    fn name(&self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed(_) => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job has ended.
    pub fn is_final(&self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// One inference job.
#[derive(Debug)]
pub struct Job {
    /// Its ID (a decimal counter).
    pub id: u64,
    /// The model it runs.
    pub model: String,
    /// What it segments (an image ID or "upload").
    pub image: String,
    /// Slices predicted so far.
    pub done: AtomicUsize,
    /// Slices in all.
    pub total: AtomicUsize,
    /// Asked to stop (client gone, or `wait=false` job deleted).
    pub cancel: AtomicBool,
    state: Mutex<JobState>,
    result: Mutex<Option<Arc<Prediction>>>,
    created: Instant,
    created_unix: u64,
}

impl Job {
    fn new(id: u64, model: &str, image: &str) -> Self {
        Job {
            id,
            model: model.to_string(),
            image: image.to_string(),
            done: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
            cancel: AtomicBool::new(false),
            state: Mutex::new(JobState::Queued),
            result: Mutex::new(None),
            created: Instant::now(),
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    /// The current state.
    pub fn state(&self) -> JobState {
        lock(&self.state).clone()
    }

    /// Move to `state`.
    pub fn set_state(&self, state: JobState) {
        *lock(&self.state) = state;
    }

    /// Keep the finished prediction for a later `GET /v1/jobs/{id}/result`.
    pub fn set_result(&self, prediction: Arc<Prediction>) {
        *lock(&self.result) = Some(prediction);
        self.set_state(JobState::Done);
    }

    /// The finished prediction, if any.
    pub fn result(&self) -> Option<Arc<Prediction>> {
        lock(&self.result).clone()
    }

    /// The job as JSON for `GET /v1/jobs/{id}`.
    pub fn to_json(&self) -> Value {
        let state = self.state();
        let mut value = json!({
            "id": self.id.to_string(),
            "model": self.model,
            "image": self.image,
            "state": state.name(),
            "progress": {
                "done": self.done.load(Ordering::Relaxed),
                "total": self.total.load(Ordering::Relaxed),
            },
            "created": self.created_unix,
            "age_s": self.created.elapsed().as_secs_f64(),
        });
        if let JobState::Failed(message) = &state {
            value["error"] = json!(message);
        }
        if state == JobState::Done {
            value["result"] = json!(format!("/v1/jobs/{}/result", self.id));
        }
        value
    }
}

/// All jobs the server knows.
#[derive(Debug, Default)]
pub struct Jobs {
    next: AtomicU64,
    map: Mutex<BTreeMap<u64, Arc<Job>>>,
}

impl Jobs {
    /// A new queued job (forgetting the oldest finished ones beyond [`KEPT_JOBS`]).
    pub fn create(&self, model: &str, image: &str) -> Arc<Job> {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let job = Arc::new(Job::new(id, model, image));
        let mut map = lock(&self.map);
        map.insert(id, job.clone());
        if map.len() > KEPT_JOBS {
            let old: Vec<u64> = map
                .iter()
                .filter(|(_, j)| j.state().is_final())
                .map(|(&id, _)| id)
                .take(map.len() - KEPT_JOBS)
                .collect();
            for id in old {
                map.remove(&id);
            }
        }
        job
    }

    /// The job with `id`.
    pub fn get(&self, id: u64) -> Option<Arc<Job>> {
        lock(&self.map).get(&id).cloned()
    }

    /// Jobs queued or running.
    pub fn active(&self) -> Vec<Arc<Job>> {
        lock(&self.map)
            .values()
            .filter(|j| !j.state().is_final())
            .cloned()
            .collect()
    }
}

/// Lock a mutex, going on with the data if a panicking thread poisoned it (the
/// data here are plain values that stay consistent).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_finished_jobs_are_forgotten_active_ones_kept() {
        let jobs = Jobs::default();
        let first = jobs.create("m", "a");
        for _ in 0..KEPT_JOBS + 10 {
            jobs.create("m", "b")
                .set_state(JobState::Failed("x".into()));
        }
        assert!(jobs.get(first.id).is_some(), "a queued job was forgotten");
        assert_eq!(jobs.active().len(), 1);
        assert!(jobs.get(2).is_none());
        let json = first.to_json();
        assert_eq!(json["state"], "queued");
        assert_eq!(json["id"], "1");
    }
}
