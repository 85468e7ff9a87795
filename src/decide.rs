//! The decision: rules.md's order of checks, with the emergency exception, every responsible person
//! on the line, local ids and warn-only reasons — pure.
//!
//! `decide(&Claim, &View, &Profile)` reads nothing but its arguments: no clock, no I/O, no locks. The
//! same claim, tables and profile always give the same outcome (rules.md, "Determinism"). Which profile
//! decides a line is the routing table's business ([`crate::routing`]); [`crate::batch::process`]
//! chooses it, checks the person fields it reads, and calls this.

use crate::profile::{LegacyCodes, Profile};
use crate::record::{Claim, Outcome, PractitionerCode, PractitionerKey, Reason, Role, Status, Verdict};
use crate::table::{PractitionerRef, View, institution_status};

/// Is the claim an emergency (rules.md, "Emergency exception")?
#[inline]
pub fn is_emergency(claim: &Claim<'_>, profile: &Profile) -> bool {
    claim.er_flag || claim.adm_via_emergency || profile.is_emergency_med_type(claim.med_type)
}

/// A failed check, and whose.
type Failure = (Reason, Option<Role>);

/// The failures met so far that did not reject.
struct Chain<'p> {
    profile: &'p Profile,
    emergency: bool,
    t: crate::record::BjTime,
    overridden: Option<Failure>,
    warned: Option<Failure>,
}

impl Chain<'_> {
    /// A failed check: overridden (an emergency the profile lets pass), warned (the profile only warns
    /// about it at this service time), or the rejection.
    #[inline]
    fn failed(&mut self, reason: Reason, role: Option<Role>) -> Option<Failure> {
        if self.emergency && self.profile.overridable(reason) {
            self.overridden.get_or_insert((reason, role));
            None
        } else if self.profile.warned(reason, self.t) {
            self.warned.get_or_insert((reason, role));
            None
        } else {
            Some((reason, role))
        }
    }
}

/// One person on the line as the tables know them: their record, and whether check 4 already failed
/// for their code (with which reason) whatever the record says.
struct Person<'v> {
    record: Option<PractitionerRef<'v>>,
    code_fails: Option<Reason>,
}

/// Finds the person a code names (rules.md, "Local ids"). The status periods of a person the table
/// knows are always read: a terminated person never passes as unregistered or unmapped.
#[inline]
fn person<'v>(claim: &Claim<'_>, key: PractitionerKey<'_>, view: &'v View, profile: &Profile) -> Person<'v> {
    let PractitionerKey::Legacy(id) = key else {
        return Person { record: view.practitioner(key), code_fails: None };
    };
    match profile.legacy_codes {
        LegacyCodes::Lookup => Person { record: view.practitioner(key), code_fails: None },
        LegacyCodes::Unregistered => {
            Person { record: view.practitioner(key), code_fails: Some(Reason::PractitionerUnregistered) }
        }
        LegacyCodes::Map => match view.mapped(claim.fixmedins_code, id, claim.fee_ocur_time) {
            Some(national) => {
                Person { record: view.practitioner(PractitionerKey::National(national)), code_fails: None }
            }
            None => Person { record: view.practitioner(key), code_fails: Some(Reason::PractitionerCodeUnmapped) },
        },
    }
}

/// The record the checks read for the person `key` names on `claim` — through the mapping table where
/// the profile maps local ids — with its code: the status rows behind a decision, for explaining one
/// (the stream's `POST /v1/decide`). `None` when the table holds no record for that person.
pub fn person_record<'v>(
    claim: &Claim<'_>,
    key: PractitionerKey<'_>,
    view: &'v View,
    profile: &Profile,
) -> Option<(PractitionerCode, PractitionerRef<'v>)> {
    let code = match (key, profile.legacy_codes) {
        (PractitionerKey::Legacy(id), LegacyCodes::Map) => view
            .mapped(claim.fixmedins_code, id, claim.fee_ocur_time)
            .map_or_else(|| key.to_owned(), PractitionerCode::National),
        _ => key.to_owned(),
    };
    person(claim, key, view, profile).record.map(|r| (code, r))
}

/// Decides one claim line under one profile.
///
/// Checks 1-3 concern the institution; checks 4-7 run for each person the profile checks on the line
/// ([`Profile::roles_for`]), person by person. The first failed check decides, unless the claim is an
/// emergency and the profile lets emergencies pass that check (then it is recorded as overridden), or
/// the profile only warns about it at the line's service time (then it is recorded as what the line
/// would be rejected for); either way the following checks still run, so a terminated person cannot
/// pass as merely unregistered. An accepted line names the first overridden reason and the first
/// warned one.
///
/// Check 5 (registered here) runs only for a person registered somewhere: a person check 4 found
/// unregistered or unmapped is not, in addition, registered elsewhere.
///
/// A person field that is present but not a code counts as a code the tables do not know;
/// [`crate::batch::process`] refuses such a line before it gets here ([`Profile::check_fields`]).
#[inline]
pub fn decide<'p>(claim: &Claim<'_>, view: &View, profile: &'p Profile) -> Outcome<'p> {
    let t = claim.fee_ocur_time;
    let mut chain = Chain { profile, emergency: is_emergency(claim, profile), t, overridden: None, warned: None };

    // Checks 1-3: the institution and the department. An institution unknown to the table is
    // designated and normal (rules.md).
    let institution = view.institution(claim.fixmedins_code);
    let institution_version = institution.map(|i| i.version);
    let inst = institution.map(|i| institution_status(i, t, claim.bilg_dept_codg.as_deref()));
    let failures = [
        (Reason::InstitutionTerminated, inst.is_some_and(|s| s.whole == Some(Status::Terminated))),
        (Reason::InstitutionSuspended, inst.is_some_and(|s| s.whole == Some(Status::Suspended))),
        (Reason::DepartmentSuspended, inst.is_some_and(|s| s.department_suspended)),
    ];
    let mut rejected = failures.into_iter().filter(|f| f.1).find_map(|(r, _)| chain.failed(r, None));

    // Checks 4-7, person by person. Versions are remembered per role for the decision record.
    let mut versions: [Option<u64>; 3] = [None; 3];
    let mut legacy = false;
    if rejected.is_none() {
        for role in profile.roles_for(claim) {
            let key = match claim.person(role) {
                None => continue,
                Some(Ok(key)) => key,
                // Refused by `process`; here, a code no table knows.
                Some(Err(_)) => PractitionerKey::Legacy(""),
            };
            legacy |= !key.is_national();
            let p = person(claim, key, view, profile);
            versions[role as usize] = p.record.map(|r| r.version());
            let registered_anywhere = p.code_fails.is_none() && p.record.is_some_and(|r| r.registered_anywhere(t));
            let status = p.record.and_then(|r| r.status_at(t));
            let checks = [
                (p.code_fails.unwrap_or(Reason::PractitionerUnregistered), !registered_anywhere),
                (
                    Reason::PractitionerNotRegisteredHere,
                    registered_anywhere && !p.record.is_some_and(|r| r.registered_at(claim.fixmedins_code, t)),
                ),
                (Reason::PractitionerTerminated, status == Some(Status::Terminated)),
                (Reason::PractitionerSuspended, status == Some(Status::Suspended)),
            ];
            rejected = checks.into_iter().filter(|f| f.1).find_map(|(r, _)| chain.failed(r, Some(role)));
            if rejected.is_some() {
                break;
            }
        }
    } else {
        // The decision still names the billing practitioner's record version, as before roles.
        let key = claim.practitioner();
        legacy = !key.is_national();
        versions[0] = person(claim, key, view, profile).record.map(|r| r.version());
    }

    let version_of = |role: Option<Role>| versions[role.map_or(0, |r| r as usize)];
    let outcome = |verdict, reason, rule, overridden: Option<Reason>, shown: Option<Failure>| Outcome {
        verdict,
        reason,
        overridden,
        would_reject: chain.warned.filter(|_| verdict == Verdict::Accept).map(|w| w.0),
        role: shown.and_then(|f| f.1),
        rule,
        profile: &profile.name,
        practitioner_version: version_of(shown.and_then(|f| f.1)),
        institution_version,
        legacy_code: legacy,
    };
    match (rejected, chain.overridden) {
        (Some((r, role)), _) => outcome(Verdict::Reject, r, profile.rule(r), None, Some((r, role))),
        (None, None) => outcome(Verdict::Accept, Reason::Ok, profile.rule(Reason::Ok), None, chain.warned),
        (None, Some((r, role))) => outcome(
            Verdict::Accept,
            Reason::EmergencyOverride,
            profile.override_rule(r),
            Some(r),
            chain.warned.or(Some((r, role))),
        ),
    }
}

#[cfg(test)]
mod tests;
