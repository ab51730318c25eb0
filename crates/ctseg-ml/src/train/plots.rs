//! `history.png`: train/validation loss, validation Dice and learning rate against
//! epoch, in three stacked panels — readable at a glance like nnU-Net's progress.png,
//! but with true per-volume Dice.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use super::events::EpochRecord;
use ctseg_core::error::{Error, Result};
use ctseg_core::io::atomic_write;

static FONT: &[u8] = include_bytes!("../../../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

pub(crate) fn register_font() {
    REGISTER.call_once(|| {
        // The font is compiled in; a failure here would be a build defect, and the
        // plot then has no text.
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            log::error!("the built-in plot font could not be registered; plots will have no text");
        }
    });
}

fn range(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    padded_range(values, pad, pad * 1e-9)
}

/// Range of the finite `values` widened on each side by `fraction` of its span (at
/// least `min_pad`), or (0, 1) without finite values. Plot axes here and on the
/// dashboard use it.
pub fn padded_range(values: impl Iterator<Item = f64>, fraction: f64, min_pad: f64) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * fraction).max(min_pad);
    (lo - pad, hi + pad)
}

/// Draw the history of `epochs` into `path` (written safely): the comparison figure
/// of one run, with the epoch-mean training loss as its training curve.
pub fn write_history_png(path: &Path, epochs: &[EpochRecord]) -> Result<()> {
    let train: Vec<[f64; 2]> = epochs
        .iter()
        .map(|e| [e.epoch as f64, e.train_loss])
        .collect();
    write_comparison_png(
        path,
        &[RunCurves {
            name: "run",
            step_loss: &train,
            epochs,
        }],
    )
}

/// One run's curves for [`write_comparison_png`].
#[derive(Debug, Clone, Copy)]
pub struct RunCurves<'a> {
    /// Legend name.
    pub name: &'a str,
    /// Training loss (smoothed per step, or per epoch), x in epochs.
    pub step_loss: &'a [[f64; 2]],
    /// Epoch records.
    pub epochs: &'a [EpochRecord],
}

/// Colours of runs in comparison plots (matplotlib's tab10, as in the dashboard).
pub const RUN_COLORS: [[u8; 3]; 6] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
];

/// Draw the dashboard's curves of one or more runs into `path` (written safely):
/// training loss (solid) and validation loss (points), validation Dice and learning
/// rate against epoch, one colour per run (with a legend of run names when there
/// are several).
pub fn write_comparison_png(path: &Path, runs: &[RunCurves<'_>]) -> Result<()> {
    register_font();
    atomic_write(path, ".png", |tmp| {
        draw_comparison(tmp, runs)
            .map_err(|e| Error::format(path, format!("cannot draw the plots: {e}")))
    })
}

fn draw_comparison(
    path: &Path,
    runs: &[RunCurves<'_>],
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::new(path, (1000, 1000)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((3, 1));
    let last_x = runs
        .iter()
        .flat_map(|r| {
            r.step_loss
                .iter()
                .map(|p| p[0])
                .chain(r.epochs.iter().map(|e| e.epoch as f64))
        })
        .fold(1.0f64, f64::max);
    let x_range = 0.0..last_x + 0.25;
    let color = |i: usize| {
        let [r, g, b] = RUN_COLORS[i % RUN_COLORS.len()];
        RGBColor(r, g, b)
    };

    let (lo, hi) = range(
        runs.iter().flat_map(|r| {
            r.step_loss
                .iter()
                .map(|p| p[1])
                .chain(r.epochs.iter().map(|e| e.val_loss))
        }),
        0.05,
    );
    let mut chart = ChartBuilder::on(&panels[0])
        .caption(
            "loss (solid: training; dots: validation)",
            ("sans-serif", 18),
        )
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range.clone(), lo..hi)?;
    chart.configure_mesh().x_desc("epoch").draw()?;
    for (i, r) in runs.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(
                r.step_loss.iter().map(|p| (p[0], p[1])),
                c.stroke_width(2),
            ))?
            .label(r.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(
            r.epochs
                .iter()
                .map(|e| Circle::new((e.epoch as f64, e.val_loss), 4, c.filled())),
        )?;
    }
    if runs.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }

    let mut chart = ChartBuilder::on(&panels[1])
        .caption(
            "validation Dice (3-D, per volume; mean over structures present)",
            ("sans-serif", 18),
        )
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range.clone(), 0.0..1.0)?;
    chart.configure_mesh().x_desc("epoch").draw()?;
    for (i, r) in runs.iter().enumerate() {
        let c = color(i);
        let dice: Vec<(f64, f64)> = r
            .epochs
            .iter()
            .filter_map(|e| e.val_dice_mean.map(|d| (e.epoch as f64, d)))
            .collect();
        chart
            .draw_series(LineSeries::new(dice.iter().copied(), c.stroke_width(2)))?
            .label(r.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(dice.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
    }
    if runs.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }

    let (lo, hi) = range(
        runs.iter()
            .flat_map(|r| r.epochs.iter().map(|e| e.lr.max(1e-12))),
        0.0,
    );
    let mut chart = ChartBuilder::on(&panels[2])
        .caption("learning rate", ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range, (lo / 2.0..hi * 2.0).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()?;
    for (i, r) in runs.iter().enumerate() {
        chart.draw_series(LineSeries::new(
            r.epochs.iter().map(|e| (e.epoch as f64, e.lr)),
            color(i).stroke_width(2),
        ))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png() {
        let epochs: Vec<EpochRecord> = (1..=4)
            .map(|e| EpochRecord {
                epoch: e,
                train_loss: 1.0 / e as f64,
                val_loss: 1.2 / e as f64,
                val_dice_mean: Some(0.2 * e as f64),
                val_dice: Default::default(),
                lr: if e < 3 { 1e-3 } else { 5e-4 },
                seconds: 1.0,
            })
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history.png");
        write_history_png(&path, &epochs).expect("draw");
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(bytes.len() > 10_000, "{} bytes", bytes.len());
        // Two runs in one comparison figure.
        let steps: Vec<[f64; 2]> = (1..=8).map(|i| [i as f64 / 2.0, 1.0 / i as f64]).collect();
        let runs = [
            RunCurves {
                name: "a",
                step_loss: &steps,
                epochs: &epochs,
            },
            RunCurves {
                name: "b",
                step_loss: &steps[..4],
                epochs: &epochs[..2],
            },
        ];
        let path = dir.path().join("compare.png");
        write_comparison_png(&path, &runs).expect("draw");
        let image = image::open(&path).expect("decode").to_rgb8();
        assert_eq!(image.dimensions(), (1000, 1000));
        let orange = image.pixels().filter(|p| p.0 == [255, 127, 14]).count();
        assert!(orange > 100, "second run drawn: {orange} pixels");
    }
}
