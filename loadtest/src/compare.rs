//! claimgate against Kafka Streams (issue 14): each system's figures gathered from the run's steps,
//! the goals of performance.md ("against Kafka Streams") checked against them, and the table that goes
//! into BENCHMARKS.md.

use serde::{Deserialize, Serialize};

use crate::results::{HalfRateFigure, Phase, StatusResult, StepResult, SystemSummary, median};
use crate::session::System;

/// One system's figures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SystemFigures {
    pub system: System,
    /// Highest sweep rate that kept up.
    pub saturating_rate: Option<u64>,
    /// The rate of its half-rate steps (half of its own saturating rate) and the medians there.
    pub half_rate: Option<u64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    /// CPU seconds per million lines decided at the half rate (median), on the run's table.
    pub cpu_s_per_million: Option<f64>,
    /// Largest peak RSS of its sessions on the run's table, MiB.
    pub peak_rss_mib: Option<f64>,
    /// On the large table: the fixed rate, CPU per million lines, peak RSS, p99.
    pub scale_rate: Option<u64>,
    pub scale_cpu_s_per_million: Option<f64>,
    pub scale_peak_rss_mib: Option<f64>,
    pub scale_p99_ms: Option<f64>,
    /// Its state on disk after the large-table steps (Kafka Streams: the RocksDB files), MiB.
    #[serde(default)]
    pub scale_state_mib: Option<f64>,
    /// Seconds from start to first decision on the large table: cold, and restarted with its state.
    pub cold_first_decision_s: Option<f64>,
    pub restart_first_decision_s: Option<f64>,
    /// Status change to effect: p50, p99, and how many of the changes were seen.
    pub status_p50_ms: Option<f64>,
    pub status_p99_ms: Option<f64>,
    pub status_measured: Option<(u64, u64)>,
}

impl SystemFigures {
    /// Lines decided per CPU second at the half rate.
    pub fn lines_per_cpu_s(&self) -> Option<f64> {
        self.cpu_s_per_million.filter(|c| *c > 0.0).map(|c| 1e6 / c)
    }
}

/// A goal of performance.md and where the run stands.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Goal {
    pub what: String,
    pub target: String,
    pub measured: String,
    /// `None`: not measured in this run.
    pub met: Option<bool>,
}

/// The comparison.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Comparison {
    /// Practitioner codes of the run's table and of the large one (0: no large-table phase).
    pub table_codes: u64,
    pub scale_codes: u64,
    pub systems: Vec<SystemFigures>,
    pub goals: Vec<Goal>,
    /// How claimgate was restarted in the restart test (with which checkpoint option, or cold).
    pub restart_note: String,
    /// Seconds `claimgate tables publish` took to put the large table on its topic.
    pub scale_publish_s: Option<f64>,
    /// Where each profiled system spent its CPU: (system, file, [(category, share of samples)]).
    pub hotspots: Vec<Hotspots>,
    /// What ran: claimgate's commit, the toolchains, the broker and the library.
    pub versions: Versions,
}

/// Versions of what ran.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Versions {
    pub claimgate: String,
    pub rustc: String,
    pub java: String,
    pub kafka: String,
    pub kafka_streams: String,
}

fn first_line_of(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
            String::from_utf8_lossy(&text).lines().next().unwrap_or_default().trim().to_owned()
        })
        .unwrap_or_else(|| "unknown".into())
}

impl Versions {
    /// Asks git, rustc and java; the broker and the library are the versions the scripts pin.
    pub fn detect() -> Versions {
        Versions {
            claimgate: first_line_of("git", &["describe", "--always", "--dirty", "--abbrev=10"]),
            rustc: first_line_of("rustc", &["-V"]),
            java: first_line_of("java", &["-version"]),
            kafka: "Apache Kafka 4.1.1 (KRaft, scripts/broker.sh)".into(),
            kafka_streams: "org.apache.kafka:kafka-streams 4.1.1 (loadtest/peers/kafka-streams/pom.xml)".into(),
        }
    }
}

/// A profile's summary.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hotspots {
    pub system: System,
    /// The profile's text summary in the results folder.
    pub file: String,
    /// Share of the samples (0-1) by category, largest first.
    pub categories: Vec<(String, f64)>,
    pub samples: u64,
}

fn steps_of(steps: &[StepResult], system: System, phase: Phase) -> Vec<&StepResult> {
    steps.iter().filter(|s| s.system == system && s.phase == phase).collect()
}

fn opt_median(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| median(v))
}

/// Gathers every system's figures. `half` are the half-rate figures (each system at half of its own
/// saturating rate, claimgate's as the older report has it).
pub fn figures(
    systems: &[SystemSummary],
    half: &[HalfRateFigure],
    steps: &[StepResult],
    statuses: &[StatusResult],
) -> Vec<SystemFigures> {
    let order =
        [System::Claimgate, System::KafkaStreams, System::ClaimgateEos, System::KafkaStreamsEos, System::PassThrough];
    order
        .into_iter()
        .filter(|s| systems.iter().any(|x| x.system == *s))
        .map(|system| {
            let sum = systems.iter().find(|x| x.system == system);
            let h = half.iter().find(|f| f.system == system);
            let scale = steps_of(steps, system, Phase::Scale);
            let restart = steps_of(steps, system, Phase::Restart);
            let st = statuses.iter().find(|s| s.system.unwrap_or(System::Claimgate) == system);
            let rss = steps
                .iter()
                .filter(|s| s.system == system && !matches!(s.phase, Phase::Scale | Phase::Restart))
                .filter_map(|s| s.peak_rss_mib)
                .reduce(f64::max);
            SystemFigures {
                system,
                saturating_rate: sum.and_then(|s| s.saturating_rate),
                half_rate: h.map(|h| h.rate),
                p50_ms: h.map(|h| h.median_p50_ms),
                p99_ms: h.map(|h| h.median_p99_ms),
                p999_ms: h.map(|h| h.median_p999_ms),
                cpu_s_per_million: h.map(|h| h.median_cpu_s_per_million).filter(|c| *c > 0.0),
                peak_rss_mib: rss,
                scale_rate: scale.first().map(|s| s.target_rate),
                scale_cpu_s_per_million: opt_median(
                    &scale.iter().map(|s| s.cpu_s_per_million).filter(|c| *c > 0.0).collect::<Vec<_>>(),
                ),
                scale_peak_rss_mib: scale.iter().chain(&restart).filter_map(|s| s.peak_rss_mib).reduce(f64::max),
                scale_p99_ms: opt_median(&scale.iter().map(|s| s.latency.p99_ms).collect::<Vec<_>>()),
                scale_state_mib: scale.iter().chain(&restart).filter_map(|s| s.state_mib).reduce(f64::max),
                cold_first_decision_s: opt_median(&scale.iter().map(|s| s.first_decision_s).collect::<Vec<_>>()),
                restart_first_decision_s: opt_median(&restart.iter().map(|s| s.first_decision_s).collect::<Vec<_>>()),
                status_p50_ms: st.map(|s| s.p50_ms),
                status_p99_ms: st.map(|s| s.p99_ms),
                status_measured: st.map(|s| (s.measured, s.changes)),
            }
        })
        .collect()
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// The three goals of performance.md, per guarantee where it applies.
pub fn goals(figs: &[SystemFigures]) -> Vec<Goal> {
    let f = |s: System| figs.iter().find(|x| x.system == s);
    let mut out = vec![];
    for (cg, ks, label) in [
        (System::Claimgate, System::KafkaStreams, "at least once"),
        (System::ClaimgateEos, System::KafkaStreamsEos, "exactly once"),
    ] {
        if f(cg).is_none() && f(ks).is_none() {
            continue;
        }
        let r = ratio(f(cg).and_then(SystemFigures::lines_per_cpu_s), f(ks).and_then(SystemFigures::lines_per_cpu_s));
        out.push(Goal {
            what: format!("throughput per CPU second, {label}: claimgate / Kafka Streams (lines decided per CPU second of the process, at half of each one's saturating rate)"),
            target: "≥ 3×".into(),
            measured: match r {
                Some(r) => format!(
                    "{r:.2}× ({:.0} / {:.0} lines per CPU s){}",
                    f(cg).and_then(SystemFigures::lines_per_cpu_s).unwrap_or(0.0),
                    f(ks).and_then(SystemFigures::lines_per_cpu_s).unwrap_or(0.0),
                    if r < 3.0 { format!("; short by {:.1}%", (1.0 - r / 3.0) * 100.0) } else { String::new() }
                ),
                None => "not measured".into(),
            },
            met: r.map(|r| r >= 3.0),
        });
    }
    let mem = ratio(
        f(System::KafkaStreams).and_then(|x| x.scale_peak_rss_mib),
        f(System::Claimgate).and_then(|x| x.scale_peak_rss_mib),
    );
    out.push(Goal {
        what: "memory with the large table: Kafka Streams' peak RSS / claimgate's (at least once)".into(),
        target: "≥ 4× (claimgate ≤ 1/4)".into(),
        measured: match mem {
            Some(r) => format!(
                "{r:.2}× ({:.0} MiB / {:.0} MiB){}",
                f(System::KafkaStreams).and_then(|x| x.scale_peak_rss_mib).unwrap_or(0.0),
                f(System::Claimgate).and_then(|x| x.scale_peak_rss_mib).unwrap_or(0.0),
                if r < 4.0 { format!("; short by {:.1}%", (1.0 - r / 4.0) * 100.0) } else { String::new() }
            ),
            None => "not measured".into(),
        },
        met: mem.map(|r| r >= 4.0),
    });
    let ready = ratio(
        f(System::KafkaStreams).and_then(|x| x.restart_first_decision_s),
        f(System::Claimgate).and_then(|x| x.restart_first_decision_s),
    );
    out.push(Goal {
        what: "ready after a restart with the large table: Kafka Streams' start-to-first-decision / claimgate's".into(),
        target: "≥ 10×".into(),
        measured: match ready {
            Some(r) => format!(
                "{r:.2}× ({:.1} s / {:.1} s){}",
                f(System::KafkaStreams).and_then(|x| x.restart_first_decision_s).unwrap_or(0.0),
                f(System::Claimgate).and_then(|x| x.restart_first_decision_s).unwrap_or(0.0),
                if r < 10.0 { format!("; short by {:.1}%", (1.0 - r / 10.0) * 100.0) } else { String::new() }
            ),
            None => "not measured".into(),
        },
        met: ready.map(|r| r >= 10.0),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(system: System) -> SystemFigures {
        SystemFigures {
            system,
            saturating_rate: None,
            half_rate: None,
            p50_ms: None,
            p99_ms: None,
            p999_ms: None,
            cpu_s_per_million: None,
            peak_rss_mib: None,
            scale_rate: None,
            scale_cpu_s_per_million: None,
            scale_peak_rss_mib: None,
            scale_p99_ms: None,
            scale_state_mib: None,
            cold_first_decision_s: None,
            restart_first_decision_s: None,
            status_p50_ms: None,
            status_p99_ms: None,
            status_measured: None,
        }
    }

    #[test]
    fn goals_are_ratios_with_the_shortfall() {
        let cg = SystemFigures {
            cpu_s_per_million: Some(2.0),
            scale_peak_rss_mib: Some(1000.0),
            restart_first_decision_s: Some(4.0),
            ..fig(System::Claimgate)
        };
        let ks = SystemFigures {
            cpu_s_per_million: Some(5.0),
            scale_peak_rss_mib: Some(5000.0),
            restart_first_decision_s: Some(20.0),
            ..fig(System::KafkaStreams)
        };
        let g = goals(&[cg, ks]);
        assert_eq!(g.len(), 3, "no exactly-once systems: no exactly-once goal");
        assert_eq!(g[0].met, Some(false));
        assert!(
            g[0].measured.starts_with("2.50× (500000 / 200000") && g[0].measured.contains("short by 16.7%"),
            "{}",
            g[0].measured
        );
        assert_eq!(g[1].met, Some(true));
        assert!(g[1].measured.starts_with("5.00×"), "{}", g[1].measured);
        assert_eq!(g[2].met, Some(false));
        assert!(g[2].measured.contains("short by 50.0%"), "{}", g[2].measured);
        let none = goals(&[fig(System::Claimgate)]);
        assert!(none.iter().all(|g| g.met.is_none() && g.measured == "not measured"));
    }
}
