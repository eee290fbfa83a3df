//! The stock Node session stores, unchanged and on their defaults, against
//! sessiond's default configuration and against real redis-server and
//! memcached: express-session with connect-redis (over node-redis and over
//! ioredis) and with connect-memcached (tests/node/stores.mjs says what
//! it does; `.ci/run` installs the packages with `npm ci`). The two runs
//! must see the same.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::process::tool_available;
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_node_stores_work_unchanged() {
    let mut probe = Command::new("node");
    if !tool_available(probe.arg("--version"), "node") {
        return;
    }
    let installed = Path::new(DIR).join("node_modules/connect-redis");
    let mut probe = Command::new("test");
    if !tool_available(
        probe.arg("-d").arg(&installed),
        "the Node packages of tests/node (npm ci --prefix tests/node)",
    ) {
        return;
    }
    let script = |redis: u16, memcached: u16| {
        let mut script = Command::new("node");
        script
            .current_dir(DIR)
            .args(["stores.mjs", &redis.to_string(), &memcached.to_string()]);
        script
    };
    let Some((server, ours, real)) = common::ours_and_real(script).await else {
        return;
    };
    let json = |out: Vec<u8>| -> Value { serde_json::from_slice(&out).expect("JSON") };
    let (ours, real) = (json(ours), json(real));

    // What users see on sessiond.
    for store in ["connect-redis+redis", "connect-redis+ioredis"] {
        let seen = &ours[store];
        assert_eq!(seen["me"], "alice", "{store}: the session read back");
        assert_eq!(seen["bob"], "bob", "{store}");
        // A day's default cookie and a one-year "remember me", in minutes.
        assert_eq!(seen["ttls"], serde_json::json!([1440, 525_600]), "{store}");
        assert_eq!(seen["length"], 2, "{store}: length()");
        assert_eq!(
            seen["all"],
            serde_json::json!(["alice", "bob"]),
            "{store}: all()"
        );
        assert_eq!(seen["meAfterLogout"], Value::Null, "{store}");
        assert_eq!(seen["lengthAfterLogout"], 1, "{store}");
        assert_eq!(seen["lengthAfterClear"], 0, "{store}: clear()");
        assert_eq!(seen["bobAfterClear"], Value::Null, "{store}");
        // And exactly what Redis gives them.
        assert_eq!(
            ours[store], real[store],
            "{store}: sessiond vs redis-server"
        );
    }
    let seen = &ours["connect-memcached"];
    assert_eq!(seen["me"], "alice");
    assert_eq!(seen["meAfterLogout"], Value::Null);
    // connect-memcached passes the one-year lifetime as 31,536,000 s, which
    // memcached (and so sessiond, docs/protocol-memcache.md) reads as a
    // date in 1971: the session is gone at once on both.
    assert_eq!(seen["bob"], Value::Null, "as on memcached");
    assert_eq!(
        ours["connect-memcached"], real["connect-memcached"],
        "sessiond vs memcached"
    );

    // The JSON sessions they left, through the native door: by a field
    // (the index's `user`) and a nested one (passport.user), and read.
    let mut c = server.client().await;
    let carol = c.find("user", "carol").await.expect("FIND user");
    // The second connect-redis run cleared the first one's carol first.
    assert_eq!(
        carol.len(),
        2,
        "connect-redis's, connect-memcached's: {carol:?}"
    );
    assert!(carol.iter().any(|id| id.starts_with("sess:")), "{carol:?}");
    let mut by_passport = c.find("passport.user", "carol-id").await.expect("FIND");
    by_passport.sort();
    let mut sorted = carol.clone();
    sorted.sort();
    assert_eq!(by_passport, sorted);
    for id in &carol {
        let got = c.get(id, "passport.user").await.expect("GET");
        assert_eq!(got.as_deref(), Some(&b"carol-id"[..]), "{id}");
    }
    let listed = c.list_var("passport.user").await.expect("LISTVAR");
    assert_eq!(listed.len(), 2, "{listed:?}");
}
