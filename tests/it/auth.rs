//! Users, tenants and roles over real sockets, through every door: nothing
//! runs before a login, wrong passwords are refused and braked per address,
//! a tenant's sessions are invisible to every other tenant whatever the
//! command or door, and a role limits what its user may do.

use crate::common;

use std::net::SocketAddr;

use common::wire::Wire;
use common::TestServer;
use sessiond_client::{Client, RespValue as Value};
use sessiond_proto::memcache::binary_request;
use sessiond_server::{Config, LimitsConfig, Role, Storage};

const GET: u8 = 0x00;
const SET: u8 = 0x01;
const SASL_LIST: u8 = 0x20;
const SASL_AUTH: u8 = 0x21;

use common::user;

/// alice and bob write in tenants alpha and beta; reader reads alpha; root
/// administers alpha.
fn config() -> Config {
    Config {
        storage: Storage::Memory,
        allow_flush: true,
        users: vec![
            user("alice", "pw-alice", "alpha", Role::Readwrite),
            user("bob", "pw-bob", "beta", Role::Readwrite),
            user("reader", "pw-reader", "alpha", Role::Readonly),
            user("root", "pw-root", "alpha", Role::Admin),
        ],
        ..Config::default()
    }
}

async fn login(s: &TestServer, user: &str, password: &str) -> Client {
    let mut c = s.client().await;
    c.auth(user, password).await.expect("login");
    c
}

/// The code of an error reply.
fn code(r: Result<Value, sessiond_client::Error>) -> String {
    match r {
        Err(sessiond_client::Error::Server { code, .. }) => code,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

async fn memcache_text_login(addr: SocketAddr, user: &str, password: &str) -> Wire {
    let mut w = Wire::connect(addr).await;
    let token = format!("{user} {password}");
    let reply = w
        .ask(
            format!("set auth 0 0 {}\r\n{token}\r\n", token.len()).as_bytes(),
            b"\r\n",
        )
        .await;
    assert_eq!(reply, "STORED\r\n");
    w
}

fn sasl_plain(user: &str, password: &str) -> Vec<u8> {
    binary_request(
        SASL_AUTH,
        7,
        0,
        &[],
        b"PLAIN",
        format!("\0{user}\0{password}").as_bytes(),
    )
    .to_vec()
}

async fn memcache_binary_login(addr: SocketAddr, user: &str, password: &str) -> Wire {
    let mut w = Wire::connect(addr).await;
    assert_eq!(
        w.binary(&sasl_plain(user, password)).await,
        (0, b"Authenticated".to_vec())
    );
    w
}

async fn line_login(addr: SocketAddr, user: &str, password: &str) -> Wire {
    let mut w = Wire::connect(addr).await;
    assert_eq!(w.line(&format!("auth {user} {password}")).await, "ok");
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_door_refuses_everything_before_a_login() {
    let s = TestServer::start_with(config()).await;

    // RESP: native and Redis commands alike.
    let mut c = s.client().await;
    assert_eq!(code(c.call(&["SESSION.COUNT"]).await), "NOAUTH");
    assert_eq!(code(c.call(&["GET", "PHPREDIS_SESSION:x"]).await), "NOAUTH");
    assert_eq!(code(c.call(&["KEYS", "*"]).await), "NOAUTH");
    assert_eq!(code(c.call(&["PING"]).await), "NOAUTH");
    assert_eq!(code(c.call(&["HELLO", "3"]).await), "NOAUTH");
    assert_eq!(code(c.call(&["AUTH", "alice", "wrong"]).await), "WRONGPASS");
    assert_eq!(
        code(c.call(&["AUTH", "nobody", "pw-alice"]).await),
        "WRONGPASS"
    );
    // AUTH without a user is the user named default, and there is none.
    assert_eq!(code(c.call(&["AUTH", "pw-alice"]).await), "WRONGPASS");
    assert_eq!(code(c.call(&["SESSION.COUNT"]).await), "NOAUTH");
    c.auth("alice", "pw-alice").await.unwrap();
    assert_eq!(c.call(&["SESSION.COUNT"]).await.unwrap(), Value::Int(0));
    // HELLO logs in and switches protocol in one go.
    let mut h = s.client().await;
    let hello = h
        .call(&["HELLO", "3", "AUTH", "bob", "pw-bob"])
        .await
        .unwrap();
    assert!(matches!(hello, Value::Map(_)), "{hello:?}");
    assert_eq!(h.call(&["SESSION.COUNT"]).await.unwrap(), Value::Int(0));
    assert_eq!(
        code(
            s.client()
                .await
                .call(&["HELLO", "3", "AUTH", "bob", "x"])
                .await
        ),
        "WRONGPASS"
    );

    // memcached text: only the `set` login, as memcached's -Y does.
    let mut t = Wire::connect(s.memcache).await;
    assert_eq!(t.line("get x").await, "CLIENT_ERROR unauthenticated");
    assert_eq!(t.line("version").await, "CLIENT_ERROR unauthenticated");
    assert_eq!(t.line("stats").await, "CLIENT_ERROR unauthenticated");
    assert_eq!(
        t.ask(b"set auth 0 0 11\r\nalice wrong\r\n", b"\r\n").await,
        "CLIENT_ERROR authentication failure\r\n"
    );
    assert_eq!(
        t.ask(b"set auth 0 0 5\r\nalice\r\n", b"\r\n").await,
        "CLIENT_ERROR bad authentication token format\r\n"
    );
    assert_eq!(
        t.ask(b"set auth 0 0 14\r\nalice pw-alice\r\n", b"\r\n")
            .await,
        "STORED\r\n"
    );
    assert_eq!(t.line("get x").await, "END");

    // memcached binary: SASL PLAIN.
    let mut b = Wire::connect(s.memcache).await;
    let get = binary_request(GET, 1, 0, &[], b"x", &[]);
    assert_eq!(b.binary(&get).await.0, 0x20, "auth error before login");
    assert_eq!(
        b.binary(&binary_request(SASL_LIST, 2, 0, &[], &[], &[]))
            .await,
        (0, b"PLAIN".to_vec())
    );
    assert_eq!(b.binary(&sasl_plain("alice", "wrong")).await.0, 0x20);
    assert_eq!(
        b.binary(&binary_request(SASL_AUTH, 3, 0, &[], b"CRAM-MD5", b"x"))
            .await
            .0,
        0x20
    );
    assert_eq!(b.binary(&get).await.0, 0x20, "still not logged in");
    assert_eq!(
        b.binary(&sasl_plain("alice", "pw-alice")).await,
        (0, b"Authenticated".to_vec())
    );
    assert_eq!(b.binary(&get).await.0, 0x01, "a plain miss now");

    // The line protocol.
    let mut l = Wire::connect(s.line).await;
    assert!(l
        .line("new")
        .await
        .starts_with("err authentication required"));
    assert!(l
        .line("auth alice wrong")
        .await
        .starts_with("err invalid username-password"));
    assert_eq!(l.line("auth alice pw-alice").await, "ok");
    assert!(l.line("new").await.starts_with("ok "));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_see_another_through_any_door() {
    let s = TestServer::start_with(config()).await;

    // alice writes a session through every door.
    let mut alice = login(&s, "alice", "pw-alice").await;
    alice
        .call(&["SESSION.CREATE", "native-1", "DATA", "user_id|s:2:\"42\";"])
        .await
        .unwrap();
    alice
        .call(&["SESSION.SET", "native-1", "user", "42"])
        .await
        .unwrap();
    alice
        .call(&["SET", "PHPREDIS_SESSION:redis-1", "user_id|s:2:\"42\";"])
        .await
        .unwrap();
    let mut mt = memcache_text_login(s.memcache, "alice", "pw-alice").await;
    assert_eq!(
        mt.ask(b"set memc.sess.key.mc-1 0 0 5\r\nalpha\r\n", b"\r\n")
            .await,
        "STORED\r\n"
    );
    let mut mb = memcache_binary_login(s.memcache, "alice", "pw-alice").await;
    let set = binary_request(
        SET,
        1,
        0,
        &[0, 0, 0, 0, 0, 0, 0, 0],
        b"memc.sess.key.mcb-1",
        b"alpha",
    );
    assert_eq!(mb.binary(&set).await.0, 0);
    let mut la = line_login(s.line, "alice", "pw-alice").await;
    let line_id = la.line("new").await["ok ".len()..].to_string();
    assert_eq!(la.line("put user 42").await, "ok");
    assert_eq!(la.line("close").await, "ok");
    // alice holds a lock on one of hers.
    alice.call(&["SESSION.LOCK", "native-1"]).await.unwrap();
    assert_eq!(alice.call(&["SESSION.COUNT"]).await.unwrap(), Value::Int(5));
    let ids = ["native-1", "redis-1", "mc-1", "mcb-1", line_id.as_str()];

    // bob, in beta, probes through every door and sees none of it.
    let mut bob = login(&s, "bob", "pw-bob").await;
    assert_eq!(bob.call(&["SESSION.COUNT"]).await.unwrap(), Value::Int(0));
    assert_eq!(
        bob.call(&["SESSION.LIST"]).await.unwrap(),
        Value::Array(vec![])
    );
    assert_eq!(
        bob.call(&["SESSION.FIND", "user", "42"]).await.unwrap(),
        Value::Array(vec![])
    );
    assert_eq!(
        bob.call(&["SESSION.FIND", "user_id", "42"]).await.unwrap(),
        Value::Array(vec![])
    );
    assert_eq!(
        bob.call(&["SESSION.LISTVAR", "user"]).await.unwrap(),
        Value::Array(vec![])
    );
    let scan = bob
        .call(&["SESSION.SCAN", "0", "COUNT", "1000"])
        .await
        .unwrap();
    assert!(
        matches!(&scan, Value::Array(a) if a.len() == 2 && a[1] == Value::Array(vec![])),
        "{scan:?}"
    );
    assert_eq!(
        bob.call(&["KEYS", "*"]).await.unwrap(),
        Value::Array(vec![])
    );
    let scan = bob.call(&["SCAN", "0", "COUNT", "1000"]).await.unwrap();
    assert!(
        matches!(&scan, Value::Array(a) if a.len() == 2 && a[1] == Value::Array(vec![])),
        "{scan:?}"
    );
    assert_eq!(bob.call(&["DBSIZE"]).await.unwrap(), Value::Int(0));
    for id in ids {
        assert_eq!(
            bob.call(&["SESSION.EXISTS", id]).await.unwrap(),
            Value::Int(0),
            "{id}"
        );
        assert_eq!(
            code(bob.call(&["SESSION.GETDATA", id]).await),
            "NOSESSION",
            "{id}"
        );
        assert_eq!(
            code(bob.call(&["SESSION.GETALL", id]).await),
            "NOSESSION",
            "{id}"
        );
        assert_eq!(
            bob.call(&["GET", &format!("PHPREDIS_SESSION:{id}")])
                .await
                .unwrap(),
            Value::Nil
        );
        assert_eq!(
            bob.call(&["EXISTS", &format!("PHPREDIS_SESSION:{id}")])
                .await
                .unwrap(),
            Value::Int(0)
        );
    }
    // Locks are per tenant too: the same id locks at once in beta.
    bob.call(&["SESSION.CREATE", "native-1", "DATA", "beta's own"])
        .await
        .unwrap();
    bob.call(&["SESSION.LOCK", "native-1", "WAIT", "0"])
        .await
        .unwrap();
    // And bob's writes do not land in alpha.
    bob.call(&["SET", "PHPREDIS_SESSION:redis-1", "beta's own"])
        .await
        .unwrap();

    let mut bt = memcache_text_login(s.memcache, "bob", "pw-bob").await;
    let mut bb = memcache_binary_login(s.memcache, "bob", "pw-bob").await;
    for id in ids {
        if id == "native-1" || id == "redis-1" {
            continue;
        }
        assert_eq!(
            bt.line(&format!("get memc.sess.key.{id}")).await,
            "END",
            "{id}"
        );
        assert_eq!(bt.line(&format!("get {id}")).await, "END", "{id}");
        let get = binary_request(
            GET,
            9,
            0,
            &[],
            format!("memc.sess.key.{id}").as_bytes(),
            &[],
        );
        assert_eq!(bb.binary(&get).await.0, 0x01, "{id}: not found");
    }
    let stats = bt.ask(b"stats\r\n", b"END\r\n").await;
    assert!(
        stats.contains("STAT cmd_set 0\r\n"),
        "alice's memcached sets are not counted in bob's stats: {stats}"
    );
    assert!(
        stats.contains("STAT curr_items 2\r\n"),
        "bob's two only: {stats}"
    );
    let mut lb = line_login(s.line, "bob", "pw-bob").await;
    for id in ["mc-1", "mcb-1", line_id.as_str()] {
        assert!(
            lb.line(&format!("open {id} r"))
                .await
                .starts_with("err no session"),
            "{id}"
        );
    }

    // alice's sessions are as she left them.
    assert_eq!(alice.call(&["SESSION.COUNT"]).await.unwrap(), Value::Int(5));
    assert_eq!(
        alice
            .call(&["GET", "PHPREDIS_SESSION:redis-1"])
            .await
            .unwrap(),
        Value::Bulk("user_id|s:2:\"42\";".into())
    );
    let Value::Array(found) = alice.call(&["SESSION.FIND", "user", "42"]).await.unwrap() else {
        panic!("FIND answers an array");
    };
    assert_eq!(found.len(), 2, "native-1 and the line door's: {found:?}");
    assert!(found.contains(&Value::Bulk("native-1".into())));
    assert!(found.contains(&Value::Bulk(line_id.clone().into())));
    assert_eq!(bob.call(&["SESSION.COUNT"]).await.unwrap(), Value::Int(2));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_limit_what_a_user_may_do() {
    let s = TestServer::start_with(config()).await;
    let mut alice = login(&s, "alice", "pw-alice").await;
    alice
        .call(&["SESSION.CREATE", "s1", "DATA", "d"])
        .await
        .unwrap();
    alice
        .call(&["SESSION.SET", "s1", "user", "7"])
        .await
        .unwrap();
    let mut bob = login(&s, "bob", "pw-bob").await;
    bob.call(&["SESSION.CREATE", "b1"]).await.unwrap();

    // readonly: reads and shared locks, nothing that writes.
    let mut reader = login(&s, "reader", "pw-reader").await;
    assert_eq!(
        reader.call(&["SESSION.GET", "s1", "user"]).await.unwrap(),
        Value::Bulk("7".into())
    );
    assert_eq!(
        reader.call(&["GET", "PHPREDIS_SESSION:s1"]).await.unwrap(),
        Value::Bulk("d".into())
    );
    assert_eq!(
        reader.call(&["SESSION.COUNT"]).await.unwrap(),
        Value::Int(1)
    );
    let key = reader
        .call(&["SESSION.LOCK", "s1", "MODE", "read"])
        .await
        .unwrap();
    assert!(matches!(key, Value::Int(_)));
    for write in [
        vec!["SESSION.SET", "s1", "user", "8"],
        vec!["SESSION.CREATE", "s2"],
        vec!["SESSION.DESTROY", "s1"],
        vec!["SESSION.LOCK", "s1", "MODE", "write", "WAIT", "0"],
        vec!["SET", "PHPREDIS_SESSION:s1", "x"],
        vec!["SET", "PHPREDIS_SESSION:s1_LOCK", "x", "NX", "PX", "1000"],
        vec!["DEL", "PHPREDIS_SESSION:s1"],
        vec!["FLUSHALL"],
    ] {
        assert_eq!(code(reader.call(&write).await), "NOPERM", "{write:?}");
    }
    let mut rt = memcache_text_login(s.memcache, "reader", "pw-reader").await;
    assert_eq!(
        rt.ask(b"get memc.sess.key.s1\r\n", b"END\r\n").await,
        "VALUE memc.sess.key.s1 0 1\r\nd\r\nEND\r\n"
    );
    let reply = rt
        .ask(b"set memc.sess.key.s1 0 0 1\r\nx\r\n", b"\r\n")
        .await;
    assert!(
        reply.starts_with("CLIENT_ERROR this user's role (readonly)"),
        "{reply}"
    );
    let mut rl = line_login(s.line, "reader", "pw-reader").await;
    assert!(rl
        .line("new")
        .await
        .starts_with("err this user's role (readonly)"));
    assert_eq!(rl.line("open s1 r").await, "ok");
    assert_eq!(rl.line("get user").await, "ok 7");

    // readwrite cannot flush; admin flushes its own tenant only.
    assert_eq!(code(alice.call(&["FLUSHALL"]).await), "NOPERM");
    let mut root = login(&s, "root", "pw-root").await;
    assert_eq!(
        root.call(&["FLUSHALL"]).await.unwrap(),
        Value::Simple("OK".into())
    );
    assert_eq!(alice.call(&["SESSION.COUNT"]).await.unwrap(), Value::Int(0));
    assert_eq!(
        bob.call(&["SESSION.EXISTS", "b1"]).await.unwrap(),
        Value::Int(1)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_in_a_loop_are_braked_per_address() {
    let s = TestServer::start_with(Config {
        limits: LimitsConfig {
            max_auth_failures: 5,
            ..LimitsConfig::default()
        },
        ..config()
    })
    .await;
    let mut alice = login(&s, "alice", "pw-alice").await;
    alice
        .call(&["SESSION.CREATE", "kept", "DATA", "d"])
        .await
        .unwrap();

    // Five wrong passwords from 127.0.0.1, over every door.
    let mut c = s.client().await;
    for _ in 0..2 {
        assert_eq!(code(c.call(&["AUTH", "alice", "guess"]).await), "WRONGPASS");
    }
    let mut t = Wire::connect(s.memcache).await;
    let reply = t.ask(b"set a 0 0 11\r\nalice guess\r\n", b"\r\n").await;
    assert_eq!(reply, "CLIENT_ERROR authentication failure\r\n");
    let mut b = Wire::connect(s.memcache).await;
    assert_eq!(b.binary(&sasl_plain("alice", "guess")).await.0, 0x20);
    let mut l = Wire::connect(s.line).await;
    assert!(l.line("auth alice guess").await.starts_with("err invalid"));

    // Now even the right password is refused from there, unchecked...
    let err = c
        .call(&["AUTH", "alice", "pw-alice"])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("too many failed logins"), "{err}");
    assert!(l
        .line("auth alice pw-alice")
        .await
        .contains("too many failed logins"));
    let mut b2 = Wire::connect(s.memcache).await;
    let (status, body) = b2.binary(&sasl_plain("alice", "pw-alice")).await;
    assert_eq!(status, 0x20);
    assert!(String::from_utf8_lossy(&body).contains("too many failed logins"));

    // ...while another address logs in, and the logged-in client is served.
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = other.connect(s.addr).await.unwrap();
    let mut w = Wire::from_stream(stream);
    assert_eq!(w.ask(b"AUTH alice pw-alice\r\n", b"\r\n").await, "+OK\r\n");
    assert_eq!(w.ask(b"SESSION.EXISTS kept\r\n", b"\r\n").await, ":1\r\n");
    assert_eq!(
        alice.call(&["SESSION.GETDATA", "kept"]).await.unwrap(),
        Value::Bulk("d".into())
    );
    let mut info = alice.call(&["INFO"]).await.unwrap();
    if let Value::Bulk(text) = &mut info {
        let text = String::from_utf8_lossy(text);
        assert!(text.contains("acl_access_denied_auth:5"), "{text}");
        assert!(text.contains("auth_throttled:3"), "{text}");
        assert!(text.contains("tenant:alpha"), "{text}");
    } else {
        panic!("{info:?}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_recovers_its_own_sessions_from_its_own_directory() {
    let dir = std::env::temp_dir().join(format!("sessiond-tenants-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = Config {
        storage: Storage::Log,
        data_dir: dir.clone(),
        ..config()
    };
    let s = TestServer::start_with(config.clone()).await;
    login(&s, "alice", "pw-alice")
        .await
        .call(&["SESSION.CREATE", "a1", "DATA", "alpha"])
        .await
        .unwrap();
    login(&s, "bob", "pw-bob")
        .await
        .call(&["SESSION.CREATE", "b1", "DATA", "beta"])
        .await
        .unwrap();
    s.stop().await;
    assert!(dir.join("tenants").join("alpha").is_dir());
    assert!(dir.join("tenants").join("beta").is_dir());

    let s = TestServer::start_with(config).await;
    let mut alice = login(&s, "alice", "pw-alice").await;
    assert_eq!(
        alice.call(&["SESSION.LIST"]).await.unwrap(),
        Value::Array(vec![Value::Bulk("a1".into())])
    );
    let mut bob = login(&s, "bob", "pw-bob").await;
    assert_eq!(
        bob.call(&["SESSION.GETDATA", "b1"]).await.unwrap(),
        Value::Bulk("beta".into())
    );
    assert_eq!(
        bob.call(&["SESSION.EXISTS", "a1"]).await.unwrap(),
        Value::Int(0)
    );
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
