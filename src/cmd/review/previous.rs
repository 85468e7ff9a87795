//! The inline decisions to compare against (`--previous`): line identity → reason, held as a 64-bit hash
//! of the identity so that a day of 10 million decisions costs about 200 MB, not gigabytes.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::Deserialize;

use crate::io::files::{self, Chunker, lines};
use claimgate::record::Reason;

/// A line's identity (records.md): institution, visit, serial — hashed with a fixed-key SipHash, so
/// the same identity hashes alike in every run.
pub fn identity(fixmedins_code: &str, mdtrt_id: &str, feedetl_sn: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (fixmedins_code, mdtrt_id, feedetl_sn).hash(&mut h);
    h.finish()
}

#[derive(Deserialize)]
struct Row<'a> {
    #[serde(borrow)]
    fixmedins_code: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    mdtrt_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    feedetl_sn: std::borrow::Cow<'a, str>,
    reason: Reason,
}

/// The previous decisions.
pub struct Previous {
    map: FxHashMap<u64, Reason>,
    /// Decisions read.
    pub lines: u64,
    /// The file's name.
    pub name: String,
}

impl Previous {
    /// Reads a decisions file (JSON Lines, optionally compressed). A line that is not a decision record
    /// stops the review with its line number: comparing against a damaged file would misstate money.
    pub fn load(path: &Path) -> Result<Previous> {
        let input = files::open(path)?;
        let name = input.name.clone();
        let mut map = FxHashMap::default();
        let mut count = 0;
        for chunk in Chunker::new(input.reader, 4 << 20) {
            let chunk = chunk.with_context(|| format!("cannot read {name}"))?;
            let rows: Vec<Result<(u64, Reason)>> = lines(&chunk)
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|(n, line)| {
                    let row: Row<'_> =
                        serde_json::from_slice(line).map_err(|e| anyhow!("{name}:{n}: not a decision record: {e}"))?;
                    Ok((identity(&row.fixmedins_code, &row.mdtrt_id, &row.feedetl_sn), row.reason))
                })
                .collect();
            for row in rows {
                let (k, r) = row?;
                map.insert(k, r);
                count += 1;
            }
        }
        Ok(Previous { map, lines: count, name })
    }

    /// The inline reason for a line, if it was decided inline.
    pub fn get(&self, id: u64) -> Option<Reason> {
        self.map.get(&id).copied()
    }
}
