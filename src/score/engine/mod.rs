//! The engine: replays a checked ledger in decision order over per-person state, applying the
//! profile's rules — same-case grouping, cycle totals, thresholds and their actions, notice periods,
//! restores, repairs, clears, registrations and institution cascades.
//!
//! Pure: no clock, no I/O; the same ledger, records and rules always give the same state. A revoked
//! finding is withdrawn from the start (Qinghai Art. 15: 调整记分结果、登记备案状态), so it is skipped on
//! replay and every total and period after it is as if it had never been recorded.
//!
//! `status` makes the suspensions and terminations thresholds decide; `registry` handles
//! registrations and institution events.

mod registry;
mod status;

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::cycle::{self, add_months};
use super::ledger::{Event, EventKind, Finding, LedgerError, Problem, RepairMethod};
use super::person::{Person, Reg};
use super::report::{EventNote, FlagNote};
use super::rules::{Action, CycleKind, SameCase, Scoring, Threshold};
use crate::record::{PractitionerCode, Status};
use status::{plural, suspend, terminate};

/// The replayed state.
pub struct Engine<'a> {
    rules: &'a Scoring,
    /// Registrations of the input records, by code; a person is taken from here when an event first
    /// names it.
    base: BTreeMap<PractitionerCode, Vec<Reg>>,
    first_register: BTreeMap<PractitionerCode, NaiveDate>,
    revoked: BTreeMap<String, (String, NaiveDate)>,
    /// The `kind` the input records give legacy codes (national codes carry their kind).
    kinds: BTreeMap<PractitionerCode, String>,
    /// Everyone an event named, by code.
    pub persons: BTreeMap<PractitionerCode, Person>,
    /// What institution events did.
    pub institution_log: Vec<EventNote>,
}

fn take_person<'p>(
    persons: &'p mut BTreeMap<PractitionerCode, Person>,
    rules: &Scoring,
    base: &BTreeMap<PractitionerCode, Vec<Reg>>,
    first_register: &BTreeMap<PractitionerCode, NaiveDate>,
    code: &PractitionerCode,
) -> &'p mut Person {
    persons.entry(code.clone()).or_insert_with(|| {
        let regs = base.get(code).cloned().unwrap_or_default();
        let mut p = Person::new(code.clone(), regs);
        if let CycleKind::Agreement { .. } = rules.cycle.kind {
            // Lanzhou Art. 6(3): the first agreement starts at the earliest registration.
            let earliest = p.regs.iter().map(|r| r.from.date()).chain(first_register.get(code).copied()).min();
            p.anchors.extend(earliest);
        }
        p
    })
}

/// Ranks status actions: a termination over any suspension, a longer suspension over a shorter.
fn rank(t: &Threshold) -> (u8, u32, u32, u32) {
    match t.action {
        Action::Terminate => (2, 0, t.at, t.consecutive_cycles),
        Action::Suspend { months, .. } => (1, months, t.at, t.consecutive_cycles),
        Action::Flag(_) => (0, 0, t.at, t.consecutive_cycles),
    }
}

impl<'a> Engine<'a> {
    /// Replays the events (already in decision order) over the input registrations. `kinds` gives the
    /// kind (`doctor`, `nurse`, …) of legacy codes, as their records say.
    pub fn run(
        rules: &'a Scoring,
        events: &[Event],
        base: BTreeMap<PractitionerCode, Vec<Reg>>,
        kinds: BTreeMap<PractitionerCode, String>,
    ) -> Result<Engine<'a>, LedgerError> {
        let mut revoked = BTreeMap::new();
        let mut first_register = BTreeMap::new();
        for e in events {
            match (&e.kind, &e.code) {
                (EventKind::Revoke { target }, _) => {
                    revoked.entry(target.clone()).or_insert_with(|| (e.id.clone(), e.day()));
                }
                (EventKind::Register { .. }, Some(code)) => {
                    first_register.entry(code.clone()).or_insert_with(|| e.day());
                }
                _ => {}
            }
        }
        let mut engine = Engine {
            rules,
            base,
            first_register,
            revoked,
            kinds,
            persons: BTreeMap::new(),
            institution_log: Vec::new(),
        };
        for e in events {
            engine.apply(e).map_err(|problem| LedgerError { line: e.line, id: Some(e.id.clone()), problem })?;
        }
        Ok(engine)
    }

    /// Every person's registrations: those the ledger named (as changed by it), then the other input
    /// records'.
    pub fn all_regs(&self) -> impl Iterator<Item = (&PractitionerCode, &[Reg])> {
        let named = self.persons.iter().map(|(c, p)| (c, p.regs.as_slice()));
        let others = self.base.iter().filter(|(c, _)| !self.persons.contains_key(*c)).map(|(c, r)| (c, r.as_slice()));
        named.chain(others)
    }

    /// Is the person of `code` of one of `kinds` (`None`: every kind)? A national code carries its kind;
    /// a legacy code has the one its record gives, or none, and then counts as no listed kind.
    pub fn of_kind(&self, code: &PractitionerCode, kinds: Option<&[String]>) -> bool {
        let Some(kinds) = kinds else { return true };
        let kind = code.kind().map(|k| k.as_str()).or_else(|| self.kinds.get(code).map(String::as_str));
        kind.is_some_and(|k| kinds.iter().any(|x| x == k))
    }

    fn person(&mut self, e: &Event) -> Result<&mut Person, Problem> {
        let code = e.code.as_ref().ok_or(Problem::Missing("code"))?;
        Ok(take_person(&mut self.persons, self.rules, &self.base, &self.first_register, code))
    }

    fn apply(&mut self, e: &Event) -> Result<(), Problem> {
        match &e.kind {
            EventKind::Finding(f) => self.finding(e, f),
            EventKind::Repair { method, points } => self.repair(e, *method, *points),
            EventKind::Clear => self.clear(e),
            EventKind::Restore => self.restore(e),
            EventKind::Revoke { target } => self.revoke(e, target),
            EventKind::Register { institution } => self.register(e, *institution),
            EventKind::Deregister { institution } => self.deregister(e, *institution),
            EventKind::Institution { institution, status, until, responsible } => {
                self.institution(e, *institution, *status, *until, responsible)
            }
        }
    }

    fn appeal(&self) -> String {
        self.rules.appeal.as_ref().map(|a| format!(" (appeal, {a})")).unwrap_or_default()
    }

    fn finding(&mut self, e: &Event, f: &Finding) -> Result<(), Problem> {
        let rules = self.rules;
        let withdrawn = self.revoked.get(&e.id).cloned();
        let appeal = self.appeal();
        let p = self.person(e)?;
        let points = plural(f.points, "point");
        if let Some((by, day)) = withdrawn {
            p.note(e, false, format!("{} ({points}): withdrawn by {by} on {day}{appeal}", f.item));
            return Ok(());
        }
        let kind = &rules.cycle.kind;
        let cs = p.cycle(rules, e.day())?;
        let (same_case, same_case_article) = &rules.same_case;
        let key = (
            f.case_id.clone(),
            match same_case {
                SameCase::HighestPerItem => Some(f.item.clone()),
                SameCase::HighestPerCase => None,
            },
        );
        let before = cs.groups.get(&key).copied().unwrap_or(0);
        if f.points <= before {
            let what = key.1.as_ref().map_or("the case".to_owned(), |i| format!("item {i}"));
            let text = format!(
                "{} ({points}), case {}: {what} already counts {}; only the highest counts, once ({same_case_article})",
                f.item,
                f.case_id,
                plural(before, "point")
            );
            p.note(e, false, text);
            return Ok(());
        }
        let inc = f.points - before;
        cs.groups.insert(key, f.points);
        let t0 = cs.total;
        cs.total += inc;
        cs.deducted += inc;
        cs.peak = cs.peak.max(cs.total);
        cs.reached = cs.reached.max(cs.total);
        let (t1, span, case_total) = (cs.total, cs.span, cs.case_total(&f.case_id));
        let label = cycle::label(kind, span);
        let raised = if before > 0 { format!(", raising the case's {before}") } else { String::new() };
        let mut text = format!("{} ({points}{raised}), case {}: +{inc}, total {t1} in {label}", f.item, f.case_id);

        // Thresholds crossed by this finding, with the earlier cycles a consecutive one needs.
        let mut crossed: Vec<(&Threshold, Vec<String>)> = Vec::new();
        for t in rules.thresholds.iter().filter(|t| t0 < t.at && t.at <= t1) {
            let mut earlier = Vec::new();
            let mut s = span;
            for _ in 1..t.consecutive_cycles {
                match p.previous(kind, s) {
                    Some(c) if c.reached >= t.at => {
                        earlier.push(cycle::label(kind, c.span));
                        s = c.span;
                    }
                    _ => break,
                }
            }
            if earlier.len() + 1 == t.consecutive_cycles as usize {
                earlier.reverse();
                crossed.push((t, earlier));
            }
        }
        let mut raised_flags = Vec::new();
        for (t, _) in &crossed {
            if let Action::Flag(flag) = t.action
                && !raised_flags.contains(&flag)
            {
                raised_flags.push(flag);
                p.flags.push(FlagNote {
                    flag,
                    cycle: label.clone(),
                    at: t.at,
                    total: t1,
                    article: t.article.clone(),
                    id: e.id.clone(),
                    day: e.day(),
                });
            }
        }
        let strongest =
            crossed.iter().filter(|(t, _)| !matches!(t.action, Action::Flag(_))).max_by_key(|(t, _)| rank(t));
        let Some((t, earlier)) = strongest else {
            if f.suspend_months.is_some() {
                text.push_str("; `suspend_months` unused: no suspension decided");
            }
            p.note(e, true, text);
            return Ok(());
        };
        let mut basis = format!("{} {}: {t1} points in {label}", rules.profile, t.article);
        if !earlier.is_empty() {
            basis.push_str(&format!(", and {} or more in {}", t.at, earlier.join(" and ")));
        }
        let outcome = match t.action {
            Action::Suspend { months, max_months } => {
                let m = match f.suspend_months {
                    None => months,
                    Some(m) if (months..=max_months).contains(&m) => m,
                    Some(m) => {
                        return Err(Problem::Invalid(format!(
                            "field `suspend_months`: {m}; {} allows {months}-{max_months} months",
                            t.article
                        )));
                    }
                };
                suspend(p, rules, e, m, basis)?
            }
            Action::Terminate => {
                let unused = if f.suspend_months.is_some() { "; `suspend_months` unused" } else { "" };
                terminate(p, rules, e, t.at, case_total, basis) + unused
            }
            Action::Flag(_) => String::new(),
        };
        p.note(e, true, format!("{text}; {outcome}"));
        Ok(())
    }

    fn repair(&mut self, e: &Event, method: RepairMethod, points: u32) -> Result<(), Problem> {
        let rules = self.rules;
        let r = rules.repair.as_ref().ok_or_else(|| Problem::Refused(format!("{} has no repair", rules.profile)))?;
        let day = e.day();
        let p = self.person(e)?;
        let name = if method == RepairMethod::Training { "training" } else { "activity" };
        let one_shot = p
            .periods
            .iter()
            .find(|d| d.status == Status::Terminated && d.one_shot && d.ongoing(day))
            .map(|d| d.decision_id.clone());
        if let (true, Some(id)) = (r.one_shot_unrepairable, one_shot) {
            let text = format!(
                "{name}, {}: the termination {id} came from a single case's points and cannot be repaired ({})",
                plural(points, "point"),
                r.article
            );
            p.note(e, false, text);
            return Ok(());
        }
        let kind = &rules.cycle.kind;
        let cs = p.cycle(rules, day)?;
        let label = cycle::label(kind, cs.span);
        let refused = match (method, r.training, r.activity) {
            (RepairMethod::Training, Some(t), _) if cs.trainings >= t.per_cycle => {
                Some(format!("training: {} per cycle, already used in {label} ({})", t.per_cycle, r.article))
            }
            (RepairMethod::Activity, _, Some(a)) if cs.activity_points + points > a.max_per_cycle => Some(format!(
                "activity: activities already removed {} of at most {} points in {label} ({})",
                cs.activity_points, a.max_per_cycle, r.article
            )),
            _ => None,
        };
        if let Some(why) = refused {
            p.note(e, false, why);
            return Ok(());
        }
        // Art. 17(3): a suspension is shortened after points were repaired (修复记分后). With nothing to
        // remove, nothing is repaired: no shortening, and the year's allowance is not used up.
        if cs.total == 0 {
            let text = format!(
                "{name}, {}: removes no points, the total of {label} is already 0; nothing is repaired or shortened ({})",
                plural(points, "point"),
                r.article
            );
            p.note(e, false, text);
            return Ok(());
        }
        match method {
            RepairMethod::Training => cs.trainings += 1,
            RepairMethod::Activity => cs.activity_points += points,
        }
        let removed = points.min(cs.total);
        cs.total -= removed;
        cs.repaired += removed;
        let mut text =
            format!("{name}: removes {removed} of {points} points, total {} in {label} ({})", cs.total, r.article);
        let m = i64::from(r.shortens_months);
        for d in p.ongoing_threshold(day).filter(|_| m > 0) {
            match d.status {
                Status::Suspended => {
                    if let Some(end) = d.planned_end {
                        let shorter = add_months(end, -m).max(d.from.max(day));
                        d.planned_end = Some(shorter);
                        text.push_str(&format!("; suspension {} now planned to end {shorter}", d.decision_id));
                    }
                }
                Status::Terminated => {
                    if let Some(ban) = d.ban_until {
                        let shorter = add_months(ban, -m).max(d.from);
                        d.ban_until = Some(shorter);
                        text.push_str(&format!("; ban after {} now ends {shorter}", d.decision_id));
                    }
                }
            }
        }
        p.note(e, true, text);
        Ok(())
    }

    fn clear(&mut self, e: &Event) -> Result<(), Problem> {
        let rules = self.rules;
        let article = rules.clear.clone().unwrap_or_default();
        let day = e.day();
        let p = self.person(e)?;
        let cs = p.cycle(rules, day)?;
        let n = cs.total;
        cs.cleared += n;
        cs.total = 0;
        cs.reached = 0;
        cs.groups.clear();
        let label = cycle::label(&rules.cycle.kind, cs.span);
        let mut text = format!("clears {n} points of {label} ({article})");
        let mut caused_in = Vec::new();
        for d in p.ongoing_threshold(day).filter(|d| d.status == Status::Suspended) {
            d.cut = Some((d.from.max(day), format!("cleared by {} ({article})", e.id)));
            text.push_str(&format!("; ends suspension {} on {}", d.decision_id, d.from.max(day)));
            caused_in.push(d.decided);
        }
        // 取消惩戒，扣分清零: the points that caused a cancelled punishment are cleared with it, in the cycle
        // where they were counted, so that cycle no longer counts toward "9 or more in three
        // consecutive years" (Art. 22(4)).
        let kind = &rules.cycle.kind;
        for decided in caused_in {
            let Some(span) = cycle::cycle_of(kind, &p.anchors, decided) else { continue };
            let Some(c) = p.cycles.get_mut(&span.start).filter(|c| c.total > 0 || c.reached > 0) else { continue };
            let m = c.total;
            c.cleared += m;
            c.total = 0;
            c.reached = 0;
            c.groups.clear();
            text.push_str(&format!("; clears the {} points of {} that caused it", m, cycle::label(kind, span)));
        }
        p.note(e, true, text);
        Ok(())
    }

    fn restore(&mut self, e: &Event) -> Result<(), Problem> {
        let rules = self.rules;
        let day = e.day();
        let p = self.person(e)?;
        let article = &rules.restore.article;
        if !rules.restore.required {
            let text = format!("{} needs no restore: a suspension ends at its planned end ({article})", rules.profile);
            p.note(e, false, text);
            return Ok(());
        }
        let mut done = Vec::new();
        for d in p.periods.iter_mut().filter(|d| d.needs_restore && d.restored.is_none() && d.cut.is_none()) {
            if d.decided <= day {
                d.restored = Some(day);
                done.push(format!("suspension {} ends {}", d.decision_id, d.end().unwrap_or(day)));
            }
        }
        if done.is_empty() {
            p.note(e, false, "no suspension awaiting a restore".into());
        } else {
            p.note(e, true, format!("{} ({article})", done.join("; ")));
        }
        Ok(())
    }

    fn revoke(&mut self, e: &Event, target: &str) -> Result<(), Problem> {
        let first = self.revoked.get(target).map(|(id, _)| id.clone()).unwrap_or_default();
        let appeal = self.appeal();
        let p = self.person(e)?;
        if first == e.id {
            p.note(e, true, format!("withdraws {target}: its points and the periods they caused are removed{appeal}"));
        } else {
            p.note(e, false, format!("{target} already withdrawn by {first}"));
        }
        Ok(())
    }
}
