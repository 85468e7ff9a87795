//! Deciding consumed claims: one table snapshot and one clock reading per batch, each message turned
//! into its output — a decision to the accepted or rejected topic, or a dead letter — and the batch's
//! counts — lines and money, by reason — added to the metrics once.

use std::time::Instant;

use rdkafka::message::{BorrowedMessage, Message};

use super::PipelineConfig;
use crate::io::metrics::{ClaimCounts, ClaimMetrics};
use claimgate::batch::process;
use claimgate::record::{DeadLetter, Stamp, Verdict};
use claimgate::routing::Rules;
use claimgate::table::View;

/// What deciding one batch needs.
pub struct Batch<'a> {
    cfg: &'a PipelineConfig,
    view: &'a View,
    rules: &'a Rules,
    stamp: Stamp<'a>,
    metrics: &'a ClaimMetrics,
    /// Lines and money, added to the metrics once per batch.
    counts: ClaimCounts,
    started: Instant,
}

/// Where an output goes: its topic, and a key when the input has none and the line parsed
/// (`fixmedins_code|mdtrt_id`); otherwise the output takes the input's key.
pub struct Out<'c> {
    /// The output topic.
    pub topic: &'c str,
    /// The key to use instead of the input's.
    pub key: Option<Vec<u8>>,
}

impl<'a> Batch<'a> {
    /// A batch decided on `view` at `decided_at`.
    pub fn new(
        cfg: &'a PipelineConfig,
        view: &'a View,
        rules: &'a Rules,
        decided_at: &'a str,
        metrics: &'a ClaimMetrics,
    ) -> Self {
        let stamp = Stamp { table_epoch: view.epoch(), decided_at };
        Batch { cfg, view, rules, stamp, metrics, counts: ClaimCounts::default(), started: Instant::now() }
    }

    /// `topic/partition@offset` of a message: a dead letter's `source`.
    pub fn source(msg: &BorrowedMessage<'_>) -> String {
        format!("{}/{}@{}", msg.topic(), msg.partition(), msg.offset())
    }

    /// Decides one consumed message into `buf`.
    pub fn decide(&mut self, msg: &BorrowedMessage<'_>, buf: &mut Vec<u8>) -> Out<'a> {
        buf.clear();
        let cfg = self.cfg;
        let stamp = &self.stamp;
        let dead = |error: &str, field: Option<&str>, raw: &[u8], buf: &mut Vec<u8>| {
            let source = Batch::source(msg);
            DeadLetter::new(error, field, &source, raw, stamp.decided_at).write(buf);
        };
        if cfg.pass_through {
            buf.extend_from_slice(msg.payload().unwrap_or_default());
            return Out { topic: &cfg.accepted, key: None };
        }
        let Some(payload) = msg.payload() else {
            dead("empty message (null value)", None, b"", buf);
            self.metrics.dead_letter(None);
            return Out { topic: &cfg.dlq, key: None };
        };
        if payload.len() > cfg.max_message_bytes {
            let error = format!(
                "message of {} bytes exceeds limits.max_message_bytes ({}); raw holds its first {} bytes, the whole message stays at its source offset",
                payload.len(),
                cfg.max_message_bytes,
                cfg.max_message_bytes
            );
            dead(&error, None, &payload[..cfg.max_message_bytes], buf);
            self.metrics.dead_letter(None);
            return Out { topic: &cfg.dlq, key: None };
        }
        match process(payload, self.view, self.rules, stamp, buf) {
            Ok(d) => {
                let o = &d.outcome;
                self.counts.decided(o, d.claim.amount);
                let topic = if o.verdict == Verdict::Accept { &cfg.accepted } else { &cfg.rejected };
                let key = msg.key().is_none().then(|| {
                    // records.md: the key is `fixmedins_code|mdtrt_id`.
                    let mut k = Vec::with_capacity(32);
                    d.claim.fixmedins_code.write_bytes(&mut k);
                    k.push(b'|');
                    k.extend_from_slice(d.claim.mdtrt_id.as_bytes());
                    k
                });
                Out { topic, key }
            }
            Err(m) => {
                buf.clear();
                dead(&m.message, m.field, payload, buf);
                self.metrics.dead_letter(m.field);
                Out { topic: &cfg.dlq, key: None }
            }
        }
    }

    /// Adds the batch's counts to the metrics.
    pub fn finish(self, taken: usize) {
        if taken > 0 {
            self.metrics.decision.record(self.started.elapsed().as_secs_f64() / taken as f64);
            self.metrics.add(&self.counts);
        }
    }
}
