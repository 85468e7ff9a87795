//! Any bytes are a practitioner or institution record that validates, round-trips and goes into a
//! table — or an error that repeats no string value of the input (a name must not reach a log).
//! The same property as `tests/fuzz_claims.rs`, driven by libFuzzer.
#![no_main]

use claimgate::record::{InstitutionText, PractitionerText};
use claimgate::table::{InstitutionTable, PractitionerTable};
use libfuzzer_sys::fuzz_target;

/// The string values of the input, if it is JSON: none may appear in an error message.
fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) if s.chars().count() >= 2 && s.chars().any(|c| !c.is_ascii()) => {
            out.push(s.clone())
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fuzz_target!(|bytes: &[u8]| {
    let mut values = Vec::new();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
        strings(&v, &mut values);
    }
    match PractitionerText::from_json(bytes).and_then(|t| t.validate()) {
        Ok(rec) => {
            assert_eq!(rec.to_text().validate().as_ref(), Ok(&rec));
            assert!(rec.registrations.iter().all(|r| r.during.from < r.during.until));
            assert!(rec.periods.iter().all(|p| p.during.from < p.during.until));
            PractitionerTable::with_capacity(2).upsert(&rec).expect("a valid record goes into a table");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty());
            for s in &values {
                assert!(!msg.contains(s.as_str()), "the error repeats a value: {msg}");
            }
        }
    }
    match InstitutionText::from_json(bytes).and_then(|t| t.validate()) {
        Ok(rec) => {
            assert_eq!(rec.to_text().validate().as_ref(), Ok(&rec));
            InstitutionTable::default().upsert(rec);
        }
        Err(e) => {
            let msg = e.to_string();
            for s in &values {
                assert!(!msg.contains(s.as_str()), "the error repeats a value: {msg}");
            }
        }
    }
});
