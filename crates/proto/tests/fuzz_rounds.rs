//! The fuzz targets' harnesses (`sessiond_proto::fuzz`, run for long by
//! cargo-fuzz from fuzz/) run here too, a few hundred inputs each on every
//! `cargo test`: random bytes, soups of protocol tokens that reach deeper
//! than random bytes do, and fuzz/seeds with random edits.

use proptest::prelude::*;
use sessiond_proto::fuzz;
use sessiond_proto::memcache::Protocol;

/// The seeds of one fuzz target, from fuzz/seeds/<target>.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = format!("{}/../../fuzz/seeds/{target}", env!("CARGO_MANIFEST_DIR"));
    let mut all: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    all.sort();
    assert!(!all.is_empty(), "{dir} has seeds");
    all
}

/// A seed with a few random edits: bytes overwritten, inserted, or the
/// whole cut short.
fn edited(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds(target);
    let n = seeds.len();
    (
        0..n,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..8),
        any::<prop::sample::Index>(),
    )
        .prop_map(move |(i, edits, cut)| {
            let mut s = seeds[i].clone();
            for (at, byte, kind) in edits {
                if s.is_empty() {
                    s.push(byte);
                    continue;
                }
                let at = at.index(s.len());
                match kind {
                    0 => s[at] = byte,
                    1 => s.insert(at, byte),
                    _ => {
                        s.remove(at);
                    }
                }
            }
            let keep = cut.index(s.len() + 1);
            if keep > s.len() / 2 {
                s.truncate(keep);
            }
            s
        })
}

/// Concatenations of tokens.
fn soup(tokens: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(tokens), 0..48)
        .prop_map(|parts| parts.concat().into_bytes())
}

const RESP_TOKENS: &[&str] = &[
    "*",
    "$",
    "\r\n",
    "\r",
    "\n",
    "0",
    "1",
    "2",
    "3",
    "-1",
    "9999999999",
    " ",
    "\"",
    "'",
    "\\",
    "SESSION.SET",
    "SESSION.LOCK",
    "SESSION.OPEN",
    "SESSION.CLOSE",
    "SESSION.SCAN",
    "GET",
    "SET",
    "EVALSHA",
    "HELLO",
    "AUTH",
    "PHPREDIS_SESSION:",
    "_LOCK",
    "NX",
    "PX",
    "EX",
    "WAIT",
    "MODE",
    "write",
    "abc",
    "\x00",
    "\u{e9}",
];

const MEMCACHE_TOKENS: &[&str] = &[
    "set ",
    "add ",
    "cas ",
    "get ",
    "gets ",
    "gat ",
    "incr ",
    "decr ",
    "delete ",
    "touch ",
    "append ",
    "stats",
    "flush_all",
    "version",
    "quit",
    "k ",
    "lock.",
    "memc.sess.key.",
    "0 ",
    "1 ",
    "5 ",
    "-1 ",
    "4294967296 ",
    "noreply",
    "\r\n",
    "hello",
    " ",
    "\u{80}",
    "\x01",
];

/// JSON's pieces (msgpack, being binary, comes from the random rounds
/// and the seeds).
const FIELD_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\"user\"",
    "\"a\\u00e9\"",
    "\\",
    "\\ud83d\\ude00",
    "1",
    "-2.5e3",
    "true",
    "false",
    "null",
    " ",
];

const LINE_TOKENS: &[&str] = &[
    "new",
    "open ",
    "put ",
    "get ",
    "remove ",
    "get_all",
    "put_all ",
    "commit",
    "regenerate_id",
    "close",
    "auth ",
    "quit",
    " ",
    "r",
    "w",
    "a=1",
    "&",
    "%",
    "%2",
    "%25",
    "%0A",
    "\r\n",
    "\n",
    "abc",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn resp_random(data in prop::collection::vec(any::<u8>(), 0..2048)) { fuzz::resp(&data) }
    #[test]
    fn resp_soup(data in soup(RESP_TOKENS)) { fuzz::resp(&data) }
    #[test]
    fn resp_seeds(data in edited("resp")) { fuzz::resp(&data) }

    #[test]
    fn memcache_text_random(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        fuzz::memcache(&data, Protocol::Text)
    }
    #[test]
    fn memcache_text_soup(data in soup(MEMCACHE_TOKENS)) { fuzz::memcache(&data, Protocol::Text) }
    #[test]
    fn memcache_text_seeds(data in edited("memcache_text")) {
        fuzz::memcache(&data, Protocol::Text)
    }

    #[test]
    fn memcache_binary_random(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        fuzz::memcache(&data, Protocol::Binary)
    }
    #[test]
    fn memcache_binary_seeds(data in edited("memcache_binary")) {
        fuzz::memcache(&data, Protocol::Binary)
    }

    #[test]
    fn line_random(data in prop::collection::vec(any::<u8>(), 0..2048)) { fuzz::line(&data) }
    #[test]
    fn line_soup(data in soup(LINE_TOKENS)) { fuzz::line(&data) }
    #[test]
    fn line_seeds(data in edited("line")) { fuzz::line(&data) }

    #[test]
    fn php_random(data in prop::collection::vec(any::<u8>(), 0..1024)) { fuzz::php(&data) }
    #[test]
    fn php_seeds(data in edited("php")) { fuzz::php(&data) }

    #[test]
    fn fields_random(data in prop::collection::vec(any::<u8>(), 0..1024)) { fuzz::fields(&data) }
    #[test]
    fn fields_soup(data in soup(FIELD_TOKENS)) { fuzz::fields(&data) }
    #[test]
    fn fields_seeds(data in edited("fields")) { fuzz::fields(&data) }
}

#[test]
fn every_seed_runs_clean() {
    for s in seeds("resp") {
        fuzz::resp(&s);
    }
    for s in seeds("memcache_text") {
        fuzz::memcache(&s, Protocol::Text);
    }
    for s in seeds("memcache_binary") {
        fuzz::memcache(&s, Protocol::Binary);
    }
    for s in seeds("line") {
        fuzz::line(&s);
    }
    for s in seeds("php") {
        fuzz::php(&s);
    }
    for s in seeds("fields") {
        fuzz::fields(&s);
    }
}
