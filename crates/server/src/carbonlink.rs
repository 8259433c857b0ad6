//! The carbonlink server (port 7002): graphite-web asks for points still in the cache.
//!
//! Requests arrive pickled with protocols 2 to 5 (graphite-web under Python 3 sends 5); replies
//! go back as protocol 2, which every graphite-web can load. A request that cannot be decoded
//! closes the connection, as it does in carbon.

use std::sync::Arc;

use carbide_cache::{Cache, Stats, WhisperPersister};
use carbide_core::AggregationMethod;
use carbide_protocol::carbonlink::{Reply, Request, decode_request};
use carbide_protocol::framing::{decode_frame, encode_frame};
use carbide_protocol::pickle::{Limits, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the carbonlink server reads from.
pub struct CarbonlinkState {
    /// The cache whose points are served.
    pub cache: Arc<Cache>,
    /// Where metric files live, for get-/set-metadata.
    pub persister: Arc<WhisperPersister>,
}

fn points(cache: &Cache, metric: &str) -> Vec<(f64, f64)> {
    cache
        .get(metric)
        .into_iter()
        .map(|(t, v)| (t as f64, v))
        .collect()
}

/// Answers one decoded request.
pub fn answer(state: &CarbonlinkState, req: Request) -> Reply {
    let cache = &state.cache;
    match req {
        Request::CacheQuery { metric } => {
            Stats::add(&cache.stats.queries, 1);
            Reply::Datapoints(points(cache, &metric))
        }
        Request::CacheQueryBulk { metrics } => {
            Stats::add(&cache.stats.queries, metrics.len() as u64);
            Reply::DatapointsByMetric(
                metrics
                    .into_iter()
                    .map(|m| {
                        let p = points(cache, &m);
                        (m, p)
                    })
                    .collect(),
            )
        }
        Request::GetMetadata { metric, key } => {
            if key != "aggregationMethod" {
                return Reply::unsupported_metadata_key(&key);
            }
            let path = match state.persister.path_for(&metric) {
                Ok(p) => p,
                Err(e) => return Reply::Error(format!("invalid metric name: {e}")),
            };
            match carbide_whisper::file::info(&path) {
                Ok(h) => Reply::Value(Value::from(h.aggregation.name())),
                Err(e) => Reply::Error(e.to_string()),
            }
        }
        Request::SetMetadata { metric, key, value } => {
            if key != "aggregationMethod" {
                return Reply::unsupported_metadata_key(&key);
            }
            let Some(method) = value.as_str().and_then(|s| s.parse::<AggregationMethod>().ok()) else {
                return Reply::Error(format!("Unrecognized aggregation method: {}", value.py_str()));
            };
            let path = match state.persister.path_for(&metric) {
                Ok(p) => p,
                Err(e) => return Reply::Error(format!("invalid metric name: {e}")),
            };
            match carbide_whisper::file::set_aggregation_method(&path, method, None, false) {
                Ok(old) => Reply::Changed {
                    old_value: Value::from(old.name()),
                    new_value: value,
                },
                Err(e) => Reply::Error(e.to_string()),
            }
        }
        Request::Unknown { kind } => Reply::invalid_type(&kind),
    }
}

/// Serves carbonlink until `shutdown` turns true.
pub async fn run(listener: TcpListener, state: Arc<CarbonlinkState>, mut shutdown: watch::Receiver<bool>) {
    let mut failing = crate::listeners::AcceptFailures::new("carbonlink".into());
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                failing.recovered();
                let state = state.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, &state).await {
                        tracing::debug!(%peer, error = %e, "carbonlink connection closed");
                    }
                });
            }
            Err(e) => {
                // EMFILE: logged rate-limited; the pending connection waits in the backlog.
                failing.failed(&e);
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
                }
            }
        }
    }
}

/// Largest request frame accepted: a bulk query for many metrics fits easily.
const MAX_REQUEST: usize = 16 << 20;

async fn connection(mut stream: TcpStream, state: &CarbonlinkState) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let limits = Limits::default();
    loop {
        let n = stream.read_buf(&mut buf).await?;
        let mut at = 0;
        while let Some(frame) = decode_frame(&buf[at..], MAX_REQUEST)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
        {
            let req = decode_request(frame.payload, &limits)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            let reply = answer(state, req).encode();
            let mut out = Vec::with_capacity(reply.len() + 4);
            encode_frame(&reply, &mut out)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            stream.write_all(&out).await?;
            at += frame.consumed;
        }
        buf.drain(..at);
        if n == 0 {
            return Ok(());
        }
    }
}
