//! The claim pipeline: consume `claims` in a consumer group, decide each line, produce the decision to
//! `claims.accepted` / `claims.rejected` (or the dead letter to `claims.dlq`) with the input's key and
//! headers.
//!
//! - [`decide`] — a batch of consumed claims decided into outputs, on one table snapshot;
//! - [`delivery`] — the producer, output records, queueing, and what a failed delivery means;
//! - [`at_least_once`] — the default mode: offsets committed only behind acknowledged outputs;
//! - [`transactional`] — `--exactly-once`: one Kafka transaction per batch;
//! - [`rebalance`] — the consumer's context when the group moves partitions.
//!
//! Before the first claim: the tables must be loaded, and the input and output topics must exist. Until
//! then `/readyz` says what is missing (`topics.create_missing` creates them at start-up instead).

pub mod at_least_once;
pub mod decide;
pub mod delivery;
pub mod rebalance;
pub mod stall;
pub mod transactional;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use rdkafka::config::ClientConfig;
use tokio_util::sync::CancellationToken;

use super::KafkaConfig;
use super::admin;
use claimgate::routing::Rules;
use claimgate::table::TableHandle;

/// Topic names and bounds of the pipeline.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Claims in.
    pub claims: String,
    /// Accepted decisions.
    pub accepted: String,
    /// Rejected decisions.
    pub rejected: String,
    /// Dead letters.
    pub dlq: String,
    /// Consumer group.
    pub group: String,
    /// In-flight bound.
    pub max_in_flight: usize,
    /// Claims per batch.
    pub batch_size: usize,
    /// Larger claims go to the dead-letter topic.
    pub max_message_bytes: usize,
    /// Shutdown deadline.
    pub shutdown_timeout: Duration,
    /// Exactly-once: longest transaction.
    pub transaction_time: Duration,
    /// Exactly-once: the producer's transactional id.
    pub transactional_id: Option<String>,
    /// Where a partition without a committed offset starts: `earliest`, `latest` or `error`.
    pub offsets_reset: String,
    /// Benchmark baseline: forward every claim unchanged to the accepted topic, deciding nothing —
    /// the same consumer, producer and commit path, so the ratio to it isolates the decision's cost.
    pub pass_through: bool,
}

/// What the operations port reads about the pipeline.
#[derive(Debug, Default)]
pub struct PipelineState {
    /// False once the pipeline has stopped or failed.
    pub alive: AtomicBool,
    /// Subscribed to an existing claims topic, outputs present: claims are taken.
    pub taking_claims: AtomicBool,
    /// Topics waited for, to say in `/readyz`.
    pub waiting_for: Mutex<Vec<String>>,
    /// Unix milliseconds when the oldest output still unacknowledged was consumed; 0: none.
    oldest_unacked_ms: AtomicU64,
    /// `limits.max_unacked_age_s` in ms: past it `/healthz` fails, and the log says so once.
    unacked_limit_ms: AtomicU64,
    /// The oldest output is past the limit (logged).
    unacked_over: AtomicBool,
    /// `limits.max_stalled_s` in ms: a held claims partition stalled this long fails `/healthz`.
    stall_limit_ms: AtomicU64,
    /// The held claims partitions across statistics reports, and the longest stall of the last one.
    stall: Mutex<(stall::StallWatch, Option<stall::Stall>)>,
    /// The longest stall is past the limit (logged).
    stall_over: AtomicBool,
}

impl PipelineState {
    /// A running pipeline's state; `/healthz` fails when an output has waited `unacked_limit` for the
    /// broker, or a held claims partition has been stalled for `stall_limit` ([`stall`]).
    pub fn new(unacked_limit: Duration, stall_limit: Duration) -> Self {
        PipelineState {
            alive: AtomicBool::new(true),
            unacked_limit_ms: AtomicU64::new(unacked_limit.as_millis() as u64),
            stall_limit_ms: AtomicU64::new(stall_limit.as_millis() as u64),
            ..PipelineState::default()
        }
    }

    /// Takes a statistics report of the claims consumer: times the stalls of the partitions it holds
    /// in `topic`, sets `claimgate_claims_stalled_seconds`, and says in the log when the longest passes
    /// the limit and when no partition is stalled any more.
    pub fn observe_claims(&self, statistics: &rdkafka::Statistics, topic: &str) {
        let reports = statistics.topics.get(topic).into_iter().flat_map(|t| {
            t.partitions.values().map(|p| stall::PartitionReport {
                partition: p.partition,
                held: p.desired,
                fetch_state: &p.fetch_state,
                app_offset: p.app_offset,
                next_offset: p.next_offset,
                ls_offset: p.ls_offset,
                queued: p.fetchq_cnt,
            })
        });
        let mut guard = self.stall.lock().unwrap_or_else(|p| p.into_inner());
        let longest = guard.0.observe(reports, Instant::now());
        let secs = longest.as_ref().map_or(0.0, |s| s.for_.as_secs_f64());
        ::metrics::gauge!(crate::io::metrics::CLAIMS_STALLED).set(secs);
        let limit = Duration::from_millis(self.stall_limit_ms.load(Ordering::Relaxed));
        let over = !limit.is_zero() && longest.as_ref().is_some_and(|s| s.for_ >= limit);
        if over != self.stall_over.swap(over, Ordering::Relaxed) {
            match &longest {
                Some(s) if over => tracing::warn!(
                    event = "claims_stalled",
                    partition = s.partition,
                    fetch_state = s.fetch_state,
                    stalled_s = secs,
                    limit_s = limit.as_secs_f64(),
                    "a claims partition is held but nothing is taken from it; /healthz fails until it moves (a restart of the instance takes its partitions afresh)"
                ),
                _ => tracing::info!(event = "claims_flowing", "every claims partition held is taken from again"),
            }
        }
        guard.1 = longest;
    }

    /// Why `/healthz` should fail for a stalled claims partition, if it should.
    pub fn stall_reason(&self) -> Option<String> {
        if !self.stall_over.load(Ordering::Relaxed) {
            return None;
        }
        let guard = self.stall.lock().unwrap_or_else(|p| p.into_inner());
        let s = guard.1.as_ref()?;
        Some(format!(
            "claims partition {} held for {:.0} s with nothing taken from it (fetch state {}; limits.max_stalled_s = {}): restart the instance",
            s.partition,
            s.for_.as_secs_f64(),
            s.fetch_state,
            self.stall_limit_ms.load(Ordering::Relaxed) / 1000
        ))
    }

    /// Records the consume time of the oldest unacknowledged output; says in the log when it passes the
    /// limit (an output has waited that long for the broker: `/healthz` fails) and when it is back under.
    pub fn set_oldest_unacked(&self, oldest: Option<Instant>) {
        let ms = oldest.map_or(0, |t| crate::io::clock::unix_ms().saturating_sub(t.elapsed().as_millis() as u64));
        self.oldest_unacked_ms.store(ms, Ordering::Relaxed);
        let age = self.oldest_unacked_secs();
        ::metrics::gauge!(crate::io::metrics::OLDEST_UNACKED).set(age);
        let limit = self.unacked_limit_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        let over = limit > 0.0 && age >= limit;
        if over != self.unacked_over.swap(over, Ordering::Relaxed) {
            if over {
                tracing::warn!(
                    event = "outputs_waiting",
                    age_s = age,
                    limit_s = limit,
                    "an output has waited this long for the broker's acknowledgement; /healthz fails until it comes"
                );
            } else {
                tracing::info!(event = "outputs_acknowledged", "the waiting outputs were acknowledged");
            }
        }
    }

    /// Sets `claimgate_oldest_unacked_seconds` to the age as of now, and returns it. `/metrics` calls it
    /// at every scrape: the pipeline sets the gauge only between its polls, so read alone the gauge lags
    /// the live age `/healthz` judges by (a scrape could show 2.9 s while `/healthz` failed past 3 s).
    pub fn observe_unacked(&self) -> f64 {
        let age = self.oldest_unacked_secs();
        ::metrics::gauge!(crate::io::metrics::OLDEST_UNACKED).set(age);
        age
    }

    /// Seconds the oldest unacknowledged output has waited for the broker; 0 when none waits.
    pub fn oldest_unacked_secs(&self) -> f64 {
        match self.oldest_unacked_ms.load(Ordering::Relaxed) {
            0 => 0.0,
            ms => crate::io::clock::unix_ms().saturating_sub(ms) as f64 / 1000.0,
        }
    }

    /// The topics waited for.
    pub fn waiting(&self) -> Vec<String> {
        self.waiting_for.lock().map(|w| w.clone()).unwrap_or_default()
    }
}

/// The claims consumer's configuration.
fn consumer_config(kafka: &KafkaConfig, cfg: &PipelineConfig, exactly_once: bool) -> ClientConfig {
    kafka.client(&[
        ("group.id", &cfg.group),
        ("enable.auto.commit", if exactly_once { "false" } else { "true" }),
        ("auto.commit.interval.ms", "1000"),
        ("enable.auto.offset.store", "false"),
        ("auto.offset.reset", &cfg.offsets_reset),
        ("isolation.level", "read_committed"),
        // Incremental cooperative rebalancing (KIP-429): when an instance joins or leaves, only the
        // partitions that move are revoked; the others are decided on throughout (rebalance.rs). Every
        // member of a group must use the same protocol: see README, "Scale-out".
        ("partition.assignment.strategy", "cooperative-sticky"),
        ("statistics.interval.ms", "5000"),
        // Large fetches: the broker, not the client, should be the limit (performance.md).
        ("fetch.max.bytes", "104857600"),
        ("max.partition.fetch.bytes", "8388608"),
        ("queued.min.messages", "200000"),
    ])
}

/// Runs the pipeline on the calling thread until `shutdown`; then drains in-flight claims, commits, and
/// returns. Waits for the topics, then for `tables_ready`, before taking any claim.
pub fn run(
    kafka: &KafkaConfig,
    cfg: &PipelineConfig,
    handle: &TableHandle,
    tables_ready: &AtomicBool,
    rules: &Rules,
    state: &Arc<PipelineState>,
    shutdown: &CancellationToken,
) -> Result<()> {
    // The topics are checked while the tables load (the check took 0.17 s of a restart that waited
    // for it after the load: BENCHMARKS.md, the comparison with Kafka Streams).
    if !wait_for_topics(kafka, cfg, state, shutdown)? {
        return Ok(());
    }
    // No claim is taken before the tables are loaded (service.md): wait before joining the group.
    while !tables_ready.load(Ordering::Acquire) {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if cfg.transactional_id.is_some() {
        transactional::run(kafka, cfg, handle, rules, state, shutdown)
    } else {
        at_least_once::run(kafka, cfg, handle, rules, state, shutdown)
    }
}

/// Waits until the claims topic and the output topics exist (creating them if configured to), saying
/// what is missing in the log (every 30 s) and in `/readyz`. False if shutdown came first.
fn wait_for_topics(
    kafka: &KafkaConfig,
    cfg: &PipelineConfig,
    state: &PipelineState,
    shutdown: &CancellationToken,
) -> Result<bool> {
    let names = [&cfg.claims, &cfg.accepted, &cfg.rejected, &cfg.dlq];
    let probe = admin::Metadata::new(kafka)?;
    let mut said: Option<Instant> = None;
    loop {
        if shutdown.is_cancelled() {
            return Ok(false);
        }
        let missing = match probe.missing(&names) {
            Ok(m) => m,
            Err(e) => {
                if said.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                    said = Some(Instant::now());
                    tracing::warn!(event = "metadata_unavailable", error = %format!("{e:#}"), "cannot list the topics yet");
                }
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if let Ok(mut w) = state.waiting_for.lock() {
            w.clone_from(&missing);
        }
        if missing.is_empty() {
            return Ok(true);
        }
        if said.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
            said = Some(Instant::now());
            tracing::warn!(
                event = "topic_missing",
                topics = ?missing,
                "waiting for topics to exist; no claim is taken meanwhile (create them, or set topics.create_missing)"
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gauge a scrape renders is the oldest output's wait as of the scrape, not as of the
    /// pipeline's last poll: the two must agree with `/healthz` (kafka_edge's unacked test saw `/healthz`
    /// fail past 3 s while the gauge still read under 3).
    #[test]
    fn a_scrape_reads_the_oldest_outputs_wait_as_of_now() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let gauge = |text: &str| -> f64 {
            let line = text.lines().find(|l| l.starts_with(crate::io::metrics::OLDEST_UNACKED)).expect(text);
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        metrics::with_local_recorder(&recorder, || {
            let state = PipelineState::new(Duration::from_secs(3), Duration::from_secs(60));
            state.set_oldest_unacked(Some(Instant::now() - Duration::from_millis(2_900)));
            let set = gauge(&handle.render());
            assert!((2.85..3.0).contains(&set), "{set}");
            std::thread::sleep(Duration::from_millis(300));
            assert_eq!(gauge(&handle.render()), set, "nothing but the pipeline and a scrape sets it");
            let age = state.observe_unacked();
            assert!(age >= 3.15, "{age}");
            assert_eq!(gauge(&handle.render()), age);
            assert!(state.oldest_unacked_secs() >= age);
            // None waiting: 0.
            state.set_oldest_unacked(None);
            assert_eq!(state.observe_unacked(), 0.0);
            assert_eq!(gauge(&handle.render()), 0.0);
        });
    }
}
