//! Scoring tests, named after the article they check. Seeds: Huai'an = 000_a49834594c269b75.txt,
//! Qinghai (national-2024) = 001_70455349a9435e17.txt, Lanzhou = 002_0d8737387619c9dd.txt.
//!
//! Each test writes a small ledger as JSON values, scores it under a shipped profile, and looks at the
//! practitioner records and the report.

mod census;
mod errors;
mod huaian;
mod lanzhou;
mod national;
mod records;
mod round_trip;

use serde_json::{Value, json};

use super::*;
use crate::profile::Profile;
use crate::record::Status;
use crate::score::rules::Flag;

/// Institutions.
pub const A: &str = "H11010500001";
pub const B: &str = "H11010500002";
/// Practitioners.
pub const D1: &str = "D110105000001";
pub const D2: &str = "D110105000002";
pub const D3: &str = "D110105000003";

pub fn rules(profile: &str) -> Scoring {
    Scoring::from_profile(&Profile::shipped(profile).unwrap()).unwrap()
}

pub fn ledger(rules: &Scoring, events: &[Value]) -> Result<Ledger, LedgerError> {
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    Ledger::parse(lines.iter().enumerate().map(|(i, l)| (i as u64 + 1, l.as_bytes())), rules)
}

/// Scores; the error names the line.
pub fn try_run(profile: &str, events: &[Value], practitioners: &[String]) -> Result<Scored, String> {
    let r = rules(profile);
    let l = ledger(&r, events).map_err(|e| e.to_string())?;
    let p: Vec<PractitionerText> =
        practitioners.iter().map(|j| PractitionerText::from_json(j.as_bytes()).unwrap()).collect();
    score(&r, &l, &p).map_err(|e| e.to_string())
}

pub fn run(profile: &str, events: &[Value], practitioners: &[String]) -> Scored {
    try_run(profile, events, practitioners).unwrap()
}

/// A finding with explicit points and no responsibility.
pub fn finding(id: &str, code: &str, case: &str, item: &str, points: u32, at: &str) -> Value {
    json!({"id": id, "type": "finding", "code": code, "case_id": case, "item": item, "points": points, "decided_at": at})
}

/// A fixed-value finding (Huai'an, Lanzhou), no points given.
pub fn fixed(id: &str, code: &str, case: &str, item: &str, at: &str) -> Value {
    json!({"id": id, "type": "finding", "code": code, "case_id": case, "item": item, "decided_at": at})
}

/// An event with no extra fields.
pub fn event(id: &str, kind: &str, code: &str, at: &str) -> Value {
    json!({"id": id, "type": kind, "code": code, "decided_at": at})
}

/// `v` with one more field.
pub fn with(mut v: Value, key: &str, value: impl Into<Value>) -> Value {
    v[key] = value.into();
    v
}

/// A practitioner record registered at `inst` since `from`.
pub fn registered(code: &str, inst: &str, from: &str) -> String {
    json!({"code": code, "version": 3, "registrations": [{"institution": inst, "from": from, "until": null}]})
        .to_string()
}

pub fn record<'a>(s: &'a Scored, code: &str) -> &'a PractitionerText {
    s.records.iter().map(|r| &r.record).find(|r| r.code == code).unwrap_or_else(|| panic!("no record {code}"))
}

/// `(status, from, until, decision_id)` of each period of `code`.
pub fn periods(s: &Scored, code: &str) -> Vec<(Status, String, Option<String>, String)> {
    record(s, code)
        .periods
        .iter()
        .map(|p| (p.status, p.from.clone(), p.until.clone(), p.decision_id.clone().unwrap_or_default()))
        .collect()
}

pub fn susp(from: &str, until: Option<&str>, id: &str) -> (Status, String, Option<String>, String) {
    (Status::Suspended, from.into(), until.map(Into::into), id.into())
}

pub fn term(from: &str, until: Option<&str>, id: &str) -> (Status, String, Option<String>, String) {
    (Status::Terminated, from.into(), until.map(Into::into), id.into())
}

pub fn person<'a>(s: &'a Scored, code: &str) -> &'a report::PersonReport {
    s.report.practitioners.iter().find(|p| p.code == code).unwrap_or_else(|| panic!("no report for {code}"))
}

pub fn flags(s: &Scored, code: &str) -> Vec<(Flag, String)> {
    person(s, code).flags.iter().map(|f| (f.flag, f.id.clone())).collect()
}

/// The note on event `id`: applied or not, and its text.
pub fn note(s: &Scored, code: &str, id: &str) -> (bool, String) {
    let n = person(s, code).events.iter().find(|e| e.id == id).unwrap_or_else(|| panic!("no note on {id}"));
    (n.applied, n.text.clone())
}

/// The final total of the cycle whose label is `label`.
pub fn total(s: &Scored, code: &str, label: &str) -> u32 {
    person(s, code).cycles.iter().find(|c| c.label == label).map_or(0, |c| c.total)
}

pub fn bans(s: &Scored, code: &str) -> Vec<String> {
    person(s, code).bans.iter().map(|b| b.until.to_string()).collect()
}
