//! `review --retro`: the late status changes the stream wrote to `status.retro`, and the claims they
//! concern (service.md, "The loop between inline and nightly"; docs/status-retro.md).
//!
//! **Which changes.** The retro topic is read whole (it is compacted and small: one record per late
//! change). Two ways to choose among its records:
//! - by position (the default): the changes after the committed position of `--retro-group`
//!   (claimgate's own group, never the stream's). The position moves only after the report and the
//!   outputs are written; `--no-commit` leaves it (a preview).
//! - by time (`--retro-from [--retro-until]`): the changes whose retro records are stamped in that
//!   interval. Nothing is committed: this is how an auditor re-runs a review — the report of every run
//!   gives the interval that chooses the same changes again.
//!
//! A change whose key (`code@version`) was already chosen or, by position, lies before the position — the
//! same change written again by another instance — is a repeat and is dropped. A record that is not a
//! late status change is reported (topic, partition, offset, why) and skipped, never a panic.
//!
//! **Which claims.** A line is chosen when a change names one of its codes — a person field, or the
//! institution — and its service time lies in the change's window. The lines are filtered by the
//! changed codes' bytes before they are parsed, so only lines naming one of them are parsed, and only
//! the chosen ones are decided.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context as _, Result};
use memchr::memmem::Finder;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use rustc_hash::FxHashMap;

use crate::io::clock::from_unix_ms;
use crate::io::kafka::{Context, KafkaConfig, admin, window};
use claimgate::record::{BjTime, Claim, InstitutionCode, Interval, RetroChange, RetroKind, Role};

/// How the changes to review are chosen.
#[derive(Clone, Debug)]
pub enum Position {
    /// After the group's committed position; committed once reviewed.
    Group(String),
    /// Retro records stamped in `[from, until)`; nothing committed.
    Time { from: BjTime, until: BjTime },
}

/// The changes to review.
#[derive(Debug)]
pub struct Pending {
    /// How they were chosen.
    pub position: Position,
    /// New changes, in topic order (one per key).
    pub changes: Vec<RetroChange>,
    /// Per partition of the retro topic: the first offset and the end read (for the report), the end
    /// being the position to commit once they are reviewed.
    pub read: Vec<(i32, i64, i64)>,
    /// The retro records' timestamps chosen, first and last (milliseconds).
    pub stamped: Option<(i64, i64)>,
    /// Repeats dropped (a key already reviewed or already chosen).
    pub repeats: u64,
    /// Records that are not late status changes: where and why.
    pub unreadable: Vec<String>,
}

impl Pending {
    /// One sentence for the report's inputs: what was read, and how to choose the same changes again.
    pub fn describe(&self, topic: &str) -> String {
        let read: Vec<String> = self.read.iter().map(|(p, from, end)| format!("{topic}/{p}@{from}..{end}")).collect();
        let how = match &self.position {
            Position::Group(g) => format!("after the committed position of group `{g}`"),
            Position::Time { from, until } if *until == BjTime::MAX => format!("retro records stamped from {from} on"),
            Position::Time { from, until } => format!("retro records stamped from {from} until {until}"),
        };
        let again = self.stamped.map_or(String::new(), |(f, l)| {
            format!(
                "; the same changes again: --retro-from '{}' --retro-until '{}'",
                from_unix_ms(f),
                BjTime::from_secs(from_unix_ms(l).secs() + 1)
            )
        });
        format!(
            "late status changes {how}: {} chosen ({} repeats dropped, {} unreadable) from {}{again}",
            self.changes.len(),
            self.repeats,
            self.unreadable.len(),
            read.join(", ")
        )
    }
}

fn consumer(kafka: &KafkaConfig, group: &str) -> Result<BaseConsumer<Context>> {
    kafka
        .client(&[
            ("group.id", group),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("isolation.level", "read_committed"),
            ("enable.partition.eof", "true"),
            ("fetch.wait.max.ms", "100"),
        ])
        .create_with_context(Context { client: "retro" })
        .context("cannot create the retro topic's reader")
}

/// The group whose position is read for [`Position::Time`]: none is committed to.
const NO_GROUP: &str = "claimgate-retro-reader";

/// Reads the retro topic: the changes `position` chooses, repeats dropped, unreadable records said.
pub fn pending(kafka: &KafkaConfig, topic: &str, position: &Position) -> Result<Pending> {
    let group = match position {
        Position::Group(g) => g.as_str(),
        Position::Time { .. } => NO_GROUP,
    };
    let c = consumer(kafka, group)?;
    let parts = admin::partitions(&c, topic, Duration::from_secs(30))
        .with_context(|| format!("--retro-topic {topic} (create it with `claimgate topics create`)"))?;
    let mut committed_at = FxHashMap::default();
    if let Position::Group(_) = position {
        let mut tpl = TopicPartitionList::new();
        for p in &parts {
            tpl.add_partition(topic, *p);
        }
        let committed =
            c.committed_offsets(tpl, Duration::from_secs(30)).context("cannot read the retro group's position")?;
        for p in &parts {
            if let Some(Offset::Offset(o)) = committed.find_partition(topic, *p).map(|e| e.offset()) {
                committed_at.insert(*p, o);
            }
        }
    }
    let mut out = Pending {
        position: position.clone(),
        changes: Vec::new(),
        read: Vec::new(),
        stamped: None,
        repeats: 0,
        unreadable: Vec::new(),
    };
    let mut done: HashSet<String> = HashSet::new();
    let mut seen: HashSet<String> = HashSet::new();
    for p in parts {
        let from = committed_at.get(&p).copied().unwrap_or(0);
        let (_, high) = window::watermarks(&c, topic, p)?;
        out.read.push((p, from, high));
        if high == 0 {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        c.assign(&tpl)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        loop {
            if std::time::Instant::now() >= deadline {
                anyhow::bail!("cannot read {topic}/{p} to its end in 5 minutes");
            }
            match c.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let key = m.key().and_then(|k| std::str::from_utf8(k).ok()).unwrap_or_default().to_owned();
                    let stamp = m.timestamp().to_millis().unwrap_or(0);
                    let chosen = match position {
                        Position::Group(_) => m.offset() >= from,
                        Position::Time { from, until } => {
                            let t = from_unix_ms(stamp);
                            *from <= t && t < *until
                        }
                    };
                    if !chosen {
                        done.insert(key);
                    } else if let Some(v) = m.payload() {
                        let change = serde_json::from_slice::<RetroChange>(v)
                            .map_err(|e| e.to_string())
                            .and_then(|c| c.check().map(|_| c));
                        match change {
                            Ok(change) => {
                                if done.contains(&change.key()) || !seen.insert(change.key()) {
                                    out.repeats += 1;
                                } else {
                                    out.stamped =
                                        Some(out.stamped.map_or((stamp, stamp), |(f, l)| (f.min(stamp), l.max(stamp))));
                                    out.changes.push(change);
                                }
                            }
                            Err(why) => {
                                let at = format!("{topic}/{p}@{}", m.offset());
                                eprintln!("{at}: not a late status change record ({why}); skipped");
                                out.unreadable.push(format!("{at}: {why}"));
                            }
                        }
                    }
                    if m.offset() + 1 >= high {
                        break;
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => tracing::warn!(event = "retro_read_error", topic, error = %e, "retrying"),
                None => {}
            }
        }
    }
    Ok(out)
}

/// Moves the group's position past the reviewed changes (nothing for [`Position::Time`]).
pub fn commit(kafka: &KafkaConfig, topic: &str, pending: &Pending) -> Result<()> {
    let Position::Group(group) = &pending.position else { return Ok(()) };
    let c = consumer(kafka, group)?;
    let mut tpl = TopicPartitionList::new();
    for (p, _, end) in &pending.read {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*end))?;
    }
    c.commit(&tpl, CommitMode::Sync).with_context(|| format!("cannot commit the position of group {group} on {topic}"))
}

/// Which lines the changes concern.
pub struct Selector {
    practitioners: FxHashMap<String, Vec<(Interval, u32)>>,
    institutions: FxHashMap<InstitutionCode, Vec<(Interval, u32)>>,
    /// The changed codes' bytes: a line that holds none of them names none of them. `None` when a code
    /// holds a byte JSON may escape (`"` or `\`): every line is parsed then.
    needles: Option<Vec<Finder<'static>>>,
}

impl Selector {
    /// The selector of `changes` (checked by [`pending`]).
    pub fn new(changes: &[RetroChange]) -> Selector {
        let mut s = Selector {
            practitioners: FxHashMap::default(),
            institutions: FxHashMap::default(),
            needles: Some(Vec::new()),
        };
        for (i, c) in changes.iter().enumerate() {
            let Ok(w) = c.check() else { continue };
            match c.kind {
                RetroKind::Practitioner => s.practitioners.entry(c.code.clone()).or_default().push((w, i as u32)),
                RetroKind::Institution => {
                    if let Ok(code) = InstitutionCode::parse(&c.code) {
                        s.institutions.entry(code).or_default().push((w, i as u32));
                    }
                }
            }
            if c.code.bytes().any(|b| b == b'"' || b == b'\\') {
                s.needles = None;
            }
            if let Some(n) = &mut s.needles {
                n.push(Finder::new(c.code.as_bytes()).into_owned());
            }
        }
        s
    }

    /// Whether the line's bytes may name a changed code (no parse).
    pub fn may_name(&self, line: &[u8]) -> bool {
        self.needles.as_ref().is_none_or(|n| n.iter().any(|f| f.find(line).is_some()))
    }

    /// The change that chooses `claim` (the latest, where several do), if any.
    pub fn select(&self, claim: &Claim<'_>) -> Option<u32> {
        let t = claim.fee_ocur_time;
        let mut best: Option<u32> = None;
        let mut consider = |list: Option<&Vec<(Interval, u32)>>| {
            for (w, i) in list.into_iter().flatten() {
                if w.contains(t) && best.is_none_or(|b| *i > b) {
                    best = Some(*i);
                }
            }
        };
        for role in Role::ALL {
            if let Some(code) = claim.code(role) {
                consider(self.practitioners.get(code));
            }
        }
        consider(self.institutions.get(&claim.fixmedins_code));
        best
    }
}

/// The record timestamps to read for `changes`: from the earliest window's start less an hour (a
/// producer's clock may run behind the service's) to the latest moment an instance may still have
/// decided with a record before its change ([`RetroChange::applied_by`]); `review --late` reads on
/// past it. A line stored after that was decided with the new record: the inline decision stands.
pub fn record_span(changes: &[RetroChange]) -> Option<window::Window> {
    let from = changes.iter().filter_map(|c| c.check().ok()).map(|w| w.from).min()?;
    let until = changes.iter().filter_map(RetroChange::applied_by).max()?;
    let from = BjTime::from_secs(from.secs().saturating_sub(3600));
    Some(window::Window { from, until: until.max(BjTime::from_secs(from.secs() + 1)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(code: &str, from: &str, until: &str) -> RetroChange {
        serde_json::from_str(&format!(
            r#"{{"kind":"practitioner","code":"{code}","from":"{from}","until":"{until}","version_before":1,"version_after":2,
            "changes":[],"recorded_at":"{until}","source":"p/0@1"}}"#
        ))
        .unwrap()
    }

    #[test]
    fn lines_are_chosen_by_code_and_service_time_and_filtered_by_bytes_first() {
        let s = Selector::new(&[change("D110105000001", "2026-03-01", "2026-03-20")]);
        let line = |code: &str, at: &str| {
            format!(
                r#"{{"feedetl_sn":"1","fixmedins_code":"H11010500001","mdtrt_id":"M","psn_no":"P","med_type":"11","fee_ocur_time":"{at}","bilg_dr_codg":"{code}","det_item_fee_sumamt":"1.00"}}"#
            )
        };
        let inside = line("D110105000001", "2026-03-05 10:00:00");
        assert!(s.may_name(inside.as_bytes()));
        assert_eq!(s.select(&Claim::parse(inside.as_bytes()).unwrap()), Some(0));
        let after = line("D110105000001", "2026-03-20 00:00:00");
        assert_eq!(s.select(&Claim::parse(after.as_bytes()).unwrap()), None);
        assert!(!s.may_name(line("D110105000002", "2026-03-05 10:00:00").as_bytes()));
    }

    #[test]
    fn the_span_read_runs_from_an_hour_before_the_first_window_to_when_the_last_change_was_applied() {
        let span =
            record_span(&[change("D1", "2026-03-01", "2026-03-20"), change("D2", "2026-03-10", "2026-03-25")]).unwrap();
        assert_eq!(span.from, BjTime::parse("2026-02-28 23:00:00").unwrap());
        assert_eq!(span.until, BjTime::parse("2026-03-25 00:01:00").unwrap());
        assert!(record_span(&[]).is_none());
    }
}
