use bytes::{Bytes, BytesMut};
use sessiond_core::SessionId;

use super::*;
use crate::redis::Key;

fn limits() -> Limits {
    Limits {
        max_bulk_len: 100,
        ..Limits::default()
    }
}

fn text(input: &[u8]) -> (Vec<Parsed>, BytesMut) {
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(p) = parse(&mut buf, Protocol::Text, &limits()).unwrap() {
        out.push(p);
    }
    (out, buf)
}

fn op(p: &Parsed) -> &Op {
    match p {
        Parsed::Request(r) => &r.op,
        other => panic!("not a request: {other:?}"),
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn render(answer: &Answer, meta: &Meta) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(answer, meta, &mut out);
    out.to_vec()
}

#[test]
fn text_commands_parse() {
    let (parsed, rest) = text(
        b"get a b\r\ngets c\r\ngat 10 d\r\nset k 5 60 3\r\nabc\r\ncas k 0 0 1 77 noreply\r\nx\r\n\
          delete k\r\ndelete k 0 noreply\r\nincr n 5\r\ndecr n 2\r\ntouch k 30\r\nflush_all\r\n\
          version\r\nverbosity 1\r\nstats\r\nstats settings\r\nquit\r\nappend k 0 0 2\r\nzz\r\n",
    );
    assert!(rest.is_empty());
    let ops: Vec<&Op> = parsed.iter().map(op).collect();
    assert_eq!(
        ops[0],
        &Op::Get {
            keys: Keys::Many(vec![b("a"), b("b")]),
            touch: None
        }
    );
    assert_eq!(
        ops[2],
        &Op::Get {
            keys: Keys::One(b("d")),
            touch: Some(10)
        }
    );
    assert_eq!(
        ops[3],
        &Op::Store(Store {
            kind: StoreKind::Set,
            key: b("k"),
            flags: 5,
            exptime: 60,
            data: b("abc")
        })
    );
    assert!(matches!(
        ops[4],
        Op::Store(Store {
            kind: StoreKind::Cas(77),
            ..
        })
    ));
    let Parsed::Request(cas) = &parsed[4] else {
        unreachable!()
    };
    assert!(cas.meta.quiet, "noreply");
    assert_eq!(ops[5], &Op::Delete { key: b("k") });
    assert_eq!(
        ops[7],
        &Op::Incr {
            key: b("n"),
            delta: 5,
            decr: false,
            initial: None
        }
    );
    assert_eq!(
        ops[9],
        &Op::Touch {
            key: b("k"),
            exptime: 30
        }
    );
    assert_eq!(ops[10], &Op::FlushAll);
    assert_eq!(ops[11], &Op::Version);
    assert_eq!(ops[13], &Op::Stats { group: None });
    assert_eq!(ops[15], &Op::Quit);
    assert!(matches!(
        ops[16],
        Op::Store(Store {
            kind: StoreKind::Append,
            ..
        })
    ));
}

#[test]
fn a_request_split_anywhere_waits_for_the_rest() {
    let whole = b"set k 0 0 5\r\nhello\r\nget k\r\n";
    for cut in 0..whole.len() {
        let mut buf = BytesMut::from(&whole[..cut]);
        let mut got = Vec::new();
        while let Some(p) = parse(&mut buf, Protocol::Text, &limits()).unwrap() {
            got.push(p);
        }
        buf.extend_from_slice(&whole[cut..]);
        while let Some(p) = parse(&mut buf, Protocol::Text, &limits()).unwrap() {
            got.push(p);
        }
        assert_eq!(got.len(), 2, "cut at {cut}");
        assert!(matches!(op(&got[0]), Op::Store(Store { data, .. }) if data == "hello"));
    }
}

#[test]
fn text_errors_are_answered_and_the_stream_goes_on() {
    let (parsed, rest) =
        text(b"bogus\r\nset k x 0 1\r\nget\r\nincr n -1\r\nset k 0 0 2\r\nabc\r\nget k\r\n");
    assert!(rest.is_empty());
    let statuses: Vec<Status> = parsed
        .iter()
        .filter_map(|p| match p {
            Parsed::Refused { status, .. } => Some(*status),
            Parsed::Request(_) => None,
        })
        .collect();
    // bogus; bad flags; get with no key; bad delta; a data block not ending
    // in CRLF (its last byte, a lone LF, is then an empty command line).
    assert_eq!(
        statuses,
        vec![
            Status::UnknownCommand,
            Status::Invalid,
            Status::UnknownCommand,
            Status::Invalid,
            Status::Invalid,
            Status::UnknownCommand
        ]
    );
    assert!(matches!(op(parsed.last().unwrap()), Op::Get { .. }));
}

#[test]
fn oversized_values_are_refused_and_skipped() {
    let mut buf = BytesMut::from(&b"set k 0 0 1000\r\nabc"[..]);
    let p = parse(&mut buf, Protocol::Text, &limits()).unwrap().unwrap();
    let Parsed::Refused { status, skip, .. } = p else {
        panic!("{p:?}")
    };
    assert_eq!(status, Status::TooLarge);
    assert_eq!(skip, 1002 - 3);
    assert!(buf.is_empty());
    let mut long = BytesMut::from(&[b'x'; 70_000][..]);
    assert!(parse(&mut long, Protocol::Text, &Limits::default()).is_err());
}

#[test]
fn binary_values_over_the_limit_are_refused_even_within_the_body_allowance() {
    // Found by fuzzing: the body may exceed max_bulk_len by room for a key
    // and extras, but the value alone may not.
    let limits = limits();
    let value = vec![b'v'; limits.max_bulk_len + 1];
    let mut buf = BytesMut::from(&binary_request(0x01, 1, 0, &[0; 8], b"k", &value)[..]);
    let p = parse(&mut buf, Protocol::Binary, &limits).unwrap().unwrap();
    let Parsed::Refused { status, skip, .. } = p else {
        panic!("{p:?}")
    };
    assert_eq!((status, skip), (Status::TooLarge, 0));
    assert!(buf.is_empty());
    let value = vec![b'v'; limits.max_bulk_len];
    let mut buf = BytesMut::from(&binary_request(0x01, 1, 0, &[0; 8], b"k", &value)[..]);
    assert!(matches!(
        parse(&mut buf, Protocol::Binary, &limits).unwrap(),
        Some(Parsed::Request(_))
    ));
}

#[test]
fn text_replies() {
    let meta = Meta::text();
    let hit = Hit {
        key: b("k"),
        flags: 3,
        cas: 9,
        data: b("abc"),
    };
    assert_eq!(
        render(&Answer::Hits(vec![hit.clone()]), &meta),
        b"VALUE k 3 3\r\nabc\r\nEND\r\n"
    );
    let gets = Meta {
        show_cas: true,
        ..meta
    };
    assert_eq!(
        render(&Answer::Hits(vec![hit]), &gets),
        b"VALUE k 3 3 9\r\nabc\r\nEND\r\n"
    );
    assert_eq!(render(&Answer::Stored { cas: 1 }, &meta), b"STORED\r\n");
    assert_eq!(
        render(&Answer::Fail(Status::NotStored, String::new()), &meta),
        b"NOT_STORED\r\n"
    );
    assert_eq!(
        render(&Answer::Number { value: 12, cas: 1 }, &meta),
        b"12\r\n"
    );
    let quiet = Meta {
        quiet: true,
        ..meta
    };
    assert!(render(&Answer::Stored { cas: 1 }, &quiet).is_empty());
    assert_eq!(
        render(&Answer::Fail(Status::Invalid, "bad".into()), &quiet),
        b"CLIENT_ERROR bad\r\n"
    );
}

fn bin(opcode: u8, extras: &[u8], key: &[u8], value: &[u8]) -> Request {
    let mut buf = BytesMut::from(&binary_request(opcode, 7, 0, extras, key, value)[..]);
    match parse(&mut buf, Protocol::Binary, &limits())
        .unwrap()
        .unwrap()
    {
        Parsed::Request(r) => {
            assert!(buf.is_empty());
            r
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn binary_requests_parse() {
    let mut extras = Vec::new();
    extras.extend_from_slice(&5u32.to_be_bytes());
    extras.extend_from_slice(&60u32.to_be_bytes());
    let set = bin(0x11, &extras, b"k", b"v");
    assert_eq!(
        set.op,
        Op::Store(Store {
            kind: StoreKind::Set,
            key: b("k"),
            flags: 5,
            exptime: 60,
            data: b("v")
        })
    );
    assert!(set.meta.quiet);
    assert_eq!(set.meta.opaque, 7);
    let getk = bin(0x0c, &[], b"k", b"");
    assert!(getk.meta.with_key && !getk.meta.quiet);
    let mut incr = Vec::new();
    incr.extend_from_slice(&3u64.to_be_bytes());
    incr.extend_from_slice(&10u64.to_be_bytes());
    incr.extend_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        bin(0x05, &incr, b"n", b"").op,
        Op::Incr {
            key: b("n"),
            delta: 3,
            decr: false,
            initial: None
        }
    );
    // A get with extras is refused, not run.
    let mut buf = BytesMut::from(&binary_request(0x00, 1, 0, &[0; 4], b"k", b"")[..]);
    assert!(matches!(
        parse(&mut buf, Protocol::Binary, &limits()).unwrap(),
        Some(Parsed::Refused {
            status: Status::Invalid,
            ..
        })
    ));
    // Bad magic ends the connection.
    let mut buf = BytesMut::from(&[0x81u8; 24][..]);
    assert!(parse(&mut buf, Protocol::Binary, &limits()).is_err());
}

#[test]
fn binary_replies_and_quiet_rules() {
    let getq = bin(0x09, &[], b"k", b"").meta;
    assert!(render(&Answer::Fail(Status::NotFound, String::new()), &getq).is_empty());
    let hit = Hit {
        key: b("k"),
        flags: 1,
        cas: 5,
        data: b("v"),
    };
    let out = render(&Answer::Hits(vec![hit]), &getq);
    assert_eq!(out[0], 0x81);
    assert_eq!(out[1], 0x09);
    assert_eq!(out[4], 4, "flags in the extras");
    assert_eq!(&out[12..16], &7u32.to_be_bytes(), "opaque echoed");
    assert_eq!(&out[16..24], &5u64.to_be_bytes());
    assert_eq!(&out[24..], &[0, 0, 0, 1, b'v']);
    let setq = bin(0x11, &[0; 8], b"k", b"v").meta;
    assert!(render(&Answer::Stored { cas: 2 }, &setq).is_empty());
    let fail = render(&Answer::Fail(Status::Exists, String::new()), &setq);
    assert_eq!(&fail[6..8], &2u16.to_be_bytes());
    assert_eq!(&fail[24..], b"Data exists for key.");
}

#[test]
fn exptimes_read_like_memcached() {
    let now = 1_800_000_000;
    assert_eq!(expiry(0, || now), Expiry::Default);
    assert_eq!(expiry(-1, || now), Expiry::Past);
    assert_eq!(expiry(1440, || now), Expiry::InMs(1_440_000));
    assert_eq!(expiry(now + 60, || now), Expiry::InMs(60_000));
    // Dates in 1971, long past, as memcached reads them: libmemcached's
    // exist check depends on 31 days being gone at once.
    assert_eq!(expiry(2_678_400, || now), Expiry::Past);
    assert_eq!(expiry(31_536_000, || now), Expiry::Past);
    assert_eq!(expiry(now - 1, || now), Expiry::Past);
    // The clock is read only for a Unix time.
    let no_clock = || -> i64 { panic!("the clock was read") };
    assert_eq!(expiry(0, no_clock), Expiry::Default);
    assert_eq!(expiry(-1, no_clock), Expiry::Past);
    assert_eq!(
        expiry(REALTIME_MAXDELTA, no_clock),
        Expiry::InMs(2_592_000_000)
    );
}

#[test]
fn keys_map_to_sessions_and_locks() {
    let keys = McKeys::default();
    let sid = |s: &str| SessionId::new(b(s));
    assert_eq!(keys.map(&b("memc.sess.key.abc")), Key::Session(sid("abc")));
    assert_eq!(
        keys.map(&b("memc.sess.key.lock.abc")),
        Key::Lock(sid("abc"))
    );
    assert_eq!(keys.map(&b("plain")), Key::Session(sid("plain")));
    assert_eq!(keys.map(&b("lock.x")), Key::Lock(sid("x")));
    assert_eq!(keys.map(&b("lock.")), Key::Session(sid("lock.")));
}

/// A xorshift64 generator from `seed` (not zero).
fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// Feeds random inputs to a parser: it never panics, and every request it
/// returns consumed bytes (so a connection loop always makes progress).
fn fuzz(protocol: Protocol, alphabet: &[u8], seed: u64, rounds: usize) {
    let mut next = xorshift(seed);
    let limits = limits();
    for _ in 0..rounds {
        let len = (next() % 64) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        let mut buf = BytesMut::from(&bytes[..]);
        loop {
            let before = buf.len();
            match parse(&mut buf, protocol, &limits) {
                Ok(Some(_)) => assert!(buf.len() < before || before == 0, "{bytes:?}"),
                Ok(None) | Err(_) => break,
            }
        }
    }
}

#[test]
fn random_text_never_panics_and_always_progresses() {
    fuzz(
        Protocol::Text,
        b"set get gat cas incr delete touch noreply 0123456789 -\r\n\x00\xff",
        0x9E37_79B9_7F4A_7C15,
        30_000,
    );
}

#[test]
fn random_binary_never_panics_and_always_progresses() {
    // Header-shaped bytes: the magic, small lengths, and every opcode.
    let alphabet: Vec<u8> = [0x80u8, 0x81, 0, 0, 0, 1, 4, 8, 20, 24, 0xff]
        .into_iter()
        .chain(0..0x26)
        .collect();
    fuzz(Protocol::Binary, &alphabet, 0x2545_F491_4F6C_DD1D, 30_000);
}

/// A stored value must own exactly its bytes: a slice of the connection's
/// read buffer would keep the whole buffer alive for as long as the session.
#[test]
fn stored_values_do_not_keep_the_read_buffer_alive() {
    let mut text_in = BytesMut::with_capacity(64 * 1024);
    text_in.extend_from_slice(b"set k 0 0 3\r\nabc\r\n");
    let mut binary_in = BytesMut::with_capacity(64 * 1024);
    binary_in.extend_from_slice(&[0x80, 0x01, 0, 1, 8, 0, 0, 0, 0, 0, 0, 12]);
    binary_in.extend_from_slice(&[0; 12]);
    binary_in.extend_from_slice(&[0; 8]);
    binary_in.extend_from_slice(b"kabc");
    for (mut buf, proto) in [(text_in, Protocol::Text), (binary_in, Protocol::Binary)] {
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.capacity();
        let parsed = parse(&mut buf, proto, &limits())
            .unwrap()
            .expect("one request");
        match op(&parsed) {
            Op::Store(Store { data, .. }) => {
                assert_eq!(&data[..], b"abc");
                assert!(
                    !range.contains(&(data.as_ptr() as usize)),
                    "{proto:?} value shares the buffer"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}

/// A line's tokens are kept on the stack up to sixteen and in a vector
/// past that: both read the same, and the name is matched in any case.
#[test]
fn text_gets_of_few_and_many_keys_read_alike() {
    for n in [1usize, 15, 16, 17, 40] {
        let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
        let line = format!("GeT {}\r\n", keys.join(" "));
        let (parsed, rest) = text(line.as_bytes());
        assert!(rest.is_empty());
        let Op::Get { keys: got, touch } = op(&parsed[0]) else {
            panic!("{n} keys: {:?}", parsed[0]);
        };
        assert_eq!(*touch, None);
        assert_eq!(
            got.as_slice(),
            &keys.iter().map(|k| b(k)).collect::<Vec<_>>()[..],
            "{n} keys"
        );
    }
    // A name longer than any command's is no command.
    let (parsed, _) = text(b"averyveryverylongname k\r\n");
    assert!(!matches!(parsed[0], Parsed::Request(_)), "{:?}", parsed[0]);
    // Keys: printable ASCII and bytes from 0x80 up; not DEL or controls.
    let (parsed, _) = text(b"get caf\xc3\xa9 k~\r\n");
    assert!(matches!(op(&parsed[0]), Op::Get { keys, .. } if keys.len() == 2));
    for bad in [&b"get a\x7fb\r\n"[..], b"get a\x01b\r\n"] {
        let (parsed, _) = text(bad);
        assert!(!matches!(parsed[0], Parsed::Request(_)), "{:?}", parsed[0]);
    }
}

/// A line of more tokens than `max_args` is refused whole, storage command
/// or not, and the next line is read as a request of its own.
#[test]
fn text_lines_of_too_many_tokens_are_refused_and_skipped() {
    let few = Limits {
        max_args: 4,
        ..limits()
    };
    for line in [&b"get a b c d e\r\n"[..], b"set k 0 0 1 x y\r\n"] {
        let mut buf = BytesMut::from(line);
        buf.extend_from_slice(b"get k\r\n");
        let first = parse(&mut buf, Protocol::Text, &few).unwrap().unwrap();
        assert!(
            matches!(&first, Parsed::Refused { message, .. } if message == "too many tokens"),
            "{first:?}"
        );
        let next = parse(&mut buf, Protocol::Text, &few).unwrap().unwrap();
        assert!(matches!(op(&next), Op::Get { keys, .. } if keys.as_slice() == [b("k")]));
        assert!(buf.is_empty());
    }
}

/// What `quick` reads, as `parse` reads it: the request and the bytes it
/// takes.
fn quick_as_parsed(q: Quick<'_>) -> (Op, bool) {
    match q {
        Quick::Get { key } => (
            Op::Get {
                keys: Keys::One(Bytes::copy_from_slice(key)),
                touch: None,
            },
            false,
        ),
        Quick::Set {
            key,
            flags,
            exptime,
            data,
            noreply,
        } => (
            Op::Store(Store {
                kind: StoreKind::Set,
                key: Bytes::copy_from_slice(key),
                flags,
                exptime,
                data: Bytes::copy_from_slice(data),
            }),
            noreply,
        ),
    }
}

/// Whenever `quick` reads a request, `parse` reads the same one from the
/// same bytes and consumes as many.
fn quick_reads_like_parse(input: &[u8], limits: &Limits) -> bool {
    let Some((q, len)) = quick(input, limits) else {
        return false;
    };
    let mut buf = BytesMut::from(input);
    let parsed = parse(&mut buf, Protocol::Text, limits);
    let Ok(Some(Parsed::Request(request))) = parsed else {
        panic!("quick read {q:?} from {input:?}, parse: {parsed:?}");
    };
    let (op, quiet) = quick_as_parsed(q);
    assert_eq!(request.op, op, "{input:?}");
    assert_eq!(request.meta.quiet, quiet, "{input:?}");
    assert!(!request.meta.show_cas);
    assert_eq!(input.len() - buf.len(), len, "{input:?}");
    true
}

#[test]
fn quick_reads_the_common_gets_and_sets_as_parse_does() {
    let limits = limits();
    for input in [
        &b"get memc.sess.key.abc\r\n"[..],
        b"get k\r\nget j\r\n",
        b"set k 0 0 3\r\nabc\r\n",
        b"set memc.sess.key.abc 4294967295 -1 0\r\n\r\nget x\r\n",
        b"set k 7 2592001 5 noreply\r\nab\r\nc\r\n",
        b"set k +1 +60 3\r\nabc\r\n",
    ] {
        assert!(quick_reads_like_parse(input, &limits), "{input:?}");
    }
    // Everything else is left to `parse`: other spellings, other
    // commands, what is not whole yet, what `parse` refuses.
    for input in [
        &b"GET k\r\n"[..],
        b"get  k\r\n",
        b"get k \r\n",
        b"get k\n",
        b"get a b\r\n",
        b"get \r\n",
        b"gets k\r\n",
        b"get k",
        b"set k 0 0 3\r\nab",
        b"set k 0 0 3\r\nabcd\r\n",
        b"set k 0 0 3 noreplyx\r\nabc\r\n",
        b"set k 0 0 3 noreply extra\r\nabc\r\n",
        b"set k 0 0 101\r\n",
        b"set k 0 0\r\n",
        b"set k x 0 3\r\nabc\r\n",
        b"set k 4294967296 0 3\r\nabc\r\n",
        b"add k 0 0 3\r\nabc\r\n",
        b"set k\x01 0 0 3\r\nabc\r\n",
        b"get k\x7f\r\n",
    ] {
        assert!(quick(input, &limits).is_none(), "{input:?}");
    }
    // A line or a request over the limits is `parse`'s to refuse.
    let tight = Limits {
        max_inline_len: 10,
        ..limits.clone()
    };
    assert!(quick(b"get abcdef\r\n", &tight).is_none());
    assert!(quick_reads_like_parse(b"get abcde\r\n", &tight));
    let few = Limits {
        max_args: 5,
        ..limits.clone()
    };
    assert!(quick(b"set k 0 0 1 noreply\r\na\r\n", &few).is_none());
    assert!(quick_reads_like_parse(b"set k 0 0 1\r\na\r\n", &few));
}

/// Random lines of the tokens the two requests are made of: whatever
/// `quick` reads, `parse` reads alike.
#[test]
fn quick_reads_random_lines_as_parse_does() {
    let words: [&[u8]; 14] = [
        b"get",
        b"set",
        b"k",
        b"memc.sess.key.a",
        b"0",
        b"3",
        b"-1",
        b"99999999999",
        b"noreply",
        b"abc",
        b" ",
        b"  ",
        b"\r\n",
        b"\n",
    ];
    let mut next = xorshift(0x853C_49E6_748F_EA9B);
    let limits = limits();
    let mut read = 0;
    for _ in 0..200_000 {
        let mut input = Vec::new();
        // Most lines start as one of the two do.
        match next() % 3 {
            0 => input.extend_from_slice(b"get "),
            1 => input.extend_from_slice(b"set k "),
            _ => {}
        }
        for _ in 0..next() % 10 {
            input.extend_from_slice(words[(next() % words.len() as u64) as usize]);
            if next() % 2 == 0 {
                input.push(b' ');
            }
        }
        if quick_reads_like_parse(&input, &limits) {
            read += 1;
        }
    }
    // The generator reaches both requests often enough to mean something.
    assert!(read > 1_000, "{read}");
}
