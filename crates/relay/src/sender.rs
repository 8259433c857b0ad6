//! The task that drains one destination's queue onto a TCP connection.
//!
//! It connects (retrying with exponential backoff from 100 ms up to 5 s, like carbon's client
//! factory), takes up to MAX_DATAPOINTS_PER_MESSAGE points, encodes them as one pickle frame or as
//! plaintext lines, and writes them. A batch whose write fails or does not finish within the
//! stall timeout goes back to the front of the queue and the connection is dropped and retried:
//! a destination that accepts and then stops reading is treated as down, so its queue spills
//! instead of stalling the relay. Before each write it checks whether the peer has closed the
//! connection, so the batch is not written into a socket nobody reads.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use carbide_protocol::framing::encode_frame;
use carbide_protocol::line::format_line;
use carbide_protocol::pickle::encode_points;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::queue::{DestQueue, Point};

/// How points are written to a destination (DESTINATION_PROTOCOL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// Length-prefixed pickle batches.
    Pickle,
    /// `name value timestamp\n`.
    Line,
}

/// Settings of one sender.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// `host:port` to connect to.
    pub addr: String,
    /// Output encoding.
    pub format: WireFormat,
    /// MAX_DATAPOINTS_PER_MESSAGE.
    pub batch: usize,
    /// Timestamps as integers (the aggregator sends its integer intervals) instead of floats.
    pub int_timestamps: bool,
    /// A write that takes longer than this marks the destination as stalled.
    pub stall_timeout: Duration,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
}

/// Encodes a batch for the wire.
pub fn encode(batch: &[Point], format: WireFormat, int_timestamps: bool, out: &mut Vec<u8>) {
    out.clear();
    match format {
        WireFormat::Pickle => {
            let payload = if int_timestamps {
                encode_points(
                    batch
                        .iter()
                        .map(|p| (p.name.as_str(), p.timestamp as i64, p.value)),
                )
            } else {
                encode_points(batch.iter().map(|p| (p.name.as_str(), p.timestamp, p.value)))
            };
            if encode_frame(&payload, out).is_err() {
                tracing::error!(points = batch.len(), "pickle batch too large for one frame");
            }
        }
        WireFormat::Line => {
            out.reserve(batch.len() * 48);
            let mut ints = itoa::Buffer::new();
            for p in batch {
                // carbon's line client writes `%d` timestamps.
                push_line(out, &mut ints, &p.name, p.value, p.timestamp as i64);
            }
        }
    }
}

/// Appends one line exactly as [`format_line`] writes it, without going through `fmt` for the
/// common integral values (formatting `{:.0}` costs more than the rest of the relay together).
fn push_line(out: &mut Vec<u8>, ints: &mut itoa::Buffer, name: &str, value: f64, timestamp: i64) {
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    // |value| < 1e17 < 2^63: the cast is exact for an integral value. -0.0 prints as `-0`.
    if value.is_finite()
        && value.fract() == 0.0
        && value.abs() < 1e17
        && !(value == 0.0 && value.is_sign_negative())
    {
        out.extend_from_slice(ints.format(value as i64).as_bytes());
        out.push(b' ');
        out.extend_from_slice(ints.format(timestamp).as_bytes());
        out.push(b'\n');
    } else {
        let mut s = String::new();
        format_line(&mut s, "", value, timestamp);
        // format_line wrote " value timestamp\n" after the empty name.
        out.extend_from_slice(s.get(1..).unwrap_or_default().as_bytes());
    }
}

/// True when the peer has closed its end (it never sends anything on a carbon port).
fn peer_closed(stream: &TcpStream) -> bool {
    let mut b = [0u8; 64];
    match stream.try_read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// Runs until `shutdown` turns true and the queue is empty (or the destination is unreachable).
pub async fn run(queue: Arc<DestQueue>, cfg: SenderConfig, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(100);
    let mut batch = Vec::with_capacity(cfg.batch);
    let mut buf = Vec::new();
    let mut logged_down = false;
    'connect: loop {
        if *shutdown.borrow() {
            return;
        }
        let stream = match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&cfg.addr)).await {
            Ok(Ok(s)) => s,
            outcome => {
                queue.stats.connect_failures.fetch_add(1, Ordering::Relaxed);
                if !logged_down {
                    let why = match outcome {
                        Ok(Err(e)) => e.to_string(),
                        _ => "connect timed out".into(),
                    };
                    tracing::warn!(destination = %queue.name, error = %why, "destination unreachable; queueing (and spilling when full)");
                    logged_down = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(cfg.max_backoff);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let mut stream = stream;
        tracing::info!(destination = %queue.name, "connected");
        logged_down = false;
        backoff = Duration::from_millis(100);
        queue.stats.connected.store(true, Ordering::Relaxed);
        loop {
            queue.take(cfg.batch, &mut batch);
            if batch.is_empty() {
                if *shutdown.borrow() {
                    let _ = stream.shutdown().await;
                    return;
                }
                tokio::select! {
                    _ = queue.ready.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = shutdown.changed() => {}
                }
                if peer_closed(&stream) {
                    queue.stats.connected.store(false, Ordering::Relaxed);
                    tracing::warn!(destination = %queue.name, "destination closed the connection; reconnecting");
                    continue 'connect;
                }
                continue;
            }
            let failure = if peer_closed(&stream) {
                Some("destination closed the connection".to_string())
            } else {
                encode(&batch, cfg.format, cfg.int_timestamps, &mut buf);
                match tokio::time::timeout(cfg.stall_timeout, stream.write_all(&buf)).await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some(format!(
                        "write stalled for {:?} (destination not reading)",
                        cfg.stall_timeout
                    )),
                }
            };
            match failure {
                None => {
                    queue.stats.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    queue.stats.batches.fetch_add(1, Ordering::Relaxed);
                }
                Some(why) => {
                    // A stalled write may have sent part of the batch: re-sending it repeats some
                    // points (harmless in whisper) rather than losing any.
                    queue.stats.send_failures.fetch_add(1, Ordering::Relaxed);
                    queue.stats.connected.store(false, Ordering::Relaxed);
                    tracing::warn!(destination = %queue.name, error = %why, points = batch.len(), "send failed; batch queued again, reconnecting");
                    queue.requeue_front(std::mem::take(&mut batch));
                    batch.reserve(cfg.batch);
                    if *shutdown.borrow() {
                        return;
                    }
                    continue 'connect;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carbide_protocol::framing::decode_frame;
    use carbide_protocol::pickle::Limits;
    use carbide_protocol::points::decode_points;

    fn pts() -> Vec<Point> {
        vec![
            Point {
                name: "a.b".into(),
                value: 1.5,
                timestamp: 1_700_000_000.0,
            },
            Point {
                name: "c".into(),
                value: 2.0,
                timestamp: 1_700_000_010.0,
            },
        ]
    }

    #[test]
    fn fast_line_encoder_writes_what_format_line_writes() {
        let values = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            12.0,
            1.5,
            -2.25,
            1e16,
            99_999_999_999_999_984.0,
            1e17,
            -1e17,
            1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.1,
            1e-7,
            123_456_789.0,
            -987_654_321.5,
        ];
        let mut ints = itoa::Buffer::new();
        for v in values {
            for ts in [0i64, -1, 1_700_000_000, i64::MAX] {
                let mut want = String::new();
                format_line(&mut want, "a.b", v, ts);
                let mut got = vec![];
                push_line(&mut got, &mut ints, "a.b", v, ts);
                assert_eq!(String::from_utf8(got).unwrap(), want, "value {v:?} ts {ts}");
            }
        }
    }

    #[test]
    fn line_output_is_carbon_plaintext() {
        let mut out = vec![];
        encode(&pts(), WireFormat::Line, false, &mut out);
        assert_eq!(out, b"a.b 1.5 1700000000\nc 2 1700000010\n");
    }

    #[test]
    fn pickle_output_is_one_frame_that_decodes_back() {
        let mut out = vec![];
        encode(&pts(), WireFormat::Pickle, false, &mut out);
        let frame = decode_frame(&out, 1 << 20).unwrap().unwrap();
        assert_eq!(frame.consumed, out.len());
        let got: Vec<_> = decode_points(frame.payload, 0.0, &Limits::default())
            .unwrap()
            .into_iter()
            .map(|e| e.unwrap())
            .map(|p| (p.name, p.value, p.timestamp))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a.b".to_string(), 1.5, 1_700_000_000.0),
                ("c".to_string(), 2.0, 1_700_000_010.0)
            ]
        );
    }
}
