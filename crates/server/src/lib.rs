//! Carbide's network edge for the cache role: listeners, carbonlink, the admin endpoints,
//! self-metrics, and a shutdown that loses nothing.
//!
//! Sockets and async live here and only here; everything below is pure (protocol, config) or
//! blocking-thread code (cache writers). `run` functions take a bound listener and a shutdown
//! signal (mini-redis's habit), so tests and `main` start servers the same way on `127.0.0.1:0`.
//!
//! # Layout
//! - [`ingest`]: what happens to a decoded point: filters, tag normalisation, the cache.
//! - [`listeners`]: line (TCP, UDP) and pickle receivers with flow control and limits.
//! - [`http_receiver`]: go-carbon's HTTP POST receiver (lines, pickle, protobuf), off by default.
//! - [`carbonlink`]: the cache-query server graphite-web talks to.
//! - [`admin`]: `/admin/cache`, `/admin/flush`, `/admin/writers` and Prometheus `/metrics`.
//! - [`prometheus`]: the text exposition every role's `/metrics` is written with.
//! - [`selfmetrics`]: carbon's `carbon.agents.<host>.*` datapoints.
//! - [`dump`]: the shutdown dump and its replay at the next start.
//! - [`reload`]: noticing edited config files without a signal, as carbon does.
//! - [`tagdb`]: registering series with graphite-web's tag database (ENABLE_TAGS).
//! - [`cache_role`]: all of the above wired from a carbon.conf.

pub mod admin;
pub mod cache_role;
pub mod carbonlink;
pub mod dump;
pub mod http_receiver;
pub mod ingest;
pub mod listeners;
pub mod prometheus;
pub mod reload;
pub mod selfmetrics;
pub mod tagdb;

pub use cache_role::{CacheRole, RoleOptions};
