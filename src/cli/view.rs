//! `ctseg view`: open the desktop app with files loaded.

use std::path::PathBuf;

use clap::Args;

use ctseg_core::annotate::EditSource;
use ctseg_core::slicing::Axis;
use ctseg_core::structures::catalog;
use ctseg_core::window::{PRESETS, Window};
use ctseg_viewer::{CompareMode, Layout, PacsStartup, Startup, run};

/// Arguments of `ctseg view`.
#[derive(Debug, Args, Default)]
pub struct ViewArgs {
    /// CT to open: NIfTI file, DICOM folder, or TotalSegmentator subject folder (its
    /// `segmentations/` become the ground truth).
    pub ct: Option<PathBuf>,
    /// Ground-truth segmentation (multilabel NIfTI or per-structure folder).
    #[arg(long)]
    pub gt: Option<PathBuf>,
    /// Predicted segmentation (multilabel NIfTI or per-structure folder).
    #[arg(long)]
    pub pred: Option<PathBuf>,
    /// Model for the Predict button: weights file, checkpoint folder or run folder.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Open the bundled sample CT (s0001, built into the program) with its full-model
    /// segmentation as ground truth and its fast-model one as prediction.
    #[arg(long, conflicts_with = "ct")]
    pub sample: bool,
    /// View arrangement: single, three, side-by-side.
    #[arg(long, value_parser = parse_layout)]
    pub layout: Option<Layout>,
    /// Main view: axial, coronal, sagittal.
    #[arg(long, value_parser = parse_axis)]
    pub axis: Option<Axis>,
    /// Show the TP/FP/FN difference view instead of overlays.
    #[arg(long)]
    pub difference: bool,
    /// Window preset, e.g. "Abdomen", "Bone", "Lung".
    #[arg(long, value_parser = parse_window)]
    pub window: Option<Window>,
    /// Structure to select and jump to, e.g. liver.
    #[arg(long, value_parser = parse_structure)]
    pub select: Option<u8>,
    /// Open a training run folder on the dashboard (repeat to compare runs). A run
    /// another process is still writing is followed live.
    #[arg(long = "run", value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Open the Training tab with this dataset scanned in the launch form.
    #[arg(long, value_name = "DATASET")]
    pub train_data: Option<PathBuf>,
    /// Fill the launch form with the tiny CPU preset.
    #[arg(long, requires = "train_data")]
    pub train_tiny: bool,
    /// Run folder for a run launched from the form.
    #[arg(long, requires = "train_data", value_name = "RUN_DIR")]
    pub train_out: Option<PathBuf>,
    /// Start training at once with the form's settings.
    #[arg(long, requires = "train_data")]
    pub train_start: bool,
    /// Start editing once loaded: a layer that is empty, or a copy of the ground
    /// truth or of the prediction (empty, gt, pred).
    #[arg(long, value_parser = parse_edit)]
    pub edit: Option<EditSource>,
    /// Folder of recovery files for unsaved edits (default: beside the cache).
    #[arg(long, value_name = "DIR")]
    pub recovery_dir: Option<PathBuf>,
    /// Seconds between autosaves of unsaved edits to the recovery file.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    pub autosave_seconds: f64,
    /// Open the PACS browser on this DICOMweb server (e.g.
    /// http://localhost:8042/dicom-web) and list its studies; credentials from
    /// CTSEG_DICOMWEB_USER (NAME:PASSWORD) or CTSEG_DICOMWEB_TOKEN.
    #[arg(long, value_name = "URL")]
    pub pacs: Option<String>,
    /// With --pacs: select this study (StudyInstanceUID) so its series are listed.
    #[arg(long, requires = "pacs", value_name = "UID", value_parser = parse_uid)]
    pub pacs_study: Option<String>,
}

fn parse_layout(s: &str) -> Result<Layout, String> {
    match s.to_ascii_lowercase().as_str() {
        "single" => Ok(Layout::Single),
        "three" | "three-views" => Ok(Layout::ThreeViews),
        "side-by-side" | "sbs" => Ok(Layout::SideBySide),
        _ => Err(format!(
            "unknown layout {s:?} (single, three, side-by-side)"
        )),
    }
}

fn parse_axis(s: &str) -> Result<Axis, String> {
    Axis::ALL
        .into_iter()
        .find(|a| a.name().eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("unknown view {s:?} (axial, coronal, sagittal)"))
}

fn parse_window(s: &str) -> Result<Window, String> {
    Window::preset(s).ok_or_else(|| {
        let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
        format!("unknown window preset {s:?} (one of: {})", names.join(", "))
    })
}

fn parse_structure(s: &str) -> Result<u8, String> {
    catalog()
        .label_of(s)
        .ok_or_else(|| format!("unknown structure {s:?} (TotalSegmentator names, e.g. liver)"))
}

/// Open the app.
pub fn run_view(args: &ViewArgs) -> anyhow::Result<()> {
    if (args.gt.is_some() || args.pred.is_some()) && args.ct.is_none() {
        anyhow::bail!("--gt and --pred need a CT to lie on; give the CT first");
    }
    for p in [
        &args.ct,
        &args.gt,
        &args.pred,
        &args.model,
        &args.train_data,
    ]
    .into_iter()
    .flatten()
    .chain(&args.runs)
    {
        if !p.exists() {
            return Err(ctseg_core::io::missing(p).into());
        }
    }
    let pacs = match &args.pacs {
        Some(url) => {
            // Check the URL and the credentials here, with a one-line error.
            let auth = ctseg_dicomweb::Auth::from_env()?;
            ctseg_dicomweb::Server::new(url, auth.clone())?;
            Some(PacsStartup {
                url: url.clone(),
                auth,
                study: args.pacs_study.clone(),
            })
        }
        None => None,
    };
    run(Startup {
        ct: args.ct.clone(),
        gt: args.gt.clone(),
        pred: args.pred.clone(),
        model: args.model.clone(),
        sample: args.sample,
        layout: args.layout,
        axis: args.axis,
        compare: args.difference.then_some(CompareMode::Difference),
        window: args.window,
        select: args.select,
        runs: args.runs.clone(),
        train_data: args.train_data.clone(),
        train_tiny: args.train_tiny,
        train_start: args.train_start,
        train_out: args.train_out.clone(),
        recovery_dir: args.recovery_dir.clone(),
        edit: args.edit,
        autosave_every: Some(std::time::Duration::from_secs_f64(
            args.autosave_seconds.clamp(1.0, 86_400.0),
        )),
        pacs,
    })
}

fn parse_uid(s: &str) -> Result<String, String> {
    if ctseg_dicomweb::is_uid(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a DICOM UID (digits and dots, at most 64 characters)"
        ))
    }
}

fn parse_edit(s: &str) -> Result<EditSource, String> {
    match s.to_ascii_lowercase().as_str() {
        "empty" => Ok(EditSource::Empty),
        "gt" | "ground-truth" => Ok(EditSource::GroundTruth),
        "pred" | "prediction" => Ok(EditSource::Prediction),
        other => Err(format!("{other:?}: expected empty, gt or pred")),
    }
}
