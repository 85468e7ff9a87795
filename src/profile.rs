//! Region policy profiles: which medical types are emergencies, which failed checks an emergency may
//! pass, and the article each decision cites. Profiles are data — TOML files under `profiles/`,
//! embedded in the binary and loadable from a user's file — never `if region == …` branches.

use std::fmt;

use rustc_hash::FxHashMap;
use serde::Deserialize;

use crate::record::{MedType, Reason};

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

/// What a profile does with practitioner codes that are not of a national form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LegacyCodes {
    /// Look them up like any code (legal legacy ids), and count them.
    Lookup,
    /// Treat them as unregistered.
    Unregistered,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: String,
    #[serde(default)]
    title: String,
    emergency_med_types: Vec<String>,
    emergency_overrides: Vec<String>,
    legacy_codes: LegacyCodes,
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
    overridable: [bool; 9],
    rules: [String; 9],
    override_rules: [String; 9],
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

        let mut overridable = [false; 9];
        for name in &file.emergency_overrides {
            let r = reason(name, "emergency_overrides")?;
            if !Reason::CHECKS.contains(&r) {
                return Err(ProfileError::NotOverridable(name.clone()));
            }
            overridable[r.index()] = true;
        }

        let mut rules: [String; 9] = Default::default();
        for (name, text) in &file.rules {
            rules[reason(name, &format!("rules.{name}"))?.index()] = text.clone();
        }
        for r in Reason::ALL.iter().filter(|r| **r != Reason::EmergencyOverride) {
            if rules[r.index()].trim().is_empty() {
                return Err(ProfileError::MissingRule(format!("rules.{r}")));
            }
        }

        let mut override_rules: [String; 9] = Default::default();
        for (name, text) in &file.override_rules {
            let r = reason(name, &format!("override_rules.{name}"))?;
            override_rules[r.index()] = text.clone();
        }
        for r in Reason::CHECKS {
            if overridable[r.index()] && override_rules[r.index()].trim().is_empty() {
                return Err(ProfileError::MissingRule(format!("override_rules.{r}")));
            }
        }

        Ok(Profile {
            name: file.name,
            title: file.title,
            emergency_med_types,
            overridable,
            rules,
            override_rules,
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

    #[test]
    fn unknown_shipped_name_is_refused() {
        assert!(matches!(Profile::shipped("shanghai"), Err(ProfileError::UnknownName(_))));
    }
}
