//! `claimgate score --publish`: the derived status periods written onto the practitioner records the
//! topic holds — not onto the (possibly older) practitioner file `score` read — through the status
//! writer (`io::kafka::status_writer`): other writers fenced, held version + 1, one transaction, only
//! the records that change.
//!
//! The record written for a code is the one held with its periods replaced: the held periods that no
//! event of this ledger decided, plus the periods this run derived from the ledger's events. So a sync
//! that changed registrations after the practitioner file was exported is not rolled back, and a
//! second run of the same ledger changes nothing.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use rustc_hash::FxHashSet;

use crate::io::kafka::KafkaConfig;
use crate::io::kafka::status_writer::{self, StatusTopics, StatusWriter};
use claimgate::record::PractitionerText;

/// What was published.
pub struct Published {
    /// Records written.
    pub written: usize,
    /// Records already as held.
    pub unchanged: usize,
}

/// Merges `scored` (records `score` wrote) onto what the topics hold and writes what changes.
pub fn publish(
    kafka: &KafkaConfig,
    topics: &StatusTopics,
    writer_id: &str,
    scored: &[PractitionerText],
    ledger_ids: &BTreeSet<String>,
) -> Result<Published> {
    let writer = StatusWriter::open(kafka, topics, writer_id)?;
    let keep: FxHashSet<String> = scored.iter().map(|t| t.code.clone()).collect();
    let mut held = writer.held_keeping(&keep)?;
    let mut writes = Vec::new();
    let mut unchanged = 0;
    for t in scored {
        let derived = t.periods.iter().filter(|p| p.decision_id.as_ref().is_some_and(|d| ledger_ids.contains(d)));
        let merged = match held.full.get(&t.code) {
            Some(h) => {
                let mut m = h.clone();
                m.periods.retain(|p| p.decision_id.as_ref().is_none_or(|d| !ledger_ids.contains(d)));
                m.periods.extend(derived.cloned());
                m
            }
            None => t.clone(),
        };
        merged.validate().with_context(|| format!("the merged record of {}", t.code))?;
        match status_writer::practitioner_write(&mut held.practitioners, &merged, None)? {
            Some(w) => writes.push(w),
            None => unchanged += 1,
        }
    }
    let written = writer.commit(&writes)?;
    Ok(Published { written, unchanged })
}
