//! Commands on one session's life and contents.

use bytes::Bytes;

use super::{check_random_len, strict_refusal, Chosen, Engine};
use crate::command::{ExpireIf, StoreIf, StoreReply};
use crate::error::Error;
use crate::id::{SessionId, DEFAULT_GENERATED_LEN, MIN_GENERATED_LEN};
#[cfg(test)]
pub(crate) use crate::reply::vars_reply;
use crate::reply::Reply;
use crate::session::Session;
use crate::store::Shard;

impl Engine {
    pub(super) fn create(
        &self,
        id: SessionId,
        class: Option<Bytes>,
        data: Option<Bytes>,
        timeout_ms: Option<u64>,
        now: u64,
    ) -> Result<Reply, Error> {
        self.check_id(&id)?;
        self.check_class(class.as_deref())?;
        let timeout = self.timeout_or_default(timeout_ms)?;
        let mut shard = self.store.lock(&id);
        if shard.live(&id, now).is_some() {
            return Err(Error::Exists(id));
        }
        self.may_create(Chosen::ByClient)?;
        self.room_for_bytes(data.as_ref().map_or(0, |d| d.len()))?;
        let session = self.new_session(class, data, timeout, now);
        shard.insert(id, session);
        Ok(Reply::Ok)
    }

    /// For `OPEN … CREATE`: a session with default settings unless one exists.
    pub(super) fn create_if_missing(&self, id: &SessionId, now: u64) -> Result<(), Error> {
        self.check_id(id)?;
        let mut shard = self.store.lock(id);
        if shard.live(id, now).is_none() {
            self.may_create(Chosen::ByClient)?;
            let session = self.new_session(None, None, self.config.default_timeout_ms, now);
            shard.insert(id.clone(), session);
        }
        Ok(())
    }

    pub(super) fn uniq(
        &self,
        len: Option<usize>,
        class: Option<Bytes>,
        data: Option<Bytes>,
        timeout_ms: Option<u64>,
        now: u64,
    ) -> Result<Reply, Error> {
        let len = len.unwrap_or(DEFAULT_GENERATED_LEN);
        check_random_len(len)?;
        if len < MIN_GENERATED_LEN {
            return Err(Error::InvalidArgument(format!(
                "a generated id needs at least {MIN_GENERATED_LEN} characters (128 bits)"
            )));
        }
        if len > self.config.max_id_len {
            return Err(Error::LimitExceeded {
                what: "the session id length",
                got: len as u64,
                limit: self.config.max_id_len as u64,
            });
        }
        self.check_class(class.as_deref())?;
        let timeout = self.timeout_or_default(timeout_ms)?;
        self.may_create(Chosen::ByServer)?;
        self.room_for_bytes(data.as_ref().map_or(0, |d| d.len()))?;
        loop {
            let id = SessionId::generate(len)?;
            let mut shard = self.store.lock(&id);
            // With 128+ random bits a clash is all but impossible; if one
            // happens, draw again rather than fail.
            if shard.live(&id, now).is_some() {
                continue;
            }
            let session = self.new_session(class, data, timeout, now);
            shard.insert(id.clone(), session);
            return Ok(Reply::Bulk(id.to_bytes()));
        }
    }

    pub(super) fn destroy(&self, id: &SessionId, now: u64) -> Result<Reply, Error> {
        let mut shard = self.store.lock(id);
        if shard.live(id, now).is_none() {
            return Err(Error::NoSession(id.clone()));
        }
        shard.destroy(id);
        Ok(Reply::Ok)
    }

    pub(super) fn destroy_if(&self, id: &SessionId, data: &[u8], now: u64) -> Reply {
        let mut shard = self.store.lock(id);
        match shard.live(id, now) {
            Some(s) if s.data == data => {
                shard.destroy(id);
                Reply::Int(1)
            }
            _ => Reply::Int(0),
        }
    }

    pub(super) fn take(&self, id: &SessionId, now: u64) -> Result<Reply, Error> {
        let mut shard = self.store.lock(id);
        let Some(s) = shard.live(id, now) else {
            return Err(Error::NoSession(id.clone()));
        };
        let data = s.data.clone();
        shard.destroy(id);
        Ok(Reply::Bulk(data))
    }

    pub(super) fn flush_all(&self) -> Result<Reply, Error> {
        if !self.config.allow_flush {
            return Err(Error::InvalidArgument(
                "flushing every session is disabled: it would log out every user. \
                 Destroy sessions one by one, or set allow_flush = true"
                    .into(),
            ));
        }
        let mut gone = 0i64;
        for i in 0..self.store.len() {
            let mut shard = self.store.lock_at(i);
            let ids: Vec<SessionId> = shard.sessions.keys().cloned().collect();
            for id in ids {
                if shard.destroy(&id).is_some() {
                    gone += 1;
                }
            }
        }
        Ok(Reply::Int(gone))
    }

    pub(super) fn exists(&self, id: &SessionId, now: u64) -> Reply {
        Reply::Int(i64::from(self.store.lock(id).live(id, now).is_some()))
    }

    /// The session `id` if alive, else `NoSession`.
    fn alive<'a>(shard: &'a mut Shard, id: &SessionId, now: u64) -> Result<&'a mut Session, Error> {
        shard
            .live(id, now)
            .ok_or_else(|| Error::NoSession(id.clone()))
    }

    /// [`Self::alive`], marked read.
    fn alive_touched<'a>(
        shard: &'a mut Shard,
        id: &SessionId,
        now: u64,
    ) -> Result<&'a mut Session, Error> {
        shard
            .live_touched(id, now)
            .ok_or_else(|| Error::NoSession(id.clone()))
    }

    pub(super) fn get(
        &self,
        id: &SessionId,
        name: &[u8],
        default: Option<Bytes>,
        now: u64,
    ) -> Result<Reply, Error> {
        let mut shard = self.store.lock(id);
        let session = Self::alive_touched(&mut shard, id, now)?;
        Ok(match session.var(name) {
            Some(v) => Reply::Bulk(v.clone()),
            None => default.map_or(Reply::Nil, Reply::Bulk),
        })
    }

    /// `SET` and `SETALL`: every pair or none (they run under one shard lock
    /// and nothing in between can fail).
    pub(super) fn set_vars(
        &self,
        id: &SessionId,
        pairs: Vec<(Bytes, Bytes)>,
        now: u64,
    ) -> Result<Reply, Error> {
        let mut shard = self.store.lock(id);
        let session = Self::alive(&mut shard, id, now)?;
        self.room_for_vars(session, pairs.iter().map(|(n, _)| n))?;
        self.room_for_bytes(vars_growth(session, &pairs))?;
        shard.write_vars(id, pairs, now, &self.next_version);
        Ok(Reply::Ok)
    }

    pub(super) fn del(&self, id: &SessionId, name: &[u8], now: u64) -> Result<Reply, Error> {
        let mut shard = self.store.lock(id);
        Self::alive(&mut shard, id, now)?;
        let existed = shard.write_del_var(id, name, now, &self.next_version);
        Ok(Reply::Int(i64::from(existed)))
    }

    pub(super) fn get_all(&self, id: &SessionId, now: u64) -> Result<Reply, Error> {
        let mut shard = self.store.lock(id);
        Ok(all_vars_reply(Self::alive_touched(&mut shard, id, now)?))
    }

    pub(super) fn get_data(&self, id: &SessionId, touch: bool, now: u64) -> Result<Reply, Error> {
        let mut shard = self.store.lock(id);
        shard
            .with_live(id, now, touch, |s| Reply::Bulk(s.data.clone()))
            .ok_or_else(|| Error::NoSession(id.clone()))
    }

    /// The read of [`crate::Command::GetData`] and of [`crate::Command::Item`] without
    /// a timeout, with the same session, expiry and touch as through
    /// [`Engine::execute_at`], but the value lent to `lend` under its
    /// shard's lock instead of cloned into a [`Reply`]: a GET's reply is
    /// written straight from the session, without the two atomic updates
    /// of a clone's reference count and its drop. `lend` should be quick
    /// (it holds the shard): write the value, nothing more.
    pub fn read_lent<R>(
        &self,
        id: &SessionId,
        touch: bool,
        now: u64,
        lend: impl FnOnce(Result<Lent<'_>, Error>) -> R,
    ) -> R {
        let mut shard = self.store.lock(id);
        let lent = shard.lend_live(id, now, touch, lend, |lend, s| {
            lend(Ok(Lent {
                data: &s.data,
                flags: s.flags,
                version: s.version,
            }))
        });
        match lent {
            Ok(r) => r,
            Err(lend) => lend(Err(Error::NoSession(id.clone()))),
        }
    }

    pub(super) fn set_data(&self, id: &SessionId, data: Bytes, now: u64) -> Result<Reply, Error> {
        let mut shard = self.store.lock(id);
        let old = Self::alive(&mut shard, id, now)?.data.len();
        self.room_for_bytes(data.len().saturating_sub(old))?;
        shard.write_data(id, data, now, &self.next_version);
        Ok(Reply::Ok)
    }

    pub(super) fn store(
        &self,
        id: SessionId,
        new: Stored,
        condition: StoreIf,
        reply: StoreReply,
        now: u64,
    ) -> Result<Reply, Error> {
        self.check_id(&id)?;
        let timeout = new
            .timeout_ms
            .map(|t| self.timeout_or_default(Some(t)))
            .transpose()?;
        let mut shard = self.store.lock(&id);
        let old = shard.with_live(&id, now, false, |s| (s.data.clone(), s.version));
        let stored = match (condition, &old) {
            (StoreIf::Always, _) => true,
            (StoreIf::Absent, old) => old.is_none(),
            (StoreIf::Present, old) => old.is_some(),
            (StoreIf::Version(_), None) => return Err(Error::NoSession(id)),
            (StoreIf::Version(v), Some((_, version))) => v == *version,
        };
        // The version after the write, when the write says it.
        let mut written = None;
        if stored {
            let growth = new
                .data
                .len()
                .saturating_sub(old.as_ref().map_or(0, |(d, _)| d.len()));
            self.room_for_bytes(growth)?;
            if old.is_some() {
                written = Some(shard.write_stored(
                    &id,
                    new.data,
                    timeout,
                    new.flags,
                    now,
                    &self.next_version,
                ));
            } else {
                self.may_create(Chosen::ByClient)?;
                let timeout = timeout.unwrap_or(self.config.default_timeout_ms);
                let mut session = self.new_session(None, Some(new.data), timeout, now);
                session.flags = new.flags.unwrap_or(0);
                session.key_form = new.key_form;
                shard.insert(id.clone(), session);
            }
        }
        Ok(match (reply, stored) {
            (StoreReply::Old, _) => old.map_or(Reply::Nil, |(data, _)| Reply::Bulk(data)),
            (_, false) => Reply::Nil,
            (StoreReply::Ok, true) => Reply::Ok,
            (StoreReply::Version, true) => {
                Reply::Version(written.unwrap_or_else(|| version_of(&shard, &id)))
            }
        })
    }

    pub(super) fn append(
        &self,
        id: &SessionId,
        data: Bytes,
        front: bool,
        now: u64,
    ) -> Result<Reply, Error> {
        let mut shard = self.store.lock(id);
        let Some(s) = shard.live(id, now) else {
            return Ok(Reply::Nil);
        };
        let len = s.data.len().saturating_add(data.len());
        if len > self.config.max_data_len {
            return Err(Error::LimitExceeded {
                what: "the data size in bytes",
                got: len as u64,
                limit: self.config.max_data_len as u64,
            });
        }
        self.room_for_bytes(data.len())?;
        let mut joined = Vec::with_capacity(len);
        if front {
            joined.extend_from_slice(&data);
            joined.extend_from_slice(&s.data);
        } else {
            joined.extend_from_slice(&s.data);
            joined.extend_from_slice(&data);
        }
        shard.write_data(id, Bytes::from(joined), now, &self.next_version);
        Ok(Reply::Version(version_of(&shard, id)))
    }

    pub(super) fn item(
        &self,
        id: &SessionId,
        timeout_ms: Option<u64>,
        now: u64,
    ) -> Result<Reply, Error> {
        let timeout = timeout_ms
            .map(|t| self.timeout_or_default(Some(t)))
            .transpose()?;
        let mut shard = self.store.lock(id);
        if let Some(t) = timeout {
            Self::alive(&mut shard, id, now)?;
            shard.write_timeout(id, t, now);
        }
        shard
            .with_live(id, now, false, |s| Reply::Item {
                data: s.data.clone(),
                flags: s.flags,
                version: s.version,
            })
            .ok_or_else(|| Error::NoSession(id.clone()))
    }

    pub(super) fn incr_data(
        &self,
        id: SessionId,
        delta: u64,
        decr: bool,
        initial: Option<(u64, Option<u64>)>,
        now: u64,
    ) -> Result<Reply, Error> {
        self.check_id(&id)?;
        let mut shard = self.store.lock(&id);
        let Some(s) = shard.live(&id, now) else {
            let Some((value, timeout_ms)) = initial else {
                return Err(Error::NoSession(id));
            };
            let timeout = self.timeout_or_default(timeout_ms)?;
            self.may_create(Chosen::ByClient)?;
            let text = Bytes::from(value.to_string());
            let session = self.new_session(None, Some(text), timeout, now);
            shard.insert(id.clone(), session);
            return Ok(Reply::Counter {
                value,
                version: version_of(&shard, &id),
            });
        };
        let old_len = s.data.len();
        let current = parse_counter(&s.data).ok_or_else(|| Error::NotNumeric(id.clone()))?;
        let value = if decr {
            current.saturating_sub(delta)
        } else {
            current.wrapping_add(delta)
        };
        let text = value.to_string();
        // Like memcached, a shorter number is padded with spaces to the old
        // length (memcached rewrites the item in place).
        let stored = format!("{text:<old_len$}");
        shard.write_data(&id, Bytes::from(stored), now, &self.next_version);
        Ok(Reply::Counter {
            value,
            version: version_of(&shard, &id),
        })
    }

    pub(super) fn inc(
        &self,
        id: &SessionId,
        name: Bytes,
        by: i64,
        now: u64,
    ) -> Result<Reply, Error> {
        let mut shard = self.store.lock(id);
        let session = Self::alive(&mut shard, id, now)?;
        self.room_for_vars(session, std::iter::once(&name))?;
        let current = match session.vars().get(&name) {
            None => 0,
            Some(v) => parse_i64(v).ok_or_else(|| Error::NotInteger {
                id: id.clone(),
                name: String::from_utf8_lossy(&name).into_owned(),
            })?,
        };
        let sum = current.checked_add(by).ok_or_else(|| Error::Overflow {
            id: id.clone(),
            name: String::from_utf8_lossy(&name).into_owned(),
        })?;
        shard.write_vars(
            id,
            vec![(name, Bytes::from(sum.to_string()))],
            now,
            &self.next_version,
        );
        Ok(Reply::Int(sum))
    }

    pub(super) fn timeout(
        &self,
        id: &SessionId,
        timeout_ms: Option<u64>,
        now: u64,
    ) -> Result<Reply, Error> {
        let new = timeout_ms
            .map(|t| self.timeout_or_default(Some(t)))
            .transpose()?;
        let mut shard = self.store.lock(id);
        let session = Self::alive(&mut shard, id, now)?;
        match new {
            None => Ok(Reply::Int(secs(session.timeout_ms))),
            Some(t) => {
                // The new timeout runs from now.
                shard.write_timeout(id, t, now);
                Ok(Reply::Ok)
            }
        }
    }

    pub(super) fn expire(
        &self,
        id: &SessionId,
        timeout_ms: Option<u64>,
        when: ExpireIf,
        now: u64,
    ) -> Result<Reply, Error> {
        let new = match timeout_ms {
            None => crate::NEVER,
            Some(0) => 0,
            Some(t) => self.timeout_or_default(Some(t))?,
        };
        let mut shard = self.store.lock(id);
        let session = Self::alive(&mut shard, id, now)?;
        let persistent = session.timeout_ms == crate::NEVER;
        // A key without expiry has an infinite deadline, as in Redis.
        let current = session.deadline_ms();
        let target = now.saturating_add(new);
        let applies = match when {
            ExpireIf::Always => true,
            ExpireIf::NoExpiry => persistent,
            ExpireIf::HasExpiry => !persistent,
            ExpireIf::Later => !persistent && target > current,
            ExpireIf::Sooner => persistent || target < current,
            ExpireIf::SoonerWithExpiry => !persistent && target < current,
        };
        if !applies {
            return Ok(Reply::Int(0));
        }
        if new == 0 {
            // A deadline already past: gone, as Redis deletes the key.
            shard.destroy(id);
        } else {
            shard.write_timeout(id, new, now);
        }
        Ok(Reply::Int(1))
    }

    pub(super) fn incr_by(
        &self,
        id: SessionId,
        by: i64,
        key_form: u8,
        now: u64,
    ) -> Result<Reply, Error> {
        self.update_number(id, key_form, now, |data| {
            let current = data.map_or(Some(0), redis_i64).ok_or(Error::NotAnInteger)?;
            let value = current.checked_add(by).ok_or(Error::IncrOverflow)?;
            Ok((Reply::Int(value), Bytes::from(value.to_string())))
        })
    }

    pub(super) fn incr_by_float(
        &self,
        id: SessionId,
        by: &[u8],
        key_form: u8,
        now: u64,
    ) -> Result<Reply, Error> {
        let by = redis_f64(by).ok_or(Error::NotAFloat)?;
        self.update_number(id, key_form, now, |data| {
            let current = data.map_or(Some(0.0), redis_f64).ok_or(Error::NotAFloat)?;
            let value = current + by;
            if !value.is_finite() {
                return Err(Error::NotFinite);
            }
            let text = Bytes::from(float_text(value));
            Ok((Reply::Bulk(text.clone()), text))
        })
    }

    /// Redis's INCR family: `next` reads the session's data (None: no
    /// session) and gives the reply and the new data, which replaces the
    /// old (keeping the timeout) or makes a session without expiry.
    fn update_number(
        &self,
        id: SessionId,
        key_form: u8,
        now: u64,
        next: impl FnOnce(Option<&[u8]>) -> Result<(Reply, Bytes), Error>,
    ) -> Result<Reply, Error> {
        self.check_id(&id)?;
        let mut shard = self.store.lock(&id);
        let old = shard.live(&id, now).map(|s| s.data.clone());
        let (reply, text) = next(old.as_deref())?;
        match old {
            Some(old) => {
                self.room_for_bytes(text.len().saturating_sub(old.len()))?;
                shard.write_data(&id, text, now, &self.next_version);
            }
            None => {
                self.may_create(Chosen::ByClient)?;
                let mut session = self.new_session(None, Some(text), crate::NEVER, now);
                session.key_form = key_form;
                shard.insert(id, session);
            }
        }
        Ok(reply)
    }

    pub(super) fn ttl(&self, id: &SessionId, now: u64) -> Result<Reply, Error> {
        let mut shard = self.store.lock(id);
        let session = Self::alive(&mut shard, id, now)?;
        if session.timeout_ms == crate::NEVER {
            return Ok(Reply::Int(-1));
        }
        // Rounded to the nearest second, as Redis's TTL does.
        Ok(Reply::Int(secs(session.ttl_ms(now).saturating_add(500))))
    }

    pub(super) fn pttl(&self, id: &SessionId, now: u64) -> Result<Reply, Error> {
        let mut shard = self.store.lock(id);
        let session = Self::alive(&mut shard, id, now)?;
        if session.timeout_ms == crate::NEVER {
            return Ok(Reply::Int(-1));
        }
        Ok(Reply::Int(
            i64::try_from(session.ttl_ms(now)).unwrap_or(i64::MAX),
        ))
    }

    pub(super) fn touch(&self, id: &SessionId, now: u64) -> Result<Reply, Error> {
        let mut shard = self.store.lock(id);
        Self::alive_touched(&mut shard, id, now)?;
        Ok(Reply::Ok)
    }

    /// Renames `id` to `new_id` (or a fresh random id) in one step: data,
    /// variables, expiry and lock move; the old id is gone at once.
    pub(super) fn regenerate(
        &self,
        id: &SessionId,
        new_id: Option<SessionId>,
        now: u64,
    ) -> Result<Reply, Error> {
        let new_id = match new_id {
            Some(n) => {
                self.check_id(&n)?;
                if self.config.strict_ids {
                    return Err(strict_refusal());
                }
                n
            }
            None => SessionId::generate(DEFAULT_GENERATED_LEN)?,
        };
        let (a, b) = (self.store.index_of(id), self.store.index_of(&new_id));
        let version = self.version();
        if a == b {
            let mut shard = self.store.lock_at(a);
            move_session(&mut shard, None, id, &new_id, now, version)?;
        } else {
            // Two shards are always locked in index order, so two renames in
            // opposite directions cannot deadlock.
            let (mut from, mut to);
            if a < b {
                from = self.store.lock_at(a);
                to = self.store.lock_at(b);
            } else {
                to = self.store.lock_at(b);
                from = self.store.lock_at(a);
            }
            move_session(&mut from, Some(&mut to), id, &new_id, now, version)?;
        }
        Ok(Reply::Bulk(new_id.to_bytes()))
    }
}

/// Whole seconds of a millisecond count, as a protocol integer.
pub(super) fn secs(ms: u64) -> i64 {
    i64::try_from(ms / 1000).unwrap_or(i64::MAX)
}

/// Explicit variables and the PHP entries they do not shadow.
fn all_vars_reply(session: &Session) -> Reply {
    Reply::Map(
        session
            .all_vars()
            .into_iter()
            .map(|(k, v)| (Reply::Bulk(k), Reply::Bulk(v)))
            .collect(),
    )
}

/// A strict decimal integer: optional '-', digits, nothing else.
fn parse_i64(v: &[u8]) -> Option<i64> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Moves session `id` with its lock from `from` to `to` (or within `from`)
/// under the name `new_id`.
fn move_session(
    from: &mut Shard,
    to: Option<&mut Shard>,
    id: &SessionId,
    new_id: &SessionId,
    now: u64,
    version: u64,
) -> Result<(), Error> {
    if from.live(id, now).is_none() {
        return Err(Error::NoSession(id.clone()));
    }
    let mut to = to;
    let taken = match to.as_deref_mut() {
        Some(t) => t.live(new_id, now).is_some(),
        None => from.live(new_id, now).is_some(),
    };
    if taken {
        return Err(Error::Exists(new_id.clone()));
    }
    let Some(mut session) = from.take(id) else {
        return Err(Error::NoSession(id.clone()));
    };
    session.accessed_ms = now;
    session.version = version;
    let lock = from.locks.remove(id);
    let target = match to {
        Some(t) => t,
        None => from,
    };
    if let Some(mut lock) = lock {
        lock.rename(id, new_id);
        for h in &lock.holders {
            target.leases.push(std::cmp::Reverse((
                h.lease_deadline_ms,
                h.key,
                new_id.clone(),
            )));
        }
        target.locks.insert(new_id.clone(), lock);
    }
    // Logged as Put new, then Remove old: a crash between the two records
    // leaves both names rather than neither.
    target.insert(new_id.clone(), session);
    target.log_removed(id);
    Ok(())
}

/// What `Command::Store` writes.
pub(super) struct Stored {
    pub(super) data: Bytes,
    pub(super) timeout_ms: Option<u64>,
    pub(super) flags: Option<u32>,
    pub(super) key_form: u8,
}

/// A session's version as a reply integer (0 if it is gone).
fn version_of(shard: &Shard, id: &SessionId) -> u64 {
    shard.sessions.get(id).map_or(0, |s| s.version)
}

/// A signed 64-bit decimal as Redis reads one: an optional `-`, digits,
/// no spaces, no `+`, no leading zeros.
fn redis_i64(data: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(data).ok()?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    canonical.then(|| text.parse().ok()).flatten()
}

/// A number as Redis's INCRBYFLOAT reads one: decimal (or exponent) text
/// without spaces, finite.
fn redis_f64(data: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(data).ok()?;
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    plain
        .then(|| text.parse::<f64>().ok())
        .flatten()
        .filter(|v| v.is_finite())
}

/// A float as INCRBYFLOAT shows it: plain decimal, no exponent, trailing
/// zeros trimmed, to 15 significant digits (Redis computes in long double
/// and shows 17; 15 digits of a double round off the same binary noise,
/// so `0.1 + 0.2` is `0.3` here as there).
fn float_text(v: f64) -> String {
    let magnitude = if v == 0.0 {
        0
    } else {
        v.abs().log10().floor() as i32
    };
    let decimals = usize::try_from((14 - magnitude).max(0)).unwrap_or(0);
    let mut text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.truncate(text.trim_end_matches('0').len());
        text.truncate(text.trim_end_matches('.').len());
    }
    if text == "-0" {
        text = "0".into();
    }
    text
}

/// An unsigned decimal counter as memcached reads one: digits, then
/// nothing but whitespace (the padding a shorter `decr` result leaves).
fn parse_counter(data: &[u8]) -> Option<u64> {
    let end = data
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let digits = &data[..end];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// How many bytes writing `pairs` adds to `session` (names and values in,
/// the values they replace out), for the byte quota.
pub(super) fn vars_growth(session: &Session, pairs: &[(Bytes, Bytes)]) -> usize {
    let added: usize = pairs.iter().map(|(n, v)| n.len() + v.len()).sum();
    let replaced: usize = pairs
        .iter()
        .filter_map(|(n, _)| session.vars().get(n).map(|old| n.len() + old.len()))
        .sum();
    added.saturating_sub(replaced)
}

/// A session's stored value as [`Engine::read_lent`] lends it: what a
/// [`Reply::Item`] holds, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Lent<'a> {
    /// The session's data.
    pub data: &'a [u8],
    /// Its memcached flags.
    pub flags: u32,
    /// Its version (memcached's CAS).
    pub version: u64,
}
