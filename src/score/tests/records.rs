//! The records `score` writes (records.md): merge, versions, determinism.

use super::*;

const P: &str = "national-2024";
const CODE: &str = "national-2024/10.5.2.4";

#[test]
fn merge_keeps_the_record_and_raises_its_version() {
    let input = json!({"code": D1, "name": "张三", "kind": "doctor", "version": 7,
        "registrations": [{"institution": A, "from": "2021-03-01", "until": null}],
        "periods": [{"status": "suspended", "from": "2025-01-01", "until": "2025-02-01", "basis": "elsewhere", "decision_id": "X-1"}]})
    .to_string();
    let s = run(P, &[finding("F1", D1, "C1", CODE, 9, "2026-03-10")], &[input, registered(D2, A, "2021-03-01")]);
    let r = record(&s, D1);
    assert_eq!((r.name.as_deref(), r.kind.as_deref(), r.version), (Some("张三"), Some("doctor"), 8));
    assert_eq!(r.registrations.len(), 1);
    assert_eq!(periods(&s, D1), vec![susp("2025-01-01", Some("2025-02-01"), "X-1"), susp("2026-03-10", None, "F1")]);
    // Not named by the ledger: unchanged, same version.
    assert_eq!((s.records[1].changed, s.records[1].record.version), (false, 3));
    assert_eq!((s.report.records, s.report.changed, s.report.new), (2, 1, 0));
}

#[test]
fn codes_only_in_the_ledger_get_new_records_with_registrations_from_events() {
    let events = [
        with(event("G1", "register", D3, "2025-01-01"), "institution", A),
        with(event("G2", "register", D3, "2025-06-01"), "institution", B),
        with(event("G3", "deregister", D3, "2026-01-01"), "institution", A),
        finding("F1", D3, "C1", CODE, 9, "2026-03-10"),
    ];
    let s = run(P, &events, &[]);
    let r = record(&s, D3);
    assert_eq!((r.version, r.kind.as_deref()), (1, Some("doctor")));
    let regs: Vec<_> =
        r.registrations.iter().map(|g| (g.institution.as_str(), g.from.as_str(), g.until.as_deref())).collect();
    assert_eq!(regs, vec![(A, "2025-01-01", Some("2026-01-01")), (B, "2025-06-01", None)]);
    assert!(r.validate().is_ok());
    assert_eq!(s.report.new, 1);
}

#[test]
fn scoring_the_output_again_changes_nothing() {
    let events = [
        finding("F1", D1, "C1", CODE, 9, "2026-03-10"),
        event("R1", "restore", D1, "2026-04-01"),
        with(event("G1", "register", D2, "2026-02-01"), "institution", B),
        json!({"id": "I1", "type": "institution", "institution": A, "status": "suspended", "until": "2026-08-01",
               "responsible": [D2], "decided_at": "2026-05-01"}),
    ];
    let first = run(P, &events, &[registered(D1, A, "2021-03-01")]);
    let again: Vec<String> = first.records.iter().map(|r| serde_json::to_string(&r.record).unwrap()).collect();
    let second = run(P, &events, &again);
    assert!(second.records.iter().all(|r| !r.changed), "{:?}", second.records);
    let texts = |s: &Scored| s.records.iter().map(|r| r.record.clone()).collect::<Vec<_>>();
    assert_eq!(texts(&first), texts(&second));
}

#[test]
fn the_order_of_ledger_lines_does_not_matter_scoring_md() {
    let mut events = vec![
        finding("F1", D1, "C1", "national-2024/10.4.2.1", 6, "2026-03-10"),
        finding("F2", D1, "C2", "national-2024/10.3.3.1", 2, "2026-03-10 09:00:00"),
        finding("F3", D1, "C3", "national-2024/10.3.3.2", 3, "2026-03-10"),
        event("R1", "restore", D1, "2026-05-01"),
        finding("F4", D2, "C4", CODE, 9, "2026-03-10"),
    ];
    let one = run(P, &events, &[registered(D1, A, "2021-03-01")]);
    events.reverse();
    let two = run(P, &events, &[registered(D1, A, "2021-03-01")]);
    let bytes = |s: &Scored| s.records.iter().map(|r| serde_json::to_string(&r.record).unwrap()).collect::<Vec<_>>();
    assert_eq!(bytes(&one), bytes(&two));
    // Same decided_at: ordered by id, so F3 crosses 9 at 2026-03-10 00:00, before F2 (at 09:00).
    assert_eq!(periods(&one, D1), vec![susp("2026-03-10", Some("2026-05-01"), "F3")]);
    let sources = Sources::default();
    assert_eq!(
        markdown(&two.report, &sources),
        markdown(&run(P, &events, &[registered(D1, A, "2021-03-01")]).report, &sources)
    );
}

#[test]
fn the_highest_version_of_a_code_is_taken_as_the_table_does() {
    let old =
        json!({"code": D1, "version": 2, "registrations": [{"institution": B, "from": "2020-01-01"}]}).to_string();
    let new =
        json!({"code": D1, "version": 5, "registrations": [{"institution": A, "from": "2021-01-01"}]}).to_string();
    let s = run(P, &[finding("F1", D1, "C1", CODE, 9, "2026-03-10")], &[old, new]);
    assert_eq!(s.records.len(), 1);
    let r = record(&s, D1);
    assert_eq!((r.version, r.registrations[0].institution.as_str()), (6, A));
    assert_eq!(s.report.stale, 1);
}

#[test]
fn the_report_names_profile_periods_flags_and_ignored_events() {
    let events = [
        finding("F1", D1, "C1", "national-2024/10.4.2.1", 6, "2026-03-10"),
        finding("F2", D1, "C1", "national-2024/10.4.2.1", 5, "2026-03-11"),
        finding("F3", D1, "C2", "national-2024/10.3.3.1", 3, "2026-03-12"),
    ];
    let s = run(P, &events, &[]);
    let md = markdown(
        &s.report,
        &Sources { profile: "national-2024".into(), ledger: "l.jsonl".into(), ..Sources::default() },
    );
    for want in [
        "# Scoring report — national-2024",
        "| 2026 | 9 | 0 | 0 | 9 | 9 |",
        "| 2 | F2 | finding | 2026-03-11 | **ignored** |",
        "| suspended | 2026-03-12 | open | national-2024 Art. 11(2): 9 points in 2026 | F3 |",
        "- Flag: key oversight (重点监管) — 6 points reached in 2026 (total 6) by F1 on 2026-03-10 (Art. 11(1))",
        "Ratio flags (Art. 12)",
    ] {
        assert!(md.contains(want), "missing {want:?} in\n{md}");
    }
}
