//! `huaian-2020` (Huai'an, seed 000_a49834594c269b75.txt).

use super::*;

const P: &str = "huaian-2020";
/// 14(一) 编造医疗文书…骗取医保基金, 12 points.
const FRAUD: &str = "huaian-2020/14.1";
/// 15(一) 串换…造成医保基金较大损失, 6 points.
const SWAP: &str = "huaian-2020/15.1";
/// 15(五) 拒绝、阻挠或不配合医保部门开展监督检查, 6 points.
const OBSTRUCT: &str = "huaian-2020/15.5";
/// 16(三) 查实挂床住院、分解住院, 3 points.
const SPLIT: &str = "huaian-2020/16.3";
/// 16(一) 将应由医保基金支付的医疗费用转为参保人员自负, 3 points.
const SHIFT: &str = "huaian-2020/16.1";

#[test]
fn warning_interview_at_3_points_huaian_22_1() {
    let s = run(P, &[fixed("F1", D1, "C1", SPLIT, "2026-03-10")], &[]);
    assert_eq!(flags(&s, D1), vec![(Flag::WarningInterview, "F1".into())]);
    assert!(periods(&s, D1).is_empty());
}

#[test]
fn suspension_of_1_month_at_6_points_after_15_working_days_huaian_22_2() {
    // Decided Tuesday 2026-03-10; day 1 is Wednesday 03-11; day 15 is Tuesday 03-31.
    let s = run(P, &[fixed("F1", D1, "C1", SWAP, "2026-03-10"), event("R1", "restore", D1, "2026-04-20")], &[]);
    assert_eq!(periods(&s, D1), vec![susp("2026-03-31", Some("2026-04-30"), "F1")]);
    assert_eq!(record(&s, D1).periods[0].basis.as_deref(), Some("huaian-2020 Art. 22(2): 6 points in 2026"));
}

#[test]
fn notice_period_spans_a_weekend_huaian_22_4() {
    // Decided Friday 2026-03-13: Saturday and Sunday do not count, day 1 is Monday 03-16, and after
    // two more weekends day 15 is Friday 04-03.
    let s = run(P, &[fixed("F1", D1, "C1", SWAP, "2026-03-13"), event("R1", "restore", D1, "2026-04-20")], &[]);
    assert_eq!(periods(&s, D1), vec![susp("2026-04-03", Some("2026-05-03"), "F1")]);
}

#[test]
fn notice_period_across_a_holiday_and_a_make_up_workday_huaian_22_4() {
    // Decided Friday 2026-09-18. Sunday 09-20 is a make-up working day (day 1); 中秋 09-25..27 and
    // 国庆 10-01..07 do not count; Saturday 10-10 is a make-up working day (day 11); day 15 is 10-15.
    let s = run(P, &[fixed("F1", D1, "C1", SWAP, "2026-09-18"), event("R1", "restore", D1, "2026-11-01")], &[]);
    assert_eq!(periods(&s, D1), vec![susp("2026-10-15", Some("2026-11-15"), "F1")]);
}

#[test]
fn a_notice_period_beyond_the_calendar_is_provisional_not_an_error_huaian_22_4() {
    // Decided Monday 2026-12-21: days 1-8 are 12-22..31 (2026, listed), then 2027 has no holiday list
    // in the shipped calendar, so its weekdays count: day 15 is Monday 2027-01-11 — provisional.
    let events = [fixed("F1", D1, "C1", SWAP, "2026-12-21"), fixed("F2", D2, "C2", SWAP, "2026-03-10")];
    let s = run(P, &events, &[]);
    assert_eq!(periods(&s, D1), vec![susp("2027-01-11", None, "F1")]);
    let basis = record(&s, D1).periods[0].basis.clone().unwrap();
    assert!(basis.starts_with("huaian-2020 Art. 22(2): 6 points in 2026; PROVISIONAL:"), "{basis}");
    assert!(basis.contains("no holiday list for 2027"), "{basis}");
    // Everyone else in the ledger is scored as before, and not provisional.
    assert_eq!(periods(&s, D2), vec![susp("2026-03-31", None, "F2")]);
    let provisional: Vec<(&str, Vec<i32>)> = s.report.provisional().map(|(c, d)| (c, d.provisional.clone())).collect();
    assert_eq!(provisional, vec![(D1, vec![2027])]);
    let md = markdown(&s.report, &Sources::default());
    assert!(md.contains("## Provisional periods"), "{md}");
    assert!(md.contains(&format!("| {D1} | suspended | 2027-01-11 | open | F1 | 2027 |")), "{md}");
}

#[test]
fn a_loaded_calendar_replaces_the_provisional_period_huaian_22_4() {
    // The same finding with a 2027 schedule loaded (test data, not the State Council's: a holiday on
    // 01-04 and 01-05) counts those days out: day 15 moves from 01-11 to 01-14, and nothing is provisional.
    let mut r = rules(P);
    let next =
        "[[year]]\nyear = 2027\nholidays = [\"2027-01-01\", \"2027-01-04\", \"2027-01-05\"]\nmakeup_workdays = []\n";
    let loaded = crate::score::calendar::Calendar::from_toml("test-2027.toml", next).unwrap();
    assert!(r.notice.as_mut().unwrap().calendar.extend(loaded).is_empty());
    let l = ledger(&r, &[fixed("F1", D1, "C1", SWAP, "2026-12-21")]).unwrap();
    let s = score(&r, &l, &[]).unwrap();
    assert_eq!(periods(&s, D1), vec![susp("2027-01-14", None, "F1")]);
    assert_eq!(record(&s, D1).periods[0].basis.as_deref(), Some("huaian-2020 Art. 22(2): 6 points in 2026"));
    assert_eq!(s.report.provisional().count(), 0);
    assert!(!markdown(&s.report, &Sources::default()).contains("Provisional"));
}

#[test]
fn suspension_of_3_months_at_9_points_replaces_the_remainder_of_1_month_huaian_22_3() {
    let events = [
        fixed("F1", D1, "C1", SWAP, "2026-03-10"),
        fixed("F2", D1, "C2", SPLIT, "2026-04-01"),
        event("R1", "restore", D1, "2026-07-01"),
    ];
    let s = run(P, &events, &[]);
    // F1: from 03-31 (planned 04-30). F2, decided Wednesday 04-01: day 15 is 04-23 (清明 04-04..06
    // skipped); its 3 months replace what was left of F1's month, never adding to it.
    assert_eq!(
        periods(&s, D1),
        vec![susp("2026-03-31", Some("2026-04-23"), "F1"), susp("2026-04-23", Some("2026-07-23"), "F2")]
    );
    assert_eq!(record(&s, D1).periods[1].basis.as_deref(), Some("huaian-2020 Art. 22(3): 9 points in 2026"));
}

#[test]
fn suspension_of_1_year_at_12_points_and_untrustworthy_huaian_22_4_and_23() {
    let s = run(P, &[fixed("F1", D1, "C1", FRAUD, "2026-03-10"), event("R1", "restore", D1, "2027-03-01")], &[]);
    assert_eq!(periods(&s, D1), vec![susp("2026-03-31", Some("2027-03-31"), "F1")]);
    assert_eq!(record(&s, D1).periods[0].basis.as_deref(), Some("huaian-2020 Art. 22(4): 12 points in 2026"));
    assert_eq!(flags(&s, D1), vec![(Flag::WarningInterview, "F1".into()), (Flag::Untrustworthy, "F1".into())]);
}

fn nine_in(year: i32, n: usize) -> Vec<Value> {
    vec![
        fixed(&format!("F{n}a"), D1, &format!("C{n}a"), SWAP, &format!("{year}-05-06")),
        fixed(&format!("F{n}b"), D1, &format!("C{n}b"), SHIFT, &format!("{year}-05-08")),
        event(&format!("R{n}"), "restore", D1, &format!("{year}-11-02")),
    ]
}

#[test]
fn nine_points_in_three_consecutive_years_suspends_1_year_huaian_22_4_and_23() {
    let events: Vec<Value> = [nine_in(2024, 1), nine_in(2025, 2), nine_in(2026, 3)].concat();
    let s = run(P, &events, &[]);
    // Friday 2026-05-08: Saturday 05-09 is a make-up working day (day 1); day 15 is 05-28. One year,
    // ended by the restore (decided before the planned end) at the planned end.
    assert_eq!(periods(&s, D1).pop().unwrap(), susp("2026-05-28", Some("2027-05-28"), "F3b"));
    assert_eq!(
        record(&s, D1).periods.last().unwrap().basis.as_deref(),
        Some("huaian-2020 Art. 22(4): 9 points in 2026, and 9 or more in 2024 and 2025")
    );
    assert!(flags(&s, D1).contains(&(Flag::Untrustworthy, "F3b".into())));
}

#[test]
fn nine_points_in_two_years_out_of_three_is_3_months_huaian_22_3() {
    let events: Vec<Value> = [nine_in(2024, 1), nine_in(2026, 3)].concat();
    let s = run(P, &events, &[]);
    let last = record(&s, D1).periods.last().unwrap().clone();
    assert_eq!(last.basis.as_deref(), Some("huaian-2020 Art. 22(3): 9 points in 2026"));
    assert_eq!((last.from.as_str(), last.until.as_deref()), ("2026-05-28", Some("2026-11-02")));
    assert!(!flags(&s, D1).iter().any(|(f, _)| *f == Flag::Untrustworthy));
}

#[test]
fn several_items_in_one_case_count_the_highest_only_huaian_18() {
    let s = run(
        P,
        &[
            fixed("F1", D1, "C1", SPLIT, "2026-03-10"),
            fixed("F2", D1, "C1", SWAP, "2026-03-10"),
            fixed("F3", D1, "C1", SHIFT, "2026-03-10"),
        ],
        &[],
    );
    // 3, then 6 (raises the case to 6), then 3 (ignored): 6 in all.
    assert_eq!(total(&s, D1, "2026"), 6);
    assert!(!note(&s, D1, "F3").0);
}

#[test]
fn the_same_item_several_times_in_one_case_counts_once_huaian_18() {
    let s = run(P, &[fixed("F1", D1, "C1", SPLIT, "2026-03-10"), fixed("F2", D1, "C1", SPLIT, "2026-03-11")], &[]);
    assert_eq!(total(&s, D1, "2026"), 3);
    let (applied, text) = note(&s, D1, "F2");
    assert!(!applied && text.contains("Art. 18"), "{text}");
    // In different cases they add up.
    let s = run(P, &[fixed("F1", D1, "C1", SPLIT, "2026-03-10"), fixed("F2", D1, "C2", SPLIT, "2026-03-11")], &[]);
    assert_eq!(total(&s, D1, "2026"), 6);
}

#[test]
fn deductions_follow_the_doctor_across_institutions_huaian_19_20() {
    let f1 = with(fixed("F1", D1, "C1", SPLIT, "2026-03-10"), "institution", A);
    let f2 = with(fixed("F2", D1, "C2", SHIFT, "2026-03-10"), "institution", B);
    let practitioners = [registered(D1, A, "2021-03-01")];
    let events = [f1, with(event("G1", "deregister", D1, "2026-03-01"), "institution", A), f2];
    let s = run(P, &events, &practitioners);
    assert_eq!(total(&s, D1, "2026"), 6);
    assert_eq!(periods(&s, D1).len(), 1);
}

#[test]
fn deductions_reset_at_year_end_huaian_13() {
    let s = run(P, &[fixed("F1", D1, "C1", SPLIT, "2025-12-30"), fixed("F2", D1, "C2", SHIFT, "2026-01-05")], &[]);
    assert_eq!((total(&s, D1, "2025"), total(&s, D1, "2026")), (3, 3));
    assert!(periods(&s, D1).is_empty());
}

#[test]
fn restore_decides_the_end_huaian_25() {
    let f = || fixed("F1", D1, "C1", SWAP, "2026-03-10");
    // None: the suspension extends.
    assert_eq!(periods(&run(P, &[f()], &[]), D1), vec![susp("2026-03-31", None, "F1")]);
    // Before the planned end: ends at the planned end.
    let s = run(P, &[f(), event("R1", "restore", D1, "2026-04-21")], &[]);
    assert_eq!(periods(&s, D1), vec![susp("2026-03-31", Some("2026-04-30"), "F1")]);
    // After it: ends on the restore's day.
    let s = run(P, &[f(), event("R1", "restore", D1, "2026-06-15")], &[]);
    assert_eq!(periods(&s, D1), vec![susp("2026-03-31", Some("2026-06-15"), "F1")]);
}

#[test]
fn clear_removes_the_points_and_the_running_suspension_huaian_31() {
    let events = [
        fixed("F1", D1, "C1", SWAP, "2026-03-10"),
        event("X1", "clear", D1, "2026-04-10"),
        fixed("F2", D1, "C2", SPLIT, "2026-05-06"),
    ];
    let s = run(P, &events, &[]);
    assert_eq!(periods(&s, D1), vec![susp("2026-03-31", Some("2026-04-10"), "F1")]);
    assert_eq!(total(&s, D1, "2026"), 3);
    // A clear during the notice period: the suspension never starts.
    let s = run(P, &[fixed("F1", D1, "C1", SWAP, "2026-03-10"), event("X1", "clear", D1, "2026-03-20")], &[]);
    assert!(periods(&s, D1).is_empty());
}

#[test]
fn an_institution_suspension_reaches_every_doctor_registered_there_huaian_27_5() {
    let inst = json!({"id": "I1", "type": "institution", "institution": A, "status": "suspended",
                      "until": "2026-08-01", "responsible": [], "decided_at": "2026-05-01"});
    let practitioners =
        [registered(D1, A, "2021-03-01"), registered(D2, A, "2021-03-01"), registered(D3, B, "2021-03-01")];
    let s = run(P, &[inst], &practitioners);
    assert_eq!(periods(&s, D1), vec![susp("2026-05-01", Some("2026-08-01"), "I1")]);
    assert_eq!(periods(&s, D2), vec![susp("2026-05-01", Some("2026-08-01"), "I1")]);
    assert!(periods(&s, D3).is_empty());
}

#[test]
fn more_than_30_percent_suspended_fails_the_annual_assessment_huaian_24() {
    let codes: Vec<String> = (10..20).map(|i| format!("D1101050000{i}")).collect();
    let practitioners: Vec<String> = codes.iter().map(|c| registered(c, A, "2021-03-01")).collect();
    let events = |n: usize| -> Vec<Value> {
        codes
            .iter()
            .take(n)
            .enumerate()
            .map(|(i, c)| fixed(&format!("F{i}"), c, &format!("C{i}"), OBSTRUCT, "2026-03-10"))
            .collect()
    };
    let s = run(P, &events(3), &practitioners);
    assert_eq!((s.report.institutions[0].staff, s.report.institutions[0].counted), (10, 3));
    assert_eq!(s.report.institutions[0].level, None);
    let s = run(P, &events(4), &practitioners);
    assert!(s.report.institutions[0].level.as_deref().unwrap().starts_with("annual assessment failed"));
}

// --- issue 12 item 7: where scoring departed from the articles --------------------------------------

/// Nurses registered at `inst`: Huai'an's rules govern doctors only (Art. 2: 医保医师 … 执业(中)医师).
fn nurses(inst: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| registered(&format!("N1101050001{i:02}"), inst, "2021-03-01")).collect()
}

#[test]
fn the_30_percent_counts_doctors_not_nurses_huaian_24_and_2() {
    // 3 doctors and 7 nurses; one doctor suspended: 1 of 3 doctors (33%) is more than 30%. Counted over
    // every registration (10), it was 10% and the flag was missed.
    let mut practitioners =
        vec![registered(D1, A, "2021-03-01"), registered(D2, A, "2021-03-01"), registered(D3, A, "2021-03-01")];
    practitioners.extend(nurses(A, 7));
    let s = run(P, &[fixed("F1", D1, "C1", OBSTRUCT, "2026-03-10")], &practitioners);
    let i = &s.report.institutions[0];
    assert_eq!((i.staff, i.counted), (3, 1));
    assert!(i.level.as_deref().is_some_and(|l| l.starts_with("annual assessment failed")), "{i:?}");
}

#[test]
fn an_institution_suspension_reaches_its_doctors_not_its_nurses_huaian_27_5_and_2() {
    let inst = json!({"id": "I1", "type": "institution", "institution": A, "status": "suspended",
                      "until": "2026-08-01", "responsible": [], "decided_at": "2026-05-01"});
    let mut practitioners = vec![registered(D1, A, "2021-03-01")];
    practitioners.extend(nurses(A, 1));
    let s = run(P, &[inst], &practitioners);
    assert_eq!(periods(&s, D1), vec![susp("2026-05-01", Some("2026-08-01"), "I1")]);
    assert!(periods(&s, "N110105000100").is_empty(), "a nurse is not a 医保医师");
}

#[test]
fn a_clear_also_clears_the_points_that_caused_the_punishment_huaian_31() {
    // 9 points in 2024; 9 in 2025, decided late, so its suspension runs into 2026; a clear during it
    // (取消惩戒，扣分清零) clears the punishment and 2025's points: 9 in 2026 is then not "9 or more in three
    // consecutive years", and is 3 months (Art. 22(3)), not a year (Art. 22(4)).
    let mut events: Vec<Value> = nine_in(2024, 1);
    events.push(fixed("F2a", D1, "C2a", SWAP, "2025-12-01"));
    events.push(fixed("F2b", D1, "C2b", SHIFT, "2025-12-02"));
    events.push(event("X1", "clear", D1, "2026-01-20"));
    events.extend(nine_in(2026, 3));
    let s = run(P, &events, &[]);
    let last = record(&s, D1).periods.last().unwrap().clone();
    assert_eq!(last.basis.as_deref(), Some("huaian-2020 Art. 22(3): 9 points in 2026"));
    assert_eq!(last.decision_id.as_deref(), Some("F3b"));
    assert!(!flags(&s, D1).iter().any(|(f, _)| *f == Flag::Untrustworthy));
    assert_eq!(total(&s, D1, "2025"), 0);
    let (_, text) = note(&s, D1, "X1");
    assert!(text.contains("2025"), "{text}");
}
