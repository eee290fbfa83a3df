//! Numbers written in decimal straight into an output buffer: what every
//! reply header needs, without a `String` per number.

use bytes::{BufMut, BytesMut};

/// `n` in decimal.
pub(crate) fn put_u64(out: &mut BytesMut, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = n;
    loop {
        i -= 1;
        // The remainder is a digit: the cast keeps it whole.
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.put_slice(&buf[i..]);
}

/// `n` in decimal, with its sign.
pub(crate) fn put_i64(out: &mut BytesMut, n: i64) {
    if n < 0 {
        out.put_u8(b'-');
    }
    put_u64(out, n.unsigned_abs());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_std_writes_them() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, i64::MAX, -1, -10, i64::MIN] {
            let mut out = BytesMut::new();
            put_i64(&mut out, n);
            assert_eq!(&out[..], n.to_string().as_bytes());
        }
        let mut out = BytesMut::new();
        put_u64(&mut out, u64::MAX);
        assert_eq!(&out[..], u64::MAX.to_string().as_bytes());
    }
}
