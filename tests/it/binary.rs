//! The `sessiond` binary itself: start-up, redis-cli against it, the
//! configuration pipeline, and graceful shutdown on SIGTERM.

use crate::common;

use std::process::{Child, Command};

use common::process::Running;
use std::time::{Duration, Instant};

use common::process::{signal, start_binary, BIN};

fn start(extra: &[&str]) -> (Running, u16) {
    let mut args = vec!["--storage", "memory"];
    args.extend_from_slice(extra);
    start_binary(&args)
}

fn redis_cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "redis-cli {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

fn sigterm(child: &Child) {
    signal(child, "-TERM");
}

#[test]
fn redis_cli_runs_the_readme_session_and_sigterm_exits_zero() {
    let (mut child, port) = start(&[]);
    let Some(created) = redis_cli(port, &["SESSION.CREATE", "abc", "TIMEOUT", "600"]) else {
        common::process::skipped("redis-cli (redis-tools)");
        sigterm(&child);
        assert!(child.wait().unwrap().success());
        return;
    };
    assert_eq!(created, "OK");
    assert_eq!(
        redis_cli(port, &["SESSION.SET", "abc", "user_id", "42"]).unwrap(),
        "OK"
    );
    assert_eq!(
        redis_cli(port, &["SESSION.GET", "abc", "user_id"]).unwrap(),
        "42"
    );
    let key: u64 = redis_cli(port, &["SESSION.LOCK", "abc", "WAIT", "1000"])
        .unwrap()
        .parse()
        .unwrap();
    assert!(key > 0);
    assert_eq!(
        redis_cli(port, &["SESSION.FIND", "user_id", "42"]).unwrap(),
        "abc"
    );
    assert_eq!(redis_cli(port, &["SESSION.EXISTS", "nope"]).unwrap(), "0");
    let err = redis_cli(port, &["SESSION.GET", "nope", "x"]).unwrap();
    assert!(err.contains("NOSESSION no session 'nope'"), "{err}");
    assert_eq!(redis_cli(port, &["PING"]).unwrap(), "PONG");
    let info = redis_cli(port, &["INFO"]).unwrap();
    assert!(info.contains("sessions:1"), "{info}");
    // A client idle between requests is told of the stop at once: its
    // connection closes and the server exits well inside its 5 s grace.
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(&mut idle, b"PING\r\n").unwrap();
    let mut pong = [0u8; 7];
    std::io::Read::read_exact(&mut idle, &mut pong).unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
    let stopping = Instant::now();
    sigterm(&child);
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut idle, &mut rest).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        stopping.elapsed() < Duration::from_secs(3),
        "stopped after {:?}, not at once",
        stopping.elapsed()
    );
}

#[test]
fn print_config_layers_file_env_and_flags() {
    let dir = std::env::temp_dir().join(format!("sessiond-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sessiond.toml");
    std::fs::write(
        &file,
        // The unit-less name a config of an older release used still reads.
        "default_timeout = 100\nshards = 8\n[limits]\nmax_args = 100\nidle_timeout = 7\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--print-config",
            "--config",
            file.to_str().unwrap(),
            "--shards",
            "16",
        ])
        .env("SESSIOND_DEFAULT_TIMEOUT", "200")
        .env("SESSIOND_SHARDS", "4")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("default_timeout_s = 200"),
        "env beats file, printed by its new name: {text}"
    );
    assert!(
        text.contains("idle_timeout_s = 7"),
        "an old name reads: {text}"
    );
    assert!(text.contains("shards = 16"), "flag beats env: {text}");
    assert!(
        text.contains("max_args = 100"),
        "file beats default: {text}"
    );
    assert!(text.contains("listen_resp = \"127.0.0.1:6390\""), "{text}");
}

#[test]
fn refuses_non_loopback_and_unknown_keys_with_a_clear_message() {
    let out = Command::new(BIN)
        .args(["serve", "--listen-resp", "0.0.0.0:6390"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");

    let dir = std::env::temp_dir().join(format!("sessiond-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "default_timeot = 5\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `default_timeot`"), "{err}");
}

/// `--threads 1` runs the single-threaded runtime: a client waiting in the
/// lock queue must not stop the one thread from serving the holder, and the
/// waiter gets the lock when the holder closes.
#[tokio::test]
async fn one_runtime_thread_serves_a_waiter_and_the_holder() {
    use sessiond_client::{Client, LockOptions};
    let (mut child, port) = start(&["--threads", "1"]);
    let addr = format!("127.0.0.1:{port}");
    let mut holder = Client::connect(&addr).await.expect("connect");
    let mut waiter = Client::connect(&addr).await.expect("connect");
    let create = LockOptions {
        create: true,
        ..LockOptions::default()
    };
    let held = holder.open("t1", create).await.expect("open");
    let waiting = tokio::spawn(async move {
        let opts = LockOptions {
            wait_ms: 5_000,
            ..LockOptions::default()
        };
        let got = waiter.open("t1", opts).await.expect("queued open");
        (got, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the waiter must queue");
    let closed_at = Instant::now();
    holder
        .close("t1", held.key, Some(b"written"), &[])
        .await
        .expect("close");
    let (got, at) = waiting.await.expect("task");
    assert_eq!(&got.data[..], b"written");
    assert!(at.duration_since(closed_at) < Duration::from_secs(1));
    sigterm(&child);
    assert!(child.wait().expect("wait").success());
}

/// The README's `sessiond bench` commands through the binary: a run against
/// a server prints one JSON line, and the echo server answers the raw
/// workload.
#[test]
fn bench_runs_against_the_server_and_the_echo_ceiling() {
    let (mut child, port) = start(&[]);
    let json_field = |out: &str, name: &str| -> f64 {
        let at = out
            .find(&format!("\"{name}\":"))
            .unwrap_or_else(|| panic!("{name} in {out}"));
        let rest = &out[at + name.len() + 3..];
        let end = rest.find([',', '}']).expect("end of value");
        rest[..end]
            .parse()
            .unwrap_or_else(|_| panic!("{name} in {out}"))
    };
    let bench = |args: &[&str]| {
        let out = Command::new(BIN)
            .args([
                "bench",
                "run",
                "--json",
                "--duration",
                "0.3",
                "--warmup",
                "0",
                "--conns",
                "4",
            ])
            .args(args)
            .output()
            .expect("bench");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(json_field(&stdout, "transactions") > 0.0, "{stdout}");
        assert_eq!(json_field(&stdout, "errors"), 0.0, "{stdout}");
        stdout
    };
    let addr = format!("127.0.0.1:{port}");
    let out = bench(&["--workload", "cycle-native", "--addr", &addr]);
    assert!(out.contains("\"lock_wait_us\":{"), "{out}");

    let echo_port = common::process::free_port().to_string();
    let listen = format!("127.0.0.1:{echo_port}");
    let mut echo = Running(
        Command::new(BIN)
            .args(["bench", "echo-server", "--listen", &listen])
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("echo server"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(Instant::now() < deadline, "echo server did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    bench(&["--workload", "raw", "--proto", "echo", "--addr", &listen]);
    // A workload the echo server cannot serve is refused, not run.
    let refused = Command::new(BIN)
        .args([
            "bench",
            "run",
            "--workload",
            "cycle-redis",
            "--proto",
            "echo",
            "--addr",
            &listen,
        ])
        .output()
        .expect("bench");
    assert!(!refused.status.success());
    let _ = echo.kill();
    let _ = echo.wait();
    sigterm(&child);
    assert!(child.wait().expect("wait").success());
}
