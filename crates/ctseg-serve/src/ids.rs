//! Image and label identifiers: what a client may name a datastore entry. An ID is
//! a plain file-name stem, so it can never reach outside the datastore folder.

/// Longest accepted ID, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// File endings a NIfTI image or label may carry; stripped from IDs given with one.
const ENDINGS: [&str; 2] = [".nii.gz", ".nii"];

/// Check `raw` as an image/label ID and return it without a NIfTI ending (MONAI Label
/// clients pass either `s0001` or `s0001.nii.gz`). Allowed: ASCII letters, digits,
/// `.`, `_` and `-`, starting with a letter or digit, at most [`MAX_ID_LEN`] bytes,
/// no `..`. Everything else (slashes, `..`, spaces, control characters) is refused
/// with the reason.
pub fn parse_id(raw: &str) -> Result<String, String> {
    let mut id = raw;
    for ending in ENDINGS {
        if let Some(stem) = id.strip_suffix(ending) {
            id = stem;
            break;
        }
    }
    if id.is_empty() {
        return Err("an empty ID".into());
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!("an ID longer than {MAX_ID_LEN} characters"));
    }
    if id.contains("..") {
        return Err(format!("{raw:?} contains \"..\""));
    }
    let first_ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "{raw:?} is not a valid ID (letters, digits, '.', '_' and '-' only, starting with a letter or digit)"
        ));
    }
    Ok(id.to_string())
}

/// The ID a client's file name implies: its base name without the NIfTI ending.
pub fn id_from_file_name(file_name: &str) -> Result<String, String> {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    parse_id(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ids_pass_and_endings_are_stripped() {
        assert_eq!(parse_id("s0001").as_deref(), Ok("s0001"));
        assert_eq!(parse_id("s0001.nii.gz").as_deref(), Ok("s0001"));
        assert_eq!(parse_id("case_01-a.v2.nii").as_deref(), Ok("case_01-a.v2"));
    }

    #[test]
    fn ids_that_could_leave_the_datastore_are_refused() {
        for bad in [
            "../etc/passwd",
            "..",
            "a/../../b",
            "/abs",
            "a/b",
            "a\\b",
            ".hidden",
            "",
            ".nii.gz",
            "a..b",
            "sp ace",
            "nul\0",
            "é",
        ] {
            assert!(parse_id(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_id(&"a".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(parse_id(&"a".repeat(MAX_ID_LEN)).is_ok());
    }

    #[test]
    fn file_names_give_their_stem() {
        assert_eq!(
            id_from_file_name("/tmp/x/s0002.nii.gz").as_deref(),
            Ok("s0002")
        );
        assert_eq!(id_from_file_name("C:\\a\\ct.nii").as_deref(), Ok("ct"));
        assert!(id_from_file_name("../..").is_err());
    }
}
