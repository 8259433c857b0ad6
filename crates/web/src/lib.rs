//! graphite-web 1.1's HTTP API over carbide's storage, so Grafana's Graphite datasource (and any
//! other graphite-web client) works unchanged: `/render`, `/metrics/find`, `/metrics/expand`,
//! `/metrics/index.json`, `/functions`, `/version`, `/tags` and `/events`.
//!
//! Parameters are read as Django reads them: the query string and a form-encoded body together,
//! `get` taking the last value and repeated keys kept for `target`/`target[]`/`query`. Renders run on
//! the blocking pool, since whisper reads are plain file IO.
//!
//! # Layout
//! - [`params`]: the merged query/form parameters.
//! - [`tags`]: the `/tags` API over the store's tag index.
//! - [`carbonlink`]: CARBONLINK_HOSTS, remote caches' unwritten points merged into fetches.
//! - [`cluster`]: CLUSTER_SERVERS, other instances' finds and series merged into ours.
//! - [`events`]: the `/events` API (Grafana annotations) in a file under the data directory.
//! - this file: the router, [`run`], and one handler per endpoint.

pub mod carbonlink;
pub mod cluster;
pub mod events;
mod findjson;
mod findpickle;
pub mod params;
pub mod tags;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use carbide_query::attime::{TimeZone, parse_at_time, time_zone};
use carbide_render::format::{self, JsonOptions};
use carbide_render::{Context, Limits, RenderError, catalog};
use carbide_storage::Storage;
use serde_json::{Value, json};

pub use params::Params;

/// The version `/version` reports: a graphite-web 1.1 semver, which Grafana reads to enable tags
/// and `/functions`.
pub const GRAPHITE_VERSION: &str = "1.1.10";

/// What the handlers share.
#[derive(Debug)]
pub struct WebState {
    /// The metric store.
    pub storage: Arc<Storage>,
    /// graphite-web's `TIME_ZONE`: the default of `tz`.
    pub time_zone: String,
    /// Request limits.
    pub limits: Limits,
    /// Other graphite-web instances to federate find and render to (CLUSTER_SERVERS).
    pub cluster: Option<Arc<cluster::ClusterServers>>,
}

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The listener failed.
    #[error("serving HTTP: {0}")]
    Io(#[from] std::io::Error),
}

/// The API's routes.
pub fn router(state: Arc<WebState>) -> Router {
    Router::new()
        .route("/render", any(render))
        .route("/render/", any(render))
        .route("/metrics/find", any(find))
        .route("/metrics/find/", any(find))
        .route("/metrics/expand", any(expand))
        .route("/metrics/expand/", any(expand))
        .route("/metrics/index.json", any(index_json))
        .route("/version", any(version))
        .route("/version/", any(version))
        .route("/functions", any(functions))
        .route("/functions/", any(functions))
        .route("/functions/{name}", any(function_one))
        .route("/tags", any(tags::tag_list))
        .route("/tags/", any(tags::tag_list))
        .route("/tags/tagSeries", any(tags::tag_series))
        .route("/tags/tagMultiSeries", any(tags::tag_multi_series))
        .route("/tags/delSeries", any(tags::del_series))
        .route("/tags/findSeries", any(tags::find_series))
        .route("/tags/autoComplete/tags", any(tags::auto_complete_tags))
        .route("/tags/autoComplete/values", any(tags::auto_complete_values))
        .route("/tags/{*tag}", any(tags::tag_details))
        .route("/events", any(events::events))
        .route("/events/", any(events::events))
        .route("/events/get_data", any(events::get_data))
        .route("/events/get_dat", any(events::get_data))
        .route("/events/{id}", any(events::detail))
        .route("/events/{id}/", any(events::detail))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: Arc<WebState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), WebError> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "carbide web listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

fn bad_request(msg: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain")],
        format!("Bad Request: {msg}"),
    )
        .into_response()
}

fn json_response(body: String, jsonp: Option<&str>) -> Response {
    match jsonp {
        Some(cb) => (
            [(header::CONTENT_TYPE, "text/javascript")],
            format!("{cb}({body})"),
        )
            .into_response(),
        None => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
    }
}

/// graphite-web's `local=1`: answer from this instance only (what cluster members ask each other).
fn is_local(p: &Params) -> bool {
    p.get("local").is_some_and(|v| !v.is_empty() && v != "0")
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A find's `from` and `until` as graphite-web's `find_view` reads them: epoch seconds in the
/// request's `tz` relative to its `now`, `None` when absent or `-1`; an unreadable one is an error.
fn find_range(state: &WebState, p: &Params) -> Result<(Option<i64>, Option<i64>), String> {
    let tz = request_tz(state, p);
    let real_now = unix_now();
    let now = match p.get("now") {
        Some(n) => {
            parse_at_time(n, real_now, &tz).map_err(|e| format!("Invalid value {n:?} for param now: {e}"))?
        }
        None => real_now,
    };
    let bound = |key: &str| match p.get(key) {
        Some(v) if v != "-1" => parse_at_time(v, now, &tz)
            .map(Some)
            .map_err(|e| format!("Invalid value {v:?} for param {key}: {e}")),
        _ => Ok(None),
    };
    Ok((bound("from")?, bound("until")?))
}

/// An interval bound in a json find answer: an integer when it is one (a local whisper file's),
/// else the float a remote server reported.
fn json_number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

/// `settings.TIME_ZONE` (UTC when the name is unknown).
fn server_tz(state: &WebState) -> TimeZone {
    time_zone(&state.time_zone).unwrap_or(TimeZone::UTC)
}

/// The request's `tz`, else `TIME_ZONE` (an unknown `tz` is ignored, as graphite-web ignores it).
fn request_tz(state: &WebState, p: &Params) -> TimeZone {
    p.get("tz")
        .and_then(|t| time_zone(t).ok())
        .unwrap_or_else(|| server_tz(state))
}

async fn render(
    State(state): State<Arc<WebState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from_request(&method, &uri, &headers, &body);
    let result = tokio::task::spawn_blocking(move || render_blocking(&state, &p)).await;
    match result {
        Ok(r) => r,
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn render_blocking(state: &WebState, p: &Params) -> Response {
    let tz = request_tz(state, p);
    let real_now = unix_now();
    let now = match p.get("now") {
        Some(n) => match parse_at_time(n, real_now, &tz) {
            Ok(t) => t,
            Err(e) => return bad_request(format!("Invalid value {n:?} for param now: {e}")),
        },
        None => real_now,
    };
    let until = match p.get("until") {
        Some(u) => match parse_at_time(u, now, &tz) {
            Ok(t) => t,
            Err(e) => return bad_request(format!("Invalid value {u:?} for param until: {e}")),
        },
        None => now,
    };
    let from = match parse_at_time(p.get("from").unwrap_or("-1d"), now, &tz) {
        Ok(t) => t,
        Err(e) => return bad_request(format!("Invalid value for param from: {e}")),
    };
    let (start, end) = (from.min(until), from.max(until));
    if start == end {
        return bad_request("Invalid empty time range");
    }
    let format = if p.get("format").is_some() {
        p.get("format").unwrap_or("png")
    } else if p.contains("rawData") {
        "raw"
    } else if p.contains("pickle") {
        "pickle"
    } else {
        "png"
    };
    if !matches!(format, "json" | "csv" | "raw" | "pickle" | "msgpack") {
        return bad_request(format!(
            "format={format} is not supported by carbide web yet (use json, csv, raw, pickle or msgpack)"
        ));
    }
    let x_files_factor = match p.get("xFilesFactor").map(str::parse::<f64>) {
        None => 0.0,
        Some(Ok(x)) => x,
        Some(Err(e)) => return bad_request(format!("Invalid xFilesFactor: {e}")),
    };
    let templates: Vec<(String, String)> = p
        .pairs()
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("template[")
                .and_then(|r| r.strip_suffix(']'))
                .map(|name| (name.to_string(), v.clone()))
        })
        .collect();
    let mut ctx = Context::new(
        &state.storage,
        (start, end, now),
        tz.clone(),
        server_tz(state),
        state.limits,
    );
    ctx.x_files_factor = x_files_factor;
    ctx.templates = templates;
    if !is_local(p) {
        ctx.remote = state
            .cluster
            .as_deref()
            .map(|c| c as &dyn carbide_render::remote::Remote);
    }
    ctx.deadline = std::time::Instant::now().checked_add(state.limits.max_time);
    let mut targets = p.get_list("target");
    if targets.is_empty() {
        targets = p.get_list("target[]");
    }
    ctx.prefetch(&targets);
    let mut data = Vec::new();
    for target in &targets {
        if target.trim().is_empty() {
            continue;
        }
        match ctx.evaluate_target(target) {
            Ok(series) => data.extend(series),
            Err(RenderError::Storage(e)) => {
                return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
            }
            Err(e @ RenderError::Timeout(_)) => {
                return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response();
            }
            Err(e) => return bad_request(e),
        }
    }
    match format {
        "json" => {
            let max_data_points = p
                .get("maxDataPoints")
                .filter(|m| !m.is_empty() && m.chars().all(|c| c.is_ascii_digit()))
                .and_then(|m| m.parse().ok());
            let opts = JsonOptions {
                max_data_points,
                no_null_points: p.contains("noNullPoints"),
            };
            json_response(format::json(&mut data, &opts), p.get("jsonp"))
        }
        "csv" => ([(header::CONTENT_TYPE, "text/csv")], format::csv(&data, &tz)).into_response(),
        "pickle" => (
            [(header::CONTENT_TYPE, "application/pickle")],
            format::pickle(&data),
        )
            .into_response(),
        "msgpack" => (
            [(header::CONTENT_TYPE, "application/x-msgpack")],
            format::msgpack(&data),
        )
            .into_response(),
        _ => ([(header::CONTENT_TYPE, "text/plain")], format::raw(&data)).into_response(),
    }
}

async fn find(
    State(state): State<Arc<WebState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from_request(&method, &uri, &headers, &body);
    let range = match find_range(&state, &p) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let Some(query) = p.get("query").map(str::to_string) else {
        return bad_request("Missing required parameter 'query'");
    };
    if query.is_empty() {
        return bad_request("Required parameter 'query' is empty");
    }
    let format = p.get("format").unwrap_or("treejson").to_string();
    let leaves_only = p.get("leavesOnly").is_some_and(|v| v != "0");
    let wildcards = p.get("wildcards").is_some_and(|v| v != "0");
    let base_path = match query.rsplit_once('.') {
        Some((head, _)) => format!("{head}."),
        None => String::new(),
    };
    let mut pattern = query.clone();
    if format == "completer" {
        pattern = pattern.replace("..", "*.");
        if !pattern.ends_with('*') {
            pattern.push('*');
        }
    }
    let mut nodes = match state.storage.find(&pattern) {
        Ok(n) => n,
        Err(e) => return bad_request(e),
    };
    // Intervals of the leaves other servers also have (or alone have), by path.
    let mut merged = std::collections::HashMap::new();
    if let Some(cluster) = state.cluster.clone().filter(|_| !is_local(&p)) {
        let asked = pattern.clone();
        let remote = tokio::task::spawn_blocking(move || cluster.find(&asked, range.0, range.1))
            .await
            .unwrap_or_default();
        let now = unix_now();
        merged = cluster::merge_find(&mut nodes, remote, range, |path| {
            state
                .storage
                .intervals(path, now)
                .map(|(s, e)| vec![(s as f64, e as f64)])
                .unwrap_or_default()
        });
    }
    // A leaf's intervals: the merged ones, else the local file's.
    let intervals_of = |path: &str, now: i64| -> Vec<(f64, f64)> {
        match merged.get(path) {
            Some(iv) => iv.clone(),
            None => state
                .storage
                .intervals(path, now)
                .map(|(s, e)| vec![(s as f64, e as f64)])
                .unwrap_or_default(),
        }
    };
    if leaves_only {
        nodes.retain(|n| n.is_leaf);
    }
    // graphite-web sorts by the last segment (stable).
    nodes.sort_by(|a, b| a.name().cmp(b.name()));
    let jsonp = p.get("jsonp");
    let body = match format.as_str() {
        "treejson" => findjson::tree_json(&nodes, &base_path, wildcards),
        "completer" => {
            let mut metrics: Vec<Value> = nodes
                .iter()
                .map(|n| {
                    let path = if n.is_leaf {
                        n.path.clone()
                    } else {
                        format!("{}.", n.path)
                    };
                    json!({"path": path, "name": n.name(), "is_leaf": if n.is_leaf {"1"} else {"0"}})
                })
                .collect();
            if metrics.len() > 1 && wildcards {
                metrics.push(json!({"name": "*"}));
            }
            json!({ "metrics": metrics }).to_string()
        }
        "json" => {
            let now = unix_now();
            let mut items: Vec<Value> = nodes
                .iter()
                .map(|n| {
                    if n.is_leaf {
                        let iv: Vec<Value> = intervals_of(&n.path, now)
                            .into_iter()
                            .map(|(s, e)| json!({"start": json_number(s), "end": json_number(e)}))
                            .collect();
                        json!({"path": n.path, "is_leaf": true, "intervals": iv})
                    } else {
                        json!({"path": n.path, "is_leaf": false})
                    }
                })
                .collect();
            items.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
            Value::Array(items).to_string()
        }
        "pickle" => {
            let now = unix_now();
            let items: Vec<findpickle::FindNode> = nodes
                .iter()
                .map(|n| findpickle::FindNode {
                    path: n.path.clone(),
                    is_leaf: n.is_leaf,
                    intervals: if n.is_leaf {
                        intervals_of(&n.path, now)
                    } else {
                        Vec::new()
                    },
                })
                .collect();
            return (
                [(header::CONTENT_TYPE, "application/pickle")],
                findpickle::pickle_nodes(&items),
            )
                .into_response();
        }
        "msgpack" => {
            let now = unix_now();
            let items: Vec<format::Wire> = nodes
                .iter()
                .map(|n| {
                    let mut m = vec![
                        ("path".to_string(), format::Wire::Str(n.path.clone())),
                        ("is_leaf".to_string(), format::Wire::Bool(n.is_leaf)),
                    ];
                    if n.is_leaf {
                        let iv = intervals_of(&n.path, now)
                            .into_iter()
                            .map(|(s, e)| {
                                format::Wire::List(vec![format::Wire::Float(s), format::Wire::Float(e)])
                            })
                            .collect();
                        m.push(("intervals".to_string(), format::Wire::List(iv)));
                    }
                    format::Wire::Map(m)
                })
                .collect();
            return (
                [(header::CONTENT_TYPE, "application/x-msgpack")],
                format::wire_msgpack(&format::Wire::List(items)),
            )
                .into_response();
        }
        "nodelist" => {
            let position: i64 = p.get("position").and_then(|v| v.parse().ok()).unwrap_or(-1);
            let mut found = std::collections::BTreeSet::new();
            for n in &nodes {
                let parts: Vec<&str> = n.path.split('.').collect();
                let idx = if position < 0 {
                    parts.len() as i64 + position
                } else {
                    position
                };
                if let Some(part) = usize::try_from(idx).ok().and_then(|i| parts.get(i)) {
                    found.insert(part.to_string());
                }
            }
            json!({ "nodes": found.into_iter().collect::<Vec<_>>() }).to_string()
        }
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "text/plain")],
                "Invalid value for 'format' parameter",
            )
                .into_response();
        }
    };
    let mut resp = json_response(body, jsonp);
    let h = resp.headers_mut();
    h.insert(header::PRAGMA, header::HeaderValue::from_static("no-cache"));
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    resp
}

async fn expand(
    State(state): State<Arc<WebState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from_request(&method, &uri, &headers, &body);
    let leaves_only = p.get("leavesOnly").is_some_and(|v| v != "0");
    let group = p.get("groupByExpr").is_some_and(|v| v != "0");
    let mut grouped = serde_json::Map::new();
    let mut all = std::collections::BTreeSet::new();
    for q in p.get_list("query") {
        let nodes = match state.storage.find(&q) {
            Ok(n) => n,
            Err(e) => return bad_request(e),
        };
        let paths: std::collections::BTreeSet<String> = nodes
            .into_iter()
            .filter(|n| n.is_leaf || !leaves_only)
            .map(|n| n.path)
            .collect();
        all.extend(paths.iter().cloned());
        grouped.insert(q, json!(paths.into_iter().collect::<Vec<_>>()));
    }
    let results = if group {
        Value::Object(grouped)
    } else {
        json!(all.into_iter().collect::<Vec<_>>())
    };
    json_response(json!({ "results": results }).to_string(), p.get("jsonp"))
}

async fn index_json(
    State(state): State<Arc<WebState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from_request(&method, &uri, &headers, &body);
    json_response(json!(state.storage.index().all()).to_string(), p.get("jsonp"))
}

async fn version() -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], GRAPHITE_VERSION).into_response()
}

async fn functions() -> Response {
    json_response(catalog::functions_json_text(), None)
}

async fn function_one(Path(name): Path<String>) -> Response {
    match catalog::function(&name) {
        Some(f) => json_response(
            catalog::function_json(f)
                .to_string()
                .replace("\"__INF__\"", "1e9999"),
            None,
        ),
        None => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from(format!("Function not found: {name}")))
            .unwrap_or_default(),
    }
}
