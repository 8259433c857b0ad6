//! graphite-web's `CLUSTER_SERVERS`: other graphite-web or `carbide web` instances whose metrics
//! this one also finds and renders.
//!
//! As graphite-web's `RemoteFinder` and `RemoteReader` do, a find asks every server for
//! `/metrics/find/?local=1&format=json&query=…&from=…&until=…` (json, not graphite-web's pickle:
//! see [`ClusterServers::find`]; `from`/`until` only when the find had them) and a path
//! expression's series (or a `seriesByTag(…)` call's) come from
//! `/render/?format=pickle&local=1&noCache=1&from&until&target&now` (`local=1` keeps the servers from
//! asking their own cluster in turn). All servers are asked at once; one that fails or times out
//! contributes nothing and is logged, as graphite-web renders what the others answered.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use carbide_protocol::pickle::{self, LegacyStrings, Limits, Value};
use carbide_render::remote::{Remote, RemoteSeries};

/// Largest answer read from a server.
const MAX_BODY: u64 = 512 << 20;

/// Why a cluster server list or request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A `host:port` entry does not parse.
    #[error("cluster server {0:?}: expected host:port")]
    BadServer(String),
    /// The request failed.
    #[error("{server}{path}: {reason}")]
    Request {
        /// The server.
        server: String,
        /// The path asked for.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// The other instances, and how long each request may take.
#[derive(Debug)]
pub struct ClusterServers {
    servers: Vec<(String, u16)>,
    timeout: Duration,
}

/// A node another server found.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteNode {
    /// The metric path.
    pub path: String,
    /// Whether it is a metric (else a branch).
    pub is_leaf: bool,
    /// A leaf's `(start, end)` intervals as the server reported them: graphite-web's find merge
    /// reads them, and a find answer in json, pickle or msgpack shows them.
    pub intervals: Vec<(f64, f64)>,
}

impl ClusterServers {
    /// Parses `host:port,…` (graphite-web's CLUSTER_SERVERS, `http://` allowed and ignored).
    pub fn parse(list: &str, timeout: Duration) -> Result<ClusterServers, ClusterError> {
        let servers = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                let bad = || ClusterError::BadServer(s.to_string());
                let hp = s.strip_prefix("http://").unwrap_or(s).trim_end_matches('/');
                let (host, port) = hp.rsplit_once(':').ok_or_else(bad)?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let port: u16 = port.parse().map_err(|_| bad())?;
                if host.is_empty() {
                    return Err(bad());
                }
                Ok((host.to_string(), port))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ClusterServers { servers, timeout })
    }

    /// Whether there are any servers.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// What every server finds for `query` between `from` and `until` (epoch seconds, sent when
    /// given, as graphite-web's `RemoteFinder` sends its find's range), failures logged and
    /// skipped. Asked as `format=json` rather than graphite-web's default pickle: graphite-web
    /// pickles its `IntervalSet` objects there, which the safe unpickler rightly refuses to
    /// build; the json answer carries the same intervals.
    pub fn find(&self, query: &str, from: Option<i64>, until: Option<i64>) -> Vec<RemoteNode> {
        let mut path = format!("/metrics/find/?local=1&format=json&query={}", enc(query));
        if let Some(from) = from {
            path.push_str(&format!("&from={from}"));
        }
        if let Some(until) = until {
            path.push_str(&format!("&until={until}"));
        }
        self.ask_all(&path, |body| {
            let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
            let items = v.as_array().ok_or("not a list")?;
            Ok(items
                .iter()
                .filter_map(|item| {
                    Some(RemoteNode {
                        path: item.get("path")?.as_str()?.to_string(),
                        is_leaf: item
                            .get("is_leaf")
                            .is_some_and(|l| l.as_bool().unwrap_or(false) || l.as_str() == Some("1")),
                        intervals: item
                            .get("intervals")
                            .and_then(serde_json::Value::as_array)
                            .map(|list| {
                                list.iter()
                                    .filter_map(|i| {
                                        Some((i.get("start")?.as_f64()?, i.get("end")?.as_f64()?))
                                    })
                                    .filter(|(s, e)| e >= s)
                                    .collect()
                            })
                            .unwrap_or_default(),
                    })
                })
                .collect())
        })
    }

    /// The union of what every server's tag autocompletion (`endpoint`:
    /// `/tags/autoComplete/tags` or `/tags/autoComplete/values`) answers for `fields`, as
    /// graphite-web's `RemoteFinder.auto_complete_tags`/`_values` ask it (failures logged and
    /// skipped).
    pub fn auto_complete(&self, endpoint: &str, fields: &[(&str, &str)]) -> Vec<String> {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.ask_all(&format!("{endpoint}?{query}"), |body| {
            let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
            let items = v.as_array().ok_or("not a list")?;
            Ok(items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect())
        })
    }

    /// Sends `path` to every server at once and decodes each answer's body with `decode`.
    fn ask_all<T: Send>(
        &self,
        path: &str,
        decode: impl Fn(&[u8]) -> Result<Vec<T>, String> + Sync,
    ) -> Vec<T> {
        let decode = &decode;
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .servers
                .iter()
                .map(|(host, port)| {
                    scope.spawn(move || {
                        let server = format!("{host}:{port}");
                        let failed = |reason: String| ClusterError::Request {
                            server: server.clone(),
                            path: path.to_string(),
                            reason,
                        };
                        let body = http_get(host, *port, path, self.timeout).map_err(failed)?;
                        decode(&body).map_err(failed)
                    })
                })
                .collect();
            let mut out = Vec::new();
            for h in handles {
                match h.join() {
                    Ok(Ok(items)) => out.extend(items),
                    Ok(Err(e)) => tracing::warn!(error = %e, "cluster server failed; answering without it"),
                    Err(_) => tracing::warn!("cluster request thread panicked"),
                }
            }
            out
        })
    }
}

impl Remote for ClusterServers {
    fn fetch(&self, pattern: &str, start: i64, end: i64, now: i64) -> Vec<RemoteSeries> {
        let path = format!(
            "/render/?format=pickle&local=1&noCache=1&from={start}&until={end}&target={}&now={now}",
            enc(pattern)
        );
        self.ask_all(&path, |body| {
            let v = pickle::loads_with(body, &Limits::default(), LegacyStrings::Utf8)
                .map_err(|e| format!("bad pickle: {e}"))?;
            let Value::List(items) = v else {
                return Err("not a list".to_string());
            };
            items
                .iter()
                .map(|item| {
                    let int = |k: &str| match get(item, k) {
                        Some(Value::Int(i)) => Ok(*i),
                        Some(Value::Float(f)) => Ok(*f as i64),
                        _ => Err(format!("series without {k}")),
                    };
                    let name = get(item, "name")
                        .and_then(Value::as_str)
                        .ok_or("series without a name")?;
                    let Some(Value::List(values) | Value::Tuple(values)) = get(item, "values") else {
                        return Err(format!("{name}: no values"));
                    };
                    Ok(RemoteSeries {
                        name: name.to_string(),
                        start: int("start")?,
                        end: int("end")?,
                        step: int("step")?,
                        values: values
                            .iter()
                            .map(|v| match v {
                                Value::Int(i) => Some(*i as f64),
                                Value::Float(f) => Some(*f),
                                _ => None,
                            })
                            .collect(),
                    })
                })
                .collect()
        })
    }
}

/// A leaf's `(start, end)` intervals.
type Intervals = Vec<(f64, f64)>;

/// Adds the servers' find answers to the local nodes as graphite-web's `Store._list_nodes` and
/// `_merge_leaf_nodes` do (REMOTE_STORE_MERGE_RESULTS on, its default): a branch is listed once
/// per path; a leaf several stores have is one node, whose intervals are the union of those of
/// every remote copy and of the local copy when that one has data in the find's `from..until`
/// (`range`, open where `None`). Returns the intervals of the leaves that are not purely local
/// (remote-only or merged), by path; a local leaf keeps the intervals `local_intervals` gives it.
pub fn merge_find(
    local: &mut Vec<carbide_storage::Node>,
    remote: Vec<RemoteNode>,
    range: (Option<i64>, Option<i64>),
    local_intervals: impl Fn(&str) -> Vec<(f64, f64)>,
) -> std::collections::HashMap<String, Vec<(f64, f64)>> {
    // Each remote leaf's path with the intervals of every copy of it.
    let mut leaves: Vec<(String, Vec<Intervals>)> = Vec::new();
    for r in remote {
        if !r.is_leaf {
            if !local.iter().any(|n| !n.is_leaf && n.path == r.path) {
                local.push(carbide_storage::Node {
                    path: r.path,
                    is_leaf: false,
                });
            }
            continue;
        }
        match leaves.iter_mut().find(|(p, _)| *p == r.path) {
            Some((_, copies)) => copies.push(r.intervals),
            None => leaves.push((r.path, vec![r.intervals])),
        }
    }
    let (from, until) = (
        range.0.map_or(f64::NEG_INFINITY, |t| t as f64),
        range.1.map_or(f64::INFINITY, |t| t as f64),
    );
    let mut intervals = std::collections::HashMap::new();
    for (path, mut copies) in leaves {
        if local.iter().any(|n| n.is_leaf && n.path == path) {
            let mine = local_intervals(&path);
            // measure_of_added_coverage(node, False) > 0: local data inside the find's range.
            let covers = mine.iter().any(|&(s, e)| e.min(until) - s.max(from) > 0.0);
            if covers {
                copies.insert(0, mine);
            }
        } else {
            local.push(carbide_storage::Node {
                path: path.clone(),
                is_leaf: true,
            });
        }
        let merged = if copies.len() == 1 {
            copies.pop().unwrap_or_default()
        } else {
            union_overlapping(copies.into_iter().flatten().collect())
        };
        intervals.insert(path, merged);
    }
    intervals
}

/// graphite-web's `IntervalSet` of several nodes' intervals: overlapping (or touching) intervals
/// joined. Sorted by start first; graphite-web means to sort too, but its `Interval.__lt__`
/// compares an interval's start with itself, so its order of disjoint intervals is arbitrary.
fn union_overlapping(mut list: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    list.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(list.len());
    for (s, e) in list {
        match out.last_mut() {
            Some(last) if last.1 >= s => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn get<'v>(dict: &'v Value, key: &str) -> Option<&'v Value> {
    let Value::Dict(items) = dict else { return None };
    items
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A plain HTTP/1.0 GET: the body of a 200 answer.
fn http_get(host: &str, port: u16, path: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nAccept: */*\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.take(MAX_BODY)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no HTTP header")?;
    let head = String::from_utf8_lossy(&buf[..split]);
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("HTTP {status}"));
    }
    Ok(buf.split_off(split + 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_answers_merge_as_graphite_web_merges_nodes() {
        let node = |path: &str, is_leaf| carbide_storage::Node {
            path: path.into(),
            is_leaf,
        };
        let remote = |path: &str, is_leaf, intervals: Vec<(f64, f64)>| RemoteNode {
            path: path.into(),
            is_leaf,
            intervals,
        };
        let answers = || {
            vec![
                remote("a", false, vec![]),
                remote("a", true, vec![(100.0, 200.0)]),
                remote("b", true, vec![(150.0, 300.0)]),
                remote("c", true, vec![(10.0, 20.0)]),
                remote("c", true, vec![(30.0, 40.0), (15.0, 25.0)]),
            ]
        };
        let local_iv = |_: &str| vec![(0.0, 160.0)];
        // No range: the local copy of b has data, so b's intervals are the union; a is a branch
        // here and a leaf there, so it is listed as both.
        let mut local = vec![node("a", false), node("b", true)];
        let iv = merge_find(&mut local, answers(), (None, None), local_iv);
        assert_eq!(local.len(), 4);
        assert!(local.contains(&node("a", true)) && local.contains(&node("c", true)));
        assert_eq!(iv["b"], vec![(0.0, 300.0)]);
        assert_eq!(iv["a"], vec![(100.0, 200.0)]);
        assert_eq!(iv["c"], vec![(10.0, 25.0), (30.0, 40.0)]);
        // A range the local copy has no data in: b is the remote copy alone.
        let mut local = vec![node("b", true)];
        let iv = merge_find(&mut local, answers(), (Some(170), Some(250)), local_iv);
        assert_eq!(iv["b"], vec![(150.0, 300.0)]);
        let mut local = vec![node("b", true)];
        let iv = merge_find(&mut local, answers(), (None, Some(150)), local_iv);
        assert_eq!(iv["b"], vec![(0.0, 300.0)]);
    }

    #[test]
    fn servers_parse() {
        let c = ClusterServers::parse("a:8080, http://b:80/,[::1]:9", Duration::from_secs(1)).unwrap();
        assert_eq!(
            c.servers,
            vec![("a".into(), 8080), ("b".into(), 80), ("::1".into(), 9)]
        );
        for bad in ["a", "a:x", ":80"] {
            assert!(
                ClusterServers::parse(bad, Duration::from_secs(1)).is_err(),
                "{bad}"
            );
        }
    }
}
