//! Region policy profiles: which medical types are emergencies, which failed checks an emergency may
//! pass, which persons on a line are checked, which reasons are only warned about, what becomes of
//! local ids, and the article each decision cites. Profiles are data — TOML files under `profiles/`,
//! embedded in the binary and loadable from a user's file — never `if region == …` branches.

use std::fmt;

use rustc_hash::FxHashMap;
use serde::Deserialize;

use crate::record::{BjTime, Claim, Malformed, MedType, Reason, Role};

/// A profile shipped with the program.
pub struct Shipped {
    /// Its name.
    pub name: &'static str,
    /// Its TOML text.
    pub toml: &'static str,
}

/// The profiles compiled into the binary; `national-2024` is the default.
pub const SHIPPED: [Shipped; 3] = [
    Shipped { name: "national-2024", toml: include_str!("../profiles/national-2024.toml") },
    Shipped { name: "huaian-2020", toml: include_str!("../profiles/huaian-2020.toml") },
    Shipped { name: "lanzhou-2014", toml: include_str!("../profiles/lanzhou-2014.toml") },
];

/// The default profile's name.
pub const DEFAULT: &str = "national-2024";

/// What a profile does with practitioner codes that are not of a national form. Whatever it says, the
/// status periods of a person the table knows under the code are read (rules.md, "Local ids").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LegacyCodes {
    /// Look them up like any code (legal legacy ids), and count them.
    Lookup,
    /// Treat them as unregistered: check 4 fails with `PRACTITIONER_UNREGISTERED`.
    Unregistered,
    /// Local ids during migration: follow the mapping table (institution, local id → national code)
    /// and check the mapped person; an id with no mapping at the service time fails check 4 with
    /// `PRACTITIONER_CODE_UNMAPPED`.
    Map,
}

/// Whether a failed check rejects the line or is only warned about (rules.md, "Enforcement").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enforcement {
    /// The failed check rejects the line (the default).
    Enforce,
    /// The line is accepted and the decision says what it would have been rejected for — for lines
    /// served before `until` (`BjTime::MAX`: until the profile is changed); from `until` on, enforced.
    Warn {
        /// The first service time at which the reason is enforced.
        until: BjTime,
    },
}

/// Retail-pharmacy purchases (records.md, `med_type` 41): with a `P` institution, the lines on which
/// the profile's pharmacist field is checked (rules.md, "Roles").
const RETAIL_PHARMACY_MED_TYPE: MedType = MedType(41);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: String,
    #[serde(default)]
    title: String,
    emergency_med_types: Vec<String>,
    emergency_overrides: Vec<String>,
    legacy_codes: LegacyCodes,
    /// The person code fields checked, in order.
    #[serde(default)]
    roles: Option<Vec<String>>,
    /// The pharmacist's code field, checked on retail-pharmacy lines.
    #[serde(default)]
    pharmacist: Option<String>,
    /// Reasons only warned about: `"warn"`, `"enforce"`, or `{ warn_until = "yyyy-MM-dd[ HH:mm:ss]" }`.
    #[serde(default)]
    enforcement: FxHashMap<String, toml::Value>,
    rules: FxHashMap<String, String>,
    #[serde(default)]
    override_rules: FxHashMap<String, String>,
    /// Scoring rules (scoring.md); read by the scoring engine, kept raw here.
    #[serde(default)]
    scoring: Option<toml::Value>,
}

/// A validated profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Its name, as decisions record it.
    pub name: String,
    /// A human title.
    pub title: String,
    emergency_med_types: Vec<MedType>,
    overridable: [bool; Reason::COUNT],
    enforcement: [Enforcement; Reason::COUNT],
    rules: [String; Reason::COUNT],
    override_rules: [String; Reason::COUNT],
    roles: Vec<Role>,
    pharmacist: Option<Role>,
    /// Treatment of legacy practitioner codes.
    pub legacy_codes: LegacyCodes,
    /// The raw `[scoring]` table, if the profile has one.
    pub scoring: Option<toml::Value>,
}

/// Why a profile was refused; names the setting.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// Not valid TOML, or an unknown or missing key.
    #[error("profile is not valid: {0}")]
    Toml(String),
    /// A reason name that rules.md does not define.
    #[error("profile setting `{setting}`: unknown reason `{reason}` (known: {known})")]
    UnknownReason {
        /// The setting.
        setting: String,
        /// The name.
        reason: String,
        /// The known names.
        known: String,
    },
    /// A medical type that is not a code.
    #[error("profile setting `emergency_med_types`: `{0}` is not a medical-type code (digits)")]
    MedType(String),
    /// A reason with no citation.
    #[error("profile setting `{0}`: missing; every decision must cite its article")]
    MissingRule(String),
    /// A reason that cannot be overridden.
    #[error("profile setting `emergency_overrides`: `{0}` is not a failed check and cannot be overridden")]
    NotOverridable(String),
    /// A value a setting does not allow; names the setting and says what it allows.
    #[error("profile setting `{setting}`: {why}")]
    Invalid {
        /// The setting.
        setting: String,
        /// Why, and what is allowed.
        why: String,
    },
    /// No such shipped profile.
    #[error(
        "no shipped profile named `{0}` (shipped: national-2024, huaian-2020, lanzhou-2014); pass a file path to load your own"
    )]
    UnknownName(String),
}

fn reason(name: &str, setting: &str) -> Result<Reason, ProfileError> {
    Reason::from_name(name).ok_or_else(|| ProfileError::UnknownReason {
        setting: setting.to_owned(),
        reason: name.to_owned(),
        known: Reason::ALL.map(Reason::as_str).join(", "),
    })
}

impl Profile {
    /// Parses and validates a profile's TOML text.
    pub fn from_toml(text: &str) -> Result<Profile, ProfileError> {
        let file: ProfileFile = toml::from_str(text).map_err(|e| ProfileError::Toml(e.to_string()))?;
        let mut emergency_med_types = file
            .emergency_med_types
            .iter()
            .map(|m| MedType::parse(m.trim()).ok_or_else(|| ProfileError::MedType(m.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        emergency_med_types.sort_unstable();
        emergency_med_types.dedup();

        let mut overridable = [false; Reason::COUNT];
        for name in &file.emergency_overrides {
            let r = reason(name, "emergency_overrides")?;
            if !Reason::CHECKS.contains(&r) {
                return Err(ProfileError::NotOverridable(name.clone()));
            }
            overridable[r.index()] = true;
        }

        let mut enforcement = [Enforcement::Enforce; Reason::COUNT];
        for (name, value) in &file.enforcement {
            let setting = format!("enforcement.{name}");
            let r = reason(name, &setting)?;
            if !Reason::CHECKS.contains(&r) {
                return Err(ProfileError::Invalid {
                    setting,
                    why: "not a failed check; only checks can be warned".into(),
                });
            }
            enforcement[r.index()] = parse_enforcement(value, &setting)?;
        }

        let mut rules: [String; Reason::COUNT] = Default::default();
        for (name, text) in &file.rules {
            rules[reason(name, &format!("rules.{name}"))?.index()] = text.clone();
        }
        // `PRACTITIONER_CODE_UNMAPPED` is new; a profile that maps no local ids never gives it, so older
        // profile files stay valid: it cites check 4's article unless the profile says otherwise.
        let unmapped = Reason::PractitionerCodeUnmapped.index();
        if file.legacy_codes != LegacyCodes::Map && rules[unmapped].trim().is_empty() {
            rules[unmapped] = rules[Reason::PractitionerUnregistered.index()].clone();
        }
        for r in Reason::ALL.iter().filter(|r| **r != Reason::EmergencyOverride) {
            if rules[r.index()].trim().is_empty() {
                return Err(ProfileError::MissingRule(format!("rules.{r}")));
            }
        }

        let mut override_rules: [String; Reason::COUNT] = Default::default();
        for (name, text) in &file.override_rules {
            let r = reason(name, &format!("override_rules.{name}"))?;
            override_rules[r.index()] = text.clone();
        }
        for r in Reason::CHECKS {
            if overridable[r.index()] && override_rules[r.index()].trim().is_empty() {
                return Err(ProfileError::MissingRule(format!("override_rules.{r}")));
            }
        }

        let role = |name: &str, setting: &str| {
            Role::from_field(name.trim()).ok_or_else(|| ProfileError::Invalid {
                setting: setting.to_owned(),
                why: format!(
                    "`{name}` is not a person code field claimgate reads (known: {})",
                    Role::ALL.map(Role::field).join(", ")
                ),
            })
        };
        let roles = match &file.roles {
            None => vec![Role::Billing],
            Some(list) => list.iter().map(|n| role(n, "roles")).collect::<Result<Vec<_>, _>>()?,
        };
        if !roles.contains(&Role::Billing) {
            return Err(ProfileError::Invalid {
                setting: "roles".into(),
                why: "must list `bilg_dr_codg`: the billing practitioner is always checked".into(),
            });
        }
        if let Some(dup) = roles.iter().enumerate().find(|(i, r)| roles[..*i].contains(r)) {
            return Err(ProfileError::Invalid { setting: "roles".into(), why: format!("`{}` is listed twice", dup.1) });
        }
        let pharmacist = file.pharmacist.as_deref().map(|n| role(n, "pharmacist")).transpose()?;
        if let Some(p) = pharmacist
            && roles.contains(&p)
        {
            return Err(ProfileError::Invalid {
                setting: "pharmacist".into(),
                why: format!("`{p}` is already in `roles`, checked on every line"),
            });
        }

        Ok(Profile {
            name: file.name,
            title: file.title,
            emergency_med_types,
            overridable,
            enforcement,
            rules,
            override_rules,
            roles,
            pharmacist,
            legacy_codes: file.legacy_codes,
            scoring: file.scoring,
        })
    }

    /// A shipped profile by name.
    pub fn shipped(name: &str) -> Result<Profile, ProfileError> {
        let s = SHIPPED.iter().find(|s| s.name == name).ok_or_else(|| ProfileError::UnknownName(name.to_owned()))?;
        Profile::from_toml(s.toml)
    }

    /// Is this medical type an emergency under this profile?
    #[inline]
    pub fn is_emergency_med_type(&self, m: MedType) -> bool {
        self.emergency_med_types.contains(&m)
    }

    /// The emergency medical types.
    pub fn emergency_med_types(&self) -> &[MedType] {
        &self.emergency_med_types
    }

    /// May an emergency pass this failed check?
    #[inline]
    pub fn overridable(&self, r: Reason) -> bool {
        self.overridable[r.index()]
    }

    /// The article a decision with this reason cites.
    #[inline]
    pub fn rule(&self, r: Reason) -> &str {
        &self.rules[r.index()]
    }

    /// The article an override of this reason cites.
    #[inline]
    pub fn override_rule(&self, r: Reason) -> &str {
        &self.override_rules[r.index()]
    }

    /// How a failed check with this reason is enforced.
    pub fn enforcement(&self, r: Reason) -> Enforcement {
        self.enforcement[r.index()]
    }

    /// Is a failed check with this reason only warned about for a line served at `t`?
    #[inline]
    pub fn warned(&self, r: Reason, t: BjTime) -> bool {
        match self.enforcement[r.index()] {
            Enforcement::Enforce => false,
            Enforcement::Warn { until } => t < until,
        }
    }

    /// The person code fields checked on every line, in order.
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// The pharmacist's code field, checked on retail-pharmacy lines.
    pub fn pharmacist(&self) -> Option<Role> {
        self.pharmacist
    }

    /// The roles checked on this line, in order: the profile's roles, then the pharmacist's field on a
    /// retail-pharmacy line (a `P` institution, or `med_type` 41).
    #[inline]
    pub fn roles_for<'s>(&'s self, claim: &Claim<'_>) -> impl Iterator<Item = Role> + 's {
        let retail = claim.fixmedins_code.is_pharmacy() || claim.med_type == RETAIL_PHARMACY_MED_TYPE;
        self.roles.iter().copied().chain(self.pharmacist.filter(|_| retail))
    }

    /// Check 0 for the person fields this profile reads on this line: each is absent or a well-formed
    /// code; a present, malformed one makes the line a dead letter (rules.md, "Roles").
    #[inline]
    pub fn check_fields(&self, claim: &Claim<'_>) -> Result<(), Malformed> {
        if self.roles.len() == 1 && self.pharmacist.is_none() {
            // The billing code was checked by the parser.
            return Ok(());
        }
        self.roles_for(claim).try_for_each(|r| claim.check_role(r))
    }
}

/// Reads an `[enforcement]` value: `"enforce"`, `"warn"`, or `{ warn_until = "yyyy-MM-dd[ HH:mm:ss]" }`.
fn parse_enforcement(value: &toml::Value, setting: &str) -> Result<Enforcement, ProfileError> {
    let invalid = |why: String| ProfileError::Invalid { setting: setting.to_owned(), why };
    let expected = "expected \"enforce\", \"warn\" or { warn_until = \"yyyy-MM-dd[ HH:mm:ss]\" }";
    match value {
        toml::Value::String(s) if s == "enforce" => Ok(Enforcement::Enforce),
        toml::Value::String(s) if s == "warn" => Ok(Enforcement::Warn { until: BjTime::MAX }),
        toml::Value::Table(t) => {
            if let Some(k) = t.keys().find(|k| *k != "warn_until") {
                return Err(invalid(format!("unknown key `{k}`; {expected}")));
            }
            let text = match t.get("warn_until") {
                Some(toml::Value::String(s)) => s.trim(),
                // TOML dates written bare (`warn_until = 2027-01-01`) arrive as datetimes.
                Some(toml::Value::Datetime(d)) => return date_value(&d.to_string()).map_err(invalid),
                _ => return Err(invalid(expected.into())),
            };
            date_value(text).map_err(invalid)
        }
        _ => Err(invalid(expected.into())),
    }
}

fn date_value(text: &str) -> Result<Enforcement, String> {
    let until = BjTime::parse(text).map_err(|e| format!("`{text}`: {e}"))?;
    Ok(Enforcement::Warn { until })
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_profiles_load() {
        for s in SHIPPED {
            let p = Profile::shipped(s.name).unwrap();
            assert_eq!(p.name, s.name);
            assert!(p.is_emergency_med_type(MedType(13)) && p.is_emergency_med_type(MedType(24)));
            assert!(!p.is_emergency_med_type(MedType(11)));
        }
    }

    /// rules.md, "Policy profiles": every cell of the overridable rows.
    #[test]
    fn overridable_matrix_matches_rules_md() {
        use Reason::*;
        let table: [(&str, [bool; 7]); 3] = [
            // inst term, inst susp, dept susp, unregistered, not here, terminated, suspended
            ("national-2024", [true, true, true, true, true, false, true]),
            ("huaian-2020", [true, true, true, true, true, false, false]),
            ("lanzhou-2014", [false, false, false, false, false, false, false]),
        ];
        let checks = [
            InstitutionTerminated,
            InstitutionSuspended,
            DepartmentSuspended,
            PractitionerUnregistered,
            PractitionerNotRegisteredHere,
            PractitionerTerminated,
            PractitionerSuspended,
        ];
        for (name, row) in table {
            let p = Profile::shipped(name).unwrap();
            for (r, want) in checks.iter().zip(row) {
                assert_eq!(p.overridable(*r), want, "{name} {r}");
            }
        }
    }

    fn edited(from: &str, to: &str) -> Result<Profile, ProfileError> {
        let text = SHIPPED[0].toml.replace(from, to);
        assert_ne!(text, SHIPPED[0].toml, "edit did not apply");
        Profile::from_toml(&text)
    }

    #[test]
    fn refuses_an_unknown_reason() {
        let e = edited("\"PRACTITIONER_SUSPENDED\",  ", "\"PRACTITIONER_PAUSED\",  ").unwrap_err();
        assert!(e.to_string().contains("emergency_overrides") && e.to_string().contains("PRACTITIONER_PAUSED"), "{e}");
    }

    #[test]
    fn refuses_a_malformed_emergency_set() {
        let e = edited(r#"["13", "24"]"#, r#"["13", "急诊"]"#).unwrap_err();
        assert_eq!(e, ProfileError::MedType("急诊".into()));
        assert!(edited(r#"["13", "24"]"#, r#""13""#).is_err());
    }

    #[test]
    fn refuses_unknown_keys_and_missing_citations() {
        assert!(edited("legacy_codes = \"lookup\"", "legacy_codes = \"lookup\"\ncolour = 1").is_err());
        let e = edited("OK = \"national-2024 Art. 9(6)1\"\n", "").unwrap_err();
        assert_eq!(e, ProfileError::MissingRule("rules.OK".into()));
        let e = edited("PRACTITIONER_SUSPENDED = \"national-2024 Art. 9(6)2 (急诊、抢救等特殊情形除外)\"\n", "")
            .unwrap_err();
        assert_eq!(e, ProfileError::MissingRule("override_rules.PRACTITIONER_SUSPENDED".into()));
        assert!(edited("\"INSTITUTION_TERMINATED\",            #", "\"OK\",            #").is_err());
    }

    /// rules.md, "Regions, roles, enforcement": the new settings are checked like the old ones.
    #[test]
    fn refuses_bad_roles_pharmacist_and_enforcement_naming_the_setting() {
        let top = |extra: &str| edited("legacy_codes = \"lookup\"", &format!("legacy_codes = \"lookup\"\n{extra}"));
        let tail = |extra: &str| Profile::from_toml(&format!("{}\n{extra}", SHIPPED[0].toml));
        let cases: [(Result<Profile, ProfileError>, &str); 10] = [
            (top("roles = [\"orders_dr_code\"]"), "`roles`"),
            (top("roles = [\"bilg_dr_codg\", \"nurse_code\"]"), "nurse_code"),
            (top("roles = [\"bilg_dr_codg\", \"bilg_dr_codg\"]"), "twice"),
            (top("pharmacist = \"bilg_dr_codg\""), "`pharmacist`"),
            (top("pharmacist = \"phar_name\""), "`pharmacist`"),
            (tail("[enforcement]\nPRACTITIONER_PAUSED = \"warn\""), "PRACTITIONER_PAUSED"),
            (tail("[enforcement]\nOK = \"warn\""), "enforcement.OK"),
            (tail("[enforcement]\nPRACTITIONER_SUSPENDED = \"soon\""), "enforcement.PRACTITIONER_SUSPENDED"),
            (tail("[enforcement]\nPRACTITIONER_SUSPENDED = { warn_until = \"2026-02-30\" }"), "2026-02-30"),
            (tail("[enforcement]\nPRACTITIONER_SUSPENDED = { until = \"2026-01-01\" }"), "unknown key `until`"),
        ];
        for (result, needle) in cases {
            let e = result.expect_err(needle).to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let p = top("roles = [\"orders_dr_code\", \"bilg_dr_codg\"]\npharmacist = \"phar_prac_cert_no\"").unwrap();
        assert_eq!(p.roles(), [Role::Orders, Role::Billing]);
        let p = tail("[enforcement]\nPRACTITIONER_SUSPENDED = \"enforce\"\nDEPARTMENT_SUSPENDED = \"warn\"").unwrap();
        assert_eq!(p.enforcement(Reason::PractitionerSuspended), Enforcement::Enforce);
        assert_eq!(p.enforcement(Reason::DepartmentSuspended), Enforcement::Warn { until: BjTime::MAX });
    }

    /// Profiles written before local ids (a user's copy of an older national-2024) stay valid: they map
    /// nothing, and `PRACTITIONER_CODE_UNMAPPED` cites check 4's article.
    #[test]
    fn profiles_without_the_unmapped_citation_stay_valid() {
        for s in SHIPPED {
            let p = Profile::shipped(s.name).unwrap();
            assert_eq!(p.rule(Reason::PractitionerCodeUnmapped), p.rule(Reason::PractitionerUnregistered));
            assert_eq!(p.roles(), [Role::Billing]);
            assert_eq!(p.pharmacist(), None);
            assert!(Reason::CHECKS.iter().all(|r| p.enforcement(*r) == Enforcement::Enforce));
        }
    }

    #[test]
    fn unknown_shipped_name_is_refused() {
        assert!(matches!(Profile::shipped("shanghai"), Err(ProfileError::UnknownName(_))));
    }
}
