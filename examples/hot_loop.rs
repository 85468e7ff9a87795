//! The hot path in a loop, for instruction counts: `valgrind --tool=callgrind` counts are repeatable
//! on a shared machine whatever its wall clock does (BENCHMARKS.md, "Instruction counts").
//!
//! ```text
//! cargo build --release --example hot_loop
//! valgrind --tool=callgrind --toggle-collect='hot_loop::run_*' target/release/examples/hot_loop line 5
//! ```
//!
//! Modes: `parse` (Claim::parse), `decide` (decide on parsed claims), `encode` (write_decision of
//! parsed and decided claims), `line` (parse + decide + encode, as `review` and `stream` run it),
//! `batch` (the same through `batch::process_each`, lookups prefetched). The second argument is the
//! number of passes over the 20 000 generated lines (the same world as `benches/core.rs`). Prints the
//! lines processed, so that instructions per line = callgrind's `Collected` / lines.

use std::hint::black_box;

use claimgate::batch::{process, process_each};
use claimgate::decide::decide;
use claimgate::profile::Profile;
use claimgate::record::{Claim, Outcome, Stamp, write_decision};
use claimgate::routing::Rules;
use claimgate::synth::{GenConfig, World};
use claimgate::table::View;

fn world() -> (View, Vec<Vec<u8>>) {
    World::new(GenConfig { practitioners: 100_000, claims: 20_000, ..GenConfig::default() }).view_and_lines(100_000)
}

#[inline(never)]
fn run_parse(lines: &[Vec<u8>], passes: usize) -> usize {
    let mut ok = 0;
    for _ in 0..passes {
        for l in lines {
            ok += usize::from(Claim::parse(black_box(l)).is_ok());
        }
    }
    ok
}

#[inline(never)]
fn run_decide(claims: &[Claim<'_>], view: &View, profile: &Profile, passes: usize) -> usize {
    let mut n = 0;
    for _ in 0..passes {
        for c in claims {
            n += black_box(decide(black_box(c), view, profile)).reason.index();
        }
    }
    n
}

#[inline(never)]
fn run_encode(decided: &[(Claim<'_>, Outcome<'_>)], stamp: &Stamp<'_>, passes: usize) -> usize {
    let mut out = Vec::with_capacity(1 << 20);
    let mut n = 0;
    for _ in 0..passes {
        for (c, o) in decided {
            out.clear();
            write_decision(&mut out, black_box(c), o, stamp);
            n += black_box(&out).len();
        }
    }
    n
}

#[inline(never)]
fn run_line(lines: &[Vec<u8>], view: &View, rules: &Rules, stamp: &Stamp<'_>, passes: usize) -> usize {
    let mut out = Vec::with_capacity(1 << 20);
    let mut n = 0;
    for _ in 0..passes {
        for l in lines {
            out.clear();
            n += usize::from(process(black_box(l), view, rules, stamp, &mut out).is_ok());
        }
    }
    n
}

#[inline(never)]
fn run_batch(lines: &[Vec<u8>], view: &View, rules: &Rules, stamp: &Stamp<'_>, passes: usize) -> usize {
    let mut out = Vec::with_capacity(1 << 24);
    let mut n = 0;
    for _ in 0..passes {
        for block in lines.chunks(1024) {
            out.clear();
            let tagged = block.iter().enumerate().map(|(i, l)| (i, l.as_slice()));
            process_each(tagged, view, rules, stamp, &mut out, |_, _, r, _| n += usize::from(r.is_ok()));
        }
    }
    n
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "line".into());
    let passes: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let (view, lines) = world();
    let profile = Profile::shipped("national-2024").expect("shipped profile");
    let rules = Rules::single(profile.clone());
    let stamp = Stamp { table_epoch: view.epoch(), decided_at: "2026-04-02 10:31:00.004" };
    let started = std::time::Instant::now();
    let n = match mode.as_str() {
        "parse" => run_parse(&lines, passes),
        "decide" | "encode" => {
            let claims: Vec<Claim<'_>> = lines.iter().filter_map(|l| Claim::parse(l).ok()).collect();
            if mode == "decide" {
                run_decide(&claims, &view, &profile, passes)
            } else {
                let decided: Vec<_> = claims.into_iter().map(|c| (c.clone(), decide(&c, &view, &profile))).collect();
                run_encode(&decided, &stamp, passes)
            }
        }
        "line" => run_line(&lines, &view, &rules, &stamp, passes),
        "batch" => run_batch(&lines, &view, &rules, &stamp, passes),
        other => {
            eprintln!("unknown mode {other}: parse, decide, encode, line, batch");
            std::process::exit(2);
        }
    };
    let lines_done = lines.len() * passes;
    let ns = started.elapsed().as_nanos() as f64 / lines_done as f64;
    println!("mode {mode}: {lines_done} lines ({n}), {ns:.0} ns/line wall (not the figure: use callgrind)");
}
