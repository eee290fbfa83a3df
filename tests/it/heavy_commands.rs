//! Cross-session commands are bounded: a listing past `max_reply_items`
//! points to its cursor form, and clients that ask for big replies and
//! never read them are cut off. (That they do not stall other clients:
//! tests/stall.rs.)

use crate::common;

use std::time::{Duration, Instant};

use common::TestServer;
use sessiond_client::RespValue;
use sessiond_server::{Config, LimitsConfig, Storage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_listing_past_max_reply_items_points_to_the_cursor_form() {
    let s = TestServer::start_with(Config {
        storage: Storage::Memory,
        limits: LimitsConfig {
            max_reply_items: 50,
            ..LimitsConfig::default()
        },
        ..Config::default()
    })
    .await;
    let mut c = s.client().await;
    for i in 0..60 {
        c.call(&["SESSION.CREATE", &format!("s{i}")]).await.unwrap();
        c.call(&["SESSION.SET", &format!("s{i}"), "user", "42"])
            .await
            .unwrap();
    }
    let err = c.call(&["SESSION.FIND", "user", "42"]).await.unwrap_err();
    assert!(
        err.to_string().contains("SESSION.FIND name value CURSOR"),
        "{err}"
    );
    let err = c.call(&["KEYS", "*"]).await.unwrap_err();
    assert!(err.to_string().starts_with("LIMIT more than 50"), "{err}");
    // The cursor form pages through all 60.
    let mut cursor = "0".to_string();
    let mut seen = 0;
    loop {
        let r = c
            .call(&[
                "SESSION.FIND",
                "user",
                "42",
                "CURSOR",
                &cursor,
                "COUNT",
                "25",
            ])
            .await
            .unwrap();
        let RespValue::Array(page) = r else {
            panic!("{r:?}")
        };
        let (RespValue::Bulk(next), RespValue::Array(ids)) = (&page[0], &page[1]) else {
            panic!("{page:?}")
        };
        assert!(ids.len() <= 25);
        seen += ids.len();
        cursor = String::from_utf8_lossy(next).into_owned();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen, 60);
}

#[tokio::test]
async fn clients_that_never_read_big_replies_are_cut_off() {
    if common::on_cluster_pass(
        "clients_that_never_read_big_replies_are_cut_off",
        "the output bound is the doors' and the same on every backend; 200 listings of \
         20,000 sessions from the database take over a minute on this machine",
    ) {
        return;
    }
    let s = TestServer::start_with(Config {
        storage: Storage::Memory,
        limits: LimitsConfig {
            max_output_buffer: 256 * 1024,
            ..LimitsConfig::default()
        },
        ..Config::default()
    })
    .await;
    let mut c = s.client().await;
    let cmds: Vec<Vec<String>> = (0..20_000)
        .map(|i| vec!["SESSION.CREATE".into(), format!("session-id-{i:010}")])
        .collect();
    c.pipeline(&cmds).await.unwrap();
    // Twenty clients ask for ~500 KB listings, ten times, and never read.
    let mut hogs = Vec::new();
    for _ in 0..20 {
        let mut t = TcpStream::connect(s.addr).await.unwrap();
        t.write_all(&b"SESSION.LIST\r\n".repeat(10)).await.unwrap();
        hogs.push(t);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut h = TcpStream::connect(s.http).await.unwrap();
        h.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut m = String::new();
        h.read_to_string(&mut m).await.unwrap();
        if m.contains("sessiond_output_limit_disconnects_total{door=\"resp\"} 20") {
            break;
        }
        assert!(Instant::now() < deadline, "not all cut off: {m}");
        // Everyone else is served meanwhile.
        let t = Instant::now();
        assert!(c.ping().await.unwrap());
        assert!(t.elapsed() < Duration::from_millis(500));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(hogs);
}
