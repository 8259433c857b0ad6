//! The admin endpoints, on loopback unless the config names another address: what carbon's
//! manhole and SIGQUIT stack dump were for, without a Python REPL open to the network.
//!
//! - `GET /admin/cache`: totals and the largest queues.
//! - `POST /admin/flush`: lift the write throttles until the cache is empty.
//! - `GET /admin/writers`: each writer's state, metric, and how long it has been there.
//! - `GET /metrics`: Prometheus text.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use carbide_cache::{Cache, WhisperPersister, WriterPool};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::ingest::Ingest;

/// What the admin endpoints look at.
pub struct AdminState {
    /// The cache.
    pub cache: Arc<Cache>,
    /// The receivers' counters.
    pub ingest: Arc<Ingest>,
    /// The writers, until shutdown takes them.
    pub pool: Arc<Mutex<Option<WriterPool>>>,
    /// Maps a metric to its whisper file, so `/admin/writers` names the file a writer is stuck on.
    pub persister: Arc<WhisperPersister>,
}

/// The cache snapshot `/admin/cache` and SIGQUIT report.
pub fn cache_snapshot(state: &AdminState) -> Value {
    let largest: Vec<Value> = state
        .cache
        .largest(20)
        .into_iter()
        .map(|(metric, points)| json!({"metric": metric, "points": points}))
        .collect();
    json!({
        "size": state.cache.len(),
        "queues": state.cache.queues(),
        "max_size": state.cache.config().max_size,
        "largest": largest,
    })
}

/// The writers snapshot `/admin/writers` and SIGQUIT report.
pub fn writers_snapshot(state: &AdminState) -> Value {
    let pool = state.pool.lock();
    let writers: Vec<Value> = pool
        .as_ref()
        .map(|p| p.snapshot())
        .unwrap_or_default()
        .into_iter()
        .map(|w| {
            let file = w
                .metric
                .as_deref()
                .and_then(|m| state.persister.path_for(m).ok())
                .map(|p| p.display().to_string());
            json!({
                "id": w.id,
                "state": format!("{:?}", w.state).to_lowercase(),
                "metric": w.metric,
                "file": file,
                "seconds": w.for_how_long.as_secs_f64(),
            })
        })
        .collect();
    json!({ "writers": writers })
}

async fn cache(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    axum::Json(cache_snapshot(&s))
}

async fn writers(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    axum::Json(writers_snapshot(&s))
}

async fn flush(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    let started = s.pool.lock().as_ref().map(|p| p.flush()).is_some();
    axum::Json(json!({"flushing": started, "size": s.cache.len()}))
}

async fn metrics(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::selfmetrics::prometheus(&s.cache, &s.ingest),
    )
}

/// Renders a role's `/metrics` page on each request.
pub type MetricsPage = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves `GET /metrics` from `page` on `listener` until `shutdown` completes: the admin endpoint
/// of the roles without a cache (relay, aggregator).
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    page: MetricsPage,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let page = page.clone();
            async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], page()) }
        }),
    );
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// The admin router.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/admin/cache", get(cache))
        .route("/admin/writers", get(writers))
        .route("/admin/flush", post(flush))
        .route("/metrics", get(metrics))
        .with_state(state)
}
