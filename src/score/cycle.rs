//! Scoring cycles: the natural year (Qinghai Art. 10(1), Huai'an Art. 13) or consecutive service
//! agreements from the first registration (Lanzhou Art. 6(3), 11), and the calendar-month arithmetic
//! their periods use (scoring.md: 2026-03-10 plus one month is 2026-04-10).

use chrono::{Datelike, Months, NaiveDate};

use super::rules::CycleKind;

/// One cycle: `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    /// First day.
    pub start: NaiveDate,
    /// First day after.
    pub end: NaiveDate,
}

/// `d` plus `n` calendar months (negative: minus). The day is kept, or the month's last day where the
/// month is shorter (2026-01-31 plus one month is 2026-02-28).
pub fn add_months(d: NaiveDate, n: i64) -> NaiveDate {
    let m = Months::new(u32::try_from(n.unsigned_abs()).unwrap_or(u32::MAX));
    let moved = if n >= 0 { d.checked_add_months(m) } else { d.checked_sub_months(m) };
    // Only out of chrono's range (±262,000 years) is there no answer; the dates here lie within
    // 1900-2199 plus at most a few years, so the fallback is never taken. Saturate rather than panic.
    moved.unwrap_or(if n >= 0 { NaiveDate::MAX } else { NaiveDate::MIN })
}

/// The first day of a natural year.
fn new_year(y: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, 1, 1).unwrap_or(NaiveDate::MIN)
}

/// The cycle holding `day`. For agreements, `anchors` are the days agreements (re)start, ascending:
/// the governing anchor is the last one on or before `day`, and agreements follow it every `months`,
/// the last one cut short by the next anchor. `None` for an agreement cycle with no anchor, or for a
/// day before the first agreement (Lanzhou Art. 6(3): the first agreement is signed at the first
/// registration; before it there is none to count in).
pub fn cycle_of(kind: &CycleKind, anchors: &[NaiveDate], day: NaiveDate) -> Option<Span> {
    match kind {
        CycleKind::Year => Some(Span { start: new_year(day.year()), end: new_year(day.year() + 1) }),
        CycleKind::Agreement { months } => {
            let at = anchors.iter().rposition(|a| *a <= day)?;
            let anchor = *anchors.get(at)?;
            let m = i64::from(*months);
            let mut k: i64 = 0;
            while add_months(anchor, (k + 1) * m) <= day {
                k += 1;
            }
            while add_months(anchor, k * m) > day {
                k -= 1;
            }
            let start = add_months(anchor, k * m);
            let mut end = add_months(anchor, (k + 1) * m);
            if let Some(next) = anchors.get(at + 1).filter(|n| **n > start) {
                end = end.min(*next);
            }
            Some(Span { start, end })
        }
    }
}

/// The cycle just before `span`.
pub fn previous(kind: &CycleKind, anchors: &[NaiveDate], span: Span) -> Option<Span> {
    cycle_of(kind, anchors, span.start.pred_opt()?)
}

/// "2026", or "the agreement period 2024-03-01 to 2026-03-01".
pub fn label(kind: &CycleKind, span: Span) -> String {
    match kind {
        CycleKind::Year => span.start.year().to_string(),
        CycleKind::Agreement { .. } => format!("the agreement period {} to {}", span.start, span.end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn calendar_months_keep_the_day_scoring_md() {
        assert_eq!(add_months(d("2026-03-10"), 1), d("2026-04-10"));
        assert_eq!(add_months(d("2026-01-31"), 1), d("2026-02-28"));
        assert_eq!(add_months(d("2026-03-10"), -1), d("2026-02-10"));
        assert_eq!(add_months(d("2026-03-10"), 12), d("2027-03-10"));
    }

    #[test]
    fn natural_year_qinghai_10_1() {
        let s = cycle_of(&CycleKind::Year, &[], d("2026-07-01")).unwrap();
        assert_eq!((s.start, s.end), (d("2026-01-01"), d("2027-01-01")));
        assert_eq!(label(&CycleKind::Year, s), "2026");
        assert_eq!(previous(&CycleKind::Year, &[], s).unwrap().start, d("2025-01-01"));
    }

    #[test]
    fn two_year_agreements_from_the_first_registration_lanzhou_6_3() {
        let k = CycleKind::Agreement { months: 24 };
        let anchors = [d("2024-03-01")];
        let first = cycle_of(&k, &anchors, d("2026-02-28")).unwrap();
        assert_eq!((first.start, first.end), (d("2024-03-01"), d("2026-03-01")));
        let second = cycle_of(&k, &anchors, d("2026-03-01")).unwrap();
        assert_eq!((second.start, second.end), (d("2026-03-01"), d("2028-03-01")));
        // Before the first registration there is no agreement (issue 12: one was invented).
        assert_eq!(cycle_of(&k, &anchors, d("2024-02-29")), None);
        assert_eq!(previous(&k, &anchors, first), None);
        assert_eq!(cycle_of(&k, &[], d("2026-01-01")), None);
        // A new agreement after requalification cuts the running one short.
        let anchors = [d("2024-03-01"), d("2025-06-01")];
        assert_eq!(cycle_of(&k, &anchors, d("2025-01-01")).unwrap().end, d("2025-06-01"));
        assert_eq!(cycle_of(&k, &anchors, d("2025-07-01")).unwrap().start, d("2025-06-01"));
    }
}
