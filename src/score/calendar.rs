//! Working days (工作日) in mainland China, for notice periods counted in working days (Huai'an Art. 22(4),
//! seed 000_a49834594c269b75.txt).
//!
//! A calendar is data: `profiles/calendar/*.toml`, one entry per year with the State Council's holiday
//! days and make-up working days (调休上班). A working day is Monday to Friday and not a holiday, or a
//! listed make-up day. A date in a year the calendar does not cover is an error, never a guess: a notice
//! period that ran over an unlisted Spring Festival would start a suspension on the wrong day.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;

/// The calendars compiled into the binary, by name.
pub const SHIPPED: [(&str, &str); 1] = [("cn-workdays", include_str!("../../profiles/calendar/cn-workdays.toml"))];

/// Why a calendar was refused or could not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// The file is not valid, or a date in it is wrong.
    #[error("calendar {calendar}: {message}")]
    Invalid {
        /// The calendar's name.
        calendar: String,
        /// What is wrong.
        message: String,
    },
    /// No such shipped calendar.
    #[error("no shipped calendar named `{0}` (shipped: cn-workdays)")]
    UnknownName(String),
    /// A date falls in a year the calendar does not list.
    #[error(
        "calendar {calendar} has no holiday list for {year}: add the State Council's holiday notice for {year} to profiles/calendar/{calendar}.toml"
    )]
    Gap {
        /// The calendar's name.
        calendar: String,
        /// The year missing.
        year: i32,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    year: Vec<YearFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YearFile {
    year: i32,
    #[serde(default)]
    #[allow(dead_code)] // documentation in the data file; read so that the key is accepted
    source: String,
    #[serde(default)]
    #[allow(dead_code)]
    confirmed: bool,
    holidays: Vec<String>,
    makeup_workdays: Vec<String>,
}

/// A working-day calendar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calendar {
    /// Its name.
    pub name: String,
    years: BTreeSet<i32>,
    holidays: BTreeSet<NaiveDate>,
    makeup: BTreeSet<NaiveDate>,
}

fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

impl Calendar {
    /// A shipped calendar by name.
    pub fn shipped(name: &str) -> Result<Calendar, CalendarError> {
        let (_, text) =
            SHIPPED.iter().find(|(n, _)| *n == name).ok_or_else(|| CalendarError::UnknownName(name.to_owned()))?;
        Calendar::from_toml(name, text)
    }

    /// Parses and checks a calendar: dates real, make-up days on Saturdays or Sundays, no date both a
    /// holiday and a make-up day, each year once.
    pub fn from_toml(name: &str, text: &str) -> Result<Calendar, CalendarError> {
        let invalid = |message: String| CalendarError::Invalid { calendar: name.to_owned(), message };
        let file: File = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut cal = Calendar {
            name: name.to_owned(),
            years: BTreeSet::new(),
            holidays: BTreeSet::new(),
            makeup: BTreeSet::new(),
        };
        for y in &file.year {
            if !cal.years.insert(y.year) {
                return Err(invalid(format!("year {} is listed twice", y.year)));
            }
            let date = |s: &str| {
                let d =
                    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| invalid(format!("`{s}` is not a date")))?;
                // A holiday period may begin in the last days of the previous year (元旦 2023 began on
                // 2022-12-31), never further away.
                if (d.year() - y.year).abs() > 1 {
                    return Err(invalid(format!("`{s}` is listed under year {}", y.year)));
                }
                Ok(d)
            };
            for h in &y.holidays {
                cal.holidays.insert(date(h)?);
            }
            for m in &y.makeup_workdays {
                let d = date(m)?;
                if !is_weekend(d) {
                    return Err(invalid(format!(
                        "make-up working day {m} is a {}, not a Saturday or Sunday",
                        d.weekday()
                    )));
                }
                cal.makeup.insert(d);
            }
        }
        if let Some(d) = cal.holidays.intersection(&cal.makeup).next() {
            return Err(invalid(format!("{d} is both a holiday and a make-up working day")));
        }
        Ok(cal)
    }

    /// Is this date a working day? An error for a year the calendar does not list.
    pub fn is_working_day(&self, d: NaiveDate) -> Result<bool, CalendarError> {
        if !self.years.contains(&d.year()) {
            return Err(CalendarError::Gap { calendar: self.name.clone(), year: d.year() });
        }
        Ok(self.makeup.contains(&d) || (!is_weekend(d) && !self.holidays.contains(&d)))
    }

    /// The `n`-th working day after `d`: the first working day after `d` is day 1 (scoring.md,
    /// Huai'an Art. 22(4)). `n` 0 gives `d` itself.
    pub fn nth_working_day_after(&self, d: NaiveDate, n: u32) -> Result<NaiveDate, CalendarError> {
        let mut day = d;
        let mut left = n;
        while left > 0 {
            day =
                day.succ_opt().ok_or_else(|| CalendarError::Gap { calendar: self.name.clone(), year: d.year() + 1 })?;
            if self.is_working_day(day)? {
                left -= 1;
            }
        }
        Ok(day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn shipped_calendar_loads_and_knows_2020_to_2026() {
        let c = Calendar::shipped("cn-workdays").unwrap();
        for y in 2020..=2026 {
            assert!(c.is_working_day(d(&format!("{y}-03-02"))).is_ok(), "{y}");
        }
        assert!(matches!(c.is_working_day(d("2027-03-01")), Err(CalendarError::Gap { year: 2027, .. })));
    }

    #[test]
    fn weekends_holidays_and_make_up_days() {
        let c = Calendar::shipped("cn-workdays").unwrap();
        assert!(c.is_working_day(d("2026-03-10")).unwrap()); // Tuesday
        assert!(!c.is_working_day(d("2026-03-14")).unwrap()); // Saturday
        assert!(!c.is_working_day(d("2026-10-01")).unwrap()); // National Day, Thursday
        assert!(c.is_working_day(d("2026-10-10")).unwrap()); // make-up Saturday
        assert!(!c.is_working_day(d("2026-02-16")).unwrap()); // Spring Festival, Monday
        assert!(c.is_working_day(d("2026-02-14")).unwrap()); // make-up Saturday
    }

    #[test]
    fn day_one_is_the_first_working_day_after() {
        let c = Calendar::shipped("cn-workdays").unwrap();
        // Friday 2026-03-13: day 1 is Monday 2026-03-16.
        assert_eq!(c.nth_working_day_after(d("2026-03-13"), 1).unwrap(), d("2026-03-16"));
        assert_eq!(c.nth_working_day_after(d("2026-03-13"), 0).unwrap(), d("2026-03-13"));
    }

    #[test]
    fn refuses_a_make_up_day_on_a_weekday() {
        let text = "[[year]]\nyear = 2026\nholidays = []\nmakeup_workdays = [\"2026-03-10\"]\n";
        let e = Calendar::from_toml("t", text).unwrap_err();
        assert!(e.to_string().contains("not a Saturday or Sunday"), "{e}");
        let text = "[[year]]\nyear = 2026\nholidays = [\"2026-02-30\"]\nmakeup_workdays = []\n";
        assert!(Calendar::from_toml("t", text).is_err());
    }
}
