//! `claimgate tables`: validate registry exports and write the binary snapshot; show a snapshot's
//! header.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::review::TableArgs;
use crate::io::files::{self, Chunker, Output, lines};
use crate::io::kafka::KafkaConfig;
use crate::io::kafka::publish::Publisher;
use crate::io::kafka::status_writer::{self, StatusTopics, StatusWriter};
use crate::io::progress::Progress;
use crate::io::{clock, tables};
use claimgate::record::{InstitutionText, MappingText, PractitionerText};
use claimgate::table::snapshot;

/// `claimgate tables …`
#[derive(Subcommand, Debug)]
pub enum TablesCmd {
    /// Validate practitioner and institution records and write a binary snapshot. A bad line stops the
    /// build with its file name and line number; nothing is written then.
    Build(BuildArgs),
    /// Print what a snapshot holds (its header); with --load, load all of it (checksum checked) and
    /// time that; with --verify, also check every offset of the table.
    Inspect {
        /// The snapshot file.
        snapshot: PathBuf,
        /// Load the whole snapshot (checksum checked, as `review` and `stream` load it) and report the
        /// time it took.
        #[arg(long)]
        load: bool,
        /// After loading, check every record offset of the practitioner table (a second or so at 12
        /// million codes; a load trusts the checksum instead).
        #[arg(long)]
        verify: bool,
    },
    /// Import registry exports in CSV (registrations, status periods, institution periods) into the JSON
    /// Lines records that `build`, `review` and `publish` read.
    Import(super::import::ImportArgs),
    /// Produce status records to the compacted status topics, keyed by code, in one transaction. Every
    /// line is validated first (a bad line stops before anything is sent). Each record replaces the one
    /// held whole; only records whose content differs from what the topic holds are sent, each with the
    /// held version + 1 (never the file's); names and unknown fields are kept. A snapshot's records are
    /// sent as the table holds them.
    Publish(PublishArgs),
    /// The nightly registry sync: publish the difference between a registry export (CSV or JSON Lines)
    /// and what the practitioner topic holds — added and changed records at the held version + 1, their
    /// status periods kept; tombstones for codes gone from the registry (a code with status periods is
    /// kept without registrations instead); nothing for unchanged codes. One transaction.
    Sync(super::sync::SyncArgs),
    /// Write what the status topics hold (each code's winning record, as written) to JSON Lines files:
    /// for an audit, or to `review` on exactly the records the stream decides with.
    Dump(DumpArgs),
}

/// Arguments of `tables dump`.
#[derive(Args, Debug)]
pub struct DumpArgs {
    /// Bootstrap brokers, host:port[,host:port…].
    #[arg(long, value_name = "HOST:PORT")]
    pub brokers: String,
    /// Practitioner status topic.
    #[arg(long, default_value = "practitioners", value_name = "TOPIC")]
    pub topic_practitioners: String,
    /// Institution status topic.
    #[arg(long, default_value = "institutions", value_name = "TOPIC")]
    pub topic_institutions: String,
    /// Write the practitioner records here.
    #[arg(long, value_name = "FILE")]
    pub out_practitioners: PathBuf,
    /// Write the institution records here.
    #[arg(long, value_name = "FILE")]
    pub out_institutions: Option<PathBuf>,
    /// A librdkafka property, e.g. -X security.protocol=SASL_SSL.
    #[arg(short = 'X', value_name = "NAME=VALUE")]
    pub property: Vec<String>,
}

/// Arguments of `tables publish`.
#[derive(Args, Debug)]
pub struct PublishArgs {
    /// Bootstrap brokers, host:port[,host:port…].
    #[arg(long, value_name = "HOST:PORT")]
    pub brokers: String,
    #[command(flatten)]
    pub tables: TableArgs,
    /// Practitioner status topic.
    #[arg(long, default_value = "practitioners", value_name = "TOPIC")]
    pub topic_practitioners: String,
    /// Institution status topic.
    #[arg(long, default_value = "institutions", value_name = "TOPIC")]
    pub topic_institutions: String,
    /// Local-id mapping records (JSON Lines) to publish, keyed `institution|local_id`.
    #[arg(long, value_name = "FILE")]
    pub mappings: Option<std::path::PathBuf>,
    /// Local-id mapping topic.
    #[arg(long, default_value = "practitioner-mappings", value_name = "TOPIC")]
    pub topic_mappings: String,
    /// The status writers' shared transactional id (default `claimgate-status-writer:<practitioners
    /// topic>`): every writer of the same topics must use the same one, so that they fence each other.
    #[arg(long, value_name = "ID")]
    pub writer_id: Option<String>,
    /// A librdkafka property, e.g. -X security.protocol=SASL_SSL.
    #[arg(short = 'X', value_name = "NAME=VALUE")]
    pub property: Vec<String>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Arguments of `tables build`.
#[derive(Args, Debug)]
pub struct BuildArgs {
    #[command(flatten)]
    pub tables: TableArgs,
    /// Where to write the snapshot.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `claimgate tables …`.
pub fn run(cmd: TablesCmd) -> Result<()> {
    match cmd {
        TablesCmd::Build(args) => build(args),
        TablesCmd::Publish(args) => publish(args),
        TablesCmd::Import(args) => super::import::run(args),
        TablesCmd::Sync(args) => super::sync::run(args),
        TablesCmd::Dump(args) => dump(args),
        TablesCmd::Inspect { snapshot: path, load, verify } if load || verify => {
            let started = Instant::now();
            let (h, view) = tables::load_snapshot(&path)?;
            let loaded = started.elapsed().as_secs_f64();
            if verify {
                let started = Instant::now();
                view.base().verify().map_err(|e| anyhow::anyhow!("{}: corrupt snapshot: {e}", path.display()))?;
                println!("{}: every offset checked in {:.2} s", path.display(), started.elapsed().as_secs_f64());
            }
            println!(
                "{}: loaded, checksum checked, in {:.2} s: {} practitioners, {} institutions, epoch {} (written {} by {})",
                path.display(),
                loaded,
                view.practitioner_count(),
                view.institution_count(),
                view.epoch(),
                h.created_at,
                h.writer
            );
            Ok(())
        }
        TablesCmd::Inspect { snapshot: path, .. } => {
            let file = std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
            let h = snapshot::read_header(std::io::BufReader::new(file))
                .with_context(|| format!("cannot read {}", path.display()))?;
            println!("format       {}", snapshot::FORMAT_VERSION);
            println!("writer       {}", h.writer);
            println!("created_at   {}", h.created_at);
            println!("epoch        {}", h.epoch);
            println!("practitioners {}", h.practitioners);
            println!("institutions {}", h.institutions);
            Ok(())
        }
    }
}

fn build(args: BuildArgs) -> Result<()> {
    let started = Instant::now();
    let progress = Progress::new(args.quiet);
    let loaded = args.tables.source().load(&progress)?;
    let load_secs = started.elapsed().as_secs_f64();
    let mut out = Output::create(&args.out)?;
    let header = snapshot::write(&mut out, &loaded.view, &clock::now_secs_text())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    out.flush()?;
    out.finish()?;
    eprintln!(
        "{}: {} practitioners, {} institutions, epoch {} (loaded {} in {:.1} s, written in {:.1} s)",
        args.out.display(),
        header.practitioners,
        header.institutions,
        header.epoch,
        loaded.description,
        load_secs,
        started.elapsed().as_secs_f64() - load_secs
    );
    Ok(())
}

/// Parses `-X name=value` properties.
pub fn properties(props: &[String]) -> Result<std::collections::BTreeMap<String, String>> {
    props
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_owned(), v.to_owned())),
            None => anyhow::bail!("-X {p}: expected NAME=VALUE"),
        })
        .collect()
}

/// Validates every line of a status file, then sends them: nothing is sent if a line is bad. Used for
/// the mapping topic (versions as written; status records go through [`status_writer`]).
fn publish_file(
    publisher: &Publisher,
    path: &std::path::Path,
    topic: &str,
    validate: impl Fn(&[u8]) -> Result<String, String>,
) -> Result<()> {
    for pass in ["validate", "send"] {
        let input = files::open(path)?;
        let name = input.name.clone();
        for chunk in Chunker::new(input.reader, 4 << 20) {
            let chunk = chunk.with_context(|| format!("cannot read {name}"))?;
            for (n, line) in lines(&chunk) {
                let key = validate(line).map_err(|e| anyhow::anyhow!("{name}:{n}: {e}"))?;
                if pass == "send" {
                    publisher.send(topic, key.as_bytes(), Some(line))?;
                }
            }
        }
    }
    Ok(())
}

/// One status record of a file, parsed and checked: (line, practitioner or institution write).
type Planned = Option<status_writer::Write>;

/// Reads a status file and plans its writes over `held`, calling `each` for every record that
/// changes. A bad line stops with its file and line.
fn plan_file(
    path: &std::path::Path,
    practitioner: bool,
    held: &mut status_writer::HeldState,
    mut each: impl FnMut(Planned) -> Result<()>,
) -> Result<()> {
    let input = files::open(path)?;
    let name = input.name.clone();
    for chunk in Chunker::new(input.reader, 4 << 20) {
        let chunk = chunk.with_context(|| format!("cannot read {name}"))?;
        for (n, line) in lines(&chunk) {
            let at = |e: String| anyhow::anyhow!("{name}:{n}: {e}");
            let planned = if practitioner {
                let t = PractitionerText::from_json(line).map_err(|e| at(e.to_string()))?;
                t.validate().map_err(|e| at(e.to_string()))?;
                status_writer::practitioner_write(&mut held.practitioners, &t, Some(line))?
            } else {
                let t = InstitutionText::from_json(line).map_err(|e| at(e.to_string()))?;
                t.validate().map_err(|e| at(e.to_string()))?;
                status_writer::institution_write(&mut held.institutions, &t, Some(line))?
            };
            each(planned)?;
        }
    }
    Ok(())
}

fn publish(args: PublishArgs) -> Result<()> {
    let started = Instant::now();
    let kafka = KafkaConfig { brokers: args.brokers.clone(), properties: properties(&args.property)? };
    let source = args.tables.source();
    let snapshot = source.snapshot.clone().or_else(|| source.practitioners.clone().filter(|p| tables::is_snapshot(p)));
    if snapshot.is_none() && source.practitioners.is_none() && source.institutions.is_none() && args.mappings.is_none()
    {
        anyhow::bail!("nothing to publish: give --practitioners and/or --institutions, or --snapshot, or --mappings");
    }
    let topics = StatusTopics {
        practitioners: args.topic_practitioners.clone(),
        institutions: Some(args.topic_institutions.clone()),
    };
    let mut written = 0;
    let mut unchanged = 0usize;
    if snapshot.is_some() || source.practitioners.is_some() || source.institutions.is_some() {
        // Fence every other writer of these topics, then read what they hold: versions come from there.
        let writer_id = args.writer_id.clone().unwrap_or_else(|| topics.default_writer_id());
        let writer = StatusWriter::open(&kafka, &topics, &writer_id)?;
        let held = writer.held()?;
        // Two passes over the inputs: the first validates everything and counts the changes (a bad line
        // sends nothing; the batch's size goes in every record's header), the second sends.
        let (mut count_state, mut send_state) = (clone_held(&held), held);
        let mut total = 0usize;
        let count = |p: Planned| -> Result<()> {
            if p.is_some() {
                total += 1;
            } else {
                unchanged += 1;
            }
            Ok(())
        };
        let view = match &snapshot {
            Some(path) => Some(tables::load_snapshot(path)?.1),
            None => None,
        };
        plan_all(&source, view.as_ref(), &mut count_state, count)?;
        let mut batch = writer.begin(total)?;
        plan_all(&source, view.as_ref(), &mut send_state, |p| match p {
            Some(w) => batch.send(&w),
            None => Ok(()),
        })?;
        written = batch.commit()?;
    }
    let mut mappings = 0;
    if let Some(m) = &args.mappings {
        let publisher = Publisher::new(&kafka)?;
        publish_file(&publisher, m, &args.topic_mappings, |line| {
            MappingText::from_json(line).and_then(|t| t.validate()).map(|r| r.key()).map_err(|e| e.to_string())
        })?;
        mappings = publisher.finish(std::time::Duration::from_secs(120))?;
    }
    if !args.quiet {
        eprintln!(
            "published {written} changed status records to {} / {} in one transaction ({unchanged} unchanged, not sent){} in {:.1} s",
            args.topic_practitioners,
            args.topic_institutions,
            if mappings > 0 {
                format!("; {mappings} mapping records to {}", args.topic_mappings)
            } else {
                String::new()
            },
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn dump(args: DumpArgs) -> Result<()> {
    let kafka = KafkaConfig { brokers: args.brokers.clone(), properties: properties(&args.property)? };
    let mut outs = vec![(&args.topic_practitioners, &args.out_practitioners, true)];
    if let Some(i) = &args.out_institutions {
        outs.push((&args.topic_institutions, i, false));
    }
    for (topic, path, practitioner) in outs {
        let (records, invalid) = status_writer::dump(&kafka, topic, practitioner)?;
        let mut out = Output::create(path)?;
        for r in &records {
            out.write_all(r)?;
            out.write_all(b"\n")?;
        }
        out.finish()?;
        eprintln!(
            "{}: {} records from {topic}{}",
            path.display(),
            records.len(),
            if invalid > 0 { format!(" ({invalid} invalid records skipped)") } else { String::new() }
        );
    }
    Ok(())
}

fn clone_held(h: &status_writer::HeldState) -> status_writer::HeldState {
    status_writer::HeldState {
        practitioners: h.practitioners.clone(),
        institutions: h.institutions.clone(),
        invalid: h.invalid,
        full: h.full.clone(),
    }
}

/// Plans every record of the inputs: a snapshot's records as the table holds them, or the files'.
fn plan_all(
    source: &tables::TableSource,
    view: Option<&claimgate::table::View>,
    held: &mut status_writer::HeldState,
    mut each: impl FnMut(Planned) -> Result<()>,
) -> Result<()> {
    if let Some(view) = view {
        for rec in view.practitioner_records() {
            each(status_writer::practitioner_write(&mut held.practitioners, &rec.to_text(), None)?)?;
        }
        for rec in view.institutions().iter() {
            each(status_writer::institution_write(&mut held.institutions, &rec.to_text(), None)?)?;
        }
        return Ok(());
    }
    if let Some(p) = &source.practitioners {
        plan_file(p, true, held, &mut each)?;
    }
    if let Some(i) = &source.institutions {
        plan_file(i, false, held, &mut each)?;
    }
    Ok(())
}
