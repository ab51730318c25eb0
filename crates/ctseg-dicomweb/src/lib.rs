//! A DICOMweb client for ctseg: find studies and series on a PACS (QIDO-RS,
//! [`qido`]), retrieve a series or a study into a local cache folder that ctseg's
//! DICOM reader opens (WADO-RS, [`wado`], streamed through a `multipart/related`
//! reader, [`multipart`], each instance written to a temporary file and renamed) and
//! upload files (STOW-RS, [`stow`]). Blocking, over `ureq`; credentials ([`auth`])
//! never appear in messages or logs.
#![warn(missing_docs)]

pub mod auth;
pub mod error;
pub mod json;
pub mod multipart;
pub mod qido;
pub mod stow;
pub mod wado;

use std::time::Duration;

pub use auth::Auth;
pub use error::{Error, Result};
pub use qido::{SeriesSummary, StudyQuery, StudySummary};
pub use stow::StoreReport;
pub use wado::RetrievedSeries;

/// Network time limits of a [`Server`]'s requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the connection (DNS included).
    pub connect: Duration,
    /// Waiting for the response headers after the request was sent (a server may
    /// transcode a series before answering).
    pub response: Duration,
    /// Each read or write on the connection: a stalled transfer fails after this.
    pub io: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            response: Duration::from_secs(120),
            io: Duration::from_secs(60),
        }
    }
}

/// A DICOMweb server: its base URL (e.g. `http://pacs:8042/dicom-web`) and the
/// credentials requests carry.
#[derive(Debug, Clone)]
pub struct Server {
    base_url: String,
    auth: Auth,
    timeouts: Timeouts,
}

impl Server {
    /// A server at `base_url` (`http://` or `https://`, a trailing `/` dropped).
    /// Credentials inside the URL are refused: they would show in messages.
    pub fn new(base_url: &str, auth: Auth) -> Result<Server> {
        let url = base_url.trim().trim_end_matches('/');
        let bad = |reason: &str| Error::BadUrl {
            url: redact_userinfo(url),
            reason: reason.into(),
        };
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| bad("it must start with http:// or https://"))?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(bad(
                "credentials in the URL are not accepted; use --user, --token-file, CTSEG_DICOMWEB_USER or CTSEG_DICOMWEB_TOKEN",
            ));
        }
        if authority.is_empty() {
            return Err(bad("it has no host"));
        }
        if url.contains(['?', '#']) {
            return Err(bad("the base URL cannot have a query or fragment"));
        }
        Ok(Server {
            base_url: url.to_string(),
            auth,
            timeouts: Timeouts::default(),
        })
    }

    /// The same server with other time limits.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Server {
        self.timeouts = timeouts;
        self
    }

    /// The base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The credentials requests carry.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The time limits of requests.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// An agent with this server's timeouts; HTTP statuses are checked by the caller.
    fn agent(&self) -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(self.timeouts.connect))
            .timeout_resolve(Some(self.timeouts.connect))
            .timeout_recv_response(Some(self.timeouts.response))
            .timeout_per_read(Some(self.timeouts.io))
            .timeout_per_write(Some(self.timeouts.io))
            .user_agent(concat!("ctseg/", env!("CARGO_PKG_VERSION")))
            .build()
            .into()
    }

    /// GET `url` with `accept` and query parameters.
    fn get(
        &self,
        url: &str,
        accept: &str,
        query: &[(&str, String)],
    ) -> Result<ureq::http::Response<ureq::Body>> {
        log::debug!("GET {url} {query:?}");
        let mut request = self.agent().get(url).header("Accept", accept);
        for (k, v) in query {
            request = request.query_raw(*k, encode_query_value(v));
        }
        if let Some(value) = self.auth.header_value() {
            request = request.header("Authorization", value);
        }
        request.call().map_err(|e| self.transport_error(url, e))
    }

    /// A transport failure as an [`Error`]: connection-level ones say the server
    /// cannot be reached.
    fn transport_error(&self, url: &str, e: ureq::Error) -> Error {
        use std::io::ErrorKind;
        use ureq::Timeout;
        let unreachable = match &e {
            ureq::Error::HostNotFound
            | ureq::Error::ConnectionFailed
            | ureq::Error::Tls(_)
            | ureq::Error::Timeout(Timeout::Connect | Timeout::Resolve) => true,
            ureq::Error::Io(io) => matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::AddrNotAvailable
            ),
            _ => false,
        };
        if unreachable {
            Error::Unreachable {
                url: self.base_url.clone(),
                reason: e.to_string(),
            }
        } else {
            Error::Transfer {
                url: url.to_string(),
                reason: e.to_string(),
            }
        }
    }

    /// `response` if its status is a success; otherwise the matching error
    /// (`not_found` names what a 404 means for this request).
    fn check_status(
        &self,
        url: &str,
        mut response: ureq::http::Response<ureq::Body>,
        not_found: Option<String>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        match status {
            401 | 403 => Err(Error::Unauthorized {
                url: self.base_url.clone(),
                status,
                credentials_given: self.auth.is_some(),
            }),
            404 if not_found.is_some() => Err(Error::NotFound {
                what: not_found.unwrap_or_default(),
                url: self.base_url.clone(),
            }),
            _ => Err(Error::Http {
                url: url.to_string(),
                status,
                body: body_excerpt(&mut response),
            }),
        }
    }
}

/// The first ~200 bytes of a body, as one line of text.
fn body_excerpt(response: &mut ureq::http::Response<ureq::Body>) -> String {
    use std::io::Read;
    let mut head = Vec::new();
    let read = response
        .body_mut()
        .as_reader()
        .take(200)
        .read_to_end(&mut head);
    if let Err(e) = read {
        return format!("(the body could not be read: {e})");
    }
    let text: String = String::from_utf8_lossy(&head)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".into()
    } else {
        text.to_string()
    }
}

/// A query value with only what must be percent-encoded encoded (controls, space,
/// `"#%&+<>=`, non-ASCII). DICOM's `^`, `?` and `*` go as they are: Orthanc 1.10's
/// DICOMweb plugin does not decode query values, so `Doe%5EJane` would match nothing.
fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'"' | b'#' | b'%' | b'&' | b'+' | b'<' | b'>' | b'=' => {
                out.push_str(&format!("%{b:02X}"))
            }
            0x21..=0x7E => out.push(char::from(b)),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `url` with any `user:password@` removed.
fn redact_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// Whether `uid` is a DICOM UID (digits and dots, at most 64 characters), so it is
/// safe as a URL segment and a file name.
pub fn is_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !uid.starts_with('.')
        && !uid.ends_with('.')
        && !uid.contains("..")
}

/// `uid` if it is a DICOM UID, else an error naming `what`.
fn check_uid(what: &str, uid: &str) -> Result<()> {
    if is_uid(uid) {
        Ok(())
    } else {
        Err(Error::BadInput(format!(
            "{what} {uid:?} is not a DICOM UID (digits and dots, at most 64 characters)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let s = Server::new("http://pacs:8042/dicom-web/", Auth::None).unwrap();
        assert_eq!(s.base_url(), "http://pacs:8042/dicom-web");
        let e = Server::new("http://bob:hunter2@pacs/dicom-web", Auth::None)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2") && e.contains("--user"), "{e}");
        assert!(Server::new("pacs:8042", Auth::None).is_err());
        assert!(Server::new("http://", Auth::None).is_err());
        assert!(Server::new("http://h/x?y=1", Auth::None).is_err());
    }

    #[test]
    fn query_values() {
        assert_eq!(encode_query_value("Doe^J?ne*"), "Doe^J?ne*");
        assert_eq!(encode_query_value("a b&c+d=%#"), "a%20b%26c%2Bd%3D%25%23");
        assert_eq!(encode_query_value("é\t"), "%C3%A9%09");
        // Everything left raw is accepted in a URI's query.
        let all: String = (1u8..=127).map(char::from).collect();
        let url = format!("http://h/x?k={}", encode_query_value(&all));
        assert!(url.parse::<ureq::http::Uri>().is_ok(), "{url}");
    }

    #[test]
    fn uids() {
        assert!(is_uid(
            "1.2.826.0.1.3680043.8.498.87979699539472021332348858016319296264"
        ));
        for bad in ["", "1..2", ".1", "1.", "../etc", "1.2/3", &"1".repeat(65)] {
            assert!(!is_uid(bad), "{bad}");
        }
    }

    #[test]
    fn server_debug_hides_credentials() {
        let s = Server::new("http://h", Auth::Bearer("sekrit".into())).unwrap();
        assert!(!format!("{s:?}").contains("sekrit"));
    }
}
