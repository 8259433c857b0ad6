//! `carbide statsd --proxy`: StatsRelay. Lines arrive over UDP, are hashed by key (FNV-1a-64 +
//! jump hash, [`carbide_statsd::Relay`]) and leave in packets of at most `packet_len` bytes to
//! the backend statsd that owns the key, so one key always reaches the same backend.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use carbide_statsd::Relay;

use crate::error::ServerError;
use crate::recv::receive_batches;
use crate::server::{bind_udp_group, spawn};

/// What the proxy needs.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Where it listens (UDP).
    pub listen: SocketAddr,
    /// Backends (`host:port`), in ring order: the order decides which backend owns a key.
    pub backends: Vec<String>,
    /// StatsRelay's `-packetlen`.
    pub packet_len: usize,
    /// StatsRelay's `-prefix` for its own `statsProcessed` counter.
    pub prefix: String,
    /// StatsRelay's `-metrics-prefix`, prepended to every key.
    pub metrics_prefix: Option<String>,
    /// Receiver threads sharing the port.
    pub receivers: usize,
    /// `SO_RCVBUF` asked for.
    pub recv_buffer: usize,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8125)),
            backends: Vec::new(),
            packet_len: 1400,
            prefix: "statsrelay".into(),
            metrics_prefix: None,
            receivers: 2,
            recv_buffer: 32 << 20,
        }
    }
}

/// Counters of a running proxy.
#[derive(Debug, Default)]
struct Counts {
    datagrams_in: AtomicU64,
    packets_out: AtomicU64,
    send_errors: AtomicU64,
}

/// A running proxy; dropping it stops the threads.
pub struct StatsdProxy {
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    threads: Vec<JoinHandle<()>>,
    addr: SocketAddr,
}

impl std::fmt::Debug for StatsdProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsdProxy").field("addr", &self.addr).finish()
    }
}

impl StatsdProxy {
    /// Resolves the backends, binds the port and starts the receivers.
    pub fn start(options: ProxyOptions) -> Result<Self, ServerError> {
        let relay = Relay::new(
            options.backends.len(),
            options.packet_len,
            &options.prefix,
            options.metrics_prefix.as_deref(),
        )?;
        let backends: Vec<SocketAddr> = options
            .backends
            .iter()
            .map(|b| {
                b.to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| ServerError::Resolve(b.clone()))
            })
            .collect::<Result<_, _>>()?;
        let (addr, socks) = bind_udp_group(options.listen, options.receivers, options.recv_buffer)?;
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let mut threads = Vec::new();
        for sock in socks {
            let unspecified: SocketAddr = if addr.is_ipv6() {
                SocketAddr::from(([0u16; 8], 0))
            } else {
                SocketAddr::from(([0u8; 4], 0))
            };
            let out = UdpSocket::bind(unspecified).map_err(|source| ServerError::Bind {
                addr: unspecified,
                source,
            })?;
            let (relay, backends, stop, counts) =
                (relay.clone(), backends.clone(), stop.clone(), counts.clone());
            threads.push(spawn("statsd-proxy", move || {
                receive_batches(&sock, &stop, |packets| {
                    counts
                        .datagrams_in
                        .fetch_add(packets.len() as u64, Ordering::Relaxed);
                    for p in packets {
                        for packet in relay.route(p) {
                            let Some(dest) = backends.get(packet.backend) else {
                                continue;
                            };
                            match out.send_to(&packet.data, dest) {
                                Ok(_) => counts.packets_out.fetch_add(1, Ordering::Relaxed),
                                Err(e) => {
                                    tracing::warn!(backend = %dest, error = %e, "statsd proxy: send failed");
                                    counts.send_errors.fetch_add(1, Ordering::Relaxed)
                                }
                            };
                        }
                    }
                });
            })?);
        }
        Ok(StatsdProxy {
            stop,
            counts,
            threads,
            addr,
        })
    }

    /// The UDP address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Datagrams received so far.
    pub fn datagrams_in(&self) -> u64 {
        self.counts.datagrams_in.load(Ordering::Relaxed)
    }

    /// Packets sent to backends so far.
    pub fn packets_out(&self) -> u64 {
        self.counts.packets_out.load(Ordering::Relaxed)
    }

    /// Sends that failed.
    pub fn send_errors(&self) -> u64 {
        self.counts.send_errors.load(Ordering::Relaxed)
    }

    /// Blocks until the threads end (the CLI's run-forever).
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for StatsdProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
