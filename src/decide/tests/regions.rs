//! Decision tests for rules.md's section "Regions, roles, enforcement": every responsible person on the
//! line, local ids during migration, warn-first enforcement, and the profile a routing table chooses.
//! Seeds as in the parent module; Qinghai Art. 2 (seed 001) is the article that reaches every person
//! who bills the fund.

use super::*;
use crate::batch::process;
use crate::record::{MappingText, Role};
use crate::routing::Rules;
use crate::table::MappingTable;

/// national-2024 with `top` in place of its `legacy_codes` line, `rules` added to `[rules]`, and `tail`
/// at the end (new tables such as `[enforcement]`).
pub(super) fn profile(top: &str, rules: &str, tail: &str) -> Profile {
    let base = crate::profile::SHIPPED[0].toml;
    let text =
        base.replacen("legacy_codes = \"lookup\"", top, 1).replacen("[rules]\n", &format!("[rules]\n{rules}"), 1)
            + "\n"
            + tail;
    Profile::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

const BOTH: &str = "legacy_codes = \"lookup\"\nroles = [\"bilg_dr_codg\", \"orders_dr_code\"]";
const PHARMACIST: &str = "legacy_codes = \"lookup\"\npharmacist = \"phar_prac_cert_no\"";

fn with(mut l: Line, field: &'static str, value: serde_json::Value) -> Line {
    l.extra.push((field, value));
    l
}

fn orders(l: Line, code: &'static str) -> Line {
    with(l, "orders_dr_code", code.into())
}

/// (verdict, reason, overridden, would_reject, role)
type Got = (Verdict, Reason, Option<Reason>, Option<Reason>, Option<Role>);

fn got(p: &Profile, view: &View, l: &Line) -> Got {
    let o = decide_with(p, view, l);
    (o.verdict, o.reason, o.overridden, o.would_reject, o.role)
}

#[test]
fn every_person_on_the_line_is_checked_qinghai_2() {
    let p = profile(BOTH, "", "");
    let view = world();
    let l = orders(line(A, NORMAL, "2026-04-02"), TERMINATED);
    let o = decide_with(&p, &view, &l);
    assert_eq!(
        (o.verdict, o.reason, o.role, o.rule, o.practitioner_version),
        (Reject, PractitionerTerminated, Some(Role::Orders), "national-2024 Art. 9(6)3", Some(3))
    );
    // An absent optional field is not checked; "" and null are absent.
    assert_eq!(got(&p, &view, &line(A, NORMAL, "2026-04-02")), (Accept, Ok, None, None, None));
    assert_eq!(got(&p, &view, &orders(line(A, NORMAL, "2026-04-02"), "")).1, Ok);
    assert_eq!(got(&p, &view, &with(line(A, NORMAL, "2026-04-02"), "orders_dr_code", serde_json::Value::Null)).1, Ok);
    // A profile that does not list the role does not check it.
    let national = Profile::shipped("national-2024").unwrap();
    assert_eq!(got(&national, &view, &l).1, Ok);
    // The person who carried the order out must be registered here too.
    assert_eq!(got(&p, &view, &orders(line(A, NORMAL, "2026-04-02"), LEFT)).1, PractitionerUnregistered);
    assert_eq!(
        got(&p, &view, &orders(line(A, NORMAL, "2026-04-02"), UNKNOWN)),
        (Reject, PractitionerUnregistered, None, None, Some(Role::Orders))
    );
}

#[test]
fn the_first_failure_decides_person_by_person_rules_md_roles() {
    let p = profile(BOTH, "", "");
    let view = world();
    // The billing practitioner is checked first.
    let l = orders(line(A, MULTI, "2026-04-02"), TERMINATED);
    assert_eq!(got(&p, &view, &l), (Reject, PractitionerSuspended, None, None, Some(Role::Billing)));
    // An emergency passes the billing practitioner's suspension (Qinghai Art. 9(6)2), not the other
    // person's termination (Art. 9(6)3).
    let l = orders(line(A, MULTI, "2026-04-02").emergency(), TERMINATED);
    assert_eq!(got(&p, &view, &l), (Reject, PractitionerTerminated, None, None, Some(Role::Orders)));
    let l = orders(line(A, MULTI, "2026-04-02").emergency(), NORMAL);
    let o = decide_with(&p, &view, &l);
    assert_eq!(
        (o.reason, o.overridden, o.role, o.practitioner_version),
        (EmergencyOverride, Some(PractitionerSuspended), Some(Role::Billing), Some(7))
    );
    // An institution failure concerns no person; the version is the billing practitioner's.
    let o = decide_with(&p, &view, &orders(line(A, NORMAL, "2026-05-10"), TERMINATED));
    assert_eq!((o.reason, o.role, o.practitioner_version), (InstitutionSuspended, None, Some(1)));
}

#[test]
fn the_pharmacists_field_is_checked_on_retail_pharmacy_lines_rules_md_roles() {
    let p = profile(PHARMACIST, "", "");
    let view = world();
    let phar = |l: Line| with(l, "phar_prac_cert_no", TERMINATED.into());
    // med_type 41 (retail-pharmacy purchase) at any institution.
    assert_eq!(
        got(&p, &view, &phar(line(A, NORMAL, "2026-04-02").med("41"))),
        (Reject, PractitionerTerminated, None, None, Some(Role::Pharmacist))
    );
    // Not a pharmacy line: the field is not read.
    assert_eq!(got(&p, &view, &phar(line(A, NORMAL, "2026-04-02"))).1, Ok);
    // A `P` institution: the billing practitioner first, then the pharmacist.
    let shop = "P11010500009";
    assert_eq!(got(&p, &view, &phar(line(shop, NORMAL, "2026-04-02"))).4, Some(Role::Billing));
    let warn_here = profile(PHARMACIST, "", "[enforcement]\nPRACTITIONER_NOT_REGISTERED_HERE = \"warn\"\n");
    assert_eq!(
        got(&warn_here, &view, &phar(line(shop, NORMAL, "2026-04-02"))),
        (Reject, PractitionerTerminated, None, None, Some(Role::Pharmacist))
    );
}

#[test]
fn a_present_malformed_person_field_is_a_dead_letter_rules_md_roles() {
    let p = profile(BOTH, "", "");
    let rules = Rules::single(p.clone());
    let view = world();
    let stamp = Stamp { table_epoch: 0, decided_at: "x" };
    for bad in [
        serde_json::json!("张三"),
        serde_json::json!({"a": 1}),
        serde_json::json!("D".repeat(31)),
        serde_json::json!(true),
    ] {
        let json = with(line(A, NORMAL, "2026-04-02"), "orders_dr_code", bad.clone()).json();
        let claim = Claim::parse(json.as_bytes()).unwrap();
        let m = p.check_fields(&claim).unwrap_err();
        assert_eq!(m.field, Some("orders_dr_code"), "{bad}: {m}");
        let mut out = Vec::new();
        assert_eq!(process(json.as_bytes(), &view, &rules, &stamp, &mut out).unwrap_err(), m);
        assert!(out.is_empty());
        // A profile that does not check the field decides the line.
        let national = Rules::single(Profile::shipped("national-2024").unwrap());
        assert!(process(json.as_bytes(), &view, &national, &stamp, &mut out).is_ok());
    }
    // The pharmacist's field, only on pharmacy lines.
    let p = profile(PHARMACIST, "", "");
    let json = with(line(A, NORMAL, "2026-04-02"), "phar_prac_cert_no", "药师".into()).json();
    assert!(p.check_fields(&Claim::parse(json.as_bytes()).unwrap()).is_ok());
    let json = with(line(A, NORMAL, "2026-04-02").med("41"), "phar_prac_cert_no", "药师".into()).json();
    assert_eq!(p.check_fields(&Claim::parse(json.as_bytes()).unwrap()).unwrap_err().field, Some("phar_prac_cert_no"));
}

// --- local ids ------------------------------------------------------------------------------------

const MAP: &str = "legacy_codes = \"map\"";
const UNMAPPED_RULE: &str = "PRACTITIONER_CODE_UNMAPPED = \"national-2024 Art. 9(2) (unmapped)\"\n";

/// `L-1` at B stood for NORMAL until 2026-05-01, then for MULTI.
fn mapped_world() -> View {
    let mut m = MappingTable::default();
    let rec = format!(
        r#"{{"institution":"{B}","local_id":"L-1","version":1,"periods":[
            {{"code":"{NORMAL}","from":"2021-01-01","until":"2026-05-01"}},{{"code":"{MULTI}","from":"2026-05-01"}}]}}"#
    );
    m.upsert(MappingText::from_json(rec.as_bytes()).unwrap().validate().unwrap());
    world().with_mappings(m)
}

#[test]
fn a_local_id_is_checked_as_the_mapped_person_rules_md_local_ids() {
    let p = profile(MAP, UNMAPPED_RULE, "");
    let view = mapped_world();
    let o = decide_with(&p, &view, &line(B, "L-1", "2026-04-02"));
    assert_eq!((o.reason, o.practitioner_version, o.legacy_code), (Ok, Some(1), true));
    // From 2026-05-01 the id stands for MULTI, suspended then.
    let o = decide_with(&p, &view, &line(B, "L-1", "2026-05-10"));
    assert_eq!((o.reason, o.practitioner_version, o.role), (PractitionerSuspended, Some(7), Some(Role::Billing)));
    // A mapping belongs to its institution and its period.
    assert_eq!(got(&p, &view, &line(A, "L-1", "2026-04-02")).1, PractitionerCodeUnmapped);
    assert_eq!(got(&p, &view, &line(B, "L-1", "2020-12-31 23:59:59")).1, PractitionerCodeUnmapped);
    // The epoch covers the mapping table; none means the status tables' epoch, as before.
    assert_ne!(view.epoch(), world().epoch());
    assert_eq!(world().with_mappings(MappingTable::default()).epoch(), world().epoch());
}

#[test]
fn an_unmapped_local_id_is_its_own_reason_not_unregistered_rules_md_local_ids() {
    let p = profile(MAP, UNMAPPED_RULE, "");
    let view = mapped_world();
    let o = decide_with(&p, &view, &line(B, "0999", "2026-04-02"));
    assert_eq!(
        (o.verdict, o.reason, o.rule, o.role),
        (Reject, PractitionerCodeUnmapped, "national-2024 Art. 9(2) (unmapped)", Some(Role::Billing))
    );
    // National codes are not mapped: an unknown one is unregistered.
    assert_eq!(got(&p, &view, &line(B, UNKNOWN, "2026-04-02")).1, PractitionerUnregistered);
    // Under `map`, a legacy id is not looked up as a code: "0457" is in the table but unmapped.
    assert_eq!(got(&p, &view, &line(B, "0457", "2026-04-02")).1, PractitionerCodeUnmapped);
    // Overridable for emergencies only where the profile says so.
    assert_eq!(got(&p, &view, &line(B, "0999", "2026-04-02").emergency()).1, PractitionerCodeUnmapped);
    let text = crate::profile::SHIPPED[0]
        .toml
        .replace("legacy_codes = \"lookup\"", MAP)
        .replace("[rules]\n", &format!("[rules]\n{UNMAPPED_RULE}"))
        .replace("  \"PRACTITIONER_SUSPENDED\",  ", "  \"PRACTITIONER_SUSPENDED\", \"PRACTITIONER_CODE_UNMAPPED\", ")
        .replace("[override_rules]\n", "[override_rules]\nPRACTITIONER_CODE_UNMAPPED = \"override\"\n");
    let overridable = Profile::from_toml(&text).unwrap();
    assert_eq!(
        got(&overridable, &view, &line(B, "0999", "2026-04-02").emergency()),
        (Accept, EmergencyOverride, Some(PractitionerCodeUnmapped), None, Some(Role::Billing))
    );
    // A profile that maps must cite the article.
    let missing = crate::profile::SHIPPED[0].toml.replace("legacy_codes = \"lookup\"", MAP);
    assert!(Profile::from_toml(&missing).unwrap_err().to_string().contains("PRACTITIONER_CODE_UNMAPPED"));
}

/// The fix of issue 12 item 4: with `legacy_codes = "unregistered"` the person's periods were not read,
/// so a terminated person's emergency line under a legacy code passed as an override of
/// `PRACTITIONER_UNREGISTERED`.
#[test]
fn a_terminated_person_never_passes_as_unregistered_or_unmapped_rules_md_local_ids() {
    let view = mapped_world();
    let strict = profile("legacy_codes = \"unregistered\"", "", "");
    let o = decide_with(&strict, &view, &line(B, LEGACY_TERMINATED, "2026-04-02").emergency());
    assert_eq!((o.verdict, o.reason, o.practitioner_version), (Reject, PractitionerTerminated, Some(5)));
    // Before the termination, the emergency passes as unregistered.
    assert_eq!(
        got(&strict, &view, &line(B, LEGACY_TERMINATED, "2025-12-31").emergency()).2,
        Some(PractitionerUnregistered)
    );
    let map = profile(MAP, UNMAPPED_RULE, "[enforcement]\nPRACTITIONER_CODE_UNMAPPED = \"warn\"\n");
    assert_eq!(got(&map, &view, &line(B, LEGACY_TERMINATED, "2026-04-02")).1, PractitionerTerminated);
}

// --- warn first, then enforce -----------------------------------------------------------------------

#[test]
fn a_warned_reason_accepts_and_names_what_it_would_reject_rules_md_enforcement() {
    let p = profile("legacy_codes = \"lookup\"", "", "[enforcement]\nPRACTITIONER_NOT_REGISTERED_HERE = \"warn\"\n");
    let view = world();
    let o = decide_with(&p, &view, &line(C, NORMAL, "2026-04-02"));
    assert_eq!(
        (o.verdict, o.reason, o.would_reject, o.role, o.rule),
        (Accept, Ok, Some(PractitionerNotRegisteredHere), Some(Role::Billing), "national-2024 Art. 9(6)1")
    );
    // A line that fails nothing is not marked.
    assert_eq!(got(&p, &view, &line(A, NORMAL, "2026-04-02")), (Accept, Ok, None, None, None));
    // Checks after a warned failure still run, and a later enforced failure rejects, unmarked.
    assert_eq!(
        got(&p, &view, &line(C, MULTI, "2026-04-02")),
        (Reject, PractitionerSuspended, None, None, Some(Role::Billing))
    );
    // A warned institution reason concerns no person.
    let p = profile("legacy_codes = \"lookup\"", "", "[enforcement]\nINSTITUTION_SUSPENDED = \"warn\"\n");
    let o = decide_with(&p, &view, &line(A, NORMAL, "2026-05-10"));
    assert_eq!(
        (o.reason, o.would_reject, o.role, o.practitioner_version),
        (Ok, Some(InstitutionSuspended), None, Some(1))
    );
}

#[test]
fn a_warned_reason_is_enforced_from_its_date_by_service_time_rules_md_enforcement() {
    let p = profile(
        "legacy_codes = \"lookup\"",
        "",
        "[enforcement]\nPRACTITIONER_NOT_REGISTERED_HERE = { warn_until = \"2026-04-02 12:00:00\" }\n",
    );
    let view = world();
    assert_eq!(got(&p, &view, &line(C, NORMAL, "2026-04-02 11:59:59")).3, Some(PractitionerNotRegisteredHere));
    assert_eq!(got(&p, &view, &line(C, NORMAL, "2026-04-02 12:00:00")).1, PractitionerNotRegisteredHere);
    // A bare TOML date means its midnight.
    let p = profile(
        "legacy_codes = \"lookup\"",
        "",
        "[enforcement]\nPRACTITIONER_NOT_REGISTERED_HERE = { warn_until = 2026-04-03 }\n",
    );
    assert_eq!(got(&p, &view, &line(C, NORMAL, "2026-04-02 23:59:59")).1, Ok);
    assert_eq!(got(&p, &view, &line(C, NORMAL, "2026-04-03")).1, PractitionerNotRegisteredHere);
}

#[test]
fn an_emergency_override_and_a_warning_are_both_named_rules_md_enforcement() {
    let p = profile("legacy_codes = \"lookup\"", "", "[enforcement]\nPRACTITIONER_TERMINATED = \"warn\"\n");
    let view = world();
    // At C, MULTI is not registered here (overridden for an emergency) and terminated (warned).
    let o = decide_with(&p, &view, &line(C, MULTI, "2026-09-02").emergency());
    assert_eq!(
        (o.verdict, o.reason, o.overridden, o.would_reject, o.role),
        (
            Accept,
            EmergencyOverride,
            Some(PractitionerNotRegisteredHere),
            Some(PractitionerTerminated),
            Some(Role::Billing)
        )
    );
    assert!(o.rule.starts_with("national-2024 Art. 9(6)2"), "{}", o.rule);
}

/// Check 5 presupposes check 4: a person registered nowhere is not, in addition, "registered elsewhere".
/// Without that, warning about unmapped ids would still reject every unmapped line as not registered
/// here.
#[test]
fn check_5_runs_for_a_person_registered_somewhere_rules_md_local_ids() {
    let p = profile(MAP, UNMAPPED_RULE, "[enforcement]\nPRACTITIONER_CODE_UNMAPPED = \"warn\"\n");
    let view = mapped_world();
    assert_eq!(
        got(&p, &view, &line(B, "0999", "2026-04-02")),
        (Accept, Ok, None, Some(PractitionerCodeUnmapped), Some(Role::Billing))
    );
    // Huai'an Art. 11: a new doctor's emergency care is settled; a profile letting emergencies pass check
    // 4 but not check 5 settles it too.
    let text = crate::profile::SHIPPED[1].toml.replace("  \"PRACTITIONER_NOT_REGISTERED_HERE\",\n", "");
    let huaian = Profile::from_toml(&text).unwrap();
    assert!(!huaian.overridable(PractitionerNotRegisteredHere));
    assert_eq!(got(&huaian, &view, &line(A, UNKNOWN, "2026-04-02").emergency()).2, Some(PractitionerUnregistered));
    assert_eq!(got(&huaian, &view, &line(C, NORMAL, "2026-04-02").emergency()).1, PractitionerNotRegisteredHere);
}

// --- routing ----------------------------------------------------------------------------------------

/// rules.md, "Routing": the decision names the profile in force for the institution's area at the
/// line's service time, and that profile's article.
#[test]
fn decisions_name_the_profile_in_force_for_the_area_and_time_rules_md_routing() {
    let rules = Rules::from_toml(
        r#"
        default = "national-2024"
        [[route]]
        area = "110105"
        profile = "lanzhou-2014"
        until = "2026-04-02 12:00:00"
        [[route]]
        area = "1101"
        profile = "huaian-2020"
        "#,
        |_| Err("no files".into()),
    )
    .unwrap();
    let view = world();
    let stamp = Stamp { table_epoch: view.epoch(), decided_at: "x" };
    let decide_line = |l: Line| {
        let json = l.json();
        let mut out = Vec::new();
        process(json.as_bytes(), &view, &rules, &stamp, &mut out).unwrap();
        let rec: crate::record::DecisionRecord = serde_json::from_slice(&out).unwrap();
        (rec.profile, rec.reason, rec.rule)
    };
    // A new doctor's emergency: Lanzhou Art. 9 refuses it; from noon Huai'an Art. 11 settles it.
    assert_eq!(
        decide_line(line(A, UNKNOWN, "2026-04-02 11:59:59").emergency()),
        ("lanzhou-2014".into(), PractitionerUnregistered, "lanzhou-2014 Art. 9".into())
    );
    let (profile, reason, rule) = decide_line(line(A, UNKNOWN, "2026-04-02 12:00:00").emergency());
    assert_eq!((profile.as_str(), reason), ("huaian-2020", EmergencyOverride));
    assert!(rule.starts_with("huaian-2020 Art. 11"), "{rule}");
    // Another area: the default.
    assert_eq!(decide_line(line("H12010100001", UNKNOWN, "2026-04-02").emergency()).0, "national-2024");
}
