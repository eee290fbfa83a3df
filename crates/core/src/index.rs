//! The secondary index that answers `FIND name value` and `LISTVAR name`
//! without looking at every session.
//!
//! One index per shard, so a write touches only its own shard; a cross-session
//! query asks every shard's index in turn.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use crate::id::SessionId;

/// variable name → value → ids of sessions having that value.
#[derive(Debug, Default)]
pub(crate) struct VarIndex {
    by_name: HashMap<Bytes, HashMap<Bytes, HashSet<SessionId>>>,
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

    /// Ids of sessions whose `name` equals `value`.
    pub(crate) fn find(&self, name: &[u8], value: &[u8]) -> impl Iterator<Item = &SessionId> {
        self.by_name
            .get(name)
            .and_then(|values| values.get(value))
            .into_iter()
            .flatten()
    }

    /// Every `(id, value)` of sessions having `name`.
    pub(crate) fn list(&self, name: &[u8]) -> impl Iterator<Item = (&SessionId, &Bytes)> {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .flat_map(|(value, ids)| ids.iter().map(move |id| (id, value)))
    }
}

/// class → ids, for `COUNT CLASS c` and `LIST CLASS c`.
#[derive(Debug, Default)]
pub(crate) struct ClassIndex {
    by_class: HashMap<Bytes, HashSet<SessionId>>,
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

    pub(crate) fn members(&self, class: &[u8]) -> impl Iterator<Item = &SessionId> {
        self.by_class.get(class).into_iter().flatten()
    }

    pub(crate) fn count(&self, class: &[u8]) -> usize {
        self.by_class.get(class).map_or(0, HashSet::len)
    }
}
