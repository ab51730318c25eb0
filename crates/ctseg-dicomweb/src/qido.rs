//! QIDO-RS: searching studies and listing a study's series.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::json::{self, Attributes};
use crate::{Server, check_uid};

/// DICOM JSON media type.
const DICOM_JSON: &str = "application/dicom+json";

/// Tags of the study attributes asked for.
mod tag {
    pub const STUDY_DATE: &str = "00080020";
    pub const ACCESSION_NUMBER: &str = "00080050";
    pub const MODALITIES_IN_STUDY: &str = "00080061";
    pub const MODALITY: &str = "00080060";
    pub const STUDY_DESCRIPTION: &str = "00081030";
    pub const SERIES_DESCRIPTION: &str = "0008103E";
    pub const PATIENT_NAME: &str = "00100010";
    pub const PATIENT_ID: &str = "00100020";
    pub const STUDY_INSTANCE_UID: &str = "0020000D";
    pub const SERIES_INSTANCE_UID: &str = "0020000E";
    pub const SERIES_NUMBER: &str = "00200011";
    pub const STUDY_RELATED_SERIES: &str = "00201206";
    pub const STUDY_RELATED_INSTANCES: &str = "00201208";
    pub const SERIES_RELATED_INSTANCES: &str = "00201209";
}

/// What to search studies by; empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StudyQuery {
    /// Patient name; `*` and `?` are wildcards (matching is exact otherwise: fuzzy
    /// matching is off).
    pub patient_name: Option<String>,
    /// Patient ID.
    pub patient_id: Option<String>,
    /// Study date: `YYYYMMDD`, `YYYYMMDD-YYYYMMDD`, `YYYYMMDD-` or `-YYYYMMDD`
    /// (check with [`validate_date_range`]).
    pub study_date: Option<String>,
    /// A modality the study contains (ModalitiesInStudy), e.g. `CT`.
    pub modality: Option<String>,
    /// Accession number.
    pub accession_number: Option<String>,
    /// At most this many studies.
    pub limit: Option<u32>,
}

/// A study found by [`Server::search_studies`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StudySummary {
    /// StudyInstanceUID.
    pub study_uid: String,
    /// PatientName (alphabetic form, `^`-separated).
    pub patient_name: String,
    /// PatientID.
    pub patient_id: String,
    /// StudyDate (`YYYYMMDD`).
    pub study_date: String,
    /// StudyDescription.
    pub study_description: String,
    /// AccessionNumber.
    pub accession_number: String,
    /// ModalitiesInStudy.
    pub modalities: Vec<String>,
    /// NumberOfStudyRelatedSeries, if the server says.
    pub series_count: Option<u32>,
    /// NumberOfStudyRelatedInstances, if the server says.
    pub instance_count: Option<u32>,
}

/// A series listed by [`Server::list_series`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SeriesSummary {
    /// SeriesInstanceUID.
    pub series_uid: String,
    /// Modality.
    pub modality: String,
    /// SeriesNumber, if present.
    pub series_number: Option<i64>,
    /// SeriesDescription.
    pub series_description: String,
    /// NumberOfSeriesRelatedInstances, if the server says.
    pub instance_count: Option<u32>,
}

impl StudySummary {
    /// A study from one QIDO-RS data set.
    pub fn from_json(a: &Attributes) -> StudySummary {
        StudySummary {
            study_uid: json::string(a, tag::STUDY_INSTANCE_UID),
            patient_name: json::string(a, tag::PATIENT_NAME),
            patient_id: json::string(a, tag::PATIENT_ID),
            study_date: json::string(a, tag::STUDY_DATE),
            study_description: json::string(a, tag::STUDY_DESCRIPTION),
            accession_number: json::string(a, tag::ACCESSION_NUMBER),
            modalities: json::strings(a, tag::MODALITIES_IN_STUDY),
            series_count: count(a, tag::STUDY_RELATED_SERIES),
            instance_count: count(a, tag::STUDY_RELATED_INSTANCES),
        }
    }
}

impl SeriesSummary {
    /// A series from one QIDO-RS data set.
    pub fn from_json(a: &Attributes) -> SeriesSummary {
        SeriesSummary {
            series_uid: json::string(a, tag::SERIES_INSTANCE_UID),
            modality: json::string(a, tag::MODALITY),
            series_number: json::integer(a, tag::SERIES_NUMBER),
            series_description: json::string(a, tag::SERIES_DESCRIPTION),
            instance_count: count(a, tag::SERIES_RELATED_INSTANCES),
        }
    }
}

fn count(a: &Attributes, tag: &str) -> Option<u32> {
    json::integer(a, tag).and_then(|n| u32::try_from(n).ok())
}

/// Check a study date query: `YYYYMMDD`, `YYYYMMDD-YYYYMMDD` (start not after
/// end), `YYYYMMDD-` or `-YYYYMMDD`, with real months and days.
pub fn validate_date_range(range: &str) -> Result<()> {
    let bad = |why: &str| {
        Error::BadInput(format!(
            "study date {range:?} {why}: use YYYYMMDD or YYYYMMDD-YYYYMMDD (either side may be left open)"
        ))
    };
    let (start, end) = match range.split_once('-') {
        Some((s, e)) => (s, e),
        None => (range, range),
    };
    if start.is_empty() && end.is_empty() {
        return Err(bad("is empty"));
    }
    for date in [start, end].into_iter().filter(|d| !d.is_empty()) {
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("is not a date"));
        }
        let month: u32 = date[4..6].parse().unwrap_or(0);
        let day: u32 = date[6..8].parse().unwrap_or(0);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return Err(bad("has no such month or day"));
        }
    }
    if !start.is_empty() && !end.is_empty() && start > end {
        return Err(bad("starts after it ends"));
    }
    Ok(())
}

impl StudyQuery {
    /// The QIDO-RS query parameters (attribute filters, `fuzzymatching=false`,
    /// `limit`, `includefield`s). Checks the date range.
    pub fn parameters(&self) -> Result<Vec<(&'static str, String)>> {
        let mut params = Vec::new();
        let filters = [
            ("PatientName", &self.patient_name),
            ("PatientID", &self.patient_id),
            ("StudyDate", &self.study_date),
            ("ModalitiesInStudy", &self.modality),
            ("AccessionNumber", &self.accession_number),
        ];
        for (key, value) in filters {
            if let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                if key == "StudyDate" {
                    validate_date_range(v)?;
                }
                params.push((key, v.to_string()));
            }
        }
        params.push(("fuzzymatching", "false".into()));
        if let Some(limit) = self.limit {
            params.push(("limit", limit.to_string()));
        }
        for t in [
            tag::STUDY_INSTANCE_UID,
            tag::PATIENT_NAME,
            tag::PATIENT_ID,
            tag::STUDY_DATE,
            tag::STUDY_DESCRIPTION,
            tag::ACCESSION_NUMBER,
            tag::MODALITIES_IN_STUDY,
            tag::STUDY_RELATED_SERIES,
            tag::STUDY_RELATED_INSTANCES,
        ] {
            params.push(("includefield", t.to_string()));
        }
        Ok(params)
    }
}

impl Server {
    /// Studies matching `query` (QIDO-RS `GET {base}/studies`).
    pub fn search_studies(&self, query: &StudyQuery) -> Result<Vec<StudySummary>> {
        let url = format!("{}/studies", self.base_url);
        let sets = self.qido(&url, &query.parameters()?, None)?;
        Ok(sets.iter().map(StudySummary::from_json).collect())
    }

    /// The series of study `study_uid` (QIDO-RS `GET {base}/studies/{uid}/series`),
    /// by series number. An unknown study is [`Error::NotFound`].
    pub fn list_series(&self, study_uid: &str) -> Result<Vec<SeriesSummary>> {
        check_uid("study", study_uid)?;
        let url = format!("{}/studies/{study_uid}/series", self.base_url);
        let mut params = Vec::new();
        for t in [
            tag::SERIES_INSTANCE_UID,
            tag::MODALITY,
            tag::SERIES_NUMBER,
            tag::SERIES_DESCRIPTION,
            tag::SERIES_RELATED_INSTANCES,
        ] {
            params.push(("includefield", t.to_string()));
        }
        let sets = self.qido(&url, &params, Some(format!("study {study_uid}")))?;
        if sets.is_empty() {
            // Some servers answer an unknown study with an empty list.
            return Err(Error::NotFound {
                what: format!("study {study_uid}"),
                url: self.base_url.clone(),
            });
        }
        let mut series: Vec<SeriesSummary> = sets.iter().map(SeriesSummary::from_json).collect();
        series.sort_by_key(|s| (s.series_number.unwrap_or(i64::MAX), s.series_uid.clone()));
        Ok(series)
    }

    /// The data sets of one QIDO-RS request.
    fn qido(
        &self,
        url: &str,
        params: &[(&str, String)],
        not_found: Option<String>,
    ) -> Result<Vec<Attributes>> {
        let response = self.get(url, DICOM_JSON, params)?;
        let mut response = self.check_status(url, response, not_found)?;
        if response.status().as_u16() == 204 {
            return Ok(Vec::new());
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_vec()
            .map_err(|e| Error::Transfer {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        json::datasets(&body).map_err(|reason| Error::BadResponse {
            url: url.to_string(),
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_ranges() {
        for ok in [
            "20221208",
            "20220101-20221231",
            "20220101-",
            "-20221231",
            "20221208-20221208",
        ] {
            validate_date_range(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "-",
            "2022",
            "2022-01-01",
            "20221301",
            "20220100",
            "20221232",
            "20221231-20220101",
            "2022010a",
            "20220101-2022",
            "20220101--20220102",
        ] {
            let e = validate_date_range(bad).unwrap_err().to_string();
            assert!(e.contains("YYYYMMDD"), "{bad}: {e}");
        }
    }

    #[test]
    fn query_parameters() {
        let q = StudyQuery {
            patient_name: Some("Test^*".into()),
            modality: Some("CT".into()),
            patient_id: Some("  ".into()),
            limit: Some(5),
            ..StudyQuery::default()
        };
        let p = q.parameters().unwrap();
        assert!(p.contains(&("PatientName", "Test^*".into())));
        assert!(p.contains(&("ModalitiesInStudy", "CT".into())));
        assert!(p.contains(&("fuzzymatching", "false".into())));
        assert!(p.contains(&("limit", "5".into())));
        assert!(!p.iter().any(|(k, _)| *k == "PatientID"));
        assert_eq!(p.iter().filter(|(k, _)| *k == "includefield").count(), 9);
        let bad = StudyQuery {
            study_date: Some("2022".into()),
            ..StudyQuery::default()
        };
        assert!(bad.parameters().is_err());
    }

    #[test]
    fn summaries_from_dicom_json() {
        let sets = json::datasets(
            br#"[{"0020000D": {"vr": "UI", "Value": ["1.2.3"]},
                  "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Test^TotalSegmentator"}]},
                  "00100020": {"vr": "LO", "Value": ["TSEG-0001"]},
                  "00080020": {"vr": "DA", "Value": ["20221208"]},
                  "00080061": {"vr": "CS", "Value": ["CT"]},
                  "00201206": {"vr": "IS", "Value": [1]},
                  "00201208": {"vr": "IS", "Value": [20]}},
                 {"0020000D": {"vr": "UI"}}]"#,
        )
        .unwrap();
        let s = StudySummary::from_json(&sets[0]);
        assert_eq!(s.study_uid, "1.2.3");
        assert_eq!(s.patient_name, "Test^TotalSegmentator");
        assert_eq!(s.modalities, ["CT"]);
        assert_eq!((s.series_count, s.instance_count), (Some(1), Some(20)));
        assert_eq!(s.study_description, "");
        assert_eq!(StudySummary::from_json(&sets[1]), StudySummary::default());
        let series = SeriesSummary::from_json(
            &json::datasets(
                br#"[{"0020000E": {"vr": "UI", "Value": ["1.2.4"]},
                      "00080060": {"vr": "CS", "Value": ["CT"]},
                      "00200011": {"vr": "IS", "Value": ["3"]},
                      "00201209": {"vr": "IS", "Value": [20]}}]"#,
            )
            .unwrap()[0],
        );
        assert_eq!(series.series_uid, "1.2.4");
        assert_eq!(series.series_number, Some(3));
        assert_eq!(series.instance_count, Some(20));
    }
}
