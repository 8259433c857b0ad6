//! Counters behind the self-metrics; each is defined once here so every report agrees.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters of what the cache and its writers did, read by the self-metrics reporter.
#[derive(Debug, Default)]
pub struct Stats {
    /// Points accepted into the cache (carbon's metricsReceived).
    pub received: AtomicU64,
    /// Points refused because the cache was beyond its hard limit (cache.overflow).
    pub overflow: AtomicU64,
    /// Points written to whisper (committedPoints).
    pub committed_points: AtomicU64,
    /// update_many calls (updateOperations).
    pub update_operations: AtomicU64,
    /// Microseconds spent in update_many, for avgUpdateTime.
    pub update_micros: AtomicU64,
    /// Files created (creates).
    pub creates: AtomicU64,
    /// Creates postponed by MAX_CREATES_PER_MINUTE; the points stay cached (droppedCreates in carbon,
    /// where they were dropped).
    pub deferred_creates: AtomicU64,
    /// Failed writes (errors).
    pub errors: AtomicU64,
    /// Points dropped after a write error that retrying cannot fix (a corrupt file), each logged.
    pub dropped_points: AtomicU64,
    /// Metric names refused before they touched the filesystem.
    pub invalid_names: AtomicU64,
    /// Cache queries answered (cache.queries).
    pub queries: AtomicU64,
}

impl Stats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
