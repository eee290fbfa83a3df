//! Decimal numbers on the wire, both ways, without `String` or `str`:
//! written straight into an output buffer (every reply header needs one),
//! and read from request bytes exactly as `str::parse` reads them.

use bytes::BytesMut;

/// An output buffer a number is written into: its 20 bytes of room go in
/// as one fixed-size copy (no `memcpy` call for a few digits), then the
/// buffer is cut back to the digits.
pub trait DecimalOut {
    fn put_digits(&mut self, digits: &[u8; 20], len: usize);
    fn put_sign(&mut self);
}

impl DecimalOut for BytesMut {
    fn put_digits(&mut self, digits: &[u8; 20], len: usize) {
        let at = self.len();
        self.extend_from_slice(digits);
        self.truncate(at + len);
    }
    fn put_sign(&mut self) {
        self.extend_from_slice(b"-");
    }
}

impl DecimalOut for Vec<u8> {
    fn put_digits(&mut self, digits: &[u8; 20], len: usize) {
        let at = self.len();
        self.extend_from_slice(digits);
        self.truncate(at + len);
    }
    fn put_sign(&mut self) {
        self.push(b'-');
    }
}

/// `n` in decimal.
pub fn put_u64(out: &mut impl DecimalOut, n: u64) {
    // The digits, most significant first, two at a time.
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let len = n.checked_ilog10().map_or(1, |l| l as usize + 1);
    let mut digits = [0u8; 20];
    let mut i = len;
    let mut v = n;
    while v >= 100 {
        // The remainder is below 100: the cast keeps it whole.
        let pair = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        let pair = v as usize * 2;
        digits[..2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        digits[0] = b'0' + v as u8;
    }
    out.put_digits(&digits, len);
}

/// `n` in decimal, with its sign.
pub fn put_i64(out: &mut impl DecimalOut, n: i64) {
    if n < 0 {
        out.put_sign();
    }
    put_u64(out, n.unsigned_abs());
}

/// A number as `str::parse::<T>` reads it — an optional `+` (or `-` for a
/// signed type), then ASCII digits, out of range being no number — without
/// its UTF-8 check and generic parser.
pub fn parse<T: Decimal>(t: &[u8]) -> Option<T> {
    let (negative, digits) = match t {
        [b'-', rest @ ..] if T::SIGNED => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, t),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    T::from_magnitude(negative, v)
}

/// The number types [`parse`] reads.
pub trait Decimal: Sized {
    const SIGNED: bool;
    fn from_magnitude(negative: bool, v: u64) -> Option<Self>;
}

macro_rules! unsigned_decimal {
    ($($t:ty),*) => {$(
        impl Decimal for $t {
            const SIGNED: bool = false;
            fn from_magnitude(_: bool, v: u64) -> Option<Self> {
                Self::try_from(v).ok()
            }
        }
    )*};
}
unsigned_decimal!(u32, u64, usize);

impl Decimal for i64 {
    const SIGNED: bool = true;
    fn from_magnitude(negative: bool, v: u64) -> Option<Self> {
        if negative {
            0i64.checked_sub_unsigned(v)
        } else {
            i64::try_from(v).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_std_writes_them() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, i64::MAX, -1, -10, i64::MIN] {
            let mut out = Vec::new();
            put_i64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
        let mut out = Vec::new();
        put_u64(&mut out, u64::MAX);
        assert_eq!(out, u64::MAX.to_string().as_bytes());
        // Every length, and each power of ten's neighbours, after what the
        // buffer held already.
        let mut n = 1u64;
        for _ in 0..20 {
            for m in [n - 1, n, n + 1, n.saturating_mul(7) / 3] {
                let mut out = bytes::BytesMut::from(&b"x"[..]);
                put_u64(&mut out, m);
                assert_eq!(&out[..], format!("x{m}").as_bytes());
            }
            n = n.saturating_mul(10);
        }
    }

    /// Read exactly as `str::parse` reads them.
    #[test]
    fn numbers_are_read_as_str_parse_reads_them() {
        let cases = [
            "0",
            "7",
            "+7",
            "-7",
            "-0",
            "+",
            "-",
            "",
            "12a",
            " 1",
            "1 ",
            "++1",
            "+-1",
            "--1",
            "007",
            "4294967295",
            "4294967296",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999",
            "\u{661}",
        ];
        for c in cases {
            let b = c.as_bytes();
            assert_eq!(parse::<u32>(b), c.parse::<u32>().ok(), "u32 {c:?}");
            assert_eq!(parse::<u64>(b), c.parse::<u64>().ok(), "u64 {c:?}");
            assert_eq!(parse::<usize>(b), c.parse::<usize>().ok(), "usize {c:?}");
            assert_eq!(parse::<i64>(b), c.parse::<i64>().ok(), "i64 {c:?}");
        }
        assert_eq!(parse::<i64>(b"\xff1"), None);
    }
}
