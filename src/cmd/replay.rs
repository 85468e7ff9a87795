//! `claimgate replay`: dead letters sent back to the claims topic once their cause is fixed (issue 13,
//! item 3).
//!
//! Reads the dead-letter topic (`--from`) from where this replay last stopped up to the ends it has
//! when the replay starts — never the dead letters the replay itself appends — and for each dead letter
//! that `--where` selects:
//! - its original line parses now (records.md's claim line, [`claimgate::record::Claim::parse`]): it is
//!   produced to `--to` with the dead letter's key and headers, plus `claimgate-replay` (this dead
//!   letter's position) and `claimgate-replay-source` (the original line's position);
//! - still malformed, for another reason than its dead letter gives: a new dead letter with the new
//!   reason goes to `--from`, with the same headers; for the same reason, it is left in place (a copy
//!   would say nothing new, and a replay run again would copy its own copies);
//! - no original bytes to send (a null message, an oversized one whose dead letter holds only its first
//!   bytes, an output the broker refused): counted as not replayable, left where it is.
//!
//! **Nothing lost, nothing sent twice**: every batch is one Kafka transaction holding its records and
//! the replay's position on `--from` (the group `--group`, by default named after `--from`, `--to` and
//! `--where`), and the transactional id is the group's, so a replay that is interrupted — killed,
//! crashed, the broker gone — and run again aborts the open batch and resumes after the last committed
//! one. Readers of `--to` must read committed records (`claimgate stream` does). The same command run
//! again later replays only dead letters that arrived since.
//!
//! `--dry-run` reads and counts, produces nothing and moves no position.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::tables::properties;
use crate::io::clock;
use crate::io::kafka::{Context as KafkaContext, KafkaConfig};
use claimgate::record::{Claim, DeadLetter};

/// The header that marks a replayed record: the dead letter's `topic/partition@offset`.
pub const REPLAY_HEADER: &str = "claimgate-replay";
/// The header with the original line's position (the dead letter's `source`).
pub const SOURCE_HEADER: &str = "claimgate-replay-source";

const TIMEOUT: Duration = Duration::from_secs(30);

/// Arguments of `claimgate replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Bootstrap brokers.
    #[arg(long, value_name = "HOST:PORT")]
    pub brokers: String,
    /// The dead-letter topic to read.
    #[arg(long, value_name = "TOPIC", default_value = "claims.dlq")]
    pub from: String,
    /// The claims topic to send the lines back to.
    #[arg(long, value_name = "TOPIC", default_value = "claims")]
    pub to: String,
    /// Only dead letters with this value (repeat: all must hold). Fields: `field` (the field at fault,
    /// `-` for none), `error` (a part of the reason), `source` (a prefix of the original position, e.g.
    /// `claims/3`), or any member of the original line (`fixmedins_code=H11010500001`).
    #[arg(long = "where", value_name = "FIELD=VALUE")]
    pub filters: Vec<String>,
    /// Count what would be replayed; send nothing, move no position.
    #[arg(long)]
    pub dry_run: bool,
    /// Consumer group (and transactional id) holding this replay's position; default named after
    /// --from, --to and --where, so the same replay run again resumes.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Dead letters per transaction.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// A librdkafka property.
    #[arg(short = 'X', value_name = "NAME=VALUE")]
    pub property: Vec<String>,
    /// Test hook: abort the process after producing this many records, inside an open transaction.
    #[arg(long, hide = true)]
    pub crash_after: Option<u64>,
}

/// One `--where`.
#[derive(Debug)]
enum Filter {
    Field(String),
    Error(String),
    Source(String),
    Member(String, String),
}

impl Filter {
    fn parse(text: &str) -> Result<Filter> {
        let Some((k, v)) = text.split_once('=') else { bail!("--where {text}: expected FIELD=VALUE") };
        let (k, v) = (k.trim(), v.trim().to_owned());
        if k.is_empty() {
            bail!("--where {text}: no field name");
        }
        Ok(match k {
            "field" => Filter::Field(v),
            "error" => Filter::Error(v),
            "source" => Filter::Source(v),
            other => Filter::Member(other.to_owned(), v),
        })
    }

    fn holds(&self, dl: &DeadLetter<'_>, raw: Option<&[u8]>) -> bool {
        match self {
            Filter::Field(v) => dl.field.as_deref().unwrap_or("-") == v,
            Filter::Error(v) => dl.error.contains(v.as_str()),
            Filter::Source(v) => dl.source.starts_with(v.as_str()),
            Filter::Member(k, v) => raw
                .and_then(|r| serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(r).ok())
                .and_then(|m| m.get(k).cloned())
                .is_some_and(|m| match m {
                    serde_json::Value::String(s) => s.trim() == v,
                    other => serde_json::from_str::<serde_json::Value>(v).is_ok_and(|x| x == other),
                }),
        }
    }
}

/// What became of the dead letters read.
#[derive(Default, Debug)]
struct Counts {
    read: u64,
    replayed: u64,
    still_malformed: u64,
    unchanged: u64,
    not_replayable: u64,
    not_selected: u64,
    not_dead_letters: u64,
}

/// The default group: the same replay (topics and filters) resumes; another one starts afresh.
fn default_group(args: &ReplayArgs) -> String {
    let mut filters: Vec<&str> = args.filters.iter().map(|s| s.trim()).collect();
    filters.sort_unstable();
    // CRC-32, not std's hasher: the name must stay the same across releases, or a replay run again
    // after an upgrade would start from the beginning.
    format!("claimgate-replay.{}.{}.{:08x}", args.from, args.to, crc32fast::hash(filters.join("\n").as_bytes()))
}

/// Runs `claimgate replay`.
pub fn run(args: ReplayArgs) -> Result<()> {
    let started = Instant::now();
    let filters: Vec<Filter> = args.filters.iter().map(|f| Filter::parse(f)).collect::<Result<_>>()?;
    if args.batch == 0 {
        bail!("--batch: at least 1");
    }
    if args.from == args.to {
        bail!("--from and --to are both `{}`", args.from);
    }
    let group = args.group.clone().unwrap_or_else(|| default_group(&args));
    let kafka = KafkaConfig { brokers: args.brokers.clone(), properties: properties(&args.property)? };
    let consumer: BaseConsumer<KafkaContext> = kafka
        .bulk_reader(&group, &[("auto.offset.reset", "earliest")])
        .create_with_context(KafkaContext { client: "replay" })
        .context("cannot create the dead-letter reader")?;

    // Where this replay stopped (or the beginning), and the ends now: what arrives later — the dead
    // letters this replay appends among them — is for the next replay.
    let meta = consumer.fetch_metadata(Some(&args.from), TIMEOUT).context("cannot read the topics' metadata")?;
    let partitions: Vec<i32> = meta
        .topics()
        .iter()
        .filter(|t| t.name() == args.from && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        bail!("--from {}: no such topic", args.from);
    }
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition(&args.from, *p);
    }
    let committed = consumer.committed_offsets(tpl, TIMEOUT).context("cannot read the replay's position")?;
    let mut ends: Vec<(i32, i64)> = Vec::new();
    let mut assign = TopicPartitionList::new();
    for p in &partitions {
        let (low, high) = consumer.fetch_watermarks(&args.from, *p, TIMEOUT)?;
        let from = match committed.find_partition(&args.from, *p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o.max(low),
            _ => low,
        };
        if from < high {
            ends.push((*p, high));
            assign.add_partition_offset(&args.from, *p, Offset::Offset(from))?;
        }
    }
    let producer = if args.dry_run {
        None
    } else {
        let p: BaseProducer<KafkaContext> = kafka
            .client(&[
                ("transactional.id", &group),
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("allow.auto.create.topics", "false"),
            ])
            .create_with_context(KafkaContext { client: "replay" })
            .context("cannot create the replay's producer")?;
        // Fences a crashed run of the same replay and aborts its open transaction.
        p.init_transactions(TIMEOUT).context("cannot initialise transactions")?;
        Some(p)
    };
    let mut counts = Counts::default();
    if !ends.is_empty() {
        consumer.assign(&assign)?;
        replay(&args, &filters, &consumer, producer.as_ref(), &mut ends, &mut counts)?;
    }
    let verb = if args.dry_run { "would replay" } else { "replayed" };
    println!(
        "{} → {} (group {group}{}): {} dead letters read in {:.1} s",
        args.from,
        args.to,
        if args.dry_run { ", dry run: nothing sent" } else { "" },
        counts.read,
        started.elapsed().as_secs_f64()
    );
    println!("  {verb:<22} {:>8}", counts.replayed);
    println!("  {:<22} {:>8}  (back to {} with the new reason)", "still malformed", counts.still_malformed, args.from);
    println!("  {:<22} {:>8}  (the same reason as its dead letter: left in place)", "unchanged", counts.unchanged);
    println!(
        "  {:<22} {:>8}  (no original bytes: a null or oversized message stays at its source offset)",
        "not replayable", counts.not_replayable
    );
    println!("  {:<22} {:>8}", "not selected by --where", counts.not_selected);
    println!("  {:<22} {:>8}", "not dead letters", counts.not_dead_letters);
    Ok(())
}

fn replay(
    args: &ReplayArgs,
    filters: &[Filter],
    consumer: &BaseConsumer<KafkaContext>,
    producer: Option<&BaseProducer<KafkaContext>>,
    ends: &mut Vec<(i32, i64)>,
    counts: &mut Counts,
) -> Result<()> {
    let mut produced = 0u64;
    let mut open = false;
    let mut in_batch = 0usize;
    let mut next: Vec<(i32, i64)> = Vec::new();
    let now = clock::now_text();
    let mut buf = Vec::new();
    let mut idle = Instant::now();
    while !ends.is_empty() {
        let mut quiet = false;
        let msg = match consumer.poll(Duration::from_millis(200)) {
            None => {
                if idle.elapsed() > TIMEOUT {
                    bail!("no record from {} for {TIMEOUT:?} before its end", args.from);
                }
                // Commit what is open: the dead letters this batch appended to --from hold back what a
                // committed read of --from sees until then.
                quiet = true;
                None
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                ends.retain(|e| e.0 != p);
                None
            }
            Some(Err(e)) => bail!("cannot read {}: {e}", args.from),
            Some(Ok(m)) => Some(m),
        };
        if let Some(msg) = msg {
            idle = Instant::now();
            let (p, offset) = (msg.partition(), msg.offset());
            let Some(end) = ends.iter().find(|e| e.0 == p).map(|e| e.1) else { continue };
            if offset >= end {
                ends.retain(|e| e.0 != p);
                continue;
            }
            if offset + 1 >= end {
                ends.retain(|e| e.0 != p);
            }
            counts.read += 1;
            let here = format!("{}/{p}@{offset}", args.from);
            match msg.payload().and_then(|b| serde_json::from_slice::<DeadLetter<'_>>(b).ok()) {
                None => counts.not_dead_letters += 1,
                Some(dl) => {
                    let raw = dl.raw_bytes();
                    let oversized = dl.error.contains("exceeds limits.max_message_bytes");
                    // Not replayable whatever the filter says: its line is not here to be read.
                    if raw.is_none() || oversized {
                        counts.not_replayable += 1;
                    } else if !filters.iter().all(|f| f.holds(&dl, raw.as_deref())) {
                        counts.not_selected += 1;
                    } else if let Some(raw) = raw {
                        let mut headers = msg.headers().map(|h| h.detach()).unwrap_or_else(OwnedHeaders::new);
                        headers = headers
                            .insert(Header { key: REPLAY_HEADER, value: Some(here.as_bytes()) })
                            .insert(Header { key: SOURCE_HEADER, value: Some(dl.source.as_bytes()) });
                        let (topic, payload): (&str, &[u8]) = match Claim::parse(&raw) {
                            Ok(_) => {
                                counts.replayed += 1;
                                (&args.to, &raw)
                            }
                            Err(m) if m.message == dl.error && m.field == dl.field.as_deref() => {
                                // Nothing new to say: a copy would only repeat it (and a replay run
                                // again, after an interruption, would copy its own copies).
                                counts.unchanged += 1;
                                ("", &[])
                            }
                            Err(m) => {
                                counts.still_malformed += 1;
                                buf.clear();
                                DeadLetter::new(&m.message, m.field, &here, &raw, &now).write(&mut buf);
                                (&args.from, &buf)
                            }
                        };
                        if let Some(producer) = producer.filter(|_| !topic.is_empty()) {
                            if !open {
                                producer.begin_transaction().context("cannot begin a transaction")?;
                                open = true;
                            }
                            let mut record: BaseRecord<'_, [u8], [u8]> =
                                BaseRecord::to(topic).payload(payload).headers(headers);
                            if let Some(k) = msg.key() {
                                record = record.key(k);
                            }
                            send(producer, record)?;
                            produced += 1;
                            if args.crash_after.is_some_and(|n| produced >= n) {
                                // The test of an interrupted replay: no commit, no abort, no goodbye.
                                std::process::abort();
                            }
                        }
                    }
                }
            }
            match next.iter_mut().find(|n| n.0 == p) {
                Some(n) => n.1 = offset + 1,
                None => next.push((p, offset + 1)),
            }
            in_batch += 1;
        }
        if in_batch >= args.batch || ((ends.is_empty() || quiet) && in_batch > 0) {
            if let Some(producer) = producer {
                commit(args, consumer, producer, &next, open)?;
            }
            open = false;
            in_batch = 0;
        }
    }
    Ok(())
}

/// Produces one record, waiting while the producer's queue is full.
fn send(producer: &BaseProducer<KafkaContext>, mut record: BaseRecord<'_, [u8], [u8]>) -> Result<()> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(50));
            }
            Err((e, _)) => bail!("cannot send: {e}"),
        }
    }
}

/// Commits the batch's records with the replay's position on `--from`, in one transaction.
fn commit(
    args: &ReplayArgs,
    consumer: &BaseConsumer<KafkaContext>,
    producer: &BaseProducer<KafkaContext>,
    next: &[(i32, i64)],
    open: bool,
) -> Result<()> {
    if !open {
        producer.begin_transaction().context("cannot begin a transaction")?;
    }
    let mut offsets = TopicPartitionList::new();
    for (p, o) in next {
        offsets.add_partition_offset(&args.from, *p, Offset::Offset(*o))?;
    }
    let gm = consumer.group_metadata().context("no consumer group metadata")?;
    producer
        .send_offsets_to_transaction(&offsets, &gm, TIMEOUT)
        .and_then(|()| producer.commit_transaction(TIMEOUT))
        .context("cannot commit the replay's transaction (run the same replay again: it resumes after the last committed batch)")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_select_by_the_dead_letter_and_the_original_line() {
        let d = DeadLetter::new(
            "field `fee_ocur_time`: not a time",
            Some("fee_ocur_time"),
            "claims/3@18",
            b"",
            "2026-11-30 00:00:00.000",
        );
        let raw = br#"{"fixmedins_code":"H11010500001","med_type":11}"#;
        let holds = |f: &str| Filter::parse(f).unwrap().holds(&d, Some(raw));
        assert!(holds("field=fee_ocur_time"));
        assert!(!holds("field=-"));
        assert!(holds("error=not a time"));
        assert!(holds("source=claims/3"));
        assert!(!holds("source=claims/4"));
        assert!(holds("fixmedins_code=H11010500001"));
        assert!(holds("med_type=11"));
        assert!(!holds("fixmedins_code=H11010500002"));
        assert!(!Filter::parse("x=1").unwrap().holds(&d, Some(b"not json")));
        assert!(Filter::parse("novalue").is_err());
    }

    #[test]
    fn the_default_group_is_the_same_for_the_same_replay_only() {
        let args = |filters: &[&str]| ReplayArgs {
            brokers: String::new(),
            from: "claims.dlq".into(),
            to: "claims".into(),
            filters: filters.iter().map(|s| s.to_string()).collect(),
            dry_run: false,
            group: None,
            batch: 1,
            property: vec![],
            crash_after: None,
        };
        assert_eq!(default_group(&args(&["a=1", "b=2"])), default_group(&args(&["b=2", "a=1"])));
        assert_ne!(default_group(&args(&["a=1"])), default_group(&args(&[])));
    }
}
