//! The `claimgate` binary: parse the command line, dispatch to a subcommand, map errors to exit codes.

mod cmd;
mod io;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// claimgate — the claim-settlement eligibility filter for China's medical-insurance fund.
///
/// Decides, for every fee line a designated institution settles, whether the practitioner who billed it
/// may be paid: inline on Kafka (`stream`), in bulk from files or a topic between two times (`review`),
/// from inspection findings to statuses (`score`), and with the status tables (`tables`).
#[derive(Parser, Debug)]
#[command(name = "claimgate", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Decide claims inline: consume `claims` from Kafka, produce decisions and dead letters.
    Stream(Box<cmd::stream::StreamArgs>),
    /// Re-decide claim lines — from files, or from a Kafka topic between two times — against the tables
    /// as of each line's service time, and report.
    Review(Box<cmd::review::ReviewArgs>),
    /// From inspection findings to status: score a ledger under a profile's rules and write practitioner
    /// records with the suspensions and terminations it derives, and a report (scoring.md).
    Score(cmd::score::ScoreArgs),
    /// Status tables: validate registry exports, write binary snapshots.
    #[command(subcommand)]
    Tables(cmd::tables::TablesCmd),
    /// Generate a realistic synthetic data set (seeded, reproducible).
    Gen(cmd::synth::GenArgs),
    /// Produce a file of claim lines to a topic (keyed `fixmedins_code|mdtrt_id`).
    Send(cmd::tools::SendArgs),
    /// Read decision topics from the beginning and count records by topic and reason.
    Tail(cmd::tools::TailArgs),
    /// Send dead letters back to the claims topic once their cause is fixed: a filter, a dry run, each
    /// batch one transaction with the replay's position (an interrupted replay resumes, nothing twice).
    Replay(cmd::replay::ReplayArgs),
    /// Bearer tokens for the operations port's `/v1/…` queries: `tokens new` makes one for a caller.
    #[command(subcommand)]
    Tokens(cmd::tokens::TokensCmd),
    /// Kafka topics: create the six topics claimgate uses.
    #[command(subcommand)]
    Topics(cmd::topics::TopicsCmd),
}

fn main() -> ExitCode {
    io::alloc::fix_mmap_threshold();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Stream(_)) {
        io::logging::init_default();
    }
    let result = match cli.command {
        Command::Stream(args) => cmd::stream::run(*args),
        Command::Topics(c) => cmd::topics::run(c),
        Command::Tokens(c) => cmd::tokens::run(c),
        Command::Replay(args) => cmd::replay::run(args),
        Command::Send(args) => cmd::tools::send(args),
        Command::Tail(args) => cmd::tools::tail(args),
        Command::Review(args) => cmd::review::run(*args),
        Command::Score(args) => cmd::score::run(args),
        Command::Tables(c) => cmd::tables::run(c),
        Command::Gen(args) => cmd::synth::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Not `eprintln!`: it panics when standard error cannot be written (a full disk).
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A reader that went away (`claimgate review --out - | head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
