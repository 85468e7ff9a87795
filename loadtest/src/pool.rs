//! The lines the generator sends: generated once before the run from `claimgate::synth` (so that
//! producing them costs the generator nothing during the measurement), then sent round and round.
//! Each line keeps its identity fingerprint, to check that a decision belongs to the line its stamp
//! names; and the status-change trickle: claim lines of one practitioner whose record the load test
//! changes while the load runs.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use claimgate::record::{PeriodText, PractitionerText, Status};
use claimgate::synth::{GenConfig, World};

use crate::tally::identity;

/// One pooled line: where its key and value are in the pool's bytes, and its identity.
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: (u32, u32),
    value: (u32, u32),
    ident: u64,
}

/// Generated claim lines, in one buffer.
pub struct Pool {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

impl Pool {
    /// The first `lines` lines of the world's day.
    pub fn generate(world: &World, lines: usize) -> Result<Pool> {
        let mut bytes = Vec::with_capacity(lines * 420);
        let mut entries = Vec::with_capacity(lines);
        for line in world.claims().take(lines) {
            if bytes.len() + line.key.len() + line.bytes.len() >= u32::MAX as usize {
                bail!("the pool of lines exceeds 4 GiB; use fewer lines");
            }
            let k = bytes.len() as u32;
            bytes.extend_from_slice(line.key.as_bytes());
            let v = bytes.len() as u32;
            bytes.extend_from_slice(&line.bytes);
            entries.push(Entry {
                key: (k, line.key.len() as u32),
                value: (v, line.bytes.len() as u32),
                ident: line_identity(&line.bytes).unwrap_or(0),
            });
        }
        if entries.is_empty() {
            bail!("the generator made no claim lines");
        }
        Ok(Pool { bytes, entries })
    }

    /// Lines in the pool.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Always false: a pool holds at least one line.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Pool index of a step's line `seq`.
    pub fn index(&self, seq: u64) -> usize {
        (seq % self.entries.len() as u64) as usize
    }

    /// Key and value of pool line `i`.
    pub fn line(&self, i: usize) -> (&[u8], &[u8]) {
        let e = &self.entries[i];
        let at = |(s, l): (u32, u32)| &self.bytes[s as usize..(s + l) as usize];
        (at(e.key), at(e.value))
    }

    /// Identity fingerprint of pool line `i`, 0 if it has none (malformed beyond that).
    pub fn identity(&self, i: usize) -> u64 {
        self.entries[i].ident
    }
}

/// The identity fingerprint of a claim line, if its three identity fields are strings.
pub fn line_identity(line: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Ident<'a> {
        #[serde(borrow)]
        fixmedins_code: &'a str,
        #[serde(borrow)]
        mdtrt_id: &'a str,
        #[serde(borrow)]
        feedetl_sn: &'a str,
    }
    let id: Ident<'_> = serde_json::from_slice(line).ok()?;
    Some(identity(id.fixmedins_code.as_bytes(), id.mdtrt_id.as_bytes(), id.feedetl_sn.as_bytes()))
}

/// Writes the world's status tables as JSON Lines (what `claimgate tables publish` reads).
pub fn write_tables(world: &World, practitioners: &Path, institutions: &Path) -> Result<()> {
    let mut p = std::io::BufWriter::new(
        std::fs::File::create(practitioners).with_context(|| format!("cannot create {}", practitioners.display()))?,
    );
    world.write_practitioners(&mut p, |_| {})?;
    p.flush()?;
    let mut i = std::io::BufWriter::new(
        std::fs::File::create(institutions).with_context(|| format!("cannot create {}", institutions.display()))?,
    );
    world.write_institutions(&mut i)?;
    i.flush()?;
    Ok(())
}

/// The world of a run.
pub fn world(seed: u64, practitioners: u64, claims: u64) -> World {
    World::new(GenConfig { seed, practitioners, claims, ..GenConfig::default() })
}

/// One practitioner whose record the status-change test rewrites, and claim lines billed by them.
#[derive(Clone, Debug)]
pub struct Trickle {
    /// The record as the tables hold it before the first change.
    pub record: PractitionerText,
    /// The institution the trickle's claims are settled at (a hospital with no status history, where
    /// the practitioner is registered).
    pub institution: String,
    /// A claim line to copy, with the practitioner and institution filled in.
    template: serde_json::Map<String, serde_json::Value>,
}

impl Trickle {
    /// Finds a practitioner with no status period, registered without end at a hospital that has no
    /// status history of its own, and a valid, non-emergency hospital line to model claims on.
    pub fn find(world: &World, pool: &Pool) -> Result<Trickle> {
        let flagged: HashSet<String> =
            (0..world.institution_count()).filter_map(|j| world.institution(j)).map(|r| r.code).collect();
        let template = (0..pool.len())
            .filter_map(|i| serde_json::from_slice::<serde_json::Value>(pool.line(i).1).ok())
            .filter_map(|v| match v {
                serde_json::Value::Object(m) => Some(m),
                _ => None,
            })
            .find(|m| {
                m.get("med_type").and_then(|v| v.as_str()) == Some("11")
                    && !m.contains_key("er_flag")
                    && m.get("bilg_dept_codg").is_some()
                    && claimgate::record::Claim::parse(serde_json::to_string(m).unwrap_or_default().as_bytes()).is_ok()
            })
            .context("no plain hospital claim line in the pool to model the trickle on")?;
        let n = world.config().practitioners;
        for i in (0..n).map(|i| (i * 7919 + 17) % n) {
            let rec = world.practitioner(i);
            let Some(reg) = rec.registrations.first() else { continue };
            let usable = rec.periods.is_empty()
                && rec.code.starts_with('D')
                && rec.registrations.iter().all(|r| r.until.is_none())
                && reg.institution.starts_with('H')
                && !flagged.contains(&reg.institution);
            if usable {
                return Ok(Trickle { institution: reg.institution.clone(), record: rec, template });
            }
        }
        bail!("no practitioner in the table is usable for the status-change test")
    }

    /// Claim line number `n` of the trickle: its key and bytes.
    pub fn line(&self, n: u64) -> (String, Vec<u8>) {
        let mut m = self.template.clone();
        let mdtrt = format!("LTSTATUS{:010}", n / 10);
        let s = |t: &str| serde_json::Value::String(t.to_owned());
        m.insert("fixmedins_code".into(), s(&self.institution));
        m.insert("bilg_dr_codg".into(), s(&self.record.code));
        m.insert("mdtrt_id".into(), s(&mdtrt));
        m.insert("feedetl_sn".into(), s(&format!("{:04}", n % 10 + 1)));
        (format!("{}|{mdtrt}", self.institution), serde_json::to_vec(&m).unwrap_or_default())
    }

    /// The record of change `k` (1, 2, …): a higher version each time; odd changes suspend the
    /// practitioner over the claims' day, even ones lift the suspension.
    pub fn change(&self, k: u64, day: claimgate::record::BjTime) -> PractitionerText {
        let mut rec = self.record.clone();
        rec.version = self.record.version + k;
        rec.periods = if k % 2 == 1 {
            vec![PeriodText {
                status: Status::Suspended,
                from: day.plus_days(-1).date().format("%Y-%m-%d").to_string(),
                until: Some(day.plus_days(30).date().format("%Y-%m-%d").to_string()),
                basis: Some(format!("claimgate-loadtest status change {k} (synthetic)")),
                decision_id: Some(format!("LOADTEST-{k}")),
            }]
        } else {
            vec![]
        };
        rec
    }

    /// True if change `k` should make the trickle's claims rejected.
    pub fn rejects(k: u64) -> bool {
        k % 2 == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use claimgate::record::Claim;

    #[test]
    fn pool_lines_keys_and_identities() {
        let w = world(7, 2_000, 5_000);
        let pool = Pool::generate(&w, 3_000).unwrap();
        assert_eq!(pool.len(), 3_000);
        assert_eq!(pool.index(3_001), 1);
        let first = w.claims().next().unwrap();
        assert_eq!(pool.line(0), (first.key.as_bytes(), &first.bytes[..]));
        let with_identity = (0..pool.len()).filter(|&i| pool.identity(i) != 0).count();
        assert!(with_identity > 2_950, "{with_identity}");
    }

    #[test]
    fn trickle_lines_parse_and_bill_the_chosen_practitioner() {
        let w = world(7, 2_000, 5_000);
        let pool = Pool::generate(&w, 3_000).unwrap();
        let t = Trickle::find(&w, &pool).unwrap();
        let (key, bytes) = t.line(23);
        let c = Claim::parse(&bytes).unwrap();
        assert_eq!(c.bilg_dr_codg.trim(), t.record.code);
        assert_eq!(c.fixmedins_code.to_string(), t.institution);
        assert!(key.starts_with(&t.institution) && key.ends_with("LTSTATUS0000000002"));
        assert_ne!(line_identity(&bytes), line_identity(&t.line(24).1), "each trickle line is its own");
        let day = w.config().day;
        let s = t.change(1, day).validate().unwrap();
        assert_eq!(s.version, t.record.version + 1);
        let lifted = t.change(2, day);
        assert!(lifted.periods.is_empty() && lifted.version == t.record.version + 2);
        assert!(Trickle::rejects(1) && !Trickle::rejects(2));
    }
}
