//! Bad ledgers fail loudly and name the line (scoring.md, "Ledger — input").

use super::*;

const SPLIT: &str = "national-2024/10.3.3.1";

fn error(profile: &str, lines: &[&str]) -> String {
    let r = rules(profile);
    let numbered = lines.iter().enumerate().map(|(i, l)| (i as u64 + 1, l.as_bytes()));
    Ledger::parse(numbered, &r).unwrap_err().to_string()
}

fn line(v: Value) -> String {
    v.to_string()
}

#[test]
fn a_bad_line_names_its_number_and_event_id_scoring_md() {
    let good = line(finding("F1", D1, "C1", SPLIT, 2, "2026-03-10"));
    let cases: Vec<(String, &str)> = vec![
        (
            line(finding("F2", D1, "C1", "national-2024/10.9.9", 2, "2026-03-10")),
            "line 2, event F2: unknown item `national-2024/10.9.9`: not in the national-2024 catalogue",
        ),
        (
            line(finding("F2", D1, "C1", SPLIT, 4, "2026-03-10")),
            "line 2, event F2: points 4 outside the band of item national-2024/10.3.3.1: 1-3",
        ),
        (line(event("F2", "fine", D1, "2026-03-10")), "line 2, event F2: unknown event type `fine`"),
        (
            line(finding("F2", D1, "C1", SPLIT, 2, "2026-02-30")),
            "line 2, event F2: field `decided_at`: no such date or time of day (`2026-02-30`)",
        ),
        (
            line(finding("F2", D1, "C1", SPLIT, 2, "10/03/2026")),
            "line 2, event F2: field `decided_at`: expected `yyyy-MM-dd HH:mm:ss` or `yyyy-MM-dd`",
        ),
        (
            line(json!({"id": "V1", "type": "revoke", "target": "F9", "decided_at": "2026-04-01"})),
            "line 2, event V1: revoke target `F9` is not a finding in this ledger",
        ),
        (
            line(
                json!({"id": "F2", "type": "finding", "code": D1, "item": SPLIT, "points": 2, "decided_at": "2026-03-10"}),
            ),
            "line 2, event F2: missing field `case_id`",
        ),
        (line(json!({"type": "restore", "code": D1, "decided_at": "2026-03-10"})), "line 2: missing field `id`"),
        (line(json!({"id": "F2", "type": "restore", "code": D1})), "line 2, event F2: missing field `decided_at`"),
        ("{\"id\": \"F2\", ".into(), "line 2: not a JSON object"),
        (
            line(finding("F1", D1, "C1", SPLIT, 2, "2026-03-11")),
            "line 2, event F1: duplicate event id (first on line 1)",
        ),
        (line(finding("F2", "医生1", "C1", SPLIT, 2, "2026-03-10")), "line 2, event F2: field `code`"),
        (
            line(json!({"id": "V1", "type": "revoke", "target": "F1", "decided_at": "2026-03-01"})),
            "line 2, event V1: revoke decided before its target `F1`",
        ),
        (
            line(
                json!({"id": "I1", "type": "institution", "institution": A, "status": "terminated", "until": "2026-09-01", "decided_at": "2026-03-01"}),
            ),
            "line 2, event I1: field `until`: a termination has no end",
        ),
    ];
    for (bad, want) in cases {
        let e = error("national-2024", &[&good, &bad]);
        assert!(e.starts_with(want), "want {want}\n got {e}");
    }
}

#[test]
fn blank_lines_are_skipped_but_counted() {
    let bad = line(finding("F2", D1, "C1", SPLIT, 9, "2026-03-10"));
    let e = error("national-2024", &["", "  ", &bad]);
    assert!(e.starts_with("line 3, event F2"), "{e}");
}

#[test]
fn events_the_profile_does_not_provide_are_refused() {
    let clear = line(event("X1", "clear", D1, "2026-03-10"));
    assert!(error("national-2024", &[&clear]).contains("national-2024 has no clearing of points"));
    let repair = line(with(with(event("T1", "repair", D1, "2026-03-10"), "method", "training"), "points", 1));
    assert!(error("huaian-2020", &[&repair]).contains("huaian-2020 has no score repair"));
    assert!(error("lanzhou-2014", &[&repair]).contains("lanzhou-2014 has no score repair"));
    let adjusted = line(
        json!({"id": "F1", "type": "finding", "code": D1, "case_id": "C1", "item": "lanzhou-2014/14.1",
                               "points": 1, "responsibility": "main", "adjust": "lighter", "decided_at": "2024-06-10"}),
    );
    assert!(error("lanzhou-2014", &[&adjusted]).contains("lanzhou-2014 has no lighter/heavier rule"));
    let months = line(with(fixed("F1", D1, "C1", "huaian-2020/15.1", "2026-03-10"), "suspend_months", 2));
    assert!(error("huaian-2020", &[&months]).contains("fixes every suspension's length"));
    let fixed_points = line(finding("F1", D1, "C1", "huaian-2020/16.3", 2, "2026-03-10"));
    assert!(error("huaian-2020", &[&fixed_points]).contains("points 2 outside the band of item huaian-2020/16.3: 3-3"));
}

/// A misspelt field (`suspend_month` for `suspend_months`) was ignored, and the suspension silently took
/// its default length: every field a line carries must be one its type defines (scoring.md, "Ledger").
#[test]
fn an_unknown_field_is_refused_with_its_line_scoring_md_ledger() {
    let f = with(finding("F1", D1, "C1", "national-2024/10.5.2.4", 9, "2026-03-10"), "suspend_month", 3);
    let e = error("national-2024", &[&line(f)]);
    assert!(e.starts_with("line 1, event F1:") && e.contains("unknown field `suspend_month`"), "{e}");
    // A field of another type is unknown here too.
    let r = with(event("R1", "restore", D1, "2026-03-10"), "method", "training");
    let e = error("national-2024", &[&line(r)]);
    assert!(e.contains("unknown field `method`") && e.contains("restore"), "{e}");
    // Every field a type defines is accepted.
    let inst = json!({"id": "I1", "type": "institution", "institution": A, "status": "suspended", "until": "2026-08-01",
                      "responsible": [D1], "decided_at": "2026-05-01"});
    let full = json!({"id": "F1", "type": "finding", "code": D1, "institution": A, "case_id": "C1",
                      "item": "national-2024/10.5.2.4", "points": 9, "responsibility": "main", "adjust": null,
                      "suspend_months": 2, "decided_at": "2026-03-10"});
    assert!(Ledger::parse([(1, line(inst).as_bytes()), (2, line(full).as_bytes())], &rules("national-2024")).is_ok());
}

/// records.md reads years 1900-2199: a derived period that would start or end after 2199 could be
/// written but never read back (the filter would refuse the record), so the event is refused.
#[test]
fn a_period_past_2199_is_refused_not_written_records_md() {
    let f = with(
        with(finding("F1", D1, "C1", "national-2024/10.5.2.4", 9, "2199-12-20"), "responsibility", "main"),
        "suspend_months",
        1,
    );
    let e = try_run("national-2024", &[f], &[]).unwrap_err();
    assert!(e.starts_with("line 1, event F1:") && e.contains("2199"), "{e}");
    // Huai'an: the notice alone reaches 2200.
    let e = try_run("huaian-2020", &[fixed("F1", D1, "C1", "huaian-2020/15.1", "2199-12-20")], &[]).unwrap_err();
    assert!(e.starts_with("line 1, event F1:") && e.contains("2199"), "{e}");
    // Within range, written and read back.
    let f = with(finding("F1", D1, "C1", "national-2024/10.5.2.4", 9, "2199-11-20"), "responsibility", "main");
    let s = run("national-2024", &[f], &[]);
    assert!(record(&s, D1).validate().is_ok());
}
