//! Commands that look across sessions (COUNT, LIST, SCAN, FIND, LISTVAR),
//! session metadata, and engine statistics.
//!
//! Each visits the shards one at a time; none holds more than one shard lock.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::data::secs;
use super::{Engine, REAP_BUDGET_PER_SHARD};
use crate::error::Error;
use crate::id::SessionId;
use crate::index::Placed;
use crate::lock::LockMode;
use crate::reply::{InfoSection, Reply};
use crate::store::Shard;

impl Engine {
    pub(super) fn info(&self, id: &SessionId, now: u64) -> Result<Reply, Error> {
        let mut shard = self.store.lock(id);
        let s = shard
            .live(id, now)
            .ok_or_else(|| Error::NoSession(id.clone()))?;
        let mut fields = vec![
            ("id", Reply::Bulk(id.to_bytes())),
            ("class", s.class().cloned().map_or(Reply::Nil, Reply::Bulk)),
            ("created", Reply::Int(secs(s.created_ms))),
            ("accessed", Reply::Int(secs(s.accessed_ms))),
            ("timeout", Reply::Int(secs(s.timeout_ms))),
            ("ttl", Reply::Int(secs(s.ttl_ms(now).saturating_add(500)))),
            (
                "version",
                Reply::Int(i64::try_from(s.version).unwrap_or(i64::MAX)),
            ),
            ("vars", Reply::Int(s.vars().len() as i64)),
            ("data_bytes", Reply::Int(s.data.len() as i64)),
        ];
        let (mode, holders, waiters) = match shard.locks.get(id) {
            Some(l) => (l.mode(), l.holders.len(), l.waiter_count()),
            None => (None, 0, 0),
        };
        let mode = match mode {
            None => "none",
            Some(LockMode::Write) => "write",
            Some(LockMode::Read) => "read",
        };
        fields.push(("lock", Reply::text(mode)));
        fields.push(("lock_holders", Reply::Int(holders as i64)));
        fields.push(("lock_waiters", Reply::Int(waiters as i64)));
        Ok(Reply::Map(
            fields
                .into_iter()
                .map(|(k, v)| (Reply::text(k), v))
                .collect(),
        ))
    }

    pub(super) fn export(&self, id: &SessionId, now: u64) -> Result<Reply, Error> {
        let mut shard = self.store.lock(id);
        let s = shard
            .live(id, now)
            .ok_or_else(|| Error::NoSession(id.clone()))?;
        let int = |n: u64| Reply::Int(i64::try_from(n).unwrap_or(i64::MAX));
        let fields = vec![
            ("id", Reply::Bulk(id.to_bytes())),
            ("class", s.class().cloned().map_or(Reply::Nil, Reply::Bulk)),
            ("created_ms", int(s.created_ms)),
            ("accessed_ms", int(s.accessed_ms)),
            ("timeout_ms", int(s.timeout_ms)),
            ("ttl_ms", int(s.ttl_ms(now))),
            ("version", int(s.version)),
            ("data", Reply::Bulk(s.data.clone())),
            (
                "vars",
                Reply::Map(
                    s.vars()
                        .iter()
                        .map(|(k, v)| (Reply::Bulk(k.clone()), Reply::Bulk(v.clone())))
                        .collect(),
                ),
            ),
        ];
        Ok(Reply::Map(
            fields
                .into_iter()
                .map(|(k, v)| (Reply::text(k), v))
                .collect(),
        ))
    }

    pub(super) fn count(&self, class: Option<&[u8]>, now: u64) -> Reply {
        let mut total = 0usize;
        for i in 0..self.store.len() {
            let mut shard = self.store.lock_at(i);
            // Expired sessions still in the map must not be counted; the
            // reaper's budget keeps this bounded per call.
            self.reap_counted(&mut shard, now);
            total += match class {
                None => shard.sessions.len(),
                Some(c) => shard.classes.count(c),
            };
        }
        Reply::Int(total as i64)
    }

    pub(super) fn list(&self, class: Option<&[u8]>, now: u64) -> Result<Reply, Error> {
        let instead = "SESSION.SCAN cursor [COUNT n] [CLASS c] (Redis: SCAN)";
        let ids = self.walk_all(instead, |shard, after, room, out| {
            let ids: Box<dyn Iterator<Item = &SessionId>> = match class {
                None => Box::new(shard.ids_after(after).map(|(_, id)| id)),
                Some(c) => Box::new(shard.classes.members(c, after)),
            };
            take_slice(ids, room, |id| {
                if shard.is_live(id, now) {
                    out.push(id.clone());
                }
                id.clone()
            })
        })?;
        Ok(Reply::Ids(ids))
    }

    /// One page of ids. The cursor is `0` to start, else `<shard>-<hex of the
    /// last id visited>`; `0` comes back when the walk is done. A session
    /// that exists for the whole walk is returned exactly once. `count`
    /// bounds the sessions visited, not the ids returned (as Redis's
    /// COUNT), so a class that matches nothing still costs one page's work.
    pub(super) fn scan(
        &self,
        cursor: &[u8],
        count: usize,
        class: Option<&[u8]>,
        now: u64,
    ) -> Result<Reply, Error> {
        let count = count.clamp(1, self.config.max_scan_count);
        let start = parse_cursor(cursor, self.store.len())?;
        let (page, next) = self.walk_page(start, count, |shard, after, room, out| {
            let ids = shard.ids_after(after).map(|(_, id)| id);
            take_slice(ids, room, |id| {
                let class_ok = class.is_none_or(|c| {
                    shard
                        .sessions
                        .get(id)
                        .and_then(|s| s.class())
                        .map(|b| &b[..])
                        == Some(c)
                });
                if class_ok && shard.is_live(id, now) {
                    out.push(id.clone());
                }
                id.clone()
            })
        });
        Ok(Reply::Page {
            cursor: Bytes::from(id_cursor(next)),
            ids: page,
        })
    }

    /// Redis `SCAN`: a numeric cursor, `shard << 48 | the top 48 bits of
    /// the next id's place in the shard's scan order` (a keyed hash, see
    /// `Store`), so a page resumes from that place. A page ends only where
    /// those bits change, so nothing is returned twice and no session
    /// present throughout is missed; with a keyed hash such runs are a
    /// session or two long, whatever the ids.
    pub(super) fn key_scan(&self, cursor: u64, count: usize, now: u64) -> Result<Reply, Error> {
        let count = count.clamp(1, self.config.max_scan_count);
        let mut shard_at = (cursor >> PLACE_BITS) as usize;
        let mut from = (cursor & PLACE_MASK) << (64 - PLACE_BITS);
        if shard_at >= self.store.len() {
            return Err(Error::InvalidArgument(
                "invalid cursor: pass 0 to start, then the cursor SCAN returned".into(),
            ));
        }
        let mut ids = Vec::new();
        let mut visited = 0usize;
        while shard_at < self.store.len() {
            let mut last: Option<(u64, SessionId)> = None;
            loop {
                let shard = self.store.lock_at(shard_at);
                let it: Box<dyn Iterator<Item = (u64, &SessionId)>> = match &last {
                    Some((_, id)) => Box::new(shard.ids_after(Some(id))),
                    None => Box::new(shard.ids_from(from)),
                };
                let mut n = 0;
                let mut exhausted = true;
                for (at, id) in it {
                    let place = at >> (64 - PLACE_BITS);
                    if visited >= count
                        && last
                            .as_ref()
                            .is_none_or(|(l, _)| l >> (64 - PLACE_BITS) != place)
                    {
                        let next = ((shard_at as u64) << PLACE_BITS) | place;
                        return Ok(key_page(next, ids));
                    }
                    if let Some(form) = shard.live_form(id, now) {
                        ids.push((id.clone(), form));
                    }
                    last = Some((at, id.clone()));
                    visited += 1;
                    n += 1;
                    if n >= SLICE {
                        exhausted = false;
                        break;
                    }
                }
                if exhausted {
                    break;
                }
            }
            shard_at += 1;
            from = 0;
            if visited >= count && shard_at < self.store.len() {
                // The next page starts at the next shard.
                return Ok(key_page((shard_at as u64) << PLACE_BITS, ids));
            }
        }
        Ok(key_page(0, ids))
    }

    /// Every live session with its key form (Redis `KEYS`), bounded as
    /// `list` is.
    pub(super) fn keys(&self, now: u64) -> Result<Reply, Error> {
        let instead = "SCAN cursor [MATCH pattern] [COUNT n]";
        let keys = self.walk_all(instead, |shard, after, room, out| {
            let ids = shard.ids_after(after).map(|(_, id)| id);
            take_slice(ids, room, |id| {
                if let Some(form) = shard.live_form(id, now) {
                    out.push((id.clone(), form));
                }
                id.clone()
            })
        })?;
        Ok(key_page(0, keys))
    }

    /// Explicit variables first; a PHP entry counts only where no explicit
    /// variable of that name shadows it.
    pub(super) fn find(&self, name: &[u8], value: &[u8], now: u64) -> Result<Reply, Error> {
        let instead = "SESSION.FIND name value CURSOR c [COUNT n]";
        let ids = self.walk_all(instead, |shard, after, room, out| {
            find_slice(shard, name, value, after, room, now, out)
        })?;
        Ok(Reply::Ids(ids))
    }

    /// One page of `FIND … CURSOR`; without `wait` (a function's
    /// `sessiond.find`), a page ends early at a shard another call holds
    /// instead of waiting for it.
    pub(super) fn find_page(
        &self,
        (name, value): (&[u8], &[u8]),
        cursor: &[u8],
        count: usize,
        wait: bool,
        now: u64,
    ) -> Result<Reply, Error> {
        let count = count.clamp(1, self.config.max_scan_count);
        let start = parse_cursor(cursor, self.store.len())?;
        let (page, next) = self.walk_page_with(start, count, wait, |shard, after, room, out| {
            find_slice(shard, name, value, after, room, now, out)
        });
        Ok(Reply::Page {
            cursor: Bytes::from(id_cursor(next)),
            ids: page,
        })
    }

    pub(super) fn list_var(&self, name: &[u8], now: u64) -> Result<Reply, Error> {
        let instead = "SESSION.LISTVAR name CURSOR c [COUNT n]";
        let pairs = self.walk_all(instead, |shard, after, room, out| {
            list_var_slice(shard, name, after, room, now, out)
        })?;
        Ok(Reply::Map(pairs))
    }

    pub(super) fn list_var_page(
        &self,
        name: &[u8],
        cursor: &[u8],
        count: usize,
        now: u64,
    ) -> Result<Reply, Error> {
        let count = count.clamp(1, self.config.max_scan_count);
        let start = parse_cursor(cursor, self.store.len())?;
        let (page, next) = self.walk_page(start, count, |shard, after, room, out| {
            list_var_slice(shard, name, after, room, now, out)
        });
        Ok(Reply::Array(vec![
            Reply::bulk(id_cursor(next)),
            Reply::Map(page),
        ]))
    }

    /// Runs `slice` over every shard, a slice at a time (one shard lock
    /// held for at most [`SLICE`] entries, then released so other requests
    /// run), and gathers the results; past `max_reply_items` it stops and
    /// refuses, pointing to `instead`.
    fn walk_all<K, T>(
        &self,
        instead: &'static str,
        mut slice: impl FnMut(&Shard, Option<&K>, usize, &mut Vec<T>) -> Sliced<K>,
    ) -> Result<Vec<T>, Error> {
        let limit = self.config.max_reply_items;
        let mut out = Vec::new();
        for i in 0..self.store.len() {
            let mut after: Option<K> = None;
            loop {
                let sliced = {
                    let shard = self.store.lock_at(i);
                    slice(&shard, after.as_ref(), SLICE, &mut out)
                };
                if out.len() > limit {
                    return Err(Error::TooManyResults {
                        limit: limit as u64,
                        instead,
                    });
                }
                match sliced.last {
                    Some(k) => after = Some(k),
                    None => break,
                }
            }
        }
        Ok(out)
    }

    /// One page: from `start` (a shard and the last key visited there),
    /// visiting at most `budget` entries in slices; the items and where to
    /// go on from (`None`: the walk is done).
    #[allow(clippy::type_complexity)]
    fn walk_page<K, T>(
        &self,
        start: (usize, Option<K>),
        budget: usize,
        slice: impl FnMut(&Shard, Option<&K>, usize, &mut Vec<T>) -> Sliced<K>,
    ) -> (Vec<T>, Option<(usize, Option<K>)>) {
        self.walk_page_with(start, budget, true, slice)
    }

    /// [`Engine::walk_page`]; without `wait`, a shard another thread has
    /// claimed ends the page early there (the cursor resumes at it), so a
    /// walk from inside a function never waits on another's claim.
    #[allow(clippy::type_complexity)]
    fn walk_page_with<K, T>(
        &self,
        start: (usize, Option<K>),
        budget: usize,
        wait: bool,
        mut slice: impl FnMut(&Shard, Option<&K>, usize, &mut Vec<T>) -> Sliced<K>,
    ) -> (Vec<T>, Option<(usize, Option<K>)>) {
        let (mut shard_at, mut after) = start;
        let mut out = Vec::new();
        let mut left = budget;
        while shard_at < self.store.len() {
            if left == 0 {
                return (out, Some((shard_at, after)));
            }
            let sliced = {
                let shard = if wait {
                    self.store.lock_at(shard_at)
                } else {
                    match self.store.lock_unclaimed(shard_at) {
                        Some(shard) => shard,
                        None => return (out, Some((shard_at, after))),
                    }
                };
                slice(&shard, after.as_ref(), left.min(SLICE), &mut out)
            };
            left = left.saturating_sub(sliced.visited);
            match sliced.last {
                Some(k) => after = Some(k),
                None => {
                    shard_at += 1;
                    after = None;
                }
            }
        }
        (out, None)
    }

    pub(super) fn server_info(&self, now: u64) -> Reply {
        let mut sessions = 0usize;
        let mut locks = 0usize;
        let mut waiters = 0usize;
        for i in 0..self.store.len() {
            let mut shard = self.store.lock_at(i);
            self.reap_counted(&mut shard, now);
            sessions += shard.sessions.len();
            locks += shard
                .locks
                .values()
                .filter(|l| !l.holders.is_empty())
                .count();
            waiters += shard
                .locks
                .values()
                .map(|l| l.waiter_count())
                .sum::<usize>();
        }
        let stat = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed).to_string();
        Reply::Info(vec![InfoSection {
            name: "Sessions",
            fields: vec![
                ("sessions".into(), sessions.to_string()),
                ("locked_sessions".into(), locks.to_string()),
                ("lock_waiters".into(), waiters.to_string()),
                ("locks".into(), self.lock_total().to_string()),
                ("lock_bytes".into(), self.lock_bytes_total().to_string()),
                (
                    "expired_sessions".into(),
                    stat(&self.stats.expired_sessions),
                ),
                ("expired_leases".into(), stat(&self.stats.expired_leases)),
                ("refused_unlocks".into(), stat(&self.stats.refused_unlocks)),
                ("capped_timeouts".into(), stat(&self.stats.capped_timeouts)),
                ("capped_leases".into(), stat(&self.stats.capped_leases)),
                (
                    "next_fencing_key".into(),
                    self.next_fencing_key().to_string(),
                ),
                ("shards".into(), self.store.len().to_string()),
            ],
        }])
    }

    fn reap_counted(&self, shard: &mut crate::store::Shard, now: u64) {
        let n = shard.reap(now, REAP_BUDGET_PER_SHARD);
        self.stats
            .expired_sessions
            .fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Entries visited per shard lock: a slice. A request on the same shard
/// waits for at most one slice; BENCHMARKS.md ("Heavy commands and other
/// clients") has what a whole walk costs the others.
pub(super) const SLICE: usize = 256;

/// Redis SCAN cursors: the low bits hold the top bits of a place in the
/// shard's scan order; the high 16, the shard (at most 65,536 of them).
const PLACE_BITS: u32 = 48;
const PLACE_MASK: u64 = (1 << PLACE_BITS) - 1;

/// A Redis SCAN page: the numeric cursor and the ids.
fn key_page(next: u64, keys: Vec<(SessionId, u8)>) -> Reply {
    Reply::Keys {
        cursor: Bytes::from(next.to_string()),
        keys,
    }
}

/// What one slice of a walk did: entries visited, and the last one when
/// it stopped before the end of the shard (where the next slice resumes).
pub(super) struct Sliced<K> {
    visited: usize,
    last: Option<K>,
}

/// Visits at most `room` entries of `it`, each through `visit` (which
/// returns its resume key).
fn take_slice<'a, K>(
    it: impl Iterator<Item = &'a SessionId>,
    room: usize,
    mut visit: impl FnMut(&'a SessionId) -> K,
) -> Sliced<K> {
    let mut visited = 0;
    for id in it {
        let last = Some(visit(id));
        visited += 1;
        if visited >= room {
            return Sliced { visited, last };
        }
    }
    Sliced {
        visited,
        last: None,
    }
}

/// One slice of FIND, in scan order. A name `index_fields` lists: the
/// explicit variables' index merged with the fields' (a field counts only
/// where no explicit variable of that name shadows it, and each hit is
/// checked against the data, as the index keeps only hashes). Any other
/// name: every session, its variable or field read.
fn find_slice(
    shard: &Shard,
    name: &[u8],
    value: &[u8],
    after: Option<&SessionId>,
    room: usize,
    now: u64,
    out: &mut Vec<SessionId>,
) -> Sliced<SessionId> {
    let matches = |id: &SessionId| {
        shard
            .sessions
            .get(id)
            .is_some_and(|s| s.var(name).as_deref() == Some(value))
    };
    let mut visit = |id: &SessionId| {
        if shard.is_live(id, now) && matches(id) {
            out.push(id.clone());
        }
        id.clone()
    };
    let after: Option<Placed> = after.map(|id| (shard.position(id), id.clone()));
    let Some(hits) = shard.field_hits(name, value, after.as_ref().map_or(0, |a| a.0)) else {
        let from = after.as_ref().map(|(_, id)| id);
        return take_slice(shard.ids_after(from).map(|(_, id)| id), room, visit);
    };
    let past = |p: &(u64, &SessionId)| after.as_ref().is_none_or(|(at, id)| (p.0, p.1) > (*at, id));
    let fields = hits.flat_map(|prefix| shard.ids_at(prefix)).filter(past);
    let explicit = shard
        .vars
        .find(name, value, after.as_ref())
        .map(|(at, id)| (*at, id));
    let mut last: Option<(u64, &SessionId)> = None;
    let merged = merge_by(explicit, fields, |a, b| a.cmp(b))
        // A session in both (a variable that equals its own field) once.
        .filter(move |p| {
            let again = last == Some(*p);
            last = Some(*p);
            !again
        })
        .map(|(_, id)| id);
    take_slice(merged, room, &mut visit)
}

/// One slice of LISTVAR, in scan order: every session's variable or field
/// `name` (the fields are read from each session's data).
fn list_var_slice(
    shard: &Shard,
    name: &[u8],
    after: Option<&SessionId>,
    room: usize,
    now: u64,
    out: &mut Vec<(Reply, Reply)>,
) -> Sliced<SessionId> {
    take_slice(shard.ids_after(after).map(|(_, id)| id), room, |id| {
        if shard.is_live(id, now) {
            if let Some(v) = shard.sessions.get(id).and_then(|s| s.var(name)) {
                out.push((Reply::Bulk(id.to_bytes()), Reply::Bulk(v)));
            }
        }
        id.clone()
    })
}

/// Two ascending iterators as one, ascending.
fn merge_by<T: Copy>(
    a: impl Iterator<Item = T>,
    b: impl Iterator<Item = T>,
    cmp: impl Fn(&T, &T) -> std::cmp::Ordering,
) -> impl Iterator<Item = T> {
    let mut a = a.peekable();
    let mut b = b.peekable();
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) => {
            if cmp(x, y) == std::cmp::Ordering::Greater {
                b.next()
            } else {
                a.next()
            }
        }
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

/// A page's next cursor: `0` when done.
fn id_cursor(next: Option<(usize, Option<SessionId>)>) -> String {
    match next {
        None => "0".to_string(),
        Some((s, id)) => format_cursor(s, &id.unwrap_or_else(|| SessionId::new(Bytes::new()))),
    }
}

fn format_cursor(shard: usize, last: &SessionId) -> String {
    let mut s = format!("{shard}-");
    for b in last.as_bytes() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn parse_cursor(cursor: &[u8], shards: usize) -> Result<(usize, Option<SessionId>), Error> {
    let bad = || {
        Error::InvalidArgument(
            "invalid cursor: pass 0 to start, then the cursor SCAN returned".into(),
        )
    };
    if cursor == b"0" {
        return Ok((0, None));
    }
    let text = std::str::from_utf8(cursor).map_err(|_| bad())?;
    let (shard, hex) = text.split_once('-').ok_or_else(bad)?;
    let shard: usize = shard.parse().map_err(|_| bad())?;
    if shard >= shards || !hex.len().is_multiple_of(2) {
        return Err(bad());
    }
    let mut id = Vec::with_capacity(hex.len() / 2);
    for pair in hex.as_bytes().chunks(2) {
        let s = std::str::from_utf8(pair).map_err(|_| bad())?;
        id.push(u8::from_str_radix(s, 16).map_err(|_| bad())?);
    }
    let after = if id.is_empty() {
        None
    } else {
        Some(SessionId::new(id))
    };
    Ok((shard, after))
}
