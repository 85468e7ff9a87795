//! The recovery report (docs/recovery-report.md): the lines whose verdict changed against the inline
//! decisions — accepted inline and rejected now, **to recover**; rejected inline and accepted now,
//! **to pay** — with the money summed exactly, by institution and by practitioner, and, in a
//! late-change review, the status decision (`decision_id`, `basis`) that caused each change.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use claimgate::record::{InstitutionCode, Reason, RetroChange};

use super::report::{Changed, RunInfo, Stats, Tally, name_of, yuan};

fn is_accept(r: Reason) -> bool {
    matches!(r, Reason::Ok | Reason::EmergencyOverride)
}

/// Which way a line changed, if its verdict did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Accepted inline, rejected now.
    Recover,
    /// Rejected inline, accepted now.
    Pay,
}

/// The way a changed line went (`None`: same verdict, other reason).
pub fn direction(c: &Changed) -> Option<Direction> {
    match (is_accept(c.before), is_accept(c.after)) {
        (true, false) => Some(Direction::Recover),
        (false, true) => Some(Direction::Pay),
        _ => None,
    }
}

/// To recover and to pay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Money {
    /// Accepted inline, rejected now.
    pub recover: Tally,
    /// Rejected inline, accepted now.
    pub pay: Tally,
}

impl Money {
    fn add(&mut self, c: &Changed) {
        match direction(c) {
            Some(Direction::Recover) => self.recover.add(c.amount),
            Some(Direction::Pay) => self.pay.add(c.amount),
            None => {}
        }
    }
}

/// The recovery report's sums.
#[derive(Debug, Default)]
pub struct Recovery {
    /// In all.
    pub total: Money,
    /// By institution, largest amount to recover first.
    pub by_institution: Vec<(InstitutionCode, Money)>,
    /// By practitioner (the person the current decision concerns) and institution.
    pub by_practitioner: Vec<((String, InstitutionCode), Money, BTreeSet<String>)>,
}

/// The status decision that caused a change: (`decision_id`, `basis`), where the late change names them.
pub fn cause<'a>(
    c: &Changed,
    retro: Option<&'a [RetroChange]>,
) -> Option<(&'a RetroChange, Option<&'a str>, Option<&'a str>)> {
    let change = retro?.get(c.cause? as usize)?;
    let entry = change.cause_at(c.fee_ocur_time);
    Some((change, entry.and_then(|e| e.decision_id.as_deref()), entry.and_then(|e| e.basis.as_deref())))
}

impl Recovery {
    /// Sums the changed lines.
    pub fn of(stats: &Stats, info: &RunInfo) -> Recovery {
        let mut r = Recovery::default();
        let mut insts: BTreeMap<InstitutionCode, Money> = BTreeMap::new();
        let mut people: BTreeMap<(String, InstitutionCode), (Money, BTreeSet<String>)> = BTreeMap::new();
        for c in &stats.changed {
            if direction(c).is_none() {
                continue;
            }
            r.total.add(c);
            insts.entry(c.fixmedins_code).or_default().add(c);
            let p = people.entry((c.practitioner.clone(), c.fixmedins_code)).or_default();
            p.0.add(c);
            if let Some((_, decision, _)) = cause(c, info.retro.as_deref()) {
                p.1.insert(decision.unwrap_or("not recorded").to_owned());
            }
        }
        r.by_institution = insts.into_iter().collect();
        r.by_institution
            .sort_by(|a, b| (b.1.recover.fen, b.1.pay.fen).cmp(&(a.1.recover.fen, a.1.pay.fen)).then(a.0.cmp(&b.0)));
        r.by_practitioner = people.into_iter().map(|(k, (m, d))| (k, m, d)).collect();
        r.by_practitioner
            .sort_by(|a, b| (b.1.recover.fen, b.1.pay.fen).cmp(&(a.1.recover.fen, a.1.pay.fen)).then(a.0.cmp(&b.0)));
        r
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The late changes reviewed, one row each.
fn changes_table(s: &mut String, changes: &[RetroChange]) {
    let _ = writeln!(
        s,
        "| status change | code | service times affected | versions | what changed | decision | basis |\n|---|---|---|---|---|---|---|"
    );
    for c in changes {
        let what: Vec<String> = c
            .changes
            .iter()
            .map(|e| {
                let subject = match (&e.status, &e.institution, &e.departments) {
                    (Some(st), _, Some(d)) => format!("{} of {}", st.as_str(), d.join(", ")),
                    (Some(st), _, None) => st.as_str().to_owned(),
                    (None, Some(i), _) => format!("registration at {i}"),
                    _ => e.entry.clone(),
                };
                let until = e.until.as_deref().unwrap_or("further notice");
                format!(
                    "{} {subject} {} – {until}",
                    if e.change == claimgate::record::retro::Change::Added { "added" } else { "removed" },
                    e.from
                )
            })
            .collect();
        let decisions: BTreeSet<&str> = c.changes.iter().filter_map(|e| e.decision_id.as_deref()).collect();
        let bases: BTreeSet<&str> = c.changes.iter().filter_map(|e| e.basis.as_deref()).collect();
        let _ = writeln!(
            s,
            "| `{}` | {} {} | {} – {} | {} → {} | {} | {} | {} |",
            cell(&c.key()),
            match c.kind {
                claimgate::record::RetroKind::Practitioner => "practitioner",
                claimgate::record::RetroKind::Institution => "institution",
            },
            cell(&c.code),
            c.from,
            c.until,
            c.version_before.map_or("new".to_owned(), |v| v.to_string()),
            c.version_after,
            cell(&what.join("; ")),
            cell(&decisions.into_iter().collect::<Vec<_>>().join(", ")),
            cell(&bases.into_iter().collect::<Vec<_>>().join("; "))
        );
    }
}

/// Rows shown per table (the full lists are in the decisions output).
const TOP: usize = 50;

/// The recovery report, in Markdown.
pub fn markdown(s: &mut String, stats: &Stats, info: &RunInfo) {
    let Some((prev, prev_lines)) = &info.previous else { return };
    let r = Recovery::of(stats, info);
    let _ = writeln!(s, "\n## Recovery report\n");
    if let Some(changes) = &info.retro {
        let _ = writeln!(
            s,
            "A review of the claims concerned by the **late status changes** the stream wrote to the retro topic (which ones: see inputs above): {} change{}. \
             Each line whose service time lies in a change's window and that names the changed code was decided again against the tables as they stand now; no other line was.\n",
            changes.len(),
            if changes.len() == 1 { "" } else { "s" }
        );
        if !changes.is_empty() {
            changes_table(s, changes);
            s.push('\n');
        }
    }
    let _ = writeln!(
        s,
        "Compared with the inline decisions ({}), by line identity (institution, visit, serial).\n",
        if *prev_lines > 0 { format!("`{prev}`, {prev_lines} decisions") } else { prev.clone() }
    );
    let _ = writeln!(s, "| change | lines | amount |\n|---|---:|---:|");
    let _ = writeln!(
        s,
        "| accepted inline, rejected now: **to recover** | {} | {} |",
        r.total.recover.lines,
        yuan(r.total.recover.fen)
    );
    let _ = writeln!(
        s,
        "| rejected inline, accepted now: **to pay** | {} | {} |",
        r.total.pay.lines,
        yuan(r.total.pay.fen)
    );
    let other = stats.changed.len() as u64 - r.total.recover.lines - r.total.pay.lines;
    let _ = writeln!(s, "| same verdict, other reason | {other} | |");
    let _ = writeln!(s, "| decided now, absent from the inline decisions | {} | |", stats.not_in_previous);
    if r.by_institution.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n### By institution\n\n| institution | name | to recover: lines | to recover: amount | to pay: lines | to pay: amount |\n|---|---|---:|---:|---:|---:|"
    );
    for (code, m) in r.by_institution.iter().take(TOP) {
        let _ = writeln!(
            s,
            "| {code} | {} | {} | {} | {} | {} |",
            name_of(info, *code),
            m.recover.lines,
            yuan(m.recover.fen),
            m.pay.lines,
            yuan(m.pay.fen)
        );
    }
    let _ = writeln!(
        s,
        "\n### By practitioner\n\n| practitioner | institution | to recover: lines | to recover: amount | to pay: lines | to pay: amount | status decisions |\n|---|---|---:|---:|---:|---:|---|"
    );
    for ((code, inst), m, decisions) in r.by_practitioner.iter().take(TOP) {
        let _ = writeln!(
            s,
            "| `{}` | {inst} | {} | {} | {} | {} | {} |",
            cell(code),
            m.recover.lines,
            yuan(m.recover.fen),
            m.pay.lines,
            yuan(m.pay.fen),
            cell(&decisions.iter().cloned().collect::<Vec<_>>().join(", "))
        );
    }
    let _ = writeln!(
        s,
        "\n### Every changed line\n\n| institution | visit | serial | practitioner | amount | inline | now | service time | status change | decision | basis |\n|---|---|---|---|---:|---|---|---|---|---|---|"
    );
    for c in &stats.changed {
        let (key, decision, basis) = match cause(c, info.retro.as_deref()) {
            Some((change, d, b)) => {
                (format!("`{}`", cell(&change.key())), d.unwrap_or("not recorded"), b.unwrap_or("not recorded"))
            }
            None => (String::new(), "", ""),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | `{}` | {} | {} | {} | {} | {key} | {} | {} |",
            c.fixmedins_code,
            cell(&c.mdtrt_id),
            cell(&c.feedetl_sn),
            cell(&c.practitioner),
            c.amount,
            c.before,
            c.after,
            c.fee_ocur_time,
            cell(decision),
            cell(basis)
        );
    }
}
