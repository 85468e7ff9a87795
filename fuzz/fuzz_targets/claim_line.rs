//! Any bytes are a claim line that records.md accepts — read exactly as the spec's independent reading
//! (`tests/oracle`) reads it, and decided into valid JSON — or a refusal with a reason that agrees on
//! the field at fault and makes a dead letter keeping the bytes. Never a panic, never an accept of a
//! line the spec refuses. The same property as `tests/fuzz_claims.rs`, driven by libFuzzer.
#![no_main]

use std::sync::OnceLock;

use claimgate::batch::process;
use claimgate::profile::Profile;
use claimgate::record::{Claim, DeadLetter, PractitionerText, Stamp};
use claimgate::table::{InstitutionTable, PractitionerTable, View};
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/oracle/mod.rs"]
mod oracle;

fn fixture() -> &'static (View, Profile) {
    static F: OnceLock<(View, Profile)> = OnceLock::new();
    F.get_or_init(|| {
        let mut p = PractitionerTable::with_capacity(4);
        let rec = r#"{"code":"D110105000123","version":1,"registrations":[{"institution":"H11010500001","from":"2020-01-01"}]}"#;
        p.upsert(&PractitionerText::from_json(rec.as_bytes()).unwrap().validate().unwrap()).unwrap();
        (View::new(p, InstitutionTable::default()), Profile::shipped("national-2024").unwrap())
    })
}

fuzz_target!(|bytes: &[u8]| {
    let (view, profile) = fixture();
    let stamp = Stamp { profile: &profile.name, table_epoch: view.epoch(), decided_at: "2026-04-02 10:31:00.004" };
    let shown = String::from_utf8_lossy(bytes);
    match (Claim::parse(bytes), oracle::read(bytes)) {
        (Ok(c), Ok(l)) => {
            assert_eq!(&*c.feedetl_sn, l.feedetl_sn, "{shown}");
            assert_eq!(c.fixmedins_code.to_string(), l.fixmedins_code, "{shown}");
            assert_eq!(&*c.mdtrt_id, l.mdtrt_id, "{shown}");
            assert_eq!(&*c.bilg_dr_codg, l.bilg_dr_codg, "{shown}");
            assert_eq!(c.bilg_dept_codg.as_deref(), l.bilg_dept_codg.as_deref(), "{shown}");
            assert_eq!(c.fee_ocur_time.to_string(), l.fee_ocur_time, "{shown}");
            assert_eq!(c.amount.fen(), l.amount_fen, "{shown}");
            assert_eq!(c.med_type.0, l.med_type, "{shown}");
            assert_eq!((c.er_flag, c.adm_via_emergency), (l.er_flag, l.adm_way_emergency), "{shown}");
            let mut out = Vec::new();
            assert!(process(bytes, view, profile, &stamp, &mut out).is_ok(), "{shown}");
            let v: serde_json::Value = serde_json::from_slice(&out).expect("the decision is JSON");
            assert_eq!(v["mdtrt_id"].as_str(), Some(l.mdtrt_id.as_str()));
            assert_eq!(v["feedetl_sn"].as_str(), Some(l.feedetl_sn.as_str()));
        }
        (Err(m), Err(r)) => {
            assert!(!m.message.is_empty());
            if !m.message.contains("duplicate") {
                assert_eq!(m.field, r.field, "{} vs spec {r:?}: {shown}", m.message);
            }
            let mut out = Vec::new();
            DeadLetter::new(&m.message, m.field, "claims/0@0", bytes, "2026-04-02 10:31:00.004").write(&mut out);
            let back: DeadLetter<'_> = serde_json::from_slice(&out).expect("the dead letter is JSON");
            assert_eq!(back.raw_bytes().as_deref(), Some(bytes));
            assert!(process(bytes, view, profile, &stamp, &mut Vec::new()).is_err());
        }
        (Ok(_), Err(r)) => panic!("ACCEPTED a line the spec refuses ({r:?}): {shown}"),
        (Err(m), Ok(_)) => panic!("refused a well-formed line ({m}): {shown}"),
    }
});
