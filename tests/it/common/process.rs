//! Running the real `sessiond` binary.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_sessiond");

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Directories named `{prefix}{pid}-{n}` in the temp dir whose test
/// process `pid` is gone: it aborted (a stack overflow, a kill -9), so
/// the exit hook that stops what it started there never ran.
pub fn left_behind(prefix: &str) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let pid = name.strip_prefix(prefix)?.split('-').next()?.parse().ok()?;
            (!alive(pid)).then(|| e.path())
        })
        .collect()
}

/// Moves `dir` to the name a test process that is gone would have given
/// it (`{prefix}{pid}-0`, the pid of a process that ran and ended), as if
/// that process had aborted and left it; returns the new path.
pub fn leave_behind(dir: &std::path::Path, prefix: &str) -> std::path::PathBuf {
    let mut gone = Command::new("true").spawn().expect("run true");
    let _ = gone.wait();
    let left = std::env::temp_dir().join(format!("{prefix}{}-0", gone.id()));
    std::fs::rename(dir, &left).expect("move the directory");
    left
}

/// Whether a process `pid` exists (a zombie counts).
pub fn alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 sends nothing; it only checks that `pid` exists.
    let found = unsafe { libc::kill(pid, 0) } == 0;
    found || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Starts `sessiond serve --listen-resp <free port> <extra…>` and waits for
/// its start-up line; stderr keeps being drained so it never blocks. The
/// memcached and HTTP doors are off unless `extra` sets them (their default
/// ports are fixed, and tests run in parallel).
pub fn start_binary(extra: &[&str]) -> (Running, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let memcache: &[&str] = if extra.contains(&"--listen-memcache") {
        &[]
    } else {
        &["--listen-memcache", "off"]
    };
    let http: &[&str] = if extra.contains(&"--listen-http") {
        &[]
    } else {
        &["--listen-http", "off"]
    };
    let mut child = Command::new(BIN)
        .args(["serve", "--listen-resp", &listen])
        .args(memcache)
        .args(http)
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn sessiond");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut said = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "no start-up line");
        // What it printed says why (a port another test took meanwhile).
        let Some(line) = lines.next() else {
            panic!("sessiond exited early: {}", said.join("\n"));
        };
        let line = line.unwrap();
        said.push(line.clone());
        if line.contains("listening") {
            assert!(line.contains(&listen), "{line}");
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (Running(child), port)
}

/// A running `sessiond` (or any child a test starts): killed and reaped
/// when dropped, so a test that fails halfway leaves no process behind.
pub struct Running(pub Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Sends a signal (`-TERM`, `-KILL`) to a child.
pub fn signal(child: &Child, sig: &str) {
    let signal = match sig {
        "-TERM" => libc::SIGTERM,
        "-KILL" => libc::SIGKILL,
        "-INT" => libc::SIGINT,
        other => panic!("no signal {other}"),
    };
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) with a child's pid and a valid signal number.
    let sent = unsafe { libc::kill(pid, signal) };
    assert_eq!(sent, 0, "kill {sig}");
}

/// Whether an external tool the tests drive works here (`probe` runs and
/// exits 0). When it does not, says on the test run's own stderr (not
/// captured, so `cargo test` shows it) that `test` is skipped and what
/// installs the tool. Under `CI` (`.ci/run` installs every tool) a missing
/// tool fails the test instead.
pub fn tool_available(probe: &mut Command, what: &str) -> bool {
    let ok = probe
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skipped(what);
    }
    ok
}

/// Says the running test is skipped because `what` is missing; under `CI`
/// fails it instead.
pub fn skipped(what: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: CI needs {what} (.ci/run installs it)"
    );
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {test}: needs {what}, not installed here (.ci/run installs every tool)"
    );
}

/// A real peer a door imitates, started privately on a free port.
#[derive(Debug, Clone, Copy)]
pub enum Peer {
    Redis,
    Memcached,
}

/// Starts `peer` on a free loopback port (no persistence) and waits until
/// it accepts; None (skipped, or a failure under CI) when it is not
/// installed.
pub fn start_peer(peer: Peer) -> Option<(Running, u16)> {
    let program = match peer {
        Peer::Redis => "redis-server",
        Peer::Memcached => "memcached",
    };
    if !tool_available(Command::new(program).arg("--version"), program) {
        return None;
    }
    let port = free_port().to_string();
    let args: Vec<&str> = match peer {
        Peer::Redis => vec![
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        // -u: memcached will not run as root without a user to become.
        Peer::Memcached => vec!["-p", &port, "-l", "127.0.0.1", "-U", "0", "-u", "nobody"],
    };
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    let running = Running(child);
    let port: u16 = port.parse().expect("a port");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{program} did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((running, port))
}

/// Runs a client script (`cmd`) off the test's runtime threads, fails the
/// test with its output unless it exits 0, and returns what it printed.
pub async fn run_script(mut cmd: Command) -> Vec<u8> {
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run the script");
    assert!(
        out.status.success(),
        "the script failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
