//! Reading PHP's session encodings, so the top-level `$_SESSION` entries of
//! a session written by any PHP handler are visible as read-only variables
//! (`SESSION.GET`, `GETALL`, `FIND`, `LISTVAR`).
//!
//! Two encodings are understood (`session.serialize_handler`):
//! - `php` (PHP's default): `name|<value>name|<value>…`
//! - `php_serialize`: one serialized array, `a:N:{<key><value>…}`
//!
//! A value is PHP's `serialize()` format. Scalars are shown as PHP would
//! print them as strings (`i:42;` → `42`, `b:1;` → `1`, `N;` → empty);
//! arrays, objects, enums and references are shown as their serialized text.
//! Every length is checked against the input before use and nesting is
//! bounded, so no input can make the reader allocate wildly or recurse
//! without end; anything that is not exactly one of the encodings is no
//! PHP session (`None`).

use bytes::Bytes;

/// Nesting deeper than this is refused.
const MAX_DEPTH: usize = 64;

/// The top-level entries of a PHP-encoded session, or `None` if `data` is
/// not a PHP session in either encoding. Empty data is no session.
pub fn session_vars(data: &[u8]) -> Option<Vec<(Bytes, Bytes)>> {
    if data.is_empty() {
        return None;
    }
    if data.starts_with(b"a:") {
        if let Some(vars) = php_serialize(data) {
            return Some(vars);
        }
    }
    php_encoding(data)
}

/// `php_serialize`: one array whose keys are the variable names.
fn php_serialize(data: &[u8]) -> Option<Vec<(Bytes, Bytes)>> {
    let mut r = Reader { buf: data, pos: 0 };
    let count = r.header(b'a')?;
    r.expect(b'{')?;
    let mut vars = Vec::with_capacity(count.min(data.len() / 4));
    for _ in 0..count {
        let key = r.key()?;
        let value = r.value(1)?;
        vars.push((key, value));
    }
    r.expect(b'}')?;
    (r.pos == data.len()).then_some(vars)
}

/// `php`: `name|value` pairs back to back. A name runs to the next `|`.
fn php_encoding(data: &[u8]) -> Option<Vec<(Bytes, Bytes)>> {
    let mut r = Reader { buf: data, pos: 0 };
    let mut vars = Vec::new();
    while r.pos < data.len() {
        let rest = &data[r.pos..];
        // Most non-PHP blobs have no `|` at all: find that out at memchr
        // speed, as every session write comes through here.
        let bar = memchr::memchr(b'|', rest)?;
        if bar == 0 {
            return None;
        }
        let name = Bytes::copy_from_slice(&rest[..bar]);
        r.pos += bar + 1;
        let value = r.value(1)?;
        vars.push((name, value));
    }
    Some(vars)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.pos += 1)
    }

    /// Bytes up to (not including) `end`, which is consumed.
    fn until(&mut self, end: u8) -> Option<&[u8]> {
        let rest = &self.buf[self.pos..];
        let at = memchr::memchr(end, rest)?;
        self.pos += at + 1;
        Some(&rest[..at])
    }

    fn number(&mut self, end: u8) -> Option<usize> {
        let digits = self.until(end)?;
        if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    }

    /// `<tag>:<count>:` of arrays and the like.
    fn header(&mut self, tag: u8) -> Option<usize> {
        self.expect(tag)?;
        self.expect(b':')?;
        self.number(b':')
    }

    /// `"<len bytes>"`, the length having been read.
    fn quoted(&mut self, len: usize) -> Option<&[u8]> {
        self.expect(b'"')?;
        let end = self.pos.checked_add(len)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        self.expect(b'"')?;
        Some(s)
    }

    /// An array key: `i:<n>;` or `s:<len>:"…";`, rendered as text.
    fn key(&mut self) -> Option<Bytes> {
        let tag = self.peek()?;
        if self.buf.get(self.pos + 1) != Some(&b':') {
            return None;
        }
        self.pos += 2;
        match tag {
            b'i' => {
                let n = self.until(b';')?;
                valid_int(n).then(|| Bytes::copy_from_slice(n))
            }
            b's' => {
                let len = self.number(b':')?;
                let s = Bytes::copy_from_slice(self.quoted(len)?);
                self.expect(b';')?;
                Some(s)
            }
            _ => None,
        }
    }

    /// `<count>:{<key><value>…}` of arrays and objects.
    fn members(&mut self, depth: usize) -> Option<()> {
        let count = self.number(b':')?;
        self.expect(b'{')?;
        for _ in 0..count {
            self.key()?;
            self.value(depth + 1)?;
        }
        self.expect(b'}')
    }

    /// One value; returns how it is shown.
    fn value(&mut self, depth: usize) -> Option<Bytes> {
        if depth > MAX_DEPTH {
            return None;
        }
        let start = self.pos;
        let tag = self.peek()?;
        if self.buf.get(self.pos + 1) != Some(&if tag == b'N' { b';' } else { b':' }) {
            return None;
        }
        self.pos += 2;
        match tag {
            b'N' => Some(Bytes::new()),
            b'b' => match self.until(b';')? {
                b"1" => Some(Bytes::from_static(b"1")),
                b"0" => Some(Bytes::new()),
                _ => None,
            },
            b'i' => {
                let n = self.until(b';')?;
                valid_int(n).then(|| Bytes::copy_from_slice(n))
            }
            b'd' => {
                let n = self.until(b';')?;
                valid_float(n).then(|| Bytes::copy_from_slice(n))
            }
            b's' => {
                let len = self.number(b':')?;
                let s = Bytes::copy_from_slice(self.quoted(len)?);
                self.expect(b';')?;
                Some(s)
            }
            b'r' | b'R' => {
                let n = self.until(b';')?;
                valid_int(n).then(|| Bytes::copy_from_slice(&self.buf[start..self.pos]))
            }
            b'E' => {
                let len = self.number(b':')?;
                self.quoted(len)?;
                self.expect(b';')?;
                Some(Bytes::copy_from_slice(&self.buf[start..self.pos]))
            }
            b'a' => {
                self.members(depth)?;
                Some(Bytes::copy_from_slice(&self.buf[start..self.pos]))
            }
            b'O' => {
                let len = self.number(b':')?;
                self.quoted(len)?;
                self.expect(b':')?;
                self.members(depth)?;
                Some(Bytes::copy_from_slice(&self.buf[start..self.pos]))
            }
            b'C' => {
                let len = self.number(b':')?;
                self.quoted(len)?;
                self.expect(b':')?;
                let body = self.number(b':')?;
                self.expect(b'{')?;
                let end = self.pos.checked_add(body)?;
                self.buf.get(self.pos..end)?;
                self.pos = end;
                self.expect(b'}')?;
                Some(Bytes::copy_from_slice(&self.buf[start..self.pos]))
            }
            _ => None,
        }
    }
}

fn valid_int(n: &[u8]) -> bool {
    let digits = n
        .strip_prefix(b"-")
        .or_else(|| n.strip_prefix(b"+"))
        .unwrap_or(n);
    !digits.is_empty() && digits.len() <= 20 && digits.iter().all(u8::is_ascii_digit)
}

fn valid_float(n: &[u8]) -> bool {
    matches!(n, b"INF" | b"-INF" | b"NAN")
        || (!n.is_empty()
            && n.len() <= 64
            && n.iter()
                .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(data: &str) -> Option<Vec<(String, String)>> {
        session_vars(data.as_bytes()).map(|v| {
            v.into_iter()
                .map(|(k, v)| {
                    (
                        String::from_utf8(k.to_vec()).unwrap(),
                        String::from_utf8(v.to_vec()).unwrap(),
                    )
                })
                .collect()
        })
    }

    fn pairs(p: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            p.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    #[test]
    fn php_encoding_top_level_entries() {
        // What PHP writes for $_SESSION = ['user_id' => 42, 'name' => 'Zoë', 'cart' => [1, 2], 'ok' => true, 'n' => null, 'f' => 1.5].
        let data = "user_id|i:42;name|s:4:\"Zoë\";cart|a:2:{i:0;i:1;i:1;i:2;}ok|b:1;n|N;f|d:1.5;";
        assert_eq!(
            vars(data),
            pairs(&[
                ("user_id", "42"),
                ("name", "Zoë"),
                ("cart", "a:2:{i:0;i:1;i:1;i:2;}"),
                ("ok", "1"),
                ("n", ""),
                ("f", "1.5"),
            ])
        );
    }

    #[test]
    fn php_serialize_encoding() {
        let data = "a:3:{s:7:\"user_id\";i:42;s:1:\"o\";O:8:\"stdClass\":1:{s:1:\"a\";s:3:\"x|y\";}i:7;b:0;}";
        assert_eq!(
            vars(data),
            pairs(&[
                ("user_id", "42"),
                ("o", "O:8:\"stdClass\":1:{s:1:\"a\";s:3:\"x|y\";}"),
                ("7", ""),
            ])
        );
    }

    #[test]
    fn strings_may_hold_the_separators() {
        assert_eq!(
            vars("a|s:5:\"x|y;}\";b|i:1;"),
            pairs(&[("a", "x|y;}"), ("b", "1")])
        );
    }

    #[test]
    fn anything_else_is_not_a_php_session() {
        for bad in [
            "",
            "hello world",
            "user|i:42",
            "user|s:10:\"short\";",
            "|i:1;",
            "a:2:{i:0;i:1;}",
            "x|a:99999999999999999999:{}",
            "x|s:-1:\"\";",
            "x|b:2;",
            "x|i:4x;",
            "{\"json\":true}",
            "a:1:{ix0;i:1;}",
        ] {
            assert_eq!(vars(bad), None, "{bad}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_recursed() {
        let deep = format!("x|{}N;{}", "a:1:{i:0;".repeat(10_000), "}".repeat(10_000));
        assert_eq!(vars(&deep), None);
        let ok = format!("x|{}N;{}", "a:1:{i:0;".repeat(10), "}".repeat(10));
        assert!(vars(&ok).is_some());
    }

    #[test]
    fn random_input_never_panics() {
        let mut state: u64 = 0xDEAD_BEEF_1234_5678;
        let alphabet = b"aisbdNOCErR:;{}|\"0123456789-x";
        for _ in 0..50_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 48) as usize;
            let mut s = state;
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                    alphabet[(s >> 33) as usize % alphabet.len()]
                })
                .collect();
            let _ = session_vars(&input);
        }
    }
}
