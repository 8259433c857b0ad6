//! StatsD for Carbide: etsy statsd 0.9.0's engine and StatsRelay's router, over bytes, with no
//! sockets and no threads (the server crate owns those).
//!
//! The behaviour is etsy statsd's, read from its source (stats.js, lib/helpers.js,
//! lib/process_metrics.js, backends/graphite.js) and checked against the running program in
//! `tests/`: the same packets give the same graphite lines, in the same order, with values
//! printed as node prints numbers.
//!
//! # Layout
//! - [`parse`]: the line protocol — packet → lines → key (tags, sanitising) → segments.
//! - [`engine`]: [`Statsd`], the buckets (counters, timers, gauges, sets), their flush and clear.
//!   A server flushes in three steps so its lock is not held while lines are built:
//!   [`Statsd::begin_flush`] (takes the buckets), [`PendingFlush::format`] (the lines, unlocked),
//!   [`Statsd::finish_flush`] (notes the payload length).
//! - [`timer`]: timer statistics, percentiles and histograms of process_metrics.js.
//! - [`graphite`]: names and lines of the graphite backend, and statsd's own metrics.
//! - [`config`]: etsy's config keys with their defaults, readable from JSON.
//! - [`jsnum`]: JavaScript's `Number(string)` and number printing, which decide every value.
//! - [`relay`]: StatsRelay — FNV-1a-64 + jump hash routing and per-backend packet batching.
//! - [`error`]: typed errors.

//!
//! # Using it
//! ```
//! use carbide_statsd::{Config, Statsd};
//!
//! let config = Config::from_json(r#"{"flushInterval": 10000, "percentThreshold": [90, 99]}"#)?;
//! let mut statsd = Statsd::new(config, 1_700_000_000_000)?;
//! statsd.handle_packet(b"api.hits:1|c|@0.1\napi.time:320|ms");
//! let flush = statsd.flush(1_700_000_010_000);
//! assert_eq!(flush.value("stats_counts.api.hits").as_deref(), Some("10"));
//! assert_eq!(flush.value("stats.timers.api.time.upper_99").as_deref(), Some("320"));
//! # Ok::<(), carbide_statsd::ConfigError>(())
//! ```
//!
//! # Where it differs from etsy statsd, on purpose
//! - A sample rate that passes statsd's check but not its `/^@([\d.]+)/` extraction (`@+0.5`,
//!   `@ 1`, `@Infinity`) makes node throw inside its UDP handler and exit; here it is one more
//!   bad line ([`parse::BadSegment::UnextractableSampleRate`]).
//! - Keys that name `Object.prototype` members: `__proto__` behaves as in node (the metric
//!   vanishes, a set member of that name is not counted). Others (`constructor`, `valueOf`,
//!   `toString`, …) make node add a function's source text to the counter
//!   (`function Object() { [native code] }1`) or throw for timers and sets; here they are
//!   ordinary keys.
//! - `keyFlush` (a periodic log of the busiest keys) and the pickle output are the server's.
//! - `carbideMaxKeys` bounds memory (distinct keys held); statsd has no bound.
//! - The relay sends no empty datagram before a line longer than the packet length.

pub mod config;
pub mod engine;
pub mod error;
pub mod graphite;
pub mod jsnum;
pub mod parse;
pub mod relay;
pub mod timer;

pub use config::{Config, Settings};
pub use engine::{EngineStats, FlushTimings, PendingFlush, StatKind, Statsd};
pub use error::{ConfigError, RelayError};
pub use graphite::{Flush, GraphiteLine};
pub use relay::Relay;
