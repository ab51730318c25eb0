//! Segmentations in memory: a u8 multilabel volume (0 = background, 1..=117 in
//! TotalSegmentator v2 order) and the label table that travels inside NIfTI files
//! (TotalSegmentator's CaretExtension XML).

use crate::structures::{Catalog, NUM_STRUCTURES};
use crate::volume::Volume;

/// A multilabel segmentation: one u8 label per voxel with the CT's geometry.
pub type LabelVolume = Volume<u8>;

/// Voxel count of every label value (index = label).
pub fn label_counts(labels: &LabelVolume) -> [u64; 256] {
    let mut counts = [0u64; 256];
    for &v in labels.data() {
        counts[v as usize] += 1;
    }
    counts
}

/// Replace every voxel value `v` by `lut[v]`.
pub fn remap(labels: &mut LabelVolume, lut: &[u8; 256]) {
    for v in labels.data_mut() {
        *v = lut[*v as usize];
    }
}

/// One entry of a label table: the voxel value and the structure name it stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelEntry {
    /// Voxel value in the file.
    pub key: u32,
    /// Structure name.
    pub name: String,
    /// Display colour (RGB, 0–1), if given.
    pub rgb: Option<[f32; 3]>,
}

/// The CaretExtension XML label table for the labels of `catalog` (the format
/// TotalSegmentator writes into its multilabel NIfTI files).
pub fn label_table_xml(catalog: &Catalog) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CaretExtension>\n  <VolumeInformation Index=\"0\">\n   <LabelTable>\n",
    );
    for s in catalog.all() {
        let [r, g, b] = s.color.map(|c| c as f64 / 255.0);
        xml.push_str(&format!(
            "<Label Key=\"{}\" Red=\"{r}\" Green=\"{g}\" Blue=\"{b}\" Alpha=\"1\"><![CDATA[{}]]></Label>\n",
            s.label, s.name
        ));
    }
    xml.push_str(
        "   </LabelTable>\n   <StudyMetaDataLinkSet>\n   </StudyMetaDataLinkSet>\n   <VolumeType><![CDATA[Label]]></VolumeType>\n  </VolumeInformation>\n</CaretExtension>\n",
    );
    xml
}

/// Parse a CaretExtension XML label table. `Ok(None)` when `bytes` is not one.
pub fn parse_label_table(bytes: &[u8]) -> Result<Option<Vec<LabelEntry>>, String> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    if !text.contains("<CaretExtension") {
        return Ok(None);
    }
    let doc =
        roxmltree::Document::parse(text).map_err(|e| format!("invalid label table XML: {e}"))?;
    let mut entries = Vec::new();
    for node in doc.descendants().filter(|n| n.has_tag_name("Label")) {
        let key = node
            .attribute("Key")
            .and_then(|k| k.trim().parse::<u32>().ok())
            .ok_or_else(|| "label table entry without a numeric Key".to_string())?;
        let name: String = node.text().unwrap_or_default().trim().to_string();
        let channel = |a: &str| node.attribute(a).and_then(|v| v.trim().parse::<f32>().ok());
        let rgb = match (channel("Red"), channel("Green"), channel("Blue")) {
            (Some(r), Some(g), Some(b)) => Some([r, g, b]),
            _ => None,
        };
        entries.push(LabelEntry { key, name, rgb });
    }
    Ok(Some(entries))
}

/// The lookup table mapping a file's label values to catalog labels, built from its
/// label table (by name) or, without one, assuming TotalSegmentator order. Returns the
/// table and warnings about names or values it could not map.
pub fn lut_for(
    table: Option<&[LabelEntry]>,
    catalog: &Catalog,
    counts: &[u64; 256],
) -> ([u8; 256], Vec<String>) {
    let mut lut = [0u8; 256];
    let mut warnings = Vec::new();
    let mut known = [false; 256];
    known[0] = true;
    match table {
        Some(entries) => {
            for e in entries {
                if e.key == 0 || e.key > 255 {
                    continue;
                }
                known[e.key as usize] = true;
                match catalog.label_of(&e.name) {
                    Some(l) => lut[e.key as usize] = l,
                    None => warnings.push(format!(
                        "label {} ({:?}) is not one of the {} structures; ignored",
                        e.key,
                        e.name,
                        catalog.len()
                    )),
                }
            }
        }
        None => {
            for v in 1..=NUM_STRUCTURES.min(catalog.len()) {
                lut[v] = v as u8;
                known[v] = true;
            }
        }
    }
    let unknown: Vec<usize> = (1..256).filter(|&v| counts[v] > 0 && !known[v]).collect();
    if !unknown.is_empty() {
        let voxels: u64 = unknown.iter().map(|&v| counts[v]).sum();
        let shown: Vec<String> = unknown.iter().take(8).map(|v| v.to_string()).collect();
        warnings.push(format!(
            "{voxels} voxels have label value{} {}{}, which {}; set to background",
            if unknown.len() == 1 { "" } else { "s" },
            shown.join(", "),
            if unknown.len() > 8 { ", …" } else { "" },
            if table.is_some() {
                "the label table does not name"
            } else {
                "lie outside 1..=117"
            }
        ));
    }
    (lut, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structures::catalog;

    #[test]
    fn label_table_round_trips_through_xml() {
        let xml = label_table_xml(catalog());
        let entries = parse_label_table(xml.as_bytes())
            .expect("valid")
            .expect("a table");
        assert_eq!(entries.len(), 117);
        assert_eq!(entries[4].key, 5);
        assert_eq!(entries[4].name, "liver");
        let liver = catalog().by_label(5).expect("liver");
        let rgb = entries[4].rgb.expect("colour");
        assert!((rgb[0] * 255.0 - liver.color[0] as f32).abs() < 1e-3);
    }

    #[test]
    fn non_caret_extensions_are_not_tables() {
        assert_eq!(parse_label_table(b"{\"json\": 1}"), Ok(None));
        assert!(
            parse_label_table(b"<CaretExtension><Label Key=\"x\">a</Label></CaretExtension>")
                .is_err()
        );
        assert!(parse_label_table(b"<CaretExtension><unclosed").is_err());
    }

    #[test]
    fn lut_maps_by_name_not_by_order() {
        let table = vec![
            LabelEntry {
                key: 1,
                name: "liver".into(),
                rgb: None,
            },
            LabelEntry {
                key: 2,
                name: "spleen".into(),
                rgb: None,
            },
            LabelEntry {
                key: 3,
                name: "tumour".into(),
                rgb: None,
            },
        ];
        let mut counts = [0u64; 256];
        counts[1] = 10;
        counts[3] = 2;
        counts[9] = 1;
        let (lut, warnings) = lut_for(Some(&table), catalog(), &counts);
        assert_eq!(lut[1], 5);
        assert_eq!(lut[2], 1);
        assert_eq!(lut[3], 0);
        assert_eq!(lut[9], 0);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    #[test]
    fn lut_without_table_keeps_catalog_order() {
        let mut counts = [0u64; 256];
        counts[117] = 1;
        counts[200] = 4;
        let (lut, warnings) = lut_for(None, catalog(), &counts);
        assert_eq!(lut[117], 117);
        assert_eq!(lut[200], 0);
        assert_eq!(warnings.len(), 1);
    }
}
