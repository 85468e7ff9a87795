//! The periods thresholds decide: a suspension (after the profile's notice period, replacing the rest
//! of a shorter running one) and a termination (with its ban on registering again).

use chrono::NaiveDate;

use super::add_months;
use crate::record::Status;
use crate::score::ledger::{Event, Problem};
use crate::score::person::{Derived, Origin, Person};
use crate::score::rules::Scoring;

/// A threshold suspension decided by `e`: from the decision day or after the notice period, for `months`;
/// a running suspension that ends later absorbs it, one that ends sooner is replaced from its start
/// (Huai'an: "a later, longer suspension replaces the remainder of an earlier one"). Returns what it
/// did, for the report. A notice period that crosses a year the calendar does not list is counted on
/// weekends only and the period is marked provisional (in its basis and `provisional`).
///
/// A suspension that would start or end after the last date a record can hold (records.md: years up
/// to 2199) is refused: written, it could never be read back.
pub fn suspend(p: &mut Person, rules: &Scoring, e: &Event, months: u32, basis: String) -> Result<String, Problem> {
    let day = e.day();
    let mut basis = basis;
    let mut provisional = Vec::new();
    let (from, notice) = match &rules.notice {
        Some(n) => {
            let counted = n.calendar.nth_working_day_after(day, n.working_days);
            let mut notice = format!(", after {} working days' notice, {}", n.working_days, n.article);
            if !counted.unlisted.is_empty() {
                provisional = counted.unlisted.into_iter().collect();
                let years = years(&provisional);
                let marker = format!(
                    "PROVISIONAL: the notice was counted on weekends only, calendar {} has no holiday list for {years}",
                    n.calendar.name
                );
                notice.push_str(&format!("; {marker}"));
                basis.push_str(&format!("; {marker}"));
            }
            (counted.day, notice)
        }
        None => (day, String::new()),
    };
    let planned = add_months(from, i64::from(months));
    if let Some(last) = last_date()
        && planned > last
    {
        return Err(Problem::Invalid(format!(
            "the suspension it decides would run from {from} to {planned}, past {last}, the last date a practitioner record can hold (records.md); it could not be read back"
        )));
    }
    let running = |d: &&mut Derived| d.origin == Origin::Threshold && d.status == Status::Suspended && d.ongoing(from);
    if let Some(d) = p.periods.iter_mut().find(|d| running(d) && d.planned_end >= Some(planned)) {
        return Ok(format!(
            "a suspension of {} from {from} is absorbed: suspension {} runs to {} or later",
            plural(months, "month"),
            d.decision_id,
            d.planned_end.map_or("an open end".into(), |x| x.to_string())
        ));
    }
    let mut text = format!("suspended {from} to {planned} ({}{notice})", plural(months, "month"));
    for d in p.periods.iter_mut().filter(|d| running(d)) {
        d.cut = Some((d.from.max(from), format!("replaced by the longer suspension {}", e.id)));
        text.push_str(&format!(", replacing the rest of suspension {}", d.decision_id));
    }
    if rules.restore.required {
        text.push_str(&format!("; ends only with a restore ({})", rules.restore.article));
    }
    p.periods.push(Derived {
        status: Status::Suspended,
        from,
        planned_end: Some(planned),
        needs_restore: rules.restore.required,
        restored: None,
        cut: None,
        closed: None,
        ban_until: None,
        one_shot: false,
        origin: Origin::Threshold,
        decided: day,
        decision_id: e.id.clone(),
        basis,
        provisional,
    });
    Ok(text)
}

/// The last day a record's time can name (a period ending on it is written as the next day, so the
/// last `until` is this day itself).
fn last_date() -> Option<NaiveDate> {
    // Records read years 1900-2199 (records.md; `BjTime::parse`): the last day is 2199-12-31.
    NaiveDate::from_ymd_opt(2199, 12, 31)
}

/// A threshold termination decided by `e`, with its ban (Qinghai Art. 11(3), Lanzhou Art. 18); it
/// ends running threshold suspensions. `at` is the threshold and `case_total` the points the crossing
/// finding's case gave: a case that alone reaches the threshold is a one-shot termination. Returns
/// what it did, for the report.
pub fn terminate(p: &mut Person, rules: &Scoring, e: &Event, at: u32, case_total: u32, basis: String) -> String {
    let day = e.day();
    p.terminations += 1;
    let one_shot = case_total >= at;
    let ban = rules.ban.as_ref().map(|b| {
        let (years, why) = match b.one_shot_years {
            Some(y) if one_shot => (y, format!("a single case gave {case_total} points")),
            _ => {
                let n = p.terminations as usize;
                // Bans are checked non-empty when the rules load; 0 years would only mean no ban.
                let y = b.years.get((n - 1).min(b.years.len().saturating_sub(1))).copied().unwrap_or(0);
                let nth = match n {
                    1 => "first".to_owned(),
                    2 => "second".to_owned(),
                    3 => "third".to_owned(),
                    _ => format!("{n}th"),
                };
                (y, format!("the {nth} termination"))
            }
        };
        (add_months(day, 12 * i64::from(years)), format!("{}: {why} ({})", plural(years, "year"), b.article))
    });
    let mut text = format!("terminated from {day}");
    for d in p.ongoing_threshold(day).filter(|d| d.status == Status::Suspended) {
        d.cut = Some((d.from.max(day), format!("overtaken by the termination {}", e.id)));
        text.push_str(&format!(", ending suspension {}", d.decision_id));
    }
    if let Some((u, why)) = &ban {
        text.push_str(&format!("; no registration before {u}, {why}"));
    }
    p.periods.push(Derived {
        status: Status::Terminated,
        from: day,
        planned_end: None,
        needs_restore: false,
        restored: None,
        cut: None,
        closed: None,
        ban_until: ban.map(|(u, _)| u),
        one_shot,
        origin: Origin::Threshold,
        decided: day,
        decision_id: e.id.clone(),
        basis,
        provisional: Vec::new(),
    });
    text
}

/// "2027", "2027 and 2028".
pub fn years(years: &[i32]) -> String {
    years.iter().map(i32::to_string).collect::<Vec<_>>().join(" and ")
}

/// "1 month", "3 months".
pub fn plural(n: u32, unit: &str) -> String {
    if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") }
}
