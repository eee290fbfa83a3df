//! A private MariaDB server for the tests: `mariadb-install-db` in a temp
//! dir (owned by the `mysql` user when the tests run as root), `mariadbd`
//! started on a free loopback port and a socket in that dir, killed and
//! removed at the end — never the system's service, never a fixed port.
//! Each server a test starts gets a database of its own in it
//! ([`MariaDb::database`]). A server whose test process aborted before its
//! exit hook ran is killed and removed by the next test process that
//! starts one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use super::process::{alive, free_port, left_behind, skipped};

pub struct MariaDb {
    dir: PathBuf,
    pub port: u16,
    as_mysql: bool,
    child: Mutex<Option<Child>>,
    /// Settings added to the server's command line ([`MariaDb::enable_tls`]).
    extra: Mutex<Vec<String>>,
}

/// Where MariaDB's programs are, if installed.
fn installed() -> bool {
    ["mariadbd", "mariadb-install-db", "mariadb"]
        .iter()
        .all(|p| which(p).is_some())
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join(program))
        .find(|p| p.exists())
}

static SHARED: OnceLock<Option<MariaDb>> = OnceLock::new();

extern "C" fn stop_shared() {
    if let Some(Some(db)) = SHARED.get() {
        db.kill();
        let _ = std::fs::remove_dir_all(&db.dir);
    }
}

/// The test process's one server, started on first use and stopped when
/// the process exits; None (skipped, or a failure under CI) when MariaDB
/// is not installed.
pub fn shared() -> Option<&'static MariaDb> {
    SHARED
        .get_or_init(|| {
            let db = MariaDb::start()?;
            // SAFETY: registers a plain function to run at exit.
            unsafe { libc::atexit(stop_shared) };
            Some(db)
        })
        .as_ref()
}

impl MariaDb {
    /// A new private server, running.
    pub fn start() -> Option<Self> {
        if !installed() {
            skipped("MariaDB's server (Debian's mariadb-server package)");
            return None;
        }
        static SWEPT: Once = Once::new();
        SWEPT.call_once(|| {
            stop_left_behind();
        });
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sessiond-my-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).expect("mariadb dir");
        // SAFETY: geteuid has no preconditions.
        let as_mysql = unsafe { libc::geteuid() } == 0;
        if as_mysql {
            let ok = Command::new("chown")
                .args(["-R", "mysql:", &dir.display().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown the MariaDB directory to mysql");
        }
        let db = Self {
            dir,
            port: free_port(),
            as_mysql,
            child: Mutex::new(None),
            extra: Mutex::new(Vec::new()),
        };
        let mut install = Command::new(which("mariadb-install-db").expect("installed"));
        install
            .arg(format!("--datadir={}", db.data().display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if as_mysql {
            install.arg("--user=mysql");
        }
        let out = install
            .stdin(Stdio::null())
            .output()
            .expect("run mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        db.start_again();
        Some(db)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The server's Unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// Starts the server (again, after [`MariaDb::kill`]) and waits until
    /// it answers.
    pub fn start_again(&self) {
        let mut cmd = Command::new(which("mariadbd").expect("installed"));
        // --no-defaults first: nothing of the machine's own my.cnf.
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.data().display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--pid-file={}", self.dir.join("pid").display()))
            .arg(format!("--log-error={}", self.dir.join("log").display()))
            .args([
                "--bind-address=127.0.0.1",
                "--max-connections=600",
                "--innodb-buffer-pool-size=128M",
                "--innodb-log-file-size=64M",
            ]);
        if self.as_mysql {
            cmd.arg("--user=mysql");
        }
        cmd.args(self.extra.lock().expect("extra").iter());
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        *self.child.lock().expect("child") = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.try_sql("SELECT 1").is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "MariaDB did not start: {}",
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        );
    }

    /// Restarts the server with TLS on, serving this certificate.
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str) {
        let mut extra = Vec::new();
        for (file, text, flag) in [
            ("server.crt", cert_pem, "--ssl-cert"),
            ("server.key", key_pem, "--ssl-key"),
        ] {
            let path = self.dir.join(file);
            std::fs::write(&path, text).expect("write a TLS file");
            if self.as_mysql {
                let ok = Command::new("chown")
                    .args(["mysql:", &path.display().to_string()])
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "chown {file}");
            }
            extra.push(format!("{flag}={}", path.display()));
        }
        *self.extra.lock().expect("extra") = extra;
        self.kill();
        self.start_again();
    }

    /// Kills the server at once, as a crash would (`kill -9`: the next
    /// start recovers from InnoDB's redo log).
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().ok().and_then(|mut c| c.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn try_sql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new(which("mariadb").expect("installed"))
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-uroot", "--batch", "--skip-column-names", "-e", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Runs SQL as root, returning what it printed (tab-separated rows).
    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql)
            .unwrap_or_else(|e| panic!("mariadb {sql}: {e}"))
    }

    /// A new, empty database; its URL.
    pub fn database(&self) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!("t{}", N.fetch_add(1, Ordering::Relaxed));
        self.sql(&format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{name}", self.port)
    }
}

/// Kills and removes the servers of test processes that are gone (see
/// [`left_behind`]): each would otherwise hold a port and its memory until
/// the machine restarts. A server is found by the pid file in its
/// directory, and killed only if it is the process working in that
/// directory (a pid can be reused). Returns how many directories there
/// were.
fn stop_left_behind() -> usize {
    let left = left_behind("sessiond-my-");
    for dir in &left {
        eprintln!(
            "stopping the MariaDB server that a test process now gone left in {}",
            dir.display()
        );
        if let Some(pid) = server_in(dir) {
            // SAFETY: kill has no memory preconditions; `pid` was checked
            // to be the server working in `dir`.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while running(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }
    left.len()
}

/// Whether `pid` exists and has not died: a zombie (dead, not yet reaped
/// by its parent) does not count.
fn running(pid: libc::pid_t) -> bool {
    alive(pid)
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit_once(") ")
                .is_none_or(|(_, rest)| !rest.starts_with('Z'))
        })
}

/// The pid of the server running in `dir`, by its pid file, if that
/// process still works in `dir` (its current directory is `dir`'s data).
fn server_in(dir: &Path) -> Option<libc::pid_t> {
    let pid: libc::pid_t = std::fs::read_to_string(dir.join("pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    let dir = std::fs::canonicalize(dir).ok()?;
    cwd.starts_with(&dir).then_some(pid)
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server whose test process aborted is killed by the next test process
/// that starts one. The test's own private server stands for the one left
/// behind: its directory moves to the name a process that is gone would
/// have given it (the server keeps running from there).
#[test]
fn a_server_left_by_an_aborted_test_process_is_killed_and_removed() {
    let Some(db) = MariaDb::start() else {
        return;
    };
    let left = super::process::leave_behind(&db.dir, "sessiond-my-");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], db.port));
    assert!(
        std::net::TcpStream::connect(addr).is_ok(),
        "the moved server still runs"
    );
    assert!(stop_left_behind() >= 1);
    assert!(!left.exists(), "{} removed", left.display());
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the left server stopped"
    );
}
