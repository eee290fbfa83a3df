//! Ten thousand idle connections against the real binary (its own process,
//! so the two sides' file descriptors are counted apart), and a
//! well-behaved client served all along with its data intact.

use crate::common;

use std::time::{Duration, Instant};

use common::process::{signal, start_binary};
use common::wire::Wire;
use tokio::net::TcpStream;

const IDLE: usize = 10_000;

/// Raises this process's open-file limit to its hard limit; the server,
/// started after, inherits it.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    assert!(
        lim.rlim_cur as usize >= IDLE + 500,
        "this test needs an open-file limit of at least {} (ulimit -Hn is {})",
        IDLE + 500,
        lim.rlim_cur
    );
}

/// The median and worst of 200 PINGs, one at a time.
async fn ping_latency(c: &mut Wire) -> (Duration, Duration) {
    let mut times: Vec<Duration> = Vec::with_capacity(200);
    for _ in 0..200 {
        let t = Instant::now();
        assert_eq!(c.ask(b"PING\r\n", b"\r\n").await, "+PONG\r\n");
        times.push(t.elapsed());
    }
    times.sort();
    (times[100], times[199])
}

async fn connected_clients(c: &mut Wire) -> usize {
    let text = c.ask(b"INFO\r\n", b"\r\n\r\n").await;
    text.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_do_not_slow_a_busy_one() {
    raise_fd_limit();
    let dir = std::env::temp_dir().join(format!("sessiond-many-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sessiond.toml");
    std::fs::write(
        &config,
        format!(
            "storage = \"memory\"\n[limits]\nmax_connections = {n}\nmax_connections_per_ip = {n}\n",
            n = IDLE + 100
        ),
    )
    .unwrap();
    let (child, port) = start_binary(&["--config", config.to_str().unwrap()]);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut busy = Wire::connect(addr).await;
    busy.stream.set_nodelay(true).unwrap();
    busy.ask(b"SESSION.CREATE kept DATA precious\r\n", b"\r\n")
        .await;
    let (before_median, _) = ping_latency(&mut busy).await;

    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let c = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        idle.push(Wire::from_stream(c));
    }
    // Every one of them is in: the server holds them all open.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = connected_clients(&mut busy).await;
        if n > IDLE {
            break;
        }
        assert!(Instant::now() < deadline, "only {n} connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (median, worst) = ping_latency(&mut busy).await;
    // Generous bounds: this is a liveness check, not a benchmark (the
    // measured figures are in the failure message).
    assert!(
        median < Duration::from_millis(20) && worst < Duration::from_secs(1),
        "with {IDLE} idle connections: median {median:?}, worst {worst:?} (before: {before_median:?})"
    );
    // A few of the idle ones still work when they speak up.
    for c in idle.iter_mut().step_by(2_500) {
        assert_eq!(
            c.ask(b"SESSION.GETDATA kept\r\n", b"precious\r\n").await,
            "$8\r\nprecious\r\n"
        );
    }
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(30);
    while connected_clients(&mut busy).await > 1 {
        assert!(Instant::now() < deadline, "closed connections are let go");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        busy.ask(b"SESSION.GETDATA kept\r\n", b"precious\r\n").await,
        "$8\r\nprecious\r\n"
    );
    signal(&child, "-TERM");
    let _ = std::fs::remove_dir_all(&dir);
}
