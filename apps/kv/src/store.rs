//! The keyspace: one hash table of entries (key, value, expiry time), expired lazily when
//! a command touches a key and actively by a sweep over the table's buckets that the
//! server's timer drives (Redis's two mechanisms).
//!
//! The table is a `hashbrown::HashTable` rather than a map because its bucket indexes are
//! stable until the table is rebuilt: the sweep, `SCAN` and `RANDOMKEY` walk or pick
//! buckets by index, with no second structure to keep in step. The store counts the
//! rebuilds (`Db::layout`), so that a `SCAN` cursor from before one is recognised.

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashMap, HashSet, HashTable};

/// Times are Unix milliseconds; `NO_EXPIRY` marks a key that does not expire.
pub const NO_EXPIRY: u64 = 0;

/// Bytes held by the store: keys, list elements, hash fields and values, set and sorted
/// set members. Up to 22 bytes sit inline in the 24 bytes the handle takes anyway (most
/// keys and members are that short), sparing an allocation and its overhead each.
#[derive(Clone)]
pub struct Bytes(Repr);

const INLINE: usize = 22;

#[derive(Clone)]
enum Repr {
    Inline { len: u8, data: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl core::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, data } => &data[..usize::from(*len)],
            Repr::Heap(bytes) => bytes,
        }
    }
}

impl From<&[u8]> for Bytes {
    fn from(bytes: &[u8]) -> Bytes {
        if bytes.len() <= INLINE {
            let mut data = [0; INLINE];
            data[..bytes.len()].copy_from_slice(bytes);
            Bytes(Repr::Inline { len: bytes.len() as u8, data })
        } else {
            Bytes(Repr::Heap(bytes.into()))
        }
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Bytes {
        match bytes.len() <= INLINE {
            true => Bytes::from(&bytes[..]),
            false => Bytes(Repr::Heap(bytes.into_boxed_slice())),
        }
    }
}

impl core::borrow::Borrow<[u8]> for Bytes {
    fn borrow(&self) -> &[u8] {
        self
    }
}

// Equality, order and hash are the bytes', so that maps keyed by `Bytes` are looked up
// with `&[u8]`.
impl PartialEq for Bytes {
    fn eq(&self, other: &Bytes) -> bool {
        **self == **other
    }
}

impl Eq for Bytes {}

impl PartialOrd for Bytes {
    fn partial_cmp(&self, other: &Bytes) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bytes {
    fn cmp(&self, other: &Bytes) -> Ordering {
        (**self).cmp(&**other)
    }
}

impl core::hash::Hash for Bytes {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl core::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "\"{}\"", self.escape_ascii())
    }
}

/// A stored value. The collections are boxed so that the common case, a string, keeps
/// entries small.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Vec<u8>),
    List(Box<crate::list::List>),
    Hash(Box<HashMap<Bytes, Bytes>>),
    Set(Box<HashSet<Bytes>>),
    ZSet(Box<ZSet>),
}

impl Value {
    /// The name `TYPE` answers with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }
}

/// A score that orders totally (NaN is never stored: commands refuse it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        // -0.0 and 0.0 are one score, as in Redis.
        let (a, b) = (self.0 + 0.0, other.0 + 0.0);
        a.partial_cmp(&b).unwrap_or(Ordering::Equal)
    }
}

/// A sorted set: scores by member, and members in (score, member) order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZSet {
    scores: HashMap<Bytes, f64>,
    order: BTreeSet<(Score, Bytes)>,
}

impl ZSet {
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// Room in the member index for `more` members (the order's tree grows by small
    /// nodes); fails when the heap cannot give it.
    pub fn try_reserve(&mut self, more: usize) -> Result<(), hashbrown::TryReserveError> {
        self.scores.try_reserve(more)
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Sets `member`'s score; returns whether it is new.
    pub fn insert(&mut self, member: &[u8], score: f64) -> bool {
        match self.scores.get_mut(member) {
            Some(old) => {
                if *old != score {
                    let key = self.order.take(&(Score(*old), Bytes::from(member))).map(|(_, m)| m);
                    self.order.insert((Score(score), key.unwrap_or_else(|| member.into())));
                    *old = score;
                }
                false
            }
            None => {
                self.scores.insert(member.into(), score);
                self.order.insert((Score(score), member.into()));
                true
            }
        }
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.remove(member) {
            Some(score) => {
                self.order.remove(&(Score(score), Bytes::from(member)));
                true
            }
            None => false,
        }
    }

    pub fn pop_min(&mut self) -> Option<(Bytes, f64)> {
        let (score, member) = self.order.pop_first()?;
        self.scores.remove(&member);
        Some((member, score.0))
    }

    /// Members in order (lowest score first), with their scores.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], f64)> {
        self.order.iter().map(|(s, m)| (&**m, s.0))
    }
}

/// One key and what it holds.
#[derive(Debug)]
pub struct Entry {
    pub key: Bytes,
    pub value: Value,
    /// When the key expires (Unix ms), or [`NO_EXPIRY`].
    pub expire_at: u64,
}

impl Entry {
    fn is_expired(&self, now: u64) -> bool {
        self.expire_at != NO_EXPIRY && self.expire_at <= now
    }
}

/// The table has no room for another key (growing it failed): the write is refused as
/// over `maxmemory`, and nothing stored is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRoom;

/// The low bits of a `SCAN` cursor are a bucket index (hashbrown's tables stay far below
/// 2^40 buckets); the bits above, the low bits of the table's layout count, short of the
/// top bit so that clients that read cursors as signed 64-bit numbers read them right.
const CURSOR_INDEX_BITS: u32 = 40;
const CURSOR_INDEX_MASK: u64 = (1 << CURSOR_INDEX_BITS) - 1;
const CURSOR_LAYOUT_MASK: u64 = u64::MAX >> (CURSOR_INDEX_BITS + 1);

#[derive(Debug, Default)]
pub struct Db {
    /// Entries are boxed: a bucket is then 9 bytes (pointer and control byte), and the
    /// table, which runs from 7/16 to 7/8 full, wastes little on its empty buckets.
    table: HashTable<Box<Entry>>,
    hasher: DefaultHashBuilder,
    /// Keys with an expiry time.
    volatile: usize,
    /// The bucket the active sweep looks at next.
    sweep_at: usize,
    /// How many times the table was rebuilt (grown, rehashed in place or replaced):
    /// entries stay in their buckets between two rebuilds, and only then.
    layout: u64,
    /// Keys removed because they expired (`INFO stats` `expired_keys`).
    pub expired: u64,
}

impl Db {
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Keys with an expiry time, expired or not yet swept.
    pub fn volatile(&self) -> usize {
        self.volatile
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The live entry for `key`; an expired one is removed on the way (lazy expiry).
    pub fn get(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        let hash = self.hash(key);
        match self.table.find_entry(hash, |e| *e.key == *key) {
            Ok(found) if found.get().is_expired(now) => {
                found.remove();
                self.volatile -= 1;
                self.expired += 1;
                None
            }
            Ok(found) => Some(&mut **found.into_mut()),
            Err(_) => None,
        }
    }

    /// Whether `key` is live, without touching it otherwise.
    pub fn contains(&mut self, key: &[u8], now: u64) -> bool {
        self.get(key, now).is_some()
    }

    /// Makes room for one more key; fails (and changes nothing) when the table must grow
    /// and the heap cannot give it room. Every insertion comes through here first, so
    /// this is the one place the table is rebuilt: hashbrown rebuilds (grows, or rehashes
    /// in place to clear tombstones) only when an insertion finds no room left
    /// (`capacity() == len()`); the test `entries_move_only_when_the_layout_changes`
    /// holds it to that.
    pub fn reserve_one(&mut self) -> Result<(), NoRoom> {
        if self.table.capacity() > self.table.len() {
            return Ok(());
        }
        let hasher = &self.hasher;
        self.table.try_reserve(1, |e| hasher.hash_one(&*e.key)).map_err(|_| NoRoom)?;
        self.layout += 1;
        Ok(())
    }

    /// Stores `value` under `key`, replacing whatever was there, with expiry `expire_at`.
    pub fn set(&mut self, key: &[u8], value: Value, expire_at: u64) -> Result<(), NoRoom> {
        self.reserve_one()?;
        let hash = self.hash(key);
        let hasher = &self.hasher;
        match self.table.entry(hash, |e| *e.key == *key, |e| hasher.hash_one(&*e.key)) {
            hashbrown::hash_table::Entry::Occupied(mut found) => {
                let entry = found.get_mut();
                self.volatile -= usize::from(entry.expire_at != NO_EXPIRY);
                entry.value = value;
                entry.expire_at = expire_at;
            }
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(Box::new(Entry { key: key.into(), value, expire_at }));
            }
        }
        self.volatile += usize::from(expire_at != NO_EXPIRY);
        Ok(())
    }

    /// The live entry for `key`, created holding `make()` (with no expiry) if there is
    /// none.
    pub fn get_or_insert(
        &mut self,
        key: &[u8],
        now: u64,
        make: impl FnOnce() -> Value,
    ) -> Result<&mut Entry, NoRoom> {
        if self.get(key, now).is_none() {
            self.set(key, make(), NO_EXPIRY)?;
        }
        let hash = self.hash(key);
        self.table.find_mut(hash, |e| *e.key == *key).map(|e| &mut **e).ok_or(NoRoom)
    }

    /// Sets the expiry of a key known to be there.
    pub fn set_expiry(&mut self, key: &[u8], expire_at: u64) {
        let hash = self.hash(key);
        if let Some(entry) = self.table.find_mut(hash, |e| *e.key == *key) {
            self.volatile -= usize::from(entry.expire_at != NO_EXPIRY);
            self.volatile += usize::from(expire_at != NO_EXPIRY);
            entry.expire_at = expire_at;
        }
    }

    /// Removes `key`, live or expired, and returns its entry.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let hash = self.hash(key);
        let (entry, _) = self.table.find_entry(hash, |e| *e.key == *key).ok()?.remove();
        self.volatile -= usize::from(entry.expire_at != NO_EXPIRY);
        Some(*entry)
    }

    /// Removes `key` if it is live; returns whether it was.
    pub fn delete(&mut self, key: &[u8], now: u64) -> bool {
        self.get(key, now).is_some() && self.remove(key).is_some()
    }

    pub fn clear(&mut self) {
        // A fresh table gives the memory back; `clear` would keep the buckets.
        self.table = HashTable::new();
        self.layout += 1;
        self.volatile = 0;
        self.sweep_at = 0;
    }

    /// Every live key, in table order.
    pub fn keys(&self, now: u64) -> impl Iterator<Item = &[u8]> {
        self.table.iter().filter(move |e| !e.is_expired(now)).map(|e| &*e.key)
    }

    /// Visits the live entries from where `cursor` says on, stopping once `count` were
    /// visited or the table ends; returns the next cursor, 0 at the end (as `SCAN`).
    ///
    /// A cursor is a bucket index with the table's layout above it. Entries stay in
    /// their buckets while the layout holds, so a walk through the buckets finds every
    /// entry that was there throughout; a cursor from an older layout (the table was
    /// rebuilt between two calls) starts the walk over. So every key present for a whole
    /// scan is returned, some possibly twice (as Redis allows). The table doubles when it
    /// grows, so however many keys are added a scan starts over only a few times.
    /// (Redis's own cursor, over chained buckets, carries on through growth instead.)
    pub fn scan(&self, cursor: u64, count: usize, now: u64, mut visit: impl FnMut(&Entry)) -> u64 {
        let layout = self.layout & CURSOR_LAYOUT_MASK;
        let from = if cursor >> CURSOR_INDEX_BITS == layout { cursor & CURSOR_INDEX_MASK } else { 0 };
        let buckets = self.table.num_buckets();
        let mut seen = 0;
        let mut i = usize::try_from(from).unwrap_or(usize::MAX);
        while i < buckets && seen < count {
            if let Some(entry) = self.table.get_bucket(i).filter(|e| !e.is_expired(now)) {
                visit(entry);
                seen += 1;
            }
            i += 1;
        }
        // Not 0 unless the walk ended: at least one bucket was walked, so `i` > 0.
        if i >= buckets { 0 } else { layout << CURSOR_INDEX_BITS | i as u64 }
    }

    /// A live key at random: buckets are drawn until one holds a live entry (expired
    /// ones met on the way are removed, as Redis's `RANDOMKEY` does).
    pub fn random_key(&mut self, now: u64, rng: &mut Rng) -> Option<Bytes> {
        loop {
            if self.table.is_empty() {
                return None;
            }
            let buckets = self.table.num_buckets();
            let i = rng.below(buckets);
            let Ok(found) = self.table.get_bucket_entry(i) else { continue };
            if found.get().is_expired(now) {
                found.remove();
                self.volatile -= 1;
                self.expired += 1;
                continue;
            }
            return Some(found.get().key.clone());
        }
    }

    /// One step of the active sweep: looks at up to `buckets` buckets from where the
    /// last step stopped and removes the expired keys there. Returns (buckets looked at,
    /// keys with an expiry among them, keys removed), for the caller's adaptive pacing.
    pub fn sweep(&mut self, now: u64, buckets: usize) -> (usize, usize, usize) {
        let total = self.table.num_buckets();
        if self.volatile == 0 || total == 0 {
            return (0, 0, 0);
        }
        let (mut volatile, mut removed) = (0, 0);
        let steps = buckets.min(total);
        for _ in 0..steps {
            let i = self.sweep_at % total;
            self.sweep_at = i + 1;
            if let Ok(found) = self.table.get_bucket_entry(i) {
                if found.get().expire_at == NO_EXPIRY {
                    continue;
                }
                volatile += 1;
                if found.get().is_expired(now) {
                    found.remove();
                    self.volatile -= 1;
                    self.expired += 1;
                    removed += 1;
                }
            }
        }
        (steps, volatile, removed)
    }

    /// Bytes of the table itself (its buckets), for `INFO memory`'s breakdown.
    pub fn table_bytes(&self) -> usize {
        self.table.allocation_size()
    }
}

/// xorshift64*: random picks for `RANDOMKEY` and `SPOP`, where only spread matters.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.as_bytes().to_vec())
    }

    #[test]
    fn short_bytes_live_in_the_handle() {
        assert_eq!(core::mem::size_of::<Bytes>(), 24);
        for len in [0, 1, 22, 23, 100] {
            let data: Vec<u8> = (0..len as u8).collect();
            let bytes = Bytes::from(&data[..]);
            assert_eq!(&*bytes, &data[..]);
            assert_eq!(matches!(bytes.0, Repr::Inline { .. }), len <= INLINE);
            assert_eq!(Bytes::from(data.clone()), bytes);
        }
        let mut set = HashSet::new();
        set.insert(Bytes::from(&b"member"[..]));
        assert!(set.contains(&b"member"[..]));
    }

    #[test]
    fn set_get_remove() {
        let mut db = Db::default();
        db.set(b"a", s("1"), NO_EXPIRY).unwrap();
        db.set(b"a", s("2"), NO_EXPIRY).unwrap();
        assert_eq!(db.len(), 1);
        assert_eq!(db.get(b"a", 0).unwrap().value, s("2"));
        assert!(db.remove(b"a").is_some());
        assert!(db.get(b"a", 0).is_none());
    }

    #[test]
    fn lazy_expiry_removes_on_access() {
        let mut db = Db::default();
        db.set(b"k", s("v"), 1000).unwrap();
        assert_eq!(db.volatile(), 1);
        assert!(db.get(b"k", 999).is_some());
        assert!(db.get(b"k", 1000).is_none(), "gone at its expiry time");
        assert_eq!((db.len(), db.volatile(), db.expired), (0, 0, 1));
    }

    #[test]
    fn replacing_a_value_drops_its_expiry_count() {
        let mut db = Db::default();
        db.set(b"k", s("v"), 1000).unwrap();
        db.set(b"k", s("w"), NO_EXPIRY).unwrap();
        assert_eq!(db.volatile(), 0);
        db.set_expiry(b"k", 50);
        assert_eq!(db.volatile(), 1);
        db.remove(b"k");
        assert_eq!(db.volatile(), 0);
    }

    #[test]
    fn the_sweep_finds_every_expired_key_and_only_those() {
        let mut db = Db::default();
        for i in 0..1000u32 {
            let expiry = if i % 2 == 0 { 100 } else { NO_EXPIRY };
            db.set(&i.to_be_bytes(), s("x"), expiry).unwrap();
        }
        db.set(b"later", s("x"), 500).unwrap();
        // Small steps, as the timer takes them, until a whole pass is done.
        let mut removed = 0;
        for _ in 0..100 {
            removed += db.sweep(200, 64).2;
        }
        assert_eq!(removed, 500);
        assert_eq!(db.len(), 501);
        assert_eq!(db.volatile(), 1);
        assert_eq!(db.expired, 500);
        assert!(db.get(b"later", 200).is_some());
    }

    #[test]
    fn the_sweep_does_nothing_without_volatile_keys() {
        let mut db = Db::default();
        db.set(b"a", s("x"), NO_EXPIRY).unwrap();
        assert_eq!(db.sweep(u64::MAX, 1000), (0, 0, 0));
    }

    #[test]
    fn a_scan_visits_every_key_once() {
        let mut db = Db::default();
        for i in 0..500u32 {
            db.set(&i.to_be_bytes(), s("x"), NO_EXPIRY).unwrap();
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        loop {
            cursor = db.scan(cursor, 7, 0, |e| assert!(seen.insert(e.key.clone())));
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), 500);
    }

    /// Where each key sits now.
    fn buckets_of(db: &Db) -> std::collections::HashMap<Vec<u8>, usize> {
        db.table
            .iter()
            .map(|e| {
                let key = e.key.to_vec();
                let bucket = db.table.find_bucket_index(db.hash(&key), |f| *f.key == *key).unwrap();
                (key, bucket)
            })
            .collect()
    }

    #[test]
    fn entries_move_only_when_the_layout_changes() {
        let mut db = Db::default();
        let mut rng = Rng::new(9);
        let (mut next_key, mut rebuilt) = (0u32, 0);
        let mut before = buckets_of(&db);
        let mut filling = true;
        for step in 0..2500 {
            let layout = db.layout;
            // Fill the table to its capacity, then empty most of it, and again: removals
            // from full stretches leave tombstones, insertions reuse them, and filling
            // past capacity rebuilds the table. (hashbrown rehashes in place instead of
            // growing only when tombstones are over half the table, which random keys
            // hardly ever make; `reserve_one` counts either kind alike.)
            if filling && db.len() >= db.table.capacity() + rng.below(2) {
                filling = false;
            } else if !filling && db.len() <= db.table.capacity() * 2 / 5 {
                filling = true;
            }
            if filling {
                db.set(&next_key.to_le_bytes(), s("v"), NO_EXPIRY).unwrap();
                next_key += 1;
            } else {
                let keys: Vec<Vec<u8>> = db.keys(0).map(<[u8]>::to_vec).collect();
                db.remove(&keys[rng.below(keys.len())]);
            }
            let after = buckets_of(&db);
            if db.layout == layout {
                for (key, bucket) in &after {
                    if let Some(old) = before.get(key) {
                        assert_eq!(old, bucket, "step {step}: an entry moved with the layout unchanged");
                    }
                }
            } else {
                rebuilt += 1;
            }
            before = after;
        }
        assert!(rebuilt >= 5, "the table was rebuilt {rebuilt} times: the walk checked too little");
    }

    #[test]
    fn a_scan_returns_every_key_present_throughout_while_the_table_grows() {
        // Many scans, each of a table that grows several times under it. A cursor that
        // was only a bucket index missed about 5 of these 30,000 keys (the entries that a
        // rebuild moved from ahead of the cursor to behind it).
        for trial in 0..100u32 {
            let mut db = Db::default();
            let old = |i: u32| format!("old:{trial}:{i}").into_bytes();
            for i in 0..300 {
                db.set(&old(i), s("x"), NO_EXPIRY).unwrap();
            }
            let (layout, mut seen) = (db.layout, std::collections::HashSet::new());
            let (mut cursor, mut calls, mut added) = (0, 0, 0u32);
            loop {
                cursor = db.scan(cursor, 3, 0, |e| {
                    seen.insert(e.key.to_vec());
                });
                calls += 1;
                if cursor == 0 {
                    break;
                }
                if added < 5000 {
                    for _ in 0..40 {
                        db.set(format!("new:{added}").as_bytes(), s("y"), NO_EXPIRY).unwrap();
                        added += 1;
                    }
                    db.remove(format!("new:{}", added - 7).as_bytes());
                }
                assert!(calls < 100_000, "the scan does not end");
            }
            assert!(db.layout >= layout + 4, "the table was rebuilt during the scan");
            for i in 0..300 {
                assert!(seen.contains(&old(i)), "trial {trial}: old:{i} missed");
            }
        }
    }

    #[test]
    fn a_cursor_from_another_layout_starts_over() {
        let mut db = Db::default();
        for i in 0..50u32 {
            db.set(&i.to_le_bytes(), s("x"), NO_EXPIRY).unwrap();
        }
        let cursor = db.scan(0, 10, 0, |_| {});
        assert_ne!(cursor, 0);
        assert_eq!(cursor >> CURSOR_INDEX_BITS, db.layout & CURSOR_LAYOUT_MASK);
        assert!(cursor < 1 << 63);
        let stale = cursor ^ (1 << CURSOR_INDEX_BITS);
        let (mut from_stale, mut from_start) = (Vec::new(), Vec::new());
        db.scan(stale, 10, 0, |e| from_stale.push(e.key.to_vec()));
        db.scan(0, 10, 0, |e| from_start.push(e.key.to_vec()));
        assert_eq!(from_stale, from_start);
        // A cursor past the table's end ends the scan.
        assert_eq!(db.scan(cursor | CURSOR_INDEX_MASK, 10, 0, |_| panic!("visited")), 0);
    }

    #[test]
    fn random_keys_are_live_and_spread() {
        let mut db = Db::default();
        let mut rng = Rng::new(42);
        assert_eq!(db.random_key(0, &mut rng), None);
        for i in 0..10u8 {
            db.set(&[i], s("x"), if i < 5 { 10 } else { NO_EXPIRY }).unwrap();
        }
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let key = db.random_key(20, &mut rng).unwrap();
            assert!(key[0] >= 5, "an expired key came out");
            seen.insert(key);
        }
        assert_eq!(seen.len(), 5);
    }

    #[test]
    fn zset_order_and_updates() {
        let mut z = ZSet::default();
        assert!(z.insert(b"b", 2.0));
        assert!(z.insert(b"a", 2.0));
        assert!(z.insert(b"c", 1.0));
        assert!(!z.insert(b"c", 3.0));
        let order: Vec<(&[u8], f64)> = z.iter().collect();
        assert_eq!(order, [(&b"a"[..], 2.0), (&b"b"[..], 2.0), (&b"c"[..], 3.0)]);
        assert!(z.remove(b"a"));
        assert!(!z.remove(b"a"));
        assert_eq!(z.pop_min(), Some((Bytes::from(&b"b"[..]), 2.0)));
        assert_eq!(z.len(), 1);
    }
}
