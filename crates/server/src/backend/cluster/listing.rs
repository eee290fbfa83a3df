//! Commands that look across sessions, on the database: COUNT, LIST, SCAN,
//! Redis `KEYS`/`SCAN`, FIND, LISTVAR and their pages, and FLUSHALL.
//!
//! The rows are walked in their scan order, `(place, id)` (`place` is a
//! keyed hash of the id every node computes alike, indexed with the
//! tenant), a batch per statement, so no statement visits more than
//! [`BATCH`] rows and a page resumes exactly where the last one stopped: a
//! session present for the whole walk is returned once. Whole listings are
//! bounded by `max_reply_items` as on the embedded store, pages by
//! `max_scan_count`. FIND and LISTVAR on a name the index covers (explicit
//! variables always, fields of the data as `index_fields` says) go through
//! `sessiond_var`, and every hit is checked against the session itself (the
//! index keeps long values as hashes); any other name reads every session,
//! as the embedded store does.

use bytes::Bytes;
use sessiond_core::{ClientHandle, Command, Error, Outcome, Reply, SessionId};

use super::db::{DbRow, P, Q};
use super::exec::ClusterTenant;
use super::pool::DbError;
use super::row;
use super::statements::SESSION_COLUMNS;

/// Rows one statement of a walk visits, at most.
const BATCH: usize = 1_000;

/// Whether the row `s` is a live session at `$2`: not past its deadline,
/// or locked (a held lock keeps its session alive, as on one node).
const LIVE: &str = "(s.expires_ms > $2 OR EXISTS (SELECT 1 FROM sessiond_lock l \
     WHERE l.tenant = s.tenant AND l.id = s.id AND l.held_until_ms > $2))";

/// Where a walk stands: the `(place, id)` of the last row visited.
#[derive(Debug, Clone, PartialEq, Eq)]
struct After {
    place: i64,
    id: Vec<u8>,
}

impl After {
    /// Before every row (places are never negative).
    fn start() -> Self {
        Self {
            place: -1,
            id: Vec::new(),
        }
    }
}

/// A row's id, scan position and what listings need of it.
struct Brief {
    id: SessionId,
    at: After,
    key_form: u8,
    class: Option<Vec<u8>>,
    live: bool,
}

/// A whole row, for what reads variables and fields.
struct Full {
    id: SessionId,
    at: After,
    session: sessiond_core::Session,
    live: bool,
}

trait Walked: Sized {
    /// The columns selected, after which come `place` and the liveness.
    const COLUMNS: &'static str;
    fn decode(row: &DbRow) -> Result<Self, DbError>;
    fn at(&self) -> &After;
}

impl Walked for Brief {
    const COLUMNS: &'static str = "id, key_form, class";
    fn decode(r: &DbRow) -> Result<Self, DbError> {
        let id = r.bytes(0)?;
        let key_form = r.i16(1)?;
        let class = r.opt_bytes(2)?;
        let place = r.i64(3)?;
        let live = r.bool(4)?;
        Ok(Self {
            at: After {
                place,
                id: id.clone(),
            },
            id: SessionId::new(Bytes::from(id)),
            key_form: u8::try_from(key_form).unwrap_or(0),
            class,
            live,
        })
    }
    fn at(&self) -> &After {
        &self.at
    }
}

/// The number of [`SESSION_COLUMNS`].
const SESSION_COLUMN_COUNT: usize = 11;

impl Walked for Full {
    const COLUMNS: &'static str = SESSION_COLUMNS;
    fn decode(r: &DbRow) -> Result<Self, DbError> {
        let (id, loaded) = row::decode(r)?;
        let place = r.i64(SESSION_COLUMN_COUNT)?;
        let live = r.bool(SESSION_COLUMN_COUNT + 1)?;
        Ok(Self {
            at: After {
                place,
                id: id.as_bytes().to_vec(),
            },
            id,
            session: loaded.session,
            live,
        })
    }
    fn at(&self) -> &After {
        &self.at
    }
}

/// Which rows a walk visits besides the tenant's.
#[derive(Clone, Copy)]
enum Filter<'a> {
    All,
    Class(&'a [u8]),
    /// Sessions the index lists under variable or field `name`.
    Named(&'a [u8]),
    /// Sessions the index lists under `name` with this value key.
    Valued(&'a [u8], &'a [u8]),
}

impl Filter<'_> {
    /// The condition, on parameters from `$6`.
    fn sql(&self) -> &'static str {
        match self {
            Filter::All => "",
            Filter::Class(_) => " AND s.class = $6",
            Filter::Named(_) => {
                " AND s.id IN (SELECT v.id FROM sessiond_var v WHERE v.tenant = $1 AND v.name = $6)"
            }
            Filter::Valued(..) => {
                " AND s.id IN (SELECT v.id FROM sessiond_var v \
                 WHERE v.tenant = $1 AND v.name = $6 AND v.value_key = $7)"
            }
        }
    }
}

/// Why a cursor is refused (the embedded store's words).
fn bad_cursor() -> Error {
    Error::InvalidArgument("invalid cursor: pass 0 to start, then the cursor SCAN returned".into())
}

/// A page cursor: `0` to start, else `<place>-<hex of the last id>`.
fn parse_cursor(cursor: &[u8]) -> Result<After, Error> {
    if cursor == b"0" {
        return Ok(After::start());
    }
    let text = std::str::from_utf8(cursor).map_err(|_| bad_cursor())?;
    let (place, hex) = text.split_once('-').ok_or_else(bad_cursor)?;
    let place: i64 = place.parse().map_err(|_| bad_cursor())?;
    if place < 0 || !hex.len().is_multiple_of(2) {
        return Err(bad_cursor());
    }
    let mut id = Vec::with_capacity(hex.len() / 2);
    for pair in hex.as_bytes().chunks(2) {
        let s = std::str::from_utf8(pair).map_err(|_| bad_cursor())?;
        id.push(u8::from_str_radix(s, 16).map_err(|_| bad_cursor())?);
    }
    Ok(After { place, id })
}

/// The cursor to go on from `next` (`0`: the walk is done).
fn format_cursor(next: Option<&After>) -> Bytes {
    let Some(at) = next else {
        return Bytes::from_static(b"0");
    };
    let mut s = format!("{}-", at.place);
    for b in &at.id {
        s.push_str(&format!("{b:02x}"));
    }
    Bytes::from(s)
}

impl ClusterTenant {
    /// Runs one command that looks across sessions.
    pub(super) async fn across(&self, client: &ClientHandle, cmd: Command) -> Result<Reply, Error> {
        let config = self.engine.config();
        let page = |count: usize| count.clamp(1, config.max_scan_count);
        match cmd {
            Command::Count { class } => self.count(class.as_deref()).await,
            Command::List { class } => {
                let filter = class.as_deref().map_or(Filter::All, Filter::Class);
                let ids = self
                    .walk_all::<Brief, _>(
                        filter,
                        "SESSION.SCAN cursor [COUNT n] [CLASS c] (Redis: SCAN)",
                        |b| b.live.then_some(b.id),
                    )
                    .await?;
                Ok(Reply::Ids(ids))
            }
            Command::Scan {
                cursor,
                count,
                class,
            } => {
                let after = parse_cursor(&cursor)?;
                let (rows, next) = self
                    .walk_page::<Brief>(Filter::All, &after, page(count))
                    .await?;
                let ids = rows
                    .into_iter()
                    .filter(|b| {
                        b.live
                            && class
                                .as_deref()
                                .is_none_or(|c| b.class.as_deref() == Some(c))
                    })
                    .map(|b| b.id)
                    .collect();
                Ok(Reply::Page {
                    cursor: format_cursor(next.as_ref()),
                    ids,
                })
            }
            Command::Keys => {
                let keys = self
                    .walk_all::<Brief, _>(
                        Filter::All,
                        "SCAN cursor [MATCH pattern] [COUNT n]",
                        |b| b.live.then_some((b.id, b.key_form)),
                    )
                    .await?;
                Ok(Reply::Keys {
                    cursor: Bytes::from_static(b"0"),
                    keys,
                })
            }
            Command::KeyScan { cursor, count } => self.key_scan(cursor, page(count)).await,
            Command::Find { name, value } => {
                let key = row::value_key(&value);
                let name_key = row::name_key(&name);
                let filter = self.filter_for(&name, &name_key, Some(&key));
                let ids = self
                    .walk_all::<Full, _>(
                        filter,
                        "SESSION.FIND name value CURSOR c [COUNT n]",
                        |f| {
                            (f.live && f.session.var(&name).as_deref() == Some(&value[..]))
                                .then_some(f.id)
                        },
                    )
                    .await?;
                Ok(Reply::Ids(ids))
            }
            Command::FindPage {
                name,
                value,
                cursor,
                count,
            } => {
                let after = parse_cursor(&cursor)?;
                let key = row::value_key(&value);
                let name_key = row::name_key(&name);
                let filter = self.filter_for(&name, &name_key, Some(&key));
                let (rows, next) = self.walk_page::<Full>(filter, &after, page(count)).await?;
                let ids = rows
                    .into_iter()
                    .filter(|f| f.live && f.session.var(&name).as_deref() == Some(&value[..]))
                    .map(|f| f.id)
                    .collect();
                Ok(Reply::Page {
                    cursor: format_cursor(next.as_ref()),
                    ids,
                })
            }
            Command::ListVar { name } => {
                let name_key = row::name_key(&name);
                let filter = self.filter_for(&name, &name_key, None);
                let pairs = self
                    .walk_all::<Full, _>(filter, "SESSION.LISTVAR name CURSOR c [COUNT n]", |f| {
                        let v = f.session.var(&name).filter(|_| f.live)?;
                        Some((Reply::Bulk(f.id.to_bytes()), Reply::Bulk(v)))
                    })
                    .await?;
                Ok(Reply::Map(pairs))
            }
            Command::ListVarPage {
                name,
                cursor,
                count,
            } => {
                let after = parse_cursor(&cursor)?;
                let name_key = row::name_key(&name);
                let filter = self.filter_for(&name, &name_key, None);
                let (rows, next) = self.walk_page::<Full>(filter, &after, page(count)).await?;
                let pairs = rows
                    .into_iter()
                    .filter_map(|f| {
                        let v = f.session.var(&name).filter(|_| f.live)?;
                        Some((Reply::Bulk(f.id.to_bytes()), Reply::Bulk(v)))
                    })
                    .collect();
                Ok(Reply::Array(vec![
                    Reply::Bulk(format_cursor(next.as_ref())),
                    Reply::Map(pairs),
                ]))
            }
            Command::FlushAll => self.flush_all(client).await,
            other => Err(Error::InvalidArgument(format!(
                "{} does not look across sessions",
                other.name()
            ))),
        }
    }

    /// How FIND or LISTVAR on `name` finds its sessions: through the index
    /// when it covers the name (an explicit variable is always indexed; a
    /// field of the data only if `index_fields` names it), else by reading
    /// every session.
    fn filter_for<'a>(&self, name: &[u8], name_key: &'a [u8], key: Option<&'a [u8]>) -> Filter<'a> {
        if !self.indexed.wants(name) {
            return Filter::All;
        }
        match key {
            Some(k) => Filter::Valued(name_key, k),
            None => Filter::Named(name_key),
        }
    }

    async fn count(&self, class: Option<&[u8]>) -> Result<Reply, Error> {
        let tenant = self.name.as_str();
        let now = row::to_sql(self.engine.now_ms());
        let sql = format!(
            "SELECT count(*) FROM sessiond_session s WHERE s.tenant = $1 AND {LIVE}{}",
            if class.is_some() {
                " AND s.class = $3"
            } else {
                ""
            }
        );
        let sql = &sql;
        let n = self
            .cluster
            .pool
            .run(|c| async move {
                let mut args = vec![P::Text(tenant), P::I64(now)];
                if let Some(class) = class {
                    args.push(P::Bytes(class));
                }
                c.one(Q::both(sql), &args).await?.i64(0)
            })
            .await
            .map_err(DbError::into_error)?;
        Ok(Reply::Int(n))
    }

    /// One statement of a walk: up to `limit` rows after `after` that
    /// pass `filter`, in scan order.
    async fn batch<T: Walked>(
        &self,
        filter: Filter<'_>,
        after: &After,
        limit: usize,
    ) -> Result<Vec<T>, DbError> {
        let pg = format!(
            "SELECT {}, s.place, {LIVE} FROM sessiond_session s \
             WHERE s.tenant = $1 AND (s.place, s.id) > ($3, $4){} \
             ORDER BY s.place, s.id LIMIT $5",
            T::COLUMNS,
            filter.sql()
        );
        // MySQL walks the index (tenant, place, id) for the expanded form;
        // `LIVE` is a number there (0 or 1), read as a truth value.
        let my = format!(
            "SELECT {}, s.place, {LIVE} FROM sessiond_session s \
             WHERE s.tenant = $1 AND (s.place > $3 OR (s.place = $3 AND s.id > $4)){} \
             ORDER BY s.place, s.id LIMIT $5",
            T::COLUMNS,
            filter.sql()
        );
        let tenant = self.name.as_str();
        let now = row::to_sql(self.engine.now_ms());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (pg, my) = (&pg, &my);
        let rows = self
            .cluster
            .pool
            .run(|c| async move {
                let mut args = vec![
                    P::Text(tenant),
                    P::I64(now),
                    P::I64(after.place),
                    P::Bytes(&after.id),
                    P::I64(limit),
                ];
                match &filter {
                    Filter::All => {}
                    Filter::Class(v) | Filter::Named(v) => args.push(P::Bytes(v)),
                    Filter::Valued(n, k) => {
                        args.push(P::Bytes(n));
                        args.push(P::Bytes(k));
                    }
                }
                c.query(Q::Sql { pg, my }, &args).await
            })
            .await?;
        rows.iter().map(T::decode).collect()
    }

    /// Every row that passes `filter`, through `keep`; past
    /// `max_reply_items` kept, refused with a pointer to `instead`.
    async fn walk_all<T: Walked, K>(
        &self,
        filter: Filter<'_>,
        instead: &'static str,
        mut keep: impl FnMut(T) -> Option<K>,
    ) -> Result<Vec<K>, Error> {
        let limit = self.engine.config().max_reply_items;
        let mut out = Vec::new();
        let mut after = After::start();
        loop {
            let rows: Vec<T> = self
                .batch(filter, &after, BATCH)
                .await
                .map_err(DbError::into_error)?;
            let done = rows.len() < BATCH;
            if let Some(last) = rows.last() {
                after = last.at().clone();
            }
            out.extend(rows.into_iter().filter_map(&mut keep));
            if out.len() > limit {
                return Err(Error::TooManyResults {
                    limit: limit as u64,
                    instead,
                });
            }
            if done {
                return Ok(out);
            }
        }
    }

    /// One page: `count` rows visited after `after`, and where the next
    /// page starts (`None`: the walk is done).
    async fn walk_page<T: Walked>(
        &self,
        filter: Filter<'_>,
        after: &After,
        count: usize,
    ) -> Result<(Vec<T>, Option<After>), Error> {
        let rows: Vec<T> = self
            .batch(filter, after, count)
            .await
            .map_err(DbError::into_error)?;
        let next = (rows.len() >= count)
            .then(|| rows.last().map(|r| r.at().clone()))
            .flatten();
        Ok((rows, next))
    }

    /// Redis `SCAN`: the cursor is the place the page starts at. A page
    /// ends only where the place changes, so nothing is returned twice and
    /// no session present throughout is missed.
    async fn key_scan(&self, cursor: u64, count: usize) -> Result<Reply, Error> {
        let from = i64::try_from(cursor).map_err(|_| bad_cursor())?;
        // Rows at `from` or after: the walk's `after` is just before it.
        let start = After {
            place: from.saturating_sub(1),
            id: Vec::new(),
        };
        let start = if from == 0 { After::start() } else { start };
        let mut rows: Vec<Brief> = self
            .batch(Filter::All, &start, count.saturating_add(1))
            .await
            .map_err(DbError::into_error)?;
        // `(place - 1, any id)` is after `(place - 1, "")`: drop rows of
        // the place before the cursor's.
        rows.retain(|b| b.at.place >= from);
        let next = if rows.len() > count {
            let next_place = rows[count].at.place;
            if rows[0].at.place == next_place {
                // More than a page on one place (a 63-bit hash collision
                // run): take the whole place.
                let more = self.whole_place(next_place).await?;
                rows = more;
                next_place.saturating_add(1)
            } else {
                rows.retain(|b| b.at.place < next_place);
                next_place
            }
        } else {
            0
        };
        let keys = rows
            .into_iter()
            .filter(|b| b.live)
            .map(|b| (b.id, b.key_form))
            .collect();
        Ok(Reply::Keys {
            cursor: Bytes::from(next.to_string()),
            keys,
        })
    }

    /// Every row at one place.
    async fn whole_place(&self, place: i64) -> Result<Vec<Brief>, Error> {
        let mut out: Vec<Brief> = Vec::new();
        let mut after = After {
            place: place.saturating_sub(1),
            id: Vec::new(),
        };
        loop {
            let rows: Vec<Brief> = self
                .batch(Filter::All, &after, BATCH)
                .await
                .map_err(DbError::into_error)?;
            let done = rows.len() < BATCH || rows.iter().any(|b| b.at.place > place);
            if let Some(last) = rows.last() {
                after = last.at.clone();
            }
            out.extend(rows.into_iter().filter(|b| b.at.place == place));
            if done {
                return Ok(out);
            }
        }
    }

    /// `FLUSHALL`/`flush_all`: refused unless `allow_flush`, as on one
    /// node; else every session of the tenant is removed, a batch per
    /// statement. A session whose lock is held or awaited goes the way
    /// `DESTROY` goes (holders lose their keys, waiters are told); the rest
    /// are deleted by id. Answers how many went.
    async fn flush_all(&self, client: &ClientHandle) -> Result<Reply, Error> {
        // The working copy holds nothing: this is the refusal, or 0.
        match self.engine.execute(client, Command::FlushAll)? {
            Outcome::Reply(_) => {}
            Outcome::Wait(pending) => {
                self.engine.give_up(&pending)?;
            }
        }
        // Nothing kept is worth anything after this (and a kept row's
        // revision is checked anyway).
        self.kept.clear();
        let tenant = self.name.as_str();
        let mut gone = 0i64;
        loop {
            let limit = BATCH as i64;
            let (ids, locked) = self
                .cluster
                .pool
                .run(|c| async move {
                    let sql = "SELECT id FROM sessiond_session WHERE tenant = $1 ORDER BY id LIMIT $2";
                    let ids: Vec<Vec<u8>> = c
                        .query(Q::both(sql), &[P::Text(tenant), P::I64(limit)])
                        .await?
                        .iter()
                        .map(|r| r.bytes(0))
                        .collect::<Result<_, _>>()?;
                    let locked: Vec<Vec<u8>> = c
                        .query(
                            Q::Sql {
                                pg: "SELECT id FROM sessiond_lock WHERE tenant = $1 AND id = ANY($2) \
                                     AND (holders <> ''::bytea OR waiters <> ''::bytea)",
                                my: "SELECT id FROM sessiond_lock WHERE tenant = $1 AND id IN ($2) \
                                     AND live = 1",
                            },
                            &[P::Text(tenant), P::List(&ids)],
                        )
                        .await?
                        .iter()
                        .map(|r| r.bytes(0))
                        .collect::<Result<_, _>>()?;
                    Ok((ids, locked))
                })
                .await
                .map_err(DbError::into_error)?;
            if ids.is_empty() {
                return Ok(Reply::Int(gone));
            }
            for id in &locked {
                let id = SessionId::new(Bytes::from(id.clone()));
                let cmd = Command::Destroy { id: id.clone() };
                match self.on_sessions(client, cmd, vec![id]).await {
                    Ok(Reply::Int(n)) => gone += n,
                    Ok(_) | Err(Error::NoSession(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            let plain: Vec<&[u8]> = ids
                .iter()
                .filter(|id| !locked.contains(id))
                .map(|id| id.as_slice())
                .collect();
            let plain = &plain;
            let n = self
                .cluster
                .pool
                .run(|c| async move {
                    let n = c
                        .execute(
                            Q::Sql {
                                pg: "DELETE FROM sessiond_session WHERE tenant = $1 AND id = ANY($2)",
                                my: "DELETE FROM sessiond_session WHERE tenant = $1 AND id IN ($2)",
                            },
                            &[P::Text(tenant), P::Refs(plain)],
                        )
                        .await?;
                    c.execute(
                        Q::Sql {
                            pg: "DELETE FROM sessiond_lock WHERE tenant = $1 AND id = ANY($2) \
                                 AND holders = ''::bytea AND waiters = ''::bytea",
                            my: "DELETE FROM sessiond_lock WHERE tenant = $1 AND id IN ($2) \
                                 AND live = 0",
                        },
                        &[P::Text(tenant), P::Refs(plain)],
                    )
                    .await?;
                    Ok(n)
                })
                .await
                .map_err(DbError::into_error)?;
            gone += i64::try_from(n).unwrap_or(i64::MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back() {
        let at = After {
            place: 42,
            id: b"a\x00\xff".to_vec(),
        };
        let c = format_cursor(Some(&at));
        assert_eq!(&c[..], b"42-6100ff");
        assert_eq!(parse_cursor(&c).ok(), Some(at));
        assert_eq!(parse_cursor(b"0").ok(), Some(After::start()));
        assert_eq!(&format_cursor(None)[..], b"0");
        for bad in [&b"x"[..], b"-1-00", b"1-0", b"1-zz", b"1"] {
            assert!(parse_cursor(bad).is_err(), "{bad:?}");
        }
    }
}
