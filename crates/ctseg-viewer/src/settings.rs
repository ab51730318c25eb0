//! Viewer settings kept between runs of the app (eframe storage).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use ctseg_core::render::{LayerParams, OverlayMode};
use ctseg_core::slicing::Axis;
use ctseg_core::window::{MODEL_WINDOW, Window};
use ctseg_ml::backend::BackendKind;

/// Storage key of [`Settings`].
pub const STORAGE_KEY: &str = "ctseg.viewer";

/// How many recent files are remembered.
pub const MAX_RECENT: usize = 10;

/// How the slice views are arranged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// One large view of the main axis.
    Single,
    /// Axial, coronal and sagittal side by side.
    ThreeViews,
    /// The main axis twice: GT on the left, prediction on the right, linked.
    SideBySide,
}

impl Layout {
    /// All layouts, for menus.
    pub const ALL: [Layout; 3] = [Layout::Single, Layout::ThreeViews, Layout::SideBySide];

    /// Name shown in the UI.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Single => "Single view",
            Layout::ThreeViews => "Three views",
            Layout::SideBySide => "GT | Pred side by side",
        }
    }
}

/// What the overlay views draw when both layers exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareMode {
    /// GT and prediction drawn with their own styles.
    Overlay,
    /// True positives, false positives and false negatives.
    Difference,
}

/// Settings persisted between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Most recent first.
    pub recent: Vec<PathBuf>,
    /// Display window.
    pub window: Window,
    /// Ground-truth layer style.
    pub gt_style: LayerParams,
    /// Prediction layer style.
    pub pred_style: LayerParams,
    /// Draw the GT layer.
    pub show_gt: bool,
    /// Draw the prediction layer.
    pub show_pred: bool,
    /// View arrangement.
    pub layout: Layout,
    /// The large view in single and side-by-side layouts.
    pub main_axis: Axis,
    /// Overlay or difference view.
    pub compare: CompareMode,
    /// Model for the Predict button.
    pub model: Option<PathBuf>,
    /// Backend for prediction.
    pub backend: BackendKind,
    /// Float type of the prediction's forward pass.
    pub precision: ctseg_ml::infer::Precision,
    /// Probability threshold.
    pub threshold: f32,
    /// Smooth across slices.
    pub smooth: bool,
    /// Keep the largest component of organs.
    pub largest_component: bool,
    /// Show UI-thread time per frame in the status bar.
    pub show_frame_time: bool,
    /// DICOMweb servers of the PACS browser (no passwords or tokens: see
    /// [`PacsServer`]).
    pub pacs_servers: Vec<PacsServer>,
}

/// How a [`PacsServer`]'s requests authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PacsAuthKind {
    /// No credentials.
    #[default]
    None,
    /// HTTP Basic: the user name is saved, the password is asked for once per session.
    Basic,
    /// A bearer token: typed once per session, or read from `token_file`.
    Bearer,
}

impl PacsAuthKind {
    /// All kinds, for the form.
    pub const ALL: [PacsAuthKind; 3] = [
        PacsAuthKind::None,
        PacsAuthKind::Basic,
        PacsAuthKind::Bearer,
    ];

    /// Name shown in the UI.
    pub fn name(self) -> &'static str {
        match self {
            PacsAuthKind::None => "none",
            PacsAuthKind::Basic => "user and password",
            PacsAuthKind::Bearer => "bearer token",
        }
    }
}

/// A DICOMweb server as saved in the settings. It holds no secret: passwords and
/// typed tokens stay in memory for the session, and a bearer token may be read from
/// `token_file` at each request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PacsServer {
    /// Name shown in the picker and in messages.
    pub name: String,
    /// DICOMweb base URL, e.g. `http://pacs:8042/dicom-web`.
    pub url: String,
    /// How requests authenticate.
    pub auth: PacsAuthKind,
    /// User name for HTTP Basic.
    pub user: String,
    /// File holding the bearer token (its content is never saved or shown).
    pub token_file: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            recent: Vec::new(),
            window: MODEL_WINDOW,
            gt_style: LayerParams {
                opacity: 0.5,
                mode: OverlayMode::Outline,
            },
            pred_style: LayerParams {
                opacity: 0.45,
                mode: OverlayMode::Fill,
            },
            show_gt: true,
            show_pred: true,
            layout: Layout::Single,
            main_axis: Axis::Axial,
            compare: CompareMode::Overlay,
            model: None,
            backend: BackendKind::Auto,
            precision: ctseg_ml::infer::Precision::F32,
            threshold: 0.5,
            smooth: false,
            largest_component: false,
            show_frame_time: false,
            pacs_servers: Vec::new(),
        }
    }
}

impl Settings {
    /// Put `path` first in the recent list.
    pub fn remember(&mut self, path: PathBuf) {
        self.recent.retain(|p| p != &path);
        self.recent.insert(0, path);
        self.recent.truncate(MAX_RECENT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_list_is_most_recent_first_without_duplicates() {
        let mut s = Settings::default();
        for p in ["a", "b", "a"] {
            s.remember(p.into());
        }
        assert_eq!(s.recent, vec![PathBuf::from("a"), PathBuf::from("b")]);
        for i in 0..20 {
            s.remember(format!("f{i}").into());
        }
        assert_eq!(s.recent.len(), MAX_RECENT);
    }

    #[test]
    fn settings_round_trip_through_json() {
        let s = Settings {
            layout: Layout::SideBySide,
            ..Settings::default()
        };
        let text = serde_json::to_string(&s).unwrap();
        let back: Settings = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        // Older or partial settings fill in defaults.
        let partial: Settings = serde_json::from_str("{\"smooth\":true}").unwrap();
        assert!(partial.smooth);
        assert_eq!(partial.layout, Layout::Single);
    }
}
