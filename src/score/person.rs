//! One practitioner's scoring state while the ledger is replayed: registrations, agreement anchors,
//! per-cycle totals and same-case groups, the periods derived so far, and the notes the report shows.
//!
//! A derived period keeps what decided its end apart — planned end, restore, cut, close — so that a
//! later event can still change it and the report can say why it ends where it does.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::cycle::{self, Span};
use super::ledger::Problem;
use super::report::{BanNote, EventNote, FlagNote};
use super::rules::{CycleKind, Scoring};
use crate::record::{BjTime, InstitutionCode, PractitionerCode, RegistrationText, Status};

/// A registration, as written and as typed.
#[derive(Clone, Debug)]
pub struct Reg {
    /// As it will be written.
    pub text: RegistrationText,
    /// Where.
    pub institution: InstitutionCode,
    /// Start.
    pub from: BjTime,
    /// End (exclusive); [`BjTime::MAX`] while open.
    pub until: BjTime,
}

impl Reg {
    /// Does it cover the start of this day?
    pub fn covers(&self, day: NaiveDate) -> bool {
        let t = BjTime::from_date(day);
        self.from <= t && t < self.until
    }

    /// Does it overlap `[start, end)`?
    pub fn overlaps(&self, start: NaiveDate, end: NaiveDate) -> bool {
        self.from < BjTime::from_date(end) && BjTime::from_date(start) < self.until
    }
}

/// Where a derived period comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A points threshold.
    Threshold,
    /// An institution's suspension or termination.
    Cascade,
}

/// A period the ledger derives.
#[derive(Clone, Debug)]
pub struct Derived {
    /// Suspended or terminated.
    pub status: Status,
    /// First day.
    pub from: NaiveDate,
    /// A suspension's planned end; `None`: open-ended.
    pub planned_end: Option<NaiveDate>,
    /// It ends only with a `restore` (Qinghai Art. 18, Huai'an Art. 25).
    pub needs_restore: bool,
    /// The day of the `restore` that ends it.
    pub restored: Option<NaiveDate>,
    /// Ended early: replaced by a longer suspension, cleared, or overtaken by a termination.
    pub cut: Option<(NaiveDate, String)>,
    /// A termination's close: the day of the `register` after the ban.
    pub closed: Option<NaiveDate>,
    /// A termination's ban on registering again: not before this day.
    pub ban_until: Option<NaiveDate>,
    /// A termination from a single case's points.
    pub one_shot: bool,
    /// Threshold or cascade.
    pub origin: Origin,
    /// The day it was decided.
    pub decided: NaiveDate,
    /// The ledger event that decided it.
    pub decision_id: String,
    /// Profile, article and total.
    pub basis: String,
    /// Years whose holiday list was missing when its notice period was counted (weekends only): the
    /// period is provisional until a run with those years' calendar.
    pub provisional: Vec<i32>,
}

impl Derived {
    /// Its end as the events so far have it; `None`: open.
    pub fn end(&self) -> Option<NaiveDate> {
        if let Some((c, _)) = &self.cut {
            return Some(*c);
        }
        match self.status {
            Status::Terminated => self.closed,
            Status::Suspended if self.needs_restore => self.restored.map(|r| self.planned_end.map_or(r, |p| p.max(r))),
            Status::Suspended => self.planned_end,
        }
    }

    /// Not yet ended on `day` (running, or decided and still to start).
    pub fn ongoing(&self, day: NaiveDate) -> bool {
        self.end().is_none_or(|e| e > day)
    }

    /// Ends no later than it starts: it never took effect.
    pub fn is_empty(&self) -> bool {
        self.end().is_some_and(|e| e <= self.from)
    }

    /// Why it ends where it does, for the report.
    pub fn how(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = self.planned_end {
            parts.push(format!("planned end {p}"));
        }
        if let Some(b) = self.ban_until {
            parts.push(format!("no registration before {b}"));
        }
        if let Some((c, why)) = &self.cut {
            parts.push(format!("ended {c}: {why}"));
        } else if let Some(r) = self.restored {
            parts.push(format!("restore approved {r}"));
        } else if self.needs_restore {
            parts.push("no restore yet: goes on".into());
        }
        if let Some(c) = self.closed {
            parts.push(format!("closed by registration {c}"));
        }
        parts.join("; ")
    }
}

/// Totals and groups of one cycle.
#[derive(Clone, Debug)]
pub struct CycleState {
    /// The cycle.
    pub span: Span,
    /// Current total.
    pub total: u32,
    /// Highest total reached.
    pub peak: u32,
    /// Highest total since the last `clear`: what "reached N in that cycle" means for consecutive
    /// thresholds.
    pub reached: u32,
    /// Points counted.
    pub deducted: u32,
    /// Points repaired.
    pub repaired: u32,
    /// Points cleared.
    pub cleared: u32,
    /// Same-case groups: `(case, item)` or `(case, None)` → the points counted for it.
    pub groups: BTreeMap<(String, Option<String>), u32>,
    /// Training repairs used.
    pub trainings: u32,
    /// Points removed by activities.
    pub activity_points: u32,
}

impl CycleState {
    fn new(span: Span) -> Self {
        CycleState {
            span,
            total: 0,
            peak: 0,
            reached: 0,
            deducted: 0,
            repaired: 0,
            cleared: 0,
            groups: BTreeMap::new(),
            trainings: 0,
            activity_points: 0,
        }
    }

    /// Points a case gives after the same-case rule.
    pub fn case_total(&self, case: &str) -> u32 {
        self.groups.iter().filter(|((c, _), _)| c == case).map(|(_, p)| p).sum()
    }
}

/// One practitioner while the ledger is replayed.
#[derive(Clone, Debug)]
pub struct Person {
    /// The code.
    pub code: PractitionerCode,
    /// Registrations: the record's, then the ledger's.
    pub regs: Vec<Reg>,
    /// Days agreements (re)start, ascending (agreement cycles only).
    pub anchors: Vec<NaiveDate>,
    /// Cycles by first day.
    pub cycles: BTreeMap<NaiveDate, CycleState>,
    /// Periods derived, in decision order.
    pub periods: Vec<Derived>,
    /// Terminations from thresholds so far (for the ban ladder).
    pub terminations: u32,
    /// What each event did.
    pub log: Vec<EventNote>,
    /// Flags raised.
    pub flags: Vec<FlagNote>,
    /// Bans on registration.
    pub bans: Vec<BanNote>,
}

impl Person {
    /// A person with these registrations.
    pub fn new(code: PractitionerCode, regs: Vec<Reg>) -> Self {
        Person {
            code,
            regs,
            anchors: Vec::new(),
            cycles: BTreeMap::new(),
            periods: Vec::new(),
            terminations: 0,
            log: Vec::new(),
            flags: Vec::new(),
            bans: Vec::new(),
        }
    }

    /// The cycle holding `day`, created if new.
    pub fn cycle(&mut self, rules: &Scoring, day: NaiveDate) -> Result<&mut CycleState, Problem> {
        let span = cycle::cycle_of(&rules.cycle.kind, &self.anchors, day).ok_or_else(|| match self.anchors.first() {
            None => Problem::Invalid(format!(
                "{} counts points per service agreement from the first registration ({}), and {} has none: give its record with --practitioners or a `register` event",
                rules.profile, rules.cycle.article, self.code
            )),
            Some(first) => Problem::Invalid(format!(
                "{} counts points per service agreement from the first registration ({}); {day} is before {}'s first registration, {first}: no agreement period holds it",
                rules.profile, rules.cycle.article, self.code
            )),
        })?;
        Ok(self.cycles.entry(span.start).or_insert_with(|| CycleState::new(span)))
    }

    /// The cycle before `span`, if the person has one.
    pub fn previous(&self, kind: &CycleKind, span: Span) -> Option<&CycleState> {
        let p = cycle::previous(kind, &self.anchors, span)?;
        self.cycles.get(&p.start)
    }

    /// Threshold periods not ended on `day`.
    pub fn ongoing_threshold(&mut self, day: NaiveDate) -> impl Iterator<Item = &mut Derived> {
        self.periods.iter_mut().filter(move |d| d.origin == Origin::Threshold && d.ongoing(day))
    }

    /// Writes what an event did.
    pub fn note(&mut self, e: &super::ledger::Event, applied: bool, text: String) {
        self.log.push(EventNote::new(e, applied, text));
    }
}
