//! A claims partition held but not consumed: found from the claims consumer's statistics.
//!
//! The instance can hold a partition and still take nothing from it: after a broker cut off from its
//! peers was healed, one instance of the cluster soak held all four `claims` partitions and decided
//! nothing for at least 84 s, with nothing in its log (RELIABILITY.md, "What the tests found"): the
//! group was whole, the committed offsets could not be read. Nothing is lost that way, but nothing is
//! decided either, and no other check sees it — the outputs are all acknowledged, the table is fresh,
//! the partitions are held.
//!
//! A held partition (`desired` in librdkafka's statistics) is *stalled* while either
//! - its fetch state is not `active` (`offset-query`, `offset-wait`: the consumer does not know where
//!   to start, or `none`, `stopped`); or
//! - claims may wait in it and the offset last handed to the application has not moved since the
//!   previous report. Claims wait when the consumer has fetched less than the partition holds — its next
//!   fetch offset is below the last stable offset (not the high watermark: a read-committed consumer
//!   cannot read past an open transaction upstream), or that offset is unknown because no fetch was
//!   answered yet — or when fetched claims sit in its queue. The next fetch offset, not the offset handed
//!   over, is compared: transaction markers take offsets no claim is delivered for.
//!
//! The stall is timed from the first report that shows it; past `limits.max_stalled_s`, `/healthz`
//! fails with the partition and its fetch state, and the log says so once (`claims_stalled`; then
//! `claims_flowing`). A restart of the instance is the remedy: the new consumer reads the committed
//! offsets afresh (RELIABILITY.md). `claimgate_claims_stalled_seconds` is the longest stall now.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One held partition as a statistics report shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionReport<'a> {
    /// The partition.
    pub partition: i32,
    /// Held by this instance (librdkafka's `desired`).
    pub held: bool,
    /// `none`, `stopping`, `stopped`, `offset-query`, `offset-wait`, `active`.
    pub fetch_state: &'a str,
    /// The offset of the last message handed to the application, plus one (negative: none yet).
    pub app_offset: i64,
    /// The next offset to fetch (negative: not known yet).
    pub next_offset: i64,
    /// The broker's last stable offset as last fetched (negative: unknown).
    pub ls_offset: i64,
    /// Messages fetched and not yet handed to the application.
    pub queued: i64,
}

/// The longest stall in a report.
#[derive(Clone, Debug, PartialEq)]
pub struct Stall {
    /// The partition.
    pub partition: i32,
    /// Its fetch state.
    pub fetch_state: String,
    /// How long it has been stalled.
    pub for_: Duration,
}

#[derive(Debug)]
struct Track {
    app_offset: i64,
    since: Option<Instant>,
}

/// The partitions' stalls across reports.
#[derive(Debug, Default)]
pub struct StallWatch {
    parts: HashMap<i32, Track>,
}

impl StallWatch {
    /// Takes one report (every partition of the claims topic it lists) made at `now`; returns the
    /// longest current stall, if any partition is stalled.
    pub fn observe<'a>(&mut self, parts: impl IntoIterator<Item = PartitionReport<'a>>, now: Instant) -> Option<Stall> {
        let mut seen = Vec::new();
        let mut longest: Option<Stall> = None;
        for p in parts {
            if p.partition < 0 || !p.held {
                continue;
            }
            seen.push(p.partition);
            let track = self.parts.entry(p.partition).or_insert(Track { app_offset: p.app_offset, since: None });
            let moved = p.app_offset != track.app_offset;
            let waiting = p.ls_offset < 0 || p.next_offset < p.ls_offset || p.queued > 0;
            let stalled = p.fetch_state != "active" || (waiting && !moved);
            track.app_offset = p.app_offset;
            if !stalled {
                track.since = None;
                continue;
            }
            let since = *track.since.get_or_insert(now);
            let for_ = now.saturating_duration_since(since);
            if longest.as_ref().is_none_or(|l| for_ > l.for_) {
                longest = Some(Stall { partition: p.partition, fetch_state: p.fetch_state.to_owned(), for_ });
            }
        }
        // A partition no longer held is no longer watched.
        self.parts.retain(|id, _| seen.contains(id));
        longest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A partition fetched up to `next` (handed over up to `app`) of `ls` stable offsets, nothing queued.
    fn report(partition: i32, fetch_state: &str, app: i64, next: i64, ls: i64) -> PartitionReport<'_> {
        PartitionReport {
            partition,
            held: true,
            fetch_state,
            app_offset: app,
            next_offset: next,
            ls_offset: ls,
            queued: 0,
        }
    }

    #[test]
    fn a_partition_out_of_the_active_state_is_stalled_from_the_first_report_that_shows_it() {
        let mut w = StallWatch::default();
        let t0 = Instant::now();
        assert_eq!(w.observe([report(0, "active", 10, 10, 10)], t0), None);
        let first = w.observe([report(0, "offset-query", -1001, -1001, -1)], t0 + Duration::from_secs(5)).unwrap();
        assert_eq!((first.partition, first.fetch_state.as_str(), first.for_), (0, "offset-query", Duration::ZERO));
        let later = w.observe([report(0, "offset-wait", -1001, -1001, -1)], t0 + Duration::from_secs(65)).unwrap();
        assert_eq!(later.for_, Duration::from_secs(60));
        // Consuming again ends it.
        assert_eq!(w.observe([report(0, "active", 12, 20, 20)], t0 + Duration::from_secs(70)), None);
    }

    #[test]
    fn claims_waiting_behind_an_offset_that_does_not_move_are_a_stall_and_a_moving_one_is_not() {
        let mut w = StallWatch::default();
        let t0 = Instant::now();
        let first = w.observe([report(1, "active", 100, 200, 500)], t0).unwrap();
        assert_eq!((first.partition, first.for_), (1, Duration::ZERO));
        // Moving: not stalled, however much waits.
        assert_eq!(w.observe([report(1, "active", 300, 400, 900)], t0 + Duration::from_secs(5)), None);
        // Standing still with claims waiting: stalled from this report on.
        assert!(w.observe([report(1, "active", 300, 400, 900)], t0 + Duration::from_secs(10)).is_some());
        let s = w.observe([report(1, "active", 300, 400, 950)], t0 + Duration::from_secs(40)).unwrap();
        assert_eq!(s.for_, Duration::from_secs(30));
        // Fetched claims that sit in the queue, not handed over: a stall too.
        let queued = PartitionReport { queued: 50, ..report(6, "active", 10, 60, 60) };
        w.observe([queued.clone()], t0);
        assert_eq!(w.observe([queued], t0 + Duration::from_secs(20)).map(|s| s.for_), Some(Duration::from_secs(20)));
        // Fetching, but no fetch ever answered (the stable offset unknown): a stall too.
        w.observe([report(5, "active", -1001, 0, -1)], t0);
        let s = w.observe([report(5, "active", -1001, 0, -1)], t0 + Duration::from_secs(30)).unwrap();
        assert_eq!((s.partition, s.for_), (5, Duration::from_secs(30)));
    }

    #[test]
    fn a_caught_up_partition_or_one_no_longer_held_is_not_stalled() {
        let mut w = StallWatch::default();
        let t0 = Instant::now();
        // Nothing waits: the offset may stand still for ever.
        for k in 0..10 {
            assert_eq!(w.observe([report(2, "active", 700, 700, 700)], t0 + Duration::from_secs(5 * k)), None);
        }
        // Written in transactions: the commit marker takes offset 700, never handed over; fetched past it.
        for k in 0..10 {
            assert_eq!(w.observe([report(7, "active", 700, 701, 701)], t0 + Duration::from_secs(5 * k)), None);
        }
        // An open transaction upstream: the high watermark is past, the stable offset is not.
        assert_eq!(w.observe([report(8, "active", 40, 41, 41)], t0 + Duration::from_secs(60)), None);
        // An empty partition: no message handed over yet, none to hand over.
        assert_eq!(w.observe([report(3, "active", -1001, 0, 0)], t0), None);
        // Stalled, then given up (revoked): forgotten, and a later stall is timed afresh.
        w.observe([report(2, "offset-query", -1001, -1001, -1)], t0);
        assert!(w.observe([], t0 + Duration::from_secs(30)).is_none());
        let again = w.observe([report(2, "offset-query", -1001, -1001, -1)], t0 + Duration::from_secs(40)).unwrap();
        assert_eq!(again.for_, Duration::ZERO);
        // Partitions the instance does not hold (`desired` false) and librdkafka's internal one (-1).
        let not_held = PartitionReport { held: false, ..report(4, "none", -1001, -1001, -1) };
        assert_eq!(w.observe([not_held, report(-1, "none", -1001, -1001, -1)], t0), None);
    }

    #[test]
    fn the_longest_of_several_stalls_is_reported() {
        let mut w = StallWatch::default();
        let t0 = Instant::now();
        w.observe([report(0, "offset-query", -1, -1, -1)], t0);
        let s = w
            .observe(
                [report(0, "offset-query", -1, -1, -1), report(1, "offset-wait", -1, -1, -1)],
                t0 + Duration::from_secs(20),
            )
            .unwrap();
        assert_eq!((s.partition, s.for_), (0, Duration::from_secs(20)));
    }
}
