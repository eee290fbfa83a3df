//! The secondary index that answers `FIND name value` and `LISTVAR name`
//! without looking at every session.
//!
//! One index per shard, so a write touches only its own shard; a cross-session
//! query asks every shard's index in turn. Values and ids are kept in order,
//! so a query can be walked in slices (and paged by a cursor), resuming
//! after the last id it returned.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use bytes::Bytes;

use crate::id::SessionId;

/// variable name → value → ids of sessions having that value.
#[derive(Debug, Default)]
pub(crate) struct VarIndex {
    by_name: HashMap<Bytes, BTreeMap<Bytes, BTreeSet<SessionId>>>,
}

impl VarIndex {
    pub(crate) fn insert(&mut self, name: &Bytes, value: &Bytes, id: &SessionId) {
        self.by_name
            .entry(name.clone())
            .or_default()
            .entry(value.clone())
            .or_default()
            .insert(id.clone());
    }

    pub(crate) fn remove(&mut self, name: &[u8], value: &[u8], id: &SessionId) {
        let Some(values) = self.by_name.get_mut(name) else {
            return;
        };
        if let Some(ids) = values.get_mut(value) {
            ids.remove(id);
            if ids.is_empty() {
                values.remove(value);
            }
        }
        if values.is_empty() {
            self.by_name.remove(name);
        }
    }

    /// Ids of sessions whose `name` equals `value`, in order, after `after`.
    pub(crate) fn find<'a>(
        &'a self,
        name: &[u8],
        value: &[u8],
        after: Option<&'a SessionId>,
    ) -> impl Iterator<Item = &'a SessionId> + 'a {
        self.by_name
            .get(name)
            .and_then(|values| values.get(value))
            .into_iter()
            .flat_map(move |ids| ids.range(after_bound(after)))
    }

    /// Every `(id, value)` of sessions having `name`, in (value, id) order,
    /// after `after`.
    pub(crate) fn list<'a>(
        &'a self,
        name: &[u8],
        after: Option<(&'a Bytes, &'a SessionId)>,
    ) -> impl Iterator<Item = (&'a SessionId, &'a Bytes)> + 'a {
        let values = self.by_name.get(name);
        let (first, rest) = match after {
            Some((v, id)) => (
                values
                    .and_then(|vs| vs.get_key_value(v))
                    .map(|(v, ids)| (v, ids.range(after_bound(Some(id))))),
                values.map(|vs| vs.range::<Bytes, _>((Bound::Excluded(v), Bound::Unbounded))),
            ),
            None => (None, values.map(|vs| vs.range::<Bytes, _>(..))),
        };
        first
            .into_iter()
            .flat_map(|(v, ids)| ids.map(move |id| (id, v)))
            .chain(
                rest.into_iter()
                    .flatten()
                    .flat_map(|(value, ids)| ids.iter().map(move |id| (id, value))),
            )
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
