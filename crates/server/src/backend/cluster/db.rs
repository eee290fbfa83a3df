//! The seam between the cluster's rules and its database: the nodes'
//! logic (reading rows, running commands on a working copy, writing back
//! at the revision read) is the same on every database; what differs is
//! said here — how a statement is sent, how its parameters go, how a row
//! is read. A connection is a [`Conn`]; its requests are the statements of
//! the request path ([`St`], prepared once per connection) and others
//! written for each database ([`Q::Sql`]), with parameters as [`P`] and
//! rows as [`DbRow`], whatever the database.
//!
//! Statements are written with `$1, $2, …` on both databases; on MySQL
//! they become `?` in the order they appear (a parameter used twice is sent
//! twice), and a list parameter (`IN ($2)`) is spread over as many `?` as
//! it has items — on PostgreSQL the same statement takes an array
//! (`= ANY($2)`).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use tokio_postgres::types::ToSql;

pub(crate) use super::statements::St;
use super::statements::Statements;
use sessiond_core::Error;
use sessiond_mysql::{self as my, Param};
use sessiond_mysql::{MyError, Value};

/// Why the database could not be used.
#[derive(Debug)]
pub(crate) enum DbError {
    /// The row changed since it was read (another node wrote it): read it
    /// again and redo the command.
    Conflict,
    /// The database refused the request or could not be reached.
    Failed(String),
    /// The database did not answer within the request timeout: whether it
    /// ran the request is not known.
    TimedOut(String),
}

impl DbError {
    /// What the client is told.
    pub(crate) fn into_error(self) -> Error {
        match self {
            DbError::Conflict => Error::Unavailable(
                "the session kept changing on other nodes while this command ran".into(),
            ),
            DbError::Failed(m) | DbError::TimedOut(m) => Error::Unavailable(m),
        }
    }
}

/// The SQLSTATE sessiond's functions raise when a row changed meanwhile.
pub(crate) const CONFLICT_STATE: &str = "SDCHG";

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            if db.code().code() == CONFLICT_STATE {
                return DbError::Conflict;
            }
            // Serialisation failures and deadlocks are the database's way
            // of saying the same: try again.
            if matches!(db.code().code(), "40001" | "40P01") {
                return DbError::Conflict;
            }
            return DbError::Failed(format!("{}: {}", db.code().code(), db.message()));
        }
        DbError::Failed(e.to_string())
    }
}

/// Which database a connection is to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    MySql,
}

/// A statement parameter. Absent values are typed (PostgreSQL checks a
/// parameter's type even when it is null).
#[derive(Debug, Clone, Copy)]
pub(crate) enum P<'a> {
    I64(i64),
    OptI64(Option<i64>),
    I16(i16),
    OptI16(Option<i16>),
    Bool(bool),
    OptBool(Option<bool>),
    Bytes(&'a [u8]),
    OptBytes(Option<&'a [u8]>),
    Text(&'a str),
    /// A list of byte strings (an array on PostgreSQL; spread on MySQL).
    List(&'a [Vec<u8>]),
    /// The same, borrowed.
    Refs(&'a [&'a [u8]]),
    OptList(Option<&'a [Vec<u8>]>),
    /// PostgreSQL only: `"char"[]`, `text[]`.
    Kinds(Option<&'a [i8]>),
    Texts(Option<&'a [String]>),
}

impl P<'_> {
    fn pg(&self) -> &(dyn ToSql + Sync) {
        match self {
            P::I64(v) => v,
            P::OptI64(v) => v,
            P::I16(v) => v,
            P::OptI16(v) => v,
            P::Bool(v) => v,
            P::OptBool(v) => v,
            P::Bytes(v) => v,
            P::OptBytes(v) => v,
            P::Text(v) => v,
            P::List(v) => v,
            P::Refs(v) => v,
            P::OptList(v) => v,
            P::Kinds(v) => v,
            P::Texts(v) => v,
        }
    }

    /// Appends this parameter's MySQL values (a list: each item).
    fn my<'b>(&'b self, out: &mut Vec<Param<'b>>) {
        match self {
            P::I64(v) => out.push(Param::Int(*v)),
            P::OptI64(v) => out.push(v.map_or(Param::Null, Param::Int)),
            P::I16(v) => out.push(Param::Int(i64::from(*v))),
            P::OptI16(v) => out.push(v.map_or(Param::Null, |v| Param::Int(i64::from(v)))),
            P::Bool(v) => out.push(Param::Int(i64::from(*v))),
            P::OptBool(v) => out.push(v.map_or(Param::Null, |v| Param::Int(i64::from(v)))),
            P::Bytes(v) => out.push(Param::Bytes(v)),
            P::OptBytes(v) => out.push(v.map_or(Param::Null, Param::Bytes)),
            P::Text(v) => out.push(Param::Bytes(v.as_bytes())),
            P::List(v) | P::OptList(Some(v)) => {
                out.extend(v.iter().map(|b| Param::Bytes(b)));
            }
            P::Refs(v) => out.extend(v.iter().map(|b| Param::Bytes(b))),
            P::OptList(None) | P::Kinds(_) | P::Texts(_) => out.push(Param::Null),
        }
    }

    /// How many `?` this parameter stands for on MySQL.
    fn my_len(&self) -> usize {
        match self {
            P::List(v) | P::OptList(Some(v)) => v.len(),
            P::Refs(v) => v.len(),
            _ => 1,
        }
    }
}

/// A request: one of the request path's statements, or one written for
/// each database.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Q<'a> {
    St(St),
    Sql { pg: &'a str, my: &'a str },
}

impl<'a> Q<'a> {
    /// SQL both databases take as it is (`$n` placeholders become `?` on
    /// MySQL).
    pub(crate) fn both(sql: &'a str) -> Self {
        Q::Sql { pg: sql, my: sql }
    }
}

/// A row as read, whatever the database.
pub(crate) enum DbRow {
    Pg(tokio_postgres::Row),
    My(Vec<Value>),
}

fn missing(i: usize) -> DbError {
    DbError::Failed(format!("the database's answer has no column {i}"))
}

impl DbRow {
    fn my(&self, i: usize) -> Result<&Value, DbError> {
        match self {
            DbRow::My(v) => v.get(i).ok_or_else(|| missing(i)),
            DbRow::Pg(_) => Err(missing(i)),
        }
    }

    /// A whole number (null: None).
    pub(crate) fn opt_i64(&self, i: usize) -> Result<Option<i64>, DbError> {
        match self {
            DbRow::Pg(r) => Ok(r.try_get(i)?),
            DbRow::My(_) => my_int(self.my(i)?),
        }
    }

    pub(crate) fn i64(&self, i: usize) -> Result<i64, DbError> {
        self.opt_i64(i)?
            .ok_or_else(|| DbError::Failed(format!("column {i} is null")))
    }

    pub(crate) fn i16(&self, i: usize) -> Result<i16, DbError> {
        match self {
            DbRow::Pg(r) => Ok(r.try_get(i)?),
            DbRow::My(_) => my_int(self.my(i)?)?
                .and_then(|v| i16::try_from(v).ok())
                .ok_or_else(|| DbError::Failed(format!("column {i} is not a small number"))),
        }
    }

    pub(crate) fn bool(&self, i: usize) -> Result<bool, DbError> {
        match self {
            DbRow::Pg(r) => Ok(r.try_get(i)?),
            DbRow::My(_) => Ok(my_int(self.my(i)?)?.is_some_and(|v| v != 0)),
        }
    }

    pub(crate) fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, DbError> {
        match self {
            DbRow::Pg(r) => Ok(r.try_get(i)?),
            DbRow::My(_) => match self.my(i)? {
                Value::Null => Ok(None),
                Value::Bytes(b) => Ok(Some(b.clone())),
                other => Err(DbError::Failed(format!(
                    "column {i} is {other:?}, not bytes"
                ))),
            },
        }
    }

    pub(crate) fn bytes(&self, i: usize) -> Result<Vec<u8>, DbError> {
        self.opt_bytes(i)?
            .ok_or_else(|| DbError::Failed(format!("column {i} is null")))
    }

    pub(crate) fn text(&self, i: usize) -> Result<String, DbError> {
        match self {
            DbRow::Pg(r) => Ok(r.try_get(i)?),
            DbRow::My(_) => String::from_utf8(self.bytes(i)?)
                .map_err(|_| DbError::Failed(format!("column {i} is not UTF-8"))),
        }
    }

    /// Whether column `i` is null.
    pub(crate) fn is_null(&self, i: usize) -> Result<bool, DbError> {
        match self {
            DbRow::Pg(r) => {
                // Every column this is asked of is bytes when not null.
                Ok(r.try_get::<_, Option<Vec<u8>>>(i)?.is_none())
            }
            DbRow::My(_) => Ok(matches!(self.my(i)?, Value::Null)),
        }
    }
}

/// A MySQL value as a whole number: integers as they are, and the decimal
/// text of `SUM()` and of the text protocol.
fn my_int(v: &Value) -> Result<Option<i64>, DbError> {
    v.to_i64().map_err(|e| DbError::Failed(e.to_string()))
}

/// The driver side of a connection.
pub(crate) enum Link {
    Pg {
        client: tokio_postgres::Client,
        st: Statements,
    },
    My {
        client: my::Client,
        /// Statements prepared on this connection, by their text.
        prepared: parking_lot::Mutex<HashMap<String, my::Statement>>,
    },
}

/// How many statements a MySQL connection keeps prepared; past it, the
/// oldest are closed (statements whose lists differ in length differ).
const MY_PREPARED: usize = 256;

/// One open connection.
pub(crate) struct Conn {
    pub(crate) link: Link,
    /// Set from BEGIN until COMMIT or ROLLBACK went through: a transaction
    /// cut off in between (by the request timeout) leaves the connection
    /// inside it, and such a connection is not used again.
    pub(crate) in_transaction: AtomicBool,
    /// Set when a request on this connection went unanswered within the
    /// request timeout: every request sent after it waits behind it on the
    /// same connection, and after a network partition heals the connection
    /// may be torn without the driver knowing yet, so no new request is
    /// sent on it (its slot opens another).
    pub(crate) abandoned: AtomicBool,
}

impl Conn {
    pub(crate) fn new(link: Link) -> Self {
        Self {
            link,
            in_transaction: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
        }
    }

    /// Whether a new request may be sent on this connection.
    pub(crate) fn usable(&self) -> bool {
        let closed = match &self.link {
            Link::Pg { client, .. } => client.is_closed(),
            Link::My { client, .. } => client.is_closed(),
        };
        !closed && !self.abandoned.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match &self.link {
            Link::Pg { .. } => Dialect::Postgres,
            Link::My { .. } => Dialect::MySql,
        }
    }

    /// The rows `q` answers.
    pub(crate) async fn query(&self, q: Q<'_>, params: &[P<'_>]) -> Result<Vec<DbRow>, DbError> {
        match &self.link {
            Link::Pg { client, st } => {
                let args: Vec<&(dyn ToSql + Sync)> = params.iter().map(P::pg).collect();
                let rows = match q {
                    Q::St(s) => client.query(st.get(s), &args).await?,
                    Q::Sql { pg, .. } => client.query(pg, &args).await?,
                };
                Ok(rows.into_iter().map(DbRow::Pg).collect())
            }
            Link::My { .. } => {
                let sets = self.my_run(q, params).await?;
                Ok(sets
                    .into_iter()
                    .flat_map(|s| s.rows)
                    .map(DbRow::My)
                    .collect())
            }
        }
    }

    /// The one row `q` answers.
    pub(crate) async fn one(&self, q: Q<'_>, params: &[P<'_>]) -> Result<DbRow, DbError> {
        let mut rows = self.query(q, params).await?;
        if rows.len() != 1 {
            return Err(DbError::Failed(format!(
                "the database answered {} rows where one was due",
                rows.len()
            )));
        }
        Ok(rows.remove(0))
    }

    /// Runs `q`; answers how many rows it changed (found, for an UPDATE).
    pub(crate) async fn execute(&self, q: Q<'_>, params: &[P<'_>]) -> Result<u64, DbError> {
        match &self.link {
            Link::Pg { client, st } => {
                let args: Vec<&(dyn ToSql + Sync)> = params.iter().map(P::pg).collect();
                Ok(match q {
                    Q::St(s) => client.execute(st.get(s), &args).await?,
                    Q::Sql { pg, .. } => client.execute(pg, &args).await?,
                })
            }
            Link::My { .. } => {
                let sets = self.my_run(q, params).await?;
                Ok(sets.first().map_or(0, |s| s.affected))
            }
        }
    }

    /// Runs statements without parameters (`BEGIN`, `COMMIT`, set-up).
    pub(crate) async fn batch(&self, sql: &str) -> Result<(), DbError> {
        match &self.link {
            Link::Pg { client, .. } => Ok(client.batch_execute(sql).await?),
            Link::My { client, .. } => {
                client.query(sql).await?;
                Ok(())
            }
        }
    }

    /// Opens a transaction (on MySQL, and tells sessiond's procedures
    /// they run inside one: `@sessiond_tx`).
    pub(crate) async fn begin(&self) -> Result<(), DbError> {
        match self.dialect() {
            Dialect::Postgres => self.batch("BEGIN").await,
            Dialect::MySql => self.batch("BEGIN; SET @sessiond_tx = 1").await,
        }
    }

    /// Commits (`commit`) or rolls back the transaction [`Conn::begin`]
    /// opened.
    pub(crate) async fn end(&self, commit: bool) -> Result<(), DbError> {
        let end = if commit { "COMMIT" } else { "ROLLBACK" };
        match self.dialect() {
            Dialect::Postgres => self.batch(end).await,
            Dialect::MySql => self.batch(&format!("{end}; SET @sessiond_tx = NULL")).await,
        }
    }

    async fn my_run(&self, q: Q<'_>, params: &[P<'_>]) -> Result<Vec<my::ResultSet>, DbError> {
        let Link::My { client, prepared } = &self.link else {
            return Err(DbError::Failed("not a MySQL connection".into()));
        };
        let text = match q {
            Q::St(s) => super::my_statements::sql(s),
            Q::Sql { my, .. } => my,
        };
        let (sql, order) = placeholders(text, params)?;
        let mut args = Vec::with_capacity(params.len());
        for n in order {
            params[n].my(&mut args);
        }
        let found = prepared.lock().get(&sql).copied();
        let st = match found {
            Some(st) => st,
            None => {
                let st = client.prepare(&sql).await?;
                let mut p = prepared.lock();
                if p.len() >= MY_PREPARED {
                    // Forget them all: re-preparing the few in use is
                    // cheaper than tracking age on every request.
                    for (_, old) in p.drain() {
                        client.close_statement(old);
                    }
                }
                p.insert(sql, st);
                st
            }
        };
        Ok(client.execute(&st, &args).await?)
    }
}

/// `sql` with `$n` as MySQL's `?` (a list as one `?` per item; an empty
/// list as `NULL`, which no `IN` matches), and the parameter numbers
/// (from 0) in the order the `?`s stand for them.
fn placeholders(sql: &str, params: &[P<'_>]) -> Result<(String, Vec<usize>), DbError> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut order = Vec::with_capacity(params.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j > start {
                let n: usize = sql[start..j].parse().unwrap_or(0);
                let k = n
                    .checked_sub(1)
                    .filter(|&k| k < params.len())
                    .ok_or_else(|| DbError::Failed(format!("no parameter ${n}")))?;
                let p = &params[k];
                order.push(k);
                out.push_str(&sql[copied..i]);
                match p.my_len() {
                    0 => out.push_str("NULL"),
                    k => {
                        for x in 0..k {
                            out.push_str(if x == 0 { "?" } else { ", ?" });
                        }
                    }
                }
                copied = j;
                i = j;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&sql[copied..]);
    Ok((out, order))
}

/// The SQLSTATE or error number sessiond's procedures raise when a row
/// changed meanwhile (MySQL: a user error, SQLSTATE 45000, with this
/// message).
pub(crate) const MY_CONFLICT: &str = "SDCHG";

impl From<MyError> for DbError {
    fn from(e: MyError) -> Self {
        match &e {
            MyError::Server { code, message, .. } => {
                if message == MY_CONFLICT {
                    return DbError::Conflict;
                }
                // Deadlocks and lock-wait time-outs: the database's way
                // of saying the same — try again.
                if matches!(code, 1213 | 1205) {
                    return DbError::Conflict;
                }
                DbError::Failed(e.to_string())
            }
            _ => DbError::Failed(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_become_question_marks_and_lists_spread() {
        let ids = vec![b"a".to_vec(), b"b".to_vec()];
        let params = [P::Text("t"), P::List(&ids), P::I64(3)];
        let sql = "SELECT 1 WHERE t = $1 AND id IN ($2) AND n > $3 AND u = $1";
        assert_eq!(
            placeholders(sql, &params).expect("ok"),
            (
                "SELECT 1 WHERE t = ? AND id IN (?, ?) AND n > ? AND u = ?".to_string(),
                vec![0, 1, 2, 0]
            )
        );
        let empty: Vec<Vec<u8>> = Vec::new();
        assert_eq!(
            placeholders("x IN ($1)", &[P::List(&empty)]).expect("ok").0,
            "x IN (NULL)"
        );
        assert!(placeholders("$4", &params).is_err());
        assert_eq!(placeholders("a $ b $$", &params).expect("ok").0, "a $ b $$");
    }
}
