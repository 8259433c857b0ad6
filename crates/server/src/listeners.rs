//! The receivers: plaintext lines over TCP and UDP, pickle frames over TCP.
//!
//! Each TCP connection is a task that reads into a buffer, splits complete lines or frames, and
//! hands each point to [`Ingest`]. Before every read it checks the cache: when the cache is full
//! the task stops reading, so the kernel's receive window fills and TCP pushes back on the sender.
//! Limits bound everything a client controls: line length, frame length, connection count.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use carbide_protocol::framing::decode_frame;
use carbide_protocol::line::{LineSplitter, datagram_lines, parse_line, parse_line_str};
use carbide_protocol::pickle::Limits;
use carbide_protocol::points::decode_points;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Notify, Semaphore, watch};

use crate::ingest::{Ingest, now_f64};

/// Limits on what clients may make the receivers hold.
#[derive(Debug, Clone, Copy)]
pub struct ReceiverLimits {
    /// Most simultaneous connections per listener (MAX_RECEIVER_CONNECTIONS).
    pub max_connections: usize,
    /// Longest line kept; longer ones are logged and skipped.
    pub max_line: usize,
    /// Longest pickle frame (PICKLE_RECEIVER_MAX_LENGTH); a longer one drops the connection.
    pub max_frame: usize,
}

impl Default for ReceiverLimits {
    fn default() -> Self {
        ReceiverLimits {
            max_connections: 10_000,
            max_line: 64 * 1024,
            max_frame: 1 << 20,
        }
    }
}

/// What a TCP listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `metric value timestamp\n`.
    Line,
    /// 4-byte length, then a pickled list of points.
    Pickle,
}

/// Waits until the cache has room, re-checking every 100 ms in case a wake-up is missed.
pub async fn wait_for_space(ingest: &Ingest, space: &Notify) {
    while ingest.cache.should_pause() {
        let _ = tokio::time::timeout(Duration::from_millis(100), space.notified()).await;
    }
}

/// Accepts connections until `shutdown` turns true; each connection gets its own task.
pub async fn run_tcp(
    listener: TcpListener,
    wire: Wire,
    ingest: Arc<Ingest>,
    space: Arc<Notify>,
    limits: ReceiverLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: say so, wait for descriptors to free up, keep accepting.
                ingest.stats.refused_connections.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "accept failed; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            ingest.stats.refused_connections.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, limit = limits.max_connections, "connection limit reached; refusing");
            drop(stream);
            continue;
        };
        let (ingest, space, shutdown) = (ingest.clone(), space.clone(), shutdown.clone());
        tokio::spawn(async move {
            ingest.stats.active_connections.fetch_add(1, Ordering::Relaxed);
            let peer = peer.to_string();
            let result = match wire {
                Wire::Line => line_connection(stream, &peer, &ingest, &space, limits, shutdown).await,
                Wire::Pickle => pickle_connection(stream, &peer, &ingest, &space, limits, shutdown).await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
            ingest.stats.active_connections.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

/// Reads more bytes into `buf` unless shutdown comes first; `Ok(0)` at end of stream or shutdown.
async fn read_some(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    shutdown: &mut watch::Receiver<bool>,
) -> std::io::Result<usize> {
    if *shutdown.borrow() {
        return Ok(0);
    }
    buf.reserve(64 * 1024);
    tokio::select! {
        n = stream.read_buf(buf) => n,
        _ = shutdown.changed() => Ok(0),
    }
}

async fn line_connection(
    mut stream: TcpStream,
    peer: &str,
    ingest: &Ingest,
    space: &Notify,
    limits: ReceiverLimits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut splitter = LineSplitter::new(limits.max_line);
    loop {
        wait_for_space(ingest, space).await;
        let n = read_some(&mut stream, &mut buf, &mut shutdown).await?;
        let eof = n == 0;
        // A last line without its newline is dropped at end of stream, as carbon's
        // LineOnlyReceiver does: a sender cut off mid-line (`a.b 12` of `a.b 123 1700000000`)
        // would otherwise store a wrong value or a wrong timestamp.
        let now = now_f64();
        let consumed = {
            let mut lines = splitter.split(&buf);
            for line in lines.by_ref() {
                match line {
                    Ok(raw) => match parse_line(raw, now) {
                        Ok(p) => {
                            ingest.point(p.name, p.value, p.timestamp);
                        }
                        Err(carbide_protocol::LineError::NanValue) => {}
                        Err(e) => ingest.bad_line(peer, raw, &e),
                    },
                    Err(e) => ingest.bad_line(peer, b"<line longer than the limit>", &e),
                }
            }
            lines.consumed()
        };
        buf.drain(..consumed);
        if eof {
            return Ok(());
        }
    }
}

async fn pickle_connection(
    mut stream: TcpStream,
    peer: &str,
    ingest: &Ingest,
    space: &Notify,
    limits: ReceiverLimits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let pickle_limits = Limits::default();
    loop {
        wait_for_space(ingest, space).await;
        let n = read_some(&mut stream, &mut buf, &mut shutdown).await?;
        let mut at = 0;
        loop {
            match decode_frame(&buf[at..], limits.max_frame) {
                Ok(Some(frame)) => {
                    let len = frame.consumed;
                    match decode_points(frame.payload, now_f64(), &pickle_limits) {
                        Ok(entries) => {
                            for entry in entries {
                                match entry {
                                    Ok(p) => {
                                        ingest.point(&p.name, p.value, p.timestamp);
                                    }
                                    Err(carbide_protocol::points::EntryError::NanValue) => {}
                                    Err(e) => ingest.bad_line(peer, b"<pickle entry>", &e),
                                }
                            }
                        }
                        Err(e) => ingest.bad_line(peer, b"<pickle frame>", &e),
                    }
                    at += len;
                }
                Ok(None) => break,
                Err(e) => {
                    ingest.stats.refused_connections.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(peer, error = %e, "pickle frame refused; dropping the connection");
                    return Ok(());
                }
            }
        }
        buf.drain(..at);
        if n == 0 {
            return Ok(());
        }
    }
}

/// Receives plaintext datagrams until shutdown.
pub async fn run_udp(socket: UdpSocket, ingest: Arc<Ingest>, mut shutdown: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let received = tokio::select! {
            _ = shutdown.changed() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        let (n, peer) = match received {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "udp receive failed");
                continue;
            }
        };
        let peer = peer.to_string();
        let now = now_f64();
        match datagram_lines(&buf[..n]) {
            Ok(lines) => {
                for line in lines {
                    match parse_line_str(line, now) {
                        Ok(p) => {
                            ingest.point(p.name, p.value, p.timestamp);
                        }
                        Err(carbide_protocol::LineError::NanValue) => {}
                        Err(e) => ingest.bad_line(&peer, line.as_bytes(), &e),
                    }
                }
            }
            Err(e) => ingest.bad_line(&peer, &buf[..n.min(400)], &e),
        }
    }
}
