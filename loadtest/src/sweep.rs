//! Saturation: when a step's rate is more than the system takes, and which rate to try next.

/// What a step showed, as saturation detection needs it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observed {
    /// Target rate, lines per second.
    pub target: f64,
    /// Outputs received per second during the measurement window.
    pub achieved: f64,
    /// Median latency (ms) of the lines meant to be sent in the first fifth of the window.
    pub p50_first_ms: f64,
    /// Same for the last fifth.
    pub p50_last_ms: f64,
    /// Lines without an output when the drain time ran out.
    pub unreceived: u64,
}

/// Why a step counts as saturated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Saturation {
    /// Kept up.
    No,
    /// Fewer outputs per second than [`MIN_ACHIEVED`] of the target.
    Throughput,
    /// Latency grew through the window: a queue was building.
    LatencyGrowth,
    /// Lines still missing after the drain time.
    Backlog,
}

/// Achieved below this share of the target rate is saturation.
pub const MIN_ACHIEVED: f64 = 0.95;
/// Latency growth through the window: the last fifth's median must exceed the first's by this much
/// (ms) and by [`GROWTH_FACTOR`] to count.
pub const GROWTH_MS: f64 = 200.0;
/// See [`GROWTH_MS`].
pub const GROWTH_FACTOR: f64 = 2.0;

impl Observed {
    /// Saturated, and why.
    pub fn saturation(&self) -> Saturation {
        if self.unreceived > 0 {
            Saturation::Backlog
        } else if self.achieved < MIN_ACHIEVED * self.target {
            Saturation::Throughput
        } else if self.p50_last_ms > self.p50_first_ms + GROWTH_MS
            && self.p50_last_ms > GROWTH_FACTOR * self.p50_first_ms
        {
            Saturation::LatencyGrowth
        } else {
            Saturation::No
        }
    }
}

/// The rates of a sweep: geometric steps up from `start` until the first saturated step (or `max`),
/// then `refine` bisections between the highest rate that kept up and the lowest that did not.
#[derive(Clone, Debug)]
pub struct Sweep {
    start: u64,
    factor: f64,
    max: u64,
    refine: u32,
    refined: u32,
    tried: Vec<(u64, bool)>,
}

impl Sweep {
    /// A sweep plan.
    pub fn new(start: u64, factor: f64, max: u64, refine: u32) -> Sweep {
        Sweep { start: start.max(1), factor: factor.max(1.05), max: max.max(start), refine, refined: 0, tried: vec![] }
    }

    /// Records a step's outcome.
    pub fn record(&mut self, rate: u64, saturated: bool) {
        // Every step after the first saturated one is a refinement.
        if self.lowest_bad().is_some() {
            self.refined += 1;
        }
        self.tried.push((rate, saturated));
    }

    /// A sweep that only bisects between `ok` (kept up) and `bad` (saturated): the refinement after
    /// a ladder. Without `bad` there is nothing to refine.
    pub fn seeded(ok: Option<u64>, bad: Option<u64>, refine: u32) -> Sweep {
        let top = ok.unwrap_or(1);
        let mut s = Sweep::new(top, 2.0, top, refine);
        s.tried = ok.map(|r| (r, false)).into_iter().chain(bad.map(|b| (b, true))).collect();
        s
    }

    /// The highest rate that kept up.
    pub fn highest_ok(&self) -> Option<u64> {
        self.tried.iter().filter(|t| !t.1).map(|t| t.0).max()
    }

    /// The lowest rate above [`Sweep::highest_ok`] that saturated (on a noisy machine a lower rate may
    /// have saturated too; it does not bound the saturating rate).
    pub fn lowest_bad(&self) -> Option<u64> {
        let ok = self.highest_ok().unwrap_or(0);
        self.tried.iter().filter(|t| t.1 && t.0 > ok).map(|t| t.0).min()
    }

    /// The next rate to try, or `None` when the sweep is done.
    pub fn next(&self) -> Option<u64> {
        let ok = self.highest_ok();
        match self.lowest_bad() {
            None => {
                let next = match ok {
                    None => self.start,
                    Some(r) if r >= self.max => return None,
                    Some(r) => ((r as f64 * self.factor).round() as u64).min(self.max),
                };
                Some(next)
            }
            Some(bad) => {
                if self.refined >= self.refine {
                    return None;
                }
                let lo = ok.unwrap_or(0);
                let mid = (lo + bad) / 2;
                // Not worth a step when the interval is within 3% of the rate.
                if bad - lo <= bad / 33 || mid == lo {
                    return None;
                }
                Some(round_rate(mid))
            }
        }
    }
}

/// Rounds to two significant digits beyond 10 000 (readable rates in the tables).
pub fn round_rate(r: u64) -> u64 {
    let unit = match r {
        0..10_000 => 100,
        10_000..100_000 => 500,
        _ => 1_000,
    };
    (r + unit / 2) / unit * unit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(target: f64, achieved: f64, first: f64, last: f64, unreceived: u64) -> Observed {
        Observed { target, achieved, p50_first_ms: first, p50_last_ms: last, unreceived }
    }

    #[test]
    fn saturation_by_throughput_growth_or_backlog() {
        assert_eq!(obs(10_000.0, 9_990.0, 2.0, 2.5, 0).saturation(), Saturation::No);
        assert_eq!(obs(10_000.0, 9_600.0, 2.0, 150.0, 0).saturation(), Saturation::No, "a bump below 200 ms");
        assert_eq!(obs(10_000.0, 9_400.0, 2.0, 2.0, 0).saturation(), Saturation::Throughput);
        assert_eq!(obs(10_000.0, 9_990.0, 50.0, 900.0, 0).saturation(), Saturation::LatencyGrowth);
        assert_eq!(obs(10_000.0, 9_990.0, 400.0, 700.0, 0).saturation(), Saturation::No, "high but not growing 2x");
        assert_eq!(obs(10_000.0, 10_000.0, 1.0, 1.0, 3).saturation(), Saturation::Backlog);
    }

    #[test]
    fn sweep_goes_up_geometrically_then_bisects() {
        let capacity = 50_000;
        let mut s = Sweep::new(10_000, 1.5, 1_000_000, 2);
        let mut rates = vec![];
        while let Some(r) = s.next() {
            rates.push(r);
            s.record(r, r > capacity);
            assert!(rates.len() < 20);
        }
        assert_eq!(rates, vec![10_000, 15_000, 22_500, 33_750, 50_625, 42_000, 46_500]);
        assert_eq!(s.highest_ok(), Some(46_500));
        assert_eq!(s.lowest_bad(), Some(50_625));
    }

    #[test]
    fn sweep_stops_at_max_or_when_the_first_step_saturates() {
        let mut s = Sweep::new(10_000, 2.0, 30_000, 1);
        let mut rates = vec![];
        while let Some(r) = s.next() {
            rates.push(r);
            s.record(r, false);
        }
        assert_eq!(rates, vec![10_000, 20_000, 30_000]);
        let mut s = Sweep::new(10_000, 2.0, 100_000, 1);
        s.record(s.next().unwrap(), true);
        assert_eq!(s.next(), Some(5_000), "bisects below a saturated first step");
        s.record(5_000, false);
        assert_eq!(s.next(), None);
        assert_eq!(s.highest_ok(), Some(5_000));
    }

    #[test]
    fn seeded_sweeps_only_bisect() {
        let mut s = Sweep::seeded(Some(20_000), Some(30_000), 2);
        assert_eq!(s.next(), Some(25_000));
        s.record(25_000, true);
        assert_eq!(s.next(), Some(22_500));
        s.record(22_500, false);
        assert_eq!(s.next(), None);
        assert_eq!((s.highest_ok(), s.lowest_bad()), (Some(22_500), Some(25_000)));
        assert_eq!(Sweep::seeded(Some(50_000), None, 2).next(), None, "never saturated: nothing to refine");
        assert_eq!(Sweep::seeded(None, Some(10_000), 1).next(), Some(5_000));
    }

    #[test]
    fn a_saturated_rate_below_one_that_kept_up_does_not_bound_it() {
        let mut s = Sweep::new(10_000, 1.5, 100_000, 0);
        s.record(10_000, false);
        s.record(15_000, true);
        s.record(22_500, false);
        s.record(33_750, true);
        assert_eq!((s.highest_ok(), s.lowest_bad()), (Some(22_500), Some(33_750)));
    }

    #[test]
    fn rates_are_rounded() {
        assert_eq!(round_rate(42_187), 42_000);
        assert_eq!(round_rate(46_406), 46_500);
        assert_eq!(round_rate(123_456), 123_000);
        assert_eq!(round_rate(7_777), 7_800);
    }
}
