//! Decision tests, named after the article they check. Seeds: Huai'an = 000_a49834594c269b75.txt,
//! Qinghai (national-2024) = 001_70455349a9435e17.txt, Lanzhou = 002_0d8737387619c9dd.txt,
//! Shaoguan = 004_2e121bb481e1172f.txt.

use super::*;
use crate::profile::Profile;
use crate::record::{BjTime, InstitutionText, PractitionerText, Stamp, write_decision};

mod regions;
use crate::table::{InstitutionTable, PractitionerTable, View};

/// Institution A: department A03.06 suspended in February 2026, whole institution suspended
/// May-July 2026, terminated from October 2026. Institution B: no status history (unknown to the
/// table, so designated and normal). Institution C: registered nowhere for anyone below.
const A: &str = "H11010500001";
const B: &str = "H11010500002";
const C: &str = "H11010500003";

/// D…001: registered at A and B since 2021 (multi-site); suspended 2026-03-20 to 2026-06-20 (a decision
/// taken at A); terminated from 2026-09-01.
const MULTI: &str = "D110105000001";
/// D…002: registered at A and B, always normal.
const NORMAL: &str = "D110105000002";
/// D…003: registered at A until 2025-01-01 only.
const LEFT: &str = "D110105000003";
/// D…004: terminated from 2026-01-01, registration at A never closed; also suspended 2025-12-01 to
/// 2026-02-01 (overlapping: terminated wins).
const TERMINATED: &str = "D110105000004";
/// D…099: in no table.
const UNKNOWN: &str = "D110105000099";
/// A legacy local id under which the table holds a terminated person (registered at B).
const LEGACY_TERMINATED: &str = "T-77";

fn world() -> View {
    let practitioners = [
        format!(
            r#"{{"code":"{MULTI}","version":7,"registrations":[
                {{"institution":"{A}","from":"2021-03-01","until":null}},
                {{"institution":"{B}","from":"2021-03-01","until":null}}],
              "periods":[{{"status":"suspended","from":"2026-03-20","until":"2026-06-20","basis":"9 points","decision_id":"QH-1"}},
                         {{"status":"terminated","from":"2026-09-01","until":null}}]}}"#
        ),
        format!(
            r#"{{"code":"{NORMAL}","version":1,"registrations":[
                {{"institution":"{A}","from":"2021-03-01"}},{{"institution":"{B}","from":"2021-03-01"}}]}}"#
        ),
        format!(
            r#"{{"code":"{LEFT}","version":2,"registrations":[{{"institution":"{A}","from":"2021-03-01","until":"2025-01-01"}}]}}"#
        ),
        format!(
            r#"{{"code":"{TERMINATED}","version":3,"registrations":[{{"institution":"{A}","from":"2021-03-01"}}],
              "periods":[{{"status":"terminated","from":"2026-01-01","until":null}},
                         {{"status":"suspended","from":"2025-12-01","until":"2026-02-01"}}]}}"#
        ),
        format!(r#"{{"code":"0457","version":1,"registrations":[{{"institution":"{B}","from":"2021-03-01"}}]}}"#),
        format!(
            r#"{{"code":"{LEGACY_TERMINATED}","version":5,"registrations":[{{"institution":"{B}","from":"2021-03-01"}}],
              "periods":[{{"status":"terminated","from":"2026-01-01","until":null}}]}}"#
        ),
    ];
    let mut p = PractitionerTable::with_capacity(8);
    for json in &practitioners {
        p.upsert(&PractitionerText::from_json(json.as_bytes()).unwrap().validate().unwrap()).unwrap();
    }
    let mut i = InstitutionTable::default();
    let inst = format!(
        r#"{{"code":"{A}","version":4,"periods":[
            {{"status":"suspended","from":"2026-02-01","until":"2026-03-01","departments":["A03.06"]}},
            {{"status":"suspended","from":"2026-05-01","until":"2026-08-01","departments":null}},
            {{"status":"terminated","from":"2026-10-01","until":null,"departments":null}}]}}"#
    );
    i.upsert(InstitutionText::from_json(inst.as_bytes()).unwrap().validate().unwrap());
    View::new(p, i)
}

struct Line {
    inst: &'static str,
    code: &'static str,
    time: &'static str,
    med_type: &'static str,
    dept: Option<&'static str>,
    er_flag: Option<&'static str>,
    adm_way: Option<&'static str>,
    /// Other members, as JSON values.
    extra: Vec<(&'static str, serde_json::Value)>,
}

fn line(inst: &'static str, code: &'static str, time: &'static str) -> Line {
    Line { inst, code, time, med_type: "11", dept: None, er_flag: None, adm_way: None, extra: Vec::new() }
}

impl Line {
    fn emergency(mut self) -> Self {
        self.med_type = "13";
        self
    }
    fn med(mut self, m: &'static str) -> Self {
        self.med_type = m;
        self
    }
    fn dept(mut self, d: &'static str) -> Self {
        self.dept = Some(d);
        self
    }
    fn json(&self) -> String {
        let mut v = serde_json::json!({
            "feedetl_sn": "F1", "fixmedins_code": self.inst, "mdtrt_id": "M1", "psn_no": "P1",
            "med_type": self.med_type, "fee_ocur_time": self.time, "bilg_dr_codg": self.code,
            "det_item_fee_sumamt": "10.00",
        });
        if let Some(d) = self.dept {
            v["bilg_dept_codg"] = d.into();
        }
        if let Some(f) = self.er_flag {
            v["er_flag"] = f.into();
        }
        if let Some(a) = self.adm_way {
            v["adm_way"] = a.into();
        }
        for (k, x) in &self.extra {
            v[*k] = x.clone();
        }
        v.to_string()
    }
}

fn decide_in(profile: &str, l: &Line) -> (Verdict, Reason, Option<Reason>, String) {
    let view = world();
    let p = Profile::shipped(profile).unwrap();
    let json = l.json();
    let claim = Claim::parse(json.as_bytes()).unwrap();
    let o = decide(&claim, &view, &p);
    (o.verdict, o.reason, o.overridden, o.rule.to_owned())
}

fn nat(l: &Line) -> (Verdict, Reason, Option<Reason>, String) {
    decide_in("national-2024", l)
}

const ALL: [&str; 3] = ["national-2024", "huaian-2020", "lanzhou-2014"];

use Reason::*;
use Verdict::*;

#[test]
fn registered_normal_practitioner_is_paid_qinghai_9_6_1() {
    for p in ALL {
        let (v, r, o, _) = decide_in(p, &line(A, NORMAL, "2026-04-02 10:31:00"));
        assert_eq!((v, r, o), (Accept, Ok, None), "{p}");
    }
    assert_eq!(nat(&line(A, NORMAL, "2026-04-02 10:31:00")).3, "national-2024 Art. 9(6)1");
}

#[test]
fn unknown_institution_is_designated_and_normal_rules_md() {
    assert_eq!(nat(&line(B, NORMAL, "2026-05-10")).1, Ok);
}

#[test]
fn terminated_institution_is_not_paid_shaoguan_42() {
    for p in ALL {
        let (v, r, _, rule) = decide_in(p, &line(A, NORMAL, "2026-10-01 00:00:00"));
        assert_eq!((v, r), (Reject, InstitutionTerminated), "{p}");
        assert!(rule.contains("Shaoguan Art. 42"), "{rule}");
    }
}

#[test]
fn terminated_institution_pays_emergencies_shaoguan_33() {
    for (p, want) in [("national-2024", Accept), ("huaian-2020", Accept), ("lanzhou-2014", Reject)] {
        let (v, r, o, rule) = decide_in(p, &line(A, NORMAL, "2026-10-02").emergency());
        assert_eq!(v, want, "{p}");
        if want == Accept {
            assert_eq!((r, o), (EmergencyOverride, Some(InstitutionTerminated)));
            assert!(rule.contains("Shaoguan Art. 33"), "{rule}");
        } else {
            assert_eq!(r, InstitutionTerminated);
        }
    }
}

#[test]
fn suspended_institution_is_not_paid_shaoguan_41() {
    for p in ALL {
        assert_eq!(decide_in(p, &line(A, NORMAL, "2026-05-01")).1, InstitutionSuspended, "{p}");
    }
    // Half-open: the first instant after the period is normal again.
    assert_eq!(nat(&line(A, NORMAL, "2026-08-01 00:00:00")).1, Ok);
    assert_eq!(nat(&line(A, NORMAL, "2026-07-31 23:59:59")).1, InstitutionSuspended);
    assert_eq!(nat(&line(A, NORMAL, "2026-04-30 23:59:59")).1, Ok);
}

#[test]
fn suspended_institution_pays_emergencies_shaoguan_33() {
    for (p, want) in [("national-2024", Accept), ("huaian-2020", Accept), ("lanzhou-2014", Reject)] {
        let (v, r, o, _) = decide_in(p, &line(A, NORMAL, "2026-05-10").emergency());
        assert_eq!(v, want, "{p}");
        assert_eq!(o, if want == Accept { Some(InstitutionSuspended) } else { None });
        assert_eq!(r, if want == Accept { EmergencyOverride } else { InstitutionSuspended });
    }
}

#[test]
fn suspended_department_is_not_paid_shaoguan_37_5_and_44() {
    for p in ALL {
        let (v, r, _, _) = decide_in(p, &line(A, NORMAL, "2026-02-10").dept("A03.06"));
        assert_eq!((v, r), (Reject, DepartmentSuspended), "{p}");
    }
    // Another department, or none given, is not affected.
    assert_eq!(nat(&line(A, NORMAL, "2026-02-10").dept("A03.07")).1, Ok);
    assert_eq!(nat(&line(A, NORMAL, "2026-02-10")).1, Ok);
    // Department codes match exactly.
    assert_eq!(nat(&line(A, NORMAL, "2026-02-10").dept("a03.06")).1, Ok);
    // Half-open.
    assert_eq!(nat(&line(A, NORMAL, "2026-03-01").dept("A03.06")).1, Ok);
    assert_eq!(nat(&line(A, NORMAL, "2026-02-01").dept("A03.06")).1, DepartmentSuspended);
}

#[test]
fn suspended_department_pays_emergencies_shaoguan_33() {
    let l = line(A, NORMAL, "2026-02-10").dept("A03.06").emergency();
    assert_eq!(decide_in("national-2024", &l).2, Some(DepartmentSuspended));
    assert_eq!(decide_in("huaian-2020", &l).2, Some(DepartmentSuspended));
    assert_eq!(decide_in("lanzhou-2014", &l).1, DepartmentSuspended);
}

#[test]
fn unknown_code_is_unregistered_qinghai_9_2_huaian_11_lanzhou_9() {
    let want = [
        ("national-2024", "national-2024 Art. 9(2)"),
        ("huaian-2020", "huaian-2020 Art. 11"),
        ("lanzhou-2014", "lanzhou-2014 Art. 9"),
    ];
    for (p, rule) in want {
        let got = decide_in(p, &line(A, UNKNOWN, "2026-04-02"));
        assert_eq!((got.0, got.1, got.3.as_str()), (Reject, PractitionerUnregistered, rule), "{p}");
    }
}

#[test]
fn registration_that_ended_is_unregistered_half_open_qinghai_9_4_4() {
    assert_eq!(nat(&line(A, LEFT, "2024-12-31 23:59:59")).1, Ok);
    assert_eq!(nat(&line(A, LEFT, "2025-01-01 00:00:00")).1, PractitionerUnregistered);
    // Before the registration began.
    assert_eq!(nat(&line(A, NORMAL, "2021-02-28 23:59:59")).1, PractitionerUnregistered);
    assert_eq!(nat(&line(A, NORMAL, "2021-03-01 00:00:00")).1, Ok);
}

#[test]
fn unregistered_emergency_is_paid_for_new_doctors_huaian_11_not_lanzhou_9() {
    let l = line(A, UNKNOWN, "2026-04-02").emergency();
    let (v, r, o, rule) = decide_in("huaian-2020", &l);
    assert_eq!((v, r, o), (Accept, EmergencyOverride, Some(PractitionerUnregistered)));
    assert!(rule.starts_with("huaian-2020 Art. 11"), "{rule}");
    let (v, r, o, _) = decide_in("national-2024", &l);
    assert_eq!((v, r, o), (Accept, EmergencyOverride, Some(PractitionerUnregistered)));
    let (v, r, _, _) = decide_in("lanzhou-2014", &l);
    assert_eq!((v, r), (Reject, PractitionerUnregistered));
}

#[test]
fn registered_elsewhere_is_not_paid_here_qinghai_9_4_3_huaian_9() {
    for p in ALL {
        assert_eq!(decide_in(p, &line(C, NORMAL, "2026-04-02")).1, PractitionerNotRegisteredHere, "{p}");
    }
    let l = line(C, NORMAL, "2026-04-02").emergency();
    assert_eq!(decide_in("national-2024", &l).2, Some(PractitionerNotRegisteredHere));
    assert_eq!(decide_in("huaian-2020", &l).2, Some(PractitionerNotRegisteredHere));
    assert_eq!(decide_in("lanzhou-2014", &l).1, PractitionerNotRegisteredHere);
}

#[test]
fn terminated_practitioner_is_never_paid_qinghai_9_6_3() {
    for p in ALL {
        assert_eq!(decide_in(p, &line(A, TERMINATED, "2026-04-02")).1, PractitionerTerminated, "{p}");
        let (v, r, _, _) = decide_in(p, &line(A, TERMINATED, "2026-04-02").emergency());
        assert_eq!((v, r), (Reject, PractitionerTerminated), "{p} emergency");
    }
    assert_eq!(nat(&line(A, TERMINATED, "2026-04-02")).3, "national-2024 Art. 9(6)3");
}

#[test]
fn terminated_wins_over_an_overlapping_suspension_records_md() {
    assert_eq!(nat(&line(A, TERMINATED, "2026-01-15")).1, PractitionerTerminated);
    assert_eq!(nat(&line(A, TERMINATED, "2025-12-15")).1, PractitionerSuspended);
}

#[test]
fn suspended_practitioner_is_not_paid_qinghai_9_6_2_huaian_11_lanzhou_17() {
    for (p, rule) in [
        ("national-2024", "national-2024 Art. 9(6)2"),
        ("huaian-2020", "huaian-2020 Art. 11"),
        ("lanzhou-2014", "lanzhou-2014 Art. 17"),
    ] {
        let got = decide_in(p, &line(B, MULTI, "2026-04-02"));
        assert_eq!((got.0, got.1, got.3.as_str()), (Reject, PractitionerSuspended, rule), "{p}");
    }
}

#[test]
fn suspended_emergency_is_settled_qinghai_9_6_2() {
    let (v, r, o, rule) = nat(&line(B, MULTI, "2026-04-02").emergency());
    assert_eq!((v, r, o), (Accept, EmergencyOverride, Some(PractitionerSuspended)));
    assert!(rule.starts_with("national-2024 Art. 9(6)2"), "{rule}");
}

#[test]
fn suspended_emergency_is_not_settled_huaian_11_lanzhou_17() {
    for p in ["huaian-2020", "lanzhou-2014"] {
        let (v, r, _, _) = decide_in(p, &line(B, MULTI, "2026-04-02").emergency());
        assert_eq!((v, r), (Reject, PractitionerSuspended), "{p}");
    }
}

#[test]
fn suspension_applies_at_every_site_qinghai_9_6_5_huaian_20() {
    // The suspension was decided at A; the person bills at B.
    assert_eq!(nat(&line(A, MULTI, "2026-04-02")).1, PractitionerSuspended);
    assert_eq!(nat(&line(B, MULTI, "2026-04-02")).1, PractitionerSuspended);
    assert_eq!(nat(&line(B, MULTI, "2026-09-02")).1, PractitionerTerminated);
}

#[test]
fn status_applies_by_service_time_not_arrival_half_open_rules_md() {
    assert_eq!(nat(&line(B, MULTI, "2026-03-19 23:59:59")).1, Ok);
    assert_eq!(nat(&line(B, MULTI, "2026-03-20 00:00:00")).1, PractitionerSuspended);
    assert_eq!(nat(&line(B, MULTI, "2026-06-19 23:59:59")).1, PractitionerSuspended);
    assert_eq!(nat(&line(B, MULTI, "2026-06-20 00:00:00")).1, Ok);
    assert_eq!(nat(&line(B, MULTI, "2026-08-31 23:59:59")).1, Ok);
    assert_eq!(nat(&line(B, MULTI, "2026-09-01")).1, PractitionerTerminated);
}

#[test]
fn emergency_chain_runs_the_person_checks_after_an_override_rules_md() {
    // Institution suspended (overridable) and person suspended (overridable in national): the first is
    // recorded.
    let l = line(A, MULTI, "2026-05-10").emergency();
    assert_eq!(
        nat(&l),
        (Accept, EmergencyOverride, Some(InstitutionSuspended), "Shaoguan Art. 33 (急诊和抢救)".into())
    );
    // Huai'an: the institution passes, but the person's suspension is not overridable there.
    assert_eq!(decide_in("huaian-2020", &l).1, PractitionerSuspended);
    // A terminated person at an unregistered site cannot pass as merely unregistered: checks 6-7 read
    // the periods whether or not check 4 or 5 failed.
    let l = line(C, TERMINATED, "2026-04-02").emergency();
    assert_eq!(nat(&l).1, PractitionerTerminated);
    assert_eq!(decide_in("huaian-2020", &l).1, PractitionerTerminated);
    // Not registered here and suspended, emergency, national: both overridable, the first recorded.
    let l = line(C, MULTI, "2026-04-02").emergency();
    assert_eq!(nat(&l).2, Some(PractitionerNotRegisteredHere));
    // Without emergency, the first failure decides.
    assert_eq!(nat(&line(C, MULTI, "2026-04-02")).1, PractitionerNotRegisteredHere);
    assert_eq!(nat(&line(A, MULTI, "2026-05-10")).1, InstitutionSuspended);
}

#[test]
fn emergency_is_med_type_13_or_24_or_er_flag_or_adm_way_rules_md() {
    let base = || line(B, MULTI, "2026-04-02");
    assert_eq!(nat(&base().med("13")).1, EmergencyOverride);
    assert_eq!(nat(&base().med("24")).1, EmergencyOverride);
    assert_eq!(nat(&base().med("21")).1, PractitionerSuspended);
    // Rescue coded as a provincial med_type is not an emergency unless the profile lists it.
    assert_eq!(nat(&base().med("9914")).1, PractitionerSuspended);
    let mut l = base();
    l.er_flag = Some("1");
    assert_eq!(nat(&l).1, EmergencyOverride);
    l.er_flag = Some("2");
    assert_eq!(nat(&l).1, PractitionerSuspended);
    let mut l = base().med("21");
    l.adm_way = Some("1");
    assert_eq!(nat(&l).1, EmergencyOverride);
}

#[test]
fn a_profile_may_add_rescue_med_types() {
    let text = crate::profile::SHIPPED[0].toml.replace(r#"["13", "24"]"#, r#"["13", "24", "9914"]"#);
    let p = Profile::from_toml(&text).unwrap();
    let view = world();
    let json = line(B, MULTI, "2026-04-02").med("9914").json();
    let o = decide(&Claim::parse(json.as_bytes()).unwrap(), &view, &p);
    assert_eq!(o.reason, EmergencyOverride);
}

#[test]
fn legacy_codes_are_looked_up_or_unregistered_by_profile_records_md() {
    let view = world();
    let json = line(B, "0457", "2026-04-02").json();
    let claim = Claim::parse(json.as_bytes()).unwrap();
    let p = Profile::shipped("national-2024").unwrap();
    let o = decide(&claim, &view, &p);
    assert_eq!((o.reason, o.legacy_code), (Ok, true));
    let strict = Profile::from_toml(
        &crate::profile::SHIPPED[0].toml.replace("legacy_codes = \"lookup\"", "legacy_codes = \"unregistered\""),
    )
    .unwrap();
    let o = decide(&claim, &view, &strict);
    // The person's record is read (rules.md, "Local ids"), so the decision names its version.
    assert_eq!((o.reason, o.legacy_code, o.practitioner_version), (PractitionerUnregistered, true, Some(1)));
}

#[test]
fn newer_version_decides_stale_one_is_ignored_records_md() {
    let mut p = PractitionerTable::with_capacity(4);
    let v2 =
        format!(r#"{{"code":"{NORMAL}","version":2,"registrations":[{{"institution":"{A}","from":"2021-01-01"}}]}}"#);
    let v1 = format!(
        r#"{{"code":"{NORMAL}","version":1,"registrations":[{{"institution":"{A}","from":"2021-01-01"}}],
           "periods":[{{"status":"terminated","from":"2021-01-01"}}]}}"#
    );
    for json in [&v2, &v1] {
        p.upsert(&PractitionerText::from_json(json.as_bytes()).unwrap().validate().unwrap()).unwrap();
    }
    let view = View::new(p, InstitutionTable::default());
    let json = line(A, NORMAL, "2026-04-02").json();
    let p = Profile::shipped("national-2024").unwrap();
    let o = decide(&Claim::parse(json.as_bytes()).unwrap(), &view, &p);
    assert_eq!((o.reason, o.practitioner_version), (Ok, Some(2)));
}

#[test]
fn decisions_record_versions_and_are_deterministic_rules_md() {
    let view = world();
    let p = Profile::shipped("national-2024").unwrap();
    let json = line(A, MULTI, "2026-04-02 10:31:00").dept("A03.06").json();
    let claim = Claim::parse(json.as_bytes()).unwrap();
    let stamp = Stamp { table_epoch: view.epoch(), decided_at: "2026-04-02 10:31:00.004" };
    let mut a = Vec::new();
    let mut b = Vec::new();
    write_decision(&mut a, &claim, &decide(&claim, &view, &p), &stamp);
    write_decision(&mut b, &claim, &decide(&claim, &world(), &p), &stamp);
    assert_eq!(a, b);
    let rec: crate::record::DecisionRecord = serde_json::from_slice(&a).unwrap();
    assert_eq!(rec.practitioner_version, Some(7));
    assert_eq!(rec.institution_version, Some(4));
    assert_eq!(rec.reason, PractitionerSuspended);
    assert_eq!(rec.rule, "national-2024 Art. 9(6)2");
    assert_eq!(rec.profile, "national-2024");
    assert_eq!(rec.fee_ocur_time, "2026-04-02 10:31:00");
    assert_eq!(rec.det_item_fee_sumamt, "10.00");
    assert_eq!(rec.med_type, "11");
    assert_eq!(rec.table_epoch, view.epoch());
    // No personal data in the decision.
    assert!(!String::from_utf8(a).unwrap().contains("psn_no"));
}

#[test]
fn every_reason_is_reachable() {
    let lines = [
        line(A, NORMAL, "2026-04-02"),
        line(A, MULTI, "2026-04-02").emergency(),
        line(A, NORMAL, "2026-10-02"),
        line(A, NORMAL, "2026-05-02"),
        line(A, NORMAL, "2026-02-02").dept("A03.06"),
        line(A, UNKNOWN, "2026-04-02"),
        line(A, "0999", "2026-04-02"),
        line(C, NORMAL, "2026-04-02"),
        line(A, TERMINATED, "2026-04-02"),
        line(A, MULTI, "2026-04-02"),
    ];
    let mapping = regions::profile("legacy_codes = \"map\"", "PRACTITIONER_CODE_UNMAPPED = \"x\"\n", "");
    let got: Vec<Reason> = lines.iter().map(|l| decide_with(&mapping, &world(), l).reason).collect();
    assert_eq!(got, Reason::ALL.to_vec());
}

/// Decides a line under a given profile and view.
fn decide_with<'p>(p: &'p Profile, view: &View, l: &Line) -> Outcome<'p> {
    let json = l.json();
    decide(&Claim::parse(json.as_bytes()).unwrap(), view, p)
}

#[test]
fn service_time_is_read_as_beijing_time() {
    // 2026-03-20 00:00:00 Beijing is 2026-03-19 16:00 UTC; the period starts at Beijing midnight.
    let t = BjTime::parse("2026-03-20 00:00:00").unwrap();
    let view = world();
    let r = view.practitioner(crate::record::PractitionerKey::parse(MULTI).unwrap()).unwrap();
    assert_eq!(r.status_at(t), Some(Status::Suspended));
}
