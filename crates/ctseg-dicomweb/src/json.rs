//! Reading the DICOM JSON model (PS3.18 §F.2): a data set is an object keyed by
//! eight-hex-digit tags (`"0020000D"`), each `{"vr": …, "Value": [...]}`. Reading is
//! tolerant: a missing attribute or value reads as empty.

use serde_json::{Map, Value};

/// One data set of a DICOM JSON answer.
pub type Attributes = Map<String, Value>;

/// The values of `tag` (e.g. `"0020000D"`), empty if absent.
fn values<'a>(attrs: &'a Attributes, tag: &str) -> &'a [Value] {
    attrs
        .get(tag)
        .or_else(|| attrs.get(&tag.to_ascii_lowercase()))
        .and_then(|a| a.get("Value"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// One value as text: strings as they are, numbers printed, person names by their
/// alphabetic form; anything else is empty.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Object(o) => o
            .get("Alphabetic")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

/// All values of `tag` as text.
pub fn strings(attrs: &Attributes, tag: &str) -> Vec<String> {
    values(attrs, tag)
        .iter()
        .map(text)
        .filter(|s| !s.is_empty())
        .collect()
}

/// The values of `tag` as text joined by `\` (DICOM's separator); empty if absent.
pub fn string(attrs: &Attributes, tag: &str) -> String {
    strings(attrs, tag).join("\\")
}

/// The first value of `tag` as an integer (from a number or a numeric string).
pub fn integer(attrs: &Attributes, tag: &str) -> Option<i64> {
    match values(attrs, tag).first()? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The items of a sequence attribute (each a data set); empty if absent.
pub fn items<'a>(attrs: &'a Attributes, tag: &str) -> Vec<&'a Attributes> {
    values(attrs, tag)
        .iter()
        .filter_map(Value::as_object)
        .collect()
}

/// The data sets of a DICOM JSON answer (a JSON array of objects).
pub fn datasets(body: &[u8]) -> Result<Vec<Attributes>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    match value {
        Value::Array(list) => list
            .into_iter()
            .map(|v| match v {
                Value::Object(o) => Ok(o),
                other => Err(format!(
                    "expected a list of DICOM JSON objects, found an element {}",
                    kind(&other)
                )),
            })
            .collect(),
        Value::Object(o) => Ok(vec![o]),
        other => Err(format!(
            "expected a list of DICOM JSON objects, found {}",
            kind(&other)
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerant_reading() {
        let sets = datasets(
            br#"[{
              "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
              "00080061": {"vr": "CS", "Value": ["CT", "SEG"]},
              "00201206": {"vr": "IS", "Value": [3]},
              "00201208": {"vr": "IS", "Value": ["20"]},
              "00200011": {"vr": "IS", "Value": [2.0]},
              "00081030": {"vr": "LO"},
              "00100020": {"vr": "LO", "Value": []},
              "0008103e": {"vr": "LO", "Value": [null, "x "]},
              "00081199": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2"]}}]}
            }]"#,
        )
        .unwrap();
        let a = &sets[0];
        assert_eq!(string(a, "00100010"), "Doe^Jane");
        assert_eq!(strings(a, "00080061"), ["CT", "SEG"]);
        assert_eq!(string(a, "00080061"), "CT\\SEG");
        assert_eq!(integer(a, "00201206"), Some(3));
        assert_eq!(integer(a, "00201208"), Some(20));
        assert_eq!(integer(a, "00200011"), Some(2));
        assert_eq!(string(a, "00081030"), "");
        assert_eq!(string(a, "00100020"), "");
        assert_eq!(string(a, "0008103E"), "x");
        assert_eq!(string(a, "99999999"), "");
        assert_eq!(integer(a, "99999999"), None);
        let refs = items(a, "00081199");
        assert_eq!(refs.len(), 1);
        assert_eq!(string(refs[0], "00081155"), "1.2");
    }

    #[test]
    fn empty_and_bad_answers() {
        assert!(datasets(b"").unwrap().is_empty());
        assert!(datasets(b" \n").unwrap().is_empty());
        assert!(datasets(b"[]").unwrap().is_empty());
        assert_eq!(datasets(b"{}").unwrap().len(), 1);
        assert!(datasets(b"[1]").unwrap_err().contains("a number"));
        assert!(datasets(b"<html>").unwrap_err().contains("invalid JSON"));
    }
}
