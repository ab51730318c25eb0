//! The error type of the ctseg library: every variant names the file it is about.

use std::path::{Path, PathBuf};

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong reading, validating or writing ctseg's data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system refused an operation on a file.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// The underlying I/O error (shown in the message, so not a `source`).
        error: std::io::Error,
    },
    /// The file exists but its content is not what it should be.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The file is valid but uses a feature ctseg does not read.
    #[error("{}: unsupported: {message}", path.display())]
    Unsupported {
        /// The file concerned.
        path: PathBuf,
        /// The unsupported feature.
        message: String,
    },
    /// Two volumes that must share one voxel grid do not.
    #[error(
        "{} ({}) and {} ({}) do not share one voxel grid: {detail}",
        a.display(), a_desc, b.display(), b_desc
    )]
    GridMismatch {
        /// The first file.
        a: PathBuf,
        /// Shape (and orientation) of the first file.
        a_desc: String,
        /// The second file.
        b: PathBuf,
        /// Shape (and orientation) of the second file.
        b_desc: String,
        /// What differs.
        detail: String,
    },
    /// An argument given by the caller is invalid.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// A [`Error::Format`] for `path`.
    pub fn format(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }

    /// An [`Error::Unsupported`] for `path`.
    pub fn unsupported(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::Unsupported {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            error: source,
        }
    }
}

/// The message of a caught panic (`std::panic::catch_unwind`'s payload), for
/// reporting a crashed background task instead of losing it.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".to_string())
}
