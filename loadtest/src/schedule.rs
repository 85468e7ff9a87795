//! The open-loop schedule: line `i` of a step is due at `i / rate` seconds after the step's start,
//! whatever happened to the lines before it. The generator sends every due line at once when it is
//! behind, and each line keeps its *intended* time (coordinated omission corrected: a stall of the
//! system under test shows as latency of every line that should have been sent during it).

/// A fixed-rate schedule of `total` lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Lines per second, at least 1.
    rate: u64,
    /// Lines in the step.
    total: u64,
}

const NS: u128 = 1_000_000_000;

impl Schedule {
    /// `rate` lines per second for `seconds` seconds (at least one line).
    pub fn new(rate: u64, seconds: f64) -> Schedule {
        let rate = rate.max(1);
        let total = ((rate as f64) * seconds.max(0.0)).round().max(1.0) as u64;
        Schedule { rate, total }
    }

    /// Lines in the step.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Intended send time of line `i`, in nanoseconds after the step's start: `floor(i * 1e9 / rate)`.
    /// Integer arithmetic: no drift over millions of lines.
    pub fn intended_ns(&self, i: u64) -> u64 {
        (i as u128 * NS / self.rate as u128) as u64
    }

    /// How many lines are due `elapsed_ns` after the start: those with `intended_ns(i) <= elapsed_ns`,
    /// at most `total`.
    pub fn due(&self, elapsed_ns: u64) -> u64 {
        // floor(i*NS/rate) <= t  <=>  i*NS < (t+1)*rate  <=>  i < ceil((t+1)*rate / NS)
        let n = ((elapsed_ns as u128 + 1) * self.rate as u128).div_ceil(NS);
        (n.min(self.total as u128)) as u64
    }

    /// Duration of the schedule in nanoseconds (intended time of the line after the last).
    pub fn span_ns(&self) -> u64 {
        self.intended_ns(self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_counts_exactly_the_lines_whose_intended_time_has_come() {
        for rate in [1, 3, 7, 1000, 33_333, 150_000] {
            let s = Schedule::new(rate, 2.0);
            let mut t = 0u64;
            // Every line's own intended time makes it due; one nanosecond earlier it is not.
            for i in (0..s.total()).step_by((s.total() / 500).max(1) as usize) {
                let at = s.intended_ns(i);
                assert!(s.due(at) > i, "rate {rate}: line {i} not due at its time {at}");
                if at > 0 {
                    assert!(s.due(at - 1) <= i, "rate {rate}: line {i} due before its time");
                }
                assert!(at >= t, "intended times go forward");
                t = at;
            }
        }
    }

    #[test]
    fn totals_and_rates_are_exact_without_drift() {
        let s = Schedule::new(100_000, 10.0);
        assert_eq!(s.total(), 1_000_000);
        assert_eq!(s.intended_ns(100_000), 1_000_000_000);
        assert_eq!(s.intended_ns(999_999), 9_999_990_000);
        assert_eq!(s.due(0), 1);
        assert_eq!(s.due(5_000_000_000), 500_001);
        assert_eq!(s.due(u64::MAX / 2), 1_000_000, "never more than the total");
        assert_eq!(s.span_ns(), 10_000_000_000);
        let third = Schedule::new(3, 1.0);
        assert_eq!([third.intended_ns(0), third.intended_ns(1), third.intended_ns(2)], [0, 333_333_333, 666_666_666]);
    }

    #[test]
    fn behind_schedule_everything_due_is_sent_at_once() {
        // A sender stalled for 50 ms at 10k/s owes 500 lines at once, each keeping its own time.
        let s = Schedule::new(10_000, 1.0);
        let owed = s.due(50_000_000) - s.due(0);
        assert_eq!(owed, 500);
        assert_eq!(s.intended_ns(s.due(0)), 100_000);
    }

    #[test]
    fn degenerate_inputs_are_clamped() {
        assert_eq!(Schedule::new(0, 1.0).intended_ns(1), 1_000_000_000, "at least 1 line/s");
        assert_eq!(Schedule::new(1000, 0.0).total(), 1);
        assert_eq!(Schedule::new(1000, -3.0).total(), 1);
    }
}
