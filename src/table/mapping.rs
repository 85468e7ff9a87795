//! The local-id mapping table (rules.md, "Local ids"): (institution, local id) → the national code it
//! stood for, by period. Small — it lists only the ids of institutions still migrating — so it is an
//! ordinary hash map of validated records, copied whole when a batch of updates is published, like the
//! institution table.

use rustc_hash::FxHashMap;

use super::practitioner::{Upsert, mix};
use crate::record::{BjTime, InstitutionCode, MappingRecord};

/// The mapping table.
#[derive(Clone, Debug, Default)]
pub struct MappingTable {
    by_institution: FxHashMap<InstitutionCode, FxHashMap<Box<str>, MappingRecord>>,
    len: usize,
    fingerprint: u64,
}

fn fingerprint(rec: &MappingRecord) -> u64 {
    let id =
        rec.local_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    mix(rec.institution.packed() ^ mix(id ^ mix(rec.version ^ 0x6d1f_2a3b_9c4e_5f70)))
}

impl MappingTable {
    /// Records held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Order-independent fingerprint of (institution, local id, version); 0 when empty.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The record of a local id at an institution.
    #[inline]
    pub fn get(&self, institution: InstitutionCode, local_id: &str) -> Option<&MappingRecord> {
        self.by_institution.get(&institution)?.get(local_id)
    }

    /// The packed national code a local id stood for at `t`.
    #[inline]
    pub fn national(&self, institution: InstitutionCode, local_id: &str, t: BjTime) -> Option<u64> {
        self.get(institution, local_id)?.at(t)
    }

    /// Version wins, as for the status records.
    pub fn upsert(&mut self, rec: MappingRecord) -> Upsert {
        let ids = self.by_institution.entry(rec.institution).or_default();
        let outcome = match ids.get(&rec.local_id) {
            Some(old) if rec.version <= old.version => return Upsert::Stale,
            Some(old) => {
                self.fingerprint = self.fingerprint.wrapping_sub(fingerprint(old));
                Upsert::Replaced
            }
            None => {
                self.len += 1;
                Upsert::Inserted
            }
        };
        self.fingerprint = self.fingerprint.wrapping_add(fingerprint(&rec));
        ids.insert(rec.local_id.clone(), rec);
        outcome
    }

    /// Deletes a mapping (a tombstone). Returns true if it was held.
    pub fn delete(&mut self, institution: InstitutionCode, local_id: &str) -> bool {
        let Some(ids) = self.by_institution.get_mut(&institution) else { return false };
        let Some(old) = ids.remove(local_id) else { return false };
        self.fingerprint = self.fingerprint.wrapping_sub(fingerprint(&old));
        self.len -= 1;
        if ids.is_empty() {
            self.by_institution.remove(&institution);
        }
        true
    }

    /// Every record, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &MappingRecord> {
        self.by_institution.values().flat_map(|ids| ids.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::MappingText;

    fn rec(id: &str, version: u64, code: &str) -> MappingRecord {
        let json = format!(
            r#"{{"institution":"H32080300001","local_id":"{id}","version":{version},"periods":[{{"code":"{code}","from":"2020-01-01"}}]}}"#
        );
        MappingText::from_json(json.as_bytes()).unwrap().validate().unwrap()
    }

    #[test]
    fn version_wins_and_the_fingerprint_follows_the_content() {
        let inst = InstitutionCode::parse("H32080300001").unwrap();
        let t = BjTime::parse("2026-01-01").unwrap();
        let mut a = MappingTable::default();
        assert_eq!(a.fingerprint(), 0);
        assert_eq!(a.upsert(rec("0457", 1, "D320803000001")), Upsert::Inserted);
        assert_eq!(a.upsert(rec("0457", 2, "D320803000002")), Upsert::Replaced);
        assert_eq!(a.upsert(rec("0457", 2, "D320803000003")), Upsert::Stale);
        assert_eq!(a.upsert(rec("0458", 1, "D320803000004")), Upsert::Inserted);
        assert_eq!(a.len(), 2);
        let d2 = match crate::record::PractitionerCode::parse("D320803000002").unwrap() {
            crate::record::PractitionerCode::National(k) => k,
            crate::record::PractitionerCode::Legacy(_) => unreachable!(),
        };
        assert_eq!(a.national(inst, "0457", t), Some(d2));
        assert_eq!(a.national(inst, "0459", t), None);
        assert_eq!(a.national(InstitutionCode::parse("H32080300002").unwrap(), "0457", t), None);

        let mut b = MappingTable::default();
        b.upsert(rec("0458", 1, "D320803000004"));
        b.upsert(rec("0457", 2, "D320803000002"));
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert!(a.delete(inst, "0458"));
        assert!(!a.delete(inst, "0458"));
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert!(b.delete(inst, "0458") && b.delete(inst, "0457"));
        assert_eq!((b.fingerprint(), b.len()), (0, 0));
    }
}
