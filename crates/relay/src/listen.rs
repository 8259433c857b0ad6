//! Line and pickle TCP receivers that feed a [`Sink`], with flow control: before every read the
//! connection waits while the sink asks to pause, so TCP pushes back on the sender.
//!
//! These mirror the cache role's receivers in carbide-server on top of the same protocol codecs;
//! they are separate because those are tied to the cache's ingest path.

use std::sync::Arc;
use std::time::Duration;

use carbide_protocol::LineError;
use carbide_protocol::framing::decode_frame;
use carbide_protocol::line::{LineSplitter, listed_name, parse_line};
use carbide_protocol::pickle::Limits;
use carbide_protocol::points::{EntryError, decode_points};
use carbide_protocol::pyfloat::parse_py_float_bytes;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::{Incoming, Sink, now_f64};

/// The common case of a line, decoded without the general parser: printable ASCII, fields
/// separated by spaces, exactly three of them, both numbers valid, a finite timestamp whose
/// integer part is not -1 and a value that is not NaN. Anything else returns `None` and goes
/// through [`parse_line`], which then decides exactly as carbon does (and words the error).
///
/// This gives the same answer as `parse_line` wherever it answers: Python's `str.split()` splits
/// on whitespace, and the only ASCII whitespace let through here is the space itself.
pub fn parse_plain(line: &[u8]) -> Option<Incoming<'_>> {
    let mut fields: [&[u8]; 3] = [&[], &[], &[]];
    let mut n = 0;
    let mut start = None;
    for (i, &b) in line.iter().enumerate() {
        if b == b' ' {
            if let Some(s) = start.take() {
                *fields.get_mut(n)? = line.get(s..i)?;
                n += 1;
            }
        } else if !(0x21..0x7f).contains(&b) {
            return None;
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        *fields.get_mut(n)? = line.get(s..)?;
        n += 1;
    }
    if n != 3 {
        return None;
    }
    let [name, value, timestamp] = fields;
    let timestamp = parse_py_float_bytes(timestamp)?;
    let value = parse_py_float_bytes(value)?;
    if value.is_nan() || !timestamp.is_finite() || timestamp.trunc() == -1.0 {
        return None;
    }
    Some(Incoming {
        name: std::str::from_utf8(name).ok()?,
        value,
        timestamp,
    })
}

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

/// An empty vector with `v`'s allocation, for another lifetime (collecting a `vec::IntoIter` in
/// place keeps the allocation when the element layout is the same).
#[allow(clippy::unnecessary_filter_map)] // `filter` could not change the lifetime
fn recycle<'b>(v: Vec<Incoming<'_>>) -> Vec<Incoming<'b>> {
    v.into_iter().filter_map(|_| None).collect()
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
    let mut bad: Vec<String> = Vec::new();
    // The batch's allocation, kept across reads (each read's batch borrows that read's buffer).
    let mut spare: Vec<Incoming<'static>> = Vec::with_capacity(2048);
    loop {
        wait_for_room(sink, &shutdown).await;
        let n = read_some(&mut stream, &mut buf, &mut shutdown).await?;
        let eof = n == 0;
        if eof && !buf.is_empty() && !splitter.is_discarding() {
            buf.push(b'\n');
        }
        let now = now_f64();
        let consumed = {
            let mut batch: Vec<Incoming<'_>> = recycle(std::mem::take(&mut spare));
            let mut lines = splitter.split(&buf);
            for line in lines.by_ref() {
                match line {
                    Ok(raw) => {
                        if let Some(p) = parse_plain(raw) {
                            batch.push(p);
                            continue;
                        }
                        match parse_line(raw, now) {
                            Ok(p) => batch.push(Incoming {
                                name: p.name,
                                value: p.value,
                                timestamp: p.timestamp,
                            }),
                            // carbon applies the lists before these checks: a listed-out
                            // name counts there, and is not bad input.
                            Err(e)
                                if listed_name(raw, &e).is_some_and(|n| sink.listed_out(n))
                                    || e == LineError::NanValue => {}
                            Err(e) => bad.push(format!("{e}: {}", String::from_utf8_lossy(raw))),
                        }
                    }
                    Err(e) => bad.push(e.to_string()),
                }
            }
            sink.points(&batch);
            spare = recycle(batch);
            lines.consumed()
        };
        for what in bad.drain(..) {
            sink.bad_input(peer, &what);
        }
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
                            let mut batch = Vec::with_capacity(entries.len());
                            for entry in &entries {
                                match entry {
                                    Ok(p) => batch.push(Incoming {
                                        name: &p.name,
                                        value: p.value,
                                        timestamp: p.timestamp,
                                    }),
                                    // As for lines: the lists come first in carbon.
                                    Err(e)
                                        if e.listed_name().is_some_and(|n| sink.listed_out(n))
                                            || matches!(e, EntryError::NanValue { .. }) => {}
                                    Err(e) => sink.bad_input(peer, &e.to_string()),
                                }
                            }
                            sink.points(&batch);
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

#[cfg(test)]
mod tests {
    use super::*;
    use carbide_protocol::pickle::{Value, dumps};
    use parking_lot::Mutex;
    use tokio::io::AsyncWriteExt;

    /// A sink whose lists drop `black.*`, recording what it is handed.
    #[derive(Default)]
    struct Listed {
        kept: Mutex<Vec<String>>,
        listed_out: Mutex<Vec<String>>,
        bad: Mutex<usize>,
    }
    impl Sink for Listed {
        fn point(&self, name: &str, _: f64, _: f64) -> bool {
            self.kept.lock().push(name.to_string());
            true
        }
        fn should_pause(&self) -> bool {
            false
        }
        fn bad_input(&self, _: &str, _: &str) {
            *self.bad.lock() += 1;
        }
        fn listed_out(&self, name: &str) -> bool {
            let out = name.starts_with("black.");
            if out {
                self.listed_out.lock().push(name.to_string());
            }
            out
        }
    }

    /// A NaN value or an unusable timestamp meets the lists first, on lines and in pickles, as
    /// carbon's `metricReceived` has it; failures found while parsing never reach them.
    #[tokio::test]
    async fn nan_and_unusable_timestamps_meet_the_lists_first() {
        let entry = |name: &str, ts: Value, value: Value| {
            Value::Tuple(vec![name.into(), Value::Tuple(vec![ts, value])])
        };
        let (nan, inf) = (Value::Float(f64::NAN), Value::Float(f64::INFINITY));
        let pickle = dumps(&Value::List(vec![
            entry("black.a", Value::Int(100), nan.clone()),
            entry("black.b", inf.clone(), Value::Int(1)),
            entry("ok.a", Value::Int(100), nan),
            entry("ok.b", inf, Value::Int(1)),
            entry("black.x", Value::Int(100), "x".into()),
            entry("ok.d", Value::Int(100), Value::Int(2)),
        ]));
        let mut framed = u32::try_from(pickle.len()).unwrap().to_be_bytes().to_vec();
        framed.extend(pickle);
        let lines = b"black.a nan 100\nblack.b 1 nan\nok.a nan 100\nok.b 1 inf\nblack.x x 100\nok.d 1 100\n";
        for (wire, data) in [(Wire::Line, &lines[..]), (Wire::Pickle, &framed[..])] {
            let sink = Arc::new(Listed::default());
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (_stop, shutdown) = watch::channel(false);
            let limits = ReceiverLimits::default();
            tokio::spawn(run_tcp(listener, wire, sink.clone(), limits, shutdown));
            let mut conn = TcpStream::connect(addr).await.unwrap();
            conn.write_all(data).await.unwrap();
            conn.shutdown().await.unwrap();
            let start = tokio::time::Instant::now();
            while (sink.kept.lock().is_empty() || *sink.bad.lock() < 2)
                && start.elapsed() < Duration::from_secs(5)
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(*sink.kept.lock(), ["ok.d"], "{wire:?}");
            assert_eq!(*sink.listed_out.lock(), ["black.a", "black.b"], "{wire:?}");
            assert_eq!(*sink.bad.lock(), 2, "{wire:?}: ok.b and black.x");
        }
    }

    /// Wherever the fast path answers, it answers what carbon's parser does.
    fn same_as_parse_line(line: &[u8]) -> bool {
        let Some(fast) = parse_plain(line) else {
            return false;
        };
        let slow = parse_line(line, 5.0).unwrap();
        assert_eq!(
            (fast.name, fast.value.to_bits(), fast.timestamp.to_bits()),
            (slow.name, slow.value.to_bits(), slow.timestamp.to_bits()),
            "{}",
            String::from_utf8_lossy(line)
        );
        true
    }

    #[test]
    fn plain_lines_take_the_fast_path_with_carbons_answer() {
        for l in [
            "a.b 1 1700000000",
            "a.b  -2.5   1700000000.5 ",
            " a.b 1e3 17e8",
            "a.b 1_000 1700000000",
            "a.b +inf 1700000000",
            "a.b -0 1700000000",
            "a.b 0x10 1700000000",
            "a;tag=x 1 -0.5",
        ] {
            let took = same_as_parse_line(l.as_bytes());
            assert_eq!(took, !l.contains("0x"), "{l}");
        }
    }

    #[test]
    fn everything_unusual_falls_back_to_the_full_parser() {
        for l in [
            "a.b\t1 1700000000",
            "a.b 1 1700000000\x0b",
            "a.b nan 1700000000",
            "a.b 1 nan",
            "a.b 1 inf",
            "a.b 1 -1",
            "a.b 1 -1.9",
            "a.b 1",
            "a.b 1 2 3",
            "",
            "é.b 1 2",
            "a.b 1 2\u{a0}",
            "a.b 1_ 2",
        ] {
            assert!(parse_plain(l.as_bytes()).is_none(), "{l:?}");
        }
    }

    #[test]
    fn random_lines_agree_with_parse_line() {
        // A small alphabet dense in separators, signs and number syntax.
        let alphabet = b" \t.e-+_01n9ai";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut fast = 0;
        for _ in 0..200_000 {
            let mut line = Vec::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 3 + (x % 12) as usize;
            let mut y = x;
            for _ in 0..len {
                line.push(alphabet[(y % alphabet.len() as u64) as usize]);
                y /= alphabet.len() as u64;
                if y == 0 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    y = x;
                }
            }
            if same_as_parse_line(&line) {
                fast += 1;
            }
        }
        assert!(fast > 100, "the fast path was hardly exercised ({fast})");
    }
}
