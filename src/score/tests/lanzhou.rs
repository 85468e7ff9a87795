//! `lanzhou-2014` (Lanzhou, seed 002_0d8737387619c9dd.txt).

use super::*;

const P: &str = "lanzhou-2014";
/// 12(一) 编造医疗文书…骗取医疗保险基金, 10 points.
const FRAUD: &str = "lanzhou-2014/12.1";
/// 12(二) 虚假证明材料…套取医疗保险基金, 10 points.
const FALSE: &str = "lanzhou-2014/12.2";
/// 13(五) 经查实人为分解住院, 5 points.
const SPLIT: &str = "lanzhou-2014/13.5";
/// 13(三) 挂床住院…, 5 points.
const BED: &str = "lanzhou-2014/13.3";
/// 14(一) 不核验参保人员医疗保险证…, 1-3 points.
const CHECK: &str = "lanzhou-2014/14.1";
/// 14(二) 开虚假处方、大处方…, 1-3 points.
const RX: &str = "lanzhou-2014/14.2";

fn doctor() -> Vec<String> {
    vec![registered(D1, A, "2024-03-01")]
}

const FIRST: &str = "the agreement period 2024-03-01 to 2026-03-01";

#[test]
fn suspension_of_3_months_at_6_points_lanzhou_17() {
    let events = [fixed("F1", D1, "C1", SPLIT, "2024-06-10"), finding("F2", D1, "C2", CHECK, 1, "2024-07-01")];
    let s = run(P, &events, &doctor());
    // No restore is needed: service resumes when the period ends.
    assert_eq!(periods(&s, D1), vec![susp("2024-07-01", Some("2024-10-01"), "F2")]);
    assert_eq!(
        record(&s, D1).periods[0].basis.as_deref(),
        Some(format!("lanzhou-2014 Art. 17: 6 points in {FIRST}").as_str())
    );
}

#[test]
fn suspension_of_6_months_at_8_points_lanzhou_17() {
    let events = [
        fixed("F1", D1, "C1", SPLIT, "2024-06-10"),
        finding("F2", D1, "C2", CHECK, 1, "2024-07-01"),
        finding("F3", D1, "C3", RX, 2, "2024-08-01"),
    ];
    let s = run(P, &events, &doctor());
    assert_eq!(
        periods(&s, D1),
        vec![susp("2024-07-01", Some("2024-08-01"), "F2"), susp("2024-08-01", Some("2025-02-01"), "F3")]
    );
}

#[test]
fn disqualified_at_10_points_and_banned_a_year_lanzhou_17_18() {
    let s = run(P, &[fixed("F1", D1, "C1", FRAUD, "2024-06-10")], &doctor());
    assert_eq!(periods(&s, D1), vec![term("2024-06-10", None, "F1")]);
    assert_eq!(bans(&s, D1), vec!["2025-06-10"]);
    // Two 5-point items add up to 10 as well.
    let s = run(P, &[fixed("F1", D1, "C1", SPLIT, "2024-06-10"), fixed("F2", D1, "C2", BED, "2024-06-11")], &doctor());
    assert_eq!(periods(&s, D1).last().unwrap(), &term("2024-06-11", None, "F2"));
}

#[test]
fn a_second_disqualification_bans_5_years_lanzhou_18() {
    let events = [
        fixed("F1", D1, "C1", FRAUD, "2024-06-10"),
        with(event("G1", "register", D1, "2025-06-10"), "institution", A),
        fixed("F2", D1, "C2", FALSE, "2025-09-01"),
    ];
    let s = run(P, &events, &doctor());
    // The registration after the year's ban closes the first termination and starts a new agreement,
    // in which F2 counts from zero.
    assert_eq!(periods(&s, D1), vec![term("2024-06-10", Some("2025-06-10"), "F1"), term("2025-09-01", None, "F2")]);
    assert_eq!(bans(&s, D1), vec!["2025-06-10", "2030-09-01"]);
}

#[test]
fn service_resumes_without_a_restore_lanzhou_17() {
    let events = [
        fixed("F1", D1, "C1", SPLIT, "2024-06-10"),
        finding("F2", D1, "C2", CHECK, 1, "2024-07-01"),
        event("R1", "restore", D1, "2024-09-01"),
    ];
    let s = run(P, &events, &doctor());
    assert_eq!(periods(&s, D1), vec![susp("2024-07-01", Some("2024-10-01"), "F2")]);
    let (applied, text) = note(&s, D1, "R1");
    assert!(!applied && text.contains("needs no restore"), "{text}");
}

#[test]
fn a_deduction_in_the_second_agreement_does_not_add_to_the_first_lanzhou_6_3_and_11() {
    let events = [fixed("F1", D1, "C1", SPLIT, "2026-02-20"), fixed("F2", D1, "C2", BED, "2026-03-02")];
    let s = run(P, &events, &doctor());
    assert!(periods(&s, D1).is_empty());
    assert_eq!(total(&s, D1, FIRST), 5);
    assert_eq!(total(&s, D1, "the agreement period 2026-03-01 to 2028-03-01"), 5);
    // Within one agreement the same two findings are a suspension.
    let events = [fixed("F1", D1, "C1", SPLIT, "2026-02-20"), fixed("F2", D1, "C2", BED, "2026-02-27")];
    assert_eq!(periods(&run(P, &events, &doctor()), D1).len(), 1);
}

#[test]
fn the_first_agreement_starts_at_the_first_register_event_lanzhou_6_3() {
    let events = [
        with(event("G1", "register", D1, "2024-03-01"), "institution", A),
        fixed("F1", D1, "C1", SPLIT, "2026-02-20"),
        fixed("F2", D1, "C2", BED, "2026-03-02"),
    ];
    let s = run(P, &events, &[]);
    assert!(periods(&s, D1).is_empty());
    assert_eq!(total(&s, D1, FIRST), 5);
    assert_eq!(record(&s, D1).registrations[0].from, "2024-03-01");
}

#[test]
fn without_a_registration_there_is_no_agreement_to_count_in_lanzhou_6_3() {
    let e = try_run(P, &[fixed("F1", D1, "C1", SPLIT, "2026-02-20")], &[]).unwrap_err();
    assert!(e.starts_with("line 1, event F1: lanzhou-2014 counts points per service agreement"), "{e}");
}

#[test]
fn items_of_art_14_take_any_points_from_1_to_3_lanzhou_14() {
    let f = |points: Option<u32>, who: &str| {
        let mut v = json!({"id": "F1", "type": "finding", "code": D1, "case_id": "C1", "item": CHECK,
                           "responsibility": who, "decided_at": "2024-06-10"});
        if let Some(p) = points {
            v["points"] = p.into();
        }
        try_run(P, &[v], &doctor())
    };
    // No responsibility grading in Lanzhou: 2 points with main responsibility is allowed.
    assert_eq!(total(&f(Some(2), "main").unwrap(), D1, FIRST), 2);
    assert_eq!(total(&f(None, "important").unwrap(), D1, FIRST), 2);
    assert!(f(Some(4), "main").unwrap_err().contains("outside the band of item lanzhou-2014/14.1: 1-3"));
}

#[test]
fn institution_ratios_with_the_small_institution_rule_lanzhou_22() {
    // A: 9 doctors, one disqualified: fewer than 10, so one person terminates the agreement.
    // B: 15 doctors, one disqualified: 6.7% reaches 2%; under 20 doctors the 5% level needs two.
    let mut practitioners: Vec<String> =
        (11..20).map(|i| registered(&format!("D1101050000{i}"), A, "2024-03-01")).collect();
    practitioners.extend((20..35).map(|i| registered(&format!("D1101050000{i}"), B, "2024-03-01")));
    let events = [
        fixed("F1", "D110105000011", "C1", FRAUD, "2025-04-01"),
        fixed("F2", "D110105000020", "C2", FRAUD, "2025-04-01"),
    ];
    let s = run(P, &events, &practitioners);
    let i = &s.report.institutions;
    assert_eq!((i[0].institution.as_str(), i[0].staff, i[0].counted), (A, 9, 1));
    assert!(i[0].level.as_deref().unwrap().starts_with("agreement terminated"), "{:?}", i[0]);
    assert_eq!((i[1].institution.as_str(), i[1].staff, i[1].counted), (B, 15, 1));
    assert!(i[1].level.as_deref().unwrap().starts_with("no A-level rating"), "{:?}", i[1]);
}

#[test]
fn institution_events_reach_no_doctor_lanzhou_has_no_such_article() {
    let inst = json!({"id": "I1", "type": "institution", "institution": A, "status": "terminated",
                      "responsible": [D1], "decided_at": "2025-05-01"});
    let s = run(P, &[inst], &doctor());
    assert!(periods(&s, D1).is_empty());
    assert!(!s.records[0].changed);
    assert!(!s.report.institution_events[0].applied);
}

// --- issue 12 item 7: where scoring departed from the articles --------------------------------------

#[test]
fn disqualifications_count_per_agreement_period_not_per_year_lanzhou_22() {
    // 15 doctors at B (fewer than 20: two disqualified persons terminate the agreement). Two
    // disqualifications in one agreement period (一个协议期内, the agreements of 2014-05-01 every two
    // years: 2024-05-01 to 2026-05-01), in two calendar years. Per year they were one each, and missed.
    let practitioners: Vec<String> =
        (20..35).map(|i| registered(&format!("D1101050000{i}"), B, "2024-03-01")).collect();
    let events = [
        fixed("F1", "D110105000020", "C1", FRAUD, "2025-12-01"),
        fixed("F2", "D110105000021", "C2", FRAUD, "2026-02-01"),
    ];
    let s = run(P, &events, &practitioners);
    let i = &s.report.institutions;
    assert_eq!(i.len(), 1, "{i:?}");
    assert_eq!(
        (i[0].period.as_str(), i[0].staff, i[0].counted),
        ("the agreement period 2024-05-01 to 2026-05-01", 15, 2)
    );
    assert!(i[0].level.as_deref().unwrap().starts_with("agreement terminated"), "{:?}", i[0]);
}

#[test]
fn the_ratio_counts_posted_doctors_not_nurses_lanzhou_22_and_2() {
    // 9 doctors and 15 nurses: fewer than 10 doctors, so one disqualified doctor terminates the
    // agreement. Counted over every registration (24) it was 4.2%: only "no A-level rating".
    let mut practitioners: Vec<String> =
        (11..20).map(|i| registered(&format!("D1101050000{i}"), A, "2024-03-01")).collect();
    practitioners.extend((0..15).map(|i| registered(&format!("N1101050001{i:02}"), A, "2024-03-01")));
    let s = run(P, &[fixed("F1", "D110105000011", "C1", FRAUD, "2025-04-01")], &practitioners);
    let i = &s.report.institutions[0];
    assert_eq!((i.staff, i.counted), (9, 1));
    assert!(i.level.as_deref().unwrap().starts_with("agreement terminated"), "{i:?}");
}

#[test]
fn a_finding_before_the_first_registration_is_refused_lanzhou_6_3_and_11() {
    // Registered from 2024-03-01: a finding of 2023 has no agreement period to count in.
    let e = try_run(P, &[fixed("F1", D1, "C1", SPLIT, "2023-06-01")], &doctor()).unwrap_err();
    assert!(e.starts_with("line 1, event F1:") && e.contains("before") && e.contains("2024-03-01"), "{e}");
}
