//! The decision against an independent reference (issue 12 item 8): random status tables, local-id
//! mappings, profiles (emergency sets, overrides, legacy-code modes, roles, the pharmacist's field,
//! warn-only reasons with and without a date), routing tables (area prefixes, `*`, periods that change
//! in the middle of a day) and claim lines are written out as the JSON and TOML claimgate reads, decided
//! by `claimgate::batch::process`, and compared field by field — verdict, reason, overridden,
//! would_reject, role, rule, profile, record versions, or the dead letter's field — with the decision
//! of `oracle/decision.rs`, which is written from rules.md and shares no code or table with `src/`.
//!
//! Every run prints its seed (shown when it fails): `CLAIMGATE_TEST_ORACLE_SEED=<seed>` replays it.
//! Failures are also kept by proptest in `tests/decide_oracle.regressions` (committed) and replayed
//! first on every run. `CLAIMGATE_TEST_ORACLE_CASES` sets the number of cases (default 400, each with
//! up to eight lines).

#[path = "oracle/decision.rs"]
mod reference;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, RngSeed, TestCaseError};

use claimgate::batch::process;
use claimgate::profile::Profile;
use claimgate::record::{InstitutionText, MappingText, PractitionerText, Stamp};
use claimgate::routing::Rules;
use claimgate::table::{InstitutionTable, MappingTable, PractitionerTable, View};
use reference::{
    CHECKS, Claim, Expected, Field, Institution, InstitutionPeriod, Legacy, Mapping, Practitioner, Registration, Route,
    Routing, Span, StatusPeriod, Tables, Time, text,
};

const DAY: Time = 86_400;
const HALF: Time = 43_200;

const INSTITUTIONS: [&str; 8] = [
    "H32080300001",
    "H32080300002",
    "H32010200001",
    "P32080300003",
    "P62010200001",
    "H62010200002",
    "H63010200001",
    "H11010500001",
];
const NATIONAL: [&str; 7] = [
    "D320803000001",
    "D320803000002",
    "N320803000003",
    "HY620102000004",
    "D630102000005",
    "HJ110105000006",
    "D110105000007",
];
const LEGACY: [&str; 3] = ["L-1", "L-2", "0457"];
const AREAS: [&str; 6] = ["3208", "32", "6201", "63", "1", "*"];

fn cases() -> u32 {
    std::env::var("CLAIMGATE_TEST_ORACLE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400)
}

fn seed() -> u64 {
    std::env::var("CLAIMGATE_TEST_ORACLE_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    })
}

// --- strategies -----------------------------------------------------------------------------------

/// A period on half-day boundaries in the first week of March 2026, open-ended or up to three days.
fn span() -> impl Strategy<Value = Span> {
    (0..7i64, 0..2i64, prop_oneof![1 => Just(None), 3 => (1..7i64).prop_map(Some)]).prop_map(|(day, half, len)| Span {
        from: day * DAY + half * HALF,
        until: len.map(|l| day * DAY + (half + l) * HALF),
    })
}

/// A service time, often on a boundary (midnight, noon, a second before them).
fn time() -> impl Strategy<Value = Time> {
    (
        0..8i64,
        prop::sample::select(vec![0i64, 11, 12, 23]),
        prop::sample::select(vec![0i64, 59]),
        prop::sample::select(vec![0i64, 59]),
    )
        .prop_map(|(d, h, m, s)| d * DAY + h * 3600 + m * 60 + s)
}

fn tables() -> impl Strategy<Value = Tables> {
    let codes: Vec<&'static str> = NATIONAL.iter().chain(&LEGACY).copied().collect();
    // Registrations mostly long: a table where few people are registered decides little but check 4.
    let registration = prop_oneof![
        2 => span(),
        3 => (0..3i64, prop::option::weighted(0.3, 6..16i64))
            .prop_map(|(d, until)| Span { from: d * HALF, until: until.map(|u| u * HALF) }),
    ];
    let practitioner = (
        1..50u64,
        prop::collection::vec((prop::sample::select(INSTITUTIONS.to_vec()), registration), 0..4),
        prop::collection::vec((any::<bool>(), span()), 0..3),
    );
    let people = prop::collection::vec(prop::option::weighted(0.8, practitioner), codes.len()).prop_map(move |v| {
        v.into_iter()
            .zip(&codes)
            .filter_map(|(p, code)| {
                let (version, regs, periods) = p?;
                Some(Practitioner {
                    code: code.to_string(),
                    version,
                    registrations: regs
                        .into_iter()
                        .map(|(i, span)| Registration { institution: i.to_owned(), span })
                        .collect(),
                    periods: periods.into_iter().map(|(terminated, span)| StatusPeriod { terminated, span }).collect(),
                })
            })
            .collect::<Vec<_>>()
    });
    let departments = prop_oneof![
        2 => Just(None),
        1 => Just(Some(vec!["A01".to_owned()])),
        1 => Just(Some(vec!["A01".to_owned(), "A02".to_owned()])),
    ];
    let institution = (1..50u64, prop::collection::vec((prop::bool::weighted(0.3), span(), departments), 0..3));
    let institutions =
        prop::collection::vec(prop::option::weighted(0.5, institution), INSTITUTIONS.len()).prop_map(|v| {
            v.into_iter()
                .zip(INSTITUTIONS)
                .filter_map(|(i, code)| {
                    let (version, periods) = i?;
                    Some(Institution {
                        code: code.to_owned(),
                        version,
                        periods: periods
                            .into_iter()
                            .map(|(terminated, span, departments)| InstitutionPeriod { terminated, span, departments })
                            .collect(),
                    })
                })
                .collect::<Vec<_>>()
        });
    // Mappings: a local id at an institution, one national code or two in turn.
    let mapping = (
        prop::sample::select(INSTITUTIONS.to_vec()),
        prop::sample::select(LEGACY.to_vec()),
        1..9u64,
        prop::sample::select(NATIONAL.to_vec()),
        prop::sample::select(NATIONAL.to_vec()),
        0..7i64,
        prop::option::of(1..8i64),
    );
    let mappings = prop::collection::vec(mapping, 0..5).prop_map(|v| {
        let mut seen = BTreeSet::new();
        v.into_iter()
            .filter(|(i, id, ..)| seen.insert((*i, *id)))
            .map(|(i, id, version, a, b, start, switch)| {
                let from = start * HALF;
                let periods = match switch {
                    None => vec![(a.to_owned(), Span { from, until: None })],
                    Some(s) => vec![
                        (a.to_owned(), Span { from, until: Some(from + s * HALF) }),
                        (b.to_owned(), Span { from: from + s * HALF, until: None }),
                    ],
                };
                Mapping { institution: i.to_owned(), local_id: id.to_owned(), version, periods }
            })
            .collect::<Vec<_>>()
    });
    (people, institutions, mappings).prop_map(|(practitioners, institutions, mappings)| Tables {
        practitioners,
        institutions,
        mappings,
    })
}

fn profile(index: usize) -> impl Strategy<Value = reference::Profile> {
    let warn = prop::collection::vec(
        prop_oneof![6 => Just(None), 1 => Just(Some(None)), 1 => time().prop_map(|t| Some(Some(t)))],
        CHECKS.len(),
    );
    (
        prop::sample::subsequence(vec![13u32, 24, 9914], 0..=3),
        prop::collection::vec(any::<bool>(), CHECKS.len()),
        prop::sample::select(vec![Legacy::Lookup, Legacy::Unregistered, Legacy::Map]),
        prop::sample::select(vec![
            vec!["bilg_dr_codg"],
            vec!["bilg_dr_codg", "orders_dr_code"],
            vec!["orders_dr_code", "bilg_dr_codg"],
        ]),
        prop::option::of(Just("phar_prac_cert_no")),
        warn,
    )
        .prop_map(move |(emergency_med_types, overridable, legacy, roles, pharmacist, warn)| reference::Profile {
            name: format!("p{index}"),
            emergency_med_types,
            overridable: CHECKS.iter().zip(overridable).filter(|(_, o)| *o).map(|(r, _)| *r).collect(),
            legacy,
            roles,
            pharmacist,
            warn: CHECKS.iter().zip(warn).filter_map(|(r, w)| w.map(|w| (*r, w))).collect(),
        })
}

fn profiles() -> impl Strategy<Value = Vec<reference::Profile>> {
    (profile(0), profile(1), profile(2), 1..=3usize).prop_map(|(a, b, c, n)| [a, b, c].into_iter().take(n).collect())
}

/// A routing table over `n` profiles: per area, no route, one (perhaps with a start or an end), or two
/// that take over from each other at a service time — so that one area never has two in force.
fn routing(n: usize) -> impl Strategy<Value = Option<Routing>> {
    let per_area = prop_oneof![
        2 => Just(None),
        1 => (0..n, prop::option::of(time()), prop::option::of(time())).prop_map(|(p, a, b)| {
            let (from, until) = match (a, b) {
                (Some(a), Some(b)) if a < b => (Some(a), Some(b)),
                (Some(a), Some(b)) if b < a => (Some(b), Some(a)),
                (a, _) => (a, None),
            };
            Some(vec![(p, from, until)])
        }),
        2 => (0..n, 0..n, time()).prop_map(|(p, q, at)| Some(vec![(p, None, Some(at)), (q, Some(at), None)])),
    ];
    prop::option::weighted(0.8, (0..n, prop::collection::vec(per_area, AREAS.len()))).prop_map(|r| {
        r.map(|(default, areas)| Routing {
            default,
            routes: areas
                .into_iter()
                .zip(AREAS)
                .flat_map(|(routes, area)| {
                    routes.into_iter().flatten().map(move |(profile, from, until)| Route {
                        area: area.to_owned(),
                        profile,
                        from,
                        until,
                    })
                })
                .collect(),
        })
    })
}

fn person_field() -> impl Strategy<Value = Field> {
    let codes: Vec<String> =
        NATIONAL.iter().chain(&LEGACY).chain(&["D999999999999", "L-9"]).map(|s| s.to_string()).collect();
    prop_oneof![
        10 => Just(Field::Absent),
        12 => prop::sample::select(codes).prop_map(Field::Text),
        1 => Just(Field::Text("张三".to_owned())),
        1 => Just(Field::Text("D".repeat(31))),
        1 => Just(Field::Other),
    ]
}

fn claim() -> impl Strategy<Value = Claim> {
    let codes: Vec<&'static str> = NATIONAL.iter().chain(&LEGACY).chain(&["D999999999999", "L-9"]).copied().collect();
    (
        prop::sample::select(INSTITUTIONS.to_vec()),
        time(),
        prop::sample::select(vec![11u32, 13, 24, 41, 9914]),
        prop::sample::select(vec![None, Some("A01"), Some("A02")]),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
        prop::sample::select(codes),
        person_field(),
        person_field(),
    )
        .prop_map(|(i, time, med_type, dept, er_flag, adm_way, billing, orders, pharmacist)| Claim {
            institution: i.to_owned(),
            time,
            med_type,
            department: dept.map(str::to_owned),
            er_flag,
            adm_way,
            billing: billing.to_owned(),
            orders,
            pharmacist,
        })
}

#[derive(Debug, Clone)]
struct Case {
    tables: Tables,
    profiles: Vec<reference::Profile>,
    routing: Option<Routing>,
    claims: Vec<Claim>,
}

fn case() -> impl Strategy<Value = Case> {
    (tables(), profiles()).prop_flat_map(|(tables, profiles)| {
        let n = profiles.len();
        (Just(tables), Just(profiles), routing(n), prop::collection::vec(claim(), 1..9))
            .prop_map(|(tables, profiles, routing, claims)| Case { tables, profiles, routing, claims })
    })
}

// --- what claimgate reads -------------------------------------------------------------------------

fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn until(s: &Span) -> String {
    s.until.map_or("null".to_owned(), |u| q(&text(u)))
}

fn view(t: &Tables) -> View {
    let mut p = PractitionerTable::with_capacity(16);
    for x in &t.practitioners {
        let regs: Vec<String> = x
            .registrations
            .iter()
            .map(|r| {
                format!(
                    r#"{{"institution":{},"from":{},"until":{}}}"#,
                    q(&r.institution),
                    q(&text(r.span.from)),
                    until(&r.span)
                )
            })
            .collect();
        let periods: Vec<String> = x
            .periods
            .iter()
            .map(|s| {
                let status = if s.terminated { "terminated" } else { "suspended" };
                format!(r#"{{"status":"{status}","from":{},"until":{}}}"#, q(&text(s.span.from)), until(&s.span))
            })
            .collect();
        let json = format!(
            r#"{{"code":{},"version":{},"registrations":[{}],"periods":[{}]}}"#,
            q(&x.code),
            x.version,
            regs.join(","),
            periods.join(",")
        );
        p.upsert(&PractitionerText::from_json(json.as_bytes()).unwrap().validate().unwrap()).unwrap();
    }
    let mut i = InstitutionTable::default();
    for x in &t.institutions {
        let periods: Vec<String> = x
            .periods
            .iter()
            .map(|s| {
                let status = if s.terminated { "terminated" } else { "suspended" };
                let d = s.departments.as_ref().map_or("null".to_owned(), |d| serde_json::to_string(d).unwrap());
                format!(
                    r#"{{"status":"{status}","from":{},"until":{},"departments":{d}}}"#,
                    q(&text(s.span.from)),
                    until(&s.span)
                )
            })
            .collect();
        let json = format!(r#"{{"code":{},"version":{},"periods":[{}]}}"#, q(&x.code), x.version, periods.join(","));
        i.upsert(InstitutionText::from_json(json.as_bytes()).unwrap().validate().unwrap());
    }
    let mut m = MappingTable::default();
    for x in &t.mappings {
        let periods: Vec<String> = x
            .periods
            .iter()
            .map(|(code, s)| format!(r#"{{"code":{},"from":{},"until":{}}}"#, q(code), q(&text(s.from)), until(s)))
            .collect();
        let json = format!(
            r#"{{"institution":{},"local_id":{},"version":{},"periods":[{}]}}"#,
            q(&x.institution),
            q(&x.local_id),
            x.version,
            periods.join(",")
        );
        m.upsert(MappingText::from_json(json.as_bytes()).unwrap().validate().unwrap());
    }
    View::new(p, i).with_mappings(m)
}

fn profile_toml(p: &reference::Profile) -> String {
    let list = |v: Vec<String>| format!("[{}]", v.join(", "));
    let mut s = format!("name = {}\n", q(&p.name));
    s +=
        &format!("emergency_med_types = {}\n", list(p.emergency_med_types.iter().map(|m| q(&m.to_string())).collect()));
    s += &format!("emergency_overrides = {}\n", list(p.overridable.iter().map(|r| q(r)).collect()));
    let legacy = match p.legacy {
        Legacy::Lookup => "lookup",
        Legacy::Unregistered => "unregistered",
        Legacy::Map => "map",
    };
    s += &format!("legacy_codes = \"{legacy}\"\n");
    s += &format!("roles = {}\n", list(p.roles.iter().map(|r| q(r)).collect()));
    if let Some(ph) = p.pharmacist {
        s += &format!("pharmacist = {}\n", q(ph));
    }
    s += "[enforcement]\n";
    for (r, until) in &p.warn {
        match until {
            None => s += &format!("{r} = \"warn\"\n"),
            Some(t) => s += &format!("{r} = {{ warn_until = {} }}\n", q(&text(*t))),
        }
    }
    s += "[rules]\n";
    for r in std::iter::once("OK").chain(CHECKS) {
        s += &format!("{r} = {}\n", q(&p.rule(r)));
    }
    s += "[override_rules]\n";
    for r in &p.overridable {
        s += &format!("{r} = {}\n", q(&p.override_rule(r)));
    }
    s
}

fn rules(profiles: &[reference::Profile], routing: Option<&Routing>) -> Rules {
    let texts: BTreeMap<String, String> =
        profiles.iter().map(|p| (format!("{}.toml", p.name), profile_toml(p))).collect();
    let Some(r) = routing else {
        return Rules::single(Profile::from_toml(&texts["p0.toml"]).unwrap_or_else(|e| panic!("{e}")));
    };
    let used: BTreeSet<usize> = std::iter::once(r.default).chain(r.routes.iter().map(|x| x.profile)).collect();
    let mut s = format!("default = \"p{}\"\n[profiles]\n", r.default);
    for i in &used {
        s += &format!("\"p{i}\" = \"p{i}.toml\"\n");
    }
    for x in &r.routes {
        s += &format!("[[route]]\narea = {}\nprofile = \"p{}\"\n", q(&x.area), x.profile);
        if let Some(f) = x.from {
            s += &format!("from = {}\n", q(&text(f)));
        }
        if let Some(u) = x.until {
            s += &format!("until = {}\n", q(&text(u)));
        }
    }
    Rules::from_toml(&s, |path| texts.get(path).cloned().ok_or_else(|| format!("no {path}")))
        .unwrap_or_else(|e| panic!("{e}\n{s}"))
}

fn line(n: usize, c: &Claim) -> String {
    let mut v = serde_json::json!({
        "feedetl_sn": format!("F{n}"), "fixmedins_code": c.institution, "mdtrt_id": "M1", "psn_no": "P1",
        "med_type": c.med_type.to_string(), "fee_ocur_time": text(c.time), "bilg_dr_codg": c.billing,
        "det_item_fee_sumamt": "1.00",
    });
    if let Some(d) = &c.department {
        v["bilg_dept_codg"] = d.as_str().into();
    }
    if c.er_flag {
        v["er_flag"] = "1".into();
    }
    if c.adm_way {
        v["adm_way"] = "1".into();
    }
    for (name, f) in [("orders_dr_code", &c.orders), ("phar_prac_cert_no", &c.pharmacist)] {
        match f {
            Field::Absent => {}
            Field::Text(s) => v[name] = s.as_str().into(),
            Field::Other => v[name] = serde_json::json!([1]),
        }
    }
    v.to_string()
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let view = view(&case.tables);
    let rules = rules(&case.profiles, case.routing.as_ref());
    let stamp = Stamp { table_epoch: view.epoch(), decided_at: "2026-03-01 00:00:00.000" };
    for (n, c) in case.claims.iter().enumerate() {
        let json = line(n, c);
        let want = reference::decide(&case.tables, &case.profiles, case.routing.as_ref(), c);
        let mut out = Vec::new();
        let got = match process(json.as_bytes(), &view, &rules, &stamp, &mut out) {
            Err(m) => Expected::Dead { field: m.field.unwrap_or("-") },
            Ok(_) => {
                let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
                let s = |k: &str| v[k].as_str().map(str::to_owned);
                Expected::Decision {
                    verdict: if v["verdict"] == "accept" { "accept" } else { "reject" },
                    reason: s("reason").unwrap_or_default(),
                    overridden: s("overridden"),
                    would_reject: s("would_reject"),
                    role: match v["role"].as_str() {
                        None => None,
                        Some("bilg_dr_codg") => Some("bilg_dr_codg"),
                        Some("orders_dr_code") => Some("orders_dr_code"),
                        Some("phar_prac_cert_no") => Some("phar_prac_cert_no"),
                        Some(other) => return Err(TestCaseError::fail(format!("unknown role {other}"))),
                    },
                    rule: s("rule").unwrap_or_default(),
                    profile: s("profile").unwrap_or_default(),
                    practitioner_version: v["practitioner_version"].as_u64(),
                    institution_version: v["institution_version"].as_u64(),
                }
            }
        };
        prop_assert_eq!(got, want, "line {}: {}", n, json);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        rng_seed: RngSeed::Fixed({
            let s = seed();
            eprintln!("decide_oracle: seed {s} (replay: CLAIMGATE_TEST_ORACLE_SEED={s})");
            s
        }),
        max_shrink_iters: 4_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn decisions_agree_with_the_reference_on_random_tables_profiles_routes_and_lines(case in case()) {
        check(&case)?;
    }
}

/// What the generated cases reach, by reason, dead-letter field and role (run by hand with
/// `--ignored --nocapture`): every reason, warned and overridden ones, each role, should appear.
#[test]
#[ignore]
fn what_the_cases_reach() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..2_000 {
        let c = case().new_tree(&mut runner).unwrap().current();
        for claim in &c.claims {
            let keys = match reference::decide(&c.tables, &c.profiles, c.routing.as_ref(), claim) {
                Expected::Dead { field } => vec![format!("dead {field}")],
                Expected::Decision { reason, overridden, would_reject, role, profile, .. } => vec![
                    format!("reason {reason}"),
                    format!("overridden {overridden:?}"),
                    format!("would_reject {would_reject:?}"),
                    format!("role {role:?}"),
                    format!("profile {profile}"),
                ],
            };
            for k in keys {
                *seen.entry(k).or_default() += 1;
            }
        }
    }
    for (k, n) in &seen {
        eprintln!("{n:>7}  {k}");
    }
}

/// The reference itself, on the seeds' cases, so that a wrong oracle does not pass unnoticed.
#[test]
fn the_reference_decides_the_articles_it_is_written_from() {
    let span = |from: Time, until: Option<Time>| Span { from, until };
    let tables = Tables {
        practitioners: vec![Practitioner {
            code: "D320803000001".into(),
            version: 3,
            registrations: vec![Registration { institution: "H32080300001".into(), span: span(0, None) }],
            periods: vec![StatusPeriod { terminated: false, span: span(DAY, Some(2 * DAY)) }],
        }],
        ..Tables::default()
    };
    let national = reference::Profile {
        name: "n".into(),
        emergency_med_types: vec![13],
        overridable: vec!["PRACTITIONER_SUSPENDED", "PRACTITIONER_NOT_REGISTERED_HERE"],
        legacy: Legacy::Lookup,
        roles: vec!["bilg_dr_codg"],
        pharmacist: None,
        warn: vec![],
    };
    let claim = |t: Time, med: u32, inst: &str| Claim {
        institution: inst.into(),
        time: t,
        med_type: med,
        department: None,
        er_flag: false,
        adm_way: false,
        billing: "D320803000001".into(),
        orders: Field::Absent,
        pharmacist: Field::Absent,
    };
    let reason = |e: Expected| match e {
        Expected::Decision { reason, .. } => reason,
        Expected::Dead { field } => format!("dead {field}"),
    };
    let profiles = [national];
    // Qinghai Art. 9(6)2: suspended, not paid, except emergencies.
    assert_eq!(
        reason(reference::decide(&tables, &profiles, None, &claim(DAY, 11, "H32080300001"))),
        "PRACTITIONER_SUSPENDED"
    );
    assert_eq!(
        reason(reference::decide(&tables, &profiles, None, &claim(DAY, 13, "H32080300001"))),
        "EMERGENCY_OVERRIDE"
    );
    // Half-open.
    assert_eq!(reason(reference::decide(&tables, &profiles, None, &claim(2 * DAY, 11, "H32080300001"))), "OK");
    // Qinghai Art. 9(4)3.
    assert_eq!(
        reason(reference::decide(&tables, &profiles, None, &claim(0, 11, "H32080300002"))),
        "PRACTITIONER_NOT_REGISTERED_HERE"
    );
    // Routing: the longest prefix in force.
    let r = Routing {
        default: 0,
        routes: vec![
            Route { area: "32".into(), profile: 1, from: None, until: None },
            Route { area: "3208".into(), profile: 2, from: Some(DAY), until: None },
        ],
    };
    assert_eq!(reference::route(Some(&r), "H32080300001", 0), 1);
    assert_eq!(reference::route(Some(&r), "H32080300001", DAY), 2);
    assert_eq!(reference::route(Some(&r), "H11010500001", DAY), 0);
}
