//! `claimgate tables`: validate registry exports and write the binary snapshot; show a snapshot's
//! header.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::review::TableArgs;
use crate::io::clock;
use crate::io::files::Output;
use crate::io::progress::Progress;
use claimgate::table::snapshot;

/// `claimgate tables …`
#[derive(Subcommand, Debug)]
pub enum TablesCmd {
    /// Validate practitioner and institution records and write a binary snapshot. A bad line stops the
    /// build with its file name and line number; nothing is written then.
    Build(BuildArgs),
    /// Print what a snapshot holds (its header), without loading it.
    Inspect {
        /// The snapshot file.
        snapshot: PathBuf,
    },
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
        TablesCmd::Inspect { snapshot: path } => {
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
