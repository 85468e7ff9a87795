//! The status queries: `GET /v1/practitioners/{code}?at=…` and `GET /v1/institutions/{code}?at=…` —
//! a code's status at an instant (now when `at` is absent, Beijing time) and why, from the live table.
//!
//! What each scope sees ([`auth::Scope`]):
//! - `all`: any code, the whole record;
//! - `institution`: its own institution record; a practitioner only while registered there at `at`
//!   (else 403), with the record's registrations cut to that institution's (the periods stay: a
//!   suspension applies at every institution);
//! - `practitioner`: their own practitioner code only.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::{self, Caller, Outcome, Scope};
use super::{HttpState, Peer, error, parse_at, peer_addr, unauthenticated};
use claimgate::record::{
    BjTime, InstitutionCode, InstitutionText, Period, PractitionerCode, PractitionerKey, PractitionerText, Status,
};

/// `?at=`.
#[derive(Deserialize)]
pub struct At {
    at: Option<String>,
}

#[derive(Serialize)]
struct PractitionerAnswer {
    code: String,
    at: String,
    /// `normal`, `suspended`, `terminated` or `unregistered`.
    status: &'static str,
    /// Institutions where the person is registered at `at` (for an institution's token: that one, if so).
    registered_at: Vec<String>,
    /// Why, in one sentence, with the period's basis where there is one.
    why: String,
    /// The record as the table holds it (names are not held).
    record: Option<PractitionerText>,
    table_epoch: u64,
    table_age_s: Option<f64>,
    /// Set when the code's latest status record was invalid: the answer rests on the last valid
    /// version (which a restarted instance may not have), and where that record is and why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    invalid_record: Option<String>,
}

#[derive(Serialize)]
struct InstitutionAnswer {
    code: String,
    at: String,
    /// The whole institution at `at`: `normal`, `suspended` or `terminated` (terminated wins).
    status: &'static str,
    why: String,
    /// Every department a period of the record names, with its status at `at`.
    departments: Vec<DepartmentAnswer>,
    /// The record as the table holds it; null when the institution has no status history.
    record: Option<InstitutionText>,
    table_epoch: u64,
    table_age_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invalid_record: Option<String>,
}

#[derive(Serialize)]
struct DepartmentAnswer {
    department: String,
    /// `normal`, `suspended` or `terminated`: the department's own periods (either stops its lines,
    /// `DEPARTMENT_SUSPENDED`).
    status: &'static str,
    why: String,
}

/// Authenticates, answers, and logs the query (never the answer).
fn logged(
    s: &HttpState,
    headers: &HeaderMap,
    peer: &Peer,
    endpoint: &str,
    code: &str,
    answer: impl FnOnce(&Caller) -> (Outcome, Response),
) -> Response {
    let code = auth::loggable(code);
    let caller = match s.auth.caller(headers) {
        Ok(c) => c,
        Err(why) => {
            auth::log_unauthenticated(&why, peer_addr(peer), endpoint, &code);
            return unauthenticated();
        }
    };
    let (outcome, response) = answer(&caller);
    auth::log_query(&caller, peer_addr(peer), endpoint, &code, outcome);
    response
}

/// `GET /v1/practitioners/{code}?at=…`.
pub async fn practitioner(
    State(s): State<HttpState>,
    Path(code): Path<String>,
    Query(q): Query<At>,
    headers: HeaderMap,
    peer: Peer,
) -> Response {
    logged(&s, &headers, &peer, "practitioners", &code, |caller| practitioner_answer(&s, caller, code.trim(), q.at))
}

fn practitioner_answer(s: &HttpState, caller: &Caller, code: &str, at: Option<String>) -> (Outcome, Response) {
    let Ok(key) = PractitionerKey::parse(code) else {
        let e = error(StatusCode::BAD_REQUEST, "not a practitioner code (1 to 30 printable ASCII characters)");
        return (Outcome::BadRequest, e);
    };
    let at = match parse_at(at.as_deref()) {
        Ok(t) => t,
        Err(e) => return (Outcome::BadRequest, error(StatusCode::BAD_REQUEST, &e)),
    };
    let owned = key.to_owned();
    if let Scope::Practitioner(own) = &caller.scope
        && *own != owned
    {
        return refused(caller, &format!("it may ask about practitioner {own} only"));
    }
    let Some(view) = s.tables.load() else {
        return (Outcome::Unavailable, error(StatusCode::SERVICE_UNAVAILABLE, "the status tables are not loaded yet"));
    };
    let found = view.practitioner(key);
    // The status as the decision reads it (terminated wins), not a second reading of the periods.
    let status = found.as_ref().and_then(|r| r.status_at(at));
    let record = found.map(|r| r.to_record(PractitionerCode::clone(&owned)));
    if let Scope::Institution(inst) = &caller.scope {
        let staff = record
            .as_ref()
            .is_some_and(|r| r.registrations.iter().any(|g| g.institution == *inst && g.during.contains(at)));
        if !staff {
            return refused(
                caller,
                &format!("it may ask about the staff of {inst} only, and {owned} has no registration there at {at}"),
            );
        }
    }
    let age = s.table_state.age_secs();
    let text = owned.to_string();
    let mut answer = PractitionerAnswer {
        code: text.clone(),
        at: at.to_string(),
        status: "unregistered",
        registered_at: vec![],
        why: "the code is not in the status table (未登记备案)".into(),
        record: None,
        table_epoch: view.epoch(),
        table_age_s: age.is_finite().then_some(age),
        invalid_record: s.table_state.invalid_record(&text),
    };
    let Some(rec) = record else {
        return (Outcome::Answered, (StatusCode::NOT_FOUND, Json(answer)).into_response());
    };
    answer.registered_at =
        rec.registrations.iter().filter(|g| g.during.contains(at)).map(|g| g.institution.to_string()).collect();
    let period = rec.periods.iter().filter(|p| p.during.contains(at)).find(|p| Some(p.status) == status);
    (answer.status, answer.why) = match (status, answer.registered_at.is_empty()) {
        (Some(Status::Terminated), _) => ("terminated", describe("terminated", period)),
        (Some(Status::Suspended), _) => ("suspended", describe("suspended", period)),
        (None, true) => ("unregistered", "no registration covers that time (未登记备案)".to_owned()),
        (None, false) => ("normal", "registered, and no suspension or termination covers that time".to_owned()),
    };
    let mut text = rec.to_text();
    if let Scope::Institution(inst) = &caller.scope {
        // An institution's staff office sees where the person works for it, not where else.
        let own = inst.to_string();
        text.registrations.retain(|g| g.institution == own);
        answer.registered_at.retain(|i| *i == own);
    }
    answer.record = Some(text);
    (Outcome::Answered, (StatusCode::OK, Json(answer)).into_response())
}

/// Terminated outranks suspended (rules.md: check 1 before 2, 6 before 7).
fn severity(s: Status) -> u8 {
    match s {
        Status::Terminated => 2,
        Status::Suspended => 1,
    }
}

/// `GET /v1/institutions/{code}?at=…`.
pub async fn institution(
    State(s): State<HttpState>,
    Path(code): Path<String>,
    Query(q): Query<At>,
    headers: HeaderMap,
    peer: Peer,
) -> Response {
    logged(&s, &headers, &peer, "institutions", &code, |caller| institution_answer(&s, caller, code.trim(), q.at))
}

fn institution_answer(s: &HttpState, caller: &Caller, code: &str, at: Option<String>) -> (Outcome, Response) {
    let Ok(inst) = InstitutionCode::parse(code) else {
        let e = error(StatusCode::BAD_REQUEST, "not an institution code (H or P, then 11 digits)");
        return (Outcome::BadRequest, e);
    };
    let at = match parse_at(at.as_deref()) {
        Ok(t) => t,
        Err(e) => return (Outcome::BadRequest, error(StatusCode::BAD_REQUEST, &e)),
    };
    match &caller.scope {
        Scope::All => {}
        Scope::Institution(own) if *own == inst => {}
        Scope::Institution(own) => return refused(caller, &format!("it may ask about institution {own} only")),
        Scope::Practitioner(own) => {
            return refused(
                caller,
                &format!(
                    "it may ask about practitioner {own} only (POST /v1/decide explains a line that names them, institution included)"
                ),
            );
        }
    }
    let Some(view) = s.tables.load() else {
        return (Outcome::Unavailable, error(StatusCode::SERVICE_UNAVAILABLE, "the status tables are not loaded yet"));
    };
    let age = s.table_state.age_secs();
    let text = inst.to_string();
    let mut answer = InstitutionAnswer {
        code: text.clone(),
        at: at.to_string(),
        status: "normal",
        why: "no status history: the institution table holds only institutions with a suspension or termination (records.md)".into(),
        departments: vec![],
        record: None,
        table_epoch: view.epoch(),
        table_age_s: age.is_finite().then_some(age),
        invalid_record: s.table_state.invalid_record(&text),
    };
    let Some(rec) = view.institution(inst) else {
        return (Outcome::Answered, (StatusCode::OK, Json(answer)).into_response());
    };
    let covering = |departments: Option<&str>| {
        rec.periods
            .iter()
            .filter(|p| p.during.contains(at))
            .filter(|p| match (&p.departments, departments) {
                (None, None) => true,
                (Some(list), Some(d)) => list.iter().any(|x| &**x == d),
                _ => false,
            })
            .max_by_key(|p| severity(p.status))
    };
    let whole = covering(None);
    (answer.status, answer.why) = match whole {
        Some(p) => (p.status.as_str(), institution_period(p, "the whole institution")),
        None => ("normal", "no period of the whole institution covers that time".to_owned()),
    };
    let mut names: Vec<&str> = rec.periods.iter().flat_map(|p| p.departments.iter().flatten()).map(|d| &**d).collect();
    names.sort_unstable();
    names.dedup();
    answer.departments = names
        .into_iter()
        .map(|d| {
            let (status, mut why) = match covering(Some(d)) {
                Some(p) => (p.status.as_str(), institution_period(p, "the department")),
                None => ("normal", "no period of the department covers that time".to_owned()),
            };
            if let Some(w) = whole {
                why.push_str(&format!("; the whole institution is {} at that time", w.status.as_str()));
            }
            DepartmentAnswer { department: d.to_owned(), status, why }
        })
        .collect();
    answer.record = Some(rec.to_text());
    (Outcome::Answered, (StatusCode::OK, Json(answer)).into_response())
}

/// A 403 that names the caller's scope and why it does not cover the question.
pub(super) fn refused(caller: &Caller, why: &str) -> (Outcome, Response) {
    let message = format!("token `{}` has scope {}: {why}", caller.name, caller.scope);
    (Outcome::Refused, error(StatusCode::FORBIDDEN, &message))
}

fn until(t: BjTime) -> String {
    if t == BjTime::MAX { "until further notice".to_owned() } else { format!("until {t}") }
}

/// One sentence for an institution period.
pub(super) fn institution_period(p: &claimgate::record::InstitutionPeriod, whom: &str) -> String {
    format!(
        "{whom} is {} from {} {}; basis: {}",
        p.status.as_str(),
        p.during.from,
        until(p.during.until),
        p.basis.as_deref().unwrap_or("not recorded")
    )
}

/// One sentence for a practitioner period.
pub(super) fn describe(word: &str, p: Option<&Period>) -> String {
    match p {
        Some(p) => format!(
            "{word} from {} {}; basis: {}; decision: {}",
            p.during.from,
            until(p.during.until),
            p.basis.as_deref().unwrap_or("not recorded"),
            p.decision_id.as_deref().unwrap_or("not recorded")
        ),
        None => word.to_owned(),
    }
}
