//! The HTTP_SessionServer line protocol: one command per line, one reply
//! line, for `telnet` and the old PEAR client.
//!
//! ```text
//! new                      -> ok <id>       create a session, open it for writing
//! open <id> [w|r]          -> ok            open for writing (exclusive, waits) or reading (shared)
//! put <name> <value>       -> ok            set a variable (write mode); the value is the rest of the line
//! get <name>               -> ok <value>    read a variable
//! remove <name>            -> ok            remove a variable (write mode)
//! get_all                  -> ok <n>=<v>&…  every variable, URL-query encoded
//! put_all <n>=<v>&…        -> ok            set many variables (write mode)
//! commit                   -> ok            keep reading, let other readers in (write → read)
//! regenerate_id            -> ok <newid>    rename the open session (write mode)
//! close                    -> ok            release the session
//! auth <user> <password>   -> ok            log in (servers with users); the password is the rest of the line
//! quit                     -> ok            and the connection closes
//! <function> [param ...]   -> ok [answer]   run a plugin function on the open session (write mode)
//! ```
//!
//! Errors are `err <message>`. A value is sent and returned with `%`, CR
//! and LF percent-encoded (`%25`, `%0D`, `%0A`), so every reply is one line;
//! `get_all`/`put_all` use URL query encoding (`%XX` for anything but
//! letters, digits and `-._~`).

use bytes::{BufMut, Bytes, BytesMut};

use crate::Limits;

/// One line-protocol command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineCommand {
    New,
    Open {
        id: Bytes,
        write: bool,
    },
    Put {
        name: Bytes,
        value: Bytes,
    },
    Get {
        name: Bytes,
    },
    Remove {
        name: Bytes,
    },
    GetAll,
    PutAll {
        pairs: Vec<(Bytes, Bytes)>,
    },
    Commit,
    RegenerateId,
    Close,
    /// Log in; the password is percent-decoded like a value.
    Auth {
        user: Bytes,
        password: Bytes,
    },
    Quit,
    /// Any other word that could name a plugin function: HTTP_SessionServer's
    /// "your own commands" (docs/plugins.md). Params are space-separated,
    /// each percent-decoded like a value.
    Own {
        name: Bytes,
        params: Vec<Bytes>,
    },
}

/// The words a line names its commands with: a plugin function's name
/// can be one.
const COMMANDS: &str =
    "new, open, put, get, remove, get_all, put_all, commit, regenerate_id, close, auth, quit";

/// The refusal of a word that is no command (and no plugin function).
pub fn unknown_command(word: &[u8]) -> String {
    format!(
        "unknown command '{}'; try {COMMANDS}, or a plugin function (docs/plugins.md)",
        String::from_utf8_lossy(&word[..word.len().min(32)])
    )
}

/// A line that could not be understood (the connection goes on).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LineError(pub String);

/// Takes one line off the front of `buf`. `Ok(None)`: no whole line yet.
/// A line longer than `limits.max_inline_len` is an error that consumes it.
pub fn parse_line(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Result<LineCommand, LineError>>, LineError> {
    let window = &buf[..buf.len().min(limits.max_inline_len + 1)];
    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
        if buf.len() > limits.max_inline_len {
            return Err(LineError(format!(
                "line longer than {} bytes",
                limits.max_inline_len
            )));
        }
        return Ok(None);
    };
    let line = buf.split_to(nl + 1);
    let line = line.strip_suffix(b"\n").unwrap_or(&line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok(Some(command(line)))
}

fn command(line: &[u8]) -> Result<LineCommand, LineError> {
    let (word, rest) = split_word(line);
    let need = |what: &str| LineError(format!("usage: {what}"));
    let name = String::from_utf8_lossy(word).to_ascii_lowercase();
    Ok(match name.as_str() {
        "new" => LineCommand::New,
        "open" => {
            let (id, rest) = split_word(rest);
            if id.is_empty() {
                return Err(need("open <id> [w|r]"));
            }
            let write = match split_word(rest).0 {
                b"" | b"w" | b"W" => true,
                b"r" | b"R" => false,
                _ => return Err(need("open <id> [w|r]")),
            };
            LineCommand::Open {
                id: Bytes::copy_from_slice(id),
                write,
            }
        }
        "put" => {
            let (name, value) = split_word(rest);
            if name.is_empty() {
                return Err(need("put <name> <value>"));
            }
            LineCommand::Put {
                name: Bytes::copy_from_slice(name),
                value: unescape(value),
            }
        }
        "get" | "remove" => {
            let (name, _) = split_word(rest);
            if name.is_empty() {
                return Err(need(&format!(
                    "{name_} <name>",
                    name_ = String::from_utf8_lossy(word)
                )));
            }
            let name = Bytes::copy_from_slice(name);
            if word.eq_ignore_ascii_case(b"get") {
                LineCommand::Get { name }
            } else {
                LineCommand::Remove { name }
            }
        }
        "get_all" => LineCommand::GetAll,
        "put_all" => LineCommand::PutAll {
            pairs: query_decode(rest).ok_or_else(|| need("put_all <name>=<value>&..."))?,
        },
        "commit" => LineCommand::Commit,
        "regenerate_id" => LineCommand::RegenerateId,
        "close" => LineCommand::Close,
        "auth" => {
            let (user, password) = split_word(rest);
            if user.is_empty() || password.is_empty() {
                return Err(need("auth <user> <password>"));
            }
            LineCommand::Auth {
                user: Bytes::copy_from_slice(user),
                password: unescape(password),
            }
        }
        "quit" | "exit" => LineCommand::Quit,
        "" => return Err(LineError("empty line".into())),
        _ if could_name_a_function(word) => LineCommand::Own {
            name: Bytes::copy_from_slice(word),
            params: rest
                .split(|&b| b == b' ')
                .filter(|w| !w.is_empty())
                .map(unescape)
                .collect(),
        },
        _ => return Err(LineError(unknown_command(word))),
    })
}

/// Whether `word` has the shape of a plugin function's name (letters,
/// digits, `_`, `.`, `-`; up to 64).
fn could_name_a_function(word: &[u8]) -> bool {
    word.len() <= 64
        && word
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Items URL-encoded and separated by spaces (a function's list answer).
pub fn list_encode(items: impl Iterator<Item = Bytes>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        percent(&item, &mut out);
    }
    out
}

/// The first space-separated word, and the rest after one space.
fn split_word(s: &[u8]) -> (&[u8], &[u8]) {
    let s = s.strip_prefix(b" ").map_or(s, |t| {
        let skip = t.iter().take_while(|&&b| b == b' ').count();
        &t[skip..]
    });
    match s.iter().position(|&b| b == b' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &[]),
    }
}

/// `ok`, or `ok <text>`.
pub fn ok(out: &mut BytesMut, text: Option<&[u8]>) {
    out.put_slice(b"ok");
    if let Some(t) = text {
        out.put_u8(b' ');
        out.put_slice(t);
    }
    out.put_slice(b"\r\n");
}

/// `err <message>`, on one line.
pub fn err(out: &mut BytesMut, message: &str) {
    out.put_slice(b"err ");
    for b in message.bytes() {
        out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
    out.put_slice(b"\r\n");
}

/// A value with `%`, CR and LF percent-encoded.
pub fn escape(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    for &b in v {
        match b {
            b'%' => out.extend_from_slice(b"%25"),
            b'\r' => out.extend_from_slice(b"%0D"),
            b'\n' => out.extend_from_slice(b"%0A"),
            _ => out.push(b),
        }
    }
    out
}

/// Decodes `%XX` sequences; anything else, including a stray `%`, is kept.
pub fn unescape(v: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            if let Some(b) = v.get(i + 1..i + 3).and_then(hex_byte) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(v[i]);
        i += 1;
    }
    Bytes::from(out)
}

fn hex_byte(h: &[u8]) -> Option<u8> {
    u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
}

/// `name=value&…` with URL query encoding.
pub fn query_encode(pairs: impl Iterator<Item = (Bytes, Bytes)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (k, v)) in pairs.enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        percent(&k, &mut out);
        out.push(b'=');
        percent(&v, &mut out);
    }
    out
}

fn percent(v: &[u8], out: &mut Vec<u8>) {
    for &b in v {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
}

/// Parses `name=value&…`; `+` is a space, as in PHP's `parse_str`.
pub fn query_decode(q: &[u8]) -> Option<Vec<(Bytes, Bytes)>> {
    let mut pairs = Vec::new();
    for part in q.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let eq = part.iter().position(|&b| b == b'=')?;
        let plus = |s: &[u8]| {
            s.iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect::<Vec<u8>>()
        };
        let name = unescape(&plus(&part[..eq]));
        if name.is_empty() {
            return None;
        }
        pairs.push((name, unescape(&plus(&part[eq + 1..]))));
    }
    (!pairs.is_empty()).then_some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Result<LineCommand, LineError> {
        let mut buf = BytesMut::from(line.as_bytes());
        parse_line(&mut buf, &Limits::default()).unwrap().unwrap()
    }

    #[test]
    fn the_seed_conversation() {
        assert_eq!(one("new\r\n"), Ok(LineCommand::New));
        assert_eq!(
            one("put foo bar baz\r\n"),
            Ok(LineCommand::Put {
                name: Bytes::from("foo"),
                value: Bytes::from("bar baz")
            })
        );
        assert_eq!(
            one("get foo\n"),
            Ok(LineCommand::Get {
                name: Bytes::from("foo")
            })
        );
        assert_eq!(
            one("open abc r\r\n"),
            Ok(LineCommand::Open {
                id: Bytes::from("abc"),
                write: false
            })
        );
        assert_eq!(
            one("OPEN abc\r\n"),
            Ok(LineCommand::Open {
                id: Bytes::from("abc"),
                write: true
            })
        );
        assert!(one("open\r\n").is_err());
        // A word that could name a plugin function is one; others are not.
        assert_eq!(
            one("fly  away%20now x\r\n"),
            Ok(LineCommand::Own {
                name: Bytes::from("fly"),
                params: vec![Bytes::from("away now"), Bytes::from("x")],
            })
        );
        assert!(one("fly/away\r\n").is_err());
        assert_eq!(
            one("auth shop pass word%25\r\n"),
            Ok(LineCommand::Auth {
                user: Bytes::from("shop"),
                password: Bytes::from("pass word%")
            })
        );
        assert!(one("auth shop\r\n").is_err());
    }

    #[test]
    fn escaping_round_trips() {
        let v = b"50% off\r\nnext";
        assert_eq!(unescape(&escape(v)), Bytes::from(&v[..]));
        let pairs = vec![
            (Bytes::from("a b"), Bytes::from("x&y=z")),
            (Bytes::from("n"), Bytes::from("1")),
        ];
        let q = query_encode(pairs.clone().into_iter());
        assert_eq!(q, b"a%20b=x%26y%3Dz&n=1");
        assert_eq!(query_decode(&q), Some(pairs));
        assert_eq!(
            query_decode(b"a+b=c"),
            Some(vec![(Bytes::from("a b"), Bytes::from("c"))])
        );
        assert_eq!(query_decode(b"novalue"), None);
    }

    #[test]
    fn long_lines_are_refused() {
        let mut buf = BytesMut::from(&vec![b'x'; 70_000][..]);
        assert!(parse_line(&mut buf, &Limits::default()).is_err());
    }
}
