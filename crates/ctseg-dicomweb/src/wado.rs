//! WADO-RS: retrieving a series or a study into a cache folder,
//! `<cache_root>/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm`.
//!
//! The `multipart/related` answer is streamed: each part is written to a temporary
//! file in the series folder and renamed to its final name only once the part is
//! complete, so the cache never holds half an instance; on an error or a cancel the
//! temporary file is removed (instances completed before stay: they are whole).

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::multipart::{MultipartError, MultipartReader, related_boundary};
use crate::{Server, check_uid, is_uid};

/// What WADO-RS is asked for: DICOM instances in whatever transfer syntax they are
/// stored in (ctseg's reader decodes the usual ones; others are stored anyway and
/// named by the reader when opened).
pub const ACCEPT_DICOM: &str = r#"multipart/related; type="application/dicom"; transfer-syntax=*"#;

/// Prefix of the temporary files of parts being received.
const PART_PREFIX: &str = ".ctseg-part-";
/// Temporary files older than this are left-overs of a killed process.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// Called as bytes arrive: instances stored so far, the expected number of
/// instances when the server said, and bytes received.
pub type Progress<'a> = dyn FnMut(usize, Option<usize>, u64) + 'a;

/// A series written into the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrievedSeries {
    /// StudyInstanceUID.
    pub study_uid: String,
    /// SeriesInstanceUID.
    pub series_uid: String,
    /// `<cache_root>/<StudyUID>/<SeriesUID>`: open it with `ctseg predict --input`.
    pub folder: PathBuf,
    /// Instances written by this retrieval.
    pub instances: usize,
    /// Bytes received in parts.
    pub bytes: u64,
    /// Parts not stored (not DICOM, no usable SOP Instance UID), one line each.
    pub warnings: Vec<String>,
}

/// Counts across the series of one retrieval.
struct Tally {
    done: usize,
    total: Option<usize>,
    bytes: u64,
}

impl Server {
    /// Retrieve series `series_uid` of study `study_uid` into `cache_root`.
    /// `progress` is called as data arrives; `cancel` is checked between chunks
    /// ([`Error::Cancelled`], no temporary file left).
    pub fn retrieve_series(
        &self,
        study_uid: &str,
        series_uid: &str,
        cache_root: &Path,
        progress: &mut Progress<'_>,
        cancel: &AtomicBool,
    ) -> Result<RetrievedSeries> {
        check_uid("study", study_uid)?;
        check_uid("series", series_uid)?;
        let total = match self.list_series(study_uid) {
            Ok(list) => list
                .iter()
                .find(|s| s.series_uid == series_uid)
                .and_then(|s| s.instance_count)
                .map(|n| n as usize),
            // The retrieval itself would fail the same way: fail at once.
            Err(e @ (Error::Unreachable { .. } | Error::Unauthorized { .. })) => return Err(e),
            // Otherwise only the total is lost; the retrieval reports its own errors.
            Err(e) => {
                log::debug!("no instance count for series {series_uid}: {e}");
                None
            }
        };
        let mut tally = Tally {
            done: 0,
            total,
            bytes: 0,
        };
        self.fetch_series(
            study_uid, series_uid, cache_root, &mut tally, progress, cancel,
        )
    }

    /// Retrieve every series of study `study_uid` into `cache_root`, one series
    /// folder each (series by series, so each is grouped and counted).
    pub fn retrieve_study(
        &self,
        study_uid: &str,
        cache_root: &Path,
        progress: &mut Progress<'_>,
        cancel: &AtomicBool,
    ) -> Result<Vec<RetrievedSeries>> {
        let series = self.list_series(study_uid)?;
        let total = series
            .iter()
            .map(|s| s.instance_count.map(|n| n as usize))
            .sum::<Option<usize>>();
        let mut tally = Tally {
            done: 0,
            total,
            bytes: 0,
        };
        let mut out = Vec::new();
        for s in &series {
            if !is_uid(&s.series_uid) {
                return Err(Error::BadResponse {
                    url: format!("{}/studies/{study_uid}/series", self.base_url),
                    reason: format!("a series UID {:?} is not a DICOM UID", s.series_uid),
                });
            }
            out.push(self.fetch_series(
                study_uid,
                &s.series_uid,
                cache_root,
                &mut tally,
                progress,
                cancel,
            )?);
        }
        Ok(out)
    }

    fn fetch_series(
        &self,
        study_uid: &str,
        series_uid: &str,
        cache_root: &Path,
        tally: &mut Tally,
        progress: &mut Progress<'_>,
        cancel: &AtomicBool,
    ) -> Result<RetrievedSeries> {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let url = format!("{}/studies/{study_uid}/series/{series_uid}", self.base_url);
        let response = self.get(&url, ACCEPT_DICOM, &[])?;
        let response = self.check_status(
            &url,
            response,
            Some(format!("series {series_uid} of study {study_uid}")),
        )?;
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let boundary = related_boundary(&content_type).map_err(|reason| Error::BadResponse {
            url: url.clone(),
            reason,
        })?;
        let study_dir = cache_root.join(study_uid);
        let folder = study_dir.join(series_uid);
        std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
        remove_stale_parts(&folder);
        let mut result = RetrievedSeries {
            study_uid: study_uid.to_string(),
            series_uid: series_uid.to_string(),
            folder: folder.clone(),
            instances: 0,
            bytes: 0,
            warnings: Vec::new(),
        };
        let reader = MultipartReader::new(response.into_body().into_reader(), &boundary);
        let outcome = receive_parts(reader, &url, &mut result, tally, progress, cancel);
        if outcome.is_err() {
            // Leave no empty folders behind; one that holds files stays (the error
            // is already being returned, so a failure here changes nothing).
            for dir in [&folder, &study_dir] {
                if std::fs::remove_dir(dir).is_err() {
                    break;
                }
            }
        }
        outcome.map(|()| result)
    }
}

/// Store each part of `reader` in `result.folder`.
fn receive_parts<R: Read>(
    mut reader: MultipartReader<R>,
    url: &str,
    result: &mut RetrievedSeries,
    tally: &mut Tally,
    progress: &mut Progress<'_>,
    cancel: &AtomicBool,
) -> Result<()> {
    let mut chunk = vec![0u8; 256 * 1024];
    let mut part_number = 0;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let headers = match reader.next_part() {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(()),
            Err(e) => return Err(multipart_error(url, e, result.instances)),
        };
        part_number += 1;
        let part_type = headers.get("content-type").unwrap_or("application/dicom");
        let media = crate::multipart::parse_media_type(part_type).0;
        let mut tmp = new_part_file(&result.folder)?;
        let is_dicom = media == "application/dicom" || media.is_empty();
        {
            let mut out = BufWriter::with_capacity(256 * 1024, tmp.as_file_mut());
            loop {
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
                let n = reader
                    .read_body(&mut chunk)
                    .map_err(|e| multipart_error(url, e, result.instances))?;
                if n == 0 {
                    break;
                }
                if is_dicom {
                    out.write_all(&chunk[..n])
                        .map_err(|e| Error::io(&result.folder, e))?;
                }
                result.bytes += n as u64;
                tally.bytes += n as u64;
                progress(tally.done, tally.total, tally.bytes);
            }
            out.flush().map_err(|e| Error::io(&result.folder, e))?;
        }
        if !is_dicom {
            result.warnings.push(format!(
                "part {part_number} is {media}, not a DICOM instance: skipped"
            ));
            continue;
        }
        let uid = match sop_instance_uid(tmp.as_file_mut()) {
            Ok(uid) if is_uid(&uid) => uid,
            Ok(uid) => {
                result.warnings.push(format!(
                    "part {part_number}: its SOP Instance UID {uid:?} is not a DICOM UID: skipped"
                ));
                continue;
            }
            Err(reason) => {
                result.warnings.push(format!(
                    "part {part_number} is not a DICOM file ({reason}): skipped"
                ));
                continue;
            }
        };
        let target = result.folder.join(format!("{uid}.dcm"));
        tmp.as_file()
            .sync_data()
            .map_err(|e| Error::io(tmp.path(), e))?;
        tmp.persist(&target)
            .map_err(|e| Error::io(&target, e.error))?;
        result.instances += 1;
        tally.done += 1;
        progress(tally.done, tally.total, tally.bytes);
    }
}

/// A temporary file for one part in `folder`, removed when dropped unless persisted.
fn new_part_file(folder: &Path) -> Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(PART_PREFIX).suffix(".tmp");
    // Cached instances are readable like any downloaded file (tempfile's own
    // default, 0600, would hide them from colleagues sharing the cache).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder
        .tempfile_in(folder)
        .map_err(|e| Error::io(folder, e))
}

/// Remove part files a killed process left in `folder` (an hour old or more, so a
/// concurrent retrieval's files are not touched).
fn remove_stale_parts(folder: &Path) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(PART_PREFIX) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > STALE_AFTER));
        if old && let Err(e) = std::fs::remove_file(entry.path()) {
            log::warn!("cannot remove {}: {e}", entry.path().display());
        }
    }
}

/// The SOP Instance UID of a DICOM Part 10 file (from its file meta group,
/// MediaStorageSOPInstanceUID), with or without the 128-byte preamble.
pub fn sop_instance_uid(file: &mut File) -> std::result::Result<String, String> {
    let mut magic = [0u8; 4];
    for offset in [128u64, 0] {
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| e.to_string())?;
        if file.read_exact(&mut magic).is_ok() && &magic == b"DICM" {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| e.to_string())?;
            let meta = dicom_object::FileMetaTable::from_reader(std::io::BufReader::new(&*file))
                .map_err(|e| format!("bad file meta group: {e}"))?;
            return Ok(meta.media_storage_sop_instance_uid().to_string());
        }
    }
    Err("no DICM marker".into())
}

fn multipart_error(url: &str, e: MultipartError, instances: usize) -> Error {
    match e {
        MultipartError::Truncated => Error::Truncated {
            url: url.to_string(),
            instances,
        },
        MultipartError::Io(e) => Error::Transfer {
            url: url.to_string(),
            reason: format!("{e} (after {instances} instances)"),
        },
        MultipartError::Malformed(reason) => Error::BadResponse {
            url: url.to_string(),
            reason: format!("{reason} (after {instances} instances)"),
        },
    }
}
