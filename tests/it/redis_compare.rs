//! The Redis door against real redis-server: the same commands, sent by
//! the same client to both, must get the same replies. Only keys of
//! string values and commands stock session stores send; every deliberate
//! difference is documented in docs/protocol.md.

use crate::common;

use common::process::{start_peer, Peer, Running};
use common::TestServer;
use sessiond_client::{Client, RespValue as V};

pub(crate) async fn call(c: &mut Client, args: &[&str]) -> V {
    match c.call(args).await {
        Ok(v) => codes(v),
        // The code only: the messages are ours.
        Err(sessiond_client::Error::Server { code, .. }) => V::Error(code),
        Err(e) => panic!("{args:?}: {e}"),
    }
}

/// Errors inside a reply (EXEC's array) by their code only.
fn codes(v: V) -> V {
    match v {
        V::Error(e) => V::Error(e.split(' ').next().unwrap_or("").to_string()),
        V::Array(items) => V::Array(items.into_iter().map(codes).collect()),
        other => other,
    }
}

/// A private redis-server on a free port with a client, or None (skipped;
/// under CI a failure) when there is none.
async fn redis_server() -> Option<(Running, Client, std::net::SocketAddr)> {
    let (running, port) = start_peer(Peer::Redis)?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let client = Client::connect(addr)
        .await
        .expect("connect to redis-server");
    Some((running, client, addr))
}

/// A private redis-server and a sessiond, each with a client, or None
/// (skipped) without redis-server.
pub(crate) struct Both {
    _redis: Running,
    pub(crate) redis: Client,
    pub(crate) redis_addr: std::net::SocketAddr,
    pub(crate) server: TestServer,
    pub(crate) ours: Client,
}

impl Both {
    /// Runs every command on both and compares the replies.
    pub(crate) async fn same(&mut self, script: &[&[&str]]) {
        same(&mut self.ours, &mut self.redis, script).await;
    }
}

pub(crate) async fn both() -> Option<Both> {
    let (running, redis, redis_addr) = redis_server().await?;
    let server = TestServer::start().await;
    let ours = server.client().await;
    Some(Both {
        _redis: running,
        redis,
        redis_addr,
        server,
        ours,
    })
}

/// Runs every command on both and compares the replies.
pub(crate) async fn same(ours: &mut Client, redis: &mut Client, script: &[&[&str]]) {
    for args in script {
        let (a, b) = (call(ours, args).await, call(redis, args).await);
        assert_eq!(
            a, b,
            "{args:?}: sessiond answered {a:?}, redis-server {b:?}"
        );
    }
}

#[tokio::test]
async fn string_commands_answer_as_redis_does() {
    let Some(mut pair) = both().await else {
        return;
    };
    pair.same(&[
        &["MSET", "a", "1", "b", "2"],
        &["MGET", "a", "missing", "b"],
        &["SETNX", "a", "again"],
        &["SETNX", "c", "3"],
        &["GET", "a"],
        &["GET", "c"],
        &["GETDEL", "c"],
        &["GETDEL", "c"],
        &["EXISTS", "c"],
        &["MGET", "c"],
    ])
    .await;
    // Argument errors carry Redis's code.
    pair.same(&[&["MSET", "a"], &["MGET"], &["SETNX", "a"], &["GETDEL"]])
        .await;
}

/// Laravel's `Cache::lock()->release()` and Redlock-style releases: the
/// compare-and-delete script on an ordinary key deletes it only when it
/// holds the caller's value (it used to be taken for phpredis's unlock and
/// do nothing).
#[tokio::test]
async fn the_compare_and_delete_script_works_on_any_key() {
    let Some(mut pair) = both().await else {
        return;
    };
    for script in [
        "if redis.call(\"get\",KEYS[1]) == ARGV[1] then return redis.call(\"del\",KEYS[1]) else return 0 end",
        "if redis.call('get', KEYS[1]) == ARGV[1] then\n  return redis.call('del', KEYS[1])\nelse\n  return 0\nend",
        "if redis.call(\"GET\", KEYS[1]) == ARGV[1] then return redis.call(\"DEL\", KEYS[1]) else return 0 end",
    ] {
        same(
            &mut pair.ours,
            &mut pair.redis,
            &[
                &["SET", "laravel_cache:lock", "owner-a", "EX", "10", "NX"],
                &["EVAL", script, "1", "laravel_cache:lock", "owner-b"],
                &["GET", "laravel_cache:lock"],
                &["EVAL", script, "1", "laravel_cache:lock", "owner-a"],
                &["EXISTS", "laravel_cache:lock"],
                &["EVAL", script, "1", "laravel_cache:lock", "owner-a"],
            ],
        )
        .await;
    }
    // Any other script runs as on Redis.
    pair.same(&[&["EVAL", "return redis.call('incr', KEYS[1])", "1", "k"]])
        .await;
    assert_eq!(
        call(&mut pair.redis, &["GET", "laravel_cache:lock"]).await,
        V::Nil
    );
}

/// What clients read from INFO before they start.
#[tokio::test]
async fn info_carries_redis_version_and_cluster_enabled() {
    let s = TestServer::start().await;
    let mut ours = s.client().await;
    let r = call(&mut ours, &["INFO"]).await;
    let V::Bulk(info) = r else { panic!("{r:?}") };
    let info = String::from_utf8_lossy(&info);
    assert!(info.contains("redis_version:7.2.0\r\n"), "{info}");
    assert!(
        info.contains("# Cluster\r\ncluster_enabled:0\r\n"),
        "{info}"
    );
}

/// Keys without expiry (connect-redis `disableTTL`, Django `timeout=None`),
/// PERSIST, EXPIRE's NX/XX/GT/LT, EXPIREAT, GETEX PERSIST, and the INCR
/// family, as Redis answers them.
#[tokio::test]
async fn expiry_and_counters_answer_as_redis_does() {
    let Some(mut pair) = both().await else {
        return;
    };
    let past = "1000000000";
    pair.same(&[
        &["SET", "k", "v"],
        &["TTL", "k"],
        &["PTTL", "k"],
        &["EXPIRETIME", "k"],
        &["EXPIRE", "k", "100", "NX"],
        &["EXPIRE", "k", "200", "NX"],
        &["TTL", "k"],
        &["EXPIRE", "k", "50", "GT"],
        &["EXPIRE", "k", "500", "GT"],
        &["TTL", "k"],
        &["EXPIRE", "k", "1000", "LT"],
        &["EXPIRE", "k", "10", "LT"],
        &["EXPIRE", "k", "20", "XX"],
        &["EXPIRE", "k", "5", "XX", "LT"],
        &["TTL", "k"],
        &["PERSIST", "k"],
        &["PERSIST", "k"],
        &["TTL", "k"],
        &["EXPIRE", "k", "10", "XX"],
        &["EXPIRE", "k", "10", "GT"],
        &["EXPIRE", "k", "10", "XX", "LT"],
        &["EXPIRE", "k", "10", "LT"],
        &["TTL", "k"],
        &["EXPIRE", "k", "5", "NX", "GT"],
        &["EXPIRE", "k", "5", "GT", "LT"],
        &["EXPIRE", "k", "5", "SOON"],
        &["EXPIRE", "missing", "10"],
        &["PERSIST", "missing"],
        &["TTL", "missing"],
        &["EXPIRETIME", "missing"],
        &["SETEX", "e", "100", "v"],
        &["GETEX", "e", "PERSIST"],
        &["TTL", "e"],
        &["GETEX", "e", "EX", "30"],
        &["TTL", "e"],
        // SET without EX removes the TTL; KEEPTTL keeps it.
        &["SET", "t", "1", "EX", "100"],
        &["SET", "t", "2"],
        &["TTL", "t"],
        &["SET", "t", "3", "EX", "100"],
        &["SET", "t", "4", "KEEPTTL"],
        &["TTL", "t"],
        // A deadline already past deletes the key.
        &["EXPIREAT", "t", past],
        &["EXISTS", "t"],
        &["SET", "t", "5"],
        &["PEXPIRE", "t", "-1"],
        &["EXISTS", "t"],
        // Counters.
        &["SET", "c", "10"],
        &["INCR", "c"],
        &["INCRBY", "c", "5"],
        &["DECR", "c"],
        &["DECRBY", "c", "20"],
        &["GET", "c"],
        &["INCR", "fresh"],
        &["TTL", "fresh"],
        &["SET", "c", "10", "EX", "100"],
        &["INCR", "c"],
        &["TTL", "c"],
        &["SET", "s", "abc"],
        &["INCR", "s"],
        &["SET", "s", " 1"],
        &["INCR", "s"],
        &["SET", "s", "01"],
        &["INCR", "s"],
        &["SET", "big", "9223372036854775807"],
        &["INCR", "big"],
        &["DECRBY", "big", "-9223372036854775808"],
        &["INCRBY", "c", "x"],
    ])
    .await;
}

/// UTF-8 keys (Django's cache tests, pymemcache) are accepted like any
/// other; control and space characters stay refused (a deliberate
/// difference: Redis takes any bytes).
#[tokio::test]
async fn utf8_keys_are_accepted() {
    let Some(mut pair) = both().await else {
        return;
    };
    pair.same(&[
        &["SET", "django:caché:ключ:キー", "v"],
        &["GET", "django:caché:ключ:キー"],
        &["EXISTS", "django:caché:ключ:キー"],
    ])
    .await;
    let refused = call(&mut pair.ours, &["SET", "line\u{2028}break", "v"]).await;
    assert!(matches!(refused, V::Error(_)), "{refused:?}");
    let mut m = common::wire::Wire::connect(pair.server.memcache).await;
    let set = "set mémoire 0 0 1\r\nv\r\n";
    assert_eq!(m.ask(set.as_bytes(), b"\r\n").await, "STORED\r\n");
}

/// MULTI/EXEC as redis-py, redis-rb, ioredis and Django's set_many use
/// them: queued commands run at EXEC and answer one array (errors inside
/// it); a command refused while queuing makes EXEC answer EXECABORT and
/// run *nothing*; DISCARD drops the queue; a WATCHed key changed by
/// another client makes EXEC answer nil and run nothing.
#[tokio::test]
async fn transactions_answer_as_redis_does() {
    let Some(mut pair) = both().await else {
        return;
    };
    pair.same(&[
        &["MULTI"],
        &["SET", "a", "1"],
        &["INCR", "a"],
        &["GET", "a"],
        &["MGET", "a", "nothing"],
        &["EXEC"],
        &["MULTI"],
        &["SET", "x", "text"],
        &["INCR", "x"],
        &["EXEC"],
        &["GET", "x"],
        // Refused while queuing: nothing at all is applied.
        &["MULTI"],
        &["SET", "b", "1"],
        &["NOSUCHCOMMAND", "b"],
        &["SET", "c"],
        &["EXEC"],
        &["GET", "b"],
        &["MULTI"],
        &["MULTI"],
        &["SET", "d", "1"],
        &["DISCARD"],
        &["GET", "d"],
        &["EXEC"],
        &["DISCARD"],
        &["UNWATCH"],
        &["MULTI"],
        &["EXEC"],
    ])
    .await;
    // WATCH, with a second client changing the watched key.
    for (mut a, mut b) in [
        (pair.server.client().await, pair.server.client().await),
        (
            Client::connect(pair.redis_addr).await.unwrap(),
            Client::connect(pair.redis_addr).await.unwrap(),
        ),
    ] {
        assert_eq!(
            call(&mut a, &["SET", "w", "start"]).await,
            V::Simple("OK".into())
        );
        assert_eq!(call(&mut a, &["WATCH", "w"]).await, V::Simple("OK".into()));
        assert_eq!(
            call(&mut b, &["SET", "w", "theirs"]).await,
            V::Simple("OK".into())
        );
        assert_eq!(call(&mut a, &["MULTI"]).await, V::Simple("OK".into()));
        assert_eq!(
            call(&mut a, &["SET", "w", "mine"]).await,
            V::Simple("QUEUED".into())
        );
        assert_eq!(
            call(&mut a, &["EXEC"]).await,
            V::Nil,
            "a watched key changed"
        );
        assert_eq!(call(&mut a, &["GET", "w"]).await, V::Bulk("theirs".into()));
        // Unchanged: it runs.
        assert_eq!(call(&mut a, &["WATCH", "w"]).await, V::Simple("OK".into()));
        assert_eq!(call(&mut a, &["MULTI"]).await, V::Simple("OK".into()));
        assert_eq!(
            call(&mut a, &["SET", "w", "mine"]).await,
            V::Simple("QUEUED".into())
        );
        assert_eq!(
            call(&mut a, &["EXEC"]).await,
            V::Array(vec![V::Simple("OK".into())])
        );
        assert_eq!(call(&mut b, &["GET", "w"]).await, V::Bulk("mine".into()));
    }
}

/// A transaction is one step: another client's MGET of the two keys it
/// bumps never sees one bumped and not the other, on sessiond as on
/// Redis. (Writes between the bumps make the window wide enough that
/// running the queue one command at a time fails this at once; the
/// server needs threads of its own for that.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_client_sees_part_of_a_transaction() {
    let Some(pair) = both().await else {
        return;
    };
    let ours = (pair.server.client().await, pair.server.client().await);
    let redis = (
        Client::connect(pair.redis_addr).await.unwrap(),
        Client::connect(pair.redis_addr).await.unwrap(),
    );
    for (mut writer, mut reader) in [ours, redis] {
        const ROUNDS: i64 = 300;
        // PHP-encoded data, which a store reads for its index: slow to write.
        let php: String = (0..2000).map(|i| format!("k{i}|i:{i};")).collect();
        let write = tokio::spawn(async move {
            for _ in 0..ROUNDS {
                call(&mut writer, &["MULTI"]).await;
                call(&mut writer, &["INCR", "tx:a"]).await;
                for i in 0..20 {
                    call(&mut writer, &["SET", &format!("tx:filler{i}"), &php]).await;
                }
                call(&mut writer, &["INCR", "tx:b"]).await;
                let done = call(&mut writer, &["EXEC"]).await;
                assert!(matches!(done, V::Array(ref r) if r.len() == 22), "{done:?}");
            }
        });
        loop {
            let V::Array(values) = call(&mut reader, &["MGET", "tx:a", "tx:b"]).await else {
                panic!("MGET");
            };
            assert_eq!(values[0], values[1], "saw part of a transaction");
            if values[0] == V::Bulk(ROUNDS.to_string().into()) {
                break;
            }
        }
        write.await.expect("writer");
    }
}

/// Deliberate difference (docs/protocol.md): a command that walks every
/// session (KEYS, SCAN) cannot be queued, since the whole transaction
/// holds its sessions while it runs; queuing it fails the EXEC, as any
/// queuing error does.
#[tokio::test]
async fn walks_cannot_be_queued_in_a_transaction() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    assert_eq!(call(&mut c, &["MULTI"]).await, V::Simple("OK".into()));
    assert_eq!(
        call(&mut c, &["SET", "k", "v"]).await,
        V::Simple("QUEUED".into())
    );
    match c.call(&["KEYS", "*"]).await {
        Err(sessiond_client::Error::Server { message, .. }) => {
            assert!(message.contains("KEYS cannot be queued"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(call(&mut c, &["EXEC"]).await, V::Error("EXECABORT".into()));
    assert_eq!(call(&mut c, &["GET", "k"]).await, V::Nil);
}

/// phpredis's lock keys in transactions and multi-key commands answer as
/// on Redis: a lock taken inside MULTI, its owner read, a taken lock
/// refused, a session and its lock deleted by one DEL — and the lock is
/// really taken and released (another client sees it), on the cluster as
/// on one node.
#[tokio::test]
async fn lock_keys_in_transactions_answer_as_redis_does() {
    let Some(mut pair) = both().await else {
        return;
    };
    const KEY: &str = "PHPREDIS_SESSION:tx1";
    const LOCK: &str = "PHPREDIS_SESSION:tx1_LOCK";
    pair.same(&[
        &["SET", KEY, "n|i:1;"],
        &["MULTI"],
        &["SET", LOCK, "web1|1", "NX", "PX", "30000"],
        &["GET", LOCK],
        &["SET", LOCK, "web1|2", "NX", "PX", "30000"],
        &["EXISTS", KEY, LOCK],
        &["GET", KEY],
        &["EXEC"],
        &["MGET", KEY, LOCK],
        &["SET", LOCK, "web1|3", "NX", "PX", "30000"],
    ])
    .await;
    // The lock taken inside MULTI excludes another client, on both.
    for c in [
        &mut pair.server.client().await,
        &mut Client::connect(pair.redis_addr).await.unwrap(),
    ] {
        let busy = call(c, &["SET", LOCK, "web2|1", "NX", "PX", "30000"]).await;
        assert_eq!(busy, V::Nil, "the lock is held");
    }
    pair.same(&[
        // The session and its lock in one DEL: both go.
        &["DEL", KEY, LOCK],
        &["EXISTS", KEY, LOCK],
        &["MULTI"],
        &["SET", LOCK, "web1|4", "NX", "PX", "30000"],
        &["SET", KEY, "n|i:2;"],
        &["DEL", LOCK],
        &["SET", LOCK, "web1|5", "NX", "PX", "30000"],
        &["GET", LOCK],
        &["EXEC"],
        &["GET", KEY],
        &["DEL", LOCK, KEY],
        &["MGET", KEY, LOCK],
    ])
    .await;
    // Released: another client takes it at once, on both.
    for c in [
        &mut pair.server.client().await,
        &mut Client::connect(pair.redis_addr).await.unwrap(),
    ] {
        let got = call(c, &["SET", LOCK, "web2|2", "NX", "PX", "30000"]).await;
        assert_eq!(got, V::Simple("OK".into()), "the lock is free");
    }
}

/// Every key of a SCAN walk (to cursor 0), sorted.
async fn scan_all(c: &mut Client, opts: &[&str]) -> Vec<V> {
    let mut cursor = "0".to_string();
    let mut found = Vec::new();
    loop {
        let mut args = vec!["SCAN", &cursor];
        args.extend_from_slice(opts);
        let V::Array(parts) = call(c, &args).await else {
            panic!("SCAN {opts:?}");
        };
        let [V::Bulk(next), V::Array(keys)] = <[V; 2]>::try_from(parts).expect("two parts") else {
            panic!("SCAN reply");
        };
        found.extend(keys);
        cursor = String::from_utf8(next.to_vec()).expect("cursor");
        if cursor == "0" {
            break;
        }
    }
    found.sort_by_key(|k| format!("{k:?}"));
    found
}

/// KEYS and SCAN (MATCH, TYPE) give every key back exactly as it was
/// written — phpredis's prefix, the stock stores' own prefixes, none — on
/// sessiond as on Redis.
#[tokio::test]
async fn keys_are_listed_as_written() {
    let Some(mut pair) = both().await else {
        return;
    };
    let written = [
        "PHPREDIS_SESSION:abc",
        "sess:123",
        "sess:456",
        ":1:django.contrib.sessions.cachexyz",
        "session:flask",
        "plain",
    ];
    for key in written {
        pair.same(&[&["SET", key, "v", "EX", "100"]]).await;
    }
    pair.same(&[&["INCR", "sess:counter"]]).await;
    for opts in [
        &[][..],
        &["MATCH", "sess:*"],
        &["MATCH", "sess:*", "COUNT", "2"],
        &["MATCH", "PHPREDIS_SESSION:*"],
        &["TYPE", "string"],
        &["TYPE", "hash"],
        &["TYPE", "hash", "MATCH", "*"],
    ] {
        let ours = scan_all(&mut pair.ours, opts).await;
        let redis = scan_all(&mut pair.redis, opts).await;
        assert_eq!(ours, redis, "SCAN {opts:?}");
    }
    assert_eq!(
        scan_all(&mut pair.ours, &["MATCH", "sess:*"]).await.len(),
        3
    );
    for pattern in ["*", "sess:*", "*abc", "plain"] {
        let sorted = |v: V| match v {
            V::Array(mut keys) => {
                keys.sort_by_key(|k| format!("{k:?}"));
                keys
            }
            other => panic!("KEYS: {other:?}"),
        };
        let ours = sorted(call(&mut pair.ours, &["KEYS", pattern]).await);
        let redis = sorted(call(&mut pair.redis, &["KEYS", pattern]).await);
        assert_eq!(ours, redis, "KEYS {pattern}");
    }
}

/// With two prefixes configured, each session is listed under the one it
/// was written with; the two are aliases of one id (docs/protocol.md), and
/// a session no Redis client wrote is listed under the longest prefix.
#[tokio::test]
async fn each_prefix_is_listed_as_written() {
    let server = TestServer::start_with(sessiond_server::Config {
        storage: sessiond_server::Storage::Memory,
        redis_prefixes: vec!["PHPREDIS_SESSION:".into(), "app:".into()],
        ..Default::default()
    })
    .await;
    let mut c = server.client().await;
    for key in ["PHPREDIS_SESSION:one", "app:two", "three"] {
        assert_eq!(
            call(&mut c, &["SET", key, "v"]).await,
            V::Simple("OK".into())
        );
    }
    // Natively created: no Redis spelling.
    c.create("four", Default::default()).await.unwrap();
    let V::Array(mut keys) = call(&mut c, &["KEYS", "*"]).await else {
        panic!("KEYS")
    };
    keys.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(
        keys,
        [
            "PHPREDIS_SESSION:four",
            "PHPREDIS_SESSION:one",
            "app:two",
            "three"
        ]
        .map(|k| V::Bulk(k.into()))
    );
    // Aliases: both spellings reach the session, which keeps its own.
    assert_eq!(
        call(&mut c, &["GET", "PHPREDIS_SESSION:two"]).await,
        V::Bulk("v".into())
    );
    assert_eq!(c.get_data("two").await.unwrap(), bytes::Bytes::from("v"));
}

/// INFO keyspace counts keys and the keys with an expiry as Redis does.
#[tokio::test]
async fn info_keyspace_counts_keys_with_an_expiry() {
    let Some(mut pair) = both().await else {
        return;
    };
    pair.same(&[
        &["SET", "forever", "v"],
        &["SETEX", "day", "86400", "v"],
        &["SET", "later", "v"],
        &["EXPIRE", "later", "100"],
        &["SETEX", "kept", "100", "v"],
        &["PERSIST", "kept"],
        &["DEL", "day"],
    ])
    .await;
    let keyspace = |v: V| match v {
        V::Bulk(b) => String::from_utf8_lossy(&b)
            .lines()
            .find(|l| l.starts_with("db0:"))
            .map(|l| l.split(",avg_ttl").next().unwrap_or("").to_string()),
        other => panic!("INFO: {other:?}"),
    };
    let ours = keyspace(call(&mut pair.ours, &["INFO", "keyspace"]).await);
    let redis = keyspace(call(&mut pair.redis, &["INFO", "keyspace"]).await);
    assert_eq!(ours.as_deref(), Some("db0:keys=3,expires=1"));
    assert_eq!(ours, redis);
}
