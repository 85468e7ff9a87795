//! Local-id mapping records (rules.md, "Local ids"): where a region has not finished adopting national
//! practitioner codes, a hospital's lines carry its own id for the person; a mapping record says which
//! national code that id stood for, and when.
//!
//! One record per (institution, local id), keyed `institution|local_id` on its compacted topic and
//! versioned like the status records: a lower version than the one held is stale.
//!
//! ```json
//! {"institution": "H32080300001", "local_id": "0457",
//!  "periods": [{"code": "D320803000123", "from": "2020-01-01", "until": null}], "version": 2}
//! ```

use serde::{Deserialize, Serialize};

use super::code::{InstitutionCode, MAX_CODE_LEN, PractitionerCode};
use super::status::{Interval, RecordError, interval, json_error};
use super::time::BjTime;

/// One period of a mapping, as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingPeriodText {
    /// The national code the local id stood for.
    pub code: String,
    /// Start.
    pub from: String,
    /// End (exclusive), or null.
    #[serde(default)]
    pub until: Option<String>,
}

/// A mapping record as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingText {
    /// The institution whose local id this is.
    pub institution: String,
    /// The local id, as the institution's lines carry it.
    pub local_id: String,
    /// Which national code it stood for, when.
    #[serde(default)]
    pub periods: Vec<MappingPeriodText>,
    /// Increases with every change.
    pub version: u64,
}

/// One period of a mapping, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MappingPeriod {
    /// The packed national code (see [`PractitionerCode::National`]).
    pub national: u64,
    /// When.
    pub during: Interval,
}

/// A mapping record, validated: periods sorted by start and not overlapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingRecord {
    /// The institution.
    pub institution: InstitutionCode,
    /// The local id (1 to 30 printable ASCII characters).
    pub local_id: Box<str>,
    /// The periods.
    pub periods: Vec<MappingPeriod>,
    /// Version.
    pub version: u64,
}

impl MappingRecord {
    /// The national code the local id stood for at `t`.
    #[inline]
    pub fn at(&self, t: BjTime) -> Option<u64> {
        self.periods.iter().find(|p| p.during.contains(t)).map(|p| p.national)
    }

    /// The key of the record on its topic: `institution|local_id`.
    pub fn key(&self) -> String {
        format!("{}|{}", self.institution, self.local_id)
    }
}

impl MappingText {
    /// Parses one JSON line.
    pub fn from_json(bytes: &[u8]) -> Result<Self, RecordError> {
        serde_json::from_slice(bytes).map_err(json_error)
    }

    /// Validates into typed values. A mapped code must be national (a mapping to another local id maps
    /// nothing), and two periods may not overlap: a line's person must be one person.
    pub fn validate(&self) -> Result<MappingRecord, RecordError> {
        let institution = InstitutionCode::parse(self.institution.trim())
            .map_err(|error| RecordError::Code { field: "institution".into(), error })?;
        let local_id = self.local_id.trim();
        PractitionerCode::parse(local_id).map_err(|error| RecordError::Code { field: "local_id".into(), error })?;
        debug_assert!(local_id.len() <= MAX_CODE_LEN);
        let mut periods = self
            .periods
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let at = || format!("periods[{i}]");
                let national = match PractitionerCode::parse(p.code.trim()) {
                    Ok(PractitionerCode::National(k)) => k,
                    Ok(PractitionerCode::Legacy(_)) => {
                        return Err(RecordError::Invalid {
                            field: format!("{}.code", at()),
                            why: "not a national practitioner code",
                        });
                    }
                    Err(error) => return Err(RecordError::Code { field: format!("{}.code", at()), error }),
                };
                Ok(MappingPeriod { national, during: interval(&p.from, p.until.as_deref(), at)? })
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        periods.sort_by_key(|p| (p.during.from, p.during.until));
        if let Some(i) = periods.windows(2).position(|w| w[1].during.from < w[0].during.until) {
            return Err(RecordError::Invalid {
                field: format!("periods[{}]", i + 1),
                why: "overlaps another period: a local id names one person at a time",
            });
        }
        Ok(MappingRecord { institution, local_id: local_id.into(), periods, version: self.version })
    }

    /// The record's key on its topic: `institution|local_id`, as written (trimmed).
    pub fn key(&self) -> String {
        format!("{}|{}", self.institution.trim(), self.local_id.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(json: &str) -> Result<MappingRecord, RecordError> {
        MappingText::from_json(json.as_bytes())?.validate()
    }

    #[test]
    fn a_mapping_names_one_national_code_at_a_time_rules_md_local_ids() {
        let r = rec(r#"{"institution":"H32080300001","local_id":" 0457 ","version":3,"periods":[
            {"code":"D320803000124","from":"2024-01-01"},
            {"code":"D320803000123","from":"2020-01-01","until":"2024-01-01"}]}"#)
        .unwrap();
        assert_eq!(&*r.local_id, "0457");
        assert_eq!(r.key(), "H32080300001|0457");
        let code = |s| match PractitionerCode::parse(s).unwrap() {
            PractitionerCode::National(k) => k,
            PractitionerCode::Legacy(_) => unreachable!(),
        };
        assert_eq!(r.at(BjTime::parse("2023-12-31 23:59:59").unwrap()), Some(code("D320803000123")));
        assert_eq!(r.at(BjTime::parse("2024-01-01").unwrap()), Some(code("D320803000124")));
        assert_eq!(r.at(BjTime::parse("2019-12-31").unwrap()), None);
    }

    #[test]
    fn refuses_overlaps_legacy_targets_and_bad_codes_naming_the_field() {
        let overlap = rec(r#"{"institution":"H32080300001","local_id":"0457","version":1,"periods":[
            {"code":"D320803000123","from":"2020-01-01","until":"2024-06-01"},
            {"code":"D320803000124","from":"2024-01-01"}]}"#);
        assert!(matches!(overlap, Err(RecordError::Invalid { ref field, .. }) if field == "periods[1]"), "{overlap:?}");
        let legacy = rec(r#"{"institution":"H32080300001","local_id":"0457","version":1,"periods":[
            {"code":"0458","from":"2020-01-01"}]}"#);
        assert!(matches!(legacy, Err(RecordError::Invalid { ref field, .. }) if field == "periods[0].code"));
        let inst = rec(r#"{"institution":"X1","local_id":"0457","version":1}"#);
        assert!(matches!(inst, Err(RecordError::Code { ref field, .. }) if field == "institution"));
        let id = rec(r#"{"institution":"H32080300001","local_id":"","version":1}"#);
        assert!(matches!(id, Err(RecordError::Code { ref field, .. }) if field == "local_id"));
        assert!(rec(r#"{"institution":"H32080300001","local_id":"1","periods":[]}"#).is_err());
    }
}
