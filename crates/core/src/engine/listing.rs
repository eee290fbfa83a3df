//! Commands that look across sessions (COUNT, LIST, SCAN, FIND, LISTVAR),
//! session metadata, and engine statistics.
//!
//! Each visits the shards one at a time; none holds more than one shard lock.

use std::ops::Bound;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::data::secs;
use super::{Engine, REAP_BUDGET_PER_SHARD};
use crate::error::Error;
use crate::id::SessionId;
use crate::lock::LockMode;
use crate::reply::{InfoSection, Reply};

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

    pub(super) fn list(&self, class: Option<&[u8]>, now: u64) -> Reply {
        let mut ids = Vec::new();
        for i in 0..self.store.len() {
            let shard = self.store.lock_at(i);
            match class {
                None => ids.extend(
                    shard
                        .order
                        .iter()
                        .filter(|id| shard.is_live(id, now))
                        .map(|id| Reply::Bulk(id.to_bytes())),
                ),
                Some(c) => ids.extend(
                    shard
                        .classes
                        .members(c)
                        .filter(|id| shard.is_live(id, now))
                        .map(|id| Reply::Bulk(id.to_bytes())),
                ),
            }
        }
        Reply::Array(ids)
    }

    /// One page of ids. The cursor is `0` to start, else `<shard>-<hex of the
    /// last id returned>`; `0` comes back when the walk is done. A session
    /// that exists for the whole walk is returned exactly once.
    pub(super) fn scan(
        &self,
        cursor: &[u8],
        count: usize,
        class: Option<&[u8]>,
        now: u64,
    ) -> Result<Reply, Error> {
        let count = count.clamp(1, self.config.max_scan_count);
        let (mut shard_at, mut after) = parse_cursor(cursor, self.store.len())?;
        let mut page = Vec::new();
        while shard_at < self.store.len() {
            let shard = self.store.lock_at(shard_at);
            let start = match &after {
                Some(id) => Bound::Excluded(id),
                None => Bound::Unbounded,
            };
            let mut last = None;
            let mut full = false;
            let in_order = shard.order.range((start, Bound::Unbounded));
            for (id, s) in in_order.filter_map(|id| shard.sessions.get(id).map(|s| (id, s))) {
                if page.len() >= count {
                    full = true;
                    break;
                }
                last = Some(id.clone());
                let class_ok = class.is_none_or(|c| s.class().map(|b| &b[..]) == Some(c));
                if class_ok && shard.is_live(id, now) {
                    page.push(Reply::Bulk(id.to_bytes()));
                }
            }
            if full {
                let next = match last.or(after) {
                    Some(id) => format_cursor(shard_at, &id),
                    None => format_cursor(shard_at, &SessionId::new(Bytes::new())),
                };
                return Ok(Reply::Array(vec![Reply::bulk(next), Reply::Array(page)]));
            }
            shard_at += 1;
            after = None;
        }
        Ok(Reply::Array(vec![Reply::text("0"), Reply::Array(page)]))
    }

    /// Explicit variables first; a PHP entry counts only where no explicit
    /// variable of that name shadows it.
    pub(super) fn find(&self, name: &[u8], value: &[u8], now: u64) -> Reply {
        let mut ids = Vec::new();
        for i in 0..self.store.len() {
            let shard = self.store.lock_at(i);
            let explicit = shard.vars.find(name, value);
            let php = shard
                .php_vars
                .find(name, value)
                .filter(|id| !has_explicit(&shard, id, name));
            ids.extend(
                explicit
                    .chain(php)
                    .filter(|id| shard.is_live(id, now))
                    .map(|id| Reply::Bulk(id.to_bytes())),
            );
        }
        Reply::Array(ids)
    }

    pub(super) fn list_var(&self, name: &[u8], now: u64) -> Reply {
        let mut pairs = Vec::new();
        for i in 0..self.store.len() {
            let shard = self.store.lock_at(i);
            let explicit = shard.vars.list(name);
            let php = shard
                .php_vars
                .list(name)
                .filter(|(id, _)| !has_explicit(&shard, id, name));
            pairs.extend(
                explicit
                    .chain(php)
                    .filter(|(id, _)| shard.is_live(id, now))
                    .map(|(id, v)| (Reply::Bulk(id.to_bytes()), Reply::Bulk(v.clone()))),
            );
        }
        Reply::Map(pairs)
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
                ("locks".into(), self.lock_usage.entries().to_string()),
                ("lock_bytes".into(), self.lock_usage.bytes().to_string()),
                (
                    "expired_sessions".into(),
                    stat(&self.stats.expired_sessions),
                ),
                ("expired_leases".into(), stat(&self.stats.expired_leases)),
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

/// Whether `id` has an explicit variable `name` (which shadows a PHP entry).
fn has_explicit(shard: &crate::store::Shard, id: &SessionId, name: &[u8]) -> bool {
    shard
        .sessions
        .get(id)
        .is_some_and(|s| s.vars().contains_key(name))
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
