//! memcached's text protocol: a command line, then (for storage commands)
//! a data block of the announced length and `\r\n`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{
    put_line, Answer, FrameError, Keys, Meta, Op, Parsed, Protocol, Request, Status, Store,
    StoreKind, MAX_KEY_LEN,
};
use crate::decimal::{parse as num, put_u64};
use crate::Limits;

const BAD_FORMAT: &str = "bad command line format";

fn refused(status: Status, message: &str, quiet: bool) -> Parsed {
    Parsed::Refused {
        meta: Meta {
            quiet,
            ..Meta::text()
        },
        status,
        message: message.to_string(),
        skip: 0,
    }
}

/// Whether `t` may be a key: at most 250 bytes, no control characters
/// or spaces.
fn is_key(t: &[u8]) -> bool {
    // Printable ASCII (0x21..=0x7e) or any byte of 0x80 and up. No early
    // exit: the loop runs over the whole key in vector steps.
    t.len() <= MAX_KEY_LEN && t.iter().fold(true, |ok, &b| ok & (b > b' ') & (b != 0x7f))
}

/// The keys of a get: slices of its `line`; None if one is no key.
fn keys_in(line: &Bytes, words: &[&[u8]]) -> Option<Keys> {
    if let [one] = words {
        return key_in(line, one).map(Keys::One);
    }
    let mut keys = Vec::with_capacity(words.len());
    for w in words {
        keys.push(key_in(line, w)?);
    }
    Some(Keys::Many(keys))
}

/// A key of a command without a data block: a slice of its `line`.
fn key_in(line: &Bytes, t: &[u8]) -> Option<Bytes> {
    is_key(t).then(|| line.slice_ref(t))
}

pub(super) fn parse(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Parsed>, FrameError> {
    let window = &buf[..buf.len().min(limits.max_inline_len + 1)];
    let Some(nl) = memchr::memchr(b'\n', window) else {
        if buf.len() > limits.max_inline_len {
            return Err(FrameError {
                protocol: Protocol::Text,
                message: format!("line longer than {} bytes", limits.max_inline_len),
            });
        }
        return Ok(None);
    };
    let end = if nl > 0 && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    let name = Name::of(buf[..end].split(|&b| b == b' ').find(|t| !t.is_empty()));
    if let Some(kind) = storage_kind(name.as_bytes()) {
        // The data block follows the line: both stay in the buffer until
        // the block is whole.
        let mut tokens = Tokens::default();
        let header = match shape(tokens.split(&buf[..end]), &name, limits) {
            Ok((args, noreply)) => Ok((storage_header(kind, args, buf), noreply)),
            Err(refusal) => Err(refusal),
        };
        return Ok(match header {
            Ok((header, noreply)) => read_block(buf, nl, header, noreply, limits),
            Err(refusal) => {
                buf.advance(nl + 1);
                Some(refusal)
            }
        });
    }
    // Any other command: its line is split off the buffer and its keys are
    // slices of it (they live as long as the request; the door copies the
    // id out of a key).
    let line = buf.split_to(nl + 1).freeze();
    let mut tokens = Tokens::default();
    Ok(Some(
        match shape(tokens.split(&line[..end]), &name, limits) {
            Ok((args, noreply)) => parse_line(&line, name.as_bytes(), args, noreply),
            Err(refusal) => refusal,
        },
    ))
}

/// A text request read where its bytes are: the two a session store sends
/// most, spelled the one way clients spell them (lower-case name, single
/// spaces, `\r\n`). [`quick`] finds it; anything else is [`parse`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quick<'a> {
    /// `get <key>`: one key.
    Get { key: &'a [u8] },
    /// `set <key> <flags> <exptime> <bytes> [noreply]` and its data block.
    Set {
        key: &'a [u8],
        flags: u32,
        exptime: i64,
        data: &'a [u8],
        noreply: bool,
    },
}

/// The request at the head of `buf` and the bytes it takes, if it is a
/// [`Quick`] one and whole; None otherwise (not one, not whole yet, or
/// anything `parse` refuses), and then `parse` reads the buffer as it
/// would have: a request this reads, `parse` reads alike (tested).
pub fn quick<'a>(buf: &'a [u8], limits: &Limits) -> Option<(Quick<'a>, usize)> {
    let window = &buf[..buf.len().min(limits.max_inline_len + 1)];
    let nl = memchr::memchr(b'\n', window)?;
    let line = buf[..nl].strip_suffix(b"\r")?;
    if let Some(key) = line.strip_prefix(b"get ") {
        let one = !key.is_empty() && is_key(key) && limits.max_args >= 2;
        return one.then_some((Quick::Get { key }, nl + 1));
    }
    // The short words split off the end, byte by byte; what is left is
    // the key (most often the longest word), never scanned for a space
    // (the key check refuses one).
    let rest = line.strip_prefix(b"set ")?;
    let (rest, last) = cut_last_word(rest)?;
    let (rest, len, noreply) = match last {
        b"noreply" => {
            let (rest, len) = cut_last_word(rest)?;
            (rest, len, true)
        }
        len => (rest, len, false),
    };
    let (rest, exptime) = cut_last_word(rest)?;
    let (key, flags) = cut_last_word(rest)?;
    if key.is_empty() || !is_key(key) {
        return None;
    }
    let (flags, exptime, len): (u32, i64, usize) = (num(flags)?, num(exptime)?, num(len)?);
    let tokens = if noreply { 6 } else { 5 };
    if tokens > limits.max_args || len > limits.max_bulk_len {
        return None;
    }
    let start = nl + 1;
    let end = start.checked_add(len)?;
    if buf.get(end..end.checked_add(2)?)? != b"\r\n" {
        return None;
    }
    let set = Quick::Set {
        key,
        flags,
        exptime,
        data: &buf[start..end],
        noreply,
    };
    Some((set, end + 2))
}

/// `s` before its last space, and the word after it.
fn cut_last_word(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = s.iter().rposition(|&b| b == b' ')?;
    Some((&s[..at], &s[at + 1..]))
}

/// One hit of a get: `VALUE <key> <flags> <bytes> [<cas>]`, the data.
pub fn put_hit(out: &mut BytesMut, key: &[u8], flags: u32, data: &[u8], cas: Option<u64>) {
    out.put_slice(b"VALUE ");
    out.put_slice(key);
    out.put_u8(b' ');
    put_u64(out, u64::from(flags));
    out.put_u8(b' ');
    put_u64(out, data.len() as u64);
    if let Some(cas) = cas {
        out.put_u8(b' ');
        put_u64(out, cas);
    }
    out.put_slice(b"\r\n");
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

fn storage_kind(name: &[u8]) -> Option<StoreKind> {
    match name {
        b"set" => Some(StoreKind::Set),
        b"add" => Some(StoreKind::Add),
        b"replace" => Some(StoreKind::Replace),
        b"append" => Some(StoreKind::Append),
        b"prepend" => Some(StoreKind::Prepend),
        b"cas" => Some(StoreKind::Cas(0)),
        _ => None,
    }
}

/// A line's arguments (its tokens after the name) and whether it ends in
/// `noreply` for a command that takes it; refused over `max_args` tokens.
fn shape<'a>(
    tokens: &'a [&'a [u8]],
    name: &Name,
    limits: &Limits,
) -> Result<(&'a [&'a [u8]], bool), Parsed> {
    if tokens.len() > limits.max_args {
        return Err(refused(Status::Invalid, "too many tokens", false));
    }
    let args = tokens.get(1..).unwrap_or_default();
    // A trailing `noreply` silences the reply of the commands that take it
    // (and is an argument like any other to those that do not).
    let takes_noreply = matches!(
        name.as_bytes(),
        b"set"
            | b"add"
            | b"replace"
            | b"append"
            | b"prepend"
            | b"cas"
            | b"delete"
            | b"incr"
            | b"decr"
            | b"touch"
            | b"flush_all"
            | b"verbosity"
    );
    Ok(match args.split_last() {
        Some((last, rest)) if takes_noreply && *last == b"noreply" => (rest, true),
        _ => (args, false),
    })
}

/// Tokens of a request line held on the stack; a line of more uses a
/// vector.
const FEW: usize = 16;

/// A line's space-separated tokens: on the stack for a short line.
struct Tokens<'a> {
    few: [&'a [u8]; FEW],
    many: Vec<&'a [u8]>,
}

impl Default for Tokens<'_> {
    fn default() -> Self {
        Self {
            few: [&[]; FEW],
            many: Vec::new(),
        }
    }
}

impl<'a> Tokens<'a> {
    fn split(&mut self, line: &'a [u8]) -> &[&'a [u8]] {
        let mut n = 0;
        let mut i = 0;
        while i < line.len() {
            if line[i] == b' ' {
                i += 1;
                continue;
            }
            let start = i;
            i = memchr::memchr(b' ', &line[i..]).map_or(line.len(), |k| i + k);
            let t = &line[start..i];
            if n < FEW {
                self.few[n] = t;
            } else {
                if n == FEW {
                    self.many.extend_from_slice(&self.few);
                }
                self.many.push(t);
            }
            n += 1;
        }
        if n <= FEW {
            &self.few[..n]
        } else {
            &self.many
        }
    }
}

/// A command's name, lower-cased on the stack (a name longer than any
/// command's is kept as none: it is answered as unknown).
struct Name {
    bytes: [u8; 16],
    len: usize,
}

impl Name {
    fn of(name: Option<&[u8]>) -> Self {
        let name = name.unwrap_or_default();
        let mut bytes = [0u8; 16];
        let len = match bytes.get_mut(..name.len()) {
            Some(slot) => {
                slot.copy_from_slice(name);
                slot.make_ascii_lowercase();
                name.len()
            }
            None => 0,
        };
        Self { bytes, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A command without a data block; `args` are slices of `line`.
fn parse_line(line: &Bytes, name: &[u8], args: &[&[u8]], noreply: bool) -> Parsed {
    let key = |t: &[u8]| key_in(line, t);
    let meta = Meta {
        quiet: noreply,
        ..Meta::text()
    };
    let request = |op| Parsed::Request(Request { op, meta });
    let bad = || refused(Status::Invalid, BAD_FORMAT, noreply);
    match name {
        b"get" | b"gets" => {
            let Some(keys) = keys_in(line, args) else {
                return bad();
            };
            if keys.is_empty() || noreply {
                return refused(Status::UnknownCommand, "", false);
            }
            Parsed::Request(Request {
                op: Op::Get { keys, touch: None },
                meta: Meta {
                    show_cas: name == b"gets",
                    ..Meta::text()
                },
            })
        }
        b"gat" | b"gats" => {
            let Some((exptime, keys)) = args.split_first() else {
                return refused(Status::UnknownCommand, "", false);
            };
            let Some(exptime) = num::<i64>(exptime) else {
                return refused(Status::Invalid, "invalid exptime argument", false);
            };
            let Some(keys) = keys_in(line, keys) else {
                return bad();
            };
            Parsed::Request(Request {
                op: Op::Get {
                    keys,
                    touch: Some(exptime),
                },
                meta: Meta {
                    show_cas: name == b"gats",
                    ..Meta::text()
                },
            })
        }
        b"delete" => match args {
            [k] => key(k).map_or_else(bad, |key| request(Op::Delete { key })),
            [k, zero] if *zero == b"0" => {
                key(k).map_or_else(bad, |key| request(Op::Delete { key }))
            }
            [] | [_, _, _, ..] => refused(Status::UnknownCommand, "", false),
            _ => refused(
                Status::Invalid,
                "bad command line format.  Usage: delete <key> [noreply]",
                noreply,
            ),
        },
        b"incr" | b"decr" => match args {
            [k, delta] => {
                let Some(key) = key(k) else { return bad() };
                let Some(delta) = num::<u64>(delta) else {
                    return refused(Status::Invalid, "invalid numeric delta argument", noreply);
                };
                request(Op::Incr {
                    key,
                    delta,
                    decr: name == b"decr",
                    initial: None,
                })
            }
            _ => refused(Status::UnknownCommand, "", false),
        },
        b"touch" => match args {
            [k, exptime] => match (key(k), num::<i64>(exptime)) {
                (Some(key), Some(exptime)) => request(Op::Touch { key, exptime }),
                _ => refused(Status::Invalid, "invalid exptime argument", noreply),
            },
            _ => refused(Status::UnknownCommand, "", false),
        },
        b"flush_all" => match args {
            [] => request(Op::FlushAll),
            [delay] if num::<i64>(delay).is_some() => request(Op::FlushAll),
            _ => refused(Status::Invalid, "invalid exptime argument", noreply),
        },
        // Like memcached: the level is not checked, and a lone `noreply`
        // is a silent no-op.
        b"verbosity" => match args {
            [_] => request(Op::Verbosity),
            [] if noreply => request(Op::Verbosity),
            _ => refused(Status::UnknownCommand, "", false),
        },
        // Like memcached, both ignore anything after the command.
        b"version" => request(Op::Version),
        b"quit" => request(Op::Quit),
        b"stats" => match args {
            [] => request(Op::Stats { group: None }),
            [group] => request(Op::Stats {
                group: Some(Bytes::copy_from_slice(group)),
            }),
            _ => refused(Status::UnknownCommand, "", false),
        },
        _ => refused(Status::UnknownCommand, "", false),
    }
}

/// The fields of a storage command line.
struct StoreHeader {
    kind: StoreKind,
    /// Where the key is in the line: its first byte and length.
    key: (usize, usize),
    flags: u32,
    exptime: i64,
    len: usize,
}

/// `<cmd> <key> <flags> <exptime> <bytes> [<cas>]` (after `noreply` is off).
fn storage_header(kind: StoreKind, args: &[&[u8]], line: &[u8]) -> Option<StoreHeader> {
    let cas = matches!(kind, StoreKind::Cas(_));
    if args.len() != if cas { 5 } else { 4 } {
        return None;
    }
    let key = args[0];
    if !is_key(key) {
        return None;
    }
    Some(StoreHeader {
        // The token is a slice of the line.
        key: (key.as_ptr() as usize - line.as_ptr() as usize, key.len()),
        kind: if cas {
            StoreKind::Cas(num(args[4])?)
        } else {
            kind
        },
        flags: num(args[1])?,
        exptime: num(args[2])?,
        len: num(args[3])?,
    })
}

/// The data block after a storage command line ending at `nl`.
fn read_block(
    buf: &mut BytesMut,
    nl: usize,
    header: Option<StoreHeader>,
    noreply: bool,
    limits: &Limits,
) -> Option<Parsed> {
    let Some(h) = header else {
        buf.advance(nl + 1);
        return Some(refused(Status::Invalid, BAD_FORMAT, noreply));
    };
    let meta = Meta {
        quiet: noreply,
        ..Meta::text()
    };
    let block = h.len.saturating_add(2);
    if h.len > limits.max_bulk_len {
        // Too large: answer at once and discard the data as it arrives.
        let here = (buf.len() - (nl + 1)).min(block);
        buf.advance(nl + 1 + here);
        return Some(Parsed::Refused {
            meta,
            status: Status::TooLarge,
            message: String::new(),
            skip: block - here,
        });
    }
    if buf.len() < nl + 1 + block {
        return None;
    }
    // The line is split off: the key is a slice of it (it lives as long
    // as the request; the door copies the id out of it).
    let line = buf.split_to(nl + 1).freeze();
    if &buf[h.len..block] != b"\r\n" {
        buf.advance(block);
        return Some(refused(Status::Invalid, "bad data chunk", noreply));
    }
    let (at, len) = h.key;
    let key = line.slice(at..at + len);
    // A copy of exactly the value, not a slice of the connection's buffer:
    // a stored value would otherwise keep that whole buffer alive.
    let data = Bytes::copy_from_slice(&buf[..h.len]);
    buf.advance(block);
    Some(Parsed::Request(Request {
        op: Op::Store(Store {
            kind: h.kind,
            key,
            flags: h.flags,
            exptime: h.exptime,
            data,
        }),
        meta,
    }))
}

pub(super) fn encode(answer: &Answer, meta: &Meta, out: &mut BytesMut) {
    if meta.quiet && quiet_drops(answer) {
        return;
    }
    match answer {
        Answer::Hits(hits) => {
            for h in hits {
                put_hit(
                    out,
                    &h.key,
                    h.flags,
                    &h.data,
                    meta.show_cas.then_some(h.cas),
                );
            }
            out.put_slice(b"END\r\n");
        }
        Answer::Stored { .. } => out.put_slice(b"STORED\r\n"),
        Answer::Deleted => out.put_slice(b"DELETED\r\n"),
        Answer::Touched => out.put_slice(b"TOUCHED\r\n"),
        Answer::Number { value, .. } => {
            put_u64(out, *value);
            out.put_slice(b"\r\n");
        }
        Answer::Ok => out.put_slice(b"OK\r\n"),
        Answer::Version(v) => put_line(out, &[b"VERSION ", v.as_bytes()]),
        Answer::Sasl(v) => put_line(out, &[v.as_bytes()]),
        Answer::Stats(stats) => {
            for (name, value) in stats {
                put_line(out, &[b"STAT ", name.as_bytes(), b" ", value.as_bytes()]);
            }
            out.put_slice(b"END\r\n");
        }
        Answer::Fail(status, message) => match status {
            Status::NotFound => out.put_slice(b"NOT_FOUND\r\n"),
            Status::Exists => out.put_slice(b"EXISTS\r\n"),
            Status::NotStored => out.put_slice(b"NOT_STORED\r\n"),
            Status::TooLarge => out.put_slice(b"SERVER_ERROR object too large for cache\r\n"),
            Status::NonNumeric => {
                out.put_slice(b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
            }
            Status::UnknownCommand => out.put_slice(b"ERROR\r\n"),
            Status::Invalid => put_line(out, &[b"CLIENT_ERROR ", one_line(message).as_bytes()]),
            Status::ServerError => put_line(out, &[b"SERVER_ERROR ", one_line(message).as_bytes()]),
            Status::AuthError => put_line(out, &[b"CLIENT_ERROR ", one_line(message).as_bytes()]),
        },
    }
}

/// What `noreply` leaves out: every ordinary outcome; errors still show, as
/// in memcached.
fn quiet_drops(answer: &Answer) -> bool {
    !matches!(
        answer,
        Answer::Fail(
            Status::Invalid
                | Status::TooLarge
                | Status::NonNumeric
                | Status::UnknownCommand
                | Status::ServerError,
            _
        )
    )
}

fn one_line(message: &str) -> String {
    message.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod key_tests {
    use super::*;

    /// Every byte, alone and inside a key, is allowed exactly when it is
    /// printable ASCII or 0x80 and up; a key is at most 250 bytes.
    #[test]
    fn a_key_is_printable_and_short() {
        for b in 0..=255u8 {
            let allowed = (0x21..=0x7e).contains(&b) || b >= 0x80;
            assert_eq!(is_key(&[b]), allowed, "{b:#x}");
            let mut long = vec![b'k'; 40];
            long[17] = b;
            assert_eq!(is_key(&long), allowed, "{b:#x} inside");
        }
        assert!(is_key(&[b'k'; MAX_KEY_LEN]));
        assert!(!is_key(&[b'k'; MAX_KEY_LEN + 1]));
    }
}
