//! graphite-web's `CARBONLINK_HOSTS`: points a remote carbon-cache (or `carbide cache`) holds but
//! has not written yet, asked for over the carbonlink protocol and merged into whisper fetches.
//!
//! As graphite-web's `CarbonLinkPool` does, the metric name picks one host on a `carbon_ch` ring
//! of `(server, instance)` keys (the same ring carbon-relay uses to send the metric there), the
//! request is a length-prefixed pickled `{'type': 'cache-query', 'metric': name}`, and the answer's
//! `datapoints` are merged by [`carbide_storage::merge_hot_points`]. A host that fails or times out
//! contributes nothing (graphite-web logs it and renders from disk); its connection is dropped.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use carbide_protocol::carbonlink::{Request, request_value};
use carbide_protocol::pickle::{self, LegacyStrings, Limits, Value};
use carbide_routing::{CarbonHash, ConsistentRing, Destination};
use carbide_storage::HotPoints;

/// Largest reply accepted (a cache holding a day of 1-second points for a metric is ~2 MB).
const MAX_REPLY: usize = 64 << 20;

/// Why a carbonlink host list or query failed.
#[derive(Debug, thiserror::Error)]
pub enum CarbonlinkError {
    /// A `host:port[:instance]` entry does not parse.
    #[error("carbonlink host {0:?}: expected host:port[:instance]")]
    BadHost(String),
    /// The hosts do not make a ring (duplicates, none).
    #[error("carbonlink hosts: {0}")]
    Ring(String),
    /// Talking to a host failed.
    #[error("carbonlink {host}: {source}")]
    Io {
        /// The host.
        host: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The host's answer is not a carbonlink reply.
    #[error("carbonlink {host}: bad reply: {reason}")]
    Reply {
        /// The host.
        host: String,
        /// What was wrong.
        reason: String,
    },
}

/// A connection pool over the carbonlink hosts, usable as the store's hot points.
#[derive(Debug)]
pub struct CarbonlinkPool {
    ring: ConsistentRing,
    /// Idle connections per ring node.
    idle: Vec<std::sync::Mutex<Vec<TcpStream>>>,
    timeout: Duration,
}

/// Parses graphite-web's `CARBONLINK_HOSTS` entries: `host:port[:instance]` (`[v6]:port[:i]`).
pub fn parse_hosts(list: &str) -> Result<Vec<Destination>, CarbonlinkError> {
    list.split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| {
            let bad = || CarbonlinkError::BadHost(h.to_string());
            let (server, rest) = if let Some(v6) = h.strip_prefix('[') {
                let (server, rest) = v6.split_once("]:").ok_or_else(bad)?;
                (server.to_string(), rest)
            } else {
                let (server, rest) = h.split_once(':').ok_or_else(bad)?;
                (server.to_string(), rest)
            };
            let (port, instance) = match rest.split_once(':') {
                Some((p, i)) => (p, Some(i)),
                None => (rest, None),
            };
            let port: u16 = port.parse().map_err(|_| bad())?;
            if server.is_empty() {
                return Err(bad());
            }
            Ok(match instance {
                Some(i) => Destination::with_instance(server, port, i),
                None => Destination::new(server, port),
            })
        })
        .collect()
}

impl CarbonlinkPool {
    /// A pool over `hosts` (graphite-web's ring, `carbon_ch`), each query bounded by `timeout`
    /// (graphite-web's CARBONLINK_TIMEOUT, 1 s by default).
    pub fn new(hosts: Vec<Destination>, timeout: Duration) -> Result<CarbonlinkPool, CarbonlinkError> {
        let n = hosts.len();
        let ring = ConsistentRing::carbon(CarbonHash::CarbonCh, hosts, true)
            .map_err(|e| CarbonlinkError::Ring(e.to_string()))?;
        Ok(CarbonlinkPool {
            ring,
            idle: (0..n).map(|_| std::sync::Mutex::new(Vec::new())).collect(),
            timeout,
        })
    }

    /// The cached `(timestamp, value)` points of `metric` on the host the ring picks for it.
    pub fn query(&self, metric: &str) -> Result<Vec<(i64, f64)>, CarbonlinkError> {
        let mut nodes = Vec::with_capacity(1);
        self.ring.route(metric.as_bytes(), 1, &mut nodes);
        let Some(node) = nodes.first().copied() else {
            return Ok(Vec::new());
        };
        let Some(dest) = self.ring.destinations().get(node.index()) else {
            return Ok(Vec::new());
        };
        let host = format!("{}:{}", dest.host, dest.port);
        let io = |source| CarbonlinkError::Io {
            host: host.clone(),
            source,
        };
        let pooled = self
            .idle
            .get(node.index())
            .and_then(|m| m.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop());
        let mut conn = match pooled {
            Some(c) => c,
            None => {
                let addr = (dest.host.as_str(), dest.port)
                    .to_socket_addrs()
                    .map_err(io)?
                    .next()
                    .ok_or_else(|| io(std::io::Error::other("no address")))?;
                let c = TcpStream::connect_timeout(&addr, self.timeout).map_err(io)?;
                c.set_read_timeout(Some(self.timeout)).map_err(io)?;
                c.set_write_timeout(Some(self.timeout)).map_err(io)?;
                c.set_nodelay(true).map_err(io)?;
                c
            }
        };
        let req = Request::CacheQuery {
            metric: metric.to_string(),
        };
        let body = pickle::dumps_with(&request_value(&req), pickle::Protocol::V2);
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&body);
        conn.write_all(&frame).map_err(io)?;
        let mut len = [0u8; 4];
        conn.read_exact(&mut len).map_err(io)?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_REPLY {
            return Err(CarbonlinkError::Reply {
                host,
                reason: format!("{len} bytes"),
            });
        }
        let mut reply = vec![0u8; len];
        conn.read_exact(&mut reply).map_err(io)?;
        // The connection is reusable only once the whole reply is read.
        if let Some(m) = self.idle.get(node.index()) {
            m.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(conn);
        }
        let value = pickle::loads_with(&reply, &Limits::default(), LegacyStrings::Utf8).map_err(|e| {
            CarbonlinkError::Reply {
                host: host.clone(),
                reason: e.to_string(),
            }
        })?;
        datapoints(&value).ok_or_else(|| CarbonlinkError::Reply {
            host,
            reason: format!("no datapoints in {value:?}"),
        })
    }
}

/// The `datapoints` of a `cache-query` reply; `None` if it is an error or another shape.
fn datapoints(v: &Value) -> Option<Vec<(i64, f64)>> {
    let Value::Dict(items) = v else { return None };
    let (_, list) = items.iter().find(|(k, _)| k.as_str() == Some("datapoints"))?;
    let (Value::List(points) | Value::Tuple(points)) = list else {
        return None;
    };
    let num = |v: &Value| match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    };
    points
        .iter()
        .map(|p| match p {
            Value::Tuple(tv) | Value::List(tv) if tv.len() == 2 => Some((num(&tv[0])? as i64, num(&tv[1])?)),
            _ => None,
        })
        .collect()
}

impl HotPoints for CarbonlinkPool {
    fn points(&self, name: &str) -> Vec<(i64, f64)> {
        match self.query(name) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(metric = name, error = %e, "carbonlink query failed; rendering from disk");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_as_graphite_web_parses_them() {
        let h = parse_hosts("127.0.0.1:7002:a, [::1]:7102 ,x:1").unwrap();
        assert_eq!(h[0], Destination::with_instance("127.0.0.1", 7002, "a"));
        assert_eq!(h[1], Destination::new("::1", 7102));
        assert_eq!(h[2], Destination::new("x", 1));
        for bad in ["nohost", "h:notaport", ":7002", "[::1]7002"] {
            assert!(parse_hosts(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn replies_decode() {
        let ok = Value::Dict(vec![(
            Value::from("datapoints"),
            Value::List(vec![Value::Tuple(vec![Value::Int(60), Value::Float(1.5)])]),
        )]);
        assert_eq!(datapoints(&ok), Some(vec![(60, 1.5)]));
        let err = Value::Dict(vec![(Value::from("error"), Value::from("x"))]);
        assert_eq!(datapoints(&err), None);
    }
}
