//! One ledger line: JSON object → typed [`Event`], with every check a single line allows — fields
//! present and well typed, codes and dates valid, the item in the catalogue, the points allowed by
//! the band, the responsibility and the adjustment, the event provided by the profile.

use chrono::NaiveDate;
use serde_json::{Map, Value};

use super::{Adjust, Event, EventKind, Finding, LedgerError, Problem, RepairMethod, Responsibility};
use crate::record::{BjTime, InstitutionCode, PractitionerCode, Status};
use crate::score::catalogue::Item;
use crate::score::rules::{PointsRule, Scoring};

struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn get(&self, field: &'static str) -> Option<&Value> {
        self.0.get(field).filter(|v| !v.is_null())
    }

    fn text(&self, field: &'static str) -> Result<Option<String>, Problem> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Err(Problem::Missing(field)),
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(Problem::Type { field, expected: "a string" }),
        }
    }

    fn required(&self, field: &'static str) -> Result<String, Problem> {
        self.text(field)?.ok_or(Problem::Missing(field))
    }

    /// A whole number, as a JSON number or a string (records.md: numbers may come as strings).
    fn number(&self, field: &'static str) -> Result<Option<u32>, Problem> {
        let bad = Problem::Type { field, expected: "a whole number" };
        let Some(v) = self.get(field) else { return Ok(None) };
        let parsed = match v {
            Value::Number(n) => {
                n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64))
            }
            Value::String(s) => {
                let s = s.trim();
                s.parse::<u64>().ok().or_else(|| s.strip_suffix(".0").and_then(|t| t.parse().ok()))
            }
            _ => None,
        };
        parsed.and_then(|n| u32::try_from(n).ok()).map(Some).ok_or(bad)
    }

    fn time(&self, field: &'static str) -> Result<Option<BjTime>, Problem> {
        let Some(text) = self.text(field)? else { return Ok(None) };
        BjTime::parse(&text).map(Some).map_err(|error| Problem::Date { field, text, error })
    }

    fn practitioner(&self, field: &'static str) -> Result<Option<PractitionerCode>, Problem> {
        let Some(text) = self.text(field)? else { return Ok(None) };
        PractitionerCode::parse(&text).map(Some).map_err(|error| Problem::Code { field: field.into(), text, error })
    }

    fn institution(&self, field: &'static str) -> Result<Option<InstitutionCode>, Problem> {
        let Some(text) = self.text(field)? else { return Ok(None) };
        InstitutionCode::parse(&text).map(Some).map_err(|error| Problem::Code { field: field.into(), text, error })
    }

    fn word<T>(&self, field: &'static str, known: &[(&str, T)], expected: &'static str) -> Result<Option<T>, Problem>
    where
        T: Copy,
    {
        let Some(text) = self.text(field)? else { return Ok(None) };
        known.iter().find(|(w, _)| *w == text).map(|(_, v)| Some(*v)).ok_or(Problem::Type { field, expected })
    }
}

/// The points of a finding: given, or from the responsibility; checked against the item's band, the
/// responsibility rule and the adjustment (Qinghai Art. 10(7)4).
///
/// With `adjust`, the finding must give its points and its responsibility `r`, whose standard points
/// are `s`. `lighter` allows the part of the band below `s` and the whole band below the item's band:
/// `[low of the band below (or the band's own low), s - 1]`. `heavier` allows `[s + 1, high of the band
/// above (or the band's own high)]`. So for a 7-9 item with main responsibility (9), lighter allows 4 to
/// 8; for general responsibility in the lowest band (1), lighter allows nothing and is refused.
pub fn resolve_points(
    rules: &Scoring,
    item: &Item,
    given: Option<u32>,
    responsibility: Option<Responsibility>,
    adjust: Option<Adjust>,
) -> Result<u32, Problem> {
    let (low, high) = (item.low, item.high);
    // Qinghai Art. 10(3)1, 10(4)1 (该人员负主要责任的): only a person with main responsibility is scored
    // under such an item. Points with no responsibility stand for the responsibility they are the
    // points of (Art. 10(7)4), so they must be main's too.
    if item.main_only {
        let main_only = || {
            Problem::Points(format!(
                "item {} ({}) applies only to the person with main responsibility (该人员负主要责任的): {} points in the band {low}-{high}",
                item.id,
                item.article,
                Responsibility::Main.points(item)
            ))
        };
        match (responsibility, given, adjust) {
            (Some(r), _, _) if r != Responsibility::Main => return Err(main_only()),
            (None, Some(p), None) if p != Responsibility::Main.points(item) => return Err(main_only()),
            _ => {}
        }
    }
    let Some(adjust) = adjust else {
        return match (given, responsibility) {
            (None, None) if item.is_fixed() => Ok(low),
            (None, None) => Err(Problem::Invalid(format!(
                "missing field `points` or `responsibility`: item {} has a band of {low}-{high} points",
                item.id
            ))),
            (None, Some(r)) => Ok(r.points(item)),
            (Some(p), _) if p < low || p > high => {
                Err(Problem::Points(format!("points {p} outside the band of item {}: {low}-{high}", item.id)))
            }
            // Art. 10(7)4: with no responsibility given, the points must be those of one.
            (Some(p), None)
                if rules.points_rule.0 == PointsRule::Exact
                    && ![Responsibility::General, Responsibility::Important, Responsibility::Main]
                        .iter()
                        .any(|r| r.points(item) == p) =>
            {
                Err(Problem::Points(format!(
                    "points {p} with no responsibility: {} gives {}, {} or {} in the band {low}-{high} of item {}; give the responsibility, and `adjust` for other points",
                    rules.points_rule.1,
                    Responsibility::General.points(item),
                    Responsibility::Important.points(item),
                    Responsibility::Main.points(item),
                    item.id
                )))
            }
            (Some(p), Some(r)) if rules.points_rule.0 == PointsRule::Exact && p != r.points(item) => {
                Err(Problem::Points(format!(
                    "points {p} with {} responsibility: {} gives {} in the band {low}-{high} of item {}; other points need `adjust`",
                    r.as_str(),
                    rules.points_rule.1,
                    r.points(item),
                    item.id
                )))
            }
            (Some(p), _) => Ok(p),
        };
    };
    let Some(article) = &rules.adjust else {
        return Err(Problem::Refused(format!("field `adjust`: profile {} has no lighter/heavier rule", rules.profile)));
    };
    let r = responsibility.ok_or(Problem::Invalid(
        "missing field `responsibility`: `adjust` moves from the points of the responsibility".into(),
    ))?;
    let p = given.ok_or(Problem::Invalid("missing field `points`: `adjust` needs the adjusted points".into()))?;
    let s = r.points(item);
    let (below, above) = rules.neighbours((low, high));
    let (name, lo, hi) = match adjust {
        Adjust::Lighter => ("lighter", below.map_or(low, |b| b.0), s - 1),
        Adjust::Heavier => ("heavier", s + 1, above.map_or(high, |b| b.1)),
    };
    if lo > hi {
        return Err(Problem::Points(format!(
            "`adjust` {name} from {} responsibility ({s} points) in the band {low}-{high}: no such points ({article})",
            r.as_str()
        )));
    }
    if p < lo || p > hi {
        return Err(Problem::Points(format!(
            "points {p}: {name} from {} responsibility ({s} points) in the band {low}-{high} allows {lo}-{hi} ({article})",
            r.as_str()
        )));
    }
    Ok(p)
}

fn finding(f: &Fields<'_>, rules: &Scoring) -> Result<EventKind, Problem> {
    let case_id = f.required("case_id")?;
    let item_id = f.required("item")?;
    let item = rules
        .catalogue
        .get(&item_id)
        .ok_or_else(|| Problem::UnknownItem { item: item_id.clone(), profile: rules.catalogue.profile.clone() })?;
    use Responsibility::*;
    let responsibility = f.word(
        "responsibility",
        &[("general", General), ("important", Important), ("main", Main)],
        "`general`, `important` or `main`",
    )?;
    let adjust = f.word(
        "adjust",
        &[("lighter", Adjust::Lighter), ("heavier", Adjust::Heavier)],
        "`lighter`, `heavier` or null",
    )?;
    let points = resolve_points(rules, item, f.number("points")?, responsibility, adjust)?;
    let suspend_months = match f.number("suspend_months")? {
        None => None,
        Some(m) => match rules.max_suspend_months() {
            None => {
                return Err(Problem::Refused(format!(
                    "field `suspend_months`: profile {} fixes every suspension's length",
                    rules.profile
                )));
            }
            Some(max) if m == 0 || m > max => {
                return Err(Problem::Invalid(format!("field `suspend_months`: {m} is outside 1-{max}")));
            }
            Some(_) => Some(m),
        },
    };
    Ok(EventKind::Finding(Finding {
        case_id,
        item: item_id,
        institution: f.institution("institution")?,
        points,
        responsibility,
        adjust,
        suspend_months,
    }))
}

fn repair(f: &Fields<'_>, rules: &Scoring) -> Result<EventKind, Problem> {
    let Some(r) = &rules.repair else {
        return Err(Problem::Refused(format!("event type `repair`: profile {} has no score repair", rules.profile)));
    };
    let method = f
        .word(
            "method",
            &[("training", RepairMethod::Training), ("activity", RepairMethod::Activity)],
            "`training` or `activity`",
        )?
        .ok_or(Problem::Missing("method"))?;
    let given = f.number("points")?;
    let points = match (method, r.training, r.activity) {
        (RepairMethod::Training, Some(t), _) => {
            let p = given.ok_or(Problem::Missing("points"))?;
            if p < t.min || p > t.max {
                return Err(Problem::Points(format!(
                    "points {p}: a training repair removes {}-{} ({})",
                    t.min, t.max, r.article
                )));
            }
            p
        }
        (RepairMethod::Activity, _, Some(a)) => match given {
            Some(p) if p != a.points => {
                return Err(Problem::Points(format!(
                    "points {p}: an activity repair removes {} ({})",
                    a.points, r.article
                )));
            }
            _ => a.points,
        },
        _ => {
            return Err(Problem::Refused(format!(
                "field `method`: profile {} allows no repair by this method",
                rules.profile
            )));
        }
    };
    Ok(EventKind::Repair { method, points })
}

fn institution_event(f: &Fields<'_>, day: NaiveDate) -> Result<EventKind, Problem> {
    let institution = f.institution("institution")?.ok_or(Problem::Missing("institution"))?;
    let status = f
        .word(
            "status",
            &[("suspended", Status::Suspended), ("terminated", Status::Terminated)],
            "`suspended` or `terminated`",
        )?
        .ok_or(Problem::Missing("status"))?;
    let until = match f.time("until")? {
        None => None,
        Some(t) if t != t.start_of_day() => {
            return Err(Problem::Invalid("field `until`: expected a date (yyyy-MM-dd)".into()));
        }
        Some(_) if status == Status::Terminated => {
            return Err(Problem::Invalid("field `until`: a termination has no end; give null".into()));
        }
        Some(t) if t.date() <= day => {
            return Err(Problem::Invalid("field `until`: must be after the day of `decided_at`".into()));
        }
        Some(t) => Some(t.date()),
    };
    let mut responsible = Vec::new();
    match f.get("responsible") {
        None => {}
        Some(Value::Array(list)) => {
            for (i, v) in list.iter().enumerate() {
                let text = v
                    .as_str()
                    .map(str::trim)
                    .ok_or(Problem::Type { field: "responsible", expected: "a list of codes" })?;
                let code = PractitionerCode::parse(text).map_err(|error| Problem::Code {
                    field: format!("responsible[{i}]"),
                    text: text.to_owned(),
                    error,
                })?;
                responsible.push(code);
            }
        }
        Some(_) => return Err(Problem::Type { field: "responsible", expected: "a list of codes" }),
    }
    responsible.sort();
    responsible.dedup();
    Ok(EventKind::Institution { institution, status, until, responsible })
}

/// The fields every event has.
const COMMON: [&str; 4] = ["id", "type", "code", "decided_at"];

/// The fields a type defines besides [`COMMON`] (scoring.md, "Ledger — input").
fn fields_of(type_name: &str) -> &'static [&'static str] {
    match type_name {
        "finding" => &["case_id", "item", "points", "responsibility", "adjust", "institution", "suspend_months"],
        "repair" => &["method", "points"],
        "revoke" => &["target"],
        "register" | "deregister" => &["institution"],
        "institution" => &["institution", "status", "until", "responsible"],
        _ => &[],
    }
}

/// A field the event's type does not define is refused: a misspelt one (`suspend_month`) would
/// otherwise be ignored and its intent lost without a word.
fn unknown_field(map: &Map<String, Value>, type_name: &str) -> Result<(), Problem> {
    let known = fields_of(type_name);
    match map.keys().find(|k| !COMMON.contains(&k.as_str()) && !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(Problem::Invalid(format!(
            "unknown field `{k}`: a `{type_name}` event has {}",
            COMMON.iter().chain(known).map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Parses one ledger line (`line` is its 1-based number).
pub fn parse_event(line: u64, bytes: &[u8], rules: &Scoring) -> Result<Event, LedgerError> {
    let err = |id: Option<String>| move |problem| LedgerError { line, id: id.clone(), problem };
    let map: Map<String, Value> = serde_json::from_slice(bytes).map_err(|e| err(None)(Problem::Json(e.to_string())))?;
    let f = Fields(&map);
    let id = f.text("id").map_err(err(None))?;
    let fail = err(id.clone());
    let id = id.ok_or(Problem::Missing("id")).map_err(&fail)?;
    let type_name = f.required("type").map_err(&fail)?;
    if matches!(
        type_name.as_str(),
        "finding" | "repair" | "clear" | "restore" | "revoke" | "register" | "deregister" | "institution"
    ) {
        unknown_field(&map, &type_name).map_err(&fail)?;
    }
    let decided_at = f.time("decided_at").and_then(|t| t.ok_or(Problem::Missing("decided_at"))).map_err(&fail)?;
    let code = f.practitioner("code").map_err(&fail)?;
    let needs_code = |kind: EventKind| match &code {
        Some(_) => Ok(kind),
        None => Err(Problem::Missing("code")),
    };
    let kind = match type_name.as_str() {
        "finding" => finding(&f, rules).and_then(needs_code),
        "repair" => repair(&f, rules).and_then(needs_code),
        "clear" => match &rules.clear {
            Some(_) => needs_code(EventKind::Clear),
            None => Err(Problem::Refused(format!(
                "event type `clear`: profile {} has no clearing of points",
                rules.profile
            ))),
        },
        "restore" => needs_code(EventKind::Restore),
        "revoke" => f.required("target").map(|target| EventKind::Revoke { target }),
        "register" | "deregister" => f.institution("institution").and_then(|i| {
            let institution = i.ok_or(Problem::Missing("institution"))?;
            needs_code(if type_name == "register" {
                EventKind::Register { institution }
            } else {
                EventKind::Deregister { institution }
            })
        }),
        "institution" => institution_event(&f, decided_at.date()),
        other => Err(Problem::UnknownType(other.to_owned())),
    }
    .map_err(&fail)?;
    Ok(Event { line, id, code, decided_at, kind })
}
