//! The status tables: who was registered where, and who was suspended or terminated when.
//!
//! - [`PractitionerTable`]: the compact, 12-million-code table (see its module for the layout).
//! - [`BaseTable`]: a view's base practitioner table, in shards, so that folding the delta into it
//!   costs a shard's memory at a time, not a table's (see [`Compaction`]).
//! - [`InstitutionTable`]: the small table of institutions with a status history.
//! - [`MappingTable`]: local practitioner ids → national codes, by period (rules.md, "Local ids").
//! - [`View`]: one immutable snapshot of both, answering "what was this code's status at time t, at
//!   institution i, in department d". A view is a base table plus a small delta of recent updates, so a
//!   stream of status changes does not copy 12 million codes per batch.
//! - [`TableHandle`]: the `arc-swap` cell through which a new view is published whole; readers never
//!   lock, and take the view once per batch of claims, not per line.
//! - [`Updater`]: applies status records (version wins, tombstones delete) and produces views.
//!
//! This module knows nothing of files or Kafka: snapshots are encoded to any `Write` and decoded from
//! any `Read` (see [`snapshot`]).

mod base;
mod institution;
mod mapping;
mod practitioner;
pub mod snapshot;

use std::sync::Arc;

use arc_swap::ArcSwapOption;

pub use base::{BaseTable, MAX_SHARD_BITS, STREAM_SHARD_BITS};
pub use institution::{InstitutionStatus, InstitutionTable, institution_status};
pub use mapping::MappingTable;
pub use practitioner::{
    Entry, MAX_ENTRIES, PractitionerRef, PractitionerTable, TableError, Upsert, hint_huge_pages, prefetch,
};

use crate::record::{
    BjTime, InstitutionCode, InstitutionRecord, MappingRecord, PractitionerCode, PractitionerKey, PractitionerRecord,
};

/// Keep only 53 bits so the epoch survives JSON readers that hold numbers as doubles.
const EPOCH_MASK: u64 = (1 << 53) - 1;

/// One immutable snapshot of the status tables.
#[derive(Clone, Debug, Default)]
pub struct View {
    base: Arc<BaseTable>,
    delta: Arc<PractitionerTable>,
    institutions: Arc<InstitutionTable>,
    mappings: Arc<MappingTable>,
    practitioners: usize,
    /// The epoch of the status tables alone; `epoch` covers the mappings too.
    status_epoch: u64,
    epoch: u64,
}

/// The table epoch of a decision: a 53-bit fingerprint of the tables' content (every record's code and
/// version, order-independent). Equal epochs mean the same data, so a replay over the same tables
/// reproduces decisions byte for byte, and a decision can be traced to the snapshot that made it.
pub fn epoch_of(practitioner_fingerprint: u64, institution_fingerprint: u64) -> u64 {
    practitioner::mix(practitioner_fingerprint ^ practitioner::mix(institution_fingerprint ^ 0x2545_f491_4f6c_dd1d))
        & EPOCH_MASK
}

/// The epoch with a mapping table: the status tables' epoch when the mapping table is empty (a
/// deployment without local ids keeps its epochs), mixed with its fingerprint otherwise.
fn with_mapping_epoch(epoch: u64, mappings: &MappingTable) -> u64 {
    if mappings.is_empty() {
        return epoch;
    }
    practitioner::mix(epoch ^ practitioner::mix(mappings.fingerprint() ^ 0x7f4a_7c15_9e37_79b9)) & EPOCH_MASK
}

impl View {
    /// A view of fully built tables (no delta).
    pub fn new(practitioners: PractitionerTable, institutions: InstitutionTable) -> Self {
        Self::from_base(BaseTable::single(practitioners), institutions)
    }

    /// A view of a fully built base table, in shards or not (no delta).
    pub fn from_base(practitioners: BaseTable, institutions: InstitutionTable) -> Self {
        let epoch = epoch_of(practitioners.fingerprint(), institutions.fingerprint());
        View {
            practitioners: practitioners.len(),
            base: Arc::new(practitioners),
            delta: Arc::default(),
            institutions: Arc::new(institutions),
            mappings: Arc::default(),
            status_epoch: epoch,
            epoch,
        }
    }

    /// The same tables without the delta layer: the base as it is shared, not copied (a checkpoint
    /// writes the base and the delta apart).
    pub fn new_shared(view: &View) -> View {
        let epoch = epoch_of(view.base.fingerprint(), view.institutions.fingerprint());
        View {
            base: Arc::clone(&view.base),
            delta: Arc::default(),
            institutions: Arc::clone(&view.institutions),
            mappings: Arc::default(),
            practitioners: view.base.len(),
            status_epoch: epoch,
            epoch,
        }
    }

    /// The delta layer: changes not yet folded into the base.
    pub fn delta_table(&self) -> &PractitionerTable {
        &self.delta
    }

    /// This view with a local-id mapping table in place of its own (rules.md, "Local ids"); the epoch
    /// covers it.
    pub fn with_mappings(mut self, mappings: MappingTable) -> Self {
        self.epoch = with_mapping_epoch(self.status_epoch, &mappings);
        self.mappings = Arc::new(mappings);
        self
    }

    /// The packed national code a local id stood for at an institution at `t`.
    #[inline]
    pub fn mapped(&self, institution: InstitutionCode, local_id: &str, t: BjTime) -> Option<u64> {
        if self.mappings.is_empty() {
            return None;
        }
        self.mappings.national(institution, local_id, t)
    }

    /// The mapping table.
    pub fn mappings(&self) -> &MappingTable {
        &self.mappings
    }

    /// The live record of a practitioner code.
    #[inline]
    pub fn practitioner(&self, key: PractitionerKey<'_>) -> Option<PractitionerRef<'_>> {
        if self.delta.entries() != 0 {
            match self.delta.get(key) {
                Some(Entry::Live(r)) => return Some(r),
                Some(Entry::Deleted) => return None,
                None => {}
            }
        }
        self.base.live(key)
    }

    /// Starts loading the slot of a practitioner code in the base table (see
    /// [`PractitionerTable::prefetch_slot`]); the delta layer is small and stays in cache.
    #[inline]
    pub fn prefetch_practitioner_slot(&self, key: PractitionerKey<'_>) {
        self.base.prefetch_slot(key);
    }

    /// Starts loading the base record a practitioner code points at, once its slot is in cache.
    #[inline]
    pub fn prefetch_practitioner_record(&self, key: PractitionerKey<'_>) {
        self.base.prefetch_record(key);
    }

    /// The record of an institution with a status history.
    #[inline]
    pub fn institution(&self, code: InstitutionCode) -> Option<&InstitutionRecord> {
        self.institutions.get(code)
    }

    /// The epoch (see [`epoch_of`]).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Live practitioner codes.
    pub fn practitioner_count(&self) -> usize {
        self.practitioners
    }

    /// Institutions with a status history.
    pub fn institution_count(&self) -> usize {
        self.institutions.len()
    }

    /// Codes held in the delta layer (updates since the base was built).
    pub fn delta_len(&self) -> usize {
        self.delta.entries()
    }

    /// The base practitioner table (for snapshots: only meaningful when the delta is empty).
    pub fn base(&self) -> &BaseTable {
        &self.base
    }

    /// The institution table.
    pub fn institutions(&self) -> &InstitutionTable {
        &self.institutions
    }

    /// Every live practitioner record, base and delta merged.
    pub fn practitioner_records(&self) -> impl Iterator<Item = PractitionerRecord> + '_ {
        let base = self
            .base
            .iter()
            .filter(|(code, _)| self.delta.entries() == 0 || self.delta.get(code.key()).is_none())
            .filter_map(|(code, e)| match e {
                Entry::Live(r) => Some(r.to_record(code)),
                Entry::Deleted => None,
            });
        let delta = self.delta.iter().filter_map(|(code, e)| match e {
            Entry::Live(r) => Some(r.to_record(code)),
            Entry::Deleted => None,
        });
        base.chain(delta)
    }
}

/// The cell through which views are published. Empty until the first table is loaded: with no table
/// ever loaded, no claim is decided (service.md, "Stale status").
#[derive(Debug, Default)]
pub struct TableHandle(ArcSwapOption<View>);

impl TableHandle {
    /// An empty handle.
    pub fn new() -> Self {
        TableHandle::default()
    }

    /// The current view, if one was ever published. Wait-free; take it once per batch.
    #[inline]
    pub fn load(&self) -> Option<Arc<View>> {
        self.0.load_full()
    }

    /// True while `view` is the one published: a batch that took it ends when a newer one comes.
    /// Wait-free, and cheaper than [`TableHandle::load`] (no reference count touched).
    #[inline]
    pub fn is_current(&self, view: &Arc<View>) -> bool {
        self.0.load().as_ref().is_some_and(|v| Arc::ptr_eq(v, view))
    }

    /// Replaces the view atomically: readers see the old one or the new one, never a mix.
    pub fn publish(&self, view: Arc<View>) {
        self.0.store(Some(view));
    }
}

/// Applies status records to a base table through a delta layer, and cuts views.
///
/// Each table is shared with the views cut from it and copied on the first write after a view took it
/// (`Arc::make_mut`): a view costs no copy, so the 64 views a fold publishes (one per shard) share one
/// delta, and so does the fold itself, where each copied a delta of up to 1/64 of the table (about 22
/// MiB at 12 million codes, BENCHMARKS.md).
#[derive(Debug, Default)]
pub struct Updater {
    base: Arc<BaseTable>,
    delta: Arc<PractitionerTable>,
    institutions: Arc<InstitutionTable>,
    mappings: Arc<MappingTable>,
    fingerprint: u64,
    live: usize,
}

/// What applying one status record did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The record changed the tables.
    Changed,
    /// A stale version or a deletion of an unknown code: nothing changed.
    Unchanged,
}

/// A fold of the delta into the base, one shard at a time (see [`Updater::compaction`]). It holds
/// the old shards only until it has rebuilt each, so at most one shard is being rebuilt beside the
/// table at any moment.
#[derive(Debug)]
pub struct Compaction {
    shards: Vec<Option<Arc<PractitionerTable>>>,
    bits: u32,
    delta: Arc<PractitionerTable>,
    next: usize,
}

impl Compaction {
    /// Builds the next shard with its part of the delta folded in, and lets go of the old one: the
    /// shard's index and its new table, or `None` when every shard is done.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<(usize, PractitionerTable), TableError>> {
        let k = self.next;
        let old = self.shards.get_mut(k)?.take()?;
        self.next += 1;
        let bits = self.bits;
        let built = old.rebuilt_with(Some(&self.delta), |key| base::shard_of(bits, key) == k);
        drop(old);
        Some(built.map(|t| (k, t)))
    }

    /// Shards in all.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// The delta as it was when the compaction began, for [`Updater::finish_compaction`].
    pub fn into_delta(self) -> Arc<PractitionerTable> {
        self.delta
    }
}

impl Updater {
    /// Starts from fully built tables.
    pub fn new(base: PractitionerTable, institutions: InstitutionTable) -> Self {
        Self::with_base(BaseTable::single(base), institutions)
    }

    /// Starts from a base table in shards or not (a stream's: [`BaseTable::sharded`]).
    pub fn with_base(base: BaseTable, institutions: InstitutionTable) -> Self {
        Updater {
            fingerprint: base.fingerprint(),
            live: base.len(),
            base: Arc::new(base),
            delta: Arc::new(PractitionerTable::with_capacity(16)),
            institutions: Arc::new(institutions),
            mappings: Arc::default(),
        }
    }

    /// Continues from a view (a checkpoint's): its tables become the base, shared, not copied.
    pub fn from_view(view: &View) -> Result<Self, TableError> {
        let base = if view.delta.entries() == 0 {
            Arc::clone(&view.base)
        } else {
            Arc::new(view.base.rebuilt(Some(&view.delta))?)
        };
        Ok(Updater {
            fingerprint: base.fingerprint(),
            live: base.len(),
            base,
            delta: Arc::new(PractitionerTable::with_capacity(16)),
            institutions: Arc::clone(&view.institutions),
            mappings: Arc::default(),
        })
    }

    fn current(&self, key: PractitionerKey<'_>) -> Option<PractitionerRef<'_>> {
        match self.delta.get(key) {
            Some(Entry::Live(r)) => Some(r),
            Some(Entry::Deleted) => None,
            None => self.base.live(key),
        }
    }

    /// The record a practitioner code has now, if any (to compare a change with it).
    pub fn practitioner_record(&self, code: &PractitionerCode) -> Option<PractitionerRecord> {
        self.current(code.key()).map(|r| r.to_record(code.clone()))
    }

    /// The record an institution has now, if any.
    pub fn institution_record(&self, code: InstitutionCode) -> Option<&InstitutionRecord> {
        self.institutions.get(code)
    }

    /// Applies a practitioner record; version wins against what the view holds now.
    pub fn practitioner(&mut self, rec: &PractitionerRecord) -> Result<Applied, TableError> {
        let key = rec.code.key();
        let old = self.current(key).map(|r| r.version());
        if old.is_some_and(|v| rec.version <= v) {
            return Ok(Applied::Unchanged);
        }
        if let Some(v) = old {
            self.fingerprint = self.fingerprint.wrapping_sub(practitioner::record_fingerprint(key, v));
        } else {
            self.live += 1;
        }
        self.fingerprint = self.fingerprint.wrapping_add(practitioner::record_fingerprint(key, rec.version));
        // Before any view shares the base (loading at start-up), write into it directly: no delta, no
        // compaction, no second copy of a 12-million-code table.
        if self.delta.entries() == 0
            && let Some(done) = Arc::get_mut(&mut self.base).and_then(|base| base.upsert_unshared(rec))
        {
            done?;
            return Ok(Applied::Changed);
        }
        // `rec` is newer than anything the delta holds for this code (checked above), and a delta
        // tombstone accepts any version, so this upsert always lands.
        Arc::make_mut(&mut self.delta).upsert(rec)?;
        Ok(Applied::Changed)
    }

    /// Live practitioner codes.
    pub fn practitioner_count(&self) -> usize {
        self.live
    }

    /// Starts loading the slot a lookup of `key` begins at (see [`PractitionerTable::prefetch_slot`]):
    /// a reader that decodes a few records ahead of applying them hides most of each one's miss.
    #[inline]
    pub fn prefetch_practitioner(&self, key: PractitionerKey<'_>) {
        if self.delta.entries() == 0 {
            self.base.prefetch_slot(key);
        }
    }

    /// Makes room for about `n` practitioner records to come while the tables are still being loaded
    /// (nothing published, nothing in the delta): the base's record arenas reserved once instead of
    /// grown by copying (see [`BaseTable::reserve_records`]).
    pub fn reserve_records(&mut self, n: usize) {
        if self.delta.entries() == 0
            && let Some(base) = Arc::get_mut(&mut self.base)
        {
            base.reserve_records(n);
        }
    }

    /// Fits the base to what it holds at the end of a load, while nothing shares it (see
    /// [`PractitionerTable::fit`]).
    pub fn fit(&mut self) {
        if let Some(base) = Arc::get_mut(&mut self.base) {
            base.fit();
        }
    }

    /// Deletes a practitioner code (a tombstone on the topic).
    pub fn delete_practitioner(&mut self, key: PractitionerKey<'_>) -> Result<Applied, TableError> {
        let Some(v) = self.current(key).map(|r| r.version()) else { return Ok(Applied::Unchanged) };
        self.fingerprint = self.fingerprint.wrapping_sub(practitioner::record_fingerprint(key, v));
        self.live -= 1;
        if self.delta.entries() == 0
            && let Some(done) = Arc::get_mut(&mut self.base).and_then(|base| base.delete_unshared(key))
        {
            done?;
            return Ok(Applied::Changed);
        }
        Arc::make_mut(&mut self.delta).delete(key)?;
        Ok(Applied::Changed)
    }

    /// Applies an institution record; version wins.
    pub fn institution(&mut self, rec: InstitutionRecord) -> Applied {
        // Checked before `make_mut`, which copies the table when a view shares it: a stale record or
        // a deletion of an unknown code changes nothing and copies nothing.
        if self.institutions.is_stale(&rec) {
            return Applied::Unchanged;
        }
        match Arc::make_mut(&mut self.institutions).upsert(rec) {
            Upsert::Stale => Applied::Unchanged,
            _ => Applied::Changed,
        }
    }

    /// Deletes an institution.
    pub fn delete_institution(&mut self, code: InstitutionCode) -> Applied {
        if self.institutions.get(code).is_none() {
            return Applied::Unchanged;
        }
        Arc::make_mut(&mut self.institutions).delete(code);
        Applied::Changed
    }

    /// Applies a local-id mapping record; version wins.
    pub fn mapping(&mut self, rec: MappingRecord) -> Applied {
        match Arc::make_mut(&mut self.mappings).upsert(rec) {
            Upsert::Stale => Applied::Unchanged,
            _ => Applied::Changed,
        }
    }

    /// Deletes a local-id mapping.
    pub fn delete_mapping(&mut self, institution: InstitutionCode, local_id: &str) -> Applied {
        if Arc::make_mut(&mut self.mappings).delete(institution, local_id) {
            Applied::Changed
        } else {
            Applied::Unchanged
        }
    }

    /// Codes in the delta layer.
    pub fn delta_len(&self) -> usize {
        self.delta.entries()
    }

    /// True when the delta has grown enough that folding it into the base pays — lookups then check
    /// one table again, and each publish copies less: past `delta_codes` codes, or by default 65 536
    /// or 1/64 of the table, whichever is more. Also when the base holds much garbage: replaced
    /// records a cold start read from a topic the broker has not cleaned yet (up to half its records
    /// at the cleaner's default `min.cleanable.dirty.ratio`) stay in the base until it is rebuilt —
    /// past 1/8 of its records and 16 MiB, a fold with whatever delta there is rebuilds it.
    pub fn wants_compaction(&self, delta_codes: Option<usize>) -> bool {
        let delta = self.delta.entries() > delta_codes.unwrap_or_else(|| 65_536.max(self.base.len() / 64));
        let dead = self.base.dead_bytes();
        delta || (dead > 16 << 20 && dead > self.base.record_bytes() / 8)
    }

    /// Folds the delta into a new base. Costs a full table rebuild (seconds at 12 million codes), so
    /// the caller runs it off the latency path.
    pub fn compact(&mut self) -> Result<(), TableError> {
        let merged = self.base.rebuilt(Some(&self.delta))?;
        self.base = Arc::new(merged);
        self.delta = Arc::new(PractitionerTable::with_capacity(16));
        Ok(())
    }

    /// Starts folding the delta into the base shard by shard, off the latency path: call
    /// [`Compaction::next`] on another thread, [`Updater::install_shard`] each shard it builds (and
    /// publish, so that readers let go of the old shard), then [`Updater::finish_compaction`].
    pub fn compaction(&self) -> Compaction {
        Compaction {
            shards: self.base.shards().iter().map(|p| Some(Arc::clone(p))).collect(),
            bits: self.base.shard_bits(),
            delta: Arc::clone(&self.delta),
            next: 0,
        }
    }

    /// Puts a shard built by [`Compaction::next`] in place of the old one. The content is the same —
    /// the delta still holds what was folded in, and shadows it with the same versions — so views
    /// before and after answer alike and have the same epoch.
    pub fn install_shard(&mut self, k: usize, shard: PractitionerTable) {
        self.base = Arc::new(self.base.with_shard(k, shard));
    }

    /// Ends a compaction whose shards are all installed: the delta keeps only what arrived since
    /// [`Updater::compaction`] copied it (`input_delta`, [`Compaction::into_delta`]).
    pub fn finish_compaction(&mut self, input_delta: &PractitionerTable) -> Result<(), TableError> {
        let mut rest = PractitionerTable::with_capacity(16);
        for (code, entry) in self.delta.iter() {
            let key = code.key();
            let same = match (entry, input_delta.get(key)) {
                (Entry::Live(a), Some(Entry::Live(b))) => a.version() == b.version(),
                (Entry::Deleted, Some(Entry::Deleted)) => true,
                _ => false,
            };
            if !same {
                match entry {
                    Entry::Live(r) => {
                        rest.upsert(&r.to_record(code))?;
                    }
                    Entry::Deleted => {
                        rest.delete(key)?;
                    }
                }
            }
        }
        self.delta = Arc::new(rest);
        Ok(())
    }

    /// A view of the tables as they stand.
    pub fn view(&self) -> View {
        View {
            base: Arc::clone(&self.base),
            delta: Arc::clone(&self.delta),
            institutions: Arc::clone(&self.institutions),
            mappings: Arc::clone(&self.mappings),
            practitioners: self.live,
            status_epoch: epoch_of(self.fingerprint, self.institutions.fingerprint()),
            epoch: with_mapping_epoch(epoch_of(self.fingerprint, self.institutions.fingerprint()), &self.mappings),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BjTime, PractitionerText};

    fn rec(code: &str, version: u64, inst: &str) -> PractitionerRecord {
        let json = format!(
            r#"{{"code":"{code}","version":{version},"registrations":[{{"institution":"{inst}","from":"2020-01-01"}}]}}"#
        );
        PractitionerText::from_json(json.as_bytes()).unwrap().validate().unwrap()
    }

    fn key(s: &str) -> PractitionerKey<'_> {
        PractitionerKey::parse(s).unwrap()
    }

    #[test]
    fn delta_shadows_base_and_epoch_matches_a_fresh_build() {
        let mut base = PractitionerTable::with_capacity(4);
        base.upsert(&rec("D110105000001", 1, "H11010500001")).unwrap();
        base.upsert(&rec("D110105000002", 1, "H11010500001")).unwrap();
        let mut up = Updater::new(base, InstitutionTable::default());
        assert_eq!(up.practitioner(&rec("D110105000001", 2, "H11010500002")).unwrap(), Applied::Changed);
        assert_eq!(up.practitioner(&rec("D110105000001", 1, "H11010500003")).unwrap(), Applied::Unchanged);
        assert_eq!(up.delete_practitioner(key("D110105000002")).unwrap(), Applied::Changed);
        assert_eq!(up.practitioner(&rec("D110105000003", 1, "H11010500001")).unwrap(), Applied::Changed);
        let view = up.view();
        let t = BjTime::parse("2026-01-01").unwrap();
        let inst2 = InstitutionCode::parse("H11010500002").unwrap();
        assert!(view.practitioner(key("D110105000001")).unwrap().registered_at(inst2, t));
        assert!(view.practitioner(key("D110105000002")).is_none());
        assert!(view.practitioner(key("D110105000003")).is_some());
        assert_eq!(view.practitioner_count(), 2);

        let mut fresh = PractitionerTable::with_capacity(4);
        fresh.upsert(&rec("D110105000003", 1, "H11010500001")).unwrap();
        fresh.upsert(&rec("D110105000001", 2, "H11010500002")).unwrap();
        assert_eq!(view.epoch(), View::new(fresh, InstitutionTable::default()).epoch());

        let epoch = view.epoch();
        up.compact().unwrap();
        assert_eq!(up.view().epoch(), epoch);
        assert_eq!(up.delta_len(), 0);
    }

    #[test]
    fn background_compaction_keeps_updates_that_arrived_meanwhile() {
        let mut up = Updater::with_base(BaseTable::sharded(2, 16), InstitutionTable::default());
        up.practitioner(&rec("D110105000001", 1, "H11010500001")).unwrap();
        let _shared = up.view();
        up.practitioner(&rec("D110105000005", 1, "H11010500001")).unwrap();
        let mut job = up.compaction();
        up.practitioner(&rec("D110105000005", 2, "H11010500002")).unwrap();
        up.practitioner(&rec("D110105000009", 1, "H11010500002")).unwrap();
        let epoch = up.view().epoch();
        let mut installed = 0;
        while let Some(built) = job.next() {
            let (k, shard) = built.unwrap();
            up.install_shard(k, shard);
            installed += 1;
            // Between shards the view answers as before.
            assert_eq!(up.view().epoch(), epoch);
            assert_eq!(up.view().practitioner(key("D110105000005")).unwrap().version(), 2);
        }
        assert_eq!(installed, 4);
        up.finish_compaction(&job.into_delta()).unwrap();
        let view = up.view();
        assert_eq!(view.epoch(), epoch);
        assert_eq!(view.practitioner(key("D110105000005")).unwrap().version(), 2);
        assert!(view.practitioner(key("D110105000009")).is_some());
        assert!(view.practitioner(key("D110105000001")).is_some());
        assert_eq!(up.delta_len(), 2, "the two updates that came during the compaction stay in the delta");
        assert_eq!(view.base().len(), 2, "the first two codes are folded into the base");
    }

    /// Replaced records are garbage in the base until it is rebuilt; a fold with no delta at all
    /// rebuilds it, shard by shard, and changes nothing else.
    #[test]
    fn replaced_records_are_counted_and_a_fold_drops_them() {
        let mut up = Updater::with_base(BaseTable::sharded(2, 64), InstitutionTable::default());
        let code = |i: u64| format!("D{:012}", 110_105_000_000 + i);
        // Version v has v registrations: each replaces a record of another shape, which stays behind.
        let grown = |c: &str, v: u64| {
            let regs: Vec<String> =
                (0..v).map(|r| format!(r#"{{"institution":"H1101050000{r}","from":"2020-01-01"}}"#)).collect();
            let json = format!(r#"{{"code":"{c}","version":{v},"registrations":[{}]}}"#, regs.join(","));
            PractitionerText::from_json(json.as_bytes()).unwrap().validate().unwrap()
        };
        for v in 1..=3 {
            for i in 0..100 {
                up.practitioner(&grown(&code(i), v)).unwrap();
            }
        }
        // A version of the same shape (three registrations) takes the old one's place: no garbage.
        let garbage = up.view().base().dead_bytes();
        let mut same = grown(&code(0), 4);
        same.registrations.pop();
        up.practitioner(&same).unwrap();
        assert_eq!(up.view().base().dead_bytes(), garbage);
        assert_eq!(up.view().practitioner(key(&code(0))).unwrap().to_record(same.code.clone()), same);
        up.practitioner(&rec(&code(1), 4, "H11010500009")).unwrap();
        up.delete_practitioner(key(&code(7))).unwrap();
        let view = up.view();
        // Versions 1 and 2 of 100 records (5 and 8 words) replaced; code 1's version 3 (11 words)
        // replaced by a smaller record; the deleted one's third version (11 words).
        assert_eq!(view.base().dead_bytes(), 100 * (5 + 8) * 8 + 11 * 8 + 11 * 8);
        assert_eq!(up.delta_len(), 0);
        let epoch = view.epoch();
        let mut job = up.compaction();
        while let Some(built) = job.next() {
            let (k, shard) = built.unwrap();
            up.install_shard(k, shard);
        }
        up.finish_compaction(&job.into_delta()).unwrap();
        assert_eq!(up.view().base().dead_bytes(), 0);
        assert_eq!(up.view().epoch(), epoch);
        assert!(up.view().base().record_bytes() < view.base().record_bytes() / 2);
        assert!(!up.wants_compaction(None));
    }

    /// The point of the shards: while a compaction runs, the old shards are let go one by one, so at
    /// no moment is much more than the table itself held (a whole-table fold held two tables).
    #[test]
    fn a_compaction_holds_at_most_a_shard_beside_the_table() {
        let mut up = Updater::with_base(BaseTable::sharded(4, 4_000), InstitutionTable::default());
        for i in 0..4_000u64 {
            up.practitioner(&rec(&format!("D{:012}", 110_105_000_000 + i * 13), 1, "H11010500001")).unwrap();
        }
        let mut readers = Some(up.view());
        for i in (0..4_000u64).step_by(3) {
            up.practitioner(&rec(&format!("D{:012}", 110_105_000_000 + i * 13), 2, "H11010500002")).unwrap();
        }
        let table = up.view().base().heap_bytes();
        let shard = up.view().base().shards().iter().map(|s| s.heap_bytes()).max().unwrap();
        let old: Vec<std::sync::Weak<PractitionerTable>> =
            up.view().base().shards().iter().map(Arc::downgrade).collect();
        let mut job = up.compaction();
        while let Some(built) = job.next() {
            let (k, new) = built.unwrap();
            up.install_shard(k, new);
            // Readers take the newly published view and drop the one they held.
            readers = Some(up.view());
            let held: usize = old.iter().filter_map(|w| w.upgrade()).map(|s| s.heap_bytes()).sum::<usize>()
                + readers
                    .as_ref()
                    .unwrap()
                    .base()
                    .shards()
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j <= k)
                    .map(|(_, s)| s.heap_bytes())
                    .sum::<usize>();
            assert!(held <= table + 2 * shard, "after shard {k}: {held} bytes held, table {table}, shard {shard}");
            assert!(old[k].upgrade().is_none(), "the old shard {k} is still held");
        }
        up.finish_compaction(&job.into_delta()).unwrap();
        assert_eq!(up.delta_len(), 0);
        drop(readers);
    }

    #[test]
    fn updates_before_the_first_view_go_straight_into_the_base() {
        let mut up = Updater::new(PractitionerTable::with_capacity(4), InstitutionTable::default());
        up.practitioner(&rec("D110105000001", 1, "H11010500001")).unwrap();
        up.delete_practitioner(key("D110105000001")).unwrap();
        up.practitioner(&rec("D110105000002", 1, "H11010500001")).unwrap();
        assert_eq!(up.delta_len(), 0);
        let view = up.view();
        // Now the base is shared: updates go to the delta.
        up.practitioner(&rec("D110105000003", 1, "H11010500001")).unwrap();
        assert_eq!(up.delta_len(), 1);
        assert!(view.practitioner(key("D110105000003")).is_none());
        assert!(up.view().practitioner(key("D110105000003")).is_some());
        assert_eq!(up.view().practitioner_count(), 2);
    }

    #[test]
    fn handle_is_empty_until_published() {
        let h = TableHandle::new();
        assert!(h.load().is_none());
        h.publish(Arc::new(View::default()));
        assert!(h.load().is_some());
    }
}
