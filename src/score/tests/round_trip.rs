//! Round trip: the records `score` writes, loaded into the status table, make the decision core reject
//! claims inside the derived periods and accept claims outside them.

use super::*;
use crate::decide::decide;
use crate::record::{Claim, Reason, Verdict};
use crate::table::{InstitutionTable, PractitionerTable, View};

fn view(s: &Scored) -> View {
    let mut p = PractitionerTable::with_capacity(s.records.len());
    for r in &s.records {
        // Through the written form, as `review` would read it.
        let json = serde_json::to_string(&r.record).unwrap();
        p.upsert(&PractitionerText::from_json(json.as_bytes()).unwrap().validate().unwrap()).unwrap();
    }
    View::new(p, InstitutionTable::default())
}

fn claim(code: &str, time: &str, med_type: &str) -> String {
    json!({"feedetl_sn": "F1", "fixmedins_code": A, "mdtrt_id": "M1", "psn_no": "P1", "med_type": med_type,
           "fee_ocur_time": time, "bilg_dr_codg": code, "det_item_fee_sumamt": "10.00"})
    .to_string()
}

fn check(profile: &str, s: &Scored, cases: &[(&str, &str, &str, Reason)]) {
    let v = view(s);
    let p = Profile::shipped(profile).unwrap();
    for (code, time, med, want) in cases {
        let json = claim(code, time, med);
        let c = Claim::parse(json.as_bytes()).unwrap();
        let o = decide(&c, &v, &p);
        assert_eq!(o.reason, *want, "{profile} {code} at {time} (med_type {med})");
        let verdict =
            if matches!(want, Reason::Ok | Reason::EmergencyOverride) { Verdict::Accept } else { Verdict::Reject };
        assert_eq!(o.verdict, verdict);
    }
}

#[test]
fn derived_periods_reject_claims_inside_and_accept_outside_qinghai_9_6() {
    let events = [
        finding("F1", D1, "C1", "national-2024/10.5.2.4", 9, "2026-03-10"),
        event("R1", "restore", D1, "2026-04-01"),
        finding("F2", D2, "C2", "national-2024/10.6.3.2", 12, "2026-05-06"),
    ];
    let s = run("national-2024", &events, &[registered(D1, A, "2021-03-01"), registered(D2, A, "2021-03-01")]);
    use Reason::*;
    check(
        "national-2024",
        &s,
        &[
            (D1, "2026-03-09 23:59:59", "11", Ok),
            (D1, "2026-03-10 00:00:00", "11", PractitionerSuspended),
            (D1, "2026-04-09 23:59:59", "11", PractitionerSuspended),
            (D1, "2026-04-10 00:00:00", "11", Ok),
            // Art. 9(6)2: emergencies of a suspended practitioner are settled.
            (D1, "2026-03-20 10:00:00", "13", EmergencyOverride),
            (D2, "2026-05-05 23:59:59", "11", Ok),
            (D2, "2026-05-06 08:00:00", "11", PractitionerTerminated),
            (D2, "2028-01-01 08:00:00", "13", PractitionerTerminated),
        ],
    );
}

#[test]
fn derived_periods_reject_claims_inside_and_accept_outside_huaian_11() {
    let events = [fixed("F1", D1, "C1", "huaian-2020/15.1", "2026-03-10"), event("R1", "restore", D1, "2026-04-20")];
    let s = run("huaian-2020", &events, &[registered(D1, A, "2021-03-01")]);
    use Reason::*;
    check(
        "huaian-2020",
        &s,
        &[
            // The notice period (Art. 22(4)) is still normal.
            (D1, "2026-03-30 16:00:00", "11", Ok),
            (D1, "2026-03-31 08:00:00", "11", PractitionerSuspended),
            (D1, "2026-04-29 23:00:00", "13", PractitionerSuspended),
            (D1, "2026-04-30 00:00:00", "11", Ok),
        ],
    );
}

#[test]
fn derived_periods_reject_claims_inside_and_accept_outside_lanzhou_9_17() {
    let events = [
        fixed("F1", D1, "C1", "lanzhou-2014/13.5", "2024-06-10"),
        fixed("F2", D1, "C2", "lanzhou-2014/13.3", "2024-09-02"),
    ];
    let s = run("lanzhou-2014", &events, &[registered(D1, A, "2024-03-01")]);
    use Reason::*;
    check(
        "lanzhou-2014",
        &s,
        &[
            (D1, "2024-09-01 12:00:00", "11", Ok),
            (D1, "2024-09-02 12:00:00", "11", PractitionerTerminated),
            (D1, "2030-01-01 12:00:00", "11", PractitionerTerminated),
        ],
    );
}
