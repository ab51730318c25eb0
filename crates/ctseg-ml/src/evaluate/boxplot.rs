//! `dice_boxplot.png`: one horizontal box per structure (quartiles, median, whiskers
//! to the extremes, every subject as a dot) of Dice over the evaluated subjects.

use std::path::Path;

use plotters::prelude::*;

use super::DatasetEvaluation;
use crate::train::plots::register_font;
use ctseg_core::error::{Error, Result};
use ctseg_core::io::atomic_write;

/// Draw the box plot of `evaluation`'s per-subject Dice into `path` (written safely).
pub fn write_dice_boxplot(path: &Path, evaluation: &DatasetEvaluation) -> Result<()> {
    register_font();
    let rows = dice_rows(evaluation);
    atomic_write(path, ".png", |tmp| {
        draw(tmp, &rows, evaluation)
            .map_err(|e| Error::format(path, format!("cannot draw the box plot: {e}")))
    })
}

/// (structure name, sorted Dice values) of every scored structure, best median first.
fn dice_rows(evaluation: &DatasetEvaluation) -> Vec<(String, Vec<f64>)> {
    let mut rows: Vec<(String, Vec<f64>)> = evaluation
        .summary
        .structures
        .iter()
        .map(|s| {
            let mut values: Vec<f64> = evaluation
                .subjects
                .iter()
                .filter_map(|subject| {
                    subject
                        .evaluation
                        .structures
                        .iter()
                        .find(|m| m.label == s.label)
                        .and_then(|m| m.dice)
                })
                .collect();
            values.sort_by(f64::total_cmp);
            (s.name.clone(), values)
        })
        .filter(|(_, v)| !v.is_empty())
        .collect();
    rows.sort_by(|a, b| quantile(&b.1, 0.5).total_cmp(&quantile(&a.1, 0.5)));
    rows
}

/// Linear-interpolated quantile of sorted, non-empty `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

fn draw(
    path: &Path,
    rows: &[(String, Vec<f64>)],
    evaluation: &DatasetEvaluation,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let n = rows.len().max(1);
    let height = (90 + 22 * n) as u32;
    let root = BitMapBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let names: Vec<String> = rows.iter().map(|(name, _)| name.clone()).collect();
    let label_width = names.iter().map(|s| s.len()).max().unwrap_or(8) as u32 * 8 + 16;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Dice per structure over {} subject(s) ({:?} split)",
                evaluation.summary.subjects, evaluation.split
            ),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(label_width)
        .build_cartesian_2d(0.0..1.0f64, 0.0..n as f64)?;
    chart
        .configure_mesh()
        .x_desc("Dice")
        .y_labels(n)
        .y_label_formatter(&|y| {
            let i = (n as f64 - y - 0.5).round();
            if (y.fract() - 0.5).abs() < 0.01 && i >= 0.0 && (i as usize) < names.len() {
                names[i as usize].clone()
            } else {
                String::new()
            }
        })
        .disable_y_mesh()
        .draw()?;
    let blue = RGBColor(31, 119, 180);
    for (i, (_, values)) in rows.iter().enumerate() {
        let y = n as f64 - i as f64 - 0.5;
        let (q1, median, q3) = (
            quantile(values, 0.25),
            quantile(values, 0.5),
            quantile(values, 0.75),
        );
        let (lo, hi) = (values[0], values[values.len() - 1]);
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(lo, y), (q1, y)],
            blue.stroke_width(1),
        )))?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(q3, y), (hi, y)],
            blue.stroke_width(1),
        )))?;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(q1, y - 0.3), (q3, y + 0.3)],
            blue.mix(0.25).filled(),
        )))?;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(q1, y - 0.3), (q3, y + 0.3)],
            blue.stroke_width(1),
        )))?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(median, y - 0.3), (median, y + 0.3)],
            BLACK.stroke_width(2),
        )))?;
        chart.draw_series(
            values
                .iter()
                .map(|&v| Circle::new((v, y), 2, BLACK.mix(0.6).filled())),
        )?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_interpolate() {
        let v = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(quantile(&v, 0.5), 1.5);
        assert_eq!(quantile(&v, 0.25), 0.75);
        assert_eq!(quantile(&[0.4], 0.75), 0.4);
    }
}
