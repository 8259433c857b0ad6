//! Which metric a writer takes next: carbon's CACHE_WRITE_STRATEGY values.

use std::str::FromStr;

/// The order in which writers drain the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteStrategy {
    /// Largest queues first, from a snapshot re-taken whenever it runs out (carbon's default).
    Sorted,
    /// Always the single largest queue: a scan of every metric per write, as slow as carbon's.
    Max,
    /// Oldest point first, from a snapshot like `sorted`.
    TimeSorted,
    /// First come, first written: O(1) per write, and a metric gathers points while it waits its
    /// turn. Measured fastest (benches/README.md), so Carbide's default.
    #[default]
    Naive,
}

/// A strategy name carbon does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown CACHE_WRITE_STRATEGY '{0}' (expected sorted, max, timesorted or naive)")]
pub struct UnknownStrategy(pub String);

impl FromStr for WriteStrategy {
    type Err = UnknownStrategy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sorted" => Ok(Self::Sorted),
            "max" => Ok(Self::Max),
            "timesorted" => Ok(Self::TimeSorted),
            "naive" => Ok(Self::Naive),
            other => Err(UnknownStrategy(other.to_string())),
        }
    }
}
