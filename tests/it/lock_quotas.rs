//! Locks count against a tenant's quotas whether or not a session exists
//! under the id: a Redis `SET <id>_LOCK … NX`, a memcached `add lock.<id>`,
//! a `SESSION.LOCK`. Past `max_locks_per_tenant` or `max_bytes_per_tenant`
//! they are refused, and INFO and /metrics show what they hold.

use crate::common;

use common::wire::Wire;
use common::TestServer;
use sessiond_client::{Client, RespValue};
use sessiond_server::{Config, LimitsConfig, Storage};

fn config(limits: LimitsConfig) -> Config {
    Config {
        storage: Storage::Memory,
        limits,
        ..Config::default()
    }
}

/// Takes `n` Redis-door lock keys on ids with no session over `c` (they
/// stay held while it is open); the replies.
async fn redis_locks(c: &mut Client, from: usize, n: usize, secret: &str) -> Vec<RespValue> {
    let cmds: Vec<Vec<String>> = (from..from + n)
        .map(|i| {
            vec![
                "SET".into(),
                format!("nosuch{i}_LOCK"),
                secret.to_string(),
                "NX".into(),
                "PX".into(),
                "3600000".into(),
            ]
        })
        .collect();
    c.pipeline(&cmds).await.unwrap()
}

fn info(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in INFO"))
        .trim()
        .parse()
        .unwrap()
}

async fn info_text(s: &TestServer) -> String {
    match s
        .client()
        .await
        .call(&["INFO", "everything"])
        .await
        .unwrap()
    {
        RespValue::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("{other:?}"),
    }
}

async fn metrics(s: &TestServer) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut t = tokio::net::TcpStream::connect(s.http).await.unwrap();
    t.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    t.read_to_string(&mut text).await.unwrap();
    text
}

#[tokio::test]
async fn lock_keys_on_non_sessions_stop_at_max_locks_per_tenant() {
    let s = TestServer::start_with(config(LimitsConfig {
        max_sessions_per_tenant: 100,
        max_locks_per_tenant: 20_000,
        ..LimitsConfig::default()
    }))
    .await;
    let mut locker = s.client().await;
    let replies = redis_locks(&mut locker, 0, 20_000, "web1|4242|secret").await;
    let ok = replies
        .iter()
        .filter(|r| **r == RespValue::Simple("OK".into()))
        .count();
    assert_eq!(ok, 20_000, "every lock up to the limit is granted");
    // 5,000 more through the Redis door and 5,000 through memcached's.
    let more = redis_locks(&mut locker, 20_000, 5_000, "web1|4242|secret").await;
    for r in &more {
        match r {
            RespValue::Error(e) => assert!(e.starts_with("LIMIT the number of locks"), "{e}"),
            other => panic!("past the limit: {other:?}"),
        }
    }
    let mut mc = Wire::connect(s.memcache).await;
    for i in 0..5_000 {
        let got = mc
            .ask(
                format!("add lock.x{i} 0 3600 6\r\nsecret\r\n").as_bytes(),
                b"\r\n",
            )
            .await;
        assert!(got.starts_with("CLIENT_ERROR the number of locks"), "{got}");
    }
    let text = info_text(&s).await;
    assert_eq!(info(&text, "locks"), 20_000);
    let lock_bytes = info(&text, "lock_bytes");
    assert!(lock_bytes >= 20_000 * (128 + 96 + 16), "{lock_bytes}");
    assert!(
        info(&text, "used_memory") >= lock_bytes,
        "used_memory counts the locks"
    );
    let m = metrics(&s).await;
    assert!(
        m.contains("sessiond_locks{tenant=\"default\"} 20000"),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "sessiond_lock_bytes{{tenant=\"default\"}} {lock_bytes}"
        )),
        "{m}"
    );
    // Sessions were never the issue: a real one can still be made.
    s.client()
        .await
        .call(&["SESSION.CREATE", "real"])
        .await
        .unwrap();
}

#[tokio::test]
async fn lock_bytes_count_against_max_bytes_per_tenant_and_come_back_on_release() {
    let s = TestServer::start_with(config(LimitsConfig {
        max_bytes_per_tenant: 100_000,
        ..LimitsConfig::default()
    }))
    .await;
    // An owner secret over max_lock_owner_len is refused outright.
    let mut c = s.client().await;
    let big = "s".repeat(10 * 1024);
    let err = c
        .call(&["SET", "x_LOCK", &big, "NX", "PX", "3600000"])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("LIMIT the lock owner secret"), "{err}");

    let secret = "o".repeat(400);
    let mut locker = s.client().await;
    let replies = redis_locks(&mut locker, 0, 25_000, &secret).await;
    let ok = replies
        .iter()
        .filter(|r| **r == RespValue::Simple("OK".into()))
        .count();
    let per_lock = 128 + 96 + 400 + "nosuch0".len() as u64;
    assert!(
        (100_000 / per_lock - 10..=100_000 / per_lock).contains(&(ok as u64)),
        "{ok} locks granted of ~{per_lock} bytes each"
    );
    assert!(replies
        .iter()
        .any(|r| matches!(r, RespValue::Error(e) if e.starts_with("LIMIT the bytes stored"))));
    let text = info_text(&s).await;
    let used = info(&text, "used_memory");
    assert!(used <= 100_000 && used > 100_000 - 2 * per_lock, "{used}");
    // Sessions share what is left.
    c.call(&["SESSION.CREATE", "real"]).await.unwrap();
    let err = c
        .call(&[
            "SESSION.SETDATA",
            "real",
            &"d".repeat(2 * per_lock as usize),
        ])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("LIMIT the bytes stored"), "{err}");

    // The locks' connection goes away: every lock and its bytes come back.
    drop(locker);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = info_text(&s).await;
        if info(&text, "locks") == 0 {
            assert_eq!(info(&text, "used_memory"), 0, "{text}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "locks not released");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    c.call(&[
        "SESSION.SETDATA",
        "real",
        &"d".repeat(2 * per_lock as usize),
    ])
    .await
    .unwrap();
}
