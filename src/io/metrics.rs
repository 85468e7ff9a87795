//! Metric names and the Prometheus recorder. One place names every metric, so `/metrics` has no
//! ad-hoc names; hot-path counters are registered once and incremented through handles (an atomic add),
//! and per-claim counts are added once per batch.

use anyhow::{Context, Result};
use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use claimgate::record::{Reason, Verdict};

/// Claims decided, by verdict and reason.
pub const CLAIMS: &str = "claimgate_claims_total";
/// Emergency overrides, by the reason overridden.
pub const OVERRIDES: &str = "claimgate_emergency_overrides_total";
/// Accepted claims that a reason the profile only warns about would reject once enforced, by that
/// reason (rules.md, "Enforcement").
pub const WOULD_REJECT: &str = "claimgate_would_reject_total";
/// Dead letters, by the field at fault.
pub const DEAD_LETTERS: &str = "claimgate_dead_letters_total";
/// Claims under legacy (non-national) practitioner codes.
pub const LEGACY_CODES: &str = "claimgate_legacy_codes_total";
/// Seconds from consuming a claim to the broker's acknowledgement of its output.
pub const CLAIM_LATENCY: &str = "claimgate_claim_latency_seconds";
/// Seconds to parse, decide and encode one batch, divided by its claims.
pub const DECISION_SECONDS: &str = "claimgate_decision_seconds";
/// Claims consumed and not yet acknowledged.
pub const IN_FLIGHT: &str = "claimgate_in_flight";
/// Consumption paused by back-pressure (1) or not (0).
pub const PAUSED: &str = "claimgate_consumption_paused";
/// Outputs whose delivery failed and was retried.
pub const DELIVERY_RETRIES: &str = "claimgate_delivery_retries_total";
/// Brokers a client has lost its connection to and not got back (librdkafka statistics: state neither
/// `UP` nor `INIT`, never connected), by client.
pub const BROKERS_DOWN: &str = "claimgate_brokers_down";
/// Broker connections lost, by client (librdkafka statistics).
pub const BROKER_DISCONNECTS: &str = "claimgate_broker_disconnects_total";
/// Partitions whose leader moved to another broker, by client (librdkafka statistics).
pub const LEADER_CHANGES: &str = "claimgate_leader_changes_total";
/// Consumer lag by partition, from librdkafka statistics.
pub const CONSUMER_LAG: &str = "claimgate_consumer_lag";
/// Table epoch (content fingerprint) of the view deciding now.
pub const TABLE_EPOCH: &str = "claimgate_table_epoch";
/// Views published since start.
pub const TABLE_GENERATION: &str = "claimgate_table_generation";
/// Live practitioner codes.
pub const TABLE_PRACTITIONERS: &str = "claimgate_table_practitioners";
/// Institutions with a status history.
pub const TABLE_INSTITUTIONS: &str = "claimgate_table_institutions";
/// Codes in the delta layer.
pub const TABLE_DELTA: &str = "claimgate_table_delta_codes";
/// Seconds since the status topics were last confirmed read to their end.
pub const TABLE_AGE: &str = "claimgate_table_age_seconds";
/// 1 when the table is older than `limits.stale_after_s`.
pub const TABLE_STALE: &str = "claimgate_table_stale";
/// Status records read, by topic and outcome (applied, stale, deleted, invalid).
pub const STATUS_RECORDS: &str = "claimgate_status_records_total";
/// Invalid status records, by topic: each went to the status dead-letter topic, and the last valid
/// version of its code stays (an alert should fire on any increase).
pub const STATUS_INVALID: &str = "claimgate_status_invalid_total";
/// Codes whose latest status record was invalid (flagged until a valid record comes).
pub const STATUS_INVALID_CODES: &str = "claimgate_status_invalid_codes";
/// Checkpoints of the status table, by outcome: `written`, `failed`, `refused` (at start-up).
pub const CHECKPOINTS: &str = "claimgate_checkpoints_total";
/// Seconds from a status record's broker timestamp to the publish of the view holding it.
pub const STATUS_TO_VIEW: &str = "claimgate_status_to_view_seconds";
/// Late status changes written to the retro topic (service.md, "The loop between inline and nightly").
pub const STATUS_RETRO: &str = "claimgate_status_retro_total";
/// Late status changes that could not be written to the retro topic (each is logged with its key).
pub const STATUS_RETRO_FAILED: &str = "claimgate_status_retro_failed_total";
/// 1 when ready to decide.
pub const READY: &str = "claimgate_ready";
/// Errors reported by the Kafka clients, by client.
pub const BROKER_ERRORS: &str = "claimgate_broker_errors_total";
/// Warnings and errors that the Kafka clients (librdkafka) logged, by client and librdkafka facility:
/// request timeouts (`REQTMOUT`), a lost group session (`SESSTMOUT`), failed connections (`FAIL`), ….
/// An unresponsive broker shows here, not in [`BROKER_ERRORS`]: librdkafka reports a global error only
/// when every connection is down, and a hung broker keeps its connections open.
pub const BROKER_WARNINGS: &str = "claimgate_broker_warnings_total";
/// Partitions of the claims topic assigned to this instance: 0 while it has lost its group session
/// (e.g. during a broker outage) or before it joined.
pub const CLAIMS_PARTITIONS: &str = "claimgate_claims_partitions";
/// Seconds the oldest output still unacknowledged has waited for the broker (0 when none waits);
/// `/healthz` fails past `limits.max_unacked_age_s`.
pub const OLDEST_UNACKED: &str = "claimgate_oldest_unacked_seconds";
/// Offset commits or stores that failed, by when (`revoke`, `store`, `shutdown`): the claims after the
/// last commit are decided again by the partition's next owner.
pub const COMMIT_FAILURES: &str = "claimgate_commit_failures_total";
/// Offset resets of the claims consumer, by reason: `no_committed_offset` (a new group, or its offsets
/// expired) or `out_of_range` (the committed offset is gone from the log: claims were skipped or are
/// read again, as `offsets.reset` says).
pub const OFFSET_RESETS: &str = "claimgate_offset_resets_total";
/// Outputs the broker refused as bad input (too large, invalid), replaced by a dead letter, by topic.
pub const REFUSED_OUTPUTS: &str = "claimgate_refused_outputs_total";
/// `/v1/…` queries, by endpoint (`practitioners`, `institutions`, `decide`) and outcome (`answered`,
/// `refused`, `bad_request`, `unavailable`, `unauthenticated`); who asked is in the log (`http_query`).
pub const QUERIES: &str = "claimgate_http_queries_total";
/// Exactly-once transactions committed and aborted.
pub const TRANSACTIONS: &str = "claimgate_transactions_total";

/// Installs the process-wide recorder (the `metrics` facade is global by design) and returns the
/// handle that renders `/metrics`.
pub fn install() -> Result<PrometheusHandle> {
    let latency = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0];
    let fine = [1e-7, 2e-7, 5e-7, 1e-6, 2e-6, 5e-6, 1e-5, 1e-4];
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(CLAIM_LATENCY.into()), &latency)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(STATUS_TO_VIEW.into()), &latency))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(DECISION_SECONDS.into()), &fine))
        .context("metrics buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")
        .inspect(|_| {
            // Every series an alert or a dashboard reads exists from the start, at 0: an absent series
            // would read as "no data", not as "none yet".
            let _ = ClaimMetrics::new();
            gauge!(READY).set(0.0);
            gauge!(OLDEST_UNACKED).set(0.0);
            gauge!(CLAIMS_PARTITIONS).set(0.0);
            for when in ["revoke", "store", "shutdown"] {
                counter!(COMMIT_FAILURES, "when" => when).absolute(0);
            }
            gauge!(STATUS_INVALID_CODES).set(0.0);
            counter!(STATUS_RETRO).absolute(0);
            counter!(STATUS_RETRO_FAILED).absolute(0);
            for reason in ["no_committed_offset", "out_of_range"] {
                counter!(OFFSET_RESETS, "reason" => reason).absolute(0);
            }
        })
}

/// Counts one `/v1/…` query.
pub fn query(endpoint: &str, outcome: &'static str) {
    counter!(QUERIES, "endpoint" => endpoint.to_owned(), "outcome" => outcome).increment(1);
}

/// Handles of the claim pipeline's counters, registered once.
pub struct ClaimMetrics {
    by_reason: Vec<Counter>,
    overrides: Vec<Counter>,
    would_reject: Vec<Counter>,
    /// Dead letters with no single field at fault.
    pub dead_letters: Counter,
    /// Legacy codes.
    pub legacy: Counter,
    /// Consume-to-ack latency.
    pub latency: Histogram,
    /// Per-claim decision time.
    pub decision: Histogram,
    /// In flight.
    pub in_flight: Gauge,
    /// Paused.
    pub paused: Gauge,
    /// Retries.
    pub retries: Counter,
}

impl ClaimMetrics {
    /// Registers the handles.
    pub fn new() -> Self {
        let verdict = |r: Reason| if r.accepts() { Verdict::Accept } else { Verdict::Reject };
        ClaimMetrics {
            by_reason: Reason::ALL
                .iter()
                .map(|r| counter!(CLAIMS, "verdict" => verdict(*r).as_str(), "reason" => r.as_str()))
                .collect(),
            overrides: Reason::ALL.iter().map(|r| counter!(OVERRIDES, "overridden" => r.as_str())).collect(),
            would_reject: Reason::ALL.iter().map(|r| counter!(WOULD_REJECT, "would_reject" => r.as_str())).collect(),
            dead_letters: counter!(DEAD_LETTERS, "field" => "-"),
            legacy: counter!(LEGACY_CODES),
            latency: histogram!(CLAIM_LATENCY),
            decision: histogram!(DECISION_SECONDS),
            in_flight: gauge!(IN_FLIGHT),
            paused: gauge!(PAUSED),
            retries: counter!(DELIVERY_RETRIES),
        }
    }

    /// Adds a batch's counts by reason: final reasons, overridden reasons, warned reasons.
    pub fn add(
        &self,
        by_reason: &[u64; Reason::COUNT],
        overridden: &[u64; Reason::COUNT],
        would_reject: &[u64; Reason::COUNT],
    ) {
        for i in 0..Reason::COUNT {
            for (counts, counters) in
                [(by_reason, &self.by_reason), (overridden, &self.overrides), (would_reject, &self.would_reject)]
            {
                if counts[i] > 0 {
                    counters[i].increment(counts[i]);
                }
            }
        }
    }

    /// Counts a dead letter by its field.
    pub fn dead_letter(&self, field: Option<&'static str>) {
        match field {
            Some(f) => counter!(DEAD_LETTERS, "field" => f).increment(1),
            None => self.dead_letters.increment(1),
        }
    }
}
