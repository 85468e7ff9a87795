//! The decision: rules.md's order of checks, with the emergency exception — pure.
//!
//! `decide(&Claim, &View, &Profile)` reads nothing but its arguments: no clock, no I/O, no locks. The
//! same claim, tables and profile always give the same outcome (rules.md, "Determinism").

use crate::profile::{LegacyCodes, Profile};
use crate::record::{Claim, Outcome, Reason, Status, Verdict};
use crate::table::{View, institution_status};

/// Is the claim an emergency (rules.md, "Emergency exception")?
#[inline]
pub fn is_emergency(claim: &Claim<'_>, profile: &Profile) -> bool {
    claim.er_flag || claim.adm_via_emergency || profile.is_emergency_med_type(claim.med_type)
}

/// Decides one claim line.
///
/// The first failed check decides, unless the claim is an emergency and the profile lets emergencies
/// pass that check: then the check is recorded as overridden and the following checks still run, so a
/// terminated person cannot pass as merely unregistered. If every failure was overridable, the claim
/// is accepted with `EMERGENCY_OVERRIDE` naming the first.
#[inline]
pub fn decide<'p>(claim: &Claim<'_>, view: &View, profile: &'p Profile) -> Outcome<'p> {
    let t = claim.fee_ocur_time;
    let emergency = is_emergency(claim, profile);
    let mut overridden: Option<Reason> = None;

    let reject = |r: Reason, pv, iv, legacy| Outcome {
        verdict: Verdict::Reject,
        reason: r,
        overridden: None,
        rule: profile.rule(r),
        practitioner_version: pv,
        institution_version: iv,
        legacy_code: legacy,
    };

    // Checks 1-3: the institution and the department. An institution unknown to the table is
    // designated and normal (rules.md).
    let institution = view.institution(claim.fixmedins_code);
    let institution_version = institution.map(|i| i.version);
    let inst = institution.map(|i| institution_status(i, t, claim.bilg_dept_codg.as_deref()));

    let legacy = !claim.practitioner().is_national();
    let person = if legacy && profile.legacy_codes == LegacyCodes::Unregistered {
        None
    } else {
        view.practitioner(claim.practitioner())
    };
    let practitioner_version = person.map(|p| p.version());

    let failures = [
        (Reason::InstitutionTerminated, inst.is_some_and(|s| s.whole == Some(Status::Terminated))),
        (Reason::InstitutionSuspended, inst.is_some_and(|s| s.whole == Some(Status::Suspended))),
        (Reason::DepartmentSuspended, inst.is_some_and(|s| s.department_suspended)),
    ];
    for (reason, failed) in failures {
        if failed {
            if emergency && profile.overridable(reason) {
                overridden.get_or_insert(reason);
            } else {
                return reject(reason, practitioner_version, institution_version, legacy);
            }
        }
    }

    // Checks 4-7: the person. Status periods are read whatever the registration checks found.
    let registered_anywhere = person.is_some_and(|p| p.registered_anywhere(t));
    let registered_here = registered_anywhere && person.is_some_and(|p| p.registered_at(claim.fixmedins_code, t));
    let status = person.and_then(|p| p.status_at(t));
    let failures = [
        (Reason::PractitionerUnregistered, !registered_anywhere),
        (Reason::PractitionerNotRegisteredHere, !registered_here),
        (Reason::PractitionerTerminated, status == Some(Status::Terminated)),
        (Reason::PractitionerSuspended, status == Some(Status::Suspended)),
    ];
    for (reason, failed) in failures {
        if failed {
            if emergency && profile.overridable(reason) {
                overridden.get_or_insert(reason);
            } else {
                return reject(reason, practitioner_version, institution_version, legacy);
            }
        }
    }

    match overridden {
        None => Outcome {
            verdict: Verdict::Accept,
            reason: Reason::Ok,
            overridden: None,
            rule: profile.rule(Reason::Ok),
            practitioner_version,
            institution_version,
            legacy_code: legacy,
        },
        Some(r) => Outcome {
            verdict: Verdict::Accept,
            reason: Reason::EmergencyOverride,
            overridden: Some(r),
            rule: profile.override_rule(r),
            practitioner_version,
            institution_version,
            legacy_code: legacy,
        },
    }
}

#[cfg(test)]
mod tests;
