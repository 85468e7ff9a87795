//! Registrations and institutions in the replay: `register` / `deregister` events change a person's
//! registrations (and a registration after a ban closes a termination); `institution` events cascade
//! an institution's suspension or termination to its staff where the profile has such an article
//! (Qinghai Art. 9(6)6, Huai'an Art. 27(5)).

use std::collections::BTreeSet;

use chrono::NaiveDate;

use super::{Engine, take_person};
use crate::record::{BjTime, InstitutionCode, PractitionerCode, RegistrationText, Status};
use crate::score::ledger::{Event, Problem};
use crate::score::person::{Derived, Origin, Reg};
use crate::score::report::{BanNote, EventNote};
use crate::score::rules::{CascadeScope, CycleKind};

impl Engine<'_> {
    pub(super) fn register(&mut self, e: &Event, inst: InstitutionCode) -> Result<(), Problem> {
        let agreement = matches!(self.rules.cycle.kind, CycleKind::Agreement { .. });
        let day = e.day();
        let p = self.person(e)?;
        let mut text = Vec::new();
        if p.regs.iter().any(|r| r.institution == inst && r.covers(day)) {
            text.push(format!("already registered at {inst}"));
        } else {
            p.regs.push(Reg {
                text: RegistrationText { institution: inst.to_string(), from: day.to_string(), until: None },
                institution: inst,
                from: BjTime::from_date(day),
                until: BjTime::MAX,
            });
            text.push(format!("registered at {inst} from {day}"));
        }
        let mut reanchor = false;
        let mut banned = Vec::new();
        for d in p.periods.iter_mut().filter(|d| d.status == Status::Terminated && d.closed.is_none() && d.from <= day)
        {
            let allowed = d.ban_until.unwrap_or(d.from);
            if day >= allowed {
                d.closed = Some(day);
                reanchor = true;
                text.push(format!("closes the termination {}", d.decision_id));
            } else {
                banned.push((d.decision_id.clone(), allowed));
            }
        }
        for (id, until) in banned {
            text.push(format!("during the ban after {id} (until {until}): that termination stays"));
            p.bans.push(BanNote {
                until,
                text: format!("registered at {inst} on {day} ({}) during the ban after {id}", e.id),
            });
        }
        if reanchor && agreement {
            // A requalified doctor signs a new agreement (Lanzhou Art. 6(3), 18).
            p.anchors.push(day);
            p.anchors.sort();
            p.anchors.dedup();
            text.push(format!("a new agreement period starts {day}"));
        }
        p.note(e, true, text.join("; "));
        Ok(())
    }

    pub(super) fn deregister(&mut self, e: &Event, inst: InstitutionCode) -> Result<(), Problem> {
        let day = e.day();
        let p = self.person(e)?;
        let Some(at) = p.regs.iter().rposition(|r| r.institution == inst && r.covers(day)) else {
            p.note(e, false, format!("no registration at {inst} open on {day}"));
            return Ok(());
        };
        let text = if p.regs[at].from >= BjTime::from_date(day) {
            p.regs.remove(at);
            format!("registration at {inst} removed: it began {day}")
        } else {
            let reg = &mut p.regs[at];
            reg.until = BjTime::from_date(day);
            reg.text.until = Some(day.to_string());
            format!("registration at {inst} ends {day}")
        };
        p.note(e, true, text);
        Ok(())
    }

    /// Codes registered at `inst` on `day`, from the people seen so far and the input records.
    fn registered_at(&self, inst: InstitutionCode, day: NaiveDate) -> BTreeSet<PractitionerCode> {
        let here = |regs: &[Reg]| regs.iter().any(|r| r.institution == inst && r.covers(day));
        let seen = self.persons.iter().filter(|(_, p)| here(&p.regs)).map(|(c, _)| c.clone());
        let rest = self.base.iter().filter(|(c, r)| !self.persons.contains_key(*c) && here(r)).map(|(c, _)| c.clone());
        seen.chain(rest).collect()
    }

    pub(super) fn institution(
        &mut self,
        e: &Event,
        inst: InstitutionCode,
        status: Status,
        until: Option<NaiveDate>,
        responsible: &[PractitionerCode],
    ) -> Result<(), Problem> {
        let rules = self.rules;
        let day = e.day();
        let span = until.map_or("open-ended".to_owned(), |u| format!("until {u}"));
        let Some(c) = &rules.cascade else {
            let text = format!(
                "{inst} {} from {day} ({span}): {} has no article extending it to the staff",
                status.as_str(),
                rules.profile
            );
            self.institution_log.push(EventNote::new(e, false, text));
            return Ok(());
        };
        let targets: Vec<PractitionerCode> = match c.scope {
            CascadeScope::Responsible => responsible.to_vec(),
            CascadeScope::Registered => self.registered_at(inst, day).into_iter().collect(),
        };
        // Only the persons the profile's rules govern (Huai'an Art. 2: doctors).
        let (targets, others): (Vec<PractitionerCode>, Vec<PractitionerCode>) =
            targets.into_iter().partition(|code| self.of_kind(code, c.kinds.as_deref()));
        for code in &targets {
            let p = take_person(&mut self.persons, rules, &self.base, &self.first_register, code);
            let basis =
                format!("{} {}: institution {inst} {} on {day} ({span})", rules.profile, c.article, status.as_str());
            p.periods.push(Derived {
                status,
                from: day,
                planned_end: until,
                needs_restore: false,
                restored: None,
                cut: None,
                closed: None,
                ban_until: None,
                one_shot: false,
                origin: Origin::Cascade,
                decided: day,
                decision_id: e.id.clone(),
                basis,
                provisional: Vec::new(),
            });
            p.note(
                e,
                true,
                format!("{inst} {}: {} from {day} ({span}, {})", status.as_str(), status.as_str(), c.article),
            );
        }
        let who = match c.scope {
            CascadeScope::Responsible => "staff held responsible",
            CascadeScope::Registered => "staff registered there",
        };
        let list: Vec<String> = targets.iter().map(|c| c.to_string()).collect();
        let mut text = format!(
            "{inst} {} from {day} ({span}): {} {who} {} too ({}){}",
            status.as_str(),
            targets.len(),
            status.as_str(),
            c.article,
            if list.is_empty() { String::new() } else { format!(": {}", list.join(", ")) }
        );
        if let (false, Some(kinds)) = (others.is_empty(), &c.kinds) {
            text.push_str(&format!(
                "; {} not reached: {} governs {} only",
                others.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", "),
                rules.profile,
                kinds.join(", ")
            ));
        }
        self.institution_log.push(EventNote::new(e, true, text));
        Ok(())
    }
}
