//! The `claimgate` binary: parse the command line, dispatch to a subcommand, map errors to exit codes.

mod cmd;
mod io;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// claimgate — the claim-settlement eligibility filter for China's medical-insurance fund.
///
/// Decides, for every fee line a designated institution settles, whether the practitioner who billed it
/// may be paid: inline on Kafka (`stream`), in bulk from files (`review`), from inspection findings to
/// statuses (`score`), and with the status tables (`tables`).
#[derive(Parser, Debug)]
#[command(name = "claimgate", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Re-decide claim lines from files against the tables as of each line's service time, and report.
    Review(cmd::review::ReviewArgs),
    /// Status tables: validate registry exports, write binary snapshots.
    #[command(subcommand)]
    Tables(cmd::tables::TablesCmd),
    /// Generate a realistic synthetic data set (seeded, reproducible).
    Gen(cmd::synth::GenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Review(args) => cmd::review::run(args),
        Command::Tables(c) => cmd::tables::run(c),
        Command::Gen(args) => cmd::synth::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A reader that went away (`claimgate review --out - | head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
