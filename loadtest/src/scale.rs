//! The large-table phase (`--scale-practitioners`, 12 million codes for the whole country): the table is
//! generated and put on status topics of its own once; then each system is started cold on it — time
//! from start to first decision, CPU per line, latency and peak RSS at a fixed rate — stopped cleanly,
//! and started again with its state kept: Kafka Streams with its state directory (the global stores'
//! RocksDB files and checkpoint), claimgate with its checkpoint option if one is given
//! (`--claimgate-checkpoint-args`), else from the topic again (a second cold start, and the report says so).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::kafka::Clock;
use crate::pool::{self, Pool};
use crate::results::Phase;
use crate::run::{Acc, Outcomes, Plan, measure, one_step};
use crate::session::{Setup, StartOpts, System, publish_tables_under};

/// What the phase does.
#[derive(Clone, Debug, Serialize)]
pub struct ScalePlan {
    /// Practitioner codes in the large table.
    pub practitioners: u64,
    /// The fixed rate (default: half of the lower of claimgate's and Kafka Streams' saturating rates).
    pub rate: Option<u64>,
    /// Seconds measured at that rate, cold.
    pub seconds: f64,
    /// Systems to run on it, in turn.
    pub systems: Vec<System>,
    /// Arguments that make `claimgate stream` write and use a checkpoint; `{dir}` is replaced by the
    /// instance's state directory. Empty: claimgate restarts from the topic.
    pub claimgate_checkpoint_args: Vec<String>,
    /// Longest wait for the first decisions after a start, seconds.
    pub ready_limit_s: f64,
    /// Claim lines generated from the large table's world.
    pub pool: usize,
}

/// What the phase found besides its steps.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ScaleOutcome {
    pub codes: u64,
    pub rate: u64,
    /// Seconds to write the table's JSON Lines file (0 when a earlier run's file was reused).
    pub write_s: f64,
    /// Seconds `claimgate tables publish` took.
    pub publish_s: f64,
    /// How claimgate was restarted.
    pub restart_note: String,
}

/// Runs the phase; its steps and agreements go into `out`.
pub fn run(
    setup: &Setup,
    sp: &ScalePlan,
    plan: &Plan,
    clock: Clock,
    n: &mut u32,
    rate: u64,
    out: &mut Outcomes,
) -> Result<ScaleOutcome> {
    let world = pool::world(plan.seed, sp.practitioners, sp.pool as u64);
    // The table files of a size and seed are the same every run: written once, kept in the work folder.
    let dir = setup.work.join(format!("scale-{}-{}", plan.seed, sp.practitioners));
    let practitioners = dir.join("practitioners.jsonl");
    let institutions = dir.join("institutions.jsonl");
    let done = dir.join(".complete");
    let t = Instant::now();
    let wrote = !done.exists();
    if wrote {
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        eprintln!("loadtest: writing the {}-code table to {}", sp.practitioners, dir.display());
        pool::write_tables(&world, &practitioners, &institutions)?;
        std::fs::write(&done, b"")?;
    }
    let write_s = if wrote { t.elapsed().as_secs_f64() } else { 0.0 };
    let mut big = setup.clone();
    big.practitioners = practitioners;
    big.institutions = institutions;
    big.table_codes = sp.practitioners;
    let prefix = format!("lt{}-scale-tables-", setup.run_id);
    let t = Instant::now();
    eprintln!("loadtest: publishing the {}-code table", sp.practitioners);
    publish_tables_under(&big, &prefix)?;
    let publish_s = t.elapsed().as_secs_f64();
    eprintln!("loadtest: published in {publish_s:.1} s");
    let lines = Arc::new(Pool::generate(&world, sp.pool)?);
    let restart_note = if sp.claimgate_checkpoint_args.is_empty() {
        "claimgate was restarted without a checkpoint option (none given: --claimgate-checkpoint-args): its restart reads the status topics from the beginning, as a cold start does.".to_owned()
    } else {
        format!("claimgate was restarted with `{}` (its checkpoint).", sp.claimgate_checkpoint_args.join(" "))
    };
    let mut accs: Vec<Acc> = vec![];
    for &system in &sp.systems {
        let mut acc = Acc::new(system, lines.len());
        let instance = format!("scale-{}", system.name());
        for state in ["kstreams-state", "claimgate-state"] {
            let d = setup.work.join(state).join(&instance);
            if d.exists() {
                std::fs::remove_dir_all(&d).with_context(|| format!("cannot clear {}", d.display()))?;
            }
        }
        let opts = StartOpts {
            tables_prefix: Some(prefix.clone()),
            instance: Some(instance),
            claimgate_args: if system.is_claimgate() { sp.claimgate_checkpoint_args.clone() } else { vec![] },
            ready_limit: std::time::Duration::from_secs_f64(sp.ready_limit_s),
            ..StartOpts::default()
        };
        for (phase, seconds) in [(Phase::Scale, sp.seconds), (Phase::Restart, plan.measure.min(sp.seconds))] {
            eprintln!(
                "loadtest: {} on the {}-code table, {}",
                system.name(),
                sp.practitioners,
                if phase == Phase::Scale { "cold" } else { "restarted with its state" }
            );
            let mut r = one_step(&big, &lines, clock, n, &mut acc, &opts, |s| {
                measure(s, system, phase, rate, plan.warmup, seconds, plan.drain).map(|r| (r, None))
            })?;
            let state = setup.work.join(if system.is_kafka_streams() { "kstreams-state" } else { "claimgate-state" });
            r.state_mib =
                dir_bytes(&state.join(opts.instance.as_deref().unwrap_or_default())).map(|b| b as f64 / 1_048_576.0);
            eprintln!(
                "loadtest: {} first decision {:.1} s after its start, peak RSS {:.0} MiB, {:.2} CPU s per million lines",
                system.name(),
                r.first_decision_s,
                r.peak_rss_mib.unwrap_or(0.0),
                r.cpu_s_per_million
            );
            out.steps.push(r);
        }
        accs.push(acc);
    }
    if let Some(cg) = accs.iter().find(|a| a.system == System::Claimgate) {
        for a in accs.iter().filter(|a| a.system != System::Claimgate && a.system.decides()) {
            out.extra_agreements.push((
                a.system,
                format!("{} codes", sp.practitioners),
                cg.verdicts.compare(&a.verdicts),
            ));
        }
    }
    Ok(ScaleOutcome { codes: sp.practitioners, rate, write_s, publish_s, restart_note })
}

/// Bytes of the files under `dir` (None if it does not exist).
fn dir_bytes(dir: &std::path::Path) -> Option<u64> {
    let meta = std::fs::symlink_metadata(dir).ok()?;
    if meta.is_file() {
        return Some(meta.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        total += dir_bytes(&entry.path()).unwrap_or(0);
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_a_directory_tree() {
        let d = std::env::temp_dir().join(format!("lt-dir-bytes-{}", std::process::id()));
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("x"), [0u8; 100]).unwrap();
        std::fs::write(d.join("a/b/y"), [0u8; 23]).unwrap();
        assert_eq!(super::dir_bytes(&d), Some(123));
        assert_eq!(super::dir_bytes(&d.join("none")), None);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
