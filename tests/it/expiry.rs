//! Sliding expiry with the real clock and short timeouts.

use crate::common;

use std::time::Duration;

use common::TestServer;
use sessiond_client::CreateOptions;

fn timeout(s: u64) -> CreateOptions<'static> {
    CreateOptions {
        timeout: Some(s),
        ..Default::default()
    }
}

#[tokio::test]
async fn idle_sessions_expire_and_are_reaped_without_access() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    for i in 0..50 {
        c.create(format!("short{i}"), timeout(1)).await.unwrap();
    }
    c.create("long", timeout(60)).await.unwrap();
    c.set("short0", "user", "42").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // COUNT and FIND must not see them, whether or not the reaper ran yet.
    assert_eq!(c.count(None).await.unwrap(), 1);
    assert!(c.find("user", "42").await.unwrap().is_empty());
    assert!(!c.exists("short1").await.unwrap());
    assert_eq!(
        c.get("short2", "x").await.unwrap_err().code(),
        Some("NOSESSION")
    );
    // The reaper removes them without anyone asking.
    let sessiond_client::RespValue::Bulk(info) = c.call(&["INFO"]).await.unwrap() else {
        panic!()
    };
    let info = String::from_utf8_lossy(&info).to_string();
    assert!(info.contains("expired_sessions:50"), "{info}");
}

#[tokio::test]
async fn access_slides_the_deadline() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.create("s", timeout(1)).await.unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.get("s", "x").await.unwrap();
    }
    assert!(
        c.exists("s").await.unwrap(),
        "2 s of activity on a 1 s timeout"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!c.exists("s").await.unwrap());
}
