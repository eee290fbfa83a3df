//! The MySQL/MariaDB client/server protocol's pieces: packets (a 3-byte
//! length, a sequence number, the payload; payloads of 2^24 − 1 bytes or
//! more go as several packets), the integers and strings inside them, and
//! the OK, ERR and column-definition packets. Every read is bounded: a
//! reply larger than [`MAX_REPLY`] ends the connection with an error.

use std::fmt;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest payload one packet carries; a payload of this length is
/// continued in the next packet.
pub const MAX_CHUNK: usize = 0xff_ffff;

/// The largest payload (all its packets together) a connection reads:
/// above the largest row sessiond writes (a session's data is bounded far
/// below it), and the `max_allowed_packet` it asks the server to keep to.
pub const MAX_REPLY: usize = 256 << 20;

/// Why a request to the database failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MyError {
    /// The server refused it: its error number, SQLSTATE and message.
    Server {
        code: u16,
        state: String,
        message: String,
    },
    /// The connection failed or ended (the request may or may not have
    /// run).
    Io(String),
    /// The server sent what the protocol does not allow here.
    Protocol(String),
    /// Logging in failed for a reason of the client's (a method it cannot
    /// use, a URL it cannot follow).
    Login(String),
}

impl fmt::Display for MyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MyError::Server {
                code,
                state,
                message,
            } => write!(f, "{code} ({state}): {message}"),
            MyError::Io(m) => write!(f, "connection: {m}"),
            MyError::Protocol(m) => write!(f, "protocol: {m}"),
            MyError::Login(m) => write!(f, "login: {m}"),
        }
    }
}

impl std::error::Error for MyError {}

impl From<std::io::Error> for MyError {
    fn from(e: std::io::Error) -> Self {
        MyError::Io(e.to_string())
    }
}

pub fn protocol(m: impl Into<String>) -> MyError {
    MyError::Protocol(m.into())
}

/// Reads one payload (joining continued packets); returns it and the
/// sequence number of its last packet.
pub async fn read_payload<R: AsyncRead + Unpin>(
    r: &mut R,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<u8, MyError> {
    out.clear();
    loop {
        let mut head = [0u8; 4];
        r.read_exact(&mut head).await?;
        let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
        if out.len() + len > limit {
            return Err(protocol(format!(
                "a reply of more than {limit} bytes (the client's limit)"
            )));
        }
        let at = out.len();
        out.resize(at + len, 0);
        r.read_exact(&mut out[at..]).await?;
        if len < MAX_CHUNK {
            return Ok(head[3]);
        }
    }
}

/// Appends `payload` to `out` as packets numbered from `seq`; returns the
/// number after the last.
pub fn frame(payload: &[u8], mut seq: u8, out: &mut Vec<u8>) -> u8 {
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_CHUNK);
        out.extend_from_slice(&[n as u8, (n >> 8) as u8, (n >> 16) as u8, seq]);
        out.extend_from_slice(&rest[..n]);
        seq = seq.wrapping_add(1);
        rest = &rest[n..];
        if n < MAX_CHUNK {
            return seq;
        }
    }
}

/// A length-encoded integer.
pub fn put_lenenc(out: &mut Vec<u8>, v: u64) {
    if v < 251 {
        out.push(v as u8);
    } else if v < 1 << 16 {
        out.push(0xfc);
        out.extend_from_slice(&(v as u16).to_le_bytes());
    } else if v < 1 << 24 {
        out.push(0xfd);
        out.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
    } else {
        out.push(0xfe);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// A length-encoded string.
pub fn put_lenenc_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_lenenc(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Reading a payload from the front.
pub struct Cur<'a> {
    pub b: &'a [u8],
}

impl<'a> Cur<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Self { b }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], MyError> {
        if self.b.len() < n {
            return Err(protocol("a packet ended early"));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, MyError> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, MyError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Result<u32, MyError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, MyError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A length-encoded integer; None for the NULL marker (0xfb).
    pub fn lenenc(&mut self) -> Result<Option<u64>, MyError> {
        Ok(match self.u8()? {
            0xfb => None,
            0xfc => Some(u64::from(self.u16()?)),
            0xfd => {
                let b = self.take(3)?;
                Some(u64::from(b[0]) | u64::from(b[1]) << 8 | u64::from(b[2]) << 16)
            }
            0xfe => Some(self.u64()?),
            0xff => return Err(protocol("0xff as a length")),
            n => Some(u64::from(n)),
        })
    }

    /// A length-encoded string; None for NULL.
    pub fn lenenc_bytes(&mut self) -> Result<Option<&'a [u8]>, MyError> {
        match self.lenenc()? {
            None => Ok(None),
            Some(n) => {
                let n = usize::try_from(n).map_err(|_| protocol("a string too long"))?;
                self.take(n).map(Some)
            }
        }
    }

    /// A string ended by a 0 byte (the rest if there is none).
    pub fn nul_str(&mut self) -> &'a [u8] {
        match self.b.iter().position(|&c| c == 0) {
            Some(i) => {
                let s = &self.b[..i];
                self.b = &self.b[i + 1..];
                s
            }
            None => std::mem::take(&mut self.b),
        }
    }
}

/// The server status flag that says another result follows.
pub const MORE_RESULTS: u16 = 0x0008;

/// An OK packet's figures.
#[derive(Debug, Default, Clone, Copy)]
pub struct Ok_ {
    pub affected: u64,
    pub status: u16,
}

/// Reads an OK packet (its first byte, 0x00 or 0xfe, included).
pub fn ok_packet(p: &[u8]) -> Result<Ok_, MyError> {
    let mut c = Cur::new(p);
    c.u8()?;
    let affected = c.lenenc()?.unwrap_or(0);
    c.lenenc()?;
    let status = c.u16()?;
    Ok(Ok_ { affected, status })
}

/// Reads an EOF packet's status flags (0xfe, warnings, status).
pub fn eof_status(p: &[u8]) -> Result<u16, MyError> {
    let mut c = Cur::new(p);
    c.u8()?;
    c.u16()?;
    c.u16()
}

/// Whether `p` is an EOF packet (and not a row that starts with 0xfe).
pub fn is_eof(p: &[u8]) -> bool {
    p.first() == Some(&0xfe) && p.len() < 9
}

/// Reads an ERR packet (0xff, the error number, `#` and the SQLSTATE,
/// the message).
pub fn err_packet(p: &[u8]) -> MyError {
    let mut c = Cur::new(p);
    let parse = |c: &mut Cur<'_>| -> Result<MyError, MyError> {
        c.u8()?;
        let code = c.u16()?;
        let mut state = String::from("HY000");
        if c.b.first() == Some(&b'#') && c.b.len() >= 6 {
            c.u8()?;
            state = String::from_utf8_lossy(c.take(5)?).into_owned();
        }
        Ok(MyError::Server {
            code,
            state,
            message: String::from_utf8_lossy(c.b).into_owned(),
        })
    };
    parse(&mut c).unwrap_or_else(|e| e)
}

/// What a column definition says that decoding a binary row needs.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub kind: u8,
    pub unsigned: bool,
}

/// Column types (the protocol's numbers).
pub mod kind {
    pub const TINY: u8 = 0x01;
    pub const SHORT: u8 = 0x02;
    pub const LONG: u8 = 0x03;
    pub const FLOAT: u8 = 0x04;
    pub const DOUBLE: u8 = 0x05;
    pub const NULL: u8 = 0x06;
    pub const LONGLONG: u8 = 0x08;
    pub const INT24: u8 = 0x09;
    pub const YEAR: u8 = 0x0d;
    pub const BLOB: u8 = 0xfc;
}

/// Reads a column definition (protocol 4.1).
pub fn column(p: &[u8]) -> Result<Column, MyError> {
    let mut c = Cur::new(p);
    for _ in 0..6 {
        c.lenenc_bytes()?;
    }
    c.lenenc()?;
    c.u16()?;
    c.u32()?;
    let kind = c.u8()?;
    let flags = c.u16()?;
    Ok(Column {
        kind,
        unsigned: flags & 0x20 != 0,
    })
}

/// A value in a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    UInt(u64),
    Double(f64),
    Bytes(Vec<u8>),
}

impl Value {
    /// The value as an integer (None: NULL): an integer column, a double
    /// (truncated), or text of digits, as the text protocol sends numbers
    /// (a decimal's fraction dropped).
    pub fn to_i64(&self) -> Result<Option<i64>, MyError> {
        match self {
            Value::Null => Ok(None),
            Value::Int(n) => Ok(Some(*n)),
            Value::UInt(n) => i64::try_from(*n)
                .map(Some)
                .map_err(|_| MyError::Protocol("a number above 2^63".into())),
            Value::Double(d) => Ok(Some(*d as i64)),
            Value::Bytes(b) => std::str::from_utf8(b)
                .ok()
                .map(|s| s.split('.').next().unwrap_or(s))
                .and_then(|s| s.parse::<i64>().ok())
                .map(Some)
                .ok_or_else(|| {
                    MyError::Protocol("a number the database sent as text is not one".into())
                }),
        }
    }
}

/// Reads a row of the binary protocol.
pub fn binary_row(p: &[u8], columns: &[Column]) -> Result<Vec<Value>, MyError> {
    let mut c = Cur::new(p);
    if c.u8()? != 0 {
        return Err(protocol("a binary row without its 0 header"));
    }
    let nulls = c.take((columns.len() + 9) / 8)?;
    let mut row = Vec::with_capacity(columns.len());
    for (i, col) in columns.iter().enumerate() {
        let bit = i + 2;
        if nulls[bit / 8] & (1 << (bit % 8)) != 0 {
            row.push(Value::Null);
            continue;
        }
        let int = |v: u64, bits: u32, c: &Column| -> Value {
            if c.unsigned {
                Value::UInt(v)
            } else {
                let shift = 64 - bits;
                Value::Int(((v << shift) as i64) >> shift)
            }
        };
        row.push(match col.kind {
            kind::TINY => int(u64::from(c.u8()?), 8, col),
            kind::SHORT | kind::YEAR => int(u64::from(c.u16()?), 16, col),
            kind::LONG | kind::INT24 => int(u64::from(c.u32()?), 32, col),
            kind::LONGLONG => int(c.u64()?, 64, col),
            kind::FLOAT => Value::Double(f64::from(f32::from_bits(c.u32()?))),
            kind::DOUBLE => Value::Double(f64::from_bits(c.u64()?)),
            kind::NULL => Value::Null,
            // Everything else this client is given (strings, blobs,
            // decimals) is length-encoded bytes.
            _ => Value::Bytes(
                c.lenenc_bytes()?
                    .ok_or_else(|| protocol("NULL inside a binary row"))?
                    .to_vec(),
            ),
        });
    }
    Ok(row)
}

/// Reads a row of the text protocol: every value a string or NULL.
pub fn text_row(p: &[u8], columns: usize) -> Result<Vec<Value>, MyError> {
    let mut c = Cur::new(p);
    let mut row = Vec::with_capacity(columns);
    for _ in 0..columns {
        row.push(match c.lenenc_bytes()? {
            None => Value::Null,
            Some(b) => Value::Bytes(b.to_vec()),
        });
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn payloads_split_and_join_at_the_packet_limit() {
        for len in [0, 1, MAX_CHUNK - 1, MAX_CHUNK, MAX_CHUNK + 1, 2 * MAX_CHUNK] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut wire = Vec::new();
            let next = frame(&payload, 3, &mut wire);
            let packets = len / MAX_CHUNK + 1;
            assert_eq!(next, 3 + packets as u8, "len {len}");
            let mut back = Vec::new();
            let last = read_payload(&mut wire.as_slice(), &mut back, MAX_REPLY)
                .await
                .expect("read");
            assert_eq!(last, 3 + packets as u8 - 1);
            assert!(back == payload, "len {len}");
        }
    }

    #[test]
    fn lengths_round_trip() {
        for v in [
            0,
            250,
            251,
            65_535,
            65_536,
            (1 << 24) - 1,
            1 << 24,
            u64::MAX,
        ] {
            let mut b = Vec::new();
            put_lenenc(&mut b, v);
            assert_eq!(Cur::new(&b).lenenc().expect("read"), Some(v));
        }
        assert_eq!(Cur::new(&[0xfb]).lenenc().expect("null"), None);
        assert!(Cur::new(&[0xfc, 1]).lenenc().is_err(), "cut short");
    }

    #[test]
    fn binary_rows_read_signed_unsigned_and_null() {
        let cols = [
            Column {
                kind: kind::LONGLONG,
                unsigned: false,
            },
            Column {
                kind: kind::TINY,
                unsigned: false,
            },
            Column {
                kind: kind::BLOB,
                unsigned: false,
            },
            Column {
                kind: kind::LONG,
                unsigned: true,
            },
        ];
        // Column 2 (bit 4 of the bitmap, after the two reserved bits) NULL.
        let mut p = vec![0, 0b0001_0000];
        p.extend_from_slice(&(-5i64).to_le_bytes());
        p.push(0xff);
        p.extend_from_slice(&u32::MAX.to_le_bytes());
        let row = binary_row(&p, &cols).expect("row");
        assert_eq!(
            row,
            vec![
                Value::Int(-5),
                Value::Int(-1),
                Value::Null,
                Value::UInt(u64::from(u32::MAX))
            ]
        );
    }

    #[tokio::test]
    async fn a_reply_over_the_limit_is_refused() {
        let mut wire = Vec::new();
        frame(&[7; 100], 0, &mut wire);
        let mut back = Vec::new();
        let e = read_payload(&mut wire.as_slice(), &mut back, 99).await;
        assert!(matches!(e, Err(MyError::Protocol(_))), "{e:?}");
    }
}
