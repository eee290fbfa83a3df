//! Locks over TCP: blocking waits woken by the releaser, FIFO order, leases,
//! disconnects, destroy, timeouts — with many real connections.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::TestServer;
use sessiond_client::{Client, CreateOptions, LockOptions};
use tokio::io::AsyncWriteExt;

fn wait(ms: u64) -> LockOptions {
    LockOptions {
        wait_ms: ms,
        ..Default::default()
    }
}

/// Polls INFO until the session has `n` waiters (bounded).
async fn until_waiters(c: &mut Client, id: &str, n: i64) {
    for _ in 0..500 {
        if c.info(id).await.unwrap().lock_waiters == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never saw {n} waiters on {id}");
}

/// A holds the write lock on a new session "s"; a second connection is
/// queued for it (WAIT 30 s). Returns A and the waiter's outcome.
async fn held_with_waiter(
    s: &TestServer,
) -> (
    Client,
    tokio::task::JoinHandle<Result<u64, sessiond_client::Error>>,
) {
    let mut a = s.client().await;
    a.create("s", CreateOptions::default()).await.unwrap();
    a.lock("s", wait(0)).await.unwrap();
    let addr = s.addr;
    let waiter = tokio::spawn(async move {
        let mut b = Client::connect(addr).await.unwrap();
        b.lock("s", wait(30_000)).await
    });
    until_waiters(&mut a, "s", 1).await;
    (a, waiter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_contending_writers_count_exactly_once() {
    let s = Arc::new(TestServer::start().await);
    let mut admin = s.client().await;
    admin.create("hot", CreateOptions::default()).await.unwrap();
    admin.set("hot", "n", "0").await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = s.client().await;
            let o = c.open("hot", wait(60_000)).await.unwrap();
            let n: i64 = o
                .vars
                .iter()
                .find(|(k, _)| k == "n")
                .map(|(_, v)| std::str::from_utf8(v).unwrap().parse().unwrap())
                .unwrap();
            // Read-modify-write under the lock: lost updates would show.
            tokio::task::yield_now().await;
            let next = (n + 1).to_string();
            c.close("hot", o.key, None, &[(b"n", next.as_bytes())])
                .await
                .unwrap();
            o.key
        }));
    }
    let mut keys = Vec::new();
    for t in tasks {
        keys.push(t.await.unwrap());
    }
    assert_eq!(
        admin.get("hot", "n").await.unwrap(),
        Some(Bytes::from("100"))
    );
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 100, "every grant had its own fencing key");
    let info = admin.info("hot").await.unwrap();
    assert_eq!((info.lock.as_str(), info.lock_waiters), ("none", 0));
}

#[tokio::test]
async fn waiters_are_granted_in_arrival_order() {
    let s = Arc::new(TestServer::start().await);
    let mut holder = s.client().await;
    holder.create("s", CreateOptions::default()).await.unwrap();
    let first = holder.lock("s", wait(0)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = s.client().await;
            let key = c.lock("s", wait(30_000)).await.unwrap();
            c.unlock("s", key).await.unwrap();
            (i, key)
        }));
        // Each waiter is queued before the next one arrives.
        until_waiters(&mut holder, "s", i + 1).await;
    }
    holder.unlock("s", first).await.unwrap();
    let mut grants = Vec::new();
    for t in tasks {
        grants.push(t.await.unwrap());
    }
    grants.sort_by_key(|&(_, key)| key);
    let order: Vec<i64> = grants.iter().map(|&(i, _)| i).collect();
    assert_eq!(
        order,
        (0..20).collect::<Vec<_>>(),
        "grant order = arrival order"
    );
}

#[tokio::test]
async fn closing_a_connection_releases_its_lock_to_the_next_waiter() {
    let s = TestServer::start().await;
    let (a, waiter) = held_with_waiter(&s).await;
    drop(a);
    let key = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert!(key.is_ok(), "{key:?}");
}

#[tokio::test]
async fn a_waiter_that_hangs_up_leaves_the_queue() {
    let s = TestServer::start().await;
    let mut a = s.client().await;
    a.create("s", CreateOptions::default()).await.unwrap();
    let k = a.lock("s", wait(0)).await.unwrap();
    let mut raw = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    raw.write_all(b"SESSION.LOCK s WAIT 60000\r\n")
        .await
        .unwrap();
    until_waiters(&mut a, "s", 1).await;
    drop(raw);
    until_waiters(&mut a, "s", 0).await;
    a.unlock("s", k).await.unwrap();
    assert_eq!(a.info("s").await.unwrap().lock, "none");
}

#[tokio::test]
async fn lease_expiry_hands_the_lock_on_and_fences_the_old_key() {
    let s = TestServer::start().await;
    let mut a = s.client().await;
    a.create("s", CreateOptions::default()).await.unwrap();
    let old = a
        .lock(
            "s",
            LockOptions {
                lease_ms: Some(200),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut b = s.client().await;
    let new = b.lock("s", wait(10_000)).await.unwrap();
    assert!(new > old);
    let e = a
        .close("s", old, Some(b"late write"), &[])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("STALEKEY"));
    assert_eq!(a.get_data("s").await.unwrap(), Bytes::new());
    b.close("s", new, Some(b"fresh"), &[]).await.unwrap();
    assert_eq!(a.get_data("s").await.unwrap(), Bytes::from("fresh"));
}

#[tokio::test]
async fn destroy_fails_waiters_cleanly() {
    let s = TestServer::start().await;
    let (mut a, waiter) = held_with_waiter(&s).await;
    a.destroy("s").await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), Some("NOSESSION"));
    assert!(err.to_string().contains("destroyed while waiting"), "{err}");
}

#[tokio::test]
async fn wait_runs_out_with_locked() {
    let s = TestServer::start().await;
    let mut a = s.client().await;
    a.create("s", CreateOptions::default()).await.unwrap();
    a.lock("s", wait(0)).await.unwrap();
    let mut b = s.client().await;
    let err = b.lock("s", wait(100)).await.unwrap_err();
    assert_eq!(err.code(), Some("LOCKED"));
    assert!(
        err.to_string().contains("locked for writing (waited"),
        "{err}"
    );
    assert_eq!(
        a.info("s").await.unwrap().lock_waiters,
        0,
        "the timed-out waiter left"
    );
}

#[tokio::test]
async fn readers_share_writers_exclude() {
    let s = TestServer::start().await;
    let (mut a, mut b, mut w) = (s.client().await, s.client().await, s.client().await);
    a.create("s", CreateOptions::default()).await.unwrap();
    let read = LockOptions {
        mode: sessiond_client::LockMode::Read,
        ..Default::default()
    };
    let ka = a.lock("s", read).await.unwrap();
    let kb = b.lock("s", read).await.unwrap();
    assert_eq!(a.info("s").await.unwrap().lock_holders, 2);
    assert_eq!(
        w.lock("s", wait(0)).await.unwrap_err().code(),
        Some("LOCKED")
    );
    let e = a.close("s", ka, Some(b"x"), &[]).await.unwrap_err();
    assert_eq!(e.code(), Some("READONLY"));
    a.unlock("s", ka).await.unwrap();
    b.unlock("s", kb).await.unwrap();
    w.lock("s", wait(0)).await.unwrap();
}

#[tokio::test]
async fn regenerate_keeps_the_lock() {
    let s = TestServer::start().await;
    let mut a = s.client().await;
    a.create("old", CreateOptions::default()).await.unwrap();
    let k = a.lock("old", wait(0)).await.unwrap();
    let new = a.regenerate("old", None).await.unwrap();
    assert_eq!(a.info(&new).await.unwrap().lock, "write");
    a.close(&new, k, Some(b"kept"), &[]).await.unwrap();
    assert_eq!(a.get_data(&new).await.unwrap(), Bytes::from("kept"));
}

#[tokio::test]
async fn shutdown_answers_queued_waiters_before_closing() {
    let s = TestServer::start().await;
    let (_a, waiter) = held_with_waiter(&s).await;
    s.stop().await;
    let answer = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    // Depending on which connection sees the shutdown first, the holder's
    // release may grant the lock, or the wait is cancelled: either way an
    // answer, never a dropped connection.
    match answer {
        Ok(key) => assert!(key > 0),
        Err(e) => assert_eq!(e.code(), Some("LOCKED"), "{e}"),
    }
}

/// The Redis-door lock key and the memcached one free a lock only for the
/// connection that holds it: another connection, or a stale holder whose
/// lease ran out, is answered as for a missing key and the holder keeps
/// its lock (two PHP requests never write one session at once).
#[tokio::test]
async fn lock_keys_are_released_only_by_their_holder() {
    use sessiond_client::RespValue;
    // Lock keys answered at once (as Redis does): the refusals are the
    // point here; the door wait has its own test below.
    let s = TestServer::start_with(sessiond_server::Config {
        storage: sessiond_server::Storage::Memory,
        door_lock_wait_ms: 0,
        ..sessiond_server::Config::default()
    })
    .await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    let ok = RespValue::Simple("OK".into());
    let set =
        |secret: &'static str, px: &'static str| vec!["SET", "sess_LOCK", secret, "NX", "PX", px];
    assert_eq!(a.call(&set("host|1", "60000")).await.unwrap(), ok);
    assert_eq!(
        b.call(&["DEL", "sess_LOCK"]).await.unwrap(),
        RespValue::Int(0)
    );
    assert_eq!(
        b.call(&set("host|2", "60000")).await.unwrap(),
        RespValue::Nil,
        "the holder kept its lock"
    );
    assert_eq!(
        a.call(&["DEL", "sess_LOCK"]).await.unwrap(),
        RespValue::Int(1)
    );
    assert_eq!(b.call(&set("host|2", "60000")).await.unwrap(), ok);
    assert_eq!(
        b.call(&["DEL", "sess_LOCK"]).await.unwrap(),
        RespValue::Int(1)
    );

    // A stale holder: its lease ran out and someone else holds it now.
    assert_eq!(a.call(&set("host|1", "100")).await.unwrap(), ok);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(b.call(&set("host|2", "60000")).await.unwrap(), ok);
    assert_eq!(
        a.call(&["DEL", "sess_LOCK"]).await.unwrap(),
        RespValue::Int(0)
    );
    assert_eq!(
        a.call(&["GET", "sess_LOCK"]).await.unwrap(),
        RespValue::Bulk(Bytes::from("host|2"))
    );

    // memcached's `delete lock.<id>` likewise.
    let mut ma = common::wire::Wire::connect(s.memcache).await;
    let mut mb = common::wire::Wire::connect(s.memcache).await;
    assert_eq!(
        ma.ask(b"add lock.m 0 30 1\r\n1\r\n", b"\r\n").await,
        "STORED\r\n"
    );
    assert_eq!(mb.line("delete lock.m").await, "NOT_FOUND");
    assert_eq!(
        mb.ask(b"add lock.m 0 30 1\r\n1\r\n", b"\r\n").await,
        "NOT_STORED\r\n"
    );
    assert_eq!(ma.line("delete lock.m").await, "DELETED");
    assert_eq!(
        mb.ask(b"add lock.m 0 30 1\r\n1\r\n", b"\r\n").await,
        "STORED\r\n"
    );

    // Each refusal is counted.
    let r = a.call(&["INFO", "sessions"]).await.unwrap();
    let RespValue::Bulk(info) = r else {
        panic!("{r:?}")
    };
    let info = String::from_utf8_lossy(&info);
    assert!(info.contains("refused_unlocks:3"), "{info}");
}

/// A Redis `SET <id>_LOCK … NX` and a memcached `add lock.<id>` on a held
/// lock wait in the session's queue and are answered the moment the lock
/// is theirs (Redis and memcached would answer nil / NOT_STORED at once,
/// and the client would poll); with `door_lock_wait_ms = 0` they answer at
/// once, as those servers do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn door_lock_requests_wait_for_the_holder_to_let_go() {
    use sessiond_client::RespValue;
    let s = TestServer::start().await;
    let mut a = s.client().await;
    let ok = RespValue::Simple("OK".into());
    let set = |secret: &'static str| vec!["SET", "w_LOCK", secret, "NX", "PX", "60000"];
    assert_eq!(a.call(&set("host|1")).await.unwrap(), ok);
    let mut b = s.client().await;
    let waiting = tokio::spawn(async move {
        let asked = std::time::Instant::now();
        let reply = b.call(&set("host|2")).await.unwrap();
        // b is handed back: its lock lasts as long as its connection.
        (reply, asked.elapsed(), b)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "answered while the lock was held");
    let released = std::time::Instant::now();
    assert_eq!(a.call(&["DEL", "w_LOCK"]).await.unwrap(), RespValue::Int(1));
    let (reply, waited, _b) = waiting.await.unwrap();
    assert_eq!(reply, ok, "granted once released");
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(
        released.elapsed() < Duration::from_millis(500),
        "granted at once, not at the next poll"
    );
    assert_eq!(
        a.call(&["GET", "w_LOCK"]).await.unwrap(),
        RespValue::Bulk(Bytes::from("host|2"))
    );

    // memcached's `add lock.<id>` likewise.
    let mut ma = common::wire::Wire::connect(s.memcache).await;
    assert_eq!(
        ma.ask(b"add lock.m 0 30 1\r\n1\r\n", b"\r\n").await,
        "STORED\r\n"
    );
    let memcache = s.memcache;
    let waiting = tokio::spawn(async move {
        let mut mb = common::wire::Wire::connect(memcache).await;
        let reply = mb.ask(b"add lock.m 0 30 1\r\n2\r\n", b"\r\n").await;
        (reply, mb)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "answered while the lock was held");
    assert_eq!(ma.line("delete lock.m").await, "DELETED");
    let (reply, _mb) = waiting.await.unwrap();
    assert_eq!(reply, "STORED\r\n");

    // door_lock_wait_ms = 0: at once, as Redis answers.
    let s = TestServer::start_with(sessiond_server::Config {
        storage: sessiond_server::Storage::Memory,
        door_lock_wait_ms: 0,
        ..sessiond_server::Config::default()
    })
    .await;
    let (mut a, mut b) = (s.client().await, s.client().await);
    assert_eq!(a.call(&set("host|1")).await.unwrap(), ok);
    let asked = std::time::Instant::now();
    assert_eq!(b.call(&set("host|2")).await.unwrap(), RespValue::Nil);
    assert!(asked.elapsed() < Duration::from_millis(500));
}
