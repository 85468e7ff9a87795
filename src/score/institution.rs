//! Institution ratio flags: the share of an institution's registered staff suspended or terminated
//! in a natural year (Qinghai Art. 12, seed 001; Huai'an Art. 24, seed 000; Lanzhou Art. 22, seed 002).
//!
//! A period counts at every institution where its person was registered on the day it was decided
//! (Huai'an Art. 24: 以医保医师处理时所在单位统计), in the year it was decided. The staff are everyone with a
//! registration there overlapping that year. Only periods this ledger derives are counted: the
//! engine knows nothing of the decisions behind periods it was merely handed.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};

use super::engine::Engine;
use super::report::InstitutionNote;
use super::rules::{RatioCount, Scoring};
use crate::record::{InstitutionCode, PractitionerCode};

/// The institutions with at least one counted period, by institution and year, with the level each
/// reached.
pub fn ratio_flags(rules: &Scoring, engine: &Engine<'_>) -> Vec<InstitutionNote> {
    let Some(r) = &rules.ratio else { return Vec::new() };
    let mut counted: BTreeMap<(InstitutionCode, i32), (BTreeSet<&PractitionerCode>, u32)> = BTreeMap::new();
    for (code, p) in &engine.persons {
        for d in p.periods.iter().filter(|d| !d.is_empty() && r.statuses.contains(&d.status)) {
            let here: BTreeSet<InstitutionCode> =
                p.regs.iter().filter(|g| g.covers(d.decided)).map(|g| g.institution).collect();
            for inst in here {
                let entry = counted.entry((inst, d.decided.year())).or_default();
                entry.0.insert(code);
                entry.1 += 1;
            }
        }
    }
    let mut years: BTreeMap<InstitutionCode, Vec<i32>> = BTreeMap::new();
    for (inst, year) in counted.keys() {
        years.entry(*inst).or_default().push(*year);
    }
    let mut staff: BTreeMap<(InstitutionCode, i32), BTreeSet<&PractitionerCode>> = BTreeMap::new();
    for (code, regs) in engine.all_regs() {
        for g in regs {
            for &y in years.get(&g.institution).into_iter().flatten() {
                let (start, end) = (NaiveDate::from_ymd_opt(y, 1, 1), NaiveDate::from_ymd_opt(y + 1, 1, 1));
                if let (Some(start), Some(end)) = (start, end)
                    && g.overlaps(start, end)
                {
                    staff.entry((g.institution, y)).or_default().insert(code);
                }
            }
        }
    }
    counted
        .into_iter()
        .map(|((inst, year), (persons, times))| {
            let n = match r.count {
                RatioCount::PersonTimes => times,
                RatioCount::Persons => persons.len() as u32,
            };
            // The counted persons are registered there, so the staff is never smaller than them.
            let total = staff.get(&(inst, year)).map_or(0, |s| s.len() as u32).max(persons.len() as u32);
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
            InstitutionNote { institution: inst.to_string(), year, staff: total, counted: n, level }
        })
        .collect()
}
