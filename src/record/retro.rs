//! Late status changes (service.md, "The loop between inline and nightly"): a status record that
//! changes a code's status at times before it was recorded — a suspension decided on the 20th, effective
//! from the 1st; a registration back-dated; a period corrected or lifted. The inline filter decided the
//! claims of those times with the status as it stood then; a [`RetroChange`] says which code, which
//! window of service times and which entries changed, so that `review --retro` can re-review exactly
//! those claims (docs/status-retro.md).
//!
//! **The affected window** is where a decision could differ: the instants `t` at which what a decision
//! reads of the record differs between the record held before and the one applied — for a practitioner
//! the status in force at `t` (terminated wins over suspended) and the institutions registered at `t`;
//! for an institution the periods in force at `t` with their departments. Its hull is taken (one
//! interval: `from` is the first such instant, `until` the end of the last) and cut at
//! [`Recorded::applied_by`], the moment every instance has applied the change: claims decided after it
//! were decided with the new record already. A change that differs nowhere before then (a suspension
//! that starts next month, a new basis text, a version bump alone) is not late and gives none.
//! The changed entries (registrations and periods in one record and not in the other, a period being the
//! same whatever its basis text) that overlap the window are listed, with their `decision_id` and
//! `basis`, as the causes. Pure: the caller gives the records and the moment.

use serde::{Deserialize, Serialize};

use super::code::InstitutionCode;
use super::status::{Interval, Status};
use super::{BjTime, InstitutionRecord, PractitionerRecord};

/// Which table the code belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetroKind {
    /// A practitioner code: the claims that name the person in a code field a profile checks.
    Practitioner,
    /// An institution code: the claims the institution settled.
    Institution,
}

/// Added or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// In the new record, not in the old.
    Added,
    /// In the old record, not in the new.
    Removed,
}

/// One entry of a record that changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedEntry {
    /// Added or removed.
    pub change: Change,
    /// `registration`, `period` (a practitioner's or a whole institution's) or `department_period`.
    pub entry: String,
    /// A period's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// A registration's institution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub institution: Option<String>,
    /// A department period's departments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub departments: Option<Vec<String>>,
    /// Start.
    pub from: String,
    /// End (exclusive), or null.
    pub until: Option<String>,
    /// The decision that set the period, where the record names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<String>,
    /// The period's basis, where the record gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
}

/// A record of the `status.retro` topic, keyed by [`RetroChange::key`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetroChange {
    /// Practitioner or institution.
    pub kind: RetroKind,
    /// The code.
    pub code: String,
    /// The affected window of service times: first instant inside (module doc).
    pub from: String,
    /// First instant outside: at the latest when every instance had applied the change
    /// (`recorded_at` + [`APPLIED_WITHIN_S`]).
    pub until: String,
    /// The version held before (null: the code was new).
    pub version_before: Option<u64>,
    /// The version applied.
    pub version_after: u64,
    /// The entries that changed, in the window.
    pub changes: Vec<ChangedEntry>,
    /// When the status record was written (its broker timestamp), Beijing time.
    pub recorded_at: String,
    /// Where the status record is: `topic/partition@offset`.
    pub source: String,
}

impl RetroChange {
    /// The key on `status.retro`: `code@version` for practitioners, `institution/code@version` for
    /// institutions. Every stream instance that sees the change writes the same key, so the compacted
    /// topic keeps one copy and readers drop repeats.
    pub fn key(&self) -> String {
        match self.kind {
            RetroKind::Practitioner => format!("{}@{}", self.code, self.version_after),
            RetroKind::Institution => format!("institution/{}@{}", self.code, self.version_after),
        }
    }

    /// The window as an interval; `None` if the record's times do not parse.
    pub fn window(&self) -> Option<Interval> {
        Some(Interval { from: BjTime::parse(&self.from).ok()?, until: BjTime::parse(&self.until).ok()? })
    }

    /// The window, checked: a record another program wrote, or damaged, is refused with the reason
    /// (never a panic), so `review --retro` can report it.
    pub fn check(&self) -> Result<Interval, String> {
        let time = |field: &str, v: &str| BjTime::parse(v).map_err(|e| format!("`{field}` {v:?}: {e}"));
        let window = Interval { from: time("from", &self.from)?, until: time("until", &self.until)? };
        if window.until <= window.from {
            return Err(format!("an empty window: `until` {} is not after `from` {}", self.until, self.from));
        }
        time("recorded_at", &self.recorded_at)?;
        let code_ok = !self.code.is_empty() && self.code.len() <= 30 && self.code.bytes().all(|b| b.is_ascii_graphic());
        if !code_ok || (self.kind == RetroKind::Institution && InstitutionCode::parse(&self.code).is_err()) {
            return Err(format!(
                "`code` {:?} is not a {} code",
                self.code,
                match self.kind {
                    RetroKind::Practitioner => "practitioner",
                    RetroKind::Institution => "institution",
                }
            ));
        }
        Ok(window)
    }

    /// Until when the inline filter may have decided with the record before the change:
    /// `recorded_at` + [`APPLIED_WITHIN_S`] (`None` if `recorded_at` does not parse).
    pub fn applied_by(&self) -> Option<BjTime> {
        BjTime::parse(&self.recorded_at).ok().map(|t| BjTime::from_secs(t.secs() + APPLIED_WITHIN_S))
    }

    /// The entry that explains a change at service time `t`: an added entry in force at `t` (the new
    /// decision), else a removed one in force at `t` (the decision lifted), else the first added entry
    /// (a period shortened: the new record's), else the first one.
    pub fn cause_at(&self, t: BjTime) -> Option<&ChangedEntry> {
        let holds = |e: &&ChangedEntry| {
            let from = BjTime::parse(&e.from).unwrap_or(BjTime::MIN);
            let until = e.until.as_deref().and_then(|u| BjTime::parse(u).ok()).unwrap_or(BjTime::MAX);
            Interval { from, until }.contains(t)
        };
        let added = |e: &&ChangedEntry| e.change == Change::Added;
        self.changes
            .iter()
            .filter(added)
            .find(holds)
            .or_else(|| self.changes.iter().find(holds))
            .or_else(|| self.changes.iter().find(added))
            .or(self.changes.first())
    }
}

fn until_text(t: BjTime) -> Option<String> {
    (t != BjTime::MAX).then(|| t.to_string())
}

/// An entry with its interval, for the comparison.
struct Entry {
    during: Interval,
    text: ChangedEntry,
}

/// The affected window: the hull of the instants before `cut` at which `old(t)` and `new(t)` — what a
/// decision reads of the record at service time `t` — differ, and the changed entries that overlap it.
/// Both records are constant between consecutive entry boundaries, so each elementary interval is
/// judged by its first instant.
fn window_of<S: PartialEq>(
    entries: Vec<Entry>,
    bounds: &[Interval],
    old: impl Fn(BjTime) -> S,
    new: impl Fn(BjTime) -> S,
    cut: BjTime,
) -> Option<(Interval, Vec<ChangedEntry>)> {
    let mut points: Vec<BjTime> = bounds.iter().flat_map(|i| [i.from, i.until]).filter(|t| *t != BjTime::MAX).collect();
    points.sort_unstable();
    points.dedup();
    let mut hull: Option<(BjTime, BjTime)> = None;
    for (i, &p) in points.iter().enumerate() {
        if p >= cut {
            break;
        }
        if old(p) != new(p) {
            let end = points.get(i + 1).copied().unwrap_or(BjTime::MAX);
            hull = Some((hull.map_or(p, |h| h.0), end));
        }
    }
    let (from, until) = hull?;
    let window = Interval { from, until: until.min(cut) };
    // Touching counts: a period extended from the 10th to the 15th differs on [10th, 15th), and the old
    // period, ending on the 10th, is half of that change.
    let overlaps = |d: &Interval| d.from <= window.until && window.from <= d.until;
    Some((window, entries.into_iter().filter(|e| overlaps(&e.during)).map(|e| e.text).collect()))
}

/// What a decision reads of a practitioner record at `t`: the status (terminated wins over
/// suspended, rules.md) and the institutions the person is registered at.
fn practitioner_state(r: &PractitionerRecord, t: BjTime) -> (Option<Status>, Vec<InstitutionCode>) {
    let status = r.periods.iter().filter(|p| p.during.contains(t)).map(|p| p.status).max();
    let mut at: Vec<InstitutionCode> =
        r.registrations.iter().filter(|g| g.during.contains(t)).map(|g| g.institution).collect();
    at.sort_unstable();
    at.dedup();
    (status, at)
}

/// What a decision reads of an institution record at `t`: the periods in force, by departments.
fn institution_state(r: &InstitutionRecord, t: BjTime) -> Vec<(Option<Vec<Box<str>>>, Status)> {
    let mut v: Vec<_> =
        r.periods.iter().filter(|p| p.during.contains(t)).map(|p| (p.departments.clone(), p.status)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The longest a stream instance takes to apply a status record once written, with room: a late
/// change's window runs until the record's timestamp plus this, since until then an instance may still
/// have decided with the old record (service.md asks for a second).
pub const APPLIED_WITHIN_S: i64 = 60;

/// When a change was recorded, and until when the inline filter may still have decided with the old
/// record: the moment every instance has applied it (the window ends there).
#[derive(Clone, Copy, Debug)]
pub struct Recorded {
    /// The status record's timestamp.
    pub at: BjTime,
    /// `at` plus the longest a follower takes to apply a record.
    pub applied_by: BjTime,
}

/// The late change from practitioner record `old` (`None`: the code was new) to `new`; `None` if
/// nothing changed before the change was applied.
pub fn practitioner_change(
    old: Option<&PractitionerRecord>,
    new: &PractitionerRecord,
    recorded: Recorded,
    source: &str,
) -> Option<RetroChange> {
    let empty = PractitionerRecord { code: new.code.clone(), registrations: vec![], periods: vec![], version: 0 };
    let old_rec = old.unwrap_or(&empty);
    let mut entries = Vec::new();
    for (change, a, b) in [(Change::Added, new, old_rec), (Change::Removed, old_rec, new)] {
        for r in a.registrations.iter().filter(|r| !b.registrations.contains(r)) {
            entries.push(Entry {
                during: r.during,
                text: ChangedEntry {
                    change,
                    entry: "registration".into(),
                    status: None,
                    institution: Some(r.institution.to_string()),
                    departments: None,
                    from: r.during.from.to_string(),
                    until: until_text(r.during.until),
                    decision_id: None,
                    basis: None,
                },
            });
        }
        let same = |p: &super::Period| b.periods.iter().any(|q| q.status == p.status && q.during == p.during);
        for p in a.periods.iter().filter(|p| !same(p)) {
            entries.push(Entry {
                during: p.during,
                text: ChangedEntry {
                    change,
                    entry: "period".into(),
                    status: Some(p.status),
                    institution: None,
                    departments: None,
                    from: p.during.from.to_string(),
                    until: until_text(p.during.until),
                    decision_id: p.decision_id.clone(),
                    basis: p.basis.clone(),
                },
            });
        }
    }
    let bounds: Vec<Interval> = [old_rec, new]
        .iter()
        .flat_map(|r| r.registrations.iter().map(|g| g.during).chain(r.periods.iter().map(|p| p.during)))
        .collect();
    let (window, changes) = window_of(
        entries,
        &bounds,
        |t| practitioner_state(old_rec, t),
        |t| practitioner_state(new, t),
        recorded.applied_by,
    )?;
    Some(RetroChange {
        kind: RetroKind::Practitioner,
        code: new.code.to_string(),
        from: window.from.to_string(),
        until: window.until.to_string(),
        version_before: old.map(|o| o.version),
        version_after: new.version,
        changes,
        recorded_at: recorded.at.to_string(),
        source: source.to_owned(),
    })
}

/// The late change from institution record `old` to `new` (see [`practitioner_change`]).
pub fn institution_change(
    old: Option<&InstitutionRecord>,
    new: &InstitutionRecord,
    recorded: Recorded,
    source: &str,
) -> Option<RetroChange> {
    let empty = InstitutionRecord { code: new.code, periods: vec![], version: 0 };
    let old_rec = old.unwrap_or(&empty);
    let mut entries = Vec::new();
    for (change, a, b) in [(Change::Added, new, old_rec), (Change::Removed, old_rec, new)] {
        let same = |p: &super::InstitutionPeriod| {
            b.periods.iter().any(|q| q.status == p.status && q.during == p.during && q.departments == p.departments)
        };
        for p in a.periods.iter().filter(|p| !same(p)) {
            entries.push(Entry {
                during: p.during,
                text: ChangedEntry {
                    change,
                    entry: if p.departments.is_some() { "department_period" } else { "period" }.into(),
                    status: Some(p.status),
                    institution: None,
                    departments: p.departments.as_ref().map(|d| d.iter().map(|s| s.to_string()).collect()),
                    from: p.during.from.to_string(),
                    until: until_text(p.during.until),
                    decision_id: None,
                    basis: p.basis.clone(),
                },
            });
        }
    }
    let bounds: Vec<Interval> = [old_rec, new].iter().flat_map(|r| r.periods.iter().map(|p| p.during)).collect();
    let (window, changes) = window_of(
        entries,
        &bounds,
        |t| institution_state(old_rec, t),
        |t| institution_state(new, t),
        recorded.applied_by,
    )?;
    Some(RetroChange {
        kind: RetroKind::Institution,
        code: InstitutionCode::to_string(&new.code),
        from: window.from.to_string(),
        until: window.until.to_string(),
        version_before: old.map(|o| o.version),
        version_after: new.version,
        changes,
        recorded_at: recorded.at.to_string(),
        source: source.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{InstitutionText, PractitionerText};

    fn prac(json: &str) -> PractitionerRecord {
        PractitionerText::from_json(json.as_bytes()).unwrap().validate().unwrap()
    }

    fn t(s: &str) -> BjTime {
        BjTime::parse(s).unwrap()
    }

    fn at(s: &str) -> Recorded {
        Recorded { at: t(s), applied_by: t(s) }
    }

    const REG: &str = r#""registrations":[{"institution":"H11010500001","from":"2021-01-01"}]"#;

    /// The issue's case: a suspension decided on the 20th, effective from the 1st, is late for the
    /// claims of the 1st to the 20th; the rest of the period is for the inline filter.
    #[test]
    fn a_suspension_recorded_after_it_began_is_late_from_its_start_to_when_it_was_recorded() {
        let v1 = prac(&format!(r#"{{"code":"D110105000001",{REG},"version":1}}"#));
        let v2 = prac(&format!(
            r#"{{"code":"D110105000001",{REG},"periods":[{{"status":"suspended","from":"2026-03-01","until":"2026-06-01",
            "basis":"national-2024 Art. 11(2)","decision_id":"QH-2026-0031"}}],"version":2}}"#
        ));
        let c = practitioner_change(Some(&v1), &v2, at("2026-03-20 10:00:00"), "practitioners/0@7").unwrap();
        assert_eq!((c.from.as_str(), c.until.as_str()), ("2026-03-01 00:00:00", "2026-03-20 10:00:00"));
        assert_eq!((c.version_before, c.version_after), (Some(1), 2));
        assert_eq!(c.key(), "D110105000001@2");
        assert_eq!(c.changes.len(), 1);
        assert_eq!(c.changes[0].change, Change::Added);
        assert_eq!(c.changes[0].decision_id.as_deref(), Some("QH-2026-0031"));
        assert_eq!(c.cause_at(t("2026-03-05")).unwrap().basis.as_deref(), Some("national-2024 Art. 11(2)"));
        let back: RetroChange = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.window().unwrap(), Interval { from: t("2026-03-01"), until: t("2026-03-20 10:00:00") });
    }

    #[test]
    fn a_change_that_starts_after_it_was_recorded_is_not_late() {
        let v1 = prac(&format!(r#"{{"code":"D110105000001",{REG},"version":1}}"#));
        let v2 = prac(&format!(
            r#"{{"code":"D110105000001",{REG},"periods":[{{"status":"suspended","from":"2026-04-01"}}],"version":2}}"#
        ));
        assert!(practitioner_change(Some(&v1), &v2, at("2026-03-20"), "p").is_none());
        // The same record with nothing changed but its version: nothing late either.
        let v3 = prac(&format!(r#"{{"code":"D110105000001",{REG},"version":3}}"#));
        assert!(practitioner_change(Some(&v1), &v3, at("2026-03-20"), "p").is_none());
    }

    #[test]
    fn a_lifted_suspension_and_a_back_dated_registration_are_late_too() {
        let suspended = prac(&format!(
            r#"{{"code":"D110105000001",{REG},"periods":[{{"status":"suspended","from":"2026-01-01","until":"2026-02-01"}}],"version":4}}"#
        ));
        let lifted = prac(&format!(r#"{{"code":"D110105000001",{REG},"version":5}}"#));
        let c = practitioner_change(Some(&suspended), &lifted, at("2026-03-01"), "p").unwrap();
        assert_eq!((c.from.as_str(), c.until.as_str()), ("2026-01-01 00:00:00", "2026-02-01 00:00:00"));
        assert_eq!(c.changes[0].change, Change::Removed);
        // A new code registered since 2025: its claims until now were refused as unregistered.
        let new = prac(
            r#"{"code":"D110105000009","registrations":[{"institution":"H11010500001","from":"2025-06-01"}],"version":1}"#,
        );
        let c = practitioner_change(None, &new, at("2026-03-01"), "p").unwrap();
        assert_eq!((c.from.as_str(), c.version_before), ("2025-06-01 00:00:00", None));
        assert_eq!(c.changes[0].institution.as_deref(), Some("H11010500001"));
    }

    #[test]
    fn an_institution_department_period_back_dated_is_late() {
        let i = |json: &str| InstitutionText::from_json(json.as_bytes()).unwrap().validate().unwrap();
        let v1 = i(r#"{"code":"H11010500001","periods":[],"version":1}"#);
        let v2 = i(
            r#"{"code":"H11010500001","periods":[{"status":"suspended","from":"2026-02-01","until":"2026-03-01","departments":["A03.06"],"basis":"Shaoguan Art. 37(5)"}],"version":2}"#,
        );
        let c = institution_change(Some(&v1), &v2, at("2026-02-10"), "institutions/0@3").unwrap();
        assert_eq!(c.key(), "institution/H11010500001@2");
        assert_eq!(c.changes[0].entry, "department_period");
        assert_eq!(c.until, "2026-02-10 00:00:00");
    }

    /// The window is where a decision could differ, not the span of every entry that changed.
    #[test]
    fn the_window_is_where_the_status_differs_only() {
        let with = |periods: &str, v: u64| {
            prac(&format!(r#"{{"code":"D110105000001",{REG},"periods":[{periods}],"version":{v}}}"#))
        };
        // Extended from the 10th to the 15th: only the 10th to the 15th differ.
        let old = with(r#"{"status":"suspended","from":"2026-03-01","until":"2026-03-10"}"#, 1);
        let new = with(r#"{"status":"suspended","from":"2026-03-01","until":"2026-03-15"}"#, 2);
        let c = practitioner_change(Some(&old), &new, at("2026-03-20"), "p").unwrap();
        assert_eq!((c.from.as_str(), c.until.as_str()), ("2026-03-10 00:00:00", "2026-03-15 00:00:00"));
        assert_eq!(c.changes.len(), 2, "the period removed and the one added both overlap it");
        // A suspension inside a termination: terminated wins either way, nothing differs.
        let old = with(r#"{"status":"terminated","from":"2026-01-01"}"#, 1);
        let new = with(
            r#"{"status":"terminated","from":"2026-01-01"},{"status":"suspended","from":"2026-02-01","until":"2026-03-01"}"#,
            2,
        );
        assert!(practitioner_change(Some(&old), &new, at("2026-03-20"), "p").is_none());
        // Cut when it was applied everywhere.
        let old = with("", 1);
        let new = with(r#"{"status":"suspended","from":"2026-03-01"}"#, 2);
        let applied = Recorded { at: t("2026-03-20 10:00:00"), applied_by: t("2026-03-20 10:01:00") };
        let c = practitioner_change(Some(&old), &new, applied, "p").unwrap();
        assert_eq!(c.until, "2026-03-20 10:01:00");
        assert_eq!(c.check(), Ok(Interval { from: t("2026-03-01"), until: t("2026-03-20 10:01:00") }));
    }

    #[test]
    fn a_damaged_record_is_refused_with_the_reason() {
        let mut c: RetroChange = serde_json::from_str(
            r#"{"kind":"practitioner","code":"D110105000001","from":"2026-03-01","until":"2026-03-20","version_before":1,
            "version_after":2,"changes":[],"recorded_at":"2026-03-20","source":"p/0@1"}"#,
        )
        .unwrap();
        assert!(c.check().is_ok());
        c.until = "2026-02-01".into();
        assert!(c.check().unwrap_err().contains("empty window"));
        c.until = "tomorrow".into();
        assert!(c.check().unwrap_err().contains("`until`"));
        c.until = "2026-03-20".into();
        c.kind = RetroKind::Institution;
        assert!(c.check().unwrap_err().contains("institution code"));
    }
}
