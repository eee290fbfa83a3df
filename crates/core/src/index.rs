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
/// of the names an operator indexes: a keyed hash of (name, value) and the
/// session's place in the scan order, 16 bytes an entry and no copy of
/// either. A hit is a candidate, checked against the session's data.
#[derive(Debug, Default)]
pub(crate) struct FieldIndex {
    entries: BTreeSet<(u64, u64)>,
}

impl FieldIndex {
    pub(crate) fn insert(&mut self, key: u64, at: u64) {
        self.entries.insert((key, at));
    }

    pub(crate) fn remove(&mut self, key: u64, at: u64) {
        self.entries.remove(&(key, at));
    }

    /// Entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Places of the sessions that may have `key`, from `from` on.
    pub(crate) fn find(&self, key: u64, from: u64) -> impl Iterator<Item = u64> + '_ {
        self.entries
            .range((key, from)..=(key, u64::MAX))
            .map(|&(_, at)| at)
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
