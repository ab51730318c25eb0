//! The PACS browser: DICOMweb servers from the settings (passwords and typed tokens
//! kept in memory for the session only), study search, a study's series, retrieving
//! a series into the cache (`<root>/dicomweb-cache`) and opening it — a CT, or a
//! DICOM Segmentation as a layer of the open CT — and sending a layer back as a
//! DICOM Segmentation (STOW-RS). Every request runs as a background task
//! ([`crate::tasks`]); its answer comes back as a [`PacsCommand`].

pub mod requests;
pub mod window;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use ctseg_core::study::LayerKind;
use ctseg_dicomweb::{Auth, SeriesSummary, StudyQuery, StudySummary};

use crate::app::Level;
use crate::settings::{PacsAuthKind, PacsServer};

/// Open the PACS browser at start on one server (`ctseg view --pacs URL`).
#[derive(Debug, Clone)]
pub struct PacsStartup {
    /// DICOMweb base URL.
    pub url: String,
    /// Credentials (from the environment); kept in memory only.
    pub auth: Auth,
    /// Study to select once the first search has found it.
    pub study: Option<String>,
}

/// What a retrieved series is opened as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenAs {
    /// The CT (the series' folder).
    Ct,
    /// A layer of the open CT (the series' DICOM Segmentation file).
    Layer(LayerKind),
}

/// Which layer Send to PACS writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendWhat {
    /// The prediction layer (segments marked AUTOMATIC with the model's name).
    Prediction,
    /// The edited layer (segments marked MANUAL).
    Edits,
}

/// A series written into the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retrieval {
    /// SeriesInstanceUID.
    pub series_uid: String,
    /// The series folder (for a CT) or its DICOM Segmentation file (for a layer).
    pub path: PathBuf,
    /// Instances written.
    pub instances: usize,
    /// Remarks of the retrieval, one line each.
    pub warnings: Vec<String>,
}

/// Requests of the PACS window and answers of its tasks.
#[derive(Debug, Clone, PartialEq)]
pub enum PacsCommand {
    /// Show the window.
    Show,
    /// Search studies with the window's fields on the selected server.
    Search,
    /// Select a study and list its series.
    SelectStudy(String),
    /// Retrieve a series of the selected study and open it.
    Open {
        /// SeriesInstanceUID.
        series_uid: String,
        /// What it becomes.
        target: OpenAs,
    },
    /// Stop the running retrieval.
    CancelRetrieval,
    /// Write a layer as a DICOM Segmentation and store it on the server.
    Send(SendWhat),
    /// Save the server form (add or replace).
    SaveServer,
    /// Remove the selected server.
    RemoveServer,
    /// A search finished.
    StudiesFound {
        /// The search it answers (older answers are dropped).
        serial: u64,
        /// The studies, or why not.
        result: Result<Vec<StudySummary>, String>,
    },
    /// A study's series were listed.
    SeriesListed {
        /// The study.
        study_uid: String,
        /// The series, or why not.
        result: Result<Vec<SeriesSummary>, String>,
    },
    /// A retrieval finished.
    Retrieved {
        /// Server name.
        server: String,
        /// What the series becomes.
        target: OpenAs,
        /// The series in the cache, or why not.
        result: Result<Retrieval, String>,
    },
    /// A Send to PACS finished.
    Stored {
        /// Server name.
        server: String,
        /// Instances stored, or why not.
        result: Result<usize, String>,
    },
}

/// Passwords and typed tokens by server name, for this session only. `Debug` shows
/// the names, never the values.
#[derive(Default, Clone)]
pub struct Secrets(HashMap<String, String>);

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.0.keys().map(|k| format!("{k}: <redacted>")))
            .finish()
    }
}

impl Secrets {
    /// The secret of server `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Remember (a non-empty `secret`) or forget the secret of server `name`.
    pub fn set(&mut self, name: &str, secret: String) {
        if secret.is_empty() {
            self.0.remove(name);
        } else {
            self.0.insert(name.to_string(), secret);
        }
    }
}

/// The add/edit server form. `Debug` redacts the password or token.
#[derive(Clone, Default)]
pub struct ServerForm {
    /// Index of the server being edited; `None` adds one.
    pub editing: Option<usize>,
    /// The server's settings.
    pub server: PacsServer,
    /// Password or token typed (kept in memory only).
    pub secret: String,
    /// The token file as typed.
    pub token_file: String,
}

impl fmt::Debug for ServerForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerForm")
            .field("editing", &self.editing)
            .field("server", &self.server)
            .field("secret", &"<redacted>")
            .field("token_file", &self.token_file)
            .finish()
    }
}

/// The search fields as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryFields {
    /// Patient name (`*` and `?` are wildcards).
    pub patient_name: String,
    /// Patient ID.
    pub patient_id: String,
    /// `YYYYMMDD`, `YYYYMMDD-YYYYMMDD`, or one side open.
    pub dates: String,
    /// A modality the study contains.
    pub modality: String,
    /// Accession number.
    pub accession: String,
}

impl QueryFields {
    /// The QIDO-RS query (empty fields do not filter; at most 200 studies).
    pub fn query(&self) -> StudyQuery {
        let field = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        StudyQuery {
            patient_name: field(&self.patient_name),
            patient_id: field(&self.patient_id),
            study_date: field(&self.dates),
            modality: field(&self.modality),
            accession_number: field(&self.accession),
            limit: Some(200),
        }
    }
}

/// A retrieval in progress.
#[derive(Debug, Clone)]
pub struct Retrieving {
    /// Its task.
    pub task: u64,
    /// What is retrieved, for the window.
    pub what: String,
}

/// The PACS window's state.
#[derive(Debug, Default)]
pub struct PacsBrowser {
    /// The window is shown.
    pub open: bool,
    /// Index of the server in use (into the settings' list).
    pub selected: usize,
    /// Passwords and typed tokens of this session.
    pub secrets: Secrets,
    /// The add/edit form, when shown.
    pub form: Option<ServerForm>,
    /// Search fields.
    pub query: QueryFields,
    /// Studies of the last search.
    pub studies: Vec<StudySummary>,
    /// A search is running.
    pub searching: bool,
    pub(crate) search_serial: u64,
    /// The selected study.
    pub study: Option<String>,
    /// Its series.
    pub series: Vec<SeriesSummary>,
    /// The series list is being fetched.
    pub listing: bool,
    /// The running retrieval.
    pub retrieving: Option<Retrieving>,
    /// A Send to PACS is running.
    pub sending: bool,
    /// The last outcome (or error), shown in the window.
    pub status: Option<(Level, String)>,
    /// Study to select when a search finds it (`--pacs-study`).
    pub(crate) select_when_found: Option<String>,
    /// Series opened from a server this session: series UID → server name (Send to
    /// PACS goes back there).
    pub(crate) origins: HashMap<String, String>,
    /// Cache folder of retrieved series (default: [`requests::default_cache_dir`]).
    pub cache_dir: Option<PathBuf>,
}

impl PacsBrowser {
    /// A server's credentials: the typed secret of this session, or the token file.
    /// Reads the token file: call it from a task.
    pub fn auth_of(server: &PacsServer, secret: Option<&str>) -> Result<Auth, String> {
        match server.auth {
            PacsAuthKind::None => Ok(Auth::None),
            PacsAuthKind::Basic => match secret {
                Some(password) => Ok(Auth::Basic {
                    user: server.user.clone(),
                    password: password.to_string(),
                }),
                None => Err(format!(
                    "no password for {} on {}: edit the server and enter it (passwords are kept for this session only)",
                    server.user, server.name
                )),
            },
            PacsAuthKind::Bearer => match (secret, &server.token_file) {
                (Some(token), _) => Ok(Auth::Bearer(token.trim().to_string())),
                (None, Some(file)) => Auth::bearer_from_file(file).map_err(|e| e.to_string()),
                (None, None) => Err(format!(
                    "no token for {}: edit the server and enter a token or a token file",
                    server.name
                )),
            },
        }
    }

    /// Why the selected server cannot be used, if it cannot (no server configured).
    pub fn no_server(servers: &[PacsServer]) -> Option<String> {
        servers
            .is_empty()
            .then(|| "no PACS server is configured: add one in File → Open from PACS…".into())
    }

    fn set_status(&mut self, level: Level, text: String) {
        self.status = Some((level, text));
    }
}

/// A short server name for a URL: its host and port.
pub fn name_for_url(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or(rest);
    if host.is_empty() {
        url.to_string()
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug() {
        let mut secrets = Secrets::default();
        secrets.set("orthanc", "hunter2".into());
        let form = ServerForm {
            secret: "tok-XYZ".into(),
            ..ServerForm::default()
        };
        let browser = PacsBrowser {
            secrets: secrets.clone(),
            form: Some(form.clone()),
            ..PacsBrowser::default()
        };
        for shown in [
            format!("{secrets:?}"),
            format!("{form:?}"),
            format!("{browser:?}"),
        ] {
            assert!(
                !shown.contains("hunter2") && !shown.contains("XYZ"),
                "{shown}"
            );
        }
        assert!(format!("{secrets:?}").contains("orthanc"));
        secrets.set("orthanc", String::new());
        assert_eq!(secrets.get("orthanc"), None);
    }

    #[test]
    fn credentials_of_a_server() {
        let mut server = PacsServer {
            name: "p".into(),
            url: "http://h/dicom-web".into(),
            auth: PacsAuthKind::Basic,
            user: "bob".into(),
            token_file: None,
        };
        let e = PacsBrowser::auth_of(&server, None).unwrap_err();
        assert!(e.contains("no password"), "{e}");
        assert!(matches!(
            PacsBrowser::auth_of(&server, Some("pw")).unwrap(),
            Auth::Basic { .. }
        ));
        server.auth = PacsAuthKind::Bearer;
        assert!(PacsBrowser::auth_of(&server, None).is_err());
        server.token_file = Some("/nonexistent/token".into());
        let e = PacsBrowser::auth_of(&server, None).unwrap_err();
        assert!(e.contains("/nonexistent/token"), "{e}");
        // Settings hold no secret at all.
        let saved = serde_json::to_string(&server).unwrap();
        assert!(!saved.contains("pw"), "{saved}");
    }

    #[test]
    fn query_fields_and_names() {
        let q = QueryFields {
            patient_id: " TSEG-0001 ".into(),
            ..QueryFields::default()
        }
        .query();
        assert_eq!(q.patient_id.as_deref(), Some("TSEG-0001"));
        assert_eq!(q.patient_name, None);
        assert_eq!(
            name_for_url("http://127.0.0.1:8042/dicom-web"),
            "127.0.0.1:8042"
        );
    }
}
