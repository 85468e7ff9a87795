//! The `[scoring]` section as written in a profile's TOML, and its checks: unknown keys, actions and
//! their fields, ascending thresholds and levels, bans only with a termination, repair limits, every
//! item's band among the profile's bands when `adjust` is allowed.

use serde::Deserialize;

use super::{
    Action, Activity, Ban, Calendar, Cascade, CascadeScope, Catalogue, Cycle, CycleKind, Flag, KINDS, Notice,
    PointsRule, Ratio, RatioCount, RatioLevel, RatioPeriod, Repair, Restore, RulesError, SameCase, Scoring, Threshold,
    Training,
};
use crate::profile::Profile;
use crate::record::Status;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CycleFile {
    kind: String,
    #[serde(default)]
    months: Option<u32>,
    article: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ruled<T> {
    rule: T,
    article: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Article {
    article: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoticeFile {
    working_days: u32,
    calendar: String,
    article: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdFile {
    at: u32,
    #[serde(default)]
    consecutive_cycles: Option<u32>,
    action: String,
    #[serde(default)]
    flag: Option<Flag>,
    #[serde(default)]
    months: Option<u32>,
    #[serde(default)]
    max_months: Option<u32>,
    article: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BanFile {
    years: Vec<u32>,
    #[serde(default)]
    one_shot_years: Option<u32>,
    article: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepairFile {
    #[serde(default)]
    training: Option<Training>,
    #[serde(default)]
    activity: Option<Activity>,
    shortens_months: u32,
    #[serde(default)]
    one_shot_unrepairable: bool,
    article: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CascadeFile {
    scope: CascadeScope,
    #[serde(default)]
    kinds: Option<Vec<String>>,
    article: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RatioFile {
    statuses: Vec<Status>,
    count: RatioCount,
    #[serde(default)]
    kinds: Option<Vec<String>>,
    #[serde(default)]
    period: Option<RatioPeriodFile>,
    levels: Vec<RatioLevel>,
    article: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RatioPeriodFile {
    kind: String,
    #[serde(default)]
    months: Option<u32>,
    #[serde(default)]
    from: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScoringFile {
    catalogue: String,
    cycle: CycleFile,
    #[serde(default)]
    bands: Vec<[u32; 2]>,
    responsibility: Ruled<PointsRule>,
    #[serde(default)]
    adjust: Option<Article>,
    same_case: Ruled<SameCase>,
    #[serde(default)]
    notice: Option<NoticeFile>,
    restore: Restore,
    #[serde(default)]
    clear: Option<Article>,
    #[serde(default)]
    appeal: Option<Article>,
    threshold: Vec<ThresholdFile>,
    #[serde(default)]
    ban: Option<BanFile>,
    #[serde(default)]
    repair: Option<RepairFile>,
    #[serde(default)]
    cascade: Option<CascadeFile>,
    #[serde(default)]
    institution_ratio: Option<RatioFile>,
}

/// A `kinds` list: known words, at least one.
fn check_kinds(kinds: Option<Vec<String>>, setting: &str) -> Result<Option<Vec<String>>, String> {
    let Some(list) = kinds else { return Ok(None) };
    if list.is_empty() {
        return Err(format!("{setting}: name at least one kind, or leave it out for every person"));
    }
    if let Some(k) = list.iter().find(|k| !KINDS.contains(&k.as_str())) {
        return Err(format!("{setting}: `{k}` is not a kind (known: {})", KINDS.join(", ")));
    }
    Ok(Some(list))
}

impl Scoring {
    /// The scoring rules of a profile, with its catalogue and calendar (shipped ones, by name).
    pub fn from_profile(profile: &Profile) -> Result<Scoring, RulesError> {
        let value = profile.scoring.clone().ok_or_else(|| RulesError::Missing(profile.name.clone()))?;
        let invalid = |message: String| RulesError::Invalid { profile: profile.name.clone(), message };
        let f: ScoringFile = value.try_into().map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        let catalogue = Catalogue::shipped(&f.catalogue)?;

        let kind = match (f.cycle.kind.as_str(), f.cycle.months) {
            ("year", None) => CycleKind::Year,
            ("agreement", Some(m)) if m > 0 => CycleKind::Agreement { months: m },
            _ => {
                return Err(invalid(
                    "cycle: expected { kind = \"year\" } or { kind = \"agreement\", months = N }".into(),
                ));
            }
        };
        let bands: Vec<super::Band> = f.bands.iter().map(|[l, h]| (*l, *h)).collect();
        if bands.iter().any(|(l, h)| l > h) || bands.windows(2).any(|w| w[0].1 >= w[1].0) {
            return Err(invalid("bands: each band needs low <= high, in ascending order without overlap".into()));
        }
        if f.adjust.is_some()
            && let Some(i) = catalogue.items().find(|i| !bands.contains(&(i.low, i.high)))
        {
            return Err(invalid(format!("adjust needs every item's band in `bands`; {} is not", i.id)));
        }

        let mut thresholds = Vec::with_capacity(f.threshold.len());
        for (n, t) in f.threshold.iter().enumerate() {
            let at = |m: &str| invalid(format!("threshold[{n}] (at {}): {m}", t.at));
            let action = match (t.action.as_str(), t.flag, t.months, t.max_months) {
                ("flag", Some(flag), None, None) => Action::Flag(flag),
                ("suspend", None, Some(months), max) if months > 0 => {
                    let max_months = max.unwrap_or(months);
                    if max_months < months {
                        return Err(at("max_months is below months"));
                    }
                    Action::Suspend { months, max_months }
                }
                ("terminate", None, None, None) => Action::Terminate,
                _ => {
                    return Err(at(
                        "expected action = \"flag\" with flag, \"suspend\" with months [and max_months], or \"terminate\"",
                    ));
                }
            };
            let consecutive_cycles = t.consecutive_cycles.unwrap_or(1);
            if t.at == 0 || consecutive_cycles == 0 {
                return Err(at("at and consecutive_cycles must be at least 1"));
            }
            thresholds.push(Threshold { at: t.at, consecutive_cycles, action, article: t.article.clone() });
        }
        if thresholds.windows(2).any(|w| w[0].at > w[1].at) {
            return Err(invalid("thresholds must be in ascending order of `at`".into()));
        }
        let terminates = thresholds.iter().any(|t| t.action == Action::Terminate);

        let ban = match f.ban {
            Some(b) => {
                if b.years.is_empty() || !terminates {
                    return Err(invalid("ban: needs a terminate threshold and at least one entry in years".into()));
                }
                Some(Ban { years: b.years, one_shot_years: b.one_shot_years, article: b.article })
            }
            None => None,
        };
        let repair = match f.repair {
            Some(r) => {
                if r.training.is_some_and(|t| t.min == 0 || t.min > t.max || t.per_cycle == 0) {
                    return Err(invalid("repair.training: needs 1 <= min <= max and per_cycle >= 1".into()));
                }
                if r.activity.is_some_and(|a| a.points == 0 || a.max_per_cycle < a.points) {
                    return Err(invalid("repair.activity: needs 1 <= points <= max_per_cycle".into()));
                }
                Some(Repair {
                    training: r.training,
                    activity: r.activity,
                    shortens_months: r.shortens_months,
                    one_shot_unrepairable: r.one_shot_unrepairable,
                    article: r.article,
                })
            }
            None => None,
        };
        let notice = match f.notice {
            Some(n) => Some(Notice {
                working_days: n.working_days,
                calendar: Calendar::shipped(&n.calendar)?,
                article: n.article,
            }),
            None => None,
        };
        let ratio = match f.institution_ratio {
            Some(r) => {
                let ascending = r.levels.windows(2).all(|w| w[0].percent < w[1].percent);
                if r.levels.is_empty() || !ascending || r.levels.iter().any(|l| l.percent == 0 || l.percent > 100) {
                    return Err(invalid("institution_ratio.levels: 1 to 100 percent, ascending".into()));
                }
                if r.statuses.is_empty() {
                    return Err(invalid("institution_ratio.statuses: name at least one status".into()));
                }
                let period = match r.period {
                    None => RatioPeriod::Year,
                    Some(p) => match (p.kind.as_str(), p.months, p.from.as_deref().map(str::trim)) {
                        ("year", None, None) => RatioPeriod::Year,
                        ("agreement", Some(months), Some(from)) if months > 0 => {
                            let from = chrono::NaiveDate::parse_from_str(from, "%Y-%m-%d").map_err(|_| {
                                invalid(format!("institution_ratio.period.from: `{from}` is not a date (yyyy-MM-dd)"))
                            })?;
                            RatioPeriod::Agreement { months, from }
                        }
                        _ => {
                            return Err(invalid(
                                "institution_ratio.period: expected { kind = \"year\" } or { kind = \"agreement\", months = N, from = \"yyyy-MM-dd\" }".into(),
                            ));
                        }
                    },
                };
                let kinds = check_kinds(r.kinds, "institution_ratio.kinds").map_err(invalid)?;
                Some(Ratio {
                    statuses: r.statuses,
                    count: r.count,
                    kinds,
                    period,
                    levels: r.levels,
                    article: r.article,
                })
            }
            None => None,
        };

        Ok(Scoring {
            profile: profile.name.clone(),
            catalogue,
            cycle: Cycle { kind, article: f.cycle.article },
            bands,
            points_rule: (f.responsibility.rule, f.responsibility.article),
            adjust: f.adjust.map(|a| a.article),
            same_case: (f.same_case.rule, f.same_case.article),
            notice,
            restore: f.restore,
            clear: f.clear.map(|a| a.article),
            appeal: f.appeal.map(|a| a.article),
            thresholds,
            ban,
            repair,
            cascade: match f.cascade {
                Some(c) => Some(Cascade {
                    scope: c.scope,
                    kinds: check_kinds(c.kinds, "cascade.kinds").map_err(invalid)?,
                    article: c.article,
                }),
                None => None,
            },
            ratio,
        })
    }
}
