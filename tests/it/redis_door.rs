//! The Redis door on the native port: the exact sequence phpredis's session
//! handler sends, the generic commands, and one session seen through both
//! doors.

use crate::common;

use bytes::Bytes;
use common::{bulk, call, TestServer};
use sessiond_client::{LockOptions, RespValue as V};

const KEY: &str = "PHPREDIS_SESSION:abc123";
const LOCK: &str = "PHPREDIS_SESSION:abc123_LOCK";
const SHA: &str = "b70c2384248f88e6b75b9f89241a180f856ad852";

#[tokio::test]
async fn the_phpredis_locking_sequence() {
    let s = TestServer::start().await;
    let (mut a, mut b) = (s.client().await, s.client().await);
    // Request A: lock, read (new session: nil), write, unlock.
    assert_eq!(
        call(&mut a, &["SET", LOCK, "web1|100", "NX", "PX", "30000"]).await,
        V::Simple("OK".into())
    );
    assert_eq!(call(&mut a, &["GET", KEY]).await, V::Nil);
    // Request B polls meanwhile and is refused.
    assert_eq!(
        call(&mut b, &["SET", LOCK, "web2|200", "NX", "PX", "30000"]).await,
        V::Nil
    );
    assert_eq!(
        call(&mut a, &["GET", LOCK]).await,
        bulk("web1|100"),
        "write_allowed check"
    );
    assert_eq!(
        call(&mut a, &["SETEX", KEY, "1440", "user_id|i:42;"]).await,
        V::Simple("OK".into())
    );
    // B's secret does not release A's lock.
    assert_eq!(
        call(&mut b, &["EVALSHA", SHA, "1", LOCK, "web2|200"]).await,
        V::Int(0)
    );
    assert_eq!(
        call(&mut a, &["EVALSHA", SHA, "1", LOCK, "web1|100"]).await,
        V::Int(1)
    );
    // Now B gets it, reads A's write, and the session is one session for
    // the native door too.
    assert_eq!(
        call(&mut b, &["SET", LOCK, "web2|200", "NX", "PX", "30000"]).await,
        V::Simple("OK".into())
    );
    assert_eq!(call(&mut b, &["GET", KEY]).await, bulk("user_id|i:42;"));
    let mut native = s.client().await;
    assert_eq!(
        native.get("abc123", "user_id").await.unwrap(),
        Some(Bytes::from("42"))
    );
    assert_eq!(
        native.find("user_id", "42").await.unwrap(),
        vec!["abc123".to_string()]
    );
    let busy = native
        .lock("abc123", LockOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        busy.code(),
        Some("LOCKED"),
        "a phpredis lock excludes a native one"
    );
    assert_eq!(
        call(&mut b, &["EVALSHA", SHA, "1", LOCK, "web2|200"]).await,
        V::Int(1)
    );
    native.lock("abc123", LockOptions::default()).await.unwrap();
    // A native destroy is seen by phpredis: the next request starts empty.
    native.destroy("abc123").await.unwrap();
    assert_eq!(call(&mut a, &["GET", KEY]).await, V::Nil);
}

#[tokio::test]
async fn strict_mode_lazy_write_and_destroy() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    assert_eq!(
        call(&mut c, &["EXISTS", KEY]).await,
        V::Int(0),
        "validate_sid"
    );
    call(&mut c, &["SETEX", KEY, "100", "x|i:1;"]).await;
    assert_eq!(call(&mut c, &["EXISTS", KEY]).await, V::Int(1));
    assert_eq!(
        call(&mut c, &["EXPIRE", KEY, "200"]).await,
        V::Int(1),
        "update_timestamp"
    );
    assert_eq!(call(&mut c, &["TTL", KEY]).await, V::Int(200));
    assert_eq!(
        call(&mut c, &["EXPIRE", "PHPREDIS_SESSION:nope", "200"]).await,
        V::Int(0)
    );
    assert_eq!(call(&mut c, &["DEL", KEY]).await, V::Int(1), "destroy");
    assert_eq!(call(&mut c, &["DEL", KEY]).await, V::Int(0));
    assert_eq!(call(&mut c, &["TTL", KEY]).await, V::Int(-2));
}

#[tokio::test]
async fn generic_commands() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    assert_eq!(
        call(&mut c, &["SET", "plain", "v1"]).await,
        V::Simple("OK".into())
    );
    assert_eq!(call(&mut c, &["SET", "plain", "v2", "NX"]).await, V::Nil);
    assert_eq!(
        call(&mut c, &["SET", "plain", "v3", "XX", "GET"]).await,
        bulk("v1")
    );
    assert_eq!(call(&mut c, &["GET", "plain"]).await, bulk("v3"));
    assert_eq!(
        call(&mut c, &["PSETEX", "p", "1500", "x"]).await,
        V::Simple("OK".into())
    );
    let r = call(&mut c, &["PTTL", "p"]).await;
    let V::Int(pttl) = r else { panic!("{r:?}") };
    assert!(pttl > 1000 && pttl <= 1500, "{pttl}");
    assert_eq!(call(&mut c, &["GETEX", "p", "EX", "100"]).await, bulk("x"));
    assert_eq!(call(&mut c, &["TTL", "p"]).await, V::Int(100));
    assert_eq!(
        call(&mut c, &["TYPE", "p"]).await,
        V::Simple("string".into())
    );
    assert_eq!(
        call(&mut c, &["TYPE", "none"]).await,
        V::Simple("none".into())
    );
    assert_eq!(
        call(&mut c, &["EXISTS", "p", "plain", "none"]).await,
        V::Int(2)
    );
    assert_eq!(call(&mut c, &["DBSIZE"]).await, V::Int(2));
    let r = call(&mut c, &["KEYS", "*p*"]).await;
    let V::Array(mut keys) = r else {
        panic!("{r:?}")
    };
    keys.sort_by_key(|k| format!("{k:?}"));
    // As written: these keys have no prefix.
    assert_eq!(keys, vec![bulk("p"), bulk("plain")]);
    let r = call(&mut c, &["SCAN", "0", "MATCH", "*plain", "COUNT", "10"]).await;
    let V::Array(scan) = r else { panic!("{r:?}") };
    assert_eq!(scan, vec![bulk("0"), V::Array(vec![bulk("plain")])]);
    assert_eq!(call(&mut c, &["SELECT", "0"]).await, V::Simple("OK".into()));
    assert_eq!(
        call(&mut c, &["CLIENT", "SETNAME", "php"]).await,
        V::Simple("OK".into())
    );
    let r = call(&mut c, &["TIME"]).await;
    let V::Array(time) = r else { panic!("{r:?}") };
    assert_eq!(time.len(), 2);
    let r = call(&mut c, &["FLUSHDB"]).await;
    let V::Error(e) = r else { panic!("{r:?}") };
    assert!(
        e.starts_with("ERR flushing every session is disabled"),
        "{e}"
    );
    let r = call(&mut c, &["SETEX", "k", "0", "v"]).await;
    let V::Error(e) = r else { panic!("{r:?}") };
    assert_eq!(e, "ERR invalid expire time in 'setex' command");
    assert_eq!(
        call(&mut c, &["DEL", "p", "plain", "none"]).await,
        V::Int(2)
    );
}

/// Flask-Session's 31 days, express's one-year "remember me", a 90-day
/// `gc_maxlifetime`: long timeouts are kept (up to `max_timeout_s`, 400
/// days) and anything longer is capped to it, never refused, on the Redis
/// and the memcached door alike; each cap is counted.
#[tokio::test]
async fn long_timeouts_are_kept_and_longer_ones_capped_never_refused() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let year = (365 * 86_400).to_string();
    assert_eq!(
        call(&mut c, &["SETEX", "PHPREDIS_SESSION:y", &year, "v"]).await,
        V::Simple("OK".into())
    );
    assert_eq!(
        call(&mut c, &["TTL", "PHPREDIS_SESSION:y"]).await,
        V::Int(365 * 86_400)
    );
    let max = 400 * 86_400;
    for args in [
        vec!["SET", "PHPREDIS_SESSION:z", "v", "EX", "99999999999"],
        vec!["EXPIRE", "PHPREDIS_SESSION:y", "99999999999"],
    ] {
        let r = call(&mut c, &args).await;
        assert!(!matches!(r, V::Error(_)), "{args:?}: {r:?}");
    }
    for key in ["PHPREDIS_SESSION:y", "PHPREDIS_SESSION:z"] {
        assert_eq!(call(&mut c, &["TTL", key]).await, V::Int(max), "{key}");
    }
    // memcached: 60 days is an absolute Unix time (over 30 days' worth of
    // seconds), and one far in the future is capped.
    let mut m = common::wire::Wire::connect(s.memcache).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (key, exptime) in [("sixty", now + 60 * 86_400), ("far", now + 9_000 * 86_400)] {
        let set = format!("set memc.sess.key.{key} 0 {exptime} 1\r\nv\r\n");
        assert_eq!(m.ask(set.as_bytes(), b"\r\n").await, "STORED\r\n", "{key}");
        let ttl = call(&mut c, &["TTL", &format!("PHPREDIS_SESSION:{key}")]).await;
        let V::Int(ttl) = ttl else { panic!("{ttl:?}") };
        let want = (exptime - now).min(max as u64) as i64;
        assert!((want - 2..=want).contains(&ttl), "{key}: {ttl} vs {want}");
    }
    let r = call(&mut c, &["INFO", "sessions"]).await;
    let V::Bulk(info) = r else { panic!("{r:?}") };
    let info = String::from_utf8_lossy(&info);
    assert!(info.contains("capped_timeouts:3"), "{info}");
}

/// A lock key taken inside MULTI is the connection's like any other: when
/// the connection closes it is released, and the next client gets it at
/// once instead of after the 30 s lease (on the cluster too, where the
/// transaction wrote the lock row).
#[tokio::test]
async fn a_lock_taken_in_a_transaction_goes_with_its_connection() {
    let s = TestServer::start().await;
    let mut a = s.client().await;
    assert_eq!(call(&mut a, &["MULTI"]).await, V::Simple("OK".into()));
    call(&mut a, &["SET", LOCK, "web1|1", "NX", "PX", "30000"]).await;
    assert_eq!(
        call(&mut a, &["EXEC"]).await,
        V::Array(vec![V::Simple("OK".into())])
    );
    let mut b = s.client().await;
    let take = ["SET", LOCK, "web2|1", "NX", "PX", "30000"];
    assert_eq!(call(&mut b, &take).await, V::Nil, "held by a");
    drop(a);
    let started = std::time::Instant::now();
    while call(&mut b, &take).await != V::Simple("OK".into()) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the closed connection's lock was not released"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
