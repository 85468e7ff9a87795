//! Status tables from files: JSON Lines registry exports (parsed on every core, inserted in file order
//! so that version ties resolve the same way every run) and binary snapshots.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;

use super::files::{self, Chunker, lines};
use super::progress::Progress;
use claimgate::record::{InstitutionCode, InstitutionText, MappingText, PractitionerRow};
use claimgate::table::{InstitutionTable, MappingTable, PractitionerTable, Upsert, View, snapshot};

/// What loading a file found.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadStats {
    /// Records read.
    pub records: u64,
    /// Records ignored because a newer version of the code came first.
    pub stale: u64,
}

/// Reads chunks on a thread of their own so that decompression overlaps parsing.
pub fn chunks(input: files::Input) -> crossbeam_channel::Receiver<std::io::Result<files::Chunk>> {
    let (tx, rx) = crossbeam_channel::bounded(4);
    std::thread::spawn(move || {
        for chunk in Chunker::new(input.reader, 4 << 20) {
            if tx.send(chunk).is_err() {
                break;
            }
        }
    });
    rx
}

/// Loads practitioner records from JSON Lines. A bad line stops the load with its line number.
pub fn load_practitioners(path: &Path, progress: &Progress) -> Result<(PractitionerTable, LoadStats)> {
    let input = files::open(path)?;
    let bar = progress.bytes(input.size, &format!("practitioners {}", input.name));
    let counter = input.read.clone();
    let name = input.name.clone();
    // Size the table from the file: about 250 bytes a record as exported, 4x less compressed.
    let estimate = input.size.map_or(1 << 16, |s| {
        let per = if files::Compression::of(path) == files::Compression::None { 250 } else { 60 };
        (s / per) as usize
    });
    let mut table = PractitionerTable::with_capacity(estimate);
    let mut stats = LoadStats::default();
    for chunk in chunks(input) {
        let chunk = chunk.with_context(|| format!("cannot read {name}"))?;
        let parsed: Vec<_> = lines(&chunk)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|(n, line)| {
                PractitionerRow::from_json(line)
                    .and_then(|t| t.validate())
                    .map_err(|e| anyhow::anyhow!("{name}:{n}: {e}"))
                    .map(|r| (n, r))
            })
            .collect();
        for item in parsed {
            let (n, rec) = item?;
            match table.upsert(&rec).with_context(|| format!("{name}:{n}"))? {
                Upsert::Stale => stats.stale += 1,
                Upsert::Inserted | Upsert::Replaced => {}
            }
            stats.records += 1;
        }
        bar.set_position(counter.load(Ordering::Relaxed));
    }
    bar.finish_and_clear();
    Ok((table, stats))
}

/// Institution names by code, from the institution file (the table holds no names; reports show them).
pub type Names = HashMap<InstitutionCode, String>;

/// Loads institution records from JSON Lines, and their names. A bad line stops the load with its line
/// number.
pub fn load_institutions(path: &Path, progress: &Progress) -> Result<(InstitutionTable, LoadStats, Names)> {
    let input = files::open(path)?;
    let bar = progress.bytes(input.size, &format!("institutions {}", input.name));
    let counter = input.read.clone();
    let name = input.name.clone();
    let mut table = InstitutionTable::default();
    let mut stats = LoadStats::default();
    let mut names = Names::new();
    for chunk in chunks(input) {
        let chunk = chunk.with_context(|| format!("cannot read {name}"))?;
        for (n, line) in lines(&chunk) {
            let (inst_name, rec) = InstitutionText::from_json(line)
                .and_then(|t| t.validate().map(|r| (t.name, r)))
                .map_err(|e| anyhow::anyhow!("{name}:{n}: {e}"))?;
            let code = rec.code;
            if table.upsert(rec) == Upsert::Stale {
                stats.stale += 1;
            } else if let Some(n) = inst_name {
                names.insert(code, n);
            } else {
                names.remove(&code);
            }
            stats.records += 1;
        }
        bar.set_position(counter.load(Ordering::Relaxed));
    }
    bar.finish_and_clear();
    Ok((table, stats, names))
}

/// Loads local-id mapping records from JSON Lines. A bad line stops the load with its line number.
pub fn load_mappings(path: &Path, progress: &Progress) -> Result<(MappingTable, LoadStats)> {
    let input = files::open(path)?;
    let bar = progress.bytes(input.size, &format!("mappings {}", input.name));
    let counter = input.read.clone();
    let name = input.name.clone();
    let mut table = MappingTable::default();
    let mut stats = LoadStats::default();
    for chunk in chunks(input) {
        let chunk = chunk.with_context(|| format!("cannot read {name}"))?;
        for (n, line) in lines(&chunk) {
            let rec = MappingText::from_json(line)
                .and_then(|t| t.validate())
                .map_err(|e| anyhow::anyhow!("{name}:{n}: {e}"))?;
            if table.upsert(rec) == Upsert::Stale {
                stats.stale += 1;
            }
            stats.records += 1;
        }
        bar.set_position(counter.load(Ordering::Relaxed));
    }
    bar.finish_and_clear();
    Ok((table, stats))
}

/// True if the file starts with the snapshot magic.
pub fn is_snapshot(path: &Path) -> bool {
    let mut magic = [0u8; 8];
    File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && magic == snapshot::MAGIC
}

/// Loads a snapshot file.
pub fn load_snapshot(path: &Path) -> Result<(snapshot::Header, View)> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    snapshot::read(BufReader::with_capacity(1 << 20, file)).with_context(|| format!("cannot load {}", path.display()))
}

/// Where the tables come from: a snapshot, or JSON Lines files (institutions optional).
#[derive(Clone, Debug, Default)]
pub struct TableSource {
    /// A snapshot file.
    pub snapshot: Option<PathBuf>,
    /// Practitioner records (JSON Lines, or a snapshot: recognised by its first bytes).
    pub practitioners: Option<PathBuf>,
    /// Institution records (JSON Lines).
    pub institutions: Option<PathBuf>,
    /// Local-id mapping records (JSON Lines); with a snapshot too, which does not hold them.
    pub mappings: Option<PathBuf>,
}

/// The loaded view and a sentence about it for logs and reports.
pub struct Loaded {
    /// The tables.
    pub view: View,
    /// Where they came from.
    pub description: String,
    /// Institution names, where the institution records give them.
    pub names: Names,
}

impl TableSource {
    /// Loads the tables, and the mapping table when one is given.
    pub fn load(&self, progress: &Progress) -> Result<Loaded> {
        let loaded = self.load_status(progress)?;
        let Some(path) = &self.mappings else { return Ok(loaded) };
        let (mappings, stats) = load_mappings(path, progress)?;
        Ok(Loaded {
            description: format!(
                "{}; local-id mappings {} ({} records, {} stale)",
                loaded.description,
                path.display(),
                stats.records,
                stats.stale
            ),
            view: loaded.view.with_mappings(mappings),
            names: loaded.names,
        })
    }

    fn load_status(&self, progress: &Progress) -> Result<Loaded> {
        let snapshot = match (&self.snapshot, &self.practitioners) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(p)) if is_snapshot(p) => Some(p.clone()),
            _ => None,
        };
        if let Some(path) = snapshot {
            if self.institutions.is_some() {
                bail!("--institutions cannot be combined with a snapshot: the snapshot holds both tables");
            }
            let (header, view) = load_snapshot(&path)?;
            return Ok(Loaded {
                description: format!(
                    "snapshot {} (written {} by {}, epoch {})",
                    path.display(),
                    header.created_at,
                    header.writer,
                    header.epoch
                ),
                view,
                names: Names::new(),
            });
        }
        let Some(p) = &self.practitioners else {
            bail!("no status tables: give --practitioners (JSON Lines or snapshot) or --snapshot");
        };
        let (practitioners, ps) = load_practitioners(p, progress)?;
        let (institutions, is, names) = match &self.institutions {
            Some(i) => load_institutions(i, progress)?,
            None => (InstitutionTable::default(), LoadStats::default(), Names::new()),
        };
        let view = View::new(practitioners, institutions);
        Ok(Loaded {
            description: format!(
                "{} ({} records, {} stale) and {} ({} records)",
                p.display(),
                ps.records,
                ps.stale,
                self.institutions.as_ref().map_or("no institution file".into(), |i| i.display().to_string()),
                is.records
            ),
            view,
            names,
        })
    }
}
