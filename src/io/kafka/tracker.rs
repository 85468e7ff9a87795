//! Which consumed claim offsets may be committed: an offset is committable only when its output, and
//! the outputs of every earlier offset of its partition, have been acknowledged by the broker
//! (service.md: at least once, always).

use std::collections::VecDeque;
use std::time::Instant;

use rustc_hash::FxHashMap;

/// Offsets in flight for one partition, in consumption order.
#[derive(Debug, Default)]
struct Partition {
    /// (offset, acknowledged), offsets increasing.
    pending: VecDeque<(i64, bool)>,
    /// When the first unacknowledged offset (the front of `pending`) was consumed.
    front_since: Option<Instant>,
    /// The last offset whose output, and all before it, were acknowledged and not yet stored.
    committable: Option<i64>,
}

/// In-flight claims of every assigned partition.
#[derive(Debug, Default)]
pub struct Tracker {
    partitions: FxHashMap<i32, Partition>,
    in_flight: usize,
}

impl Tracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Tracker::default()
    }

    /// Claims consumed and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Records a consumed offset whose output is being produced.
    pub fn consumed(&mut self, partition: i32, offset: i64) {
        let p = self.partitions.entry(partition).or_default();
        // A redelivery after a rebalance can go back in offsets: start the partition over.
        if p.pending.back().is_some_and(|(last, _)| *last >= offset) {
            self.in_flight -= p.pending.iter().filter(|(_, done)| !done).count();
            p.pending.clear();
            p.front_since = None;
        }
        if p.pending.is_empty() {
            p.front_since = Some(Instant::now());
        }
        p.pending.push_back((offset, false));
        self.in_flight += 1;
    }

    /// When the oldest output still unacknowledged was consumed: how long the broker has kept the
    /// pipeline waiting (`claimgate_oldest_unacked_seconds`, `/healthz`).
    pub fn oldest_unacked(&self) -> Option<Instant> {
        self.partitions.values().filter_map(|p| p.front_since).min()
    }

    /// Records an acknowledgement. Unknown offsets (a partition revoked meanwhile) are ignored.
    pub fn acknowledged(&mut self, partition: i32, offset: i64) {
        let Some(p) = self.partitions.get_mut(&partition) else { return };
        let Ok(i) = p.pending.binary_search_by_key(&offset, |(o, _)| *o) else { return };
        if p.pending[i].1 {
            return;
        }
        p.pending[i].1 = true;
        self.in_flight -= 1;
        let mut advanced = false;
        while let Some(&(o, true)) = p.pending.front() {
            p.committable = Some(o);
            p.pending.pop_front();
            advanced = true;
        }
        // The front's own consume time is not kept: the next one waits from now at the latest, which
        // can only understate its age by the time it was queued behind the one just acknowledged.
        if advanced {
            p.front_since = if p.pending.is_empty() { None } else { Some(Instant::now()) };
        }
    }

    /// The partitions whose committable offset advanced since the last call, with the last offset
    /// whose output was acknowledged (store `offset + 1` as the next to consume).
    pub fn take_committable(&mut self) -> Vec<(i32, i64)> {
        let mut out = Vec::new();
        for (&partition, p) in &mut self.partitions {
            if let Some(o) = p.committable.take() {
                out.push((partition, o));
            }
        }
        out.sort_unstable();
        out
    }

    /// In-flight claims of one partition.
    pub fn in_flight_of(&self, partition: i32) -> usize {
        self.partitions.get(&partition).map_or(0, |p| p.pending.iter().filter(|(_, d)| !d).count())
    }

    /// Forgets a revoked partition: its unacknowledged claims will be redelivered to the new owner.
    pub fn forget(&mut self, partition: i32) {
        if let Some(p) = self.partitions.remove(&partition) {
            self.in_flight -= p.pending.iter().filter(|(_, done)| !done).count();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_a_fully_acknowledged_prefix() {
        let mut t = Tracker::new();
        for o in [10, 11, 12, 14] {
            t.consumed(0, o);
        }
        t.consumed(1, 5);
        assert_eq!(t.in_flight(), 5);
        t.acknowledged(0, 11);
        t.acknowledged(0, 12);
        assert_eq!(t.take_committable(), vec![]);
        t.acknowledged(0, 10);
        assert_eq!(t.take_committable(), vec![(0, 12)]);
        assert_eq!(t.take_committable(), vec![]);
        t.acknowledged(1, 5);
        t.acknowledged(0, 14);
        assert_eq!(t.take_committable(), vec![(0, 14), (1, 5)]);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn duplicate_and_unknown_acks_are_harmless() {
        let mut t = Tracker::new();
        t.consumed(0, 1);
        t.acknowledged(0, 1);
        t.acknowledged(0, 1);
        t.acknowledged(0, 99);
        t.acknowledged(7, 1);
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.take_committable(), vec![(0, 1)]);
    }

    #[test]
    fn revoked_partitions_are_forgotten() {
        let mut t = Tracker::new();
        t.consumed(0, 1);
        t.consumed(0, 2);
        t.consumed(3, 1);
        t.forget(0);
        assert_eq!(t.in_flight(), 1);
        t.acknowledged(0, 1);
        assert_eq!(t.take_committable(), vec![]);
    }

    #[test]
    fn the_oldest_unacknowledged_output_is_tracked_until_acknowledged() {
        let mut t = Tracker::new();
        assert!(t.oldest_unacked().is_none());
        t.consumed(0, 1);
        let first = t.oldest_unacked().expect("one in flight");
        std::thread::sleep(std::time::Duration::from_millis(5));
        t.consumed(1, 7);
        assert_eq!(t.oldest_unacked(), Some(first), "the older partition decides");
        t.acknowledged(0, 1);
        assert!(t.oldest_unacked().is_some_and(|o| o > first));
        t.acknowledged(1, 7);
        assert!(t.oldest_unacked().is_none());
    }

    #[test]
    fn a_rewind_starts_the_partition_over() {
        let mut t = Tracker::new();
        t.consumed(0, 5);
        t.consumed(0, 6);
        t.consumed(0, 5);
        assert_eq!(t.in_flight(), 1);
        t.acknowledged(0, 5);
        assert_eq!(t.take_committable(), vec![(0, 5)]);
    }
}
