//! A profile's scoring rules: the `[scoring]` section of `profiles/*.toml`, typed and checked.
//!
//! Every region-specific number the engine uses — cycle, bands, same-case rule, thresholds and their
//! actions, notice period, restore requirement, repair limits, bans, cascades, institution ratios — is
//! read from here, each with the article it rests on. The engine has no branch on a profile's name.
//!
//! `file` reads the TOML section into these types and checks it.

mod file;

use serde::Deserialize;

use super::calendar::{Calendar, CalendarError};
use super::catalogue::{Catalogue, CatalogueError};
use crate::record::Status;

/// Why a `[scoring]` section was refused; names the setting.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// The profile has no `[scoring]` section.
    #[error("profile {0} has no [scoring] section: it cannot score findings")]
    Missing(String),
    /// Unknown or missing key, wrong type.
    #[error("profile {profile} [scoring]: {message}")]
    Invalid {
        /// The profile.
        profile: String,
        /// What is wrong.
        message: String,
    },
    /// The catalogue it names.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    /// The calendar it names.
    #[error(transparent)]
    Calendar(#[from] CalendarError),
}

/// A band of points, `(low, high)` (Qinghai Art. 10(1): 1-3, 4-6, 7-9, 10-12).
pub type Band = (u32, u32);

/// How points are grouped in time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CycleKind {
    /// The natural year; totals reset on 1 January.
    Year,
    /// Consecutive service agreements of this many months from the person's first registration.
    Agreement {
        /// Length of one agreement.
        months: u32,
    },
}

/// The cycle and its article.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cycle {
    /// Year or agreement.
    pub kind: CycleKind,
    /// The article.
    pub article: String,
}

/// What a finding's `points` may be, given its responsibility.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointsRule {
    /// Responsibility fixes the points (low / middle / high of the band); other points need `adjust`
    /// (Qinghai Art. 10(7)4).
    Exact,
    /// Responsibility only gives the points when the finding names none; any points in the band are
    /// allowed.
    Default,
}

/// How findings of one case combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SameCase {
    /// Different items add up; one item counts once, at its highest points (Qinghai Art. 10(1)).
    HighestPerItem,
    /// Only the case's highest item counts, once (Huai'an Art. 18).
    HighestPerCase,
}

/// A notice period before a suspension starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Working days between the decision and the start.
    pub working_days: u32,
    /// The holiday calendar.
    pub calendar: Calendar,
    /// The article.
    pub article: String,
}

/// How a threshold suspension ends.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restore {
    /// True: only with an approved `restore` (Qinghai Art. 18, Huai'an Art. 25); false: at its planned
    /// end (Lanzhou Art. 17).
    pub required: bool,
    /// The article.
    pub article: String,
}

/// What crossing a threshold does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A flag in the report; no change of status.
    Flag(Flag),
    /// A suspension of `months` calendar months; a finding may name up to `max_months`.
    Suspend {
        /// Default length.
        months: u32,
        /// Longest length a finding's `suspend_months` may ask for.
        max_months: u32,
    },
    /// A termination (disqualification).
    Terminate,
}

/// Flags the report carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// 重点监管对象.
    KeyOversight,
    /// 警示约谈 / 约谈、警告.
    WarningInterview,
    /// 失信人员.
    Untrustworthy,
}

impl Flag {
    /// Words for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Flag::KeyOversight => "key oversight (重点监管)",
            Flag::WarningInterview => "warning interview (警示约谈)",
            Flag::Untrustworthy => "untrustworthy (失信)",
        }
    }
}

/// A threshold on a cycle's total.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Threshold {
    /// The total that reaches it.
    pub at: u32,
    /// It also needs the `consecutive_cycles - 1` cycles before to have reached `at` (Huai'an
    /// Art. 22(4): 9 in each of three consecutive years); 1 for a plain threshold.
    pub consecutive_cycles: u32,
    /// What it does.
    pub action: Action,
    /// The article.
    pub article: String,
}

/// Bans on registering again after a termination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    /// Years by the person's count of terminations: first, second, …; the last repeats.
    pub years: Vec<u32>,
    /// Years when a single case gave the termination's points (Qinghai Art. 11(3)).
    pub one_shot_years: Option<u32>,
    /// The article.
    pub article: String,
}

/// Limits on training repairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Training {
    /// Fewest points one training removes.
    pub min: u32,
    /// Most points one training removes.
    pub max: u32,
    /// Trainings counted per cycle.
    pub per_cycle: u32,
}

/// Limits on activity repairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Activity {
    /// Points one activity removes.
    pub points: u32,
    /// Most points activities remove per cycle.
    pub max_per_cycle: u32,
}

/// Score repair (修复).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repair {
    /// Training, if allowed.
    pub training: Option<Training>,
    /// Activities, if allowed.
    pub activity: Option<Activity>,
    /// Months a repair takes off a running suspension or a termination's ban.
    pub shortens_months: u32,
    /// A termination from a single case cannot be repaired.
    pub one_shot_unrepairable: bool,
    /// The article.
    pub article: String,
}

/// Who an institution's suspension or termination reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CascadeScope {
    /// The codes the event lists as `responsible` (Qinghai Art. 9(6)6).
    Responsible,
    /// Everyone registered at the institution on that day (Huai'an Art. 27(5)).
    Registered,
}

/// Institution cascades.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cascade {
    /// Who.
    pub scope: CascadeScope,
    /// Only persons of these kinds (`doctor`, `nurse`, `pharmacist`, `technician`); `None`: everyone
    /// (Huai'an Art. 2 governs doctors only; Qinghai Art. 2 every professional who bills the fund).
    pub kinds: Option<Vec<String>>,
    /// The article.
    pub article: String,
}

/// The kinds of person (`kind` in practitioner records) a scoring rule may be limited to.
pub const KINDS: [&str; 4] = ["doctor", "nurse", "pharmacist", "technician"];

/// Over what time an institution ratio counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RatioPeriod {
    /// The natural year (Qinghai Art. 12: 一个自然年度内; Huai'an Art. 24: 当年).
    Year,
    /// Consecutive agreement periods of `months` from `from` (Lanzhou Art. 22: 一个协议期内).
    Agreement {
        /// Length of one agreement.
        months: u32,
        /// The start of one agreement period; the others follow and precede it every `months`.
        from: chrono::NaiveDate,
    },
}

/// What an institution ratio counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RatioCount {
    /// Every period (人次).
    PersonTimes,
    /// Distinct persons.
    Persons,
}

/// The small-institution rule of a ratio level: under `below` staff, `persons` reach it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Small {
    /// Staff count under which the rule applies.
    pub below: u32,
    /// Persons that reach the level.
    pub persons: u32,
}

/// One level of an institution ratio.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatioLevel {
    /// Percent of registered staff.
    pub percent: u32,
    /// True: more than `percent` (超过); false: `percent` or more (达到).
    #[serde(default)]
    pub strict: bool,
    /// Small-institution rules; the one with the smallest `below` above the staff count applies.
    #[serde(default)]
    pub small: Vec<Small>,
    /// What the level means.
    pub flag: String,
}

/// Institution ratio flags, per natural year or agreement period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ratio {
    /// Which statuses count.
    pub statuses: Vec<Status>,
    /// Periods or persons.
    pub count: RatioCount,
    /// Only persons of these kinds count, in the staff and among the counted (Huai'an Art. 24 and
    /// Lanzhou Art. 22 rate doctors); `None`: every registered person (Qinghai Art. 12).
    pub kinds: Option<Vec<String>>,
    /// The time the ratio counts over.
    pub period: RatioPeriod,
    /// Ascending levels.
    pub levels: Vec<RatioLevel>,
    /// The article.
    pub article: String,
}

/// A profile's scoring rules, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scoring {
    /// The profile's name, for bases and reports.
    pub profile: String,
    /// The items.
    pub catalogue: Catalogue,
    /// The cycle.
    pub cycle: Cycle,
    /// The bands, ascending (for `adjust` across bands).
    pub bands: Vec<Band>,
    /// Responsibility and points, with the article.
    pub points_rule: (PointsRule, String),
    /// The article allowing `adjust` (lighter / heavier); `None`: adjust is refused.
    pub adjust: Option<String>,
    /// Same-case rule, with the article.
    pub same_case: (SameCase, String),
    /// Notice before a threshold suspension starts.
    pub notice: Option<Notice>,
    /// Whether a threshold suspension ends only with a `restore` event, and the article saying so.
    pub restore: Restore,
    /// The article for `clear`; `None`: `clear` events are refused.
    pub clear: Option<String>,
    /// The article for appeals (`revoke`).
    pub appeal: Option<String>,
    /// Thresholds, ascending.
    pub thresholds: Vec<Threshold>,
    /// Bans after termination.
    pub ban: Option<Ban>,
    /// Repair; `None`: `repair` events are refused.
    pub repair: Option<Repair>,
    /// Institution cascades; `None`: institution events change no practitioner.
    pub cascade: Option<Cascade>,
    /// Institution ratio flags.
    pub ratio: Option<Ratio>,
}

impl Scoring {
    /// The longest suspension a finding's `suspend_months` may ask for; `None` when no threshold lets
    /// the length vary.
    pub fn max_suspend_months(&self) -> Option<u32> {
        self.thresholds
            .iter()
            .filter_map(|t| match t.action {
                Action::Suspend { months, max_months } if max_months > months => Some(max_months),
                _ => None,
            })
            .max()
    }

    /// The band below and the band above `(low, high)`, if the profile lists them.
    pub fn neighbours(&self, band: Band) -> (Option<Band>, Option<Band>) {
        let at = self.bands.iter().position(|b| *b == band);
        match at {
            Some(i) => (i.checked_sub(1).map(|j| self.bands[j]), self.bands.get(i + 1).copied()),
            None => (None, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Profile, SHIPPED};

    #[test]
    fn shipped_profiles_have_valid_scoring_sections() {
        for s in SHIPPED {
            let p = Profile::shipped(s.name).unwrap();
            let r = Scoring::from_profile(&p).unwrap();
            assert_eq!(r.catalogue.profile, s.name);
            assert!(!r.thresholds.is_empty());
        }
    }

    fn edited(from: &str, to: &str) -> Result<Scoring, RulesError> {
        let text = SHIPPED[0].toml.replace(from, to);
        assert_ne!(text, SHIPPED[0].toml, "edit did not apply");
        Scoring::from_profile(&Profile::from_toml(&text).unwrap())
    }

    #[test]
    fn refuses_unknown_keys_and_bad_thresholds() {
        let e = edited("catalogue = \"national-2024\"", "catalogue = \"national-2024\"\ncolour = 1").unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        assert!(edited("catalogue = \"national-2024\"", "catalogue = \"shanghai\"").is_err());
        let e = edited("action = \"terminate\"", "action = \"banish\"").unwrap_err();
        assert!(e.to_string().contains("threshold["), "{e}");
        assert!(edited("max_months = 6", "max_months = 0").is_err());
    }

    /// Who a cascade reaches and whom a ratio rates, over what period: Huai'an Art. 2, 24, 27(5); Lanzhou
    /// Art. 2, 22; Qinghai Art. 2, 12.
    #[test]
    fn kinds_and_ratio_periods_are_read_and_checked() {
        let r = |p: &str| Scoring::from_profile(&Profile::shipped(p).unwrap()).unwrap();
        let doctors = Some(vec!["doctor".to_owned()]);
        assert_eq!(r("huaian-2020").cascade.unwrap().kinds, doctors);
        assert_eq!(r("huaian-2020").ratio.unwrap().kinds, doctors);
        let lz = r("lanzhou-2014").ratio.unwrap();
        assert_eq!(lz.kinds, doctors);
        let from = chrono::NaiveDate::from_ymd_opt(2014, 5, 1).unwrap();
        assert_eq!(lz.period, RatioPeriod::Agreement { months: 24, from });
        let n = r("national-2024");
        assert_eq!((n.cascade.unwrap().kinds, n.ratio.as_ref().unwrap().kinds.clone()), (None, None));
        assert_eq!(n.ratio.unwrap().period, RatioPeriod::Year);
        let e = edited("scope = \"responsible\"", "scope = \"responsible\"\nkinds = [\"surgeon\"]").unwrap_err();
        assert!(e.to_string().contains("cascade.kinds") && e.to_string().contains("surgeon"), "{e}");
        let e = edited("count = \"person_times\"", "count = \"person_times\"\nperiod = { kind = \"agreement\" }")
            .unwrap_err();
        assert!(e.to_string().contains("institution_ratio.period"), "{e}");
    }

    #[test]
    fn neighbouring_bands_qinghai_10_7_4() {
        let r = Scoring::from_profile(&Profile::shipped("national-2024").unwrap()).unwrap();
        assert_eq!(r.neighbours((1, 3)), (None, Some((4, 6))));
        assert_eq!(r.neighbours((7, 9)), (Some((4, 6)), Some((10, 12))));
        assert_eq!(r.neighbours((10, 12)), (Some((7, 9)), None));
        assert_eq!(r.max_suspend_months(), Some(6));
    }
}
