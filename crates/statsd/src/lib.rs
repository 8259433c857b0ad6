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
//! - [`timer`]: timer statistics, percentiles and histograms of process_metrics.js.
//! - [`graphite`]: names and lines of the graphite backend, and statsd's own metrics.
//! - [`config`]: etsy's config keys with their defaults, readable from JSON.
//! - [`jsnum`]: JavaScript's `Number(string)` and number printing, which decide every value.
//! - [`relay`]: StatsRelay — FNV-1a-64 + jump hash routing and per-backend packet batching.
//! - [`error`]: typed errors.

pub mod config;
pub mod engine;
pub mod error;
pub mod graphite;
pub mod jsnum;
pub mod parse;
pub mod relay;
pub mod timer;

pub use config::{Config, Settings};
pub use engine::{EngineStats, FlushTimings, StatKind, Statsd};
pub use error::{ConfigError, RelayError};
pub use graphite::{Flush, GraphiteLine};
pub use relay::Relay;
