//! The edges: files, snapshots, the clock, progress bars — and (in `kafka`) the broker and (in `http`)
//! the operations port. Everything that touches the world outside the process lives here.

pub mod alloc;
pub mod checkpoint;
pub mod claim_index;
pub mod clock;
pub mod files;
pub mod frames;
pub mod http;
pub mod kafka;
pub mod logging;
pub mod metrics;
pub mod progress;
pub mod registry;
pub mod shutdown;
pub mod tables;
