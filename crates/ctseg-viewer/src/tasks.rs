//! The one path for background work in the viewer: a named task runs on its own
//! thread with progress and a cancel flag, and its result comes back as
//! [`Command`]s that the app shell applies on the UI thread after a frame. Finishing
//! (or crashing) wakes the UI. File dialogs, exports, writing the sample phantoms and
//! reading dropped files go through here; the device-owning [`crate::worker`] keeps
//! its own thread (one device, jobs in order) and reports the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, unbounded};

use crate::command::Command;

/// What a running task can see and report.
#[derive(Debug, Default)]
pub struct TaskContext {
    done: AtomicUsize,
    total: AtomicUsize,
    cancelled: AtomicBool,
}

impl TaskContext {
    /// Report progress: `done` of `total` units.
    pub fn progress(&self, done: usize, total: usize) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(done, Ordering::Relaxed);
    }

    /// Whether the user asked the task to stop (checked between units of work).
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// The cancel flag itself, for library calls that check one (e.g. a DICOMweb
    /// retrieval).
    pub fn cancel_flag(&self) -> &AtomicBool {
        &self.cancelled
    }
}

/// A task that has not finished yet, as the UI shows it.
#[derive(Debug, Clone)]
pub struct RunningTask {
    /// Task id (for cancelling).
    pub id: u64,
    /// What it does, for the status bar.
    pub name: String,
    /// When it started.
    pub since: Instant,
    context: Arc<TaskContext>,
}

impl RunningTask {
    /// Progress `(done, total)` when the task reports any.
    pub fn progress(&self) -> Option<(usize, usize)> {
        let total = self.context.total.load(Ordering::Relaxed);
        (total > 0).then(|| (self.context.done.load(Ordering::Relaxed), total))
    }
}

struct Finished {
    id: u64,
    commands: Vec<Command>,
}

/// The app's background tasks.
pub struct Tasks {
    sender: Sender<Finished>,
    receiver: Receiver<Finished>,
    running: Vec<RunningTask>,
    next_id: u64,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl Tasks {
    /// A queue whose finished tasks call `wake` (e.g. `ctx.request_repaint`).
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Self {
        let (sender, receiver) = unbounded();
        Tasks {
            sender,
            receiver,
            running: Vec::new(),
            next_id: 0,
            wake: Arc::new(wake),
        }
    }

    /// Run `work` on a new thread. Its commands are applied by the shell when it
    /// finishes; a panic becomes an error message naming the task, and a thread that
    /// cannot be started is reported the same way at once.
    pub fn spawn(
        &mut self,
        name: impl Into<String>,
        work: impl FnOnce(&TaskContext) -> Vec<Command> + Send + 'static,
    ) -> u64 {
        let name = name.into();
        self.next_id += 1;
        let id = self.next_id;
        let context = Arc::new(TaskContext::default());
        let task = RunningTask {
            id,
            name: name.clone(),
            since: Instant::now(),
            context: context.clone(),
        };
        let sender = self.sender.clone();
        let wake = self.wake.clone();
        let thread_name = name.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("ctseg-task-{id}"))
            .spawn(move || {
                let result =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&context)));
                let commands = result.unwrap_or_else(|panic| {
                    vec![Command::error(format!(
                        "{thread_name} failed: internal error: {}",
                        ctseg_core::error::panic_message(panic.as_ref())
                    ))]
                });
                // The receiver lives in the app; when it is gone nobody needs this.
                if sender.send(Finished { id, commands }).is_ok() {
                    wake();
                }
            });
        match spawned {
            Ok(_) => self.running.push(task),
            Err(e) => {
                let commands = vec![Command::error(format!(
                    "{name} failed: could not start a thread: {e}"
                ))];
                if self.sender.send(Finished { id, commands }).is_err() {
                    log::error!("the task channel is closed");
                }
            }
        }
        id
    }

    /// Commands of every task that finished since the last call, in finishing order.
    pub fn finished(&mut self) -> Vec<Command> {
        let mut out = Vec::new();
        while let Ok(f) = self.receiver.try_recv() {
            self.running.retain(|t| t.id != f.id);
            out.extend(f.commands);
        }
        out
    }

    /// Wait up to `timeout` for one task to finish; its commands, or `None`.
    pub fn wait_one(&mut self, timeout: std::time::Duration) -> Option<Vec<Command>> {
        let f = self.receiver.recv_timeout(timeout).ok()?;
        self.running.retain(|t| t.id != f.id);
        Some(f.commands)
    }

    /// Tasks still running, oldest first.
    pub fn running(&self) -> &[RunningTask] {
        &self.running
    }

    /// Ask task `id` to stop.
    pub fn cancel(&self, id: u64) {
        if let Some(t) = self.running.iter().find(|t| t.id == id) {
            t.context.cancelled.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn results_and_panics_come_back_as_commands() {
        let mut tasks = Tasks::new(|| {});
        tasks.spawn("ok", |ctx| {
            ctx.progress(1, 1);
            vec![Command::info("done".into())]
        });
        let first = tasks.wait_one(Duration::from_secs(10)).expect("finishes");
        assert!(matches!(&first[..], [Command::Message(_, t)] if t == "done"));
        tasks.spawn("boom", |_| panic!("kaput"));
        let second = tasks.wait_one(Duration::from_secs(10)).expect("finishes");
        assert!(
            matches!(&second[..], [Command::Message(crate::app::Level::Error, t)] if t.contains("boom failed") && t.contains("kaput")),
            "{second:?}"
        );
        assert!(tasks.running().is_empty());
    }

    #[test]
    fn a_task_sees_its_cancel_flag() {
        let mut tasks = Tasks::new(|| {});
        let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(0);
        let id = tasks.spawn("long", move |ctx| {
            let _started = go_rx.recv();
            vec![Command::info(format!("cancelled: {}", ctx.is_cancelled()))]
        });
        tasks.cancel(id);
        go_tx.send(()).expect("task waits");
        let out = tasks.wait_one(Duration::from_secs(10)).expect("finishes");
        assert!(matches!(&out[..], [Command::Message(_, t)] if t == "cancelled: true"));
    }
}
