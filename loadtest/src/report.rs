//! The results folder: `summary.json`, `report.md`, one `.hgrm` per step, SVG charts.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};

use crate::charts;
use crate::results::{Phase, StepResult, Summary};
use crate::session::System;

/// Writes every file of the report into `dir`; `hgrm` gives each step's `.hgrm` text.
pub fn write(dir: &Path, summary: &Summary, hgrms: &[(String, String)]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in hgrms {
        std::fs::write(dir.join(name), text)?;
    }
    let charts = write_charts(dir, summary)?;
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(summary)?)?;
    std::fs::write(dir.join("report.md"), markdown(summary, &charts))?;
    if summary.kstreams.is_some() {
        std::fs::write(dir.join("BENCHMARKS-kstreams.md"), benchmarks_kstreams(summary, dir))?;
    }
    Ok(())
}

/// Writes `report.md` and the charts again from a results folder's `summary.json` and `.hgrm` files
/// (after a change to the report's code).
pub fn rerender(dir: &Path) -> Result<()> {
    let text = std::fs::read_to_string(dir.join("summary.json"))
        .with_context(|| format!("cannot read {}", dir.join("summary.json").display()))?;
    let mut summary: Summary = serde_json::from_str(&text).context("summary.json")?;
    for step in &mut summary.steps {
        let hgrm = std::fs::read_to_string(dir.join(&step.hgrm)).unwrap_or_default();
        step.distribution = crate::hgrm::parse(&hgrm);
    }
    write(dir, &summary, &[])
}

fn of(summary: &Summary, system: System, phase: Phase) -> Vec<&StepResult> {
    summary.steps.iter().filter(|s| s.system == system && s.phase == phase).collect()
}

fn write_charts(dir: &Path, summary: &Summary) -> Result<Vec<(String, String)>> {
    let mut made = vec![];
    let systems: Vec<System> = summary.systems.iter().map(|s| s.system).collect();
    for &system in &systems {
        let steps = of(summary, system, Phase::Sweep);
        if steps.is_empty() {
            continue;
        }
        let series: Vec<charts::Series<'_>> = steps
            .iter()
            .map(|s| charts::Series {
                label: format!("{}/s{}", s.target_rate, if s.ok() { "" } else { " (saturated)" }),
                points: &s.distribution,
            })
            .collect();
        let file = format!("latency-percentiles-{}.svg", system.name());
        charts::percentile_curves(
            &dir.join(&file),
            &format!("{}: end-to-end latency by percentile, each rate of the sweep", system.name()),
            &series,
        )?;
        made.push((file, format!("{}: latency by percentile at each rate of the sweep", system.name())));
    }
    let extra: Vec<&StepResult> =
        summary.steps.iter().filter(|s| matches!(s.phase, Phase::HalfRate | Phase::Status)).collect();
    if !extra.is_empty() {
        let series: Vec<charts::Series<'_>> = extra
            .iter()
            .map(|s| charts::Series {
                label: format!(
                    "#{} {} {}/s{}",
                    s.hgrm.get(..2).unwrap_or_default(),
                    s.system.name(),
                    s.target_rate,
                    if s.phase == Phase::Status { " + status changes" } else { "" }
                ),
                points: &s.distribution,
            })
            .collect();
        let file = "latency-percentiles-half-rate.svg".to_owned();
        charts::percentile_curves(
            &dir.join(&file),
            "End-to-end latency at half of the saturating rate (claimgate's; each other system's own)",
            &series,
        )?;
        made.push((
            file,
            "every system at half of a saturating rate: claimgate, the pass-through and the broker alone at claimgate's; the others at their own".into(),
        ));
    }
    type Points = Vec<(f64, f64, f64)>;
    let points: Vec<(System, Points)> = systems
        .iter()
        .map(|&sys| {
            let mut steps = of(summary, sys, Phase::Sweep);
            // One point per rate, in the order of the rate (the curve as the load rises): of a rate
            // tried twice, the better try (the one that decided it, as the sweep does).
            steps.sort_by(|a, b| a.target_rate.cmp(&b.target_rate).then(a.latency.p99_ms.total_cmp(&b.latency.p99_ms)));
            steps.dedup_by_key(|s| s.target_rate);
            let p: Vec<(f64, f64, f64)> =
                steps.iter().map(|s| (s.achieved_rate, s.latency.p50_ms, s.latency.p99_ms)).collect();
            (sys, p)
        })
        .filter(|(_, p)| !p.is_empty())
        .collect();
    if !points.is_empty() {
        let sweeps: Vec<charts::Sweep<'_>> =
            points.iter().map(|(s, p)| charts::Sweep { label: s.name().into(), points: p }).collect();
        let file = "throughput-latency.svg".to_owned();
        charts::throughput_latency(&dir.join(&file), "Rate sweep: achieved throughput against latency", &sweeps)?;
        made.push((file, "achieved throughput against p50/p99 latency across the sweeps".into()));
    }
    Ok(made)
}

/// The backlog phase, and claimgate's open-loop saturating rate next to its backlog drain rate, with
/// where the CPU went in each (issue 11: why the two differ on two cores).
fn saturation_section(o: &mut String, s: &Summary) {
    if s.backlog.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "
## Backlog drained
"
    );
    let _ = writeln!(
        o,
        "Each system started on a claims topic already holding the backlog, nothing else of the load test running (it only watches the output topics' end offsets); rate = outputs over the span of their own timestamps, first to last. CPU from the first output to the last, in percent of one core.
"
    );
    let _ = writeln!(
        o,
        "| system | round | lines | answered | duplicates | rate | first→last output | start to first output | CPU: machine / system / broker / others |\n|---|---|---|---|---|---|---|---|---|"
    );
    for b in &s.backlog {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {:.0}/s | {:.2} s | {:.1} s | {:.0}% / {:.0}% / {:.0}% / {:.0}% |",
            b.system.name(),
            b.round,
            b.lines,
            b.answered,
            b.duplicates,
            b.rate,
            b.seconds,
            b.start_seconds,
            b.cpu.machine_busy_pct,
            b.cpu.system_pct,
            b.cpu.broker_pct,
            b.cpu.others_pct
        );
    }
    let drain: Vec<f64> = s.backlog.iter().filter(|b| b.system == System::Claimgate).map(|b| b.rate).collect();
    let sat = s.systems.iter().find(|x| x.system == System::Claimgate).and_then(|x| x.saturating_rate);
    let (Some(sat), false) = (sat, drain.is_empty()) else { return };
    let drain = crate::results::median(&drain);
    let _ = writeln!(
        o,
        "
## Saturation: open loop against the backlog
"
    );
    let _ = writeln!(
        o,
        "claimgate's open-loop saturating rate: **{sat}/s**; the same system draining a backlog: **{drain:.0}/s** (median), {:.1}× more.
",
        drain / sat as f64
    );
    let at = s
        .steps
        .iter()
        .filter(|r| r.system == System::Claimgate && r.phase == Phase::Sweep && r.target_rate == sat && r.ok())
        .min_by(|a, b| a.latency.p99_ms.total_cmp(&b.latency.p99_ms));
    let b = s.backlog.iter().find(|b| b.system == System::Claimgate);
    if let (Some(r), Some(b)) = (at, b) {
        let c = &r.cpu;
        let _ = writeln!(
            o,
            "| where the CPU went (% of one core; the machine has {} cores) | machine busy | claimgate | broker | load test: generator | load test: reader | load test, rest | others |\n|---|---|---|---|---|---|---|---|\n| open loop at {sat}/s | {:.0}% | {:.0}% | {:.0}% | {:.0}% | {:.0}% | {:.0}% | {:.0}% |\n| backlog at {:.0}/s | {:.0}% | {:.0}% | {:.0}% | — | — | — | {:.0}% |\n",
            s.machine.nproc,
            c.machine_busy_pct,
            c.system_pct,
            c.broker_pct,
            c.generator_pct,
            c.reader_pct,
            (c.loadtest_pct - c.generator_pct - c.reader_pct).max(0.0),
            c.others_pct,
            b.rate,
            b.cpu.machine_busy_pct,
            b.cpu.system_pct,
            b.cpu.broker_pct,
            b.cpu.others_pct
        );
        let per = |pct: f64, rate: f64| if rate > 0.0 { pct / 100.0 / rate * 1e6 } else { 0.0 };
        let _ = writeln!(
            o,
            "Per line (µs of CPU): open loop — claimgate {:.1}, broker {:.1}, load test {:.1}; backlog — claimgate {:.1}, broker {:.1}. In the open loop the broker takes every line twice in and twice out (generator → claims → claimgate → decisions → reader), in the backlog once each way while it is timed (the backlog was written before), and the load test's generator and reader run beside it: on {} cores the machine, not claimgate, sets the open-loop saturating rate.",
            per(c.system_pct, r.achieved_rate),
            per(c.broker_pct, r.achieved_rate),
            per(c.loadtest_pct, r.achieved_rate),
            per(b.cpu.system_pct, b.rate),
            per(b.cpu.broker_pct, b.rate),
            s.machine.nproc
        );
    }
}

fn rate(r: Option<u64>) -> String {
    r.map_or_else(|| "—".into(), |r| format!("{r}/s"))
}

fn check(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

/// The Markdown report.
pub fn markdown(s: &Summary, charts: &[(String, String)]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# claimgate load test — {}\n", s.started);
    let _ = writeln!(
        o,
        "Machine: {} cores (`nproc`), {}, {} GiB, Linux {}; load average at the start {}, at the end {} (a shared machine). Broker: {}. Command: `{}`. Wall time of the run: {:.0} s.\n",
        s.machine.nproc,
        s.machine.cpu_model,
        s.machine.memory_gib,
        s.machine.kernel,
        s.machine.load_average,
        s.load_average_end,
        s.broker,
        s.command,
        s.wall_seconds
    );
    let _ = writeln!(o, "## Against the targets (`shared/spec/performance.md`)\n");
    let _ = writeln!(o, "| what | target | measured | |\n|---|---|---|---|");
    let cg = s.systems.iter().find(|x| x.system == System::Claimgate);
    let pt = s.systems.iter().find(|x| x.system == System::PassThrough);
    let peer = s.systems.iter().find(|x| x.system == System::Peer);
    if let Some(r) = s.pass_through_ratio {
        let _ = writeln!(
            o,
            "| Kafka end to end, claimgate / pass-through saturating rate | ≥ 0.90 | {:.2} ({} / {}) | {} |",
            r,
            rate(cg.and_then(|c| c.saturating_rate)),
            rate(pt.and_then(|c| c.saturating_rate)),
            check(r >= 0.9)
        );
    }
    if let (Some(h), Some(p99)) = (s.half_rate, s.half_rate_p99_ms) {
        let fig = |sys: System| s.half_rate_figures.iter().find(|f| f.system == sys);
        let n = fig(System::Claimgate).map_or(0, |f| f.p99_ms.len());
        let pt = s.half_rate_pass_through_p99_ms;
        let pt99 = pt.map_or_else(|| "—".into(), |v| format!("{v:.1} ms"));
        let br99 = fig(System::Broker).map_or_else(|| "—".into(), |f| format!("{:.1} ms", f.median_p99_ms));
        let added = pt.map_or_else(|| "—".into(), |pt| format!("{:+.1} ms", p99 - pt));
        let _ = writeln!(
            o,
            "| latency: p99 end to end at half the saturating rate ({h}/s), coordinated omission corrected, median of {n} | ≤ 5 ms | claimgate {p99:.1} ms; pass-through {pt99}; broker alone {br99} | {} |",
            check(p99 <= 5.0)
        );
        let _ = writeln!(
            o,
            "| added latency: claimgate's p99 minus the pass-through's at that rate (medians) | ≤ 1 ms | {added} | {} |",
            check(pt.is_some_and(|pt| p99 - pt <= 1.0))
        );
    }
    if let Some(st) = &s.status {
        let _ = writeln!(
            o,
            "| status change to effect, p99 ({} of {} changes measured) | ≤ 1 s | {:.1} ms (p50 {:.1} ms, max {:.1} ms) | {} |",
            st.measured,
            st.changes,
            st.p99_ms,
            st.p50_ms,
            st.max_ms,
            check(st.measured == st.changes && st.p99_ms <= 1000.0 && st.wrong_verdicts == 0)
        );
    }
    if let Some(r) = s.peer_ratio {
        let _ = writeln!(
            o,
            "| claimgate / quixstreams peer saturating rate | (no target) | {:.1}× ({} / {}) | |",
            r,
            rate(cg.and_then(|c| c.saturating_rate)),
            rate(peer.and_then(|c| c.saturating_rate))
        );
    }
    let _ = writeln!(
        o,
        "| lines lost / duplicated / decided under another line's identity, all steps | 0 / 0 / 0 | {} / {} / {} | {} |",
        s.lost_total,
        s.duplicates_total,
        s.identity_mismatches_total,
        check(s.lost_total == 0 && s.duplicates_total == 0 && s.identity_mismatches_total == 0)
    );
    if let Some(a) = &s.peer_agreement {
        let _ = writeln!(
            o,
            "| peer's outcome = claimgate's, line by line over {} generated lines (accepted/rejected/dead letters: claimgate {:?}, peer {:?}) | all | {} differ | {} |",
            a.compared,
            a.ours,
            a.theirs,
            a.disagreements,
            check(a.disagreements == 0 && a.compared > 0)
        );
    }
    let _ = writeln!(o, "\n## Saturating rates\n");
    let _ = writeln!(
        o,
        "Saturation: achieved rate below 95% of the target, the median latency of the last fifth of the window over 200 ms and twice that of the first fifth (a queue building), or lines still missing after the drain time. A rate that saturated was tried once more and counts as saturated only if it saturated again. The saturating rate is the highest rate that kept up; the next column is the lowest rate above it that did not.\n"
    );
    let _ = writeln!(
        o,
        "| system | saturating rate | lowest saturated rate above it | highest achieved | ready after | verdict conflicts | outputs without stamp |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|");
    for x in &s.systems {
        let _ = writeln!(
            o,
            "| {} | {}{} | {} | {:.0}/s | {:.1} s | {} | {} |",
            x.system.name(),
            rate(x.saturating_rate),
            if x.cut_short { " (sweep cut short)" } else { "" },
            rate(x.first_saturated_rate),
            x.max_achieved_rate,
            x.ready_seconds,
            x.verdict_conflicts,
            x.unstamped_outputs
        );
    }
    let _ = writeln!(o, "\n## Every step\n");
    let _ = writeln!(
        o,
        "Latency: from the line's intended send time (open loop, coordinated omission corrected) to its output's arrival at the reader, ms, lines meant for the measurement window only (warm-up excluded). Each step ran on fresh topics with a freshly started system. Lost: lines without an output at the end; for a saturated step, the backlog its system had not decided when it was stopped (still in the claims topic, not lost) is shown in brackets. CPU, while the lines were sent: how busy the whole machine was (100% = every core), then the system under test, the broker, the load test, and the machine's other users in percent of one core.\n"
    );
    let _ = writeln!(
        o,
        "| system | phase | target/s | achieved/s | p50 | p90 | p99 | p99.9 | p99.99 | max | lost | dup | saturation | CPU: machine / system / broker / load test (generator, reader) / others | system CPU s per million lines | peak RSS | first decision after start | histogram |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &s.steps {
        let l = &r.latency;
        let _ = writeln!(
            o,
            "| {} | {:?} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {:?} | {:.0}% / {:.0}% / {:.0}% / {:.0}% ({:.0}%, {:.0}%) / {:.0}% | {} | {} | {:.1} s | [{}]({}) |",
            r.system.name(),
            r.phase,
            r.target_rate,
            r.achieved_rate,
            l.p50_ms,
            l.p90_ms,
            l.p99_ms,
            l.p999_ms,
            l.p9999_ms,
            l.max_ms,
            if r.ok() || r.lost == 0 { r.lost.to_string() } else { format!("({} undecided at stop)", r.lost) },
            r.duplicates,
            r.saturation,
            r.cpu.machine_busy_pct,
            r.cpu.system_pct,
            r.cpu.broker_pct,
            r.cpu.loadtest_pct,
            r.cpu.generator_pct,
            r.cpu.reader_pct,
            r.cpu.others_pct,
            if r.cpu_s_per_million > 0.0 { format!("{:.2}", r.cpu_s_per_million) } else { "—".into() },
            r.peak_rss_mib.map_or_else(|| "—".into(), |m| format!("{m:.0} MiB")),
            r.first_decision_s,
            r.hgrm,
            r.hgrm
        );
    }
    saturation_section(&mut o, s);
    if !s.half_rate_figures.is_empty() {
        let _ = writeln!(o, "\n## At half of the saturating rate\n");
        let _ = writeln!(
            o,
            "Repeated rounds, each system in turn on fresh topics. claimgate, the pass-through and the broker alone at half of claimgate's saturating rate; every other system at half of its own. The broker alone is the generator and the reader with no system between them (the reader reads the claims topic): the floor under the others.\n"
        );
        let _ = writeln!(
            o,
            "| system | rate | p50 median (each) | p99 median (each) | p99.9 median (each) | system CPU s per million lines (median) |\n|---|---|---|---|---|---|"
        );
        for f in &s.half_rate_figures {
            let each = |v: &[f64]| v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(", ");
            let _ = writeln!(
                o,
                "| {} | {}/s | {:.2} ms ({}) | {:.2} ms ({}) | {:.2} ms ({}) | {} |",
                f.system.name(),
                f.rate,
                f.median_p50_ms,
                each(&f.p50_ms),
                f.median_p99_ms,
                each(&f.p99_ms),
                f.median_p999_ms,
                each(&f.p999_ms),
                if f.median_cpu_s_per_million > 0.0 {
                    format!("{:.2}", f.median_cpu_s_per_million)
                } else {
                    "—".into()
                }
            );
        }
    }
    if let Some(st) = &s.status {
        let _ = writeln!(o, "\n## Status change to effect\n");
        let _ = writeln!(
            o,
            "Under {}/s of load, {} new versions of one practitioner's record (odd ones suspending them over the claims' day, even ones lifting it) were produced to the practitioners topic, with a trickle of {}/s of that practitioner's claims. Each is timed from the broker's acknowledgement of the record to the reader's receipt of the first decision carrying the new `practitioner_version` (so it includes that decision's own trip through the broker).\n",
            st.load_rate, st.changes, st.trickle_rate
        );
        let _ = writeln!(
            o,
            "measured {} of {}; p50 {:.1} ms, p99 {:.1} ms, min {:.1} ms, max {:.1} ms; first decisions with the wrong verdict: {}.\n",
            st.measured, st.changes, st.p50_ms, st.p99_ms, st.min_ms, st.max_ms, st.wrong_verdicts
        );
        let _ = writeln!(o, "Samples (ms): {:?}", st.samples_ms);
        if let Some((n, sum)) = st.status_to_view_metric {
            let _ = writeln!(
                o,
                "\nclaimgate's own `claimgate_status_to_view_seconds` (broker timestamp to table view): {n} views, mean {:.1} ms.",
                if n > 0.0 { sum / n * 1000.0 } else { 0.0 }
            );
        }
    }
    let others: Vec<_> = s.statuses.iter().filter(|st| st.system.is_some_and(|x| x != System::Claimgate)).collect();
    if !others.is_empty() {
        let _ = writeln!(o, "\n### Status change to effect, every system\n");
        let _ = writeln!(o, "Each under half of its own saturating rate, the same 20 changes, timed the same way.\n");
        let _ = writeln!(
            o,
            "| system | load | measured | p50 | p99 | max | wrong first verdicts |\n|---|---|---|---|---|---|---|"
        );
        for st in s.statuses.iter() {
            let _ = writeln!(
                o,
                "| {} | {}/s | {} of {} | {:.1} ms | {:.1} ms | {:.1} ms | {} |",
                st.system.unwrap_or(System::Claimgate).name(),
                st.load_rate,
                st.measured,
                st.changes,
                st.p50_ms,
                st.p99_ms,
                st.max_ms,
                st.wrong_verdicts
            );
        }
    }
    if !s.agreements.is_empty() {
        let _ = writeln!(o, "\n## The same decisions as claimgate, line by line\n");
        let _ = writeln!(
            o,
            "Every generated line each system decided in any step, against claimgate's output for the same line: the topic (accepted, rejected, dead letters), the `reason` and the `overridden` reason must all be equal.\n"
        );
        let _ = writeln!(
            o,
            "| system | table | lines compared | differ | claimgate accepted / rejected / dead letters | theirs |\n|---|---|---|---|---|---|"
        );
        for (sys, table, a) in &s.agreements {
            let _ = writeln!(
                o,
                "| {} | {table} | {} | {} | {:?} | {:?} |",
                sys.name(),
                a.compared,
                if a.disagreements == 0 { "0".to_owned() } else { format!("**{}**", a.disagreements) },
                a.ours,
                a.theirs
            );
        }
        for (sys, _, a) in &s.agreements {
            for e in &a.examples {
                let _ = writeln!(o, "- {}: {e}", sys.name());
            }
        }
    }
    if let Some(k) = &s.kstreams {
        let _ = writeln!(o, "\n## Against Kafka Streams (issue 14)\n");
        o.push_str(&kstreams_tables(k));
        let _ = writeln!(
            o,
            "\nThe same tables, with the command, versions and machine, for BENCHMARKS.md: [BENCHMARKS-kstreams.md](BENCHMARKS-kstreams.md)."
        );
    }
    if !charts.is_empty() {
        let _ = writeln!(o, "\n## Charts\n");
        for (file, what) in charts {
            let _ = writeln!(o, "- [{what}]({file})\n\n  ![{what}]({file})\n");
        }
    }
    if !s.notes.is_empty() {
        let _ = writeln!(o, "\n## Notes\n");
        for n in &s.notes {
            let _ = writeln!(o, "- {n}");
        }
    }
    let _ = writeln!(o, "\nSettings: `{}`", s.settings);
    o
}

fn f1(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.1}{unit}"))
}

fn f0(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.0}{unit}"))
}

/// The comparison's tables (report.md and BENCHMARKS-kstreams.md).
pub fn kstreams_tables(k: &crate::compare::Comparison) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "### Goals (`shared/spec/performance.md`, against Kafka Streams)\n");
    let _ = writeln!(o, "| goal | target | measured | |\n|---|---|---|---|");
    for g in &k.goals {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            g.what,
            g.target,
            g.measured,
            match g.met {
                Some(true) => "met",
                Some(false) => "**not met**",
                None => "not measured",
            }
        );
    }
    let _ = writeln!(o, "\n### Throughput, latency, CPU and memory ({} practitioner codes)\n", k.table_codes);
    let _ = writeln!(
        o,
        "Saturating rate: the highest rate of the sweep that kept up. Latency: end to end, coordinated omission corrected, at half of the system's own saturating rate, median of the rounds. CPU: the system's own process (user + system), per million lines decided, at that rate. Peak RSS: `VmHWM` of the process, the largest of its sessions.\n"
    );
    let _ = writeln!(
        o,
        "| system | guarantee | saturating rate | half rate | p50 | p99 | p99.9 | CPU s per million lines | lines per CPU second | peak RSS |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for f in &k.systems {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            f.system.name(),
            if f.system.exactly_once() { "exactly once" } else { "at least once" },
            f.saturating_rate.map_or_else(|| "—".into(), |r| format!("{r}/s")),
            f.half_rate.map_or_else(|| "—".into(), |r| format!("{r}/s")),
            f1(f.p50_ms, " ms"),
            f1(f.p99_ms, " ms"),
            f1(f.p999_ms, " ms"),
            f1(f.cpu_s_per_million, ""),
            f0(f.lines_per_cpu_s(), ""),
            f0(f.peak_rss_mib, " MiB"),
        );
    }
    if k.scale_codes > 0 {
        let _ = writeln!(o, "\n### With {} practitioner codes on the status topic\n", k.scale_codes);
        let _ = writeln!(
            o,
            "Each system started cold on the large table (Kafka Streams: empty state directory, so the GlobalKTables are restored from the topic), measured at a fixed rate, stopped cleanly, then started again with its state kept. First decision: from the process's spawn to the first output of lines that were waiting in the claims topic. Peak RSS is the process's resident memory: Kafka Streams keeps the GlobalKTables in RocksDB files (state on disk), read through the operating system's page cache, which RSS does not count; claimgate holds its table in its own memory. {}{}\n",
            k.restart_note,
            k.scale_publish_s.map_or_else(String::new, |p| format!(
                " Putting the table on its topic (`claimgate tables publish`) took {p:.0} s."
            ))
        );
        let _ = writeln!(
            o,
            "| system | rate | first decision, cold | first decision, restarted | CPU s per million lines | p99 | peak RSS | state on disk |\n|---|---|---|---|---|---|---|---|"
        );
        for f in k.systems.iter().filter(|f| f.scale_rate.is_some()) {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                f.system.name(),
                f.scale_rate.map_or_else(|| "—".into(), |r| format!("{r}/s")),
                f1(f.cold_first_decision_s, " s"),
                f1(f.restart_first_decision_s, " s"),
                f1(f.scale_cpu_s_per_million, ""),
                f1(f.scale_p99_ms, " ms"),
                f0(f.scale_peak_rss_mib, " MiB"),
                f0(f.scale_state_mib, " MiB"),
            );
        }
    }
    if k.systems.iter().any(|f| f.status_p99_ms.is_some()) {
        let _ = writeln!(o, "\n### Status change to effect\n");
        let _ = writeln!(
            o,
            "From the broker's acknowledgement of a new practitioner record to the first decision that carries its version, under half of the system's own saturating rate.\n"
        );
        let _ = writeln!(o, "| system | measured | p50 | p99 |\n|---|---|---|---|");
        for f in k.systems.iter().filter(|f| f.status_p99_ms.is_some()) {
            let (m, c) = f.status_measured.unwrap_or((0, 0));
            let _ = writeln!(
                o,
                "| {} | {m} of {c} | {} | {} |",
                f.system.name(),
                f1(f.status_p50_ms, " ms"),
                f1(f.status_p99_ms, " ms")
            );
        }
    }
    if !k.hotspots.is_empty() {
        let _ = writeln!(o, "\n### Where the CPU goes (profiles)\n");
        let _ = writeln!(
            o,
            "One more step per system at half of its saturating rate under a sampling profiler (JFR for the JVM, `perf record -g` for claimgate); samples summed by what the code is for. The full summaries (top frames) and the raw recordings are in the results folder.\n"
        );
        for h in &k.hotspots {
            let _ = writeln!(o, "**{}** ({} samples, [{}]({})):\n", h.system.name(), h.samples, h.file, h.file);
            for (c, share) in h.categories.iter().take(8) {
                let _ = writeln!(o, "- {:.1}% {c}", share * 100.0);
            }
            let _ = writeln!(o);
        }
    }
    o
}

/// The BENCHMARKS.md section: the tables with the command, the versions and the machine.
fn benchmarks_kstreams(s: &Summary, dir: &Path) -> String {
    let Some(k) = &s.kstreams else { return String::new() };
    let mut o = String::new();
    let _ = writeln!(o, "## claimgate against Kafka Streams (issue 14) — {}\n", s.started);
    let _ = writeln!(o, "Command: `{}`\n", s.command);
    let _ = writeln!(
        o,
        "Versions: claimgate `{}`; {}; {}; {}; {}.\n",
        k.versions.claimgate, k.versions.rustc, k.versions.java, k.versions.kafka, k.versions.kafka_streams
    );
    let _ = writeln!(
        o,
        "Machine: {} cores (`nproc`), {}, {} GiB, Linux {}; load average {} at the start, {} at the end. Broker: {}. Wall time {:.0} s. Results: `{}` (report.md, summary.json, .hgrm files, SVG charts, profiles).\n",
        s.machine.nproc,
        s.machine.cpu_model,
        s.machine.memory_gib,
        s.machine.kernel,
        s.machine.load_average,
        s.load_average_end,
        s.broker,
        s.wall_seconds,
        dir.display()
    );
    o.push_str(&kstreams_tables(k));
    if !s.agreements.is_empty() {
        let _ = writeln!(o, "\n### Same decisions\n");
        for (sys, table, a) in &s.agreements {
            let _ = writeln!(
                o,
                "- {} ({table}): {} lines compared with claimgate (topic, reason, overridden), {} differ.",
                sys.name(),
                a.compared,
                a.disagreements
            );
        }
    }
    if s.lost_total + s.duplicates_total + s.identity_mismatches_total > 0 {
        let _ = writeln!(
            o,
            "\nLines lost / duplicated / under another identity over all steps: {} / {} / {}.",
            s.lost_total, s.duplicates_total, s.identity_mismatches_total
        );
    }
    o
}
