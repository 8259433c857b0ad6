//! Where a flush goes. [`GraphiteTcp`] writes graphite's plaintext or pickle protocol to one or
//! more carbon destinations, as etsy's graphite backend does (a new connection per flush). Inside
//! `carbide serve`, [`PointSink`] hands each line straight to the cache as a parsed point, with no
//! socket in between.
//!
//! # Pickle, and where it differs from etsy's on purpose
//! etsy's graphite.js (`graphiteProtocol: "pickle"`) writes the whole flush as one protocol-0
//! frame, `[(name, (ts, 'value')), …]`, with each value as the *string* node prints and the
//! timestamp as a long. Carbon's pickle receiver runs `float()` over both, so what it stores is the
//! same if we send the number itself: we parse node's text back to the `f64` it came from (node
//! prints the shortest round-trip digits, so the number is exact) and send protocol 2 from
//! `carbide-protocol`'s encoder, with `int` timestamps as etsy's longs. Unlike etsy, a large flush
//! is split into several frames, each well under carbon's `PICKLE_RECEIVER_MAX_LENGTH` (1 MiB):
//! carbon drops the connection on a longer frame, which loses a whole etsy flush once it holds
//! about 15 000 metrics.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use carbide_protocol::framing::{PICKLE_MAX_FRAME, encode_frame};
use carbide_protocol::pickle::encode_points;
use carbide_statsd::Flush;

/// Receives each flush. Called from the flush thread, never while the engine is locked, so a
/// slow destination delays the next flush's `graphiteStats`, not the receivers.
pub trait FlushSink: Send {
    /// Delivers one flush; an error is counted as graphite.js's `last_exception`.
    fn deliver(&mut self, flush: &Flush) -> std::io::Result<()>;

    /// Bytes of the last payload sent, when the sink is not plaintext (graphite.js reports
    /// `flush_length` as its payload's length: text in UTF-16 units, pickle in bytes).
    fn last_payload_len(&self) -> Option<usize> {
        None
    }
}

impl<F> FlushSink for F
where
    F: FnMut(&Flush) -> std::io::Result<()> + Send,
{
    fn deliver(&mut self, flush: &Flush) -> std::io::Result<()> {
        self(flush)
    }
}

/// The wire format of a graphite destination (etsy's `graphiteProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GraphiteProtocol {
    /// `name value ts` lines (port 2003).
    #[default]
    Text,
    /// Length-prefixed pickled batches (port 2004).
    Pickle,
}

impl std::str::FromStr for GraphiteProtocol {
    type Err = String;

    /// etsy's two values. etsy takes anything but `pickle` as text; a typo here is an error
    /// instead, so a config meant for pickle never silently sends text to a pickle port.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(GraphiteProtocol::Text),
            "pickle" => Ok(GraphiteProtocol::Pickle),
            other => Err(format!("must be \"text\" or \"pickle\", not {other:?}")),
        }
    }
}

/// Budget for one pickle frame's body, half of carbon's limit, so the estimate below can never
/// reach the limit.
const PICKLE_FRAME_BUDGET: usize = PICKLE_MAX_FRAME / 2;

/// The most bytes one point adds to a protocol-2 batch besides its name: `X` + u32 length, an
/// `int` timestamp (at most `\x8a` + 1 + 8 bytes), `G` + 8 bytes, two TUPLE2 opcodes, and the
/// MARK/APPENDS pair of its 1000-point batch.
const PICKLE_POINT_OVERHEAD: usize = 5 + 10 + 9 + 2 + 2;

/// A flush as pickle frames for carbon's pickle receiver: `[(name, (ts, value)), …]` per frame,
/// each frame's body under [`PICKLE_FRAME_BUDGET`]. Returns the bytes and how many points were
/// left out: those with a name too long for any frame carbon accepts.
pub fn pickle_frames(flush: &Flush) -> (Vec<u8>, usize) {
    let mut points: Vec<(&str, i64, f64)> = Vec::with_capacity(flush.lines.len());
    let mut skipped = 0usize;
    for l in &flush.lines {
        if l.name.len() + PICKLE_POINT_OVERHEAD < PICKLE_FRAME_BUDGET {
            points.push((l.name.as_str(), l.timestamp, l.value.0));
        } else {
            skipped += 1;
        }
    }
    let mut out = Vec::new();
    let mut rest = points.as_slice();
    while !rest.is_empty() {
        let mut size = 4; // PROTO 2, EMPTY_LIST, STOP
        let n = rest
            .iter()
            .take_while(|(name, _, _)| {
                size += name.len() + PICKLE_POINT_OVERHEAD;
                size <= PICKLE_FRAME_BUDGET
            })
            .count()
            .max(1);
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        let body = encode_points(chunk.iter().copied());
        if encode_frame(&body, &mut out).is_err() {
            skipped += chunk.len();
        }
    }
    if flush.lines.is_empty() {
        // graphite.js still opens the connection and writes an empty batch.
        let _ = encode_frame(&encode_points::<i64>([]), &mut out);
    }
    (out, skipped)
}

/// What goes to each destination: plaintext is written line by line from the flush, pickle
/// frames are built once.
enum Payload<'a> {
    Text(&'a Flush),
    Bytes(Vec<u8>),
}

/// Graphite's plaintext or pickle protocol over TCP, a fresh connection per flush to each
/// destination.
#[derive(Debug, Clone)]
pub struct GraphiteTcp {
    destinations: Vec<String>,
    timeout: Duration,
    protocol: GraphiteProtocol,
    last_len: Option<usize>,
}

impl GraphiteTcp {
    /// `destinations` are `host:port`; each gets every flush, as plaintext.
    pub fn new(destinations: Vec<String>) -> Self {
        GraphiteTcp {
            destinations,
            timeout: Duration::from_secs(5),
            protocol: GraphiteProtocol::Text,
            last_len: None,
        }
    }

    /// The same destinations in another wire format.
    pub fn with_protocol(mut self, protocol: GraphiteProtocol) -> Self {
        self.protocol = protocol;
        self
    }

    fn send_one(&self, dest: &str, payload: &Payload<'_>) -> std::io::Result<()> {
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, format!("{dest}: no address"));
        for addr in dest.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(conn) => {
                    conn.set_write_timeout(Some(self.timeout))?;
                    let mut w = std::io::BufWriter::with_capacity(256 * 1024, conn);
                    match payload {
                        Payload::Text(flush) => flush.write_text(&mut w)?,
                        Payload::Bytes(b) => w.write_all(b)?,
                    }
                    return w.flush();
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

impl FlushSink for GraphiteTcp {
    fn deliver(&mut self, flush: &Flush) -> std::io::Result<()> {
        let payload = match self.protocol {
            GraphiteProtocol::Text => {
                self.last_len = None;
                Payload::Text(flush)
            }
            GraphiteProtocol::Pickle => {
                let (bytes, skipped) = pickle_frames(flush);
                if skipped > 0 {
                    tracing::warn!(
                        skipped,
                        "statsd: points left out of the pickle flush (name longer than a frame)"
                    );
                }
                self.last_len = Some(bytes.len());
                Payload::Bytes(bytes)
            }
        };
        let mut result = Ok(());
        for dest in &self.destinations {
            if let Err(e) = self.send_one(dest, &payload) {
                tracing::warn!(destination = %dest, error = %e, "statsd: graphite flush failed");
                result = Err(e);
            }
        }
        result
    }

    fn last_payload_len(&self) -> Option<usize> {
        self.last_len
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
            let v = line.value.0;
            if !v.is_nan() && !(self.store)(&line.name, v, line.timestamp) {
                refused += 1;
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
    use carbide_statsd::jsnum::JsNumber;

    fn line(name: &str, value: f64) -> GraphiteLine {
        GraphiteLine {
            name: name.into(),
            value: JsNumber(value),
            timestamp: 100,
        }
    }

    #[test]
    fn pickle_frames_split_under_carbons_limit_and_decode() {
        use carbide_protocol::framing::frames;
        use carbide_protocol::pickle::{Value, loads};
        let long = "x".repeat(200);
        let mut lines: Vec<GraphiteLine> = (0..20_000)
            .map(|i| line(&format!("stats.{long}.{i}"), i as f64 / 8.0))
            .collect();
        lines.push(line("stats.nan", f64::NAN));
        lines.push(line("stats.big", 1e21));
        lines.push(line("stats.neg", f64::NEG_INFINITY));
        lines.push(line(&"y".repeat(PICKLE_MAX_FRAME), 1.0));
        let flush = Flush {
            timestamp: 100,
            lines,
        };
        let (bytes, skipped) = pickle_frames(&flush);
        assert_eq!(skipped, 1, "the name longer than any frame");
        let mut got = Vec::new();
        let mut it = frames(&bytes, PICKLE_MAX_FRAME);
        let mut n_frames = 0;
        for frame in it.by_ref() {
            let frame = frame.unwrap();
            n_frames += 1;
            let Ok(Value::List(items)) = loads(frame) else {
                panic!("not a list")
            };
            for item in items {
                let Value::Tuple(t) = item else { panic!() };
                let [Value::Str(name), Value::Tuple(p)] = t.as_slice() else {
                    panic!()
                };
                let [Value::Int(ts), Value::Float(v)] = p.as_slice() else {
                    panic!()
                };
                got.push((name.clone(), *ts, *v));
            }
        }
        assert_eq!(it.consumed(), bytes.len());
        assert!(n_frames > 4, "{n_frames} frames");
        assert_eq!(got.len(), flush.lines.len() - 1);
        for (l, (name, ts, v)) in flush.lines.iter().zip(&got) {
            assert_eq!(&l.name, name);
            assert_eq!(*ts, 100);
            let want = l.value.0;
            assert!(want == *v || (want.is_nan() && v.is_nan()), "{} {v}", l.value);
        }
        let (empty, _) = pickle_frames(&Flush::default());
        assert_eq!(loads(&empty[4..]), Ok(Value::List(vec![])));
    }

    #[test]
    fn point_sink_stores_numbers_and_skips_nan() {
        let mut got = Vec::new();
        let flush = Flush {
            timestamp: 100,
            lines: vec![
                line("a", 0.1 + 0.2),
                line("b", 1e21),
                line("c", f64::NAN),
                line("d", f64::NEG_INFINITY),
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
