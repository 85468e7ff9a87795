//! The compact practitioner table: 12 million codes in well under 100 bytes each, a lookup costing
//! about one cache miss.
//!
//! Layout:
//! - `slots`: an open-addressing hash table (linear probing, power-of-two size, load ≤ 3/4) of 16-byte
//!   slots holding the packed national code and the offset of its record. Key 0 marks an empty slot;
//!   packed national codes always carry a non-zero kind tag, so 0 is never a code.
//! - `legacy`: legacy local ids (not of a national form), rare, in an ordinary hash map.
//! - `words`: every record, back to back, as 64-bit words:
//!   `[version][header][registration × n: institution, from, until][period × m: from, until, meta, decision]`.
//! - `strings`: period `basis` and `decision_id` texts, referenced by index (0 = none).
//!
//! A record replaced by a newer version leaves its old words behind until the table is rebuilt (see
//! [`PractitionerTable::rebuilt`]); in a file that is rare, on a stream the delta layer absorbs it.
//! A deleted code keeps its slot and points at a tombstone record, so a delta layer can shadow a base
//! table's record with "deleted". The slot's offset carries the tombstone too, in its top bit
//! ([`DEAD`]), so that "is this code live?" costs the one memory miss of the slot (performance.md's
//! lookup target); the record's own words are read only when the caller reads the record.

use bincode::{Decode, Encode};
use rustc_hash::FxHashMap;

use crate::record::{
    BjTime, InstitutionCode, Interval, Period, PractitionerCode, PractitionerKey, PractitionerRecord, Registration,
    Status,
};

/// One slot of the hash table. `repr(C)` with explicit padding, so that the slot array is plain bytes
/// that a snapshot writes and reads as they sit in memory (format 4: no per-slot decoding on load).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub(crate) struct Slot {
    pub(crate) key: u64,
    pub(crate) at: u32,
    /// Always 0; written as it is.
    pub(crate) pad: u32,
}

/// Header word: registration count, period count, tombstone flag.
const REGS_MASK: u64 = 0xFFFF;
const PERIODS_SHIFT: u32 = 16;
const TOMBSTONE: u64 = 1 << 63;
/// The top bit of a slot's (or legacy entry's) offset: the code points at a tombstone. Offsets
/// themselves stay below it (a table of more than 2^31 words, 16 GiB, is `TableError::Full`).
pub(crate) const DEAD: u32 = 1 << 31;
/// Most registrations or periods one record may hold (fits the header's 16-bit counts).
pub const MAX_ENTRIES: usize = 0xFFFF;

const REG_WORDS: usize = 3;
const PERIOD_WORDS: usize = 4;
const TERMINATED_BIT: u64 = 1 << 63;
/// The basis text's index in a period's third word (the status bit above it).
const TEXT_MASK: u64 = 0x7FFF_FFFF;

/// What an upsert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upsert {
    /// A new code.
    Inserted,
    /// A newer version replaced the one held.
    Replaced,
    /// The record's version is not newer than the one held: ignored (version wins).
    Stale,
}

/// Why a record cannot enter the table.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// More registrations or periods than a record may hold.
    #[error("more than {MAX_ENTRIES} registrations or periods")]
    TooManyEntries,
    /// The table's arena is full (over 4 billion words).
    #[error("table full")]
    Full,
}

/// The practitioner table. See the module documentation for its layout.
#[derive(Clone, Debug, Default)]
pub struct PractitionerTable {
    slots: Vec<Slot>,
    used_slots: usize,
    legacy: Vec<(String, u32)>,
    /// Index into `legacy`; rebuilt on load rather than stored twice.
    legacy_index: FxHashMap<Box<str>, usize>,
    words: Vec<u64>,
    strings: Vec<String>,
    live: usize,
    fingerprint: u64,
    /// High bits of the slot hash already spent choosing this table among the shards of a
    /// [`super::BaseTable`] (0 for a table of its own): the slot index comes from the bits after them,
    /// so that a shard's codes spread over all its slots.
    skip: u32,
    /// Bytes of records (words and their strings) replaced or deleted since the table was built: kept
    /// until a rebuild. Not stored in snapshots (a loaded table counts from 0).
    dead_bytes: usize,
}

/// The table's small parts as a snapshot stores them (bincode); the two large arrays, `slots` and
/// `words`, follow as raw little-endian arrays of the lengths given here (see `snapshot`).
#[derive(Clone, Debug, Encode, Decode)]
pub(crate) struct Meta {
    pub(crate) slot_count: u64,
    pub(crate) word_count: u64,
    used_slots: u64,
    live: u64,
    fingerprint: u64,
    legacy: Vec<(String, u32)>,
    strings: Vec<String>,
}

/// A view of one record inside the table.
#[derive(Clone, Copy, Debug)]
pub struct PractitionerRef<'a> {
    words: &'a [u64],
    strings: &'a [String],
}

/// An entry as the table holds it: a record, or the mark of a deleted code.
#[derive(Clone, Copy, Debug)]
pub enum Entry<'a> {
    /// The record.
    Live(PractitionerRef<'a>),
    /// The code was deleted (a tombstone on the status topic).
    Deleted,
}

/// The multiplier of the table's Fibonacci hashing (also the shard choice of a [`super::BaseTable`]).
pub(crate) const HASH_MUL: u64 = 0x9E37_79B9_7F4A_7C15;

#[inline]
fn hash(key: u64, bits: u32, skip: u32) -> usize {
    // Fibonacci hashing: the multiply spreads the structured digits over the high bits; the top `skip`
    // of them chose the shard, the next `bits` choose the slot.
    ((key.wrapping_mul(HASH_MUL) << skip) >> (64 - bits)) as usize
}

/// A record's contribution to the table fingerprint: its code and version.
pub(crate) fn record_fingerprint(key: PractitionerKey<'_>, version: u64) -> u64 {
    let code = match key {
        PractitionerKey::National(k) => k,
        PractitionerKey::Legacy(s) => {
            s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
        }
    };
    mix(code ^ mix(version.wrapping_add(0x51_7cc1_b727_220a)))
}

/// A strong 64-bit mixer (splitmix64's finaliser).
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl PractitionerTable {
    /// An empty table sized for about `n` codes.
    pub fn with_capacity(n: usize) -> Self {
        Self::shard_with_capacity(n, 0)
    }

    /// An empty shard of a [`super::BaseTable`] whose shard choice spends `skip` hash bits.
    pub(crate) fn shard_with_capacity(n: usize, skip: u32) -> Self {
        let mut t = PractitionerTable { skip, ..PractitionerTable::default() };
        t.strings.push(String::new());
        t.reserve(n);
        t
    }

    /// Makes room for `n` codes in all: the slot array sized for them at once (one rebuild instead of
    /// one per doubling), the record arena reserved (address space; pages are taken as written).
    pub fn reserve(&mut self, n: usize) {
        let want = slots_for(n);
        if want > self.slots.len() {
            self.resize_slots(want);
        }
        self.reserve_records(n);
    }

    /// Makes room in the record arena for about `n` records to come (address space; pages are taken as
    /// written), leaving the slot array to grow as codes arrive. For a load that counts records, not
    /// codes: a topic the cleaner has not compacted holds more records than codes, and a slot array
    /// sized for the records can come out twice the size its codes need — every page of it written, as
    /// codes spread over all its slots, before [`PractitionerTable::fit`] could shrink it.
    pub fn reserve_records(&mut self, n: usize) {
        let words = n.saturating_mul(6);
        if words > self.words.capacity() {
            self.words.reserve(words - self.words.len());
            hint_huge_pages(&self.words);
        }
    }

    /// Fits the table to what it holds, at the end of a load: the slot array shrunk to the size its
    /// codes need (after a [`PractitionerTable::reserve`] that overestimated them; deleted codes keep
    /// their slots), replaced records dropped ([`PractitionerTable::compact_in_place`]), and the record
    /// arena's spare capacity given back. The capacity was reserved for every record the load was to
    /// read; as address space it costs nothing, but the 2 MiB pages asked for it
    /// ([`hint_huge_pages`]) are taken whole, and the compactions during the load wrote past the end
    /// that remains. glibc shrinks a mapped array where it lies (`mremap`), without a copy.
    pub fn fit(&mut self) {
        let want = slots_for(self.used_slots);
        if want < self.slots.len() {
            self.resize_slots(want);
        }
        if self.dead_bytes > 0 {
            self.compact_in_place();
        }
        self.words.shrink_to_fit();
        self.strings.shrink_to_fit();
    }

    /// Codes held, not counting deleted ones.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no code is held.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Codes whose slot exists, deleted ones included.
    pub fn entries(&self) -> usize {
        self.used_slots + self.legacy.len()
    }

    /// An order-independent fingerprint of the content: the wrapping sum over live records of a hash of
    /// (code, version). Equal fingerprints mean equal tables under the versioning contract of records.md.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Bytes of replaced and deleted records the table still holds (a rebuild drops them).
    pub fn dead_bytes(&self) -> usize {
        self.dead_bytes
    }

    /// Bytes of memory held by the table's arrays.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.words.capacity() * 8
            + self.strings.iter().map(|s| s.capacity() + 24).sum::<usize>()
            + self.legacy.iter().map(|(s, _)| s.capacity() + 32 + 48).sum::<usize>()
    }

    fn bits(&self) -> u32 {
        self.slots.len().trailing_zeros()
    }

    fn resize_slots(&mut self, n: usize) {
        // Zeroed pages from the allocator, not written here (`vec![Slot::default(); n]` writes every
        // slot, and so takes the pages before the huge-page hint below can apply to them): a slot
        // array on small pages costs a TLB miss on top of the cache miss of nearly every lookup.
        let old = std::mem::replace(&mut self.slots, bytemuck::zeroed_vec(n));
        hint_huge_pages(&self.slots);
        let bits = self.bits();
        let mask = n - 1;
        for s in old.into_iter().filter(|s| s.key != 0) {
            let mut i = hash(s.key, bits, self.skip);
            while self.slots[i].key != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = s;
        }
    }

    #[inline]
    fn find(&self, key: u64) -> Result<usize, usize> {
        if self.slots.is_empty() {
            return Err(usize::MAX);
        }
        let mask = self.slots.len() - 1;
        let mut i = hash(key, self.bits(), self.skip);
        // Bounded even in a (forged) full table, which the load factor never lets happen otherwise.
        for _ in 0..self.slots.len() {
            let s = self.slots[i];
            if s.key == key {
                return Ok(i);
            }
            if s.key == 0 {
                return Err(i);
            }
            i = (i + 1) & mask;
        }
        Err(usize::MAX)
    }

    fn offset_of(&self, key: PractitionerKey<'_>) -> Option<usize> {
        match key {
            PractitionerKey::National(k) => self.find(k).ok().map(|i| self.slots[i].at as usize),
            PractitionerKey::Legacy(s) => self.legacy_index.get(s).map(|&i| self.legacy[i].1 as usize),
        }
    }

    /// Starts loading the slot where a lookup of `key` begins, without waiting for it: issued for
    /// several codes before any of them is looked up, the memory misses overlap instead of queueing
    /// (a core keeps ten or more in flight). Legacy ids live in a small map and are not prefetched.
    #[inline]
    pub fn prefetch_slot(&self, key: PractitionerKey<'_>) {
        if let (PractitionerKey::National(k), false) = (key, self.slots.is_empty()) {
            prefetch(&self.slots[hash(k, self.bits(), self.skip)]);
        }
    }

    /// Starts loading the first words of the record a code points at. Reads the slot, so it pays
    /// off once [`PractitionerTable::prefetch_slot`] has brought it in: the second, dependent miss
    /// of a lookup then overlaps with the other codes' too.
    #[inline]
    pub fn prefetch_record(&self, key: PractitionerKey<'_>) {
        if let PractitionerKey::National(k) = key
            && let Ok(i) = self.find(k)
        {
            let at = self.slots[i].at;
            if at & DEAD == 0
                && let Some(w) = self.words.get(at as usize)
            {
                prefetch(w);
            }
        }
    }

    /// The entry for a code, if the table holds one.
    #[inline]
    pub fn get(&self, key: PractitionerKey<'_>) -> Option<Entry<'_>> {
        let at = self.offset_of(key)?;
        Some(self.entry_at(at))
    }

    fn entry_at(&self, at: usize) -> Entry<'_> {
        // Every offset in a slot was written by `append`, or came from a snapshot whose checksum
        // matched; either way the reference is cut to the arena here and its accessors stay in bounds.
        // The record's words are not touched here: the reference starts at the record and runs to the
        // end of the arena, and its accessors read the header for the lengths when they are called.
        if at & DEAD as usize != 0 {
            return Entry::Deleted;
        }
        match self.words.get(at..) {
            Some(words) if words.len() >= 2 => Entry::Live(PractitionerRef { words, strings: &self.strings }),
            _ => Entry::Deleted,
        }
    }

    /// The live record for a code, if any.
    pub fn live(&self, key: PractitionerKey<'_>) -> Option<PractitionerRef<'_>> {
        match self.get(key)? {
            Entry::Live(r) => Some(r),
            Entry::Deleted => None,
        }
    }

    fn intern(&mut self, s: Option<&str>) -> Result<u64, TableError> {
        match s {
            None => Ok(0),
            Some(s) => {
                let id = self.strings.len();
                if id >= 0x7FFF_FFFF {
                    return Err(TableError::Full);
                }
                self.strings.push(s.to_owned());
                Ok(id as u64)
            }
        }
    }

    fn append(&mut self, rec: &PractitionerRecord) -> Result<u32, TableError> {
        if rec.registrations.len() > MAX_ENTRIES || rec.periods.len() > MAX_ENTRIES {
            return Err(TableError::TooManyEntries);
        }
        let at = self.next_offset()?;
        self.words.push(rec.version);
        self.words.push(rec.registrations.len() as u64 | (rec.periods.len() as u64) << PERIODS_SHIFT);
        for r in &rec.registrations {
            self.words.extend([r.institution.packed(), r.during.from.secs() as u64, r.during.until.secs() as u64]);
        }
        for p in &rec.periods {
            let basis = self.intern(p.basis.as_deref())?;
            let decision = self.intern(p.decision_id.as_deref())?;
            let status = if p.status == Status::Terminated { TERMINATED_BIT } else { 0 };
            self.words.extend([p.during.from.secs() as u64, p.during.until.secs() as u64, status | basis, decision]);
        }
        Ok(at)
    }

    fn append_tombstone(&mut self, version: u64) -> Result<u32, TableError> {
        let at = self.next_offset()?;
        self.words.extend([version, TOMBSTONE]);
        Ok(at | DEAD)
    }

    fn next_offset(&self) -> Result<u32, TableError> {
        u32::try_from(self.words.len()).ok().filter(|&at| at < DEAD).ok_or(TableError::Full)
    }

    /// Inserts a record, or replaces the one held if this one's version is newer (records.md: a stale
    /// record must not roll a status back). A deleted code accepts any version.
    pub fn upsert(&mut self, rec: &PractitionerRecord) -> Result<Upsert, TableError> {
        let key = rec.code.key();
        let held = self.offset_of(key).map(|at| (at, self.entry_at(at)));
        let mut replaced = None;
        let outcome = match held {
            Some((_, Entry::Live(old))) if rec.version <= old.version() => return Ok(Upsert::Stale),
            Some((at, Entry::Live(old))) => {
                let (version, dead, counts) = (old.version(), old.held_bytes(), old.counts());
                replaced = Some((at, counts));
                self.fingerprint = self.fingerprint.wrapping_sub(record_fingerprint(key, version));
                self.dead_bytes += dead;
                Upsert::Replaced
            }
            Some((_, Entry::Deleted)) => {
                self.live += 1;
                self.dead_bytes += 16;
                Upsert::Replaced
            }
            None => {
                self.live += 1;
                Upsert::Inserted
            }
        };
        self.fingerprint = self.fingerprint.wrapping_add(record_fingerprint(key, rec.version));
        let mut at = self.append(rec)?;
        // A newer version of the same shape (as many registrations and periods) takes the place of
        // the one it replaces; only the old texts are left as garbage. A change of status dates,
        // institutions or versions alone then leaves nothing behind for a compaction to remove. The
        // table is not shared (`&mut self`), so no reader sees the record change under it; and the
        // arena stays records back to back, as `compact_in_place` walks it. Appended first, so that a
        // record that cannot be written leaves the old one whole.
        if let Some((old_at, held_shape)) = replaced
            && held_shape == (rec.registrations.len(), rec.periods.len())
        {
            let len = self.words.len() - at as usize;
            self.words.copy_within(at as usize.., old_at);
            self.words.truncate(at as usize);
            self.dead_bytes -= len * 8;
            at = old_at as u32;
        }
        self.point(key, at);
        Ok(outcome)
    }

    /// Marks a code deleted. Returns true if a live record was held. In a delta layer, a deletion of a
    /// code the layer does not hold still records the tombstone, so it shadows the base.
    pub fn delete(&mut self, key: PractitionerKey<'_>) -> Result<bool, TableError> {
        let was_live = match self.get(key) {
            Some(Entry::Live(old)) => {
                let (version, dead) = (old.version(), old.held_bytes());
                self.fingerprint = self.fingerprint.wrapping_sub(record_fingerprint(key, version));
                self.live -= 1;
                self.dead_bytes += dead;
                true
            }
            Some(Entry::Deleted) => {
                self.dead_bytes += 16;
                false
            }
            None => false,
        };
        let at = self.append_tombstone(0)?;
        self.point(key, at);
        Ok(was_live)
    }

    fn point(&mut self, key: PractitionerKey<'_>, at: u32) {
        match key {
            PractitionerKey::National(k) => match self.find(k) {
                Ok(i) => self.slots[i].at = at,
                Err(_) => {
                    if (self.used_slots + 1) * 4 > self.slots.len() * 3 {
                        self.resize_slots(slots_for(self.used_slots + 1).max(self.slots.len() * 2));
                    }
                    // After the resize there is room: `find` returns an empty slot.
                    if let Err(i) = self.find(k)
                        && let Some(slot) = self.slots.get_mut(i)
                    {
                        *slot = Slot { key: k, at, pad: 0 };
                        self.used_slots += 1;
                    }
                }
            },
            PractitionerKey::Legacy(s) => match self.legacy_index.get(s) {
                Some(&i) => self.legacy[i].1 = at,
                None => {
                    self.legacy_index.insert(s.into(), self.legacy.len());
                    self.legacy.push((s.to_owned(), at));
                }
            },
        }
    }

    /// Every entry with its code (deleted ones included), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (PractitionerCode, Entry<'_>)> + '_ {
        let national = self
            .slots
            .iter()
            .filter(|s| s.key != 0)
            .map(|s| (PractitionerCode::National(s.key), self.entry_at(s.at as usize)));
        let legacy = self
            .legacy
            .iter()
            .map(|(code, at)| (PractitionerCode::Legacy(code.as_str().into()), self.entry_at(*at as usize)));
        national.chain(legacy)
    }

    /// A fresh table holding this table's live records with `delta` applied on top; garbage left by
    /// replaced records is dropped.
    pub fn rebuilt(&self, delta: Option<&PractitionerTable>) -> Result<PractitionerTable, TableError> {
        self.rebuilt_with(delta, |_| true)
    }

    /// [`PractitionerTable::rebuilt`] taking from `delta` only the codes `mine` accepts (a shard's).
    pub(crate) fn rebuilt_with(
        &self,
        delta: Option<&PractitionerTable>,
        mine: impl Fn(PractitionerKey<'_>) -> bool,
    ) -> Result<PractitionerTable, TableError> {
        let taken = delta.map_or(0, |d| d.iter().filter(|(code, _)| mine(code.key())).count());
        let mut out = PractitionerTable::shard_with_capacity(self.live + taken, self.skip);
        for (code, entry) in self.iter() {
            let shadowed = delta.is_some_and(|d| d.get(code.key()).is_some());
            if let (Entry::Live(r), false) = (entry, shadowed) {
                out.upsert(&r.to_record(code))?;
            }
        }
        if let Some(d) = delta {
            for (code, entry) in d.iter() {
                if let (Entry::Live(r), true) = (entry, mine(code.key())) {
                    out.upsert(&r.to_record(code))?;
                }
            }
        }
        Ok(out)
    }

    /// True when replaced and deleted records hold more than 1/8 of the table's record bytes (and at
    /// least `floor` bytes): the point where [`PractitionerTable::compact_in_place`] pays.
    pub(crate) fn wants_compacting(&self, floor: usize) -> bool {
        let record_bytes = self.words.len() * 8;
        self.dead_bytes > floor && self.dead_bytes > record_bytes / 8
    }

    /// Compacts the table in place if it [`wants_compacting`](PractitionerTable::wants_compacting).
    pub(crate) fn compact_if_wasteful(&mut self, floor: usize) {
        if self.wants_compacting(floor) {
            self.compact_in_place();
        }
    }

    /// Drops the words and texts of replaced and deleted records in place: live records slide down the
    /// arena in their order, each slot is pointed at its record's new place, and the texts still in
    /// use are renumbered. Deleted codes keep their slots and tombstones (a delta may shadow with them).
    ///
    /// For a table nothing shares, while it is loaded (a stream's cold start from a topic the broker's
    /// cleaner has not compacted yet holds up to a replaced version per code): unlike
    /// [`PractitionerTable::rebuilt`], no second table is built, so the garbage never costs more than
    /// the share that triggered this. The arena keeps its capacity, which the records still to come
    /// fill again.
    pub(crate) fn compact_in_place(&mut self) {
        // Which records are live, and then where each moves: indexed by word offset, written at the
        // first word of each record a slot or legacy id points at. The arena is records back to back,
        // so one walk down it finds every record; no sort, and every pass but the last is sequential
        // (a compaction costs a few milliseconds a 190 000-code shard).
        const NONE: u32 = u32::MAX;
        const LIVE: u32 = u32::MAX - 1;
        let mut moved_to = vec![NONE; self.words.len()];
        let owners =
            self.slots.iter().filter(|s| s.key != 0).map(|s| s.at).chain(self.legacy.iter().map(|(_, at)| *at));
        for at in owners {
            if let Some(m) = moved_to.get_mut((at & !DEAD) as usize) {
                *m = LIVE;
            }
        }
        let mut strings = vec![String::new()];
        let (mut from, mut w) = (0usize, 0usize);
        while from + 1 < self.words.len() {
            let header = self.words[from + 1];
            let len = if header & TOMBSTONE != 0 { 2 } else { record_words(header) };
            let len = len.min(self.words.len() - from);
            if moved_to[from] != NONE {
                moved_to[from] = w as u32;
                self.words.copy_within(from..from + len, w);
                if header & TOMBSTONE == 0 {
                    let (regs, periods) = shape(header);
                    let start = (w + 2 + regs * REG_WORDS).min(w + len);
                    let end = (start + periods * PERIOD_WORDS).min(w + len);
                    // A text moves to the new list; its index is renumbered (0 stays "none").
                    let mut take = |id: u64| {
                        if id == 0 {
                            return 0;
                        }
                        strings.push(self.strings.get_mut(id as usize).map(std::mem::take).unwrap_or_default());
                        strings.len() as u64 - 1
                    };
                    for p in self.words[start..end].chunks_exact_mut(PERIOD_WORDS) {
                        p[2] = (p[2] & !TEXT_MASK) | take(p[2] & TEXT_MASK);
                        p[3] = take(p[3]);
                    }
                }
                w += len;
            }
            from += len.max(1);
        }
        let relocate = |at: &mut u32| {
            // An offset that is no record's start (only in a forged table) stays as it was.
            if let Some(&m) = moved_to.get((*at & !DEAD) as usize)
                && m < LIVE
            {
                *at = m | (*at & DEAD);
            }
        };
        self.slots.iter_mut().filter(|s| s.key != 0).for_each(|s| relocate(&mut s.at));
        self.legacy.iter_mut().for_each(|(_, at)| relocate(at));
        self.words.truncate(w);
        self.strings = strings;
        self.dead_bytes = 0;
    }

    /// The small parts, for a snapshot.
    pub(crate) fn meta(&self) -> Meta {
        Meta {
            slot_count: self.slots.len() as u64,
            word_count: self.words.len() as u64,
            used_slots: self.used_slots as u64,
            live: self.live as u64,
            fingerprint: self.fingerprint,
            legacy: self.legacy.clone(),
            strings: self.strings.clone(),
        }
    }

    /// The slot array, for a snapshot.
    pub(crate) fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The record arena, for a snapshot.
    pub(crate) fn words(&self) -> &[u64] {
        &self.words
    }

    /// Back from a snapshot's parts, with no per-record work: the snapshot's checksum vouches for the
    /// arrays, and every accessor stays in bounds whatever they hold (a record that runs past the
    /// arena reads as having no entries), so even a forged file cannot make a lookup panic. Only the
    /// legacy index (rare codes) is rebuilt. [`PractitionerTable::verify`] checks every offset.
    pub(crate) fn from_parts(meta: Meta, slots: Vec<Slot>, words: Vec<u64>, skip: u32) -> Result<Self, String> {
        if !slots.is_empty() && !slots.len().is_power_of_two() {
            return Err("slot count is not a power of two".into());
        }
        if meta.used_slots as usize >= slots.len().max(1) {
            return Err("slot count mismatch".into());
        }
        let mut t = PractitionerTable {
            slots,
            used_slots: meta.used_slots as usize,
            legacy: meta.legacy,
            legacy_index: FxHashMap::default(),
            words,
            strings: meta.strings,
            live: meta.live as usize,
            fingerprint: meta.fingerprint,
            skip,
            dead_bytes: 0,
        };
        t.legacy_index = t.legacy.iter().enumerate().map(|(i, (code, _))| (code.as_str().into(), i)).collect();
        if t.strings.is_empty() {
            t.strings.push(String::new());
        }
        Ok(t)
    }

    /// Checks every offset of a loaded table: each slot points at a whole record, its tombstone mark
    /// agrees with the record, string indices are in range, and the slot count is right. One random
    /// read per code (about a second at 12 million codes), hence not part of a load:
    /// `claimgate tables inspect --verify` runs it.
    pub fn verify(&self) -> Result<(), String> {
        self.validate_loaded()
    }

    fn validate_loaded(&self) -> Result<(), String> {
        if !self.slots.is_empty() && !self.slots.len().is_power_of_two() {
            return Err("slot count is not a power of two".into());
        }
        let words = self.words.len();
        let check = |at: u32| -> Result<(), String> {
            let dead = at & DEAD != 0;
            let at = (at & !DEAD) as usize;
            let header = *self.words.get(at + 1).ok_or("record offset out of range")?;
            if dead != (header & TOMBSTONE != 0) {
                return Err("tombstone mark of a slot disagrees with its record".into());
            }
            let len = if dead { 2 } else { record_words(header) };
            if at + len > words {
                return Err("record runs past the arena".into());
            }
            if header & TOMBSTONE == 0 {
                let r = PractitionerRef { words: &self.words[at..at + len], strings: &self.strings };
                for (_, _, basis, decision) in r.raw_periods() {
                    if basis as usize >= self.strings.len() || decision as usize >= self.strings.len() {
                        return Err("string index out of range".into());
                    }
                }
            }
            Ok(())
        };
        let mut used = 0;
        for s in self.slots.iter().filter(|s| s.key != 0) {
            check(s.at)?;
            used += 1;
        }
        for (_, at) in &self.legacy {
            check(*at)?;
        }
        if used != self.used_slots {
            return Err("slot count mismatch".into());
        }
        Ok(())
    }
}

/// A hint to the CPU to bring `x`'s cache line in (to every cache level); never faults, changes
/// nothing. On targets without a stable prefetch instruction it does nothing.
#[inline(always)]
pub fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it reads nothing architecturally and cannot fault. The pointer
    // comes from a live reference anyway.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((x as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// Asks the kernel to back a large array with 2 MiB pages. A random lookup in a 12-million-code table
/// otherwise pays a TLB miss and a page walk on top of its cache miss; with transparent huge pages in
/// `madvise` mode (the default on Debian) nothing happens without this hint. Call it before the pages
/// are first written. Best effort: errors are ignored, and on other systems it does nothing.
///
/// The hint covers the whole allocation, spare capacity included, rounded out to whole pages: for an
/// array this large that is exactly the allocator's own mapping. A hint on part of a mapping would
/// split it in two or three, and a mapping in pieces cannot be grown by `mremap`: the allocator would
/// then grow the array by copying it — a second copy of half a gigabyte of records, measured as a
/// 480 MB spike when a restart from a checkpoint appended its first record.
pub fn hint_huge_pages<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = v.capacity() * std::mem::size_of::<T>();
        if bytes < HUGE {
            return;
        }
        let Some((lo, hi)) = whole_pages(v.as_ptr() as usize, bytes) else { return };
        // SAFETY: madvise only changes how the kernel backs pages of this process's own mapping and
        // never their contents; the pages named are those the live allocation `v` lies in.
        unsafe {
            libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// The whole pages the `bytes` bytes at `start` lie in, as an address range `(lo, hi)` for `madvise`;
/// `None` if the page size cannot be had.
#[cfg(target_os = "linux")]
pub(crate) fn whole_pages(start: usize, bytes: usize) -> Option<(usize, usize)> {
    // SAFETY: sysconf only reads a system constant.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => return None,
    };
    Some((start / page * page, (start + bytes).next_multiple_of(page)))
}

/// A record header's registration and period counts.
fn shape(header: u64) -> (usize, usize) {
    ((header & REGS_MASK) as usize, ((header >> PERIODS_SHIFT) & REGS_MASK) as usize)
}

fn record_words(header: u64) -> usize {
    let (regs, periods) = shape(header);
    2 + regs * REG_WORDS + periods * PERIOD_WORDS
}

fn slots_for(n: usize) -> usize {
    (n * 4 / 3 + 1).next_power_of_two().max(16)
}

impl<'a> PractitionerRef<'a> {
    /// Bytes the record holds in its table: its words, and its period texts with their `String`s.
    fn held_bytes(&self) -> usize {
        let (regs, periods) = self.counts();
        let texts: usize = self
            .raw_periods()
            .flat_map(|(_, _, basis, decision)| [basis, decision])
            .filter(|&id| id != 0)
            .map(|id| self.strings.get(id as usize).map_or(0, |s| s.capacity() + 24))
            .sum();
        (2 + regs * REG_WORDS + periods * PERIOD_WORDS) * 8 + texts
    }

    /// The record's version.
    #[inline]
    pub fn version(&self) -> u64 {
        self.words[0]
    }

    fn counts(&self) -> (usize, usize) {
        shape(self.words[1])
    }

    fn raw_registrations(&self) -> impl Iterator<Item = (u64, BjTime, BjTime)> + 'a {
        let (regs, _) = self.counts();
        // A snapshot is trusted on its checksum, not checked record by record (format 4), so a length
        // that runs past the arena reads as no entries rather than panicking.
        self.words
            .get(2..2 + regs * REG_WORDS)
            .unwrap_or(&[])
            .chunks_exact(REG_WORDS)
            .map(|w| (w[0], BjTime::from_secs(w[1] as i64), BjTime::from_secs(w[2] as i64)))
    }

    fn raw_periods(&self) -> impl Iterator<Item = (Status, Interval, u64, u64)> + 'a {
        let (regs, periods) = self.counts();
        let start = 2 + regs * REG_WORDS;
        self.words.get(start..start + periods * PERIOD_WORDS).unwrap_or(&[]).chunks_exact(PERIOD_WORDS).map(|w| {
            let status = if w[2] & TERMINATED_BIT != 0 { Status::Terminated } else { Status::Suspended };
            let during = Interval { from: BjTime::from_secs(w[0] as i64), until: BjTime::from_secs(w[1] as i64) };
            (status, during, w[2] & TEXT_MASK, w[3])
        })
    }

    /// Registered at any institution at `t`.
    #[inline]
    pub fn registered_anywhere(&self, t: BjTime) -> bool {
        self.raw_registrations().any(|(_, from, until)| from <= t && t < until)
    }

    /// Registered at `institution` at `t`.
    #[inline]
    pub fn registered_at(&self, institution: InstitutionCode, t: BjTime) -> bool {
        let inst = institution.packed();
        self.raw_registrations().any(|(i, from, until)| i == inst && from <= t && t < until)
    }

    /// The person's status at `t`: `None` for normal; terminated wins over suspended (records.md).
    #[inline]
    pub fn status_at(&self, t: BjTime) -> Option<Status> {
        let mut status = None;
        for (s, during, _, _) in self.raw_periods() {
            if during.contains(t) {
                if s == Status::Terminated {
                    return Some(s);
                }
                status = Some(s);
            }
        }
        status
    }

    fn string(&self, id: u64) -> Option<String> {
        (id != 0).then(|| self.strings.get(id as usize).cloned().unwrap_or_default())
    }

    /// The registrations.
    pub fn registrations(&self) -> impl Iterator<Item = Registration> + 'a {
        self.raw_registrations().map(|(inst, from, until)| Registration {
            institution: InstitutionCode::from_packed(inst),
            during: Interval { from, until },
        })
    }

    /// The periods, with their basis and decision id.
    pub fn periods(&self) -> impl Iterator<Item = Period> + 'a {
        let this = *self;
        self.raw_periods().map(move |(status, during, basis, decision)| Period {
            status,
            during,
            basis: this.string(basis),
            decision_id: this.string(decision),
        })
    }

    /// The whole record.
    pub fn to_record(&self, code: PractitionerCode) -> PractitionerRecord {
        PractitionerRecord {
            code,
            registrations: self.registrations().collect(),
            periods: self.periods().collect(),
            version: self.version(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::PractitionerText;
    use proptest::prelude::*;

    /// The mapping of this process that holds `addr`: (start, end), from /proc/self/maps.
    #[cfg(target_os = "linux")]
    fn mapping_of(addr: usize) -> (usize, usize) {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .filter_map(|l| {
                let (lo, hi) = l.split_whitespace().next()?.split_once('-')?;
                Some((usize::from_str_radix(lo, 16).ok()?, usize::from_str_radix(hi, 16).ok()?))
            })
            .find(|(lo, hi)| (*lo..*hi).contains(&addr))
            .unwrap()
    }

    /// The huge-page hint covers the whole allocation: one mapping from the array's first byte to its
    /// last, so that growing it is a `mremap`, not a copy. A hint on the aligned middle alone split
    /// the mapping (a restart from a checkpoint then copied half a gigabyte on its first record).
    #[cfg(target_os = "linux")]
    #[test]
    fn the_huge_page_hint_leaves_an_array_in_one_mapping() {
        let v: Vec<u64> = bytemuck::zeroed_vec(9 << 20);
        hint_huge_pages(&v);
        let (start, end) = (v.as_ptr() as usize, v.as_ptr() as usize + v.len() * 8);
        let (lo, hi) = mapping_of(start);
        assert!(lo <= start && hi >= end, "mapping {lo:x}-{hi:x} does not hold the array {start:x}-{end:x}");
    }

    /// Resident anonymous memory of this process, in bytes.
    #[cfg(target_os = "linux")]
    fn rss_anon() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let kb: usize = status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb * 1024
    }

    /// A slot array is taken from the allocator as zeroed pages, not written: writing it took its pages
    /// before the huge-page hint could apply to them (small pages, a TLB miss per lookup), and cost
    /// the time to write it.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_new_slot_array_is_not_written() {
        let before = rss_anon();
        let t = PractitionerTable::with_capacity(12_000_000);
        let grown = rss_anon().saturating_sub(before);
        assert_eq!(t.slots.len(), 1 << 24);
        // 256 MiB of slots; other tests running meanwhile allocate far less than half of it.
        assert!(grown < 128 << 20, "a new 256 MiB slot array made {} MiB resident", grown >> 20);
    }

    #[test]
    fn reserve_then_fit_gives_the_table_a_load_of_at_most_three_quarters_and_keeps_every_code() {
        let mut t = PractitionerTable::with_capacity(16);
        t.reserve(100_000);
        let reserved = t.slots.len();
        assert_eq!(reserved, slots_for(100_000));
        let codes: Vec<String> = (0..1000).map(|i| format!("D11010500{i:04}")).collect();
        for c in &codes {
            t.upsert(&rec(c, 1, &[])).unwrap();
        }
        assert_eq!(t.slots.len(), reserved, "no rebuild while the reservation holds");
        t.fit();
        assert_eq!(t.slots.len(), slots_for(1000));
        for c in &codes {
            assert!(t.live(PractitionerKey::parse(c).unwrap()).is_some(), "{c} lost by fit");
        }
        assert_eq!(t.len(), 1000);
    }

    pub(crate) fn rec(code: &str, version: u64, regs: &[(&str, &str, Option<&str>)]) -> PractitionerRecord {
        let text = PractitionerText {
            code: code.into(),
            name: None,
            kind: None,
            registrations: regs
                .iter()
                .map(|(i, f, u)| crate::record::RegistrationText {
                    institution: (*i).into(),
                    from: (*f).into(),
                    until: u.map(Into::into),
                })
                .collect(),
            periods: vec![],
            version,
        };
        text.validate().unwrap()
    }

    fn key(s: &str) -> PractitionerKey<'_> {
        PractitionerKey::parse(s).unwrap()
    }

    /// A record of `code` at `version` with `periods` suspensions, each with its basis and decision id.
    fn suspended(code: &str, version: u64, periods: usize) -> PractitionerRecord {
        let mut r = rec(code, version, &[("H11010500001", "2021-03-01", None)]);
        for p in 0..periods {
            r.periods.push(Period {
                status: if p % 2 == 0 { Status::Suspended } else { Status::Terminated },
                during: Interval {
                    from: BjTime::from_secs(1_700_000_000 + p as i64 * 86_400),
                    until: BjTime::from_secs(1_700_000_000 + (p as i64 + 30) * 86_400),
                },
                basis: (p % 3 != 2).then(|| format!("basis {code} v{version} p{p}")),
                decision_id: (p % 2 == 0).then(|| format!("D-{code}-{version}-{p}")),
            });
        }
        r
    }

    /// Compacted in place, a table answers exactly as before, record by record (texts included), with
    /// the garbage gone from its arena and its texts; and it goes on taking changes.
    #[test]
    fn a_table_compacted_in_place_answers_as_before_without_its_garbage() {
        let codes: Vec<String> = (0..3_000).map(|i| format!("D{:012}", 110_105_000_000u64 + i * 37)).collect();
        let legacy: Vec<String> = (0..50).map(|i| format!("L{i:04}")).collect();
        let mut t = PractitionerTable::with_capacity(16);
        for round in 1..=4u64 {
            for (i, c) in codes.iter().chain(&legacy).enumerate() {
                if !(i as u64 + round).is_multiple_of(3) {
                    t.upsert(&suspended(c, round, (i + round as usize) % 4)).unwrap();
                }
            }
        }
        for c in codes.iter().step_by(7).chain(legacy.iter().step_by(5)) {
            t.delete(key(c)).unwrap();
        }
        let before: Vec<(PractitionerCode, Option<PractitionerRecord>)> = t
            .iter()
            .map(|(code, e)| {
                let r = match e {
                    Entry::Live(r) => Some(r.to_record(code.clone())),
                    Entry::Deleted => None,
                };
                (code, r)
            })
            .collect();
        let (words, strings, fingerprint, live) = (t.words.len(), t.strings.len(), t.fingerprint(), t.len());
        assert!(t.dead_bytes() > 0 && t.wants_compacting(0));
        t.compact_in_place();
        assert_eq!(t.dead_bytes(), 0);
        assert!(t.words.len() < words / 2, "{} words of {words} kept", t.words.len());
        assert!(t.strings.len() < strings / 2, "{} texts of {strings} kept", t.strings.len());
        assert_eq!((t.fingerprint(), t.len()), (fingerprint, live));
        t.verify().unwrap();
        let live_words: usize = t.iter().map(|(_, e)| if let Entry::Live(r) = e { r.held_bytes() } else { 0 }).sum();
        assert!(live_words > 0);
        for (code, want) in &before {
            let got = match t.get(code.key()) {
                Some(Entry::Live(r)) => Some(r.to_record(code.clone())),
                Some(Entry::Deleted) => None,
                None => panic!("{code} lost"),
            };
            assert_eq!(&got, want, "{code}");
        }
        // Changes after it land as usual.
        t.upsert(&suspended(&codes[1], 9, 3)).unwrap();
        t.upsert(&suspended(&codes[0], 9, 1)).unwrap();
        let want = suspended(&codes[0], 9, 1);
        assert_eq!(t.live(key(&codes[0])).unwrap().to_record(want.code.clone()), want);
        t.verify().unwrap();
    }

    #[test]
    fn newer_version_wins_and_stale_is_ignored() {
        let mut t = PractitionerTable::with_capacity(4);
        let v5 = rec("D110105000123", 5, &[("H11010500001", "2021-03-01", None)]);
        let v4 = rec("D110105000123", 4, &[("H11010500007", "2021-03-01", None)]);
        let v6 = rec("D110105000123", 6, &[("H11010500009", "2021-03-01", None)]);
        assert_eq!(t.upsert(&v5), Ok(Upsert::Inserted));
        assert_eq!(t.upsert(&v4), Ok(Upsert::Stale));
        assert_eq!(t.upsert(&v5), Ok(Upsert::Stale));
        let r = t.live(key("D110105000123")).unwrap();
        assert_eq!(r.version(), 5);
        assert_eq!(r.to_record(v5.code.clone()), v5);
        assert_eq!(t.upsert(&v6), Ok(Upsert::Replaced));
        assert_eq!(t.live(key("D110105000123")).unwrap().to_record(v6.code.clone()), v6);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn legacy_codes_live_beside_national_ones() {
        let mut t = PractitionerTable::with_capacity(4);
        t.upsert(&rec("0457", 1, &[("H11010500001", "2021-03-01", None)])).unwrap();
        t.upsert(&rec("D000000000457", 1, &[])).unwrap();
        assert!(t.live(key("0457")).is_some());
        assert!(t.live(key("0458")).is_none());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn deletion_leaves_a_tombstone_and_accepts_any_later_version() {
        let mut t = PractitionerTable::with_capacity(4);
        let r = rec("D110105000123", 5, &[]);
        t.upsert(&r).unwrap();
        let fp = t.fingerprint();
        assert_eq!(t.delete(r.code.key()), Ok(true));
        assert!(matches!(t.get(r.code.key()), Some(Entry::Deleted)));
        assert_eq!(t.len(), 0);
        assert_eq!(t.fingerprint(), 0);
        assert_eq!(t.upsert(&rec("D110105000123", 1, &[])), Ok(Upsert::Replaced));
        assert_ne!(t.fingerprint(), fp);
    }

    #[test]
    fn a_tombstone_is_marked_in_its_slot_and_a_load_checks_the_mark() {
        let mut t = PractitionerTable::with_capacity(4);
        for code in ["D110105000123", "D110105000124", "0457"] {
            t.upsert(&rec(code, 5, &[])).unwrap();
        }
        for code in ["D110105000123", "0457"] {
            t.delete(PractitionerKey::parse(code).unwrap()).unwrap();
        }
        let national = t.slots.iter().find(|s| s.key != 0 && s.at & DEAD != 0).expect("a marked slot");
        assert_eq!(t.words[(national.at & !DEAD) as usize + 1] & TOMBSTONE, TOMBSTONE);
        assert!(t.legacy.iter().all(|(_, at)| at & DEAD != 0));
        assert!(matches!(t.get(PractitionerKey::parse("D110105000124").unwrap()), Some(Entry::Live(_))));
        // A loaded table whose marks agree with its records is accepted...
        let ok = t.clone();
        assert_eq!(ok.validate_loaded(), Ok(()));
        // ...one where a slot and its record disagree is refused.
        let mut bad = t.clone();
        let i = bad.slots.iter().position(|s| s.key != 0 && s.at & DEAD == 0).unwrap();
        bad.slots[i].at |= DEAD;
        assert!(bad.validate_loaded().is_err());
        let mut bad = t;
        let i = bad.slots.iter().position(|s| s.key != 0 && s.at & DEAD != 0).unwrap();
        bad.slots[i].at &= !DEAD;
        assert!(bad.validate_loaded().is_err());
    }

    #[test]
    fn fingerprint_ignores_insertion_order() {
        let a = rec("D110105000001", 1, &[]);
        let b = rec("D110105000002", 2, &[]);
        let mut t1 = PractitionerTable::with_capacity(4);
        let mut t2 = PractitionerTable::with_capacity(4);
        t1.upsert(&a).unwrap();
        t1.upsert(&b).unwrap();
        t2.upsert(&b).unwrap();
        t2.upsert(&a).unwrap();
        assert_eq!(t1.fingerprint(), t2.fingerprint());
        assert_ne!(t1.fingerprint(), 0);
    }

    #[test]
    fn rebuilt_applies_a_delta() {
        let mut base = PractitionerTable::with_capacity(4);
        base.upsert(&rec("D110105000001", 1, &[])).unwrap();
        base.upsert(&rec("D110105000002", 1, &[])).unwrap();
        let mut delta = PractitionerTable::with_capacity(4);
        delta.upsert(&rec("D110105000002", 2, &[])).unwrap();
        delta.delete(key("D110105000001")).unwrap();
        delta.upsert(&rec("0457", 1, &[])).unwrap();
        let merged = base.rebuilt(Some(&delta)).unwrap();
        assert!(merged.live(key("D110105000001")).is_none());
        assert_eq!(merged.live(key("D110105000002")).unwrap().version(), 2);
        assert!(merged.live(key("0457")).is_some());
        assert_eq!(merged.len(), 2);
    }

    proptest! {
        #[test]
        fn holds_what_was_put_in(digits in proptest::collection::hash_set(0u64..1_000_000_000_000, 1..300)) {
            let mut t = PractitionerTable::with_capacity(1);
            for d in &digits {
                t.upsert(&rec(&format!("D{d:012}"), *d, &[])).unwrap();
            }
            prop_assert_eq!(t.len(), digits.len());
            for d in &digits {
                let code = format!("D{d:012}");
                prop_assert_eq!(t.live(key(&code)).unwrap().version(), *d);
            }
            prop_assert!(t.live(key("D999999999999")).is_none() || digits.contains(&999_999_999_999));
        }
    }
}
