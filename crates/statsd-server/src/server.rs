//! [`StatsdServer`]: the receivers and the flush timer around one engine.
//!
//! Threads, not async: each UDP receiver blocks on its own `SO_REUSEPORT` socket (the kernel
//! spreads datagrams across them), takes whatever else is queued in the same call (`recvmmsg` on
//! Linux, see `crate::recv`), and applies the batch under one lock. TCP connections and console sessions get a thread each.
//! The flush thread sleeps until statsd's aligned flush time, takes the buckets under the lock
//! ([`carbide_statsd::Statsd::begin_flush`]: a pointer copy per key), builds the lines and
//! delivers them outside it, so receivers are not held up by a big flush.
//!
//! # Stopping without loss
//! [`StatsdServer::stop_receiving`] stops the receivers first: each reads what the kernel already
//! queued on its socket (UDP datagrams, unread TCP bytes), hands it to the engine and ends. Only
//! then does [`StatsdServer::shutdown_with_final_flush`] take the final flush, so every packet
//! accepted before the stop is in it.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use carbide_statsd::parse::TcpFramer;
use carbide_statsd::{Flush, FlushTimings, Statsd};
use serde_json::{Map, Value};
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::ServerError;
use crate::options::ServerOptions;
use crate::recv::receive_batches;
use crate::sink::{FlushSink, GraphiteTcp};

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
    /// Every thread ends (the receivers after reading what is queued).
    pub stop: AtomicBool,
    /// The receivers (UDP, TCP) read what is queued and end; the console and flusher go on.
    pub stop_receiving: AtomicBool,
    /// The flush thread makes one last flush when it sees `stop`.
    pub final_flush: AtomicBool,
    /// TCP receiver connections still open.
    pub tcp_active: AtomicUsize,
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

    fn receiving_stopped(&self) -> bool {
        self.stop_receiving.load(Ordering::Relaxed) || self.stopping()
    }
}

/// Counts a TCP receiver connection as open until dropped.
struct TcpActive<'a>(&'a AtomicUsize);

impl Drop for TcpActive<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running StatsD server. Dropping it (or [`StatsdServer::shutdown`]) stops every thread.
pub struct StatsdServer {
    shared: Arc<Shared>,
    /// UDP receivers and the TCP accept loop.
    receivers: Vec<JoinHandle<()>>,
    /// The console and the flusher.
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
        set_recv_buffer(&sock, recv_buffer);
    }
    sock.bind(&addr.into()).map_err(err)?;
    let sock: UdpSocket = sock.into();
    sock.set_read_timeout(Some(POLL)).map_err(err)?;
    Ok(sock)
}

/// Asks for `want` bytes of receive buffer: a burst bigger than the buffer is lost in the kernel.
/// SO_RCVBUF is capped at net.core.rmem_max (208 KiB unless raised), so a privileged process
/// forces it (SO_RCVBUFFORCE); otherwise the cap is logged once, with the sysctl that lifts it.
fn set_recv_buffer(sock: &Socket, want: usize) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    // Linux reports twice what was asked for (its bookkeeping), and caps silently.
    let enough = |s: &Socket| s.recv_buffer_size().is_ok_and(|got| got / 2 >= want);
    let _ = sock.set_recv_buffer_size(want);
    if enough(sock)
        || (rustix::net::sockopt::set_socket_recv_buffer_size_force(sock, want).is_ok() && enough(sock))
    {
        return;
    }
    if !WARNED.swap(true, Ordering::Relaxed) {
        let got = sock.recv_buffer_size().map_or(0, |g| g / 2);
        tracing::warn!(
            wanted = want,
            got,
            "statsd: the UDP receive buffer is capped by net.core.rmem_max; bursts beyond it are dropped by the kernel (raise it: sysctl -w net.core.rmem_max={want})"
        );
    }
}

/// `n` UDP sockets on one port with `SO_REUSEPORT`; port 0 picks a free port for all of them.
pub(crate) fn bind_udp_group(
    addr: SocketAddr,
    n: usize,
    recv_buffer: usize,
) -> Result<UdpGroup, ServerError> {
    if addr.port() != 0 {
        return bind_udp_group_at(addr, n, recv_buffer);
    }
    // Port 0 with SO_REUSEPORT set may be given a port that another process of the same user
    // holds with SO_REUSEPORT too (the kernel counts it as shareable): the groups then merge, or
    // the next bind fails (seen in parallel tests). A plain socket is given a port nobody holds;
    // the group binds there, again if the port is taken in between.
    on_fresh_ports(addr, || {
        let probe = std::net::UdpSocket::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
        let free = probe
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        drop(probe);
        Ok(bind_udp_group_at(free, n, recv_buffer))
    })
}

/// Runs `attempt` until its bind succeeds, at most 8 times: each attempt picks a fresh port,
/// which another process may take before it is bound. An outer error ends the tries at once.
fn on_fresh_ports<T>(
    addr: SocketAddr,
    mut attempt: impl FnMut() -> Result<Result<T, ServerError>, ServerError>,
) -> Result<T, ServerError> {
    let mut last = None;
    for _ in 0..8 {
        match attempt()? {
            Ok(bound) => return Ok(bound),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(ServerError::Bind {
        addr,
        source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
    }))
}

/// [`bind_udp_group`] on a given port.
fn bind_udp_group_at(addr: SocketAddr, n: usize, recv_buffer: usize) -> Result<UdpGroup, ServerError> {
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

/// The UDP receiver group and the TCP listener. When both ask for port 0 they share one port,
/// as etsy's 8125 is both; the UDP port found free may be held for TCP by another process, so
/// the pair is retried on a fresh port.
fn bind_receivers(options: &ServerOptions) -> Result<(Option<UdpGroup>, Option<TcpListener>), ServerError> {
    let tcp_bind =
        |addr: SocketAddr| TcpListener::bind(addr).map_err(|source| ServerError::Bind { addr, source });
    let (Some(udp), Some(tcp)) = (options.udp, options.tcp) else {
        let udp = options
            .udp
            .map(|a| bind_udp_group(a, options.receivers, options.recv_buffer))
            .transpose()?;
        return Ok((udp, options.tcp.map(tcp_bind).transpose()?));
    };
    if udp.port() != 0 || tcp.port() != 0 {
        let group = bind_udp_group(udp, options.receivers, options.recv_buffer)?;
        return Ok((Some(group), Some(tcp_bind(tcp)?)));
    }
    on_fresh_ports(tcp, || {
        let group = bind_udp_group(udp, options.receivers, options.recv_buffer)?;
        let mut at = tcp;
        at.set_port(group.0.port());
        Ok(tcp_bind(at).map(|listener| (Some(group), Some(listener))))
    })
}

/// A UDP port's address and the `SO_REUSEPORT` sockets that share it.
type UdpGroup = (SocketAddr, Vec<UdpSocket>);

pub(crate) fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, ServerError> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(ServerError::Thread)
}

fn udp_receiver(sock: UdpSocket, shared: Arc<Shared>) {
    receive_batches(&sock, &shared.stop_receiving, |packets| {
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

/// Which threads' stop flag an accept loop follows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Data in: stops with the receivers, counts its connections in `tcp_active`.
    Receiver,
    /// The console: stops with everything.
    Console,
}

fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    name: &'static str,
    role: Role,
    serve: fn(TcpStream, Arc<Shared>),
) {
    if let Err(e) = listener.set_nonblocking(true) {
        tracing::error!(error = %e, "statsd: cannot poll {name} listener");
        return;
    }
    let stopped = |s: &Shared| match role {
        Role::Receiver => s.receiving_stopped(),
        Role::Console => s.stopping(),
    };
    while !stopped(&shared) {
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
                if role == Role::Receiver {
                    // Counted before the thread starts, so `stop_receiving` never misses it.
                    shared.tcp_active.fetch_add(1, Ordering::SeqCst);
                }
                let counter = shared.clone();
                if let Err(e) = spawn(name, move || serve(conn, shared)) {
                    if role == Role::Receiver {
                        counter.tcp_active.fetch_sub(1, Ordering::SeqCst);
                    }
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

/// Reads a connection until EOF or stop; `false` from `chunk` closes it. True when the peer
/// closed it (EOF or a read error).
pub(crate) fn read_chunks(
    conn: &mut TcpStream,
    stop: &AtomicBool,
    mut chunk: impl FnMut(&[u8]) -> bool,
) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match conn.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => {
                if !chunk(&buf[..n]) {
                    return false;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

fn tcp_connection(mut conn: TcpStream, shared: Arc<Shared>) {
    let _active = TcpActive(&shared.tcp_active);
    let mut framer = TcpFramer::default();
    let overflow = std::cell::Cell::new(false);
    let mut on_chunk = |chunk: &[u8]| {
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
            overflow.set(true);
            return false;
        }
        true
    };
    let eof = read_chunks(&mut conn, &shared.stop_receiving, &mut on_chunk);
    if !eof && !overflow.get() && shared.receiving_stopped() {
        // Stopping: what the peer already sent is read, without waiting for more.
        drain_tcp(&mut conn, &mut on_chunk);
    }
}

/// Reads what is already in the socket's buffer, for at most two seconds.
fn drain_tcp(conn: &mut TcpStream, chunk: &mut impl FnMut(&[u8]) -> bool) {
    if conn.set_nonblocking(true).is_err() {
        return;
    }
    let until = Instant::now() + Duration::from_secs(2);
    let mut buf = vec![0u8; 64 * 1024];
    while Instant::now() < until {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if !chunk(&buf[..n]) {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn flush_loop(shared: Arc<Shared>, mut sink: Option<Box<dyn FlushSink>>) {
    'periodic: loop {
        let delay = shared.engine().next_flush_delay_ms(now_ms()).max(0);
        let deadline = Instant::now() + Duration::from_millis(delay.unsigned_abs());
        while Instant::now() < deadline {
            if shared.stopping() {
                break 'periodic;
            }
            std::thread::sleep((deadline - Instant::now()).min(POLL));
        }
        let flush = flush_unlocked(&shared);
        if let Some(sink) = sink.as_mut() {
            deliver(&shared, sink.as_mut(), &flush);
        }
    }
    if shared.final_flush.load(Ordering::SeqCst) {
        let flush = flush_unlocked(&shared);
        tracing::info!(lines = flush.lines.len(), "statsd: final flush");
        if let Some(sink) = sink.as_mut() {
            deliver(&shared, sink.as_mut(), &flush);
        }
    }
}

/// One flush that holds the engine's lock only to take the buckets and to note the payload
/// length: the lines (3 s of work at a million keys) are built while receivers go on.
fn flush_unlocked(shared: &Shared) -> Flush {
    let started = Instant::now();
    let pending = shared.engine().begin_flush(now_ms(), FlushTimings::default());
    let stalled = started.elapsed();
    let flush = pending.format();
    shared.engine().finish_flush(&flush);
    // `stalled_ms`: how long receivers could not apply packets; benches/statsd.rs reads it.
    tracing::debug!(
        lines = flush.lines.len(),
        took_ms = started.elapsed().as_secs_f64() * 1000.0,
        stalled_ms = stalled.as_secs_f64() * 1000.0,
        "statsd: flushed"
    );
    flush
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
            g.flush_length = len.unwrap_or_else(|| flush.text_len_utf16());
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
            stop_receiving: AtomicBool::new(false),
            final_flush: AtomicBool::new(false),
            tcp_active: AtomicUsize::new(0),
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
            receivers: Vec::new(),
            threads: Vec::new(),
            udp: None,
            tcp: None,
            mgmt: None,
        };
        let (udp, tcp) = bind_receivers(&options)?;
        if let Some((local, socks)) = udp {
            server.udp = Some(local);
            for sock in socks {
                let shared = shared.clone();
                server
                    .receivers
                    .push(spawn("statsd-udp", move || udp_receiver(sock, shared))?);
            }
        }
        if let Some(listener) = tcp {
            server.tcp = listener.local_addr().ok();
            let shared = shared.clone();
            server.receivers.push(spawn("statsd-tcp", move || {
                accept_loop(listener, shared, "statsd-tcp", Role::Receiver, tcp_connection)
            })?);
        }
        if let Some(addr) = options.mgmt {
            let listener = TcpListener::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
            server.mgmt = listener.local_addr().ok();
            let shared = shared.clone();
            server.threads.push(spawn("statsd-mgmt", move || {
                accept_loop(
                    listener,
                    shared,
                    "statsd-mgmt",
                    Role::Console,
                    crate::admin::session,
                )
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
        for t in self.receivers.drain(..).chain(self.threads.drain(..)) {
            let _ = t.join();
        }
    }

    /// Stops the receivers, after each has handed the engine what its socket already held (UDP
    /// datagrams queued in the kernel, unread TCP bytes), and waits for them: after this the
    /// engine holds every packet accepted before the call, and nothing more arrives. The console
    /// and the periodic flushes go on. Waits at most a few seconds for TCP connections.
    pub fn stop_receiving(&mut self) {
        self.shared.stop_receiving.store(true, Ordering::SeqCst);
        for t in self.receivers.drain(..) {
            let _ = t.join();
        }
        let until = Instant::now() + Duration::from_secs(3);
        while self.shared.tcp_active.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The orderly stop: [`StatsdServer::stop_receiving`], then one last flush of everything
    /// counted since the previous one, delivered to the sink, then the rest of the threads.
    pub fn shutdown_with_final_flush(mut self) {
        self.stop_receiving();
        self.shared.final_flush.store(true, Ordering::SeqCst);
        self.stop_threads();
    }

    /// Stops every thread with no final flush (etsy makes none on SIGTERM) and joins them.
    pub fn shutdown(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        // The receivers watch `stop_receiving` only: without it a plain shutdown (or drop) waited
        // for them forever.
        self.shared.stop_receiving.store(true, Ordering::SeqCst);
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.receivers.drain(..).chain(self.threads.drain(..)) {
            let _ = t.join();
        }
    }
}

impl Drop for StatsdServer {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

    use super::*;

    /// The buffer asked for is what the sockets get, up to what the kernel allows this process.
    #[test]
    fn receivers_get_the_receive_buffer_asked_for() {
        // Over this machine's net.core.rmem_max (4 MiB), so only forcing can grant it.
        let want = 8 << 20;
        let (_, socks) = bind_udp_group("127.0.0.1:0".parse().unwrap(), 2, want).unwrap();
        let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Whether this process may force a buffer at all, asked of a socket of its own.
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let forced = rustix::net::sockopt::set_socket_recv_buffer_size_force(&probe, want).is_ok();
        let floor = if forced { want } else { want.min(rmem_max) };
        for s in socks {
            let got = rustix::net::sockopt::socket_recv_buffer_size(&s).unwrap() / 2;
            assert!(
                got >= floor,
                "SO_RCVBUF {got} < {floor} (rmem_max {rmem_max}, forced {forced})"
            );
        }
    }
}
