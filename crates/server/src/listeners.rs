//! The receivers: plaintext lines over TCP and UDP, pickle and protobuf frames over TCP.
//!
//! Each TCP connection is a task that reads into a buffer, splits complete lines or frames, and
//! hands each point to [`Ingest`]. Before every read it checks the cache: when the cache is full
//! the task stops reading, so the kernel's receive window fills and TCP pushes back on the sender.
//! Limits bound everything a client controls: line length, frame length, connection count.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use carbide_protocol::LineError;
use carbide_protocol::framing::decode_frame;
use carbide_protocol::line::{LineSplitter, datagram_lines, listed_name, parse_line, parse_line_str};
use carbide_protocol::pickle::Limits;
use carbide_protocol::points::{EntryError, decode_points};
use carbide_protocol::protobuf::{PROTOBUF_MAX_FRAME, decode_payload};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Notify, Semaphore, watch};

use crate::ingest::{Ingest, IngestBatch, now_f64};

/// Limits on what clients may make the receivers hold.
#[derive(Debug, Clone, Copy)]
pub struct ReceiverLimits {
    /// Most simultaneous connections per listener (MAX_RECEIVER_CONNECTIONS).
    pub max_connections: usize,
    /// Longest line kept; longer ones are logged and skipped.
    pub max_line: usize,
    /// Longest pickle frame (PICKLE_RECEIVER_MAX_LENGTH); a longer one drops the connection.
    pub max_frame: usize,
    /// METRIC_CLIENT_IDLE_TIMEOUT: a connection that delivers no point for this long is closed,
    /// as carbon's receivers do (the clock restarts at every point). `None`: never, carbon's default.
    pub idle_timeout: Option<Duration>,
    /// A connection that holds an incomplete line or frame and sends nothing more for this long is
    /// closed (a stalled or slowloris client), whatever `idle_timeout` says. Generous by default, so
    /// only a client that stopped mid-line loses its connection.
    pub stall_timeout: Duration,
}

impl Default for ReceiverLimits {
    fn default() -> Self {
        ReceiverLimits {
            max_connections: 10_000,
            max_line: 64 * 1024,
            max_frame: 1 << 20,
            idle_timeout: None,
            stall_timeout: Duration::from_secs(300),
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
    /// 4-byte length, then a protobuf `carbon.Payload`.
    Protobuf,
}

/// Waits until the cache has room, re-checking every 100 ms in case a wake-up is missed; says
/// whether it had to wait (time spent paused by our own flow control is not a client's idleness).
pub async fn wait_for_space(ingest: &Ingest, space: &Notify) -> bool {
    let mut waited = false;
    while ingest.cache.should_pause() {
        waited = true;
        let _ = tokio::time::timeout(Duration::from_millis(100), space.notified()).await;
    }
    waited
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
    let mut failing = AcceptFailures::new(format!("{wire:?}"));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => {
                failing.recovered();
                x
            }
            Err(e) => {
                // EMFILE and friends: say so (rate-limited), wait for descriptors to free up, keep
                // accepting. The pending connection stays in the listen backlog meanwhile.
                ingest.stats.refused_connections.fetch_add(1, Ordering::Relaxed);
                failing.failed(&e);
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
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
                Wire::Pickle | Wire::Protobuf => {
                    let pickle = wire == Wire::Pickle;
                    framed_connection(stream, &peer, &ingest, &space, limits, shutdown, pickle).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
            ingest.stats.active_connections.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

/// How often a still-failing accept is logged again.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Rate-limits the log of a failing accept(): the first failure is logged at once, then one line
/// per [`ACCEPT_LOG_EVERY`] with the count, and one line when accepting works again.
pub(crate) struct AcceptFailures {
    listener: String,
    since_log: u64,
    total: u64,
    last_log: Option<tokio::time::Instant>,
}

impl AcceptFailures {
    /// A reporter for the listener named `listener`.
    pub(crate) fn new(listener: String) -> AcceptFailures {
        AcceptFailures {
            listener,
            since_log: 0,
            total: 0,
            last_log: None,
        }
    }

    /// Counts a failed accept and logs it if a report is due.
    pub(crate) fn failed(&mut self, e: &std::io::Error) {
        self.total += 1;
        self.since_log += 1;
        let due = self.last_log.is_none_or(|t| t.elapsed() >= ACCEPT_LOG_EVERY);
        if due {
            tracing::error!(
                listener = %self.listener,
                error = %e,
                failures = self.since_log,
                "accept failed (out of file descriptors? raise `ulimit -n`); pending connections wait in the backlog, retrying every 100 ms, next report in 10 s"
            );
            self.since_log = 0;
            self.last_log = Some(tokio::time::Instant::now());
        }
    }

    /// Notes a successful accept; logs the recovery after failures.
    pub(crate) fn recovered(&mut self) {
        if self.total > 0 {
            tracing::warn!(listener = %self.listener, failures = self.total, "accepting again");
            self.total = 0;
            self.since_log = 0;
            self.last_log = None;
        }
    }
}

/// The receive-side clocks of one connection: when it last delivered a point, and since when it
/// has held an incomplete line or frame.
struct Clocks {
    limits: ReceiverLimits,
    last_point: tokio::time::Instant,
    partial_since: Option<tokio::time::Instant>,
}

impl Clocks {
    fn new(limits: ReceiverLimits) -> Clocks {
        Clocks {
            limits,
            last_point: tokio::time::Instant::now(),
            partial_since: None,
        }
    }

    /// Restarts both clocks: the connection was paused by flow control, not idle.
    fn restart(&mut self) {
        let now = tokio::time::Instant::now();
        self.last_point = now;
        self.partial_since = self.partial_since.map(|_| now);
    }

    /// Records what the last read left behind: whether points came out of it, and whether bytes of
    /// an incomplete line or frame remain buffered.
    fn after_read(&mut self, got_points: bool, partial: bool) {
        let now = tokio::time::Instant::now();
        if got_points {
            self.last_point = now;
        }
        self.partial_since = match (partial, got_points, self.partial_since) {
            (false, _, _) => None,
            (true, true, _) | (true, false, None) => Some(now),
            (true, false, Some(t)) => Some(t),
        };
    }

    /// The instant the connection is closed if nothing changes, and why.
    fn deadline(&self) -> Option<(tokio::time::Instant, &'static str)> {
        let idle = self.limits.idle_timeout.map(|d| {
            (
                self.last_point + d,
                "no metric received within METRIC_CLIENT_IDLE_TIMEOUT",
            )
        });
        let stall = self.partial_since.map(|t| {
            (
                t + self.limits.stall_timeout,
                "an incomplete line or frame stalled",
            )
        });
        match (idle, stall) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }
}

/// Reads more bytes into `buf` unless shutdown or a connection deadline comes first; `Ok(0)` at
/// end of stream or shutdown, `TimedOut` when the deadline passed (logged here).
async fn read_some(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    shutdown: &mut watch::Receiver<bool>,
    clocks: &Clocks,
    peer: &str,
) -> std::io::Result<usize> {
    if *shutdown.borrow() {
        return Ok(0);
    }
    buf.reserve(64 * 1024);
    let deadline = clocks.deadline();
    let expire = async {
        match deadline {
            Some((at, _)) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        n = stream.read_buf(buf) => n,
        _ = shutdown.changed() => Ok(0),
        _ = expire => {
            let why = deadline.map_or("", |d| d.1);
            tracing::info!(peer, reason = why, pending_bytes = buf.len(), "closing an idle connection");
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, why))
        }
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
    let mut clocks = Clocks::new(limits);
    loop {
        if wait_for_space(ingest, space).await {
            clocks.restart();
        }
        let n = read_some(&mut stream, &mut buf, &mut shutdown, &clocks, peer).await?;
        let eof = n == 0;
        // A last line without its newline is dropped at end of stream, as carbon's
        // LineOnlyReceiver does: a sender cut off mid-line (`a.b 12` of `a.b 123 1700000000`)
        // would otherwise store a wrong value or a wrong timestamp.
        let now = now_f64();
        let mut got = false;
        let consumed = {
            let mut batch = ingest.batch();
            let mut lines = splitter.split(&buf);
            for line in lines.by_ref() {
                got |= take_line(ingest, peer, line, now, &mut batch) == Took::Point;
            }
            lines.consumed()
        };
        buf.drain(..consumed);
        clocks.after_read(got, !buf.is_empty() || splitter.is_discarding());
        if eof {
            return Ok(());
        }
    }
}

/// What became of one received line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Took {
    /// A point went into the batch.
    Point,
    /// Dropped as carbon drops it, silently or by the lists (NaN, a listed-out name).
    Dropped,
    /// Not understood: counted and logged.
    Bad,
}

/// One line from a [`LineSplitter`] into the batch. A bad line is counted and logged.
pub(crate) fn take_line<'n>(
    ingest: &Ingest,
    peer: &str,
    line: Result<&'n [u8], LineError>,
    now: f64,
    batch: &mut IngestBatch<'_, 'n>,
) -> Took {
    match line {
        Ok(raw) => match parse_line(raw, now) {
            Ok(p) => {
                batch.point(p.name, p.value, p.timestamp);
                Took::Point
            }
            // carbon checks the lists before it drops a NaN value or meets an unusable
            // timestamp: a listed-out name counts there, not as bad input.
            Err(e)
                if listed_name(raw, &e).is_some_and(|n| batch.listed_out(n)) || e == LineError::NanValue =>
            {
                Took::Dropped
            }
            Err(e) => {
                ingest.bad_line(peer, raw, &e);
                Took::Bad
            }
        },
        Err(e) => {
            ingest.bad_line(peer, b"<line longer than the limit>", &e);
            Took::Bad
        }
    }
}

/// One pickle (`pickle`) or protobuf payload into the batch: see [`take_pickle`] and
/// [`take_protobuf`].
pub(crate) fn take_frame(
    pickle: bool,
    ingest: &Ingest,
    peer: &str,
    payload: &[u8],
    batch: &mut IngestBatch<'_, '_>,
) -> Result<bool, ()> {
    if pickle {
        take_pickle(ingest, peer, payload, batch)
    } else {
        take_protobuf(ingest, peer, payload, batch)
    }
}

/// One pickle payload (`[(name, (timestamp, value)), ...]`) into the batch; whether it held a
/// point. A payload that does not decode is counted and logged, as is each bad entry.
fn take_pickle(
    ingest: &Ingest,
    peer: &str,
    payload: &[u8],
    batch: &mut IngestBatch<'_, '_>,
) -> Result<bool, ()> {
    let mut got = false;
    match decode_points(payload, now_f64(), &Limits::default()) {
        Ok(entries) => {
            for entry in entries {
                match entry {
                    Ok(p) => {
                        got = true;
                        batch.point_now(&p.name, p.value, p.timestamp);
                    }
                    // The lists come first in carbon, as for lines.
                    Err(e)
                        if e.listed_name().is_some_and(|n| batch.listed_out(n))
                            || matches!(e, EntryError::NanValue { .. }) => {}
                    Err(e) => ingest.bad_line(peer, b"<pickle entry>", &e),
                }
            }
            Ok(got)
        }
        Err(e) => {
            ingest.bad_line(peer, b"<pickle frame>", &e);
            Err(())
        }
    }
}

/// One protobuf payload (carbon's `Payload`) into the batch; whether it held a point. A payload
/// that does not decode is lost whole, as `Payload.FromString` raising `DecodeError` in carbon.
fn take_protobuf(
    ingest: &Ingest,
    peer: &str,
    payload: &[u8],
    batch: &mut IngestBatch<'_, '_>,
) -> Result<bool, ()> {
    let mut got = false;
    match decode_payload(payload) {
        Ok(decoded) => {
            for p in &decoded.points {
                got = true;
                // NaN is dropped silently, as carbon's metricReceived does, after the lists (a
                // uint32 timestamp is always one `int()` takes).
                if p.value.is_nan() {
                    batch.listed_out(p.name);
                } else {
                    batch.point_now(p.name, p.value, f64::from(p.timestamp));
                }
            }
            if let Some(stop) = decoded.stopped_early_at {
                tracing::debug!(
                    peer,
                    at = stop,
                    "protobuf payload ends early (tag 0 or end-group); the rest of the frame is ignored, as carbon does"
                );
            }
            Ok(got)
        }
        Err(e) => {
            ingest.bad_line(peer, b"<protobuf frame>", &e);
            Err(())
        }
    }
}

/// A pickle or protobuf connection: carbon's length-prefixed frames. Pickle frames are
/// `[(name, (timestamp, value)), ...]`, decoded by the safe pickle VM, up to
/// PICKLE_RECEIVER_MAX_LENGTH; a bad frame or entry is counted and skipped. Protobuf frames are
/// carbon's `Payload`, always under carbon's fixed 2**20 limit
/// (`MetricProtobufReceiver.MAX_LENGTH`); one that does not decode is lost whole, as
/// `Payload.FromString` raising `DecodeError` does in carbon. A frame over the limit drops the
/// connection, as carbon does; anything else leaves it open.
async fn framed_connection(
    stream: TcpStream,
    peer: &str,
    ingest: &Ingest,
    space: &Notify,
    limits: ReceiverLimits,
    shutdown: watch::Receiver<bool>,
    pickle: bool,
) -> std::io::Result<()> {
    let frames = Framed {
        stream,
        peer,
        ingest,
        space,
        limits,
        shutdown,
        max_frame: if pickle {
            limits.max_frame
        } else {
            PROTOBUF_MAX_FRAME
        },
        wire: if pickle { "pickle" } else { "protobuf" },
    };
    frames
        .run(|payload, batch| take_frame(pickle, ingest, peer, payload, batch).unwrap_or(false))
        .await
}

/// A connection carrying carbon's length-prefixed frames (pickle, protobuf): the read loop with
/// flow control, idle clocks and shutdown that both share; only a frame's decoding differs.
struct Framed<'a> {
    stream: TcpStream,
    peer: &'a str,
    ingest: &'a Ingest,
    space: &'a Notify,
    limits: ReceiverLimits,
    shutdown: watch::Receiver<bool>,
    /// A frame announcing more than this drops the connection.
    max_frame: usize,
    /// For the log line when a frame is refused.
    wire: &'static str,
}

impl Framed<'_> {
    /// Reads until end of stream, handing each whole frame's payload to `frame`, which returns
    /// whether it held any point (that keeps the idle clock from firing).
    async fn run(
        mut self,
        mut frame: impl FnMut(&[u8], &mut crate::ingest::IngestBatch<'_, '_>) -> bool,
    ) -> std::io::Result<()> {
        let (ingest, peer) = (self.ingest, self.peer);
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut clocks = Clocks::new(self.limits);
        loop {
            if wait_for_space(ingest, self.space).await {
                clocks.restart();
            }
            let n = read_some(&mut self.stream, &mut buf, &mut self.shutdown, &clocks, peer).await?;
            let mut at = 0;
            let mut got = false;
            let mut batch = ingest.batch();
            loop {
                match decode_frame(&buf[at..], self.max_frame) {
                    Ok(Some(decoded)) => {
                        got |= frame(decoded.payload, &mut batch);
                        at += decoded.consumed;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        ingest.stats.refused_connections.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(peer, wire = self.wire, error = %e, "frame refused; dropping the connection");
                        return Ok(());
                    }
                }
            }
            drop(batch);
            buf.drain(..at);
            clocks.after_read(got, !buf.is_empty());
            if n == 0 {
                return Ok(());
            }
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
                let mut batch = ingest.batch();
                for line in lines {
                    match parse_line_str(line, now) {
                        Ok(p) => {
                            batch.point(p.name, p.value, p.timestamp);
                        }
                        // The lists come first in carbon, as on TCP.
                        Err(e)
                            if listed_name(line.as_bytes(), &e).is_some_and(|n| batch.listed_out(n))
                                || e == LineError::NanValue => {}
                        Err(e) => ingest.bad_line(&peer, line.as_bytes(), &e),
                    }
                }
            }
            Err(e) => ingest.bad_line(&peer, &buf[..n.min(400)], &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carbide_cache::{Cache, CacheConfig};
    use carbide_config::parse_regex_list;
    use carbide_protocol::pickle::{Value, dumps};
    use carbide_protocol::protobuf::encode_payload;
    use tokio::io::AsyncWriteExt;

    use crate::ingest::Lists;

    /// An ingest whose blacklist drops `black.*` and whose whitelist drops all but `ok.*` and
    /// `black.*`.
    fn listed_ingest() -> Arc<Ingest> {
        let ingest = Ingest::new(Arc::new(Cache::new(CacheConfig::default())));
        let list = |text: &str| parse_regex_list("test.conf", text).map(|l| l.0).ok();
        ingest.set_lists(Lists {
            blacklist: list("^black\\.\n"),
            whitelist: list("^ok\\.\n^black\\.\n"),
        });
        Arc::new(ingest)
    }

    /// (blacklistMatches, whitelistRejects, bad lines, whether `stored` is in the cache).
    fn counts(ingest: &Ingest, stored: &str) -> (u64, u64, u64, bool) {
        let s = &ingest.stats;
        (
            s.blacklist_matches.load(Ordering::Relaxed),
            s.whitelist_rejects.load(Ordering::Relaxed),
            s.bad_lines.load(Ordering::Relaxed),
            !ingest.cache.get(stored).is_empty(),
        )
    }

    /// Waits up to 5 s for the counters to reach `want`, then compares them.
    async fn expect(ingest: &Ingest, stored: &str, want: (u64, u64, u64, bool), wire: &str) {
        let start = tokio::time::Instant::now();
        while counts(ingest, stored) != want && start.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(counts(ingest, stored), want, "{wire}");
    }

    /// Serves `wire` on a fresh listed ingest, sends `data` on one connection and closes it; the
    /// listener runs until the returned sender is dropped.
    async fn over_tcp(wire: Wire, data: &[u8]) -> (Arc<Ingest>, watch::Sender<bool>) {
        let ingest = listed_ingest();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, shutdown) = watch::channel(false);
        let space = Arc::new(Notify::new());
        let limits = ReceiverLimits::default();
        tokio::spawn(run_tcp(listener, wire, ingest.clone(), space, limits, shutdown));
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(data).await.unwrap();
        conn.shutdown().await.unwrap();
        (ingest, stop)
    }

    fn framed(payload: Vec<u8>) -> Vec<u8> {
        let mut frame = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
        frame.extend(payload);
        frame
    }

    /// carbon's `metricReceived` checks the blacklist and whitelist before it drops a NaN value
    /// or calls `int()` on the timestamp, so such a point on a listed-out name counts as
    /// blacklistMatches or whitelistRejects and is not an invalid line; failures found while
    /// splitting and converting come before the lists and are never counted there.
    #[tokio::test]
    async fn nan_and_unusable_timestamps_meet_the_lists_first() {
        let lines = "black.a nan 100\nblack.b 1 inf\nblack.c 1 nan\nother.a nan 100\nother.b 1 -inf\n\
                     ok.a nan 100\nok.b 1 inf\nok.c 1 nan\nblack.d x 100\nother.d 1 x\nok.d 1 100\n";
        let (ingest, _stop) = over_tcp(Wire::Line, lines.as_bytes()).await;
        expect(&ingest, "ok.d", (3, 2, 4, true), "line").await;

        let entry = |name: &str, ts: Value, value: Value| {
            Value::Tuple(vec![name.into(), Value::Tuple(vec![ts, value])])
        };
        let (nan, inf) = (Value::Float(f64::NAN), Value::Float(f64::INFINITY));
        let batch = Value::List(vec![
            entry("black.a", Value::Int(100), nan.clone()),
            entry("black.b", inf.clone(), Value::Int(1)),
            entry("other.a", Value::Int(100), nan.clone()),
            entry("other.b", nan.clone(), Value::Int(1)),
            entry("ok.a", Value::Int(100), nan.clone()),
            entry("ok.b", inf, Value::Int(1)),
            entry("black.x", Value::Int(100), "x".into()),
            entry("ok.d", Value::Int(100), Value::Int(2)),
        ]);
        let (ingest, _stop) = over_tcp(Wire::Pickle, &framed(dumps(&batch))).await;
        expect(&ingest, "ok.d", (2, 2, 2, true), "pickle").await;

        let nan_point: &[(u32, f64)] = &[(100, f64::NAN)];
        let payload = encode_payload(&[
            ("black.a", nan_point),
            ("other.a", nan_point),
            ("ok.a", nan_point),
            ("ok.d", &[(100, 3.0)]),
        ]);
        let (ingest, _stop) = over_tcp(Wire::Protobuf, &framed(payload)).await;
        expect(&ingest, "ok.d", (1, 1, 0, true), "protobuf").await;

        let ingest = listed_ingest();
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let (_stop, shutdown) = watch::channel(false);
        tokio::spawn(run_udp(socket, ingest.clone(), shutdown));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(lines.as_bytes(), addr).await.unwrap();
        expect(&ingest, "ok.d", (3, 2, 4, true), "udp").await;
    }
}
