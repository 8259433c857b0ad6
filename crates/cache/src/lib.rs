//! The cache between the listeners and the whisper files, built so that no datapoint is lost.
//!
//! Points wait here, per metric, until a writer persists them. A writer *takes* a metric's points
//! (they stay readable as in-flight), writes them, and only then *confirms*; a failed write puts them
//! back (go-carbon's confirm-on-persist habit). Ingestion locks one shard of many, never the whole
//! cache. When the cache holds `max_size` points the receivers are told to stop reading, so TCP
//! pushes back on the senders instead of the cache dropping points.
//!
//! # Layout
//! - [`cache`]: the sharded map, size accounting, flow control, queries, dump for shutdown.
//! - [`strategy`]: which metric a writer takes next (carbon's sorted, max, timesorted, naive).
//! - [`writer`]: the writer pool, its throttles, its per-writer status for `/admin/writers`.
//! - [`persist`]: turning a metric's points into whisper writes (create by schema, update_many).
//! - [`stats`]: the counters behind carbon's `carbon.agents.*` self-metrics.

pub mod cache;
pub mod persist;
pub mod stats;
pub mod strategy;
pub mod throttle;
pub mod writer;

pub use cache::{Cache, CacheConfig, Job, Refused, Tally};
pub use persist::{Outcome, PersistError, Persister, StoragePolicy, WhisperPersister};
pub use stats::Stats;
pub use strategy::WriteStrategy;
pub use writer::{WriterPool, WriterSnapshot};
