//! The review report's tallies on two cores: each worker's own maps merged once at the end (what
//! `review` does, `src/cmd/review/report.rs`) against one `dashmap::DashMap` every worker writes into
//! (the concurrent map the project's brief names). Issue 15 asked which is faster; this measures it.
//!
//! `cargo bench --bench tallies`. The work per line is the report's per-line map work: the line's
//! institution (accepted or rejected lines and fen), and for the lines that are not a plain accept
//! (6 % here, as in a generated day) the practitioner the reason concerns. Institutions and
//! practitioners are drawn skewed (a few large hospitals, many small ones), from 5 000 institutions and
//! 100 000 practitioners. The maps' value types have the report's shape; the decision itself is not
//! part of it (it is the same in both).

use std::hash::BuildHasherDefault;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dashmap::DashMap;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;
use rustc_hash::{FxHashMap, FxHasher};

use claimgate::record::InstitutionCode;

/// Lines and money (the report's `Tally`).
#[derive(Clone, Copy, Default)]
struct Tally {
    lines: u64,
    fen: i128,
}

impl Tally {
    fn add(&mut self, fen: i64) {
        self.lines += 1;
        self.fen += i128::from(fen);
    }
    fn merge(&mut self, o: Tally) {
        self.lines += o.lines;
        self.fen += o.fen;
    }
}

#[derive(Clone, Copy, Default)]
struct Institution {
    accepted: Tally,
    rejected: Tally,
}

impl Institution {
    fn add(&mut self, accepted: bool, fen: i64) {
        if accepted { self.accepted.add(fen) } else { self.rejected.add(fen) }
    }
}

#[derive(Clone, Copy, Default)]
struct Practitioner {
    rejected: Tally,
    overridden: Tally,
    reasons: u32,
}

impl Practitioner {
    fn add(&mut self, rejected: bool, fen: i64) {
        if rejected {
            self.rejected.add(fen)
        } else {
            self.overridden.add(fen)
        }
        self.reasons |= 1;
    }
}

/// One line as the tallies see it.
struct Line {
    institution: InstitutionCode,
    /// For a line that is not a plain accept: the practitioner's index and whether it was rejected.
    person: Option<(usize, bool)>,
    fen: i64,
    accepted: bool,
}

struct Input {
    lines: Vec<Line>,
    practitioners: Vec<String>,
}

/// A skewed draw from `0..n`: the square of a uniform number puts most draws on the low indices.
fn skewed(rng: &mut Pcg64Mcg, n: usize) -> usize {
    let u: f64 = rng.random();
    ((u * u) * n as f64) as usize % n
}

fn input(lines: usize) -> Input {
    let mut rng = Pcg64Mcg::seed_from_u64(15);
    let institutions: Vec<InstitutionCode> = (0..5_000u64)
        .map(|i| InstitutionCode::parse(&format!("H{:011}", 11_010_500_000 + i)).expect("a valid code"))
        .collect();
    let practitioners: Vec<String> = (0..100_000u64).map(|i| format!("D{:012}", 110_105_000_000 + i)).collect();
    let lines = (0..lines)
        .map(|_| {
            let special = rng.random_range(0..100) < 6;
            let rejected = special && rng.random_range(0..10) < 8;
            Line {
                institution: institutions[skewed(&mut rng, institutions.len())],
                person: special.then(|| (skewed(&mut rng, practitioners.len()), rejected)),
                fen: rng.random_range(1..50_000),
                accepted: !rejected,
            }
        })
        .collect();
    Input { lines, practitioners }
}

/// Each worker's own maps, as `review` keeps them.
#[derive(Default)]
struct Own {
    by_institution: FxHashMap<InstitutionCode, Institution>,
    by_practitioner: FxHashMap<String, Practitioner>,
}

impl Own {
    fn line(&mut self, l: &Line, practitioners: &[String]) {
        self.by_institution.entry(l.institution).or_default().add(l.accepted, l.fen);
        if let Some((p, rejected)) = l.person {
            // `review` looks the person up by text (a borrowed code), and owns it only when new.
            let key = practitioners[p].as_str();
            match self.by_practitioner.get_mut(key) {
                Some(t) => t.add(rejected, l.fen),
                None => self.by_practitioner.entry(key.to_owned()).or_default().add(rejected, l.fen),
            }
        }
    }

    fn merge(&mut self, other: Own) {
        for (k, v) in other.by_institution {
            let e = self.by_institution.entry(k).or_default();
            e.accepted.merge(v.accepted);
            e.rejected.merge(v.rejected);
        }
        for (k, v) in other.by_practitioner {
            let e = self.by_practitioner.entry(k).or_default();
            e.rejected.merge(v.rejected);
            e.overridden.merge(v.overridden);
            e.reasons |= v.reasons;
        }
    }
}

type Fx = BuildHasherDefault<FxHasher>;

/// One map for all workers.
#[derive(Default)]
struct Shared {
    by_institution: DashMap<InstitutionCode, Institution, Fx>,
    by_practitioner: DashMap<String, Practitioner, Fx>,
}

impl Shared {
    fn line(&self, l: &Line, practitioners: &[String]) {
        self.by_institution.entry(l.institution).or_default().add(l.accepted, l.fen);
        if let Some((p, rejected)) = l.person {
            let key = practitioners[p].as_str();
            match self.by_practitioner.get_mut(key) {
                Some(mut t) => t.add(rejected, l.fen),
                None => self.by_practitioner.entry(key.to_owned()).or_default().add(rejected, l.fen),
            }
        }
    }
}

/// The lines cut into `workers` blocks, each tallied on its own thread into its own maps, then merged.
fn own_maps(input: &Input, workers: usize) -> Own {
    let chunk = input.lines.len().div_ceil(workers);
    let parts: Vec<Own> = std::thread::scope(|s| {
        let handles: Vec<_> = input
            .lines
            .chunks(chunk)
            .map(|block| {
                s.spawn(move || {
                    let mut own = Own::default();
                    block.iter().for_each(|l| own.line(l, &input.practitioners));
                    own
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a worker")).collect()
    });
    let mut all = Own::default();
    parts.into_iter().for_each(|p| all.merge(p));
    all
}

/// The same blocks, every thread writing into one `DashMap`.
fn one_dashmap(input: &Input, workers: usize) -> Shared {
    let chunk = input.lines.len().div_ceil(workers);
    let shared = Shared::default();
    std::thread::scope(|s| {
        for block in input.lines.chunks(chunk) {
            let shared = &shared;
            s.spawn(move || block.iter().for_each(|l| shared.line(l, &input.practitioners)));
        }
    });
    shared
}

fn tallies(c: &mut Criterion) {
    const LINES: usize = 2_000_000;
    let input = input(LINES);
    // Both ways give the same totals (checked once, so the comparison is of equal work).
    let (own, shared) = (own_maps(&input, 2), one_dashmap(&input, 2));
    assert_eq!(own.by_institution.len(), shared.by_institution.len());
    assert_eq!(own.by_practitioner.len(), shared.by_practitioner.len());
    let sum = |t: Institution| t.accepted.fen + t.rejected.fen;
    assert_eq!(
        own.by_institution.values().map(|t| sum(*t)).sum::<i128>(),
        shared.by_institution.iter().map(|e| sum(*e.value())).sum::<i128>()
    );

    let mut g = c.benchmark_group("tallies");
    g.throughput(Throughput::Elements(LINES as u64));
    g.sample_size(20);
    for workers in [1, 2] {
        g.bench_function(format!("own_maps_merged/{workers}_workers"), |b| {
            b.iter(|| black_box(own_maps(&input, workers)))
        });
        g.bench_function(format!("one_dashmap/{workers}_workers"), |b| {
            b.iter(|| black_box(one_dashmap(&input, workers)))
        });
    }
    g.finish();
}

criterion_group!(benches, tallies);
criterion_main!(benches);
