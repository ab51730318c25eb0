//! The shell's side of the PACS browser: applying its commands, and the background
//! tasks that talk to the server (search, series, retrieval, Send to PACS).

use std::path::{Path, PathBuf};

use ctseg_core::io::dicom::seg::{SegWriteOptions, write_seg};
use ctseg_core::study::{CtView, LabelLayer};
use ctseg_dicomweb::{Auth, Error, Server};

use super::{
    OpenAs, PacsBrowser, PacsCommand, PacsStartup, Retrieval, Retrieving, SendWhat, name_for_url,
};
use crate::app::{Level, ViewerApp};
use crate::command::Command;
use crate::settings::{PacsAuthKind, PacsServer};

/// Where retrieved series are cached: `<ctseg root>/dicomweb-cache` (beside the
/// recovery folder).
pub fn default_cache_dir() -> PathBuf {
    ctseg_core::paths::root_dir().join("dicomweb-cache")
}

/// What a cancelled retrieval reports.
const CANCELLED: &str = "Retrieval cancelled";

/// A server and its secret, moved into a task (the token file is read there).
struct Target {
    server: PacsServer,
    secret: Option<String>,
}

impl Target {
    fn name(&self) -> String {
        self.server.name.clone()
    }

    fn connect(&self) -> Result<Server, String> {
        let auth = PacsBrowser::auth_of(&self.server, self.secret.as_deref())?;
        Server::new(&self.server.url, auth).map_err(|e| e.to_string())
    }
}

impl ViewerApp {
    /// Apply a PACS window request or task answer.
    pub(crate) fn apply_pacs(&mut self, command: PacsCommand) {
        match command {
            PacsCommand::Show => self.pacs.open = true,
            PacsCommand::Search => self.pacs_search(),
            PacsCommand::SelectStudy(uid) => self.pacs_select_study(&uid),
            PacsCommand::Open { series_uid, target } => self.pacs_open(&series_uid, target),
            PacsCommand::CancelRetrieval => {
                if let Some(r) = &self.pacs.retrieving {
                    self.tasks.cancel(r.task);
                }
            }
            PacsCommand::Send(what) => self.send_to_pacs(what),
            PacsCommand::SaveServer => self.pacs_save_server(),
            PacsCommand::RemoveServer => {
                let i = self.pacs.selected;
                if i < self.settings.pacs_servers.len() {
                    let gone = self.settings.pacs_servers.remove(i);
                    self.pacs.secrets.set(&gone.name, String::new());
                    self.pacs.selected = 0;
                }
            }
            PacsCommand::StudiesFound { serial, result } => {
                if serial != self.pacs.search_serial {
                    return;
                }
                self.pacs.searching = false;
                match result {
                    Ok(studies) => {
                        let n = studies.len();
                        self.pacs.studies = studies;
                        self.pacs.set_status(
                            Level::Info,
                            match n {
                                1 => "1 study found".into(),
                                n => format!("{n} studies found"),
                            },
                        );
                        if let Some(uid) = self.pacs.select_when_found.take() {
                            if self.pacs.studies.iter().any(|s| s.study_uid == uid) {
                                self.pacs_select_study(&uid);
                            } else {
                                self.pacs_error(format!("Study {uid} is not on the server"));
                            }
                        }
                    }
                    Err(e) => self.pacs_error(format!("Search failed: {e}")),
                }
            }
            PacsCommand::SeriesListed { study_uid, result } => {
                if self.pacs.study.as_deref() != Some(study_uid.as_str()) {
                    return;
                }
                self.pacs.listing = false;
                match result {
                    Ok(mut series) => {
                        series.sort_by_key(|s| s.series_number.unwrap_or(i64::MAX));
                        self.pacs.series = series;
                    }
                    Err(e) => self.pacs_error(format!("Listing the series failed: {e}")),
                }
            }
            PacsCommand::Retrieved {
                server,
                target,
                result,
            } => {
                self.pacs.retrieving = None;
                match result {
                    Ok(r) => self.pacs_retrieved(server, target, r),
                    Err(e) if e == CANCELLED => {
                        self.pacs.set_status(Level::Info, e.clone());
                        self.message(Level::Info, e);
                    }
                    Err(e) => self.pacs_error(e),
                }
            }
            PacsCommand::Stored { server, result } => {
                self.pacs.sending = false;
                match result {
                    Ok(n) => {
                        let text = match n {
                            1 => format!("Stored 1 instance on {server}"),
                            n => format!("Stored {n} instances on {server}"),
                        };
                        self.pacs.set_status(Level::Info, text.clone());
                        self.message(Level::Info, text);
                    }
                    Err(e) => self.pacs_error(format!("Send to {server} failed: {e}")),
                }
            }
        }
    }

    /// An error, shown in the window and among the app's messages.
    fn pacs_error(&mut self, text: String) {
        self.pacs.set_status(Level::Error, text.clone());
        self.message(Level::Error, text);
    }

    /// Open the PACS window on `startup`'s server (added to the settings unless one
    /// has its URL) and search all studies.
    pub fn pacs_start(&mut self, startup: PacsStartup) {
        let url = startup.url.trim().trim_end_matches('/').to_string();
        let (auth, user, secret) = match startup.auth {
            Auth::None => (PacsAuthKind::None, String::new(), None),
            Auth::Basic { user, password } => (PacsAuthKind::Basic, user, Some(password)),
            Auth::Bearer(token) => (PacsAuthKind::Bearer, String::new(), Some(token)),
        };
        let servers = &mut self.settings.pacs_servers;
        let index = match servers.iter().position(|s| s.url == url) {
            Some(i) => i,
            None => {
                let mut name = name_for_url(&url);
                if servers.iter().any(|s| s.name == name) {
                    name = url.clone();
                }
                servers.push(PacsServer {
                    name,
                    url,
                    ..PacsServer::default()
                });
                servers.len() - 1
            }
        };
        let server = &mut servers[index];
        // Without credentials from the environment a saved server keeps its own.
        if secret.is_some() {
            server.auth = auth;
            server.user = user;
        }
        let name = server.name.clone();
        if let Some(secret) = secret {
            self.pacs.secrets.set(&name, secret);
        }
        self.pacs.selected = index;
        self.pacs.open = true;
        self.pacs.select_when_found = startup.study;
        self.pacs_search();
    }

    /// Add a server (replacing one of the same name) with its session secret, and
    /// select it.
    pub fn pacs_add_server(&mut self, server: PacsServer, secret: Option<String>) {
        let servers = &mut self.settings.pacs_servers;
        let index = match servers.iter().position(|s| s.name == server.name) {
            Some(i) => {
                servers[i] = server;
                i
            }
            None => {
                servers.push(server);
                servers.len() - 1
            }
        };
        let name = self.settings.pacs_servers[index].name.clone();
        self.pacs.secrets.set(&name, secret.unwrap_or_default());
        self.pacs.selected = index;
    }

    fn pacs_save_server(&mut self) {
        let Some(form) = self.pacs.form.clone() else {
            return;
        };
        let mut server = form.server;
        server.name = server.name.trim().to_string();
        server.url = server.url.trim().trim_end_matches('/').to_string();
        let token_file = form.token_file.trim();
        server.token_file = (!token_file.is_empty()).then(|| PathBuf::from(token_file));
        let duplicate = self
            .settings
            .pacs_servers
            .iter()
            .enumerate()
            .any(|(i, s)| s.name == server.name && Some(i) != form.editing);
        let problem = if server.name.is_empty() {
            Some("give the server a name".to_string())
        } else if duplicate {
            Some(format!("a server is already called {}", server.name))
        } else if server.auth == PacsAuthKind::Basic && server.user.trim().is_empty() {
            Some("enter the user name".to_string())
        } else {
            Server::new(&server.url, Auth::None)
                .err()
                .map(|e| e.to_string())
        };
        if let Some(problem) = problem {
            self.pacs
                .set_status(Level::Error, format!("Cannot save the server: {problem}"));
            return;
        }
        if let Some(i) = form.editing
            && let Some(old) = self.settings.pacs_servers.get(i).map(|s| s.name.clone())
        {
            // Renamed or re-created below under its new name.
            self.settings.pacs_servers.remove(i);
            if form.secret.is_empty() {
                // Keep the session secret across an edit that did not retype it.
                let kept = self.pacs.secrets.get(&old).map(str::to_string);
                self.pacs.secrets.set(&old, String::new());
                self.settings.pacs_servers.insert(i, server.clone());
                self.pacs
                    .secrets
                    .set(&server.name, kept.unwrap_or_default());
                self.pacs.selected = i;
                self.pacs.form = None;
                return;
            }
            self.pacs.secrets.set(&old, String::new());
            self.settings.pacs_servers.insert(i, server.clone());
            self.pacs.secrets.set(&server.name, form.secret);
            self.pacs.selected = i;
        } else {
            self.pacs_add_server(server, Some(form.secret));
        }
        self.pacs.form = None;
    }

    /// The server named `name`, else the selected one, with its secret.
    fn pacs_target(&self, name: Option<&str>) -> Result<Target, String> {
        let servers = &self.settings.pacs_servers;
        let server = name
            .and_then(|n| servers.iter().find(|s| s.name == n))
            .or_else(|| servers.get(self.pacs.selected))
            .ok_or_else(|| {
                PacsBrowser::no_server(servers).unwrap_or_else(|| "no server selected".into())
            })?;
        Ok(Target {
            server: server.clone(),
            secret: self.pacs.secrets.get(&server.name).map(str::to_string),
        })
    }

    /// Search studies with the window's fields on the selected server (in the
    /// background).
    pub fn pacs_search(&mut self) {
        let target = match self.pacs_target(None) {
            Ok(t) => t,
            Err(e) => return self.pacs_error(e),
        };
        self.pacs.search_serial += 1;
        let serial = self.pacs.search_serial;
        self.pacs.searching = true;
        self.pacs.studies.clear();
        self.pacs.study = None;
        self.pacs.series.clear();
        self.pacs.status = None;
        let query = self.pacs.query.query();
        self.tasks
            .spawn(format!("Searching {}", target.name()), move |_| {
                let result = target
                    .connect()
                    .and_then(|s| s.search_studies(&query).map_err(|e| e.to_string()));
                vec![Command::Pacs(PacsCommand::StudiesFound { serial, result })]
            });
    }

    /// Select study `uid` and list its series (in the background).
    pub fn pacs_select_study(&mut self, uid: &str) {
        let target = match self.pacs_target(None) {
            Ok(t) => t,
            Err(e) => return self.pacs_error(e),
        };
        self.pacs.study = Some(uid.to_string());
        self.pacs.series.clear();
        self.pacs.listing = true;
        let study_uid = uid.to_string();
        self.tasks
            .spawn(format!("Listing series on {}", target.name()), move |_| {
                let result = target
                    .connect()
                    .and_then(|s| s.list_series(&study_uid).map_err(|e| e.to_string()));
                vec![Command::Pacs(PacsCommand::SeriesListed {
                    study_uid,
                    result,
                })]
            });
    }

    /// Retrieve series `series_uid` of the selected study into the cache (in the
    /// background) and open it as `target`.
    pub fn pacs_open(&mut self, series_uid: &str, target: OpenAs) {
        if self.pacs.retrieving.is_some() {
            return self.pacs_error("A retrieval is already running".into());
        }
        if matches!(target, OpenAs::Layer(_)) && self.ct.is_none() {
            return self.pacs_error("Open a CT before its segmentations".into());
        }
        let Some(study_uid) = self.pacs.study.clone() else {
            return self.pacs_error("Select a study first".into());
        };
        let server = match self.pacs_target(None) {
            Ok(t) => t,
            Err(e) => return self.pacs_error(e),
        };
        let cache = self.pacs.cache_dir();
        let series_uid = series_uid.to_string();
        let what = match self.pacs.series.iter().find(|s| s.series_uid == series_uid) {
            Some(s) if !s.series_description.is_empty() => {
                format!("{} series {}", s.modality, s.series_description)
            }
            Some(s) => format!("{} series {}", s.modality, s.series_number.unwrap_or(0)),
            None => format!("series {series_uid}"),
        };
        let name = format!("Retrieving {what} from {}", server.name());
        let task = self.tasks.spawn(name.clone(), move |ctx| {
            let mut progress = |done: usize, total: Option<usize>, _bytes: u64| {
                // An unknown total shows as an indeterminate bar.
                ctx.progress(done, total.map_or(0, |t| t.max(done)));
            };
            let result = server
                .connect()
                .and_then(|s| {
                    s.retrieve_series(
                        &study_uid,
                        &series_uid,
                        &cache,
                        &mut progress,
                        ctx.cancel_flag(),
                    )
                    .map_err(|e| match e {
                        Error::Cancelled => CANCELLED.to_string(),
                        e => format!("Retrieval failed: {e}"),
                    })
                })
                .and_then(|r| {
                    let path = match target {
                        OpenAs::Ct => r.folder.clone(),
                        OpenAs::Layer(_) => single_instance(&r.folder)?,
                    };
                    Ok(Retrieval {
                        series_uid: r.series_uid,
                        path,
                        instances: r.instances,
                        warnings: r.warnings,
                    })
                });
            vec![Command::Pacs(PacsCommand::Retrieved {
                server: server.name(),
                target,
                result,
            })]
        });
        self.pacs.retrieving = Some(Retrieving { task, what: name });
        self.pacs.status = None;
    }

    fn pacs_retrieved(&mut self, server: String, target: OpenAs, r: Retrieval) {
        for w in &r.warnings {
            self.message(Level::Warning, w.clone());
        }
        self.pacs.set_status(
            Level::Info,
            format!(
                "Retrieved {} from {server}",
                match r.instances {
                    1 => "1 instance".to_string(),
                    n => format!("{n} instances"),
                }
            ),
        );
        match target {
            OpenAs::Ct => {
                self.pacs.origins.insert(r.series_uid, server);
                self.open_ct(r.path);
            }
            OpenAs::Layer(kind) => self.open_layer(r.path, kind),
        }
        self.pacs.open = false;
    }

    /// What the PACS window shows besides its own state.
    pub(crate) fn pacs_view(&self) -> super::window::PacsView {
        let progress = self.pacs.retrieving.as_ref().and_then(|r| {
            self.tasks
                .running()
                .iter()
                .find(|t| t.id == r.task)
                .and_then(|t| t.progress())
        });
        super::window::PacsView {
            has_ct: self.ct.is_some(),
            progress,
        }
    }

    /// Why Send to PACS is not possible now, if it is not.
    pub(crate) fn pacs_send_refusal(&self) -> Option<String> {
        PacsBrowser::no_server(&self.settings.pacs_servers)
            .or_else(|| self.ct.as_ref().and_then(|ct| ct.dicom_seg_refusal()))
    }

    /// Write `what` as a DICOM Segmentation over the open CT's series and store it on
    /// the server the CT came from (else the selected one), in the background.
    pub fn send_to_pacs(&mut self, what: SendWhat) {
        if self.pacs.sending {
            return self.pacs_error("A Send to PACS is already running".into());
        }
        if let Some(why) = self.pacs_send_refusal() {
            return self.pacs_error(format!("Send to PACS is not possible: {why}"));
        }
        let layer = match what {
            SendWhat::Prediction => self.pred.clone(),
            SendWhat::Edits if self.annotator.is_editing() => {
                self.end_stroke();
                self.gt.clone()
            }
            SendWhat::Edits => None,
        };
        let (Some(ct), Some(layer)) = (self.ct.clone(), layer) else {
            return self.pacs_error(match what {
                SendWhat::Prediction => "There is no prediction to send".into(),
                SendWhat::Edits => "There is no edited layer to send".into(),
            });
        };
        let origin = ct
            .dicom
            .as_ref()
            .and_then(|d| self.pacs.origins.get(&d.series_uid).cloned());
        let server = match self.pacs_target(origin.as_deref()) {
            Ok(t) => t,
            Err(e) => return self.pacs_error(e),
        };
        let options = match what {
            SendWhat::Prediction => {
                SegWriteOptions::prediction(&self.prediction_model_name().unwrap_or_default())
            }
            SendWhat::Edits => SegWriteOptions::manual(),
        };
        let outgoing = self.pacs.cache_dir().join("outgoing");
        self.pacs.sending = true;
        self.tasks
            .spawn(format!("Sending to {}", server.name()), move |_| {
                let result = store_seg(&server, &ct, &layer, &options, &outgoing);
                vec![Command::Pacs(PacsCommand::Stored {
                    server: server.name(),
                    result,
                })]
            });
    }
}

impl PacsBrowser {
    /// The cache folder of retrieved series.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(default_cache_dir)
    }
}

/// Write the layer as a DICOM Segmentation in `outgoing`, store it, remove the file.
fn store_seg(
    server: &Target,
    ct: &CtView,
    layer: &LabelLayer,
    options: &SegWriteOptions,
    outgoing: &Path,
) -> Result<usize, String> {
    let source = ct
        .dicom
        .as_deref()
        .ok_or_else(|| ct.dicom_seg_refusal().unwrap_or_default())?;
    let labels = ct.to_source(&layer.display).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(outgoing).map_err(|e| format!("{}: {e}", outgoing.display()))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let file = outgoing.join(format!("seg-{}-{nanos}.dcm", std::process::id()));
    let written = write_seg(&file, &labels, source, options).map_err(|e| e.to_string());
    let stored = written.and_then(|_| {
        server
            .connect()?
            .store(std::slice::from_ref(&file))
            .map_err(|e| e.to_string())
    });
    if file.exists()
        && let Err(e) = std::fs::remove_file(&file)
    {
        log::warn!("could not remove {}: {e}", file.display());
    }
    stored.map(|report| report.stored)
}

/// The one DICOM file of a retrieved series folder (a DICOM Segmentation); the
/// newest when there are several.
fn single_instance(folder: &Path) -> Result<PathBuf, String> {
    let entries = std::fs::read_dir(folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| crate::worker::is_dcm(p))
        .map(|p| {
            let modified = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (modified, p)
        })
        .collect();
    files.sort();
    files
        .pop()
        .map(|(_, p)| p)
        .ok_or_else(|| format!("{}: the series has no DICOM file", folder.display()))
}
