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
use crate::io::progress::Progress;
use crate::io::{clock, tables};
use claimgate::record::{InstitutionText, PractitionerText};
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
    /// Produce status records to the compacted status topics, keyed by code. Every line is validated
    /// first (a bad line stops before anything is sent); JSON Lines are sent as written (names and
    /// unknown fields kept), a snapshot's records as the table holds them.
    Publish(PublishArgs),
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

/// Validates every line of a status file, then sends them: nothing is sent if a line is bad.
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

fn publish(args: PublishArgs) -> Result<()> {
    let started = Instant::now();
    let kafka = KafkaConfig { brokers: args.brokers.clone(), properties: properties(&args.property)? };
    let publisher = Publisher::new(&kafka)?;
    let source = args.tables.source();
    let snapshot = source.snapshot.clone().or_else(|| source.practitioners.clone().filter(|p| tables::is_snapshot(p)));
    if let Some(path) = snapshot {
        let (_, view) = tables::load_snapshot(&path)?;
        for rec in view.practitioner_records() {
            let text = rec.to_text();
            publisher.send(&args.topic_practitioners, text.code.as_bytes(), Some(&serde_json::to_vec(&text)?))?;
        }
        for rec in view.institutions().iter() {
            let text = rec.to_text();
            publisher.send(&args.topic_institutions, text.code.as_bytes(), Some(&serde_json::to_vec(&text)?))?;
        }
    } else {
        let Some(p) = &source.practitioners else {
            anyhow::bail!("nothing to publish: give --practitioners and/or --institutions, or --snapshot");
        };
        publish_file(&publisher, p, &args.topic_practitioners, |line| {
            let rec = PractitionerText::from_json(line).and_then(|t| t.validate()).map_err(|e| e.to_string())?;
            Ok(rec.code.to_string())
        })?;
        if let Some(i) = &source.institutions {
            publish_file(&publisher, i, &args.topic_institutions, |line| {
                let rec = InstitutionText::from_json(line).and_then(|t| t.validate()).map_err(|e| e.to_string())?;
                Ok(rec.code.to_string())
            })?;
        }
    }
    let delivered = publisher.finish(std::time::Duration::from_secs(120))?;
    if !args.quiet {
        eprintln!(
            "published {delivered} status records to {} / {} in {:.1} s",
            args.topic_practitioners,
            args.topic_institutions,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
