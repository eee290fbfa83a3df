//! `sessiond`: the session server's command line. Thin: it reads the
//! configuration and hands over to `sessiond-server`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod ctl;
mod import;
mod remote;
use sessiond_server::{Config, Doors, Fsync, Listen, LogLevel, Server, ServerError, Storage};

#[derive(Parser)]
#[command(name = "sessiond", version, about = "A session server for web farms")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Verify a data directory offline (headers, records, CRCs, snapshots)
    /// and say what start-up would do; exit status 1 if anything is damaged.
    Check(DataDirArgs),
    /// Salvage a damaged data directory (the server stopped): keep every
    /// sound record, write them as a new verified snapshot, move each
    /// damaged file aside as *.damaged. Never run automatically.
    Repair(DataDirArgs),
    /// Write every live session of a data directory as JSON lines to
    /// standard output (inspection, backup). Changes nothing on disk.
    Dump(DataDirArgs),
    /// Create or upgrade the cluster database's schema (storage
    /// `postgres` or `mysql`, by the URL) and exit; nodes do it themselves unless
    /// database_migrate = false.
    Migrate(MigrateArgs),
    /// Read a password (one line) on standard input and print its Argon2id
    /// hash, for a `[[users]]` entry's `password_hash`.
    Passwd,
    /// The operator's command line, over the native protocol: stats, a
    /// live `top`, sessions list|find|show|destroy, an online dump, check.
    Ctl(Box<ctl::CtlArgs>),
    /// Copy sessions into a running server: from PHP's `files` session
    /// directory (`--from-php-files`) or from a dump (`--from-dump`).
    Import(Box<import::ImportArgs>),
    /// Load generator: drive sessiond, Redis or memcached with session
    /// workloads and report transactions/s and latency (BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Run one workload against one server.
    Run {
        #[command(flatten)]
        args: Box<sessiond_bench::RunArgs>,
        /// Print the report as one line of JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Runtime worker threads of the generator.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Whether cross-session commands stall other clients: load sessions,
    /// run each heavy command while another connection PINGs every 10 ms,
    /// then leave clients that never read (BENCHMARKS.md).
    Stall(sessiond_bench::StallArgs),
    /// A loopback echo server: the machine's ceiling for round trips.
    EchoServer {
        #[arg(long, default_value = "127.0.0.1:6391")]
        listen: std::net::SocketAddr,
        /// Runtime worker threads (default: one per core, as sessiond).
        #[arg(long)]
        threads: Option<usize>,
    },
}

#[derive(Args)]
struct MigrateArgs {
    /// TOML configuration file (its database_url).
    #[arg(long, env = "SESSIOND_CONFIG")]
    config: Option<PathBuf>,
    /// The database (overrides the file's).
    #[arg(long, env = "SESSIOND_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Args)]
struct DataDirArgs {
    /// The data directory.
    #[arg(long, env = "SESSIOND_DATA_DIR", default_value = "sessiond-data")]
    data_dir: PathBuf,
}

/// Every flag also reads `SESSIOND_<NAME>` from the environment; a flag beats
/// the environment, which beats the configuration file.
#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "SESSIOND_CONFIG")]
    config: Option<PathBuf>,
    /// Native (RESP) listener address, or `off`.
    #[arg(long, env = "SESSIOND_LISTEN_RESP", value_parser = clap::value_parser!(Listen))]
    listen_resp: Option<Listen>,
    /// HTTP_SessionServer line-protocol listener address, or `off` (default).
    #[arg(long, env = "SESSIOND_LISTEN_LINE", value_parser = clap::value_parser!(Listen))]
    listen_line: Option<Listen>,
    /// memcached (text and binary) listener address, or `off`.
    #[arg(long, env = "SESSIOND_LISTEN_MEMCACHE", value_parser = clap::value_parser!(Listen))]
    listen_memcache: Option<Listen>,
    /// HTTP listener (health, readiness, metrics) address, or `off`.
    #[arg(long, env = "SESSIOND_LISTEN_HTTP", value_parser = clap::value_parser!(Listen))]
    listen_http: Option<Listen>,
    /// Storage: `log` (durable, in --data-dir) or `memory` (volatile).
    #[arg(long, env = "SESSIOND_STORAGE", value_parser = clap::value_parser!(Storage))]
    storage: Option<Storage>,
    /// Directory of the log and snapshots (storage `log`).
    #[arg(long, env = "SESSIOND_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The cluster's database (storage `postgres` or `mysql`), e.g.
    /// postgres://sessiond@db:5432/sessiond or
    /// mysql://sessiond@db:3306/sessiond; the password may come from
    /// SESSIOND_DATABASE_PASSWORD instead.
    #[arg(long, env = "SESSIOND_DATABASE_URL")]
    database_url: Option<String>,
    /// This node's name in the cluster (default: host name and RESP port).
    #[arg(long, env = "SESSIOND_NODE_NAME")]
    node_name: Option<String>,
    /// storage mysql: where other nodes send this node's lock wake-ups
    /// (UDP ip:port; 0.0.0.0 = the address it reaches the database from,
    /// port 0 = any).
    #[arg(long, env = "SESSIOND_WAKE_ADDR")]
    wake_addr: Option<String>,
    /// Where the Lua plugins (*.lua) are, loaded at start and on SIGHUP or
    /// `sessiond ctl reload`.
    #[arg(long, env = "SESSIOND_PLUGINS_DIR")]
    plugins_dir: Option<PathBuf>,
    /// When a write is on disk: always, everysec, no.
    #[arg(long, env = "SESSIOND_FSYNC", value_parser = clap::value_parser!(Fsync))]
    fsync: Option<Fsync>,
    /// Idle timeout of sessions created without one, in seconds.
    #[arg(long, env = "SESSIOND_DEFAULT_TIMEOUT")]
    default_timeout: Option<u64>,
    /// Longest idle timeout a client may set, in seconds.
    #[arg(long, env = "SESSIOND_MAX_TIMEOUT")]
    max_timeout: Option<u64>,
    /// Lease of locks taken without LEASE, in ms.
    #[arg(long, env = "SESSIOND_DEFAULT_LEASE_MS")]
    default_lease_ms: Option<u64>,
    /// Longest lease a client may ask for, in ms.
    #[arg(long, env = "SESSIOND_MAX_LEASE_MS")]
    max_lease_ms: Option<u64>,
    /// Longest a lock request may wait, in ms.
    #[arg(long, env = "SESSIOND_MAX_WAIT_MS")]
    max_wait_ms: Option<u64>,
    /// Number of store shards.
    #[arg(long, env = "SESSIOND_SHARDS")]
    shards: Option<usize>,
    /// Runtime worker threads (0: one per core).
    #[arg(long, env = "SESSIOND_THREADS")]
    threads: Option<usize>,
    /// Largest single value (session data, a variable), in bytes.
    #[arg(long, env = "SESSIOND_MAX_VALUE_BYTES")]
    max_value_bytes: Option<usize>,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, env = "SESSIOND_LOG_LEVEL", value_parser = clap::value_parser!(LogLevel))]
    log_level: Option<LogLevel>,
    /// Let Redis FLUSHDB and memcached flush_all destroy every session.
    #[arg(long, env = "SESSIOND_ALLOW_FLUSH")]
    allow_flush: bool,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

impl ServeArgs {
    fn config(&self) -> Result<Config, ServerError> {
        let mut c = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(v) = self.listen_resp {
            c.listen_resp = v;
        }
        if let Some(v) = self.listen_line {
            c.listen_line = v;
        }
        if let Some(v) = self.listen_memcache {
            c.listen_memcache = v;
        }
        if let Some(v) = self.listen_http {
            c.listen_http = v;
        }
        if self.allow_flush {
            c.allow_flush = true;
        }
        if let Some(v) = self.storage {
            c.storage = v;
        }
        if let Some(v) = &self.data_dir {
            c.data_dir = v.clone();
        }
        if let Some(v) = &self.database_url {
            c.database_url = v.clone();
        }
        if let Some(v) = &self.node_name {
            c.node_name = v.clone();
        }
        if let Some(v) = &self.wake_addr {
            c.wake_addr = v.clone();
        }
        if let Some(v) = &self.plugins_dir {
            c.plugins_dir = v.clone();
        }
        if let Some(v) = self.fsync {
            c.fsync = v;
        }
        if let Some(v) = self.default_timeout {
            c.default_timeout_s = v;
        }
        if let Some(v) = self.max_timeout {
            c.max_timeout_s = v;
        }
        if let Some(v) = self.default_lease_ms {
            c.default_lease_ms = v;
        }
        if let Some(v) = self.max_lease_ms {
            c.max_lease_ms = v;
        }
        if let Some(v) = self.max_wait_ms {
            c.max_wait_ms = v;
        }
        if let Some(v) = self.shards {
            c.shards = v;
        }
        if let Some(v) = self.threads {
            c.threads = v;
        }
        if let Some(v) = self.max_value_bytes {
            c.limits.max_bulk_len = v;
            c.limits.max_request_len = c.limits.max_request_len.max(v);
        }
        if let Some(v) = self.log_level {
            c.log_level = v;
        }
        c.validate()?;
        Ok(c)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Serve(args) => serve(&args),
        Cmd::Check(args) => {
            let mut out = std::io::stdout().lock();
            match sessiond_server::check(&args.data_dir, &mut out) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("sessiond: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Repair(args) => {
            let mut out = std::io::stdout().lock();
            match sessiond_server::repair(&args.data_dir, &mut out) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sessiond: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Bench(cmd) => bench(cmd),
        Cmd::Ctl(args) => remote_command(ctl::run(&args)),
        Cmd::Import(args) => remote_command(import::run(&args)),
        Cmd::Passwd => passwd(),
        Cmd::Migrate(args) => migrate(&args),
        Cmd::Dump(args) => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut notes = std::io::stderr();
            match sessiond_server::dump(&args.data_dir, &mut out, &mut notes) {
                Ok(n) => {
                    eprintln!("sessiond: dumped {n} sessions");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sessiond: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// Runs a client-side command: exit status 0 when it went well, 1 when it
/// ran but found trouble, 2 when it could not run.
fn remote_command(work: impl std::future::Future<Output = Result<bool, String>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sessiond: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(work) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sessiond: {e}");
            ExitCode::from(2)
        }
    }
}

fn passwd() -> ExitCode {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        eprint!("password (shown as typed; pipe it in to keep it off the screen): ");
    }
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("sessiond: cannot read the password: {e}");
        return ExitCode::from(2);
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        eprintln!("sessiond: the password is empty; give one on standard input");
        return ExitCode::from(2);
    }
    match sessiond_server::hash_password(password.as_bytes()) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sessiond: {e}");
            ExitCode::from(2)
        }
    }
}

fn bench(cmd: BenchCmd) -> ExitCode {
    let threads = match &cmd {
        BenchCmd::Run { threads, .. } => Some(*threads),
        BenchCmd::EchoServer { threads, .. } => *threads,
        BenchCmd::Stall(_) => Some(2),
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n.max(1));
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sessiond: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cmd {
        BenchCmd::Run { args, json, .. } => match runtime.block_on(sessiond_bench::run(&args)) {
            Ok(report) => {
                if json {
                    println!("{}", report.to_json());
                } else {
                    print!("{}", report.table());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sessiond bench: {e}");
                ExitCode::FAILURE
            }
        },
        BenchCmd::Stall(args) => match runtime.block_on(sessiond_bench::stall(&args)) {
            Ok(report) => {
                print!("{}", report.table());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sessiond bench stall: {e}");
                ExitCode::FAILURE
            }
        },
        BenchCmd::EchoServer { listen, .. } => {
            let served = runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind(listen).await?;
                eprintln!("sessiond bench: echo server on {}", listener.local_addr()?);
                sessiond_bench::echo::serve(listener).await
            });
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sessiond bench echo-server: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn serve(args: &ServeArgs) -> ExitCode {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sessiond: {e}");
            return ExitCode::from(2);
        }
    };
    if args.print_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    init_logging(config.log_level);
    // One thread: the single-threaded scheduler, which skips the
    // multi-threaded one's work-stealing and cross-thread wake-ups.
    let mut builder = if config.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if config.threads > 1 {
        builder.worker_threads(config.threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sessiond: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("sessiond: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), ServerError> {
    let Listen::On(addr) = config.listen_resp else {
        return Err(ServerError::InvalidConfig(
            "every listener is off: set --listen-resp to an address".into(),
        ));
    };
    // Recover first, so "listening" means ready.
    let (listen_line, listen_memcache, listen_http, default_timeout, shards) = (
        config.listen_line,
        config.listen_memcache,
        config.listen_http,
        config.default_timeout_s,
        config.shards,
    );
    let server = Server::start(config).await?;
    let listener = bind(addr).await?;
    let line = bind_maybe(listen_line).await?;
    let memcache = bind_maybe(listen_memcache).await?;
    let http = bind_maybe(listen_http).await?;
    let shown = |l: &Option<tokio::net::TcpListener>| match l.as_ref().map(|l| l.local_addr()) {
        Some(Ok(a)) => a.to_string(),
        Some(Err(_)) => "?".into(),
        None => "off".into(),
    };
    tracing::info!(
        resp = %listener.local_addr()?,
        line = %shown(&line),
        memcache = %shown(&memcache),
        http = %shown(&http),
        default_timeout_s = default_timeout,
        shards,
        "sessiond {} listening (native RESP on {})",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr()?
    );
    server
        .run_doors(
            Doors {
                resp: listener,
                line,
                memcache,
                http,
            },
            shutdown_signal(),
        )
        .await
}

fn migrate(args: &MigrateArgs) -> ExitCode {
    let config = match &args.config {
        Some(path) => Config::load(path),
        None => Ok(Config::default()),
    };
    let mut config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sessiond: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(url) = &args.database_url {
        config.database_url = url.clone();
    }
    init_logging(LogLevel::Warn);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sessiond: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sessiond_server::migrate_database(&config)) {
        Ok(said) => {
            println!("{said}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sessiond: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, ServerError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: addr.to_string(),
            source,
        })
}

async fn bind_maybe(listen: Listen) -> Result<Option<tokio::net::TcpListener>, ServerError> {
    match listen {
        Listen::On(a) => Ok(Some(bind(a).await?)),
        Listen::Off => Ok(None),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}

fn init_logging(level: LogLevel) {
    let level = match level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Trace => tracing::Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
