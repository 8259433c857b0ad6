//! Typed errors of the crate.

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The JSON text did not match the expected keys and types.
    #[error("statsd config: {0}")]
    Json(String),
    /// flushInterval must be a positive number of milliseconds.
    #[error("statsd config: flushInterval must be > 0 ms")]
    FlushInterval,
    /// percentThreshold values must be finite numbers.
    #[error("statsd config: percentThreshold {0} is not a finite number")]
    PercentThreshold(f64),
    /// Histogram bins must be numbers or 'inf'.
    #[error("statsd config: histogram bin {0} is not a number")]
    HistogramBin(f64),
}

/// A relay that cannot route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// A jump hash needs at least one backend.
    #[error("statsrelay: no backends")]
    NoBackends,
    /// The packet length must leave room for data.
    #[error("statsrelay: packet length must be > 0")]
    PacketLen,
}
