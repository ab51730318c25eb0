//! `ctseg dicomweb`: a PACS over DICOMweb — search studies, list a study's series,
//! retrieve series into a folder `ctseg predict --input` opens, store files.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use ctseg_dicomweb::{Auth, RetrievedSeries, Server, StudyQuery};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `ctseg dicomweb`.
#[derive(Debug, clap::Args)]
pub struct DicomwebArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DicomwebCommand,
}

/// `ctseg dicomweb` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DicomwebCommand {
    /// Find studies (QIDO-RS).
    Search(SearchArgs),
    /// List the series of a study (QIDO-RS).
    Series(SeriesArgs),
    /// Retrieve a series, or every series of a study, into a folder (WADO-RS).
    Get(GetArgs),
    /// Upload DICOM files (STOW-RS).
    Store(StoreArgs),
}

/// The server and its credentials.
#[derive(Debug, clap::Args)]
pub struct Connection {
    /// The DICOMweb base URL, e.g. `http://pacs:8042/dicom-web`.
    pub url: String,
    /// HTTP Basic credentials `NAME:PASSWORD` (visible to other users in the
    /// process list: prefer `CTSEG_DICOMWEB_USER` or `--token-file`).
    #[arg(long, conflicts_with = "token_file")]
    pub user: Option<String>,
    /// File holding a bearer token (never printed). Without `--user` or
    /// `--token-file`, `CTSEG_DICOMWEB_USER` (`NAME:PASSWORD`) or
    /// `CTSEG_DICOMWEB_TOKEN` are used.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

/// Arguments of `ctseg dicomweb search`.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// The server and its credentials.
    #[command(flatten)]
    pub connection: Connection,
    /// Patient name (`*` and `?` are wildcards, e.g. `Doe^*`).
    #[arg(long)]
    pub patient: Option<String>,
    /// Patient ID.
    #[arg(long)]
    pub patient_id: Option<String>,
    /// Study date: `YYYYMMDD` or `YYYYMMDD-YYYYMMDD` (either side may be open).
    #[arg(long)]
    pub date: Option<String>,
    /// A modality the study contains, e.g. `CT`.
    #[arg(long)]
    pub modality: Option<String>,
    /// Accession number.
    #[arg(long)]
    pub accession: Option<String>,
    /// At most this many studies.
    #[arg(long)]
    pub limit: Option<u32>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `ctseg dicomweb series`.
#[derive(Debug, clap::Args)]
pub struct SeriesArgs {
    /// The server and its credentials.
    #[command(flatten)]
    pub connection: Connection,
    /// StudyInstanceUID.
    #[arg(long)]
    pub study: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `ctseg dicomweb get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// The server and its credentials.
    #[command(flatten)]
    pub connection: Connection,
    /// StudyInstanceUID.
    #[arg(long)]
    pub study: String,
    /// SeriesInstanceUID; without it every series of the study.
    #[arg(long)]
    pub series: Option<String>,
    /// Cache folder: instances go to `DIR/<study>/<series>/<instance>.dcm`.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `ctseg dicomweb store`.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The server and its credentials.
    #[command(flatten)]
    pub connection: Connection,
    /// DICOM files to upload.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

impl Connection {
    /// The server with the credentials from the flags, else the environment.
    fn server(&self) -> Result<Server> {
        let auth = match (&self.user, &self.token_file) {
            (Some(user), _) => Auth::from_user_arg(user).context("--user")?,
            (None, Some(file)) => Auth::bearer_from_file(file)?,
            (None, None) => Auth::from_env()?,
        };
        Ok(Server::new(&self.url, auth)?)
    }
}

/// Run `ctseg dicomweb`.
pub fn run(args: &DicomwebArgs) -> Result<()> {
    match &args.command {
        DicomwebCommand::Search(a) => search(a),
        DicomwebCommand::Series(a) => series(a),
        DicomwebCommand::Get(a) => get(a),
        DicomwebCommand::Store(a) => store(a),
    }
}

fn search(args: &SearchArgs) -> Result<()> {
    let server = args.connection.server()?;
    let query = StudyQuery {
        patient_name: args.patient.clone(),
        patient_id: args.patient_id.clone(),
        study_date: args.date.clone(),
        modality: args.modality.clone(),
        accession_number: args.accession.clone(),
        limit: args.limit,
    };
    let studies = server.search_studies(&query)?;
    if args.json {
        return super::emit(&(serde_json::to_string_pretty(&studies)? + "\n"));
    }
    let rows: Vec<Vec<String>> = studies
        .iter()
        .map(|s| {
            vec![
                s.patient_name.clone(),
                s.patient_id.clone(),
                s.study_date.clone(),
                s.modalities.join(","),
                count(s.series_count),
                count(s.instance_count),
                s.study_description.clone(),
                s.study_uid.clone(),
            ]
        })
        .collect();
    let header = [
        "PATIENT",
        "ID",
        "DATE",
        "MODALITIES",
        "SERIES",
        "INSTANCES",
        "DESCRIPTION",
        "STUDY UID",
    ];
    super::emit(&table(&header, &rows))?;
    eprintln!(
        "{} stud{}",
        studies.len(),
        if studies.len() == 1 { "y" } else { "ies" }
    );
    Ok(())
}

fn series(args: &SeriesArgs) -> Result<()> {
    let server = args.connection.server()?;
    let series = server.list_series(&args.study)?;
    if args.json {
        return super::emit(&(serde_json::to_string_pretty(&series)? + "\n"));
    }
    let rows: Vec<Vec<String>> = series
        .iter()
        .map(|s| {
            vec![
                s.series_number.map(|n| n.to_string()).unwrap_or_default(),
                s.modality.clone(),
                count(s.instance_count),
                s.series_description.clone(),
                s.series_uid.clone(),
            ]
        })
        .collect();
    super::emit(&table(
        &[
            "NUMBER",
            "MODALITY",
            "INSTANCES",
            "DESCRIPTION",
            "SERIES UID",
        ],
        &rows,
    ))
}

fn get(args: &GetArgs) -> Result<()> {
    let server = args.connection.server()?;
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        let handler = ctrlc::set_handler(move || {
            eprintln!("\ncancelling: unfinished instances are removed");
            cancel.store(true, Ordering::Relaxed);
        });
        if let Err(e) = handler {
            eprintln!(
                "warning: could not install the Ctrl-C handler ({e}); Ctrl-C may leave a temporary file in {}",
                args.out.display()
            );
        }
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut progress = |done: usize, total: Option<usize>, bytes: u64| {
        let of = total.map(|t| format!("/{t}")).unwrap_or_default();
        bar.set_message(format!(
            "{done}{of} instances, {:.1} MiB",
            bytes as f64 / (1 << 20) as f64
        ));
        bar.tick();
    };
    let retrieved: Vec<RetrievedSeries> = match &args.series {
        Some(series) => {
            vec![server.retrieve_series(&args.study, series, &args.out, &mut progress, &cancel)?]
        }
        None => server.retrieve_study(&args.study, &args.out, &mut progress, &cancel)?,
    };
    bar.finish_and_clear();
    let mut out = String::new();
    for s in &retrieved {
        super::print_warnings(&s.warnings);
        eprintln!(
            "series {}: {} instances, {:.1} MiB",
            s.series_uid,
            s.instances,
            s.bytes as f64 / (1 << 20) as f64
        );
        out.push_str(&format!("{}\n", s.folder.display()));
    }
    if retrieved.iter().all(|s| s.instances == 0) {
        bail!(
            "the server sent no DICOM instances for study {}",
            args.study
        );
    }
    super::emit(&out)
}

fn store(args: &StoreArgs) -> Result<()> {
    let server = args.connection.server()?;
    let report = server.store(&args.files)?;
    eprintln!(
        "stored {} of {} file(s) on {}",
        report.stored,
        report.sent,
        server.base_url()
    );
    Ok(())
}

/// A count, or `?` when the server did not say.
fn count(n: Option<u32>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "?".into())
}

/// Left-aligned columns, two spaces apart.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        text.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}
