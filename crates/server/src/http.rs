//! The HTTP door (`listen_http`, default `127.0.0.1:8390`): health and
//! readiness probes and Prometheus metrics, under the same users, tenants
//! and roles as every other door (HTTP Basic authentication).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use base64ct::{Base64, Encoding};
use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::{json, Value};
use sessiond_core::{Access, Command, Error, LockMode, Reply, SessionId};
use tokio::sync::watch;

use crate::auth::{Refused, Role};
use crate::link::DurableMark;
use crate::metrics::{resident_memory_bytes, Families, Proto};
use crate::server::{Door, Shared};
use crate::stream::Stream;
use crate::tenant::Tenant;

/// Serves one HTTP/1.1 connection (already through the allowlist, the
/// connection limits and any TLS handshake, like every door's) until the
/// client is done or the server stops; then in-flight requests finish.
pub(crate) async fn serve(stream: Stream, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let peer = Peer(stream.peer());
    let stream = Counted {
        inner: stream,
        shared: shared.clone(),
    };
    let request_timeout = shared.timeouts.request;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/", get(dashboard))
        .route("/api/v1/stats", get(stats))
        .route(
            "/api/v1/sessions",
            get(list_sessions).delete(destroy_sessions),
        )
        .route("/api/v1/find", get(find_sessions))
        .route(
            "/api/v1/sessions/{id}",
            get(get_session).delete(destroy_session),
        )
        .with_state(shared)
        .layer(Extension(peer));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(request_timeout)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(conn);
    let stopping = async move {
        let _ = stop.wait_for(|stopping| *stopping).await;
    };
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        () = stopping => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// The connection's stream, counting its bytes in and out.
struct Counted {
    inner: Stream,
    shared: Arc<Shared>,
}

impl Counted {
    fn counters(&self) -> &crate::metrics::DoorCounters {
        &self.shared.doors[Door::Http as usize]
    }
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut me.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        me.counters()
            .bytes_in
            .fetch_add(n as u64, Ordering::Relaxed);
        polled
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        let polled = std::pin::Pin::new(&mut me.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &polled {
            me.counters()
                .bytes_out
                .fetch_add(*n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The client's address, for the failed-login brake.
#[derive(Clone, Copy)]
struct Peer(IpAddr);

/// Alive: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready for traffic: answering at all means recovery is done, as the
/// listeners open only after it (and close when a shutdown begins).
async fn readyz() -> &'static str {
    "ready\n"
}

/// What a request may see: the tenants, whether server-wide figures, and
/// what it may do.
struct Scope {
    tenants: Vec<Arc<Tenant>>,
    server_wide: bool,
    role: Role,
}

/// Every handler that needs a login takes a `Scope`: the credentials are
/// checked before the handler runs, and a refusal answers for it.
impl FromRequestParts<Arc<Shared>> for Scope {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, Response> {
        let peer = parts
            .extensions
            .get::<Peer>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |p| p.0);
        scope(shared, peer, &parts.headers).await
    }
}

/// Checks the request's Basic credentials when the server has users.
async fn scope(shared: &Shared, peer: IpAddr, headers: &HeaderMap) -> Result<Scope, Response> {
    if !shared.auth.required() {
        return Ok(Scope {
            tenants: shared.tenants.iter().cloned().collect(),
            server_wide: true,
            role: Role::Admin,
        });
    }
    let challenge = || {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"sessiond\"")],
            "authentication required: HTTP Basic with a sessiond user\n",
        )
            .into_response()
    };
    let Some((user, password)) = basic_credentials(headers) else {
        return Err(challenge());
    };
    match shared.auth.login(peer, Some(&user), &password).await {
        Ok(login) => {
            let tenant = shared.tenants.get(&login.tenant).cloned();
            Ok(Scope {
                tenants: tenant.into_iter().collect(),
                server_wide: login.role == Role::Admin,
                role: login.role,
            })
        }
        Err(Refused::Throttled(s)) => Err((
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, s.to_string())],
            format!("{}\n", Refused::Throttled(s).message()),
        )
            .into_response()),
        Err(_) => Err(challenge()),
    }
}

/// `Authorization: Basic base64(user:password)`.
fn basic_credentials(headers: &HeaderMap) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = Base64::decode_vec(token.trim()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

/// `/metrics`: Prometheus text format, names prefixed `sessiond_`.
async fn metrics(State(shared): State<Arc<Shared>>, scope: Scope) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&shared, &scope),
    )
        .into_response()
}

/// `/`: the dashboard, one page that reads the JSON API.
async fn dashboard(_scope: Scope) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Scripts and styles are the page's own; nothing else loads.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
            ),
        ],
        include_str!("dashboard.html"),
    )
        .into_response()
}

/// `GET /api/v1/stats`: the figures the dashboard shows (and `/metrics`
/// exports), as JSON: per tenant the caller may see, and server-wide for
/// admins.
async fn stats(State(shared): State<Arc<Shared>>, scope: Scope) -> Response {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let tenants: Vec<Value> = scope
        .tenants
        .iter()
        .map(|t| {
            let s = t.engine().stats();
            let m = &t.metrics;
            let counts = |v: Vec<(&'static str, u64)>| {
                v.into_iter()
                    .map(|(k, n)| (k.to_string(), Value::from(n)))
                    .collect::<serde_json::Map<_, _>>()
            };
            let persistence = t.persistence().map(|p| {
                json!({
                    "fsync": p.fsync().name(),
                    "log_bytes": p.log_bytes(),
                    "log_records": p.appended(),
                    "pending_records": p.pending(),
                    "snapshot_bytes": p.snapshot_bytes(),
                    "fsyncs": p.fsyncs().count(),
                    "fsync_avg_us": p.fsyncs().mean_us(),
                    "snapshots": p.snapshots().count(),
                })
            });
            json!({
                "name": t.name(),
                "sessions": s.sessions,
                "bytes": s.bytes,
                "commands": m.commands_total(),
                "errors": m.errors_total(),
                "expired_sessions": s.expired_sessions,
                "lease_expiries": s.expired_leases,
                "lock_waits": load(&m.lock_waits),
                "lock_waiting": m.lock_waiting.load(Ordering::Relaxed).max(0),
                "lock_wait_failures": load(&m.lock_wait_failures),
                "lock_wait_avg_us": m.lock_wait.mean_us(),
                "commands_by_name": counts(m.by_command()),
                "errors_by_code": counts(m.by_error()),
                "contended": m.hot(10).into_iter().map(|(id, waits)| json!({
                    "id": String::from_utf8_lossy(&id),
                    "waits": waits,
                })).collect::<Vec<_>>(),
                "persistence": persistence,
            })
        })
        .collect();
    let mut body = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": shared.started.elapsed().as_secs(),
        "tenants": tenants,
    });
    if scope.server_wide {
        let doors: serde_json::Map<_, _> = Door::ALL
            .iter()
            .map(|&d| {
                let c = &shared.doors[d as usize];
                (
                    d.label().to_string(),
                    json!({
                        "connections": c.open.load(Ordering::Relaxed).max(0),
                        "accepted": load(&c.accepted),
                        "bytes_in": load(&c.bytes_in),
                        "bytes_out": load(&c.bytes_out),
                    }),
                )
            })
            .collect();
        body["server"] = json!({
            "doors": doors,
            "resident_memory_bytes": resident_memory_bytes(),
            "connections_rejected": load(&shared.admission.rejected),
            "auth_failures": shared.auth.refusals().0,
        });
    }
    Json(body).into_response()
}

/// `GET /api/v1/sessions/{id}`: one session of the caller's tenant, as
/// JSON, without refreshing its expiry.
async fn get_session(scope: Scope, Path(id): Path<String>) -> Response {
    // Without users there is one tenant; with users, the user's own.
    let Some(tenant) = scope.tenants.first() else {
        return not_found(&id);
    };
    let sid = SessionId::new(Bytes::from(id.clone().into_bytes()));
    let Some((s, lock)) = tenant.engine().peek(&sid) else {
        return not_found(&id);
    };
    let now = tenant.engine().now_ms();
    let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    let mut body = json!({
        "id": id,
        "tenant": tenant.name(),
        "class": s.class().map(text),
        "created_ms": s.created_ms,
        "accessed_ms": s.accessed_ms,
        "timeout_s": s.timeout_ms / 1000,
        "ttl_ms": s.ttl_ms(now),
        "version": s.version,
        "flags": s.flags,
        "lock": match lock {
            None => "none",
            Some(LockMode::Read) => "read",
            Some(LockMode::Write) => "write",
        },
        "vars": s.vars().iter().map(|(k, v)| (text(k), Value::from(text(v)))).collect::<serde_json::Map<_, _>>(),
        "php": s.php().iter().map(|(k, v)| (text(k), Value::from(text(v)))).collect::<serde_json::Map<_, _>>(),
    });
    // Data as text when it is text, else as base64: never silently mangled.
    match std::str::from_utf8(&s.data) {
        Ok(t) => body["data"] = Value::from(t),
        Err(_) => body["data_base64"] = Value::from(Base64::encode_string(&s.data)),
    }
    Json(body).into_response()
}

/// Query of `GET /api/v1/sessions`: one page.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    /// The cursor a previous page returned (`0` to start).
    cursor: Option<String>,
    /// Ids per page.
    count: Option<usize>,
    /// Only sessions of this class.
    class: Option<String>,
}

/// Query of `GET /api/v1/find` and `DELETE /api/v1/sessions`: the
/// sessions whose variable `var` (or PHP entry) equals `value`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VarQuery {
    var: String,
    value: String,
}

/// Query of `GET /api/v1/find`: the sessions whose variable `var` equals
/// `value`, all of them or (with `cursor`) a page.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FindQuery {
    var: String,
    value: String,
    /// The cursor a previous page returned (`0` to start).
    cursor: Option<String>,
    /// Ids per page.
    count: Option<usize>,
}

/// A query string as `T`, or a refusal as JSON like every other: a
/// malformed or incomplete one, or one with a parameter the operation does
/// not know (a typo is not silently ignored).
fn query<T: serde::de::DeserializeOwned>(q: Result<Query<T>, QueryRejection>) -> Result<T, String> {
    q.map(|Query(q)| q).map_err(|e| e.body_text())
}

fn bad_request(why: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": why }))).into_response()
}

/// `GET /api/v1/sessions`: one page of ids (`cursor`, `count`, `class`).
async fn list_sessions(scope: Scope, q: Result<Query<PageQuery>, QueryRejection>) -> Response {
    let q = match query(q) {
        Ok(q) => q,
        Err(why) => return bad_request(why),
    };
    let count = q.count.unwrap_or(100);
    if !(1..=10_000).contains(&count) {
        return bad_request(format!("count is {count}; give 1 to 10000"));
    }
    let scan = run(
        &scope,
        Command::Scan {
            cursor: Bytes::from(q.cursor.unwrap_or_else(|| "0".into())),
            count,
            class: q.class.map(Bytes::from),
        },
    )
    .await;
    id_page(scan)
}

/// The sessions where variable `var` has `value`.
async fn find(scope: &Scope, q: VarQuery) -> Result<Vec<Reply>, Response> {
    if q.var.is_empty() {
        return Err(bad_request("var is empty: name a variable".into()));
    }
    let found = run(
        scope,
        Command::Find {
            name: Bytes::from(q.var),
            value: Bytes::from(q.value),
        },
    )
    .await;
    match found {
        Ok(Reply::Array(ids)) => Ok(ids),
        Ok(other) => Err(unexpected(&other)),
        Err(e) => Err(failure(&e)),
    }
}

/// `GET /api/v1/find?var=user_id&value=42`: every session where that
/// variable has that value ("which sessions belong to user 42").
async fn find_sessions(scope: Scope, q: Result<Query<FindQuery>, QueryRejection>) -> Response {
    let q = match query(q) {
        Ok(q) => q,
        Err(why) => return bad_request(why),
    };
    let count = q.count.unwrap_or(100);
    if !(1..=10_000).contains(&count) {
        return bad_request(format!("count is {count}; give 1 to 10000"));
    }
    let Some(cursor) = q.cursor else {
        let all = VarQuery {
            var: q.var,
            value: q.value,
        };
        return match find(&scope, all).await {
            Ok(ids) => Json(json!({ "sessions": texts(ids) })).into_response(),
            Err(refusal) => refusal,
        };
    };
    if q.var.is_empty() {
        return bad_request("var is empty: name a variable".into());
    }
    let page = run(
        &scope,
        Command::FindPage {
            name: Bytes::from(q.var),
            value: Bytes::from(q.value),
            cursor: Bytes::from(cursor),
            count,
        },
    )
    .await;
    id_page(page)
}

/// A page of ids (`[cursor, [ids]]`) as `{"sessions": […], "cursor": …}`.
fn id_page(page: Result<Reply, Error>) -> Response {
    match page {
        Ok(Reply::Array(mut page)) if page.len() == 2 => {
            let ids = match page.pop() {
                Some(Reply::Array(ids)) => texts(ids),
                _ => Vec::new(),
            };
            let next = match page.pop() {
                Some(Reply::Bulk(c)) => String::from_utf8_lossy(&c).into_owned(),
                _ => "0".into(),
            };
            Json(json!({ "sessions": ids, "cursor": next })).into_response()
        }
        Ok(other) => unexpected(&other),
        Err(e) => failure(&e),
    }
}

/// `DELETE /api/v1/sessions/{id}`: destroy one session.
async fn destroy_session(scope: Scope, Path(id): Path<String>) -> Response {
    let id = SessionId::new(Bytes::from(id.into_bytes()));
    // A session that is not there is a 404 (NOSESSION), as for GET.
    match run(&scope, Command::Destroy { id }).await {
        Ok(_) => Json(json!({ "destroyed": 1 })).into_response(),
        Err(e) => failure(&e),
    }
}

/// `DELETE /api/v1/sessions?var=user_id&value=42`: destroy every session
/// where that variable has that value — log the user out everywhere.
async fn destroy_sessions(scope: Scope, q: Result<Query<VarQuery>, QueryRejection>) -> Response {
    let q = match query(q) {
        Ok(q) => q,
        Err(why) => return bad_request(why),
    };
    // Refused before the search for a role that may not destroy.
    if let Err(e) = scope.role.check(Access::Write) {
        return failure(&e);
    }
    let found = match find(&scope, q).await {
        Ok(ids) => ids,
        Err(refusal) => return refusal,
    };
    let mut destroyed = 0u64;
    for id in found {
        if let Reply::Bulk(id) = id {
            // One gone meanwhile is no error: it is out either way.
            if run(
                &scope,
                Command::Destroy {
                    id: SessionId::new(id),
                },
            )
            .await
            .is_ok()
            {
                destroyed += 1;
            }
        }
    }
    Json(json!({ "destroyed": destroyed })).into_response()
}

/// Runs `cmd` in the scope's tenant if its role allows it; a write is
/// answered once it is as durable as the `fsync` policy promises.
async fn run(scope: &Scope, cmd: Command) -> Result<Reply, Error> {
    let Some(tenant) = scope.tenants.first() else {
        return Err(Error::NotAuthenticated);
    };
    let index = cmd.index();
    let started = std::time::Instant::now();
    if let Err(e) = scope.role.check(cmd.access()) {
        tenant
            .metrics
            .command(Proto::Http, index, started.elapsed(), Some(&e));
        return Err(e);
    }
    let engine = tenant.engine();
    // The same group-commit mark the socket doors use.
    let before = DurableMark::before(tenant.persistence(), cmd.is_write());
    let client = engine.connect();
    let result = if cmd.is_heavy() {
        tenant.offload.run(engine, &client, cmd).await
    } else {
        engine.execute_now(&client, cmd)
    };
    engine.disconnect(&client);
    tenant
        .metrics
        .command(Proto::Http, index, started.elapsed(), result.as_ref().err());
    let mut mark = DurableMark::default();
    mark.after(tenant.persistence(), before);
    mark.wait(tenant.persistence()).await;
    result
}

fn texts(ids: Vec<Reply>) -> Vec<String> {
    ids.into_iter()
        .filter_map(|r| match r {
            Reply::Bulk(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            _ => None,
        })
        .collect()
}

/// An engine error as an HTTP status and a JSON body.
fn failure(e: &Error) -> Response {
    let status = match e {
        Error::NoSession(_) | Error::DestroyedWhileWaiting(_) => StatusCode::NOT_FOUND,
        Error::NotAuthenticated => StatusCode::UNAUTHORIZED,
        Error::NotPermitted { .. } => StatusCode::FORBIDDEN,
        Error::Locked { .. } | Error::Exists(_) | Error::StaleKey { .. } => StatusCode::CONFLICT,
        Error::LimitExceeded { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Random(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    (
        status,
        Json(json!({ "error": e.to_string(), "code": e.code() })),
    )
        .into_response()
}

fn unexpected(reply: &Reply) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "error": format!("unexpected engine reply {reply:?}") })),
    )
        .into_response()
}

fn not_found(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": format!("no session '{id}'") })),
    )
        .into_response()
}

fn render(shared: &Shared, scope: &Scope) -> String {
    let mut f = Families::default();
    for t in &scope.tenants {
        let s = t.engine().stats();
        let label = format!("tenant=\"{}\"", t.name());
        f.series("sessions", &label, s.sessions);
        f.series("session_bytes", &label, s.bytes);
        f.series("locks", &label, s.locks);
        f.series("lock_bytes", &label, s.lock_bytes);
        f.series("expired_sessions_total", &label, s.expired_sessions);
        f.series("lease_expiries_total", &label, s.expired_leases);
        f.series("refused_unlocks_total", &label, s.refused_unlocks);
        f.series("commands_total", &label, t.metrics.commands_total());
        t.metrics.render(&mut f, t.name());
        if let Some(p) = t.persistence() {
            f.series("log_records_total", &label, p.appended());
            f.series("log_bytes", &label, p.log_bytes());
            f.series("snapshot_bytes", &label, p.snapshot_bytes());
            f.series("log_pending_records", &label, p.pending());
            f.histogram("fsync_duration_seconds", &label, p.fsyncs());
            f.histogram("snapshot_duration_seconds", &label, p.snapshots());
        }
    }
    if scope.server_wide {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for door in Door::ALL {
            let c = &shared.doors[door as usize];
            let label = format!("door=\"{}\"", door.label());
            f.series(
                "connections",
                &label,
                u64::try_from(c.open.load(Ordering::Relaxed)).unwrap_or(0),
            );
            f.series("connections_accepted_total", &label, load(&c.accepted));
            f.series("received_bytes_total", &label, load(&c.bytes_in));
            f.series("sent_bytes_total", &label, load(&c.bytes_out));
            f.series(
                "output_limit_disconnects_total",
                &label,
                load(&c.output_cutoffs),
            );
        }
        let (failed, throttled) = shared.auth.refusals();
        f.series(
            "connections_rejected_total",
            "",
            load(&shared.admission.rejected),
        );
        f.series("allowlist_denied_total", "", load(&shared.denied));
        f.series(
            "tls_handshake_failures_total",
            "",
            load(&shared.tls_failures),
        );
        f.series("auth_failures_total", "", failed);
        f.series("auth_throttled_total", "", throttled);
        if let Some(rss) = resident_memory_bytes() {
            f.series("resident_memory_bytes", "", rss);
        }
        f.series("uptime_seconds", "", shared.started.elapsed().as_secs());
    }
    f.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_read_and_anything_else_is_not() {
        let mut h = HeaderMap::new();
        assert_eq!(basic_credentials(&h), None);
        h.insert(
            header::AUTHORIZATION,
            "Basic YWxpY2U6cHc6eA==".parse().unwrap(),
        );
        assert_eq!(
            basic_credentials(&h),
            Some((b"alice".to_vec(), b"pw:x".to_vec())),
            "the password may hold colons"
        );
        h.insert(
            header::AUTHORIZATION,
            "Bearer YWxpY2U6cHc=".parse().unwrap(),
        );
        assert_eq!(basic_credentials(&h), None);
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(basic_credentials(&h), None);
    }
}
