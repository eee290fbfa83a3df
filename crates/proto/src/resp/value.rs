//! Parsing any RESP2/RESP3 value (what a server sends back), for clients.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::Limits;

/// A RESP value as received.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `+text`
    Simple(String),
    /// `-CODE message`
    Error(String),
    /// `:n`
    Int(i64),
    /// `$n` bytes (or `=` verbatim, with its format prefix removed)
    Bulk(Bytes),
    /// `$-1`, `*-1` or `_`
    Nil,
    /// `*n` (also `~` sets and `>` pushes)
    Array(Vec<Value>),
    /// `%n` pairs
    Map(Vec<(Value, Value)>),
    /// `#t` / `#f`
    Bool(bool),
    /// `,` doubles, `(` big numbers: kept as text
    Number(String),
}

/// A reply that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("unknown RESP type byte {0:#04x}")]
    UnknownType(u8),
    #[error("malformed RESP line")]
    BadLine,
    #[error("RESP value over the size limit")]
    TooLarge,
    #[error("RESP value nested too deeply")]
    TooDeep,
}

const MAX_DEPTH: usize = 32;

/// Takes one value off the front of `buf`; `Ok(None)` if it is not whole yet.
pub fn parse_value(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Value>, ValueError> {
    let mut pos = 0;
    match parse_at(buf, &mut pos, limits, 0)? {
        Some(v) => {
            buf.advance(pos);
            Ok(Some(v))
        }
        None => Ok(None),
    }
}

fn line<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    limits: &Limits,
) -> Result<Option<&'a [u8]>, ValueError> {
    let start = *pos;
    let rest = &buf[start..];
    let window = &rest[..rest.len().min(limits.max_inline_len + 2)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(i) => {
            *pos = start + i + 2;
            Ok(Some(&rest[..i]))
        }
        None if window.len() > limits.max_inline_len => Err(ValueError::TooLarge),
        None => Ok(None),
    }
}

fn int(l: &[u8]) -> Result<i64, ValueError> {
    std::str::from_utf8(l)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ValueError::BadLine)
}

fn text(l: &[u8]) -> String {
    String::from_utf8_lossy(l).into_owned()
}

fn parse_at(
    buf: &[u8],
    pos: &mut usize,
    limits: &Limits,
    depth: usize,
) -> Result<Option<Value>, ValueError> {
    if depth > MAX_DEPTH {
        return Err(ValueError::TooDeep);
    }
    let Some(&kind) = buf.get(*pos) else {
        return Ok(None);
    };
    *pos += 1;
    let Some(l) = line(buf, pos, limits)? else {
        return Ok(None);
    };
    Ok(Some(match kind {
        b'+' => Value::Simple(text(l)),
        b'-' => Value::Error(text(l)),
        b':' => Value::Int(int(l)?),
        b'_' => Value::Nil,
        b'#' => Value::Bool(l == b"t"),
        b',' | b'(' => Value::Number(text(l)),
        b'$' | b'=' | b'!' => {
            let n = int(l)?;
            if n < 0 {
                return Ok(Some(Value::Nil));
            }
            let n = n as u64;
            if n > limits.max_bulk_len as u64 {
                return Err(ValueError::TooLarge);
            }
            let n = n as usize;
            if buf.len() < *pos + n + 2 {
                return Ok(None);
            }
            let mut body = &buf[*pos..*pos + n];
            *pos += n + 2;
            if kind == b'=' && body.len() >= 4 {
                body = &body[4..];
            }
            if kind == b'!' {
                return Ok(Some(Value::Error(text(body))));
            }
            Value::Bulk(Bytes::copy_from_slice(body))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = int(l)?;
            if n < 0 {
                return Ok(Some(Value::Nil));
            }
            let n = n as u64;
            if n > limits.max_args as u64 {
                return Err(ValueError::TooLarge);
            }
            let n = n as usize;
            let items = if kind == b'%' || kind == b'|' {
                n * 2
            } else {
                n
            };
            let mut values = Vec::with_capacity(items.min(1024));
            for _ in 0..items {
                match parse_at(buf, pos, limits, depth + 1)? {
                    Some(v) => values.push(v),
                    None => return Ok(None),
                }
            }
            if kind == b'%' || kind == b'|' {
                let mut pairs = Vec::with_capacity(n);
                let mut it = values.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                if kind == b'|' {
                    // An attribute precedes the real value; skip it.
                    return parse_at(buf, pos, limits, depth + 1);
                }
                Value::Map(pairs)
            } else {
                Value::Array(values)
            }
        }
        other => return Err(ValueError::UnknownType(other)),
    }))
}

/// Appends a command as a RESP array of bulk strings.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    out.put_u8(b'*');
    out.put_slice(args.len().to_string().as_bytes());
    out.put_slice(b"\r\n");
    for a in args {
        let a = a.as_ref();
        out.put_u8(b'$');
        out.put_slice(a.len().to_string().as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(a);
        out.put_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_resp3() {
        let mut buf = BytesMut::from(&b"%1\r\n+k\r\n*2\r\n:1\r\n_\r\n$3\r\nab"[..]);
        let v = parse_value(&mut buf, &Limits::default()).unwrap().unwrap();
        assert_eq!(
            v,
            Value::Map(vec![(
                Value::Simple("k".into()),
                Value::Array(vec![Value::Int(1), Value::Nil])
            )])
        );
        assert_eq!(parse_value(&mut buf, &Limits::default()).unwrap(), None);
        buf.extend_from_slice(b"c\r\n");
        assert_eq!(
            parse_value(&mut buf, &Limits::default()).unwrap(),
            Some(Value::Bulk(Bytes::from("abc")))
        );
    }

    #[test]
    fn command_encoding_round_trips_through_the_request_parser() {
        let mut out = BytesMut::new();
        encode_command(&["SESSION.SET", "id", "a b\r\n"], &mut out);
        let args = crate::resp::parse_request(&mut out, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(args[2], Bytes::from("a b\r\n"));
    }
}
