//! The middle of the Training tab: live curves (egui_plot) of the runs on the
//! dashboard, the per-structure Dice heat map and ranking of the primary run, and its
//! latest validation sample.

use eframe::egui::{self, Color32, RichText};
use egui_plot::{HoverPosition, Legend, Line, LineStyle, Plot, PlotPoints, Points};

use ctseg_core::structures::catalog;
use ctseg_ml::train::RunLog;
use ctseg_ml::train::plots::RUN_COLORS;

use super::OpenRun;
use crate::ViewerApp;
use crate::dialogs::DialogPurpose;

/// Points handed to the plots in the last frame, per plot (evidence for tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlottedPoints {
    /// Training-loss points (raw steps) over the shown runs.
    pub train_loss: usize,
    /// Validation-loss points.
    pub val_loss: usize,
    /// Mean-Dice points.
    pub dice: usize,
    /// Learning-rate points.
    pub lr: usize,
    /// Heat-map cells.
    pub heat_cells: usize,
}

const PLOT_HEIGHT: f32 = 190.0;

fn run_color(run: &OpenRun) -> Color32 {
    let [r, g, b] = RUN_COLORS[run.color % RUN_COLORS.len()];
    Color32::from_rgb(r, g, b)
}

/// Draw the dashboard.
pub fn show(app: &mut ViewerApp, ui: &mut egui::Ui) {
    let Some(primary) = app.training.primary else {
        ui.vertical_centered(|ui| {
            ui.add_space(80.0);
            ui.heading("No run on the dashboard");
            ui.label("Start a run on the left, or open a run folder (also one another process is still writing).");
        });
        app.training.plotted = PlottedPoints::default();
        return;
    };
    header(app, ui, primary);
    ui.separator();
    let t = &mut app.training;
    let mut plotted = PlottedPoints::default();
    let shown: Vec<usize> = (0..t.runs.len())
        .filter(|&i| t.runs[i].shown || i == primary)
        .collect();
    let multi = shown.len() > 1;
    let smoothing = t.smoothing;
    let link = ui.scope_id().with("train-x");
    // Each shown run's step positions and losses, computed once per frame.
    let step_points: Vec<Vec<[f64; 2]>> =
        shown.iter().map(|&i| t.runs[i].log.step_losses()).collect();
    // The losses shown, padded so that one point or a flat curve still spans a range.
    let (loss_lo, loss_hi) = padded_range(shown.iter().flat_map(|&i| {
        let log = &t.runs[i].log;
        log.steps
            .iter()
            .map(|s| s.loss)
            .chain(log.epochs.iter().map(|e| e.val_loss))
    }));
    // log10 of the learning rates shown, so a constant rate still spans a range.
    let lr_range = shown
        .iter()
        .flat_map(|&i| t.runs[i].log.steps.iter().map(|s| s.lr.max(1e-12).log10()))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let (lr_lo, lr_hi) = if lr_range.0.is_finite() {
        (lr_range.0.floor() - 0.1, lr_range.1.ceil() + 0.1)
    } else {
        (-4.0, -2.0)
    };
    egui::ScrollArea::vertical().show(ui, |ui| {
        ui.columns(2, |cols| {
            // Loss.
            cols[0].label(RichText::new("Loss").strong());
            Plot::new("loss")
                .height(PLOT_HEIGHT)
                .legend(Legend::default())
                .x_axis_label("epoch")
                .y_axis_label("loss")
                .include_y(loss_lo)
                .include_y(loss_hi)
                .include_x(0.0)
                .include_x(1.0)
                .link_axis(link, [true, false])
                .label_formatter(hover(|x, y| format!("epoch {x:.2}\nloss {y:.4}")))
                .show(&mut cols[0], |plot| {
                    for (&i, raw) in shown.iter().zip(&step_points) {
                        let run = &t.runs[i];
                        let c = run_color(run);
                        let prefix = if multi { format!("{} ", run.log.name()) } else { String::new() };
                        let raw = raw.clone();
                        plotted.train_loss += raw.len();
                        let smooth = RunLog::smoothed(&raw, smoothing);
                        plot.line(
                            Line::new(format!("{prefix}train (raw)"), PlotPoints::new(raw))
                                .color(c.gamma_multiply(0.35))
                                .width(1.0),
                        );
                        plot.line(
                            Line::new(format!("{prefix}train (smoothed)"), PlotPoints::new(smooth))
                                .color(c)
                                .width(2.0),
                        );
                        let val: Vec<[f64; 2]> = run
                            .log
                            .epochs
                            .iter()
                            .map(|e| [e.epoch as f64, e.val_loss])
                            .collect();
                        plotted.val_loss += val.len();
                        plot.line(
                            Line::new(format!("{prefix}validation"), PlotPoints::new(val.clone()))
                                .color(c)
                                .style(LineStyle::dashed_loose())
                                .width(1.5),
                        );
                        plot.points(
                            Points::new(format!("{prefix}validation"), PlotPoints::new(val))
                                .color(c)
                                .radius(3.5),
                        );
                    }
                });
            cols[0].horizontal(|ui| {
                let l = ui.label("Smoothing");
                ui.add(egui::Slider::new(&mut t.smoothing, 0.0..=0.99).fixed_decimals(2))
                    .labelled_by(l.id);
            });

            // Dice.
            let volumes = t
                .session
                .as_ref()
                .filter(|s| t.runs.get(primary).is_some_and(|r| r.log.dir == s.run_dir))
                .and_then(|s| s.val_volumes)
                .map_or("the validation volumes".to_string(), |n| {
                    format!("{n} validation volume{}", if n == 1 { "" } else { "s" })
                });
            cols[1].label(RichText::new("Validation Dice").strong()).on_hover_text(
                "3-D Dice per volume at model resolution, averaged over volumes; the mean is over the structures present in the ground truth or the prediction",
            );
            cols[1].label(
                RichText::new(format!(
                    "3-D Dice per volume on {volumes} (model resolution); mean over structures present"
                ))
                .small()
                .weak(),
            );
            Plot::new("dice")
                .height(PLOT_HEIGHT - 16.0)
                .legend(Legend::default())
                .x_axis_label("epoch")
                .y_axis_label("Dice")
                .include_y(0.0)
                .include_y(1.0)
                .include_x(0.0)
                .include_x(1.0)
                .link_axis(link, [true, false])
                .label_formatter(hover(|x, y| format!("epoch {x:.0}\nDice {y:.3}")))
                .show(&mut cols[1], |plot| {
                    for &i in &shown {
                        let run = &t.runs[i];
                        let c = run_color(run);
                        let name = if multi { format!("{} mean", run.log.name()) } else { "mean".into() };
                        let mean: Vec<[f64; 2]> = run
                            .log
                            .epochs
                            .iter()
                            .filter_map(|e| e.val_dice_mean.map(|d| [e.epoch as f64, d]))
                            .collect();
                        plotted.dice += mean.len();
                        plot.line(Line::new(name.clone(), PlotPoints::new(mean.clone())).color(c).width(2.0));
                        plot.points(Points::new(name, PlotPoints::new(mean)).color(c).radius(3.0));
                    }
                    if let Some(run) = t.runs.get(primary) {
                        for (k, s) in t.plotted_structures.iter().enumerate() {
                            let color = catalog()
                                .label_of(s)
                                .and_then(|l| catalog().by_label(l))
                                .map_or(Color32::GRAY, |st| {
                                    let [r, g, b] = st.color;
                                    Color32::from_rgb(r, g, b)
                                });
                            let points: Vec<[f64; 2]> = run
                                .log
                                .epochs
                                .iter()
                                .filter_map(|e| e.val_dice.get(s).map(|&d| [e.epoch as f64, d]))
                                .collect();
                            let style = if k % 2 == 0 {
                                LineStyle::Solid
                            } else {
                                LineStyle::dashed_dense()
                            };
                            plot.line(Line::new(s.clone(), PlotPoints::new(points)).color(color).style(style).width(1.5));
                        }
                    }
                });
        });
        ui.add_space(6.0);
        ui.columns(2, |cols| {
            cols[0].label(RichText::new("Learning rate").strong());
            Plot::new("lr")
                .height(PLOT_HEIGHT * 0.7)
                .legend(Legend::default())
                .x_axis_label("epoch")
                .y_axis_label("lr (log scale)")
                .include_x(0.0)
                .include_x(1.0)
                .link_axis(link, [true, false])
                .include_y(lr_lo)
                .include_y(lr_hi)
                .y_axis_formatter(|m, _| format!("{:.1e}", 10f64.powf(m.value)))
                .label_formatter(hover(|x, y| format!("epoch {x:.2}\nlr {:.2e}", 10f64.powf(y))))
                .show(&mut cols[0], |plot| {
                    for (&i, xs) in shown.iter().zip(&step_points) {
                        let run = &t.runs[i];
                        let points: Vec<[f64; 2]> = xs
                            .iter()
                            .zip(&run.log.steps)
                            .map(|(p, s)| [p[0], s.lr.max(1e-12).log10()])
                            .collect();
                        plotted.lr += points.len();
                        plot.line(Line::new(run.log.name(), PlotPoints::new(points)).color(run_color(run)).width(2.0));
                    }
                });
            cols[1].label(RichText::new("Throughput").strong());
            Plot::new("throughput")
                .height(PLOT_HEIGHT * 0.7)
                .legend(Legend::default())
                .x_axis_label("epoch")
                .y_axis_label("slices/s")
                .include_y(0.0)
                .include_x(0.0)
                .include_x(1.0)
                .link_axis(link, [true, false])
                .label_formatter(hover(|x, y| format!("epoch {x:.2}\n{y:.1} slices/s")))
                .show(&mut cols[1], |plot| {
                    for (&i, xs) in shown.iter().zip(&step_points) {
                        let run = &t.runs[i];
                        let points: Vec<[f64; 2]> = xs
                            .iter()
                            .zip(&run.log.steps)
                            .map(|(p, s)| [p[0], s.slices_per_s])
                            .collect();
                        plot.line(Line::new(run.log.name(), PlotPoints::new(points)).color(run_color(run)).width(1.5));
                    }
                });
        });
        ui.add_space(6.0);
        if let Some(run) = t.runs.get(primary) {
            let mut toggle = None;
            let source = t
                .session
                .as_ref()
                .filter(|s| s.run_dir == run.log.dir)
                .and_then(|s| s.sample_source.clone());
            ui.columns(2, |cols| {
                plotted.heat_cells = heat_map(&mut cols[0], &run.log);
                sample(&mut cols[1], run, source);
                cols[1].add_space(6.0);
                toggle = ranking(&mut cols[1], &run.log, &t.plotted_structures);
            });
            if let Some(s) = toggle {
                if let Some(i) = t.plotted_structures.iter().position(|p| p == &s) {
                    t.plotted_structures.remove(i);
                } else {
                    t.plotted_structures.push(s);
                }
            }
        }
    });
    t.plotted = plotted;
}

/// Range of the finite `values` with 5 % padding (at least 1e-6), or (0, 1).
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    ctseg_ml::train::plots::padded_range(values, 0.05, 1e-6)
}

/// Hover text near a data point: the series name, then `values(x, y)`.
fn hover(values: impl Fn(f64, f64) -> String) -> impl Fn(&HoverPosition<'_>) -> Option<String> {
    move |h| match h {
        HoverPosition::NearDataPoint {
            plot_name,
            position,
            ..
        } => Some(format!("{plot_name}\n{}", values(position.x, position.y))),
        HoverPosition::Elsewhere { .. } => None,
    }
}

fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h {:02}m", s / 3600, s / 60 % 60)
    } else if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn header(app: &mut ViewerApp, ui: &mut egui::Ui, primary: usize) {
    let t = &app.training;
    let Some(run) = t.runs.get(primary) else {
        return;
    };
    let log = &run.log;
    let mut use_checkpoint = None;
    let mut export_plots = false;
    let mut export_csv = false;
    ui.horizontal_wrapped(|ui| {
        ui.heading(log.name());
        let planned = log.planned_epochs().map_or("?".into(), |e| e.to_string());
        let epoch = log.steps.last().map_or(0, |s| s.epoch);
        let mut line = format!(
            "epoch {epoch}/{planned} · step {}",
            log.steps.last().map_or(0, |s| s.step)
        );
        if let Some(s) = log.steps.last() {
            line.push_str(&format!(" · {:.1} slices/s", s.slices_per_s));
        }
        line.push_str(&format!(
            " · elapsed {}",
            format_duration(log.elapsed_seconds())
        ));
        let live = log.seconds_since_write().is_some_and(|s| s < 30.0);
        if let Some(eta) = log.eta_seconds().filter(|e| *e > 0.0 && live) {
            line.push_str(&format!(" · ETA {}", format_duration(eta)));
        }
        if let Some((e, d)) = log.best_epoch() {
            line.push_str(&format!(" · best mean Dice {d:.3} (epoch {e})"));
        }
        ui.label(line);
        if live {
            ui.label(RichText::new("live").color(Color32::from_rgb(90, 200, 90)));
        }
    });
    if let Some(problem) = &log.config_problem {
        ui.label(
            RichText::new(format!("config.toml: {problem}"))
                .small()
                .weak(),
        );
    }
    ui.horizontal(|ui| {
        let best = log.best_checkpoint();
        if ui
            .add_enabled(best.is_some(), egui::Button::new("Use this checkpoint"))
            .on_hover_text("Send the best checkpoint (else the last) to the viewer's model panel")
            .clicked()
        {
            use_checkpoint = best;
        }
        if ui.button("Export plots…").clicked() {
            export_plots = true;
        }
        if ui.button("Export CSV…").clicked() {
            export_csv = true;
        }
    });
    if let Some(path) = use_checkpoint {
        app.use_checkpoint(path);
    }
    if export_plots {
        app.dialog(DialogPurpose::ExportPlots);
    }
    if export_csv {
        app.dialog(DialogPurpose::ExportCsv);
    }
}

/// Viridis at `t` in [0, 1] (five stops, linear in between).
fn viridis(t: f64) -> Color32 {
    const STOPS: [[f64; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    let x = t.clamp(0.0, 1.0) * 4.0;
    let i = (x.floor() as usize).min(3);
    let f = x - i as f64;
    let c: [u8; 3] =
        std::array::from_fn(|k| (STOPS[i][k] * (1.0 - f) + STOPS[i + 1][k] * f).round() as u8);
    Color32::from_rgb(c[0], c[1], c[2])
}

/// Structures of the run ordered by their latest Dice (worst first).
fn ranked(log: &RunLog) -> Vec<(String, f64)> {
    let Some(last) = log.epochs.last() else {
        return Vec::new();
    };
    let mut rows: Vec<(String, f64)> = last.val_dice.iter().map(|(k, &v)| (k.clone(), v)).collect();
    rows.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    rows
}

/// Structures × epochs, coloured by Dice; returns the cells drawn.
fn heat_map(ui: &mut egui::Ui, log: &RunLog) -> usize {
    ui.label(RichText::new("Validation Dice per structure and epoch").strong())
        .on_hover_text("Rows: structures, worst latest Dice at the top. Columns: epochs. Grey: undefined in that epoch.");
    let rows = ranked(log);
    if rows.is_empty() {
        ui.label(RichText::new("Appears after the first validation.").weak());
        return 0;
    }
    let epochs = &log.epochs;
    let label_w = 150.0;
    let row_h = 11.0;
    let width = ui.available_width();
    let cell_w = ((width - label_w) / epochs.len() as f32).clamp(2.0, 40.0);
    let height = rows.len() as f32 * row_h;
    let mut cells = 0;
    egui::ScrollArea::vertical()
        .id_salt("heat")
        .max_height(300.0)
        .show(ui, |ui| {
            let (rect, response) =
                ui.allocate_exact_size(egui::vec2(width, height), egui::Sense::hover());
            let painter = ui.painter_at(rect);
            let font = egui::FontId::proportional(9.5);
            let text_color = ui.visuals().text_color();
            for (r, (name, _)) in rows.iter().enumerate() {
                let y = rect.top() + r as f32 * row_h;
                painter.text(
                    egui::pos2(rect.left() + label_w - 4.0, y + row_h / 2.0),
                    egui::Align2::RIGHT_CENTER,
                    name,
                    font.clone(),
                    text_color,
                );
                for (c, e) in epochs.iter().enumerate() {
                    let x = rect.left() + label_w + c as f32 * cell_w;
                    let cell = egui::Rect::from_min_size(
                        egui::pos2(x, y),
                        egui::vec2(cell_w - 1.0, row_h - 1.0),
                    );
                    let color = e
                        .val_dice
                        .get(name)
                        .map_or(Color32::from_gray(70), |&d| viridis(d));
                    painter.rect_filled(cell, 0.0, color);
                    cells += 1;
                }
            }
            if let Some(pos) = response.hover_pos() {
                let r = ((pos.y - rect.top()) / row_h) as usize;
                let c = ((pos.x - rect.left() - label_w) / cell_w).floor();
                if c >= 0.0
                    && let (Some((name, _)), Some(e)) = (rows.get(r), epochs.get(c as usize))
                {
                    let value = e
                        .val_dice
                        .get(name)
                        .map_or("undefined".into(), |d| format!("{d:.3}"));
                    response.on_hover_text_at_pointer(format!(
                        "{name}, epoch {}: Dice {value}",
                        e.epoch
                    ));
                }
            }
        });
    // Colour scale.
    ui.horizontal(|ui| {
        ui.small("Dice 0");
        let (rect, _) = ui.allocate_exact_size(egui::vec2(120.0, 8.0), egui::Sense::hover());
        for k in 0..40 {
            let x0 = rect.left() + k as f32 * 3.0;
            ui.painter().rect_filled(
                egui::Rect::from_min_size(egui::pos2(x0, rect.top()), egui::vec2(3.0, 8.0)),
                0.0,
                viridis(k as f64 / 39.0),
            );
        }
        ui.small("1");
    });
    cells
}

/// The latest per-structure Dice, worst first, with the change since the epoch
/// before; clicking a name adds it to (or removes it from) the Dice plot.
fn ranking(ui: &mut egui::Ui, log: &RunLog, plotted: &[String]) -> Option<String> {
    ui.label(RichText::new("Latest Dice per structure (worst first)").strong())
        .on_hover_text("Click a structure to draw its curve in the Dice plot");
    let rows = ranked(log);
    if rows.is_empty() {
        ui.label(RichText::new("Appears after the first validation.").weak());
        return None;
    }
    let previous = log
        .epochs
        .len()
        .checked_sub(2)
        .and_then(|i| log.epochs.get(i));
    let mut toggle = None;
    egui::ScrollArea::vertical()
        .id_salt("ranking")
        .max_height(300.0)
        .show(ui, |ui| {
            egui::Grid::new("ranking-grid")
                .striped(true)
                .num_columns(4)
                .show(ui, |ui| {
                    for (name, d) in &rows {
                        let on = plotted.contains(name);
                        if ui.selectable_label(on, name).clicked() {
                            toggle = Some(name.clone());
                        }
                        ui.monospace(format!("{d:.3}"));
                        let (rect, _) =
                            ui.allocate_exact_size(egui::vec2(90.0, 10.0), egui::Sense::hover());
                        ui.painter().rect_filled(rect, 0.0, Color32::from_gray(50));
                        let mut bar = rect;
                        bar.set_width(rect.width() * (*d as f32).clamp(0.0, 1.0));
                        ui.painter().rect_filled(bar, 0.0, viridis(*d));
                        match previous.and_then(|p| p.val_dice.get(name)) {
                            Some(p) => {
                                let delta = d - p;
                                let color = if delta >= 0.0 {
                                    Color32::from_rgb(90, 200, 90)
                                } else {
                                    Color32::from_rgb(240, 90, 80)
                                };
                                ui.label(
                                    RichText::new(format!("{delta:+.3}")).small().color(color),
                                );
                            }
                            None => {
                                ui.label("");
                            }
                        }
                        ui.end_row();
                    }
                });
        });
    toggle
}

fn sample(ui: &mut egui::Ui, run: &OpenRun, source: Option<(String, usize)>) {
    let Some((epoch, texture)) = &run.sample else {
        ui.label(RichText::new("Sample prediction: appears after the first validation.").weak());
        return;
    };
    let mut title = format!("Validation sample after epoch {epoch}");
    if let Some((subject, slice)) = source {
        title.push_str(&format!(": {subject}, axial slice {slice} (model grid)"));
    }
    ui.label(RichText::new(title).strong());
    let size = texture.size_vec2();
    let scale = (ui.available_width() / size.x).clamp(0.5, 4.0);
    let display = size * scale;
    let panel_w = display.x / 4.0;
    ui.horizontal(|ui| {
        for name in ["CT", "GT", "Pred", "Pred fill + GT outline"] {
            ui.add_sized(
                [panel_w - 8.0, 14.0],
                egui::Label::new(RichText::new(name).small()),
            );
        }
    });
    ui.add(egui::Image::new((texture.id(), display)));
}
