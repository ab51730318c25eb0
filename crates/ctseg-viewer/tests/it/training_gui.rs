//! The Training tab, driven through egui_kittest: a tiny training run on the CPU
//! backend with phantom data is launched from the form by its labels, paused, resumed
//! and stopped, and its curves, heat map, sample and checkpoints are checked; then a
//! run written by a separate `ctseg train` process is opened and followed while it
//! grows.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ctseg_ml::train::FinishReason;
use ctseg_viewer::training::SessionStatus;
use ctseg_viewer::{Mode, Startup, ViewerApp};
use eframe::egui;
use eframe::egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use common::wait_for;

fn phantoms(dir: &Path) -> PathBuf {
    ctseg_viewer::testing::tiny_phantoms(dir)
}

fn harness(startup: Startup) -> Harness<'static, ViewerApp> {
    ctseg_viewer::testing::harness(startup, [1500.0, 950.0])
}

fn status(app: &ViewerApp) -> Option<SessionStatus> {
    app.training.session.as_ref().map(|s| s.status.clone())
}

fn steps(app: &ViewerApp) -> usize {
    app.training.primary_run().map_or(0, |r| r.log.steps.len())
}

fn type_into(h: &mut Harness<'static, ViewerApp>, label: &str, text: &str) {
    let field = h.get_by_role_and_label(Role::TextInput, label);
    field.focus();
    h.run_steps(1);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.run_steps(1);
    h.get_by_role_and_label(Role::TextInput, label)
        .type_text(text);
    h.run_steps(1);
}

#[test]
fn training_panel_runs_pauses_and_stops_a_tiny_cpu_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = phantoms(tmp.path());
    let run = tmp.path().join("runs").join("gui-run");
    let mut h = harness(Startup::default());
    h.run_steps(2);

    h.get_by_label("Training").click();
    h.run_steps(2);
    assert_eq!(h.state().mode, Mode::Training);
    type_into(&mut h, "Dataset folder", &data.display().to_string());
    h.get_by_label("Scan").click();
    wait_for(&mut h, "the dataset scan", |a| {
        a.training.scan.as_ref().is_some_and(|s| s.done)
    });
    let scan = h.state().training.scan.clone().expect("scan");
    assert_eq!(scan.error, None);
    assert_eq!(scan.read, 3);
    assert!(scan.problems.is_empty(), "{:?}", scan.problems);
    assert_eq!(scan.train.len() + scan.val.len() + scan.test, 3);
    assert!(scan.structures.len() >= 5, "{:?}", scan.structures);

    h.get_by_label("Tiny (CPU smoke test)").click();
    h.run_steps(1);
    type_into(&mut h, "Run folder", &run.display().to_string());
    assert_eq!(h.state().training.run_dir_text, run.display().to_string());
    {
        let t = &mut h.state_mut().training;
        assert_eq!(t.config.run.backend, ctseg_ml::backend::BackendKind::Cpu);
        t.config.data.cache_dir = tmp.path().join("cache");
        t.config.run.epochs = 8;
        t.config.run.steps_per_epoch = 3;
    }

    h.get_by_label("Start").click();
    wait_for(&mut h, "plotted training steps", |a| {
        a.training.plotted.train_loss >= 2
    });
    assert!(h.state().training.is_training());
    assert!(h.state().training.plotted.lr >= 2);

    // Pause: no steps while paused.
    h.get_by_label("Pause").click();
    wait_for(&mut h, "the pause", |a| {
        status(a) == Some(SessionStatus::Paused)
    });
    let paused_at = steps(h.state());
    for _ in 0..20 {
        h.run_steps(1);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(steps(h.state()), paused_at, "steps while paused");
    h.get_by_label("Resume").click();
    wait_for(&mut h, "steps after resuming", |a| steps(a) > paused_at);

    // A finished epoch: Dice curve, heat map, sample figure and the best checkpoint.
    wait_for(&mut h, "the first validation", |a| {
        a.training.plotted.dice >= 1
            && a.training.plotted.heat_cells >= 1
            && a.training
                .primary_run()
                .and_then(|r| r.sample_epoch())
                .is_some()
    });
    assert!(run.join("checkpoints/best").is_dir());
    assert!(run.join("samples/epoch_001.png").is_file());
    let session = h.state().training.session.as_ref().expect("session");
    assert!(
        session.device.as_deref().is_some_and(|d| d.contains("cpu")),
        "{:?}",
        session.device
    );

    // Stop keeps the last checkpoint, and the run can be continued.
    h.get_by_label("Stop").click();
    wait_for(&mut h, "the stop", |a| {
        matches!(
            status(a),
            Some(SessionStatus::Finished {
                reason: FinishReason::Cancelled,
                ..
            })
        )
    });
    assert!(run.join("checkpoints/last/state.json").is_file());
    let stopped_at = steps(h.state());
    assert!(stopped_at < 8 * 3, "stopped early: {stopped_at} steps");
    h.get_by_label("Continue run").click();
    wait_for(&mut h, "steps after continuing", |a| {
        a.training.is_training() && steps(a) > stopped_at
    });
    h.get_by_label("Stop").click();
    wait_for(&mut h, "the second stop", |a| !a.training.is_training());

    // Exports.
    let csv = tmp.path().join("export.csv");
    h.state_mut().export_csv(&csv);
    // Exports are written by background tasks.
    assert!(
        h.state_mut().wait_idle(Duration::from_secs(120)),
        "the export finished"
    );
    let text = std::fs::read_to_string(&csv).expect("csv");
    assert!(text.starts_with("epoch,train_loss,val_loss,val_dice_mean,lr,seconds"));
    assert!(text.lines().count() >= 2, "{text}");
    let steps_csv = std::fs::read_to_string(tmp.path().join("export_steps.csv")).expect("steps");
    assert_eq!(steps_csv.lines().count(), steps(h.state()) + 1);
    let png = tmp.path().join("plots.png");
    h.state_mut().export_plots(&png);
    assert!(
        h.state_mut().wait_idle(Duration::from_secs(120)),
        "the export finished"
    );
    assert!(image::open(&png).is_ok_and(|i| i.width() == 1000));

    // "Use this checkpoint" hands the best checkpoint to the model panel.
    h.get_by_label("Use this checkpoint").click();
    h.run_steps(2);
    assert_eq!(h.state().mode, Mode::Viewer);
    assert_eq!(
        h.state().settings.model.as_deref(),
        Some(run.join("checkpoints").join("best").as_path())
    );
}

/// The form's Training precision combo sets the run's precision; f16/bf16 are not
/// offered on the CPU backend, and choosing the CPU resets a half precision to f32.
#[test]
fn training_precision_is_chosen_in_the_form_and_f32_on_the_cpu() {
    let mut h = harness(Startup::default());
    h.run();
    h.get_by_label("Training").click();
    h.run();
    h.state_mut().training.config.run.backend = ctseg_ml::backend::BackendKind::Wgpu;
    h.run();
    h.get_by_role_and_label(Role::ComboBox, "Training precision")
        .click();
    h.run();
    h.get_by_label("f16").click();
    h.run();
    assert_eq!(
        h.state().training.config.run.precision,
        ctseg_ml::infer::Precision::F16
    );

    h.get_by_role_and_label(Role::ComboBox, "Backend").click();
    h.run();
    h.get_by_label("cpu").click();
    h.run();
    let run = &h.state().training.config.run;
    assert_eq!(run.backend, ctseg_ml::backend::BackendKind::Cpu);
    assert_eq!(run.precision, ctseg_ml::infer::Precision::F32);

    h.get_by_role_and_label(Role::ComboBox, "Training precision")
        .click();
    h.run();
    h.get_by_label("bf16").click();
    h.run();
    assert_eq!(
        h.state().training.config.run.precision,
        ctseg_ml::infer::Precision::F32,
        "bf16 must not be selectable on the CPU"
    );
}
