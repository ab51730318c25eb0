//! Receiving uploaded files: streamed to a temporary file in the datastore's
//! `.ctseg/tmp` folder (never held whole in memory), typed by their first bytes.
//! A temporary file is removed when its [`Upload`] is dropped, so a failed or cut-off
//! upload leaves nothing behind; a good one is renamed into place.

use std::path::{Path, PathBuf};

use axum::body::Bytes;
use axum::extract::multipart::Field;
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

use crate::error::{ApiError, ApiResult};

/// What an upload's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// gzip: a `.nii.gz` (the NIfTI reader checks the rest).
    NiftiGz,
    /// A zip archive (a DICOM series for `/v1/segment`).
    Zip,
    /// Anything else: read as an uncompressed `.nii` (the reader checks its magic).
    Nifti,
}

impl FileKind {
    /// Sniff the kind from the first bytes.
    pub fn sniff(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            FileKind::NiftiGz
        } else if head.starts_with(b"PK\x03\x04") {
            FileKind::Zip
        } else {
            FileKind::Nifti
        }
    }

    /// The file ending a file of this kind is stored under.
    pub fn ending(self) -> &'static str {
        match self {
            FileKind::NiftiGz => ".nii.gz",
            FileKind::Zip => ".zip",
            FileKind::Nifti => ".nii",
        }
    }
}

/// A received file in the temporary folder, removed on drop unless persisted.
#[derive(Debug)]
pub struct Upload {
    /// The temporary file (its name ends in the kind's ending).
    pub path: TempPath,
    /// What its first bytes say.
    pub kind: FileKind,
    /// The file name the client gave, if any (for messages and default IDs).
    pub client_name: Option<String>,
    /// Bytes received.
    pub bytes: u64,
}

impl Upload {
    /// Replace the temporary path in `message` by the client's file name, so errors
    /// name the file the client knows.
    pub fn rename_in(&self, message: &str) -> String {
        let shown = self.client_name.as_deref().unwrap_or("the uploaded file");
        message.replace(&self.path.display().to_string(), shown)
    }

    /// Move the file to `dest` (same file system: an atomic rename).
    pub fn persist(self, dest: &Path) -> ApiResult<()> {
        self.path
            .persist(dest)
            .map_err(|e| ApiError::internal(format!("storing {}: {}", dest.display(), e.error)))
    }
}

/// A temporary file to write into, named with `ending`.
fn temp_path(tmp_dir: &Path, ending: &str) -> ApiResult<TempPath> {
    tempfile::Builder::new()
        .prefix("upload-")
        .suffix(ending)
        .tempfile_in(tmp_dir)
        .map(|f| f.into_temp_path())
        .map_err(|e| ApiError::internal(format!("cannot create a temporary file: {e}")))
}

/// Stream a multipart field into a temporary file.
pub async fn receive_field(field: &mut Field<'_>, tmp_dir: &Path) -> ApiResult<Upload> {
    let client_name = field.file_name().map(str::to_string);
    let first = field.chunk().await?.unwrap_or_default();
    let mut sink = Sink::start(tmp_dir, &first, client_name).await?;
    while let Some(chunk) = field.chunk().await? {
        sink.write(&chunk).await?;
    }
    sink.finish().await
}

/// Write a whole body already in memory (raw-body endpoints) into a temporary file.
pub async fn receive_bytes(
    body: Bytes,
    tmp_dir: &Path,
    client_name: Option<String>,
) -> ApiResult<Upload> {
    let sink = Sink::start(tmp_dir, &body, client_name).await?;
    sink.finish().await
}

/// A temporary file being written.
pub(crate) struct Sink {
    path: TempPath,
    file: tokio::fs::File,
    kind: FileKind,
    client_name: Option<String>,
    bytes: u64,
}

impl Sink {
    pub(crate) async fn start(
        tmp_dir: &Path,
        first: &[u8],
        client_name: Option<String>,
    ) -> ApiResult<Self> {
        if first.is_empty() {
            return Err(ApiError::bad_request(format!(
                "{} is empty",
                client_name.as_deref().unwrap_or("the uploaded file")
            )));
        }
        let kind = FileKind::sniff(first);
        let path = temp_path(tmp_dir, kind.ending())?;
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .await
            .map_err(|e| ApiError::internal(format!("cannot open a temporary file: {e}")))?;
        let mut sink = Sink {
            path,
            file,
            kind,
            client_name,
            bytes: 0,
        };
        sink.write(first).await?;
        Ok(sink)
    }

    pub(crate) async fn write(&mut self, chunk: &[u8]) -> ApiResult<()> {
        self.file
            .write_all(chunk)
            .await
            .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
        self.bytes += chunk.len() as u64;
        Ok(())
    }

    pub(crate) async fn finish(mut self) -> ApiResult<Upload> {
        self.file
            .flush()
            .await
            .and(self.file.sync_all().await)
            .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
        Ok(Upload {
            path: self.path,
            kind: self.kind,
            client_name: self.client_name,
            bytes: self.bytes,
        })
    }
}

/// Remove what a killed server left in the temporary folder.
pub fn clean_temporary_folder(tmp_dir: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(tmp_dir)? {
        let path: PathBuf = entry?.path();
        let result = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if result.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_sniffed_from_the_first_bytes() {
        assert_eq!(FileKind::sniff(&[0x1f, 0x8b, 8, 0]), FileKind::NiftiGz);
        assert_eq!(FileKind::sniff(b"PK\x03\x04rest"), FileKind::Zip);
        assert_eq!(FileKind::sniff(b"\x5c\x01\0\0"), FileKind::Nifti);
        assert_eq!(FileKind::NiftiGz.ending(), ".nii.gz");
    }

    #[tokio::test]
    async fn a_received_file_is_removed_unless_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let upload = receive_bytes(
            Bytes::from_static(b"\x1f\x8bxyz"),
            dir.path(),
            Some("a.nii.gz".into()),
        )
        .await
        .unwrap();
        assert_eq!(upload.kind, FileKind::NiftiGz);
        assert!(upload.path.to_string_lossy().ends_with(".nii.gz"));
        let kept = dir.path().join("kept.nii.gz");
        let dropped_path = {
            let other = receive_bytes(Bytes::from_static(b"abc"), dir.path(), None)
                .await
                .unwrap();
            other.path.to_path_buf()
        };
        assert!(!dropped_path.exists());
        upload.persist(&kept).unwrap();
        assert_eq!(std::fs::read(&kept).unwrap(), b"\x1f\x8bxyz");
        assert!(receive_bytes(Bytes::new(), dir.path(), None).await.is_err());
    }
}
