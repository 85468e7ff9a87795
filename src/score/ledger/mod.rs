//! The ledger (scoring.md, "Ledger — input"): one decision per JSON line — findings, repairs, clears,
//! restores, revokes, registrations and institution events — parsed into typed events and checked
//! against the profile's rules.
//!
//! Everything a single line can get wrong is refused here, naming the line and the event id: an
//! unknown type or item, points the band or the responsibility does not allow, a bad date or code, a
//! missing field, an event the profile does not provide (a `clear` outside Huai'an). Ledger-wide
//! checks follow: duplicate ids, revokes of unknown findings. What depends on history (same-case
//! rules, repair limits, bans) is the engine's, and is reported rather than refused.
//!
//! `line` parses one line; this module holds the event types and the ledger-wide checks.

mod line;

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::catalogue::Item;
use super::rules::Scoring;
use crate::record::{BjTime, CodeError, InstitutionCode, PractitionerCode, Status, TimeError};

pub use line::{parse_event, resolve_points};

/// What is wrong with a line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Not a JSON object.
    #[error("not a JSON object: {0}")]
    Json(String),
    /// A required field is absent or null.
    #[error("missing field `{0}`")]
    Missing(&'static str),
    /// A field of the wrong kind.
    #[error("field `{field}`: expected {expected}")]
    Type {
        /// The field.
        field: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// An event type scoring.md does not define.
    #[error(
        "unknown event type `{0}` (known: finding, repair, clear, restore, revoke, register, deregister, institution)"
    )]
    UnknownType(String),
    /// A time that does not parse.
    #[error("field `{field}`: {error} (`{text}`)")]
    Date {
        /// The field.
        field: &'static str,
        /// The text.
        text: String,
        /// Why.
        error: TimeError,
    },
    /// A code that does not parse.
    #[error("field `{field}`: {error} (`{text}`)")]
    Code {
        /// The field.
        field: String,
        /// The text.
        text: String,
        /// Why.
        error: CodeError,
    },
    /// An item the profile's catalogue does not have.
    #[error("unknown item `{item}`: not in the {profile} catalogue")]
    UnknownItem {
        /// The item.
        item: String,
        /// The profile.
        profile: String,
    },
    /// Points the item, responsibility or adjustment does not allow; says what is allowed.
    #[error("{0}")]
    Points(String),
    /// An event or field the profile does not provide.
    #[error("{0}")]
    Refused(String),
    /// A revoke whose target is not a finding of this ledger.
    #[error("revoke target `{0}` is not a finding in this ledger")]
    UnknownTarget(String),
    /// An id used before.
    #[error("duplicate event id (first on line {0})")]
    Duplicate(u64),
    /// Anything else, explained.
    #[error("{0}")]
    Invalid(String),
}

/// A refused ledger line: its number, the event id if it has one, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}{}: {problem}", id.as_ref().map(|i| format!(", event {i}")).unwrap_or_default())]
pub struct LedgerError {
    /// 1-based line number in the ledger file.
    pub line: u64,
    /// The event id, when the line has one.
    pub id: Option<String>,
    /// Why.
    pub problem: Problem,
}

/// Responsibility for a finding (Qinghai Art. 10(7)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Responsibility {
    /// 一般责任: the band's low end.
    General,
    /// 重要责任: the band's middle.
    Important,
    /// 主要责任: the band's high end.
    Main,
}

impl Responsibility {
    /// The points this responsibility takes in the item's band.
    pub fn points(self, item: &Item) -> u32 {
        match self {
            Responsibility::General => item.low,
            Responsibility::Important => item.middle(),
            Responsibility::Main => item.high,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Responsibility::General => "general",
            Responsibility::Important => "important",
            Responsibility::Main => "main",
        }
    }
}

/// Lighter or heavier scoring (Qinghai Art. 10(7)4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adjust {
    /// 从轻 / 减轻一档.
    Lighter,
    /// 从重 / 加重一档.
    Heavier,
}

/// How a repair was earned (Qinghai Art. 17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepairMethod {
    /// Training (学习培训), Art. 17(1).
    Training,
    /// Taking part in an activity (宣传活动、飞行检查…), Art. 17(2).
    Activity,
}

/// A finding, with its points resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The case (稽核案例 / 监督检查) it belongs to.
    pub case_id: String,
    /// The catalogue item id.
    pub item: String,
    /// Where it was found, if given.
    pub institution: Option<InstitutionCode>,
    /// The points it carries (given, or from the responsibility).
    pub points: u32,
    /// Responsibility, if given.
    pub responsibility: Option<Responsibility>,
    /// Adjustment, if any.
    pub adjust: Option<Adjust>,
    /// The suspension length the decision names, if it crosses a variable-length threshold.
    pub suspend_months: Option<u32>,
}

/// What an event does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A violation found in a case.
    Finding(Finding),
    /// Points removed.
    Repair {
        /// Training or activity.
        method: RepairMethod,
        /// Points it removes.
        points: u32,
    },
    /// The year's points and any running suspension cleared.
    Clear,
    /// An approved application to restore after suspension.
    Restore,
    /// A finding withdrawn after appeal.
    Revoke {
        /// The finding's id.
        target: String,
    },
    /// A registration begins.
    Register {
        /// Where.
        institution: InstitutionCode,
    },
    /// A registration ends.
    Deregister {
        /// Where.
        institution: InstitutionCode,
    },
    /// An institution's agreement suspended or terminated.
    Institution {
        /// Which.
        institution: InstitutionCode,
        /// Suspended or terminated.
        status: Status,
        /// End of a suspension (exclusive); `None`: open-ended.
        until: Option<NaiveDate>,
        /// Codes held responsible.
        responsible: Vec<PractitionerCode>,
    },
}

/// One ledger event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Line number in the ledger file.
    pub line: u64,
    /// Its id.
    pub id: String,
    /// The practitioner; `None` only for institution events.
    pub code: Option<PractitionerCode>,
    /// When it was decided; points take effect then (Qinghai Art. 10(1)).
    pub decided_at: BjTime,
    /// What it does.
    pub kind: EventKind,
}

impl Event {
    /// The day it was decided.
    pub fn day(&self) -> NaiveDate {
        self.decided_at.date()
    }

    /// The `type` as written.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            EventKind::Finding(_) => "finding",
            EventKind::Repair { .. } => "repair",
            EventKind::Clear => "clear",
            EventKind::Restore => "restore",
            EventKind::Revoke { .. } => "revoke",
            EventKind::Register { .. } => "register",
            EventKind::Deregister { .. } => "deregister",
            EventKind::Institution { .. } => "institution",
        }
    }
}

/// A checked ledger, in decision order (`decided_at`, then `id`).
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    events: Vec<Event>,
}

impl Ledger {
    /// Checks ids and revokes across the ledger and orders the events. `events` in file order.
    pub fn new(mut events: Vec<Event>) -> Result<Ledger, LedgerError> {
        let mut first: BTreeMap<String, usize> = BTreeMap::new();
        for (i, e) in events.iter().enumerate() {
            if let Some(&j) = first.get(&e.id) {
                let problem = Problem::Duplicate(events[j].line);
                return Err(LedgerError { line: e.line, id: Some(e.id.clone()), problem });
            }
            first.insert(e.id.clone(), i);
        }
        let mut fill: Vec<(usize, PractitionerCode)> = Vec::new();
        for e in &events {
            let EventKind::Revoke { target } = &e.kind else { continue };
            let fail = |problem| LedgerError { line: e.line, id: Some(e.id.clone()), problem };
            let t = first.get(target).map(|&j| &events[j]);
            let Some(t @ Event { kind: EventKind::Finding(_), .. }) = t else {
                return Err(fail(Problem::UnknownTarget(target.clone())));
            };
            if t.decided_at > e.decided_at {
                return Err(fail(Problem::Invalid(format!(
                    "revoke decided before its target `{target}` ({})",
                    t.decided_at
                ))));
            }
            match (&e.code, &t.code) {
                (Some(a), Some(b)) if a != b => {
                    return Err(fail(Problem::Invalid(format!("field `code`: the target `{target}` is about {b}"))));
                }
                (None, Some(b)) => fill.push((first[&e.id], b.clone())),
                _ => {}
            }
        }
        for (i, code) in fill {
            events[i].code = Some(code);
        }
        events.sort_by(|a, b| (a.decided_at, &a.id).cmp(&(b.decided_at, &b.id)));
        Ok(Ledger { events })
    }

    /// Parses non-blank lines (`(number, bytes)`, in file order) and checks the whole.
    pub fn parse<'a>(lines: impl IntoIterator<Item = (u64, &'a [u8])>, rules: &Scoring) -> Result<Ledger, LedgerError> {
        let mut events = Vec::new();
        for (n, bytes) in lines {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            events.push(parse_event(n, bytes, rules)?);
        }
        Ledger::new(events)
    }

    /// The events, in decision order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }
}
