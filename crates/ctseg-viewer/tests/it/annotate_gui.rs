//! The annotator, driven through egui_kittest on the generated sample CT: brush
//! strokes from simulated pointer input in all three views, undo/redo by keyboard
//! restoring the exact voxels, the undo memory bound over many strokes, the other
//! tools, save → reload with identical voxels and geometry, the recovery file
//! restoring edits in a new app, and the correct-and-retrain loop (add to training
//! set, fine-tune on the CPU, re-predict, Dice before/after).

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ctseg_core::annotate::EditSource;
use ctseg_core::io::segmentation::load_segmentation;
use ctseg_core::labels::LabelVolume;
use ctseg_core::slicing::Axis;
use ctseg_core::structures::catalog;
use ctseg_viewer::annotate::{FineTuneStage, Question, Tool};
use ctseg_viewer::{Layout, Settings, Startup, ViewerApp};
use eframe::egui::{self, Modifiers, PointerButton, Pos2};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use common::wait_for;

const WAIT: Duration = Duration::from_secs(300);

fn bare_harness(startup: Startup, layout: Layout) -> Harness<'static, ViewerApp> {
    let settings = Settings {
        layout,
        main_axis: Axis::Axial,
        ..Settings::default()
    };
    Harness::builder()
        .with_size(egui::vec2(1400.0, 860.0))
        .wgpu()
        .build_eframe(|cc| ViewerApp::with_settings(cc, settings, startup))
}

/// The app with `startup` loaded.
fn harness(startup: Startup, layout: Layout) -> Harness<'static, ViewerApp> {
    let mut h = bare_harness(startup, layout);
    wait_for(&mut h, "the sample to load", |a| {
        a.ct().is_some() && a.busy().is_none()
    });
    h
}

/// The sample phantom with an empty edited layer, recovery files in `recovery`.
fn editing(recovery: &Path, layout: Layout) -> Harness<'static, ViewerApp> {
    let mut h = harness(
        Startup {
            sample: true,
            recovery_dir: Some(recovery.to_path_buf()),
            edit: Some(EditSource::Empty),
            ..Startup::default()
        },
        layout,
    );
    wait_for(&mut h, "editing to start", |a| a.annotator.is_editing());
    h.state_mut().selected = catalog().label_of("liver");
    h.run_steps(2);
    h
}

fn edited(h: &Harness<'static, ViewerApp>) -> LabelVolume {
    h.state()
        .edit_layer()
        .expect("an edited layer")
        .display
        .clone()
}

/// Press at `points[0]`, drag through the rest, release (one frame per event).
fn drag(h: &mut Harness<'static, ViewerApp>, points: &[Pos2], modifiers: Modifiers) {
    h.event(egui::Event::ModifiersChanged(modifiers));
    h.event(egui::Event::PointerMoved(points[0]));
    h.run_steps(1);
    h.event(egui::Event::PointerButton {
        pos: points[0],
        button: PointerButton::Primary,
        pressed: true,
        modifiers,
    });
    h.run_steps(1);
    for &p in &points[1..] {
        h.event(egui::Event::PointerMoved(p));
        h.run_steps(1);
    }
    let last = points[points.len() - 1];
    h.event(egui::Event::PointerButton {
        pos: last,
        button: PointerButton::Primary,
        pressed: false,
        modifiers,
    });
    h.run_steps(1);
    h.event(egui::Event::ModifiersChanged(Modifiers::NONE));
    h.run_steps(1);
}

fn click(h: &mut Harness<'static, ViewerApp>, p: Pos2) {
    drag(h, &[p], Modifiers::NONE);
}

fn key(h: &mut Harness<'static, ViewerApp>, key: egui::Key, modifiers: Modifiers) {
    h.key_press_modifiers(modifiers, key);
    h.run_steps(2);
}

/// Voxels that differ between two layers.
fn changed(a: &LabelVolume, b: &LabelVolume) -> Vec<[usize; 3]> {
    let [ni, nj, _] = a.shape();
    a.data()
        .iter()
        .zip(b.data())
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(n, _)| [n % ni, n / ni % nj, n / (ni * nj)])
        .collect()
}

/// The centre of the single main view (between the side panels).
const CENTRE: Pos2 = Pos2::new(720.0, 450.0);

#[test]
fn brush_strokes_undo_and_redo_restore_exact_voxels() {
    let rec = tempfile::tempdir().expect("tempdir");
    let mut h = editing(rec.path(), Layout::Single);
    let liver = catalog().label_of("liver").expect("liver");
    let start = edited(&h);
    let k = h.state().cursor[2];
    drag(
        &mut h,
        &[
            CENTRE,
            CENTRE + egui::vec2(40.0, 10.0),
            CENTRE + egui::vec2(80.0, 30.0),
        ],
        Modifiers::NONE,
    );
    let first = edited(&h);
    let diff = changed(&start, &first);
    assert!(diff.len() > 50, "the stroke painted {} voxels", diff.len());
    assert!(
        diff.iter().all(|v| v[2] == k),
        "an axial stroke stays in its slice"
    );
    assert!(diff.iter().all(|&v| first.get(v) == Some(liver)));
    // Selecting the structure jumps to what was just painted, not to stale stats.
    h.state_mut().cursor[2] = 0;
    h.state_mut().select_structure(liver);
    assert_eq!(h.state().cursor[2], k, "jump to the painted slice");
    let painted: Vec<_> = diff.iter().map(|v| [v[0], v[1]]).collect();
    let cursor = h.state().cursor;
    assert!(
        painted.contains(&[cursor[0], cursor[1]]),
        "the crosshair lands inside the stroke"
    );
    let history = h
        .state()
        .annotator
        .session
        .as_ref()
        .expect("session")
        .history()
        .clone();
    assert_eq!(history.len(), (1, 0), "one undo step per stroke");
    assert_eq!(
        history.undo_description(),
        Some(format!("Brush on liver, axial {}", k + 1).as_str())
    );

    // A second stroke with Ctrl erases part of the first.
    drag(
        &mut h,
        &[
            CENTRE + egui::vec2(40.0, 10.0),
            CENTRE + egui::vec2(40.0, 60.0),
        ],
        Modifiers::COMMAND,
    );
    let second = edited(&h);
    let erased = changed(&first, &second);
    assert!(!erased.is_empty() && erased.iter().all(|&v| second.get(v) == Some(0)));

    key(&mut h, egui::Key::Z, Modifiers::COMMAND);
    assert_eq!(edited(&h), first, "Ctrl+Z undoes the eraser stroke exactly");
    key(&mut h, egui::Key::Z, Modifiers::COMMAND);
    assert_eq!(edited(&h), start, "and then the brush stroke");
    key(&mut h, egui::Key::Z, Modifiers::COMMAND | Modifiers::SHIFT);
    assert_eq!(edited(&h), first, "Ctrl+Shift+Z redoes");
    key(&mut h, egui::Key::Z, Modifiers::COMMAND | Modifiers::SHIFT);
    assert_eq!(edited(&h), second);
    let layer = h.state().edit_layer().expect("layer");
    assert_eq!(
        layer.stats.counts,
        ctseg_core::labels::label_counts(&layer.display)
    );

    // [ and ] change the brush size.
    let r = h.state().annotator.radius;
    key(&mut h, egui::Key::CloseBracket, Modifiers::NONE);
    key(&mut h, egui::Key::CloseBracket, Modifiers::NONE);
    assert_eq!(h.state().annotator.radius, r + 2.0);
    key(&mut h, egui::Key::OpenBracket, Modifiers::NONE);
    assert_eq!(h.state().annotator.radius, r + 1.0);
}

#[test]
fn strokes_work_in_all_three_views() {
    let rec = tempfile::tempdir().expect("tempdir");
    let mut h = editing(rec.path(), Layout::ThreeViews);
    let cursor = h.state().cursor;
    // Main view on the left, coronal top right, sagittal bottom right.
    let views = [
        (Axis::Axial, Pos2::new(540.0, 450.0), 2),
        (Axis::Coronal, Pos2::new(920.0, 260.0), 1),
        (Axis::Sagittal, Pos2::new(920.0, 640.0), 0),
    ];
    for (axis, at, normal) in views {
        let before = edited(&h);
        drag(&mut h, &[at, at + egui::vec2(20.0, 8.0)], Modifiers::NONE);
        let diff = changed(&before, &edited(&h));
        assert!(diff.len() > 10, "{axis:?}: {} voxels", diff.len());
        assert!(
            diff.iter().all(|v| v[normal] == cursor[normal]),
            "{axis:?} strokes stay in the slice through the crosshair"
        );
    }
    assert_eq!(
        h.state()
            .annotator
            .session
            .as_ref()
            .expect("session")
            .history()
            .len(),
        (3, 0)
    );
}

#[test]
fn fill_polygon_lasso_threshold_and_interpolation() {
    let rec = tempfile::tempdir().expect("tempdir");
    let mut h = editing(rec.path(), Layout::Single);
    let k = h.state().cursor[2];

    // Polygon: three clicks and Enter.
    h.state_mut().annotator.tool = Tool::Polygon;
    let before = edited(&h);
    for d in [(-60.0, -40.0), (60.0, -40.0), (0.0, 60.0)] {
        click(&mut h, CENTRE + egui::vec2(d.0, d.1));
    }
    key(&mut h, egui::Key::Enter, Modifiers::NONE);
    let poly = changed(&before, &edited(&h));
    assert!(poly.len() > 100, "polygon filled {}", poly.len());

    // Flood fill of the background around the triangle, with Ctrl erasing it again.
    h.state_mut().annotator.tool = Tool::Fill;
    let before = edited(&h);
    click(&mut h, CENTRE); // inside the triangle: already liver, nothing changes
    assert_eq!(edited(&h), before);
    h.state_mut().annotator.protect = false;
    drag(&mut h, &[CENTRE], Modifiers::COMMAND);
    assert!(
        changed(&before, &edited(&h)).len() == poly.len(),
        "Ctrl+fill erases the region"
    );
    key(&mut h, egui::Key::Z, Modifiers::COMMAND);
    assert_eq!(edited(&h), before);

    // Lasso with threshold paint: only voxels in the HU range change.
    h.state_mut().annotator.tool = Tool::Lasso;
    h.state_mut().annotator.threshold = true;
    h.state_mut().annotator.protect = true;
    h.state_mut().annotator.hu_range = (0, 200);
    let spleen = catalog().label_of("spleen").expect("spleen");
    h.state_mut().selected = Some(spleen);
    let before = edited(&h);
    let loop_points: Vec<Pos2> = (0..24)
        .map(|n| {
            let t = n as f32 / 24.0 * std::f32::consts::TAU;
            CENTRE + egui::vec2(150.0 * t.cos(), 150.0 * t.sin())
        })
        .collect();
    drag(&mut h, &loop_points, Modifiers::NONE);
    let lasso = changed(&before, &edited(&h));
    assert!(!lasso.is_empty());
    let ct = h.state().ct().expect("ct").clone();
    for &v in &lasso {
        let hu = ct.display.get(v).expect("voxel");
        assert!(
            (0..=200).contains(&hu),
            "HU {hu} outside the range was painted"
        );
        assert_eq!(before.get(v), Some(0), "liver is protected");
    }

    // Interpolation: spleen on slices k and k+4 → filled on k+1..k+3.
    h.state_mut().annotator.threshold = false;
    h.state_mut().annotator.protect = true;
    h.state_mut().step_slice(Axis::Axial, 4);
    h.state_mut().annotator.tool = Tool::Brush;
    h.state_mut().annotator.radius = 10.0;
    drag(&mut h, &[CENTRE + egui::vec2(0.0, -100.0)], Modifiers::NONE);
    h.state_mut().step_slice(Axis::Axial, -4);
    h.state_mut().annotator.tool = Tool::Brush;
    drag(&mut h, &[CENTRE + egui::vec2(0.0, -100.0)], Modifiers::NONE);
    let before = edited(&h);
    h.get_by_label("Interpolate").click();
    h.run_steps(2);
    let filled = changed(&before, &edited(&h));
    assert!(!filled.is_empty());
    assert!(
        filled.iter().all(|v| (k + 1..k + 4).contains(&v[2])),
        "only the gap is filled"
    );
    for kk in k + 1..k + 4 {
        assert!(filled.iter().any(|v| v[2] == kk), "slice {kk} filled");
    }
}

#[test]
fn undo_memory_stays_bounded_over_many_strokes() {
    let rec = tempfile::tempdir().expect("tempdir");
    let mut h = harness(
        Startup {
            sample: true,
            recovery_dir: Some(rec.path().to_path_buf()),
            ..Startup::default()
        },
        Layout::Single,
    );
    let limit = 256 << 10;
    h.state_mut().annotator.history_limit = limit;
    h.state_mut().start_editing(EditSource::Empty);
    h.state_mut().selected = catalog().label_of("liver");
    h.state_mut().annotator.radius = 20.0;
    h.state_mut().annotator.protect = false;
    let labels = ["liver", "spleen", "stomach"];
    for n in 0..30 {
        h.state_mut().selected = catalog().label_of(labels[n % 3]);
        let y = -120.0 + (n % 10) as f32 * 25.0;
        drag(
            &mut h,
            &[
                CENTRE + egui::vec2(-100.0, y),
                CENTRE + egui::vec2(100.0, y),
            ],
            Modifiers::NONE,
        );
        let history = h
            .state()
            .annotator
            .session
            .as_ref()
            .expect("session")
            .history();
        assert!(
            history.bytes() <= limit,
            "{} > {limit} after {n} strokes",
            history.bytes()
        );
    }
    let history = h
        .state()
        .annotator
        .session
        .as_ref()
        .expect("session")
        .history()
        .clone();
    assert!(history.dropped() > 0, "the oldest steps were dropped");
    eprintln!(
        "30 strokes: {} kept, {} dropped, {} KiB of {} KiB",
        history.len().0,
        history.dropped(),
        history.bytes() >> 10,
        limit >> 10
    );
    // Everything kept can still be undone, stroke by stroke.
    let kept = history.len().0;
    for _ in 0..kept {
        key(&mut h, egui::Key::Z, Modifiers::COMMAND);
    }
    let layer = h.state().edit_layer().expect("layer");
    assert_eq!(
        layer.stats.counts,
        ctseg_core::labels::label_counts(&layer.display)
    );
    assert_eq!(
        h.state()
            .annotator
            .session
            .as_ref()
            .expect("session")
            .history()
            .len(),
        (0, kept)
    );
}

#[test]
fn save_and_reload_give_identical_voxels_and_geometry() {
    let rec = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let mut h = editing(rec.path(), Layout::Single);
    drag(
        &mut h,
        &[CENTRE, CENTRE + egui::vec2(50.0, 50.0)],
        Modifiers::NONE,
    );
    assert!(h.state().annotator.is_dirty());
    let ct = h.state().ct().expect("ct").clone();
    let expected = ct.to_source(&edited(&h)).expect("source order");
    for (path, per_structure) in [
        (out.path().join("edit.nii.gz"), false),
        (out.path().join("edit_masks"), true),
    ] {
        h.state_mut().save_edits(path.clone(), per_structure);
        assert!(h.state_mut().wait_idle(WAIT), "the save finished");
        h.run_steps(2);
        assert!(!h.state().annotator.is_dirty());
        let loaded = load_segmentation(&path).expect("reload");
        assert_eq!(loaded.labels.data(), expected.data(), "{}", path.display());
        let (a, b) = (loaded.labels.geometry(), &ct.source);
        assert_eq!(a.shape, b.shape);
        for (x, y) in a
            .world_from_voxel
            .iter()
            .flatten()
            .zip(b.world_from_voxel.iter().flatten())
        {
            assert!(
                (x - y).abs() < 1e-4,
                "{:?} vs {:?}",
                a.world_from_voxel,
                b.world_from_voxel
            );
        }
    }
    // Saved: nothing left to recover, and nothing to ask at quit.
    assert!(ctseg_core::annotate::recovery::list_recoveries(rec.path()).is_empty());
}

#[test]
fn the_recovery_file_restores_edits_in_a_new_app() {
    let rec = tempfile::tempdir().expect("tempdir");
    let painted = {
        let mut h = editing(rec.path(), Layout::Single);
        drag(
            &mut h,
            &[CENTRE, CENTRE + egui::vec2(60.0, 20.0)],
            Modifiers::NONE,
        );
        drag(&mut h, &[CENTRE + egui::vec2(0.0, 80.0)], Modifiers::NONE);
        h.state_mut().autosave_now();
        assert!(h.state_mut().wait_autosave(WAIT), "autosave finished");
        assert!(h.state().annotator.is_dirty(), "autosave is not a save");
        edited(&h)
        // The app is dropped here with its edits unsaved, as in a crash.
    };
    let mut h = bare_harness(
        Startup {
            recovery_dir: Some(rec.path().to_path_buf()),
            ..Startup::default()
        },
        Layout::Single,
    );
    h.run_steps(2);
    assert_eq!(h.state().annotator.offered.len(), 1, "the restore offer");
    h.get_by_label("Unsaved edits found");
    h.get_by_label("Restore").click();
    wait_for(&mut h, "the restore", |a| {
        a.annotator.is_editing() && a.busy().is_none()
    });
    assert_eq!(edited(&h), painted, "the recovered layer has every edit");
    assert!(
        h.state().annotator.is_dirty(),
        "recovered edits still need saving"
    );
}

/// Opening another CT with unsaved edits keeps them in a recovery file, written in
/// the background, and says where.
#[test]
fn opening_another_ct_keeps_unsaved_edits_for_recovery() {
    let rec = tempfile::tempdir().expect("tempdir");
    let mut h = editing(rec.path(), Layout::Single);
    drag(
        &mut h,
        &[CENTRE, CENTRE + egui::vec2(50.0, 30.0)],
        Modifiers::NONE,
    );
    // An autosave of the first stroke is still running when the second stroke and
    // the new CT come: the recovery file must end up with both strokes.
    h.state_mut().autosave_now();
    drag(&mut h, &[CENTRE + egui::vec2(0.0, 90.0)], Modifiers::NONE);
    let painted = edited(&h);
    assert!(painted.data().iter().any(|&l| l != 0));
    h.state_mut().open_sample();
    wait_for(&mut h, "the new CT", |a| {
        a.busy().is_none() && !a.annotator.is_editing()
    });
    h.state_mut().finish_writers();
    let kept = ctseg_core::annotate::recovery::list_recoveries(rec.path());
    assert_eq!(kept.len(), 1, "one recovery file");
    let labels = ctseg_core::annotate::recovery::read_recovery(&kept[0]).expect("readable");
    assert_eq!(labels.data(), painted.data(), "every edit kept");
    let said = h
        .state()
        .messages()
        .iter()
        .any(|m| m.text.contains("Unsaved edits of") && m.text.contains("restore them"));
    assert!(said, "{:?}", h.state().messages());
}

/// Editing the GT of s0001 against its prediction: each stroke, undo and redo
/// re-counts only the changed voxels, and the comparison stays exactly what a
/// whole-volume comparison gives, with no worker job.
#[test]
fn edits_update_the_comparison_in_place() {
    let Some((ct, gt, pred)) = common::s0001_ct_gt_pred() else {
        return;
    };
    let rec = tempfile::tempdir().expect("tempdir");
    let mut h = harness(
        Startup {
            ct: Some(ct),
            gt: Some(gt),
            pred: Some(pred),
            recovery_dir: Some(rec.path().to_path_buf()),
            edit: Some(EditSource::GroundTruth),
            ..Startup::default()
        },
        Layout::Single,
    );
    wait_for(&mut h, "editing and the first comparison", |a| {
        a.annotator.is_editing() && a.busy().is_none() && a.comparison().is_some()
    });
    let liver = catalog().label_of("liver").expect("liver");
    h.state_mut().selected = Some(liver);
    h.run_steps(2);
    let requests = h.state().compare_requests();
    let check = |h: &Harness<'static, ViewerApp>, what: &str| {
        let app = h.state();
        let fresh = ctseg_core::study::Comparison::compute(
            &app.edit_layer().expect("edited").display,
            &app.layer(ctseg_core::study::LayerKind::Prediction)
                .expect("prediction")
                .display,
        )
        .expect("same grid");
        let held = app.comparison().expect("a comparison");
        assert_eq!(held.confusion, fresh.confusion, "{what}");
        assert_eq!(held.disagreement, fresh.disagreement, "{what}");
        assert_eq!(app.compare_requests(), requests, "{what}: no worker job");
    };
    let dice_before = h.state().comparison().and_then(|c| c.dice(liver));
    drag(
        &mut h,
        &[CENTRE, CENTRE + egui::vec2(60.0, 40.0)],
        Modifiers::NONE,
    );
    check(&h, "after a stroke");
    assert_ne!(
        h.state().comparison().and_then(|c| c.dice(liver)),
        dice_before,
        "the stroke moved the liver Dice"
    );
    drag(&mut h, &[CENTRE + egui::vec2(-30.0, 0.0)], Modifiers::CTRL);
    check(&h, "after an erase stroke");
    key(&mut h, egui::Key::Z, Modifiers::COMMAND);
    check(&h, "after undo");
    key(&mut h, egui::Key::Z, Modifiers::COMMAND);
    check(&h, "after a second undo");
    assert_eq!(
        h.state().comparison().and_then(|c| c.dice(liver)),
        dice_before
    );
    key(&mut h, egui::Key::Z, Modifiers::COMMAND | Modifiers::SHIFT);
    check(&h, "after redo");
    assert_eq!(
        h.state()
            .annotator
            .session
            .as_ref()
            .expect("session")
            .history()
            .len(),
        (1, 1)
    );
}

fn tiny_model(dir: &Path) -> PathBuf {
    let data = dir.join("phantoms");
    ctseg_core::phantom::write_dataset(
        &data,
        &ctseg_core::phantom::PhantomConfig {
            subjects: 2,
            seed: 4,
            shape: [48, 48, 12],
            ..Default::default()
        },
    )
    .expect("phantoms");
    let mut c = ctseg_ml::train::TrainConfig::default();
    ctseg_viewer::training::Preset::Tiny.apply(&mut c);
    c.data.root = data;
    c.data.cache_dir = dir.join("cache");
    c.run.epochs = 2;
    c.model.input_size = 32;
    let run = dir.join("base-run");
    ctseg_ml::train::train(
        &c,
        &run,
        false,
        &mut ctseg_ml::train::EventBus::new(),
        &ctseg_ml::train::TrainControl::new(),
    )
    .expect("base model");
    run
}

#[test]
fn correct_add_to_training_set_fine_tune_and_compare() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let model = tiny_model(tmp.path());
    let mut h = harness(
        Startup {
            sample: true,
            recovery_dir: Some(tmp.path().join("recovery")),
            model: Some(model.clone()),
            ..Startup::default()
        },
        Layout::Single,
    );
    {
        let app = h.state_mut();
        app.settings.backend = ctseg_ml::backend::BackendKind::Cpu;
        ctseg_viewer::training::Preset::Tiny.apply(&mut app.training.config);
        app.training.config.data.cache_dir = tmp.path().join("cache2");
        app.training.config.run.steps_per_epoch = 3;
        app.annotator.fine_tune_epochs = 1;
        app.annotator.fine_tune_runs = tmp.path().join("runs");
        app.annotator.dataset_text = tmp.path().join("corrections").display().to_string();
        app.predict();
    }
    wait_for(&mut h, "the prediction", |a| {
        a.layer(ctseg_core::study::LayerKind::Prediction).is_some() && a.busy().is_none()
    });
    h.get_by_label("From GT").click();
    h.run_steps(2);
    assert!(h.state().annotator.is_editing());
    h.state_mut().selected = catalog().label_of("liver");
    drag(
        &mut h,
        &[CENTRE, CENTRE + egui::vec2(30.0, 30.0)],
        Modifiers::NONE,
    );

    h.get_by_label("Add to training set").click();
    wait_for(&mut h, "the case to be added", |a| {
        a.annotator.dataset_ready.is_some()
    });
    let subject = tmp.path().join("corrections").join("s0001");
    assert!(subject.join("ct.nii.gz").is_file());
    assert!(subject.join("segmentations").join("liver.nii.gz").is_file());
    let meta =
        std::fs::read_to_string(tmp.path().join("corrections").join("meta.csv")).expect("meta");
    assert!(meta.contains("s0001;train"), "{meta}");
    // The added case reads back as the edited layer.
    let index = ctseg_core::dataset::DatasetIndex::open(&tmp.path().join("corrections"), 0.2, 0)
        .expect("index");
    let case = index
        .load(index.split(ctseg_core::dataset::Split::Train)[0])
        .expect("case");
    let ct = h.state().ct().expect("ct").clone();
    assert_eq!(
        case.segmentation.labels.data(),
        ct.to_source(&edited(&h)).expect("source").data()
    );

    h.get_by_label("Fine-tune").click();
    h.run_steps(2);
    assert!(
        h.state().training.is_training(),
        "the run shows in the Training panel"
    );
    wait_for(&mut h, "fine-tune, re-predict and compare", |a| {
        matches!(
            a.annotator.fine_tune.as_ref().map(|f| &f.stage),
            Some(FineTuneStage::Done(_) | FineTuneStage::Failed(_))
        )
    });
    let ft = h.state().annotator.fine_tune.clone().expect("fine-tune");
    let FineTuneStage::Done(rows) = &ft.stage else {
        panic!("fine-tune failed: {:?}", ft.stage);
    };
    let liver = catalog().label_of("liver").expect("liver");
    let row = rows.iter().find(|r| r.0 == liver).expect("a liver row");
    assert!(row.1.is_some() && row.2.is_some(), "{row:?}");
    let used = h.state().settings.model.clone().expect("model");
    assert!(
        used.starts_with(&ft.run_dir),
        "the new checkpoint predicted: {}",
        used.display()
    );
    let saved = ctseg_ml::train::load_run_config(&ft.run_dir).expect("run config");
    assert_eq!(saved.run.init_from.as_deref(), Some(model.as_path()));
    h.get_by_label("Dice against the corrected layer:");
}

/// The window's close button, as the platform reports it.
fn request_close(h: &mut Harness<'static, ViewerApp>) {
    h.input_mut()
        .viewports
        .entry(egui::ViewportId::ROOT)
        .or_default()
        .events
        .push(egui::ViewportEvent::Close);
    h.run_steps(2);
}

#[test]
fn closing_with_unsaved_edits_asks_first() {
    let rec = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let mut h = editing(rec.path(), Layout::Single);
    // Clean: closing asks nothing.
    request_close(&mut h);
    assert_eq!(h.state().annotator.question, None);

    drag(
        &mut h,
        &[CENTRE, CENTRE + egui::vec2(30.0, 0.0)],
        Modifiers::NONE,
    );
    request_close(&mut h);
    assert_eq!(h.state().annotator.question, Some(Question::Quit));
    h.get_by_label("Quit and lose the unsaved edits?");
    h.get_by_label("Cancel").click();
    h.run_steps(2);
    assert_eq!(h.state().annotator.question, None);
    assert!(h.state().annotator.is_dirty(), "cancel keeps the edits");

    // Stop editing asks too; after a save, neither asks.
    h.get_by_label("Stop editing").click();
    h.run_steps(2);
    assert_eq!(h.state().annotator.question, Some(Question::StopEditing));
    h.get_by_label("Cancel").click();
    h.run_steps(2);
    assert!(h.state().annotator.is_editing());
    h.state_mut().save_edits(out.path().join("s.nii.gz"), false);
    assert!(h.state_mut().wait_idle(WAIT));
    h.run_steps(2);
    request_close(&mut h);
    assert_eq!(h.state().annotator.question, None);

    // Unsaved again, then "Discard edits" at quit drops the recovery file.
    drag(&mut h, &[CENTRE + egui::vec2(0.0, 40.0)], Modifiers::NONE);
    h.state_mut().autosave_now();
    assert!(h.state_mut().wait_autosave(WAIT));
    assert_eq!(
        ctseg_core::annotate::recovery::list_recoveries(rec.path()).len(),
        1
    );
    request_close(&mut h);
    h.get_by_label("Discard edits").click();
    h.run_steps(2);
    assert!(ctseg_core::annotate::recovery::list_recoveries(rec.path()).is_empty());
}

#[test]
fn a_stroke_stays_in_its_view_when_two_views_share_an_axis() {
    // GT | Pred side by side: both views are axial; the edited layer is on the left.
    let rec = tempfile::tempdir().expect("tempdir");
    let mut h = editing(rec.path(), Layout::SideBySide);
    let before = edited(&h);
    let left = Pos2::new(540.0, 450.0);
    drag(
        &mut h,
        &[
            left,
            left + egui::vec2(20.0, 0.0),
            left + egui::vec2(40.0, 0.0),
        ],
        Modifiers::NONE,
    );
    let diff = changed(&before, &edited(&h));
    assert!(diff.len() > 20, "{} voxels", diff.len());
    let cols: Vec<usize> = diff.iter().map(|v| v[0]).collect();
    let spread = cols.iter().max().unwrap_or(&0) - cols.iter().min().unwrap_or(&0);
    // 40 points ≈ 13 voxels of stroke plus the brush diameter; a stroke continued in
    // the other view's coordinates would cross the whole image.
    assert!(spread < 40, "the stroke spans {spread} columns");
}
