//! The claims consumer's context: what happens when the group moves partitions.
//!
//! The group rebalances cooperatively (`partition.assignment.strategy=cooperative-sticky`, KIP-429):
//! a revocation names only the partitions that leave this instance, an assignment only those that
//! arrive (rdkafka's default rebalance handler calls `incremental_unassign` / `incremental_assign` for
//! that protocol), and the partitions that stay are decided on throughout. Everything here therefore
//! works on the partitions named, never on "all of them".
//!
//! On revocation (at least once) the revoked partitions' outputs are given a bounded time to be
//! acknowledged, their offsets committed, and their book-keeping dropped; a commit that fails there is
//! logged at warn level and counted (`claimgate_commit_failures_total`), since the new owner will decide
//! those claims again. On assignment, every partition with no committed offset is said and counted
//! (`claimgate_offset_resets_total{reason="no_committed_offset"}`): it starts where `offsets.reset` says.
//!
//! At least once, offsets are committed by the client every second (`enable.auto.commit`). Every commit
//! the client reports failed — the periodic ones, and those made on revocation and at shutdown, which
//! are also counted under their own label — is counted (`claimgate_commit_failures_total{when="commit"}`)
//! and logged once per run of failures (`commit_failed`, `when="commit"`); the first commit that
//! succeeds after them says how many failed and for how long (`commits_resumed`). While the group's
//! coordinator cannot be reached nothing is committed, and every claim decided meanwhile is decided
//! again if the session is lost. Before this callback the failures of the periodic commits were not
//! said anywhere: rdkafka serves librdkafka's commit callback itself, so librdkafka's own `COMMITFAIL`
//! warning is not written either.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Offset};

use super::super::{BrokerWatch, Context};
use super::PipelineState;
use super::at_least_once::Inflight;
use crate::io::metrics as m;

/// The context of the claims consumer.
pub struct ConsumerCtx {
    /// At least once: the in-flight book-keeping; `None` in exactly-once mode, where the transaction
    /// holds the offsets.
    pub inflight: Option<Arc<Inflight>>,
    /// Set when partitions are revoked or lost (exactly once: a batch that saw it is aborted, since its
    /// offsets may belong to partitions this instance no longer owns). An assignment alone does not set
    /// it: with cooperative rebalancing the batch's partitions are still ours, and aborting every
    /// member's batch whenever an instance joins would stop the group for nothing.
    pub rebalanced: AtomicBool,
    /// Where a partition with no committed offset starts (`offsets.reset`).
    pub reset: String,
    /// Its broker connections, from its statistics.
    pub brokers: BrokerWatch,
    /// Where the stalls of the partitions it holds are told (`/healthz`, metrics, log).
    state: Arc<PipelineState>,
    /// The claims topic.
    topic: String,
    /// The commits failing since the last that succeeded: how many, and since when.
    failing: Mutex<Option<(u64, Instant)>>,
}

impl ConsumerCtx {
    /// The claims consumer's context; its statistics report the stalls of the `topic` partitions it
    /// holds to `state`.
    pub fn new(inflight: Option<Arc<Inflight>>, reset: &str, state: &Arc<PipelineState>, topic: &str) -> Self {
        ConsumerCtx {
            inflight,
            rebalanced: AtomicBool::new(false),
            reset: reset.to_owned(),
            brokers: BrokerWatch::new("claims"),
            state: Arc::clone(state),
            topic: topic.to_owned(),
            failing: Mutex::new(None),
        }
    }
}

impl ClientContext for ConsumerCtx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        Context { client: "claims" }.log(level, fac, log_message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        Context { client: "claims" }.error(error, reason);
    }
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.brokers.observe(&statistics);
        self.state.observe_claims(&statistics, &self.topic);
        Context { client: "claims" }.stats(statistics);
    }
}

impl ConsumerContext for ConsumerCtx {
    /// The result of each commit (the periodic ones, and those made on revocation and at shutdown).
    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, offsets: &rdkafka::TopicPartitionList) {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            // Nothing stored since the last commit: nothing to do, and nothing wrong.
            Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Ok(()) => {
                if let Some((failed, since)) = failing.take() {
                    let committed = partition_offsets(offsets, |_| true);
                    tracing::info!(
                        event = "commits_resumed",
                        failed,
                        seconds = since.elapsed().as_secs_f64(),
                        committed = ?committed,
                        "offsets are committed again"
                    );
                }
            }
            Err(e) => {
                ::metrics::counter!(m::COMMIT_FAILURES, "when" => "commit").increment(1);
                match failing.as_mut() {
                    Some((failed, _)) => *failed += 1,
                    None => {
                        *failing = Some((1, Instant::now()));
                        tracing::warn!(
                            event = "commit_failed",
                            when = "commit",
                            error = %e,
                            "offsets cannot be committed: the claims decided until they are would be decided again after a restart or a lost session (said again when commits resume)"
                        );
                    }
                }
            }
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let tpl = match rebalance {
            Rebalance::Assign(_) => return,
            Rebalance::Error(e) => {
                self.rebalanced.store(true, Ordering::Relaxed);
                tracing::warn!(event = "rebalance_error", error = %e, "the group's rebalance failed; the client rejoins");
                return;
            }
            Rebalance::Revoke(tpl) => tpl,
        };
        self.rebalanced.store(true, Ordering::Relaxed);
        // Every partition leaves unpaused. librdkafka keeps a partition's pause through its revocation
        // and a later assignment (confluentinc/librdkafka#1849), and the pipeline resumes only what it
        // holds when the back-pressure eases: a partition revoked or lost while paused for back-pressure
        // and given back later was never fetched again — held, nothing decided, until a restart (the
        // cluster soak of 2026-12-07; `tests/kafka_edge.rs`
        // `partitions_lost_while_paused_are_taken_from_again_when_given_back`). Its claims are not taken
        // meanwhile: revoked, it is no longer fetched for this instance.
        if let Err(e) = consumer.resume(tpl) {
            tracing::warn!(event = "resume_failed", error = %e, "cannot clear the pause of the partitions leaving");
        }
        let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        // What this instance keeps: with cooperative rebalancing, the revoked partitions are only some.
        let remaining: Vec<i32> = consumer
            .assignment()
            .map(|a| a.elements().iter().map(|e| e.partition()).filter(|p| !revoked.contains(p)).collect())
            .unwrap_or_default();
        ::metrics::gauge!(m::CLAIMS_PARTITIONS).set(remaining.len() as f64);
        if consumer.assignment_lost() {
            // The group session was lost (the coordinator did not hear from us in time): the partitions
            // may already have another owner, so nothing is waited for or committed; the claims after
            // the last commit are decided again, by whoever owns them now.
            if let Some(inflight) = &self.inflight {
                inflight.forget(&revoked);
            }
            // Where this instance had read to: against where the partitions resume (`partitions_resume_at`),
            // the claims decided again.
            let positions =
                consumer.position().map(|tpl| partition_offsets(&tpl, |p| revoked.contains(&p))).unwrap_or_default();
            tracing::warn!(event = "partitions_lost", partitions = ?revoked, positions = ?positions, assignment = ?remaining, "group session lost: partitions revoked without a commit");
            return;
        }
        if let Some(inflight) = &self.inflight {
            // Let the revoked partitions' outputs be acknowledged, so that their offsets are committed
            // here rather than their claims decided again by the new owner. Bounded: past it, the new
            // owner decides them again (at least once) and produces identical decisions.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                inflight.drain(consumer, Some(Duration::from_millis(20)));
                let waiting: usize = revoked.iter().map(|p| inflight.in_flight_of(*p)).sum();
                if waiting == 0 || Instant::now() >= deadline {
                    if waiting > 0 {
                        tracing::warn!(
                            event = "revoked_with_outputs_in_flight",
                            waiting,
                            "partitions revoked before every output was acknowledged: the new owner decides those claims again"
                        );
                    }
                    break;
                }
            }
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => {}
                Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => {
                    ::metrics::counter!(m::COMMIT_FAILURES, "when" => "revoke").increment(1);
                    tracing::warn!(event = "commit_failed", when = "revoke", error = %e, "the new owner decides the uncommitted claims again");
                }
            }
            inflight.forget(&revoked);
        }
        tracing::info!(event = "partitions_revoked", partitions = ?revoked, assignment = ?remaining);
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let assignment: Vec<i32> =
            consumer.assignment().map(|a| a.elements().iter().map(|e| e.partition()).collect()).unwrap_or_default();
        ::metrics::gauge!(m::CLAIMS_PARTITIONS).set(assignment.len() as f64);
        let Rebalance::Assign(tpl) = rebalance else { return };
        // `partitions`: those this rebalance added (cooperative: not the whole assignment);
        // `assignment`: every partition the instance holds now.
        let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        tracing::info!(event = "partitions_assigned", partitions = ?partitions, assignment = ?assignment);
        // Which of them start without a committed offset (a new group, or offsets expired)?
        let mut query = rdkafka::TopicPartitionList::new();
        for e in tpl.elements() {
            query.add_partition(e.topic(), e.partition());
        }
        match consumer.committed_offsets(query, Duration::from_secs(5)) {
            Ok(committed) => {
                // Where each partition resumes: with the last position before a lost session or a
                // revocation, the claims that are decided again.
                let resumes_at = partition_offsets(&committed, |_| true);
                tracing::info!(event = "partitions_resume_at", resumes_at = ?resumes_at);
                for e in committed.elements() {
                    if e.offset() == Offset::Invalid {
                        ::metrics::counter!(m::OFFSET_RESETS, "reason" => "no_committed_offset").increment(1);
                        tracing::warn!(
                            event = "offset_reset",
                            topic = e.topic(),
                            partition = e.partition(),
                            reason = "no_committed_offset",
                            to = self.reset,
                            "no committed offset for this partition: starting at `offsets.reset`"
                        );
                    }
                }
            }
            // Said: the consumer needs the same offsets to start fetching these partitions, and when the
            // group's coordinator cannot give them, nothing is taken from them (see `stall`).
            Err(e) => tracing::warn!(
                event = "committed_offsets_unknown",
                partitions = ?partitions,
                error = %e,
                "cannot read the committed offsets of the partitions just assigned (the consumer keeps asking)"
            ),
        }
    }
}

/// `(partition, offset)` of the partitions `keep` accepts, for a log line (-1001: no offset).
fn partition_offsets(tpl: &rdkafka::TopicPartitionList, keep: impl Fn(i32) -> bool) -> Vec<(i32, i64)> {
    tpl.elements()
        .iter()
        .filter(|e| keep(e.partition()))
        .filter_map(|e| e.offset().to_raw().map(|o| (e.partition(), o)))
        .collect()
}
