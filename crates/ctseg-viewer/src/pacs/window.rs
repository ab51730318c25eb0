//! The "Open from PACS" window: server picker and form, search fields, the studies
//! found, the selected study's series with their Open buttons, and the retrieval's
//! progress. It edits its own state and returns [`Command`]s
//! for everything else.

use eframe::egui;

use ctseg_core::study::LayerKind;
use ctseg_dicomweb::{SeriesSummary, StudySummary};

use super::{OpenAs, PacsBrowser, PacsCommand, ServerForm};
use crate::app::Level;
use crate::command::Command;
use crate::settings::{PacsAuthKind, PacsServer};

/// What the window needs to know about the app.
#[derive(Debug, Clone, Default)]
pub struct PacsView {
    /// A CT is open (a DICOM Segmentation can be opened as its layer).
    pub has_ct: bool,
    /// Progress `(done, total)` of the running retrieval.
    pub progress: Option<(usize, usize)>,
}

fn pacs(command: PacsCommand) -> Command {
    Command::Pacs(command)
}

/// Draw the window when it is open.
pub fn show(
    ctx: &egui::Context,
    browser: &mut PacsBrowser,
    servers: &[PacsServer],
    view: &PacsView,
) -> Vec<Command> {
    let mut out = Vec::new();
    if !browser.open {
        return out;
    }
    let mut open = true;
    egui::Window::new("Open from PACS")
        .open(&mut open)
        .default_size([980.0, 560.0])
        .min_width(980.0)
        .resizable(true)
        .collapsible(false)
        .show(ctx, |ui| {
            server_row(ui, browser, servers, &mut out);
            if browser.form.is_some() {
                server_form(ui, browser, &mut out);
            }
            ui.separator();
            search_row(ui, browser, !servers.is_empty(), &mut out);
            ui.separator();
            studies_table(ui, browser, &mut out);
            ui.separator();
            series_table(ui, browser, view, &mut out);
            retrieval_row(ui, browser, view, &mut out);
            ui.add_space(4.0);
            ui.weak(format!(
                "Series are retrieved into {} and opened from there.",
                browser.cache_dir().display()
            ));
        });
    browser.open = open;
    out
}

fn server_row(
    ui: &mut egui::Ui,
    browser: &mut PacsBrowser,
    servers: &[PacsServer],
    out: &mut Vec<Command>,
) {
    ui.horizontal(|ui| {
        let selected = servers
            .get(browser.selected)
            .map_or_else(|| "(no server)".to_string(), |s| s.name.clone());
        let label = ui.label("Server");
        egui::ComboBox::from_id_salt("pacs-server")
            .selected_text(selected)
            .width(220.0)
            .show_ui(ui, |ui| {
                for (i, s) in servers.iter().enumerate() {
                    ui.selectable_value(&mut browser.selected, i, &s.name)
                        .on_hover_text(&s.url);
                }
            })
            .response
            .labelled_by(label.id);
        if let Some(s) = servers.get(browser.selected) {
            ui.weak(format!("{} · auth: {}", s.url, s.auth.name()));
        }
        if ui.button("Add server…").clicked() {
            browser.form = Some(ServerForm::default());
        }
        let has = browser.selected < servers.len();
        if ui.add_enabled(has, egui::Button::new("Edit…")).clicked() {
            let server = servers[browser.selected].clone();
            browser.form = Some(ServerForm {
                editing: Some(browser.selected),
                token_file: server
                    .token_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                server,
                secret: String::new(),
            });
        }
        if ui.add_enabled(has, egui::Button::new("Remove")).clicked() {
            out.push(pacs(PacsCommand::RemoveServer));
        }
    });
}

fn server_form(ui: &mut egui::Ui, browser: &mut PacsBrowser, out: &mut Vec<Command>) {
    let has_secret = browser
        .form
        .as_ref()
        .filter(|f| f.editing.is_some())
        .is_some_and(|f| browser.secrets.get(&f.server.name).is_some());
    let mut cancel = false;
    let Some(form) = &mut browser.form else {
        return;
    };
    ui.group(|ui| {
        ui.strong(if form.editing.is_some() {
            "Edit server"
        } else {
            "Add server"
        });
        egui::Grid::new("pacs-form")
            .num_columns(2)
            .spacing([8.0, 4.0])
            .show(ui, |ui| {
                let l = ui.label("Name");
                ui.add(egui::TextEdit::singleline(&mut form.server.name).desired_width(300.0))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("URL");
                ui.add(
                    egui::TextEdit::singleline(&mut form.server.url)
                        .hint_text("http://pacs:8042/dicom-web")
                        .desired_width(300.0),
                )
                .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Authentication");
                egui::ComboBox::from_id_salt("pacs-auth")
                    .selected_text(form.server.auth.name())
                    .show_ui(ui, |ui| {
                        for kind in PacsAuthKind::ALL {
                            ui.selectable_value(&mut form.server.auth, kind, kind.name());
                        }
                    })
                    .response
                    .labelled_by(l.id);
                ui.end_row();
                let kept = if has_secret {
                    "(kept; type to replace)"
                } else {
                    ""
                };
                match form.server.auth {
                    PacsAuthKind::None => {}
                    PacsAuthKind::Basic => {
                        let l = ui.label("User");
                        ui.add(
                            egui::TextEdit::singleline(&mut form.server.user).desired_width(200.0),
                        )
                        .labelled_by(l.id);
                        ui.end_row();
                        let l = ui.label("Password");
                        ui.add(
                            egui::TextEdit::singleline(&mut form.secret)
                                .password(true)
                                .hint_text(kept)
                                .desired_width(200.0),
                        )
                        .labelled_by(l.id);
                        ui.end_row();
                    }
                    PacsAuthKind::Bearer => {
                        let l = ui.label("Token");
                        ui.add(
                            egui::TextEdit::singleline(&mut form.secret)
                                .password(true)
                                .hint_text(kept)
                                .desired_width(300.0),
                        )
                        .labelled_by(l.id);
                        ui.end_row();
                        let l = ui.label("or token file");
                        ui.add(
                            egui::TextEdit::singleline(&mut form.token_file)
                                .hint_text("path of a file holding the token")
                                .desired_width(300.0),
                        )
                        .labelled_by(l.id);
                        ui.end_row();
                    }
                }
            });
        ui.weak(
            "Passwords and typed tokens are kept in memory for this session only, never \
             saved; a bearer token can instead be read from a file, whose path is saved.",
        );
        ui.horizontal(|ui| {
            if ui.button("Save server").clicked() {
                out.push(pacs(PacsCommand::SaveServer));
            }
            if ui.button("Cancel").clicked() {
                cancel = true;
            }
        });
    });
    if cancel {
        browser.form = None;
    }
}

fn search_row(
    ui: &mut egui::Ui,
    browser: &mut PacsBrowser,
    has_server: bool,
    out: &mut Vec<Command>,
) {
    let q = &mut browser.query;
    let mut enter = false;
    ui.horizontal_wrapped(|ui| {
        let fields: [(&str, &mut String, &str, f32); 5] = [
            ("Patient name", &mut q.patient_name, "Doe^J*", 130.0),
            ("Patient ID", &mut q.patient_id, "", 100.0),
            ("Study dates", &mut q.dates, "YYYYMMDD-YYYYMMDD", 170.0),
            ("Modality", &mut q.modality, "CT", 50.0),
            ("Accession", &mut q.accession, "", 90.0),
        ];
        for (name, value, hint, width) in fields {
            let l = ui.label(name);
            let r = ui
                .add(
                    egui::TextEdit::singleline(value)
                        .hint_text(hint)
                        .desired_width(width),
                )
                .labelled_by(l.id);
            enter |= r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        }
    });
    ui.horizontal(|ui| {
        let search = ui
            .add_enabled(
                has_server && !browser.searching,
                egui::Button::new("Search"),
            )
            .on_disabled_hover_text("Add a server first");
        if search.clicked() || (enter && has_server && !browser.searching) {
            out.push(pacs(PacsCommand::Search));
        }
        if browser.searching {
            ui.spinner();
        }
        status_line(ui, browser);
    });
}

fn status_line(ui: &mut egui::Ui, browser: &PacsBrowser) {
    if let Some((level, text)) = &browser.status {
        let color = match level {
            Level::Info => ui.visuals().text_color(),
            Level::Warning => ui.visuals().warn_fg_color,
            Level::Error => ui.visuals().error_fg_color,
        };
        ui.add(egui::Label::new(egui::RichText::new(text).color(color)).wrap());
    }
}

fn studies_table(ui: &mut egui::Ui, browser: &PacsBrowser, out: &mut Vec<Command>) {
    ui.strong("Studies");
    if browser.studies.is_empty() {
        ui.weak(if browser.searching {
            "Searching…"
        } else {
            "No studies (search above)."
        });
        return;
    }
    egui::ScrollArea::vertical()
        .id_salt("pacs-studies")
        .max_height(200.0)
        .auto_shrink([false, true])
        .show(ui, |ui| {
            egui::Grid::new("pacs-studies-grid")
                .striped(true)
                .num_columns(6)
                .spacing([16.0, 4.0])
                .show(ui, |ui| {
                    for h in [
                        "Patient",
                        "Patient ID",
                        "Date",
                        "Description",
                        "Modalities",
                        "Series",
                    ] {
                        ui.strong(h);
                    }
                    ui.end_row();
                    for s in &browser.studies {
                        study_row(ui, s, browser.study.as_deref(), out);
                    }
                });
        });
}

fn study_row(ui: &mut egui::Ui, s: &StudySummary, selected: Option<&str>, out: &mut Vec<Command>) {
    let is_selected = selected == Some(s.study_uid.as_str());
    let name = if s.patient_name.is_empty() {
        "(no name)".to_string()
    } else {
        s.patient_name.replace('^', " ")
    };
    if ui
        .selectable_label(is_selected, name)
        .on_hover_text(format!("Study {}", s.study_uid))
        .clicked()
        && !is_selected
    {
        out.push(pacs(PacsCommand::SelectStudy(s.study_uid.clone())));
    }
    ui.label(&s.patient_id);
    ui.label(format_date(&s.study_date));
    ui.label(&s.study_description);
    ui.label(s.modalities.join(", "));
    ui.label(s.series_count.map_or_else(|| "–".into(), |n| n.to_string()));
    ui.end_row();
}

/// `YYYYMMDD` as `YYYY-MM-DD` (anything else as it is).
fn format_date(date: &str) -> String {
    if date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &date[..4], &date[4..6], &date[6..])
    } else {
        date.to_string()
    }
}

fn series_table(ui: &mut egui::Ui, browser: &PacsBrowser, view: &PacsView, out: &mut Vec<Command>) {
    let Some(study) = &browser.study else {
        ui.weak("Click a study to list its series.");
        return;
    };
    let patient = browser
        .studies
        .iter()
        .find(|s| &s.study_uid == study)
        .map(|s| s.patient_id.clone())
        .unwrap_or_default();
    ui.strong(format!("Series of {patient}"));
    if browser.listing {
        ui.spinner();
        return;
    }
    let busy = browser.retrieving.is_some();
    egui::ScrollArea::vertical()
        .id_salt("pacs-series")
        .max_height(200.0)
        .auto_shrink([false, true])
        .show(ui, |ui| {
            egui::Grid::new("pacs-series-grid")
                .striped(true)
                .num_columns(5)
                .spacing([16.0, 4.0])
                .show(ui, |ui| {
                    for h in ["Number", "Modality", "Description", "Instances", ""] {
                        ui.strong(h);
                    }
                    ui.end_row();
                    for s in &browser.series {
                        series_row(ui, s, busy, view, out);
                    }
                });
        });
}

fn series_row(
    ui: &mut egui::Ui,
    s: &SeriesSummary,
    busy: bool,
    view: &PacsView,
    out: &mut Vec<Command>,
) {
    ui.label(
        s.series_number
            .map_or_else(|| "–".into(), |n| n.to_string()),
    );
    ui.label(&s.modality);
    ui.label(&s.series_description)
        .on_hover_text(format!("Series {}", s.series_uid));
    ui.label(
        s.instance_count
            .map_or_else(|| "–".into(), |n| n.to_string()),
    );
    ui.horizontal(|ui| {
        let open = |target| {
            pacs(PacsCommand::Open {
                series_uid: s.series_uid.clone(),
                target,
            })
        };
        if s.modality.eq_ignore_ascii_case("SEG") {
            for (text, kind) in [
                ("Open as GT", LayerKind::GroundTruth),
                ("Open as prediction", LayerKind::Prediction),
            ] {
                let r = ui
                    .add_enabled(view.has_ct && !busy, egui::Button::new(text))
                    .on_disabled_hover_text(if busy {
                        "A retrieval is running"
                    } else {
                        "Open the CT it segments first"
                    });
                if r.clicked() {
                    out.push(open(OpenAs::Layer(kind)));
                }
            }
        } else {
            let r = ui
                .add_enabled(!busy, egui::Button::new("Open"))
                .on_hover_text("Retrieve the series and open it as the CT")
                .on_disabled_hover_text("A retrieval is running");
            if r.clicked() {
                out.push(open(OpenAs::Ct));
            }
        }
    });
    ui.end_row();
}

fn retrieval_row(
    ui: &mut egui::Ui,
    browser: &PacsBrowser,
    view: &PacsView,
    out: &mut Vec<Command>,
) {
    let Some(r) = &browser.retrieving else {
        return;
    };
    ui.separator();
    ui.horizontal(|ui| {
        let (fraction, text) = match view.progress {
            Some((done, total)) if total > 0 => (
                done as f32 / total as f32,
                format!("{done} / {total} instances"),
            ),
            _ => (0.0, "receiving…".to_string()),
        };
        ui.label(&r.what);
        ui.add(
            egui::ProgressBar::new(fraction)
                .text(text)
                .desired_width(260.0)
                .animate(true),
        );
        if ui.button("Cancel").clicked() {
            out.push(pacs(PacsCommand::CancelRetrieval));
        }
    });
}
