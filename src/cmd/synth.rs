//! `claimgate gen`: write the synthetic data set (practitioners, institutions, a day of claims).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::io::files::Output;
use crate::io::progress::Progress;
use claimgate::record::BjTime;
use claimgate::synth::{GenConfig, MAX_PRACTITIONERS, World};

/// Arguments of `claimgate gen`.
#[derive(Args, Debug)]
pub struct GenArgs {
    /// Directory to write `practitioners.jsonl`, `institutions.jsonl` and `claims.jsonl[.zst|.gz]` into.
    #[arg(long, default_value = "demo", value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Practitioners in the status table (up to 60 million).
    #[arg(long, default_value_t = 100_000)]
    pub practitioners: u64,
    /// Claim lines in the day.
    #[arg(long, default_value_t = 1_000_000)]
    pub claims: u64,
    /// The day the claims fall on (yyyy-MM-dd).
    #[arg(long, default_value = "2026-04-02")]
    pub day: String,
    /// Random seed: the same seed and sizes give the same files.
    #[arg(long, default_value_t = 20_240_423)]
    pub seed: u64,
    /// Share of malformed claim lines.
    #[arg(long, default_value_t = 0.001)]
    pub malformed_rate: f64,
    /// Compress the claims file: none, gz or zst.
    #[arg(long, default_value = "none", value_parser = ["none", "gz", "zst"])]
    pub compress: String,
    /// Compress the practitioners file too (same choices).
    #[arg(long, default_value = "none", value_parser = ["none", "gz", "zst"])]
    pub compress_tables: String,
    /// Also write `ledger.jsonl`: this many scoring events (findings mostly) naming the practitioners
    /// written, for `claimgate score` at scale.
    #[arg(long, value_name = "EVENTS")]
    pub ledger: Option<u64>,
    /// The profile the ledger is valid under (its catalogue items, its event types).
    #[arg(long, default_value = claimgate::profile::DEFAULT, value_name = "NAME|FILE", requires = "ledger")]
    pub ledger_profile: String,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

fn with_ending(name: &str, compress: &str) -> String {
    match compress {
        "none" => name.to_owned(),
        c => format!("{name}.{c}"),
    }
}

/// Runs `claimgate gen`.
pub fn run(args: GenArgs) -> Result<()> {
    let Ok(day) = BjTime::parse(&args.day) else { bail!("--day: expected yyyy-MM-dd, got `{}`", args.day) };
    if args.practitioners == 0 || args.practitioners > MAX_PRACTITIONERS {
        bail!("--practitioners: between 1 and {MAX_PRACTITIONERS}");
    }
    if !(0.0..=1.0).contains(&args.malformed_rate) {
        bail!("--malformed-rate: between 0 and 1");
    }
    std::fs::create_dir_all(&args.out_dir).with_context(|| format!("cannot create {}", args.out_dir.display()))?;
    let world = World::new(GenConfig {
        seed: args.seed,
        practitioners: args.practitioners,
        claims: args.claims,
        day,
        malformed_rate: args.malformed_rate,
    });
    let progress = Progress::new(args.quiet);

    let p_path = args.out_dir.join(with_ending("practitioners.jsonl", &args.compress_tables));
    let mut out = Output::create(&p_path)?;
    let bar = progress.items(args.practitioners, "practitioners");
    world.write_practitioners(&mut out, |i| bar.set_position(i))?;
    out.finish()?;
    bar.finish_and_clear();

    let i_path = args.out_dir.join("institutions.jsonl");
    let mut out = Output::create(&i_path)?;
    let institutions = world.write_institutions(&mut out)?;
    out.finish()?;

    let c_path = args.out_dir.join(with_ending("claims.jsonl", &args.compress));
    let mut out = Output::create(&c_path)?;
    let bar = progress.items(args.claims, "claims");
    for (n, line) in world.claims().enumerate() {
        out.write_all(&line.bytes)?;
        out.write_all(b"\n")?;
        if n % 65_536 == 0 {
            bar.set_position(n as u64);
        }
    }
    out.finish()?;
    bar.finish_and_clear();
    if let Some(n) = args.ledger {
        let rules = claimgate::score::Scoring::from_profile(&super::review::load_profile(&args.ledger_profile)?)?;
        let path = args.out_dir.join("ledger.jsonl");
        let mut out = Output::create(&path)?;
        for event in world.ledger(&rules, n) {
            out.write_all(event.to_string().as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.finish()?;
        eprintln!("wrote {} ({n} events under {})", path.display(), rules.profile);
    }
    eprintln!(
        "wrote {} ({} practitioners), {} ({} of {} institutions have a status history), {} ({} claim lines on {})",
        p_path.display(),
        args.practitioners,
        i_path.display(),
        institutions,
        world.institution_count(),
        c_path.display(),
        args.claims,
        args.day
    );
    Ok(())
}
