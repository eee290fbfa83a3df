//! Writing replies in RESP2 or RESP3.

use bytes::{BufMut, BytesMut};
use sessiond_core::{InfoSection, Reply};

/// The RESP version a connection speaks; RESP2 until `HELLO 3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

/// Appends `reply` to `out`.
pub fn encode_reply(reply: &Reply, proto: Protocol, out: &mut BytesMut) {
    match reply {
        Reply::Ok => out.put_slice(b"+OK\r\n"),
        Reply::Status(s) => {
            out.put_u8(b'+');
            out.put_slice(s.as_bytes());
            out.put_slice(b"\r\n");
        }
        Reply::StatusText(s) => {
            out.put_u8(b'+');
            for &b in s.iter() {
                out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
            }
            out.put_slice(b"\r\n");
        }
        Reply::Nil => match proto {
            Protocol::Resp2 => out.put_slice(b"$-1\r\n"),
            Protocol::Resp3 => out.put_slice(b"_\r\n"),
        },
        Reply::Int(n) => put_int(out, *n),
        Reply::Bulk(b) => put_bulk(out, b),
        Reply::Array(items) => {
            put_header(out, b'*', items.len());
            for item in items {
                encode_reply(item, proto, out);
            }
        }
        Reply::Map(pairs) => {
            match proto {
                Protocol::Resp2 => put_header(out, b'*', pairs.len() * 2),
                Protocol::Resp3 => put_header(out, b'%', pairs.len()),
            }
            for (k, v) in pairs {
                encode_reply(k, proto, out);
                encode_reply(v, proto, out);
            }
        }
        Reply::Info(sections) => put_bulk(out, render_info(sections).as_bytes()),
        Reply::Item {
            data,
            flags,
            version,
        } => {
            put_header(out, b'*', 3);
            put_bulk(out, data);
            put_int(out, i64::from(*flags));
            put_int(out, clamp(*version));
        }
        Reply::Counter { value, version } => {
            put_header(out, b'*', 2);
            put_bulk(out, value.to_string().as_bytes());
            put_int(out, clamp(*version));
        }
        Reply::Version(n) | Reply::Key(n) => put_int(out, clamp(*n)),
        Reply::Ids(ids) => put_ids(out, ids),
        Reply::Page { cursor, ids } => {
            put_header(out, b'*', 2);
            put_bulk(out, cursor);
            put_ids(out, ids);
        }
        Reply::Keys { cursor, keys } => {
            put_header(out, b'*', 2);
            put_bulk(out, cursor);
            put_header(out, b'*', keys.len());
            for (id, _) in keys {
                put_bulk(out, id.as_bytes());
            }
        }
        Reply::Exec(None) => encode_reply(&Reply::Nil, proto, out),
        Reply::Exec(Some(results)) => {
            put_header(out, b'*', results.len());
            for result in results {
                match result {
                    Ok(reply) => encode_reply(reply, proto, out),
                    Err(e) => encode_error(e.code(), &e.to_string(), out),
                }
            }
        }
    }
}

/// An unsigned figure as a RESP integer (which is signed): past
/// `i64::MAX`, `i64::MAX` (no version or key gets there).
fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn put_int(out: &mut BytesMut, n: i64) {
    out.put_u8(b':');
    crate::decimal::put_i64(out, n);
    out.put_slice(b"\r\n");
}

fn put_ids(out: &mut BytesMut, ids: &[sessiond_core::SessionId]) {
    put_header(out, b'*', ids.len());
    for id in ids {
        put_bulk(out, id.as_bytes());
    }
}

/// Appends an error line `-CODE message`. Line breaks in `message` become
/// spaces, so a reply is always one line whatever a client sent.
pub fn encode_error(code: &str, message: &str, out: &mut BytesMut) {
    out.put_u8(b'-');
    // No code: the message is a whole error line (a Redis script's own).
    if !code.is_empty() {
        out.put_slice(code.as_bytes());
        out.put_u8(b' ');
    }
    for &b in message.as_bytes() {
        out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
    out.put_slice(b"\r\n");
}

/// The code and message RESP writes for `e`: a Redis script's own error
/// line as it is (no code of ours before it).
pub fn error_parts(e: &sessiond_core::Error) -> (&'static str, String) {
    match e {
        sessiond_core::Error::Raised(line) => ("", line.clone()),
        other => (other.code(), other.to_string()),
    }
}

/// Redis's INFO text: `# Section` headers, `field:value` lines, a blank
/// line between sections.
fn render_info(sections: &[InfoSection]) -> String {
    let mut text = String::new();
    for (i, section) in sections.iter().enumerate() {
        if i > 0 {
            text.push_str("\r\n");
        }
        text.push_str("# ");
        text.push_str(section.name);
        text.push_str("\r\n");
        for (field, value) in &section.fields {
            text.push_str(field);
            text.push(':');
            text.push_str(value);
            text.push_str("\r\n");
        }
    }
    text
}

/// A bulk string, as [`encode_reply`] writes a [`Reply::Bulk`] (the same in
/// RESP2 and RESP3), from bytes the caller holds.
pub fn encode_bulk(b: &[u8], out: &mut BytesMut) {
    put_bulk(out, b);
}

fn put_bulk(out: &mut BytesMut, b: &[u8]) {
    put_header(out, b'$', b.len());
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

fn put_header(out: &mut BytesMut, kind: u8, len: usize) {
    out.put_u8(kind);
    crate::decimal::put_u64(out, len as u64);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn enc(r: &Reply, p: Protocol) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_reply(r, p, &mut out);
        out.to_vec()
    }

    #[test]
    fn resp2_and_resp3_shapes() {
        let map = Reply::Map(vec![(Reply::text("a"), Reply::Int(-12))]);
        assert_eq!(enc(&map, Protocol::Resp2), b"*2\r\n$1\r\na\r\n:-12\r\n");
        assert_eq!(enc(&map, Protocol::Resp3), b"%1\r\n$1\r\na\r\n:-12\r\n");
        assert_eq!(enc(&Reply::Nil, Protocol::Resp2), b"$-1\r\n");
        assert_eq!(enc(&Reply::Nil, Protocol::Resp3), b"_\r\n");
        assert_eq!(
            enc(&Reply::Bulk(Bytes::new()), Protocol::Resp2),
            b"$0\r\n\r\n"
        );
        assert_eq!(
            enc(&Reply::Int(i64::MIN), Protocol::Resp2),
            b":-9223372036854775808\r\n"
        );
    }

    #[test]
    fn errors_stay_on_one_line() {
        let mut out = BytesMut::new();
        encode_error("ERR", "bad\r\nthing", &mut out);
        assert_eq!(&out[..], b"-ERR bad  thing\r\n");
    }
}
