//! The one error type of the DICOMweb client. Messages name the server (its URL
//! without credentials) or the file concerned, and never contain a password or token.

use std::path::{Path, PathBuf};

/// What went wrong talking to a DICOMweb server or writing its answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server URL is not usable.
    #[error("bad DICOMweb URL {url}: {reason}")]
    BadUrl {
        /// The URL as given (credentials, if any, removed).
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A query argument or credential given by the user is malformed.
    #[error("{0}")]
    BadInput(String),
    /// A credentials file cannot be used.
    #[error("cannot use the credentials file {path}: {reason}")]
    CredentialsFile {
        /// The file.
        path: PathBuf,
        /// Why (never its content).
        reason: String,
    },
    /// No connection could be made (refused, unknown host, connect timeout, TLS).
    #[error("cannot reach the DICOMweb server at {url}: {reason}")]
    Unreachable {
        /// The request URL.
        url: String,
        /// The transport's reason.
        reason: String,
    },
    /// The connection broke or timed out during the exchange.
    #[error("the transfer from {url} failed: {reason}")]
    Transfer {
        /// The request URL.
        url: String,
        /// The transport's reason.
        reason: String,
    },
    /// HTTP 401 or 403.
    #[error(
        "the DICOMweb server at {url} refused the credentials (HTTP {status}; {})",
        if *.credentials_given { "credentials were sent" } else { "no credentials were given: use --user, --token-file, CTSEG_DICOMWEB_USER or CTSEG_DICOMWEB_TOKEN" }
    )]
    Unauthorized {
        /// The request URL.
        url: String,
        /// 401 or 403.
        status: u16,
        /// Whether the request carried credentials.
        credentials_given: bool,
    },
    /// HTTP 404 for a study or series.
    #[error("{what} not found on {url} (HTTP 404)")]
    NotFound {
        /// `study UID` or `series UID of study UID`.
        what: String,
        /// The server's base URL.
        url: String,
    },
    /// Any other unsuccessful HTTP status.
    #[error("the DICOMweb server answered HTTP {status} to {url}: {body}")]
    Http {
        /// The request URL.
        url: String,
        /// The status code.
        status: u16,
        /// The first ~200 bytes of the body, lossily decoded.
        body: String,
    },
    /// The body is not the DICOM JSON (or other format) expected.
    #[error("unexpected answer from {url}: {reason}")]
    BadResponse {
        /// The request URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A multipart/related body ended before its closing delimiter.
    #[error("truncated multipart response from {url} after {instances} instances")]
    Truncated {
        /// The request URL.
        url: String,
        /// Instances completely received (and stored) before the cut.
        instances: usize,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file given to STOW-RS is not a DICOM Part 10 file.
    #[error("{} is not a DICOM file: {reason}", .path.display())]
    NotDicom {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The server refused some of the stored instances.
    #[error("the DICOMweb server at {url} did not store {}: {details}", if *.count == 1 { "1 file".to_string() } else { format!("{count} files") })]
    StoreFailed {
        /// The request URL.
        url: String,
        /// How many files failed.
        count: usize,
        /// The failed files with the server's reasons.
        details: String,
    },
    /// The caller cancelled the transfer; nothing partial was left in the cache.
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The client's result type.
pub type Result<T> = std::result::Result<T, Error>;
