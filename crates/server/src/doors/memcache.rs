//! The memcached door (`--listen-memcache`): memcached's text and binary
//! protocols onto sessions, for php-memcached's session handler and every
//! stock memcached client. The codecs are in `sessiond_proto::memcache`;
//! this file runs requests against the engine.
//!
//! An item is a session (value = data, exptime = timeout, CAS = version,
//! flags kept); `lock.<id>` is the session's lock: `add` takes it (try once:
//! php-memcached polls), `delete` releases it, `get` shows its holder's
//! value. Locks taken here are released if the connection closes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use sessiond_core::{Command, Error, Reply, SessionId, StoreIf, StoreReply};
use sessiond_proto::memcache::{
    self, expiry, Answer, Expiry, Hit, Keys, Meta, Op, Parsed, Protocol, Quick, Status, Store,
    StoreKind,
};
use sessiond_proto::redis::Key;

use super::{Next, SocketDoor, FLUSH_AT};
use crate::access::auth::Refused;
use crate::conn::link::{Later, Link};
use crate::conn::stream::Stream;
use crate::metrics::McStats;
use crate::shared::Shared;

struct Conn {
    link: Link,
    protocol: Option<Protocol>,
    /// Bytes of a refused (oversized) value still to discard.
    skip: usize,
    /// The vector of a get's hits, kept empty between gets so a get
    /// allocates none.
    hits: Vec<Hit>,
}

/// The most hits a connection's kept vector has room for.
const KEEP_HITS: usize = 64;

/// Serves one memcached connection to the end.
pub(crate) async fn serve(stream: Stream, shared: Arc<Shared>) {
    let mut conn = Conn {
        link: Link::new(stream, shared, 16 * 1024, crate::door::Door::Memcache),
        protocol: None,
        skip: 0,
        hits: Vec::new(),
    };
    super::serve(&mut conn).await;
}

impl SocketDoor for Conn {
    fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    /// Answers every whole request in the input buffer.
    async fn answer_buffered(&mut self) -> std::io::Result<Next> {
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.link.inbuf.len());
                self.link.inbuf.advance(n);
                self.skip -= n;
                if self.skip > 0 {
                    return Ok(Next::Continue);
                }
            }
            let Some(&first) = self.link.inbuf.first() else {
                return Ok(Next::Continue);
            };
            let protocol = *self.protocol.get_or_insert(Protocol::detect(first));
            let quickly = match protocol == Protocol::Text && self.link.authenticated() {
                true => self.quickly(),
                false => Quickly::No,
            };
            match quickly {
                Quickly::Answered => {}
                Quickly::Later(waits) => {
                    let (later, then, meta) = *waits;
                    let answer = self.finish(later, then).await?;
                    self.reply(answer, &meta);
                }
                Quickly::No => {
                    if let Some(next) = self.answer_parsed(protocol).await? {
                        return Ok(next);
                    }
                }
            }
            self.link.answered += 1;
            if self.link.out.len() >= FLUSH_AT {
                self.link.flush().await?;
            }
        }
    }
}

impl Conn {
    /// The request at the head of the buffer by the general parser:
    /// answered (None), or the connection's next step when the buffer
    /// holds no whole request (`Continue`) or the connection ends.
    async fn answer_parsed(&mut self, protocol: Protocol) -> std::io::Result<Option<Next>> {
        let parsed = match memcache::parse(&mut self.link.inbuf, protocol, &self.link.shared.limits)
        {
            Ok(None) => return Ok(Some(Next::Continue)),
            Ok(Some(p)) => p,
            Err(e) => {
                memcache::encode_frame_error(&e, &mut self.link.out);
                return Ok(Some(Next::Close));
            }
        };
        match parsed {
            Parsed::Refused {
                meta,
                status,
                message,
                skip,
            } => {
                memcache::encode(&Answer::Fail(status, message), &meta, &mut self.link.out);
                self.skip = skip;
            }
            Parsed::Request(req) if req.op == Op::Quit => {
                if protocol == Protocol::Binary {
                    memcache::encode(&Answer::Ok, &req.meta, &mut self.link.out);
                }
                return Ok(Some(Next::Close));
            }
            Parsed::Request(req) => {
                tracing::trace!(op = ?req.op, "memcached request");
                let answer = match req.op {
                    Op::SaslList | Op::SaslAuth { .. } | Op::SaslStep => self.sasl(req.op).await,
                    op if !self.link.authenticated() => self.login_first(op, protocol).await,
                    op => match self.answer_now(op, &req.meta) {
                        Ok(answer) => answer,
                        Err(Slow::Op(op)) => self.answer(op, &req.meta).await?,
                        Err(Slow::Later(later, then)) => self.finish(later, then).await?,
                    },
                };
                self.reply(answer, &req.meta);
            }
        }
        Ok(None)
    }

    /// What a get or store whose command waited answers, once it is done.
    async fn finish(&mut self, later: Later, then: Then) -> std::io::Result<Answer> {
        let result = self.link.finish_later(later).await?;
        Ok(self.answer_with(then, result))
    }

    /// Encodes `answer` into the pending replies.
    fn reply(&mut self, answer: Answer, meta: &Meta) {
        memcache::encode(&answer, meta, &mut self.link.out);
        // Kept for the next get, unless a get of many keys grew it (no
        // connection holds that room for long).
        if let Answer::Hits(mut hits) = answer {
            if hits.capacity() <= KEEP_HITS {
                hits.clear();
                self.hits = hits;
            }
        }
    }

    /// The text request at the head of the read buffer, if it is a `get`
    /// of one session key or a `set` of a session (`memcache::quick`):
    /// answered where its bytes are, without a parsed request, and
    /// consumed. The buffer is set aside meanwhile: nothing reads into it
    /// until the request is answered or left as `Later`, which holds
    /// copies.
    fn quickly(&mut self) -> Quickly {
        let mut inbuf = std::mem::take(&mut self.link.inbuf);
        let quickly = match memcache::quick(&inbuf, &self.link.shared.limits) {
            Some((request, len)) => {
                let quickly = self.answer_quick(request);
                if !matches!(quickly, Quickly::No) {
                    inbuf.advance(len);
                }
                quickly
            }
            None => Quickly::No,
        };
        self.link.inbuf = inbuf;
        quickly
    }

    fn answer_quick(&mut self, request: Quick<'_>) -> Quickly {
        tracing::trace!(?request, "memcached request");
        match request {
            Quick::Get { key } => {
                let Key::Session(id) = self.link.shared.memcache_keys.map(key) else {
                    return Quickly::No;
                };
                self.stats().cmd_get.fetch_add(1, Ordering::Relaxed);
                let cmd = Command::Item {
                    id,
                    timeout_ms: None,
                };
                // The hit written from the session (`Link::value_now`), its
                // key straight from the request.
                let lent = self.link.value_now(cmd, |lent, out| {
                    let found = match lent {
                        Ok(value) => Ok(Some((value.data, value.flags))),
                        Err(Error::NoSession(_)) => Ok(None),
                        Err(e) => Err(failure(&e)),
                    };
                    put_get(out, key, found)
                });
                let hit = match lent {
                    Ok(hit) => hit,
                    Err(cmd) => match self.link.run_now(cmd) {
                        Ok(result) => match item(result) {
                            Ok(found) => {
                                let found =
                                    found.as_ref().map(|(data, flags, _)| (&data[..], *flags));
                                put_get(&mut self.link.out, key, Ok(found))
                            }
                            Err(answer) => put_get(&mut self.link.out, key, Err(answer)),
                        },
                        Err(later) => {
                            let key = Bytes::copy_from_slice(key);
                            let then = Then::Get { key, binary: false };
                            return Quickly::Later(Box::new((later, then, Meta::text())));
                        }
                    },
                };
                match hit {
                    Some(true) => self.stats().get_hits.fetch_add(1, Ordering::Relaxed),
                    Some(false) => self.stats().get_misses.fetch_add(1, Ordering::Relaxed),
                    None => 0,
                };
                Quickly::Answered
            }
            Quick::Set {
                key,
                flags,
                exptime,
                data,
                noreply,
            } => {
                let expiry = expiry(exptime, now_unix);
                let id = match self.link.shared.memcache_keys.map(key) {
                    Key::Session(id) if expiry != Expiry::Past => id,
                    _ => return Quickly::No,
                };
                let store = Store {
                    kind: StoreKind::Set,
                    // The id is what the command needs; the key is not kept.
                    key: Bytes::new(),
                    flags,
                    exptime,
                    data: Bytes::copy_from_slice(data),
                };
                let meta = Meta {
                    quiet: noreply,
                    ..Meta::text()
                };
                match self.store_now(id, store, expiry, false) {
                    Ok(answer) => {
                        memcache::encode(&answer, &meta, &mut self.link.out);
                        Quickly::Answered
                    }
                    Err((later, then)) => Quickly::Later(Box::new((later, then, meta))),
                }
            }
        }
    }

    /// Binary SASL: `PLAIN` is the one mechanism.
    async fn sasl(&mut self, op: Op) -> Answer {
        if !self.link.shared.auth.required() {
            return Answer::Fail(
                Status::UnknownCommand,
                "SASL is off: this server has no users".into(),
            );
        }
        match op {
            Op::SaslList => Answer::Sasl("PLAIN"),
            Op::SaslAuth { mechanism, token } if mechanism.as_ref() == b"PLAIN" => {
                // authzid NUL authcid NUL password; the authzid is ignored.
                let mut parts = token.splitn(3, |&b| b == 0);
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(_), Some(user), Some(password)) => {
                        match self.link.login(Some(user), password).await {
                            Ok(_) => Answer::Sasl("Authenticated"),
                            Err(refused) => auth_failure(&refused),
                        }
                    }
                    _ => Answer::Fail(
                        Status::AuthError,
                        "a PLAIN token is authzid NUL user NUL password".into(),
                    ),
                }
            }
            Op::SaslAuth { .. } => {
                Answer::Fail(Status::AuthError, "the only SASL mechanism is PLAIN".into())
            }
            _ => Answer::Fail(Status::AuthError, "PLAIN has no further steps".into()),
        }
    }

    /// A request before logging in. The text protocol logs in as memcached
    /// does (`-Y`): a `set` of any key whose value is `<user> <password>`.
    /// Anything else is refused.
    async fn login_first(&mut self, op: Op, protocol: Protocol) -> Answer {
        match op {
            Op::Store(Store {
                kind: StoreKind::Set,
                data,
                ..
            }) if protocol == Protocol::Text => {
                let token = data.strip_suffix(b"\n").unwrap_or(&data);
                let token = token.strip_suffix(b"\r").unwrap_or(token);
                let Some(space) = token.iter().position(|&b| b == b' ') else {
                    return Answer::Fail(
                        Status::AuthError,
                        "bad authentication token format".into(),
                    );
                };
                let (user, password) = (&token[..space], &token[space + 1..]);
                match self.link.login(Some(user), password).await {
                    Ok(_) => Answer::Stored { cas: 0 },
                    Err(refused) => auth_failure(&refused),
                }
            }
            _ => Answer::Fail(Status::AuthError, "unauthenticated".into()),
        }
    }

    /// Runs one engine command on the request path (`Link::run`).
    async fn exec(&mut self, cmd: Command) -> std::io::Result<Result<Reply, Error>> {
        self.link.run(cmd).await
    }

    /// The session timeout an exptime sets: exptime 0 (memcached's "never")
    /// is the default session timeout. None when already past.
    fn timeout_of(&self, e: Expiry) -> Option<u64> {
        match e {
            Expiry::Default => Some(self.link.engine().config().default_timeout_ms),
            Expiry::InMs(ms) => Some(ms),
            Expiry::Past => None,
        }
    }

    fn stats(&self) -> &McStats {
        &self.link.tenant().memcache_stats
    }

    /// A get of one session key, or a store of a session that does not
    /// expire at once, answered without a future when the engine answers
    /// it at once (`Link::run_now`); anything else comes back.
    // What is left comes back by value: boxing it would allocate for
    // every request that takes the long way.
    #[allow(clippy::result_large_err)]
    fn answer_now(&mut self, op: Op, meta: &Meta) -> Result<Answer, Slow> {
        let binary = meta.protocol == Protocol::Binary;
        match op {
            Op::Get {
                keys: Keys::One(key),
                touch: None,
            } => {
                let Key::Session(id) = self.link.shared.memcache_keys.map(&key) else {
                    return Err(Slow::Op(Op::Get {
                        keys: Keys::One(key),
                        touch: None,
                    }));
                };
                self.stats().cmd_get.fetch_add(1, Ordering::Relaxed);
                let cmd = Command::Item {
                    id,
                    timeout_ms: None,
                };
                let then = Then::Get { key, binary };
                match self.link.run_now(cmd) {
                    Ok(result) => Ok(self.answer_with(then, result)),
                    Err(later) => Err(Slow::Later(later, then)),
                }
            }
            Op::Store(store) => {
                let expiry = expiry(store.exptime, now_unix);
                match self.link.shared.memcache_keys.map(&store.key) {
                    Key::Session(id) if expiry != Expiry::Past => self
                        .store_now(id, store, expiry, binary)
                        .map_err(|(later, then)| Slow::Later(later, then)),
                    // A lock key, or a store gone at once: the long way.
                    _ => Err(Slow::Op(Op::Store(store))),
                }
            }
            op => Err(Slow::Op(op)),
        }
    }

    /// A store of session `id` that does not expire at once, answered
    /// now when the engine answers at once.
    // What waits comes back by value, as from `answer_now`.
    #[allow(clippy::result_large_err)]
    fn store_now(
        &mut self,
        id: SessionId,
        store: Store,
        expiry: Expiry,
        binary: bool,
    ) -> Result<Answer, (Later, Then)> {
        self.stats().cmd_set.fetch_add(1, Ordering::Relaxed);
        let timeout_ms = self.timeout_of(expiry);
        let (cmd, missing) = store_command(id, store, timeout_ms, binary);
        match self.link.run_now(cmd) {
            Ok(result) => Ok(stored(result, missing)),
            Err(later) => Err((later, Then::Store { missing })),
        }
    }

    /// A get's or store's answer from its command's result.
    fn answer_with(&mut self, then: Then, result: Result<Reply, Error>) -> Answer {
        match then {
            Then::Store { missing } => stored(result, missing),
            Then::Get { key, binary } => match item(result) {
                Ok(found) => {
                    let mut hits = std::mem::take(&mut self.hits);
                    self.tally(&mut hits, key, found);
                    hits_answer(hits, binary)
                }
                Err(answer) => answer,
            },
        }
    }

    async fn answer(&mut self, op: Op, meta: &Meta) -> std::io::Result<Answer> {
        let binary = meta.protocol == Protocol::Binary;
        match op {
            Op::Get { keys, touch } => self.get(keys, touch, binary).await,
            Op::Store(store) => {
                self.stats().cmd_set.fetch_add(1, Ordering::Relaxed);
                match self.link.shared.memcache_keys.map(&store.key) {
                    Key::Session(id) => self.store(id, store, binary).await,
                    Key::Lock(id) => {
                        self.take_lock(id, store.kind, store.exptime, store.data, binary)
                            .await
                    }
                }
            }
            Op::Delete { key } => {
                let answer = match self.link.shared.memcache_keys.map(&key) {
                    Key::Session(id) => match self.exec(Command::Destroy { id }).await? {
                        Ok(_) => Answer::Deleted,
                        Err(e) => failure(&e),
                    },
                    Key::Lock(id) => {
                        match self.exec(Command::UnlockOwned { id, owner: None }).await? {
                            Ok(Reply::Int(1)) => Answer::Deleted,
                            Ok(_) => not_found(),
                            Err(e) => failure(&e),
                        }
                    }
                };
                let counter = if answer == Answer::Deleted {
                    &self.stats().delete_hits
                } else {
                    &self.stats().delete_misses
                };
                counter.fetch_add(1, Ordering::Relaxed);
                Ok(answer)
            }
            Op::Incr {
                key,
                delta,
                decr,
                initial,
            } => {
                let Key::Session(id) = self.link.shared.memcache_keys.map(&key) else {
                    return Ok(lock_key_refused());
                };
                let initial = match initial.map(|(v, e)| (v, expiry(e, now_unix))) {
                    None | Some((_, Expiry::Past)) => None,
                    Some((v, Expiry::Default)) => Some((v, None)),
                    Some((v, Expiry::InMs(ms))) => Some((v, Some(ms))),
                };
                let cmd = Command::IncrData {
                    id,
                    delta,
                    decr,
                    initial,
                };
                Ok(match self.exec(cmd).await? {
                    Ok(Reply::Counter { value, version }) => Answer::Number {
                        value,
                        cas: version,
                    },
                    Ok(other) => unexpected("incr_data", &other),
                    Err(e) => failure(&e),
                })
            }
            Op::Touch { key, exptime } => {
                self.stats().cmd_touch.fetch_add(1, Ordering::Relaxed);
                let Key::Session(id) = self.link.shared.memcache_keys.map(&key) else {
                    return Ok(lock_key_refused());
                };
                let cmd = match self.timeout_of(expiry(exptime, now_unix)) {
                    Some(ms) => Command::Timeout {
                        id,
                        timeout_ms: Some(ms),
                    },
                    None => Command::Destroy { id },
                };
                Ok(match self.exec(cmd).await? {
                    Ok(_) => Answer::Touched,
                    Err(e) => failure(&e),
                })
            }
            Op::FlushAll => Ok(match self.exec(Command::FlushAll).await? {
                Ok(_) => Answer::Ok,
                Err(e) => failure(&e),
            }),
            Op::Version => Ok(Answer::Version(version())),
            Op::Stats { group } => Ok(match group.as_deref() {
                None => Answer::Stats(self.general_stats()),
                Some(b"settings" | b"items" | b"slabs" | b"sizes" | b"conns") => {
                    Answer::Stats(Vec::new())
                }
                Some(_) => Answer::Fail(Status::UnknownCommand, String::new()),
            }),
            Op::Verbosity | Op::Noop | Op::Quit => Ok(Answer::Ok),
            // Answered before this, in `sasl`.
            Op::SaslList | Op::SaslAuth { .. } | Op::SaslStep => {
                Ok(Answer::Fail(Status::UnknownCommand, String::new()))
            }
        }
    }

    async fn get(
        &mut self,
        keys: Keys,
        touch: Option<i64>,
        binary: bool,
    ) -> std::io::Result<Answer> {
        let mut hits = std::mem::take(&mut self.hits);
        hits.reserve(keys.len());
        for key in keys {
            self.stats().cmd_get.fetch_add(1, Ordering::Relaxed);
            if touch.is_some() {
                self.stats().cmd_touch.fetch_add(1, Ordering::Relaxed);
            }
            let found = match self.link.shared.memcache_keys.map(&key) {
                Key::Session(id) => self.get_session(id, touch).await?,
                Key::Lock(id) => match self.exec(Command::LockOwner { id }).await? {
                    Ok(Reply::Bulk(owner)) => Ok(Some((owner, 0, 0))),
                    // Nil: no holder.
                    Ok(_) => Ok(None),
                    Err(e) => Err(failure(&e)),
                },
            };
            match found {
                Ok(found) => self.tally(&mut hits, key, found),
                Err(answer) => return Ok(answer),
            }
        }
        Ok(hits_answer(hits, binary))
    }

    /// Counts a key's hit or miss, and keeps the hit.
    fn tally(&self, hits: &mut Vec<Hit>, key: Bytes, found: Option<(Bytes, u32, u64)>) {
        match found {
            Some((data, flags, cas)) => {
                self.stats().get_hits.fetch_add(1, Ordering::Relaxed);
                hits.push(Hit {
                    key,
                    flags,
                    cas,
                    data,
                });
            }
            None => {
                self.stats().get_misses.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A session's data, flags and version, or None if it does not exist.
    async fn get_session(
        &mut self,
        id: SessionId,
        touch: Option<i64>,
    ) -> std::io::Result<Result<Option<(Bytes, u32, u64)>, Answer>> {
        let timeout_ms = match touch.map(|e| expiry(e, now_unix)) {
            None => None,
            Some(e @ (Expiry::Default | Expiry::InMs(_))) => self.timeout_of(e),
            Some(Expiry::Past) => {
                return Ok(match self.exec(Command::Destroy { id }).await? {
                    Ok(_) | Err(Error::NoSession(_)) => Ok(None),
                    Err(e) => Err(failure(&e)),
                });
            }
        };
        Ok(item(self.exec(Command::Item { id, timeout_ms }).await?))
    }

    async fn store(
        &mut self,
        id: SessionId,
        store: Store,
        binary: bool,
    ) -> std::io::Result<Answer> {
        let expiry = expiry(store.exptime, now_unix);
        let timeout_ms = self.timeout_of(expiry);
        let (cmd, missing) = store_command(id.clone(), store, timeout_ms, binary);
        let answer = stored(self.exec(cmd).await?, missing);
        if expiry == Expiry::Past && matches!(answer, Answer::Stored { .. }) {
            // Stored, and already past its time: gone at once.
            if let Err(e) = self.exec(Command::Destroy { id }).await? {
                return Ok(failure(&e));
            }
        }
        Ok(answer)
    }

    /// `add lock.<id> <value>`: take the session's lock, naming the holder
    /// by the value; `set` does the same (a held lock is never overwritten).
    async fn take_lock(
        &mut self,
        id: SessionId,
        kind: StoreKind,
        exptime: i64,
        owner: Bytes,
        binary: bool,
    ) -> std::io::Result<Answer> {
        if !matches!(kind, StoreKind::Add | StoreKind::Set) {
            return Ok(Answer::Fail(Status::NotStored, String::new()));
        }
        // exptime 0 (memcached's "never"): no expiry, held until released
        // or the connection closes; a lease over max_lease_ms is capped by
        // the engine. A held lock is waited for (`door_lock_wait_ms`).
        let lease_ms = match expiry(exptime, now_unix) {
            Expiry::Default => None,
            Expiry::InMs(ms) => Some(ms),
            Expiry::Past => return Ok(Answer::Fail(Status::NotStored, String::new())),
        };
        let cmd = Command::LockOwned {
            id,
            owner,
            lease_ms,
            wait_ms: None,
        };
        Ok(match self.exec(cmd).await? {
            Ok(Reply::Key(key)) => Answer::Stored { cas: key },
            Ok(other) => unexpected("lock_owned", &other),
            Err(Error::Locked { .. }) if binary => Answer::Fail(Status::Exists, String::new()),
            Err(Error::Locked { .. }) => Answer::Fail(Status::NotStored, String::new()),
            Err(e) => failure(&e),
        })
    }

    fn general_stats(&self) -> Vec<(String, String)> {
        let s = &self.link.shared;
        let st = self.stats();
        let now = now_unix();
        let uptime = s.started.elapsed().as_secs();
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        vec![
            ("pid".into(), std::process::id().to_string()),
            ("uptime".into(), uptime.to_string()),
            ("time".into(), now.to_string()),
            ("version".into(), version()),
            ("pointer_size".into(), (usize::BITS).to_string()),
            (
                "curr_connections".into(),
                s.connected.load(Ordering::Relaxed).to_string(),
            ),
            ("total_connections".into(), s.accepted_total().to_string()),
            ("cmd_get".into(), n(&st.cmd_get)),
            ("cmd_set".into(), n(&st.cmd_set)),
            ("cmd_touch".into(), n(&st.cmd_touch)),
            ("get_hits".into(), n(&st.get_hits)),
            ("get_misses".into(), n(&st.get_misses)),
            ("delete_hits".into(), n(&st.delete_hits)),
            ("delete_misses".into(), n(&st.delete_misses)),
            (
                "curr_items".into(),
                self.link.engine().session_count().to_string(),
            ),
        ]
    }
}

/// What `version` reports: a memcached version clients can parse, then ours.
fn version() -> String {
    format!("1.6.0 sessiond-{}", env!("CARGO_PKG_VERSION"))
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A failed login, in memcached's words where it has them.
fn auth_failure(refused: &Refused) -> Answer {
    let message = match refused {
        Refused::Wrong => "authentication failure".into(),
        other => other.message(),
    };
    Answer::Fail(Status::AuthError, message)
}

/// A store's engine command on `id` (its key's session), and the status
/// its unmet condition answers.
fn store_command(
    id: SessionId,
    store: Store,
    timeout_ms: Option<u64>,
    binary: bool,
) -> (Command, Status) {
    let Store {
        kind, flags, data, ..
    } = store;
    match kind {
        StoreKind::Append | StoreKind::Prepend => (
            Command::Append {
                id,
                data,
                front: kind == StoreKind::Prepend,
            },
            Status::NotStored,
        ),
        _ => {
            let (condition, missing) = match kind {
                StoreKind::Add if binary => (StoreIf::Absent, Status::Exists),
                StoreKind::Add => (StoreIf::Absent, Status::NotStored),
                StoreKind::Replace if binary => (StoreIf::Present, Status::NotFound),
                StoreKind::Replace => (StoreIf::Present, Status::NotStored),
                StoreKind::Cas(v) => (StoreIf::Version(v), Status::Exists),
                _ => (StoreIf::Always, Status::NotStored),
            };
            let cmd = Command::Store {
                id,
                data,
                timeout_ms,
                flags: Some(flags),
                condition,
                reply: StoreReply::Version,
                key_form: 0,
            };
            (cmd, missing)
        }
    }
}

/// A get's answer: its hits; for the binary protocol, a miss is
/// NOT_FOUND.
fn hits_answer(hits: Vec<Hit>, binary: bool) -> Answer {
    if binary && hits.is_empty() {
        return not_found();
    }
    Answer::Hits(hits)
}

/// A store's answer.
fn stored(result: Result<Reply, Error>, missing: Status) -> Answer {
    match result {
        Ok(Reply::Version(cas)) => Answer::Stored { cas },
        // Nil: the condition was not met.
        Ok(_) => Answer::Fail(missing, String::new()),
        Err(e) => failure(&e),
    }
}

/// A session's data, flags and version from an `Item` command's result;
/// None when there is no such session.
fn item(result: Result<Reply, Error>) -> Result<Option<(Bytes, u32, u64)>, Answer> {
    match result {
        Ok(Reply::Item {
            data,
            flags,
            version,
        }) => Ok(Some((data, flags, version))),
        Ok(other) => Err(unexpected("item", &other)),
        Err(Error::NoSession(_)) => Ok(None),
        Err(e) => Err(failure(&e)),
    }
}

/// A text `get <key>`'s reply, as `encode` writes `Answer::Hits`: the
/// value found (data, flags) and `END`, or `END` alone; an error as
/// `encode` writes it. Whether it was a hit, when it was not an error.
fn put_get(
    out: &mut BytesMut,
    key: &[u8],
    found: Result<Option<(&[u8], u32)>, Answer>,
) -> Option<bool> {
    match found {
        Ok(Some((data, flags))) => {
            memcache::put_hit(out, key, flags, data, None);
            out.put_slice(b"END\r\n");
            Some(true)
        }
        Ok(None) => {
            out.put_slice(b"END\r\n");
            Some(false)
        }
        Err(answer) => {
            memcache::encode(&answer, &Meta::text(), out);
            None
        }
    }
}

/// What [`Conn::quickly`] did with the request at the head of the buffer.
enum Quickly {
    /// Not one it answers: the general parser reads it.
    No,
    /// Answered and consumed.
    Answered,
    /// Consumed; its command waits (for a lock, or a cluster's database)
    /// or runs the long way: its result, then `then`, replied to as `meta`
    /// says. Boxed: the command is large, and moving it with every
    /// answered request (twice on the way out of `quickly`) cost more than
    /// this allocation on the rare request that waits.
    Later(Box<(Later, Then, Meta)>),
}

/// What a request the engine did not answer at once (`answer_now`) leaves.
enum Slow {
    /// Anything but a plain get or store: the long way, `answer`.
    Op(Op),
    /// A get or store whose command waits or runs the long way: its
    /// result, then `then`.
    Later(Later, Then),
}

/// What a get or store does with its command's result.
enum Then {
    /// A get of one key.
    Get { key: Bytes, binary: bool },
    /// A store: `missing` answers an unmet condition.
    Store { missing: Status },
}

fn not_found() -> Answer {
    Answer::Fail(Status::NotFound, String::new())
}

fn lock_key_refused() -> Answer {
    Answer::Fail(
        Status::Invalid,
        "a lock.<id> key takes only add, get and delete".into(),
    )
}

/// A reply of a shape the command never answers: a bug, said loudly (as a
/// server error, never as a miss).
fn unexpected(command: &str, reply: &Reply) -> Answer {
    tracing::error!(
        command,
        ?reply,
        "the engine answered a shape the memcached door does not know"
    );
    Answer::Fail(
        Status::ServerError,
        format!("internal error: the engine answered {command} unexpectedly (logged)"),
    )
}

/// An engine error in memcached's terms.
fn failure(e: &Error) -> Answer {
    let (status, message) = Status::of(e);
    Answer::Fail(status, message)
}
