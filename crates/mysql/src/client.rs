//! A MySQL/MariaDB client of sessiond's own, shaped like tokio-postgres's
//! so both cluster backends share one pool: a [`Client`] is shared by
//! every request of a node, and requests sent while others are answered
//! go out at once, their answers read in order (the protocol answers each
//! command in turn, so commands written back to back are a pipeline; the
//! writer and the reader are separate tasks, so a long answer never holds
//! up what is being written, nor the reverse).
//!
//! What it speaks: the 4.1 protocol, TLS (rustls), the
//! `mysql_native_password`, `caching_sha2_password` and
//! `mysql_clear_password` logins (the last two send the password in the
//! clear only over TLS or a Unix socket), plain queries, and prepared
//! statements with binary rows; several results per command (`CALL`).
//! Strings go as bytes: the connection's character set is `binary`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;

use super::wire::{self, kind, protocol, Column, Cur, MyError, Value, MAX_REPLY};

/// Where and as whom to connect (`mysql://user:password@host:port/db`,
/// with `?socket=/path` for a Unix socket and `?ssl-mode=REQUIRED` for TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opts {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    pub socket: Option<PathBuf>,
    /// TLS is required (`ssl-mode=REQUIRED`, `VERIFY_CA`, `VERIFY_IDENTITY`).
    pub tls: bool,
}

impl Opts {
    /// Reads a `mysql://` (or `mariadb://`) URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("mysql://")
            .or_else(|| url.strip_prefix("mariadb://"))
            .ok_or("a MySQL URL starts with mysql:// (or mariadb://)")?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let (hostport, database) = match rest.split_once('/') {
            Some((h, d)) => (h, decode(d)?),
            None => (rest, String::new()),
        };
        if database.is_empty() {
            return Err("the URL names no database (mysql://user@host/database)".into());
        }
        let (user, password) = match auth {
            None => (String::new(), None),
            Some(a) => match a.split_once(':') {
                Some((u, p)) => (decode(u)?, Some(decode(p)?)),
                None => (decode(a)?, None),
            },
        };
        // `host`, `host:port`, `[v6]` or `[v6]:port`.
        let (host, port) = match hostport.strip_prefix('[') {
            Some(v6) => {
                let (h, rest) = v6
                    .split_once(']')
                    .ok_or("the URL's [IPv6 address] has no closing ]")?;
                match rest.strip_prefix(':') {
                    Some(p) => (h.to_string(), port_number(p)?),
                    None if rest.is_empty() => (h.to_string(), 3306),
                    None => return Err(format!("the URL's host '{hostport}' is not one")),
                }
            }
            None => match hostport.split_once(':') {
                Some((h, p)) => (h.to_string(), port_number(p)?),
                None => (hostport.to_string(), 3306),
            },
        };
        let mut opts = Opts {
            host: if host.is_empty() {
                "localhost".into()
            } else {
                host
            },
            port,
            user,
            password,
            database,
            socket: None,
            tls: false,
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = decode(v)?;
            match k {
                "socket" => opts.socket = Some(PathBuf::from(v)),
                "ssl-mode" | "sslmode" => {
                    opts.tls = match v.to_ascii_uppercase().as_str() {
                        "DISABLED" | "DISABLE" => false,
                        "REQUIRED" | "REQUIRE" | "VERIFY_CA" | "VERIFY_IDENTITY" => true,
                        other => {
                            return Err(format!(
                                "ssl-mode '{other}': use DISABLED or REQUIRED (the certificate is always verified)"
                            ))
                        }
                    }
                }
                other => return Err(format!("the URL's parameter '{other}' is not known")),
            }
        }
        Ok(opts)
    }
}

fn port_number(p: &str) -> Result<u16, String> {
    p.parse::<u16>()
        .map_err(|_| format!("the URL's port '{p}' is not a port number"))
}

/// Percent-decoding of one part of a URL.
fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("a bad %-escape in the URL at '{}'", &s[i..]))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the URL is not UTF-8 once decoded".to_string())
}

/// Capability flags (the protocol's).
mod cap {
    pub(super) const LONG_PASSWORD: u32 = 1;
    pub(super) const FOUND_ROWS: u32 = 2;
    pub(super) const LONG_FLAG: u32 = 4;
    pub(super) const CONNECT_WITH_DB: u32 = 8;
    pub(super) const PROTOCOL_41: u32 = 0x200;
    pub(super) const SSL: u32 = 0x800;
    pub(super) const TRANSACTIONS: u32 = 0x2000;
    pub(super) const SECURE_CONNECTION: u32 = 0x8000;
    pub(super) const MULTI_STATEMENTS: u32 = 0x1_0000;
    pub(super) const MULTI_RESULTS: u32 = 0x2_0000;
    pub(super) const PS_MULTI_RESULTS: u32 = 0x4_0000;
    pub(super) const PLUGIN_AUTH: u32 = 0x8_0000;
    pub(super) const PLUGIN_AUTH_LENENC: u32 = 0x20_0000;
}

/// The `binary` character set: no conversion of any string, either way.
const BINARY: u8 = 63;

/// Commands (the protocol's numbers).
const COM_QUERY: u8 = 0x03;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;
const COM_STMT_CLOSE: u8 = 0x19;

/// A connection's byte stream, whatever carries it.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A parameter of a prepared statement.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Null,
    Int(i64),
    Bytes(&'a [u8]),
}

/// A prepared statement: its number on the connection that prepared it.
#[derive(Debug, Clone, Copy)]
pub struct Statement {
    id: u32,
    params: u16,
}

/// One result of a command: its rows (none for a statement that returns
/// none) and the rows it changed (found, for an UPDATE).
#[derive(Debug, Default)]
pub struct ResultSet {
    pub rows: Vec<Vec<Value>>,
    pub affected: u64,
}

/// What a command's answer is read as.
enum Expect {
    /// Results, rows in the text (`false`) or binary (`true`) protocol.
    Results(bool),
    /// A prepared statement's description.
    Prepared,
    /// Nothing (`COM_STMT_CLOSE` has no answer).
    Nothing,
}

enum Answer {
    Results(Vec<ResultSet>),
    Prepared(Statement),
}

struct Request {
    bytes: Vec<u8>,
    expect: Expect,
    reply: oneshot::Sender<Result<Answer, MyError>>,
}

/// A connection, shared: every clone sends on it.
#[derive(Clone)]
pub struct Client {
    tx: mpsc::Sender<Request>,
    closed: Arc<AtomicBool>,
    /// This end's address, over TCP.
    local: Option<std::net::SocketAddr>,
}

impl Client {
    /// Connects and logs in. The returned future runs the connection's
    /// I/O until it ends (spawn it); the client fails every request after.
    pub async fn connect(
        opts: &Opts,
        tls: Option<Arc<ClientConfig>>,
    ) -> Result<(Client, impl std::future::Future<Output = ()> + Send), MyError> {
        let mut local = None;
        let stream: Box<dyn Io> = match &opts.socket {
            Some(path) => {
                let s = UnixStream::connect(path).await.map_err(|e| {
                    MyError::Io(format!("cannot connect to {}: {e}", path.display()))
                })?;
                login(Box::new(s), opts, None, true).await?
            }
            None => {
                let s = TcpStream::connect((opts.host.as_str(), opts.port))
                    .await
                    .map_err(|e| {
                        MyError::Io(format!(
                            "cannot connect to {}:{}: {e}",
                            opts.host, opts.port
                        ))
                    })?;
                let _ = s.set_nodelay(true);
                local = s.local_addr().ok();
                let tls = match (opts.tls, tls) {
                    (true, Some(c)) => Some(c),
                    (true, None) => {
                        return Err(MyError::Login(
                            "ssl-mode=REQUIRED needs the database's certificate authorities (database_ca_file)".into(),
                        ))
                    }
                    (false, Some(c)) => Some(c),
                    (false, None) => None,
                };
                login(Box::new(s), opts, tls, false).await?
            }
        };
        let (tx, rx) = mpsc::channel::<Request>(1024);
        let closed = Arc::new(AtomicBool::new(false));
        let driver = drive(stream, rx, closed.clone());
        Ok((Client { tx, closed, local }, driver))
    }

    /// Whether the connection ended.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed) || self.tx.is_closed()
    }

    /// This end's address (None over a Unix socket).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.local
    }

    async fn send(&self, payload: &[u8], expect: Expect) -> Result<Answer, MyError> {
        let mut bytes = Vec::with_capacity(payload.len() + 4);
        wire::frame(payload, 0, &mut bytes);
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                bytes,
                expect,
                reply,
            })
            .await
            .map_err(|_| MyError::Io("the connection ended".into()))?;
        rx.await
            .map_err(|_| MyError::Io("the connection ended".into()))?
    }

    /// Runs `sql` (one statement, or several separated by `;`), rows in
    /// text: every value bytes or NULL.
    pub async fn query(&self, sql: &str) -> Result<Vec<ResultSet>, MyError> {
        let mut p = Vec::with_capacity(sql.len() + 1);
        p.push(COM_QUERY);
        p.extend_from_slice(sql.as_bytes());
        match self.send(&p, Expect::Results(false)).await? {
            Answer::Results(r) => Ok(r),
            Answer::Prepared(_) => Err(protocol("a statement where results were due")),
        }
    }

    /// Prepares `sql` on this connection.
    pub async fn prepare(&self, sql: &str) -> Result<Statement, MyError> {
        let mut p = Vec::with_capacity(sql.len() + 1);
        p.push(COM_STMT_PREPARE);
        p.extend_from_slice(sql.as_bytes());
        match self.send(&p, Expect::Prepared).await? {
            Answer::Prepared(s) => Ok(s),
            Answer::Results(_) => Err(protocol("results where a statement was due")),
        }
    }

    /// Closes a statement this connection prepared (it has no answer; if
    /// the connection is busy or gone, the statement goes with it).
    pub fn close_statement(&self, st: Statement) {
        let mut p = vec![COM_STMT_CLOSE];
        p.extend_from_slice(&st.id.to_le_bytes());
        let mut bytes = Vec::with_capacity(9);
        wire::frame(&p, 0, &mut bytes);
        let (reply, _) = oneshot::channel();
        let _ = self.tx.try_send(Request {
            bytes,
            expect: Expect::Nothing,
            reply,
        });
    }

    /// Runs a statement this connection prepared.
    pub async fn execute(
        &self,
        st: &Statement,
        params: &[Param<'_>],
    ) -> Result<Vec<ResultSet>, MyError> {
        if params.len() != usize::from(st.params) {
            return Err(MyError::Protocol(format!(
                "{} parameters for a statement of {}",
                params.len(),
                st.params
            )));
        }
        let mut p = Vec::with_capacity(
            16 + params
                .iter()
                .map(|x| match x {
                    Param::Bytes(b) => b.len() + 9,
                    _ => 10,
                })
                .sum::<usize>(),
        );
        p.push(COM_STMT_EXECUTE);
        p.extend_from_slice(&st.id.to_le_bytes());
        p.push(0); // no cursor
        p.extend_from_slice(&1u32.to_le_bytes());
        if !params.is_empty() {
            let mut nulls = vec![0u8; params.len().div_ceil(8)];
            for (i, x) in params.iter().enumerate() {
                if matches!(x, Param::Null) {
                    nulls[i / 8] |= 1 << (i % 8);
                }
            }
            p.extend_from_slice(&nulls);
            p.push(1); // the types follow
            for x in params {
                let t = match x {
                    Param::Null => kind::NULL,
                    Param::Int(_) => kind::LONGLONG,
                    Param::Bytes(_) => kind::BLOB,
                };
                p.extend_from_slice(&[t, 0]);
            }
            for x in params {
                match x {
                    Param::Null => {}
                    Param::Int(v) => p.extend_from_slice(&v.to_le_bytes()),
                    Param::Bytes(b) => wire::put_lenenc_bytes(&mut p, b),
                }
            }
        }
        match self.send(&p, Expect::Results(true)).await? {
            Answer::Results(r) => Ok(r),
            Answer::Prepared(_) => Err(protocol("a statement where results were due")),
        }
    }
}

/// Logs in on `stream` (switching it to TLS first if `tls` is given);
/// returns the stream to go on with.
async fn login(
    mut stream: Box<dyn Io>,
    opts: &Opts,
    tls: Option<Arc<ClientConfig>>,
    local: bool,
) -> Result<Box<dyn Io>, MyError> {
    let mut buf = Vec::new();
    let seq = wire::read_payload(&mut stream, &mut buf, 1 << 16).await?;
    if buf.first() == Some(&0xff) {
        return Err(wire::err_packet(&buf));
    }
    let mut c = Cur::new(&buf);
    if c.u8()? != 10 {
        return Err(protocol("not protocol version 10 (MySQL 4.1 or later)"));
    }
    c.nul_str(); // the server's version
    c.u32()?;
    let mut scramble = c.take(8)?.to_vec();
    c.u8()?;
    let mut server_caps = u32::from(c.u16()?);
    let mut plugin = Vec::new();
    if !c.b.is_empty() {
        c.u8()?;
        c.u16()?;
        server_caps |= u32::from(c.u16()?) << 16;
        let auth_len = usize::from(c.u8()?);
        c.take(10)?;
        if server_caps & cap::SECURE_CONNECTION != 0 {
            let n = auth_len.saturating_sub(8).max(13);
            let part = c.take(n.min(c.b.len()))?;
            scramble.extend_from_slice(part.strip_suffix(&[0]).unwrap_or(part));
        }
        if server_caps & cap::PLUGIN_AUTH != 0 {
            plugin = c.nul_str().to_vec();
        }
    }
    if server_caps & cap::PROTOCOL_41 == 0 {
        return Err(protocol("the server does not speak protocol 4.1"));
    }
    let mut caps = cap::LONG_PASSWORD
        | cap::FOUND_ROWS
        | cap::LONG_FLAG
        | cap::CONNECT_WITH_DB
        | cap::PROTOCOL_41
        | cap::TRANSACTIONS
        | cap::SECURE_CONNECTION
        | cap::MULTI_STATEMENTS
        | cap::MULTI_RESULTS
        | cap::PS_MULTI_RESULTS
        | cap::PLUGIN_AUTH
        | cap::PLUGIN_AUTH_LENENC;
    caps &= server_caps | cap::CONNECT_WITH_DB;
    let mut seq = seq.wrapping_add(1);
    let mut secure = local;
    if let Some(config) = tls {
        if server_caps & cap::SSL == 0 {
            return Err(MyError::Login(
                "TLS was asked for, and the server does not offer it".into(),
            ));
        }
        caps |= cap::SSL;
        let mut p = Vec::with_capacity(32);
        p.extend_from_slice(&caps.to_le_bytes());
        p.extend_from_slice(&(MAX_REPLY as u32).to_le_bytes());
        p.push(BINARY);
        p.extend_from_slice(&[0; 23]);
        let mut out = Vec::new();
        seq = wire::frame(&p, seq, &mut out);
        stream.write_all(&out).await?;
        let name = ServerName::try_from(opts.host.clone())
            .map_err(|e| MyError::Login(format!("the host '{}': {e}", opts.host)))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|e| MyError::Io(format!("TLS: {e}")))?;
        stream = Box::new(tls);
        secure = true;
    }
    let password = opts.password.clone().unwrap_or_default();
    let (first_plugin, first) = match auth_response(&plugin, &scramble, &password, secure) {
        Ok(r) => (plugin.clone(), r),
        // A method this client cannot start with: answer as the native
        // one, and the server says which it wants.
        Err(_) => (
            b"mysql_native_password".to_vec(),
            native(&scramble, &password),
        ),
    };
    let mut p = Vec::with_capacity(128);
    p.extend_from_slice(&caps.to_le_bytes());
    p.extend_from_slice(&(MAX_REPLY as u32).to_le_bytes());
    p.push(BINARY);
    p.extend_from_slice(&[0; 23]);
    p.extend_from_slice(opts.user.as_bytes());
    p.push(0);
    wire::put_lenenc_bytes(&mut p, &first);
    p.extend_from_slice(opts.database.as_bytes());
    p.push(0);
    p.extend_from_slice(&first_plugin);
    p.push(0);
    let mut out = Vec::new();
    wire::frame(&p, seq, &mut out);
    stream.write_all(&out).await?;
    stream.flush().await?;
    let mut plugin = first_plugin;
    loop {
        let seq = wire::read_payload(&mut stream, &mut buf, 1 << 16).await?;
        let reply = match buf.first() {
            Some(0x00) => return Ok(stream),
            Some(0xff) => return Err(wire::err_packet(&buf)),
            Some(0xfe) => {
                // Switch to the method the server names, on its new nonce.
                let mut c = Cur::new(&buf[1..]);
                plugin = c.nul_str().to_vec();
                let data = c.b.strip_suffix(&[0]).unwrap_or(c.b);
                scramble = data.to_vec();
                auth_response(&plugin, &scramble, &password, secure)?
            }
            Some(0x01) if plugin == b"caching_sha2_password" => match buf.get(1) {
                // The server had the password cached: its OK follows.
                Some(3) => continue,
                Some(4) if secure => {
                    let mut r = password.as_bytes().to_vec();
                    r.push(0);
                    r
                }
                Some(4) => {
                    return Err(MyError::Login(format!(
                        "user '{}' logs in with caching_sha2_password, whose first login after the server starts sends the password: this client sends it only over TLS (ssl-mode=REQUIRED) or a Unix socket",
                        opts.user
                    )))
                }
                _ => return Err(protocol("an unknown caching_sha2_password step")),
            },
            _ => return Err(protocol("an unknown login step")),
        };
        let mut out = Vec::new();
        wire::frame(&reply, seq.wrapping_add(1), &mut out);
        stream.write_all(&out).await?;
        stream.flush().await?;
    }
}

/// The answer to the server's nonce for login method `plugin`.
fn auth_response(
    plugin: &[u8],
    scramble: &[u8],
    password: &str,
    secure: bool,
) -> Result<Vec<u8>, MyError> {
    match plugin {
        b"mysql_native_password" | b"" => Ok(native(scramble, password)),
        b"caching_sha2_password" => Ok(caching_sha2(scramble, password)),
        b"mysql_clear_password" if secure => {
            let mut r = password.as_bytes().to_vec();
            r.push(0);
            Ok(r)
        }
        b"mysql_clear_password" => Err(MyError::Login(
            "the server asks for the password in the clear (mysql_clear_password): this client sends it only over TLS or a Unix socket".into(),
        )),
        other => Err(MyError::Login(format!(
            "the login method {} is not one this client has (mysql_native_password, caching_sha2_password, mysql_clear_password)",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// `mysql_native_password`: SHA1(password) XOR SHA1(nonce, SHA1(SHA1(password))).
fn native(scramble: &[u8], password: &str) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let nonce = &scramble[..scramble.len().min(20)];
    let h1 = Sha1::digest(password.as_bytes());
    let h2 = Sha1::digest(h1);
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(h2);
    let h3 = h.finalize();
    h1.iter().zip(h3.iter()).map(|(a, b)| a ^ b).collect()
}

/// `caching_sha2_password`: SHA256(password) XOR SHA256(SHA256(SHA256(password)), nonce).
fn caching_sha2(scramble: &[u8], password: &str) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let nonce = &scramble[..scramble.len().min(20)];
    let h1 = Sha256::digest(password.as_bytes());
    let h2 = Sha256::digest(h1);
    let mut h = Sha256::new();
    h.update(h2);
    h.update(nonce);
    let h3 = h.finalize();
    h1.iter().zip(h3.iter()).map(|(a, b)| a ^ b).collect()
}

/// The connection's I/O: the writer sends requests as they come (several
/// at once when several wait), telling the reader what each answer is
/// before it is sent; the reader reads the answers in order.
async fn drive(stream: Box<dyn Io>, mut rx: mpsc::Receiver<Request>, closed: Arc<AtomicBool>) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (ptx, mut prx) =
        mpsc::unbounded_channel::<(Expect, oneshot::Sender<Result<Answer, MyError>>)>();
    let writer = async move {
        let mut out = Vec::new();
        while let Some(first) = rx.recv().await {
            out.clear();
            let mut next = Some(first);
            while let Some(r) = next.take() {
                out.extend_from_slice(&r.bytes);
                if !matches!(r.expect, Expect::Nothing) && ptx.send((r.expect, r.reply)).is_err() {
                    return;
                }
                if out.len() < 1 << 16 {
                    next = rx.try_recv().ok();
                }
            }
            if let Err(e) = async {
                wr.write_all(&out).await?;
                wr.flush().await
            }
            .await
            {
                tracing::warn!(error = %e, "a MySQL connection ended");
                return;
            }
        }
    };
    let reader = async move {
        let mut buf = Vec::new();
        while let Some((expect, reply)) = prx.recv().await {
            let answer = read_answer(&mut rd, &expect, &mut buf).await;
            let fatal = matches!(answer, Err(MyError::Io(_) | MyError::Protocol(_)));
            if let Err(e) = &answer {
                if fatal {
                    tracing::warn!(error = %e, "a MySQL connection ended");
                }
            }
            let _ = reply.send(answer);
            if fatal {
                return;
            }
        }
    };
    tokio::select! {
        () = writer => {}
        () = reader => {}
    }
    closed.store(true, Ordering::Relaxed);
}

/// Reads one command's answer.
async fn read_answer<R: AsyncRead + Unpin>(
    rd: &mut R,
    expect: &Expect,
    buf: &mut Vec<u8>,
) -> Result<Answer, MyError> {
    match expect {
        Expect::Nothing => Err(protocol("an answer to a command that has none")),
        Expect::Prepared => {
            wire::read_payload(rd, buf, MAX_REPLY).await?;
            if buf.first() == Some(&0xff) {
                return Err(wire::err_packet(buf));
            }
            let mut c = Cur::new(buf);
            if c.u8()? != 0 {
                return Err(protocol("a bad answer to PREPARE"));
            }
            let id = c.u32()?;
            let columns = c.u16()?;
            let params = c.u16()?;
            // Their definitions, each list ended by an EOF.
            for n in [params, columns] {
                if n > 0 {
                    for _ in 0..n {
                        wire::read_payload(rd, buf, MAX_REPLY).await?;
                    }
                    wire::read_payload(rd, buf, MAX_REPLY).await?;
                }
            }
            Ok(Answer::Prepared(Statement { id, params }))
        }
        Expect::Results(binary) => {
            let mut sets = Vec::new();
            loop {
                wire::read_payload(rd, buf, MAX_REPLY).await?;
                match buf.first() {
                    Some(0x00) => {
                        let ok = wire::ok_packet(buf)?;
                        sets.push(ResultSet {
                            rows: Vec::new(),
                            affected: ok.affected,
                        });
                        if ok.status & wire::MORE_RESULTS == 0 {
                            return Ok(Answer::Results(sets));
                        }
                    }
                    Some(0xff) => return Err(wire::err_packet(buf)),
                    Some(0xfb) => return Err(protocol("the server asked for a local file")),
                    _ => {
                        let n = Cur::new(buf)
                            .lenenc()?
                            .ok_or_else(|| protocol("a NULL column count"))?;
                        let n = usize::try_from(n)
                            .ok()
                            .filter(|&n| n <= 4096)
                            .ok_or_else(|| protocol("too many columns"))?;
                        let mut columns: Vec<Column> = Vec::with_capacity(n);
                        for _ in 0..n {
                            wire::read_payload(rd, buf, MAX_REPLY).await?;
                            columns.push(wire::column(buf)?);
                        }
                        wire::read_payload(rd, buf, MAX_REPLY).await?;
                        if !wire::is_eof(buf) {
                            return Err(protocol("no EOF after the column definitions"));
                        }
                        let mut set = ResultSet::default();
                        let status = loop {
                            wire::read_payload(rd, buf, MAX_REPLY).await?;
                            if wire::is_eof(buf) {
                                break wire::eof_status(buf)?;
                            }
                            if buf.first() == Some(&0xff) {
                                return Err(wire::err_packet(buf));
                            }
                            set.rows.push(if *binary {
                                wire::binary_row(buf, &columns)?
                            } else {
                                wire::text_row(buf, n)?
                            });
                        };
                        sets.push(set);
                        if status & wire::MORE_RESULTS == 0 {
                            return Ok(Answer::Results(sets));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_with_their_parts_decoded() {
        let o = Opts::parse("mysql://app:p%40ss@db.example:3307/sessions?ssl-mode=REQUIRED")
            .expect("parse");
        assert_eq!(
            o,
            Opts {
                host: "db.example".into(),
                port: 3307,
                user: "app".into(),
                password: Some("p@ss".into()),
                database: "sessions".into(),
                socket: None,
                tls: true,
            }
        );
        let o = Opts::parse("mariadb://root@localhost/s?socket=%2Frun%2Fmysqld.sock").expect("p");
        assert_eq!(o.socket, Some(PathBuf::from("/run/mysqld.sock")));
        assert_eq!((o.port, o.password), (3306, None));
        let v6 = |u: &str| Opts::parse(u).map(|o| (o.host, o.port));
        assert_eq!(v6("mysql://[::1]:3307/d"), Ok(("::1".into(), 3307)));
        assert_eq!(v6("mysql://[::1]/d"), Ok(("::1".into(), 3306)));
        assert!(Opts::parse("mysql://[::1/d").is_err());
        assert!(Opts::parse("mysql://h/").is_err(), "no database");
        assert!(Opts::parse("postgres://h/d").is_err());
        assert!(Opts::parse("mysql://h:99999/d").is_err());
        assert!(Opts::parse("mysql://h/d?ssl-mode=PREFERRED").is_err());
        assert!(Opts::parse("mysql://h/d?nope=1").is_err());
    }

    #[test]
    fn an_empty_password_answers_nothing() {
        assert!(native(&[1; 20], "").is_empty());
        assert_eq!(native(&[1; 20], "secret").len(), 20);
        assert_eq!(caching_sha2(&[1; 20], "secret").len(), 32);
    }
}
