//! A private PostgreSQL cluster for the tests: `initdb` in a temp dir (as
//! the `postgres` user when the tests run as root: initdb refuses root),
//! started on a free loopback port with `pg_ctl -w`, stopped with
//! `pg_ctl -m immediate` and removed at the end — never the system's
//! service, never a fixed port. Each server a test starts gets a database
//! of its own in it ([`Postgres::database`]). A cluster whose test process
//! aborted before its exit hook ran is stopped and removed by the next
//! test process that starts one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Once, OnceLock};

use super::process::{free_port, left_behind, skipped};

pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

/// The directory of PostgreSQL's server programs, if installed.
fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop()
}

static SHARED: OnceLock<Option<Postgres>> = OnceLock::new();

extern "C" fn stop_shared() {
    if let Some(Some(pg)) = SHARED.get() {
        pg.stop();
        let _ = std::fs::remove_dir_all(&pg.dir);
    }
}

/// The test process's one cluster, started on first use and stopped when
/// the process exits; None (skipped, or a failure under CI) when
/// PostgreSQL is not installed.
pub fn shared() -> Option<&'static Postgres> {
    SHARED
        .get_or_init(|| {
            let pg = Postgres::start()?;
            // SAFETY: registers a plain function to run at exit.
            unsafe { libc::atexit(stop_shared) };
            Some(pg)
        })
        .as_ref()
}

impl Postgres {
    /// A new private cluster, running.
    pub fn start() -> Option<Self> {
        let Some(bin) = bin_dir() else {
            skipped("PostgreSQL's server (Debian's postgresql package)");
            return None;
        };
        // SAFETY: geteuid has no preconditions.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        static SWEPT: Once = Once::new();
        SWEPT.call_once(|| {
            stop_left_behind(&bin, as_postgres);
        });
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sessiond-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("pg dir");
        if as_postgres {
            let ok = Command::new("chown")
                .args(["postgres:", &dir.display().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown the PostgreSQL directory to postgres");
        }
        let mut pg = Self {
            bin,
            dir,
            port: free_port(),
            as_postgres,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        // The free port was free when chosen; a test running beside this
        // one may have taken it since. Then another port, a few times.
        for tries_left in (0..5).rev() {
            match pg.try_start() {
                Ok(()) => break,
                Err(e) if tries_left > 0 && e.contains("already in use") => pg.port = free_port(),
                Err(e) => panic!("{e}"),
            }
        }
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// `program` of PostgreSQL's, run as the cluster's owner.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the cluster (again, after [`Postgres::stop`]) and waits until
    /// it accepts connections.
    pub fn start_again(&self) {
        self.try_start().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Like [`Postgres::start_again`]; on failure, what `pg_ctl` and the
    /// server's log said.
    fn try_start(&self) -> Result<(), String> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=300 -c fsync=on",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log");
        let out = self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-l"])
            .arg(&log)
            .args(["-w", "-o", &options, "start"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run pg_ctl: {e}"));
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "pg_ctl failed: {}{}\nthe server's log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        ))
    }

    /// Stops the cluster at once, as a crash would (`-m immediate`: no
    /// checkpoint; the next start recovers from the WAL).
    pub fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Turns TLS on with this certificate and key (PEM), by a reload.
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str) {
        let data = self.dir.join("data");
        for (file, text) in [("server.crt", cert_pem), ("server.key", key_pem)] {
            let path = data.join(file);
            std::fs::write(&path, text).expect("write a TLS file");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            if self.as_postgres {
                let ok = Command::new("chown")
                    .args(["postgres:", &path.display().to_string()])
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "chown {file}");
            }
        }
        self.sql("postgres", "ALTER SYSTEM SET ssl = on");
        self.sql("postgres", "SELECT pg_reload_conf()");
    }

    /// Runs SQL as the superuser (psql), returning what it printed
    /// (unaligned, tuples only).
    pub fn sql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-Atqc",
                sql,
            ])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A new, empty database; its URL.
    pub fn database(&self) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!("t{}", N.fetch_add(1, Ordering::Relaxed));
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

/// Stops and removes the clusters of test processes that are gone (see
/// [`left_behind`]): each would otherwise hold a port and its memory until
/// the machine restarts. Returns how many there were.
fn stop_left_behind(bin: &Path, as_postgres: bool) -> usize {
    let left = left_behind("sessiond-pg-");
    for dir in &left {
        eprintln!(
            "stopping the PostgreSQL cluster that a test process now gone left in {}",
            dir.display()
        );
        // Its Drop stops it (`pg_ctl` finds the server by the data
        // directory's postmaster.pid) and removes the directory.
        drop(Postgres {
            bin: bin.to_path_buf(),
            dir: dir.clone(),
            port: 0,
            as_postgres,
        });
    }
    left.len()
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A cluster whose test process aborted is stopped by the next test
/// process that starts one. The test's own private cluster stands for the
/// one left behind: its directory moves to the name a process that is gone
/// would have given it (the server keeps running from there).
#[test]
fn a_cluster_left_by_an_aborted_test_process_is_stopped_and_removed() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let left = super::process::leave_behind(&pg.dir, "sessiond-pg-");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], pg.port));
    assert!(
        std::net::TcpStream::connect(addr).is_ok(),
        "the moved cluster still runs"
    );
    assert!(stop_left_behind(&pg.bin, pg.as_postgres) >= 1);
    assert!(!left.exists(), "{} removed", left.display());
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the left cluster stopped"
    );
}
