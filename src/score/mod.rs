//! Scoring (scoring.md): inspection findings become points, and points become suspensions and
//! terminations, under a region's rules — pure.
//!
//! [`score`] takes a profile's [`Scoring`] rules, a checked [`Ledger`] and the practitioner records
//! already held, and returns the practitioner records with their derived periods merged in, and a
//! [`Report`]. It reads nothing but its arguments — no clock, no files — and the same ledger, records
//! and rules always give the same records, byte for byte once written.
//!
//! - [`catalogue`] — the deduction items of each region, as data.
//! - [`calendar`] — working days, for Huai'an's 15-working-day notice.
//! - [`rules`] — the profile's `[scoring]` section, typed: every region-specific number.
//! - [`ledger`] — the events, parsed and checked line by line.
//! - `cycle`, `person`, `engine` — the replay: cycles, per-person state, the rules applied in order.
//! - `institution` — institution ratio flags.
//! - [`census`] — scoring against a registry too large to hold: the records a ledger needs whole,
//!   and staff counts of the rest ([`score_part`]).
//! - [`report`] — what every event did, and its Markdown form.
//!
//! Seeds: Huai'an = 000_a49834594c269b75.txt, Qinghai (national-2024) = 001_70455349a9435e17.txt,
//! Lanzhou = 002_0d8737387619c9dd.txt.

pub mod calendar;
pub mod catalogue;
pub mod census;
mod cycle;
mod engine;
mod institution;
pub mod ledger;
mod person;
pub mod report;
pub mod rules;

use std::collections::{BTreeMap, BTreeSet};

use crate::record::{PeriodText, PractitionerCode, PractitionerText, RecordError};

pub use census::{Census, Rest, Selection, Share};
pub use ledger::{Event, EventKind, Ledger, LedgerError, Problem};
pub use report::{Report, Sources, Written, markdown};
pub use rules::{RulesError, Scoring};

use engine::Engine;
use person::{Person, Reg};
use report::{BanNote, CycleNote, PeriodNote, PersonReport};

/// Why scoring failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScoreError {
    /// A ledger event the rules cannot apply; names the line and the event.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// An input practitioner record that does not validate.
    #[error("practitioner record {index} ({code}): {error}")]
    Practitioner {
        /// Its position in the input (0-based).
        index: usize,
        /// Its code as written.
        code: String,
        /// Why.
        error: RecordError,
    },
}

/// One practitioner record out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScoredRecord {
    /// The record, as it will be written.
    pub record: PractitionerText,
    /// The input record it came from (index into the input), `None` for a code only in the ledger.
    pub input: Option<usize>,
    /// True when it differs from the input (and its version was raised).
    pub changed: bool,
}

/// The result of scoring.
#[derive(Clone, Debug)]
pub struct Scored {
    /// One record per code: the inputs in their order (the highest version of each code), then the
    /// codes only in the ledger, in code order.
    pub records: Vec<ScoredRecord>,
    /// What happened.
    pub report: Report,
}

/// Scores a ledger under `rules`, merging the derived periods into `practitioners`.
///
/// Each output record keeps the input's registrations (with the ledger's `register` / `deregister`
/// applied) and the input's periods that no ledger event decided; periods whose `decision_id` is an
/// event of this ledger are derived again, so a record that already went through this ledger comes
/// out the same. A record that changes gets `version + 1`, so the filter's version-wins rule takes it;
/// one that does not keeps its version. A code only in the ledger gets a new record, version 1.
pub fn score(rules: &Scoring, ledger: &Ledger, practitioners: &[PractitionerText]) -> Result<Scored, ScoreError> {
    score_part(rules, ledger, practitioners, &Rest::default())
}

/// Scores a ledger over part of a registry: `practitioners` are the records it was given (at least
/// every record of every code [`Selection::wants`], in registry order), `rest` stands for all the
/// others — which scoring leaves unchanged — with their staff counts for the institution ratio and
/// their number for the report. The records out are those of `practitioners` (and new codes), each
/// exactly as [`score`] over the whole registry writes it; the report is the whole registry's.
pub fn score_part(
    rules: &Scoring,
    ledger: &Ledger,
    practitioners: &[PractitionerText],
    rest: &Rest,
) -> Result<Scored, ScoreError> {
    // The highest version of each code; the first of equal versions, as the status table keeps it.
    let mut chosen: BTreeMap<PractitionerCode, (usize, Vec<Reg>)> = BTreeMap::new();
    for (index, t) in practitioners.iter().enumerate() {
        let rec = t.validate().map_err(|error| ScoreError::Practitioner { index, code: t.code.clone(), error })?;
        if chosen.get(&rec.code).is_some_and(|(j, _)| practitioners[*j].version >= t.version) {
            continue;
        }
        let regs = t
            .registrations
            .iter()
            .zip(&rec.registrations)
            .map(|(text, r)| Reg {
                text: text.clone(),
                institution: r.institution,
                from: r.during.from,
                until: r.during.until,
            })
            .collect();
        chosen.insert(rec.code, (index, regs));
    }
    let inputs: BTreeMap<PractitionerCode, usize> = chosen.iter().map(|(c, (i, _))| (c.clone(), *i)).collect();
    let base = chosen.into_iter().map(|(c, (_, regs))| (c, regs)).collect();
    // The kind of a legacy code is its record's word; a national code carries its own.
    let kinds = inputs
        .iter()
        .filter(|(c, _)| c.kind().is_none())
        .filter_map(|(c, i)| Some((c.clone(), practitioners[*i].kind.as_deref()?.trim().to_owned())))
        .collect();
    let engine = Engine::run(rules, ledger.events(), base, kinds)?;
    let ids: BTreeSet<&str> = ledger.events().iter().map(|e| e.id.as_str()).collect();

    let mut order: Vec<(usize, &PractitionerCode)> = inputs.iter().map(|(c, i)| (*i, c)).collect();
    order.sort();
    let mut records = Vec::with_capacity(order.len() + engine.persons.len());
    for (i, code) in order {
        let input = &practitioners[i];
        let (record, changed) = merge(Some(input), code, engine.persons.get(code), &ids);
        records.push(ScoredRecord { record, input: Some(i), changed });
    }
    for (code, p) in engine.persons.iter().filter(|(c, _)| !inputs.contains_key(*c)) {
        let (record, _) = merge(None, code, Some(p), &ids);
        records.push(ScoredRecord { record, input: None, changed: true });
    }

    let report = Report {
        profile: rules.profile.clone(),
        events: ledger.events().len(),
        records: records.len() + rest.records,
        changed: records.iter().filter(|r| r.changed).count(),
        new: records.iter().filter(|r| r.input.is_none()).count(),
        stale: practitioners.len() - inputs.len() + rest.stale,
        practitioners: engine.persons.values().map(|p| person_report(rules, p)).collect(),
        institution_events: engine.institution_log.clone(),
        ratio: rules.ratio.as_ref().map(|r| report::RatioRule {
            article: r.article.clone(),
            count: r.count,
            statuses: r.statuses.clone(),
            kinds: r.kinds.clone(),
        }),
        institutions: institution::ratio_flags(rules, &engine, &rest.census),
    };
    Ok(Scored { records, report })
}

/// The periods of `p` that took effect, as written.
fn derived_periods(p: &Person) -> impl Iterator<Item = PeriodText> + '_ {
    p.periods.iter().filter(|d| !d.is_empty()).map(|d| PeriodText {
        status: d.status,
        from: d.from.to_string(),
        until: d.end().map(|u| u.to_string()),
        basis: Some(d.basis.clone()),
        decision_id: Some(d.decision_id.clone()),
    })
}

/// The record for `code`: the input's fields, registrations as the ledger left them, the input's
/// periods no ledger event decided, then the derived ones. Returns it and whether it changed.
fn merge(
    input: Option<&PractitionerText>,
    code: &PractitionerCode,
    person: Option<&Person>,
    ids: &BTreeSet<&str>,
) -> (PractitionerText, bool) {
    let from_ledger = |p: &PeriodText| p.decision_id.as_deref().is_some_and(|id| ids.contains(id));
    let mut out = match input {
        Some(t) => t.clone(),
        None => PractitionerText {
            code: code.to_string(),
            name: None,
            kind: code.kind().map(|k| k.as_str().to_owned()),
            registrations: Vec::new(),
            periods: Vec::new(),
            version: 0,
        },
    };
    out.periods.retain(|p| !from_ledger(p));
    if let Some(p) = person {
        out.registrations = p.regs.iter().map(|r| r.text.clone()).collect();
        out.periods.extend(derived_periods(p));
    }
    let changed = input.is_none_or(|t| t.registrations != out.registrations || t.periods != out.periods);
    if changed {
        out.version += 1;
    }
    (out, changed)
}

fn person_report(rules: &Scoring, p: &Person) -> PersonReport {
    let cycles = p
        .cycles
        .values()
        .map(|c| CycleNote {
            label: cycle::label(&rules.cycle.kind, c.span),
            deducted: c.deducted,
            repaired: c.repaired,
            cleared: c.cleared,
            total: c.total,
            peak: c.peak,
        })
        .collect();
    let periods = p
        .periods
        .iter()
        .filter(|d| !d.is_empty())
        .map(|d| PeriodNote {
            status: d.status,
            from: d.from,
            until: d.end(),
            basis: d.basis.clone(),
            decision_id: d.decision_id.clone(),
            how: d.how(),
            provisional: d.provisional.clone(),
        })
        .collect();
    let mut bans: Vec<BanNote> = p
        .periods
        .iter()
        .filter_map(|d| {
            let until = d.ban_until?;
            let state = match d.closed {
                Some(c) => format!("registered again {c}"),
                None => "not registered again yet".into(),
            };
            Some(BanNote { until, text: format!("after the termination {} from {} ({state})", d.decision_id, d.from) })
        })
        .collect();
    bans.extend(p.bans.iter().cloned());
    PersonReport { code: p.code.to_string(), cycles, events: p.log.clone(), periods, flags: p.flags.clone(), bans }
}

#[cfg(test)]
mod tests;
