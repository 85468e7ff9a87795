//! The claim-line property, once, for both drivers (`tests/fuzz_claims.rs` under proptest, and
//! `fuzz/fuzz_targets/claim_line.rs` under libFuzzer): any bytes are a line the spec accepts — read with
//! the same values as the oracle reads them, and decided into JSON that names the line — or a refusal
//! with a reason that agrees on the field at fault and makes a dead letter keeping the bytes. Never an
//! accept of a line the spec refuses. Under a routing table whose profile checks every person and warns
//! about one reason, a well-formed line is decided by one of its profiles, or refused for a person
//! field the spec reads as malformed. (The decision's rules themselves are checked against a reference
//! in `tests/decide_oracle.rs`.)

use std::sync::OnceLock;

use claimgate::batch::process;
use claimgate::profile::Profile;
use claimgate::record::{Claim, DeadLetter, PractitionerText, Role, Stamp};
use claimgate::routing::Rules;
use claimgate::table::{InstitutionTable, PractitionerTable, View};

/// A routing table (rules.md, "Regions, roles, enforcement"): from 2026, Beijing's area `1101` is
/// decided by a profile that checks every person on the line and only warns about registrations
/// elsewhere; the rest by national-2024.
const ROUTING: &str = r#"default = "national-2024"
[profiles]
"every-person" = "every-person.toml"
[[route]]
area = "1101"
profile = "every-person"
from = "2026-01-01"
"#;

/// The fixture: a table where `D110105000123` is registered at `H11010500001`; the default profile
/// alone; and [`ROUTING`].
pub struct Fixture {
    pub view: View,
    pub rules: Rules,
    pub routed: Rules,
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut p = PractitionerTable::with_capacity(4);
        let rec = r#"{"code":"D110105000123","version":1,"registrations":[{"institution":"H11010500001","from":"2020-01-01"}]}"#;
        p.upsert(&PractitionerText::from_json(rec.as_bytes()).unwrap().validate().unwrap()).unwrap();
        let every_person = claimgate::profile::SHIPPED[0]
            .toml
            .replace("name = \"national-2024\"", "name = \"every-person\"")
            .replace(
                "legacy_codes = \"lookup\"",
                "legacy_codes = \"lookup\"\nroles = [\"bilg_dr_codg\", \"orders_dr_code\"]\npharmacist = \"phar_prac_cert_no\"",
            )
            + "\n[enforcement]\nPRACTITIONER_NOT_REGISTERED_HERE = \"warn\"\n";
        let routed = Rules::from_toml(ROUTING, |_| Ok(every_person.clone())).expect("the fixture's routing table");
        Fixture {
            view: View::new(p, InstitutionTable::default()),
            rules: Rules::single(Profile::shipped("national-2024").unwrap()),
            routed,
        }
    })
}

/// Fails with a message naming what disagreed, with the input shown.
macro_rules! ensure {
    ($cond:expr, $($what:tt)+) => {
        if !$cond {
            return Err(format!($($what)+));
        }
    };
}

fn same<T: PartialEq + std::fmt::Debug>(what: &str, ours: T, spec: T, shown: &str) -> Result<(), String> {
    ensure!(ours == spec, "{what}: claimgate {ours:?}, spec {spec:?}: {shown}");
    Ok(())
}

/// The property for one input.
pub fn claim_line(bytes: &[u8]) -> Result<(), String> {
    let shown = String::from_utf8_lossy(bytes).into_owned();
    let shown = shown.as_str();
    let Fixture { view, rules, routed } = fixture();
    let stamp = Stamp { table_epoch: view.epoch(), decided_at: "2026-04-02 10:31:00.004" };
    match (Claim::parse(bytes), super::read(bytes)) {
        (Ok(c), Ok(l)) => {
            same("feedetl_sn", &*c.feedetl_sn, l.feedetl_sn.as_str(), shown)?;
            same("fixmedins_code", c.fixmedins_code.to_string(), l.fixmedins_code.clone(), shown)?;
            same("mdtrt_id", &*c.mdtrt_id, l.mdtrt_id.as_str(), shown)?;
            same("bilg_dr_codg", &*c.bilg_dr_codg, l.bilg_dr_codg.as_str(), shown)?;
            same("bilg_dept_codg", c.bilg_dept_codg.as_deref(), l.bilg_dept_codg.as_deref(), shown)?;
            same("fee_ocur_time", c.fee_ocur_time.to_string(), l.fee_ocur_time.clone(), shown)?;
            same("amount", c.amount.fen(), l.amount_fen, shown)?;
            same("med_type", c.med_type.0, l.med_type, shown)?;
            same("emergency", (c.er_flag, c.adm_via_emergency), (l.er_flag, l.adm_way_emergency), shown)?;
            // The other persons' fields: read as sent, refused only when checked and malformed.
            for (role, spec) in [Role::Orders, Role::Pharmacist].into_iter().zip(&l.persons) {
                let text = match spec {
                    super::Person::Text(s) => Some(s.as_str()),
                    _ => None,
                };
                same(role.field(), c.code(role), text, shown)?;
                same(&format!("{role} refused"), c.check_role(role).is_err(), spec.malformed(), shown)?;
            }
            // The whole path: the decision is valid JSON and names the line.
            let mut out = Vec::new();
            ensure!(process(bytes, view, rules, &stamp, &mut out).is_ok(), "parsed but not decided: {shown}");
            let v: serde_json::Value = serde_json::from_slice(&out).map_err(|e| format!("decision: {e}"))?;
            same("decision feedetl_sn", v["feedetl_sn"].as_str(), Some(l.feedetl_sn.as_str()), shown)?;
            same("decision mdtrt_id", v["mdtrt_id"].as_str(), Some(l.mdtrt_id.as_str()), shown)?;
            same("decision fixmedins_code", v["fixmedins_code"].as_str(), Some(l.fixmedins_code.as_str()), shown)?;
            ensure!(matches!(v["verdict"].as_str(), Some("accept" | "reject")), "verdict: {v}");
            // Under the routing table: a decision of one of its profiles, or a dead letter only for a
            // person field the spec finds malformed, named.
            let mut out = Vec::new();
            match process(bytes, view, routed, &stamp, &mut out) {
                Ok(_) => {
                    let v: serde_json::Value =
                        serde_json::from_slice(&out).map_err(|e| format!("routed decision: {e}"))?;
                    ensure!(matches!(v["profile"].as_str(), Some("national-2024" | "every-person")), "profile: {v}");
                    ensure!(
                        matches!(
                            v["role"].as_str(),
                            None | Some("bilg_dr_codg" | "orders_dr_code" | "phar_prac_cert_no")
                        ),
                        "role: {v}"
                    );
                    ensure!(v["would_reject"].is_null() || v["verdict"] == "accept", "a warned reject: {v}");
                    ensure!(v["overridden"].is_null() || v["reason"] == "EMERGENCY_OVERRIDE", "overridden: {v}");
                }
                Err(m) => {
                    let at = [Role::Orders, Role::Pharmacist].into_iter().position(|r| Some(r.field()) == m.field);
                    ensure!(
                        at.is_some_and(|i| l.persons[i].malformed()),
                        "routed dead letter for a field the spec reads as well formed ({m}): {shown}"
                    );
                }
            }
        }
        (Err(m), Err(r)) => {
            ensure!(!m.message.is_empty(), "a refusal without a reason: {shown}");
            // The field at fault agrees, except where claimgate stopped its scan at a duplicate field
            // before a later syntax error.
            if !m.message.contains("duplicate") {
                ensure!(m.field == r.field, "field at fault: {} vs spec {r:?}: {shown}", m.message);
            }
            // The dead letter keeps the bytes and says why.
            let mut out = Vec::new();
            DeadLetter::new(&m.message, m.field, "claims/0@0", bytes, "2026-04-02 10:31:00.004").write(&mut out);
            let back: DeadLetter<'_> = serde_json::from_slice(&out).map_err(|e| format!("dead letter: {e}"))?;
            same("dead letter bytes", back.raw_bytes().as_deref(), Some(bytes), shown)?;
            ensure!(!back.error.is_empty(), "dead letter without a reason: {shown}");
            // And the whole path refuses it too.
            ensure!(process(bytes, view, rules, &stamp, &mut Vec::new()).is_err(), "decided a refused line: {shown}");
            ensure!(
                process(bytes, view, routed, &stamp, &mut Vec::new()).is_err(),
                "routed, decided a refused line: {shown}"
            );
        }
        (Ok(_), Err(r)) => return Err(format!("ACCEPTED a line the spec refuses ({r:?}): {shown}")),
        (Err(m), Ok(_)) => return Err(format!("refused a well-formed line ({m}): {shown}")),
    }
    Ok(())
}
