//! The fields of session data, whatever wrote it: PHP's two session
//! encodings ([`crate::php`]), a JSON object (express-session through
//! connect-redis or connect-memcached, most Node and many Python stores),
//! or a msgpack map (Flask-Session). They are what `SESSION.GET`,
//! `GETALL`, `FIND` and `LISTVAR` see as read-only variables where no
//! explicit variable of the name shadows them.
//!
//! JSON and msgpack give their top-level fields and, for a nested object
//! (map), its fields by dotted path (`passport.user`), down to
//! [`MAX_PATH`] names; the object itself is a field too, as its text.
//! Values are shown as text: strings as they are, numbers as written
//! (msgpack: in decimal), `true`/`false`/`null` as those words (msgpack
//! nil: empty), arrays and objects as their encoded bytes. Every length is
//! checked against the input, nesting is bounded ([`MAX_DEPTH`]) and at
//! most [`MAX_FIELDS`] fields are read, so no input makes the reader
//! allocate wildly or recurse without end; data that is not exactly one of
//! the encodings has no fields.

use bytes::Bytes;

/// Nesting deeper than this is no session data.
pub const MAX_DEPTH: usize = 64;
/// Names in a dotted path at most (`a.b.c.d`): deeper objects are fields
/// of their own (their text) but their insides are not.
pub const MAX_PATH: usize = 4;
/// Fields read from one session at most; the rest are not seen.
pub const MAX_FIELDS: usize = 256;

/// The fields of `data` in the order written, or `None` when it is no
/// PHP session, JSON object or msgpack map.
pub fn fields(data: &[u8]) -> Option<Vec<(Bytes, Bytes)>> {
    let first = *data.first()?;
    if first == b'{' || (first.is_ascii_whitespace() && data.trim_ascii_start().starts_with(b"{")) {
        if let Some(f) = json(data) {
            return Some(f);
        }
    }
    if matches!(first, 0x80..=0x8f | 0xde | 0xdf) {
        if let Some(f) = msgpack(data) {
            return Some(f);
        }
    }
    let mut php = crate::php::session_vars(data)?;
    php.truncate(MAX_FIELDS);
    Some(php)
}

/// The value of field `name` of `data`, if it has one.
pub fn field(data: &[u8], name: &[u8]) -> Option<Bytes> {
    fields(data)?
        .into_iter()
        .find_map(|(n, v)| (n == name).then_some(v))
}

/// Which fields `FIND` answers from an index (`index_fields`); a `FIND` on
/// any other name reads every session instead (right, but slow on a big
/// store). Each indexed field costs about 15–20 bytes a session (at 1M
/// sessions, BENCHMARKS.md: 18 between the express session's two indexed
/// fields and the PHP session's one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexFields {
    /// Every field of every session.
    All,
    /// Fields of these names (dotted paths for nested ones).
    Only(Vec<Bytes>),
}

impl IndexFields {
    /// The names users look sessions up by: the user of PHP's and Node's
    /// usual sessions, passport.js's, Django's.
    pub const DEFAULT: &'static [&'static str] = &[
        "user",
        "user_id",
        "userId",
        "uid",
        "username",
        "login",
        "email",
        "account_id",
        "passport.user",
        "_auth_user_id",
    ];

    pub fn wants(&self, name: &[u8]) -> bool {
        match self {
            IndexFields::All => true,
            IndexFields::Only(names) => names.iter().any(|n| n == name),
        }
    }
}

impl Default for IndexFields {
    fn default() -> Self {
        IndexFields::Only(
            Self::DEFAULT
                .iter()
                .map(|n| Bytes::from_static(n.as_bytes()))
                .collect(),
        )
    }
}

/// Fields as they are read: dotted names built on a shared path.
struct Out {
    fields: Vec<(Bytes, Bytes)>,
    path: Vec<u8>,
}

impl Out {
    fn new() -> Self {
        Self {
            fields: Vec::new(),
            path: Vec::new(),
        }
    }

    fn full(&self) -> bool {
        self.fields.len() >= MAX_FIELDS
    }

    fn push(&mut self, value: &[u8]) {
        if !self.full() {
            self.fields.push((
                Bytes::copy_from_slice(&self.path),
                Bytes::copy_from_slice(value),
            ));
        }
    }

    /// Extends the path by `name`, returning where to cut it back to.
    fn enter(&mut self, name: &[u8]) -> usize {
        let mark = self.path.len();
        if mark > 0 {
            self.path.push(b'.');
        }
        self.path.extend_from_slice(name);
        mark
    }
}

// ---------------------------------------------------------------- JSON

fn json(data: &[u8]) -> Option<Vec<(Bytes, Bytes)>> {
    let mut r = Json { buf: data, pos: 0 };
    let mut out = Out::new();
    r.ws();
    r.object(&mut out, 1, 1)?;
    r.ws();
    (r.pos == data.len()).then_some(out.fields)
}

struct Json<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Json<'_> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while self
            .peek()
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.pos += 1;
        }
    }

    /// After an opening bracket: whether `close` follows at once (an empty
    /// object or array), consumed if so.
    fn closes(&mut self, close: u8) -> Option<bool> {
        self.ws();
        let empty = self.peek()? == close;
        if empty {
            self.pos += 1;
        }
        Some(empty)
    }

    /// After a member: whether another follows (`,`) or `close` ends them.
    fn more(&mut self, close: u8) -> Option<bool> {
        self.ws();
        match self.peek()? {
            b',' => {
                self.pos += 1;
                Some(true)
            }
            c if c == close => {
                self.pos += 1;
                Some(false)
            }
            _ => None,
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        self.ws();
        (self.peek()? == b).then(|| self.pos += 1)
    }

    /// An object whose fields go to `out` under its path (`names` names
    /// deep), or are only checked when `out` is None.
    fn object(&mut self, out: &mut Out, depth: usize, names: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'{')?;
        if self.closes(b'}')? {
            return Some(());
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.eat(b':')?;
            self.ws();
            let mark = out.enter(&key);
            let start = self.pos;
            match self.peek()? {
                b'{' if names < MAX_PATH && !out.full() => {
                    // The object's text first, then its fields.
                    let at = out.fields.len();
                    out.push(b"");
                    self.object(out, depth + 1, names + 1)?;
                    let text = &self.buf[start..self.pos];
                    if let Some(slot) = out.fields.get_mut(at) {
                        slot.1 = Bytes::copy_from_slice(text);
                    }
                }
                b'"' => {
                    let s = self.string()?;
                    out.push(&s);
                }
                _ => {
                    self.skip(depth + 1)?;
                    out.push(&self.buf[start..self.pos]);
                }
            }
            out.path.truncate(mark);
            if !self.more(b'}')? {
                return Some(());
            }
        }
    }

    /// Passes over any value, checking it is well formed.
    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => {
                self.pos += 1;
                if self.closes(b'}')? {
                    return Some(());
                }
                loop {
                    self.ws();
                    self.string()?;
                    self.eat(b':')?;
                    self.skip(depth + 1)?;
                    if !self.more(b'}')? {
                        return Some(());
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                if self.closes(b']')? {
                    return Some(());
                }
                loop {
                    self.skip(depth + 1)?;
                    if !self.more(b']')? {
                        return Some(());
                    }
                }
            }
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            b'n' => self.word(b"null"),
            _ => self.number(),
        }
    }

    fn word(&mut self, w: &[u8]) -> Option<()> {
        self.buf
            .get(self.pos..)?
            .starts_with(w)
            .then(|| self.pos += w.len())
    }

    fn number(&mut self) -> Option<()> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            self.pos += 1;
        }
        // At least one digit, and nothing a number cannot start with.
        let text = &self.buf[start..self.pos];
        let ok =
            text.iter().any(u8::is_ascii_digit) && (text[0] == b'-' || text[0].is_ascii_digit());
        ok.then_some(())
    }

    /// A string, its escapes decoded.
    fn string(&mut self) -> Option<Vec<u8>> {
        if self.peek()? != b'"' {
            return None;
        }
        self.pos += 1;
        let mut s = Vec::new();
        loop {
            let rest = self.buf.get(self.pos..)?;
            let at = memchr::memchr2(b'"', b'\\', rest)?;
            s.extend_from_slice(&rest[..at]);
            self.pos += at + 1;
            if rest[at] == b'"' {
                return Some(s);
            }
            let e = self.peek()?;
            self.pos += 1;
            match e {
                b'"' | b'\\' | b'/' => s.push(e),
                b'b' => s.push(8),
                b'f' => s.push(12),
                b'n' => s.push(b'\n'),
                b'r' => s.push(b'\r'),
                b't' => s.push(b'\t'),
                b'u' => {
                    let mut c = self.hex4()?;
                    if (0xD800..0xDC00).contains(&c) {
                        // A surrogate pair.
                        self.word(b"\\u")?;
                        let low = self.hex4()?;
                        if !(0xDC00..0xE000).contains(&low) {
                            return None;
                        }
                        c = 0x10000 + ((c - 0xD800) << 10) + (low - 0xDC00);
                    }
                    let ch = char::from_u32(c)?;
                    let mut buf = [0u8; 4];
                    s.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                _ => return None,
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.buf.get(self.pos..self.pos.checked_add(4)?)?;
        let text = std::str::from_utf8(digits).ok()?;
        let v = u32::from_str_radix(text, 16).ok()?;
        self.pos += 4;
        Some(v)
    }
}

// ------------------------------------------------------------- msgpack

fn msgpack(data: &[u8]) -> Option<Vec<(Bytes, Bytes)>> {
    let mut r = Pack { buf: data, pos: 0 };
    let mut out = Out::new();
    let n = r.map_len()?;
    r.map_fields(n, &mut out, 1, 1)?;
    (r.pos == data.len()).then_some(out.fields)
}

struct Pack<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Pack<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    fn uint(&mut self, bytes: usize) -> Option<u64> {
        Some(
            self.take(bytes)?
                .iter()
                .fold(0u64, |v, &b| (v << 8) | u64::from(b)),
        )
    }

    fn len(&mut self, bytes: usize) -> Option<usize> {
        usize::try_from(self.uint(bytes)?).ok()
    }

    /// The count of a map header, or None if the next value is no map.
    fn map_len(&mut self) -> Option<usize> {
        match self.byte()? {
            b @ 0x80..=0x8f => Some(usize::from(b & 0x0f)),
            0xde => self.len(2),
            0xdf => self.len(4),
            _ => None,
        }
    }

    fn map_fields(&mut self, n: usize, out: &mut Out, depth: usize, names: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        for _ in 0..n {
            let key = self.key()?;
            let mark = out.enter(&key);
            let start = self.pos;
            let tag = *self.buf.get(self.pos)?;
            let is_map = matches!(tag, 0x80..=0x8f | 0xde | 0xdf);
            if is_map && names < MAX_PATH && !out.full() {
                let at = out.fields.len();
                out.push(b"");
                let len = self.map_len()?;
                self.map_fields(len, out, depth + 1, names + 1)?;
                let raw = &self.buf[start..self.pos];
                if let Some(slot) = out.fields.get_mut(at) {
                    slot.1 = Bytes::copy_from_slice(raw);
                }
            } else {
                let text = self.value(depth + 1)?;
                out.push(&text);
            }
            out.path.truncate(mark);
        }
        Some(())
    }

    /// A map key: a string (or bytes), or a number shown in decimal.
    fn key(&mut self) -> Option<Vec<u8>> {
        let tag = *self.buf.get(self.pos)?;
        match tag {
            0xa0..=0xbf | 0xd9..=0xdb | 0xc4..=0xc6 | 0x00..=0x7f | 0xe0..=0xff | 0xcc..=0xd3 => {
                self.value(MAX_DEPTH)
            }
            _ => None,
        }
    }

    /// Any value, as text (see the module's rules).
    fn value(&mut self, depth: usize) -> Option<Vec<u8>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let start = self.pos;
        let tag = self.byte()?;
        let text = |n: String| Some(n.into_bytes());
        match tag {
            0x00..=0x7f => text(tag.to_string()),
            0xe0..=0xff => text((i64::from(tag as i8)).to_string()),
            0xc0 => Some(Vec::new()),
            0xc2 => Some(b"false".to_vec()),
            0xc3 => Some(b"true".to_vec()),
            0xcc..=0xcf => {
                let bytes = 1 << (tag - 0xcc);
                text(self.uint(bytes)?.to_string())
            }
            0xd0..=0xd3 => {
                let bytes = 1usize << (tag - 0xd0);
                let v = self.uint(bytes)?;
                // Sign-extend from `bytes` bytes.
                let shift = 64 - 8 * bytes as u32;
                text((((v << shift) as i64) >> shift).to_string())
            }
            0xca => {
                let bits = u32::try_from(self.uint(4)?).ok()?;
                text(format!("{:?}", f64::from(f32::from_bits(bits))))
            }
            // Debug, not Display: the shortest form, with an exponent for the
            // very large and small (Display would spell 1e300 in 301 digits).
            0xcb => text(format!("{:?}", f64::from_bits(self.uint(8)?))),
            0xa0..=0xbf => Some(self.take(usize::from(tag & 0x1f))?.to_vec()),
            0xd9 | 0xc4 => {
                let n = self.len(1)?;
                Some(self.take(n)?.to_vec())
            }
            0xda | 0xc5 => {
                let n = self.len(2)?;
                Some(self.take(n)?.to_vec())
            }
            0xdb | 0xc6 => {
                let n = self.len(4)?;
                Some(self.take(n)?.to_vec())
            }
            // Arrays, maps and extensions: their bytes.
            0x90..=0x9f | 0xdc | 0xdd => {
                let n = match tag {
                    0xdc => self.len(2)?,
                    0xdd => self.len(4)?,
                    _ => usize::from(tag & 0x0f),
                };
                for _ in 0..n {
                    self.value(depth + 1)?;
                }
                Some(self.buf[start..self.pos].to_vec())
            }
            0x80..=0x8f | 0xde | 0xdf => {
                let n = match tag {
                    0xde => self.len(2)?,
                    0xdf => self.len(4)?,
                    _ => usize::from(tag & 0x0f),
                };
                for _ in 0..n {
                    self.value(depth + 1)?;
                    self.value(depth + 1)?;
                }
                Some(self.buf[start..self.pos].to_vec())
            }
            0xd4..=0xd8 => {
                let n = 1usize << (tag - 0xd4);
                self.take(1 + n)?;
                Some(self.buf[start..self.pos].to_vec())
            }
            0xc7..=0xc9 => {
                let n = self.len(1 << (tag - 0xc7))?;
                self.take(n.checked_add(1)?)?;
                Some(self.buf[start..self.pos].to_vec())
            }
            // 0xc1 is never used.
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(data: &[u8]) -> Vec<(String, String)> {
        fields(data)
            .expect("fields")
            .into_iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(&n).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect()
    }

    fn p(n: &str, v: &str) -> (String, String) {
        (n.to_string(), v.to_string())
    }

    #[test]
    fn express_sessions_give_top_level_and_dotted_fields() {
        let data = br#"{"cookie":{"originalMaxAge":null,"httpOnly":true,"path":"/"},"user":"alice","passport":{"user":"42"},"n":1.5e3,"tags":["a","b"],"esc":"a\"b\u00e9\ud83d\ude00"}"#;
        assert_eq!(
            pairs(data),
            vec![
                p(
                    "cookie",
                    r#"{"originalMaxAge":null,"httpOnly":true,"path":"/"}"#
                ),
                p("cookie.originalMaxAge", "null"),
                p("cookie.httpOnly", "true"),
                p("cookie.path", "/"),
                p("user", "alice"),
                p("passport", r#"{"user":"42"}"#),
                p("passport.user", "42"),
                p("n", "1.5e3"),
                p("tags", r#"["a","b"]"#),
                p("esc", "a\"bé😀"),
            ]
        );
        assert_eq!(field(data, b"passport.user"), Some(Bytes::from("42")));
        assert_eq!(field(data, b"nothing"), None);
    }

    #[test]
    fn flask_msgpack_sessions_give_their_fields() {
        // {"user": "alice", "id": 42, "neg": -3, "ok": true, "nested": {"a": nil}, "list": [1]}
        let mut data = vec![0x86];
        data.extend(b"\xa4user\xa5alice");
        data.extend(b"\xa2id\x2a");
        data.extend(b"\xa3neg\xfd");
        data.extend(b"\xa2ok\xc3");
        data.extend(b"\xa6nested\x81\xa1a\xc0");
        data.extend(b"\xa4list\x91\x01");
        let f = pairs(&data);
        assert_eq!(f[0], p("user", "alice"));
        assert_eq!(f[1], p("id", "42"));
        assert_eq!(f[2], p("neg", "-3"));
        assert_eq!(f[3], p("ok", "true"));
        assert_eq!(f[4].0, "nested");
        assert_eq!(f[5], p("nested.a", ""));
        assert_eq!(f[6].0, "list");
        // uint16, int16, float64 (1.5 and 1e300, never 301 digits), str8.
        let data = b"\x85\xa1a\xcd\x01\x00\xa1b\xd1\xff\x00\xa1c\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00\xa1d\xd9\x02hi\xa1e\xcb\x7e\x37\xe4\x3c\x88\x00\x75\x9c";
        assert_eq!(
            pairs(data),
            vec![
                p("a", "256"),
                p("b", "-256"),
                p("c", "1.5"),
                p("d", "hi"),
                p("e", "1e300")
            ]
        );
    }

    #[test]
    fn php_sessions_read_as_before() {
        assert_eq!(
            pairs(br#"user|s:5:"alice";n|i:42;"#),
            vec![p("user", "alice"), p("n", "42")]
        );
    }

    #[test]
    fn anything_else_has_no_fields_and_no_input_runs_away() {
        for data in [
            &b""[..],
            b"opaque",
            b"{",
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"{\"a\":1} trailing",
            b"\x81\xa1a",
            b"\x81\xa1a\xc1",
            b"\x82\xa1a\x01",
        ] {
            assert_eq!(fields(data), None, "{data:?}");
        }
        // Deep nesting is refused, not recursed into without end.
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(fields(deep.as_bytes()), None);
        let deep = format!("{}{}", "{\"a\":".repeat(1000), "1").into_bytes();
        assert_eq!(fields(&deep), None);
        // A length past the end is no session.
        assert_eq!(fields(b"\x81\xa1a\xdb\xff\xff\xff\xff"), None);
        // Paths stop at MAX_PATH names; fields at MAX_FIELDS.
        let f = pairs(br#"{"a":{"b":{"c":{"d":{"e":1}}}}}"#);
        assert_eq!(f.last(), Some(&p("a.b.c.d", r#"{"e":1}"#)));
        let many: String = (0..1000).map(|i| format!("\"k{i}\":{i},")).collect();
        let many = format!("{{{}\"end\":0}}", many);
        assert_eq!(fields(many.as_bytes()).map(|f| f.len()), Some(MAX_FIELDS));
    }
}
