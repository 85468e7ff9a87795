//! Any bytes are a claim line that records.md accepts — read exactly as the spec's independent reading
//! (`tests/oracle`) reads it, and decided into valid JSON — or a refusal with a reason that agrees on
//! the field at fault and makes a dead letter keeping the bytes. Never a panic, never an accept of a
//! line the spec refuses. The same property as `tests/fuzz_claims.rs`, driven by libFuzzer.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/oracle/mod.rs"]
mod oracle;

fuzz_target!(|bytes: &[u8]| {
    if let Err(e) = oracle::property::claim_line(bytes) {
        panic!("{e}");
    }
});
