//! `claimgate-loadtest`: an open-loop load test of `claimgate stream` on a real broker, side by side
//! with a pass-through (the same binary forwarding claims undecided) and a Python peer (quixstreams).
//!
//! It generates synthetic claim lines (`claimgate::synth`), sends them to the claims topic at a fixed
//! rate whatever the system under test does, stamps each with its intended send time, reads the
//! decisions and dead letters back, and records each line's latency from its intended send time
//! (coordinated omission corrected) in an HdrHistogram. A rate sweep finds each system's saturating
//! rate; claimgate is also measured at half of its saturating rate and under status changes. Every
//! line is checked for loss and duplication. See `loadtest/README.md`.

mod backlog;
mod charts;
mod compare;
mod cpu;
mod hgrm;
mod hotspots;
mod kafka;
mod pool;
mod report;
mod results;
mod run;
mod scale;
mod schedule;
mod session;
mod stamp;
mod sweep;
mod tally;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::Parser;

use results::{Machine, Summary};
use session::{Setup, System};

/// Open-loop load test of `claimgate stream` (latency, saturating rate, status change to effect), side
/// by side with a pass-through and the quixstreams peer. Writes report.md, summary.json, .hgrm files
/// and SVG charts into the results folder.
#[derive(Parser, Debug)]
#[command(name = "claimgate-loadtest", version, args_override_self = true)]
struct Args {
    /// Bootstrap brokers of the broker to load (loopback only).
    #[arg(long, value_name = "HOST:PORT", required_unless_present = "rerender")]
    brokers: Option<String>,
    /// Run nothing: write report.md and the charts of an existing results folder again from its
    /// summary.json and .hgrm files.
    #[arg(long, value_name = "DIR")]
    rerender: Option<PathBuf>,
    /// The claimgate binary under test.
    #[arg(long, default_value = "target/release/claimgate")]
    claimgate: PathBuf,
    /// The peer's launcher (loadtest/peers/run_peer.sh); needed for the peer systems.
    #[arg(long)]
    peer: Option<PathBuf>,
    /// Systems to run: claimgate, pass-through, broker (the broker alone, at the half rate only), peer,
    /// peer-pass-through, claimgate-eos (exactly once), kafka-streams, kafka-streams-eos (the Kafka
    /// Streams peer, at least once and exactly_once_v2; needs --kstreams).
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set, default_value = "claimgate,pass-through,broker,peer")]
    systems: Vec<String>,
    /// The Kafka Streams peer's launcher (loadtest/peers/kafka-streams/run.sh).
    #[arg(long)]
    kstreams: Option<PathBuf>,
    /// The Kafka Streams peer's JVM heap (-Xmx).
    #[arg(long, default_value = "1g")]
    kstreams_heap: String,
    /// Systems besides claimgate whose status change to effect is measured (each under half of its own
    /// saturating rate).
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set, default_value = "claimgate-eos,kafka-streams,kafka-streams-eos")]
    status_systems: Vec<String>,
    /// Practitioner codes of the large-table phase (0: none; 12000000 for the whole country): each
    /// system started cold on it, measured, and restarted with its state kept.
    #[arg(long, default_value_t = 0)]
    scale_practitioners: u64,
    /// Systems of the large-table phase.
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set, default_value = "claimgate,kafka-streams")]
    scale_systems: Vec<String>,
    /// Lines per second of the large-table steps (default: half of the lower of claimgate's and Kafka
    /// Streams' saturating rates).
    #[arg(long)]
    scale_rate: Option<u64>,
    /// Seconds measured in the large-table phase's cold step.
    #[arg(long, default_value_t = 20.0)]
    scale_seconds: f64,
    /// Longest wait for a system's first decisions on the large table, seconds.
    #[arg(long, default_value_t = 1800.0)]
    scale_ready_limit: f64,
    /// Arguments that make `claimgate stream` checkpoint its table (the restart test); `{dir}` is
    /// replaced by a state directory of the instance, e.g. "--checkpoint-dir {dir}". Without them
    /// claimgate's restart is a cold start, and the report says so.
    #[arg(long, allow_hyphen_values = true)]
    claimgate_checkpoint_args: Option<String>,
    /// Seconds of one more step per profiled system under a profiler (JFR, perf); 0: none.
    #[arg(long, default_value_t = 0.0)]
    profile_seconds: f64,
    /// Systems to profile.
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set, default_value = "claimgate,kafka-streams")]
    profile_systems: Vec<String>,
    /// Results folder (default results/<UTC date-time>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Scratch folder for the generated tables and the systems' logs.
    #[arg(long, default_value = ".tools/loadtest")]
    work: PathBuf,
    /// Practitioners in the generated table.
    #[arg(long, default_value_t = 100_000)]
    practitioners: u64,
    /// Distinct claim lines generated before the run and sent round and round.
    #[arg(long, default_value_t = 300_000)]
    pool: usize,
    /// Seed of the data generator.
    #[arg(long, default_value_t = 20_240_423)]
    seed: u64,
    /// Partitions of the claim and decision topics.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Seconds of each step before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds measured per sweep step.
    #[arg(long, default_value_t = 6.0)]
    measure: f64,
    /// Longest wait for a step's last outputs after its last line was sent, seconds.
    #[arg(long, default_value_t = 10.0)]
    drain: f64,
    /// First rate of the claimgate and pass-through sweeps, lines/s.
    #[arg(long, default_value_t = 10_000)]
    start_rate: u64,
    /// Each next rate is this times the last, until a rate saturates.
    #[arg(long, default_value_t = 1.5)]
    factor: f64,
    /// Highest rate tried.
    #[arg(long, default_value_t = 400_000)]
    max_rate: u64,
    /// Bisection steps between the last rate that kept up and the first that did not.
    #[arg(long, default_value_t = 2)]
    refine: u32,
    /// First rate of the peer's sweep.
    #[arg(long, default_value_t = 5_000)]
    peer_start_rate: u64,
    /// Highest rate tried on the peer.
    #[arg(long, default_value_t = 80_000)]
    peer_max_rate: u64,
    /// Bisection steps of the peer's sweep.
    #[arg(long, default_value_t = 1)]
    peer_refine: u32,
    /// Seconds measured at half of claimgate's saturating rate.
    #[arg(long, default_value_t = 6.0)]
    half_seconds: f64,
    /// Rounds of half-rate steps (claimgate, pass-through, broker in turn; the report gives medians),
    /// as many as the time budget allows.
    #[arg(long, default_value_t = 3)]
    half_repeats: u32,
    /// Do not try a saturated sweep rate a second time (by default a rate counts as saturated only if
    /// it saturates twice: a neighbour's burst on a shared machine should not end a sweep).
    #[arg(long)]
    no_retry: bool,
    /// Take this as claimgate's saturating rate for the half-rate steps instead of measuring it.
    #[arg(long)]
    half_of: Option<u64>,
    /// Status changes to time (0: none).
    #[arg(long, default_value_t = 20)]
    status_changes: u64,
    /// Claims per second of the status-change practitioner during the status test.
    #[arg(long, default_value_t = 200)]
    trickle_rate: u64,
    /// Time budget of the measurements, seconds: sweeps stop early to stay within it.
    #[arg(long, default_value_t = 600.0)]
    budget: f64,
    /// `fetch.wait.max.ms` of every consumer of claims and decisions (systems under test and reader).
    /// Apache Kafka answers a fetch as soon as `fetch.min.bytes` (1) are there, so this bounds only the
    /// wait of an idle fetch (the old test broker, Tansu, held every fetch this long: a latency floor).
    #[arg(long, default_value_t = 50)]
    fetch_wait_ms: u32,
    /// The broker's PID (scripts/loadtest.sh gives it; once per node of a cluster): its CPU use is
    /// then reported apart from the machine's other users'.
    #[arg(long)]
    broker_pid: Vec<u32>,
    /// A librdkafka property for every client (load test and systems under test), NAME=VALUE.
    #[arg(short = 'X', value_name = "NAME=VALUE")]
    property: Vec<String>,
    /// A librdkafka property for the systems under test only (claimgate in either guarantee, its
    /// pass-through, the Python and Kafka Streams peers), NAME=VALUE, after the -X ones: the settings a
    /// latency/throughput trade-off varies.
    #[arg(short = 'S', long = "system-property", value_name = "NAME=VALUE")]
    system_property: Vec<String>,
    /// `linger.ms` of the generator's producer (part of every line's measured latency, the broker
    /// alone's included).
    #[arg(long, default_value_t = 1)]
    gen_linger_ms: u32,
    /// Keep the topics of every step when it ends (by default each step's claims, decision and
    /// dead-letter topics are deleted with it, so that the broker carries the same partitions at the
    /// last step as at the first).
    #[arg(long)]
    keep_topics: bool,
    /// Lines of the backlog each system drains (claimgate and the pass-through, `--backlog-rounds`
    /// times each, fresh topics each time): the rate a system takes a queue of claims at, with no
    /// generator and no reader running (0: no backlog phase).
    #[arg(long, default_value_t = 0)]
    backlog: u64,
    /// Rounds of the backlog phase.
    #[arg(long, default_value_t = 1)]
    backlog_rounds: u32,
    /// Skip the rate sweeps: only the half-rate steps (at half of `--half-of`), the status test and the
    /// backlog phase (a latency/throughput trade-off run of one setting).
    #[arg(long)]
    no_sweep: bool,
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("claimgate-loadtest: error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let started = Instant::now();
    let args = Args::parse();
    if let Some(dir) = &args.rerender {
        report::rerender(dir)?;
        println!("{}", dir.join("report.md").display());
        return Ok(());
    }
    let brokers = args.brokers.clone().unwrap_or_default();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let started_text = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC").to_string();
    // Read now: its load average is the one at the start.
    let machine = Machine::detect();
    let systems: Vec<System> = args
        .systems
        .iter()
        .map(|s| System::parse(s.trim()).with_context(|| format!("--systems: unknown system `{s}`")))
        .collect::<Result<_>>()?;
    for b in brokers.split(',') {
        let host = b.rsplit_once(':').map_or(b, |(h, _)| h);
        if !(host.starts_with("127.") || host == "localhost" || host == "[::1]") {
            bail!("--brokers {b}: the load test only loads a broker on this machine (loopback)");
        }
    }
    if systems.iter().any(|s| matches!(s, System::Peer | System::PeerPassThrough)) && args.peer.is_none() {
        bail!("the peer systems need --peer loadtest/peers/run_peer.sh");
    }
    let parse_systems = |names: &[String], flag: &str| -> Result<Vec<System>> {
        names
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| System::parse(s.trim()).with_context(|| format!("{flag}: unknown system `{s}`")))
            .collect()
    };
    let status_systems = parse_systems(&args.status_systems, "--status-systems")?;
    let scale_systems = parse_systems(&args.scale_systems, "--scale-systems")?;
    let profile_systems = parse_systems(&args.profile_systems, "--profile-systems")?;
    let wants_kstreams = systems.iter().chain(&scale_systems).any(|s| s.is_kafka_streams())
        && (systems.iter().any(|s| s.is_kafka_streams()) || args.scale_practitioners > 0);
    if wants_kstreams && args.kstreams.is_none() {
        bail!("the kafka-streams systems need --kstreams loadtest/peers/kafka-streams/run.sh");
    }
    if !args.claimgate.exists() {
        bail!("{}: no such file (cargo build --release)", args.claimgate.display());
    }
    let parse_props = |list: &[String], flag: &str| -> Result<Vec<(String, String)>> {
        list.iter()
            .map(|p| {
                let (k, v) = p.split_once('=').with_context(|| format!("{flag} {p}: expected NAME=VALUE"))?;
                Ok((k.trim().to_owned(), v.to_owned()))
            })
            .collect()
    };
    let props = parse_props(&args.property, "-X")?;
    let system_props = parse_props(&args.system_property, "-S")?;
    let out = args.out.clone().unwrap_or_else(run::default_out);
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::create_dir_all(&args.work).with_context(|| format!("cannot create {}", args.work.display()))?;

    let t = Instant::now();
    let world = pool::world(args.seed, args.practitioners, args.pool as u64);
    let practitioners = args.work.join("practitioners.jsonl");
    let institutions = args.work.join("institutions.jsonl");
    pool::write_tables(&world, &practitioners, &institutions)?;
    let lines = Arc::new(pool::Pool::generate(&world, args.pool)?);
    if lines.is_empty() {
        bail!("no claim lines generated (--pool)");
    }
    let trickle = pool::Trickle::find(&world, &lines)?;
    eprintln!(
        "loadtest: {} practitioners, {} claim lines generated in {:.1} s; status-change practitioner {} at {}",
        args.practitioners,
        lines.len(),
        t.elapsed().as_secs_f64(),
        trickle.record.code,
        trickle.institution
    );
    let run_id = format!("{:x}", std::process::id());
    let setup = Setup {
        brokers: brokers.clone(),
        claimgate: args.claimgate.clone(),
        peer: args.peer.clone(),
        kstreams: args.kstreams.clone(),
        kstreams_heap: args.kstreams_heap.clone(),
        table_codes: args.practitioners,
        practitioners,
        institutions,
        work: args.work.clone(),
        partitions: args.partitions,
        props,
        run_id,
        fetch_wait_ms: args.fetch_wait_ms,
        broker_pids: args.broker_pid.clone(),
        system_props,
        gen_linger_ms: args.gen_linger_ms,
        keep_topics: args.keep_topics,
    };
    let plan = run::Plan {
        systems: systems.clone(),
        warmup: args.warmup,
        measure: args.measure,
        drain: args.drain,
        start_rate: args.start_rate,
        factor: args.factor,
        max_rate: args.max_rate,
        refine: args.refine,
        peer_start_rate: args.peer_start_rate,
        peer_max_rate: args.peer_max_rate,
        peer_refine: args.peer_refine,
        half_seconds: args.half_seconds,
        half_repeats: args.half_repeats,
        retry_saturated: !args.no_retry,
        status_changes: args.status_changes,
        trickle_rate: args.trickle_rate,
        budget_seconds: args.budget,
        half_rate: args.half_of.map(|r| sweep::round_rate(r / 2)),
        sweep: !args.no_sweep,
        backlog: args.backlog,
        backlog_rounds: args.backlog_rounds,
        status_systems,
        scale: (args.scale_practitioners > 0).then(|| scale::ScalePlan {
            practitioners: args.scale_practitioners,
            rate: args.scale_rate,
            seconds: args.scale_seconds,
            systems: scale_systems.clone(),
            claimgate_checkpoint_args: args
                .claimgate_checkpoint_args
                .as_deref()
                .map(|a| a.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            ready_limit_s: args.scale_ready_limit,
            pool: args.pool,
        }),
        profile: (args.profile_seconds > 0.0)
            .then(|| hotspots::ProfilePlan { seconds: args.profile_seconds, systems: profile_systems.clone() }),
        table_codes: args.practitioners,
        out: out.clone(),
        seed: args.seed,
    };
    if args.no_sweep && args.half_of.is_none() && args.backlog == 0 {
        bail!("--no-sweep needs --half-of RATE (the half-rate steps) or --backlog N");
    }
    let day = world.config().day;
    let outcomes = run::run(&setup, &plan, Arc::clone(&lines), &trickle, day)?;

    let sat = |s: System| outcomes.systems.iter().find(|x| x.system == s).and_then(|x| x.saturating_rate);
    let ratio = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if b > 0 => Some((a as f64 / b as f64 * 100.0).round() / 100.0),
        _ => None,
    };
    let half_rate_figures: Vec<results::HalfRateFigure> =
        System::ALL.into_iter().filter_map(|s| results::HalfRateFigure::of(s, &outcomes.steps)).collect();
    let p99_at = |s: System| half_rate_figures.iter().find(|f| f.system == s).map(|f| f.median_p99_ms);
    let verdicts = |s: System| outcomes.verdicts.iter().find(|v| v.0 == s).map(|v| &v.1);
    let peer_agreement = match (verdicts(System::Claimgate), verdicts(System::Peer)) {
        (Some(a), Some(b)) => Some(a.compare(b)),
        _ => None,
    };
    let mut notes = outcomes.notes.clone();
    if let Some(a) = &peer_agreement
        && a.disagreements > 0
    {
        notes.push(format!("{} lines got a different outcome from the peer than from claimgate", a.disagreements));
    }
    // Every deciding system against claimgate, line by line: topic, reason, overridden reason.
    let mut agreements: Vec<(System, String, tally::Agreement)> = vec![];
    if let Some(cg) = verdicts(System::Claimgate) {
        for (s, v) in outcomes.verdicts.iter().filter(|(s, _)| *s != System::Claimgate && s.decides()) {
            agreements.push((*s, format!("{} codes", args.practitioners), cg.compare(v)));
        }
    }
    agreements.extend(outcomes.extra_agreements.iter().cloned());
    for (s, table, a) in &agreements {
        if a.disagreements > 0 {
            notes.push(format!(
                "{}: {} of {} lines ({table}) decided differently from claimgate, e.g. {}",
                s.name(),
                a.disagreements,
                a.compared,
                a.examples.first().map_or("", String::as_str)
            ));
        }
    }
    for r in &outcomes.steps {
        if r.generator_max_behind_ms > 200.0 && r.ok() {
            notes.push(format!(
                "{} {}/s: the generator fell {:.0} ms behind its schedule at worst (counted in the latency)",
                r.system.name(),
                r.target_rate,
                r.generator_max_behind_ms
            ));
        }
        if r.delivery_failures > 0 {
            notes.push(format!(
                "{} {}/s: {} claim lines not delivered",
                r.system.name(),
                r.target_rate,
                r.delivery_failures
            ));
        }
    }
    let settings = serde_json::json!({
        "plan": plan,
        "practitioners": args.practitioners,
        "pool_lines": lines.len(),
        "seed": args.seed,
        "partitions": args.partitions,
        "properties": args.property,
        "fetch_wait_ms": args.fetch_wait_ms,
        "system_properties": args.system_property,
        "gen_linger_ms": args.gen_linger_ms,
        "keep_topics": args.keep_topics,
        "status_practitioner": trickle.record.code,
    });
    let kstreams = kstreams_comparison(&systems, &outcomes, &half_rate_figures, args.practitioners);
    let summary = Summary {
        started: started_text,
        command,
        machine,
        broker: match brokers.split(',').count() {
            1 => format!("{brokers} (Apache Kafka 4.1.1, KRaft, single node, via scripts/broker.sh)"),
            n => format!(
                "{brokers} (Apache Kafka 4.1.1, KRaft, {n}-node cluster on this machine, topics RF 3, min.insync.replicas=2, producers acks=all; via scripts/broker.sh)"
            ),
        },
        settings,
        pass_through_ratio: ratio(sat(System::Claimgate), sat(System::PassThrough)),
        peer_ratio: ratio(sat(System::Claimgate), sat(System::Peer)),
        half_rate: outcomes.half_rate,
        half_rate_p99_ms: p99_at(System::Claimgate),
        half_rate_pass_through_p99_ms: p99_at(System::PassThrough),
        half_rate_figures,
        status: outcomes.status.clone(),
        peer_agreement,
        kstreams,
        agreements,
        statuses: outcomes.statuses.clone(),
        // A saturated step's backlog is cut off when its system is stopped: those lines stay in the
        // claims topic undecided (they would be decided on a restart) and are not counted as lost.
        lost_total: outcomes.steps.iter().filter(|r| r.ok()).map(|r| r.lost).sum(),
        duplicates_total: outcomes.steps.iter().map(|r| r.duplicates).sum(),
        identity_mismatches_total: outcomes.steps.iter().map(|r| r.identity_mismatches).sum(),
        systems: outcomes.systems.clone(),
        steps: outcomes.steps.clone(),
        wall_seconds: started.elapsed().as_secs_f64(),
        load_average_end: results::load_average(),
        notes,
        backlog: outcomes.backlog.clone(),
    };
    let hgrms: Vec<(String, String)> = outcomes.steps.iter().map(|r| (r.hgrm.clone(), r.hgrm_text.clone())).collect();

    report::write(&out, &summary, &hgrms)?;
    for (system, text) in &outcomes.metrics {
        std::fs::write(out.join(format!("metrics-{}.txt", system.name())), text)?;
    }
    println!("{}", out.join("report.md").display());
    eprintln!(
        "loadtest: done in {:.0} s: claimgate/pass-through {:?}, claimgate/peer {:?}, p99 at half rate {:?} ms, lost {}, duplicated {}",
        summary.wall_seconds,
        summary.pass_through_ratio,
        summary.peer_ratio,
        summary.half_rate_p99_ms,
        summary.lost_total,
        summary.duplicates_total
    );
    Ok(())
}

/// The comparison with Kafka Streams, when a Kafka Streams system ran.
fn kstreams_comparison(
    systems: &[System],
    outcomes: &run::Outcomes,
    half: &[results::HalfRateFigure],
    codes: u64,
) -> Option<compare::Comparison> {
    let ran = systems.iter().any(|s| s.is_kafka_streams()) || outcomes.scale.is_some();
    if !ran {
        return None;
    }
    let figures = compare::figures(&outcomes.systems, half, &outcomes.steps, &outcomes.statuses);
    Some(compare::Comparison {
        table_codes: codes,
        scale_codes: outcomes.scale.as_ref().map_or(0, |s| s.codes),
        goals: compare::goals(&figures),
        systems: figures,
        restart_note: outcomes.scale.as_ref().map(|s| s.restart_note.clone()).unwrap_or_default(),
        scale_publish_s: outcomes.scale.as_ref().map(|s| s.publish_s),
        hotspots: outcomes.hotspots.clone(),
        versions: compare::Versions::detect(),
    })
}
