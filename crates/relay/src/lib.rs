//! The relay and aggregator roles: carbon-relay.py (and carbon-c-relay's hash clusters) and
//! carbon-aggregator.py, from an existing carbon.conf.
//!
//! A point comes in through a [`listen`] receiver, is handed to a [`Sink`], and leaves through one
//! [`queue::DestQueue`] per destination, drained by a [`sender`] task per destination. The queues
//! are bounded in memory; when a destination is down and its queue is full, points spill to an
//! append-only file per destination and are replayed, in order, when it comes back. A live but slow
//! destination pushes back on the receivers instead (carbon's USE_FLOW_CONTROL).
//!
//! When a down destination's spill file is full — at its size limit, or because the disk refuses
//! writes (ENOSPC, EFBIG) — further points for that destination alone are dropped: counted
//! (`fullQueueDrops`, and `spillErrors` for a disk error), logged once a second at most, and the
//! other destinations keep flowing. Every point that was accepted, in memory or in the file, is
//! delivered in order when the destination returns ([`queue`], [`spill`]).
//!
//! # Layout
//! - [`router`]: which destinations a metric goes to (relay rules, consistent hashing, aggregated
//!   consistent hashing), pure.
//! - [`spill`]: the append-only spill file of one destination.
//! - [`queue`]: one destination's bounded queue, its spill, and its counters.
//! - [`sender`]: the task that connects (with backoff), batches, encodes and writes.
//! - [`aggregate`]: carbon-aggregator's buffers per (output metric, interval), pure.
//! - [`pipeline`]: rewrite `[pre]`, the buffers, rewrite `[post]` and their rule files, whatever
//!   the output: the destinations here, or the local cache in `carbide serve`.
//! - [`listen`]: line and pickle TCP receivers feeding a [`Sink`], with flow control.
//! - [`lists`]: carbon's whitelist/blacklist (USE_WHITELIST) in front of the [`Sink`].
//! - [`service`]: the roles wired together: [`service::Relay`], [`service::Aggregator`], self-metrics.
//! - [`error`]: the start-up error type, [`RelayError`].

pub mod aggregate;
pub mod error;
pub mod listen;
pub mod lists;
pub mod pipeline;
pub mod queue;
pub mod router;
pub mod sender;
pub mod service;
pub mod spill;

pub use error::RelayError;

/// One decoded point, borrowing its name from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Incoming<'a> {
    /// Metric name.
    pub name: &'a str,
    /// Value.
    pub value: f64,
    /// Seconds since the epoch.
    pub timestamp: f64,
}

/// Where decoded points go: the relay's router or the aggregator's buffers.
pub trait Sink: Send + Sync {
    /// Takes one point; `false` when it was dropped (counted by the sink).
    fn point(&self, name: &str, value: f64, timestamp: f64) -> bool;
    /// Takes every point decoded from one read, in order; a sink that can queue a whole read at
    /// once (one lock per destination instead of one per point) overrides this.
    fn points(&self, batch: &[Incoming<'_>]) {
        for p in batch {
            self.point(p.name, p.value, p.timestamp);
        }
    }
    /// True while receivers should stop reading (a destination queue is full).
    fn should_pause(&self) -> bool;
    /// Counts a line or entry that could not be decoded.
    fn bad_input(&self, peer: &str, what: &str);
    /// A point carbon checks against the whitelist and blacklist before it drops it for a NaN
    /// value or a timestamp `int()` refuses (protocols.py `metricReceived`): `true` when the
    /// lists drop it (counted there), so the caller drops it without a word, as carbon does.
    fn listed_out(&self, name: &str) -> bool {
        let _ = name;
        false
    }
}

/// Seconds since the epoch as a float, like Python's `time.time()`.
pub fn now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
