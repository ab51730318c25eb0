//! The Training tab follows a run that a separate `ctseg train` process is still
//! writing (needs the `ctseg` binary, so it lives with the binary's tests).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ctseg_viewer::testing::wait_for;
use ctseg_viewer::{Mode, Startup, ViewerApp};
use egui_kittest::Harness;

const WAIT: Duration = Duration::from_secs(300);

fn phantoms(dir: &Path) -> PathBuf {
    ctseg_viewer::testing::tiny_phantoms(dir)
}

fn harness(startup: Startup) -> Harness<'static, ViewerApp> {
    ctseg_viewer::testing::harness(startup, [1500.0, 950.0])
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        // The process may have ended already; either way it must not outlive the test.
        if self.0.kill().is_ok() && self.0.wait().is_err() {
            eprintln!("could not reap the ctseg train process");
        }
    }
}

#[test]
fn dashboard_follows_a_run_another_process_is_writing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = phantoms(tmp.path());
    let run = tmp.path().join("cli-run");
    let child = Command::new(env!("CARGO_BIN_EXE_ctseg"))
        .args(["train", "--quiet", "--backend", "cpu", "--epochs", "20"])
        .args(["--steps-per-epoch", "0"])
        .args([
            "--batch-size",
            "2",
            "--input-size",
            "64",
            "--base-channels",
            "8",
        ])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .arg("--cache-dir")
        .arg(tmp.path().join("cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ctseg train");
    let mut child = Killed(child);
    let start = Instant::now();
    while !run.join("config.toml").is_file() {
        assert!(start.elapsed() < WAIT, "ctseg train wrote no config.toml");
        assert!(
            child.0.try_wait().expect("wait").is_none(),
            "ctseg train exited early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut h = harness(Startup {
        runs: vec![run.clone()],
        ..Startup::default()
    });
    h.run_steps(2);
    assert_eq!(h.state().mode, Mode::Training);
    assert_eq!(h.state().training.runs.len(), 1);
    wait_for(&mut h, "the first plotted steps", |a| {
        a.training.plotted.train_loss >= 1
    });
    let first = h.state().training.plotted.train_loss;
    assert!(
        child.0.try_wait().expect("wait").is_none(),
        "the run must still be going"
    );
    wait_for(&mut h, "the plot to grow", |a| {
        a.training.plotted.train_loss > first + 2
    });
    assert!(child.0.try_wait().expect("wait").is_none());
    // The file and the plot agree.
    let on_disk = ctseg_ml::train::read_metrics(&run.join("metrics.jsonl"))
        .expect("metrics")
        .len();
    let shown = h
        .state()
        .training
        .primary_run()
        .expect("run")
        .log
        .steps
        .len();
    assert!(
        shown <= on_disk && shown > first,
        "{shown} shown, {on_disk} on disk"
    );
}
