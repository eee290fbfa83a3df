//! The generator's side of the wire: requests encoded straight into one
//! output buffer, and replies recognised by kind without copying values, so
//! the generator spends as little of the machine as it can.

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use sessiond_proto::decimal::put_u64;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::BenchError;

/// What the generator speaks to the server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Proto {
    /// RESP2 (Redis, sessiond's native and Redis doors).
    Resp,
    /// memcached's text protocol.
    MemcacheText,
    /// memcached's binary protocol.
    MemcacheBinary,
    /// The RESP requests of `raw`, answered by an echo of their own bytes:
    /// the machine's ceiling for a round trip of that size.
    Echo,
}

/// A reply, by kind. Values are skipped, only their length kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `+OK`, `STORED`, `DELETED`, binary status 0 without a value.
    Ok,
    /// A nil, `END` without a value, `NOT_STORED`, `NOT_FOUND`, `EXISTS`,
    /// binary not-found / exists / not-stored.
    Miss,
    /// A value of this many bytes.
    Value(usize),
    Int(i64),
    Array(Vec<Frame>),
    /// An error reply, as the server wrote it.
    Error(String),
}

/// Longest reply line the generator accepts before calling the stream
/// broken.
const MAX_LINE: usize = 64 * 1024;

/// One connection to the server under test.
pub struct Conn {
    stream: TcpStream,
    proto: Proto,
    out: Vec<u8>,
    inbuf: BytesMut,
    /// Echo: the lengths of the requests whose echoes are still due.
    echoes: VecDeque<usize>,
    /// When set, the name of every request sent (for tests of sequencing).
    pub trace: Option<Vec<String>>,
    /// When set, each reply's first value is copied here (empty when the
    /// reply had none): the counting runs read what they write back.
    pub kept: Option<Vec<u8>>,
}

impl Conn {
    pub async fn connect(addr: SocketAddr, proto: Proto) -> Result<Self, BenchError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            proto,
            out: Vec::with_capacity(8 * 1024),
            inbuf: BytesMut::with_capacity(16 * 1024),
            echoes: VecDeque::new(),
            trace: None,
            kept: None,
        })
    }

    pub fn proto(&self) -> Proto {
        self.proto
    }

    fn traced(&mut self, name: &str) {
        if let Some(t) = &mut self.trace {
            t.push(name.to_string());
        }
    }

    /// Queues a RESP command (under `Echo`, its echo).
    pub fn push_resp(&mut self, args: &[&[u8]]) {
        if let (Some(_), Some(name)) = (&self.trace, args.first()) {
            let name = String::from_utf8_lossy(name).into_owned();
            self.traced(&name);
        }
        let start = self.out.len();
        self.out.push(b'*');
        put_u64(&mut self.out, args.len() as u64);
        self.out.extend_from_slice(b"\r\n");
        for a in args {
            self.out.push(b'$');
            put_u64(&mut self.out, a.len() as u64);
            self.out.extend_from_slice(b"\r\n");
            self.out.extend_from_slice(a);
            self.out.extend_from_slice(b"\r\n");
        }
        if self.proto == Proto::Echo {
            self.echoes.push_back(self.out.len() - start);
        }
    }

    /// Queues a memcached read of one key: `get` (text) or `GETK`
    /// (binary, what libmemcached sends for `memcached_get`).
    pub fn push_mc_get(&mut self, key: &[u8]) {
        if self.proto == Proto::MemcacheBinary {
            self.traced("getk");
            self.push_binary(0x0c, key, &[], &[]);
        } else {
            self.traced("get");
            self.out.extend_from_slice(b"get ");
            self.out.extend_from_slice(key);
            self.out.extend_from_slice(b"\r\n");
        }
    }

    /// Queues `set` (`add` when `add`) of a value with flags 0.
    pub fn push_mc_store(&mut self, add: bool, key: &[u8], value: &[u8], exptime: u32) {
        self.traced(if add { "add" } else { "set" });
        if self.proto == Proto::MemcacheBinary {
            let mut extras = [0u8; 8];
            extras[4..].copy_from_slice(&exptime.to_be_bytes());
            self.push_binary(if add { 0x02 } else { 0x01 }, key, &extras, value);
        } else {
            self.out
                .extend_from_slice(if add { b"add " } else { b"set " });
            self.out.extend_from_slice(key);
            self.out.extend_from_slice(b" 0 ");
            put_u64(&mut self.out, u64::from(exptime));
            self.out.push(b' ');
            put_u64(&mut self.out, value.len() as u64);
            self.out.extend_from_slice(b"\r\n");
            self.out.extend_from_slice(value);
            self.out.extend_from_slice(b"\r\n");
        }
    }

    pub fn push_mc_delete(&mut self, key: &[u8]) {
        self.traced("delete");
        if self.proto == Proto::MemcacheBinary {
            self.push_binary(0x04, key, &[], &[]);
        } else {
            self.out.extend_from_slice(b"delete ");
            self.out.extend_from_slice(key);
            self.out.extend_from_slice(b"\r\n");
        }
    }

    fn push_binary(&mut self, opcode: u8, key: &[u8], extras: &[u8], value: &[u8]) {
        let body = extras.len() + key.len() + value.len();
        self.out.push(0x80);
        self.out.push(opcode);
        self.out
            .extend_from_slice(&(key.len() as u16).to_be_bytes());
        self.out.push(extras.len() as u8);
        self.out.extend_from_slice(&[0, 0, 0]); // data type, vbucket
        self.out.extend_from_slice(&(body as u32).to_be_bytes());
        self.out.extend_from_slice(&[0; 12]); // opaque, cas
        self.out.extend_from_slice(extras);
        self.out.extend_from_slice(key);
        self.out.extend_from_slice(value);
    }

    /// Writes every queued request in one go.
    pub async fn send(&mut self) -> Result<(), BenchError> {
        self.stream.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// Sends what is queued and reads one reply.
    pub async fn call(&mut self) -> Result<Frame, BenchError> {
        self.send().await?;
        self.read_frame().await
    }

    /// Reads the next reply.
    pub async fn read_frame(&mut self) -> Result<Frame, BenchError> {
        loop {
            if let Some((frame, used)) = self.parse()? {
                if let Some(kept) = &mut self.kept {
                    kept.clear();
                    if let Some(v) = first_value(&self.inbuf[..used], self.proto) {
                        kept.extend_from_slice(&self.inbuf[v]);
                    }
                }
                self.inbuf.advance(used);
                return Ok(frame);
            }
            if self.inbuf.capacity() - self.inbuf.len() < 4096 {
                self.inbuf.reserve(16 * 1024);
            }
            if self.stream.read_buf(&mut self.inbuf).await? == 0 {
                return Err(BenchError::Closed);
            }
        }
    }

    fn parse(&mut self) -> Result<Option<(Frame, usize)>, BenchError> {
        let buf = &self.inbuf[..];
        match self.proto {
            Proto::Resp => parse_resp(buf, 0),
            Proto::MemcacheText => parse_mc_text(buf),
            Proto::MemcacheBinary => parse_mc_binary(buf),
            Proto::Echo => {
                let want = self.echoes.front().copied().ok_or_else(|| {
                    BenchError::Protocol("echo server sent bytes nobody asked for".into())
                })?;
                if buf.len() < want {
                    return Ok(None);
                }
                self.echoes.pop_front();
                Ok(Some((Frame::Value(want), want)))
            }
        }
    }
}

/// The line at the start of `buf` (without CRLF) and the bytes it takes.
fn line(buf: &[u8]) -> Result<Option<(&[u8], usize)>, BenchError> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some((&buf[..i], i + 2))),
        None if buf.len() > MAX_LINE => Err(BenchError::Protocol("reply line too long".into())),
        None => Ok(None),
    }
}

fn number(s: &[u8]) -> Result<i64, BenchError> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| BenchError::Protocol(format!("bad number {:?}", String::from_utf8_lossy(s))))
}

/// One RESP2/RESP3 reply: the frame and the bytes it takes.
pub fn parse_resp(buf: &[u8], depth: usize) -> Result<Option<(Frame, usize)>, BenchError> {
    if depth > 8 {
        return Err(BenchError::Protocol("reply nested too deeply".into()));
    }
    let Some((l, used)) = line(buf)? else {
        return Ok(None);
    };
    let (&kind, rest) = l
        .split_first()
        .ok_or_else(|| BenchError::Protocol("empty reply line".into()))?;
    let frame = match kind {
        b'+' => Frame::Ok,
        b'-' => Frame::Error(String::from_utf8_lossy(rest).into_owned()),
        b':' => Frame::Int(number(rest)?),
        b'_' => Frame::Miss,
        b'$' => {
            let n = number(rest)?;
            if n < 0 {
                return Ok(Some((Frame::Miss, used)));
            }
            let n = n as usize;
            if buf.len() < used + n + 2 {
                return Ok(None);
            }
            return Ok(Some((Frame::Value(n), used + n + 2)));
        }
        b'*' | b'%' | b'~' => {
            let n = number(rest)?;
            if n < 0 {
                return Ok(Some((Frame::Miss, used)));
            }
            let n = if kind == b'%' { n * 2 } else { n } as usize;
            let mut items = Vec::with_capacity(n.min(64));
            let mut at = used;
            for _ in 0..n {
                match parse_resp(&buf[at..], depth + 1)? {
                    Some((f, u)) => {
                        items.push(f);
                        at += u;
                    }
                    None => return Ok(None),
                }
            }
            return Ok(Some((Frame::Array(items), at)));
        }
        other => {
            return Err(BenchError::Protocol(format!(
                "unexpected RESP type byte {:?}",
                char::from(other)
            )))
        }
    };
    Ok(Some((frame, used)))
}

/// Where the first value of one whole reply (as the parsers accepted it)
/// lies: a RESP bulk string, first in depth-first order; a memcached
/// text `VALUE`'s data; a binary response's value.
fn first_value(frame: &[u8], proto: Proto) -> Option<std::ops::Range<usize>> {
    match proto {
        Proto::Resp => resp_value(frame, 0).ok().and_then(|(v, _)| v),
        Proto::MemcacheText => {
            let (l, used) = line(frame).ok()??;
            let n = l.strip_prefix(b"VALUE ")?.split(|&b| b == b' ').nth(2)?;
            let n = usize::try_from(number(n).ok()?).ok()?;
            Some(used..used + n)
        }
        Proto::MemcacheBinary => {
            let key = usize::from(u16::from_be_bytes([*frame.get(2)?, *frame.get(3)?]));
            let from = 24 + usize::from(*frame.get(4)?) + key;
            let status = u16::from_be_bytes([*frame.get(6)?, *frame.get(7)?]);
            let get = matches!(frame.get(1), Some(0x00 | 0x0c));
            (get && status == 0 && from <= frame.len()).then_some(from..frame.len())
        }
        Proto::Echo => None,
    }
}

/// The first bulk string in the RESP frame at `at`, and where the frame
/// ends.
fn resp_value(
    buf: &[u8],
    at: usize,
) -> Result<(Option<std::ops::Range<usize>>, usize), BenchError> {
    let (l, used) = line(&buf[at..])?.ok_or(BenchError::Closed)?;
    let after = at + used;
    match l.split_first() {
        Some((b'$', n)) => match usize::try_from(number(n)?) {
            Ok(n) => Ok((Some(after..after + n), after + n + 2)),
            Err(_) => Ok((None, after)),
        },
        Some((&kind @ (b'*' | b'%' | b'~'), n)) => {
            let n = usize::try_from(number(n)?).unwrap_or(0) * if kind == b'%' { 2 } else { 1 };
            let (mut found, mut end) = (None, after);
            for _ in 0..n {
                let (v, e) = resp_value(buf, end)?;
                found = found.or(v);
                end = e;
            }
            Ok((found, end))
        }
        _ => Ok((None, after)),
    }
}

/// One memcached text reply to get/set/add/delete.
pub fn parse_mc_text(buf: &[u8]) -> Result<Option<(Frame, usize)>, BenchError> {
    let Some((l, used)) = line(buf)? else {
        return Ok(None);
    };
    let frame = match l {
        b"STORED" | b"DELETED" | b"TOUCHED" | b"OK" => Frame::Ok,
        b"END" | b"NOT_STORED" | b"NOT_FOUND" | b"EXISTS" => Frame::Miss,
        _ if l.starts_with(b"VALUE ") => {
            // VALUE key flags bytes [cas], the data, then END.
            let bytes = l
                .split(|&b| b == b' ')
                .nth(3)
                .ok_or_else(|| BenchError::Protocol("VALUE line without a length".into()))?;
            let n = usize::try_from(number(bytes)?)
                .map_err(|_| BenchError::Protocol("negative VALUE length".into()))?;
            let end = used + n + 2;
            if buf.len() < end + 5 {
                return Ok(None);
            }
            if &buf[end..end + 5] != b"END\r\n" {
                return Err(BenchError::Protocol("VALUE not followed by END".into()));
            }
            return Ok(Some((Frame::Value(n), end + 5)));
        }
        _ if l.iter().all(u8::is_ascii_digit) && !l.is_empty() => Frame::Int(number(l)?),
        _ => Frame::Error(String::from_utf8_lossy(l).into_owned()),
    };
    Ok(Some((frame, used)))
}

/// One memcached binary response.
pub fn parse_mc_binary(buf: &[u8]) -> Result<Option<(Frame, usize)>, BenchError> {
    if buf.len() < 24 {
        return Ok(None);
    }
    if buf[0] != 0x81 {
        return Err(BenchError::Protocol(format!(
            "bad response magic {:#04x}",
            buf[0]
        )));
    }
    let key_len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    let extras = usize::from(buf[4]);
    let status = u16::from_be_bytes([buf[6], buf[7]]);
    let body = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
    if buf.len() < 24 + body {
        return Ok(None);
    }
    let value = body.saturating_sub(extras + key_len);
    let frame = match status {
        0 if buf[1] == 0x00 || buf[1] == 0x0c => Frame::Value(value),
        0 => Frame::Ok,
        1 | 2 | 5 => Frame::Miss,
        s => Frame::Error(format!(
            "status {s:#06x}: {}",
            String::from_utf8_lossy(&buf[24 + extras + key_len..24 + body])
        )),
    };
    Ok(Some((frame, 24 + body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(r: Result<Option<(Frame, usize)>, BenchError>, len: usize) -> Frame {
        let (f, used) = r.expect("parses").expect("complete");
        assert_eq!(used, len);
        f
    }

    #[test]
    fn resp_replies_by_kind() {
        assert_eq!(whole(parse_resp(b"+OK\r\n", 0), 5), Frame::Ok);
        assert_eq!(whole(parse_resp(b"$-1\r\n", 0), 5), Frame::Miss);
        assert_eq!(whole(parse_resp(b"$3\r\nabc\r\n", 0), 9), Frame::Value(3));
        assert_eq!(whole(parse_resp(b":-7\r\n", 0), 5), Frame::Int(-7));
        assert_eq!(
            whole(parse_resp(b"-NOSCRIPT x\r\n", 0), 13),
            Frame::Error("NOSCRIPT x".into())
        );
        let open = b"*3\r\n:8\r\n$2\r\nab\r\n*0\r\n";
        assert_eq!(
            whole(parse_resp(open, 0), open.len()),
            Frame::Array(vec![Frame::Int(8), Frame::Value(2), Frame::Array(vec![])])
        );
        // Incomplete at every cut.
        for cut in 0..open.len() {
            assert!(
                parse_resp(&open[..cut], 0).expect("ok").is_none(),
                "cut {cut}"
            );
        }
        assert!(parse_resp(b"?x\r\n", 0).is_err());
    }

    #[test]
    fn first_values_of_replies() {
        let of = |f: &[u8], p| first_value(f, p).map(|r| f[r].to_vec());
        let open = b"*3\r\n:8\r\n$2\r\nab\r\n*2\r\n$1\r\nu\r\n$1\r\nv\r\n";
        assert_eq!(of(open, Proto::Resp), Some(b"ab".to_vec()));
        assert_eq!(of(b"$3\r\nabc\r\n", Proto::Resp), Some(b"abc".to_vec()));
        assert_eq!(
            of(b"*2\r\n$-1\r\n$1\r\nz\r\n", Proto::Resp),
            Some(b"z".to_vec())
        );
        assert_eq!(of(b"$-1\r\n", Proto::Resp), None);
        assert_eq!(of(b"+OK\r\n", Proto::Resp), None);
        let hit = b"VALUE k 0 3\r\nabc\r\nEND\r\n";
        assert_eq!(of(hit, Proto::MemcacheText), Some(b"abc".to_vec()));
        assert_eq!(of(b"END\r\n", Proto::MemcacheText), None);
        let mut getk = vec![0x81, 0x0c, 0, 1, 4, 0, 0, 0, 0, 0, 0, 8];
        getk.extend_from_slice(&[0; 12]);
        getk.extend_from_slice(b"\0\0\0\0kabc");
        assert_eq!(of(&getk, Proto::MemcacheBinary), Some(b"abc".to_vec()));
        getk[7] = 1; // not found
        assert_eq!(of(&getk, Proto::MemcacheBinary), None);
    }

    #[test]
    fn memcache_text_replies_by_kind() {
        let hit = b"VALUE k 0 3\r\nabc\r\nEND\r\n";
        assert_eq!(whole(parse_mc_text(hit), hit.len()), Frame::Value(3));
        for cut in 0..hit.len() {
            assert!(
                parse_mc_text(&hit[..cut]).expect("ok").is_none(),
                "cut {cut}"
            );
        }
        assert_eq!(whole(parse_mc_text(b"END\r\n"), 5), Frame::Miss);
        assert_eq!(whole(parse_mc_text(b"NOT_STORED\r\n"), 12), Frame::Miss);
        assert_eq!(whole(parse_mc_text(b"STORED\r\n"), 8), Frame::Ok);
        assert_eq!(
            whole(parse_mc_text(b"SERVER_ERROR out of memory\r\n"), 28),
            Frame::Error("SERVER_ERROR out of memory".into())
        );
    }

    #[test]
    fn memcache_binary_replies_by_kind() {
        let mut hit = vec![0x81, 0x0c, 0, 1, 4, 0, 0, 0, 0, 0, 0, 8];
        hit.extend_from_slice(&[0; 12]);
        hit.extend_from_slice(&[0, 0, 0, 0, b'k', b'a', b'b', b'c']);
        assert_eq!(whole(parse_mc_binary(&hit), 32), Frame::Value(3));
        assert!(parse_mc_binary(&hit[..31]).expect("ok").is_none());
        let mut exists = vec![0x81, 0x02, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0];
        exists.extend_from_slice(&[0; 12]);
        assert_eq!(whole(parse_mc_binary(&exists), 24), Frame::Miss);
        let mut stored = exists.clone();
        stored[7] = 0;
        assert_eq!(whole(parse_mc_binary(&stored), 24), Frame::Ok);
        assert!(parse_mc_binary(&[0x80; 24]).is_err());
    }
}
