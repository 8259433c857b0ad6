//! graphite-web's `/tags` API (`graphite/tags/views.py` over its local tag database) on the store's
//! tag index: tagSeries, tagMultiSeries, delSeries, findSeries, the tag list, one tag's values, and
//! the two autocomplete endpoints Grafana's tag editor calls.
//!
//! Answers are graphite-web's JSON, ids included (numbered as graphite-web's tables number rows).
//! Errors are its `{"error": message}` with its statuses: 400 for a bad expression or limit, 500
//! for a name that does not parse as a tagged series, 405 for a wrong method.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use carbide_query::tags::TagError as ExprError;
use carbide_storage::TagIndexError;
use serde_json::{Value, json};

use crate::WebState;
use crate::params::Params;

/// graphite-web's `TAGDB_AUTOCOMPLETE_LIMIT`.
const AUTOCOMPLETE_LIMIT: i64 = 100;

fn respond(status: StatusCode, body: &Value, p: &Params) -> Response {
    let text = if p.get("pretty").is_some_and(|v| !v.is_empty()) {
        serde_json::to_string_pretty(body).unwrap_or_default()
    } else {
        python_json(body)
    };
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// `json.dumps` spacing: `", "` between items and `": "` after keys.
fn python_json(v: &Value) -> String {
    match v {
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(python_json).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), python_json(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        other => other.to_string(),
    }
}

fn error(status: StatusCode, msg: impl std::fmt::Display, p: &Params) -> Response {
    respond(status, &json!({ "error": msg.to_string() }), p)
}

fn method_not_allowed() -> Response {
    StatusCode::METHOD_NOT_ALLOWED.into_response()
}

/// A tag index error as graphite-web reports it: expression problems are `ValueError`s (400),
/// unparsable names and regexes plain exceptions (500).
fn index_error(e: &TagIndexError, p: &Params) -> Response {
    match e {
        TagIndexError::Expr(ExprError::InvalidSpec(s)) => {
            error(StatusCode::BAD_REQUEST, format!("Invalid tagspec {s}"), p)
        }
        TagIndexError::Expr(ExprError::AllMatchEmpty) => error(
            StatusCode::BAD_REQUEST,
            "At least one tagspec must not match the empty string",
            p,
        ),
        TagIndexError::Expr(ExprError::Empty) => {
            error(StatusCode::BAD_REQUEST, "no tag expressions specified", p)
        }
        other => error(StatusCode::INTERNAL_SERVER_ERROR, other, p),
    }
}

/// `queryParams` as graphite-web's `jsonResponse` builds them: GET alone, or GET then POST.
fn params(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Params {
    Params::from_request(method, uri, headers, body)
}

/// `getlist(key)` or, when empty, `getlist(key + "[]")`.
fn list(p: &Params, key: &str) -> Vec<String> {
    let v = p.get_list(key);
    if v.is_empty() {
        p.get_list(&format!("{key}[]"))
    } else {
        v
    }
}

/// Python's `int(text)` for a limit; `Err` carries graphite-web's message.
fn parse_limit(text: &str) -> Result<i64, String> {
    let t = text.trim().replace('_', "");
    t.strip_prefix('+')
        .unwrap_or(&t)
        .parse::<i64>()
        .map_err(|_| format!("invalid literal for int() with base 10: '{text}'"))
}

/// The limit given to the tag database (`None` = no `LIMIT`): a non-empty string limits, as
/// `if limit:` on the request's string.
fn sql_limit(p: &Params) -> Result<Option<i64>, String> {
    match p.get("limit") {
        None | Some("") => Ok(None),
        Some(l) => parse_limit(l).map(Some),
    }
}

/// POST /tags/tagSeries: the normalised name.
pub async fn tag_series(
    State(state): State<Arc<WebState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(&method, &uri, &headers, &body);
    if method != Method::POST {
        return method_not_allowed();
    }
    let Some(path) = p.get("path").filter(|s| !s.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "no path specified", &p);
    };
    match state.storage.tag_series(path) {
        Ok(normal) => respond(StatusCode::OK, &json!(normal), &p),
        Err(e) => index_error(&e, &p),
    }
}

/// POST /tags/tagMultiSeries: the normalised names, in order.
pub async fn tag_multi_series(
    State(state): State<Arc<WebState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(&method, &uri, &headers, &body);
    if method != Method::POST {
        return method_not_allowed();
    }
    let paths = list(&p, "path");
    if paths.is_empty() {
        return error(StatusCode::BAD_REQUEST, "no paths specified", &p);
    }
    let mut out = Vec::with_capacity(paths.len());
    for path in &paths {
        match state.storage.tag_series(path) {
            Ok(normal) => out.push(Value::String(normal)),
            Err(e) => return index_error(&e, &p),
        }
    }
    respond(StatusCode::OK, &Value::Array(out), &p)
}

/// POST /tags/delSeries: `true`.
pub async fn del_series(
    State(state): State<Arc<WebState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(&method, &uri, &headers, &body);
    if method != Method::POST {
        return method_not_allowed();
    }
    let paths = list(&p, "path");
    if paths.is_empty() {
        return error(StatusCode::BAD_REQUEST, "no path specified", &p);
    }
    for path in &paths {
        if let Err(e) = state.storage.del_series(path) {
            return index_error(&e, &p);
        }
    }
    respond(StatusCode::OK, &json!(true), &p)
}

/// GET|POST /tags/findSeries?expr=…: matching names, sorted.
pub async fn find_series(
    State(state): State<Arc<WebState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(&method, &uri, &headers, &body);
    if method != Method::GET && method != Method::POST {
        return method_not_allowed();
    }
    let exprs = list(&p, "expr");
    if exprs.is_empty() {
        return error(StatusCode::BAD_REQUEST, "no tag expressions specified", &p);
    }
    match state.storage.tags().find_series(&exprs) {
        Ok(paths) => respond(StatusCode::OK, &json!(paths), &p),
        Err(e) => index_error(&e, &p),
    }
}

/// GET /tags?filter&limit: `[{"id", "tag"}]`.
pub async fn tag_list(
    State(state): State<Arc<WebState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(&method, &uri, &headers, &body);
    if method != Method::GET {
        return method_not_allowed();
    }
    let limit = match sql_limit(&p) {
        Ok(l) => l,
        Err(e) => return error(StatusCode::BAD_REQUEST, e, &p),
    };
    match state.storage.tags().list_tags(p.get("filter"), limit) {
        Ok(tags) => {
            let v: Vec<Value> = tags
                .into_iter()
                .map(|t| json!({"id": t.id, "tag": t.text}))
                .collect();
            respond(StatusCode::OK, &Value::Array(v), &p)
        }
        Err(e) => index_error(&e, &p),
    }
}

/// GET /tags/<tag>?filter&limit: `{"id", "tag", "values": [{"id", "value", "count"}]}`, or `null`.
pub async fn tag_details(
    State(state): State<Arc<WebState>>,
    Path(tag): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(&method, &uri, &headers, &body);
    if method != Method::GET {
        return method_not_allowed();
    }
    let index = state.storage.tags();
    let Some(id) = index.tag_id(&tag) else {
        return respond(StatusCode::OK, &Value::Null, &p);
    };
    let limit = match sql_limit(&p) {
        Ok(l) => l,
        Err(e) => return error(StatusCode::BAD_REQUEST, e, &p),
    };
    match index.list_values(&tag, p.get("filter"), limit) {
        Ok(values) => {
            let values: Vec<Value> = values
                .into_iter()
                .map(|v| json!({"id": v.id, "value": v.value, "count": v.count}))
                .collect();
            respond(
                StatusCode::OK,
                &json!({"id": id, "tag": tag, "values": values}),
                &p,
            )
        }
        Err(e) => index_error(&e, &p),
    }
}

/// The store's final `sorted(results)[:int(limit)]` when the request's limit is a non-empty string.
fn store_limit(mut results: Vec<String>, limit: Option<&str>) -> Result<Vec<String>, String> {
    results.sort();
    results.dedup();
    if let Some(l) = limit.filter(|l| !l.is_empty()) {
        let n = parse_limit(l)?;
        let len = results.len() as i64;
        let keep = if n >= 0 { n.min(len) } else { (len + n).max(0) };
        results.truncate(keep as usize);
    }
    Ok(results)
}

/// The limit the tag database itself is called with: `TAGDB_AUTOCOMPLETE_LIMIT` or `int(limit)`.
fn inner_limit(p: &Params) -> Result<i64, String> {
    match p.get("limit") {
        None => Ok(AUTOCOMPLETE_LIMIT),
        Some(l) => parse_limit(l),
    }
}

/// GET|POST /tags/autoComplete/tags?expr&tagPrefix&limit: tag names.
pub async fn auto_complete_tags(
    State(state): State<Arc<WebState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(&method, &uri, &headers, &body);
    if method != Method::GET && method != Method::POST {
        return method_not_allowed();
    }
    let exprs = list(&p, "expr");
    let limit = match inner_limit(&p) {
        Ok(l) => l,
        Err(e) => return error(StatusCode::BAD_REQUEST, e, &p),
    };
    let prefix = p.get("tagPrefix").filter(|s| !s.is_empty());
    match state.storage.tags().auto_complete_tags(&exprs, prefix, limit) {
        Ok(mut found) => {
            let fields = [("tagPrefix", prefix.unwrap_or(""))];
            found.extend(remote_auto_complete(&state, &p, "/tags/autoComplete/tags", &fields, &exprs).await);
            match store_limit(found, p.get("limit")) {
                Ok(v) => respond(StatusCode::OK, &json!(v), &p),
                Err(e) => error(StatusCode::BAD_REQUEST, e, &p),
            }
        }
        Err(e) => index_error(&e, &p),
    }
}

/// What the cluster servers' tag autocompletion adds (nothing for `local=1`): graphite-web's
/// `Store.tagdb_auto_complete_*` asks every `RemoteFinder` with the request's fields, its `limit`
/// (or TAGDB_AUTOCOMPLETE_LIMIT), `local=1` and each `expr`, then sorts and limits the union.
async fn remote_auto_complete(
    state: &WebState,
    p: &Params,
    endpoint: &'static str,
    fields: &[(&str, &str)],
    exprs: &[String],
) -> Vec<String> {
    let Some(cluster) = state.cluster.clone().filter(|_| p.get("local") != Some("1")) else {
        return Vec::new();
    };
    let mut fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let limit = p
        .get("limit")
        .map_or_else(|| AUTOCOMPLETE_LIMIT.to_string(), str::to_string);
    fields.push(("limit".into(), limit));
    fields.push(("local".into(), "1".into()));
    fields.extend(exprs.iter().map(|e| ("expr".to_string(), e.clone())));
    tokio::task::spawn_blocking(move || {
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        cluster.auto_complete(endpoint, &pairs)
    })
    .await
    .unwrap_or_default()
}

/// GET|POST /tags/autoComplete/values?tag&expr&valuePrefix&limit: values of one tag.
pub async fn auto_complete_values(
    State(state): State<Arc<WebState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(&method, &uri, &headers, &body);
    if method != Method::GET && method != Method::POST {
        return method_not_allowed();
    }
    let exprs = list(&p, "expr");
    let Some(tag) = p.get("tag").filter(|t| !t.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "no tag specified", &p);
    };
    let limit = match inner_limit(&p) {
        Ok(l) => l,
        Err(e) => return error(StatusCode::BAD_REQUEST, e, &p),
    };
    let prefix = p.get("valuePrefix").filter(|s| !s.is_empty());
    match state
        .storage
        .tags()
        .auto_complete_values(&exprs, tag, prefix, limit)
    {
        Ok(mut found) => {
            let fields = [("tag", tag), ("valuePrefix", prefix.unwrap_or(""))];
            found
                .extend(remote_auto_complete(&state, &p, "/tags/autoComplete/values", &fields, &exprs).await);
            match store_limit(found, p.get("limit")) {
                Ok(v) => respond(StatusCode::OK, &json!(v), &p),
                Err(e) => error(StatusCode::BAD_REQUEST, e, &p),
            }
        }
        Err(e) => index_error(&e, &p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_as_python_does() {
        assert_eq!(parse_limit(" +5 "), Ok(5));
        assert_eq!(parse_limit("-1"), Ok(-1));
        assert!(parse_limit("x").is_err());
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(store_limit(v(&["b", "a", "c"]), Some("-1")), Ok(v(&["a", "b"])));
        assert_eq!(store_limit(v(&["b", "a"]), Some("0")), Ok(v(&[])));
        assert_eq!(store_limit(v(&["b", "a"]), None), Ok(v(&["a", "b"])));
        assert_eq!(python_json(&json!([{"a": 1}, "x"])), r#"[{"a": 1}, "x"]"#);
    }
}
