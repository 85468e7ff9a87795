//! `claimgate score`: from inspection findings to practitioner status (scoring.md; service.md, `score`).
//!
//! Reads the ledger, then the practitioner records held — streamed, never held whole: only the
//! records the ledger touches are kept, the rest are counted for the institution ratio
//! ([`registry`]) — runs the pure engine (`claimgate::score::score_part`), and writes the records that
//! changed (`--out`), every record (`--out-all`, the file `review` reads) and a Markdown report. Each
//! output goes to a temporary name renamed into place at the end, so a bad ledger or practitioner line
//! leaves no file behind.

mod registry;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use clap::Args;

use super::review::load_profile;
use super::tables::properties;
use crate::io::files::{self, Output};
use crate::io::kafka::KafkaConfig;
use crate::io::kafka::status_writer::StatusTopics;
use crate::io::progress::Progress;
use claimgate::record::PractitionerText;
use claimgate::score::report::count;
use claimgate::score::{Census, Ledger, Rest, Scoring, Selection, Sources, Written, markdown, score_part};

/// Arguments of `claimgate score`.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("output").required(true).multiple(true).args(["out", "out_all"])))]
pub struct ScoreArgs {
    /// Profile whose `[scoring]` rules apply: a shipped name (national-2024, huaian-2020, lanzhou-2014)
    /// or a TOML file.
    #[arg(long, default_value = claimgate::profile::DEFAULT, value_name = "NAME|FILE")]
    pub profile: String,
    /// The ledger: one event per line (JSON Lines; `.gz` / `.zst` by ending; `-` for standard input),
    /// in any order.
    #[arg(long, value_name = "FILE")]
    pub ledger: PathBuf,
    /// Practitioner records held now (JSON Lines, `.gz` / `.zst` by ending; a file: it is streamed, in
    /// up to three passes, never held): the derived periods are merged into them.
    #[arg(long, value_name = "FILE")]
    pub practitioners: Option<PathBuf>,
    /// Write the records that changed here, version raised, new codes included (JSON Lines; `-` for
    /// standard output): what an agency reviews and publishes. The default output, because a run changes
    /// the few thousand people its ledger touches and the registry holds 12 million. Not a status table
    /// on its own: for `review` from files, write --out-all.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write every record here, changed or not, one per code (JSON Lines; `-` for standard output): the
    /// full file `review` reads when it works from files. Reads the practitioner file once more.
    #[arg(long, value_name = "FILE")]
    pub out_all: Option<PathBuf>,
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

/// Runs `claimgate score`.
pub fn run(args: ScoreArgs) -> Result<()> {
    if let (Some(a), Some(b)) = (&args.out, &args.out_all)
        && a == b
    {
        anyhow::bail!(
            "--out and --out-all name the same file, {}: the changes and every record are two files",
            a.display()
        );
    }
    let profile = load_profile(&args.profile)?;
    let mut rules = Scoring::from_profile(&profile)?;
    load_calendars(&mut rules, &args.calendar)?;

    let (ledger_name, lines) = read_lines(&args.ledger)?;
    let ledger = Ledger::parse(lines.iter().map(|(n, l)| (*n, l.as_slice())), &rules)
        .map_err(|e| anyhow!("ledger {ledger_name}: {e}"))?;
    drop(lines);
    let progress = Progress::new(args.quiet);
    let census = Census::new(&rules, &ledger);
    let selected = match &args.practitioners {
        Some(p) => Some(registry::select(p, &Selection::new(&rules, &ledger), census, &progress)?),
        None => None,
    };
    let nothing = Rest::default();
    let (given, rest) = match &selected {
        Some(s) => (s.kept.iter().map(|k| k.text.clone()).collect::<Vec<PractitionerText>>(), &s.rest),
        None => (Vec::new(), &nothing),
    };
    let scored = score_part(&rules, &ledger, &given, rest).map_err(|e| anyhow!("ledger {ledger_name}: {e}"))?;
    drop(given);
    let no_extras = serde_json::Map::new();
    let encoded: Vec<String> = scored
        .records
        .iter()
        .map(|r| {
            let extras = match (r.input, &selected) {
                (Some(i), Some(s)) => &s.kept[i].extras,
                _ => &no_extras,
            };
            registry::encode(&r.record, extras)
        })
        .collect::<Result<_>>()?;

    let mut outputs = Vec::new();
    if let Some(path) = &args.out {
        let mut out = Output::create(path)?;
        for (_, value) in scored.records.iter().zip(&encoded).filter(|(r, _)| r.changed) {
            out.write_all(value.as_bytes())?;
            out.write_all(b"\n")?;
        }
        outputs.push(out);
    }
    if let Some(path) = &args.out_all {
        let mut out = Output::create(path)?;
        match (&args.practitioners, &selected) {
            (Some(p), Some(s)) => {
                registry::write_all(p, s, &scored, &encoded, &progress, &mut out)?;
            }
            _ => {
                for value in &encoded {
                    out.write_all(value.as_bytes())?;
                    out.write_all(b"\n")?;
                }
            }
        }
        outputs.push(out);
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
                practitioners: selected.as_ref().map(|s| s.name.clone()),
                written: if args.out_all.is_some() { Written::All } else { Written::Changed },
            };
            let mut r = Output::create(path)?;
            r.write_all(markdown(&scored.report, &sources).as_bytes())?;
            Some(r)
        }
        None => None,
    };
    for out in outputs {
        out.finish()?;
    }
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
        let records = count(rep.records, "record");
        let written = match (&args.out, &args.out_all) {
            (Some(out), all) => format!(
                "{} of {records} changed ({} new), written to {}{}",
                rep.changed,
                rep.new,
                out.display(),
                all.as_ref().map(|a| format!("; all written to {}", a.display())).unwrap_or_default()
            ),
            (None, Some(all)) => {
                format!("{records} written to {} ({} changed, {} new)", all.display(), rep.changed, rep.new)
            }
            (None, None) => String::new(),
        };
        let summary = format!(
            "scored {} under {}: {written}; {} derived; {} ignored{}\n",
            count(rep.events, "event"),
            rules.profile,
            count(rep.periods(), "period"),
            count(rep.ignored(), "event"),
            args.report.as_ref().map(|r| format!(" (see {})", r.display())).unwrap_or_default()
        );
        let to_stdout = [&args.out, &args.out_all].iter().any(|o| o.as_deref() == Some(Path::new("-")));
        if to_stdout {
            eprint!("{summary}");
        } else {
            print!("{summary}");
        }
    }
    Ok(())
}
