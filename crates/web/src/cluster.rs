//! graphite-web's `CLUSTER_SERVERS`: other graphite-web or `carbide web` instances whose metrics
//! this one also finds and renders.
//!
//! As graphite-web's `RemoteFinder` and `RemoteReader` do, a find asks every server for
//! `/metrics/find/?local=1&format=json&query=…` (json, not graphite-web's pickle: see
//! [`ClusterServers::find`]) and a path expression's series come from
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

    /// What every server finds for `query` (failures logged and skipped). Asked as
    /// `format=json` rather than graphite-web's default pickle: graphite-web pickles its
    /// `IntervalSet` objects there, which the safe unpickler rightly refuses to build.
    pub fn find(&self, query: &str) -> Vec<RemoteNode> {
        let path = format!("/metrics/find/?local=1&format=json&query={}", enc(query));
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
                    })
                })
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
