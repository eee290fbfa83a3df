//! Sliding expiry through the real server, on a manual clock: the test
//! moves time instead of sleeping (the upkeep tick still runs every
//! `tick_ms` of real time, and reaps by the engine's clock).

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use sessiond_client::CreateOptions;
use sessiond_core::ManualClock;
use sessiond_server::{Config, Storage};

async fn on_a_manual_clock() -> (TestServer, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let config = Config {
        storage: Storage::Memory,
        ..Config::default()
    };
    (
        TestServer::start_with_clock(config, clock.clone()).await,
        clock,
    )
}

/// The server's INFO, as text.
async fn info(c: &mut sessiond_client::Client) -> String {
    let r = c.call(&["INFO"]).await.unwrap();
    let sessiond_client::RespValue::Bulk(info) = r else {
        panic!("{r:?}")
    };
    String::from_utf8_lossy(&info).to_string()
}

fn timeout(s: u64) -> CreateOptions<'static> {
    CreateOptions {
        timeout: Some(s),
        ..Default::default()
    }
}

#[tokio::test]
async fn idle_sessions_expire_and_are_reaped_without_access() {
    let (s, clock) = on_a_manual_clock().await;
    let mut c = s.client().await;
    for i in 0..50 {
        c.create(format!("short{i}"), timeout(1)).await.unwrap();
    }
    c.create("long", timeout(60)).await.unwrap();
    c.set("short0", "user", "42").await.unwrap();
    clock.advance(1300);
    // COUNT and FIND must not see them, whether or not the reaper ran yet.
    assert_eq!(c.count(None).await.unwrap(), 1);
    assert!(c.find("user", "42").await.unwrap().is_empty());
    assert!(!c.exists("short1").await.unwrap());
    assert_eq!(
        c.get("short2", "x").await.unwrap_err().code(),
        Some("NOSESSION")
    );
    // The reaper removes them without anyone asking, on its next tick.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let info = info(&mut c).await;
        if info.contains("expired_sessions:50") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never reaped: {info}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn access_slides_the_deadline() {
    let (s, clock) = on_a_manual_clock().await;
    let mut c = s.client().await;
    c.create("s", timeout(1)).await.unwrap();
    for _ in 0..4 {
        clock.advance(500);
        c.get("s", "x").await.unwrap();
    }
    assert!(
        c.exists("s").await.unwrap(),
        "2 s of activity on a 1 s timeout"
    );
    clock.advance(1200);
    assert!(!c.exists("s").await.unwrap());
}
