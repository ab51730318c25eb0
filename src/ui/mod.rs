//! The desktop app (eframe/egui): viewer, structure table, comparison and model panel.
//! All slow work runs in the [`crate::worker`] thread; the UI thread only composites
//! the visible slices (on a cache miss) and draws.

pub mod annotate;
pub mod app;
pub mod figure;
pub mod settings;
mod slice_view;
mod structures_panel;
pub mod training;

pub use app::{Mode, Startup, ViewerApp};
pub use settings::{CompareMode, Layout, Settings};

/// Open the app window and run until it is closed.
pub fn run(startup: Startup) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("ctseg")
            .with_inner_size([1400.0, 900.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "ctseg",
        options,
        Box::new(move |cc| Ok(Box::new(ViewerApp::new(cc, startup)))),
    )
    .map_err(|e| anyhow::anyhow!("could not start the window: {e}"))
}
