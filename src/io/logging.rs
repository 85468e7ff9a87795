//! Structured logs (`tracing`) on standard error: one line per event, text or JSON. Log lines carry
//! codes, offsets and counts — never a claim's `psn_no`, a person's name, or a secret.

use anyhow::{Result, anyhow};
use tracing_subscriber::EnvFilter;

/// Starts logging with `filter` (a `tracing` filter such as `info`), as text or JSON.
pub fn init(format: &str, filter: &str) -> Result<()> {
    let filter = EnvFilter::try_new(filter).map_err(|e| anyhow!("log filter `{filter}`: {e}"))?;
    use std::io::IsTerminal;
    // A log line that cannot be written (standard error on a full disk, a closed pipe) is dropped:
    // `log_internal_errors` would report it with `eprintln!`, which panics on the same failure, in
    // whichever thread logged — the claim pipeline, the status follower, librdkafka's callbacks — and a
    // second panic while unwinding aborts the process. Claims must not stop for the log's sake.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .log_internal_errors(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let result = if format == "json" {
        builder.json().flatten_event(true).with_current_span(false).try_init()
    } else {
        builder.try_init()
    };
    result.map_err(|e| anyhow!("cannot start logging: {e}"))
}

/// Logging for the batch subcommands: warnings only, unless `RUST_LOG` says otherwise.
pub fn init_default() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    let _ = init("text", &filter);
}
