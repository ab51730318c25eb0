//! The catalog of the 117 TotalSegmentator v2 "total" structures: label, name,
//! display colour and anatomical group (from `assets/structures.json`).

use serde::Deserialize;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Number of structures the model predicts (labels `1..=NUM_STRUCTURES`).
pub const NUM_STRUCTURES: usize = 117;

/// One anatomical structure of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Structure {
    /// Label value in multilabel volumes (1..=117).
    pub label: u8,
    /// TotalSegmentator name, e.g. `liver`, `vertebrae_L1`.
    pub name: String,
    /// Display colour (sRGB).
    pub color: [u8; 3],
    /// Anatomical group shown in the structure table.
    pub group: String,
}

/// The structure catalog, in label order.
#[derive(Debug)]
pub struct Catalog {
    structures: Vec<Structure>,
    by_name: HashMap<String, u8>,
}

static CATALOG: OnceLock<Catalog> = OnceLock::new();

/// The 117-structure catalog (parsed once from the embedded asset).
pub fn catalog() -> &'static Catalog {
    CATALOG.get_or_init(|| {
        // The asset is compiled into the binary and checked by the tests below, so a
        // failure here is a build defect, never user input.
        Catalog::from_json(include_str!("../../../assets/structures.json"))
            .expect("assets/structures.json is valid (checked by tests)")
    })
}

impl Catalog {
    /// Parse a catalog and check labels run 1..=N in order with unique names.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let structures: Vec<Structure> = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut by_name = HashMap::new();
        for (i, s) in structures.iter().enumerate() {
            if s.label as usize != i + 1 {
                return Err(format!(
                    "structure {} has label {}, expected {}",
                    s.name,
                    s.label,
                    i + 1
                ));
            }
            if by_name.insert(s.name.clone(), s.label).is_some() {
                return Err(format!("structure name {} appears twice", s.name));
            }
        }
        Ok(Self {
            structures,
            by_name,
        })
    }

    /// All structures in label order.
    pub fn all(&self) -> &[Structure] {
        &self.structures
    }

    /// Number of structures.
    pub fn len(&self) -> usize {
        self.structures.len()
    }

    /// Whether the catalog is empty.
    pub fn is_empty(&self) -> bool {
        self.structures.is_empty()
    }

    /// The structure with `label`, if any.
    pub fn by_label(&self, label: u8) -> Option<&Structure> {
        (label as usize)
            .checked_sub(1)
            .and_then(|i| self.structures.get(i))
    }

    /// The label of a structure name (exact TotalSegmentator spelling).
    pub fn label_of(&self, name: &str) -> Option<u8> {
        self.by_name.get(name).copied()
    }

    /// Name of `label`, or `label_<n>` for labels outside the catalog.
    pub fn name_of(&self, label: u8) -> String {
        self.by_label(label)
            .map_or_else(|| format!("label_{label}"), |s| s.name.clone())
    }

    /// Group names in first-appearance order.
    pub fn groups(&self) -> Vec<&str> {
        let mut groups: Vec<&str> = Vec::new();
        for s in &self.structures {
            if !groups.contains(&s.group.as_str()) {
                groups.push(&s.group);
            }
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_has_117_structures_in_order() {
        let c = catalog();
        assert_eq!(c.len(), NUM_STRUCTURES);
        assert_eq!(c.by_label(1).map(|s| s.name.as_str()), Some("spleen"));
        assert_eq!(c.label_of("liver"), Some(5));
        assert_eq!(c.label_of("costal_cartilages"), Some(117));
        assert_eq!(c.by_label(0), None);
        assert_eq!(c.by_label(118), None);
        assert_eq!(c.name_of(200), "label_200");
        let groups = c.groups();
        for g in [
            "Organs",
            "Vertebrae & spine",
            "Cardiac & vessels",
            "Muscles",
            "Ribs",
            "Other bones",
        ] {
            assert!(groups.contains(&g), "missing group {g}");
        }
    }

    #[test]
    fn colours_are_distinct() {
        let mut colors: Vec<[u8; 3]> = catalog().all().iter().map(|s| s.color).collect();
        colors.sort();
        colors.dedup();
        assert_eq!(colors.len(), NUM_STRUCTURES);
    }

    #[test]
    fn asset_matches_shared_facts() {
        let Some(dir) = crate::testdata::shared_path("structures") else {
            return;
        };
        let names = std::fs::read_to_string(dir.join("total_classes.txt")).expect("readable");
        let names: Vec<&str> = names.split_whitespace().collect();
        let tsv = std::fs::read_to_string(dir.join("total_colors.tsv")).expect("readable");
        let c = catalog();
        assert_eq!(names.len(), c.len());
        for (i, n) in names.iter().enumerate() {
            assert_eq!(c.all()[i].name, *n);
        }
        for line in tsv
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("label"))
        {
            let f: Vec<&str> = line.split('\t').collect();
            let label: u8 = f[0].parse().expect("label");
            let rgb: Vec<u8> = f[2..5].iter().map(|v| v.parse().expect("colour")).collect();
            let s = c.by_label(label).expect("label in catalog");
            assert_eq!(s.name, f[1]);
            assert_eq!(s.color.to_vec(), rgb, "{}", s.name);
        }
    }

    #[test]
    fn invalid_catalogs_are_rejected() {
        assert!(Catalog::from_json("[]").is_ok());
        assert!(Catalog::from_json("nonsense").is_err());
        let gap = r#"[{"label":2,"name":"a","color":[1,2,3],"group":"g"}]"#;
        assert!(Catalog::from_json(gap).is_err());
    }
}
