//! `claimgate review`: the nightly bulk re-review (service.md).
//!
//! A reader thread reads the inputs in blocks of whole lines; one worker per core decompresses,
//! parses, decides, encodes (and compresses) each block and keeps its own report tallies; the writer
//! puts the blocks back in input order and writes them (see `pipeline`). Every queue is bounded, so
//! memory stays flat whatever the input size.

mod html;
mod indexed;
mod pipeline;
mod previous;
mod recovery;
pub mod report;
mod retro;
mod sources;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use crate::io::clock;
use crate::io::files::Output;
use crate::io::kafka::KafkaConfig;
use crate::io::kafka::window::Window;
use crate::io::progress::Progress;
use crate::io::tables::TableSource;
use claimgate::profile::Profile;
use claimgate::record::BjTime;
use claimgate::routing::Rules;

use report::RunInfo;

/// Arguments of `claimgate review`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  claimgate review --claims day.jsonl.zst --practitioners p.jsonl --institutions i.jsonl \\
      --previous inline-decisions.jsonl --out decisions.jsonl --report report.md
  claimgate review --brokers kafka1:9092 --claims-topic claims \\
      --from '2026-12-01 00:00:00' --until '2026-12-02 00:00:00' --tables-from-topics \\
      --previous-topic claims.accepted --previous-topic claims.rejected --report report.md")]
pub struct ReviewArgs {
    /// Claim lines (JSON Lines; `.gz` / `.zst` by ending). Repeat for several files; `-` reads standard input.
    /// Required unless --claims-topic.
    #[arg(long = "claims", value_name = "FILE", required_unless_present_any = ["claims_topic"])]
    pub claims: Vec<PathBuf>,
    #[command(flatten)]
    pub tables: TableArgs,
    /// Policy profile: a shipped name (national-2024, huaian-2020, lanzhou-2014) or a TOML file.
    #[arg(long, default_value = claimgate::profile::DEFAULT, value_name = "NAME|FILE")]
    pub profile: String,
    /// Routing table (TOML): the profile of each line by the institution's area and the service time,
    /// for a deployment of several regions (docs/rules.md). Instead of --profile.
    #[arg(long, value_name = "FILE", conflicts_with = "profile")]
    pub routing: Option<PathBuf>,
    /// Local-id mapping records (JSON Lines): institution + local practitioner id → national code, by
    /// period, for profiles with `legacy_codes = "map"` (docs/rules.md).
    #[arg(long, value_name = "FILE")]
    pub mappings: Option<PathBuf>,
    /// Write one decision per line here (`-` for standard output), in input order.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write dead letters here. Default: beside --out (`NAME.dead-letters.jsonl`), else
    /// `dead-letters.jsonl`, created only if a line is malformed.
    #[arg(long, value_name = "FILE")]
    pub dead_letters: Option<PathBuf>,
    /// Write the report here: Markdown, or a self-contained HTML page with charts when the name ends
    /// in `.html`.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// The inline decisions of the same lines: the report lists every line whose verdict changed and
    /// the money involved.
    #[arg(long, value_name = "FILE")]
    pub previous: Option<PathBuf>,
    /// Memory for the inline decisions (`--previous`, `--previous-topic`), in MiB: past it they are
    /// joined partition by partition through files in `--spill-dir` (8 bytes a decision, and 64
    /// bytes plus the visit, serial and practitioner code a decided line), so a year of lines needs no more memory than a day.
    #[arg(long, value_name = "MIB", default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..))]
    pub previous_memory: u64,
    /// Where the join's partition files go past `--previous-memory` (default: the system's temporary
    /// directory). They hold line identities and practitioner codes, are readable by the user only,
    /// and are removed when the review ends.
    #[arg(long, value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// No progress bar and no summary.
    #[arg(long, short)]
    pub quiet: bool,
    // Last: its heading applies to every option after it in the help.
    #[command(flatten, next_help_heading = "Reading from Kafka (instead of files)")]
    pub kafka: KafkaReviewArgs,
}

/// Reviewing from Kafka instead of files: claims from a topic between two times, the inline decisions
/// from the decision topics, the tables from the status topics.
#[derive(Args, Debug, Clone, Default)]
pub struct KafkaReviewArgs {
    /// Bootstrap brokers, for the options that read Kafka.
    #[arg(long, value_name = "HOST:PORT")]
    pub brokers: Option<String>,
    /// Claim lines from this topic instead of files: those whose timestamps fall in [--from, --until),
    /// partition by partition. The review joins no consumer group and commits nothing.
    #[arg(long, value_name = "TOPIC", requires = "brokers", conflicts_with = "claims")]
    pub claims_topic: Option<String>,
    /// Start of the window, inclusive: Beijing time, `yyyy-MM-dd[ HH:mm:ss]` (a date alone is its
    /// midnight). Compared with each record's Kafka timestamp (the producer's, unless the topic stamps
    /// records on arrival); each partition's first offset is found by this time.
    #[arg(long, value_name = "TIME", requires = "claims_topic", conflicts_with = "retro")]
    pub from: Option<String>,
    /// End of the window, exclusive (Beijing time, as --from).
    #[arg(long, value_name = "TIME", requires = "claims_topic", conflicts_with = "retro")]
    pub until: Option<String>,
    /// Each partition is read on to its first record stamped this many seconds after --until, for
    /// lines stamped inside the window but stored after later-stamped ones (producers' clocks and
    /// send buffers disagree); every line is still kept or left by its own timestamp.
    #[arg(long, value_name = "SECONDS", default_value_t = 600, requires = "claims_topic")]
    pub late: u64,
    /// Review the claims that late status changes concern — the changes the stream wrote to the retro
    /// topic since the last `--retro` run (or, with --retro-from, in a given interval) — into the
    /// recovery report (docs/recovery-report.md). Needs --claims-topic and --previous-topic (the
    /// decision topics).
    #[arg(long, requires_all = ["claims_topic", "brokers"])]
    pub retro: bool,
    /// The retro topic the stream writes late status changes to (its setting `topics.retro`).
    #[arg(long, value_name = "TOPIC", default_value = "status.retro")]
    pub retro_topic: String,
    /// The consumer group that holds --retro's position on the retro topic (claimgate's own, never the
    /// stream's): committed only once the report and outputs are written.
    #[arg(long, value_name = "GROUP", default_value = "claimgate-retro")]
    pub retro_group: String,
    /// With --retro: review the changes whose retro records are stamped from this time (Beijing time)
    /// instead of those after the group's position, and commit nothing — an auditor's re-run; every
    /// report says the interval that chooses its changes again.
    #[arg(long, value_name = "TIME", requires = "retro")]
    pub retro_from: Option<String>,
    /// With --retro-from: … until this time, exclusive (default: no end).
    #[arg(long, value_name = "TIME", requires = "retro_from")]
    pub retro_until: Option<String>,
    /// With --retro: review, but leave the group's position where it was (a preview; the next run
    /// reviews the same changes again).
    #[arg(long, requires = "retro")]
    pub no_commit: bool,
    /// The inline decisions from a decision topic (repeat: `claims.accepted`, `claims.rejected`), read
    /// from --from to the topic's end; instead of --previous.
    #[arg(long = "previous-topic", value_name = "TOPIC", requires = "claims_topic", conflicts_with = "previous")]
    pub previous_topics: Vec<String>,
    /// The status tables from the status topics, read to their end (what a stream instance holds),
    /// instead of --practitioners / --institutions / --snapshot.
    #[arg(long, requires = "brokers", conflicts_with_all = ["practitioners", "institutions", "snapshot"])]
    pub tables_from_topics: bool,
    /// Practitioner status topic, for --tables-from-topics.
    #[arg(long, value_name = "TOPIC", default_value = "practitioners")]
    pub topic_practitioners: String,
    /// Institution status topic, for --tables-from-topics.
    #[arg(long, value_name = "TOPIC", default_value = "institutions")]
    pub topic_institutions: String,
    /// Review what the claims topic still holds when the window begins before its oldest record and
    /// records were deleted (retention); the report says which partitions may miss lines. Without it
    /// such a review is refused.
    #[arg(long, requires = "claims_topic")]
    pub allow_partial: bool,
    /// The claim index by code (docs/recovery-report.md, "The claim index"). With --from/--until: also
    /// write an index of the lines read to this directory, one file per run. With --retro: fetch the
    /// lines of the changed codes the indexes here list, and read by time only where none covers.
    #[arg(long, value_name = "DIR", requires = "claims_topic")]
    pub index_dir: Option<PathBuf>,
    /// A librdkafka property for the Kafka clients, e.g. -X security.protocol=SASL_SSL.
    #[arg(short = 'X', value_name = "NAME=VALUE")]
    pub property: Vec<String>,
}

impl KafkaReviewArgs {
    /// The Kafka client configuration, if brokers were given.
    pub fn config(&self) -> Result<Option<KafkaConfig>> {
        let Some(brokers) = &self.brokers else { return Ok(None) };
        Ok(Some(KafkaConfig { brokers: brokers.clone(), properties: crate::cmd::tables::properties(&self.property)? }))
    }

    /// How `--retro` chooses the changes to review.
    pub fn retro_position(&self) -> Result<retro::Position> {
        let Some(from) = &self.retro_from else { return Ok(retro::Position::Group(self.retro_group.clone())) };
        let parse = |flag: &str, t: &str| {
            BjTime::parse(t.trim())
                .map_err(|e| anyhow::anyhow!("{flag} `{t}`: {e} (Beijing time, yyyy-MM-dd[ HH:mm:ss])"))
        };
        let from = parse("--retro-from", from)?;
        let until = self.retro_until.as_deref().map(|u| parse("--retro-until", u)).transpose()?.unwrap_or(BjTime::MAX);
        Ok(retro::Position::Time { from, until })
    }

    /// The window, parsed.
    pub fn window(&self) -> Result<Option<Window>> {
        let (Some(from), Some(until)) = (&self.from, &self.until) else { return Ok(None) };
        let parse = |flag: &str, t: &str| {
            BjTime::parse(t.trim())
                .map_err(|e| anyhow::anyhow!("{flag} `{t}`: {e} (Beijing time, yyyy-MM-dd[ HH:mm:ss])"))
        };
        let w = Window { from: parse("--from", from)?, until: parse("--until", until)? };
        if w.until <= w.from {
            anyhow::bail!("--until ({}) must be after --from ({})", w.until, w.from);
        }
        Ok(Some(w))
    }
}

/// Where the status tables come from (shared by the subcommands that load them).
#[derive(Args, Debug, Clone)]
pub struct TableArgs {
    /// Practitioner records: JSON Lines (`.gz` / `.zst`), or a snapshot from `tables build`.
    #[arg(long, value_name = "FILE")]
    pub practitioners: Option<PathBuf>,
    /// Institution records: JSON Lines (`.gz` / `.zst`).
    #[arg(long, value_name = "FILE")]
    pub institutions: Option<PathBuf>,
    /// A snapshot from `claimgate tables build` (instead of --practitioners / --institutions).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["practitioners", "institutions"])]
    pub snapshot: Option<PathBuf>,
}

impl TableArgs {
    /// As a table source.
    pub fn source(&self) -> TableSource {
        TableSource {
            snapshot: self.snapshot.clone(),
            practitioners: self.practitioners.clone(),
            institutions: self.institutions.clone(),
            mappings: None,
        }
    }
}

/// Loads a profile by shipped name or file path.
pub fn load_profile(name: &str) -> Result<Profile> {
    let path = Path::new(name);
    if path.extension().is_some_and(|e| e == "toml") || path.exists() {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read profile {name}"))?;
        return Profile::from_toml(&text).with_context(|| format!("profile {name}"));
    }
    Ok(Profile::shipped(name)?)
}

/// The rules of a run: the routing table when one is given (its profile files resolved relative to
/// it), else the one profile.
pub fn load_rules(profile: &str, routing: Option<&Path>) -> Result<Rules> {
    let Some(path) = routing else {
        return Ok(Rules::single(load_profile(profile)?));
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read routing table {}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let rules = Rules::from_toml(&text, |file| {
        let p = dir.join(file);
        std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    })
    .with_context(|| format!("routing table {}", path.display()))?;
    Ok(rules)
}

/// One line about the rules, for reports and logs.
pub fn describe_rules(rules: &Rules, routing: Option<&Path>) -> String {
    let title = |p: &Profile| if p.title.is_empty() { p.name.clone() } else { format!("{} — {}", p.name, p.title) };
    match routing {
        None => title(rules.default_profile()),
        Some(path) => format!(
            "routing table {} ({} routes; default {}; profiles {})",
            path.display(),
            rules.routes().len(),
            rules.default_profile().name,
            rules.profiles().iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The dead-letter file when `--dead-letters` is not given: beside `--out` when that is a file, else
/// `dead-letters.jsonl` in the working directory. Never beside standard output or a device: with
/// `--out /dev/null` the dead letters, personal data included, once landed in
/// `/dev/null.dead-letters.jsonl` (issue 15).
fn default_dead_letters(out: Option<&Path>) -> PathBuf {
    let beside_a_file = |p: &Path| {
        p != Path::new("-")
            && p.file_name().is_some()
            && !p.starts_with("/dev")
            && !p.starts_with("/proc")
            && std::fs::metadata(p).map_or(true, |m| m.is_file())
    };
    match out {
        Some(p) if beside_a_file(p) => {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let stem = name.split('.').next().filter(|s| !s.is_empty()).unwrap_or("decisions");
            p.with_file_name(format!("{stem}.dead-letters.jsonl"))
        }
        _ => PathBuf::from("dead-letters.jsonl"),
    }
}

/// The inline decisions' file being read on a thread of its own. Dropped unjoined (the run failed
/// before it needed them), it waits for the reading to end, so that a spilled join's partition
/// files — personal data — are removed before the process exits.
struct Reading(Option<std::thread::JoinHandle<Result<previous::Previous>>>);

impl Reading {
    fn join(&mut self) -> Result<previous::Previous> {
        match self.0.take().map(std::thread::JoinHandle::join) {
            Some(Ok(read)) => read,
            _ => anyhow::bail!("the reading of --previous failed unexpectedly"),
        }
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

/// Runs the review.
pub fn run(args: ReviewArgs) -> Result<()> {
    let started = Instant::now();
    let started_at = clock::now_secs_text();
    let progress = Progress::new(args.quiet);
    let rules = Arc::new(load_rules(&args.profile, args.routing.as_deref())?);
    let kafka = args.kafka.config()?;
    let window = args.kafka.window()?;
    let budget = previous::Budget { bytes: args.previous_memory.saturating_mul(1 << 20), dir: args.spill_dir.clone() };
    // The inline decisions' file is read while the tables load: a snapshot's load is one thread
    // waiting on the kernel, the decisions' reading parallel work (issue 15: `--previous` close to nothing).
    let mut previous_file = args.previous.clone().map(|path| {
        let budget = budget.clone();
        Reading(Some(std::thread::spawn(move || previous::Previous::load(&path, &budget))))
    });
    let loaded = match (&kafka, args.kafka.tables_from_topics) {
        (Some(k), true) => {
            let loaded =
                crate::io::kafka::tables::load(k, &args.kafka.topic_practitioners, &args.kafka.topic_institutions)?;
            match &args.mappings {
                Some(m) => {
                    let (mappings, _) = crate::io::tables::load_mappings(m, &progress)?;
                    crate::io::tables::Loaded { view: loaded.view.with_mappings(mappings), ..loaded }
                }
                None => loaded,
            }
        }
        _ => TableSource { mappings: args.mappings.clone(), ..args.tables.source() }.load(&progress)?,
    };
    let tables_seconds = started.elapsed().as_secs_f64();
    let view = Arc::new(loaded.view);
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())).max(1);

    // Open every input first: an unreadable file fails the run before any output is written.
    let src = match (&kafka, &args.kafka.claims_topic) {
        (Some(k), Some(topic)) if args.kafka.retro => sources::retro(k, &args.kafka, topic, &budget)?,
        (Some(k), Some(topic)) => {
            let Some(w) = window else {
                anyhow::bail!("--claims-topic needs --from and --until (or --retro)");
            };
            sources::topic_window(k, &args.kafka, topic, w, &budget)?
        }
        _ => sources::files(&args.claims)?,
    };
    let sources::Sources { inputs, described, mut warnings, previous, selector, retro, cover } = src;
    if let Some(r) = &retro {
        warnings.extend(
            r.unreadable
                .iter()
                .map(|u| format!("a record of the retro topic is not a late status change, skipped: {u}")),
        );
    }
    // `--previous FILE`, with `--claims` or with `--claims-topic --from --until` (the decisions from a
    // file, the lines from a topic).
    let previous = match (previous, previous_file.as_mut()) {
        (Some(p), _) => Some(p),
        (None, Some(reading)) => Some(reading.join()?),
        (None, None) => None,
    };
    if let Some((p, dir)) = previous.as_ref().and_then(|p| Some((p, p.spill_dir()?)))
        && !args.quiet
    {
        eprintln!(
            "note: the {} inline decisions take more than --previous-memory ({} MiB): joined partition by partition through files in {}",
            p.lines,
            args.previous_memory,
            dir.display()
        );
    }
    let previous = previous.map(Arc::new);
    let total: Option<u64> = inputs.iter().map(|i| i.size).sum();
    let counters: Vec<_> = inputs.iter().map(|i| Arc::clone(&i.read)).collect();
    let bar = progress.bytes(total, "review");

    let mut out = args.out.as_deref().map(Output::create).transpose()?;
    let dead_path = args.dead_letters.clone().unwrap_or_else(|| default_dead_letters(args.out.as_deref()));
    let shared = pipeline::Shared {
        view: Arc::clone(&view),
        rules: Arc::clone(&rules),
        previous: previous.clone(),
        selector: selector.map(Arc::new),
        frames: out.as_ref().is_some_and(Output::takes_frames),
        index: cover.is_some(),
    };
    let moved = || bar.set_position(pipeline::bytes_read(&counters));
    let sinks = pipeline::Sinks { out: out.as_mut(), dead_path: dead_path.clone(), progress: &moved };
    let pipeline::Outcome { stats, dead_out, index } = pipeline::run(inputs, threads, shared, sinks)?;
    bar.finish_and_clear();
    if let Some(o) = out {
        o.finish()?;
    }
    let dead_letters = match dead_out {
        Some(d) => {
            d.finish()?;
            Some(dead_path.display().to_string())
        }
        None => None,
    };

    let info = RunInfo {
        profile: describe_rules(&rules, args.routing.as_deref()),
        tables: loaded.description,
        epoch: view.epoch(),
        sizes: (view.practitioner_count(), view.institution_count()),
        inputs: described,
        warnings,
        names: loaded.names,
        dead_letters,
        previous: previous.as_ref().map(|p| (p.name.clone(), p.lines)),
        retro: retro.as_ref().map(|r| r.changes.clone()),
        started_at,
        seconds: started.elapsed().as_secs_f64(),
        tables_seconds,
    };
    if let Some(path) = &args.report {
        let mut r = Output::create(path)?;
        let text = if path.extension().is_some_and(|e| e == "html" || e == "htm") {
            html::html(&stats, &info)
        } else {
            report::markdown(&stats, &info)
        };
        r.write_all(text.as_bytes())?;
        r.finish()?;
    }
    if let (Some(dir), Some(c), Some(index)) = (&args.kafka.index_dir, cover, index) {
        write_index(dir, c, index, args.quiet)?;
    }
    // The late changes are reviewed: the next --retro run starts after them.
    if let (Some(k), Some(r)) = (&kafka, &retro)
        && !args.kafka.no_commit
    {
        retro::commit(k, &args.kafka.retro_topic, r)?;
    }
    if !args.quiet {
        let summary = report::summary(&stats, &info);
        // The summary goes to standard output unless decisions do.
        if args.out.as_deref() == Some(Path::new("-")) {
            eprint!("{summary}");
        } else {
            print!("{summary}");
        }
    }
    Ok(())
}

/// Writes the code index of a nightly read (after the decisions and the report: an index is only
/// ever of a complete read).
fn write_index(
    dir: &Path,
    mut cover: sources::IndexCover,
    index: crate::io::claim_index::Builder,
    quiet: bool,
) -> Result<()> {
    let (from, until) = cover.window;
    if until <= from {
        // The window had not begun to end when it was read: nothing it covers is complete.
        eprintln!(
            "no claim index written: no record time of the window is complete yet (it ends after the read began, less --late)"
        );
        return Ok(());
    }
    let decisions = std::mem::take(&mut cover.decisions);
    let lines = index.lines();
    let (path, size) = index
        .write(dir, &cover.topic, cover.window, cover.ranges, &clock::now_secs_text())
        .with_context(|| format!("cannot write the claim index in {}", dir.display()))?;
    said("claim index", ("lines", "line"), &path, lines, size, (from, until), quiet);
    // The decision topics' indexes, by line identity, over the same record times.
    for d in decisions {
        let lines = d.index.lines();
        let (path, size) = d
            .index
            .write(dir, &d.topic, cover.window, d.ranges, &clock::now_secs_text())
            .with_context(|| format!("cannot write the decision index of {} in {}", d.topic, dir.display()))?;
        said("decision index", ("decisions", "decision"), &path, lines, size, (from, until), quiet);
    }
    Ok(())
}

fn said(
    what: &str,
    (unit, one): (&str, &str),
    path: &Path,
    lines: u64,
    size: u64,
    (from, until): (i64, i64),
    quiet: bool,
) {
    let per_line = if lines == 0 { 0.0 } else { size as f64 / lines as f64 };
    let text = format!(
        "{what}: {} ({lines} {unit}, {size} bytes, {per_line:.1} bytes a {one}), record times {} until {}",
        path.display(),
        crate::io::clock::from_unix_ms(from),
        crate::io::clock::from_unix_ms(until)
    );
    tracing::info!(event = "claim_index_written", kind = what, path = %path.display(), lines, bytes = size);
    if !quiet {
        eprintln!("{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_dropped_unjoined_waits_for_its_thread() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let reading = Reading(Some(std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            flag.store(true, Ordering::SeqCst);
            Ok(previous::Previous::empty(String::new()))
        })));
        // As when the run fails before it needs the decisions: whatever the reading left on disk is
        // removed by the time the guard is gone.
        drop(reading);
        assert!(done.load(Ordering::SeqCst), "the guard let the run go on before the reading ended");
    }

    #[test]
    fn default_dead_letters_sit_beside_a_file_never_beside_a_device_or_stdout() {
        assert_eq!(default_dead_letters(Some(Path::new("out/day.jsonl.zst"))), Path::new("out/day.dead-letters.jsonl"));
        assert_eq!(default_dead_letters(None), Path::new("dead-letters.jsonl"));
        for device in ["-", "/dev/null", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"] {
            assert_eq!(default_dead_letters(Some(Path::new(device))), Path::new("dead-letters.jsonl"), "{device}");
        }
    }
}
