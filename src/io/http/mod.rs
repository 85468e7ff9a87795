//! The operations port: `/metrics`, `/healthz`, `/readyz`, and the help desk's queries under `/v1/`.
//! Binds to loopback unless configured otherwise.
//!
//! - [`status`] — `GET /v1/practitioners/{code}?at=…` (Qinghai Art. 9(1): practitioners may query their
//!   own status) and `GET /v1/institutions/{code}?at=…` (the institution's and its departments' status);
//! - [`decide`] — `POST /v1/decide`: one claim line decided against the live table, nothing produced;
//! - [`auth`] — per-caller tokens with a scope, and the query log.
//!
//! Every `/v1/` answer is JSON; an error is `{"error": …}` (with `"field"` where one field is at fault):
//! 400 bad input, 401 no or unknown token, 403 a scope that does not cover the question, 404 a
//! practitioner code the table does not hold, 413 a body over `limits.max_message_bytes`, 503 tables not
//! loaded yet.

pub mod auth;
pub mod decide;
pub mod status;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use metrics_exporter_prometheus::PrometheusHandle;

use super::kafka::follower::TableState;
use super::kafka::pipeline::PipelineState;
use auth::Auth;
use claimgate::record::BjTime;
use claimgate::routing::Rules;
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
    /// Who may ask `/v1/…`, and about whom.
    pub auth: Auth,
    /// The rules the stream decides with, for `/v1/decide`.
    pub rules: Arc<Rules>,
    /// The largest `/v1/decide` body: the stream's `limits.max_message_bytes`.
    pub max_body_bytes: usize,
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
        .route("/v1/practitioners/{code}", get(status::practitioner))
        .route("/v1/institutions/{code}", get(status::institution))
        .route("/v1/decide", post(decide::decide))
        .with_state(state)
}

async fn metrics(State(s): State<HttpState>) -> Response {
    // The table's age as of this scrape: the follower also sets it, but only between its broker calls,
    // which block while the broker does not answer, and never if it stopped.
    s.table_state.observe_staleness(s.stale_after_s);
    // Likewise the oldest output's wait, which `/healthz` reads live.
    s.pipeline.observe_unacked();
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
    } else if let Some(why) = s.pipeline.stall_reason() {
        // After the outputs: a partition stands still, too, while its outputs wait for the broker.
        (StatusCode::SERVICE_UNAVAILABLE, format!("unhealthy: {why}\n")).into_response()
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

/// The peer of a request, when the server was started with connection info.
pub type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

fn peer_addr(p: &Peer) -> Option<SocketAddr> {
    p.as_ref().map(|Extension(ConnectInfo(a))| *a)
}

/// A JSON error answer.
fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// The answers to a missing or unknown token: the same 401 for both, naming no caller.
fn unauthenticated() -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required (Authorization: Bearer …)");
    r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    r
}

/// `?at=`: a Beijing time, or now when absent or empty; else the 400's message.
fn parse_at(at: Option<&str>) -> Result<BjTime, String> {
    match at.map(str::trim) {
        None | Some("") => Ok(crate::io::clock::now().0),
        Some(text) => BjTime::parse(text).map_err(|e| format!("`at`: {e} (Beijing time, yyyy-MM-dd[ HH:mm:ss])")),
    }
}
