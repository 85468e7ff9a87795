//! The wall clock, read only here: Beijing time (UTC+8) as the national platform writes it.

use std::time::{SystemTime, UNIX_EPOCH};

use claimgate::record::BjTime;

const UTC_OFFSET_SECS: i64 = 8 * 3600;

/// Now, as Beijing time, with milliseconds.
pub fn now() -> (BjTime, u32) {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    (BjTime::from_secs(d.as_secs() as i64 + UTC_OFFSET_SECS), d.subsec_millis())
}

/// Now as `yyyy-MM-dd HH:mm:ss.SSS` (the `decided_at` / `received_at` form of records.md).
pub fn now_text() -> String {
    let (t, ms) = now();
    format!("{t}.{ms:03}")
}

/// Now as `yyyy-MM-dd HH:mm:ss`.
pub fn now_secs_text() -> String {
    now().0.to_string()
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
