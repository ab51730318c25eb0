//! Coded concepts of DICOM Segmentations: the SNOMED CT code of each of the 117
//! structures (`assets/structure_codes.tsv`), the fixed codes of the Segmentation
//! IOD, and the CIELab display colour of an sRGB colour.

use std::sync::OnceLock;

use crate::structures::NUM_STRUCTURES;

/// A coded concept: value, coding scheme and meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    /// CodeValue.
    pub value: String,
    /// CodingSchemeDesignator (`SCT`, `DCM`).
    pub scheme: String,
    /// CodeMeaning.
    pub meaning: String,
}

impl Code {
    /// A code from its three parts.
    pub fn new(value: &str, scheme: &str, meaning: &str) -> Self {
        Code {
            value: value.into(),
            scheme: scheme.into(),
            meaning: meaning.into(),
        }
    }

    /// Whether two codes name the same concept (value and scheme; meanings vary).
    pub fn same_concept(&self, other: &Code) -> bool {
        self.value == other.value && self.scheme.eq_ignore_ascii_case(&other.scheme)
    }
}

/// The SNOMED CT property of one structure: its type and laterality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructureCode {
    /// SegmentedPropertyTypeCodeSequence.
    pub type_code: Code,
    /// SegmentedPropertyTypeModifierCodeSequence (laterality), if any.
    pub modifier: Option<Code>,
}

/// SegmentedPropertyCategory of every structure: SCT 91723000 "Anatomical Structure".
pub fn anatomical_structure() -> Code {
    Code::new("91723000", "SCT", "Anatomical Structure")
}

/// AlgorithmFamily of ctseg's model: DCM 123110 "Artificial Intelligence".
pub fn artificial_intelligence() -> Code {
    Code::new("123110", "DCM", "Artificial Intelligence")
}

/// PurposeOfReference of a source image: DCM 121322.
pub fn source_image_purpose() -> Code {
    Code::new(
        "121322",
        "DCM",
        "Source image for image processing operation",
    )
}

/// DerivationCode of a segmentation: DCM 113076 "Segmentation".
pub fn segmentation_derivation() -> Code {
    Code::new("113076", "DCM", "Segmentation")
}

fn laterality(word: &str) -> Option<Code> {
    match word {
        "Right" => Some(Code::new("24028007", "SCT", "Right")),
        "Left" => Some(Code::new("7771000", "SCT", "Left")),
        _ => None,
    }
}

static CODES: OnceLock<Vec<StructureCode>> = OnceLock::new();

/// The codes of the 117 structures, index `label - 1` (parsed once from the
/// embedded asset).
pub fn structure_codes() -> &'static [StructureCode] {
    CODES.get_or_init(|| {
        // The asset is compiled in and checked by the tests below: a failure here is
        // a build defect, never user input.
        parse_codes(include_str!("../../../../../../assets/structure_codes.tsv"))
            .expect("assets/structure_codes.tsv is valid (checked by tests)")
    })
}

/// The code of structure `label` (1..=117).
pub fn structure_code(label: u8) -> Option<&'static StructureCode> {
    (label as usize)
        .checked_sub(1)
        .and_then(|i| structure_codes().get(i))
}

/// The structure a type code and modifier stand for, when exactly one does.
pub fn label_for_code(type_code: &Code, modifier: Option<&Code>) -> Option<u8> {
    let mut found = structure_codes().iter().enumerate().filter(|(_, c)| {
        c.type_code.same_concept(type_code)
            && match (&c.modifier, modifier) {
                (None, None) => true,
                (Some(a), Some(b)) => a.same_concept(b),
                _ => false,
            }
    });
    let first = found.next()?;
    // Two structures share the code (the kidney cysts): the code alone says nothing.
    if found.next().is_some() {
        return None;
    }
    u8::try_from(first.0 + 1).ok()
}

fn parse_codes(text: &str) -> Result<Vec<StructureCode>, String> {
    let mut codes = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("label\t") && !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 4 {
            return Err(format!("short line: {line}"));
        }
        let label: usize = f[0].parse().map_err(|_| format!("bad label: {line}"))?;
        if label != codes.len() + 1 {
            return Err(format!("label {label} out of order"));
        }
        if f[2].is_empty() || f[3].is_empty() {
            return Err(format!("label {label} has no code"));
        }
        let modifier = f.get(4).map(|m| m.trim()).filter(|m| !m.is_empty());
        let modifier = match modifier {
            None => None,
            Some(m) => Some(laterality(m).ok_or_else(|| format!("unknown modifier {m}"))?),
        };
        codes.push(StructureCode {
            type_code: Code::new(f[2], "SCT", f[3]),
            modifier,
        });
    }
    if codes.len() != NUM_STRUCTURES {
        return Err(format!(
            "{} structures, expected {NUM_STRUCTURES}",
            codes.len()
        ));
    }
    Ok(codes)
}

/// RecommendedDisplayCIELabValue of an sRGB colour: L*a*b* (D65) scaled to 16 bits
/// as DICOM stores it (PS3.3 C.10.7.1.1; the conversion pixelmed and highdicom use).
pub fn cielab_from_srgb(rgb: [u8; 3]) -> [u16; 3] {
    let linear = |c: u8| {
        let c = f64::from(c) / 255.0;
        100.0
            * if c > 0.04045 {
                ((c + 0.055) / 1.055).powf(2.4)
            } else {
                c / 12.92
            }
    };
    let (r, g, b) = (linear(rgb[0]), linear(rgb[1]), linear(rgb[2]));
    let x = r * 0.4124 + g * 0.3576 + b * 0.1805;
    let y = r * 0.2126 + g * 0.7152 + b * 0.0722;
    let z = r * 0.0193 + g * 0.1192 + b * 0.9505;
    let f = |t: f64| {
        if t >= 8.856_451_679_035_631e-3 {
            t.cbrt()
        } else {
            (841.0 / 108.0) * t + 4.0 / 29.0
        }
    };
    let (fx, fy, fz) = (f(x / 95.047), f(y / 100.0), f(z / 108.883));
    let l = (116.0 * fy - 16.0).clamp(0.0, 100.0);
    let a = (500.0 * (fx - fy)).clamp(-128.0, 127.0);
    let bb = (200.0 * (fy - fz)).clamp(-128.0, 127.0);
    let scale = |v: f64| (v * 65535.0).round() as u16;
    [
        scale(l / 100.0),
        scale((a + 128.0) / 255.0),
        scale((bb + 128.0) / 255.0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structures::catalog;

    #[test]
    fn every_structure_has_a_code() {
        let codes = structure_codes();
        assert_eq!(codes.len(), NUM_STRUCTURES);
        let liver = structure_code(catalog().label_of("liver").expect("liver")).expect("code");
        assert_eq!(liver.type_code.value, "10200004");
        assert!(liver.modifier.is_none());
        let kidney = structure_code(2).expect("kidney_right");
        assert_eq!(kidney.type_code.value, "64033007");
        assert_eq!(
            kidney.modifier.as_ref().map(|m| m.value.as_str()),
            Some("24028007")
        );
        assert_eq!(structure_code(0), None);
        assert_eq!(structure_code(118), None);
    }

    #[test]
    fn codes_map_back_to_their_structure_unless_shared() {
        for (i, c) in structure_codes().iter().enumerate() {
            let label = (i + 1) as u8;
            let name = catalog().name_of(label);
            match label_for_code(&c.type_code, c.modifier.as_ref()) {
                Some(l) => assert_eq!(l, label, "{name}"),
                None => assert!(name.starts_with("kidney_cyst"), "{name} has no unique code"),
            }
        }
    }

    #[test]
    fn codes_match_the_shared_table() {
        let Some(dir) = crate::testdata::shared_path("structures") else {
            return;
        };
        let tsv = std::fs::read_to_string(dir.join("total_colors.tsv")).expect("readable");
        let rows: Vec<Vec<&str>> = tsv
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("label"))
            .map(|l| l.split('\t').collect())
            .collect();
        assert_eq!(rows.len(), NUM_STRUCTURES);
        for (row, code) in rows.iter().zip(structure_codes()) {
            assert_eq!(code.type_code.value, row[5], "{}", row[1]);
            assert_eq!(code.type_code.meaning, row[6], "{}", row[1]);
            let modifier = row.get(7).copied().unwrap_or("");
            assert_eq!(
                code.modifier.as_ref().map_or("", |m| m.meaning.as_str()),
                modifier,
                "{}",
                row[1]
            );
        }
    }

    #[test]
    fn cielab_matches_known_values() {
        // As highdicom 0.27's CIELabColor.from_rgb gives them.
        assert_eq!(cielab_from_srgb([255, 255, 255]), [65535, 32897, 32893]);
        assert_eq!(cielab_from_srgb([0, 0, 0]), [0, 32896, 32896]);
        assert_eq!(cielab_from_srgb([255, 0, 0]), [34886, 53484, 50172]);
        assert_eq!(cielab_from_srgb([50, 170, 60]), [40266, 18801, 44698]);
    }

    #[test]
    fn bad_tables_are_refused() {
        assert!(parse_codes("").is_err());
        assert!(parse_codes("2\tx\t1\tX\t\n").is_err());
        assert!(parse_codes("1\tx\t1\tX\tUp\n").is_err());
    }
}
