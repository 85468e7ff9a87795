//! What a run measured, in the form `summary.json` holds and `report.md` shows.

use serde::{Deserialize, Serialize};

use crate::hgrm::{Percentiles, Point};
use crate::kafka::{Sent, StepRec};
use crate::session::System;
use crate::sweep::{Observed, Saturation};
use crate::tally::Agreement;

/// Which part of the run a step belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// A rate of the sweep.
    Sweep,
    /// Half of claimgate's saturating rate.
    HalfRate,
    /// The load under which the status changes were made.
    Status,
    /// A fixed rate on the large table (`--scale-practitioners`), started cold.
    Scale,
    /// The same system restarted on the large table with its state kept (checkpointed restart).
    Restart,
    /// A fixed rate under a profiler (JFR for the JVM, perf for claimgate).
    Profile,
}

/// One measured step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepResult {
    pub system: System,
    pub phase: Phase,
    pub step: u32,
    pub target_rate: u64,
    pub warmup_s: f64,
    pub measure_s: f64,
    /// Lines the generator sent, and at what rate it managed to send them.
    pub sent: u64,
    pub send_rate: f64,
    /// Most the generator fell behind its schedule (ms); large values mean the machine, not the
    /// system under test, limited the step.
    pub generator_max_behind_ms: f64,
    pub delivery_failures: u64,
    /// CPU use while the lines were sent: the whole machine, the system under test, the load test,
    /// and everything else (the broker, other users of the machine).
    pub cpu: crate::cpu::CpuUse,
    /// Outputs per second received during the measurement window.
    pub achieved_rate: f64,
    /// End-to-end latency of the lines meant to be sent in the measurement window.
    pub latency: Percentiles,
    pub p50_first_fifth_ms: f64,
    pub p50_last_fifth_ms: f64,
    pub unreceived_at_deadline: u64,
    pub saturation: Saturation,
    /// At the end of the session (after the backlog drained): lines without an output, lines with
    /// more than one, decisions that did not match their line's identity, outputs of unknown lines.
    pub lost: u64,
    pub duplicates: u64,
    pub identity_mismatches: u64,
    pub unknown: u64,
    /// Distinct lines by outcome: accepted, rejected, dead letters.
    pub outcomes: [u64; 3],
    /// CPU seconds the system under test used over the measurement window (warm-up and drain left
    /// out), and per million outputs received in the window (0 when it has no process or none came).
    #[serde(default)]
    pub system_cpu_s: f64,
    #[serde(default)]
    pub cpu_s_per_million: f64,
    /// Peak resident set size of the system's process over its whole session (`VmHWM`), MiB.
    #[serde(default)]
    pub peak_rss_mib: Option<f64>,
    /// Seconds from the system's spawn to its first output, and to its first batch decided.
    #[serde(default)]
    pub first_decision_s: f64,
    #[serde(default)]
    pub ready_s: f64,
    /// Practitioner codes in the status table the step ran against.
    #[serde(default)]
    pub table_codes: u64,
    /// Size on disk of the system's state directory at the end of the session (the large-table
    /// phase: Kafka Streams' RocksDB files, read through the page cache, which RSS does not count;
    /// claimgate's checkpoint), MiB.
    #[serde(default)]
    pub state_mib: Option<f64>,
    /// The `.hgrm` file of the step.
    pub hgrm: String,
    #[serde(skip)]
    pub distribution: Vec<Point>,
    #[serde(skip)]
    pub hgrm_text: String,
}

impl StepResult {
    /// From the generator's and the reader's records (loss figures are those at the deadline until
    /// [`StepResult::finalise`] sets them from the end of the session).
    pub fn new(system: System, phase: Phase, rate: u64, warmup: f64, measure: f64, sent: &Sent, rec: &StepRec) -> Self {
        let window = (rec.end_ns - rec.warm_ns) as f64 / 1e9;
        let achieved = if window > 0.0 { rec.received_in_window as f64 / window } else { 0.0 };
        let first = Percentiles::of(&rec.first_fifth).p50_ms;
        let last = Percentiles::of(&rec.last_fifth).p50_ms;
        let unreceived = sent.sent.saturating_sub(rec.tally.distinct());
        let obs = Observed { target: rate as f64, achieved, p50_first_ms: first, p50_last_ms: last, unreceived };
        let mut r = StepResult {
            system,
            phase,
            step: rec.step,
            target_rate: rate,
            warmup_s: warmup,
            measure_s: measure,
            sent: sent.sent,
            send_rate: if sent.seconds > 0.0 { sent.sent as f64 / sent.seconds } else { 0.0 },
            generator_max_behind_ms: sent.max_behind_ms,
            delivery_failures: sent.failed,
            cpu: sent.cpu,
            achieved_rate: achieved,
            latency: Percentiles::of(&rec.hist),
            p50_first_fifth_ms: first,
            p50_last_fifth_ms: last,
            unreceived_at_deadline: unreceived,
            saturation: obs.saturation(),
            lost: 0,
            duplicates: 0,
            identity_mismatches: 0,
            unknown: 0,
            outcomes: [0; 3],
            system_cpu_s: sent.system_cpu_s,
            cpu_s_per_million: 0.0,
            peak_rss_mib: None,
            first_decision_s: 0.0,
            ready_s: 0.0,
            table_codes: 0,
            state_mib: None,
            hgrm: format!("{}-{}-step{:02}-{}.hgrm", system.name(), phase_name(phase), rec.step, rate),
            distribution: crate::hgrm::distribution(&rec.hist),
            hgrm_text: crate::hgrm::hgrm(&rec.hist),
        };
        r.finalise(sent.sent, rec);
        r
    }

    /// Loss and duplicate figures from the reader's final record of the step.
    pub fn finalise(&mut self, sent: u64, rec: &StepRec) {
        self.lost = rec.tally.lost(sent);
        self.duplicates = rec.tally.duplicates();
        self.identity_mismatches = rec.tally.identity_mismatches();
        self.unknown = rec.tally.unknown();
        self.outcomes = rec.tally.by_outcome();
        // CPU over the measurement window, per output received in it (at a rate kept up, the lines
        // decided in the window).
        let decided = rec.received_in_window;
        self.cpu_s_per_million = if decided > 0 { self.system_cpu_s / decided as f64 * 1e6 } else { 0.0 };
    }

    /// Kept up.
    pub fn ok(&self) -> bool {
        self.saturation == Saturation::No
    }
}

/// File-name form of a phase.
pub fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Sweep => "sweep",
        Phase::HalfRate => "half",
        Phase::Status => "status",
        Phase::Scale => "scale",
        Phase::Restart => "restart",
        Phase::Profile => "profile",
    }
}

/// One system's sweep in short.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SystemSummary {
    pub system: System,
    /// Highest rate that kept up.
    pub saturating_rate: Option<u64>,
    /// Lowest rate that did not (None: the sweep never saturated it).
    pub first_saturated_rate: Option<u64>,
    /// Highest achieved rate of any step.
    pub max_achieved_rate: f64,
    /// Seconds from start to the first decided lines.
    pub ready_seconds: f64,
    /// Times the same line got different outcomes within the system's steps (must be 0).
    pub verdict_conflicts: u64,
    /// Outputs without a load-test stamp (must be 0: headers pass through).
    pub unstamped_outputs: u64,
    /// The sweep ran out of time before saturating.
    pub cut_short: bool,
}

/// One system at the half rate, over its repeated steps.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HalfRateFigure {
    pub system: System,
    pub rate: u64,
    /// p50 and p99 of each repeat, in the order run (ms).
    pub p50_ms: Vec<f64>,
    pub p99_ms: Vec<f64>,
    pub median_p50_ms: f64,
    pub median_p99_ms: f64,
    /// p99.9 of each repeat, and their median.
    #[serde(default)]
    pub p999_ms: Vec<f64>,
    #[serde(default)]
    pub median_p999_ms: f64,
    /// CPU seconds per million lines of each repeat and their median.
    #[serde(default)]
    pub cpu_s_per_million: Vec<f64>,
    #[serde(default)]
    pub median_cpu_s_per_million: f64,
    /// Largest peak RSS of its sessions, MiB.
    #[serde(default)]
    pub peak_rss_mib: Option<f64>,
}

impl HalfRateFigure {
    /// From the half-rate steps of `system`; `None` if it had none.
    pub fn of(system: System, steps: &[StepResult]) -> Option<HalfRateFigure> {
        let mine: Vec<&StepResult> =
            steps.iter().filter(|r| r.system == system && r.phase == Phase::HalfRate).collect();
        let first = mine.first()?;
        let p50: Vec<f64> = mine.iter().map(|r| r.latency.p50_ms).collect();
        let p99: Vec<f64> = mine.iter().map(|r| r.latency.p99_ms).collect();
        let p999: Vec<f64> = mine.iter().map(|r| r.latency.p999_ms).collect();
        let cpu: Vec<f64> = mine.iter().map(|r| r.cpu_s_per_million).filter(|c| *c > 0.0).collect();
        Some(HalfRateFigure {
            system,
            rate: first.target_rate,
            median_p50_ms: median(&p50),
            median_p99_ms: median(&p99),
            median_p999_ms: median(&p999),
            median_cpu_s_per_million: median(&cpu),
            peak_rss_mib: mine.iter().filter_map(|r| r.peak_rss_mib).reduce(f64::max),
            p50_ms: p50,
            p99_ms: p99,
            p999_ms: p999,
            cpu_s_per_million: cpu,
        })
    }
}

/// Median (the mean of the middle two for an even count; 0 when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}

/// The status-change-to-effect measurement.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StatusResult {
    pub changes: u64,
    /// Changes whose effect was seen.
    pub measured: u64,
    /// Changes whose first decision had the wrong verdict for the new record.
    pub wrong_verdicts: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub min_ms: f64,
    /// Each change: ms from the broker's acknowledgement of the record to the first decision with it.
    pub samples_ms: Vec<f64>,
    pub trickle_rate: u64,
    pub load_rate: u64,
    /// claimgate's own metric (`claimgate_status_to_view_seconds`), if read: count and sum.
    pub status_to_view_metric: Option<(f64, f64)>,
    /// The system measured (claimgate when absent: summaries written before there were others).
    #[serde(default)]
    pub system: Option<System>,
}

/// The machine.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
    /// /proc/loadavg's 1, 5 and 15 minute averages when the run started.
    pub load_average: String,
}

impl Machine {
    /// Reads /proc.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kb: f64 = mem
            .lines()
            .find(|l| l.starts_with("MemTotal"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
        Machine {
            load_average: load_average(),
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_gib: (kb / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel,
        }
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Everything a run measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub started: String,
    pub command: String,
    pub machine: Machine,
    pub broker: String,
    pub settings: serde_json::Value,
    pub systems: Vec<SystemSummary>,
    /// claimgate's saturating rate / the pass-through's.
    pub pass_through_ratio: Option<f64>,
    /// claimgate's saturating rate / the peer's.
    pub peer_ratio: Option<f64>,
    /// The half-rate comparison: the rate, claimgate's and the pass-through's p99 there.
    pub half_rate: Option<u64>,
    pub half_rate_p99_ms: Option<f64>,
    pub half_rate_pass_through_p99_ms: Option<f64>,
    /// Every system's half-rate steps: medians and spread.
    pub half_rate_figures: Vec<HalfRateFigure>,
    pub status: Option<StatusResult>,
    /// claimgate's and the peer's outcomes over the same generated lines.
    pub peer_agreement: Option<Agreement>,
    /// Every other deciding system's outputs against claimgate's over the same lines (topic, reason,
    /// overridden reason), on the run's table and on the large one.
    #[serde(default)]
    pub agreements: Vec<(System, String, Agreement)>,
    /// Status change to effect of every system measured (`status` is claimgate's).
    #[serde(default)]
    pub statuses: Vec<StatusResult>,
    /// The comparison with Kafka Streams, when it ran.
    #[serde(default)]
    pub kstreams: Option<crate::compare::Comparison>,
    pub lost_total: u64,
    pub duplicates_total: u64,
    pub identity_mismatches_total: u64,
    pub steps: Vec<StepResult>,
    pub wall_seconds: f64,
    pub load_average_end: String,
    pub notes: Vec<String>,
    /// The backlog phase: each system draining a queue of claims, nothing else of the load test running.
    #[serde(default)]
    pub backlog: Vec<crate::backlog::BacklogResult>,
}
