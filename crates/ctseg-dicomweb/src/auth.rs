//! Credentials for a DICOMweb server: none, HTTP Basic or a bearer token. Neither
//! `Debug` nor `Display` shows a password or token.

use std::fmt;
use std::path::Path;

use crate::error::{Error, Result};

/// Environment variable holding `NAME:PASSWORD` for HTTP Basic authentication.
pub const USER_ENV: &str = "CTSEG_DICOMWEB_USER";
/// Environment variable holding a bearer token.
pub const TOKEN_ENV: &str = "CTSEG_DICOMWEB_TOKEN";

/// How requests authenticate.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// No `Authorization` header.
    #[default]
    None,
    /// HTTP Basic authentication.
    Basic {
        /// User name.
        user: String,
        /// Password (never printed).
        password: String,
    },
    /// `Authorization: Bearer <token>` (never printed).
    Bearer(String),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

impl fmt::Display for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("no credentials"),
            Auth::Basic { user, .. } => write!(f, "user {user} (HTTP Basic)"),
            Auth::Bearer(_) => f.write_str("a bearer token"),
        }
    }
}

impl Auth {
    /// Parse `NAME:PASSWORD` (the password may itself contain `:`). The error does
    /// not repeat the argument.
    pub fn from_user_arg(arg: &str) -> Result<Auth> {
        match arg.split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(Auth::Basic {
                user: user.to_string(),
                password: password.to_string(),
            }),
            _ => Err(Error::BadInput(
                "credentials must be NAME:PASSWORD (a user name, a colon, the password)".into(),
            )),
        }
    }

    /// A bearer token read from `path`, surrounding whitespace trimmed. An
    /// unreadable or empty file, or a token with spaces or control characters, is an
    /// error naming the file (never the content).
    pub fn bearer_from_file(path: &Path) -> Result<Auth> {
        let bad = |reason: String| Error::CredentialsFile {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        Ok(Auth::Bearer(bearer_token(&text).map_err(bad)?))
    }

    /// Credentials from the values of [`USER_ENV`] and [`TOKEN_ENV`] (empty values
    /// count as unset); both set is an error.
    pub fn from_env_values(user: Option<&str>, token: Option<&str>) -> Result<Auth> {
        let user = user.filter(|v| !v.trim().is_empty());
        let token = token.filter(|v| !v.trim().is_empty());
        match (user, token) {
            (Some(_), Some(_)) => Err(Error::BadInput(format!(
                "both {USER_ENV} and {TOKEN_ENV} are set: keep only one"
            ))),
            (Some(u), None) => Auth::from_user_arg(u.trim_end_matches(['\r', '\n']))
                .map_err(|e| Error::BadInput(format!("{USER_ENV}: {e}"))),
            (None, Some(t)) => bearer_token(t)
                .map(Auth::Bearer)
                .map_err(|reason| Error::BadInput(format!("{TOKEN_ENV}: {reason}"))),
            (None, None) => Ok(Auth::None),
        }
    }

    /// Credentials from the environment ([`USER_ENV`] or [`TOKEN_ENV`]), or
    /// [`Auth::None`].
    pub fn from_env() -> Result<Auth> {
        let user = std::env::var(USER_ENV).ok();
        let token = std::env::var(TOKEN_ENV).ok();
        Auth::from_env_values(user.as_deref(), token.as_deref())
    }

    /// Whether requests carry credentials.
    pub fn is_some(&self) -> bool {
        !matches!(self, Auth::None)
    }

    /// The `Authorization` header value, if any.
    pub(crate) fn header_value(&self) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Basic { user, password } => Some(format!(
                "Basic {}",
                base64(format!("{user}:{password}").as_bytes())
            )),
            Auth::Bearer(token) => Some(format!("Bearer {token}")),
        }
    }
}

/// A trimmed, non-empty token that fits in an HTTP header.
fn bearer_token(text: &str) -> std::result::Result<String, String> {
    let token = text.trim();
    if token.is_empty() {
        return Err("it is empty".into());
    }
    if token.chars().any(|c| !c.is_ascii_graphic()) {
        return Err("the token contains spaces, control or non-ASCII characters".into());
    }
    Ok(token.to_string())
}

/// Standard base64 with padding (RFC 4648), for HTTP Basic.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_secrets() {
        let basic = Auth::Basic {
            user: "alice".into(),
            password: "s3cret-pw".into(),
        };
        let bearer = Auth::Bearer("tok-XYZ-123".into());
        for shown in [
            format!("{basic:?}"),
            format!("{basic:#?}"),
            format!("{basic}"),
            format!("{bearer:?}"),
            format!("{bearer}"),
            format!("{:?}", Some(&bearer)),
        ] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(!shown.contains("XYZ"), "{shown}");
        }
        assert!(format!("{basic:?}").contains("alice"));
    }

    #[test]
    fn user_argument() {
        assert_eq!(
            Auth::from_user_arg("bob:pa:ss").unwrap(),
            Auth::Basic {
                user: "bob".into(),
                password: "pa:ss".into()
            }
        );
        for bad in ["bob", ":pw", ""] {
            let e = Auth::from_user_arg(bad).unwrap_err().to_string();
            assert!(e.contains("NAME:PASSWORD"), "{e}");
        }
        assert!(
            !Auth::from_user_arg("hunter2")
                .unwrap_err()
                .to_string()
                .contains("hunter2")
        );
    }

    #[test]
    fn token_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "  abc.DEF-123\n").unwrap();
        assert_eq!(
            Auth::bearer_from_file(&file).unwrap(),
            Auth::Bearer("abc.DEF-123".into())
        );
        std::fs::write(&file, " \n").unwrap();
        let e = Auth::bearer_from_file(&file).unwrap_err().to_string();
        assert!(e.contains("token") && e.contains("empty"), "{e}");
        std::fs::write(&file, "two words").unwrap();
        let e = Auth::bearer_from_file(&file).unwrap_err().to_string();
        assert!(
            e.contains(&file.display().to_string()) && !e.contains("words"),
            "{e}"
        );
        let missing = dir.path().join("nope");
        let e = Auth::bearer_from_file(&missing).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn environment_values() {
        assert_eq!(Auth::from_env_values(None, None).unwrap(), Auth::None);
        assert_eq!(
            Auth::from_env_values(Some(""), Some(" ")).unwrap(),
            Auth::None
        );
        assert_eq!(
            Auth::from_env_values(None, Some("t0k\n")).unwrap(),
            Auth::Bearer("t0k".into())
        );
        assert!(matches!(
            Auth::from_env_values(Some("u:p"), None).unwrap(),
            Auth::Basic { .. }
        ));
        let e = Auth::from_env_values(Some("u:p"), Some("t")).unwrap_err();
        assert!(e.to_string().contains("both"));
        let e = Auth::from_env_values(Some("nocolon"), None).unwrap_err();
        assert!(e.to_string().contains(USER_ENV) && !e.to_string().contains("nocolon"));
    }

    #[test]
    fn basic_header_is_rfc4648_base64() {
        let auth = Auth::Basic {
            user: "Aladdin".into(),
            password: "open sesame".into(),
        };
        assert_eq!(
            auth.header_value().unwrap(),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b""), "");
    }
}
