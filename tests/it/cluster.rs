//! The cluster backends — `storage = "postgres"` and `storage = "mysql"` —
//! with several nodes over one private database server
//! (tests/it/common/postgres.rs, mysql.rs); each test runs on both
//! (`name::on_postgres`, `name::on_mysql`). What one node writes every
//! other reads; concurrent writes through different nodes are never lost;
//! the schema is sessiond's own; a database that is down is answered "try
//! again"; the fault tests of the cluster issue.

use std::sync::Arc;

use bytes::Bytes;
use sessiond_client::RespValue as V;
use sessiond_core::ManualClock;
use sessiond_server::{Config, Server};

use crate::common::db::Kind;
use crate::common::{bulk, call, TestServer};
use crate::on_each_db;

fn on(kind: Kind, url: &str) -> Config {
    Config {
        storage: kind.storage(),
        database_url: url.to_string(),
        ..Config::default()
    }
}

/// Two nodes on one database of their own (None: no such database,
/// skipped).
async fn two_nodes(kind: Kind) -> Option<(TestServer, TestServer)> {
    let url = kind.shared()?.database();
    Some(two_nodes_on(kind, &url).await)
}

/// Two nodes on the database at `url`.
async fn two_nodes_on(kind: Kind, url: &str) -> (TestServer, TestServer) {
    (
        TestServer::start_with(on(kind, url)).await,
        TestServer::start_with(on(kind, url)).await,
    )
}

on_each_db! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_node_writes_every_node_reads(kind: Kind) {
    let Some(pg) = kind.shared() else { return };
    let url = pg.database();
    let (a, b) = two_nodes_on(kind, &url).await;
    let (mut ca, mut cb) = (a.client().await, b.client().await);
    let key = "PHPREDIS_SESSION:s1";
    assert_eq!(
        call(&mut ca, &["SETEX", key, "100", "user_id|i:42;"]).await,
        V::Simple("OK".into())
    );
    assert_eq!(call(&mut cb, &["GET", key]).await, bulk("user_id|i:42;"));
    assert_eq!(call(&mut cb, &["TTL", key]).await, V::Int(100));
    // The same session through the native protocol and memcached's door.
    assert_eq!(
        call(&mut cb, &["SESSION.SET", "s1", "cart", "3"]).await,
        V::Simple("OK".into())
    );
    assert_eq!(
        call(&mut ca, &["SESSION.GET", "s1", "cart"]).await,
        bulk("3")
    );
    let mut mc = crate::common::wire::Wire::connect(b.memcache).await;
    let got = mc.ask(b"get memc.sess.key.s1\r\n", b"END\r\n").await;
    assert!(got.contains("user_id|i:42;"), "{got}");
    // Keys without expiry, increments, MGET: each node sees the other's.
    assert_eq!(
        call(&mut ca, &["SET", "plain", "v"]).await,
        V::Simple("OK".into())
    );
    assert_eq!(call(&mut cb, &["TTL", "plain"]).await, V::Int(-1));
    assert_eq!(call(&mut ca, &["INCR", "n"]).await, V::Int(1));
    assert_eq!(call(&mut cb, &["INCRBY", "n", "5"]).await, V::Int(6));
    assert_eq!(
        call(&mut ca, &["MGET", "plain", "n", "missing"]).await,
        V::Array(vec![bulk("v"), bulk("6"), V::Nil])
    );
    // Destroyed on one node, gone on the other.
    assert_eq!(call(&mut cb, &["DEL", key]).await, V::Int(1));
    assert_eq!(call(&mut ca, &["GET", key]).await, V::Nil);
    assert_eq!(
        pg.sql(&url, "SELECT count(*) FROM sessiond_session"),
        "2",
        "plain and n are rows; s1 is gone"
    );
}
}

on_each_db! {
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn increments_through_two_nodes_at_once_are_all_counted(kind: Kind) {
    let Some(pg) = kind.shared() else { return };
    let url = pg.database();
    let nodes = [
        TestServer::start_with(on(kind, &url)).await,
        TestServer::start_with(on(kind, &url)).await,
    ];
    let mut setup = nodes[0].client().await;
    assert_eq!(
        call(&mut setup, &["SESSION.CREATE", "counter2"]).await,
        V::Simple("OK".into())
    );
    let mut tasks = Vec::new();
    for n in &nodes {
        for _ in 0..4 {
            let mut c = n.client().await;
            tasks.push(tokio::spawn(async move {
                for _ in 0..50 {
                    match call(&mut c, &["INCR", "counter"]).await {
                        V::Int(_) => {}
                        other => panic!("INCR: {other:?}"),
                    }
                    match call(&mut c, &["SESSION.INC", "counter2", "hits"]).await {
                        V::Int(_) => {}
                        other => panic!("SESSION.INC: {other:?}"),
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("client");
    }
    let mut c = nodes[1].client().await;
    // Every one of the 400 acknowledged increments is there: a write that
    // raced another node's was run again on the new value, not lost.
    assert_eq!(call(&mut c, &["GET", "counter"]).await, bulk("400"));
    assert_eq!(
        call(&mut c, &["SESSION.GET", "counter2", "hits"]).await,
        bulk("400")
    );
}
}

on_each_db! {
#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused(kind: Kind) {
    let Some(pg) = kind.shared() else { return };
    let url = pg.database();
    drop(Server::start(on(kind, &url)).await.expect("first start migrates"));
    pg.sql(
        &url,
        "INSERT INTO sessiond_schema (version, node) VALUES (999, 'from the future')",
    );
    let refused = Server::start(on(kind, &url)).await.err().expect("refused");
    assert!(
        refused
            .to_string()
            .contains("version 999, newer than this sessiond knows"),
        "{refused}"
    );
}
}

on_each_db! {
#[tokio::test]
async fn two_live_nodes_cannot_share_a_name(kind: Kind) {
    let Some(pg) = kind.shared() else { return };
    let url = pg.database();
    let named = |n: &str| Config {
        node_name: n.into(),
        ..on(kind, &url)
    };
    let _a = TestServer::start_with(named("web-1")).await;
    let refused = Server::start(named("web-1")).await.err().expect("refused");
    assert!(
        refused.to_string().contains("node_name 'web-1' is taken"),
        "{refused}"
    );
    drop(Server::start(named("web-2")).await.expect("another name"));
}
}

on_each_db! {
#[tokio::test]
async fn sessiond_migrate_creates_the_schema_once(kind: Kind) {
    let Some(pg) = kind.shared() else { return };
    let url = pg.database();
    let run = || {
        let out = std::process::Command::new(crate::common::process::BIN)
            .args(["migrate", "--database-url", &url])
            .output()
            .expect("sessiond migrate");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let last = kind.pick(5, 2);
    assert_eq!(run(), format!("migrated the schema from version 0 to {last}"));
    assert_eq!(run(), format!("the schema is at version {last} already"));
    assert_eq!(
        pg.sql(
            &url,
            kind.pick(
                "SELECT string_agg(version::text, ',' ORDER BY version) FROM sessiond_schema",
                "SELECT GROUP_CONCAT(version ORDER BY version) FROM sessiond_schema"
            )
        ),
        kind.pick("1,2,3,4,5", "1,2"),
        "each migration recorded once"
    );
}
}

on_each_db! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_on_every_node_and_the_rows_are_reaped(kind: Kind) {
    let Some(pg) = kind.shared() else { return };
    let url = pg.database();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let node = |clock: &Arc<ManualClock>| {
        let config = Config {
            heartbeat_ms: 100,
            ..on(kind, &url)
        };
        TestServer::start_with_clock(config, clock.clone())
    };
    let (a, b) = (node(&clock).await, node(&clock).await);
    let (mut ca, mut cb) = (a.client().await, b.client().await);
    assert_eq!(
        call(&mut ca, &["SETEX", "short", "2", "x"]).await,
        V::Simple("OK".into())
    );
    assert_eq!(
        call(&mut ca, &["SETEX", "long", "100", "y"]).await,
        V::Simple("OK".into())
    );
    clock.advance(2_500);
    assert_eq!(call(&mut cb, &["GET", "short"]).await, V::Nil, "expired");
    assert_eq!(call(&mut cb, &["GET", "long"]).await, bulk("y"));
    // The reapers (every heartbeat) remove the expired row.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let ids = pg.sql(
            &url,
            kind.pick(
                "SELECT string_agg(convert_from(id, 'UTF8'), ',') FROM sessiond_session",
                "SELECT GROUP_CONCAT(CAST(id AS CHAR)) FROM sessiond_session",
            ),
        );
        if ids == "long" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not reaped: {ids}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
}

on_each_db! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_is_down_is_answered_try_again(kind: Kind) {
    // A cluster of its own: this test stops it.
    let Some(owned) = kind.start() else { return };
    let pg = owned.db();
    let url = pg.database();
    // Under `always` a reply waits for a synchronous commit: the write
    // survives the database's crash (under `everysec` it may not).
    let config = Config {
        database_timeout_ms: 1_000,
        fsync: sessiond_server::Fsync::Always,
        ..on(kind, &url)
    };
    let s = TestServer::start_with(config).await;
    let mut c = s.client().await;
    assert_eq!(
        call(&mut c, &["SET", "k", "before"]).await,
        V::Simple("OK".into())
    );
    assert_eq!(crate::http::get(&s, "/readyz", None).await.0, 200);
    pg.crash();
    let started = std::time::Instant::now();
    match call(&mut c, &["GET", "k"]).await {
        V::Error(e) => assert!(e.starts_with("TRYAGAIN "), "{e}"),
        other => panic!("answered {other:?} with the database down"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // Load balancers are told within a heartbeat and a request timeout.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (status, body) = crate::http::get(&s, "/readyz", None).await;
        if status == 503 {
            assert!(body.contains("database"), "{body}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz stayed {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    pg.start_again();
    // The node connects again by itself; the acknowledged write is there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match call(&mut c, &["GET", "k"]).await {
            V::Bulk(b) => {
                assert_eq!(b, Bytes::from("before"));
                break;
            }
            V::Error(e) if e.starts_with("TRYAGAIN") => {}
            other => panic!("{other:?}"),
        }
        assert!(std::time::Instant::now() < deadline, "never came back");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while crate::http::get(&s, "/readyz", None).await.0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz never ready again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, metrics) = crate::http::get(&s, "/metrics", None).await;
    assert!(
        metric(&metrics, "sessiond_db_errors_total") >= 1.0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "sessiond_db_connects_total") >= 2.0,
        "{metrics}"
    );
}
}

/// The sum of the samples of `/metrics` text whose line starts with
/// `series` (a name, or a name and the start of its labels).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

on_each_db! {
/// The node's link to the database over TLS, the database checked against
/// `database_ca_file`; asked for TLS without it, a node refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_link_speaks_tls_when_asked_to(kind: Kind) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let Some(owned) = kind.start() else {
        return;
    };
    // A CA, and a certificate it signs for the address in the URL.
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf");
    let dir = crate::common::TempDir::new("db-tls");
    let ca_file = dir.0.join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).expect("ca file");
    let url = match &owned {
        crate::common::db::OwnedDb::Pg(pg) => {
            pg.enable_tls(&leaf.pem(), &leaf_key.serialize_pem());
            format!("{}?sslmode=require", pg.database())
        }
        crate::common::db::OwnedDb::My(my) => {
            my.enable_tls(&leaf.pem(), &leaf_key.serialize_pem());
            // A user who may only log in over TLS, with a password (sent
            // hashed by mysql_native_password).
            let base = my.database();
            let db = crate::common::db::db_name(&base).to_string();
            my.sql(&format!(
                "CREATE USER 'tls'@'%' IDENTIFIED BY 'secret' REQUIRE SSL; \
                 GRANT ALL ON {db}.* TO 'tls'@'%'"
            ));
            format!("mysql://tls:secret@127.0.0.1:{}/{db}?ssl-mode=REQUIRED", my.port)
        }
    };
    let config = Config {
        database_ca_file: ca_file.clone(),
        ..on(kind, &url)
    };
    let s = TestServer::start_with(config).await;
    let mut c = s.client().await;
    assert_eq!(
        call(&mut c, &["SET", "k", "over tls"]).await,
        V::Simple("OK".into())
    );
    assert_eq!(call(&mut c, &["GET", "k"]).await, bulk("over tls"));
    let tls_links = match &owned {
        crate::common::db::OwnedDb::Pg(pg) => pg.sql(
            "postgres",
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE ssl AND application_name LIKE 'sessiond %'",
        ),
        crate::common::db::OwnedDb::My(my) => my.sql(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME = 'SSL_ACCEPTS'",
        ),
    };
    assert_ne!(tls_links, "0", "the node's connections use TLS");
    // Asked for TLS without the authorities to check the database by: a
    // clear refusal at start, not a plain-text fallback.
    let refused = Server::start(on(kind, &url)).await.err().expect("refused");
    assert!(
        refused.to_string().contains("database_ca_file"),
        "{refused}"
    );
}
}

on_each_db! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_released_on_one_node_wakes_the_waiter_on_another_at_once(kind: Kind) {
    let Some((a, b)) = two_nodes(kind).await else {
        return;
    };
    let (mut ca, mut cb) = (a.client().await, b.client().await);
    assert_eq!(
        call(&mut ca, &["SESSION.CREATE", "s"]).await,
        V::Simple("OK".into())
    );
    let V::Int(ka) = call(&mut ca, &["SESSION.LOCK", "s"]).await else {
        panic!("no key")
    };
    // B queues for the lock A holds (on another node), waiting up to 20 s.
    let waiter = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let r = call(&mut cb, &["SESSION.LOCK", "s", "WAIT", "20000"]).await;
        (r, started.elapsed(), cb)
    });
    let mut probe = a.client().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let info = call(&mut probe, &["SESSION.INFO", "s"]).await;
        if format!("{info:?}").contains("lock_waiters\"), Int(1)") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never queued: {info:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let released = std::time::Instant::now();
    assert_eq!(
        call(&mut ca, &["SESSION.UNLOCK", "s", &ka.to_string()]).await,
        V::Simple("OK".into())
    );
    let (r, _, mut cb) = waiter.await.expect("waiter");
    let V::Int(kb) = r else {
        panic!("B was not granted: {r:?}")
    };
    // Woken by the NOTIFY, not by its once-a-second look at the row.
    assert!(
        released.elapsed() < std::time::Duration::from_millis(900),
        "granted {:?} after the release",
        released.elapsed()
    );
    assert!(kb > ka, "fencing keys rise: {ka} then {kb}");
    // The hand-off is counted where it was made and where it was heard.
    let (status, metrics_a) = crate::http::get(&a, "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(
        metrics_a.contains("sessiond_lock_handoffs_total{to=\"other_node\"} 1\n"),
        "{metrics_a}"
    );
    assert!(metric(&metrics_a, "sessiond_db_request_duration_seconds_count") > 0.0);
    // Each node reads the others' heartbeats once a heartbeat.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (_, m) = crate::http::get(&a, "/metrics", None).await;
        if metric(&m, "sessiond_cluster_node_alive{") == 2.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "both nodes never seen: {m}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, metrics_b) = crate::http::get(&b, "/metrics", None).await;
    assert!(metric(&metrics_b, "sessiond_lock_wakeups_heard_total") >= 1.0);
    let (_, stats) = crate::http::get(&a, "/api/v1/stats", None).await;
    let stats: serde_json::Value = serde_json::from_str(&stats).expect("json");
    assert_eq!(stats["cluster"]["nodes"].as_array().map(Vec::len), Some(2));
    assert_eq!(stats["cluster"]["in_touch"], true);
    assert_eq!(stats["tenants"][0]["storage"], "postgres");
    // INFO says the same, in Redis's shape.
    let V::Bulk(info) = call(&mut probe, &["INFO", "database"]).await else {
        panic!("INFO answered no text")
    };
    let info = String::from_utf8_lossy(&info).into_owned();
    let names: Vec<&str> = stats["cluster"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert!(
        info.contains(&format!("nodes:{}\r\n", names.join(","))),
        "{info}"
    );
    assert!(info.contains("lock_handoffs_away:1\r\n"), "{info}");
    // A's key no longer writes; B's does, through either node.
    match call(
        &mut ca,
        &["SESSION.CLOSE", "s", &ka.to_string(), "DATA", "late"],
    )
    .await
    {
        V::Error(e) => assert!(e.starts_with("STALEKEY"), "{e}"),
        other => panic!("a stale key wrote: {other:?}"),
    }
    assert_eq!(
        call(
            &mut cb,
            &["SESSION.CLOSE", "s", &kb.to_string(), "DATA", "b's"]
        )
        .await,
        V::Simple("OK".into())
    );
    assert_eq!(call(&mut ca, &["SESSION.GETDATA", "s"]).await, bulk("b's"));
}
}

on_each_db! {
/// `REGENERATE` on one node moves the lock with the session: the holder's
/// key closes the new id, and a request queued on another node under the
/// old id follows the rename and is granted the new id's lock.
#[tokio::test]
async fn a_rename_takes_the_lock_and_its_queue_along_across_nodes(kind: Kind) {
    let Some((a, b)) = two_nodes(kind).await else {
        return;
    };
    let (mut ca, mut cb) = (a.client().await, b.client().await);
    call(&mut ca, &["SESSION.CREATE", "old"]).await;
    let V::Int(ka) = call(&mut ca, &["SESSION.LOCK", "old"]).await else {
        panic!("no key")
    };
    let waiter = tokio::spawn(async move {
        let r = call(&mut cb, &["SESSION.OPEN", "old", "WAIT", "20000"]).await;
        (r, cb)
    });
    let mut probe = b.client().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !format!("{:?}", call(&mut probe, &["SESSION.INFO", "old"]).await)
        .contains("lock_waiters\"), Int(1)")
    {
        assert!(std::time::Instant::now() < deadline, "never queued");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        call(&mut ca, &["SESSION.REGENERATE", "old", "new"]).await,
        V::Bulk("new".into())
    );
    assert_eq!(
        call(&mut probe, &["SESSION.EXISTS", "old"]).await,
        V::Int(0),
        "the old id is gone on every node"
    );
    let info = format!("{:?}", call(&mut probe, &["SESSION.INFO", "new"]).await);
    assert!(info.contains("\"write\""), "the lock moved: {info}");
    assert_eq!(
        call(
            &mut ca,
            &["SESSION.CLOSE", "new", &ka.to_string(), "DATA", "by a"]
        )
        .await,
        V::Simple("OK".into()),
        "the holder's key holds the new id"
    );
    let (r, mut cb) = tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
        .await
        .expect("the waiter was answered")
        .expect("waiter");
    let V::Array(opened) = r else {
        panic!("the waiter was not granted: {r:?}")
    };
    let V::Int(kb) = opened[0] else {
        panic!("no key in {opened:?}")
    };
    assert!(kb > ka, "{ka} then {kb}");
    assert_eq!(
        opened[1],
        V::Bulk("by a".into()),
        "it read the new id's data"
    );
    assert_eq!(
        call(
            &mut cb,
            &["SESSION.CLOSE", "new", &kb.to_string(), "DATA", "by b"]
        )
        .await,
        V::Simple("OK".into())
    );
}
}

on_each_db! {
/// A node killed with -9 while it holds a lock: its heartbeat stops, and a
/// request queued on another node is granted as soon as the others see
/// the node dead (three heartbeats, then the waiter's next look) — not
/// after the 30 s lease. The dead holder's key writes nothing.
#[tokio::test]
async fn a_node_killed_holding_a_lock_frees_it_within_seconds(kind: Kind) {
    use crate::common::process::{signal, start_binary};
    let Some(pg) = kind.shared() else { return };
    let url = pg.database();
    const HEARTBEAT_MS: u64 = 300;
    let dir = crate::common::TempDir::new("cluster-kill");
    let file = dir.0.join("sessiond.toml");
    std::fs::write(
        &file,
        format!(
            "storage = \"{}\"\ndatabase_url = \"{url}\"\nnode_name = \"doomed\"\n\
             heartbeat_ms = {HEARTBEAT_MS}\n",
            kind.name()
        ),
    )
    .unwrap();
    let (mut doomed, port) = start_binary(&["--config", file.to_str().unwrap()]);
    let b = TestServer::start_with(Config {
        heartbeat_ms: HEARTBEAT_MS,
        ..on(kind, &url)
    })
    .await;
    let mut ca = sessiond_client::Client::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    call(&mut ca, &["SESSION.CREATE", "s"]).await;
    let V::Int(ka) = call(&mut ca, &["SESSION.LOCK", "s", "LEASE", "30000"]).await else {
        panic!("no key")
    };
    let mut cb = b.client().await;
    let waiter = tokio::spawn(async move {
        let r = call(&mut cb, &["SESSION.LOCK", "s", "WAIT", "20000"]).await;
        (r, cb)
    });
    let mut probe = b.client().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !format!("{:?}", call(&mut probe, &["SESSION.INFO", "s"]).await)
        .contains("lock_waiters\"), Int(1)")
    {
        assert!(std::time::Instant::now() < deadline, "never queued");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    signal(&doomed, "-KILL");
    let killed = std::time::Instant::now();
    let _ = doomed.wait();
    let (r, mut cb) = tokio::time::timeout(std::time::Duration::from_secs(25), waiter)
        .await
        .expect("the waiter was answered")
        .expect("waiter");
    let V::Int(kb) = r else {
        panic!("not granted: {r:?}")
    };
    let took = killed.elapsed();
    // Dead after three missed heartbeats, seen at the next one, then the
    // waiter's look (at most a second); far from the 30 s lease.
    let bound = std::time::Duration::from_millis(5 * HEARTBEAT_MS + 1_000 + 500);
    assert!(
        took < bound,
        "granted {took:?} after the kill (bound {bound:?})"
    );
    assert!(kb > ka, "{ka} then {kb}");
    match call(
        &mut probe,
        &["SESSION.CLOSE", "s", &ka.to_string(), "DATA", "late"],
    )
    .await
    {
        V::Error(e) => assert!(e.starts_with("STALEKEY"), "{e}"),
        other => panic!("the dead node's key wrote: {other:?}"),
    }
    assert_eq!(
        call(
            &mut cb,
            &["SESSION.CLOSE", "s", &kb.to_string(), "DATA", "b"]
        )
        .await,
        V::Simple("OK".into())
    );
}
}

on_each_db! {
/// The one every PHP farm hits, on two nodes: 8 PHP processes, 4 through
/// each node, each making 50 locked increments of one session on the
/// extension's default lock settings (each request holds the session
/// 2 ms). The lock queues in the database and hands over across nodes, so
/// the count ends at exactly 400 with no request failed — through
/// phpredis, php-memcached (binary and text) and our own handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_php_processes_over_two_nodes_lose_no_increment(kind: Kind) {
    use crate::php_handlers::{available, contend_with_default_settings, record, Handler};
    let Some((a, b)) = two_nodes(kind).await else {
        return;
    };
    for pair in [
        [Handler::redis(&a), Handler::redis(&b)],
        [Handler::memcached(&a, true), Handler::memcached(&b, true)],
        [Handler::memcached(&a, false), Handler::memcached(&b, false)],
        [Handler::native(&a), Handler::native(&b)],
    ] {
        if !available(pair[0]) {
            continue;
        }
        let t = std::time::Instant::now();
        let (n, failed) = tokio::task::spawn_blocking(move || contend_with_default_settings(&pair))
            .await
            .unwrap();
        record(format!(
            "two nodes, {:?}: n={n} of 400, {failed} failed requests, {:?}",
            pair[0],
            t.elapsed()
        ));
        assert_eq!((n, failed), (400, 0), "{:?}", pair[0]);
    }
}
}

/// What one client of the crash test saw.
#[derive(Default, Debug)]
struct Seen {
    /// Writes answered OK.
    acked: u64,
    /// Writes answered with an error: they may or may not have happened.
    unsure: u64,
    /// Commands refused while the database was away.
    errors: u64,
    /// Writes answered OK after the database came back.
    acked_after: u64,
    /// The fencing keys granted to it.
    keys: Vec<u64>,
}

/// Locked increments of `id` through `addr` (`SESSION.OPEN`, then
/// `SESSION.CLOSE` writing n+1) until `stop`.
async fn cycles(
    addr: std::net::SocketAddr,
    id: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
    back: Arc<std::sync::atomic::AtomicBool>,
) -> Seen {
    use std::sync::atomic::Ordering::Relaxed;
    let mut c = sessiond_client::Client::connect(addr).await.unwrap();
    let mut seen = Seen::default();
    let opts = sessiond_client::LockOptions {
        wait_ms: 3_000,
        lease_ms: Some(5_000),
        ..Default::default()
    };
    while !stop.load(Relaxed) {
        let opened = match c.open(&id, opts).await {
            Ok(o) => o,
            Err(e) => {
                assert!(matches!(e.code(), Some("TRYAGAIN" | "LOCKED")), "{e}");
                seen.errors += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        seen.keys.push(opened.key);
        let n: u64 = opened
            .vars
            .iter()
            .find(|(k, _)| k.as_ref() == b"n")
            .map(|(_, v)| std::str::from_utf8(v).unwrap().parse().unwrap())
            .expect("n is there");
        let next = (n + 1).to_string();
        match c
            .close(&id, opened.key, None, &[(b"n", next.as_bytes())])
            .await
        {
            Ok(()) => {
                seen.acked += 1;
                if back.load(Relaxed) {
                    seen.acked_after += 1;
                }
            }
            Err(e) => {
                assert!(matches!(e.code(), Some("TRYAGAIN" | "STALEKEY")), "{e}");
                seen.unsure += 1;
            }
        }
    }
    seen
}

/// Plain writes of an ever greater number to `key` through `addr`, each
/// read back: a read never answers less than the last write acknowledged,
/// nor more than the last one sent. Ends at `stop` with what it saw and
/// the last number sent.
async fn writes(
    addr: std::net::SocketAddr,
    key: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Seen, u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut c = sessiond_client::Client::connect(addr).await.unwrap();
    let mut seen = Seen::default();
    let (mut sent, mut last_acked) = (0u64, 0u64);
    while !stop.load(Relaxed) {
        sent += 1;
        match call(&mut c, &["SET", &key, &sent.to_string()]).await {
            V::Simple(ok) if ok == "OK" => {
                seen.acked += 1;
                last_acked = sent;
            }
            V::Error(e) => {
                assert!(e.starts_with("TRYAGAIN"), "{e}");
                seen.unsure += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            other => panic!("SET answered {other:?}"),
        }
        match call(&mut c, &["GET", &key]).await {
            V::Bulk(b) => {
                let v: u64 = std::str::from_utf8(&b).unwrap().parse().unwrap();
                assert!(
                    (last_acked..=sent).contains(&v),
                    "read {v}: the last write acknowledged was {last_acked}, the last sent {sent}"
                );
            }
            V::Nil => assert_eq!(last_acked, 0, "an acknowledged write vanished"),
            V::Error(e) => {
                assert!(e.starts_with("TRYAGAIN"), "{e}");
                seen.errors += 1;
            }
            other => panic!("GET answered {other:?}"),
        }
    }
    (seen, last_acked, sent)
}

on_each_db! {
/// PostgreSQL stopped at once (as a crash would: no checkpoint) and
/// started again while two nodes serve locked increments of two sessions
/// (each contended from both nodes) and plain writes, under
/// `fsync = always`: while it is away clients are told to try again —
/// never a stale or wrong value; the nodes reconnect by themselves; every
/// acknowledged write is there afterwards; no fencing key is handed out
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_crash_under_load_loses_no_acknowledged_write(kind: Kind) {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    use std::time::Duration;
    // A cluster of its own: this test stops it.
    let Some(owned) = kind.start() else { return };
    let pg = owned.db();
    let url = pg.database();
    let config = || Config {
        database_timeout_ms: 1_000,
        fsync: sessiond_server::Fsync::Always,
        ..on(kind, &url)
    };
    let (a, b) = (
        TestServer::start_with(config()).await,
        TestServer::start_with(config()).await,
    );
    let mut c = a.client().await;
    let shared = ["crash0", "crash1"];
    for id in shared {
        c.create(id, sessiond_client::CreateOptions::default())
            .await
            .unwrap();
        c.set(id, "n", "0").await.unwrap();
    }
    let (stop, back) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let mut cyclers = Vec::new();
    let mut writers = Vec::new();
    for w in 0..4 {
        let addr = if w % 2 == 0 { a.addr } else { b.addr };
        let id = shared[w / 2].to_string();
        cyclers.push(tokio::spawn(cycles(addr, id, stop.clone(), back.clone())));
        writers.push(tokio::spawn(writes(
            addr,
            format!("plain{w}"),
            stop.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    pg.crash();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    pg.start_again();
    back.store(true, Relaxed);
    tokio::time::sleep(Duration::from_millis(6_000)).await;
    stop.store(true, Relaxed);
    let mut per_session: Vec<Seen> = vec![Seen::default(), Seen::default()];
    for (w, t) in cyclers.into_iter().enumerate() {
        let seen = tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .expect("a client never finished")
            .unwrap();
        eprintln!(
            "cycles of {} via node {}: {} acknowledged ({} after the restart), {} unsure, {} refused",
            shared[w / 2],
            w % 2,
            seen.acked,
            seen.acked_after,
            seen.unsure,
            seen.errors
        );
        let s = &mut per_session[w / 2];
        s.acked += seen.acked;
        s.unsure += seen.unsure;
        s.errors += seen.errors;
        s.acked_after += seen.acked_after;
        s.keys.extend(seen.keys);
    }
    let mut errors = 0;
    for (id, s) in shared.iter().zip(&per_session) {
        errors += s.errors + s.unsure;
        assert!(s.acked_after > 0, "{id}: no cycle after the restart");
        let mut keys = s.keys.clone();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), s.keys.len(), "{id}: a fencing key repeated");
        let n: u64 = c
            .get(*id, "n")
            .await
            .unwrap()
            .map(|v| std::str::from_utf8(&v).unwrap().parse().unwrap())
            .unwrap();
        assert!(
            (s.acked..=s.acked + s.unsure).contains(&n),
            "{id}: n = {n}, with {} increments acknowledged and {} unsure",
            s.acked,
            s.unsure
        );
    }
    for (w, t) in writers.into_iter().enumerate() {
        let (seen, last_acked, sent) = tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .expect("a writer never finished")
            .unwrap();
        errors += seen.errors + seen.unsure;
        let key = format!("plain{w}");
        let v: u64 = match call(&mut c, &["GET", &key]).await {
            V::Bulk(b) => std::str::from_utf8(&b).unwrap().parse().unwrap(),
            other => panic!("{key}: {other:?}"),
        };
        assert!(
            (last_acked..=sent).contains(&v),
            "{key}: {v}, acknowledged {last_acked}"
        );
    }
    assert!(
        errors > 0,
        "the crash was never seen: the test tested nothing"
    );
}
}

on_each_db! {
/// A node cut off from the database (a proxy in between black-holes its
/// link, as a partition does) fails closed: its clients are told to try
/// again, never served what it last knew. The other node takes the lock
/// its client held once the cut-off node's heartbeat lapses (at the latest
/// when the lease runs out); after the link heals, the cut-off client's
/// late `CLOSE` is refused as stale and what the other wrote stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_database_fails_closed(kind: Kind) {
    use crate::common::proxy::Proxy;
    use sessiond_client::{CreateOptions, LockOptions};
    use std::time::{Duration, Instant};
    let Some(pg) = kind.shared() else { return };
    let url = pg.database();
    let proxy = Proxy::start(([127, 0, 0, 1], pg.port()).into()).await;
    let via_proxy = url.replace(
        &format!(":{}/", pg.port()),
        &format!(":{}/", proxy.addr.port()),
    );
    assert_ne!(via_proxy, url);
    let config = |url: &str| Config {
        heartbeat_ms: 300,
        database_timeout_ms: 1_000,
        ..on(kind, url)
    };
    let a = TestServer::start_with(config(&via_proxy)).await;
    let b = TestServer::start_with(config(&url)).await;
    let (mut ca, mut cb) = (a.client().await, b.client().await);
    cb.create("part", CreateOptions::default()).await.unwrap();
    cb.set_data("part", b"start").await.unwrap();
    let lease = LockOptions {
        lease_ms: Some(3_000),
        ..Default::default()
    };
    let held = ca.open("part", lease).await.unwrap();
    assert_eq!(held.data, Bytes::from("start"));

    proxy.cut();
    let cut_at = Instant::now();
    let mut other_a = a.client().await;
    let t = Instant::now();
    let refused = other_a.get_data("part").await.unwrap_err();
    assert_eq!(refused.code(), Some("TRYAGAIN"), "{refused}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    let wait = LockOptions {
        wait_ms: 10_000,
        lease_ms: Some(5_000),
        ..Default::default()
    };
    let taken = cb.open("part", wait).await.unwrap();
    let took = cut_at.elapsed();
    assert!(
        took < Duration::from_millis(4_000),
        "took over after {took:?}"
    );
    assert!(taken.key > held.key);
    assert_eq!(taken.data, Bytes::from("start"));
    cb.close("part", taken.key, Some(b"from b"), &[])
        .await
        .unwrap();

    proxy.heal();
    let t = Instant::now();
    loop {
        match other_a.get_data("part").await {
            Ok(d) => {
                assert_eq!(d, Bytes::from("from b"));
                break;
            }
            Err(e) => assert_eq!(e.code(), Some("TRYAGAIN"), "{e}"),
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the node never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let late = ca
        .close("part", held.key, Some(b"from a"), &[])
        .await
        .unwrap_err();
    assert_eq!(late.code(), Some("STALEKEY"), "{late}");
    assert_eq!(cb.get_data("part").await.unwrap(), Bytes::from("from b"));
    eprintln!("the other node took the lock {took:?} after the cut");
}
}

on_each_db! {
/// 200,000 sessions expire while two nodes serve traffic: the reapers of
/// both nodes remove them in bounded batches; the traffic on other
/// sessions goes on, answered right, never stalled for long; and the
/// sessions whose lock is held outlive their deadline — never reaped,
/// still read through every node, written by their holder's `CLOSE`, as on
/// one node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mass_expiry_under_traffic_reaps_no_locked_session(kind: Kind) {
    use sessiond_client::LockOptions;
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    use std::time::{Duration, Instant};
    const MANY: usize = 200_000;
    const HELD: usize = 20;
    // MySQL: rows written per statement (see below).
    const CHUNK: usize = 1_000;
    let Some(pg) = kind.shared() else { return };
    let url = pg.database();
    let config = || Config {
        heartbeat_ms: 300,
        ..on(kind, &url)
    };
    let (a, b) = (
        TestServer::start_with(config()).await,
        TestServer::start_with(config()).await,
    );
    // Sessions that expire in a second, each held by a client of its own.
    let mut holders = Vec::new();
    for i in 0..HELD {
        let id = format!("held{i}");
        let mut c = if i % 2 == 0 {
            a.client().await
        } else {
            b.client().await
        };
        call(&mut c, &["SETEX", &id, "1", "before"]).await;
        // Longer than the whole test, whatever the machine: a lease that
        // ran out frees the session to expire (MySQL's pass took over
        // three minutes under CI's load).
        let lease = LockOptions {
            lease_ms: Some(900_000),
            ..Default::default()
        };
        let opened = c.open(&id, lease).await.unwrap();
        holders.push((c, id, opened.key));
    }
    // Traffic on sessions that live on, through both nodes, all along.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic: Vec<_> = [a.addr, b.addr]
        .into_iter()
        .enumerate()
        .map(|(n, addr)| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut c = sessiond_client::Client::connect(addr).await.unwrap();
                let (mut worst, mut done) = (Duration::ZERO, 0u64);
                while !stop.load(Relaxed) {
                    let key = format!("live{n}-{}", done % 100);
                    let t = Instant::now();
                    let v = done.to_string();
                    assert_eq!(
                        call(&mut c, &["SETEX", &key, "3600", &v]).await,
                        V::Simple("OK".into())
                    );
                    assert_eq!(call(&mut c, &["GET", &key]).await, bulk(&v));
                    worst = worst.max(t.elapsed());
                    done += 1;
                }
                (worst, done)
            })
        })
        .collect();
    // The many, written straight into the table in one statement (writing
    // them through the doors is not what is tested here), expiring over
    // the next four seconds.
    let tenant = pg.sql(&url, "SELECT tenant FROM sessiond_session LIMIT 1");
    // Deadlocks the database detected: this database's on PostgreSQL, the
    // server's on MariaDB (which counts them only server-wide; every client
    // of the test server is a sessiond node, which never deadlocks).
    let deadlocks = || -> u64 {
        pg.sql(
            &url,
            kind.pick(
                "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
                "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
                 WHERE VARIABLE_NAME = 'INNODB_DEADLOCKS'",
            ),
        )
        .parse()
        .unwrap()
    };
    let deadlocks_before = deadlocks();
    let started = Instant::now();
    let insert = match kind {
        Kind::Postgres => format!(
            "WITH t AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now) \
             INSERT INTO sessiond_session (tenant, id, rev, place, version, created_ms, \
             accessed_ms, timeout_ms, expires_ms, flags, key_form, class, data, vars) \
             SELECT '{tenant}', convert_to('mass' || g, 'UTF8'), 1, hashtext('mass' || g), 1, \
             t.now, t.now, 1000 + g % 4000, t.now + 1000 + g % 4000, 0, 0, NULL, 'x', NULL \
             FROM t, generate_series(1, {MANY}) AS g"
        ),
        // MariaDB's sequence engine makes the numbers, 1,000 rows a
        // statement: MySQL's figures are kept by row triggers, so one
        // statement of them all would hold every figure row of the tenant
        // — and every new session's write — for its whole length; rows in
        // the order of their figure rows, as the reaper takes them.
        Kind::MySql => (0..MANY / CHUNK)
            .map(|chunk| {
                format!(
                    "INSERT INTO sessiond_session (tenant, id, rev, place, version, created_ms, \
                     accessed_ms, timeout_ms, expires_ms, flags, key_form, class, data, vars) \
                     SELECT '{tenant}', CONCAT('mass', g.seq), 1, CRC32(CONCAT('mass', g.seq)), 1, \
                     t.now, t.now, 1000 + g.seq % 4000, t.now + 1000 + g.seq % 4000, 0, 0, NULL, \
                     'x', NULL \
                     FROM (SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) AS now) AS t, \
                     seq_{}_to_{} AS g ORDER BY CRC32(CONCAT('mass', g.seq)) & 63;",
                    chunk * CHUNK + 1,
                    (chunk + 1) * CHUNK
                )
            })
            .collect::<String>(),
    };
    pg.sql(&url, &insert);
    let written = started.elapsed();
    // Every one of the many is reaped; the held ones and the traffic's are
    // all that is left.
    // MySQL's reaper deletes row by row (each taken with SKIP LOCKED) in
    // a procedure: about 2,000 sessions a second here, against
    // PostgreSQL's one statement a batch.
    let deadline = Instant::now() + Duration::from_secs(kind.pick(120, 300));
    let left = loop {
        let n: usize = pg
            .sql(
                &url,
                kind.pick(
                    "SELECT count(*) FROM sessiond_session WHERE substring(id FROM 1 FOR 4) = 'mass'::bytea",
                    "SELECT count(*) FROM sessiond_session WHERE LEFT(id, 4) = 'mass'",
                ),
            )
            .parse()
            .unwrap();
        if n == 0 {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "{n} expired sessions never reaped"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let reaped_in = started.elapsed();
    stop.store(true, Relaxed);
    let mut total = 0;
    // On MySQL a request waits, at worst, for a batch of the reaper or of
    // this test's inserts to let go of the tenant's figure rows (kept by
    // row triggers, locked until the batch commits): measured up to 2.3 s
    // here with other tests running, so the bound there is the request
    // timeout — no client is ever told to try again. Shortening those
    // waits is open work (docs/cluster.md, MySQL).
    let bound = Duration::from_secs(kind.pick(2, 5));
    for t in traffic {
        let (worst, done) = t.await.unwrap();
        total += done;
        eprintln!("worst request of the traffic: {worst:?}");
        assert!(worst < bound, "a request of the traffic took {worst:?}");
    }
    assert!(total > 0);
    eprintln!(
        "{MANY} sessions written in {written:?}, all reaped {reaped_in:?} after the first; {total} requests of traffic meanwhile; {left} left"
    );
    // The held sessions outlived their deadline: read through the other
    // node, then written by their holder.
    let mut other = b.client().await;
    for (c, id, key) in &mut holders {
        assert_eq!(
            call(&mut other, &["GET", id.as_str()]).await,
            bulk("before"),
            "{id} was reaped while its lock was held"
        );
        c.close(id.as_str(), *key, Some(b"after"), &[])
            .await
            .unwrap();
        assert_eq!(call(&mut other, &["GET", id.as_str()]).await, bulk("after"));
    }
    // PostgreSQL's backends report their counts when idle, within a second.
    tokio::time::sleep(Duration::from_millis(kind.pick(1500, 0))).await;
    let found = deadlocks() - deadlocks_before;
    if found > 0 && kind == Kind::MySql {
        eprintln!("{}", pg.sql(&url, "SHOW ENGINE INNODB STATUS").replace("\\n", "\n"));
    }
    assert_eq!(found, 0, "the database reported deadlocks while the many expired");
}
}

/// The node's count of requests to the database (`INFO database`).
async fn db_requests(c: &mut sessiond_client::Client) -> u64 {
    let V::Bulk(info) = call(c, &["INFO", "database"]).await else {
        panic!("INFO answered no text")
    };
    let info = String::from_utf8_lossy(&info).into_owned();
    info.lines()
        .find_map(|l| l.strip_prefix("db_requests:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no db_requests in {info}"))
}

on_each_db! {
/// `OPEN` then `CLOSE` on one node is one round trip to the database each:
/// the node writes at the revisions its last lock operation on the id
/// left, without reading the rows again. What another node wrote meanwhile
/// is never missed: the write checks both rows and, finding them changed,
/// answers with them, and the command is done again on those — and a row
/// deleted and written again never comes back at a revision it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_cycle_is_one_round_trip_each_way_and_misses_no_change(kind: Kind) {
    let Some(pg) = kind.shared() else { return };
    let url = pg.database();
    let (a, b) = two_nodes_on(kind, &url).await;
    let (mut ca, mut cb) = (a.client().await, b.client().await);
    let key = |r: &V| match r {
        V::Array(items) => match items.first() {
            Some(V::Int(k)) => k.to_string(),
            _ => panic!("no key in {r:?}"),
        },
        _ => panic!("OPEN answered {r:?}"),
    };
    let open = call(&mut ca, &["SESSION.OPEN", "s", "CREATE"]).await;
    let k = key(&open);
    let ok = V::Simple("OK".into());
    assert_eq!(
        call(&mut ca, &["SESSION.CLOSE", "s", &k, "DATA", "a1"]).await,
        ok
    );
    // Twenty cycles: one request each for OPEN and for CLOSE (the old
    // way, a read before each write, was four a cycle); a little room for
    // the node's own heartbeat and figures.
    let before = db_requests(&mut ca).await;
    for i in 0..20 {
        let open = call(&mut ca, &["SESSION.OPEN", "s"]).await;
        let k = key(&open);
        let data = format!("a{i}");
        assert_eq!(
            call(&mut ca, &["SESSION.CLOSE", "s", &k, "DATA", &data]).await,
            ok
        );
    }
    let used = db_requests(&mut ca).await - before;
    assert!(
        (40..=48).contains(&used),
        "{used} requests for 20 OPEN/CLOSE cycles"
    );
    // Sessions A never saw (made on B): each OPEN is one request too — the
    // grant written on rows not read, the session sent back with it.
    for i in 0..10 {
        assert_eq!(
            call(&mut cb, &["SESSION.CREATE", &format!("t{i}")]).await,
            ok
        );
    }
    let before = db_requests(&mut ca).await;
    let mut keys = Vec::new();
    for i in 0..10 {
        keys.push(key(
            &call(&mut ca, &["SESSION.OPEN", &format!("t{i}")]).await
        ));
    }
    let used = db_requests(&mut ca).await - before;
    assert!(
        (10..=14).contains(&used),
        "{used} requests for 10 first OPENs"
    );
    // One missing is refused, and not locked.
    match call(&mut ca, &["SESSION.OPEN", "missing"]).await {
        V::Error(e) => assert!(e.starts_with("NOSESSION"), "{e}"),
        other => panic!("opened a missing session: {other:?}"),
    }
    assert_eq!(
        pg.sql(
            &url,
            "SELECT count(*) FROM sessiond_lock WHERE id = 'missing' AND holders <> ''"
        ),
        "0"
    );
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            call(&mut ca, &["SESSION.CLOSE", &format!("t{i}"), k]).await,
            ok
        );
    }
    // Another node writes the session without the lock: the lock row is
    // as A left it, the session row is not; A's OPEN answers B's data.
    assert_eq!(call(&mut cb, &["SESSION.SETDATA", "s", "b"]).await, ok);
    let open = call(&mut ca, &["SESSION.OPEN", "s"]).await;
    assert_eq!(
        open,
        V::Array(vec![
            V::Int(key(&open).parse().expect("key")),
            bulk("b"),
            V::Array(vec![])
        ])
    );
    let k = key(&open);
    assert_eq!(call(&mut ca, &["SESSION.CLOSE", "s", &k]).await, ok);
    // Another node takes the lock: A's kept rows say it is free, the
    // write finds otherwise.
    let held = call(&mut cb, &["SESSION.OPEN", "s"]).await;
    match call(&mut ca, &["SESSION.OPEN", "s", "WAIT", "0"]).await {
        V::Error(e) => assert!(e.starts_with("LOCKED"), "{e}"),
        other => panic!("granted a lock held on another node: {other:?}"),
    }
    assert_eq!(
        call(&mut cb, &["SESSION.CLOSE", "s", &key(&held)]).await,
        ok
    );
    // Destroyed and made again: its rows come back at new revisions.
    let revs = || {
        pg.sql(
            &url,
            kind.pick(
                "SELECT (SELECT rev FROM sessiond_session WHERE id = 's') || ',' || \
                 (SELECT rev FROM sessiond_lock WHERE id = 's')",
                "SELECT CONCAT((SELECT rev FROM sessiond_session WHERE id = 's'), ',', \
                 (SELECT rev FROM sessiond_lock WHERE id = 's'))"
            ),
        )
    };
    let was = revs();
    assert_eq!(call(&mut cb, &["SESSION.DESTROY", "s"]).await, ok);
    pg.sql(&url, "DELETE FROM sessiond_lock WHERE id = 's'");
    let open = call(&mut cb, &["SESSION.OPEN", "s", "CREATE"]).await;
    assert_eq!(
        call(&mut cb, &["SESSION.CLOSE", "s", &key(&open), "DATA", "b2"]).await,
        ok
    );
    let is = revs();
    let (was, is): (Vec<i64>, Vec<i64>) = (
        was.split(',').map(|r| r.parse().expect("rev")).collect(),
        is.split(',').map(|r| r.parse().expect("rev")).collect(),
    );
    // Never the revisions the rows had (not higher ones either: each
    // database connection takes its revisions from the sequence 32 at a
    // time).
    assert!(
        is[0] != was[0] && is[1] != was[1],
        "revisions {was:?} then {is:?}"
    );
    let open = call(&mut ca, &["SESSION.OPEN", "s"]).await;
    assert_eq!(
        open,
        V::Array(vec![
            V::Int(key(&open).parse().expect("key")),
            bulk("b2"),
            V::Array(vec![])
        ])
    );
}
}

/// A `sessiond bench run` command line, short.
fn bench_args(line: &str) -> sessiond_bench::RunArgs {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: sessiond_bench::RunArgs,
    }
    let base = "bench --warmup 0 --duration 1 --conns 8 --keys 2 --count ";
    <Cli as clap::Parser>::try_parse_from(format!("{base}{line}").split_whitespace())
        .expect("flags")
        .args
}

on_each_db! {
/// The baselines BENCHMARKS.md sets beside the cluster, run for real and
/// counted (each request writes back the count it read plus one): Symfony's
/// `SELECT … FOR UPDATE` cycle loses no update, and neither do two nodes;
/// the seeds' write-through handler (memcached in front, `REPLACE INTO`
/// behind, no lock) loses some as soon as requests for one session overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counted_under_contention_the_write_through_baseline_loses_updates_and_the_cluster_none(kind: Kind) {
    let Some(db) = kind.shared() else { return };
    let Some((_memcached, mport)) = crate::common::process::start_peer(crate::common::process::Peer::Memcached) else {
        return;
    };
    let url = db.database();
    let run = |line: String| async move {
        let r = sessiond_bench::run(&bench_args(&line)).await.expect("run");
        assert_eq!((r.errors, r.failed_connections), (0, 0), "{line}: {:?}", r.first_error);
        assert!(r.transactions > 0, "{line}");
        (r.acked_writes.expect("acked"), r.lost_updates.expect("counted"))
    };
    let (_, lost) = run(format!("--workload for-update --database-url {url}")).await;
    assert_eq!(lost, 0, "FOR UPDATE serialises the cycles");
    let (acked, lost) =
        run(format!("--workload write-through --addr 127.0.0.1:{mport} --database-url {url}")).await;
    assert!(lost > 0 && lost < acked as i64, "write-through: {lost} of {acked} lost");

    let (a, b) = two_nodes_on(kind, &url).await;
    let (_, lost) = run(format!(
        "--workload contend --cycle native --addr {},{}",
        a.addr, b.addr
    ))
    .await;
    assert_eq!(lost, 0, "sessiond's locks across nodes");
}
}

on_each_db! {
/// Names and classes as long as a client may send: a variable's name of
/// any length is kept and found (the index keeps a long one by its hash;
/// B-tree keys are bounded), and a class is bounded like an id, refused
/// with LIMIT past `max_id_len` — on the embedded store alike
/// (native_commands.rs) — never with the database's own error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_variable_names_are_found_and_long_classes_refused(kind: Kind) {
    let Some((a, b)) = two_nodes(kind).await else { return };
    let (mut ca, mut cb) = (a.client().await, b.client().await);
    let long = "n".repeat(5_000);
    let longer = format!("{long}x");
    for (id, name) in [("s1", long.as_str()), ("s2", longer.as_str()), ("s3", "short")] {
        assert_eq!(call(&mut ca, &["SESSION.CREATE", id]).await, V::Simple("OK".into()));
        assert_eq!(
            call(&mut ca, &["SESSION.SET", id, name, "v"]).await,
            V::Simple("OK".into()),
            "{id}"
        );
    }
    assert_eq!(
        call(&mut cb, &["SESSION.FIND", &long, "v"]).await,
        V::Array(vec![bulk("s1")])
    );
    let V::Array(pairs) = call(&mut cb, &["SESSION.LISTVAR", &longer]).await else {
        panic!("LISTVAR answered no list")
    };
    assert_eq!(pairs.first(), Some(&bulk("s2")), "{pairs:?}");
    assert_eq!(call(&mut cb, &["SESSION.GET", "s2", &longer]).await, bulk("v"));
    let class = "c".repeat(257);
    match call(&mut cb, &["SESSION.CREATE", "s4", "CLASS", &class]).await {
        V::Error(e) => assert!(e.starts_with("LIMIT"), "{e}"),
        other => panic!("a class past max_id_len: {other:?}"),
    }
    let class = "c".repeat(256);
    assert_eq!(
        call(&mut cb, &["SESSION.CREATE", "s4", "CLASS", &class]).await,
        V::Simple("OK".into())
    );
    assert_eq!(call(&mut ca, &["SESSION.COUNT", "CLASS", &class]).await, V::Int(1));
}
}

/// `wake_addr`: a node told where other nodes reach it (a fixed port, an
/// address of its choosing — behind NAT, in a container) listens on that
/// port and registers that address, and wake-ups reach it there; a value
/// that is not an `ip:port` is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_node_listens_for_wake_ups_where_wake_addr_says() {
    let kind = Kind::MySql;
    let Some(my) = kind.shared() else { return };
    let url = my.database();
    let port = crate::common::process::free_port();
    let wake = format!("127.0.0.1:{port}");
    let a = TestServer::start_with(on(kind, &url)).await;
    let b = TestServer::start_with(Config {
        node_name: "fixed".into(),
        wake_addr: wake.clone(),
        ..on(kind, &url)
    })
    .await;
    assert_eq!(
        my.sql(
            &url,
            "SELECT wake_addr FROM sessiond_node WHERE node = 'fixed'"
        ),
        wake
    );
    assert!(
        std::net::UdpSocket::bind(("127.0.0.1", port)).is_err(),
        "the node listens on {wake}"
    );
    // A lock held on A, released while B's client waits: B hears it at once.
    let (mut ca, mut cb) = (a.client().await, b.client().await);
    assert_eq!(
        call(&mut ca, &["SESSION.CREATE", "w"]).await,
        V::Simple("OK".into())
    );
    let V::Int(ka) = call(&mut ca, &["SESSION.LOCK", "w"]).await else {
        panic!("no key")
    };
    let waiter =
        tokio::spawn(async move { call(&mut cb, &["SESSION.LOCK", "w", "WAIT", "20000"]).await });
    let mut probe = a.client().await;
    while !format!("{:?}", call(&mut probe, &["SESSION.INFO", "w"]).await)
        .contains("lock_waiters\"), Int(1)")
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let released = std::time::Instant::now();
    call(&mut ca, &["SESSION.UNLOCK", "w", &ka.to_string()]).await;
    assert!(matches!(waiter.await.expect("waiter"), V::Int(_)));
    assert!(
        released.elapsed() < std::time::Duration::from_millis(900),
        "woken {:?} after the release, not by the wake-up",
        released.elapsed()
    );
    let refused = Server::start(Config {
        wake_addr: "db-host:7390".into(),
        ..on(kind, &url)
    })
    .await
    .err()
    .expect("refused");
    assert!(refused.to_string().contains("wake_addr"), "{refused}");
}
