//! The ledger's storage: a short list while the session holds few months (a search of a handful
//! of entries costs less than hashing one key, and backfills hold one month, or a quarter, at a
//! time), a hash table once it holds more, so that a session holding thousands of months pays
//! the same per call as one holding none.

use super::Entry;
use crate::pg::{Mode, MonthTag};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Above this many entries the list becomes a table.
const FEW: usize = 16;

pub(super) enum Store {
    Few(Vec<Entry>),
    Many(Table),
}

type Table = HashMap<Key, Entry, BuildHasherDefault<KeyHasher>>;

/// (tag, mode) as one value: classid and objid in the first word, objsubid and the mode in the
/// second.
type Key = (u64, u32);

fn key(tag: MonthTag, mode: Mode) -> Key {
    let mode_bit = match mode {
        Mode::Exclusive => 0,
        Mode::Shared => 1,
    };
    (
        (u64::from(tag.classid) << 32) | u64::from(tag.objid),
        (u32::from(tag.objsubid) << 1) | mode_bit,
    )
}

impl Store {
    pub(super) const fn new() -> Self {
        Store::Few(Vec::new())
    }

    /// The entry of (tag, mode), if any.
    #[inline(always)]
    pub(super) fn get_mut(&mut self, tag: MonthTag, mode: Mode) -> Option<&mut Entry> {
        match self {
            Store::Few(list) => list.iter_mut().find(|e| (e.tag, e.mode) == (tag, mode)),
            Store::Many(table) => table_get_mut(table, tag, mode),
        }
    }

    /// Adds an entry for a (tag, mode) that has none.
    #[inline(always)]
    pub(super) fn insert(&mut self, entry: Entry) {
        match self {
            Store::Few(list) if list.len() < FEW => list.push(entry),
            Store::Few(list) => {
                let list = std::mem::take(list);
                self.grow(list, entry);
            }
            Store::Many(table) => table_insert(table, entry),
        }
    }

    /// The list is full: from now on a table, with `entry` in it.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, list: Vec<Entry>, entry: Entry) {
        let mut table: Table = HashMap::with_capacity_and_hasher(2 * FEW, Default::default());
        for e in list.into_iter().chain(std::iter::once(entry)) {
            table.insert(key(e.tag, e.mode), e);
        }
        *self = Store::Many(table);
    }

    /// Drops the entry of (tag, mode); true if there was one.
    #[inline(always)]
    pub(super) fn remove(&mut self, tag: MonthTag, mode: Mode) -> bool {
        match self {
            // The latest grant is the likeliest to go first (take a month, work, release it),
            // so the last entry is tried before the search.
            Store::Few(list) if list.last().is_some_and(|e| (e.tag, e.mode) == (tag, mode)) => {
                list.pop();
                true
            }
            Store::Few(list) => match list.iter().position(|e| (e.tag, e.mode) == (tag, mode)) {
                Some(i) => {
                    list.swap_remove(i);
                    true
                }
                None => false,
            },
            Store::Many(table) => table_remove(table, tag, mode),
        }
    }

    /// Whether any entry satisfies `pred`.
    pub(super) fn any(&self, pred: impl Fn(&Entry) -> bool) -> bool {
        match self {
            Store::Few(list) => list.iter().any(pred),
            Store::Many(table) => table.values().any(pred),
        }
    }

    /// Takes out every entry that satisfies `pred`, in one pass; the store keeps the rest.
    pub(super) fn take_where(&mut self, pred: impl Fn(&Entry) -> bool) -> Vec<Entry> {
        let all: Vec<Entry> = match std::mem::replace(self, Store::new()) {
            Store::Few(list) => list,
            Store::Many(table) => table.into_values().collect(),
        };
        let (taken, kept): (Vec<Entry>, Vec<Entry>) = all.into_iter().partition(|e| pred(e));
        for e in kept {
            self.insert(e);
        }
        taken
    }
}

// The table's operations stay out of line: inlined into the hot entry points with the list's,
// they would make every call save the registers that only the table's probe uses.

#[inline(never)]
fn table_get_mut(table: &mut Table, tag: MonthTag, mode: Mode) -> Option<&mut Entry> {
    table.get_mut(&key(tag, mode))
}

#[inline(never)]
fn table_insert(table: &mut Table, entry: Entry) {
    table.insert(key(entry.tag, entry.mode), entry);
}

#[inline(never)]
fn table_remove(table: &mut Table, tag: MonthTag, mode: Mode) -> bool {
    table.remove(&key(tag, mode)).is_some()
}

/// FxHash's multiply-and-rotate over the key's two words: keys are small integers the session
/// chose itself, so no collision attack is possible and SipHash's cost would buy nothing.
#[derive(Default)]
pub(super) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}
