//! The scoring report (scoring.md, "Output"): per practitioner, points per cycle, every event with what
//! it did or why it was ignored, the periods with their basis and why each ends where it does, flags
//! and bans; per institution, what institution events did and the ratio flags. Data, and its
//! Markdown form — no timestamps, so the same ledger gives the same report.

use std::fmt::Write;

use chrono::NaiveDate;

use super::ledger::Event;
use super::rules::{Flag, RatioCount};
use crate::record::Status;

/// What one event did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventNote {
    /// Ledger line.
    pub line: u64,
    /// Event id.
    pub id: String,
    /// Decision day.
    pub day: NaiveDate,
    /// Event type.
    pub kind: &'static str,
    /// False: ignored, and `text` says why.
    pub applied: bool,
    /// What it did.
    pub text: String,
}

impl EventNote {
    /// A note on `e`.
    pub fn new(e: &Event, applied: bool, text: String) -> Self {
        EventNote { line: e.line, id: e.id.clone(), day: e.day(), kind: e.type_name(), applied, text }
    }
}

/// A flag raised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagNote {
    /// Which.
    pub flag: Flag,
    /// The cycle's label.
    pub cycle: String,
    /// The threshold it belongs to.
    pub at: u32,
    /// The total that reached it.
    pub total: u32,
    /// The article.
    pub article: String,
    /// The event that raised it.
    pub id: String,
    /// When.
    pub day: NaiveDate,
}

/// A ban on registering again, or a registration made during one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanNote {
    /// No registration before this day.
    pub until: NaiveDate,
    /// Why.
    pub text: String,
}

/// Points of one cycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CycleNote {
    /// "2026", or "the agreement period …".
    pub label: String,
    /// Points counted.
    pub deducted: u32,
    /// Points repaired.
    pub repaired: u32,
    /// Points cleared.
    pub cleared: u32,
    /// At the end of the ledger.
    pub total: u32,
    /// Highest reached.
    pub peak: u32,
}

/// A derived period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeriodNote {
    /// Suspended or terminated.
    pub status: Status,
    /// First day.
    pub from: NaiveDate,
    /// First day after; `None`: open.
    pub until: Option<NaiveDate>,
    /// Profile, article, total.
    pub basis: String,
    /// The event that decided it.
    pub decision_id: String,
    /// Why it ends where it does.
    pub how: String,
    /// Years without a holiday list that its notice period crossed (counted on weekends only): the
    /// period is provisional, to be replaced by a run with those years' calendar. Empty: final.
    pub provisional: Vec<i32>,
}

/// One practitioner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonReport {
    /// The code.
    pub code: String,
    /// Points per cycle.
    pub cycles: Vec<CycleNote>,
    /// Events, in decision order.
    pub events: Vec<EventNote>,
    /// Periods derived (those that took effect).
    pub periods: Vec<PeriodNote>,
    /// Flags.
    pub flags: Vec<FlagNote>,
    /// Bans.
    pub bans: Vec<BanNote>,
}

/// One institution in one year (or agreement period) with counted periods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstitutionNote {
    /// Institution code.
    pub institution: String,
    /// The natural year (`2026`) or the agreement period it counts over.
    pub period: String,
    /// Registered staff of the kinds the profile rates, in that period.
    pub staff: u32,
    /// Periods or persons counted.
    pub counted: u32,
    /// The highest level reached, with its rule and article.
    pub level: Option<String>,
}

/// What the profile's institution ratio counts, for the report's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RatioRule {
    /// The article.
    pub article: String,
    /// Periods or persons.
    pub count: RatioCount,
    /// Which statuses count.
    pub statuses: Vec<Status>,
    /// The kinds of person it rates; `None`: everyone.
    pub kinds: Option<Vec<String>>,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Profile name.
    pub profile: String,
    /// Ledger events.
    pub events: usize,
    /// Records out: one per code held (given to scoring or not) and one per code only in the ledger.
    pub records: usize,
    /// Of which changed (version bumped).
    pub changed: usize,
    /// Of which new (codes only in the ledger).
    pub new: usize,
    /// Input records not written because a higher version of the same code was given.
    pub stale: usize,
    /// Practitioners the ledger named, by code.
    pub practitioners: Vec<PersonReport>,
    /// What institution events did.
    pub institution_events: Vec<EventNote>,
    /// The ratio rule, if the profile has one.
    pub ratio: Option<RatioRule>,
    /// Institutions with counted periods.
    pub institutions: Vec<InstitutionNote>,
}

impl Report {
    /// Periods derived.
    pub fn periods(&self) -> usize {
        self.practitioners.iter().map(|p| p.periods.len()).sum()
    }

    /// Flags raised.
    pub fn flags(&self) -> usize {
        self.practitioners.iter().map(|p| p.flags.len()).sum()
    }

    /// Periods whose notice was counted without a year's holiday list, with their practitioner.
    pub fn provisional(&self) -> impl Iterator<Item = (&str, &PeriodNote)> {
        self.practitioners
            .iter()
            .flat_map(|p| p.periods.iter().filter(|d| !d.provisional.is_empty()).map(move |d| (p.code.as_str(), d)))
    }

    /// Events ignored, with the reason in their note.
    pub fn ignored(&self) -> usize {
        let events = self.practitioners.iter().flat_map(|p| &p.events).chain(&self.institution_events);
        events.filter(|e| !e.applied).count()
    }
}

/// "1 event", "3 events".
pub fn count(n: usize, unit: &str) -> String {
    if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") }
}

/// Which records a run wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Written {
    /// Every record out (unchanged ones too).
    #[default]
    All,
    /// Only the changed records (new ones included).
    Changed,
}

/// Where the run's inputs came from, and what it wrote, for the report's head.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// The profile, with its title.
    pub profile: String,
    /// The ledger file.
    pub ledger: String,
    /// The practitioner file, if any.
    pub practitioners: Option<String>,
    /// Which records were written.
    pub written: Written,
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn day(d: Option<NaiveDate>) -> String {
    d.map_or("open".into(), |d| d.to_string())
}

fn event_rows(out: &mut String, events: &[EventNote]) {
    out.push_str("| line | event | type | decided | | effect |\n|---:|---|---|---|---|---|\n");
    for e in events {
        let state = if e.applied { "applied" } else { "**ignored**" };
        let _ =
            writeln!(out, "| {} | {} | {} | {} | {state} | {} |", e.line, cell(&e.id), e.kind, e.day, cell(&e.text));
    }
}

/// The report as Markdown.
pub fn markdown(r: &Report, sources: &Sources) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Scoring report — {}\n", r.profile);
    let _ = writeln!(out, "- Profile: {}", cell(&sources.profile));
    let _ = writeln!(out, "- Ledger: {} ({} events)", cell(&sources.ledger), r.events);
    let _ =
        writeln!(out, "- Practitioner records: {}", sources.practitioners.as_deref().map_or("none given".into(), cell));
    let unchanged = r.records - r.changed;
    let stale = if r.stale > 0 {
        format!("; {} stale input records dropped (a higher version was given)", r.stale)
    } else {
        String::new()
    };
    let _ = match sources.written {
        Written::All => writeln!(
            out,
            "- Written: {} records — {} changed (version raised), {} of them new, {} unchanged{stale}\n",
            r.records, r.changed, r.new, unchanged,
        ),
        Written::Changed => writeln!(
            out,
            "- Written: the {} changed records (version raised), {} of them new; {} unchanged not written{stale}\n",
            r.changed, r.new, unchanged,
        ),
    };
    let _ = writeln!(
        out,
        "{} named by the ledger; {} derived; {}; {} ignored.\n",
        count(r.practitioners.len(), "practitioner"),
        count(r.periods(), "period"),
        count(r.flags(), "flag"),
        count(r.ignored(), "event")
    );

    let provisional: Vec<(&str, &PeriodNote)> = r.provisional().collect();
    if !provisional.is_empty() {
        out.push_str("## Provisional periods\n\n");
        let _ = writeln!(
            out,
            "{} counted {} notice period over a year whose State Council holiday schedule was not loaded: weekends \
             were skipped, holidays and make-up working days were not. Load the schedule (`claimgate score --calendar \
             FILE`) and run this ledger again: the new run replaces these periods.\n",
            count(provisional.len(), "period"),
            if provisional.len() == 1 { "its" } else { "their" }
        );
        out.push_str("| practitioner | status | from | until | decision | years without a holiday list |\n|---|---|---|---|---|---|\n");
        for (code, d) in provisional {
            let years: Vec<String> = d.provisional.iter().map(i32::to_string).collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                cell(code),
                d.status.as_str(),
                d.from,
                day(d.until),
                cell(&d.decision_id),
                years.join(", ")
            );
        }
        out.push('\n');
    }

    out.push_str("## Practitioners\n");
    for p in &r.practitioners {
        let _ = writeln!(out, "\n### {}\n", cell(&p.code));
        if !p.cycles.is_empty() {
            out.push_str(
                "| cycle | deducted | repaired | cleared | total | highest |\n|---|---:|---:|---:|---:|---:|\n",
            );
            for c in &p.cycles {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} |",
                    c.label, c.deducted, c.repaired, c.cleared, c.total, c.peak
                );
            }
            out.push('\n');
        }
        event_rows(&mut out, &p.events);
        if p.periods.is_empty() {
            out.push_str("\nNo period derived.\n");
        } else {
            out.push_str("\n| status | from | until | basis | decision | how it ends |\n|---|---|---|---|---|---|\n");
            for d in &p.periods {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} |",
                    d.status.as_str(),
                    d.from,
                    day(d.until),
                    cell(&d.basis),
                    cell(&d.decision_id),
                    cell(&d.how)
                );
            }
        }
        if !p.flags.is_empty() {
            out.push('\n');
            for f in &p.flags {
                let _ = writeln!(
                    out,
                    "- Flag: {} — {} points reached in {} (total {}) by {} on {} ({})",
                    f.flag.describe(),
                    f.at,
                    f.cycle,
                    f.total,
                    cell(&f.id),
                    f.day,
                    f.article
                );
            }
        }
        if !p.bans.is_empty() {
            out.push('\n');
            for b in &p.bans {
                let _ = writeln!(out, "- Ban: no registration before {} — {}", b.until, cell(&b.text));
            }
        }
    }

    out.push_str("\n## Institutions\n");
    if !r.institution_events.is_empty() {
        out.push('\n');
        event_rows(&mut out, &r.institution_events);
    }
    match &r.ratio {
        None => out.push_str("\nThe profile has no institution ratio rule.\n"),
        Some(RatioRule { article, count, statuses, kinds }) => {
            let what = match count {
                RatioCount::PersonTimes => "periods (person-times)",
                RatioCount::Persons => "persons",
            };
            let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
            let staff = kinds.as_ref().map_or("staff of every kind".to_owned(), |k| {
                k.iter().map(|x| format!("{x}s")).collect::<Vec<_>>().join(" and ")
            });
            let _ = writeln!(
                out,
                "\nRatio flags ({article}): {what} {} in the period (by decision day), by the {staff} registered in it.\n",
                statuses.join(" or ")
            );
            if r.institutions.is_empty() {
                out.push_str("No institution had a counted period.\n");
            } else {
                let _ = writeln!(
                    out,
                    "| institution | period | staff | {what} | share | flag |\n|---|---|---:|---:|---:|---|"
                );
                for i in &r.institutions {
                    let share = if i.staff == 0 { 0.0 } else { f64::from(i.counted) * 100.0 / f64::from(i.staff) };
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} | {share:.1}% | {} |",
                        i.institution,
                        i.period,
                        i.staff,
                        i.counted,
                        i.level.as_deref().map_or("—".into(), cell)
                    );
                }
            }
        }
    }
    out
}
