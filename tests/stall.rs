//! Cross-session commands over 100,000 sessions must not stall anyone
//! else: while one client runs LIST, FIND, LISTVAR, KEYS, SCAN and the
//! HTTP find against the real binary on one request worker, another
//! client's PING every 10 ms is answered within 50 ms. Alone in its test
//! binary, so no other test competes for the two cores. (The
//! 1,000,000-session version with its figures: BENCHMARKS.md.)

// Only the binary-starting helpers of the integration tests (tests/it).
#[path = "it/common/process.rs"]
#[allow(dead_code)]
mod process;

use std::time::{Duration, Instant};

use sessiond_client::RespValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SESSIONS: usize = 100_000;

async fn load(addr: std::net::SocketAddr) {
    let mut c = sessiond_client::Client::connect(addr).await.unwrap();
    for chunk in (0..SESSIONS).collect::<Vec<_>>().chunks(5_000) {
        let cmds: Vec<Vec<String>> = chunk
            .iter()
            .flat_map(|i| {
                let id = format!("sess{i:07}");
                [
                    vec!["SESSION.CREATE".into(), id.clone()],
                    vec![
                        "SESSION.SET".into(),
                        id,
                        "user_id".into(),
                        (i % 1000).to_string(),
                    ],
                ]
            })
            .collect();
        for r in c.pipeline(&cmds).await.unwrap() {
            assert!(!matches!(r, RespValue::Error(_)), "{r:?}");
        }
    }
}

/// PINGs every 10 ms from a thread of its own (so the test's own work on
/// big replies cannot delay it) until `stop`; the worst wait for a PONG.
fn pinger(
    addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Duration> {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_nodelay(true).unwrap();
        let mut worst = Duration::ZERO;
        let mut buf = [0u8; 7];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let t = Instant::now();
            c.write_all(b"PING\r\n").unwrap();
            c.read_exact(&mut buf).unwrap();
            worst = worst.max(t.elapsed());
            std::thread::sleep(Duration::from_millis(10));
        }
        worst
    })
}

/// The real binary on one request worker (`--threads 1`): a walk that ran
/// on it would stall every other connection for its whole length.
#[tokio::test]
async fn heavy_commands_do_not_stall_other_clients() {
    let http_port = process::free_port().to_string();
    let http = format!("127.0.0.1:{http_port}");
    // Stopped however the test ends (`Running` kills it on drop).
    let (_server, port) = process::start_binary(&[
        "--storage",
        "memory",
        "--threads",
        "1",
        "--listen-http",
        &http,
    ]);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let http: std::net::SocketAddr = http.parse().unwrap();
    load(addr).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ping = pinger(addr, stop.clone());
    let ran = {
        let mut c = sessiond_client::Client::connect(addr).await.unwrap();
        let mut ran = Vec::new();
        for cmd in [
            &["SESSION.LIST"][..],
            &["SESSION.LISTVAR", "user_id"],
            &["SESSION.FIND", "user_id", "42"],
            &["SESSION.FIND", "nothing", "x"],
            &["SESSION.COUNT"],
            &["KEYS", "*"],
            &["KEYS", "nomatch*"],
            &["SCAN", "0", "COUNT", "10000"],
            &["SCAN", "0", "MATCH", "nomatch*", "COUNT", "10000"],
            &["SESSION.SCAN", "0", "COUNT", "10000", "CLASS", "nobody"],
        ] {
            let t = Instant::now();
            let r = c.call(cmd).await.unwrap();
            ran.push((cmd.join(" "), t.elapsed()));
            match (cmd[0], &r) {
                ("SESSION.LIST", RespValue::Array(ids)) => assert_eq!(ids.len(), SESSIONS),
                ("SESSION.FIND", RespValue::Array(ids)) if cmd[1] == "user_id" => {
                    assert_eq!(ids.len(), SESSIONS / 1000)
                }
                ("SCAN", RespValue::Array(page)) => {
                    // Bounded work: a page, not the whole store.
                    let RespValue::Array(keys) = &page[1] else {
                        panic!()
                    };
                    assert!(keys.len() <= 10_000 * 2, "{}", keys.len());
                    assert_ne!(page[0], RespValue::Bulk("0".into()));
                }
                _ => {}
            }
        }
        // The HTTP door's find, as the dashboard asks it.
        let mut h = TcpStream::connect(http).await.unwrap();
        h.write_all(b"GET /api/v1/find?var=user_id&value=7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        h.read_to_string(&mut body).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        ran
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let worst = ping.join().unwrap();
    eprintln!("worst PING wait {worst:?} while: {ran:?}");
    assert!(
        worst <= Duration::from_millis(50),
        "a PING waited {worst:?} while these ran: {ran:?}"
    );
}
