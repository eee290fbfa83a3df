//! The secondary indexes that answer `FIND name value` and `COUNT/LIST
//! CLASS c` without looking at every session.
//!
//! One index per shard, so a write touches only its own shard; a cross-session
//! query asks every shard's index in turn. Values and ids are kept in order,
//! so a query can be walked in slices (and paged by a cursor), resuming
//! after the last id it returned.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use bytes::Bytes;

use crate::id::SessionId;

/// Where a session stands in its shard's scan order, and its id: the
/// order every `FIND` walks a shard in.
pub(crate) type Placed = (u64, SessionId);

/// Explicit variables: name → value → the sessions having that value, in
/// scan order.
#[derive(Debug, Default)]
pub(crate) struct VarIndex {
    by_name: HashMap<Bytes, BTreeMap<Bytes, BTreeSet<Placed>>>,
}

impl VarIndex {
    pub(crate) fn insert(&mut self, name: &Bytes, value: &Bytes, at: u64, id: &SessionId) {
        self.by_name
            .entry(name.clone())
            .or_default()
            .entry(value.clone())
            .or_default()
            .insert((at, id.clone()));
    }

    pub(crate) fn remove(&mut self, name: &[u8], value: &[u8], at: u64, id: &SessionId) {
        let Some(values) = self.by_name.get_mut(name) else {
            return;
        };
        if let Some(ids) = values.get_mut(value) {
            ids.remove(&(at, id.clone()));
            if ids.is_empty() {
                values.remove(value);
            }
        }
        if values.is_empty() {
            self.by_name.remove(name);
        }
    }

    /// Sessions whose `name` equals `value`, in scan order, after `after`.
    pub(crate) fn find<'a>(
        &'a self,
        name: &[u8],
        value: &[u8],
        after: Option<&Placed>,
    ) -> impl Iterator<Item = &'a Placed> + 'a {
        let from = match after {
            Some(p) => Bound::Excluded(p.clone()),
            None => Bound::Unbounded,
        };
        self.by_name
            .get(name)
            .and_then(|values| values.get(value))
            .into_iter()
            .flat_map(move |ids| ids.range((from.clone(), Bound::Unbounded)))
    }
}

/// Fields read from session data (PHP, JSON, msgpack: [`crate::fields`])
/// of the names an operator indexes, 8 bytes an entry and no copy of a
/// name, value or id: the top [`KEY_BITS`] of a keyed hash of (name,
/// value), then the top [`PLACE_BITS`] of the session's place in the scan
/// order. A hit is a candidate, checked against the session's data; the
/// shard makes sure two sessions sharing an entry keep it while either
/// has the field ([`crate::store::Shard`]).
#[derive(Debug, Default)]
pub(crate) struct FieldIndex {
    entries: BTreeSet<u64>,
}

/// Bits of the (name, value) hash an entry keeps.
pub(crate) const KEY_BITS: u32 = 24;
/// Bits of the place an entry keeps: a prefix of the scan order.
pub(crate) const PLACE_BITS: u32 = 64 - KEY_BITS;

impl FieldIndex {
    /// A field key as entries keep it (see [`FieldIndex`]).
    pub(crate) fn key(hash: u64) -> u64 {
        hash >> PLACE_BITS
    }

    /// The place prefix an entry keeps of `at`.
    pub(crate) fn prefix(at: u64) -> u64 {
        at >> KEY_BITS
    }

    fn entry(key: u64, at: u64) -> u64 {
        (key << PLACE_BITS) | Self::prefix(at)
    }

    pub(crate) fn insert(&mut self, key: u64, at: u64) {
        self.entries.insert(Self::entry(key, at));
    }

    pub(crate) fn remove(&mut self, key: u64, at: u64) {
        self.entries.remove(&Self::entry(key, at));
    }

    /// Place prefixes of the sessions that may have `key`, in scan order,
    /// from the one of `from` on.
    pub(crate) fn find(&self, key: u64, from: u64) -> impl Iterator<Item = u64> + '_ {
        let mask = (1u64 << PLACE_BITS) - 1;
        self.entries
            .range(Self::entry(key, from)..=((key << PLACE_BITS) | mask))
            .map(move |e| e & mask)
    }

    /// Entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// class → ids, for `COUNT CLASS c` and `LIST CLASS c`.
#[derive(Debug, Default)]
pub(crate) struct ClassIndex {
    by_class: HashMap<Bytes, BTreeSet<SessionId>>,
}

impl ClassIndex {
    pub(crate) fn insert(&mut self, class: &Bytes, id: &SessionId) {
        self.by_class
            .entry(class.clone())
            .or_default()
            .insert(id.clone());
    }

    pub(crate) fn remove(&mut self, class: &[u8], id: &SessionId) {
        if let Some(ids) = self.by_class.get_mut(class) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_class.remove(class);
            }
        }
    }

    /// The class's ids in order, after `after`.
    pub(crate) fn members<'a>(
        &'a self,
        class: &[u8],
        after: Option<&'a SessionId>,
    ) -> impl Iterator<Item = &'a SessionId> + 'a {
        self.by_class
            .get(class)
            .into_iter()
            .flat_map(move |ids| ids.range(after_bound(after)))
    }

    pub(crate) fn count(&self, class: &[u8]) -> usize {
        self.by_class.get(class).map_or(0, BTreeSet::len)
    }
}

/// The range of ids after `after` (all of them for `None`).
fn after_bound(after: Option<&SessionId>) -> (Bound<&SessionId>, Bound<&SessionId>) {
    match after {
        Some(id) => (Bound::Excluded(id), Bound::Unbounded),
        None => (Bound::Unbounded, Bound::Unbounded),
    }
}
