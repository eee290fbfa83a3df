//! Fuzzing harnesses, one per codec: each feeds arbitrary bytes through a
//! codec as a connection would and checks what must always hold — no
//! panic, every request taken consumes bytes, nothing past the limits gets
//! through. The cargo-fuzz targets in `fuzz/` call these, and so do the
//! property tests that run on every `cargo test`.

use bytes::{Buf, Bytes, BytesMut};

use crate::memcache::{self, Answer, Parsed, Protocol};
use crate::redis::RedisKeys;
use crate::resp::{
    encode_error, encode_reply, parse_request, parse_value, FrameError, Protocol as Resp,
};
use crate::{line, native, redis, Limits};

/// Small limits, so that short inputs reach every bound.
pub fn limits() -> Limits {
    Limits {
        max_inline_len: 256,
        max_bulk_len: 1024,
        max_args: 16,
        max_request_len: 4096,
    }
}

/// RESP requests (multibulk and inline) as the native and Redis doors read
/// them, each run through both command parsers and its reply encoded; then
/// the same bytes through the client's reply parser.
pub fn resp(data: &[u8]) {
    let limits = limits();
    let keys = RedisKeys::new(vec![Bytes::from_static(b"PHPREDIS_SESSION:")]);
    let mut buf = BytesMut::from(data);
    let mut out = BytesMut::new();
    loop {
        let before = buf.len();
        match parse_request(&mut buf, &limits) {
            Ok(Some(args)) => {
                assert!(buf.len() < before, "a request consumes bytes");
                assert!(args.len() <= limits.max_args, "{} args", args.len());
                let Some(name) = args.first() else { continue };
                if redis::is_redis_command(name) {
                    let view: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
                    match redis::parse(&view, &keys, 1) {
                        Ok(r) => assert!(r.commands.len() <= limits.max_args),
                        Err(e) => encode_error(e.code, &e.message, &mut out),
                    }
                } else {
                    match native::parse(args) {
                        Ok(native::Request::Reply(r)) => encode_reply(&r, Resp::Resp3, &mut out),
                        Ok(_) => {}
                        Err(e) => encode_error(e.code, &e.message, &mut out),
                    }
                }
            }
            Ok(None) => break,
            Err(FrameError::ValueTooLarge(mut d)) => {
                encode_error(
                    "LIMIT",
                    &FrameError::ValueTooLarge(d.clone()).to_string(),
                    &mut out,
                );
                match d.skip(&mut buf) {
                    Ok(true) => continue,
                    _ => break,
                }
            }
            Err(e) => {
                encode_error("ERR", &e.to_string(), &mut out);
                break;
            }
        }
    }
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = parse_value(&mut buf, &limits) {}
}

/// memcached requests in `protocol`, with refused values skipped as the
/// door skips them, and every answer encoded.
pub fn memcache(data: &[u8], protocol: Protocol) {
    let limits = limits();
    let mut buf = BytesMut::from(data);
    let mut out = BytesMut::new();
    loop {
        let before = buf.len();
        match memcache::parse(&mut buf, protocol, &limits) {
            Ok(Some(Parsed::Request(req))) => {
                assert!(buf.len() < before, "a request consumes bytes");
                if let memcache::Op::Store(memcache::Store { data, .. }) = &req.op {
                    assert!(data.len() <= limits.max_bulk_len);
                }
                memcache::encode(&Answer::Ok, &req.meta, &mut out);
            }
            Ok(Some(Parsed::Refused {
                meta,
                status,
                message,
                skip,
            })) => {
                assert!(buf.len() < before || skip > 0, "a refusal consumes bytes");
                memcache::encode(&Answer::Fail(status, message), &meta, &mut out);
                let n = skip.min(buf.len());
                buf.advance(n);
                if n < skip {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                memcache::encode_frame_error(&e, &mut out);
                break;
            }
        }
    }
}

/// Line-protocol commands, and each value's escaping round trip.
pub fn line(data: &[u8]) {
    let limits = limits();
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match line::parse_line(&mut buf, &limits) {
            Ok(Some(cmd)) => {
                assert!(buf.len() < before, "a line consumes bytes");
                if let Ok(line::LineCommand::Put { value, .. }) = cmd {
                    assert_eq!(line::unescape(&line::escape(&value)), value);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
}

/// PHP's session encodings, as the variable index reads them: whatever
/// it finds lies within the data.
pub fn php(data: &[u8]) {
    if let Some(vars) = sessiond_core::php::session_vars(data) {
        let total: usize = vars.iter().map(|(n, v)| n.len() + v.len()).sum();
        assert!(total <= data.len(), "{total} bytes found in {}", data.len());
    }
}

/// Session data as the field reader sees it (PHP, JSON, msgpack): at most
/// `MAX_FIELDS` fields, each name and value bounded by the input, and each
/// found again by name.
pub fn fields(data: &[u8]) {
    use sessiond_core::fields;
    let Some(found) = fields::fields(data) else {
        return;
    };
    assert!(found.len() <= fields::MAX_FIELDS);
    for (name, value) in &found {
        // A dotted name is made of the input's keys and dots.
        assert!(name.len() <= 2 * data.len(), "name of {} bytes", name.len());
        // A msgpack number is shown in decimal: a few times its bytes.
        assert!(
            value.len() <= 4 * data.len() + 32,
            "value of {} bytes",
            value.len()
        );
        assert!(
            fields::field(data, name).is_some(),
            "{name:?} not found again"
        );
    }
}
