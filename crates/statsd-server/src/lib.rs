//! The StatsD server and proxy around the pure engine of `carbide-statsd`: the sockets, the
//! threads and the clock, with etsy statsd 0.9.0's behaviour on the wire.
//!
//! The engine stays one [`carbide_statsd::Statsd`] behind one mutex. Several UDP receiver
//! threads share the port with `SO_REUSEPORT`; each drains up to a batch of datagrams without
//! blocking and applies the whole batch under one lock, so the lock is taken once per batch, not
//! once per packet. Because one engine sees every packet, each flush is exactly what etsy
//! statsd would flush for the same packets in the same arrival order — no shard merge to prove.
//!
//! # Layout
//! - [`options`]: where to listen and where to flush, from etsy's JSON keys or from code.
//! - [`sink`]: where a flush goes: graphite over TCP, or any [`sink::FlushSink`] (the cache, in
//!   `carbide serve`).
//! - [`server`]: [`StatsdServer`]: UDP and TCP receivers, the flush timer.
//! - [`admin`]: the management console on 8126 (`stats`, `counters`, `delcounters`, …).
//! - [`inspect`]: node's `util.inspect` for the console's `counters`/`gauges`/`timers` replies.
//! - [`proxy`]: `carbide statsd --proxy`: StatsRelay's consistent hashing to backend statsds.
//! - [`error`]: typed errors.

pub mod admin;
pub mod error;
pub mod inspect;
pub mod options;
pub mod proxy;
pub mod server;
pub mod sink;

/// The engine crate, so callers (the `serve` wiring, tests) need no second dependency.
pub use carbide_statsd;
pub use error::ServerError;
pub use options::ServerOptions;
pub use proxy::{ProxyOptions, StatsdProxy};
pub use server::StatsdServer;
pub use sink::{FlushSink, GraphiteProtocol, GraphiteTcp, PointSink};
