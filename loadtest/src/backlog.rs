//! The backlog phase: how fast a system takes claims that are already waiting, with nothing else of
//! the load test running. A fresh claims topic is filled with `lines` stamped pool lines first; then
//! the system starts, and the load test only watches the output topics' end offsets (a few metadata
//! calls a second) until every line has an output. The rate is the outputs' count over the span of
//! their own timestamps (`CreateTime`, set by the system's producer as it produced them: first output to
//! last), read back afterwards — the measure `scripts/bench-stream.sh` uses, taken here on the same
//! broker, topics and data as the open-loop steps, so that the two figures can be put side by side
//! (BENCHMARKS.md, "Saturation").

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::cpu::CpuUse;
use crate::kafka::{GenStep, Topics};
use crate::pool::Pool;
use crate::session::{Setup, System};
use crate::stamp::{HEADER, Stamp};

/// One drained backlog.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BacklogResult {
    pub system: System,
    pub round: u32,
    /// Lines waiting when the system started.
    pub lines: u64,
    /// Distinct lines with an output (must be `lines`).
    pub answered: u64,
    /// Outputs beyond one per line.
    pub duplicates: u64,
    /// First output to last, by their timestamps, seconds.
    pub seconds: f64,
    /// `answered / seconds`.
    pub rate: f64,
    /// Seconds from the system's start to its first output (tables loaded, group joined).
    pub start_seconds: f64,
    /// CPU use from the first output to the last one seen.
    pub cpu: CpuUse,
}

/// Fills a fresh claims topic with `lines` lines, starts `system` on it, waits until every line has an
/// output, and measures.
pub fn drain(setup: &Setup, system: System, pool: &Pool, lines: u64, n: u32, round: u32) -> Result<BacklogResult> {
    let prefix = format!("lt{}-{n:02}-{}-backlog-", setup.run_id, system.name());
    let mut topics = Topics::with_prefix(&prefix);
    let shared = Topics::with_prefix(&format!("lt{}-tables-", setup.run_id));
    topics.practitioners = shared.practitioners;
    topics.institutions = shared.institutions;
    crate::session::create_topics(setup, &prefix)?;
    // The backlog: as fast as the producer goes (a schedule of a billion lines a second), stamped so
    // that every output names its line.
    let producer = crate::kafka::gen_producer(&setup.brokers, 5, &setup.props)?;
    let clock = crate::kafka::Clock::new();
    let schedule = crate::schedule::Schedule::new(1_000_000_000, lines as f64 / 1e9);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let plan = GenStep { topic: &topics.claims, step: 1, schedule: &schedule, start_ns: 0 };
    let t = Instant::now();
    let sent = crate::kafka::generate(&producer, pool, &clock, &plan, &stop);
    producer.flush(Duration::from_secs(600)).context("the backlog was not delivered")?;
    if sent.failed > 0 {
        bail!("{} backlog lines not delivered", sent.failed);
    }
    eprintln!("loadtest: {} backlog: {} lines written in {:.1} s", system.name(), sent.sent, t.elapsed().as_secs_f64());
    drop(producer);

    let launched = crate::session::launch(setup, system, &topics, &prefix, &crate::session::StartOpts::default())?;
    let log = launched.log;
    let mut child = launched.child.context("the broker alone has no backlog to drain")?;
    let started = Instant::now();
    let result = (|| -> Result<BacklogResult> {
        let watch: BaseConsumer =
            crate::kafka::plain_client(&setup.brokers, &setup.props).create().context("cannot create the watcher")?;
        let outputs = [&topics.accepted, &topics.rejected, &topics.dlq];
        let ends = |c: &BaseConsumer| -> u64 {
            let mut total = 0;
            for t in outputs {
                for p in 0..setup.partitions {
                    if let Ok((_, high)) = c.fetch_watermarks(t, p, Duration::from_secs(5)) {
                        total += high.max(0) as u64;
                    }
                }
            }
            total
        };
        let limit = Duration::from_secs(120.max(lines / 2_000));
        let pid = Some(child.id());
        let mut first: Option<(Instant, crate::cpu::Sample)> = None;
        let mut last = (0u64, crate::cpu::sample(pid, &setup.broker_pids));
        loop {
            if let Some(status) = child.try_wait()? {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("{} exited ({status}) while draining its backlog:\n{}", system.name(), text.trim());
            }
            let done = ends(&watch);
            if done > 0 && first.is_none() {
                first = Some((Instant::now(), crate::cpu::sample(pid, &setup.broker_pids)));
            }
            if done > last.0 {
                last = (done, crate::cpu::sample(pid, &setup.broker_pids));
            }
            if done >= lines {
                break;
            }
            if started.elapsed() > limit {
                bail!("{} answered {done} of {lines} backlog lines within {limit:?}", system.name());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let (first_at, cpu_first) = first.context("no output")?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpu = crate::cpu::usage(&cpu_first, &last.1, cores);
        let start_seconds = first_at.duration_since(started).as_secs_f64();
        let (answered, duplicates, span_ms) = read_back(setup, &topics, lines)?;
        let seconds = span_ms as f64 / 1000.0;
        Ok(BacklogResult {
            system,
            round,
            lines,
            answered,
            duplicates,
            seconds,
            rate: if seconds > 0.0 { answered as f64 / seconds } else { 0.0 },
            start_seconds,
            cpu,
        })
    })();
    crate::session::stop_child(&mut child);
    let r = result?;
    eprintln!(
        "loadtest: {} backlog of {}: drained at {:.0}/s ({:.2} s from first output to last; started in {:.1} s); CPU: {} {:.0}%, broker {:.0}%, others {:.0}%",
        system.name(),
        r.lines,
        r.rate,
        r.seconds,
        r.start_seconds,
        system.name(),
        r.cpu.system_pct,
        r.cpu.broker_pct,
        r.cpu.others_pct
    );
    Ok(r)
}

/// Reads every output back: distinct lines answered, duplicates, and the span of the outputs' own
/// timestamps (ms).
fn read_back(setup: &Setup, topics: &Topics, lines: u64) -> Result<(u64, u64, i64)> {
    let c: BaseConsumer = crate::kafka::plain_client(&setup.brokers, &setup.props)
        .set("group.id", "claimgate-loadtest-backlog")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "104857600")
        .set("max.partition.fetch.bytes", "8388608")
        .create()
        .context("cannot create the backlog reader")?;
    let mut tpl = TopicPartitionList::new();
    for t in [&topics.accepted, &topics.rejected, &topics.dlq] {
        for p in 0..setup.partitions {
            tpl.add_partition_offset(t, p, Offset::Beginning)?;
        }
    }
    c.assign(&tpl)?;
    let mut seen = vec![false; lines as usize];
    let (mut distinct, mut total) = (0u64, 0u64);
    let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
    let deadline = Instant::now() + Duration::from_secs(120.max(lines / 20_000));
    while distinct < lines && Instant::now() < deadline {
        let Some(Ok(m)) = c.poll(Duration::from_millis(200)) else { continue };
        total += 1;
        if let Some(ts) = m.timestamp().to_millis() {
            min_ts = min_ts.min(ts);
            max_ts = max_ts.max(ts);
        }
        let stamp =
            m.headers().and_then(|h| h.iter().find(|h| h.key == HEADER)).and_then(|h| h.value).and_then(Stamp::decode);
        if let Some(s) = stamp
            && let Some(slot) = seen.get_mut(s.seq as usize)
            && !*slot
        {
            *slot = true;
            distinct += 1;
        }
    }
    Ok((distinct, total - distinct, (max_ts - min_ts).max(0)))
}
