//! Where a flush goes. [`GraphiteTcp`] writes graphite's plaintext protocol to one or more
//! carbon destinations, as etsy's graphite backend does (a new connection per flush). Inside
//! `carbide serve` a closure implementing [`FlushSink`] can hand the lines straight to the cache.

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
