//! [`StatsdServer`]: the receivers and the flush timer around one engine.
//!
//! Threads, not async: each UDP receiver blocks in `recv` on its own `SO_REUSEPORT` socket (the
//! kernel spreads datagrams across them), drains whatever else is queued without blocking, and
//! applies the batch under one lock. TCP connections and console sessions get a thread each.
//! The flush thread sleeps until statsd's aligned flush time, flushes under the lock, then
//! delivers outside it.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use carbide_statsd::parse::TcpFramer;
use carbide_statsd::{Flush, FlushTimings, Statsd};
use serde_json::{Map, Value};
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::ServerError;
use crate::options::ServerOptions;
use crate::sink::{FlushSink, GraphiteTcp};

/// Datagrams drained per lock (each up to 64 KiB, so a receiver holds at most 4 MiB).
const BATCH: usize = 64;
/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_536;
/// A TCP connection whose unterminated line grows past this is closed: statsd would buffer it
/// without bound.
pub const MAX_TCP_PENDING: usize = 1 << 20;
/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// The wall clock in ms, as `Date.now()`.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `Math.round(Date.now() / 1000)`.
pub(crate) fn now_s() -> i64 {
    (now_ms() + 500).div_euclid(1000)
}

/// graphite.js's `graphiteStats`, shown by the console's `stats`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GraphiteStatus {
    pub last_flush: i64,
    pub last_exception: i64,
    pub flush_time: f64,
    pub flush_length: usize,
}

/// What every thread shares.
pub(crate) struct Shared {
    pub engine: Mutex<Statsd>,
    pub stop: AtomicBool,
    pub health_up: AtomicBool,
    pub last_msg_seen: AtomicI64,
    pub startup_s: i64,
    pub graphite: Mutex<GraphiteStatus>,
    pub raw_config: Map<String, Value>,
    /// TCP connections closed for an over-long line.
    pub tcp_overflows: AtomicU64,
    /// Datagrams received (all receivers), for benchmarks and logs.
    pub datagrams: AtomicU64,
}

impl Shared {
    /// The engine, even if a thread panicked while holding it (its state is still consistent
    /// per packet).
    pub fn engine(&self) -> MutexGuard<'_, Statsd> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn graphite(&self) -> MutexGuard<'_, GraphiteStatus> {
        self.graphite.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A running StatsD server. Dropping it (or [`StatsdServer::shutdown`]) stops every thread.
pub struct StatsdServer {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    udp: Option<SocketAddr>,
    tcp: Option<SocketAddr>,
    mgmt: Option<SocketAddr>,
}

impl std::fmt::Debug for StatsdServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsdServer")
            .field("udp", &self.udp)
            .field("tcp", &self.tcp)
            .field("mgmt", &self.mgmt)
            .finish()
    }
}

fn bind_udp(addr: SocketAddr, recv_buffer: usize) -> Result<UdpSocket, ServerError> {
    let err = |source| ServerError::Bind { addr, source };
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    sock.set_reuse_port(true).map_err(err)?;
    if recv_buffer > 0 {
        // The kernel caps this at net.core.rmem_max; a smaller buffer is not fatal.
        if let Err(e) = sock.set_recv_buffer_size(recv_buffer) {
            tracing::warn!(error = %e, "statsd: cannot set SO_RCVBUF");
        }
    }
    sock.bind(&addr.into()).map_err(err)?;
    let sock: UdpSocket = sock.into();
    sock.set_read_timeout(Some(POLL)).map_err(err)?;
    Ok(sock)
}

/// `n` UDP sockets on one port with `SO_REUSEPORT`; port 0 picks a free port for all of them.
pub(crate) fn bind_udp_group(
    addr: SocketAddr,
    n: usize,
    recv_buffer: usize,
) -> Result<(SocketAddr, Vec<UdpSocket>), ServerError> {
    let first = bind_udp(addr, recv_buffer)?;
    let local = first
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    let mut socks = vec![first];
    for _ in 1..n.max(1) {
        socks.push(bind_udp(local, recv_buffer)?);
    }
    Ok((local, socks))
}

pub(crate) fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, ServerError> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(ServerError::Thread)
}

/// Receives datagrams until stopped: one blocking `recv`, then up to a batch more without
/// blocking, then `handle` on the whole batch.
pub(crate) fn receive_batches(sock: &UdpSocket, stop: &AtomicBool, mut handle: impl FnMut(&[&[u8]])) {
    let mut arena = vec![0u8; BATCH * MAX_DATAGRAM];
    let mut lens = [0usize; BATCH];
    while !stop.load(Ordering::Relaxed) {
        let mut n = 0;
        for chunk in arena.chunks_exact_mut(MAX_DATAGRAM) {
            let got = if n == 0 {
                sock.recv(chunk)
            } else {
                rustix::net::recv(sock, &mut *chunk, rustix::net::RecvFlags::DONTWAIT)
                    .map(|(len, _)| len)
                    .map_err(std::io::Error::from)
            };
            match got {
                Ok(len) => {
                    lens[n] = len;
                    n += 1;
                }
                Err(e) => {
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) {
                        tracing::warn!(error = %e, "statsd: UDP receive failed");
                        std::thread::sleep(POLL);
                    }
                    break;
                }
            }
        }
        if n > 0 {
            let packets: Vec<&[u8]> = arena
                .chunks_exact(MAX_DATAGRAM)
                .zip(&lens[..n])
                .map(|(c, len)| &c[..*len])
                .collect();
            handle(&packets);
        }
    }
}

fn udp_receiver(sock: UdpSocket, shared: Arc<Shared>) {
    receive_batches(&sock, &shared.stop, |packets| {
        let mut engine = shared.engine();
        for p in packets {
            engine.handle_packet(p);
        }
        drop(engine);
        shared.last_msg_seen.store(now_s(), Ordering::Relaxed);
        shared
            .datagrams
            .fetch_add(packets.len() as u64, Ordering::Relaxed);
    });
}

fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    name: &'static str,
    serve: fn(TcpStream, Arc<Shared>),
) {
    if let Err(e) = listener.set_nonblocking(true) {
        tracing::error!(error = %e, "statsd: cannot poll {name} listener");
        return;
    }
    while !shared.stopping() {
        match listener.accept() {
            Ok((conn, _)) => {
                let shared = shared.clone();
                if let Err(e) = conn
                    .set_nonblocking(false)
                    .and_then(|()| conn.set_read_timeout(Some(POLL)))
                {
                    tracing::warn!(error = %e, "statsd: {name} connection setup failed");
                    continue;
                }
                if let Err(e) = spawn(name, move || serve(conn, shared)) {
                    tracing::warn!(error = %e, "statsd: {name} connection refused");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => {
                tracing::warn!(error = %e, "statsd: {name} accept failed");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Reads a connection until EOF or stop; `false` from `chunk` closes it.
pub(crate) fn read_chunks(conn: &mut TcpStream, stop: &AtomicBool, mut chunk: impl FnMut(&[u8]) -> bool) {
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if !chunk(&buf[..n]) {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

fn tcp_connection(mut conn: TcpStream, shared: Arc<Shared>) {
    let mut framer = TcpFramer::default();
    let stop = &shared.stop;
    read_chunks(&mut conn, stop, |chunk| {
        if let Some(packet) = framer.push(chunk) {
            shared.engine().handle_tcp_packet(&packet);
            shared.last_msg_seen.store(now_s(), Ordering::Relaxed);
        }
        if framer.pending() > MAX_TCP_PENDING {
            shared.tcp_overflows.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                limit = MAX_TCP_PENDING,
                "statsd: TCP line longer than the limit, closing the connection"
            );
            return false;
        }
        true
    });
}

fn flush_loop(shared: Arc<Shared>, mut sink: Option<Box<dyn FlushSink>>) {
    loop {
        let delay = shared.engine().next_flush_delay_ms(now_ms()).max(0);
        let deadline = Instant::now() + Duration::from_millis(delay.unsigned_abs());
        while Instant::now() < deadline {
            if shared.stopping() {
                return;
            }
            std::thread::sleep((deadline - Instant::now()).min(POLL));
        }
        let started = Instant::now();
        let flush = shared.engine().flush_with(now_ms(), FlushTimings::default());
        tracing::debug!(lines = flush.lines.len(), took = ?started.elapsed(), "statsd: flushed");
        if let Some(sink) = sink.as_mut() {
            deliver(&shared, sink.as_mut(), &flush);
        }
    }
}

/// Sends one flush and records the outcome as graphite.js does (`flush_time`, `flush_length`,
/// `last_flush` on success; `last_exception` on failure).
fn deliver(shared: &Shared, sink: &mut dyn FlushSink, flush: &Flush) {
    let started = Instant::now();
    let result = sink.deliver(flush);
    let at = now_s();
    match result {
        Ok(()) => {
            let ms = started.elapsed().as_millis() as f64;
            let len = sink.last_payload_len();
            {
                let mut engine = shared.engine();
                engine.note_graphite_send(ms, at);
                if let Some(len) = len {
                    engine.note_payload_length(len);
                }
            }
            let mut g = shared.graphite();
            g.flush_time = ms;
            g.flush_length = len.unwrap_or_else(|| flush.to_text().encode_utf16().count());
            g.last_flush = at;
        }
        Err(_) => {
            shared.engine().note_graphite_error(at);
            shared.graphite().last_exception = at;
        }
    }
}

impl StatsdServer {
    /// Binds every listener in `options` and starts the threads; flushes go to `sink` (None:
    /// to the graphite destinations in `options`, or nowhere if there are none — the buckets
    /// are still flushed and cleared, as etsy does without a `graphiteHost`).
    pub fn start(options: ServerOptions, sink: Option<Box<dyn FlushSink>>) -> Result<Self, ServerError> {
        let startup_ms = now_ms();
        let engine = Statsd::new(options.config.clone(), startup_ms)?;
        let startup_s = (startup_ms + 500).div_euclid(1000);
        let shared = Arc::new(Shared {
            engine: Mutex::new(engine),
            stop: AtomicBool::new(false),
            health_up: AtomicBool::new(options.health_up),
            last_msg_seen: AtomicI64::new(startup_s),
            startup_s,
            graphite: Mutex::new(GraphiteStatus {
                last_flush: startup_s,
                ..GraphiteStatus::default()
            }),
            raw_config: options.raw.clone(),
            tcp_overflows: AtomicU64::new(0),
            datagrams: AtomicU64::new(0),
        });
        let sink = sink.or_else(|| {
            (!options.graphite.is_empty()).then(|| {
                Box::new(GraphiteTcp::new(options.graphite.clone()).with_protocol(options.graphite_protocol))
                    as Box<dyn FlushSink>
            })
        });
        let mut server = StatsdServer {
            shared: shared.clone(),
            threads: Vec::new(),
            udp: None,
            tcp: None,
            mgmt: None,
        };
        if let Some(addr) = options.udp {
            let (local, socks) = bind_udp_group(addr, options.receivers, options.recv_buffer)?;
            server.udp = Some(local);
            for sock in socks {
                let shared = shared.clone();
                server
                    .threads
                    .push(spawn("statsd-udp", move || udp_receiver(sock, shared))?);
            }
        }
        if let Some(mut addr) = options.tcp {
            // Same port as UDP when both asked for port 0.
            if addr.port() == 0
                && options.udp.map(|u| u.port()) == Some(0)
                && let Some(u) = server.udp
            {
                addr.set_port(u.port());
            }
            let listener = TcpListener::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
            server.tcp = listener.local_addr().ok();
            let shared = shared.clone();
            server.threads.push(spawn("statsd-tcp", move || {
                accept_loop(listener, shared, "statsd-tcp", tcp_connection)
            })?);
        }
        if let Some(addr) = options.mgmt {
            let listener = TcpListener::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
            server.mgmt = listener.local_addr().ok();
            let shared = shared.clone();
            server.threads.push(spawn("statsd-mgmt", move || {
                accept_loop(listener, shared, "statsd-mgmt", crate::admin::session)
            })?);
        }
        let flusher = shared.clone();
        server
            .threads
            .push(spawn("statsd-flush", move || flush_loop(flusher, sink))?);
        Ok(server)
    }

    /// The UDP port's address (all receivers share it).
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp
    }

    /// The TCP receiver's address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp
    }

    /// The management console's address.
    pub fn mgmt_addr(&self) -> Option<SocketAddr> {
        self.mgmt
    }

    /// Datagrams received so far, over every receiver.
    pub fn datagrams_received(&self) -> u64 {
        self.shared.datagrams.load(Ordering::Relaxed)
    }

    /// TCP connections closed because a line outgrew [`MAX_TCP_PENDING`].
    pub fn tcp_overflows(&self) -> u64 {
        self.shared.tcp_overflows.load(Ordering::Relaxed)
    }

    /// Runs `f` on the engine under its lock (tests, and `carbide serve`'s introspection).
    pub fn with_engine<T>(&self, f: impl FnOnce(&mut Statsd) -> T) -> T {
        f(&mut self.shared.engine())
    }

    /// Blocks until every thread has ended (they end only after [`StatsdServer::shutdown`]
    /// from another handle, so the CLI uses this to run forever).
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Stops the listeners and the flush timer (no final flush: etsy has none) and joins them.
    pub fn shutdown(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for StatsdServer {
    fn drop(&mut self) {
        self.stop_threads();
    }
}
