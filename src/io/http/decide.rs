//! `POST /v1/decide`: one claim line, exactly as it would arrive on the claims topic, decided against
//! the live table by the same code the stream runs ([`claimgate::batch::process`]) — and nothing
//! produced, committed or counted in the claim metrics. For the help desk's "why was this line
//! refused?".
//!
//! The answer: `decision` (the record the stream would write, byte for byte but `decided_at`), its
//! `verdict`, `reason` and `rule` again at the top, `why` in one sentence, and `status_rows` — the
//! rows of the status tables that the decisive check read at the line's service time: the institution's
//! periods covering it (whole, or of the line's department), and the periods and registrations here of
//! the person the decision names (`role`; the billing practitioner on a plain `OK`). Other persons' rows
//! are not shown.
//!
//! A line the stream would dead-letter is a 400 with the dead letter's reason and `field`, never a
//! panic; a body over `limits.max_message_bytes` a 413. Scope ([`super::auth::Scope`]): `institution`
//! decides lines its own institution settles; `practitioner` lines that name their code in a person
//! field; else 403 (the line is parsed first: a malformed one is a 400 whoever asks).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;

use super::auth::{self, Caller, Outcome as Logged, Scope};
use super::status::{describe, institution_period, refused};
use super::{HttpState, Peer, error, peer_addr, unauthenticated};
use claimgate::batch::{Decided, process};
use claimgate::decide::person_record;
use claimgate::record::{BjTime, Claim, Outcome, PractitionerKey, Reason, Role, Stamp, Status};
use claimgate::table::View;

/// One row of a status table behind a decision.
#[derive(Serialize)]
struct Row {
    /// `institutions` or `practitioners`.
    table: &'static str,
    code: String,
    /// The record's version.
    version: u64,
    /// `period` (a suspension or termination) or `registration`.
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    /// A registration's institution.
    #[serde(skip_serializing_if = "Option::is_none")]
    institution: Option<String>,
    /// An institution period's departments (absent: the whole institution).
    #[serde(skip_serializing_if = "Option::is_none")]
    departments: Option<Vec<String>>,
    from: String,
    until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    basis: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision_id: Option<String>,
    /// The person field a practitioner row is of.
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    /// True for the row the decisive check failed on.
    decisive: bool,
}

#[derive(Serialize)]
struct Answer<'a> {
    verdict: &'static str,
    reason: &'static str,
    rule: &'a str,
    why: String,
    decision: &'a RawValue,
    status_rows: Vec<Row>,
    table_age_s: Option<f64>,
}

fn until_text(t: BjTime) -> Option<String> {
    (t != BjTime::MAX).then(|| t.to_string())
}

/// A 400 naming the field at fault.
fn bad_line(message: &str, field: Option<&str>) -> (Logged, Response) {
    let body = serde_json::json!({ "error": message, "field": field });
    (Logged::BadRequest, (StatusCode::BAD_REQUEST, Json(body)).into_response())
}

/// `POST /v1/decide`.
pub async fn decide(State(s): State<HttpState>, headers: HeaderMap, peer: Peer, body: Body) -> Response {
    let caller = match s.auth.caller(&headers) {
        Ok(c) => c,
        Err(why) => {
            auth::log_unauthenticated(&why, peer_addr(&peer), "decide", "-");
            return unauthenticated();
        }
    };
    let (codes, (outcome, response)) = match axum::body::to_bytes(body, s.max_body_bytes).await {
        Err(_) => {
            let message = format!(
                "the body must be one claim line of at most limits.max_message_bytes ({} bytes)",
                s.max_body_bytes
            );
            ("-".to_owned(), (Logged::BadRequest, error(StatusCode::PAYLOAD_TOO_LARGE, &message)))
        }
        Ok(bytes) => answer(&s, &caller, &bytes),
    };
    auth::log_query(&caller, peer_addr(&peer), "decide", &codes, outcome);
    response
}

/// The codes a line names, for the query log: `institution|billing practitioner`.
fn codes_of(claim: &Claim<'_>) -> String {
    format!("{}|{}", claim.fixmedins_code, auth::loggable(&claim.bilg_dr_codg))
}

fn answer(s: &HttpState, caller: &Caller, bytes: &[u8]) -> (String, (Logged, Response)) {
    let line = bytes.trim_ascii();
    if line.is_empty() {
        let e = bad_line("empty body: expected one claim line, a JSON object as sent on the claims topic", None);
        return ("-".into(), e);
    }
    let Some(view) = s.tables.load() else {
        let e = error(StatusCode::SERVICE_UNAVAILABLE, "the status tables are not loaded yet");
        return ("-".into(), (Logged::Unavailable, e));
    };
    let decided_at = crate::io::clock::now_text();
    let stamp = Stamp { table_epoch: view.epoch(), decided_at: &decided_at };
    let mut out = Vec::with_capacity(512);
    let decided = match process(line, &view, &s.rules, &stamp, &mut out) {
        Ok(d) => d,
        Err(m) => return ("-".into(), bad_line(&m.message, m.field)),
    };
    let codes = codes_of(&decided.claim);
    if let Some(why) = out_of_scope(caller, &decided.claim) {
        return (codes, refused(caller, &why));
    }
    let Ok(decision) = serde_json::from_slice::<&RawValue>(&out) else {
        // The decision writer's output is JSON (its tests read it back); if not, say so, do not panic.
        let e = error(StatusCode::INTERNAL_SERVER_ERROR, "the decision record is not valid JSON");
        return (codes, (Logged::Answered, e));
    };
    let (why, status_rows) = explain(&decided, &view, s);
    let o = &decided.outcome;
    let age = s.table_state.age_secs();
    let answer = Answer {
        verdict: o.verdict.as_str(),
        reason: o.reason.as_str(),
        rule: o.rule,
        why,
        decision,
        status_rows,
        table_age_s: age.is_finite().then_some(age),
    };
    (codes, (Logged::Answered, (StatusCode::OK, Json(answer)).into_response()))
}

/// Why the caller may not ask about this line, if so.
fn out_of_scope(caller: &Caller, claim: &Claim<'_>) -> Option<String> {
    match &caller.scope {
        Scope::All => None,
        Scope::Institution(own) => (claim.fixmedins_code != *own)
            .then(|| format!("it may decide lines settled by {own} only, and this one is {}'s", claim.fixmedins_code)),
        Scope::Practitioner(own) => {
            let names_them = Role::ALL
                .into_iter()
                .filter_map(|r| claim.code(r))
                .any(|c| PractitionerKey::parse(c).is_ok_and(|k| k.to_owned() == *own));
            (!names_them).then(|| format!("it may decide lines that name practitioner {own} only"))
        }
    }
}

/// The decisive reason: what the decision's `role` refers to (records.md) — the warned reason of an
/// accepted line, else the overridden one, else the verdict's own.
fn decisive(o: &Outcome<'_>) -> Reason {
    o.would_reject.or(o.overridden).unwrap_or(o.reason)
}

/// The sentence and the status rows behind a decision.
fn explain(d: &Decided<'_, '_>, view: &View, s: &HttpState) -> (String, Vec<Row>) {
    let (claim, o) = (&d.claim, &d.outcome);
    let t = claim.fee_ocur_time;
    let reason = decisive(o);
    let mut rows = Vec::new();
    let mut detail = None;

    // The institution's periods at t: whole, or of the line's department.
    if let Some(rec) = view.institution(claim.fixmedins_code) {
        for p in rec.periods.iter().filter(|p| p.during.contains(t)) {
            let of_line = match &p.departments {
                None => true,
                Some(list) => claim.bilg_dept_codg.as_deref().is_some_and(|d| list.iter().any(|x| &**x == d)),
            };
            if !of_line {
                continue;
            }
            let is_decisive = match reason {
                Reason::InstitutionTerminated => p.departments.is_none() && p.status == Status::Terminated,
                Reason::InstitutionSuspended => p.departments.is_none() && p.status == Status::Suspended,
                Reason::DepartmentSuspended => p.departments.is_some(),
                _ => false,
            };
            if is_decisive && detail.is_none() {
                let whom = match claim.bilg_dept_codg.as_deref().filter(|_| p.departments.is_some()) {
                    Some(dept) => format!("department {dept} of {}", rec.code),
                    None => format!("institution {}", rec.code),
                };
                detail = Some(institution_period(p, &whom));
            }
            rows.push(Row {
                table: "institutions",
                code: rec.code.to_string(),
                version: rec.version,
                kind: "period",
                status: Some(p.status.as_str()),
                institution: None,
                departments: p.departments.as_ref().map(|l| l.iter().map(|x| x.to_string()).collect()),
                from: p.during.from.to_string(),
                until: until_text(p.during.until),
                basis: p.basis.clone(),
                decision_id: None,
                role: None,
                decisive: is_decisive,
            });
        }
    }

    // The person the decision names (the billing practitioner when it names none).
    let role = o.role.unwrap_or(Role::Billing);
    let profile = s.rules.select(claim.fixmedins_code, t);
    let key = claim.person(role).and_then(Result::ok);
    let person = key.and_then(|k| person_record(claim, k, view, profile));
    let sent = claim.code(role).map(auth::loggable).unwrap_or_default();
    if let Some((code, r)) = &person {
        let rec = r.to_record(code.clone());
        let status = r.status_at(t);
        for p in rec.periods.iter().filter(|p| p.during.contains(t)) {
            let is_decisive = Some(p.status) == status
                && matches!(
                    (reason, p.status),
                    (Reason::PractitionerTerminated, Status::Terminated)
                        | (Reason::PractitionerSuspended, Status::Suspended)
                )
                && o.role == Some(role);
            if is_decisive && detail.is_none() {
                detail = Some(format!("{} {code}: {}", role.field(), describe(p.status.as_str(), Some(p))));
            }
            rows.push(Row {
                table: "practitioners",
                code: code.to_string(),
                version: rec.version,
                kind: "period",
                status: Some(p.status.as_str()),
                institution: None,
                departments: None,
                from: p.during.from.to_string(),
                until: until_text(p.during.until),
                basis: p.basis.clone(),
                decision_id: p.decision_id.clone(),
                role: Some(role.field()),
                decisive: is_decisive,
            });
        }
        for g in rec.registrations.iter().filter(|g| g.institution == claim.fixmedins_code && g.during.contains(t)) {
            rows.push(Row {
                table: "practitioners",
                code: code.to_string(),
                version: rec.version,
                kind: "registration",
                status: None,
                institution: Some(g.institution.to_string()),
                departments: None,
                from: g.during.from.to_string(),
                until: until_text(g.during.until),
                basis: None,
                decision_id: None,
                role: Some(role.field()),
                decisive: false,
            });
        }
    }
    let field = role.field();
    let detail = detail.unwrap_or_else(|| match reason {
        Reason::PractitionerUnregistered if person.is_none() => {
            format!("{field} {sent} is not in the status table (未登记备案)")
        }
        Reason::PractitionerUnregistered => format!("{field} {sent}: no registration covers {t} (未登记备案)"),
        Reason::PractitionerCodeUnmapped => {
            format!("{field} {sent} is a local id the mapping table does not map to a national code at {t}")
        }
        Reason::PractitionerNotRegisteredHere => {
            format!("{field} {sent} has no registration at {} at {t}", claim.fixmedins_code)
        }
        _ => format!("every check passed for the line at {t}"),
    });
    let why = match (o.reason, o.overridden, o.would_reject) {
        (Reason::EmergencyOverride, Some(r), _) => {
            format!("accepted as an emergency: {r} overridden ({}); {detail}", o.rule)
        }
        (Reason::Ok, _, Some(r)) => format!(
            "accepted, but the profile only warns about {r} at that time and would reject the line once it enforces it; {detail}"
        ),
        (Reason::Ok, _, None) => format!("accepted: {detail}"),
        (r, _, _) => format!("rejected: {r} ({}); {detail}", o.rule),
    };
    (why, rows)
}
