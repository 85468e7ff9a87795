//! Latency histograms: the percentile table of the report, and HdrHistogram's classic text output
//! (`.hgrm`, the format of Java's `outputPercentileDistribution`, readable by the usual plotters of
//! HdrHistogram files). The `hdrhistogram` crate has no writer for it; this is one.
//!
//! Values are recorded in microseconds and written in milliseconds.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// Microseconds per millisecond: the output unit of the `.hgrm` files and the report.
pub const US_PER_MS: f64 = 1000.0;

/// A histogram of latencies in microseconds, from 1 µs to 1 hour, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // Invariant: these bounds are valid (low >= 1, high >= 2 * low, sigfig <= 5).
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|e| unreachable!("{e}"))
}

/// The percentiles the report shows, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    /// Latencies recorded.
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub p9999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Percentiles {
    /// Reads them from a histogram in microseconds (all zero when it is empty).
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let q = |x: f64| h.value_at_quantile(x) as f64 / US_PER_MS;
        Percentiles {
            count: h.len(),
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            p9999_ms: q(0.9999),
            max_ms: h.max() as f64 / US_PER_MS,
            mean_ms: h.mean() / US_PER_MS,
        }
    }
}

/// One point of the percentile distribution: latency (ms) at quantile, with the count up to it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub value_ms: f64,
    pub quantile: f64,
    pub total: u64,
}

/// The percentile distribution as HdrHistogram reports it: 5 ticks per half distance to 100%.
pub fn distribution(h: &Histogram<u64>) -> Vec<Point> {
    let mut total = 0;
    h.iter_quantiles(5)
        .map(|v| {
            total += v.count_since_last_iteration();
            Point { value_ms: v.value_iterated_to() as f64 / US_PER_MS, quantile: v.quantile_iterated_to(), total }
        })
        .collect()
}

/// The classic `.hgrm` text of a histogram in microseconds, values in milliseconds.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = write!(out, "{:>12} {:>14} {:>10} {:>14}\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    for p in distribution(h) {
        if p.quantile < 1.0 {
            let _ = writeln!(
                out,
                "{:12.3} {:2.12} {:10} {:14.2}",
                p.value_ms,
                p.quantile,
                p.total,
                1.0 / (1.0 - p.quantile)
            );
        } else {
            let _ = writeln!(out, "{:12.3} {:2.12} {:10}", p.value_ms, p.quantile, p.total);
        }
    }
    let (mean, stdev, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (h.mean() / US_PER_MS, h.stdev() / US_PER_MS, h.max() as f64 / US_PER_MS)
    };
    let sub_buckets = (2 * 10u64.pow(u32::from(h.sigfig()))).next_power_of_two();
    let _ = writeln!(out, "#[Mean    = {mean:12.3}, StdDeviation   = {stdev:12.3}]");
    let _ = writeln!(out, "#[Max     = {max:12.3}, Total count    = {:12}]", h.len());
    let _ = writeln!(out, "#[Buckets = {:12}, SubBuckets     = {sub_buckets:12}]", h.buckets());
    out
}

/// Reads the distribution back from `.hgrm` text (as [`hgrm`] writes it).
pub fn parse(text: &str) -> Vec<Point> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 3 {
                return None;
            }
            Some(Point { value_ms: f[0].parse().ok()?, quantile: f[1].parse().ok()?, total: f[2].parse().ok()? })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hgrm_reads_back() {
        let h = uniform_1_to_10000_us();
        let back = parse(&hgrm(&h));
        let orig = distribution(&h);
        assert_eq!(back.len(), orig.len());
        for (a, b) in back.iter().zip(&orig) {
            assert!((a.value_ms - b.value_ms).abs() < 0.001 && (a.quantile - b.quantile).abs() < 1e-9);
            assert_eq!(a.total, b.total);
        }
    }

    fn uniform_1_to_10000_us() -> Histogram<u64> {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn percentiles_in_milliseconds() {
        let p = Percentiles::of(&uniform_1_to_10000_us());
        assert_eq!(p.count, 10_000);
        assert!((p.p50_ms - 5.0).abs() < 0.01, "{p:?}");
        assert!((p.p90_ms - 9.0).abs() < 0.01, "{p:?}");
        assert!((p.p99_ms - 9.9).abs() < 0.01, "{p:?}");
        assert!((p.max_ms - 10.0).abs() < 0.01, "{p:?}");
        assert!(p.p50_ms <= p.p90_ms && p.p90_ms <= p.p99_ms && p.p99_ms <= p.p999_ms);
        assert!(p.p999_ms <= p.p9999_ms && p.p9999_ms <= p.max_ms);
        assert_eq!(Percentiles::of(&new_histogram()), Percentiles::default());
    }

    #[test]
    fn hgrm_has_the_classic_layout() {
        let text = hgrm(&uniform_1_to_10000_us());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "       Value     Percentile TotalCount 1/(1-Percentile)");
        assert_eq!(lines[1], "");
        // First data line: the smallest value, at quantile 0, count 1.
        assert_eq!(lines[2], "       0.001 0.000000000000          1           1.00");
        // Data lines: four columns, quantiles non-decreasing, counts up to the total.
        let data: Vec<Vec<&str>> =
            lines[2..].iter().take_while(|l| !l.starts_with('#')).map(|l| l.split_whitespace().collect()).collect();
        assert!(data.len() > 50, "{} lines", data.len());
        let mut last_q = 0.0;
        for row in &data[..data.len() - 1] {
            assert_eq!(row.len(), 4, "{row:?}");
            let q: f64 = row[1].parse().unwrap();
            assert!(q >= last_q && q < 1.0);
            last_q = q;
        }
        let end = data.last().unwrap();
        assert_eq!(end.len(), 3, "the 100% line has no 1/(1-Percentile)");
        assert_eq!((end[0], end[1], end[2]), ("10.007", "1.000000000000", "10000"));
        let footer = &lines[lines.len() - 3..];
        assert!(
            footer[0].starts_with("#[Mean    =        5.00") && footer[0].contains("StdDeviation   =        2.88"),
            "{footer:?}"
        );
        assert_eq!(footer[1], "#[Max     =       10.007, Total count    =        10000]");
        assert!(footer[2].starts_with("#[Buckets =") && footer[2].ends_with("SubBuckets     =         2048]"));
    }

    #[test]
    fn empty_histogram_still_writes_a_valid_file() {
        let text = hgrm(&new_histogram());
        assert!(text.contains("Total count    =            0"), "{text}");
    }
}
