//! Line and pickle TCP receivers that feed a [`Sink`], with flow control: before every read the
//! connection waits while the sink asks to pause, so TCP pushes back on the sender.
//!
//! These mirror the cache role's receivers in carbide-server on top of the same protocol codecs;
//! they are separate because those are tied to the cache's ingest path.

use std::sync::Arc;
use std::time::Duration;

use carbide_protocol::framing::decode_frame;
use carbide_protocol::line::{LineSplitter, parse_line};
use carbide_protocol::pickle::Limits;
use carbide_protocol::points::decode_points;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::{Sink, now_f64};

/// What a receiver speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `metric value timestamp\n`.
    Line,
    /// 4-byte big-endian length, then a pickled list of points.
    Pickle,
}

/// Limits on what a client may make a receiver hold.
#[derive(Debug, Clone, Copy)]
pub struct ReceiverLimits {
    /// MAX_RECEIVER_CONNECTIONS.
    pub max_connections: usize,
    /// Longest line kept.
    pub max_line: usize,
    /// PICKLE_RECEIVER_MAX_LENGTH.
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

async fn wait_for_room(sink: &dyn Sink, shutdown: &watch::Receiver<bool>) {
    while sink.should_pause() && !*shutdown.borrow() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Accepts connections until `shutdown` turns true.
pub async fn run_tcp(
    listener: TcpListener,
    wire: Wire,
    sink: Arc<dyn Sink>,
    limits: ReceiverLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "accept failed; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = limits.max_connections, "connection limit reached; refusing");
            continue;
        };
        let (sink, shutdown) = (sink.clone(), shutdown.clone());
        tokio::spawn(async move {
            let peer = peer.to_string();
            let r = match wire {
                Wire::Line => line_conn(stream, &peer, &*sink, limits, shutdown).await,
                Wire::Pickle => pickle_conn(stream, &peer, &*sink, limits, shutdown).await,
            };
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
            drop(permit);
        });
    }
}

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

async fn line_conn(
    mut stream: TcpStream,
    peer: &str,
    sink: &dyn Sink,
    limits: ReceiverLimits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut splitter = LineSplitter::new(limits.max_line);
    loop {
        wait_for_room(sink, &shutdown).await;
        let n = read_some(&mut stream, &mut buf, &mut shutdown).await?;
        let eof = n == 0;
        if eof && !buf.is_empty() && !splitter.is_discarding() {
            buf.push(b'\n');
        }
        let now = now_f64();
        let consumed = {
            let mut lines = splitter.split(&buf);
            for line in lines.by_ref() {
                match line {
                    Ok(raw) => match parse_line(raw, now) {
                        Ok(p) => {
                            sink.point(p.name, p.value, p.timestamp);
                        }
                        Err(carbide_protocol::LineError::NanValue) => {}
                        Err(e) => sink.bad_input(peer, &format!("{e}: {}", String::from_utf8_lossy(raw))),
                    },
                    Err(e) => sink.bad_input(peer, &e.to_string()),
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

async fn pickle_conn(
    mut stream: TcpStream,
    peer: &str,
    sink: &dyn Sink,
    limits: ReceiverLimits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(64 * 1024);
    let pickle_limits = Limits::default();
    loop {
        wait_for_room(sink, &shutdown).await;
        let n = read_some(&mut stream, &mut buf, &mut shutdown).await?;
        let mut at = 0;
        loop {
            match decode_frame(&buf[at..], limits.max_frame) {
                Ok(Some(frame)) => {
                    match decode_points(frame.payload, now_f64(), &pickle_limits) {
                        Ok(entries) => {
                            for entry in entries {
                                match entry {
                                    Ok(p) => {
                                        sink.point(&p.name, p.value, p.timestamp);
                                    }
                                    Err(carbide_protocol::points::EntryError::NanValue) => {}
                                    Err(e) => sink.bad_input(peer, &e.to_string()),
                                }
                            }
                        }
                        Err(e) => sink.bad_input(peer, &e.to_string()),
                    }
                    at += frame.consumed;
                }
                Ok(None) => break,
                Err(e) => {
                    sink.bad_input(peer, &e.to_string());
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
