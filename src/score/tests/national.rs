//! `national-2024` (Qinghai, seed 001_70455349a9435e17.txt).

use super::*;

const P: &str = "national-2024";
/// 10(三)3.(1) 分解住院、挂床住院, 1-3 points.
const SPLIT: &str = "national-2024/10.3.3.1";
/// 10(三)3.(2) 过度诊疗…, 1-3 points.
const OVER: &str = "national-2024/10.3.3.2";
/// 10(四)2.(1) 高套病种…, 4-6 points.
const UPCODE: &str = "national-2024/10.4.2.1";
/// 10(五)2.(4) 借用、套用或出借医保代码, 7-9 points.
const CODE: &str = "national-2024/10.5.2.4";
/// 10(六)3.(2) 其他严重违反…, 10-12 points.
const SEVERE: &str = "national-2024/10.6.3.2";

#[test]
fn key_oversight_at_6_points_changes_no_status_qinghai_11_1() {
    let s = run(P, &[finding("F1", D1, "C1", UPCODE, 6, "2026-03-10")], &[]);
    assert_eq!(flags(&s, D1), vec![(Flag::KeyOversight, "F1".into())]);
    assert!(periods(&s, D1).is_empty());
}

#[test]
fn suspension_at_9_points_qinghai_11_2() {
    let s = run(
        P,
        &[finding("F1", D1, "C1", UPCODE, 6, "2026-03-02"), finding("F2", D1, "C2", SPLIT, 3, "2026-03-10")],
        &[],
    );
    // Starts on the day of the crossing decision; without a restore (Art. 18) it goes on.
    assert_eq!(periods(&s, D1), vec![susp("2026-03-10", None, "F2")]);
    assert_eq!(record(&s, D1).periods[0].basis.as_deref(), Some("national-2024 Art. 11(2): 9 points in 2026"));
    assert_eq!(flags(&s, D1), vec![(Flag::KeyOversight, "F1".into()), (Flag::WarningInterview, "F2".into())]);
}

#[test]
fn suspension_lasts_one_month_unless_the_decision_names_up_to_6_qinghai_11_2() {
    let restore = event("R1", "restore", D1, "2026-03-20");
    let s = run(P, &[finding("F1", D1, "C1", CODE, 9, "2026-03-10"), restore.clone()], &[]);
    assert_eq!(periods(&s, D1), vec![susp("2026-03-10", Some("2026-04-10"), "F1")]);
    let six = with(finding("F1", D1, "C1", CODE, 9, "2026-03-10"), "suspend_months", 6);
    let s = run(P, &[six, restore.clone()], &[]);
    assert_eq!(periods(&s, D1), vec![susp("2026-03-10", Some("2026-09-10"), "F1")]);
    let seven = with(finding("F1", D1, "C1", CODE, 9, "2026-03-10"), "suspend_months", 7);
    let e = try_run(P, &[seven, restore], &[]).unwrap_err();
    assert!(e.starts_with("line 1, event F1: field `suspend_months`"), "{e}");
}

#[test]
fn termination_at_12_points_qinghai_11_3() {
    let s =
        run(P, &[finding("F1", D1, "C1", CODE, 9, "2026-03-10"), finding("F2", D1, "C2", SPLIT, 3, "2026-05-06")], &[]);
    let p = periods(&s, D1);
    // The suspension from F1 is overtaken by the termination, which has no end.
    assert_eq!(p, vec![susp("2026-03-10", Some("2026-05-06"), "F1"), term("2026-05-06", None, "F2")]);
    assert_eq!(record(&s, D1).periods[1].basis.as_deref(), Some("national-2024 Art. 11(3): 12 points in 2026"));
}

#[test]
fn one_shot_12_bans_3_years_accumulated_12_bans_1_year_qinghai_11_3() {
    let s = run(
        P,
        &[
            finding("F1", D1, "C1", SEVERE, 12, "2026-03-10"),
            finding("F2", D2, "C2", CODE, 9, "2026-03-10"),
            finding("F3", D2, "C3", SPLIT, 3, "2026-04-01"),
        ],
        &[],
    );
    assert_eq!(periods(&s, D1), vec![term("2026-03-10", None, "F1")]);
    assert_eq!(bans(&s, D1), vec!["2029-03-10"]);
    assert_eq!(bans(&s, D2), vec!["2027-04-01"]);
}

#[test]
fn one_case_of_several_items_reaching_12_is_one_shot_qinghai_11_3() {
    let s =
        run(P, &[finding("F1", D1, "C1", CODE, 9, "2026-03-10"), finding("F2", D1, "C1", SPLIT, 3, "2026-03-10")], &[]);
    assert_eq!(bans(&s, D1), vec!["2029-03-10"]);
}

#[test]
fn register_after_the_ban_closes_the_termination_during_it_not_qinghai_11_3() {
    let events = [
        finding("F1", D1, "C1", SEVERE, 12, "2026-03-10"),
        with(event("G1", "register", D1, "2027-06-01"), "institution", B),
        with(event("G2", "register", D1, "2029-03-10"), "institution", A),
    ];
    let s = run(P, &events, &[registered(D1, A, "2021-03-01")]);
    assert_eq!(periods(&s, D1), vec![term("2026-03-10", Some("2029-03-10"), "F1")]);
    assert!(note(&s, D1, "G1").1.contains("during the ban"), "{:?}", note(&s, D1, "G1"));
    assert!(note(&s, D1, "G2").1.contains("closes the termination F1"));
}

#[test]
fn restore_before_the_planned_end_ends_it_there_qinghai_18() {
    let s = run(P, &[finding("F1", D1, "C1", CODE, 9, "2026-03-10"), event("R1", "restore", D1, "2026-04-01")], &[]);
    assert_eq!(periods(&s, D1), vec![susp("2026-03-10", Some("2026-04-10"), "F1")]);
}

#[test]
fn restore_after_the_planned_end_ends_it_on_the_restore_day_qinghai_18() {
    let s = run(P, &[finding("F1", D1, "C1", CODE, 9, "2026-03-10"), event("R1", "restore", D1, "2026-05-20")], &[]);
    assert_eq!(periods(&s, D1), vec![susp("2026-03-10", Some("2026-05-20"), "F1")]);
}

#[test]
fn no_restore_the_suspension_goes_on_qinghai_9_6_7() {
    let s = run(P, &[finding("F1", D1, "C1", CODE, 9, "2026-03-10")], &[]);
    assert_eq!(periods(&s, D1), vec![susp("2026-03-10", None, "F1")]);
    // A restore decided before the suspension is not for it.
    let s = run(P, &[event("R0", "restore", D1, "2026-01-10"), finding("F1", D1, "C1", CODE, 9, "2026-03-10")], &[]);
    assert_eq!(periods(&s, D1), vec![susp("2026-03-10", None, "F1")]);
    assert!(!note(&s, D1, "R0").0);
}

#[test]
fn same_case_different_items_add_up_qinghai_10_1() {
    let s = run(
        P,
        &[
            finding("F1", D1, "C1", UPCODE, 6, "2026-03-10"),
            finding("F2", D1, "C1", SPLIT, 2, "2026-03-10"),
            finding("F3", D1, "C1", OVER, 1, "2026-03-10"),
        ],
        &[],
    );
    assert_eq!(total(&s, D1, "2026"), 9);
    assert_eq!(periods(&s, D1), vec![susp("2026-03-10", None, "F3")]);
}

#[test]
fn same_item_several_circumstances_counts_the_highest_once_qinghai_10_1() {
    let s = run(
        P,
        &[
            finding("F1", D1, "C1", SPLIT, 2, "2026-03-10"),
            finding("F2", D1, "C1", SPLIT, 1, "2026-03-11"),
            finding("F3", D1, "C1", SPLIT, 3, "2026-03-12"),
            finding("F4", D1, "C2", SPLIT, 3, "2026-03-12"),
        ],
        &[],
    );
    // Case C1: 2, then a lower circumstance (ignored), then a higher one (raises to 3); case C2 adds 3.
    assert_eq!(total(&s, D1, "2026"), 6);
    let (applied, text) = note(&s, D1, "F2");
    assert!(!applied && text.contains("only the highest counts"), "{text}");
    assert!(note(&s, D1, "F3").1.contains("+1"));
}

#[test]
fn points_reset_on_1_january_qinghai_10_1() {
    let s = run(
        P,
        &[finding("F1", D1, "C1", UPCODE, 6, "2025-12-30"), finding("F2", D1, "C2", SPLIT, 3, "2026-01-02")],
        &[],
    );
    assert_eq!((total(&s, D1, "2025"), total(&s, D1, "2026")), (6, 3));
    assert!(periods(&s, D1).is_empty());
}

#[test]
fn points_of_every_site_add_up_per_person_qinghai_10_1() {
    let f1 = with(finding("F1", D1, "C1", UPCODE, 6, "2026-03-10"), "institution", A);
    let f2 = with(finding("F2", D1, "C9", SPLIT, 3, "2026-04-10"), "institution", B);
    let practitioners = [json!({"code": D1, "version": 1, "registrations": [
        {"institution": A, "from": "2021-03-01"}, {"institution": B, "from": "2022-03-01"}]})
    .to_string()];
    let s = run(P, &[f1, f2], &practitioners);
    assert_eq!(periods(&s, D1), vec![susp("2026-04-10", None, "F2")]);
}

#[test]
fn responsibility_takes_low_middle_high_of_the_band_qinghai_10_7_4() {
    for (who, want) in [("general", 7), ("important", 8), ("main", 9)] {
        let f = json!({"id": "F1", "type": "finding", "code": D1, "case_id": "C1", "item": CODE,
                       "responsibility": who, "adjust": null, "decided_at": "2026-03-10"});
        assert_eq!(total(&run(P, &[f], &[]), D1, "2026"), want, "{who}");
    }
}

fn adjusted(who: &str, adjust: &str, points: u32, item: &str) -> Result<Scored, String> {
    let f = json!({"id": "F1", "type": "finding", "code": D1, "case_id": "C1", "item": item, "points": points,
                   "responsibility": who, "adjust": adjust, "decided_at": "2026-03-10"});
    try_run(P, &[f], &[])
}

#[test]
fn lighter_allows_the_lower_part_of_the_band_or_the_band_below_qinghai_10_7_4() {
    // Main responsibility in 7-9 is 9: lighter allows 8, 7 (lower part) and 4-6 (the band below).
    for p in [8, 7, 6, 4] {
        assert!(adjusted("main", "lighter", p, CODE).is_ok(), "{p}");
    }
    for p in [9, 3] {
        let e = adjusted("main", "lighter", p, CODE).unwrap_err();
        assert!(e.contains("allows 4-8"), "{e}");
    }
    // General responsibility in the lowest band: nothing is lighter.
    assert!(adjusted("general", "lighter", 1, SPLIT).unwrap_err().contains("no such points"));
}

#[test]
fn heavier_allows_the_upper_part_of_the_band_or_the_band_above_qinghai_10_7_4() {
    for p in [8, 9, 10, 12] {
        assert!(adjusted("general", "heavier", p, CODE).is_ok(), "{p}");
    }
    assert!(adjusted("general", "heavier", 7, CODE).unwrap_err().contains("allows 8-12"));
    assert!(adjusted("main", "heavier", 12, SEVERE).unwrap_err().contains("no such points"));
    // A heavier 12 from one case is a one-shot termination.
    let s = adjusted("general", "heavier", 12, CODE).unwrap();
    assert_eq!(periods(&s, D1), vec![term("2026-03-10", None, "F1")]);
}

#[test]
fn points_must_match_the_responsibility_unless_adjusted_qinghai_10_7_4() {
    let f = json!({"id": "F1", "type": "finding", "code": D1, "case_id": "C1", "item": CODE, "points": 8,
                   "responsibility": "main", "decided_at": "2026-03-10"});
    let e = try_run(P, &[f], &[]).unwrap_err();
    assert!(e.contains("line 1, event F1") && e.contains("gives 9"), "{e}");
    // Points without a responsibility may be anywhere in the band.
    assert!(try_run(P, &[finding("F1", D1, "C1", CODE, 8, "2026-03-10")], &[]).is_ok());
}

#[test]
fn training_repairs_once_a_year_qinghai_17_1() {
    let training = |id: &str, at: &str| with(with(event(id, "repair", D1, at), "method", "training"), "points", 3);
    let s = run(
        P,
        &[
            finding("F1", D1, "C1", UPCODE, 6, "2026-03-10"),
            training("T1", "2026-04-01"),
            training("T2", "2026-05-01"),
            finding("F2", D1, "C2", UPCODE, 6, "2026-06-01"),
        ],
        &[],
    );
    assert_eq!(total(&s, D1, "2026"), 9);
    assert!(!note(&s, D1, "T2").0);
    assert_eq!(periods(&s, D1), vec![susp("2026-06-01", None, "F2")]);
}

#[test]
fn activities_repair_at_most_3_points_a_year_qinghai_17_2() {
    let act = |id: &str, at: &str| with(event(id, "repair", D1, at), "method", "activity");
    let s = run(
        P,
        &[
            finding("F1", D1, "C1", UPCODE, 6, "2026-03-10"),
            act("A1", "2026-04-01"),
            act("A2", "2026-04-02"),
            act("A3", "2026-04-03"),
            act("A4", "2026-04-04"),
        ],
        &[],
    );
    assert_eq!(total(&s, D1, "2026"), 3);
    let (applied, text) = note(&s, D1, "A4");
    assert!(!applied && text.contains("at most 3"), "{text}");
    // An activity removes exactly 1 point.
    let e = try_run(P, &[with(act("A1", "2026-04-01"), "points", 2)], &[]).unwrap_err();
    assert!(e.starts_with("line 1, event A1: points 2"), "{e}");
}

#[test]
fn a_repair_never_takes_the_total_below_zero_qinghai_17() {
    let t = with(with(event("T1", "repair", D1, "2026-04-01"), "method", "training"), "points", 3);
    let s = run(P, &[finding("F1", D1, "C1", SPLIT, 1, "2026-03-10"), t], &[]);
    assert_eq!(total(&s, D1, "2026"), 0);
    assert!(note(&s, D1, "T1").1.contains("removes 1 of 3"));
}

#[test]
fn repair_during_a_suspension_shortens_it_by_a_month_qinghai_17_3() {
    let f = with(finding("F1", D1, "C1", CODE, 9, "2026-03-10"), "suspend_months", 3);
    let t = with(with(event("T1", "repair", D1, "2026-04-01"), "method", "training"), "points", 1);
    let s = run(P, &[f, t, event("R1", "restore", D1, "2026-04-20")], &[]);
    assert_eq!(periods(&s, D1), vec![susp("2026-03-10", Some("2026-05-10"), "F1")]);
    assert_eq!(total(&s, D1, "2026"), 8);
}

#[test]
fn repair_shortens_the_ban_after_an_accumulated_termination_qinghai_17_3() {
    let events = [
        finding("F1", D1, "C1", CODE, 9, "2026-03-10"),
        finding("F2", D1, "C2", SPLIT, 3, "2026-04-01"),
        with(event("A1", "repair", D1, "2026-06-01"), "method", "activity"),
    ];
    let s = run(P, &events, &[]);
    assert_eq!(bans(&s, D1), vec!["2027-03-01"]);
}

#[test]
fn a_one_shot_12_termination_cannot_be_repaired_qinghai_17_3() {
    let t = with(with(event("T1", "repair", D1, "2026-06-01"), "method", "training"), "points", 3);
    let s = run(P, &[finding("F1", D1, "C1", SEVERE, 12, "2026-03-10"), t], &[]);
    let (applied, text) = note(&s, D1, "T1");
    assert!(!applied && text.contains("cannot be repaired"), "{text}");
    assert_eq!(total(&s, D1, "2026"), 12);
    assert_eq!(bans(&s, D1), vec!["2029-03-10"]);
}

#[test]
fn institution_suspension_suspends_the_responsible_staff_only_qinghai_9_6_6() {
    let inst = json!({"id": "I1", "type": "institution", "institution": A, "status": "suspended",
                      "until": "2026-08-01", "responsible": [D1], "decided_at": "2026-05-01"});
    let practitioners = [registered(D1, A, "2021-03-01"), registered(D2, A, "2021-03-01")];
    let s = run(P, &[inst], &practitioners);
    assert_eq!(periods(&s, D1), vec![susp("2026-05-01", Some("2026-08-01"), "I1")]);
    assert!(periods(&s, D2).is_empty());
    assert!(!s.records.iter().find(|r| r.record.code == D2).unwrap().changed);
    assert_eq!(
        record(&s, D1).periods[0].basis.as_deref(),
        Some("national-2024 Art. 9(6)6: institution H11010500001 suspended on 2026-05-01 (until 2026-08-01)")
    );
}

#[test]
fn institution_termination_terminates_the_responsible_staff_qinghai_9_6_6() {
    let inst = json!({"id": "I1", "type": "institution", "institution": A, "status": "terminated",
                      "until": null, "responsible": [D1, D3], "decided_at": "2026-05-01"});
    let s = run(P, &[inst], &[registered(D1, A, "2021-03-01"), registered(D2, A, "2021-03-01")]);
    assert_eq!(periods(&s, D1), vec![term("2026-05-01", None, "I1")]);
    assert_eq!(periods(&s, D3), vec![term("2026-05-01", None, "I1")]);
    assert!(periods(&s, D2).is_empty());
}

#[test]
fn a_revoked_finding_takes_its_points_and_suspension_with_it_qinghai_15() {
    let events = [
        finding("F1", D1, "C1", CODE, 9, "2026-03-10"),
        finding("F2", D1, "C2", SPLIT, 2, "2026-04-10"),
        json!({"id": "V1", "type": "revoke", "target": "F1", "decided_at": "2026-05-01"}),
    ];
    let s = run(P, &events, &[]);
    assert!(periods(&s, D1).is_empty());
    assert_eq!(total(&s, D1, "2026"), 2);
    let (applied, text) = note(&s, D1, "F1");
    assert!(!applied && text.contains("withdrawn by V1"), "{text}");
    assert!(note(&s, D1, "V1").0);
}

#[test]
fn institution_ratios_of_20_and_50_percent_qinghai_12() {
    // Five staff at A; two suspended (40%): settlement may be suspended. Two staff at B, one of them
    // suspended (50%): agreement suspended.
    let mut practitioners: Vec<String> =
        (1..=5).map(|i| registered(&format!("D11010500001{i}"), A, "2021-03-01")).collect();
    practitioners.push(registered("D110105000021", B, "2021-03-01"));
    practitioners.push(registered("D110105000022", B, "2021-03-01"));
    let events = [
        finding("F1", "D110105000011", "C1", CODE, 9, "2026-03-10"),
        finding("F2", "D110105000012", "C2", CODE, 9, "2026-03-10"),
        finding("F3", "D110105000021", "C3", CODE, 9, "2026-03-10"),
    ];
    let s = run(P, &events, &practitioners);
    let i = &s.report.institutions;
    assert_eq!((i[0].institution.as_str(), i[0].staff, i[0].counted), (A, 5, 2));
    assert!(i[0].level.as_deref().unwrap().starts_with("settlement may be suspended"), "{:?}", i[0]);
    assert_eq!((i[1].institution.as_str(), i[1].staff, i[1].counted), (B, 2, 1));
    assert!(i[1].level.as_deref().unwrap().starts_with("agreement suspended"), "{:?}", i[1]);
}

// --- issue 12 item 7: where scoring departed from the articles --------------------------------------

/// Art. 17(3): 修复记分后 … 缩短暂停或终止时限1个月 — a suspension is shortened after points were repaired.
/// A repair in a year whose total is already 0 removes nothing: it shortens nothing, and does not use the
/// year's training.
#[test]
fn a_repair_that_removes_no_points_shortens_nothing_qinghai_17_3() {
    let training =
        |id: &str, at: &str, p: u32| with(with(event(id, "repair", D1, at), "method", "training"), "points", p);
    let f1 = with(with(finding("F1", D1, "C1", CODE, 9, "2025-12-15"), "responsibility", "main"), "suspend_months", 3);
    let restore = event("R1", "restore", D1, "2026-02-01");
    let s = run(P, &[f1.clone(), training("T1", "2026-01-10", 2), restore.clone()], &[]);
    assert_eq!(periods(&s, D1), vec![susp("2025-12-15", Some("2026-03-15"), "F1")]);
    let (applied, text) = note(&s, D1, "T1");
    assert!(!applied && text.contains("no points"), "{text}");
    // The year's training is still there for points that come later; that repair does shorten.
    let events = [
        f1,
        training("T1", "2026-01-10", 2),
        finding("F2", D1, "C2", UPCODE, 6, "2026-01-20"),
        training("T2", "2026-01-25", 3),
        restore,
    ];
    let s = run(P, &events, &[]);
    assert!(note(&s, D1, "T2").0, "{:?}", note(&s, D1, "T2"));
    assert_eq!(total(&s, D1, "2026"), 3);
    assert_eq!(periods(&s, D1), vec![susp("2025-12-15", Some("2026-02-15"), "F1")]);
}

/// Art. 10(3)1 and 10(4)1 apply only to a person who bears main responsibility (该人员负主要责任的); and
/// points with no responsibility stand for the responsibility whose points they are (Art. 10(7)4).
#[test]
fn items_for_the_person_with_main_responsibility_refuse_other_responsibilities_qinghai_10_3_1_and_10_4_1() {
    let with_r = |item: &str, points: Option<u32>, who: Option<&str>| {
        let mut v = json!({"id": "F1", "type": "finding", "code": D1, "case_id": "C1", "item": item, "decided_at": "2026-03-10"});
        if let Some(p) = points {
            v["points"] = p.into();
        }
        if let Some(w) = who {
            v["responsibility"] = w.into();
        }
        try_run(P, &[v], &[])
    };
    for (item, main) in [("national-2024/10.3.1", 3), ("national-2024/10.4.1", 6)] {
        for who in ["general", "important"] {
            let e = with_r(item, None, Some(who)).unwrap_err();
            assert!(e.contains("main responsibility") && e.contains(item), "{item} {who}: {e}");
        }
        let e = with_r(item, Some(main - 2), None).unwrap_err();
        assert!(e.contains("main responsibility"), "{item}: {e}");
        assert_eq!(total(&with_r(item, None, Some("main")).unwrap(), D1, "2026"), main);
        assert_eq!(total(&with_r(item, Some(main), None).unwrap(), D1, "2026"), main);
    }
    // Other items: any responsibility.
    assert_eq!(total(&with_r(SPLIT, None, Some("general")).unwrap(), D1, "2026"), 1);
}
