//! The institution table: institutions with a status history, and the departments a period names.
//!
//! It is small (records.md: "the institution table lists only institutions with a status history"),
//! so it is an ordinary hash map of validated records, copied whole when a batch of updates is published.

use bincode::{Decode, Encode};
use rustc_hash::FxHashMap;

use super::practitioner::{Upsert, mix};
use crate::record::{BjTime, InstitutionCode, InstitutionPeriod, InstitutionRecord, Interval, Status};

/// What the institution checks (rules.md checks 1-3) find at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstitutionStatus {
    /// A whole-institution period at `t`: terminated wins over suspended.
    pub whole: Option<Status>,
    /// A department period at `t` names the claim's department.
    pub department_suspended: bool,
}

/// The institution table.
#[derive(Clone, Debug, Default)]
pub struct InstitutionTable {
    records: FxHashMap<InstitutionCode, InstitutionRecord>,
    fingerprint: u64,
}

fn fingerprint(code: InstitutionCode, version: u64) -> u64 {
    mix(code.packed() ^ mix(version ^ 0x1a5f_0c3e_7d21_b946))
}

impl InstitutionTable {
    /// Institutions held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Order-independent fingerprint of (code, version) pairs.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The record of an institution, if it has a status history.
    #[inline]
    pub fn get(&self, code: InstitutionCode) -> Option<&InstitutionRecord> {
        self.records.get(&code)
    }

    /// Version wins, as for practitioners.
    pub fn upsert(&mut self, rec: InstitutionRecord) -> Upsert {
        if self.is_stale(&rec) {
            return Upsert::Stale;
        }
        let outcome = match self.records.get(&rec.code) {
            Some(old) => {
                self.fingerprint = self.fingerprint.wrapping_sub(fingerprint(old.code, old.version));
                Upsert::Replaced
            }
            None => Upsert::Inserted,
        };
        self.fingerprint = self.fingerprint.wrapping_add(fingerprint(rec.code, rec.version));
        self.records.insert(rec.code, rec);
        outcome
    }

    /// The record is not newer than the one held: [`InstitutionTable::upsert`] would ignore it.
    pub fn is_stale(&self, rec: &InstitutionRecord) -> bool {
        self.records.get(&rec.code).is_some_and(|old| rec.version <= old.version)
    }

    /// Deletes an institution (a tombstone). Returns true if it was held.
    pub fn delete(&mut self, code: InstitutionCode) -> bool {
        match self.records.remove(&code) {
            Some(old) => {
                self.fingerprint = self.fingerprint.wrapping_sub(fingerprint(old.code, old.version));
                true
            }
            None => false,
        }
    }

    /// Every record, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &InstitutionRecord> {
        self.records.values()
    }

    pub(crate) fn stored(&self) -> Vec<StoredInstitution> {
        let mut v: Vec<_> = self.records.values().map(StoredInstitution::from).collect();
        // Sorted so that the same table always gives the same snapshot bytes.
        v.sort_by_key(|s| s.code);
        v
    }

    pub(crate) fn from_stored(stored: Vec<StoredInstitution>) -> Result<Self, String> {
        let mut t = InstitutionTable::default();
        for s in stored {
            if t.upsert(s.into_record()?) != Upsert::Inserted {
                return Err("an institution appears twice".into());
            }
        }
        Ok(t)
    }
}

/// What checks 1-3 see for one institution at `t` in `department`.
pub fn institution_status(rec: &InstitutionRecord, t: BjTime, department: Option<&str>) -> InstitutionStatus {
    let mut whole = None;
    let mut department_suspended = false;
    for p in rec.periods.iter().filter(|p| p.during.contains(t)) {
        match &p.departments {
            None => {
                if whole != Some(Status::Terminated) {
                    whole = Some(p.status);
                }
            }
            // A department period of either status stops the department: rules.md has one reason
            // for it, DEPARTMENT_SUSPENDED (Shaoguan Art. 37(5), 44).
            Some(list) => {
                if department.is_some_and(|d| list.iter().any(|x| &**x == d)) {
                    department_suspended = true;
                }
            }
        }
    }
    InstitutionStatus { whole, department_suspended }
}

/// An institution record as a snapshot stores it.
#[derive(Clone, Debug, Encode, Decode)]
pub(crate) struct StoredInstitution {
    code: u64,
    version: u64,
    periods: Vec<StoredPeriod>,
}

/// A period as a snapshot stores it: terminated?, from, until, departments, basis.
type StoredPeriod = (bool, i64, i64, Option<Vec<String>>, Option<String>);

impl From<&InstitutionRecord> for StoredInstitution {
    fn from(r: &InstitutionRecord) -> Self {
        StoredInstitution {
            code: r.code.packed(),
            version: r.version,
            periods: r
                .periods
                .iter()
                .map(|p| {
                    (
                        p.status == Status::Terminated,
                        p.during.from.secs(),
                        p.during.until.secs(),
                        p.departments.as_ref().map(|d| d.iter().map(|s| s.to_string()).collect()),
                        p.basis.clone(),
                    )
                })
                .collect(),
        }
    }
}

impl StoredInstitution {
    fn into_record(self) -> Result<InstitutionRecord, String> {
        let code = InstitutionCode::from_packed(self.code);
        // Re-validate the code: a snapshot is data from outside the process.
        InstitutionCode::parse(&code.to_string()).map_err(|e| format!("institution code: {e}"))?;
        Ok(InstitutionRecord {
            code,
            version: self.version,
            periods: self
                .periods
                .into_iter()
                .map(|(terminated, from, until, departments, basis)| InstitutionPeriod {
                    status: if terminated { Status::Terminated } else { Status::Suspended },
                    during: Interval { from: BjTime::from_secs(from), until: BjTime::from_secs(until) },
                    departments: departments.map(|d| d.into_iter().map(Into::into).collect()),
                    basis,
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::InstitutionText;

    fn inst(json: &str) -> InstitutionRecord {
        InstitutionText::from_json(json.as_bytes()).unwrap().validate().unwrap()
    }

    #[test]
    fn whole_and_department_periods() {
        let r = inst(
            r#"{"code":"H11010500001","version":3,"periods":[
            {"status":"suspended","from":"2026-05-01","until":"2026-08-01","departments":null},
            {"status":"terminated","from":"2026-07-01","until":null,"departments":null},
            {"status":"suspended","from":"2026-02-01","until":"2026-03-01","departments":["A03.06"]}]}"#,
        );
        let at = |t: &str, d: Option<&str>| institution_status(&r, BjTime::parse(t).unwrap(), d);
        assert_eq!(at("2026-05-01", None).whole, Some(Status::Suspended));
        assert_eq!(at("2026-07-15", None).whole, Some(Status::Terminated));
        assert_eq!(at("2026-04-30 23:59:59", None).whole, None);
        assert!(at("2026-02-10", Some("A03.06")).department_suspended);
        assert!(!at("2026-02-10", Some("A03.07")).department_suspended);
        assert!(!at("2026-02-10", None).department_suspended);
        assert!(!at("2026-03-01", Some("A03.06")).department_suspended);
    }

    #[test]
    fn version_wins() {
        let mut t = InstitutionTable::default();
        let v3 = inst(r#"{"code":"H11010500001","version":3,"periods":[]}"#);
        let v2 = inst(r#"{"code":"H11010500001","version":2,"periods":[]}"#);
        assert_eq!(t.upsert(v3.clone()), Upsert::Inserted);
        assert_eq!(t.upsert(v2), Upsert::Stale);
        assert_eq!(t.get(v3.code).unwrap().version, 3);
        assert!(t.delete(v3.code));
        assert_eq!(t.fingerprint(), 0);
    }
}
