//! The configuration fuzz target's harness on every `cargo test`: random
//! text, soups of TOML lines of our keys with odd values, and fuzz/seeds
//! with random edits. Whatever parses must print back as TOML that reads
//! the same.

use proptest::prelude::*;
use sessiond_server::fuzz_config;

fn seeds() -> Vec<String> {
    let dir = format!("{}/../../fuzz/seeds/config", env!("CARGO_MANIFEST_DIR"));
    let mut all: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    all.sort();
    all
}

const LINES: &[&str] = &[
    "listen_resp = \"0.0.0.0:6390\"\n",
    "listen_line = \"off\"\n",
    "listen_memcache = \"[::1]:11212\"\n",
    "allow_resp = [\"10.0.0.0/8\", \"::/0\"]\n",
    "allow_line = [\"10.1.2.3/8\"]\n",
    "storage = \"memory\"\n",
    "data_dir = \"x\\ny\"\n",
    "fsync = \"always\"\n",
    "shards = 0\n",
    "shards = 18446744073709551615\n",
    "default_timeout = -1\n",
    "redis_prefixes = []\n",
    "log_level = \"loud\"\n",
    "[limits]\n",
    "id_chars = \"z-a\"\n",
    "id_chars = \"A-Za-z0-9_-\"\n",
    "max_vars = 0\n",
    "max_sessions_per_tenant = 0\n",
    "request_timeout_ms = 99\n",
    "[tls]\n",
    "doors = [\"resp\", \"nope\"]\n",
    "cert = \"/nonexistent\"\n",
    "[[users]]\n",
    "name = \"a b\"\n",
    "name = \"shop\"\n",
    "password_hash = \"$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\"\n",
    "tenant = \"../x\"\n",
    "role = \"admin\"\n",
    "unknown = 1\n",
    "= \n",
    "\"\n",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn config_random(data in prop::collection::vec(any::<u8>(), 0..512)) { fuzz_config(&data) }

    #[test]
    fn config_soup(lines in prop::collection::vec(prop::sample::select(LINES), 0..24)) {
        fuzz_config(lines.concat().as_bytes())
    }

    #[test]
    fn config_seeds(i in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>(), line in prop::sample::select(LINES)) {
        let seeds = seeds();
        let seed = &seeds[i.index(seeds.len())];
        // A line dropped in somewhere, on a line boundary.
        let at = seed.match_indices('\n').map(|(at, _)| at + 1).nth(cut.index(seed.lines().count().max(1))).unwrap_or(0);
        let text = format!("{}{}{}", &seed[..at], line, &seed[at..]);
        fuzz_config(text.as_bytes())
    }
}

#[test]
fn the_seeds_parse_and_validate() {
    for seed in seeds() {
        let c = sessiond_server::Config::from_toml(&seed).unwrap();
        c.validate().unwrap();
        fuzz_config(seed.as_bytes());
    }
}
