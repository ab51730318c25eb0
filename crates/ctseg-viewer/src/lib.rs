//! ctseg-viewer: the desktop app (eframe/egui) — viewer, structure table,
//! comparison, model panel, annotation and the Training tab. Device work runs in the
//! [`worker`] thread; the UI thread only composites the visible slices (on a cache
//! miss) and draws. Builds on `ctseg-core` and `ctseg-ml`.

#![warn(missing_docs)]

pub mod annotate;
pub mod app;
mod apply;
pub mod command;
pub mod dialogs;
pub mod export_figure;
pub mod gpu;
pub mod pacs;
pub mod panels;
pub mod settings;
mod slice_view;
pub mod state;
pub mod tasks;
#[cfg(feature = "test-hooks")]
pub mod testing;
pub mod training;
pub mod worker;

pub use app::{Mode, Startup, ViewerApp};
pub use pacs::PacsStartup;
pub use settings::{CompareMode, Layout, PacsAuthKind, PacsServer, Settings};

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
