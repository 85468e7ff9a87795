//! `claimgate score`: from inspection findings to practitioner status (scoring.md; service.md, `score`).
//!
//! Reads the ledger and the practitioner records held, runs the pure engine (`claimgate::score`), and
//! writes one practitioner record per code — the records `review` and `stream` consume — and a
//! Markdown report. The records are built in full before anything is written, and each output goes
//! to a temporary name renamed into place at the end, so a bad ledger line leaves no file behind.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use clap::Args;
use serde_json::{Map, Value};

use super::review::load_profile;
use super::tables::properties;
use crate::io::files::{self, Output};
use crate::io::kafka::KafkaConfig;
use crate::io::kafka::status_writer::StatusTopics;
use claimgate::record::PractitionerText;
use claimgate::score::report::count;
use claimgate::score::{Ledger, Scored, Scoring, Sources, markdown, score};

/// Arguments of `claimgate score`.
#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// Profile whose `[scoring]` rules apply: a shipped name (national-2024, huaian-2020, lanzhou-2014)
    /// or a TOML file.
    #[arg(long, default_value = claimgate::profile::DEFAULT, value_name = "NAME|FILE")]
    pub profile: String,
    /// The ledger: one event per line (JSON Lines; `.gz` / `.zst` by ending; `-` for standard input),
    /// in any order.
    #[arg(long, value_name = "FILE")]
    pub ledger: PathBuf,
    /// Practitioner records held now (JSON Lines): the derived periods are merged into them.
    #[arg(long, value_name = "FILE")]
    pub practitioners: Option<PathBuf>,
    /// Write the practitioner records here (JSON Lines; `-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Write the report here (Markdown).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Also publish the changed records to the practitioners topic, after the file is written: the
    /// derived periods merged onto the records the topic holds, at the held version + 1, in one
    /// transaction (other status writers fenced).
    #[arg(long, requires = "brokers")]
    pub publish: bool,
    /// Bootstrap brokers for --publish.
    #[arg(long, value_name = "HOST:PORT")]
    pub brokers: Option<String>,
    /// The practitioners topic for --publish.
    #[arg(long, default_value = "practitioners", value_name = "TOPIC")]
    pub topic_practitioners: String,
    /// The status writers' shared transactional id (default `claimgate-status-writer:<practitioners topic>`).
    #[arg(long, value_name = "ID", requires = "publish")]
    pub writer_id: Option<String>,
    /// A librdkafka property for --publish, e.g. -X security.protocol=SASL_SSL.
    #[arg(short = 'X', value_name = "NAME=VALUE")]
    pub property: Vec<String>,
    /// A working-day calendar to add to the profile's (same format as profiles/calendar/cn-workdays.toml),
    /// or a directory whose `*.toml` files are all loaded: next year's State Council holiday schedule,
    /// the day it is published. A year listed here replaces the shipped one. Repeatable.
    #[arg(long, value_name = "FILE|DIR", env = "CLAIMGATE_CALENDAR", value_delimiter = ',')]
    pub calendar: Vec<PathBuf>,
    /// No summary (warnings still go to standard error).
    #[arg(long, short)]
    pub quiet: bool,
}

/// The calendar files named by `--calendar`: each file, or each `*.toml` of a directory in name order.
fn calendar_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("--calendar {}: cannot list the directory", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "toml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

/// Loads the `--calendar` files into the rules' calendar. A year given by two of them is refused (which
/// one is right?); a year that replaces the shipped one is said on standard error.
fn load_calendars(rules: &mut Scoring, paths: &[PathBuf]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let Some(notice) = rules.notice.as_mut() else {
        eprintln!("note: profile {} counts no working days; --calendar is not used", rules.profile);
        return Ok(());
    };
    let mut loaded: std::collections::BTreeMap<i32, String> = std::collections::BTreeMap::new();
    for file in calendar_files(paths)? {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(&file).with_context(|| format!("--calendar {name}: cannot read"))?;
        let cal = claimgate::score::calendar::Calendar::from_toml(&name, &text)
            .with_context(|| format!("--calendar {name}"))?;
        for y in cal.years() {
            if let Some(first) = loaded.insert(y, name.clone()) {
                return Err(anyhow!("--calendar: year {y} is listed by both {first} and {name}"));
            }
        }
        for y in notice.calendar.extend(cal) {
            eprintln!(
                "note: calendar {}: year {y} taken from {name}, not from the shipped calendar",
                notice.calendar.name
            );
        }
    }
    Ok(())
}

/// Lines with their 1-based numbers.
type Numbered = Vec<(u64, Vec<u8>)>;

/// The name of a JSON Lines input and its lines, blank lines left out.
fn read_lines(path: &Path) -> Result<(String, Numbered)> {
    let mut input = files::open(path)?;
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut n = 0u64;
    loop {
        buf.clear();
        if input.reader.read_until(b'\n', &mut buf).with_context(|| format!("cannot read {}", input.name))? == 0 {
            break;
        }
        n += 1;
        while buf.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
            buf.pop();
        }
        if !buf.iter().all(u8::is_ascii_whitespace) {
            out.push((n, buf.clone()));
        }
    }
    Ok((input.name, out))
}

/// Practitioner records as read, and the fields of each that records.md does not define (kept when
/// the record is written again).
#[derive(Default)]
struct Inputs {
    name: Option<String>,
    records: Vec<PractitionerText>,
    extras: Vec<Map<String, Value>>,
}

const KNOWN: [&str; 6] = ["code", "name", "kind", "registrations", "periods", "version"];

fn read_practitioners(path: &Path) -> Result<Inputs> {
    let (name, lines) = read_lines(path)?;
    let mut inputs = Inputs { name: Some(name.clone()), ..Inputs::default() };
    for (n, line) in lines {
        let text = PractitionerText::from_json(&line)
            .and_then(|t| t.validate().map(|_| t))
            .map_err(|e| anyhow!("{name}:{n}: {e}"))?;
        let mut extra: Map<String, Value> = serde_json::from_slice(&line).map_err(|e| anyhow!("{name}:{n}: {e}"))?;
        extra.retain(|k, _| !KNOWN.contains(&k.as_str()));
        inputs.records.push(text);
        inputs.extras.push(extra);
    }
    Ok(inputs)
}

/// One record ready to write: its JSON value.
pub struct Encoded {
    /// The record, one line of JSON.
    pub value: String,
}

/// The records as JSON, with each input record's unknown fields appended in key order.
fn encode(scored: &Scored, extras: &[Map<String, Value>]) -> Result<Vec<Encoded>> {
    scored
        .records
        .iter()
        .map(|r| {
            let mut value = serde_json::to_string(&r.record).context("cannot encode a record")?;
            if let Some(extra) = r.input.and_then(|i| extras.get(i)).filter(|e| !e.is_empty()) {
                value.pop(); // the closing brace of the object serde_json just wrote
                for (k, v) in extra {
                    value.push(',');
                    value.push_str(&serde_json::to_string(k)?);
                    value.push(':');
                    value.push_str(&serde_json::to_string(v)?);
                }
                value.push('}');
            }
            Ok(Encoded { value })
        })
        .collect()
}

/// Runs `claimgate score`.
pub fn run(args: ScoreArgs) -> Result<()> {
    let profile = load_profile(&args.profile)?;
    let mut rules = Scoring::from_profile(&profile)?;
    load_calendars(&mut rules, &args.calendar)?;

    let (ledger_name, lines) = read_lines(&args.ledger)?;
    let ledger = Ledger::parse(lines.iter().map(|(n, l)| (*n, l.as_slice())), &rules)
        .map_err(|e| anyhow!("ledger {ledger_name}: {e}"))?;
    let inputs = match &args.practitioners {
        Some(p) => read_practitioners(p)?,
        None => Inputs::default(),
    };
    let scored = score(&rules, &ledger, &inputs.records).map_err(|e| anyhow!("ledger {ledger_name}: {e}"))?;
    let records = encode(&scored, &inputs.extras)?;

    let mut out = Output::create(&args.out)?;
    for r in &records {
        out.write_all(r.value.as_bytes())?;
        out.write_all(b"\n")?;
    }
    let report = match &args.report {
        Some(path) => {
            let sources = Sources {
                profile: if profile.title.is_empty() {
                    profile.name.clone()
                } else {
                    format!("{} — {}", profile.name, profile.title)
                },
                ledger: ledger_name.clone(),
                practitioners: inputs.name.clone(),
            };
            let mut r = Output::create(path)?;
            r.write_all(markdown(&scored.report, &sources).as_bytes())?;
            Some(r)
        }
        None => None,
    };
    out.finish()?;
    if let Some(r) = report {
        r.finish()?;
    }
    if args.publish {
        let brokers = args.brokers.clone().unwrap_or_default();
        let kafka = KafkaConfig { brokers, properties: properties(&args.property)? };
        let topics = StatusTopics { practitioners: args.topic_practitioners.clone(), institutions: None };
        let writer_id = args.writer_id.clone().unwrap_or_else(|| topics.default_writer_id());
        let changed: Vec<claimgate::record::PractitionerText> =
            scored.records.iter().filter(|r| r.changed).map(|r| r.record.clone()).collect();
        let ids: std::collections::BTreeSet<String> = ledger.events().iter().map(|e| e.id.clone()).collect();
        let p = super::score_publish::publish(&kafka, &topics, &writer_id, &changed, &ids)?;
        if !args.quiet {
            eprintln!(
                "published {} practitioner records to {} in one transaction ({} already as held)",
                p.written, args.topic_practitioners, p.unchanged
            );
        }
    }

    let provisional = scored.report.provisional().count();
    if provisional > 0 {
        let years: std::collections::BTreeSet<i32> =
            scored.report.provisional().flat_map(|(_, d)| d.provisional.iter().copied()).collect();
        let years: Vec<String> = years.iter().map(i32::to_string).collect();
        eprintln!(
            "warning: {} PROVISIONAL: {} notice period crossed {} with no holiday list loaded and was counted on \
             weekends only; load the State Council's schedule with --calendar and run this ledger again{}",
            if provisional == 1 { "1 period is".to_owned() } else { format!("{provisional} periods are") },
            if provisional == 1 { "its" } else { "their" },
            years.join(", "),
            args.report.as_ref().map(|r| format!(" (listed in {})", r.display())).unwrap_or_default()
        );
    }
    if !args.quiet {
        let rep = &scored.report;
        let summary = format!(
            "scored {} under {}: {} written to {} ({} changed, {} new); {} derived; {} ignored{}\n",
            count(rep.events, "event"),
            rules.profile,
            count(rep.records, "record"),
            args.out.display(),
            rep.changed,
            rep.new,
            count(rep.periods(), "period"),
            count(rep.ignored(), "event"),
            args.report.as_ref().map(|r| format!(" (see {})", r.display())).unwrap_or_default()
        );
        if args.out == Path::new("-") {
            eprint!("{summary}");
        } else {
            print!("{summary}");
        }
    }
    Ok(())
}
