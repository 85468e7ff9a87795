//! The decision and the dead letter: what leaves claimgate for every claim line (records.md).

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::claim::Claim;
use super::json::write_str;
use super::role::Role;

/// Accept or reject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The fund pays the line.
    Accept,
    /// The fund pays nothing for the line.
    Reject,
}

impl Verdict {
    /// The word used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Reject => "reject",
        }
    }
}

/// The reason of a decision (rules.md, "Order of checks").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// Every check passed.
    Ok,
    /// An emergency passed a failed check that the profile lets emergencies pass.
    EmergencyOverride,
    /// Check 1.
    InstitutionTerminated,
    /// Check 2.
    InstitutionSuspended,
    /// Check 3.
    DepartmentSuspended,
    /// Check 4.
    PractitionerUnregistered,
    /// Check 4 for a local id that the mapping table does not map to a national code at the service
    /// time (rules.md, "Local ids").
    PractitionerCodeUnmapped,
    /// Check 5.
    PractitionerNotRegisteredHere,
    /// Check 6.
    PractitionerTerminated,
    /// Check 7.
    PractitionerSuspended,
}

impl Reason {
    /// How many reasons there are: the length of arrays indexed by [`Reason::index`].
    pub const COUNT: usize = 10;

    /// Every reason, in check order after the two accepting ones.
    pub const ALL: [Reason; Reason::COUNT] = [
        Reason::Ok,
        Reason::EmergencyOverride,
        Reason::InstitutionTerminated,
        Reason::InstitutionSuspended,
        Reason::DepartmentSuspended,
        Reason::PractitionerUnregistered,
        Reason::PractitionerCodeUnmapped,
        Reason::PractitionerNotRegisteredHere,
        Reason::PractitionerTerminated,
        Reason::PractitionerSuspended,
    ];

    /// The failing reasons, in the order rules.md checks them (unregistered and unmapped are the two
    /// forms of check 4).
    pub const CHECKS: [Reason; 8] = [
        Reason::InstitutionTerminated,
        Reason::InstitutionSuspended,
        Reason::DepartmentSuspended,
        Reason::PractitionerUnregistered,
        Reason::PractitionerCodeUnmapped,
        Reason::PractitionerNotRegisteredHere,
        Reason::PractitionerTerminated,
        Reason::PractitionerSuspended,
    ];

    /// The name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "OK",
            Reason::EmergencyOverride => "EMERGENCY_OVERRIDE",
            Reason::InstitutionTerminated => "INSTITUTION_TERMINATED",
            Reason::InstitutionSuspended => "INSTITUTION_SUSPENDED",
            Reason::DepartmentSuspended => "DEPARTMENT_SUSPENDED",
            Reason::PractitionerUnregistered => "PRACTITIONER_UNREGISTERED",
            Reason::PractitionerCodeUnmapped => "PRACTITIONER_CODE_UNMAPPED",
            Reason::PractitionerNotRegisteredHere => "PRACTITIONER_NOT_REGISTERED_HERE",
            Reason::PractitionerTerminated => "PRACTITIONER_TERMINATED",
            Reason::PractitionerSuspended => "PRACTITIONER_SUSPENDED",
        }
    }

    /// The reason of that name.
    pub fn from_name(name: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// A small index (below [`Reason::COUNT`]), for counting by reason in arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// True for the reasons of an accepted line.
    pub fn accepts(self) -> bool {
        matches!(self, Reason::Ok | Reason::EmergencyOverride)
    }

    /// True for the reasons that concern the institution (checks 1-3) rather than a person.
    pub fn is_institution(self) -> bool {
        matches!(self, Reason::InstitutionTerminated | Reason::InstitutionSuspended | Reason::DepartmentSuspended)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the decision core says about one claim line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome<'p> {
    /// Accept or reject.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
    /// With [`Reason::EmergencyOverride`]: the first reason that was overridden.
    pub overridden: Option<Reason>,
    /// On an accepted line: the first failed check that the profile only warns about — the reason the
    /// line would have been rejected for once enforced (rules.md, "Enforcement").
    pub would_reject: Option<Reason>,
    /// The code field of the person the decision's reason concerns: of `would_reject` when set, else of
    /// `overridden`, else of `reason`; `None` when that reason concerns the institution, or on a plain
    /// `OK`.
    pub role: Option<Role>,
    /// The article the decision rests on, as the profile cites it.
    pub rule: &'p str,
    /// The profile that decided (with a routing table, the one in force for the line's area and
    /// service time).
    pub profile: &'p str,
    /// The version of the practitioner record consulted — of the person `role` names, else of the
    /// billing practitioner — if the code is in the table.
    pub practitioner_version: Option<u64>,
    /// The version of the institution record consulted, if the institution is in the table.
    pub institution_version: Option<u64>,
    /// A checked practitioner code is not of a national form (counted; records.md).
    pub legacy_code: bool,
}

/// Everything besides the claim and its outcome that a decision record names.
#[derive(Clone, Copy, Debug)]
pub struct Stamp<'a> {
    /// The table snapshot that decided.
    pub table_epoch: u64,
    /// When the decision was made: `yyyy-MM-dd HH:mm:ss.SSS` Beijing time, supplied by the edge.
    pub decided_at: &'a str,
}

/// Appends the decision record for `claim` as one line of JSON (no newline).
///
/// Written by hand, field by field in records.md's order: serde_json's generic serializer (with
/// `Display` for the typed fields) took half of the hot path's budget. The tests check the result
/// against a serde_json reading of the same record.
#[inline]
pub fn write_decision(out: &mut Vec<u8>, claim: &Claim<'_>, outcome: &Outcome<'_>, stamp: &Stamp<'_>) {
    // One reservation for the whole record: the appends below then never reallocate.
    out.reserve(
        360 + claim.feedetl_sn.len()
            + claim.mdtrt_id.len()
            + claim.bilg_dr_codg.len()
            + outcome.rule.len()
            + outcome.profile.len(),
    );
    out.extend_from_slice(b"{\"feedetl_sn\":");
    write_str(out, &claim.feedetl_sn);
    out.extend_from_slice(b",\"fixmedins_code\":\"");
    claim.fixmedins_code.write_bytes(out);
    out.extend_from_slice(b"\",\"mdtrt_id\":");
    write_str(out, &claim.mdtrt_id);
    out.extend_from_slice(b",\"bilg_dr_codg\":");
    write_str(out, &claim.bilg_dr_codg);
    out.extend_from_slice(b",\"fee_ocur_time\":\"");
    claim.fee_ocur_time.write_bytes(out);
    out.extend_from_slice(b"\",\"det_item_fee_sumamt\":\"");
    claim.amount.write_bytes(out);
    out.extend_from_slice(b"\",\"med_type\":\"");
    let m = claim.med_type.0;
    if m < 10 {
        out.push(b'0');
    }
    out.extend_from_slice(itoa::Buffer::new().format(m).as_bytes());
    out.extend_from_slice(b"\",\"verdict\":\"");
    out.extend_from_slice(outcome.verdict.as_str().as_bytes());
    out.extend_from_slice(b"\",\"reason\":\"");
    out.extend_from_slice(outcome.reason.as_str().as_bytes());
    out.extend_from_slice(b"\",\"overridden\":");
    write_opt_word(out, outcome.overridden.map(Reason::as_str));
    out.extend_from_slice(b",\"would_reject\":");
    write_opt_word(out, outcome.would_reject.map(Reason::as_str));
    out.extend_from_slice(b",\"role\":");
    write_opt_word(out, outcome.role.map(Role::field));
    out.extend_from_slice(b",\"rule\":");
    write_str(out, outcome.rule);
    out.extend_from_slice(b",\"profile\":");
    write_str(out, outcome.profile);
    out.extend_from_slice(b",\"practitioner_version\":");
    write_opt_u64(out, outcome.practitioner_version);
    out.extend_from_slice(b",\"institution_version\":");
    write_opt_u64(out, outcome.institution_version);
    out.extend_from_slice(b",\"table_epoch\":");
    out.extend_from_slice(itoa::Buffer::new().format(stamp.table_epoch).as_bytes());
    out.extend_from_slice(b",\"decided_at\":");
    write_str(out, stamp.decided_at);
    out.push(b'}');
}

/// A word that needs no escaping (a reason or field name), quoted, or `null`.
#[inline]
fn write_opt_word(out: &mut Vec<u8>, word: Option<&str>) {
    match word {
        Some(w) => {
            out.push(b'"');
            out.extend_from_slice(w.as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

#[inline]
fn write_opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
}

/// A decision record read back (for `--previous`, reports and tests).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct DecisionRecord {
    /// Fee-detail serial number.
    pub feedetl_sn: String,
    /// Institution code.
    pub fixmedins_code: String,
    /// Visit id.
    pub mdtrt_id: String,
    /// Practitioner code.
    pub bilg_dr_codg: String,
    /// Service time.
    pub fee_ocur_time: String,
    /// Amount.
    pub det_item_fee_sumamt: String,
    /// Medical type.
    pub med_type: String,
    /// Verdict.
    pub verdict: Verdict,
    /// Reason.
    pub reason: Reason,
    /// Overridden reason.
    pub overridden: Option<Reason>,
    /// The reason an accepted line would be rejected for once enforced (absent in decisions written
    /// before it existed).
    #[serde(default)]
    pub would_reject: Option<Reason>,
    /// The code field of the person the reason concerns.
    #[serde(default)]
    pub role: Option<String>,
    /// Rule.
    pub rule: String,
    /// Profile.
    pub profile: String,
    /// Practitioner record version.
    pub practitioner_version: Option<u64>,
    /// Institution record version.
    pub institution_version: Option<u64>,
    /// Table epoch.
    pub table_epoch: u64,
    /// Decision time.
    pub decided_at: String,
}

/// A record that could not be decided, with its original bytes and why (records.md, "Dead letter").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter<'a> {
    /// Why.
    pub error: Cow<'a, str>,
    /// The field at fault, if one is.
    pub field: Option<Cow<'a, str>>,
    /// Where it came from: `topic/partition@offset` or `file:line`.
    pub source: Cow<'a, str>,
    /// The original text when it is valid UTF-8.
    pub raw: Option<Cow<'a, str>>,
    /// Otherwise the original bytes, base64.
    pub raw_base64: Option<String>,
    /// When it was received.
    pub received_at: Cow<'a, str>,
}

impl<'a> DeadLetter<'a> {
    /// A dead letter for `raw` bytes.
    pub fn new(error: &'a str, field: Option<&'a str>, source: &'a str, raw: &'a [u8], received_at: &'a str) -> Self {
        let (raw, raw_base64) = match std::str::from_utf8(raw) {
            Ok(s) => (Some(Cow::Borrowed(s)), None),
            Err(_) => (None, Some(base64::engine::general_purpose::STANDARD.encode(raw))),
        };
        DeadLetter {
            error: Cow::Borrowed(error),
            field: field.map(Cow::Borrowed),
            source: Cow::Borrowed(source),
            raw,
            raw_base64,
            received_at: Cow::Borrowed(received_at),
        }
    }

    /// Appends the record as one line of JSON (no newline).
    pub fn write(&self, out: &mut Vec<u8>) {
        // Serialising strings into a Vec cannot fail.
        let _ = serde_json::to_writer(out, self);
    }

    /// The original bytes.
    pub fn raw_bytes(&self) -> Option<Vec<u8>> {
        match (&self.raw, &self.raw_base64) {
            (Some(s), _) => Some(s.as_bytes().to_vec()),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD.decode(b).ok(),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_by_name() {
        for r in Reason::ALL {
            assert_eq!(Reason::from_name(r.as_str()), Some(r));
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
        }
        assert_eq!(Reason::from_name("ok"), None);
        assert_eq!(Reason::ALL.len(), Reason::COUNT);
        assert!(Reason::ALL.iter().enumerate().all(|(i, r)| r.index() == i));
    }

    /// records.md: `role` and `would_reject` are always written, null when they do not apply, so that
    /// every decision has the same fields.
    #[test]
    fn role_and_would_reject_are_null_when_they_do_not_apply_records_md() {
        let line = br#"{"feedetl_sn":"1","fixmedins_code":"H45012400011","mdtrt_id":"M","psn_no":"p",
            "med_type":"11","fee_ocur_time":"2026-04-02","bilg_dr_codg":"D450124000011","det_item_fee_sumamt":1}"#;
        let claim = Claim::parse(line).unwrap();
        let outcome = Outcome {
            verdict: Verdict::Accept,
            reason: Reason::Ok,
            overridden: None,
            would_reject: None,
            role: None,
            rule: "r",
            profile: "p",
            practitioner_version: None,
            institution_version: None,
            legacy_code: false,
        };
        let mut out = Vec::new();
        write_decision(&mut out, &claim, &outcome, &Stamp { table_epoch: 1, decided_at: "x" });
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#""overridden":null,"would_reject":null,"role":null,"#), "{text}");
    }

    #[test]
    fn decision_json_reads_back_field_for_field() {
        let line = br#"{"feedetl_sn":"F\"1","fixmedins_code":"P45012400011","mdtrt_id":"M\\1","psn_no":"p",
            "med_type":"9914","fee_ocur_time":"2026-04-02","bilg_dr_codg":"0457","det_item_fee_sumamt":-3.5}"#;
        let claim = Claim::parse(line).unwrap();
        let outcome = Outcome {
            verdict: Verdict::Accept,
            reason: Reason::EmergencyOverride,
            overridden: Some(Reason::PractitionerSuspended),
            would_reject: Some(Reason::PractitionerCodeUnmapped),
            role: Some(Role::Orders),
            rule: "national-2024 Art. 9(6)2 (急诊)",
            profile: "p\"x",
            practitioner_version: Some(u64::MAX),
            institution_version: None,
            legacy_code: true,
        };
        let stamp = Stamp { table_epoch: 42, decided_at: "2026-04-02 10:31:00.004" };
        let mut out = Vec::new();
        write_decision(&mut out, &claim, &outcome, &stamp);
        let rec: DecisionRecord = serde_json::from_slice(&out).unwrap();
        assert_eq!(rec.feedetl_sn, "F\"1");
        assert_eq!(rec.fixmedins_code, "P45012400011");
        assert_eq!(rec.mdtrt_id, "M\\1");
        assert_eq!(rec.bilg_dr_codg, "0457");
        assert_eq!(rec.fee_ocur_time, "2026-04-02 00:00:00");
        assert_eq!(rec.det_item_fee_sumamt, "-3.50");
        assert_eq!(rec.med_type, "9914");
        assert_eq!(
            (rec.verdict, rec.reason, rec.overridden),
            (Verdict::Accept, Reason::EmergencyOverride, outcome.overridden)
        );
        assert_eq!(
            (rec.would_reject, rec.role.as_deref()),
            (Some(Reason::PractitionerCodeUnmapped), Some("orders_dr_code"))
        );
        assert_eq!(rec.rule, outcome.rule);
        assert_eq!(rec.profile, "p\"x");
        assert_eq!((rec.practitioner_version, rec.institution_version, rec.table_epoch), (Some(u64::MAX), None, 42));
        assert_eq!(rec.decided_at, stamp.decided_at);
        // Field order as records.md shows it.
        let text = String::from_utf8(out).unwrap();
        let order = [
            "feedetl_sn",
            "fixmedins_code",
            "mdtrt_id",
            "bilg_dr_codg",
            "fee_ocur_time",
            "det_item_fee_sumamt",
            "med_type",
            "verdict",
            "reason",
            "overridden",
            "would_reject",
            "role",
            "rule",
            "profile",
            "practitioner_version",
            "institution_version",
            "table_epoch",
            "decided_at",
        ];
        let pos: Vec<usize> = order.iter().map(|k| text.find(&format!("\"{k}\":")).unwrap()).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn dead_letter_keeps_bytes_that_are_not_utf8() {
        let raw = b"{\"feedetl_sn\": \"\xff\"}";
        let dl = DeadLetter::new("not UTF-8", None, "claims/3@18812", raw, "2026-04-02 10:31:00.004");
        assert!(dl.raw.is_none());
        assert_eq!(dl.raw_bytes().unwrap(), raw);
        let mut out = Vec::new();
        dl.write(&mut out);
        let back: DeadLetter<'_> = serde_json::from_slice(&out).unwrap();
        assert_eq!(back.raw_bytes().unwrap(), raw);
        assert_eq!(back.source, "claims/3@18812");
    }
}
