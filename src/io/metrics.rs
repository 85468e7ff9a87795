//! Metric names and the Prometheus recorder. One place names every metric, so `/metrics` has no
//! ad-hoc names; hot-path counters are registered once and incremented through handles (an atomic add),
//! and per-claim counts are added once per batch.

use anyhow::{Context, Result};
use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use claimgate::record::{Amount, Outcome, Reason, Verdict};

/// Claims decided, by verdict and reason.
pub const CLAIMS: &str = "claimgate_claims_total";
/// Emergency overrides, by the reason overridden.
pub const OVERRIDES: &str = "claimgate_emergency_overrides_total";
/// Accepted claims that a reason the profile only warns about would reject once enforced, by that
/// reason (rules.md, "Enforcement").
pub const WOULD_REJECT: &str = "claimgate_would_reject_total";
/// Money of the claims decided, by verdict and reason: the sum of `det_item_fee_sumamt` of the lines
/// that charge the fund (amount ≥ 0), in fen. Rejected amounts are the `verdict="reject"` series.
///
/// Amounts are counted as integers of fen in `u64` counters, never as `f64` (a gauge, or
/// `Counter::increment` of a float): the Prometheus text carries the integer as it is, exact to the fen
/// whatever the total, and a server that stores samples as `f64` keeps it exact up to 2^53 fen (about
/// 90 trillion yuan). Summing yuan in `f64` would drift by fractions of a fen after a few million lines.
/// A counter only grows, so refund lines (退费, negative amounts) are counted apart, in
/// [`CLAIMS_REFUND_FEN`]: the net is the difference of the two.
pub const CLAIMS_FEN: &str = "claimgate_claims_fen_total";
/// The absolute amounts, in fen, of refund lines (negative `det_item_fee_sumamt`), by verdict and reason.
pub const CLAIMS_REFUND_FEN: &str = "claimgate_claims_refund_fen_total";
/// Money of the accepted emergency (rescue) overrides, by the reason overridden, in fen (as
/// [`CLAIMS_FEN`]: charges only).
pub const OVERRIDES_FEN: &str = "claimgate_emergency_overrides_fen_total";
/// Refund lines among the emergency overrides, absolute amounts in fen, by the reason overridden.
pub const OVERRIDES_REFUND_FEN: &str = "claimgate_emergency_overrides_refund_fen_total";
/// Money of the accepted claims that a warned reason would reject once enforced, by that reason, in
/// fen (as [`CLAIMS_FEN`]: charges only).
pub const WOULD_REJECT_FEN: &str = "claimgate_would_reject_fen_total";
/// Refund lines among the warned claims, absolute amounts in fen, by the reason.
pub const WOULD_REJECT_REFUND_FEN: &str = "claimgate_would_reject_refund_fen_total";
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
/// Seconds the longest-stalled claims partition this instance holds has been held with nothing taken
/// from it (0 when none is stalled); `/healthz` fails past `limits.max_stalled_s`
/// (`src/io/kafka/pipeline/stall.rs`).
pub const CLAIMS_STALLED: &str = "claimgate_claims_stalled_seconds";
/// Offset commits or stores that failed, by when: `commit` (every commit the client reports failed,
/// periodic or not), `revoke` and `shutdown` (those of them made then, counted under `commit` too),
/// `store`. The claims after the last commit are decided again by the partition's next owner.
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
/// Exactly-once: claims per committed transaction (bounded by `limits.transaction_ms`, and by
/// `limits.batch_size` when set). Small transactions under load mean a round trip per few claims.
pub const TRANSACTION_CLAIMS: &str = "claimgate_transaction_claims";
/// Exactly-once: transactional producers replaced because a call blocked past its timeout or an abort
/// failed (the new one fences the old; `transactional_producer_replaced` in the log says why).
pub const PRODUCERS_REPLACED: &str = "claimgate_transactional_producers_replaced_total";

/// Buckets of [`TRANSACTION_CLAIMS`].
const TRANSACTION_SIZES: [f64; 9] = [1.0, 10.0, 100.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0, 50_000.0];

/// Installs the process-wide recorder (the `metrics` facade is global by design) and returns the
/// handle that renders `/metrics`.
pub fn install() -> Result<PrometheusHandle> {
    let latency = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0];
    let fine = [1e-7, 2e-7, 5e-7, 1e-6, 2e-6, 5e-6, 1e-5, 1e-4];
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(CLAIM_LATENCY.into()), &latency)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(STATUS_TO_VIEW.into()), &latency))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(DECISION_SECONDS.into()), &fine))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(TRANSACTION_CLAIMS.into()), &TRANSACTION_SIZES))
        .context("metrics buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")
        .inspect(|_| {
            // Every series an alert or a dashboard reads exists from the start, at 0: an absent series
            // would read as "no data", not as "none yet".
            let _ = ClaimMetrics::new();
            gauge!(READY).set(0.0);
            gauge!(OLDEST_UNACKED).set(0.0);
            gauge!(CLAIMS_STALLED).set(0.0);
            gauge!(CLAIMS_PARTITIONS).set(0.0);
            for when in ["commit", "revoke", "store", "shutdown"] {
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

/// One kind of per-reason count: lines, and their money in fen split into charges and refunds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Money {
    /// Lines.
    pub lines: u64,
    /// Sum of the amounts ≥ 0, in fen.
    pub charge_fen: u64,
    /// Sum of the absolute values of the negative amounts (refund lines), in fen.
    pub refund_fen: u64,
}

impl Money {
    /// Adds one line. Saturating: the claim parser admits amounts up to 10^15 yuan, so a batch of absurd
    /// lines could pass `u64::MAX` fen; a counter that stops there is wrong in plain sight, one that
    /// wrapped would be wrong quietly.
    pub fn add(&mut self, amount: Amount) {
        self.lines += 1;
        let fen = amount.fen();
        if fen >= 0 {
            self.charge_fen = self.charge_fen.saturating_add(fen.unsigned_abs());
        } else {
            self.refund_fen = self.refund_fen.saturating_add(fen.unsigned_abs());
        }
    }
}

/// A batch's counts by reason, added to the metrics once per batch.
#[derive(Debug, Default)]
pub struct ClaimCounts {
    /// By final reason.
    pub by_reason: [Money; Reason::COUNT],
    /// Emergency overrides, by the reason overridden.
    pub overridden: [Money; Reason::COUNT],
    /// Accepted lines a warned reason would reject, by that reason.
    pub would_reject: [Money; Reason::COUNT],
    /// Lines under legacy codes.
    pub legacy: u64,
}

impl ClaimCounts {
    /// Counts one decided line of `amount`.
    pub fn decided(&mut self, outcome: &Outcome<'_>, amount: Amount) {
        self.by_reason[outcome.reason.index()].add(amount);
        if let Some(r) = outcome.overridden {
            self.overridden[r.index()].add(amount);
        }
        if let Some(r) = outcome.would_reject {
            self.would_reject[r.index()].add(amount);
        }
        self.legacy += u64::from(outcome.legacy_code);
    }
}

/// The counters of one per-reason count: lines, charges, refunds.
struct MoneyCounters {
    lines: Counter,
    charge_fen: Counter,
    refund_fen: Counter,
}

impl MoneyCounters {
    fn add(&self, m: &Money) {
        for (counter, n) in [(&self.lines, m.lines), (&self.charge_fen, m.charge_fen), (&self.refund_fen, m.refund_fen)]
        {
            if n > 0 {
                counter.increment(n);
            }
        }
    }
}

/// Handles of the claim pipeline's counters, registered once.
pub struct ClaimMetrics {
    by_reason: Vec<MoneyCounters>,
    overrides: Vec<MoneyCounters>,
    would_reject: Vec<MoneyCounters>,
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
                .map(|r| {
                    let (v, r) = (verdict(*r).as_str(), r.as_str());
                    MoneyCounters {
                        lines: counter!(CLAIMS, "verdict" => v, "reason" => r),
                        charge_fen: counter!(CLAIMS_FEN, "verdict" => v, "reason" => r),
                        refund_fen: counter!(CLAIMS_REFUND_FEN, "verdict" => v, "reason" => r),
                    }
                })
                .collect(),
            overrides: Reason::ALL
                .iter()
                .map(|r| MoneyCounters {
                    lines: counter!(OVERRIDES, "overridden" => r.as_str()),
                    charge_fen: counter!(OVERRIDES_FEN, "overridden" => r.as_str()),
                    refund_fen: counter!(OVERRIDES_REFUND_FEN, "overridden" => r.as_str()),
                })
                .collect(),
            would_reject: Reason::ALL
                .iter()
                .map(|r| MoneyCounters {
                    lines: counter!(WOULD_REJECT, "would_reject" => r.as_str()),
                    charge_fen: counter!(WOULD_REJECT_FEN, "would_reject" => r.as_str()),
                    refund_fen: counter!(WOULD_REJECT_REFUND_FEN, "would_reject" => r.as_str()),
                })
                .collect(),
            dead_letters: counter!(DEAD_LETTERS, "field" => "-"),
            legacy: counter!(LEGACY_CODES),
            latency: histogram!(CLAIM_LATENCY),
            decision: histogram!(DECISION_SECONDS),
            in_flight: gauge!(IN_FLIGHT),
            paused: gauge!(PAUSED),
            retries: counter!(DELIVERY_RETRIES),
        }
    }

    /// Adds a batch's counts: lines and money by final reason, overridden reason and warned reason,
    /// and the legacy codes.
    pub fn add(&self, counts: &ClaimCounts) {
        for i in 0..Reason::COUNT {
            self.by_reason[i].add(&counts.by_reason[i]);
            self.overrides[i].add(&counts.overridden[i]);
            self.would_reject[i].add(&counts.would_reject[i]);
        }
        if counts.legacy > 0 {
            self.legacy.increment(counts.legacy);
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

#[cfg(test)]
mod tests {
    use super::*;
    use claimgate::record::Role;

    fn outcome(reason: Reason, overridden: Option<Reason>, would_reject: Option<Reason>) -> Outcome<'static> {
        Outcome {
            verdict: if reason.accepts() { Verdict::Accept } else { Verdict::Reject },
            reason,
            overridden,
            would_reject,
            role: Some(Role::Billing),
            rule: "r",
            profile: "p",
            practitioner_version: None,
            institution_version: None,
            legacy_code: false,
        }
    }

    /// The value of one series of the Prometheus text, exactly as rendered.
    fn series<'a>(text: &'a str, name: &str, labels: &str) -> Option<&'a str> {
        let head = format!("{name}{{{labels}}} ");
        text.lines().find_map(|l| l.strip_prefix(head.as_str()))
    }

    /// Money rejected, overridden and warned is in `/metrics` by reason, in fen, exactly: a total past
    /// 2^53 fen (where `f64` can no longer tell one fen from the next) renders to the last digit.
    #[test]
    fn amounts_rejected_overridden_and_warned_are_counted_by_reason_in_exact_fen() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let m = metrics::with_local_recorder(&recorder, ClaimMetrics::new);

        let mut batch = ClaimCounts::default();
        let suspended = outcome(Reason::PractitionerSuspended, None, None);
        batch.decided(&suspended, Amount::from_fen(12_650));
        batch.decided(&suspended, Amount::from_fen(1));
        batch.decided(&suspended, Amount::from_fen(-500)); // a refund line
        let rescue = outcome(Reason::EmergencyOverride, Some(Reason::PractitionerSuspended), None);
        batch.decided(&rescue, Amount::from_fen(88_888));
        let warned = outcome(Reason::Ok, None, Some(Reason::PractitionerNotRegisteredHere));
        batch.decided(&warned, Amount::from_fen(2_468));
        m.add(&batch);
        // A second batch takes the suspended total past 2^53 fen.
        let mut big = ClaimCounts::default();
        big.decided(&suspended, Amount::from_fen(1 << 53));
        m.add(&big);

        let text = handle.render();
        let r = r#"verdict="reject",reason="PRACTITIONER_SUSPENDED""#;
        assert_eq!(series(&text, CLAIMS, r), Some("4"), "{text}");
        // 12 650 + 1 + 2^53 = 9 007 199 254 753 643: as f64 it would read …752 or …756.
        assert_eq!(series(&text, CLAIMS_FEN, r), Some("9007199254753643"), "{text}");
        assert_eq!(series(&text, CLAIMS_REFUND_FEN, r), Some("500"), "{text}");
        let o = r#"verdict="accept",reason="EMERGENCY_OVERRIDE""#;
        assert_eq!(series(&text, CLAIMS_FEN, o), Some("88888"), "{text}");
        let by = r#"overridden="PRACTITIONER_SUSPENDED""#;
        assert_eq!(series(&text, OVERRIDES, by), Some("1"), "{text}");
        assert_eq!(series(&text, OVERRIDES_FEN, by), Some("88888"), "{text}");
        let w = r#"would_reject="PRACTITIONER_NOT_REGISTERED_HERE""#;
        assert_eq!(series(&text, WOULD_REJECT_FEN, w), Some("2468"), "{text}");
        assert_eq!(series(&text, CLAIMS_FEN, r#"verdict="accept",reason="OK""#), Some("2468"), "{text}");
        // Every series exists from the start, at 0.
        assert_eq!(series(&text, OVERRIDES_REFUND_FEN, by), Some("0"), "{text}");
        assert_eq!(series(&text, WOULD_REJECT_REFUND_FEN, w), Some("0"), "{text}");
    }

    #[test]
    fn an_absurd_batch_saturates_instead_of_wrapping() {
        let mut m = Money::default();
        for _ in 0..200 {
            m.add(Amount::from_fen(100_000_000_000_000_000));
        }
        assert_eq!((m.lines, m.charge_fen, m.refund_fen), (200, u64::MAX, 0));
    }
}
