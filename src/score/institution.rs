//! Institution ratio flags: the share of an institution's registered staff suspended or terminated
//! in a natural year (Qinghai Art. 12, seed 001; Huai'an Art. 24, seed 000) or in an agreement period
//! (Lanzhou Art. 22, seed 002: 一个协议期内).
//!
//! A period counts at every institution where its person was registered on the day it was decided
//! (Huai'an Art. 24: 以医保医师处理时所在单位统计), in the year (or agreement period) it was decided. The staff
//! are everyone with a registration there overlapping it — of the kinds the profile rates: Huai'an and
//! Lanzhou rate doctors (their Art. 2 govern no one else), Qinghai every professional (Art. 2). Only
//! periods this ledger derives are counted: the engine knows nothing of the decisions behind periods
//! it was merely handed.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};

use super::census::Census;
use super::cycle::{Span, add_months};
use super::engine::Engine;
use super::report::InstitutionNote;
use super::rules::{RatioCount, RatioPeriod, Scoring};
use crate::record::{InstitutionCode, PractitionerCode};

/// The year, or the agreement period, holding `day`.
pub(super) fn window(period: RatioPeriod, day: NaiveDate) -> Span {
    match period {
        RatioPeriod::Year => {
            let y = |y| NaiveDate::from_ymd_opt(y, 1, 1).unwrap_or(NaiveDate::MIN);
            Span { start: y(day.year()), end: y(day.year() + 1) }
        }
        RatioPeriod::Agreement { months, from } => {
            let m = i64::from(months);
            // Agreements follow `from` every `months`, and precede it likewise.
            let mut k: i64 = 0;
            while add_months(from, (k + 1) * m) <= day {
                k += 1;
            }
            while add_months(from, k * m) > day {
                k -= 1;
            }
            Span { start: add_months(from, k * m), end: add_months(from, (k + 1) * m) }
        }
    }
}

/// "2026", or "the agreement period 2024-05-01 to 2026-05-01".
fn label(period: RatioPeriod, w: Span) -> String {
    match period {
        RatioPeriod::Year => w.start.year().to_string(),
        RatioPeriod::Agreement { .. } => format!("the agreement period {} to {}", w.start, w.end),
    }
}

/// The institutions with at least one counted period, by institution and year (or agreement period),
/// with the level each reached. The staff are the people the engine knows (those named, and the input
/// records it was given) plus those `census` counted (the rest of the registry).
pub fn ratio_flags(rules: &Scoring, engine: &Engine<'_>, census: &Census) -> Vec<InstitutionNote> {
    let Some(r) = &rules.ratio else { return Vec::new() };
    let kinds = r.kinds.as_deref();
    let mut counted: BTreeMap<(InstitutionCode, Span), (BTreeSet<&PractitionerCode>, u32)> = BTreeMap::new();
    for (code, p) in engine.persons.iter().filter(|(c, _)| engine.of_kind(c, kinds)) {
        for d in p.periods.iter().filter(|d| !d.is_empty() && r.statuses.contains(&d.status)) {
            let here: BTreeSet<InstitutionCode> =
                p.regs.iter().filter(|g| g.covers(d.decided)).map(|g| g.institution).collect();
            for inst in here {
                let entry = counted.entry((inst, window(r.period, d.decided))).or_default();
                entry.0.insert(code);
                entry.1 += 1;
            }
        }
    }
    let mut windows: BTreeMap<InstitutionCode, Vec<Span>> = BTreeMap::new();
    for (inst, w) in counted.keys() {
        windows.entry(*inst).or_default().push(*w);
    }
    let mut staff: BTreeMap<(InstitutionCode, Span), BTreeSet<&PractitionerCode>> = BTreeMap::new();
    for (code, regs) in engine.all_regs().filter(|(c, _)| engine.of_kind(c, kinds)) {
        for g in regs {
            for w in windows.get(&g.institution).into_iter().flatten() {
                if g.overlaps(w.start, w.end) {
                    staff.entry((g.institution, *w)).or_default().insert(code);
                }
            }
        }
    }
    counted
        .into_iter()
        .map(|((inst, w), (persons, times))| {
            let n = match r.count {
                RatioCount::PersonTimes => times,
                RatioCount::Persons => persons.len() as u32,
            };
            // The counted persons are registered there, so the staff is never smaller than them.
            let known = staff.get(&(inst, w)).map_or(0, |s| s.len() as u32);
            let total = (known + census.staff(inst, w)).max(persons.len() as u32);
            let mut level = None;
            for l in &r.levels {
                let small = l.small.iter().filter(|s| total < s.below).min_by_key(|s| s.below);
                let reached = match small {
                    Some(s) => persons.len() as u32 >= s.persons,
                    None if l.strict => u64::from(n) * 100 > u64::from(l.percent) * u64::from(total),
                    None => u64::from(n) * 100 >= u64::from(l.percent) * u64::from(total),
                };
                if reached {
                    let rule = match small {
                        Some(s) => format!("fewer than {} staff: {} or more persons", s.below, s.persons),
                        None => format!("{} {}%", if l.strict { "more than" } else { "at least" }, l.percent),
                    };
                    level = Some(format!("{} ({rule}, {})", l.flag, r.article));
                }
            }
            InstitutionNote {
                institution: inst.to_string(),
                period: label(r.period, w),
                staff: total,
                counted: n,
                level,
            }
        })
        .collect()
}
