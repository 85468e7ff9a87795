//! `claimgate tables sync`: the nightly registry sync. Takes a registry export (CSV or JSON Lines,
//! `io::registry`) and what the status topic holds, and publishes only the difference, in one
//! transaction (`io::kafka::status_writer`):
//!
//! - a code in the export that the topic does not hold: **added** (version 1);
//! - a code whose name, kind or registrations differ: **changed** (held version + 1), its status
//!   periods kept as held — they come from `score` and institution decisions, never from the registry;
//! - a code the topic holds and the export does not: **removed** — a tombstone, unless the record holds
//!   status periods: then it is kept with no registration (version + 1), so that a terminated person
//!   who leaves the registry stays terminated (a tombstone would let an emergency line under the code
//!   pass as merely unregistered);
//! - the rest: **unchanged**, not sent.
//!
//! `--dry-run` prints the difference by kind and publishes nothing (it does not fence other writers).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;

use super::tables::properties;
use crate::io::kafka::KafkaConfig;
use crate::io::kafka::status_writer::{self, StatusTopics, StatusWriter, Write};
use crate::io::registry;
use claimgate::record::PractitionerText;

/// Arguments of `tables sync`.
#[derive(Args, Debug)]
pub struct SyncArgs {
    /// Bootstrap brokers, host:port[,host:port…].
    #[arg(long, value_name = "HOST:PORT")]
    pub brokers: String,
    /// The registry export: CSV (the national download's columns by default) or JSON Lines (`.jsonl`).
    #[arg(long, value_name = "FILE")]
    pub export: PathBuf,
    /// Map a field to another export's header, e.g. `--column code=工号` (fields: code, name, status,
    /// institution, from, until, kind). Repeatable.
    #[arg(long, value_name = "FIELD=HEADER")]
    pub column: Vec<String>,
    /// Print the difference; publish nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Practitioner status topic.
    #[arg(long, default_value = "practitioners", value_name = "TOPIC")]
    pub topic_practitioners: String,
    /// The status writers' shared transactional id (default `claimgate-status-writer:<practitioners topic>`).
    #[arg(long, value_name = "ID")]
    pub writer_id: Option<String>,
    /// A librdkafka property, e.g. -X security.protocol=SASL_SSL.
    #[arg(short = 'X', value_name = "NAME=VALUE")]
    pub property: Vec<String>,
    /// No summary.
    #[arg(long, short)]
    pub quiet: bool,
}

/// What a sync does, by kind of practitioner.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// New codes.
    pub added: usize,
    /// Codes whose registry fields changed.
    pub changed: usize,
    /// Codes deleted (tombstones).
    pub removed: usize,
    /// Codes gone from the registry, kept for their status periods.
    pub kept_for_periods: usize,
    /// Codes as held.
    pub unchanged: usize,
}

/// The plan of a sync: the records to write, and the counts by kind.
pub struct Plan {
    /// Records to write, in code order (removals last).
    pub writes: Vec<Write>,
    /// Counts by kind (`doctor`, `nurse`, …, `legacy`).
    pub by_kind: BTreeMap<String, Counts>,
}

fn kind_of(code: &str, kind: Option<&str>) -> String {
    kind.map(str::to_owned).unwrap_or_else(|| {
        claimgate::record::PractitionerCode::parse(code)
            .ok()
            .and_then(|c| c.kind())
            .map_or("legacy".to_owned(), |k| k.as_str().to_owned())
    })
}

/// Plans a sync of `export` over `held`.
pub fn plan(export: &registry::Export, held: &mut status_writer::HeldState) -> Result<Plan> {
    let mut by_kind: BTreeMap<String, Counts> = BTreeMap::new();
    let mut writes = Vec::new();
    for (code, t) in &export.people {
        let counts = by_kind.entry(kind_of(code, t.kind.as_deref())).or_default();
        let h = held.practitioners.get(code);
        if h.is_some_and(|h| h.registry == status_writer::registry_digest(t)) {
            counts.unchanged += 1;
            continue;
        }
        let is_new = h.is_none();
        let record = PractitionerText {
            periods: h.and_then(|h| h.periods.as_deref()).map(<[_]>::to_vec).unwrap_or_default(),
            version: 0,
            ..t.clone()
        };
        match status_writer::practitioner_write(&mut held.practitioners, &record, None)? {
            Some(w) => {
                writes.push(w);
                if is_new {
                    counts.added += 1;
                } else {
                    counts.changed += 1;
                }
            }
            None => counts.unchanged += 1,
        }
    }
    let gone: Vec<String> = held.practitioners.keys().filter(|c| !export.people.contains_key(*c)).cloned().collect();
    let mut gone = gone;
    gone.sort();
    for code in gone {
        let counts = by_kind.entry(kind_of(&code, None)).or_default();
        let Some(h) = held.practitioners.get(&code) else { continue };
        match &h.periods {
            Some(periods) => {
                let record = PractitionerText {
                    code: code.clone(),
                    name: None,
                    kind: None,
                    registrations: vec![],
                    periods: periods.to_vec(),
                    version: 0,
                };
                if status_writer::registry_digest(&record) == h.registry {
                    counts.unchanged += 1;
                } else if let Some(w) = status_writer::practitioner_write(&mut held.practitioners, &record, None)? {
                    writes.push(w);
                    counts.kept_for_periods += 1;
                }
            }
            None => {
                held.practitioners.remove(&code);
                writes.push(Write { practitioner: true, key: code, value: None });
                counts.removed += 1;
            }
        }
    }
    Ok(Plan { writes, by_kind })
}

/// Runs `tables sync`.
pub fn run(args: SyncArgs) -> Result<()> {
    let started = Instant::now();
    let kafka = KafkaConfig { brokers: args.brokers.clone(), properties: properties(&args.property)? };
    let export = registry::read(&args.export, &args.column)?;
    if export.people.is_empty() {
        bail!("{}: no registration in the export: refusing to remove every code", args.export.display());
    }
    // The sync writes practitioners only: the institutions topic is neither read nor written.
    let topics = StatusTopics { practitioners: args.topic_practitioners.clone(), institutions: None };
    let (plan, written) = if args.dry_run {
        let mut held = status_writer::read_held(&kafka, &topics)?;
        (plan(&export, &mut held)?, 0)
    } else {
        let writer_id = args.writer_id.clone().unwrap_or_else(|| topics.default_writer_id());
        let writer = StatusWriter::open(&kafka, &topics, &writer_id)?;
        let mut held = writer.held()?;
        let plan = plan(&export, &mut held)?;
        let written = writer.commit(&plan.writes)?;
        (plan, written)
    };
    if !args.quiet {
        println!(
            "{} {}: {} codes in the export{}{}{}",
            if args.dry_run { "dry run, nothing published —" } else { "synced" },
            args.export.display(),
            export.people.len(),
            if export.ended_rows > 0 {
                format!(", {} ended registration rows left out", export.ended_rows)
            } else {
                String::new()
            },
            if export.disciplinary_rows > 0 {
                format!(
                    ", {} rows marked 暂停/终止 (periods come from `score`, not the registry)",
                    export.disciplinary_rows
                )
            } else {
                String::new()
            },
            if export.gb18030 { " (read as GB18030)" } else { "" },
        );
        println!("| kind | added | changed | removed | kept for their periods | unchanged |");
        println!("|---|---:|---:|---:|---:|---:|");
        let mut total = Counts::default();
        for (kind, c) in &plan.by_kind {
            println!(
                "| {kind} | {} | {} | {} | {} | {} |",
                c.added, c.changed, c.removed, c.kept_for_periods, c.unchanged
            );
            total.added += c.added;
            total.changed += c.changed;
            total.removed += c.removed;
            total.kept_for_periods += c.kept_for_periods;
            total.unchanged += c.unchanged;
        }
        println!(
            "| all | {} | {} | {} | {} | {} |",
            total.added, total.changed, total.removed, total.kept_for_periods, total.unchanged
        );
        if !args.dry_run {
            println!(
                "published {written} records to {} in one transaction in {:.1} s",
                args.topic_practitioners,
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
