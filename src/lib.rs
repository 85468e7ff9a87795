//! claimgate: decides, for every fee line a designated hospital or pharmacy settles with China's
//! medical-insurance fund, whether the practitioner who billed it may be paid.
//!
//! # Layout
//!
//! The folders follow a claim through the program; each layer uses only the layers above it in this
//! list, and nothing before [`io`] touches a socket, a file or the clock.
//!
//! - [`record`] — the words: codes, Beijing time, money, the claim line, status records, decision,
//!   dead letter. Bytes become typed values here, once.
//! - [`table`] — the status tables as of any instant: the compact practitioner table, institutions,
//!   the published view behind `arc-swap`, the binary snapshot.
//! - [`profile`] — region policy profiles, as data (`profiles/*.toml`, embedded).
//! - [`routing`] — several regions in one deployment: the profile in force for a line's area and
//!   service time, from a routing table that is data.
//! - [`decide`] — rules.md's order of checks: claim + view + profile → outcome. Pure.
//! - [`score`] — scoring.md: ledger of findings + profile → practitioner status periods and a report.
//!   Catalogues, working-day calendar, engine. Pure.
//! - [`synth`] — the synthetic data set (seeded, O(1) memory), for the demo, benchmarks and load test.
//! - [`batch`] — parse, route, decide and encode a line into its output record: the unit of work the
//!   stream and the bulk review share.
//!
//! The binary (`src/main.rs`, `src/cmd/`, `src/io/`) wires files, Kafka and HTTP around this core.

pub mod batch;
pub mod decide;
pub mod profile;
pub mod record;
pub mod routing;
pub mod score;
pub mod synth;
pub mod table;
