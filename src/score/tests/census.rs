//! Scoring part of a registry ([`score_part`]): given only the records the ledger needs whole and a
//! census of the rest, the records and the report are those of scoring the whole registry — under
//! every profile (cascades to the staff held responsible or registered there, ratio flags over every
//! kind or doctors only, by year or agreement period), with stale versions in the registry.

use std::collections::BTreeSet;

use super::*;
use crate::record::InstitutionCode;
use crate::score::cycle;
use crate::synth::{GenConfig, World};

/// A generated registry with some codes written twice (a stale version before or after the current
/// one), and a generated ledger over it.
fn world(profile: &str) -> (Scoring, Ledger, Vec<PractitionerText>) {
    let r = rules(profile);
    let w = World::new(GenConfig { practitioners: 4_000, ..GenConfig::default() });
    let mut records: Vec<PractitionerText> = (0..4_000).map(|i| w.practitioner(i)).collect();
    let events = w.ledger(&r, 500);
    let l = ledger(&r, &events).unwrap();
    let named: Vec<String> = events.iter().filter_map(|e| e["code"].as_str().map(str::to_owned)).collect();
    for (k, i) in (0..4_000).step_by(97).enumerate() {
        let mut again = records[i].clone();
        again.version = if k % 2 == 0 { again.version + 1 } else { again.version.saturating_sub(1) };
        again.registrations.truncate(1);
        records.insert((i * 7) % records.len(), again);
    }
    // A code the ledger names, written twice: one record plain, the other carrying nothing of the ledger.
    for code in named.iter().step_by(37) {
        if let Some(r) = records.iter().find(|r| &r.code == code).cloned() {
            let mut again = r.clone();
            again.version += 1;
            again.periods.clear();
            records.push(again);
        }
    }
    (r, l, records)
}

/// Splits the registry as the binary does: every record of a code one of whose records is wanted is
/// given; the others are counted.
fn split(rules: &Scoring, ledger: &Ledger, records: &[PractitionerText]) -> (Vec<PractitionerText>, Rest) {
    let selection = Selection::new(rules, ledger);
    let wanted: BTreeSet<&str> =
        records.iter().filter(|t| selection.wants(&t.validate().unwrap())).map(|t| t.code.as_str()).collect();
    let (given, others): (Vec<_>, Vec<_>) = records.iter().cloned().partition(|t| wanted.contains(t.code.as_str()));
    let mut census = Census::new(rules, ledger);
    // The others, one per code (the highest version, the first of equal ones), as the table keeps them.
    let mut best: std::collections::BTreeMap<String, &PractitionerText> = std::collections::BTreeMap::new();
    for t in &others {
        if best.get(&t.code).is_none_or(|b| b.version < t.version) {
            best.insert(t.code.clone(), t);
        }
    }
    for t in best.values() {
        census.add(&census.share(&t.validate().unwrap(), t.kind.as_deref()));
    }
    let rest = Rest { census, records: best.len(), stale: others.len() - best.len() };
    (given, rest)
}

#[test]
fn scoring_the_touched_records_and_a_census_of_the_rest_equals_scoring_the_whole_registry() {
    for profile in ["national-2024", "huaian-2020", "lanzhou-2014"] {
        let (r, l, records) = world(profile);
        let whole = score(&r, &l, &records).unwrap();
        let (given, rest) = split(&r, &l, &records);
        assert!(given.len() * 5 < records.len(), "{profile}: {} of {} given", given.len(), records.len());
        let part = score_part(&r, &l, &given, &rest).unwrap();
        assert_eq!(part.report, whole.report, "{profile}");
        assert!(!whole.report.institutions.is_empty(), "{profile}: no ratio rows to compare");
        assert!(whole.report.stale > 0, "{profile}: no stale records");
        // The records of everyone given are the whole run's, byte for byte; the others are unchanged.
        let given_codes: BTreeSet<&str> = given.iter().map(|t| t.code.as_str()).collect();
        let out = |s: &Scored| -> Vec<(String, bool)> {
            s.records
                .iter()
                .filter(|x| given_codes.contains(x.record.code.as_str()) || x.input.is_none())
                .map(|x| (serde_json::to_string(&x.record).unwrap(), x.changed))
                .collect()
        };
        assert_eq!(out(&part), out(&whole), "{profile}");
        assert!(whole.records.iter().filter(|x| !given_codes.contains(x.record.code.as_str())).all(|x| !x.changed));
        assert_eq!(part.records.iter().filter(|x| x.changed).count(), whole.report.changed, "{profile}");
    }
}

#[test]
fn the_census_counts_a_person_once_per_institution_and_window_and_only_the_rated_kinds_huaian_24() {
    let r = rules("huaian-2020");
    let l = ledger(
        &r,
        &[
            fixed("F1", D1, "C1", "huaian-2020/14.1", "2025-06-01"),
            fixed("F2", D2, "C2", "huaian-2020/17.1", "2026-02-01"),
        ],
    )
    .unwrap();
    let mut census = Census::new(&r, &l);
    let rec = |j: &str| PractitionerText::from_json(j.as_bytes()).unwrap();
    // Two registrations at A over both years: counted once at A in each year.
    let twice = rec(&format!(
        r#"{{"code":"D110105000009","registrations":[{{"institution":"{A}","from":"2020-01-01","until":"2025-03-01"}},{{"institution":"{A}","from":"2025-04-01"}}],"version":1}}"#
    ));
    // A nurse is not rated (Art. 24 counts doctors); a legacy id counts as its record's kind.
    let nurse = rec(&format!(
        r#"{{"code":"N110105000009","registrations":[{{"institution":"{A}","from":"2020-01-01"}}],"version":1}}"#
    ));
    let legacy = rec(&format!(
        r#"{{"code":"0457","kind":" doctor ","registrations":[{{"institution":"{B}","from":"2025-12-01"}}],"version":1}}"#
    ));
    let kindless =
        rec(&format!(r#"{{"code":"0458","registrations":[{{"institution":"{B}","from":"2020-01-01"}}],"version":1}}"#));
    for t in [&twice, &nurse, &legacy, &kindless] {
        census.add(&census.share(&t.validate().unwrap(), t.kind.as_deref()));
    }
    let a = InstitutionCode::parse(A).unwrap();
    let b = InstitutionCode::parse(B).unwrap();
    let y = |y: i32| cycle::Span {
        start: chrono::NaiveDate::from_ymd_opt(y, 1, 1).unwrap(),
        end: chrono::NaiveDate::from_ymd_opt(y + 1, 1, 1).unwrap(),
    };
    assert_eq!((census.staff(a, y(2025)), census.staff(a, y(2026))), (1, 1));
    assert_eq!((census.staff(b, y(2025)), census.staff(b, y(2026))), (1, 1));
    assert_eq!(census.staff(a, y(2024)), 0, "no ledger event in 2024: not counted");
    census.remove(&census.share(&twice.validate().unwrap(), None));
    assert_eq!(census.staff(a, y(2025)), 0);
    assert_eq!(census.institutions(), 2);
}

#[test]
fn the_selection_takes_the_named_the_responsible_the_registered_and_the_previously_decided() {
    let r = rules("huaian-2020");
    let l = ledger(
        &r,
        &[
            fixed("F1", D1, "C1", "huaian-2020/17.1", "2026-02-01"),
            json!({"id": "I1", "type": "institution", "institution": A, "status": "suspended", "until": "2026-05-01",
                   "responsible": [D2], "decided_at": "2026-03-01"}),
        ],
    )
    .unwrap();
    let s = Selection::new(&r, &l);
    let rec = |code: &str, inst: &str, decision: &str| {
        PractitionerText::from_json(
            format!(
                r#"{{"code":"{code}","registrations":[{{"institution":"{inst}","from":"2020-01-01"}}],"periods":[{{"status":"suspended","from":"2025-01-01","until":"2025-02-01","decision_id":"{decision}"}}],"version":1}}"#
            )
            .as_bytes(),
        )
        .unwrap()
        .validate()
        .unwrap()
    };
    assert!(s.wants(&rec(D1, B, "X")), "named by a finding");
    assert!(s.wants(&rec(D2, B, "X")), "held responsible");
    assert!(s.wants(&rec(D3, A, "X")), "registered where the institution event cascades (Art. 27(5))");
    assert!(s.wants(&rec("D110105000099", B, "F1")), "carries a period this ledger decided");
    assert!(!s.wants(&rec("D110105000099", B, "X")));
    // Qinghai cascades to the responsible only: registered staff are not needed whole.
    let q = rules("national-2024");
    let l = ledger(
        &q,
        &[json!({"id": "I1", "type": "institution", "institution": A, "status": "suspended", "until": "2026-05-01",
                 "responsible": [D2], "decided_at": "2026-03-01"})],
    )
    .unwrap();
    assert!(!Selection::new(&q, &l).wants(&rec(D3, A, "X")));
}
