//! An independent reference decision, written from `../shared/spec/rules.md` ("Order of checks",
//! "Emergency exception", "Regions, roles, enforcement") and the choices `docs/rules.md` records where
//! the spec is silent — sharing no code and no tables with `src/`. It works on its own plain model of
//! the tables, profiles, routing table and claim line (vectors searched linearly, times as seconds),
//! which `tests/decide_oracle.rs` also writes out as the JSON and TOML that claimgate reads.
//!
//! Deliberately plain and slow; it need only agree with `claimgate::batch::process` on every input.

#![allow(dead_code)]

/// Seconds since 2026-03-01 00:00:00, Beijing time: the oracle's own clock.
pub type Time = i64;

/// `yyyy-MM-dd HH:mm:ss` of a [`Time`].
pub fn text(t: Time) -> String {
    let start = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
    (start + chrono::Duration::seconds(t)).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// rules.md's failing reasons in check order (check 4 has two forms).
pub const CHECKS: [&str; 8] = [
    "INSTITUTION_TERMINATED",
    "INSTITUTION_SUSPENDED",
    "DEPARTMENT_SUSPENDED",
    "PRACTITIONER_UNREGISTERED",
    "PRACTITIONER_CODE_UNMAPPED",
    "PRACTITIONER_NOT_REGISTERED_HERE",
    "PRACTITIONER_TERMINATED",
    "PRACTITIONER_SUSPENDED",
];

/// `[from, until)`; `until` `None` is open-ended.
#[derive(Clone, Debug)]
pub struct Span {
    pub from: Time,
    pub until: Option<Time>,
}

impl Span {
    pub fn holds(&self, t: Time) -> bool {
        self.from <= t && self.until.is_none_or(|u| t < u)
    }
}

#[derive(Clone, Debug)]
pub struct Registration {
    pub institution: String,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct StatusPeriod {
    pub terminated: bool,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Practitioner {
    pub code: String,
    pub version: u64,
    pub registrations: Vec<Registration>,
    pub periods: Vec<StatusPeriod>,
}

#[derive(Clone, Debug)]
pub struct InstitutionPeriod {
    pub terminated: bool,
    pub span: Span,
    /// `None`: the whole institution.
    pub departments: Option<Vec<String>>,
}

#[derive(Clone, Debug)]
pub struct Institution {
    pub code: String,
    pub version: u64,
    pub periods: Vec<InstitutionPeriod>,
}

/// (institution, local id) → national code, by period.
#[derive(Clone, Debug)]
pub struct Mapping {
    pub institution: String,
    pub local_id: String,
    pub version: u64,
    pub periods: Vec<(String, Span)>,
}

#[derive(Clone, Debug, Default)]
pub struct Tables {
    pub practitioners: Vec<Practitioner>,
    pub institutions: Vec<Institution>,
    pub mappings: Vec<Mapping>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Legacy {
    Lookup,
    Unregistered,
    Map,
}

#[derive(Clone, Debug)]
pub struct Profile {
    pub name: String,
    pub emergency_med_types: Vec<u32>,
    /// Reasons an emergency passes.
    pub overridable: Vec<&'static str>,
    pub legacy: Legacy,
    /// Person code fields, in order.
    pub roles: Vec<&'static str>,
    pub pharmacist: Option<&'static str>,
    /// Reasons only warned about, until a service time (`None`: always).
    pub warn: Vec<(&'static str, Option<Time>)>,
}

impl Profile {
    /// The citation the profile gives a reason (the driver writes these into the profile's TOML).
    pub fn rule(&self, reason: &str) -> String {
        format!("{} rule {reason}", self.name)
    }

    pub fn override_rule(&self, reason: &str) -> String {
        format!("{} override {reason}", self.name)
    }

    fn warned(&self, reason: &str, t: Time) -> bool {
        self.warn.iter().any(|(r, until)| *r == reason && until.is_none_or(|u| t < u))
    }
}

#[derive(Clone, Debug)]
pub struct Route {
    /// 1 to 6 digits, or `*`.
    pub area: String,
    pub profile: usize,
    pub from: Option<Time>,
    pub until: Option<Time>,
}

#[derive(Clone, Debug)]
pub struct Routing {
    pub default: usize,
    pub routes: Vec<Route>,
}

/// An optional person field as the line carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    /// Not on the line (or `null`, or `""`).
    Absent,
    /// A JSON string.
    Text(String),
    /// A JSON array.
    Other,
}

#[derive(Clone, Debug)]
pub struct Claim {
    pub institution: String,
    pub time: Time,
    pub med_type: u32,
    pub department: Option<String>,
    pub er_flag: bool,
    pub adm_way: bool,
    pub billing: String,
    pub orders: Field,
    pub pharmacist: Field,
}

/// What rules.md says becomes of the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    Dead {
        field: &'static str,
    },
    Decision {
        verdict: &'static str,
        reason: String,
        overridden: Option<String>,
        would_reject: Option<String>,
        role: Option<&'static str>,
        rule: String,
        profile: String,
        practitioner_version: Option<u64>,
        institution_version: Option<u64>,
    },
}

/// records.md: a code is 1 to 30 printable ASCII characters.
fn is_code(s: &str) -> bool {
    !s.is_empty() && s.len() <= 30 && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// records.md: `D` or `N` then 12 digits, `HY` or `HJ` then 12 digits.
fn is_national(s: &str) -> bool {
    let digits = |d: &str| d.len() == 12 && d.bytes().all(|b| b.is_ascii_digit());
    match s.as_bytes().first() {
        Some(b'D') | Some(b'N') => digits(&s[1..]),
        Some(b'H') => (s.starts_with("HY") || s.starts_with("HJ")) && digits(&s[2..]),
        _ => false,
    }
}

/// rules.md, "Routing": the longest area prefix among the routes in force at `t`; else the default.
pub fn route(routing: Option<&Routing>, institution: &str, t: Time) -> usize {
    let Some(r) = routing else { return 0 };
    let area = &institution[1..7];
    r.routes
        .iter()
        .filter(|x| x.area == "*" || area.starts_with(&x.area))
        .filter(|x| x.from.is_none_or(|f| f <= t) && x.until.is_none_or(|u| t < u))
        .max_by_key(|x| if x.area == "*" { 0 } else { x.area.len() })
        .map_or(r.default, |x| x.profile)
}

/// The reference decision.
pub fn decide(tables: &Tables, profiles: &[Profile], routing: Option<&Routing>, c: &Claim) -> Expected {
    let t = c.time;
    let p = &profiles[route(routing, &c.institution, t)];

    // Roles: the profile's, then the pharmacist's on a retail-pharmacy line (P, or med_type 41).
    let retail = c.institution.starts_with('P') || c.med_type == 41;
    let mut roles: Vec<&'static str> = p.roles.clone();
    if retail && let Some(ph) = p.pharmacist {
        roles.push(ph);
    }
    let field = |role: &str| -> Option<&Field> {
        match role {
            "orders_dr_code" => Some(&c.orders),
            "phar_prac_cert_no" => Some(&c.pharmacist),
            _ => None,
        }
    };
    // Check 0 for the person fields the profile reads: absent, or a code.
    for role in &roles {
        match field(role) {
            Some(Field::Other) => return Expected::Dead { field: role },
            Some(Field::Text(s)) if !is_code(s) => return Expected::Dead { field: role },
            _ => {}
        }
    }

    let emergency = p.emergency_med_types.contains(&c.med_type) || c.er_flag || c.adm_way;
    let mut overridden: Option<(&'static str, Option<&'static str>)> = None;
    let mut warned: Option<(&'static str, Option<&'static str>)> = None;
    let mut rejected: Option<(&'static str, Option<&'static str>)> = None;
    let mut fail = |reason: &'static str, role: Option<&'static str>| -> bool {
        if emergency && p.overridable.contains(&reason) {
            overridden.get_or_insert((reason, role));
            false
        } else if p.warned(reason, t) {
            warned.get_or_insert((reason, role));
            false
        } else {
            rejected = Some((reason, role));
            true
        }
    };

    // Checks 1-3.
    let inst = tables.institutions.iter().find(|i| i.code == c.institution);
    let now: Vec<&InstitutionPeriod> = inst.map_or(vec![], |i| i.periods.iter().filter(|x| x.span.holds(t)).collect());
    let whole_terminated = now.iter().any(|x| x.departments.is_none() && x.terminated);
    let whole_suspended = !whole_terminated && now.iter().any(|x| x.departments.is_none() && !x.terminated);
    let department = c
        .department
        .as_ref()
        .is_some_and(|d| now.iter().any(|x| x.departments.as_ref().is_some_and(|list| list.iter().any(|l| l == d))));
    let mut stop = (whole_terminated && fail("INSTITUTION_TERMINATED", None))
        || (whole_suspended && fail("INSTITUTION_SUSPENDED", None))
        || (department && fail("DEPARTMENT_SUSPENDED", None));

    // Whom a code names, and whether check 4 fails for the code itself.
    let find = |code: &str| tables.practitioners.iter().find(|x| x.code == code);
    let person = |code: &str| -> (Option<&Practitioner>, Option<&'static str>) {
        if is_national(code) {
            return (find(code), None);
        }
        match p.legacy {
            Legacy::Lookup => (find(code), None),
            Legacy::Unregistered => (find(code), Some("PRACTITIONER_UNREGISTERED")),
            Legacy::Map => {
                let mapped = tables
                    .mappings
                    .iter()
                    .find(|m| m.institution == c.institution && m.local_id == code)
                    .and_then(|m| m.periods.iter().find(|(_, s)| s.holds(t)));
                match mapped {
                    Some((national, _)) => (find(national), None),
                    None => (find(code), Some("PRACTITIONER_CODE_UNMAPPED")),
                }
            }
        }
    };
    let code_of = |role: &str| -> Option<String> {
        match field(role) {
            None => Some(c.billing.clone()),
            Some(Field::Text(s)) => Some(s.clone()),
            Some(_) => None,
        }
    };

    // Checks 4-7, person by person.
    let mut versions: Vec<(&'static str, Option<u64>)> = Vec::new();
    if !stop {
        for role in &roles {
            let Some(code) = code_of(role) else { continue };
            let (rec, code_fails) = person(&code);
            versions.push((role, rec.map(|r| r.version)));
            let anywhere = code_fails.is_none() && rec.is_some_and(|r| r.registrations.iter().any(|g| g.span.holds(t)));
            let here =
                rec.is_some_and(|r| r.registrations.iter().any(|g| g.institution == c.institution && g.span.holds(t)));
            let terminated = rec.is_some_and(|r| r.periods.iter().any(|x| x.terminated && x.span.holds(t)));
            let suspended = rec.is_some_and(|r| r.periods.iter().any(|x| !x.terminated && x.span.holds(t)));
            stop = (!anywhere && fail(code_fails.unwrap_or("PRACTITIONER_UNREGISTERED"), Some(role)))
                // Check 5 is for a person registered somewhere (docs/rules.md).
                || (anywhere && !here && fail("PRACTITIONER_NOT_REGISTERED_HERE", Some(role)))
                || (terminated && fail("PRACTITIONER_TERMINATED", Some(role)))
                || (!terminated && suspended && fail("PRACTITIONER_SUSPENDED", Some(role)));
            if stop {
                break;
            }
        }
    } else {
        versions.push(("bilg_dr_codg", person(&c.billing).0.map(|r| r.version)));
    }
    // The version of the person the decision names, else of the billing practitioner.
    let version = |role: Option<&str>| {
        let role = role.unwrap_or("bilg_dr_codg");
        versions.iter().find(|(r, _)| *r == role).and_then(|(_, v)| *v)
    };
    let institution_version = inst.map(|i| i.version);
    let decision = |verdict, reason: &str, rule: String, overridden: Option<&str>, would_reject: Option<&str>, role| {
        Expected::Decision {
            verdict,
            reason: reason.to_owned(),
            overridden: overridden.map(str::to_owned),
            would_reject: would_reject.map(str::to_owned),
            role,
            rule,
            profile: p.name.clone(),
            practitioner_version: version(role),
            institution_version,
        }
    };
    match (rejected, overridden, warned) {
        (Some((r, role)), _, _) => decision("reject", r, p.rule(r), None, None, role),
        (None, None, w) => decision("accept", "OK", p.rule("OK"), None, w.map(|w| w.0), w.and_then(|w| w.1)),
        (None, Some((o, orole)), w) => decision(
            "accept",
            "EMERGENCY_OVERRIDE",
            p.override_rule(o),
            Some(o),
            w.map(|w| w.0),
            // The role of the warned reason when there is one, else of the overridden one.
            w.map_or(orole, |w| w.1),
        ),
    }
}
