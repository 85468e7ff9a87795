//! `claimgate review`: the nightly bulk re-review (service.md).
//!
//! A reader thread cuts the inputs into blocks of whole lines; one worker per core parses, decides and
//! encodes each block; the writer puts the blocks back in input order, writes decisions and dead
//! letters, and folds each block's counts into the report. Every queue is bounded, so memory stays flat
//! whatever the input size.

mod html;
mod previous;
pub mod report;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use crate::io::clock;
use crate::io::files::{self, Chunk, Chunker, Output, lines};
use crate::io::progress::Progress;
use crate::io::tables::TableSource;
use claimgate::batch::process;
use claimgate::profile::Profile;
use claimgate::record::{DeadLetter, Role, Stamp};
use claimgate::routing::Rules;
use claimgate::table::View;

use previous::{Previous, identity};
use report::{Changed, RunInfo, Stats};

/// Arguments of `claimgate review`.
#[derive(Args, Debug)]
pub struct ReviewArgs {
    /// Claim lines (JSON Lines; `.gz` / `.zst` by ending). Repeat for several files; `-` reads standard input.
    #[arg(long = "claims", required = true, value_name = "FILE")]
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
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// No progress bar and no summary.
    #[arg(long, short)]
    pub quiet: bool,
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

struct Job {
    seq: u64,
    source: Arc<str>,
    chunk: Chunk,
}

struct Done {
    seq: u64,
    decisions: Vec<u8>,
    dead: Vec<u8>,
    stats: Stats,
}

/// Blocks of this many bytes go to a worker at a time.
const BLOCK: usize = 1 << 20;

fn work(job: Job, view: &View, rules: &Rules, previous: Option<&Previous>) -> Done {
    let decided_at = clock::now_text();
    let stamp = Stamp { table_epoch: view.epoch(), decided_at: &decided_at };
    // Decisions run about 1.3 times the size of the claim lines: reserve once.
    let mut decisions = Vec::with_capacity(job.chunk.data.len() * 3 / 2);
    let mut dead = Vec::new();
    let mut stats = Stats::default();
    for (n, line) in lines(&job.chunk) {
        match process(line, view, rules, &stamp, &mut decisions) {
            Ok(d) => {
                decisions.push(b'\n');
                stats.decided(&d.claim, &d.outcome);
                let (c, o) = (&d.claim, &d.outcome);
                if let Some(prev) = previous {
                    let inst = c.fixmedins_code.to_string();
                    match prev.get(identity(&inst, &c.mdtrt_id, &c.feedetl_sn)) {
                        Some(before) if before != o.reason => stats.changed.push(Changed {
                            fixmedins_code: inst,
                            mdtrt_id: c.mdtrt_id.to_string(),
                            feedetl_sn: c.feedetl_sn.to_string(),
                            practitioner: c.code(o.role.unwrap_or(Role::Billing)).unwrap_or_default().to_owned(),
                            amount: c.amount,
                            before,
                            after: o.reason,
                        }),
                        Some(_) => {}
                        None => stats.not_in_previous += 1,
                    }
                }
            }
            Err(m) => {
                let source = format!("{}:{n}", job.source);
                DeadLetter::new(&m.message, m.field, &source, line, &decided_at).write(&mut dead);
                dead.push(b'\n');
                stats.dead(m.field);
            }
        }
    }
    Done { seq: job.seq, decisions, dead, stats }
}

fn default_dead_letters(out: Option<&Path>) -> PathBuf {
    match out {
        Some(p) if p != Path::new("-") => {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let stem = name.split('.').next().unwrap_or("decisions");
            p.with_file_name(format!("{stem}.dead-letters.jsonl"))
        }
        _ => PathBuf::from("dead-letters.jsonl"),
    }
}

/// Runs the review.
pub fn run(args: ReviewArgs) -> Result<()> {
    let started = Instant::now();
    let started_at = clock::now_secs_text();
    let progress = Progress::new(args.quiet);
    let rules = Arc::new(load_rules(&args.profile, args.routing.as_deref())?);
    let loaded = TableSource { mappings: args.mappings.clone(), ..args.tables.source() }.load(&progress)?;
    let tables_seconds = started.elapsed().as_secs_f64();
    let view = Arc::new(loaded.view);
    let previous = args.previous.as_deref().map(Previous::load).transpose()?.map(Arc::new);
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())).max(1);

    // Open every input first: an unreadable file fails the run before any output is written.
    let inputs = args.claims.iter().map(|p| files::open(p)).collect::<Result<Vec<_>>>()?;
    let total: Option<u64> = inputs.iter().map(|i| i.size).sum();
    let names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
    let counters: Vec<_> = inputs.iter().map(|i| Arc::clone(&i.read)).collect();
    let bar = progress.bytes(total, "review");

    let mut out = args.out.as_deref().map(Output::create).transpose()?;
    let dead_path = args.dead_letters.clone().unwrap_or_else(|| default_dead_letters(args.out.as_deref()));
    let mut dead_out: Option<Output> = None;

    let (job_tx, job_rx) = crossbeam_channel::bounded::<Job>(threads * 2);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Result<Done, (String, std::io::Error)>>(threads * 2);

    let reader = {
        let done_tx = done_tx.clone();
        std::thread::spawn(move || {
            let mut seq = 0;
            for input in inputs {
                let source: Arc<str> = input.name.clone().into();
                for chunk in Chunker::new(input.reader, BLOCK) {
                    match chunk {
                        Ok(chunk) => {
                            if job_tx.send(Job { seq, source: Arc::clone(&source), chunk }).is_err() {
                                return;
                            }
                            seq += 1;
                        }
                        Err(e) => {
                            let _ = done_tx.send(Err((source.to_string(), e)));
                            return;
                        }
                    }
                }
            }
        })
    };
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (rx, tx) = (job_rx.clone(), done_tx.clone());
            let (view, rules, previous) = (Arc::clone(&view), Arc::clone(&rules), previous.clone());
            std::thread::spawn(move || {
                for job in rx {
                    if tx.send(Ok(work(job, &view, &rules, previous.as_deref()))).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    drop(done_tx);
    drop(job_rx);

    // The writer: put blocks back in order.
    let mut stats = Stats::default();
    let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
    let mut next = 0u64;
    let mut failure: Option<anyhow::Error> = None;
    for msg in &done_rx {
        let done = match msg {
            Ok(d) => d,
            Err((name, e)) => {
                failure = Some(anyhow::Error::new(e).context(format!("cannot read {name}")));
                break;
            }
        };
        pending.insert(done.seq, done);
        while let Some(done) = pending.remove(&next) {
            if let Some(o) = &mut out {
                o.write_all(&done.decisions).context("cannot write decisions")?;
            }
            if !done.dead.is_empty() {
                if dead_out.is_none() {
                    dead_out = Some(Output::create(&dead_path)?);
                }
                if let Some(d) = &mut dead_out {
                    d.write_all(&done.dead).context("cannot write dead letters")?;
                }
            }
            stats.merge(done.stats);
            next += 1;
            bar.set_position(counters.iter().map(|c| c.load(Ordering::Relaxed)).sum());
        }
    }
    drop(done_rx);
    let _ = reader.join();
    for w in workers {
        let _ = w.join();
    }
    if let Some(e) = failure {
        return Err(e);
    }
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
        inputs: names,
        dead_letters,
        previous: previous.as_ref().map(|p| (p.name.clone(), p.lines)),
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
