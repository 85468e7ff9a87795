//! `claimgate send` and `claimgate tail`: put a file of claim lines on a topic, and count what comes out
//! of the decision topics. For the demo, tests, and replaying a day into a topic.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::tables::properties;
use crate::io::files::{self, Chunker, Output, lines};
use crate::io::kafka::publish::Publisher;
use crate::io::kafka::{Context as KafkaContext, KafkaConfig, admin};

/// Arguments of `claimgate send`.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// Bootstrap brokers.
    #[arg(long, value_name = "HOST:PORT")]
    pub brokers: String,
    /// Topic to produce to.
    #[arg(long, default_value = "claims")]
    pub topic: String,
    /// Files of claim lines (JSON Lines, `.gz` / `.zst`), `-` for standard input. Each line is sent as
    /// it is, keyed `fixmedins_code|mdtrt_id` (records.md) when those fields can be read; a line that is
    /// not JSON is sent too, without a key — it is the filter's job to dead-letter it.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Stamp each record with its line's service time (`fee_ocur_time`, Beijing time) instead of now:
    /// to fill a topic with past days, as a benchmark of the nightly and retro reviews does (the topic's
    /// retention must keep them). A line without a readable service time is stamped now.
    #[arg(long)]
    pub stamp_service_time: bool,
    /// A librdkafka property.
    #[arg(short = 'X', value_name = "NAME=VALUE")]
    pub property: Vec<String>,
}

/// Arguments of `claimgate tail`.
#[derive(Args, Debug)]
pub struct TailArgs {
    /// Bootstrap brokers.
    #[arg(long, value_name = "HOST:PORT")]
    pub brokers: String,
    /// Topics to read from the beginning, comma-separated.
    #[arg(long, default_value = "claims.accepted,claims.rejected,claims.dlq", value_delimiter = ',')]
    pub topics: Vec<String>,
    /// Stop after this many records in all.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop when no record arrived for this many seconds.
    #[arg(long, default_value_t = 5)]
    pub idle_s: u64,
    /// Write every record value here (JSON Lines).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// A librdkafka property.
    #[arg(short = 'X', value_name = "NAME=VALUE")]
    pub property: Vec<String>,
}

fn key_of(line: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct K {
        fixmedins_code: Option<serde_json::Value>,
        mdtrt_id: Option<serde_json::Value>,
    }
    let k: K = serde_json::from_slice(line).ok()?;
    let text = |v: serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.trim().to_owned()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    Some(format!("{}|{}", text(k.fixmedins_code?)?, text(k.mdtrt_id?)?))
}

/// Runs `claimgate send`.
pub fn send(args: SendArgs) -> Result<()> {
    let started = Instant::now();
    let kafka = KafkaConfig { brokers: args.brokers.clone(), properties: properties(&args.property)? };
    let publisher = Publisher::new(&kafka)?;
    let mut n = 0u64;
    for path in &args.files {
        let input = files::open(path)?;
        let name = input.name.clone();
        for chunk in Chunker::new(input.reader, 4 << 20) {
            let chunk = chunk.with_context(|| format!("cannot read {name}"))?;
            for (_, line) in lines(&chunk) {
                let key = key_of(line).unwrap_or_default();
                let at = if args.stamp_service_time {
                    claimgate::record::Claim::parse(line).ok().map(|c| crate::io::clock::to_unix_ms(c.fee_ocur_time))
                } else {
                    None
                };
                publisher.send_at(&args.topic, key.as_bytes(), Some(line), at)?;
                n += 1;
            }
        }
    }
    publisher.finish(Duration::from_secs(120))?;
    eprintln!("sent {n} lines to {} in {:.1} s", args.topic, started.elapsed().as_secs_f64());
    Ok(())
}

/// Runs `claimgate tail`: prints counts by topic, verdict and reason.
pub fn tail(args: TailArgs) -> Result<()> {
    let kafka = KafkaConfig { brokers: args.brokers.clone(), properties: properties(&args.property)? };
    let consumer: BaseConsumer<KafkaContext> = kafka
        .client(&[
            ("group.id", "claimgate-tail"),
            ("enable.auto.commit", "false"),
            ("isolation.level", "read_committed"),
        ])
        .create_with_context(KafkaContext { client: "tail" })?;
    let mut tpl = TopicPartitionList::new();
    for t in &args.topics {
        for p in admin::partitions(&consumer, t, Duration::from_secs(10))? {
            tpl.add_partition_offset(t, p, Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl)?;
    let mut out = args.out.as_deref().map(Output::create).transpose()?;
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut total = 0u64;
    // Broker timestamps of the first and last record: the span over which the producer wrote them.
    let (mut first_ts, mut last_ts) = (i64::MAX, i64::MIN);
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(args.idle_s) && args.count.is_none_or(|c| total < c) {
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else { continue };
        let msg = msg?;
        last = Instant::now();
        total += 1;
        if let Some(ts) = msg.timestamp().to_millis() {
            first_ts = first_ts.min(ts);
            last_ts = last_ts.max(ts);
        }
        let payload = msg.payload().unwrap_or_default();
        #[derive(serde::Deserialize)]
        struct R {
            reason: Option<String>,
        }
        let reason = serde_json::from_slice::<R>(payload).ok().and_then(|r| r.reason).unwrap_or_else(|| "-".into());
        *counts.entry((msg.topic().to_owned(), reason)).or_default() += 1;
        if let Some(o) = &mut out {
            o.write_all(payload)?;
            o.write_all(b"\n")?;
        }
    }
    if let Some(o) = out {
        o.finish()?;
    }
    println!("{total} records");
    if total > 1 && last_ts > first_ts {
        let span = (last_ts - first_ts) as f64 / 1000.0;
        println!("  written over {span:.3} s by their producer: {:.0} records/s", total as f64 / span);
    }
    for ((topic, reason), n) in counts {
        println!("  {topic:<20} {reason:<34} {n:>10}");
    }
    Ok(())
}
