//! The base practitioner table of a [`super::View`], in shards.
//!
//! A stream's view is a base table plus a delta of recent changes; when the delta grows, it is folded
//! into the base. Folded as one table, the fold built a whole new 12-million-code table beside the old
//! one — which every published view still held — so for a while two copies were resident: 202 B a code
//! at peak against issue 10's 100 B (BENCHMARKS.md, "Ready after a restart"). In shards, the fold
//! rebuilds one shard at a time, and each new shard replaces its old one in the next published view,
//! so the old one is freed as soon as the readers move to that view: the extra memory is a shard or
//! two, not a table. See [`super::Compaction`].
//!
//! A code's shard is the top [`BaseTable::shard_bits`] bits of the same Fibonacci hash the shard's own
//! slot array uses; the slot index comes from the bits after them, so every shard fills its slots
//! evenly. Legacy local ids (rare, not of a national form) all live in shard 0. A table loaded from a
//! file or built for `review` is one shard (`shard_bits` 0): nothing changes for it.

use std::sync::Arc;

use super::practitioner::{Entry, HASH_MUL, PractitionerRef, PractitionerTable, TableError};
use crate::record::{PractitionerCode, PractitionerKey, PractitionerRecord};

/// Shard bits of the tables a stream builds from the status topics: 64 shards, about 190 000 codes
/// each at national scale (a 4 MiB slot array and 10 MiB of records).
pub const STREAM_SHARD_BITS: u32 = 6;

/// Garbage a shard may hold during a load before it is compacted in place, whatever its share: below
/// it a compaction would cost more than it frees.
pub const LOAD_GARBAGE_FLOOR: usize = 256 << 10;

/// The most shard bits a base table may have (a snapshot claiming more is corrupt).
pub const MAX_SHARD_BITS: u32 = 12;

/// A practitioner table in `2^shard_bits` shards, each shared on its own.
#[derive(Clone, Debug)]
pub struct BaseTable {
    parts: Box<[Arc<PractitionerTable>]>,
    bits: u32,
}

impl Default for BaseTable {
    fn default() -> Self {
        BaseTable::single(PractitionerTable::default())
    }
}

/// The shard of a code in a table of `bits` shard bits.
#[inline]
pub(crate) fn shard_of(bits: u32, key: PractitionerKey<'_>) -> usize {
    match key {
        // `checked_shr` makes 0 bits (one shard) a shift by 64, which is no shift at all.
        PractitionerKey::National(k) => k.wrapping_mul(HASH_MUL).checked_shr(64 - bits).unwrap_or(0) as usize,
        PractitionerKey::Legacy(_) => 0,
    }
}

impl BaseTable {
    /// One table as the only shard.
    pub fn single(table: PractitionerTable) -> Self {
        BaseTable { parts: Box::new([Arc::new(table)]), bits: 0 }
    }

    /// An empty table of `2^bits` shards, with room for about `n` codes in all.
    pub fn sharded(bits: u32, n: usize) -> Self {
        let bits = bits.min(MAX_SHARD_BITS);
        let parts =
            (0..1usize << bits).map(|_| Arc::new(PractitionerTable::shard_with_capacity(per_shard(n, bits), bits)));
        BaseTable { parts: parts.collect(), bits }
    }

    /// Shards read back from a snapshot: `parts` must be `2^bits` tables whose slot hash skips `bits`.
    pub(crate) fn from_shards(bits: u32, parts: Vec<PractitionerTable>) -> Result<Self, String> {
        if bits > MAX_SHARD_BITS || parts.len() != 1 << bits {
            return Err(format!("{} shards for {bits} shard bits", parts.len()));
        }
        Ok(BaseTable { parts: parts.into_iter().map(Arc::new).collect(), bits })
    }

    /// Bits of the hash that choose a code's shard (0: one shard).
    pub fn shard_bits(&self) -> u32 {
        self.bits
    }

    /// The shards, in order.
    pub fn shards(&self) -> &[Arc<PractitionerTable>] {
        &self.parts
    }

    #[inline]
    fn part(&self, key: PractitionerKey<'_>) -> &PractitionerTable {
        &self.parts[shard_of(self.bits, key)]
    }

    /// The shard holding `key`, for writing, if nothing else shares it.
    pub(crate) fn part_mut(&mut self, key: PractitionerKey<'_>) -> Option<&mut PractitionerTable> {
        Arc::get_mut(&mut self.parts[shard_of(self.bits, key)])
    }

    /// The same table with shard `k` replaced (the other shards shared, not copied).
    pub(crate) fn with_shard(&self, k: usize, table: PractitionerTable) -> Self {
        let mut parts = self.parts.clone();
        parts[k] = Arc::new(table);
        BaseTable { parts, bits: self.bits }
    }

    /// Codes held, not counting deleted ones.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.len()).sum()
    }

    /// True when no code is held.
    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(|p| p.is_empty())
    }

    /// Codes whose slot exists, deleted ones included.
    pub fn entries(&self) -> usize {
        self.parts.iter().map(|p| p.entries()).sum()
    }

    /// The content's fingerprint (see [`PractitionerTable::fingerprint`]): a wrapping sum, so the sum
    /// of the shards' is the whole table's.
    pub fn fingerprint(&self) -> u64 {
        self.parts.iter().fold(0u64, |f, p| f.wrapping_add(p.fingerprint()))
    }

    /// Bytes of replaced and deleted records the shards still hold (see
    /// [`PractitionerTable::dead_bytes`]).
    pub fn dead_bytes(&self) -> usize {
        self.parts.iter().map(|p| p.dead_bytes()).sum()
    }

    /// Bytes of the shards' record arenas (cheap: no string is visited).
    pub fn record_bytes(&self) -> usize {
        self.parts.iter().map(|p| p.words().len() * 8).sum()
    }

    /// Bytes of memory held by the shards' arrays.
    pub fn heap_bytes(&self) -> usize {
        self.parts.iter().map(|p| p.heap_bytes()).sum()
    }

    /// The entry for a code, if the table holds one.
    #[inline]
    pub fn get(&self, key: PractitionerKey<'_>) -> Option<Entry<'_>> {
        self.part(key).get(key)
    }

    /// The live record for a code, if any.
    #[inline]
    pub fn live(&self, key: PractitionerKey<'_>) -> Option<PractitionerRef<'_>> {
        self.part(key).live(key)
    }

    /// See [`PractitionerTable::prefetch_slot`].
    #[inline]
    pub fn prefetch_slot(&self, key: PractitionerKey<'_>) {
        self.part(key).prefetch_slot(key);
    }

    /// See [`PractitionerTable::prefetch_record`].
    #[inline]
    pub fn prefetch_record(&self, key: PractitionerKey<'_>) {
        self.part(key).prefetch_record(key);
    }

    /// Every entry with its code (deleted ones included), shard by shard.
    pub fn iter(&self) -> impl Iterator<Item = (PractitionerCode, Entry<'_>)> + '_ {
        self.parts.iter().flat_map(|p| p.iter())
    }

    /// Checks every shard (see [`PractitionerTable::verify`]), and that each code is in its shard.
    pub fn verify(&self) -> Result<(), String> {
        for (k, p) in self.parts.iter().enumerate() {
            p.verify().map_err(|e| format!("shard {k}: {e}"))?;
            if let Some((code, _)) = p.iter().find(|(code, _)| shard_of(self.bits, code.key()) != k) {
                return Err(format!("shard {k} holds {code}, a code of shard {}", shard_of(self.bits, code.key())));
            }
        }
        Ok(())
    }

    /// Inserts or replaces a record in a table nothing shares yet (a load); `None` if its shard is
    /// shared.
    ///
    /// A shard whose replaced records pass 1/8 of its record bytes (and [`LOAD_GARBAGE_FLOOR`]) is
    /// compacted in place at once ([`PractitionerTable::compact_in_place`]): a cold start from a topic
    /// the cleaner has not compacted yet reads up to a replaced version per code, and kept until the
    /// first fold after the load they were its peak (150 B a code against 92, BENCHMARKS.md).
    pub(crate) fn upsert_unshared(&mut self, rec: &PractitionerRecord) -> Option<Result<(), TableError>> {
        let part = self.part_mut(rec.code.key())?;
        Some(part.upsert(rec).map(|_| part.compact_if_wasteful(LOAD_GARBAGE_FLOOR)))
    }

    /// Deletes a code in a table nothing shares yet (a load); `None` if its shard is shared. Compacts
    /// the shard as [`BaseTable::upsert_unshared`] does.
    pub(crate) fn delete_unshared(&mut self, key: PractitionerKey<'_>) -> Option<Result<bool, TableError>> {
        let part = self.part_mut(key)?;
        Some(part.delete(key).inspect(|_| part.compact_if_wasteful(LOAD_GARBAGE_FLOOR)))
    }

    /// Makes room for about `n` records to come, in shards nothing shares (see
    /// [`PractitionerTable::reserve_records`]: the arenas, not the slot arrays, which grow by doubling —
    /// each a shard's, so a doubling costs a small rehash and never two large arrays at once).
    pub(crate) fn reserve_records(&mut self, n: usize) {
        let per = per_shard(n, self.bits);
        for p in self.parts.iter_mut().filter_map(Arc::get_mut) {
            p.reserve_records(per);
        }
    }

    /// Fits each unshared shard to what it holds (see [`PractitionerTable::fit`]).
    pub(crate) fn fit(&mut self) {
        for p in self.parts.iter_mut().filter_map(Arc::get_mut) {
            p.fit();
        }
    }

    /// A fresh table with `delta` applied, shard by shard (the garbage of replaced records dropped).
    pub fn rebuilt(&self, delta: Option<&PractitionerTable>) -> Result<BaseTable, TableError> {
        let bits = self.bits;
        let parts = (0..self.parts.len())
            .map(|k| self.parts[k].rebuilt_with(delta, |key| shard_of(bits, key) == k).map(Arc::new))
            .collect::<Result<_, _>>()?;
        Ok(BaseTable { parts, bits })
    }
}

/// Room for a shard's share of `n` codes, with slack for the spread between shards (a few standard
/// deviations: the shard a code falls in is as good as random).
fn per_shard(n: usize, bits: u32) -> usize {
    let mean = n >> bits;
    if bits == 0 { n } else { mean + mean / 16 + 64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::practitioner::tests::rec;

    fn code(i: u64) -> String {
        format!("D{:012}", 110_105_000_000 + i * 7919)
    }

    #[test]
    fn a_sharded_table_answers_as_one_table_and_spreads_codes_evenly() {
        let mut one = PractitionerTable::with_capacity(16);
        let mut sharded = BaseTable::sharded(4, 20_000);
        for i in 0..20_000 {
            let r = rec(&code(i), 1 + i % 3, &[("H11010500001", "2020-01-01", None)]);
            one.upsert(&r).unwrap();
            sharded.upsert_unshared(&r).unwrap().unwrap();
        }
        sharded.fit();
        assert_eq!(sharded.len(), one.len());
        assert_eq!(sharded.fingerprint(), one.fingerprint());
        for i in 0..20_100 {
            let c = code(i);
            let key = PractitionerKey::parse(&c).unwrap();
            assert_eq!(sharded.live(key).map(|r| r.version()), one.live(key).map(|r| r.version()), "{c}");
        }
        // Each of the 16 shards near its 1 250 codes, and its slots no fuller than 3/4.
        for p in sharded.shards() {
            assert!((1_000..1_500).contains(&p.len()), "a shard of {} codes", p.len());
        }
        sharded.verify().unwrap();
        // A code put in the wrong shard is found.
        let wrong = rec(&code(1), 9, &[("H11010500001", "2020-01-01", None)]);
        let k = shard_of(4, wrong.code.key());
        let mut parts: Vec<PractitionerTable> = sharded.shards().iter().map(|p| (**p).clone()).collect();
        parts[(k + 1) % 16].upsert(&wrong).unwrap();
        let forged = BaseTable::from_shards(4, parts).unwrap();
        assert!(forged.verify().unwrap_err().contains("a code of shard"));
    }

    /// A load that reads several versions of each code (a topic the cleaner has not compacted) keeps
    /// each shard's garbage under 1/8 of its records (or the floor): the shards are compacted in place
    /// as it goes, and the table answers as a clean load of the last versions does. Before, the
    /// replaced versions all stayed until the first fold after the load.
    #[test]
    fn a_load_of_many_versions_keeps_little_garbage_and_the_last_versions() {
        let n = 40_000;
        let mut base = BaseTable::sharded(2, 16);
        base.reserve_records(4 * n as usize);
        // Version v has v registrations: each replaces a record of another shape, which a same-shape
        // overwrite cannot take the place of, so the garbage is left for the compactions.
        let regs = [("H11010500001", "2020-01-01", None); 4];
        for v in 1..=4 {
            for i in 0..n {
                base.upsert_unshared(&rec(&code(i), v, &regs[..v as usize])).unwrap().unwrap();
            }
        }
        for i in (0..n).step_by(10) {
            base.delete_unshared(PractitionerKey::parse(&code(i)).unwrap()).unwrap().unwrap();
        }
        let mut clean = BaseTable::sharded(2, 16);
        for i in (0..n).filter(|i| i % 10 != 0) {
            clean.upsert_unshared(&rec(&code(i), 4, &regs)).unwrap().unwrap();
        }
        assert_eq!((base.len(), base.fingerprint()), (clean.len(), clean.fingerprint()));
        for p in base.shards() {
            let bytes = p.words().len() * 8;
            assert!(
                p.dead_bytes() <= LOAD_GARBAGE_FLOOR.max(bytes / 8) + 64,
                "{} bytes of garbage in a shard of {bytes}",
                p.dead_bytes()
            );
        }
        // Every shard was compacted at least once: its arena holds far less than the 4 versions read.
        assert!(
            base.record_bytes() < 2 * clean.record_bytes(),
            "{} against {}",
            base.record_bytes(),
            clean.record_bytes()
        );
        base.verify().unwrap();
        for i in 0..n {
            let c = code(i);
            let key = PractitionerKey::parse(&c).unwrap();
            assert_eq!(base.live(key).map(|r| r.version()), clean.live(key).map(|r| r.version()));
        }
    }

    #[test]
    fn rebuilt_shard_by_shard_equals_rebuilt_whole() {
        let mut base = BaseTable::sharded(3, 100);
        for i in 0..500 {
            base.upsert_unshared(&rec(&code(i), 1, &[("H11010500001", "2020-01-01", None)])).unwrap().unwrap();
        }
        let mut delta = PractitionerTable::with_capacity(16);
        for i in (0..600).step_by(5) {
            delta.upsert(&rec(&code(i), 2, &[("H11010500002", "2020-01-01", None)])).unwrap();
        }
        delta.delete(PractitionerKey::parse(&code(3)).unwrap()).unwrap();
        let whole: PractitionerTable = {
            let mut t = PractitionerTable::with_capacity(16);
            for (c, e) in base.iter() {
                if let Entry::Live(r) = e {
                    t.upsert(&r.to_record(c)).unwrap();
                }
            }
            t.rebuilt(Some(&delta)).unwrap()
        };
        let sharded = base.rebuilt(Some(&delta)).unwrap();
        assert_eq!(sharded.fingerprint(), whole.fingerprint());
        assert_eq!(sharded.len(), whole.len());
        assert!(sharded.live(PractitionerKey::parse(&code(3)).unwrap()).is_none());
        sharded.verify().unwrap();
    }
}
