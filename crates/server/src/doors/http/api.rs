//! The JSON API under `/api/v1` (docs/openapi.yaml): figures, one session,
//! pages of ids, finding and destroying sessions by a variable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64ct::{Base64, Encoding};
use bytes::Bytes;
use serde_json::{json, Value};
use sessiond_core::{Access, Command, Error, LockMode, Reply, SessionId};

use super::scope::Scope;
use crate::conn::request::{Caller, Started};
use crate::door::Door;
use crate::metrics::{resident_memory_bytes, Proto};
use crate::shared::Shared;

/// `GET /api/v1/stats`: the figures the dashboard shows (and `/metrics`
/// exports), as JSON: per tenant the caller may see, and server-wide for
/// admins.
pub(crate) async fn stats(State(shared): State<Arc<Shared>>, scope: Scope) -> Response {
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
            let storage = match (t.persistence(), t.cluster()) {
                (Some(_), _) => "log",
                (None, Some(_)) => "postgres",
                (None, None) => "memory",
            };
            json!({
                "name": t.name(),
                "storage": storage,
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
            // Plugin functions and Redis scripts ("(eval)"), server-wide.
            "functions": shared.scripts.stats().into_iter().map(|(name, st)| {
                let calls = load(&st.calls);
                json!({
                    "name": name,
                    "calls": calls,
                    "errors": load(&st.errors),
                    "avg_us": load(&st.micros).checked_div(calls).unwrap_or(0),
                })
            }).collect::<Vec<_>>(),
        });
        if let Some(c) = &shared.cluster {
            let st = c.pool_stats();
            let (open, size) = c.connections();
            body["cluster"] = json!({
                "storage": "postgres",
                "node": c.node(),
                "in_touch": c.in_touch(),
                "nodes": c.nodes().into_iter().map(|(name, alive)| json!({
                    "name": name,
                    "alive": alive,
                })).collect::<Vec<_>>(),
                "db_connections": open,
                "db_pool_size": size,
                "db_requests": st.latency.count(),
                "db_request_avg_us": st.latency.mean_us(),
                "db_errors": load(&st.errors),
                "db_connects": load(&st.connects),
                "handoffs_here": load(&st.handoffs_here),
                "handoffs_away": load(&st.handoffs_away),
                "wakeups_heard": load(&st.wakeups_heard),
            });
        }
    }
    Json(body).into_response()
}

/// `GET /api/v1/sessions/{id}`: one session of the caller's tenant, as
/// JSON, without refreshing its expiry.
pub(crate) async fn get_session(scope: Scope, Path(id): Path<String>) -> Response {
    // Without users there is one tenant; with users, the user's own.
    let Some(tenant) = scope.tenants.first() else {
        return not_found(&id);
    };
    let sid = SessionId::new(Bytes::from(id.clone().into_bytes()));
    let (s, lock) = match tenant.peek(&sid).await {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(&id),
        Err(e) => return failure(&e),
    };
    let now = tenant.engine().now_ms();
    let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    let mut body = json!({
        "id": id,
        "tenant": tenant.name(),
        "class": s.class().map(text),
        "created_ms": s.created_ms,
        "accessed_ms": s.accessed_ms,
        // A key written without expiry has neither.
        "timeout_s": (s.timeout_ms != sessiond_core::NEVER).then_some(s.timeout_ms / 1000),
        "ttl_ms": (s.timeout_ms != sessiond_core::NEVER).then(|| s.ttl_ms(now)),
        "version": s.version,
        "flags": s.flags,
        "lock": match lock {
            None => "none",
            Some(LockMode::Read) => "read",
            Some(LockMode::Write) => "write",
        },
        "vars": s.vars().iter().map(|(k, v)| (text(k), Value::from(text(v)))).collect::<serde_json::Map<_, _>>(),
        "fields": s.fields().iter().map(|(k, v)| (text(k), Value::from(text(v)))).collect::<serde_json::Map<_, _>>(),
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
pub(crate) struct PageQuery {
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
pub(crate) struct VarQuery {
    var: String,
    value: String,
}

/// Query of `GET /api/v1/find`: the sessions whose variable `var` equals
/// `value`, all of them or (with `cursor`) a page.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FindQuery {
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
pub(crate) async fn list_sessions(
    scope: Scope,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let q = match query(q) {
        Ok(q) => q,
        Err(why) => return bad_request(why),
    };
    let count = match page_count(q.count) {
        Ok(n) => n,
        Err(why) => return bad_request(why),
    };
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

/// Ids per page: `count` (default 100), 1 to 10,000.
fn page_count(count: Option<usize>) -> Result<usize, String> {
    match count.unwrap_or(100) {
        n @ 1..=10_000 => Ok(n),
        n => Err(format!("count is {n}; give 1 to 10000")),
    }
}

/// Refuses an empty variable name.
fn named(var: &str) -> Result<(), String> {
    if var.is_empty() {
        return Err("var is empty: name a variable".into());
    }
    Ok(())
}

/// The sessions where variable `var` (already checked by [`named`]) has
/// `value`.
async fn find(scope: &Scope, q: VarQuery) -> Result<Vec<SessionId>, Response> {
    let found = run(
        scope,
        Command::Find {
            name: Bytes::from(q.var),
            value: Bytes::from(q.value),
        },
    )
    .await;
    match found {
        Ok(Reply::Ids(ids)) => Ok(ids),
        Ok(other) => Err(unexpected("find", &other)),
        Err(e) => Err(failure(&e)),
    }
}

/// `GET /api/v1/find?var=user_id&value=42`: every session where that
/// variable has that value ("which sessions belong to user 42").
pub(crate) async fn find_sessions(
    scope: Scope,
    q: Result<Query<FindQuery>, QueryRejection>,
) -> Response {
    let q = match query(q) {
        Ok(q) => q,
        Err(why) => return bad_request(why),
    };
    let count = match page_count(q.count).and_then(|n| named(&q.var).map(|()| n)) {
        Ok(n) => n,
        Err(why) => return bad_request(why),
    };
    let Some(cursor) = q.cursor else {
        let all = VarQuery {
            var: q.var,
            value: q.value,
        };
        return match find(&scope, all).await {
            Ok(ids) => Json(json!({ "sessions": texts(&ids) })).into_response(),
            Err(refusal) => refusal,
        };
    };
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

/// A page of ids as `{"sessions": […], "cursor": …}`.
fn id_page(page: Result<Reply, Error>) -> Response {
    match page {
        Ok(Reply::Page { cursor, ids }) => Json(json!({
            "sessions": texts(&ids),
            "cursor": String::from_utf8_lossy(&cursor),
        }))
        .into_response(),
        Ok(other) => unexpected("scan", &other),
        Err(e) => failure(&e),
    }
}

/// `DELETE /api/v1/sessions/{id}`: destroy one session.
pub(crate) async fn destroy_session(scope: Scope, Path(id): Path<String>) -> Response {
    let id = SessionId::new(Bytes::from(id.into_bytes()));
    // A session that is not there is a 404 (NOSESSION), as for GET.
    match run(&scope, Command::Destroy { id }).await {
        Ok(_) => Json(json!({ "destroyed": 1 })).into_response(),
        Err(e) => failure(&e),
    }
}

/// `DELETE /api/v1/sessions?var=user_id&value=42`: destroy every session
/// where that variable has that value — log the user out everywhere.
pub(crate) async fn destroy_sessions(
    scope: Scope,
    q: Result<Query<VarQuery>, QueryRejection>,
) -> Response {
    let q = match query(q) {
        Ok(q) => q,
        Err(why) => return bad_request(why),
    };
    if let Err(why) = named(&q.var) {
        return bad_request(why);
    }
    // Refused before the search for a role that may not destroy.
    if let Err(e) = scope.role.check(Access::Write) {
        return failure(&e);
    }
    let found = match find(&scope, q).await {
        Ok(ids) => ids,
        Err(refusal) => return refusal,
    };
    let mut caller = match caller(&scope) {
        Ok(c) => c,
        Err(e) => return failure(&e),
    };
    let mut destroyed = 0u64;
    for id in found {
        // One gone meanwhile is no error: it is out either way.
        if run_on(&mut caller, Command::Destroy { id }).await.is_ok() {
            destroyed += 1;
        }
    }
    // One durability wait for them all (group commit).
    caller.durable().await;
    Json(json!({ "destroyed": destroyed })).into_response()
}

/// The body of `POST /api/v1/sessions/{id}/plugins/{name}`: the
/// function's parameters (none when the body is empty).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CallBody {
    #[serde(default)]
    params: Vec<String>,
}

/// `POST /api/v1/sessions/{id}/plugins/{name}`: runs plugin function
/// `name` on the session, all or nothing, as `SESSION.PLUGIN` does;
/// answers `{"result": …}`. A role that may not write is refused.
pub(crate) async fn call_plugin(
    scope: Scope,
    Path((id, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body: CallBody = if body.iter().all(u8::is_ascii_whitespace) {
        CallBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return bad_request(format!(
                    "the body must be empty or {{\"params\": [\"text\", ...]}}: {e}"
                ))
            }
        }
    };
    let call = Command::Call {
        func: sessiond_core::script::Func::Plugin(Bytes::from(name)),
        ids: vec![SessionId::new(Bytes::from(id.into_bytes()))],
        args: body.params.into_iter().map(Bytes::from).collect(),
    };
    match run(&scope, call).await {
        Ok(reply) => Json(json!({ "result": reply_json(reply) })).into_response(),
        Err(e) => failure(&e),
    }
}

/// A function's answer as JSON: nothing is `null`, a number a number, a
/// text a string (`{"base64": …}` when it is not UTF-8), a list an array.
fn reply_json(reply: Reply) -> Value {
    match reply {
        Reply::Nil => Value::Null,
        Reply::Ok => Value::from("OK"),
        Reply::Status(s) => Value::from(s),
        Reply::Int(n) => Value::from(n),
        Reply::Bulk(b) => match std::str::from_utf8(&b) {
            Ok(t) => Value::from(t),
            Err(_) => json!({ "base64": Base64::encode_string(&b) }),
        },
        Reply::Array(items) => Value::Array(items.into_iter().map(reply_json).collect()),
        other => Value::from(format!("{other:?}")),
    }
}

/// Runs `cmd` in the scope's tenant on the one request path (see
/// `conn::request`); answered once a write is as durable as the `fsync`
/// policy promises.
async fn run(scope: &Scope, cmd: Command) -> Result<Reply, Error> {
    let mut caller = caller(scope)?;
    let result = run_on(&mut caller, cmd).await;
    caller.durable().await;
    result
}

/// A caller in the scope's tenant, with its role.
fn caller(scope: &Scope) -> Result<Caller, Error> {
    let tenant = scope.tenants.first().ok_or(Error::NotAuthenticated)?;
    Ok(Caller::new(
        tenant.clone(),
        Some(scope.role),
        Proto::Http,
        None,
    ))
}

/// Runs `cmd` for `caller`, leaving the durability wait to the caller.
async fn run_on(caller: &mut Caller, cmd: Command) -> Result<Reply, Error> {
    match caller.start(cmd, |r| r).await {
        Started::Done(r) => r,
        // No HTTP operation takes a lock; one queued would have no
        // connection to wait on, so it is given up at once.
        Started::Wait(waiting) => caller.give_up(waiting).await,
    }
}

fn texts(ids: &[SessionId]) -> Vec<String> {
    ids.iter()
        .map(|id| String::from_utf8_lossy(id.as_bytes()).into_owned())
        .collect()
}

/// An engine error as an HTTP status and a JSON body.
fn failure(e: &Error) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        Json(json!({ "error": e.to_string(), "code": e.code() })),
    )
        .into_response()
}

/// A reply of a shape the operation's command never answers: a bug, said
/// loudly.
fn unexpected(command: &str, reply: &Reply) -> Response {
    tracing::error!(
        command,
        ?reply,
        "the engine answered a shape the HTTP door does not know"
    );
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "error": format!("internal error: the engine answered {command} unexpectedly (logged)") })),
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
