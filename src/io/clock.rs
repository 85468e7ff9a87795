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

/// A Beijing time as milliseconds since the Unix epoch (Kafka's timestamps).
pub fn to_unix_ms(t: BjTime) -> i64 {
    t.secs().saturating_sub(UTC_OFFSET_SECS).saturating_mul(1000)
}

/// Milliseconds since the Unix epoch (a Kafka timestamp) as Beijing time, to the second.
pub fn from_unix_ms(ms: i64) -> BjTime {
    BjTime::from_secs(ms.div_euclid(1000) + UTC_OFFSET_SECS)
}
