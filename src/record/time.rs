//! Beijing time (UTC+8), as written on the national medical-insurance platform.
//!
//! A [`BjTime`] is a count of seconds since 1970-01-01 00:00:00 *Beijing wall-clock time*. Beijing
//! has had no daylight saving since 1991, so wall-clock arithmetic is exact and no time-zone database
//! is needed. Parsing is hand-written because it sits on the hot path of every claim line; calendar
//! arithmetic off the hot path (months, weekdays) goes through `chrono`.

use std::fmt;

use chrono::{Datelike, NaiveDate};

/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// A Beijing-time instant with one-second resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BjTime(i64);

/// Why a time text was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Neither `yyyy-MM-dd HH:mm:ss` nor `yyyy-MM-dd`.
    #[error("expected `yyyy-MM-dd HH:mm:ss` or `yyyy-MM-dd`")]
    Format,
    /// The fields have the right shape but name no real date or time of day.
    #[error("no such date or time of day")]
    Range,
}

/// The earliest year accepted. Older dates in a claim are typing errors, not history.
const MIN_YEAR: i64 = 1900;
/// The latest year accepted.
const MAX_YEAR: i64 = 2199;

impl BjTime {
    /// The earliest representable instant; used as "since always".
    pub const MIN: BjTime = BjTime(i64::MIN);
    /// The latest representable instant; used as "open-ended".
    pub const MAX: BjTime = BjTime(i64::MAX);

    /// From seconds since 1970-01-01 00:00:00 Beijing time.
    pub const fn from_secs(secs: i64) -> Self {
        BjTime(secs)
    }

    /// Seconds since 1970-01-01 00:00:00 Beijing time.
    pub const fn secs(self) -> i64 {
        self.0
    }

    /// Midnight at the start of the given calendar date; `None` if the date does not exist.
    pub fn from_ymd(year: i64, month: u32, day: u32) -> Option<Self> {
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) || !(1..=12).contains(&month) {
            return None;
        }
        if day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(BjTime(days_from_civil(year, month, day) * DAY))
    }

    /// From a calendar date.
    pub fn from_date(date: NaiveDate) -> Self {
        BjTime(days_from_civil(i64::from(date.year()), date.month(), date.day()) * DAY)
    }

    /// Parses `yyyy-MM-dd HH:mm:ss` or `yyyy-MM-dd` (midnight). Surrounding white space must already
    /// be removed.
    pub fn parse(text: &str) -> Result<Self, TimeError> {
        let b = text.as_bytes();
        if b.len() != 10 && b.len() != 19 {
            return Err(TimeError::Format);
        }
        if b[4] != b'-' || b[7] != b'-' {
            return Err(TimeError::Format);
        }
        let year = digits(&b[0..4])?;
        let month = digits(&b[5..7])?;
        let day = digits(&b[8..10])?;
        let date = BjTime::from_ymd(year, month as u32, day as u32).ok_or(TimeError::Range)?;
        if b.len() == 10 {
            return Ok(date);
        }
        if b[10] != b' ' || b[13] != b':' || b[16] != b':' {
            return Err(TimeError::Format);
        }
        let (h, m, s) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
        if h > 23 || m > 59 || s > 59 {
            return Err(TimeError::Range);
        }
        Ok(BjTime(date.0 + h * 3600 + m * 60 + s))
    }

    /// The calendar date this instant falls on.
    pub fn date(self) -> NaiveDate {
        let (y, m, d) = civil_from_days(self.0.div_euclid(DAY));
        // Invariant: civil_from_days yields a valid date for every day count in i64 / 86400 that
        // came from a valid BjTime; fall back to the epoch rather than panic on the sentinels.
        NaiveDate::from_ymd_opt(y as i32, m, d).unwrap_or_default()
    }

    /// Midnight at the start of this instant's day.
    pub fn start_of_day(self) -> Self {
        BjTime(self.0.div_euclid(DAY) * DAY)
    }

    /// This instant plus whole days.
    pub fn plus_days(self, days: i64) -> Self {
        BjTime(self.0.saturating_add(days.saturating_mul(DAY)))
    }

    /// Appends `yyyy-MM-dd HH:mm:ss` to `out` (the hot path's form of `Display`).
    #[inline]
    pub fn write_bytes(self, out: &mut Vec<u8>) {
        let days = self.0.div_euclid(DAY);
        let secs = self.0.rem_euclid(DAY);
        let (y, m, d) = civil_from_days(days);
        if !(0..=9999).contains(&y) {
            out.extend_from_slice(self.to_string().as_bytes());
            return;
        }
        let y = y as u32;
        let two = |v: u32| [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
        let [y1, y2] = two(y / 100);
        let [y3, y4] = two(y % 100);
        let [m1, m2] = two(m);
        let [d1, d2] = two(d);
        let [h1, h2] = two((secs / 3600) as u32);
        let [n1, n2] = two((secs / 60 % 60) as u32);
        let [s1, s2] = two((secs % 60) as u32);
        out.extend_from_slice(&[y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2, b' ', h1, h2, b':', n1, n2, b':', s1, s2]);
    }
}

impl fmt::Display for BjTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(DAY);
        let secs = self.0.rem_euclid(DAY);
        let (y, m, d) = civil_from_days(days);
        write!(f, "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    }
}

/// Parses 1 to 4 ASCII digits.
fn digits(b: &[u8]) -> Result<i64, TimeError> {
    let mut v = 0i64;
    for &c in b {
        if !c.is_ascii_digit() {
            return Err(TimeError::Format);
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Ok(v)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_both_forms() {
        let t = BjTime::parse("2026-04-02 10:31:00").unwrap();
        assert_eq!(t.to_string(), "2026-04-02 10:31:00");
        let d = BjTime::parse("2026-04-02").unwrap();
        assert_eq!(d.to_string(), "2026-04-02 00:00:00");
        assert_eq!(t.secs() - d.secs(), 10 * 3600 + 31 * 60);
    }

    #[test]
    fn epoch_is_beijing_midnight() {
        assert_eq!(BjTime::parse("1970-01-01").unwrap().secs(), 0);
    }

    #[test]
    fn refuses_impossible_dates() {
        assert_eq!(BjTime::parse("2026-02-29"), Err(TimeError::Range));
        assert!(BjTime::parse("2024-02-29").is_ok());
        assert_eq!(BjTime::parse("2026-13-01"), Err(TimeError::Range));
        assert_eq!(BjTime::parse("2026-04-02 24:00:00"), Err(TimeError::Range));
        assert_eq!(BjTime::parse("2026-04-02T10:31:00"), Err(TimeError::Format));
        assert_eq!(BjTime::parse("2026/04/02"), Err(TimeError::Format));
        assert_eq!(BjTime::parse("0999-01-01"), Err(TimeError::Range));
        assert_eq!(BjTime::parse("２０２６-04-02"), Err(TimeError::Format));
        assert_eq!(BjTime::parse(""), Err(TimeError::Format));
    }

    #[test]
    fn write_bytes_matches_display() {
        for text in ["2026-04-02 10:31:00", "1970-01-01 00:00:00", "2199-12-31 23:59:59", "1900-01-01 00:00:01"] {
            let t = BjTime::parse(text).unwrap();
            let mut out = Vec::new();
            t.write_bytes(&mut out);
            assert_eq!(out, text.as_bytes());
        }
    }

    #[test]
    fn date_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
        assert_eq!(BjTime::from_date(d).date(), d);
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(secs in -2_000_000_000i64..7_000_000_000i64) {
            let t = BjTime::from_secs(secs);
            prop_assert_eq!(BjTime::parse(&t.to_string()), Ok(t));
        }

        #[test]
        fn agrees_with_chrono(y in 1900i32..2199, m in 1u32..=12, d in 1u32..=31) {
            let ours = BjTime::from_ymd(i64::from(y), m, d);
            let theirs = NaiveDate::from_ymd_opt(y, m, d);
            prop_assert_eq!(ours.is_some(), theirs.is_some());
            if let (Some(o), Some(t)) = (ours, theirs) {
                prop_assert_eq!(o.date(), t);
            }
        }

        #[test]
        fn never_panics(s in "\\PC{0,25}") {
            let _ = BjTime::parse(&s);
        }
    }
}
