//! Hooks for tests and benchmarks that drive the app headless (kittest). They are
//! compiled only with the `test-hooks` feature, which the viewer's own tests and the
//! workspace's tests turn on; `ctseg` itself is built without them.

use std::time::{Duration, Instant};

use crate::app::{FrameTimes, ViewerApp};
use crate::slice_view::SliceTextures;

impl ViewerApp {
    /// Apply worker events and finished tasks until every submitted job and
    /// background task is done or `timeout` passes; `true` when idle.
    pub fn wait_idle(&mut self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if self.pending_jobs > 0 {
                if left.is_zero() {
                    return false;
                }
                if let Some(e) = self.worker.recv_timeout(left) {
                    self.handle(e);
                }
            } else if !self.tasks.running().is_empty() {
                if left.is_zero() {
                    return false;
                }
                if let Some(commands) = self.tasks.wait_one(left) {
                    for c in commands {
                        self.apply(c);
                    }
                }
            } else {
                // Commands of tasks that finished meanwhile.
                for c in self.tasks.finished() {
                    self.apply(c);
                }
                if self.pending_jobs == 0 && self.tasks.running().is_empty() {
                    return true;
                }
            }
        }
    }

    /// How many whole-volume comparisons have been requested from the worker so far
    /// (edits update the comparison in place instead).
    pub fn compare_requests(&self) -> u64 {
        self.compare_requested
    }

    /// Use the CPU reference compositor even when a wgpu renderer is present.
    pub fn force_cpu_compositing(&mut self) {
        self.gpu_target = None;
        self.textures = SliceTextures::default();
    }

    /// Slices composited (CPU) or uploaded (GPU) so far.
    pub fn slice_rebuilds(&self) -> u64 {
        self.textures.rebuilds
    }

    /// Forget the recorded frame times (benchmarks measure a stretch of frames).
    pub fn reset_frame_times(&mut self) {
        self.frame_times = FrameTimes::default();
    }
}

/// Draw frames of a kittest harness, giving background threads time, until `done`
/// holds; fails after five minutes naming `what`.
pub fn wait_for(
    h: &mut egui_kittest::Harness<'static, ViewerApp>,
    what: &str,
    mut done: impl FnMut(&ViewerApp) -> bool,
) {
    let start = std::time::Instant::now();
    loop {
        h.run_steps(1);
        if done(h.state()) {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(300),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A kittest harness of the real app (wgpu renderer) at `size` points, with default
/// settings and `startup`.
pub fn harness(
    startup: crate::Startup,
    size: [f32; 2],
) -> egui_kittest::Harness<'static, ViewerApp> {
    egui_kittest::Harness::builder()
        .with_size(eframe::egui::vec2(size[0], size[1]))
        .wgpu()
        .build_eframe(|cc| ViewerApp::with_settings(cc, crate::Settings::default(), startup))
}

/// Three tiny phantom subjects (48×48×12) in `dir/phantoms`, for training tests.
pub fn tiny_phantoms(dir: &std::path::Path) -> std::path::PathBuf {
    let out = dir.join("phantoms");
    let config = ctseg_core::phantom::PhantomConfig {
        subjects: 3,
        seed: 5,
        shape: [48, 48, 12],
        ..Default::default()
    };
    ctseg_core::phantom::write_dataset(&out, &config).expect("phantoms");
    out
}
