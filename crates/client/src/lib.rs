//! Async Rust client for sessiond's native protocol.
//!
//! One [`Client`] is one connection, reused for every call. Locks belong to
//! the connection that took them: they are released if it closes, so the
//! client never reconnects behind your back.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sessiond_client::Error> {
//! use sessiond_client::{Client, LockOptions};
//! let mut c = Client::connect("127.0.0.1:6390").await?;
//! let id = c.uniq(Default::default()).await?;
//! c.set(&id, "user_id", "42").await?;
//! let key = c.lock(&id, LockOptions { wait_ms: 500, ..Default::default() }).await?;
//! c.close(&id, key, Some(b"serialized"), &[]).await?;
//! # Ok(()) }
//! ```

mod error;
mod session;

use bytes::{Bytes, BytesMut};
use sessiond_proto::resp::{encode_command, parse_value, Value};
use sessiond_proto::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};

pub use error::Error;
pub use session::{CreateOptions, LockMode, LockOptions, Opened, SessionInfo};
pub use sessiond_proto::resp::Value as RespValue;

/// A connection to a sessiond server.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    inbuf: BytesMut,
    out: BytesMut,
    limits: Limits,
}

impl Client {
    /// Connects to `addr` (for example `127.0.0.1:6390`).
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Self, Error> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            inbuf: BytesMut::with_capacity(8 * 1024),
            out: BytesMut::with_capacity(8 * 1024),
            limits: Limits {
                max_args: usize::MAX >> 1,
                max_bulk_len: usize::MAX >> 1,
                max_request_len: usize::MAX >> 1,
                ..Limits::default()
            },
        })
    }

    /// Sends one command and returns its reply; a RESP error reply becomes
    /// [`Error::Server`].
    pub async fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Value, Error> {
        self.out.clear();
        encode_command(args, &mut self.out);
        self.stream.write_all(&self.out).await?;
        match self.read_value().await? {
            Value::Error(e) => Err(Error::from_reply(&e)),
            v => Ok(v),
        }
    }

    /// Sends many commands in one write and reads all their replies, in
    /// order. Error replies stay in the list as [`Value::Error`].
    pub async fn pipeline<A: AsRef<[u8]>>(
        &mut self,
        commands: &[Vec<A>],
    ) -> Result<Vec<Value>, Error> {
        self.out.clear();
        for c in commands {
            encode_command(c, &mut self.out);
        }
        self.stream.write_all(&self.out).await?;
        let mut replies = Vec::with_capacity(commands.len());
        for _ in commands {
            replies.push(self.read_value().await?);
        }
        Ok(replies)
    }

    async fn read_value(&mut self) -> Result<Value, Error> {
        loop {
            if let Some(v) = parse_value(&mut self.inbuf, &self.limits)? {
                return Ok(v);
            }
            if self.stream.read_buf(&mut self.inbuf).await? == 0 {
                return Err(Error::Closed);
            }
        }
    }

    /// `AUTH user password`: logs in, on a server with users. From then on
    /// this connection works in the user's tenant with the user's role.
    pub async fn auth(&mut self, user: &str, password: &str) -> Result<(), Error> {
        ok(self.call(&["AUTH", user, password]).await?)
    }

    /// `PING`: true on PONG.
    pub async fn ping(&mut self) -> Result<bool, Error> {
        Ok(matches!(self.call(&["PING"]).await?, Value::Simple(s) if s == "PONG"))
    }
}

/// Expects `+OK`.
fn ok(v: Value) -> Result<(), Error> {
    match v {
        Value::Simple(s) if s == "OK" => Ok(()),
        other => Err(Error::unexpected("OK", &other)),
    }
}

fn int(v: Value) -> Result<i64, Error> {
    match v {
        Value::Int(n) => Ok(n),
        other => Err(Error::unexpected("an integer", &other)),
    }
}

fn bulk(v: Value) -> Result<Option<Bytes>, Error> {
    match v {
        Value::Bulk(b) => Ok(Some(b)),
        Value::Nil => Ok(None),
        other => Err(Error::unexpected("a string", &other)),
    }
}

fn text(v: Value) -> Result<String, Error> {
    match v {
        Value::Bulk(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Value::Simple(s) => Ok(s),
        other => Err(Error::unexpected("a string", &other)),
    }
}

fn texts(v: Value) -> Result<Vec<String>, Error> {
    match v {
        Value::Array(items) => items.into_iter().map(text).collect(),
        other => Err(Error::unexpected("an array", &other)),
    }
}

/// A map reply, whether it came as a RESP3 map or a RESP2 flat array.
fn pairs(v: Value) -> Result<Vec<(Value, Value)>, Error> {
    match v {
        Value::Map(p) => Ok(p),
        Value::Array(items) if items.len().is_multiple_of(2) => {
            let mut it = items.into_iter();
            let mut out = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((k, v));
            }
            Ok(out)
        }
        other => Err(Error::unexpected("a map", &other)),
    }
}

fn byte_pairs(v: Value) -> Result<Vec<(Bytes, Bytes)>, Error> {
    pairs(v)?
        .into_iter()
        .map(|(k, v)| {
            let k = bulk(k)?.unwrap_or_default();
            let v = bulk(v)?.unwrap_or_default();
            Ok((k, v))
        })
        .collect()
}
