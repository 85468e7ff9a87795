//! One module per subcommand. Each parses its arguments, wires the edges (`crate::io`) around the core
//! library, and returns an error with context for `main` to print.

pub mod import;
pub mod replay;
pub mod review;
pub mod score;
pub mod score_publish;
pub mod stream;
pub mod sync;
pub mod synth;
pub mod tables;
pub mod tokens;
pub mod tools;
pub mod topics;
