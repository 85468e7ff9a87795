//! The stream's checkpoint: its status table and the offsets of the status topics it covers, so that a
//! restarted instance loads it and reads only the topics' tail (STYLE.md; Kafka Streams'
//! `OffsetCheckpoint` plays this part for its global stores).
//!
//! File (`checkpoint.dir/<group>.checkpoint`), written to a temporary name and renamed into place:
//!
//! ```text
//! line 1     JSON: {"magic":"claimgate-checkpoint","format":1,"cluster_id":…,"created_ms":…,
//!                   "positions":[[topic, partition, next offset], …], "epoch":…}
//! section 1  a table snapshot (`table::snapshot`, its own magic, format and CRC): the base tables
//! section 2  a table snapshot of the delta layer (the changes not yet folded into the base)
//! ```
//!
//! It is refused — the log says why and the topics are read from the beginning instead — when it is
//! unreadable or corrupt (a snapshot's CRC or epoch), from another Kafka cluster, for other topics or
//! partitions, older than `checkpoint.max_age_s` (set it at most to the status topics'
//! `delete.retention.ms`: past it, a tombstone may have been compacted away and its deletion would be
//! missed), or when an offset is outside what the topic holds now (older than its retention, or from a
//! recreated topic).

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use claimgate::table::{BaseTable, InstitutionTable, Updater, View, snapshot};

const MAGIC: &str = "claimgate-checkpoint";
/// 1: one base table; 2: the base in shards (snapshot format 5). A format-1 checkpoint is refused like
/// any unusable one, and the cold path builds the sharded table: a compaction of a one-shard base
/// would hold two whole tables at once (issue 10's peak memory).
const FORMAT: u32 = 2;

/// What a checkpoint says about itself.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    magic: String,
    format: u32,
    /// The Kafka cluster the offsets belong to.
    pub cluster_id: String,
    /// Unix milliseconds when it was written.
    pub created_ms: u64,
    /// `(topic, partition, next offset to read)` of every status partition it covers.
    pub positions: Vec<(String, i32, i64)>,
    /// The table epoch of the view it holds.
    pub epoch: u64,
}

/// The checkpoint file of a consumer group in `dir`.
pub fn path(dir: &Path, group: &str) -> PathBuf {
    let safe: String =
        group.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    dir.join(format!("{safe}.checkpoint"))
}

/// Writes `view` (base and delta) with the positions it covers, atomically.
pub fn write(path: &Path, cluster_id: &str, positions: Vec<(String, i32, i64)>, view: &View) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = path.with_extension("checkpoint.tmp");
    let header = Header {
        magic: MAGIC.into(),
        format: FORMAT,
        cluster_id: cluster_id.to_owned(),
        created_ms: crate::io::clock::unix_ms(),
        positions,
        epoch: view.epoch(),
    };
    let file = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    serde_json::to_writer(&mut out, &header)?;
    out.write_all(b"\n")?;
    let created = crate::io::clock::now_secs_text();
    // The base as it is shared (no copy); the delta, small, as a table of its own.
    let base = View::new_shared(view);
    snapshot::write(&mut out, &base, &created).context("cannot write the checkpoint's base")?;
    let delta = View::new(view.delta_table().clone(), InstitutionTable::default());
    snapshot::write(&mut out, &delta, &created).context("cannot write the checkpoint's delta")?;
    let file = out.into_inner().map_err(|e| anyhow!("cannot write {}: {e}", tmp.display()))?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// A checkpoint read back: its header and an updater holding its tables.
pub struct Loaded {
    /// What it says about itself.
    pub header: Header,
    /// Its tables, ready to take the topics' tail.
    pub updater: Updater,
}

/// Reads a checkpoint; an error says why it cannot be used.
pub fn read(path: &Path) -> Result<Loaded> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut line = String::new();
    input.read_line(&mut line).context("cannot read the header")?;
    let header: Header = serde_json::from_str(line.trim_end()).map_err(|e| anyhow!("not a checkpoint header: {e}"))?;
    if header.magic != MAGIC {
        bail!("not a claimgate checkpoint");
    }
    if header.format != FORMAT {
        bail!("checkpoint format {}, this build reads format {FORMAT}", header.format);
    }
    let (_, base) = snapshot::read(&mut input).map_err(|e| anyhow!("its base table: {e}"))?;
    let (_, delta) = snapshot::read(&mut input).map_err(|e| anyhow!("its delta: {e}"))?;
    let mut rest = [0u8; 1];
    if input.read(&mut rest)? != 0 {
        bail!("bytes after the delta");
    }
    let mut updater = Updater::from_view(&base).map_err(|e| anyhow!("its base table: {e}"))?;
    apply_delta(&mut updater, delta.base())?;
    if updater.view().epoch() != header.epoch {
        bail!("its tables do not match the epoch it recorded");
    }
    Ok(Loaded { header, updater })
}

fn apply_delta(updater: &mut Updater, delta: &BaseTable) -> Result<()> {
    for (code, entry) in delta.iter() {
        match entry {
            claimgate::table::Entry::Live(r) => {
                updater.practitioner(&r.to_record(code)).map_err(|e| anyhow!("its delta: {e}"))?;
            }
            claimgate::table::Entry::Deleted => {
                updater.delete_practitioner(code.key()).map_err(|e| anyhow!("its delta: {e}"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use claimgate::record::PractitionerText;

    fn rec(code: &str, version: u64) -> claimgate::record::PractitionerRecord {
        let json = format!(
            r#"{{"code":"{code}","version":{version},"registrations":[{{"institution":"H11010500001","from":"2020-01-01"}}]}}"#
        );
        PractitionerText::from_json(json.as_bytes()).unwrap().validate().unwrap()
    }

    #[test]
    fn a_checkpoint_with_a_delta_round_trips_and_a_corrupt_one_is_refused() {
        let mut u = Updater::with_base(BaseTable::sharded(3, 16), InstitutionTable::default());
        for i in 0..50 {
            u.practitioner(&rec(&format!("D1101050000{i:02}"), 1)).unwrap();
        }
        u.compact().unwrap();
        // Changes after the first view go into the delta layer.
        let _first = u.view();
        u.practitioner(&rec("D110105000003", 2)).unwrap();
        u.delete_practitioner(rec("D110105000004", 1).code.key()).unwrap();
        u.practitioner(&rec("D110105000099", 1)).unwrap();
        let view = u.view();
        assert!(view.delta_len() > 0, "the test needs a delta");
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "claimgate/g 1");
        assert!(p.ends_with("claimgate_g_1.checkpoint"));
        let positions = vec![("practitioners".to_owned(), 0, 123)];
        write(&p, "cluster-A", positions.clone(), &view).unwrap();
        let loaded = read(&p).unwrap();
        assert_eq!(loaded.header.positions, positions);
        assert_eq!(loaded.header.cluster_id, "cluster-A");
        let back = loaded.updater.view();
        assert_eq!(back.epoch(), view.epoch());
        assert_eq!(back.base().shards().len(), 8, "the base comes back in its shards");
        assert_eq!(back.practitioner_count(), view.practitioner_count());
        // One flipped byte in the tables: refused, with the reason.
        let mut bytes = std::fs::read(&p).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x55;
        std::fs::write(&p, &bytes).unwrap();
        let e = read(&p).err().expect("a corrupt checkpoint is refused").to_string();
        assert!(e.contains("base table") || e.contains("delta"), "{e}");
        std::fs::write(&p, b"{\"magic\":\"something else\"}\n").unwrap();
        assert!(read(&p).is_err());
    }
}
