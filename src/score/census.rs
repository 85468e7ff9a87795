//! Scoring against a registry too large to hold (issue 10): which records a ledger needs whole, and
//! the staff counts of everyone else — pure, fed one record at a time by whoever reads the registry.
//!
//! A ledger touches few people. A record it does not touch comes out of scoring exactly as it went
//! in, so scoring needs it for one thing only: its share in the staff of its institutions, the
//! denominator of the institution ratio (Qinghai Art. 12, Huai'an Art. 24, Lanzhou Art. 22). So the
//! reader keeps the records [`Selection::wants`] whole and adds every other one to a [`Census`]:
//! per institution and per ratio window (the years, or agreement periods, of the ledger's events),
//! how many people of the kinds the profile rates were registered there. [`super::score_part`] then
//! scores the kept records and takes the others' staff from the census: the same records and the
//! same report as scoring the whole registry, at a cost in memory that follows the ledger and the
//! number of institutions, not the number of people.

use std::collections::{BTreeSet, HashSet};

use chrono::NaiveDate;
use rustc_hash::FxHashMap;

use super::cycle::Span;
use super::institution::window;
use super::ledger::{EventKind, Ledger};
use super::rules::{CascadeScope, RatioPeriod, Scoring};
use crate::record::{BjTime, InstitutionCode, PractitionerCode, PractitionerRecord};

/// The records a ledger needs whole: those it names (findings, repairs, registrations, the staff an
/// institution event holds responsible), those an institution event may reach through their
/// registrations (where the profile cascades to everyone registered there), and those carrying a
/// period this ledger decided (derived again, or dropped, on every run). Every other record comes out
/// of scoring unchanged. Every version of a code must be kept if one is: the caller keeps all records
/// of a code one of whose records is wanted.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    codes: HashSet<PractitionerCode>,
    institutions: HashSet<InstitutionCode>,
    ids: HashSet<String>,
}

impl Selection {
    /// What `ledger` needs under `rules`.
    pub fn new(rules: &Scoring, ledger: &Ledger) -> Selection {
        let registered = rules.cascade.as_ref().is_some_and(|c| c.scope == CascadeScope::Registered);
        let mut s = Selection::default();
        for e in ledger.events() {
            s.ids.insert(e.id.clone());
            s.codes.extend(e.code.clone());
            if let EventKind::Institution { institution, responsible, .. } = &e.kind {
                s.codes.extend(responsible.iter().cloned());
                if registered {
                    s.institutions.insert(*institution);
                }
            }
        }
        s
    }

    /// Does scoring need this record whole?
    pub fn wants(&self, record: &PractitionerRecord) -> bool {
        self.codes.contains(&record.code)
            || record.registrations.iter().any(|r| self.institutions.contains(&r.institution))
            || record.periods.iter().any(|p| p.decision_id.as_ref().is_some_and(|id| self.ids.contains(id)))
    }
}

/// A record's share in the census: the (institution, window) pairs where it counts as staff, each once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Share(Vec<(InstitutionCode, u16)>);

impl Share {
    /// True when the record counts nowhere.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Staff counts of the records not kept, per institution and ratio window (see the module).
#[derive(Clone, Debug, Default)]
pub struct Census {
    /// The ratio's period and kinds; `None`: the profile has no ratio, nothing is counted.
    rule: Option<(RatioPeriod, Option<Vec<String>>)>,
    /// The windows holding a ledger event's day, ascending.
    windows: Vec<Span>,
    /// Institution → index of its first count in `counts` (one count per window).
    slots: FxHashMap<InstitutionCode, u32>,
    counts: Vec<u32>,
}

impl Census {
    /// An empty census for `ledger` under `rules`: it counts in every window that holds the day of a
    /// ledger event (periods are decided on their event's day, so no counted period falls outside).
    pub fn new(rules: &Scoring, ledger: &Ledger) -> Census {
        let Some(r) = &rules.ratio else { return Census::default() };
        let days: BTreeSet<NaiveDate> = ledger.events().iter().map(|e| e.day()).collect();
        let windows: BTreeSet<Span> = days.into_iter().map(|d| window(r.period, d)).collect();
        Census { rule: Some((r.period, r.kinds.clone())), windows: windows.into_iter().collect(), ..Census::default() }
    }

    /// Where `record` counts: at each institution where it has a registration overlapping a window, if
    /// it is of a kind the ratio rates (a national code carries its kind; a legacy code has its record's
    /// `kind`, or none and then counts as no listed kind). Reads the census only, so records can be
    /// shared out on several threads.
    pub fn share(&self, record: &PractitionerRecord, kind: Option<&str>) -> Share {
        let Some((_, kinds)) = &self.rule else { return Share::default() };
        if let Some(kinds) = kinds {
            let kind = record.code.kind().map(|k| k.as_str()).or(kind.map(str::trim));
            if !kind.is_some_and(|k| kinds.iter().any(|x| x == k)) {
                return Share::default();
            }
        }
        let mut out = Vec::new();
        for r in &record.registrations {
            for (w, span) in self.windows.iter().enumerate() {
                let overlaps =
                    r.during.from < BjTime::from_date(span.end) && BjTime::from_date(span.start) < r.during.until;
                if overlaps {
                    out.push((r.institution, w as u16));
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Share(out)
    }

    /// Counts a record not kept.
    pub fn add(&mut self, share: &Share) {
        let n = self.windows.len() as u32;
        for (inst, w) in &share.0 {
            let next = self.counts.len() as u32;
            let slot = *self.slots.entry(*inst).or_insert(next);
            if slot == next {
                self.counts.resize(self.counts.len() + n as usize, 0);
            }
            self.counts[(slot + u32::from(*w)) as usize] += 1;
        }
    }

    /// Takes back a record counted before: a stale version of a code, or one found to be needed whole.
    pub fn remove(&mut self, share: &Share) {
        for (inst, w) in &share.0 {
            if let Some(slot) = self.slots.get(inst) {
                let c = &mut self.counts[(slot + u32::from(*w)) as usize];
                *c = c.saturating_sub(1);
            }
        }
    }

    /// The staff counted at `institution` in the window `span`.
    pub(super) fn staff(&self, institution: InstitutionCode, span: Span) -> u32 {
        let (Some(slot), Ok(w)) = (self.slots.get(&institution), self.windows.binary_search(&span)) else { return 0 };
        self.counts[*slot as usize + w]
    }

    /// Institutions counted so far.
    pub fn institutions(&self) -> usize {
        self.slots.len()
    }
}

/// The records of a registry that scoring was not given: their census, how many codes they hold, and
/// how many of them were stale (a higher version of the same code was among them).
#[derive(Clone, Debug, Default)]
pub struct Rest {
    /// Their staff counts.
    pub census: Census,
    /// Codes (one per code, the highest version).
    pub records: usize,
    /// Records dropped for a higher version of the same code.
    pub stale: usize,
}
