//! The desktop viewer, driven through egui_kittest: the real app loads the shared
//! real CT with ground truth and prediction through its own API, widgets are clicked
//! by their labels, and the main layouts are compared with snapshots (rendered with
//! wgpu; lavapipe without a GPU). Also: the WGSL slice shader agrees with the CPU
//! reference compositor on real slices.

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use ctseg_core::io::load_ct;
use ctseg_core::io::segmentation::load_multilabel;
use ctseg_core::metrics::confusion_counts;
use ctseg_core::render::{CompositeParams, LabelTable, LayerParams, OverlayMode, composite};
use ctseg_core::slicing::{Axis, DISPLAY_ORIENTATION, SliceGrid};
use ctseg_core::structures::catalog;
use ctseg_core::study::LayerKind;
use ctseg_core::window::PRESETS;
use ctseg_core::window::Window;
use ctseg_viewer::app::Level;
use ctseg_viewer::gpu::{render_offscreen, shader_inputs};
use ctseg_viewer::{CompareMode, Layout, Settings, Startup, ViewerApp};
use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

const WAIT: Duration = Duration::from_secs(120);

struct Data {
    ct: PathBuf,
    gt: PathBuf,
    pred: PathBuf,
}

impl Data {
    /// Open the CT with its GT and prediction.
    fn startup(&self) -> Startup {
        Startup {
            ct: Some(self.ct.clone()),
            gt: Some(self.gt.clone()),
            pred: Some(self.pred.clone()),
            ..Startup::default()
        }
    }
}

fn data() -> Option<Data> {
    let (ct, gt, pred) = common::s0001_ct_gt_pred()?;
    Some(Data { ct, gt, pred })
}

/// The real app in a harness, with `startup` loaded and every job finished.
fn harness(startup: Startup) -> Harness<'static, ViewerApp> {
    let mut h = Harness::builder()
        .with_size(egui::vec2(1400.0, 860.0))
        .wgpu()
        .build_eframe(|cc| ViewerApp::with_settings(cc, Settings::default(), startup));
    settle(&mut h);
    h
}

/// Finish the worker's jobs (and the jobs they trigger) and draw.
fn settle(h: &mut Harness<'static, ViewerApp>) {
    for _ in 0..4 {
        assert!(h.state_mut().wait_idle(WAIT), "worker did not finish");
        h.run_steps(2);
    }
}

fn liver() -> u8 {
    catalog().label_of("liver").unwrap()
}

#[test]
fn real_ct_with_gt_and_prediction_loads_and_compares() {
    let Some(d) = data() else { return };
    let h = harness(d.startup());
    let app = h.state();
    let errors: Vec<_> = app
        .messages()
        .iter()
        .filter(|m| m.level == Level::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let ct = app.ct().expect("CT open");
    assert_eq!(ct.display.shape(), [122, 101, 30]);
    assert_eq!(ct.display.geometry().orientation(), "LPS");
    assert_eq!(ct.source.orientation(), "RAS");

    // Per-structure Dice in the app equals Dice computed from the files directly
    // (the display reorientation must not change any count).
    let gt = load_multilabel(&d.gt).unwrap().labels;
    let pred = load_multilabel(&d.pred).unwrap().labels;
    let direct = confusion_counts(gt.data(), pred.data());
    let c = app.comparison().expect("comparison computed");
    for s in catalog().all() {
        let l = s.label as usize;
        assert_eq!(c.confusion[l], direct[l], "{}", s.name);
    }
    let dice = c.dice(liver()).unwrap();
    assert!(dice > 0.9, "liver Dice {dice}");
    // Voxel counts shown in the table are the file's.
    let gt_layer = app.layer(LayerKind::GroundTruth).unwrap();
    assert_eq!(
        gt_layer.stats.counts[liver() as usize],
        gt.data().iter().filter(|&&v| v == liver()).count() as u64
    );
}

#[test]
fn widgets_drive_the_viewer_state() {
    let Some(d) = data() else { return };
    let mut h = harness(d.startup());

    h.get_by_label("Three views").click();
    h.run();
    assert_eq!(h.state().settings.layout, Layout::ThreeViews);
    h.get_by_label("Difference").click();
    h.run();
    assert_eq!(h.state().settings.compare, CompareMode::Difference);
    h.get_by_label("Coronal").click();
    h.run();
    assert_eq!(h.state().settings.main_axis, Axis::Coronal);

    // Window preset from the combo box.
    h.get_by_label("Window").click();
    h.run();
    h.get_by_label("Bone").click();
    h.run();
    assert_eq!(h.state().settings.window, Window::preset("Bone").unwrap());

    // Visibility of all structures.
    h.get_by_label("Hide all").click();
    h.run();
    assert!(
        catalog()
            .all()
            .iter()
            .all(|s| !h.state().table.visible[s.label as usize])
    );
    h.get_by_label("Show all").click();
    h.run();
    assert!(
        catalog()
            .all()
            .iter()
            .all(|s| h.state().table.visible[s.label as usize])
    );

    // A structure row selects it and jumps to its largest slice.
    h.get_by_label("liver").click();
    h.run();
    let focus = h.state().layer(LayerKind::GroundTruth).unwrap().stats.focus[liver() as usize];
    assert_eq!(h.state().selected, Some(liver()));
    assert_eq!(Some(h.state().cursor), focus);

    // Keys move the active (axial) view; the slice stays inside the volume.
    let k = h.state().slice_index(Axis::Axial);
    h.key_press(egui::Key::ArrowUp);
    h.run();
    assert_eq!(h.state().slice_index(Axis::Axial), (k + 1).min(29));
    for _ in 0..5 {
        h.key_press(egui::Key::PageUp);
        h.run();
    }
    assert_eq!(h.state().slice_index(Axis::Axial), 29);

    // "Next disagreement" goes first to the slice where GT and prediction differ most
    // about the selected structure, then to the next-worst one.
    let c = h.state().comparison().unwrap().clone();
    let counts: Vec<u32> = c.disagreement.iter().map(|d| d[liver() as usize]).collect();
    let max = *counts.iter().max().unwrap();
    assert!(max > 0);
    // Start from the slice with the least disagreement (a perfect one if any).
    let calm = (0..counts.len()).min_by_key(|&k| counts[k]).unwrap();
    h.state_mut().cursor[2] = calm;
    h.key_press(egui::Key::N);
    h.run();
    let first = h.state().slice_index(Axis::Axial);
    if counts[calm] == 0 {
        assert_eq!(counts[first], max);
    } else {
        assert_eq!(Some(first), c.next_disagreement(liver(), calm));
    }
    h.key_press(egui::Key::N);
    h.run();
    let second = h.state().slice_index(Axis::Axial);
    assert_ne!(second, first);
    assert!(counts[second] > 0 && counts[second] <= max);
}

#[test]
fn errors_are_messages_not_crashes() {
    let Some(d) = data() else { return };
    let dicom_seg = common::shared("totalseg/dicom_ct_seg_multilabel.nii.gz");
    let mut h = harness(Startup::default());
    // Start screen first.
    h.get_by_label("Sample data");
    h.state_mut()
        .open_ct(PathBuf::from("/nonexistent/ct.nii.gz"));
    settle(&mut h);
    let last = h
        .state()
        .messages()
        .last()
        .expect("an error message")
        .clone();
    assert_eq!(last.level, Level::Error);
    assert!(
        last.text.contains("/nonexistent/ct.nii.gz"),
        "{}",
        last.text
    );
    assert!(h.state().ct().is_none());

    // A segmentation on another grid is refused, naming both files.
    if let Some(seg) = dicom_seg {
        h.state_mut().open_ct(d.ct.clone());
        settle(&mut h);
        h.state_mut()
            .open_layer(seg.clone(), LayerKind::GroundTruth);
        settle(&mut h);
        let last = h.state().messages().last().unwrap().clone();
        assert_eq!(last.level, Level::Error);
        assert!(
            last.text.contains("dicom_ct_seg_multilabel"),
            "{}",
            last.text
        );
        assert!(h.state().layer(LayerKind::GroundTruth).is_none());
        assert!(h.state().ct().is_some(), "the open CT stays");
    }
}

#[test]
fn sample_data_opens_the_bundled_real_ct_with_gt_and_prediction() {
    let mut h = harness(Startup::default());
    h.get_by_label("Sample data").click();
    h.run_steps(1);
    settle(&mut h);
    let app = h.state();
    let ct = app.ct().expect("sample open");
    assert_eq!(ct.name, "Sample CT s0001");
    let [a, b, c] = ct.display.shape();
    assert_eq!(a * b * c, 122 * 101 * 30, "s0001's voxels");
    let gt = app
        .layer(LayerKind::GroundTruth)
        .expect("full-model labels");
    let pred = app.layer(LayerKind::Prediction).expect("fast-model labels");
    assert!(gt.stats.counts[liver() as usize] > 1000);
    assert!(pred.stats.counts[liver() as usize] > 1000);
    assert_ne!(
        gt.display.data(),
        pred.display.data(),
        "two different models"
    );
    assert!(
        app.predict_summary()
            .is_some_and(|s| s.contains("Apache-2.0")),
        "the source is named: {:?}",
        app.predict_summary()
    );
}

#[test]
fn figure_export_writes_four_panels() {
    let Some(d) = data() else { return };
    let mut h = harness(d.startup());
    h.state_mut().select_structure(liver());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("figure.png");
    h.state_mut().export_figure(&path);
    // The PNG is written by a background task.
    assert!(h.state_mut().wait_idle(WAIT), "the export finished");
    let img = image::open(&path).expect("a PNG").to_rgba8();
    // Axial slices of s0001 are 122×101 voxels of 3×3 mm: four panels and three gaps.
    assert_eq!((img.width(), img.height()), (4 * 122 + 3 * 4, 101));
    // Panel 1 (plain CT) is grey; panel 2 (GT fill) has liver colour somewhere.
    let liver_rgb = catalog().by_label(liver()).unwrap().color;
    let coloured = |x0: u32| {
        (0..101)
            .flat_map(|y| (x0..x0 + 122).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                let p = img.get_pixel(x, y).0;
                p[0] != p[1] || p[1] != p[2]
            })
            .count()
    };
    assert_eq!(coloured(0), 0);
    assert!(
        coloured(126) > 100,
        "GT panel shows the liver ({liver_rgb:?})"
    );
    // A failing export leaves a message and no file.
    h.state_mut()
        .export_figure(&dir.path().join("missing-dir/figure.png"));
    assert!(h.state_mut().wait_idle(WAIT), "the export finished");
    assert_eq!(h.state().messages().last().unwrap().level, Level::Error);
}

#[test]
fn layouts_match_snapshots() {
    let Some(d) = data() else { return };
    let mut h = harness(d.startup());
    h.state_mut().select_structure(liver());
    h.run();
    let mut results = Vec::new();
    for (name, layout, compare) in [
        ("viewer_single", Layout::Single, CompareMode::Overlay),
        (
            "viewer_three_views",
            Layout::ThreeViews,
            CompareMode::Overlay,
        ),
        (
            "viewer_side_by_side",
            Layout::SideBySide,
            CompareMode::Overlay,
        ),
        ("viewer_difference", Layout::Single, CompareMode::Difference),
    ] {
        h.state_mut().settings.layout = layout;
        h.state_mut().settings.compare = compare;
        h.run_steps(3);
        results.push(h.try_snapshot(name));
    }
    for r in results {
        r.unwrap();
    }
}

/// A headless wgpu device, or `None` (skip) when there is no adapter and
/// `CTSEG_REQUIRE_WGPU` is not set.
fn render_state() -> Option<eframe::egui_wgpu::RenderState> {
    let made = std::panic::catch_unwind(|| {
        egui_kittest::wgpu::create_render_state(
            egui_kittest::wgpu::default_wgpu_setup(),
            Default::default(),
        )
    });
    match made {
        Ok(rs) => Some(rs),
        Err(_) if std::env::var_os("CTSEG_REQUIRE_WGPU").is_some() => {
            panic!("no wgpu adapter, but CTSEG_REQUIRE_WGPU is set")
        }
        Err(_) => {
            eprintln!("skipping: no wgpu adapter (install mesa-vulkan-drivers for lavapipe)");
            None
        }
    }
}

#[test]
fn shader_matches_cpu_compositor_on_real_slices() {
    let Some((ct, gt, pred)) = common::s0001_ct_gt_pred() else {
        return;
    };
    let Some(rs) = render_state() else { return };
    let ct = load_ct(&ct)
        .unwrap()
        .volume
        .reoriented(DISPLAY_ORIENTATION)
        .unwrap();
    let gt = load_multilabel(&gt)
        .unwrap()
        .labels
        .reoriented(DISPLAY_ORIENTATION)
        .unwrap();
    let pred = load_multilabel(&pred)
        .unwrap()
        .labels
        .reoriented(DISPLAY_ORIENTATION)
        .unwrap();
    let g = ct.geometry();
    let mut table = LabelTable::from_catalog(catalog());
    // Some structures hidden, to check visibility too.
    for name in ["spleen", "vertebrae_L1"] {
        table.visible[catalog().label_of(name).unwrap() as usize] = false;
    }
    let mut checked = 0;
    for axis in Axis::ALL {
        let grid = SliceGrid::new(axis, g.shape, g.spacing());
        let index = grid.count() / 2;
        let (w, h) = grid.size();
        let (mut hu, mut gs, mut ps) = (Vec::new(), Vec::new(), Vec::new());
        grid.extract(&ct, index, &mut hu);
        grid.extract(&gt, index, &mut gs);
        grid.extract(&pred, index, &mut ps);
        for (preset, mode) in PRESETS.iter().zip(OverlayMode::ALL.iter().cycle()) {
            let window: Window = preset.window;
            let a = LayerParams {
                opacity: 0.37,
                mode: *mode,
            };
            let b = LayerParams {
                opacity: 0.61,
                mode: OverlayMode::FillAndOutline,
            };
            let layers = [(gs.as_slice(), a), (ps.as_slice(), b)];
            let cases = [
                ("plain", CompositeParams::Layers(&[])),
                ("layers", CompositeParams::Layers(&layers)),
                (
                    "difference",
                    CompositeParams::Difference {
                        gt: &gs,
                        pred: &ps,
                        opacity: 0.55,
                    },
                ),
            ];
            for (case, params) in cases {
                let mut cpu = Vec::new();
                composite(&hu, w, h, window, &table, params, &mut cpu);
                let (upload, shader) = shader_inputs(&hu, w, h, window, &table, params);
                let gpu = render_offscreen(&rs.device, &rs.queue, &upload, &shader).unwrap();
                assert_eq!(gpu.len(), cpu.len());
                let worst = cpu
                    .iter()
                    .zip(&gpu)
                    .map(|(&c, &g)| (c as i32 - g as i32).abs())
                    .max()
                    .unwrap();
                // Rounding of exact halves may differ by one grey level.
                assert!(
                    worst <= 1,
                    "{axis:?} {} {case}: max difference {worst}",
                    preset.name
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 3 * PRESETS.len() * 3);
}

/// Scrolling a 512×512 CT with GT and prediction overlays: every step re-composites
/// exactly the views whose slice changed, and the UI-thread time per frame (our code
/// plus egui layout, measured inside the app) is printed for the benchmark notes.
#[test]
fn scrolling_a_512_ct_recomposites_only_changed_views() {
    let (Some(ct), Some(seg)) = (
        common::shared("totalseg/dicom_ct"),
        common::shared("totalseg/dicom_ct_seg_multilabel.nii.gz"),
    ) else {
        return;
    };
    let mut h = harness(Startup {
        ct: Some(ct),
        gt: Some(seg.clone()),
        pred: Some(seg),
        ..Startup::default()
    });
    for (layout, views, cpu) in [
        (Layout::Single, 1, false),
        (Layout::ThreeViews, 3, false),
        (Layout::ThreeViews, 3, true),
    ] {
        if cpu {
            h.state_mut().force_cpu_compositing();
        }
        h.state_mut().settings.layout = layout;
        h.run_steps(2);
        let n = h.state().slice_count(Axis::Axial);
        assert_eq!(n, 20);
        h.state_mut().cursor[2] = 0;
        h.run_steps(2);
        h.state_mut().reset_frame_times();
        let before = h.state().slice_rebuilds();
        for _ in 1..n {
            h.key_press(egui::Key::ArrowUp);
            h.run_steps(1);
        }
        // Only the axial view changes slice; coronal and sagittal keep their images.
        assert_eq!(h.state().slice_index(Axis::Axial), n - 1);
        assert_eq!(
            h.state().slice_rebuilds() - before,
            (n - 1) as u64,
            "{views} views"
        );
        let mut t = h.state().frame_times().samples();
        t.sort_by(f64::total_cmp);
        let (median, p95, max) = (t[t.len() / 2], t[t.len() * 95 / 100], t[t.len() - 1]);
        eprintln!(
            "UI-thread ms/frame, 512×512 with GT+Pred overlays, {} ({} frames, {}): median {median:.2}, p95 {p95:.2}, max {max:.2}",
            layout.name(),
            t.len(),
            if h.state().gpu_compositing() {
                "GPU compositing"
            } else {
                "CPU compositing"
            }
        );
    }
}

/// The model panel's Predict runs in the worker (CPU backend, a small random model
/// saved as a checkpoint), the result becomes the prediction layer on the CT's grid,
/// and saving it writes exactly those labels in the CT's own voxel order.
#[test]
fn predict_from_the_model_panel_and_save() {
    let Some(d) = data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let config = ctseg_ml::model::UNetConfig {
        base_channels: 2,
        depth: 2,
        input_size: 32,
        ..Default::default()
    };
    let model = config.init(&burn::prelude::Device::flex());
    let ckpt = tmp.path().join("ckpt");
    ctseg_ml::model::save_weights(&ckpt, &model, &config).unwrap();

    let mut h = harness(Startup {
        ct: Some(d.ct.clone()),
        gt: Some(d.gt.clone()),
        model: Some(ckpt.clone()),
        ..Startup::default()
    });
    h.state_mut().settings.backend = ctseg_ml::backend::BackendKind::Cpu;
    h.run();
    h.get_by_label("Predict").click();
    h.run_steps(1);
    settle(&mut h);
    let errors: Vec<_> = h
        .state()
        .messages()
        .iter()
        .filter(|m| m.level == Level::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let pred = h
        .state()
        .layer(LayerKind::Prediction)
        .expect("prediction layer")
        .clone();
    let ct = h.state().ct().unwrap().clone();
    assert_eq!(pred.display.shape(), ct.display.shape());
    assert!(h.state().predict_summary().unwrap().contains("slices/s"));
    assert!(
        h.state().comparison().is_some(),
        "GT vs new prediction compared"
    );

    // Predict again in half precision, chosen in the Precision combo box: the worker
    // loads the model again, cast to f16, and says so.
    h.get_by_label("Precision").click();
    h.run();
    h.get_by_label("f16").click();
    h.run();
    assert_eq!(
        h.state().settings.precision,
        ctseg_ml::infer::Precision::F16
    );
    h.get_by_label("Predict").click();
    h.run_steps(1);
    settle(&mut h);
    let summary = h.state().predict_summary().unwrap().to_string();
    assert!(summary.contains("in f16"), "{summary}");
    let half = h.state().layer(LayerKind::Prediction).unwrap().clone();
    let differing = half
        .display
        .data()
        .iter()
        .zip(pred.display.data())
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        differing * 100 < half.display.data().len(),
        "{differing} voxels differ between f16 and f32"
    );
    let pred = half;

    let out = tmp.path().join("pred.nii.gz");
    h.state_mut().save_prediction(out.clone(), false);
    settle(&mut h);
    let saved = load_multilabel(&out).unwrap().labels;
    let expected = ct.to_source(&pred.display).unwrap();
    assert_eq!(saved.shape(), load_ct(&d.ct).unwrap().volume.shape());
    assert_eq!(saved.data(), expected.data());
    assert!(saved.geometry().same_grid(&ct.source, 1e-4));
}

/// A DICOM Segmentation opens as a layer over its series (placed by its frame
/// positions) and a layer saves back as one; over a NIfTI CT, saving one is refused
/// with a message and nothing is written.
#[test]
fn dicom_seg_opens_over_its_series_and_saves_back() {
    use ctseg_core::io::dicom::seg::{SegWriteOptions, read_seg, write_seg};
    let Some(series) = common::shared("totalseg/dicom_ct_pacs") else {
        return;
    };
    let Some(labels_path) = common::shared("totalseg/dicom_ct_seg_multilabel.nii.gz") else {
        return;
    };
    let Some(d) = data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ct = load_ct(&series).unwrap();
    let labels = load_multilabel(&labels_path).unwrap().labels;
    let seg = tmp.path().join("totalseg.dcm");
    write_seg(
        &seg,
        &labels,
        ct.dicom.as_ref().unwrap(),
        &SegWriteOptions::prediction("TotalSegmentator"),
    )
    .unwrap();

    let mut h = harness(Startup {
        ct: Some(series.clone()),
        ..Startup::default()
    });
    h.state_mut().open_layer(seg.clone(), LayerKind::Prediction);
    settle(&mut h);
    let errors: Vec<_> = h
        .state()
        .messages()
        .iter()
        .filter(|m| m.level == Level::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let view = h.state().ct().unwrap().clone();
    assert!(view.dicom_seg_refusal().is_none());
    let pred = h.state().layer(LayerKind::Prediction).unwrap().clone();
    assert_eq!(view.to_source(&pred.display).unwrap().data(), labels.data());

    let out = tmp.path().join("saved.dcm");
    h.state_mut().save_prediction(out.clone(), false);
    settle(&mut h);
    let back = read_seg(&out, ct.volume.geometry(), ct.dicom.as_ref()).unwrap();
    assert_eq!(back.labels.data(), labels.data());

    // Over a NIfTI CT: refused, said, nothing written.
    h.state_mut().open_ct(d.ct.clone());
    settle(&mut h);
    h.state_mut()
        .open_layer(d.pred.clone(), LayerKind::Prediction);
    settle(&mut h);
    assert!(h.state().ct().unwrap().dicom_seg_refusal().is_some());
    let refused = tmp.path().join("refused.dcm");
    h.state_mut().save_prediction(refused.clone(), false);
    settle(&mut h);
    let last = h.state().messages().last().unwrap().clone();
    assert_eq!(last.level, Level::Error);
    assert!(
        last.text.contains("not read from a DICOM series"),
        "{}",
        last.text
    );
    assert!(!refused.exists());
}
