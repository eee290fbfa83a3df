//! The HTTP door (`listen_http`, default `127.0.0.1:8390`): health and
//! readiness probes and Prometheus metrics, under the same users, tenants
//! and roles as every other door (HTTP Basic authentication).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use base64ct::{Base64, Encoding};
use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::{json, Value};
use sessiond_core::{LockMode, SessionId};
use tokio::sync::watch;

use crate::auth::{Refused, Role};
use crate::server::Shared;
use crate::stream::Stream;
use crate::tenant::Tenant;

/// Serves one HTTP/1.1 connection (already through the allowlist, the
/// connection limits and any TLS handshake, like every door's) until the
/// client is done or the server stops; then in-flight requests finish.
pub(crate) async fn serve(stream: Stream, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let peer = Peer(stream.peer());
    let request_timeout = shared.timeouts.request;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/sessions/{id}", get(get_session))
        .with_state(Ready {
            shared,
            stop: stop.clone(),
        })
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

/// The client's address, for the failed-login brake.
#[derive(Clone, Copy)]
struct Peer(IpAddr);

#[derive(Clone)]
struct Ready {
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
}

/// Alive: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready for traffic: recovery is done (the listeners open only after it)
/// and the server is not shutting down.
async fn readyz(State(r): State<Ready>) -> Response {
    if *r.stop.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        "ready\n".into_response()
    }
}

/// What a request may see: the tenants, and whether server-wide figures.
struct Scope {
    tenants: Vec<Arc<Tenant>>,
    server_wide: bool,
}

/// Checks the request's Basic credentials when the server has users.
async fn scope(shared: &Shared, peer: IpAddr, headers: &HeaderMap) -> Result<Scope, Response> {
    if !shared.auth.required() {
        return Ok(Scope {
            tenants: shared.tenants.iter().cloned().collect(),
            server_wide: true,
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
async fn metrics(
    State(r): State<Ready>,
    Extension(Peer(peer)): Extension<Peer>,
    headers: HeaderMap,
) -> Response {
    let scope = match scope(&r.shared, peer, &headers).await {
        Ok(s) => s,
        Err(refusal) => return refusal,
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&r.shared, &scope),
    )
        .into_response()
}

/// A per-tenant metric: name, type, help, and how to read it.
type TenantMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&sessiond_core::EngineStats) -> u64,
);

/// `GET /api/v1/sessions/{id}`: one session of the caller's tenant, as
/// JSON, without refreshing its expiry.
async fn get_session(
    State(r): State<Ready>,
    Extension(Peer(peer)): Extension<Peer>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let scope = match scope(&r.shared, peer, &headers).await {
        Ok(s) => s,
        Err(refusal) => return refusal,
    };
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

fn not_found(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": format!("no session '{id}'") })),
    )
        .into_response()
}

fn render(shared: &Shared, scope: &Scope) -> String {
    let mut out = String::new();
    let per_tenant: [TenantMetric; 5] = [
        (
            "sessions",
            "gauge",
            "Live sessions held (expired ones not yet reaped included).",
            |s| s.sessions,
        ),
        (
            "session_bytes",
            "gauge",
            "Bytes of session data, variables and classes held.",
            |s| s.bytes,
        ),
        (
            "expired_sessions_total",
            "counter",
            "Sessions removed because they expired.",
            |s| s.expired_sessions,
        ),
        (
            "lease_expiries_total",
            "counter",
            "Lock leases that ran out.",
            |s| s.expired_leases,
        ),
        (
            "commands_total",
            "counter",
            "Commands run by the engine.",
            |s| s.commands,
        ),
    ];
    let stats: Vec<_> = scope
        .tenants
        .iter()
        .map(|t| {
            (
                t.name(),
                t.engine().stats(),
                t.persistence().map(|p| p.appended()),
            )
        })
        .collect();
    for (name, kind, help, get) in per_tenant {
        family(&mut out, name, kind, help);
        for (tenant, s, _) in &stats {
            let _ = writeln!(out, "sessiond_{name}{{tenant=\"{tenant}\"}} {}", get(s));
        }
    }
    family(
        &mut out,
        "log_records_total",
        "counter",
        "Mutation records appended to the tenant's log since start.",
    );
    for (tenant, _, appended) in &stats {
        if let Some(n) = appended {
            let _ = writeln!(out, "sessiond_log_records_total{{tenant=\"{tenant}\"}} {n}");
        }
    }
    if scope.server_wide {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let (failed, throttled) = shared.auth.refusals();
        let single: [(&str, &str, &str, u64); 8] = [
            (
                "connections",
                "gauge",
                "Open client connections, all doors.",
                shared.connected.load(Ordering::Relaxed) as u64,
            ),
            (
                "connections_accepted_total",
                "counter",
                "Client connections accepted.",
                load(&shared.connections_total),
            ),
            (
                "connections_rejected_total",
                "counter",
                "Connections refused by the connection limits.",
                load(&shared.admission.rejected),
            ),
            (
                "allowlist_denied_total",
                "counter",
                "Connections closed for an address on no allowlist.",
                load(&shared.denied),
            ),
            (
                "tls_handshake_failures_total",
                "counter",
                "TLS handshakes that failed or timed out.",
                load(&shared.tls_failures),
            ),
            (
                "auth_failures_total",
                "counter",
                "Logins refused for a wrong user or password.",
                failed,
            ),
            (
                "auth_throttled_total",
                "counter",
                "Logins refused unchecked: too many failures from the address.",
                throttled,
            ),
            (
                "uptime_seconds",
                "gauge",
                "Seconds since the server started.",
                shared.started.elapsed().as_secs(),
            ),
        ];
        for (name, kind, help, value) in single {
            family(&mut out, name, kind, help);
            let _ = writeln!(out, "sessiond_{name} {value}");
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP sessiond_{name} {help}");
    let _ = writeln!(out, "# TYPE sessiond_{name} {kind}");
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
