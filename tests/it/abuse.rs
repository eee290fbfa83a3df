//! Clients that misbehave on purpose: too many connections, requests sent
//! half and then left, a byte at a time, replies never read, connections
//! left idle. Each is cut off by its limit with a clear answer where one can
//! be given, and a well-behaved client is served all along.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::TestServer;
use sessiond_server::{Config, LimitsConfig, Storage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn config(limits: LimitsConfig) -> Config {
    Config {
        storage: Storage::Memory,
        limits,
        ..Config::default()
    }
}

/// A connection to `to` from the loopback address `from` (all of
/// 127.0.0.0/8 is loopback on Linux, so tests can be several clients).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(to).await.unwrap()
}

/// Sends PING and expects PONG, within a second.
async fn ping(stream: &mut TcpStream) {
    stream.write_all(b"PING\r\n").await.unwrap();
    let mut buf = [0u8; 7];
    tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut buf))
        .await
        .expect("PONG in time")
        .expect("PONG");
    assert_eq!(&buf, b"+PONG\r\n");
}

/// Everything the server sends until it closes the connection; fails if
/// it is still open after `within`.
async fn until_closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut got))
        .await
        .expect("the server closes the connection in time")
        .expect("read");
    got
}

/// An INFO field of the server, read over a fresh connection.
async fn info_field(addr: SocketAddr, name: &str) -> String {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"INFO\r\n").await.unwrap();
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    let needle = format!("{name}:");
    loop {
        let n = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf))
            .await
            .expect("INFO in time")
            .unwrap();
        assert!(n > 0, "closed before INFO was whole");
        text.extend_from_slice(&buf[..n]);
        let s = String::from_utf8_lossy(&text);
        if let Some(at) = s.find(&needle) {
            if let Some(end) = s[at..].find("\r\n") {
                return s[at + needle.len()..at + end].to_string();
            }
        }
    }
}

#[tokio::test]
async fn connections_over_a_limit_are_refused_with_a_reason_and_the_others_go_on() {
    let s = TestServer::start_with(config(LimitsConfig {
        max_connections: 4,
        max_connections_per_ip: 3,
        ..LimitsConfig::default()
    }))
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut c = connect_from([127, 0, 0, 1], s.addr).await;
        ping(&mut c).await;
        open.push(c);
    }
    // A fourth from the same address: refused, in the door's idiom.
    let mut c = connect_from([127, 0, 0, 1], s.addr).await;
    let got = until_closed(&mut c, Duration::from_secs(2)).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-ERR max number of clients from this address reached\r\n"
    );
    let mut c = connect_from([127, 0, 0, 1], s.memcache).await;
    let got = until_closed(&mut c, Duration::from_secs(2)).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "SERVER_ERROR max number of clients from this address reached\r\n"
    );
    // Another address still has room under the total...
    let mut fourth = connect_from([127, 0, 0, 2], s.addr).await;
    ping(&mut fourth).await;
    // ...until the total is reached.
    let mut c = connect_from([127, 0, 0, 3], s.addr).await;
    let got = until_closed(&mut c, Duration::from_secs(2)).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-ERR max number of clients reached\r\n"
    );
    // The open ones never noticed.
    for c in &mut open {
        ping(c).await;
    }
    // A closed connection gives its place back.
    drop(open.pop());
    drop(fourth);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = connect_from([127, 0, 0, 1], s.addr).await;
        c.write_all(b"PING\r\n").await.unwrap();
        let mut buf = [0u8; 7];
        if tokio::time::timeout(Duration::from_secs(1), c.read_exact(&mut buf))
            .await
            .is_ok_and(|r| r.is_ok() && &buf == b"+PONG\r\n")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the place was never given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(open);
    let rejected: u64 = info_field(s.addr, "rejected_connections")
        .await
        .parse()
        .unwrap();
    assert!(rejected >= 3, "rejected_connections = {rejected}");
    s.stop().await;
}

#[tokio::test]
async fn a_request_left_half_sent_or_dripped_is_cut_off_at_the_request_timeout() {
    let s = TestServer::start_with(config(LimitsConfig {
        request_timeout_ms: 400,
        ..LimitsConfig::default()
    }))
    .await;
    // Half a request, then silence.
    let mut half = TcpStream::connect(s.addr).await.unwrap();
    half.write_all(b"*1\r\n$4\r\nPI").await.unwrap();
    // One byte of a request every 100 ms: always busy, never done.
    let mut drip = TcpStream::connect(s.addr).await.unwrap();
    let started = Instant::now();
    let dripping = tokio::spawn(async move {
        let request = b"*2\r\n$4\r\nECHO\r\n$100\r\n";
        for &b in request.iter().cycle().take(100) {
            if drip.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut rest = Vec::new();
        let _ = drip.read_to_end(&mut rest).await;
        started.elapsed()
    });
    let mut good = TcpStream::connect(s.addr).await.unwrap();
    for _ in 0..5 {
        ping(&mut good).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = until_closed(&mut half, Duration::from_secs(3)).await;
    assert!(got.is_empty(), "no reply to half a request: {got:?}");
    let drip_lasted = dripping.await.unwrap();
    assert!(
        drip_lasted < Duration::from_secs(5),
        "the dripping client was cut off after {drip_lasted:?}"
    );
    ping(&mut good).await;
    s.stop().await;
}

#[tokio::test]
async fn a_busy_pipeline_ending_in_partial_requests_is_not_a_slow_client() {
    let s = TestServer::start_with(config(LimitsConfig {
        request_timeout_ms: 300,
        ..LimitsConfig::default()
    }))
    .await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    // Every write finishes the previous request and starts the next, so
    // the buffer is never empty between reads — for 4× the timeout.
    c.write_all(b"*1\r\n$4\r\nPI").await.unwrap();
    let until = Instant::now() + Duration::from_millis(1200);
    let mut answered = 0;
    while Instant::now() < until {
        c.write_all(b"NG\r\n*1\r\n$4\r\nPI").await.unwrap();
        let mut buf = [0u8; 7];
        tokio::time::timeout(Duration::from_secs(1), c.read_exact(&mut buf))
            .await
            .expect("reply in time")
            .expect("the connection stays open");
        assert_eq!(&buf, b"+PONG\r\n");
        answered += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered >= 8);
    s.stop().await;
}

#[tokio::test]
async fn a_client_that_never_reads_its_replies_is_cut_off_and_others_are_served() {
    let s = TestServer::start_with(config(LimitsConfig {
        request_timeout_ms: 500,
        ..LimitsConfig::default()
    }))
    .await;
    let mut c = s.client().await;
    c.create(b"big", Default::default()).await.unwrap();
    c.set_data(b"big", vec![b'x'; 1 << 20]).await.unwrap();
    // Ask for the megabyte again and again without reading a byte of it.
    let mut hog = TcpStream::connect(s.addr).await.unwrap();
    let request = b"*2\r\n$15\r\nSESSION.GETDATA\r\n$3\r\nbig\r\n".repeat(64);
    let writer = tokio::spawn(async move {
        let started = Instant::now();
        // Our writes stall once the server stops reading (backpressure);
        // they fail once it has closed the connection.
        let flood = async { while hog.write_all(&request).await.is_ok() {} };
        tokio::time::timeout(Duration::from_secs(10), flood)
            .await
            .ok()
            .map(|()| started.elapsed())
    });
    let mut good = TcpStream::connect(s.addr).await.unwrap();
    for _ in 0..10 {
        ping(&mut good).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cut_off = writer.await.unwrap();
    assert!(
        cut_off.is_some(),
        "the client that never reads was never cut off"
    );
    ping(&mut good).await;
    assert_eq!(c.get_data(b"big").await.unwrap().len(), 1 << 20);
    s.stop().await;
}

#[tokio::test]
async fn idle_connections_close_only_when_an_idle_timeout_is_set() {
    let strict = TestServer::start_with(config(LimitsConfig {
        idle_timeout_s: 1,
        ..LimitsConfig::default()
    }))
    .await;
    let lenient = TestServer::start().await;
    let mut a = TcpStream::connect(strict.addr).await.unwrap();
    let mut b = TcpStream::connect(lenient.addr).await.unwrap();
    ping(&mut a).await;
    ping(&mut b).await;
    let started = Instant::now();
    let got = until_closed(&mut a, Duration::from_secs(4)).await;
    assert!(got.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed after {:?}, before the idle timeout",
        started.elapsed()
    );
    // The default never closes an idle connection (PHP keeps persistent
    // ones open between requests).
    ping(&mut b).await;
    strict.stop().await;
    lenient.stop().await;
}

/// Addresses on no listener's allowlist are closed at once, without a
/// word, and counted; allowed ones are served as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_off_the_allowlist_are_closed_at_once() {
    let s = TestServer::start_with(Config {
        allow_resp: vec!["127.0.0.2".parse().unwrap(), "10.0.0.0/8".parse().unwrap()],
        allow_memcache: vec!["127.0.0.0/30".parse().unwrap()],
        allow_line: vec!["::1/128".parse().unwrap()],
        allow_http: vec!["127.0.0.9".parse().unwrap()],
        ..config(LimitsConfig::default())
    })
    .await;
    for (from, to) in [
        ([127, 0, 0, 1], s.addr),
        ([127, 0, 0, 3], s.addr),
        ([127, 0, 0, 5], s.memcache),
        ([127, 0, 0, 1], s.line),
        ([127, 0, 0, 1], s.http),
    ] {
        let mut c = connect_from(from, to).await;
        let _ = c.write_all(b"PING\r\nversion\r\n").await;
        // Closed with our bytes unread, the socket may be reset rather
        // than ended: either way, nothing comes back.
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut got))
            .await
            .expect("closed in time");
        assert!(
            matches!(&read, Ok(0))
                || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "{from:?} to {to}: {read:?}"
        );
        assert!(
            got.is_empty(),
            "{from:?} to {to}: nothing is said, got {got:?}"
        );
    }
    let mut ok = connect_from([127, 0, 0, 2], s.addr).await;
    ping(&mut ok).await;
    let mut mc = connect_from([127, 0, 0, 3], s.memcache).await;
    mc.write_all(b"version\r\n").await.unwrap();
    let mut buf = [0u8; 8];
    mc.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"VERSION ");
    // INFO from the one allowed address.
    let mut c = connect_from([127, 0, 0, 2], s.addr).await;
    c.write_all(b"INFO\r\n").await.unwrap();
    let mut text = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&text).contains("rejected_connections") {
        let n = c.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        text.extend_from_slice(&chunk[..n]);
    }
    assert!(
        String::from_utf8_lossy(&text).contains("allowlist_denied_connections:5"),
        "{}",
        String::from_utf8_lossy(&text)
    );
    s.stop().await;
}

/// A full tenant refuses new sessions through every door with that door's
/// error, keeps every session it has, and goes on serving them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_tenant_refuses_new_sessions_through_every_door() {
    let s = TestServer::start_with(config(LimitsConfig {
        max_sessions_per_tenant: 2,
        max_vars: 1,
        ..LimitsConfig::default()
    }))
    .await;
    let mut c = s.client().await;
    c.call(&["SESSION.CREATE", "a"]).await.unwrap();
    c.call(&["SET", "PHPREDIS_SESSION:b", "data"])
        .await
        .unwrap();
    let err = c
        .call(&["SET", "PHPREDIS_SESSION:c", "x"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("LIMIT the number of sessions is 3, over the limit of 2"),
        "{err}"
    );
    let err = c
        .call(&["SESSION.CREATE", "c"])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("LIMIT"), "{err}");
    // `OPEN … CREATE` is refused the same way and leaves no lock behind
    // (on a cluster its grant may be written before the session is made).
    let err = c
        .call(&["SESSION.OPEN", "c", "CREATE"])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("LIMIT"), "{err}");
    let mut other = s.client().await;
    assert_eq!(
        other
            .call(&["SET", "PHPREDIS_SESSION:c_LOCK", "x", "NX", "PX", "2000"])
            .await
            .unwrap(),
        sessiond_client::RespValue::Simple("OK".into()),
        "c's lock is free"
    );
    let mut mc = common::wire::Wire::connect(s.memcache).await;
    let reply = mc.ask(b"set c 0 0 1\r\nx\r\n", b"\r\n").await;
    assert!(
        reply.starts_with("CLIENT_ERROR the number of sessions"),
        "{reply}"
    );
    let mut line = common::wire::Wire::connect(s.line).await;
    assert!(line
        .line("new")
        .await
        .starts_with("err the number of sessions"));
    // One variable per session here.
    c.call(&["SESSION.SET", "a", "x", "1"]).await.unwrap();
    let err = c
        .call(&["SESSION.SET", "a", "y", "1"])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("variables"), "{err}");
    assert_eq!(
        mc.ask(b"get b\r\n", b"END\r\n").await,
        "VALUE b 0 4\r\ndata\r\nEND\r\n"
    );
    assert_eq!(c.count(None).await.unwrap(), 2);
    s.stop().await;
}

/// Bytes from a fixed xorshift stream: garbage, the same on every run.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Garbage thrown at every door, raw and after a valid-looking first
/// byte: each connection is answered with errors or closed, the server
/// keeps serving, and no session is lost or changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_at_every_door_harms_nobody() {
    let s = TestServer::start_with(config(LimitsConfig {
        request_timeout_ms: 500,
        ..LimitsConfig::default()
    }))
    .await;
    let mut good = TcpStream::connect(s.addr).await.unwrap();
    good.write_all(b"SESSION.CREATE kept DATA precious\r\n")
        .await
        .unwrap();
    let mut ok = [0u8; 5];
    good.read_exact(&mut ok).await.unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    let mut clients = Vec::new();
    for (i, door) in [s.addr, s.memcache, s.line, s.http].into_iter().enumerate() {
        for round in 0..12u64 {
            // Raw garbage, and garbage behind each protocol's first byte.
            let prefix: &[u8] = match round % 4 {
                0 => b"",
                1 => b"*",
                2 => b"\x80",
                _ => b"set k 0 0 ",
            };
            let mut bytes = prefix.to_vec();
            bytes.extend(garbage(round * 31 + i as u64, 16 * 1024));
            clients.push(tokio::spawn(async move {
                let mut c = TcpStream::connect(door).await.unwrap();
                let _ = c.write_all(&bytes).await;
                // Then end our side: whatever the server made of the bytes
                // (errors, a framing error that closes, a partial request),
                // it must get through them and close too.
                let _ = c.shutdown().await;
                let mut sink = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut sink))
                    .await
                    .expect("each garbage connection ends");
            }));
        }
    }
    for c in clients {
        c.await.unwrap();
    }
    ping(&mut good).await;
    good.write_all(b"SESSION.GETDATA kept\r\nSESSION.COUNT\r\n")
        .await
        .unwrap();
    let mut reply = vec![0u8; b"$8\r\nprecious\r\n:1\r\n".len()];
    good.read_exact(&mut reply).await.unwrap();
    assert_eq!(
        reply, b"$8\r\nprecious\r\n:1\r\n",
        "the one session is intact and no garbage made a new one"
    );
    s.stop().await;
}
