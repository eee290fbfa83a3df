//! Every native command over TCP with the Rust client: one test per row of
//! the command table in docs/protocol.md.

use crate::common;

use bytes::Bytes;
use common::TestServer;
use sessiond_client::{CreateOptions, LockMode, LockOptions};

fn code(e: sessiond_client::Error) -> String {
    e.code().unwrap_or("not a server error").to_string()
}

#[tokio::test]
async fn create_and_exists_and_destroy() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.create("a", CreateOptions::default()).await.unwrap();
    assert!(c.exists("a").await.unwrap());
    assert_eq!(
        code(c.create("a", CreateOptions::default()).await.unwrap_err()),
        "EXISTS"
    );
    c.destroy("a").await.unwrap();
    assert!(!c.exists("a").await.unwrap());
    assert_eq!(code(c.destroy("a").await.unwrap_err()), "NOSESSION");
}

#[tokio::test]
async fn create_with_class_data_timeout_and_info() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.create(
        "a",
        CreateOptions {
            class: Some(b"shop"),
            data: Some(b"blob"),
            timeout: Some(60),
            len: None,
        },
    )
    .await
    .unwrap();
    let info = c.info("a").await.unwrap();
    assert_eq!(info.class.as_deref(), Some("shop"));
    assert_eq!(info.timeout, 60);
    assert_eq!(info.ttl, 60);
    assert_eq!(info.data_bytes, 4);
    assert_eq!(info.lock, "none");
    assert_eq!(c.get_data("a").await.unwrap(), Bytes::from("blob"));
    assert_eq!(code(c.info("zz").await.unwrap_err()), "NOSESSION");
}

/// A class is listed by like an id, so it is bounded like one
/// (`max_id_len`, 256 by default), by CREATE and UNIQ alike.
#[tokio::test]
async fn a_class_longer_than_an_id_may_be_is_refused() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let class = vec![b'c'; 257];
    let opts = || CreateOptions {
        class: Some(&class),
        ..CreateOptions::default()
    };
    assert_eq!(code(c.create("a", opts()).await.unwrap_err()), "LIMIT");
    assert_eq!(code(c.uniq(opts()).await.unwrap_err()), "LIMIT");
    let fits = CreateOptions {
        class: Some(&class[..256]),
        ..CreateOptions::default()
    };
    c.create("a", fits).await.unwrap();
}

#[tokio::test]
async fn uniq_returns_fresh_urlsafe_ids() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let a = c.uniq(CreateOptions::default()).await.unwrap();
    let b = c
        .uniq(CreateOptions {
            len: Some(40),
            data: Some(b"x"),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_ne!(a, b);
    assert_eq!(a.len(), 32);
    assert_eq!(b.len(), 40);
    assert!(a
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'));
    assert_eq!(c.get_data(&b).await.unwrap(), Bytes::from("x"));
    let short = c
        .uniq(CreateOptions {
            len: Some(10),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code(short), "ERR");
}

#[tokio::test]
async fn count_list_scan_by_class() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    for i in 0..30 {
        let class: &[u8] = if i < 10 { b"admin" } else { b"user" };
        c.create(
            format!("s{i:02}"),
            CreateOptions {
                class: Some(class),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    assert_eq!(c.count(None).await.unwrap(), 30);
    assert_eq!(c.count(Some("admin")).await.unwrap(), 10);
    let mut admins = c.list(Some("admin")).await.unwrap();
    admins.sort();
    assert_eq!(
        admins,
        (0..10).map(|i| format!("s{i:02}")).collect::<Vec<_>>()
    );
    assert_eq!(c.list(None).await.unwrap().len(), 30);
    let (mut cursor, mut all) = (String::from("0"), Vec::new());
    loop {
        let (next, page) = c.scan(&cursor, 7).await.unwrap();
        assert!(page.len() <= 7);
        all.extend(page);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 30);
}

#[tokio::test]
async fn get_set_del_with_default() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.create("a", CreateOptions::default()).await.unwrap();
    assert_eq!(c.get("a", "x").await.unwrap(), None);
    assert_eq!(
        c.get_or("a", "x", "dflt").await.unwrap(),
        Bytes::from("dflt")
    );
    c.set("a", "x", "1").await.unwrap();
    assert_eq!(c.get("a", "x").await.unwrap(), Some(Bytes::from("1")));
    assert!(c.del("a", "x").await.unwrap());
    assert!(!c.del("a", "x").await.unwrap());
    assert_eq!(
        code(c.set("nope", "x", "1").await.unwrap_err()),
        "NOSESSION"
    );
    assert_eq!(code(c.get("nope", "x").await.unwrap_err()), "NOSESSION");
}

#[tokio::test]
async fn getall_setall_binary_safe() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.create("a", CreateOptions::default()).await.unwrap();
    c.set_all("a", &[(b"k1", b"v\r\n1"), (b"k2", b"\0\xff")])
        .await
        .unwrap();
    assert_eq!(
        c.get_all("a").await.unwrap(),
        vec![
            (Bytes::from("k1"), Bytes::from("v\r\n1")),
            (Bytes::from("k2"), Bytes::from(&b"\0\xff"[..]))
        ]
    );
}

#[tokio::test]
async fn getdata_setdata_large_blob() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.create("a", CreateOptions::default()).await.unwrap();
    let blob: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    c.set_data("a", &blob).await.unwrap();
    assert_eq!(c.get_data("a").await.unwrap(), Bytes::from(blob));
}

#[tokio::test]
async fn inc_is_atomic_and_checked() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.create("a", CreateOptions::default()).await.unwrap();
    assert_eq!(c.inc("a", "n", 5).await.unwrap(), 5);
    assert_eq!(c.inc("a", "n", -7).await.unwrap(), -2);
    c.set("a", "t", "abc").await.unwrap();
    let e = c.inc("a", "t", 1).await.unwrap_err();
    assert_eq!(code(e), "ERR");
}

#[tokio::test]
async fn find_and_listvar() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    for (id, user) in [("a", "42"), ("b", "42"), ("c", "7")] {
        c.create(id, CreateOptions::default()).await.unwrap();
        c.set(id, "user", user).await.unwrap();
    }
    let mut found = c.find("user", "42").await.unwrap();
    found.sort();
    assert_eq!(found, ["a", "b"]);
    assert!(c.find("user", "99").await.unwrap().is_empty());
    let mut all = c.list_var("user").await.unwrap();
    all.sort();
    assert_eq!(
        all,
        vec![
            ("a".into(), Bytes::from("42")),
            ("b".into(), Bytes::from("42")),
            ("c".into(), Bytes::from("7"))
        ]
    );
}

#[tokio::test]
async fn timeout_ttl_touch() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.create("a", CreateOptions::default()).await.unwrap();
    assert_eq!(c.timeout("a").await.unwrap(), 1440);
    c.set_timeout("a", 100).await.unwrap();
    assert_eq!(c.timeout("a").await.unwrap(), 100);
    assert_eq!(c.ttl("a").await.unwrap(), 100);
    c.touch("a").await.unwrap();
    assert_eq!(code(c.set_timeout("a", 0).await.unwrap_err()), "ERR");
    assert_eq!(code(c.touch("zz").await.unwrap_err()), "NOSESSION");
}

#[tokio::test]
async fn lock_unlock_commit() {
    let s = TestServer::start().await;
    let (mut a, mut b) = (s.client().await, s.client().await);
    a.create("s", CreateOptions::default()).await.unwrap();
    let k = a.lock("s", LockOptions::default()).await.unwrap();
    assert_eq!(a.info("s").await.unwrap().lock, "write");
    let busy = b.lock("s", LockOptions::default()).await.unwrap_err();
    assert_eq!(code(busy), "LOCKED");
    a.commit("s", k).await.unwrap();
    let rk = b
        .lock(
            "s",
            LockOptions {
                mode: LockMode::Read,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(rk > k);
    a.unlock("s", k).await.unwrap();
    assert_eq!(code(a.unlock("s", k).await.unwrap_err()), "STALEKEY");
    b.unlock("s", rk).await.unwrap();
    assert_eq!(
        code(a.lock("nope", LockOptions::default()).await.unwrap_err()),
        "NOSESSION"
    );
}

#[tokio::test]
async fn open_and_close_in_one_round_trip() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    assert_eq!(
        code(c.open("n", LockOptions::default()).await.unwrap_err()),
        "NOSESSION"
    );
    let o = c
        .open(
            "n",
            LockOptions {
                create: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(o.data.is_empty() && o.vars.is_empty());
    c.close("n", o.key, Some(b"payload"), &[(b"user", b"42")])
        .await
        .unwrap();
    let o2 = c.open("n", LockOptions::default()).await.unwrap();
    assert_eq!(o2.data, Bytes::from("payload"));
    assert_eq!(o2.vars, vec![(Bytes::from("user"), Bytes::from("42"))]);
    assert!(o2.key > o.key);
    // The first key is stale now: the write is refused and nothing changes.
    let e = c.close("n", o.key, Some(b"stale"), &[]).await.unwrap_err();
    assert_eq!(code(e), "STALEKEY");
    c.close("n", o2.key, None, &[]).await.unwrap();
    assert_eq!(c.get_data("n").await.unwrap(), Bytes::from("payload"));
}

#[tokio::test]
async fn regenerate_renames_atomically() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.create("old", CreateOptions::default()).await.unwrap();
    c.set("old", "user", "42").await.unwrap();
    let new = c.regenerate("old", None).await.unwrap();
    assert_eq!(new.len(), 32);
    assert!(!c.exists("old").await.unwrap());
    assert_eq!(c.get(&new, "user").await.unwrap(), Some(Bytes::from("42")));
    let chosen = c.regenerate(&new, Some(b"mine")).await.unwrap();
    assert_eq!(chosen, "mine");
    c.create("other", CreateOptions::default()).await.unwrap();
    assert_eq!(
        code(c.regenerate("mine", Some(b"other")).await.unwrap_err()),
        "EXISTS"
    );
    assert_eq!(
        code(c.regenerate("gone", None).await.unwrap_err()),
        "NOSESSION"
    );
}

#[tokio::test]
async fn randstr_ping_echo() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let r = c.randstr(50).await.unwrap();
    assert_eq!(r.len(), 50);
    assert_ne!(r, c.randstr(50).await.unwrap());
    assert!(c.ping().await.unwrap());
    let echo = c.call(&["ECHO", "hi there"]).await.unwrap();
    assert_eq!(
        echo,
        sessiond_client::RespValue::Bulk(Bytes::from("hi there"))
    );
}

#[tokio::test]
async fn info_reports_sessions_and_clients() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.create("a", CreateOptions::default()).await.unwrap();
    let sessiond_client::RespValue::Bulk(text) = c.call(&["INFO"]).await.unwrap() else {
        panic!("INFO is a bulk string")
    };
    let text = String::from_utf8(text.to_vec()).unwrap();
    assert!(text.contains("# Server\r\n"), "{text}");
    assert!(text.contains("\r\nsessions:1\r\n"), "{text}");
    assert!(text.contains("connected_clients:1"), "{text}");
}

#[tokio::test]
async fn info_has_redis_shaped_sections_and_picks_them_by_name() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.create("a", CreateOptions::default()).await.unwrap();
    c.create("b", CreateOptions::default()).await.unwrap();
    assert!(c.call(&["SESSION.GETDATA", "nope"]).await.is_err());
    let text = |v: sessiond_client::RespValue| match v {
        sessiond_client::RespValue::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
        other => panic!("INFO is a bulk string: {other:?}"),
    };
    let all = text(c.call(&["INFO"]).await.unwrap());
    for section in [
        "Server",
        "Clients",
        "Memory",
        "Persistence",
        "Stats",
        "Sessions",
        "Keyspace",
    ] {
        assert!(
            all.contains(&format!("# {section}\r\n")),
            "{section}: {all}"
        );
    }
    assert!(!all.contains("# Commandstats"), "not by default, as Redis");
    assert!(
        all.contains("\r\ndb0:keys=2,expires=2,avg_ttl=0\r\n"),
        "{all}"
    );
    assert!(all.contains("\r\nmaxmemory_policy:noeviction\r\n"), "{all}");
    let keyspace = text(c.call(&["INFO", "keyspace"]).await.unwrap());
    assert_eq!(keyspace, "# Keyspace\r\ndb0:keys=2,expires=2,avg_ttl=0\r\n");
    let some = text(
        c.call(&["INFO", "commandstats", "ERRORSTATS"])
            .await
            .unwrap(),
    );
    assert!(some.contains("\r\ncmdstat_create:calls=2\r\n"), "{some}");
    assert!(
        some.contains("\r\nerrorstat_NOSESSION:count=1\r\n"),
        "{some}"
    );
    assert!(!some.contains("# Server"), "{some}");
    let every = text(c.call(&["INFO", "all"]).await.unwrap());
    assert!(every.contains("# Contention\r\n") && every.contains("# Server\r\n"));
    s.stop().await;
}
