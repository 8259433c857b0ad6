//! Where a flush goes. [`GraphiteTcp`] writes graphite's plaintext protocol to one or more
//! carbon destinations, as etsy's graphite backend does (a new connection per flush). Inside
//! `carbide serve`, [`PointSink`] hands each line straight to the cache as a parsed point, with no
//! socket in between.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use carbide_statsd::Flush;

/// Receives each flush. Called from the flush thread, never while the engine is locked, so a
/// slow destination delays the next flush's `graphiteStats`, not the receivers.
pub trait FlushSink: Send {
    /// Delivers one flush; an error is counted as graphite.js's `last_exception`.
    fn deliver(&mut self, flush: &Flush) -> std::io::Result<()>;
}

impl<F> FlushSink for F
where
    F: FnMut(&Flush) -> std::io::Result<()> + Send,
{
    fn deliver(&mut self, flush: &Flush) -> std::io::Result<()> {
        self(flush)
    }
}

/// Graphite's plaintext protocol over TCP, a fresh connection per flush to each destination.
#[derive(Debug, Clone)]
pub struct GraphiteTcp {
    destinations: Vec<String>,
    timeout: Duration,
}

impl GraphiteTcp {
    /// `destinations` are `host:port`; each gets every flush.
    pub fn new(destinations: Vec<String>) -> Self {
        GraphiteTcp {
            destinations,
            timeout: Duration::from_secs(5),
        }
    }

    fn send_one(&self, dest: &str, payload: &[u8]) -> std::io::Result<()> {
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, format!("{dest}: no address"));
        for addr in dest.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(mut conn) => {
                    conn.set_write_timeout(Some(self.timeout))?;
                    conn.write_all(payload)?;
                    return conn.flush();
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

impl FlushSink for GraphiteTcp {
    fn deliver(&mut self, flush: &Flush) -> std::io::Result<()> {
        let payload = flush.to_text();
        let mut result = Ok(());
        for dest in &self.destinations {
            if let Err(e) = self.send_one(dest, payload.as_bytes()) {
                tracing::warn!(destination = %dest, error = %e, "statsd: graphite flush failed");
                result = Err(e);
            }
        }
        result
    }
}

/// Hands every flushed line to a closure as `(name, value, timestamp)`: the in-process path into
/// the cache that `carbide serve` uses instead of a TCP loopback. Values are read as carbon's line
/// receiver reads the text statsd would have sent (`NaN` lines are skipped, as carbon drops them;
/// `Infinity` is kept).
pub struct PointSink<F> {
    store: F,
}

impl<F> std::fmt::Debug for PointSink<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointSink").finish_non_exhaustive()
    }
}

impl<F> PointSink<F>
where
    F: FnMut(&str, f64, i64) -> bool + Send,
{
    /// `store` takes one point and says whether it was kept (false: refused, e.g. a full cache).
    pub fn new(store: F) -> Self {
        PointSink { store }
    }
}

impl<F> FlushSink for PointSink<F>
where
    F: FnMut(&str, f64, i64) -> bool + Send,
{
    fn deliver(&mut self, flush: &Flush) -> std::io::Result<()> {
        let mut refused = 0usize;
        for line in &flush.lines {
            match line.value.parse::<f64>() {
                Ok(v) if v.is_nan() => {}
                Ok(v) => {
                    if !(self.store)(&line.name, v, line.timestamp) {
                        refused += 1;
                    }
                }
                Err(_) => refused += 1,
            }
        }
        if refused > 0 {
            return Err(std::io::Error::other(format!(
                "{refused} of {} flushed points were not stored",
                flush.lines.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carbide_statsd::GraphiteLine;

    fn line(name: &str, value: &str) -> GraphiteLine {
        GraphiteLine {
            name: name.into(),
            value: value.into(),
            timestamp: 100,
        }
    }

    #[test]
    fn point_sink_parses_js_numbers_and_skips_nan() {
        let mut got = Vec::new();
        let flush = Flush {
            timestamp: 100,
            lines: vec![
                line("a", "0.30000000000000004"),
                line("b", "1e+21"),
                line("c", "NaN"),
                line("d", "-Infinity"),
            ],
        };
        PointSink::new(|n: &str, v: f64, t: i64| {
            got.push((n.to_string(), v, t));
            true
        })
        .deliver(&flush)
        .unwrap();
        assert_eq!(
            got,
            vec![
                ("a".to_string(), 0.30000000000000004, 100),
                ("b".to_string(), 1e21, 100),
                ("d".to_string(), f64::NEG_INFINITY, 100),
            ]
        );
        let err = PointSink::new(|n: &str, _: f64, _: i64| n != "b")
            .deliver(&flush)
            .unwrap_err();
        assert!(err.to_string().contains("1 of 4"), "{err}");
    }
}
