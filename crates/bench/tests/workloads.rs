//! The generator against real servers: sessiond in-process on loopback
//! ports (the production `run_doors` path), and redis-server / memcached
//! when installed (CI installs them). Each workload must run clean, and
//! each cycle must send exactly the sequence of the client it imitates.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::Parser;
use sessiond_bench::keys::{KeyChooser, Popularity};
use sessiond_bench::wire::{Conn, Frame, Proto};
use sessiond_bench::workload::{session_id, Cycle, Outcome, Polling, Worker};
use sessiond_bench::{run, RunArgs};
use sessiond_server::{Config, Doors, Server, Storage};

/// sessiond in this process: (native/Redis door, memcached door).
async fn sessiond() -> (SocketAddr, SocketAddr) {
    let resp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let memcache = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addrs = (
        resp.local_addr().expect("addr"),
        memcache.local_addr().expect("addr"),
    );
    let server = Server::open(Config {
        storage: Storage::Memory,
        ..Config::default()
    })
    .expect("open");
    tokio::spawn(async move {
        let doors = Doors {
            resp,
            line: None,
            memcache: Some(memcache),
            http: None,
        };
        server
            .run_doors(doors, std::future::pending::<()>())
            .await
            .expect("server");
    });
    addrs
}

/// Later flags override the defaults `args` puts first.
#[derive(Parser)]
#[command(args_override_self = true)]
struct Cli {
    #[command(flatten)]
    args: RunArgs,
}

/// Run arguments as the command line would give them, short by default.
fn args(line: &str) -> RunArgs {
    let base = "bench --warmup 0 --duration 0.3 --conns 4 --keys 50 ";
    Cli::try_parse_from(format!("{base}{line}").split_whitespace())
        .expect("flags")
        .args
}

async fn clean_run(line: &str) -> sessiond_bench::Report {
    let r = run(&args(line)).await.expect("run");
    assert_eq!(
        (r.errors, r.failed_connections, r.lock_failures),
        (0, 0, 0),
        "{line}: {:?}",
        r.first_error
    );
    assert!(r.transactions > 0, "{line}: nothing done");
    assert!(r.latency_us.p50 > 0.0 && r.latency_us.p50 <= r.latency_us.p99);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_clean_against_sessiond() {
    let (resp, mc) = sessiond().await;
    for line in [
        format!("--workload raw --addr {resp}"),
        format!("--workload raw --addr {resp} --pipeline 16 --mix 9:1 --popularity zipf"),
        format!("--workload raw --addr {mc} --proto memcache-text"),
        format!("--workload raw --addr {mc} --proto memcache-binary"),
        format!("--workload cycle-redis --addr {resp}"),
        format!("--workload cycle-memcache --addr {mc}"),
        format!("--workload cycle-memcache --addr {mc} --proto memcache-text"),
        format!("--workload cycle-native --addr {resp}"),
        // Several addresses share the connections out (cluster nodes).
        format!("--workload cycle-native --addr {resp},{resp}"),
        // One address: both ends of each hand-off on one server.
        format!("--workload handoff --addr {resp} --settle-ms 2"),
        format!("--workload contend --cycle native --addr {resp} --conns 8 --keys 1"),
        format!("--workload contend --cycle redis --addr {resp} --conns 8 --keys 1 --lock-wait-us 200 --lock-retries 100000"),
    ] {
        let r = clean_run(&line).await;
        if line.contains("pipeline 16") {
            assert_eq!(r.transactions % 16, 0, "whole batches only");
        }
        if line.contains("cycle") {
            assert!(r.lock_wait_us.is_some(), "{line}");
        }
    }
    let load = run(&args(&format!("--workload load --addr {resp} --keys 1000")))
        .await
        .expect("load");
    assert_eq!(load.transactions, 1000);
}

/// `--count`: each cycle writes back the count it read plus one, through
/// every door, and the run checks the sum against the writes acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counting_runs_find_no_lost_update_under_locks() {
    let (resp, mc) = sessiond().await;
    for (cycle, addr) in [
        (Cycle::Native, resp),
        (Cycle::Redis, resp),
        (Cycle::Memcache, mc),
    ] {
        // Counts go up by one per cycle, read back as the cycle reads.
        let proto = if cycle == Cycle::Memcache {
            Proto::MemcacheBinary
        } else {
            Proto::Resp
        };
        let conn = Conn::connect(addr, proto).await.expect("conn");
        let mut w = Worker::new(
            conn,
            1,
            KeyChooser::new(1, Popularity::Uniform),
            100,
            (1, 1),
            Polling::PHPREDIS,
            0,
        )
        .counting(true);
        let before = w.count_of(0, cycle).await.expect("count");
        for _ in 0..3 {
            assert!(matches!(
                w.cycle(cycle).await.expect("cycle"),
                Outcome::Done { .. }
            ));
        }
        assert_eq!(
            w.count_of(0, cycle).await.expect("count"),
            before + 3,
            "{cycle:?}"
        );
    }
    for line in [
        format!("--workload contend --cycle native --addr {resp} --conns 8 --keys 2 --count"),
        format!("--workload contend --cycle redis --addr {resp} --conns 8 --keys 2 --count --lock-wait-us 200 --lock-retries 100000"),
        format!("--workload cycle-memcache --addr {mc} --keys 3 --count --lock-wait-us 200 --lock-retries 100000"),
    ] {
        let r = clean_run(&line).await;
        assert!(r.acked_writes.is_some_and(|a| a >= r.transactions), "{line}");
        assert_eq!(r.lost_updates, Some(0), "{line}");
    }
    // Counting needs a count to keep.
    assert!(run(&args(&format!("--workload raw --addr {resp} --count")))
        .await
        .is_err());
    assert!(run(&args(&format!(
        "--workload cycle-native --addr {resp} --count --size 8"
    )))
    .await
    .is_err());
}

fn worker(conn: Conn, keys: u64) -> Worker {
    let mut w = Worker::new(
        conn,
        1,
        KeyChooser::new(keys, Popularity::Uniform),
        100,
        (1, 1),
        Polling::PHPREDIS,
        0,
    );
    w.conn.trace = Some(Vec::new());
    w
}

fn take_trace(w: &mut Worker) -> Vec<String> {
    w.conn.trace.replace(Vec::new()).unwrap_or_default()
}

#[tokio::test]
async fn cycles_send_the_imitated_clients_sequences() {
    let (resp, mc) = sessiond().await;
    let mut w = worker(Conn::connect(resp, Proto::Resp).await.expect("conn"), 1);
    assert!(matches!(
        w.cycle(Cycle::Redis).await.expect("cycle"),
        Outcome::Done { requests: 4, .. }
    ));
    assert_eq!(take_trace(&mut w), ["SET", "GET", "SETEX", "EVALSHA"]);
    assert!(matches!(
        w.cycle(Cycle::Native).await.expect("cycle"),
        Outcome::Done { requests: 2, .. }
    ));
    assert_eq!(take_trace(&mut w), ["SESSION.OPEN", "SESSION.CLOSE"]);
    for proto in [Proto::MemcacheBinary, Proto::MemcacheText] {
        let mut w = worker(Conn::connect(mc, proto).await.expect("conn"), 1);
        assert!(matches!(
            w.cycle(Cycle::Memcache).await.expect("cycle"),
            Outcome::Done { requests: 4, .. }
        ));
        let get = if proto == Proto::MemcacheBinary {
            "getk"
        } else {
            "get"
        };
        assert_eq!(take_trace(&mut w), ["add", get, "set", "delete"]);
    }
    // The cycle wrote its value: one session, seen through the Redis door.
    let mut id = Vec::new();
    session_id(0, &mut id);
    let mut c = Conn::connect(resp, Proto::Resp).await.expect("conn");
    c.push_resp(&[b"GET", &id]);
    assert_eq!(c.call().await.expect("get"), Frame::Value(100));
}

#[tokio::test]
async fn a_polling_client_gives_up_after_its_retries_and_a_native_one_waits() {
    let (resp, _) = sessiond().await;
    let mut id = Vec::new();
    session_id(0, &mut id);
    let mut holder = Conn::connect(resp, Proto::Resp).await.expect("conn");
    holder.push_resp(&[b"SESSION.OPEN", &id, b"CREATE"]);
    let key = match holder.call().await.expect("open") {
        Frame::Array(items) => match items.first() {
            Some(Frame::Int(k)) => *k,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    let mut poller = Worker::new(
        Conn::connect(resp, Proto::Resp).await.expect("conn"),
        1,
        KeyChooser::new(1, Popularity::Uniform),
        10,
        (1, 1),
        Polling {
            wait_min_us: 1000,
            wait_max_us: 1000,
            retries: 2,
        },
        1,
    );
    assert_eq!(
        poller.cycle(Cycle::Redis).await.expect("cycle"),
        Outcome::LockFailed { requests: 3 }
    );

    // A native waiter blocks in the server and gets the lock the moment
    // the holder lets go.
    let mut waiter = worker(Conn::connect(resp, Proto::Resp).await.expect("conn"), 1);
    let waiting = tokio::spawn(async move { waiter.cycle(Cycle::Native).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        !waiting.is_finished(),
        "the waiter must wait for the holder"
    );
    let key = key.to_string();
    holder.push_resp(&[b"SESSION.CLOSE", &id, key.as_bytes()]);
    assert_eq!(holder.call().await.expect("close"), Frame::Ok);
    match waiting.await.expect("task").expect("cycle") {
        Outcome::Done {
            lock_wait: Some(w), ..
        } => assert!(w >= Duration::from_millis(150), "{w:?}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_ceiling_answers_raw_requests() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(sessiond_bench::echo::serve(l));
    let r = clean_run(&format!(
        "--workload raw --proto echo --addr {addr} --pipeline 4"
    ))
    .await;
    assert_eq!(r.transactions % 4, 0);
    assert!(run(&args(&format!(
        "--workload cycle-redis --proto echo --addr {addr}"
    )))
    .await
    .is_err());
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// A server process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `program args…` if it is installed (CI must have it), and waits
/// until its port answers.
async fn start(program: &str, args: &[&str], port: u16) -> Option<Proc> {
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else {
        // Said on the run's own stderr (not captured), so it shows.
        let thread = std::thread::current();
        let test = thread.name().unwrap_or("a test");
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: CI needs {program}"
        );
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "skipped: {test}: needs {program}, not installed here (.ci/run installs every tool)"
        );
        return None;
    };
    let p = Proc(child);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(p);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{program} did not come up on port {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_workloads_run_against_redis_and_memcached() {
    let rport = free_port();
    let rp = rport.to_string();
    let Some(_redis) = start(
        "redis-server",
        &[
            "--port",
            &rp,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        rport,
    )
    .await
    else {
        return;
    };
    let raddr: SocketAddr = format!("127.0.0.1:{rport}").parse().expect("addr");
    // Redis knows no script at first: EVALSHA fails, phpredis falls back to
    // EVAL, which caches it for the next time.
    let mut w = worker(Conn::connect(raddr, Proto::Resp).await.expect("conn"), 1);
    assert!(matches!(
        w.cycle(Cycle::Redis).await.expect("cycle"),
        Outcome::Done { requests: 5, .. }
    ));
    assert_eq!(
        take_trace(&mut w),
        ["SET", "GET", "SETEX", "EVALSHA", "EVAL"]
    );
    assert!(matches!(
        w.cycle(Cycle::Redis).await.expect("cycle"),
        Outcome::Done { requests: 4, .. }
    ));
    assert_eq!(take_trace(&mut w), ["SET", "GET", "SETEX", "EVALSHA"]);
    clean_run(&format!("--workload raw --addr {raddr} --pipeline 16")).await;
    clean_run(&format!("--workload cycle-redis --addr {raddr}")).await;

    let mport = free_port();
    let mp = mport.to_string();
    let Some(_mc) = start(
        "memcached",
        &["-p", &mp, "-l", "127.0.0.1", "-U", "0", "-u", "nobody"],
        mport,
    )
    .await
    else {
        return;
    };
    let maddr = format!("127.0.0.1:{mport}");
    for proto in ["memcache-text", "memcache-binary"] {
        clean_run(&format!("--workload raw --addr {maddr} --proto {proto}")).await;
        clean_run(&format!(
            "--workload cycle-memcache --addr {maddr} --proto {proto}"
        ))
        .await;
    }
}
