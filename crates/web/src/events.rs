//! graphite-web's events API (`graphite/events/views.py`), which Grafana's annotations read:
//! `POST /events/` stores `{what, tags, data, when}`, `GET /events/get_data?from&until&tags&set`
//! lists them as `[{when, what, data, tags, id}]` ordered by time.
//!
//! Events live in `<data dir>/.carbide-events.jsonl`, one JSON object per line, appended under a
//! lock and read back on every query (a dashboard's annotations are a few hundred lines). Tags are
//! kept as django-tagging keeps them: split on commas if there are any, else on spaces, without
//! duplicates, sorted. A tag filter matches as django-tagging's `with_all`/`with_any` do, ignoring
//! tags no event has.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use carbide_query::attime::parse_at_time;
use serde_json::{Value, json};

use crate::params::Params;
use crate::{WebState, request_tz, unix_now};

/// Serialises appends (ids are the last id + 1).
static APPEND: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    id: u64,
    /// Epoch seconds, fractions kept (graphite-web keeps microseconds and truncates on output).
    when: f64,
    what: String,
    data: String,
    /// The tags as given (a list joined by spaces): graphite-web answers `tags.split()` of it.
    tags: String,
}

impl Event {
    /// The tags django-tagging indexes, which filters match.
    fn tag_set(&self) -> Vec<String> {
        parse_tags(&self.tags)
    }
}

fn events_file(state: &WebState) -> PathBuf {
    state.storage.root().join(".carbide-events.jsonl")
}

fn load(state: &WebState) -> Vec<Event> {
    let Ok(text) = std::fs::read_to_string(events_file(state)) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            Some(Event {
                id: v.get("id")?.as_u64()?,
                when: v.get("when")?.as_f64()?,
                what: v.get("what")?.as_str()?.to_string(),
                data: v.get("data")?.as_str().unwrap_or("").to_string(),
                tags: v.get("tags")?.as_str()?.to_string(),
            })
        })
        .collect()
}

/// django-tagging's `parse_tag_input` for unquoted input: commas separate when present, else
/// whitespace; no duplicates; sorted.
fn parse_tags(input: &str) -> Vec<String> {
    let parts: Box<dyn Iterator<Item = &str>> = if input.contains(',') {
        Box::new(input.split(','))
    } else {
        Box::new(input.split_whitespace())
    };
    let set: BTreeSet<String> = parts
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    set.into_iter().collect()
}

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
    let _guard = APPEND.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let id = load(&state).iter().map(|e| e.id).max().unwrap_or(0) + 1;
    let line = json!({"id": id, "when": when, "what": what, "data": data, "tags": tags}).to_string();
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(events_file(&state))
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    match written {
        Ok(()) => StatusCode::OK.into_response(),
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
    let events = load(&state);
    let wanted: Option<Vec<String>> = p.get("tags").map(|t| t.split(' ').map(str::to_string).collect());
    let sets: Vec<Vec<String>> = events.iter().map(Event::tag_set).collect();
    let known: BTreeSet<&str> = sets.iter().flatten().map(String::as_str).collect();
    let set = p.get("set").unwrap_or("");
    let mut out: Vec<&Event> = events
        .iter()
        .zip(&sets)
        .filter(|(e, _)| e.when >= from && e.when <= until)
        .filter(|(_, tags)| match &wanted {
            None => true,
            Some(w) => {
                let has = |t: &String| tags.contains(t);
                let known_wanted: Vec<&String> = w.iter().filter(|t| known.contains(t.as_str())).collect();
                match set {
                    "union" => known_wanted.iter().any(|t| has(t)),
                    "intersection" => !known_wanted.is_empty() && w.iter().all(has),
                    _ => !known_wanted.is_empty() && known_wanted.iter().all(|t| has(t)),
                }
            }
        })
        .map(|(e, _)| e)
        .collect();
    out.sort_by(|a, b| a.when.total_cmp(&b.when).then(a.id.cmp(&b.id)));
    let list: Vec<Value> = out
        .into_iter()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_parse_as_django_tagging() {
        assert_eq!(parse_tags("b a  b"), vec!["a", "b"]);
        assert_eq!(parse_tags("x y, z"), vec!["x y", "z"]);
        assert!(parse_tags("").is_empty());
    }
}
