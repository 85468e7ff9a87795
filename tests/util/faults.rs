//! What every fault test shares (`tests/reliability.rs`, `tests/cluster.rs`): sizes and seeds from the
//! environment, printed; figures appended to `CLAIMGATE_TEST_REPORT`; a world whose claims never run
//! out; the accounting's assertions; and waits on a running stream's metrics.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use claimgate::synth::{GenConfig, Line, World};

use super::load::{Reader, Tally, expected_keys};
use super::{Env, Stream};

/// A size from the environment (`CLAIMGATE_TEST_*`), or its default.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The run's seed: `CLAIMGATE_TEST_SEED`, or the clock — printed either way, so that a failure can be
/// run again with the same data and the same fault moments.
pub fn seed() -> u64 {
    let seed = env_u64(
        "CLAIMGATE_TEST_SEED",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs()),
    );
    eprintln!("seed {seed} (run again with CLAIMGATE_TEST_SEED={seed})");
    seed
}

/// Appends a test's figures to `CLAIMGATE_TEST_REPORT`, and prints them.
pub fn report(test: &str, figures: serde_json::Value) {
    let line = serde_json::json!({ "test": test, "figures": figures }).to_string();
    println!("{line}");
    if let Ok(path) = std::env::var("CLAIMGATE_TEST_REPORT") {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("report file");
        writeln!(f, "{line}").expect("write report");
    }
}

/// The accounting as report figures.
pub fn tally_json(t: &Tally) -> serde_json::Value {
    serde_json::json!({
        "lines": t.lines, "decided": t.decided, "dead_letters": t.dead, "lost": t.lost,
        "duplicates": t.duplicates, "differing_duplicates": t.differing.len(), "unexpected": t.unexpected,
        "copies": t.copies.iter().map(|(n, lines)| (n.to_string(), *lines)).collect::<BTreeMap<_, _>>(),
    })
}

/// Nothing lost, nothing unexpected, every duplicate identical but for its time stamp.
pub fn assert_clean(t: &Tally, logs: &str) {
    assert!(
        t.clean(),
        "lines lost or duplicates differing: lost {} (e.g. {:?}), unexpected {}, differing {:?}\nlogs:\n{}",
        t.lost,
        t.lost_examples,
        t.unexpected,
        t.differing,
        tail(logs, 200)
    );
}

/// The last `lines` lines of a text.
pub fn tail(text: &str, lines: usize) -> String {
    // Every panic first, with the lines that follow it: a panic's cause is rarely in the tail, and CI
    // shows only part of a long message.
    let all: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for i in (0..all.len()).filter(|&i| all[i].contains("panicked")) {
        out.push_str(&format!("PANIC at log line {}:\n{}\n", i + 1, all[i..(i + 12).min(all.len())].join("\n")));
    }
    out + &all[all.len().saturating_sub(lines)..].join("\n")
}

/// A world whose claim lines never run out; the test stops the sender.
pub fn world(seed: u64) -> &'static World {
    Box::leak(Box::new(World::new(GenConfig {
        seed,
        practitioners: 2_000,
        claims: u64::MAX / 2,
        malformed_rate: 0.01,
        ..GenConfig::default()
    })))
}

/// Writes the world's status tables and publishes them to the test's status topics.
pub fn publish_world(env: &Env, world: &World) {
    let mut p = std::fs::File::create(env.path("practitioners.jsonl")).unwrap();
    world.write_practitioners(&mut p, |_| {}).unwrap();
    let mut i = std::fs::File::create(env.path("institutions.jsonl")).unwrap();
    world.write_institutions(&mut i).unwrap();
    env.publish_tables(&env.path("practitioners.jsonl"), Some(&env.path("institutions.jsonl")));
}

/// The three output topics of a test.
pub fn output_topics(env: &Env) -> Vec<String> {
    vec![env.topic("claims.accepted"), env.topic("claims.rejected"), env.topic("claims.dlq")]
}

/// The six topics of a test.
pub fn all_topics(env: &Env) -> Vec<String> {
    ["claims", "claims.accepted", "claims.rejected", "claims.dlq", "practitioners", "institutions"]
        .iter()
        .map(|t| env.topic(t))
        .collect()
}

/// Lines in a log that report a panic: must be none.
pub fn panics(log: &str) -> usize {
    log.lines().filter(|l| l.contains("panicked")).count()
}

/// Waits until every line has an output, or `wait` passes.
pub fn wait_answered(reader: &mut Reader, lines: &[Line], wait: Duration) -> bool {
    reader.until_answered(&expected_keys(lines), wait)
}

/// Lines decided or dead-lettered by this instance, if its operations port answers.
pub fn decided_so_far(s: &Stream) -> Option<f64> {
    Some(s.try_metric("claimgate_claims_total")? + s.try_metric("claimgate_dead_letters_total")?)
}

/// Waits until the stream has decided (or dead-lettered) at least `n` lines.
pub fn wait_deciding(s: &Stream, n: f64, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if decided_so_far(s).is_some_and(|d| d >= n) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Waits until a metric satisfies `ok`.
pub fn wait_metric(s: &Stream, name: &str, wait: Duration, ok: impl Fn(f64) -> bool) -> Option<f64> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(v) = s.try_metric(name)
            && ok(v)
        {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
