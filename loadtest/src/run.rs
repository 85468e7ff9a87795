//! The whole run: for each system a session on its own topics, a rate sweep to saturation, then for
//! claimgate and the pass-through a step at half of claimgate's saturating rate, and for claimgate the
//! status-change test under that load.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::kafka::{AckProducer, Clock};
use crate::pool::{Pool, Trickle};
use crate::results::{Phase, StatusResult, StepResult, SystemSummary};
use crate::session::{Session, Setup, StartOpts, System};
use crate::stamp::{Kind, Stamp};
use crate::sweep::{Sweep, round_rate};
use crate::tally::{Outcome, Verdicts};

/// Settings of the run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Plan {
    pub systems: Vec<System>,
    pub warmup: f64,
    pub measure: f64,
    pub drain: f64,
    pub start_rate: u64,
    pub factor: f64,
    pub max_rate: u64,
    pub refine: u32,
    pub peer_start_rate: u64,
    pub peer_max_rate: u64,
    pub peer_refine: u32,
    pub half_seconds: f64,
    /// Try a saturated sweep rate once more before taking it as saturated.
    pub retry_saturated: bool,
    /// Rounds of half-rate steps (claimgate, pass-through, broker in turn), time allowing.
    pub half_repeats: u32,
    pub status_changes: u64,
    pub trickle_rate: u64,
    pub budget_seconds: f64,
    /// Saturating rate to take for the half-rate steps if claimgate's sweep is not run.
    pub half_rate: Option<u64>,
    /// Run the rate sweeps (off: only the half-rate steps at `half_rate`, the status test and the
    /// backlog phase).
    pub sweep: bool,
    /// Lines of each backlog drained (0: no backlog phase), and how many rounds.
    pub backlog: u64,
    pub backlog_rounds: u32,
    /// Systems whose status change to effect is measured (claimgate's always is, if it runs).
    pub status_systems: Vec<System>,
    /// The large-table phase (`--scale-practitioners`).
    pub scale: Option<crate::scale::ScalePlan>,
    /// The profiled steps (`--profile-seconds`).
    pub profile: Option<crate::hotspots::ProfilePlan>,
    /// Practitioner codes of the run's table.
    pub table_codes: u64,
    /// Results folder (profiles are written there).
    pub out: PathBuf,
    /// Seed of the generated data.
    pub seed: u64,
}

/// What the sessions produced, before reporting.
pub struct Outcomes {
    pub steps: Vec<StepResult>,
    pub systems: Vec<SystemSummary>,
    pub status: Option<StatusResult>,
    /// Status change to effect of every system measured.
    pub statuses: Vec<StatusResult>,
    /// Agreements with claimgate measured outside the main pool (the large table's lines).
    pub extra_agreements: Vec<(System, String, crate::tally::Agreement)>,
    /// The large-table phase's notes for the comparison.
    pub scale: Option<crate::scale::ScaleOutcome>,
    /// Profiles summarised.
    pub hotspots: Vec<crate::compare::Hotspots>,
    pub verdicts: Vec<(System, Verdicts)>,
    pub half_rate: Option<u64>,
    pub notes: Vec<String>,
    pub metrics: Vec<(System, String)>,
    pub backlog: Vec<crate::backlog::BacklogResult>,
}

/// Runs the plan.
pub fn run(
    setup: &Setup,
    plan: &Plan,
    pool: Arc<Pool>,
    trickle: &Trickle,
    day: claimgate::record::BjTime,
) -> Result<Outcomes> {
    let started = Instant::now();
    let clock = Clock::new();
    let mut out = Outcomes {
        steps: vec![],
        systems: vec![],
        status: None,
        statuses: vec![],
        extra_agreements: vec![],
        scale: None,
        hotspots: vec![],
        verdicts: vec![],
        half_rate: plan.half_rate,
        notes: vec![],
        metrics: vec![],
        backlog: vec![],
    };
    let time_left = || plan.budget_seconds - started.elapsed().as_secs_f64();
    // Every step runs on fresh topics with a freshly started system: the test broker's fetches get
    // slower as a partition grows (a step at 40k lines/s degrades within 20 s on the broker alone), so
    // steps sharing topics would measure the broker's history rather than the system. The systems of
    // a group are loaded in turn, one step each per round, so that the noise of a shared machine falls
    // on all of them alike. claimgate's group first: its saturating rate sets the half rate.
    // The Kafka Streams peer climbs claimgate's ladder at the same guarantee: at least once beside
    // claimgate and its pass-through, exactly once beside claimgate in exactly-once.
    let group_a: Vec<System> = [System::Claimgate, System::PassThrough, System::KafkaStreams]
        .into_iter()
        .filter(|s| plan.systems.contains(s))
        .collect();
    let group_e: Vec<System> =
        [System::ClaimgateEos, System::KafkaStreamsEos].into_iter().filter(|s| plan.systems.contains(s)).collect();
    let group_b: Vec<System> =
        [System::Peer, System::PeerPassThrough].into_iter().filter(|s| plan.systems.contains(s)).collect();
    let peers = !group_b.is_empty();
    // Systems measured at half of their own saturating rate (claimgate's half rate is its own already).
    let own_half: Vec<System> = [System::ClaimgateEos, System::KafkaStreams, System::KafkaStreamsEos]
        .into_iter()
        .filter(|s| plan.systems.contains(s))
        .collect();
    let status_systems: Vec<System> = if plan.status_changes == 0 {
        vec![]
    } else {
        System::ALL
            .into_iter()
            .filter(|s| plan.systems.contains(s) && (*s == System::Claimgate || plan.status_systems.contains(s)))
            .collect()
    };
    let later_status =
        status_systems.len() as f64 * (plan.status_changes as f64 * 1.1 + 15.0) + if peers { 100.0 } else { 0.0 };
    let mut acc: Vec<Acc> = plan.systems.iter().map(|&s| Acc::new(s, pool.len())).collect();
    let mut n = 1u32;
    crate::session::publish_shared_tables(setup)?;
    let step_cost = |system: System, seconds: f64| {
        seconds + plan.warmup + if matches!(system, System::Peer | System::PeerPassThrough) { 14.0 } else { 9.0 }
    };
    let own_half_cost: f64 = own_half.iter().map(|&s| step_cost(s, plan.half_seconds)).sum();
    let peer_group = 2;
    for (g, group) in [group_a, group_e, group_b].into_iter().enumerate() {
        let mut sweeps: Vec<(System, Sweep)> = group
            .iter()
            .map(|&system| {
                let sweep = match system {
                    System::Peer | System::PeerPassThrough => {
                        Sweep::new(plan.peer_start_rate, plan.factor, plan.peer_max_rate, plan.peer_refine)
                    }
                    _ => Sweep::new(plan.start_rate, plan.factor, plan.max_rate, plan.refine),
                };
                (system, sweep)
            })
            .collect();
        // Time kept for what follows this group's sweeps: one round of half-rate steps (further
        // rounds only if there is time), the status test, the peer's sweep.
        let later = if g != peer_group {
            [System::Claimgate, System::PassThrough, System::Broker]
                .iter()
                .filter(|s| plan.systems.contains(s))
                .map(|&s| step_cost(s, plan.half_seconds))
                .sum::<f64>()
                + own_half_cost
                + later_status
        } else {
            0.0
        };
        // One step of `system` at `rate` (tried twice if it saturates); `None` when out of time.
        let mut try_rate = |system: System, rate: u64| -> Result<Option<bool>> {
            let a = acc.iter_mut().find(|a| a.system == system).unwrap_or_else(|| unreachable!());
            if a.cut_short || time_left() - later < step_cost(system, plan.measure) {
                if !a.cut_short {
                    out.notes.push(format!("{}: sweep cut short by the time budget before {rate}/s", system.name()));
                }
                a.cut_short = true;
                return Ok(None);
            }
            let r = one_step(setup, &pool, clock, &mut n, a, &StartOpts::default(), |s| {
                measure(s, system, Phase::Sweep, rate, plan.warmup, plan.measure, plan.drain).map(|r| (r, None))
            })?;
            let mut saturated = !r.ok();
            out.steps.push(r);
            // On a shared machine a neighbour's burst can saturate a step: a saturated rate is tried
            // once more, and counts as saturated only if it saturates again.
            if saturated && plan.retry_saturated && time_left() - later >= step_cost(system, plan.measure) {
                eprintln!("loadtest: {} {rate}/s saturated: once more", system.name());
                let again = one_step(setup, &pool, clock, &mut n, a, &StartOpts::default(), |s| {
                    measure(s, system, Phase::Sweep, rate, plan.warmup, plan.measure, plan.drain).map(|r| (r, None))
                })?;
                saturated = !again.ok();
                out.steps.push(again);
            }
            Ok(Some(saturated))
        };
        // The ladder: every system of the group at each rate in turn, up until all of them saturate
        // (a system that saturated is still tried at the higher rates: on a shared machine the noise
        // of a moment must not end one system's sweep while the other goes on in a calmer one).
        let (mut rate, max) =
            if g != peer_group { (plan.start_rate, plan.max_rate) } else { (plan.peer_start_rate, plan.peer_max_rate) };
        'ladder: loop {
            if !plan.sweep {
                break;
            }
            let mut all_saturated = true;
            for (system, sweep) in sweeps.iter_mut() {
                match try_rate(*system, rate)? {
                    None => break 'ladder,
                    Some(saturated) => {
                        sweep.record(rate, saturated);
                        all_saturated &= saturated;
                    }
                }
            }
            if all_saturated || rate >= max {
                break;
            }
            rate = round_rate((rate as f64 * plan.factor) as u64).min(max);
        }
        // Then each system's own bisection between its highest rate that kept up and the next one
        // that did not, in turn.
        let refine = if g != peer_group { plan.refine } else { plan.peer_refine };
        // No sweep, nothing to refine (a bisection with no bounds would try 1/s).
        let mut refining: Vec<(System, Sweep)> = if plan.sweep {
            sweeps.iter().map(|(s, sw)| (*s, Sweep::seeded(sw.highest_ok(), sw.lowest_bad(), refine))).collect()
        } else {
            Vec::new()
        };
        loop {
            let mut any = false;
            for (system, sweep) in refining.iter_mut() {
                let Some(rate) = sweep.next() else { continue };
                if let Some(saturated) = try_rate(*system, rate)? {
                    any = true;
                    sweep.record(rate, saturated);
                }
            }
            if !any {
                break;
            }
        }
        let sweeps = refining;
        for (system, sweep) in &sweeps {
            if let Some(a) = acc.iter_mut().find(|a| a.system == *system) {
                a.saturating = sweep.highest_ok();
                a.first_saturated = sweep.lowest_bad();
            }
        }
        if g != 0 {
            continue;
        }
        if out.half_rate.is_none() {
            out.half_rate = acc
                .iter()
                .find(|a| a.system == System::Claimgate)
                .and_then(|a| a.saturating)
                .map(|r| round_rate(r / 2));
        }
        let Some(half) = out.half_rate else { continue };
        for round in 0..plan.half_repeats.max(1) {
            for system in [System::Claimgate, System::PassThrough, System::Broker] {
                let Some(a) = acc.iter_mut().find(|a| a.system == system) else { continue };
                if round > 0 && time_left() < step_cost(system, plan.half_seconds) + later_status {
                    continue;
                }
                eprintln!("loadtest: {} at half of claimgate's saturating rate: {half}/s", system.name());
                let r = one_step(setup, &pool, clock, &mut n, a, &StartOpts::default(), |s| {
                    measure(s, system, Phase::HalfRate, half, plan.warmup, plan.half_seconds, plan.drain)
                        .map(|r| (r, None))
                })?;
                out.steps.push(r);
            }
        }
    }
    // Every other system at half of its own saturating rate, in rounds (time allowing).
    for round in 0..plan.half_repeats.max(1) {
        for &system in &own_half {
            let Some(a) = acc.iter_mut().find(|a| a.system == system) else { continue };
            let Some(half) = a.saturating.map(|r| round_rate(r / 2)) else {
                if round == 0 {
                    out.notes.push(format!("{}: no saturating rate, so no half-rate step", system.name()));
                }
                continue;
            };
            if round > 0 && time_left() < step_cost(system, plan.half_seconds) + later_status {
                continue;
            }
            eprintln!("loadtest: {} at half of its own saturating rate: {half}/s", system.name());
            let r = one_step(setup, &pool, clock, &mut n, a, &StartOpts::default(), |s| {
                measure(s, system, Phase::HalfRate, half, plan.warmup, plan.half_seconds, plan.drain).map(|r| (r, None))
            })?;
            out.steps.push(r);
        }
    }
    // Status change to effect, each system under half of its own saturating rate.
    for &system in &status_systems {
        let Some(a) = acc.iter_mut().find(|a| a.system == system) else { continue };
        let own = if system == System::Claimgate { out.half_rate } else { a.saturating.map(|r| round_rate(r / 2)) };
        let Some(half) = own else { continue };
        let mut status = None;
        let opts = StartOpts { own_tables: true, ..StartOpts::default() };
        let r = one_step(setup, &pool, clock, &mut n, a, &opts, |s| {
            let (r, st) = status_phase(s, setup, plan, trickle, day, half)?;
            status = Some(st);
            Ok((r, None))
        })?;
        out.steps.push(r);
        if let Some(mut st) = status {
            if system == System::Claimgate {
                st.status_to_view_metric =
                    a.metrics.as_deref().and_then(|m| metric_count_sum(m, "claimgate_status_to_view_seconds"));
                out.status = Some(st.clone());
            }
            st.system = Some(system);
            out.statuses.push(st);
        }
    }
    // The backlog phase after the steps on the run's table (and before the large-table phase, which
    // loads the broker with a table of its own): the same systems draining a queue of claims with
    // nothing else of the load test running (backlog.rs).
    if plan.backlog > 0 {
        for round in 1..=plan.backlog_rounds.max(1) {
            for system in [System::Claimgate, System::PassThrough] {
                if !plan.systems.contains(&system) {
                    continue;
                }
                let r = crate::backlog::drain(setup, system, &pool, plan.backlog, n, round)?;
                n += 1;
                out.backlog.push(r);
            }
        }
    }
    let saturating = |s: System| acc.iter().find(|a| a.system == s).and_then(|a| a.saturating);
    if let Some(scale) = &plan.scale {
        let rate = scale.rate.or_else(|| {
            let r = [System::Claimgate, System::KafkaStreams].into_iter().filter_map(saturating).min()?;
            Some(round_rate(r / 2))
        });
        out.scale = Some(crate::scale::run(setup, scale, plan, clock, &mut n, rate.unwrap_or(2_000), &mut out)?);
    }
    if let Some(profile) = &plan.profile {
        crate::hotspots::run(setup, profile, plan, &pool, clock, &mut n, &saturating, &mut out)?;
    }
    for a in acc {
        out.systems.push(SystemSummary {
            system: a.system,
            saturating_rate: a.saturating,
            first_saturated_rate: a.first_saturated,
            max_achieved_rate: out
                .steps
                .iter()
                .filter(|r| r.system == a.system)
                .map(|r| r.achieved_rate)
                .fold(0.0, f64::max),
            ready_seconds: if a.sessions > 0 { a.ready_seconds / a.sessions as f64 } else { 0.0 },
            verdict_conflicts: a.verdicts.conflicts(),
            unstamped_outputs: a.unstamped,
            cut_short: a.cut_short,
        });
        if a.stray > 0 {
            out.notes.push(format!("{}: {} outputs stamped with an unknown step", a.system.name(), a.stray));
        }
        if let Some(m) = a.metrics {
            out.metrics.push((a.system, m));
        }
        out.verdicts.push((a.system, a.verdicts));
    }
    Ok(out)
}

/// What one system's sessions added up to.
pub(crate) struct Acc {
    pub system: System,
    pub verdicts: Verdicts,
    unstamped: u64,
    stray: u64,
    sessions: u64,
    ready_seconds: f64,
    metrics: Option<String>,
    saturating: Option<u64>,
    first_saturated: Option<u64>,
    cut_short: bool,
}

impl Acc {
    pub(crate) fn new(system: System, lines: usize) -> Acc {
        Acc {
            system,
            verdicts: Verdicts::new(lines),
            unstamped: 0,
            stray: 0,
            sessions: 0,
            ready_seconds: 0.0,
            metrics: None,
            saturating: None,
            first_saturated: None,
            cut_short: false,
        }
    }
}

/// Starts a session of `acc`'s system on fresh topics, runs `body` on it, stops it, and adds up.
pub(crate) fn one_step<F>(
    setup: &Setup,
    pool: &Arc<Pool>,
    clock: Clock,
    n: &mut u32,
    acc: &mut Acc,
    opts: &StartOpts,
    body: F,
) -> Result<StepResult>
where
    F: FnOnce(&mut Session) -> Result<(StepResult, Option<()>)>,
{
    let system = acc.system;
    let num = *n;
    *n += 1;
    let mut session = Session::start(setup, system, Arc::clone(pool), clock, num, opts)
        .with_context(|| format!("cannot start {}", system.name()))?;
    acc.sessions += 1;
    acc.ready_seconds += session.ready_seconds;
    let (mut r, _) = body(&mut session)?;
    r.ready_s = session.ready_seconds;
    r.first_decision_s = session.first_decision_seconds;
    r.table_codes = setup.table_codes;
    // One file per step of the run, numbered in the order they ran.
    r.hgrm = format!("{num:02}-{}-{}-{}.hgrm", system.name(), crate::results::phase_name(r.phase), r.target_rate);
    if !r.ok() {
        // A saturated step's backlog: give it a little time, not all it needs.
        session.settle(Duration::from_millis(500), Duration::from_secs(10));
    }
    if let Some(m) = session.metrics() {
        acc.metrics = Some(m);
    }
    r.peak_rss_mib = session.peak_rss_mib();
    let end = session.finish()?;
    if let Some(rec) = end.steps.get(&r.step) {
        r.finalise(r.sent, rec);
    }
    acc.verdicts.merge(&end.verdicts);
    acc.unstamped += end.unstamped;
    acc.stray += end.stray;
    Ok(r)
}

/// Runs one step and prints a line about it.
pub(crate) fn measure(
    session: &mut Session,
    system: System,
    phase: Phase,
    rate: u64,
    warmup: f64,
    measure: f64,
    drain: f64,
) -> Result<StepResult> {
    let (sent, rec) = session.step(rate, warmup, measure, Duration::from_secs_f64(drain))?;
    let r = StepResult::new(system, phase, rate, warmup, measure, &sent, &rec);
    print_step(&r);
    Ok(r)
}

fn print_step(r: &StepResult) {
    eprintln!(
        "loadtest: {:<17} {:>7}/s: achieved {:>8.0}/s, p50 {:>8.2} ms, p99 {:>8.2} ms, max {:>8.1} ms, unreceived {}, {:?}, CPU {:.2} s",
        r.system.name(),
        r.target_rate,
        r.achieved_rate,
        r.latency.p50_ms,
        r.latency.p99_ms,
        r.latency.max_ms,
        r.unreceived_at_deadline,
        r.saturation,
        r.system_cpu_s
    );
}

/// The status-change test: load at `rate`, a trickle of one practitioner's claims, and `changes`
/// new versions of that practitioner's record, alternately suspending and lifting the suspension.
/// Each change is timed from the broker's acknowledgement of the record to the first decision that
/// carries its version.
fn status_phase(
    session: &mut Session,
    setup: &Setup,
    plan: &Plan,
    trickle: &Trickle,
    day: claimgate::record::BjTime,
    rate: u64,
) -> Result<(StepResult, StatusResult)> {
    let clock = session.clock;
    let changer = AckProducer::new(&setup.brokers, clock, &setup.props)?;
    let sender = AckProducer::new(&setup.brokers, clock, &setup.props)?;
    let seen = Arc::clone(&session.reader.as_ref().context("no reader")?.trickle);
    let topic_claims = session.topics.claims.clone();
    let topic_status = session.topics.practitioners.clone();
    let measure_s = (3.0 + plan.status_changes as f64 * 1.0).max(plan.measure);
    let samples: Mutex<Vec<(u64, f64, bool)>> = Mutex::new(vec![]);
    let failures: Mutex<Vec<String>> = Mutex::new(vec![]);
    let period_ns = 1_000_000_000 / plan.trickle_rate.max(1);
    let span_ns = ((plan.warmup + measure_s) * 1e9) as u64;
    let base = trickle.record.version;
    eprintln!("loadtest: status changes: {} changes of {} under {rate}/s", plan.status_changes, trickle.record.code);
    let (sent, rec) =
        session.step_with(rate, plan.warmup, measure_s, Duration::from_secs_f64(plan.drain), |start| {
            let done = AtomicBool::new(false);
            std::thread::scope(|s| {
                s.spawn(|| {
                    let mut n = 0u64;
                    while !done.load(Ordering::Relaxed) && n * period_ns < span_ns {
                        let at = start + n * period_ns;
                        clock.sleep_until(at);
                        let (key, line) = trickle.line(n);
                        let stamp = Stamp { step: 0, kind: Kind::Trickle, seq: n, intended_ns: at };
                        sender.send_stamped(&topic_claims, key.as_bytes(), &line, &stamp);
                        n += 1;
                    }
                    sender.flush();
                });
                clock.sleep_until(start + (plan.warmup * 1e9) as u64);
                for k in 1..=plan.status_changes {
                    if clock.now_ns() + 2_500_000_000 > start + span_ns {
                        failures.lock().unwrap_or_else(|p| p.into_inner()).push(format!("no time left for change {k}"));
                        break;
                    }
                    let rec = trickle.change(k, day);
                    let value = serde_json::to_vec(&rec).unwrap_or_default();
                    let acked =
                        match changer.send_acked(&topic_status, rec.code.as_bytes(), &value, Duration::from_secs(5)) {
                            Ok(t) => t,
                            Err(e) => {
                                failures.lock().unwrap_or_else(|p| p.into_inner()).push(format!("change {k}: {e:#}"));
                                continue;
                            }
                        };
                    let version = base + k;
                    let deadline = Instant::now() + Duration::from_secs(5);
                    loop {
                        let first = seen.lock().unwrap_or_else(|p| p.into_inner()).first.get(&version).copied();
                        if let Some((at, outcome)) = first {
                            let want = if Trickle::rejects(k) { Outcome::Rejected } else { Outcome::Accepted };
                            let ms = at.saturating_sub(acked) as f64 / 1e6;
                            samples.lock().unwrap_or_else(|p| p.into_inner()).push((k, ms, outcome == want));
                            break;
                        }
                        if Instant::now() >= deadline {
                            failures
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(format!("change {k}: no decision with version {version} within 5 s"));
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    // A pause between changes, so that each one is measured on its own.
                    std::thread::sleep(Duration::from_millis(250));
                }
                done.store(true, Ordering::Relaxed);
            });
        })?;
    let step = StepResult::new(session.system, Phase::Status, rate, plan.warmup, measure_s, &sent, &rec);
    print_step(&step);
    let samples = samples.into_inner().unwrap_or_else(|p| p.into_inner());
    for f in failures.into_inner().unwrap_or_else(|p| p.into_inner()) {
        eprintln!("loadtest: status: {f}");
    }
    let mut ms: Vec<f64> = samples.iter().map(|s| s.1).collect();
    ms.sort_by(f64::total_cmp);
    let status = StatusResult {
        changes: plan.status_changes,
        measured: ms.len() as u64,
        wrong_verdicts: samples.iter().filter(|s| !s.2).count() as u64,
        p50_ms: quantile(&ms, 0.5),
        p99_ms: quantile(&ms, 0.99),
        max_ms: ms.last().copied().unwrap_or(0.0),
        min_ms: ms.first().copied().unwrap_or(0.0),
        samples_ms: samples.iter().map(|s| (s.1 * 100.0).round() / 100.0).collect(),
        trickle_rate: plan.trickle_rate,
        load_rate: rate,
        status_to_view_metric: None,
        system: Some(session.system),
    };
    eprintln!(
        "loadtest: status change to effect: {} of {} measured, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, wrong verdicts {}",
        status.measured, status.changes, status.p50_ms, status.p99_ms, status.max_ms, status.wrong_verdicts
    );
    Ok((step, status))
}

/// Nearest-rank quantile of sorted samples (0 when empty).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The `_count` and `_sum` of a Prometheus summary or histogram.
pub fn metric_count_sum(text: &str, name: &str) -> Option<(f64, f64)> {
    let get = |suffix: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{suffix}")))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some((get("_count")?, get("_sum")?))
}

/// The default results folder: `results/<UTC date-time>/` under the current directory.
pub fn default_out() -> PathBuf {
    PathBuf::from("results").join(chrono::Utc::now().format("%Y-%m-%dT%H-%M-%SZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 10.0);
        assert_eq!(quantile(&v, 0.99), 20.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn reads_a_prometheus_summary() {
        let text = "# TYPE claimgate_status_to_view_seconds summary\nclaimgate_status_to_view_seconds{quantile=\"0.5\"} 0.1\nclaimgate_status_to_view_seconds_sum 2.5\nclaimgate_status_to_view_seconds_count 21\n";
        assert_eq!(metric_count_sum(text, "claimgate_status_to_view_seconds"), Some((21.0, 2.5)));
        assert_eq!(metric_count_sum(text, "other"), None);
    }
}
