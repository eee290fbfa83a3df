//! The memcached door over TCP: raw text and binary bytes, the session it
//! shares with the native door, its lock keys, durability, and libmemcached's
//! own conformance test (`memccapable`) against the real binary.

use crate::common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::process::{free_port, signal, start_binary, start_peer, Peer};
use common::{durable, TempDir, TestServer};
use sessiond_client::LockOptions;
use sessiond_proto::memcache::binary_request;
use sessiond_server::Fsync;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `bytes`, then reads until the reply ends with `until`.
async fn send(c: &mut TcpStream, bytes: &[u8], until: &[u8]) -> Vec<u8> {
    c.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(until) {
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no reply ending {until:?}; got {:?}",
                    String::from_utf8_lossy(&got)
                )
            })
            .unwrap();
        assert!(n > 0, "closed; got {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

async fn text(c: &mut TcpStream, bytes: &str, until: &str) -> String {
    String::from_utf8(send(c, bytes.as_bytes(), until.as_bytes()).await).unwrap()
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

/// A deliberate difference (docs/protocol-memcache.md): memcached stores
/// under a key holding a control byte; sessiond refuses the line, as a key
/// is a session id and an id never holds one, and the connection goes on
/// (the data line that follows is then no command).
#[tokio::test]
async fn a_key_with_a_control_byte_is_refused_where_memcached_takes_it() {
    let request = "set a\x10b 0 0 1\r\nx\r\nget ok\r\n";
    if let Some((_memcached, port)) = start_peer(Peer::Memcached) {
        let mut real = connect(SocketAddr::from(([127, 0, 0, 1], port))).await;
        assert_eq!(
            text(&mut real, request, "END\r\n").await,
            "STORED\r\nEND\r\n"
        );
    }
    let s = TestServer::start().await;
    let mut m = connect(s.memcache).await;
    assert_eq!(
        text(&mut m, request, "END\r\n").await,
        "CLIENT_ERROR bad command line format\r\nERROR\r\nEND\r\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_protocol_items_are_sessions() {
    let s = TestServer::start().await;
    let mut m = connect(s.memcache).await;
    let mut c = s.client().await;

    assert_eq!(
        text(
            &mut m,
            "set memc.sess.key.abc 7 300 10\r\nuser|i:42;\r\n",
            "\r\n"
        )
        .await,
        "STORED\r\n"
    );
    // The prefix strips to the id; PHP-encoded data is visible as variables.
    assert_eq!(&c.get_data("abc").await.unwrap()[..], b"user|i:42;");
    assert_eq!(
        c.get("abc", "user").await.unwrap().as_deref(),
        Some(&b"42"[..])
    );
    assert_eq!(c.timeout("abc").await.unwrap(), 300);
    assert_eq!(
        text(&mut m, "get abc memc.sess.key.abc missing\r\n", "END\r\n").await,
        "VALUE abc 7 10\r\nuser|i:42;\r\nVALUE memc.sess.key.abc 7 10\r\nuser|i:42;\r\nEND\r\n"
    );

    // gets/cas: a stale CAS is EXISTS, the current one stores.
    let gets = text(&mut m, "gets abc\r\n", "END\r\n").await;
    let cas: u64 = gets
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        text(
            &mut m,
            &format!("cas abc 0 0 1 {}\r\nx\r\n", cas + 1000),
            "\r\n"
        )
        .await,
        "EXISTS\r\n"
    );
    assert_eq!(
        text(&mut m, &format!("cas abc 0 0 1 {cas}\r\nx\r\n"), "\r\n").await,
        "STORED\r\n"
    );
    assert_eq!(
        text(&mut m, "cas nope 0 0 1 1\r\nx\r\n", "\r\n").await,
        "NOT_FOUND\r\n"
    );

    // add/replace/append/prepend/incr/decr/touch/delete.
    assert_eq!(
        text(&mut m, "add abc 0 0 1\r\ny\r\n", "\r\n").await,
        "NOT_STORED\r\n"
    );
    assert_eq!(
        text(&mut m, "replace nope 0 0 1\r\ny\r\n", "\r\n").await,
        "NOT_STORED\r\n"
    );
    assert_eq!(
        text(&mut m, "append abc 0 0 1\r\n>\r\n", "\r\n").await,
        "STORED\r\n"
    );
    assert_eq!(
        text(&mut m, "prepend abc 0 0 1\r\n<\r\n", "\r\n").await,
        "STORED\r\n"
    );
    assert_eq!(&c.get_data("abc").await.unwrap()[..], b"<x>");
    assert_eq!(
        text(&mut m, "set n 0 0 2\r\n10\r\nincr n 5\r\n", "15\r\n").await,
        "STORED\r\n15\r\n"
    );
    assert_eq!(text(&mut m, "decr n 100\r\n", "\r\n").await, "0\r\n");
    assert_eq!(
        text(&mut m, "incr abc 1\r\n", "\r\n").await,
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    );
    assert_eq!(
        text(&mut m, "touch abc 100\r\n", "\r\n").await,
        "TOUCHED\r\n"
    );
    assert_eq!(c.timeout("abc").await.unwrap(), 100);
    // exptime 0 (memcached's "never") is the default session timeout.
    assert_eq!(text(&mut m, "touch abc 0\r\n", "\r\n").await, "TOUCHED\r\n");
    assert_eq!(c.timeout("abc").await.unwrap(), 1440);
    assert_eq!(
        text(&mut m, "delete abc\r\ndelete abc\r\n", "NOT_FOUND\r\n").await,
        "DELETED\r\nNOT_FOUND\r\n"
    );
    assert!(!c.exists("abc").await.unwrap());

    // noreply stays silent; a pipeline is answered in order.
    assert_eq!(
        text(
            &mut m,
            "set q 0 0 1 noreply\r\na\r\ndelete zz noreply\r\nget q\r\n",
            "END\r\n"
        )
        .await,
        "VALUE q 0 1\r\na\r\nEND\r\n"
    );
    // flush_all is refused unless allowed.
    assert!(text(&mut m, "flush_all\r\n", "\r\n")
        .await
        .starts_with("CLIENT_ERROR flushing every session is disabled"));
    assert!(c.exists("q").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_answered_and_the_connection_goes_on() {
    let s = TestServer::start().await;
    let mut m = connect(s.memcache).await;
    assert_eq!(text(&mut m, "bogus\r\n", "\r\n").await, "ERROR\r\n");
    assert_eq!(
        text(&mut m, "set k notanumber 0 1\r\n", "\r\n").await,
        "CLIENT_ERROR bad command line format\r\n"
    );
    // An oversized value is refused and its bytes skipped, even when they
    // arrive in pieces.
    let big = 17 * 1024 * 1024;
    m.write_all(format!("set big 0 0 {big}\r\n").as_bytes())
        .await
        .unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..17 {
        m.write_all(&chunk).await.unwrap();
    }
    assert_eq!(
        text(&mut m, "\r\nget big\r\n", "END\r\n").await,
        "SERVER_ERROR object too large for cache\r\nEND\r\n"
    );
    let mut c = s.client().await;
    assert!(c.ping().await.unwrap());
    // A line with no end, longer than any command may be, ends the connection.
    let mut m2 = connect(s.memcache).await;
    let _ = m2.write_all(&vec![b'g'; 70 * 1024]).await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), m2.read_to_end(&mut rest)).await;
    assert!(String::from_utf8_lossy(&rest).starts_with("CLIENT_ERROR line longer than"));
    assert_eq!(
        text(&mut m, "version\r\n", "\r\n").await.split(' ').next(),
        Some("VERSION")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_quiet_gets_answer_only_hits() {
    let s = TestServer::start().await;
    let mut m = connect(s.memcache).await;
    let mut extras = Vec::new();
    extras.extend_from_slice(&3u32.to_be_bytes());
    extras.extend_from_slice(&0u32.to_be_bytes());
    let mut batch = Vec::new();
    batch.extend_from_slice(&binary_request(0x11, 1, 0, &extras, b"a", b"one")); // setq
    batch.extend_from_slice(&binary_request(0x0d, 2, 0, &[], b"a", b"")); // getkq hit
    batch.extend_from_slice(&binary_request(0x0d, 3, 0, &[], b"zz", b"")); // getkq miss
    batch.extend_from_slice(&binary_request(0x0a, 4, 0, &[], b"", b"")); // noop
    m.write_all(&batch).await.unwrap();
    let mut got = vec![0u8; 24 + 4 + 1 + 3 + 24];
    tokio::time::timeout(Duration::from_secs(5), m.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    // The hit: opaque 2, flags 3, key and value.
    assert_eq!(got[0], 0x81);
    assert_eq!(got[1], 0x0d);
    assert_eq!(&got[12..16], &2u32.to_be_bytes());
    assert_eq!(&got[24..32], b"\0\0\0\x03aone");
    // Then straight to the noop: the quiet set and the miss said nothing.
    assert_eq!(got[32 + 1], 0x0a);
    assert_eq!(&got[32 + 12..32 + 16], &4u32.to_be_bytes());
    let mut c = s.client().await;
    assert_eq!(&c.get_data("a").await.unwrap()[..], b"one");
    // SASL waits for users (issue 6): answered "Unknown command", and the
    // connection goes on.
    m.write_all(&binary_request(0x20, 9, 0, &[], b"", b""))
        .await
        .unwrap();
    let mut head = [0u8; 24];
    m.read_exact(&mut head).await.unwrap();
    assert_eq!(&head[6..8], &0x0081u16.to_be_bytes());
    let mut body = vec![0u8; u32::from_be_bytes([head[8], head[9], head[10], head[11]]) as usize];
    m.read_exact(&mut body).await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("SASL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_keys_are_the_session_lock() {
    let s = TestServer::start().await;
    let mut m = connect(s.memcache).await;
    let mut c = s.client().await;
    let try_once = LockOptions::default();
    assert_eq!(
        text(&mut m, "set s 0 0 1\r\nx\r\n", "\r\n").await,
        "STORED\r\n"
    );
    // php-memcached's lock excludes a native lock, and the other way round.
    assert_eq!(
        text(&mut m, "add memc.sess.key.lock.s 0 0 1\r\n1\r\n", "\r\n").await,
        "STORED\r\n"
    );
    assert_eq!(
        text(&mut m, "add lock.s 0 0 1\r\n1\r\n", "\r\n").await,
        "NOT_STORED\r\n"
    );
    assert_eq!(
        text(&mut m, "get lock.s\r\n", "END\r\n").await,
        "VALUE lock.s 0 1\r\n1\r\nEND\r\n"
    );
    // set takes the lock like add: a held lock is never overwritten.
    assert_eq!(
        text(&mut m, "set lock.s 0 0 1\r\n2\r\n", "\r\n").await,
        "NOT_STORED\r\n"
    );
    assert_eq!(
        text(&mut m, "incr lock.s 1\r\n", "\r\n").await,
        "CLIENT_ERROR a lock.<id> key takes only add, get and delete\r\n"
    );
    let err = c.lock("s", try_once).await.unwrap_err().to_string();
    assert!(err.starts_with("LOCKED"), "{err}");
    assert_eq!(
        text(&mut m, "delete lock.s\r\n", "\r\n").await,
        "DELETED\r\n"
    );
    let key = c.lock("s", try_once).await.unwrap();
    assert_eq!(
        text(&mut m, "add lock.s 0 0 1\r\n1\r\n", "\r\n").await,
        "NOT_STORED\r\n"
    );
    c.unlock("s", key).await.unwrap();

    // A lock taken here goes when its connection does (a PHP process that
    // died), not at the end of its lease.
    assert_eq!(
        text(&mut m, "add lock.s 0 30 1\r\n1\r\n", "\r\n").await,
        "STORED\r\n"
    );
    drop(m);
    let key = c
        .lock(
            "s",
            LockOptions {
                wait_ms: 2_000,
                ..LockOptions::default()
            },
        )
        .await
        .unwrap();
    c.unlock("s", key).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_survive_a_restart_with_their_flags() {
    let dir = TempDir::new("memcache-restart");
    let s = TestServer::start_with(durable(&dir.0, Fsync::Always)).await;
    let mut m = connect(s.memcache).await;
    assert_eq!(
        text(&mut m, "set k 42 600 5\r\nhello\r\n", "\r\n").await,
        "STORED\r\n"
    );
    assert_eq!(
        text(&mut m, "set k 43 600 5\r\nhello\r\n", "\r\n").await,
        "STORED\r\n"
    );
    drop(m);
    s.stop().await;
    let s = TestServer::start_with(durable(&dir.0, Fsync::Always)).await;
    let mut m = connect(s.memcache).await;
    assert_eq!(
        text(&mut m, "get k\r\n", "END\r\n").await,
        "VALUE k 43 5\r\nhello\r\nEND\r\n"
    );
}

/// Whether a libmemcached tool is here; in CI it must be.
fn tool_available(name: &str) -> bool {
    common::process::tool_available(
        Command::new("sh").args(["-c", &format!("command -v {name}")]),
        &format!("{name} (libmemcached-tools)"),
    )
}

#[test]
fn memccapable_passes_against_the_binary() {
    if !tool_available("memccapable") {
        return;
    }
    let mc_port = free_port().to_string();
    let listen = format!("127.0.0.1:{mc_port}");
    let (mut child, _) = start_binary(&[
        "--storage",
        "memory",
        "--listen-memcache",
        &listen,
        "--allow-flush",
    ]);
    let out = Command::new("memccapable")
        .args(["-h", "127.0.0.1", "-p", &mc_port, "-t", "5"])
        .output()
        .expect("run memccapable");
    signal(&child, "-TERM");
    let _ = child.wait();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    assert!(report.contains("All tests passed"), "{report}");
    assert!(!report.contains("[FAIL]"), "{report}");
}

#[test]
fn libmemcached_tools_round_trip_in_both_protocols() {
    if !tool_available("memccp") {
        return;
    }
    let mc_port = free_port();
    let listen = format!("127.0.0.1:{mc_port}");
    let (mut child, _) = start_binary(&["--storage", "memory", "--listen-memcache", &listen]);
    let dir = TempDir::new("memccp");
    let file = dir.0.join("greeting");
    std::fs::write(&file, "hello from memccp").unwrap();
    let servers = format!("--servers={listen}");
    for binary in [false, true] {
        let mut args = vec![servers.as_str()];
        if binary {
            args.push("--binary");
        }
        let cp = Command::new("memccp")
            .args(&args)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            cp.status.success(),
            "memccp: {}",
            String::from_utf8_lossy(&cp.stderr)
        );
        let cat = Command::new("memccat")
            .args(&args)
            .arg("greeting")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&cat.stdout).trim(),
            "hello from memccp"
        );
        let rm = Command::new("memcrm")
            .args(&args)
            .arg("greeting")
            .output()
            .unwrap();
        assert!(rm.status.success());
        let exist = Command::new("memcexist")
            .args(&args)
            .arg("greeting")
            .status()
            .unwrap();
        assert!(!exist.success(), "gone after memcrm");
    }
    let stat = Command::new("memcstat").arg(&servers).output().unwrap();
    assert!(String::from_utf8_lossy(&stat.stdout).contains("curr_items"));
    signal(&child, "-TERM");
    let _ = child.wait();
}
