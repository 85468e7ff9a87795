//! The operations port: `/metrics`, `/healthz`, `/readyz`, and the practitioners' status query
//! `GET /v1/practitioners/{code}?at=…` (Qinghai Art. 9(1): practitioners may query their own status).
//! Binds to loopback unless configured otherwise; `/v1/…` can require a bearer token.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};

use super::kafka::follower::TableState;
use super::kafka::pipeline::PipelineState;
use claimgate::record::{BjTime, PractitionerCode, PractitionerKey, PractitionerText, Status};
use claimgate::table::TableHandle;

/// What the handlers read.
#[derive(Clone)]
pub struct HttpState {
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
    /// The current tables.
    pub tables: Arc<TableHandle>,
    /// Readiness and age of the tables.
    pub table_state: Arc<TableState>,
    /// The claim pipeline: alive, taking claims, waiting for topics, oldest unacknowledged output.
    pub pipeline: Arc<PipelineState>,
    /// True during shutdown.
    pub stopping: Arc<AtomicBool>,
    /// Bearer token for `/v1/…`, if required.
    pub token: Option<Arc<str>>,
    /// Seconds after which the table counts as stale.
    pub stale_after_s: f64,
    /// `/healthz` fails when an output has waited longer than this for its acknowledgement.
    pub max_unacked_age_s: f64,
}

/// The router.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/practitioners/{code}", get(practitioner))
        .with_state(state)
}

async fn metrics(State(s): State<HttpState>) -> Response {
    // The table's age as of this scrape: the follower also sets it, but only between its broker calls,
    // which block while the broker does not answer, and never if it stopped.
    s.table_state.observe_staleness(s.stale_after_s);
    s.prometheus.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.prometheus.render()).into_response()
}

async fn healthz(State(s): State<HttpState>) -> Response {
    let waited = s.pipeline.oldest_unacked_secs();
    if !s.pipeline.alive.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "claim pipeline stopped\n").into_response()
    } else if waited > s.max_unacked_age_s {
        let body = format!(
            "unhealthy: an output has waited {waited:.0} s for the broker's acknowledgement (limits.max_unacked_age_s = {})\n",
            s.max_unacked_age_s
        );
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

async fn readyz(State(s): State<HttpState>) -> Response {
    let why = if s.stopping.load(Ordering::Relaxed) {
        Some("shutting down".to_owned())
    } else if !s.table_state.ready.load(Ordering::Acquire) {
        Some("status topics not yet read to their end: no claim is decided".to_owned())
    } else if !s.pipeline.alive.load(Ordering::Relaxed) {
        Some("claim pipeline stopped".to_owned())
    } else if !s.pipeline.waiting().is_empty() {
        Some(format!("waiting for topics to exist: {}", s.pipeline.waiting().join(", ")))
    } else if !s.pipeline.taking_claims.load(Ordering::Acquire) {
        Some("joining the consumer group".to_owned())
    } else {
        None
    };
    let age = s.table_state.age_secs();
    // A stale table keeps deciding (service.md, "Stale status"): still ready, but said so.
    let stale = if age >= s.stale_after_s { " (stale: the status topics cannot be confirmed)" } else { "" };
    match why {
        None => (StatusCode::OK, format!("ready; table age {age:.1} s{stale}\n")).into_response(),
        Some(w) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {w}\n")).into_response(),
    }
}

#[derive(Deserialize)]
struct At {
    at: Option<String>,
}

#[derive(Serialize)]
struct StatusAnswer {
    code: String,
    at: String,
    /// `normal`, `suspended`, `terminated` or `unregistered`.
    status: &'static str,
    /// Institutions where the person is registered at `at`.
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

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

fn authorised(s: &HttpState, headers: &HeaderMap) -> bool {
    let Some(token) = &s.token else { return true };
    let given =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    // Compare without an early exit, so timing does not reveal how much of a guess was right.
    given.is_some_and(|g| {
        g.len() == token.len() && g.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    })
}

async fn practitioner(
    State(s): State<HttpState>,
    Path(code): Path<String>,
    Query(q): Query<At>,
    headers: HeaderMap,
) -> Response {
    if !authorised(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, "a bearer token is required (Authorization: Bearer …)");
    }
    let code = code.trim();
    let Ok(key) = PractitionerKey::parse(code) else {
        return error(StatusCode::BAD_REQUEST, "not a practitioner code (1 to 30 printable ASCII characters)");
    };
    let at = match q.at.as_deref().map(str::trim) {
        None | Some("") => crate::io::clock::now().0,
        Some(text) => match BjTime::parse(text) {
            Ok(t) => t,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("`at`: {e} (Beijing time)")),
        },
    };
    let Some(view) = s.tables.load() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the status tables are not loaded yet");
    };
    let age = s.table_state.age_secs();
    let owned = key.to_owned();
    let answer = match view.practitioner(key) {
        None => StatusAnswer {
            code: owned.to_string(),
            at: at.to_string(),
            status: "unregistered",
            registered_at: vec![],
            why: "the code is not in the status table (未登记备案)".into(),
            record: None,
            table_epoch: view.epoch(),
            table_age_s: age.is_finite().then_some(age),
            invalid_record: s.table_state.invalid_record(&owned.to_string()),
        },
        Some(r) => {
            let rec = r.to_record(PractitionerCode::clone(&owned));
            let registered_at: Vec<String> =
                rec.registrations.iter().filter(|g| g.during.contains(at)).map(|g| g.institution.to_string()).collect();
            let status = r.status_at(at);
            let period = rec.periods.iter().filter(|p| p.during.contains(at)).find(|p| Some(p.status) == status);
            let (word, why) = match (status, registered_at.is_empty()) {
                (Some(Status::Terminated), _) => ("terminated", describe("terminated", period)),
                (Some(Status::Suspended), _) => ("suspended", describe("suspended", period)),
                (None, true) => ("unregistered", "no registration covers that time (未登记备案)".to_owned()),
                (None, false) => ("normal", "registered, and no suspension or termination covers that time".to_owned()),
            };
            StatusAnswer {
                code: owned.to_string(),
                at: at.to_string(),
                status: word,
                registered_at,
                why,
                record: Some(rec.to_text()),
                table_epoch: view.epoch(),
                table_age_s: age.is_finite().then_some(age),
                invalid_record: s.table_state.invalid_record(&owned.to_string()),
            }
        }
    };
    let status = if answer.record.is_none() { StatusCode::NOT_FOUND } else { StatusCode::OK };
    (status, axum::Json(answer)).into_response()
}

fn describe(word: &str, p: Option<&claimgate::record::Period>) -> String {
    match p {
        Some(p) => {
            let until = if p.during.until == BjTime::MAX {
                "until further notice".to_owned()
            } else {
                format!("until {}", p.during.until)
            };
            format!(
                "{word} from {} {until}; basis: {}; decision: {}",
                p.during.from,
                p.basis.as_deref().unwrap_or("not recorded"),
                p.decision_id.as_deref().unwrap_or("not recorded")
            )
        }
        None => word.to_owned(),
    }
}
