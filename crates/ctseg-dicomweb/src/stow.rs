//! STOW-RS: uploading DICOM files to a server (`POST {base}/studies`).

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::json;
use crate::{Server, wado};

/// FailedSOPSequence.
const FAILED_SOP_SEQUENCE: &str = "00081198";
/// ReferencedSOPSequence.
const REFERENCED_SOP_SEQUENCE: &str = "00081199";
/// ReferencedSOPInstanceUID.
const REFERENCED_SOP_INSTANCE_UID: &str = "00081155";
/// FailureReason.
const FAILURE_REASON: &str = "00081197";

/// What a successful [`Server::store`] stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreReport {
    /// Instances the server reports as stored.
    pub stored: usize,
    /// Their SOP Instance UIDs.
    pub sop_instance_uids: Vec<String>,
    /// Files sent.
    pub sent: usize,
}

/// One file to send: its path, size and SOP Instance UID.
struct Upload {
    path: PathBuf,
    size: u64,
    uid: String,
}

impl Server {
    /// Upload `files` (DICOM Part 10) in one STOW-RS request. Any instance the
    /// server refuses makes this [`Error::StoreFailed`], naming the files and the
    /// reasons. Files are streamed, not loaded into memory.
    pub fn store(&self, files: &[PathBuf]) -> Result<StoreReport> {
        if files.is_empty() {
            return Err(Error::BadInput("no files to store".into()));
        }
        let mut uploads = Vec::with_capacity(files.len());
        for path in files {
            let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
            let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
            let uid = wado::sop_instance_uid(&mut file).map_err(|reason| Error::NotDicom {
                path: path.clone(),
                reason,
            })?;
            uploads.push(Upload {
                path: path.clone(),
                size,
                uid,
            });
        }
        let boundary = format!("ctseg-stow-{:016x}", rand_suffix());
        let head = format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").into_bytes();
        let tail = format!("--{boundary}--\r\n").into_bytes();
        let length: u64 = uploads
            .iter()
            .map(|u| head.len() as u64 + u.size + 2)
            .sum::<u64>()
            + tail.len() as u64;
        let mut body: Box<dyn Read> = Box::new(Cursor::new(Vec::new()));
        for u in &uploads {
            let file = File::open(&u.path).map_err(|e| Error::io(&u.path, e))?;
            body = Box::new(
                body.chain(Cursor::new(head.clone()))
                    .chain(file.take(u.size))
                    .chain(Cursor::new(b"\r\n".to_vec())),
            );
        }
        let body = body.chain(Cursor::new(tail));

        let url = format!("{}/studies", self.base_url);
        log::debug!("POST {url} ({} files, {length} bytes)", uploads.len());
        let mut request = self
            .agent()
            .post(&url)
            .header(
                "Content-Type",
                format!(r#"multipart/related; type="application/dicom"; boundary={boundary}"#),
            )
            .header("Accept", "application/dicom+json")
            .header("Content-Length", length.to_string());
        if let Some(value) = self.auth.header_value() {
            request = request.header("Authorization", value);
        }
        let response = request
            .send(ureq::SendBody::from_owned_reader(body))
            .map_err(|e| self.transport_error(&url, e))?;
        // 409 (all failed) and 202 (some failed) carry the same JSON report.
        let mut response = if response.status().as_u16() == 409 {
            response
        } else {
            self.check_status(&url, response, None)?
        };
        let bytes = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .map_err(|e| Error::Transfer {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let sets = json::datasets(&bytes).map_err(|reason| Error::BadResponse {
            url: url.clone(),
            reason,
        })?;
        let Some(report) = sets.first() else {
            return Err(Error::BadResponse {
                url,
                reason: "the STOW-RS answer is empty".into(),
            });
        };
        let stored: Vec<String> = json::items(report, REFERENCED_SOP_SEQUENCE)
            .iter()
            .map(|item| json::string(item, REFERENCED_SOP_INSTANCE_UID))
            .collect();
        let failed: Vec<(String, String)> = json::items(report, FAILED_SOP_SEQUENCE)
            .iter()
            .map(|item| {
                (
                    json::string(item, REFERENCED_SOP_INSTANCE_UID),
                    json::string(item, FAILURE_REASON),
                )
            })
            .collect();
        if !failed.is_empty() {
            return Err(Error::StoreFailed {
                url,
                count: failed.len(),
                details: failure_details(&uploads, &failed),
            });
        }
        Ok(StoreReport {
            stored: stored.len(),
            sop_instance_uids: stored,
            sent: uploads.len(),
        })
    }
}

/// The failed files and reasons, e.g. `a.dcm (reason 0xC000)`.
fn failure_details(uploads: &[Upload], failed: &[(String, String)]) -> String {
    failed
        .iter()
        .map(|(uid, reason)| {
            let file = uploads
                .iter()
                .filter(|u| !uid.is_empty() && u.uid == *uid)
                .map(|u| u.path.display().to_string())
                .collect::<Vec<_>>();
            let who = if file.is_empty() {
                format!("instance {uid:?}")
            } else {
                file.join(", ")
            };
            match reason_text(reason) {
                Some(r) => format!("{who} ({r})"),
                None => who,
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// FailureReason (PS3.18 Table I.2-1 / PS3.4 C.4.2.1.4) in words, where known.
fn reason_text(code: &str) -> Option<String> {
    let n: u32 = code.trim().parse().ok()?;
    let words = match n {
        0x0110 => "processing failure",
        0x0122 => "SOP class not supported",
        0x0124 => "not authorized",
        0x0111 => "duplicate SOP instance",
        0xA700..=0xA7FF => "out of resources",
        0xA900..=0xA9FF => "data set does not match SOP class",
        0xC000..=0xCFFF => "cannot understand",
        _ => "",
    };
    Some(if words.is_empty() {
        format!("failure reason {n:#06X}")
    } else {
        format!("{words}, failure reason {n:#06X}")
    })
}

/// A value unlikely to appear in a file, for the multipart boundary.
fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn failures_name_the_files() {
        let uploads = vec![
            Upload {
                path: Path::new("/x/a.dcm").to_path_buf(),
                size: 1,
                uid: "1.2".into(),
            },
            Upload {
                path: Path::new("/x/b.dcm").to_path_buf(),
                size: 1,
                uid: "1.3".into(),
            },
        ];
        let d = failure_details(
            &uploads,
            &[
                ("1.3".into(), "49152".into()),
                ("9.9".into(), String::new()),
            ],
        );
        assert_eq!(
            d,
            "/x/b.dcm (cannot understand, failure reason 0xC000); instance \"9.9\""
        );
    }
}
