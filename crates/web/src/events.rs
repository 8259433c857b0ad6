//! graphite-web's events API (`graphite/events/views.py`), which Grafana's annotations read:
//! `POST /events/` stores `{what, tags, data, when}`, `GET /events/get_data?from&until&tags&set`
//! lists them as `[{when, what, data, tags, id}]` ordered by time, and `/events/<id>` shows one
//! (JSON when the client accepts `application/json`, as graphite-web's `detail` does).
//!
//! The store itself ([`carbide_render::events`]) is shared with the `events()` render function.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use carbide_query::attime::parse_at_time;
use carbide_render::events::{self as store, SetOperation};
use serde_json::{Value, json};

use crate::params::Params;
use crate::{WebState, request_tz, unix_now};

fn json_error(status: StatusCode, msg: &str) -> Response {
    (status, json!({ "error": msg }).to_string()).into_response()
}

/// `/events` and `/events/`: POST stores an event; GET (graphite-web's HTML list) answers the
/// JSON list instead.
pub async fn events(
    State(state): State<Arc<WebState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method == Method::GET {
        return get_data(State(state), method, uri, headers, body).await;
    }
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let event: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the event must be a JSON object",
            );
        }
        Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("invalid JSON: {e}")),
    };
    let tags = match event.get("tags") {
        None | Some(Value::Null) => String::new(),
        Some(Value::Array(items)) => {
            let joined: Vec<String> = items
                .iter()
                .map(|t| match t {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            joined.join(" ")
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "\"tags\" must be an array or space-separated string",
            );
        }
    };
    let when = match event.get("when") {
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
        Some(w) => match w.as_f64() {
            Some(w) => w,
            None => return json_error(StatusCode::INTERNAL_SERVER_ERROR, "\"when\" must be a number"),
        },
    };
    let Some(what) = event.get("what").and_then(Value::as_str) else {
        // graphite-web's NOT NULL column refuses it with an IntegrityError.
        return json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "NOT NULL constraint failed: events_event.what",
        );
    };
    let data = match event.get("data") {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    match store::append(state.storage.root(), when, what, &data, &tags) {
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("storing the event: {e}"),
        ),
    }
}

/// `/events/get_data?from&until&tags&set&jsonp`.
pub async fn get_data(
    State(state): State<Arc<WebState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // graphite-web's fetch() reads request.GET only.
    let p = Params::from_request(&Method::GET, &uri, &headers, &[]);
    let all = Params::from_request(&method, &uri, &headers, &body);
    let tz = request_tz(&state, &p);
    let now = unix_now();
    let from = match p.get("from") {
        Some(f) => match parse_at_time(f, now, &tz) {
            Ok(t) => t as f64,
            Err(e) => return json_error(StatusCode::BAD_REQUEST, &format!("Invalid from: {e}")),
        },
        None => 0.0,
    };
    let until = match p.get("until") {
        Some(u) => match parse_at_time(u, now, &tz) {
            Ok(t) => t as f64,
            Err(e) => return json_error(StatusCode::BAD_REQUEST, &format!("Invalid until: {e}")),
        },
        None => f64::INFINITY,
    };
    let events = store::load(state.storage.root());
    let wanted: Option<Vec<String>> = p.get("tags").map(|t| t.split(' ').map(str::to_string).collect());
    let set = match p.get("set") {
        Some("union") => SetOperation::Union,
        Some("intersection") => SetOperation::Intersection,
        _ => SetOperation::All,
    };
    let out = store::find_events(&events, from, until, wanted.as_deref(), set);
    let list: Vec<Value> = out
        .iter()
        .map(|e| json!({"when": e.when.floor() as i64, "what": e.what, "data": e.data, "tags": e.tags.split_whitespace().collect::<Vec<_>>(), "id": e.id}))
        .collect();
    let text = Value::Array(list).to_string();
    match all.get("jsonp") {
        Some(cb) => (
            [(header::CONTENT_TYPE, "text/javascript")],
            format!("{cb}({text})"),
        )
            .into_response(),
        None => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
    }
}

/// `/events/<id>`: graphite-web's `detail`. With `Accept: application/json` (exactly) it answers
/// `model_to_dict` of the event, for any method (graphite-web 1.1.8 has no DELETE: a DELETE reads
/// the event like a GET, without `pretty`); otherwise a small HTML page. An unknown id is a 404.
pub async fn detail(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Django's url pattern is `^/(?P<event_id>\d+)/?$`.
    let id_text = id.strip_suffix('/').unwrap_or(&id);
    if id_text.is_empty() || !id_text.bytes().all(|b| b.is_ascii_digit()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let event = id_text
        .parse::<u64>()
        .ok()
        .and_then(|id| store::load(state.storage.root()).into_iter().find(|e| e.id == id));
    let wants_json = headers
        .get(header::ACCEPT)
        .is_some_and(|a| a.as_bytes() == b"application/json");
    if !wants_json {
        return match event {
            None => (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/html")],
                "<h1>Not Found</h1>",
            )
                .into_response(),
            Some(e) => (
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                format!(
                    "<html><head><title>{what}</title></head><body><h1>{what}</h1><table>\
                     <tr><td>when</td><td>{when}</td></tr><tr><td>tags</td><td>{tags}</td></tr>\
                     <tr><td>data</td><td>{data}</td></tr></table></body></html>",
                    what = html_escape(&e.what),
                    when = store::django_iso(e.when),
                    tags = html_escape(&e.tags),
                    data = html_escape(&e.data),
                ),
            )
                .into_response(),
        };
    }
    // jsonResponse reads `pretty` from GET (and POST's form) only.
    let pretty = match method {
        Method::GET | Method::POST => Params::from_request(&method, &uri, &headers, &body)
            .get("pretty")
            .is_some_and(|p| !p.is_empty()),
        _ => false,
    };
    let (status, fields) = match event {
        None => (
            StatusCode::NOT_FOUND,
            vec![("error", json!("Event matching query does not exist"))],
        ),
        Some(e) => (
            StatusCode::OK,
            // model_to_dict's order: the model's fields.
            vec![
                ("id", json!(e.id)),
                ("when", json!(store::django_iso(e.when))),
                ("what", json!(e.what)),
                ("data", json!(e.data)),
                ("tags", json!(e.tags.split_whitespace().collect::<Vec<_>>())),
            ],
        ),
    };
    let text = if pretty {
        let map: serde_json::Map<String, Value> =
            fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        py_pretty(&Value::Object(map), 0)
    } else {
        let items: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("\"{k}\": {}", py_dumps(v)))
            .collect();
        format!("{{{}}}", items.join(", "))
    };
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// Python's `json.dumps` spelling: `", "` and `": "` separators (objects here have sorted keys).
fn py_dumps(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), py_dumps(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(py_dumps).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// `json.dumps(v, indent=2, sort_keys=True)`.
fn py_pretty(v: &Value, depth: usize) -> String {
    let pad = "  ".repeat(depth + 1);
    let end = "  ".repeat(depth);
    match v {
        Value::Object(m) if !m.is_empty() => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{pad}{}: {}",
                        Value::String((*k).clone()),
                        py_pretty(&m[k.as_str()], depth + 1)
                    )
                })
                .collect();
            format!("{{\n{}\n{end}}}", items.join(",\n"))
        }
        Value::Array(a) if !a.is_empty() => {
            let items: Vec<String> = a
                .iter()
                .map(|x| format!("{pad}{}", py_pretty(x, depth + 1)))
                .collect();
            format!("[\n{}\n{end}]", items.join(",\n"))
        }
        other => py_dumps(other),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}
