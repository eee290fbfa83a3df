//! The HTTP door (`listen_http`, default `127.0.0.1:8390`): health and
//! readiness probes and Prometheus metrics, under the same users, tenants
//! and roles as every other door (HTTP Basic authentication).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;

mod api;
mod prometheus;
mod scope;

use api::{
    call_plugin, destroy_session, destroy_sessions, find_sessions, get_session, list_sessions,
    stats,
};
use prometheus::metrics;
use scope::{Peer, Scope};

use crate::conn::stream::Stream;
use crate::door::Door;
use crate::shared::Shared;

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
        .route("/api/v1/sessions/{id}/plugins/{name}", post(call_plugin))
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

/// Alive: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready for traffic: answering at all means recovery is done, as the
/// listeners open only after it (and close when a shutdown begins). On a
/// cluster the node is ready only while in touch with the database: its
/// last heartbeat went through.
async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    match &shared.cluster {
        Some(c) if !c.in_touch() => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the database does not answer this node's heartbeat\n",
        )
            .into_response(),
        _ => "ready\n".into_response(),
    }
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
