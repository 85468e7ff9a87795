//! Working days (工作日) in mainland China, for notice periods counted in working days (Huai'an Art. 22(4),
//! seed 000_a49834594c269b75.txt).
//!
//! A calendar is data: `profiles/calendar/*.toml`, one entry per year with the State Council's holiday
//! days and make-up working days (调休上班). A working day is Monday to Friday and not a holiday, or a
//! listed make-up day.
//!
//! The State Council publishes next year's schedule in November or December, after the binary that
//! ships this calendar was built. So a calendar can be extended at run time ([`Calendar::extend`], the
//! `--calendar` option of `claimgate score`): a year given in a loaded file replaces the shipped one.
//! A notice period that runs into a year no file lists is never refused and never silently guessed:
//! it is counted on weekends only, and [`Counted::unlisted`] names the years so counted, so that the
//! caller marks the period *provisional* and a later run with the calendar replaces it.

use std::collections::{BTreeMap, BTreeSet};

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
        /// The calendar's name (or the file it was read from).
        calendar: String,
        /// What is wrong.
        message: String,
    },
    /// No such shipped calendar.
    #[error("no shipped calendar named `{0}` (shipped: cn-workdays)")]
    UnknownName(String),
    /// A date falls in a year the calendar does not list.
    #[error(
        "calendar {calendar} has no holiday list for {year}: load the State Council's holiday notice for {year} with `--calendar FILE` (format: profiles/calendar/{calendar}.toml)"
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
    source: String,
    #[serde(default)]
    #[allow(dead_code)] // documentation in the data file; read so that the key is accepted
    confirmed: bool,
    holidays: Vec<String>,
    makeup_workdays: Vec<String>,
}

/// One year of the State Council's schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Year {
    /// Where it comes from (the notice's number), for messages.
    source: String,
    holidays: BTreeSet<NaiveDate>,
    makeup: BTreeSet<NaiveDate>,
}

/// A working-day calendar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calendar {
    /// Its name.
    pub name: String,
    years: BTreeMap<i32, Year>,
}

/// A day counted in working days, and the years whose holidays were not known while counting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counted {
    /// The day reached.
    pub day: NaiveDate,
    /// Years the count crossed that the calendar does not list: their days were counted as working
    /// days Monday to Friday (weekends only skipped). Empty: the count is final.
    pub unlisted: BTreeSet<i32>,
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

    /// Parses and checks a calendar: dates real and each in the year its entry names, each date listed
    /// once, make-up days on Saturdays or Sundays, each year once.
    ///
    /// A holiday period that begins in the last days of December (元旦 2023 began on Saturday
    /// 2022-12-31) is written under the year of the date, not the year of the notice.
    pub fn from_toml(name: &str, text: &str) -> Result<Calendar, CalendarError> {
        let invalid = |message: String| CalendarError::Invalid { calendar: name.to_owned(), message };
        let file: File = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut cal = Calendar { name: name.to_owned(), years: BTreeMap::new() };
        for y in &file.year {
            if cal.years.contains_key(&y.year) {
                return Err(invalid(format!("year {} is listed twice", y.year)));
            }
            let mut seen = BTreeSet::new();
            let mut date = |s: &str| {
                let d =
                    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| invalid(format!("`{s}` is not a date")))?;
                if d.year() != y.year {
                    return Err(invalid(format!("{s} is listed under year {}: list it under {}", y.year, d.year())));
                }
                if !seen.insert(d) {
                    return Err(invalid(format!("{s} is listed twice in year {}", y.year)));
                }
                Ok(d)
            };
            let mut year = Year { source: y.source.clone(), holidays: BTreeSet::new(), makeup: BTreeSet::new() };
            for h in &y.holidays {
                year.holidays.insert(date(h)?);
            }
            for m in &y.makeup_workdays {
                let d = date(m)?;
                if !is_weekend(d) {
                    return Err(invalid(format!(
                        "make-up working day {m} is a {}, not a Saturday or Sunday",
                        d.weekday()
                    )));
                }
                year.makeup.insert(d);
            }
            cal.years.insert(y.year, year);
        }
        Ok(cal)
    }

    /// Adds the years of `other` (a file loaded at run time) to this calendar; a year both list is
    /// taken from `other` (a newer notice, or a correction). Returns the years replaced.
    pub fn extend(&mut self, other: Calendar) -> Vec<i32> {
        let mut replaced = Vec::new();
        for (y, year) in other.years {
            if self.years.insert(y, year).is_some() {
                replaced.push(y);
            }
        }
        replaced
    }

    /// The years listed.
    pub fn years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.keys().copied()
    }

    /// Where a year's schedule comes from, as its entry says.
    pub fn source(&self, year: i32) -> Option<&str> {
        self.years.get(&year).map(|y| y.source.as_str())
    }

    /// Is this date a working day? An error for a year the calendar does not list.
    pub fn is_working_day(&self, d: NaiveDate) -> Result<bool, CalendarError> {
        let year =
            self.years.get(&d.year()).ok_or(CalendarError::Gap { calendar: self.name.clone(), year: d.year() })?;
        Ok(year.makeup.contains(&d) || (!is_weekend(d) && !year.holidays.contains(&d)))
    }

    /// The `n`-th working day after `d`: the first working day after `d` is day 1 (scoring.md,
    /// Huai'an Art. 22(4)). `n` 0 gives `d` itself. Days in a year the calendar does not list count
    /// Monday to Friday, and the year is named in [`Counted::unlisted`].
    pub fn nth_working_day_after(&self, d: NaiveDate, n: u32) -> Counted {
        let mut day = d;
        let mut left = n;
        let mut unlisted = BTreeSet::new();
        while left > 0 {
            // NaiveDate ends in the year 262143; a notice of a few weeks cannot get there from a
            // ledger date, which is parsed as yyyy-MM-dd.
            let Some(next) = day.succ_opt() else { break };
            day = next;
            let working = match self.is_working_day(day) {
                Ok(w) => w,
                Err(_) => {
                    unlisted.insert(day.year());
                    !is_weekend(day)
                }
            };
            if working {
                left -= 1;
            }
        }
        Counted { day, unlisted }
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
        // 元旦 2023 began on Saturday 2022-12-31, listed under 2022.
        assert!(!c.is_working_day(d("2022-12-31")).unwrap());
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
        let one = c.nth_working_day_after(d("2026-03-13"), 1);
        assert_eq!((one.day, one.unlisted.len()), (d("2026-03-16"), 0));
        assert_eq!(c.nth_working_day_after(d("2026-03-13"), 0).day, d("2026-03-13"));
    }

    #[test]
    fn a_count_into_an_unlisted_year_skips_weekends_only_and_names_the_year_huaian_22_4() {
        let c = Calendar::shipped("cn-workdays").unwrap();
        // Friday 2026-12-25: 12-28..31 are days 1-4 (2026, listed); 2027-01-01 (Friday) is day 5 since
        // 2027 is not listed (元旦 would be a holiday in any schedule: provisional), then weekdays to day 15
        // on Friday 2027-01-15.
        let n = c.nth_working_day_after(d("2026-12-25"), 15);
        assert_eq!(n.day, d("2027-01-15"));
        assert_eq!(n.unlisted.into_iter().collect::<Vec<_>>(), vec![2027]);
        // Within listed years nothing is provisional.
        assert!(c.nth_working_day_after(d("2026-12-01"), 15).unlisted.is_empty());
    }

    #[test]
    fn a_loaded_year_extends_the_calendar_and_replaces_a_shipped_one() {
        let mut c = Calendar::shipped("cn-workdays").unwrap();
        let text = "[[year]]\nyear = 2027\nsource = \"test\"\nholidays = [\"2027-01-01\", \"2027-01-04\"]\nmakeup_workdays = [\"2027-01-09\"]\n\n\
                    [[year]]\nyear = 2026\nholidays = []\nmakeup_workdays = []\n";
        let loaded = Calendar::from_toml("next.toml", text).unwrap();
        assert_eq!(c.extend(loaded), vec![2026]);
        assert!(!c.is_working_day(d("2027-01-04")).unwrap()); // a listed holiday, Monday
        assert!(c.is_working_day(d("2027-01-09")).unwrap()); // a listed make-up Saturday
        assert!(c.is_working_day(d("2026-10-01")).unwrap()); // the replaced 2026 lists no holidays
        let n = c.nth_working_day_after(d("2026-12-31"), 1);
        assert_eq!((n.day, n.unlisted.is_empty()), (d("2027-01-05"), true));
        assert_eq!(c.source(2027), Some("test"));
    }

    #[test]
    fn refuses_a_make_up_day_on_a_weekday() {
        let text = "[[year]]\nyear = 2026\nholidays = []\nmakeup_workdays = [\"2026-03-10\"]\n";
        let e = Calendar::from_toml("t", text).unwrap_err();
        assert!(e.to_string().contains("not a Saturday or Sunday"), "{e}");
        let text = "[[year]]\nyear = 2026\nholidays = [\"2026-02-30\"]\nmakeup_workdays = []\n";
        assert!(Calendar::from_toml("t", text).is_err());
    }

    #[test]
    fn refuses_a_date_listed_twice_or_under_another_year() {
        let twice = "[[year]]\nyear = 2027\nholidays = [\"2027-02-08\", \"2027-02-08\"]\nmakeup_workdays = []\n";
        let e = Calendar::from_toml("t.toml", twice).unwrap_err().to_string();
        assert_eq!(e, "calendar t.toml: 2027-02-08 is listed twice in year 2027");
        let both = "[[year]]\nyear = 2027\nholidays = [\"2027-02-06\"]\nmakeup_workdays = [\"2027-02-06\"]\n";
        assert!(Calendar::from_toml("t", both).unwrap_err().to_string().contains("listed twice"));
        let other = "[[year]]\nyear = 2027\nholidays = [\"2026-12-31\"]\nmakeup_workdays = []\n";
        let e = Calendar::from_toml("t", other).unwrap_err().to_string();
        assert!(e.contains("2026-12-31 is listed under year 2027"), "{e}");
        let year_twice = "[[year]]\nyear = 2027\nholidays = []\nmakeup_workdays = []\n\n\
                          [[year]]\nyear = 2027\nholidays = []\nmakeup_workdays = []\n";
        assert!(Calendar::from_toml("t", year_twice).unwrap_err().to_string().contains("year 2027 is listed twice"));
    }
}
