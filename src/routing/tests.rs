//! Routing tests, named after rules.md's section "Regions, roles, enforcement" (routing), with the
//! regions of the seeds: Huai'an `3208` (000), Qinghai `63` (001), Lanzhou `6201` (002).

use super::*;
use crate::record::InstitutionCode;

fn no_files(path: &str) -> Result<String, String> {
    Err(format!("no file {path} in this test"))
}

fn rules(text: &str) -> Rules {
    Rules::from_toml(text, no_files).unwrap_or_else(|e| panic!("{e}"))
}

fn refused(text: &str) -> String {
    Rules::from_toml(text, no_files).expect_err("should be refused").to_string()
}

fn at(r: &Rules, inst: &str, t: &str) -> String {
    r.select(InstitutionCode::parse(inst).unwrap(), BjTime::parse(t).unwrap()).name.clone()
}

const HUAIAN: &str = "H32080300011";
const NANJING: &str = "H32010200011";
const LANZHOU: &str = "P62010200011";
const XINING: &str = "H63010200011";
const BEIJING: &str = "H11010100011";

#[test]
fn no_routing_table_is_one_profile_for_every_line_rules_md_routing() {
    let r = Rules::single(Profile::shipped("lanzhou-2014").unwrap());
    assert!(!r.is_routed() && r.routes().is_empty());
    for inst in [HUAIAN, XINING, BEIJING] {
        assert_eq!(at(&r, inst, "2026-04-02"), "lanzhou-2014");
    }
}

#[test]
fn longest_area_prefix_wins_then_the_default_rules_md_routing() {
    let r = rules(
        r#"
        default = "national-2024"
        [[route]]
        area = "32"
        profile = "lanzhou-2014"
        [[route]]
        area = "3208"
        profile = "huaian-2020"
        "#,
    );
    assert_eq!(at(&r, HUAIAN, "2026-04-02"), "huaian-2020");
    assert_eq!(at(&r, NANJING, "2026-04-02"), "lanzhou-2014");
    assert_eq!(at(&r, BEIJING, "2026-04-02"), "national-2024");
    // A pharmacy's code carries its area the same way.
    assert_eq!(at(&r, "P32080300011", "2026-04-02"), "huaian-2020");
    assert_eq!(r.profiles()[0].name, "national-2024", "the default comes first");
    assert_eq!(r.profiles().len(), 3);
}

#[test]
fn a_route_is_in_force_by_service_time_half_open_rules_md_routing() {
    // Huai'an's own rules until 2025; then the province's route, then the default.
    let r = rules(
        r#"
        default = "national-2024"
        [[route]]
        area = "3208"
        profile = "huaian-2020"
        until = "2025-01-01"
        [[route]]
        area = "32"
        profile = "lanzhou-2014"
        from = "2025-07-01 12:00:00"
        "#,
    );
    assert_eq!(at(&r, HUAIAN, "2024-12-31 23:59:59"), "huaian-2020");
    assert_eq!(at(&r, HUAIAN, "2025-01-01 00:00:00"), "national-2024");
    assert_eq!(at(&r, HUAIAN, "2025-07-01 11:59:59"), "national-2024");
    assert_eq!(at(&r, HUAIAN, "2025-07-01 12:00:00"), "lanzhou-2014");
    assert_eq!(at(&r, NANJING, "2020-01-01"), "national-2024");
    assert_eq!(
        r.routes()[0],
        RouteInfo {
            area: "3208".into(),
            profile: "huaian-2020".into(),
            from: None,
            until: Some(BjTime::parse("2025-01-01").unwrap())
        }
    );
}

#[test]
fn one_area_may_change_profile_in_the_middle_of_a_day_rules_md_routing() {
    let r = rules(
        r#"
        default = "national-2024"
        [[route]]
        area = "6201"
        profile = "lanzhou-2014"
        until = "2026-04-02 12:00:00"
        [[route]]
        area = "6201"
        profile = "huaian-2020"
        from = "2026-04-02 12:00:00"
        [[route]]
        area = "*"
        profile = "lanzhou-2014"
        from = "2030-01-01"
        "#,
    );
    assert_eq!(at(&r, LANZHOU, "2026-04-02 11:59:59"), "lanzhou-2014");
    assert_eq!(at(&r, LANZHOU, "2026-04-02 12:00:00"), "huaian-2020");
    // `*` is below every prefix: it changes the default from its date, not the routed areas.
    assert_eq!(at(&r, BEIJING, "2029-12-31 23:59:59"), "national-2024");
    assert_eq!(at(&r, BEIJING, "2030-01-01"), "lanzhou-2014");
    assert_eq!(at(&r, LANZHOU, "2030-01-01"), "huaian-2020");
}

#[test]
fn profile_files_are_asked_for_and_must_name_themselves_as_the_table_does() {
    let text = crate::profile::SHIPPED[0]
        .toml
        .replace("name = \"national-2024\"", "name = \"qinghai-rescue\"")
        .replace(r#"["13", "24"]"#, r#"["13", "24", "9914"]"#);
    let table = r#"
        default = "national-2024"
        [profiles]
        "qinghai-rescue" = "rescue.toml"
        [[route]]
        area = "63"
        profile = "qinghai-rescue"
        from = "2026-07-01"
        "#;
    let mut asked = Vec::new();
    let r = Rules::from_toml(table, |p| {
        asked.push(p.to_owned());
        Ok(text.clone())
    })
    .unwrap();
    assert_eq!(asked, ["rescue.toml"]);
    assert_eq!(at(&r, XINING, "2026-07-01"), "qinghai-rescue");
    assert!(
        r.select(InstitutionCode::parse(XINING).unwrap(), BjTime::parse("2026-07-01").unwrap())
            .is_emergency_med_type(crate::record::MedType(9914))
    );

    let wrong = Rules::from_toml(
        &table
            .replace("\"qinghai-rescue\" = ", "\"qinghai-x\" = ")
            .replace("profile = \"qinghai-rescue\"", "profile = \"qinghai-x\""),
        |_| Ok(text.clone()),
    );
    let e = wrong.unwrap_err().to_string();
    assert!(e.contains("route[0].profile") && e.contains("names itself `qinghai-rescue`"), "{e}");
    let e = Rules::from_toml(table, no_files).unwrap_err().to_string();
    assert!(e.contains("no file rescue.toml"), "{e}");
}

#[test]
fn refusals_name_the_setting() {
    let cases = [
        ("default = \"shanghai\"", "`default`"),
        ("default = \"national-2024\"\n[[route]]\narea = \"3208x\"\nprofile = \"huaian-2020\"", "route[0].area"),
        ("default = \"national-2024\"\n[[route]]\narea = \"3208001\"\nprofile = \"huaian-2020\"", "route[0].area"),
        ("default = \"national-2024\"\n[[route]]\narea = \"\"\nprofile = \"huaian-2020\"", "route[0].area"),
        ("default = \"national-2024\"\n[[route]]\narea = \"32\"\nprofile = \"nowhere\"", "route[0].profile"),
        (
            "default = \"national-2024\"\n[[route]]\narea = \"32\"\nprofile = \"huaian-2020\"\nuntil = \"2025-13-01\"",
            "route[0].until",
        ),
        (
            "default = \"national-2024\"\n[[route]]\narea = \"32\"\nprofile = \"huaian-2020\"\nfrom = \"2025-01-01\"\nuntil = \"2025-01-01\"",
            "route[0].until",
        ),
        ("default = \"national-2024\"\n[profiles]\nx = \"x.toml\"", "profiles.x"),
        ("default = \"national-2024\"\ncolour = 1", "colour"),
        ("[[route]]\narea = \"32\"\nprofile = \"huaian-2020\"", "default"),
    ];
    for (text, needle) in cases {
        let e = refused(text);
        assert!(e.contains(needle), "{text:?}: {e}");
    }
}

#[test]
fn one_area_has_one_profile_at_a_time_overlaps_are_refused() {
    let e = refused(
        r#"
        default = "national-2024"
        [[route]]
        area = "3208"
        profile = "huaian-2020"
        until = "2025-01-02"
        [[route]]
        area = "32"
        profile = "lanzhou-2014"
        [[route]]
        area = "3208"
        profile = "national-2024"
        from = "2025-01-01"
        "#,
    );
    assert!(e.contains("route[2].from") && e.contains("route[0]") && e.contains("`3208`"), "{e}");
    // Touching periods are not an overlap.
    rules(
        r#"
        default = "national-2024"
        [[route]]
        area = "3208"
        profile = "huaian-2020"
        until = "2025-01-01"
        [[route]]
        area = "3208"
        profile = "national-2024"
        from = "2025-01-01"
        "#,
    );
}

/// The shipped example (docs/rules.md) loads, with its profile file, and routes the seeds' regions.
#[test]
fn the_shipped_example_routing_table_loads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/routing");
    let text = std::fs::read_to_string(dir.join("example.toml")).unwrap();
    let r = Rules::from_toml(&text, |p| std::fs::read_to_string(dir.join(p)).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(at(&r, HUAIAN, "2024-06-01"), "huaian-2020");
    assert_eq!(at(&r, HUAIAN, "2025-06-01"), "national-2024");
    assert_eq!(at(&r, LANZHOU, "2024-06-01"), "lanzhou-2014");
    assert_eq!(at(&r, XINING, "2026-06-30 23:59:59"), "national-2024");
    assert_eq!(at(&r, XINING, "2026-07-01"), "qinghai-2026");
    let q = r.profiles().iter().find(|p| p.name == "qinghai-2026").unwrap();
    assert!(q.is_emergency_med_type(crate::record::MedType(9914)));
    assert_eq!(q.roles(), [crate::record::Role::Billing, crate::record::Role::Orders]);
    assert_eq!(q.pharmacist(), Some(crate::record::Role::Pharmacist));
    assert_eq!(q.legacy_codes, crate::profile::LegacyCodes::Map);
}
