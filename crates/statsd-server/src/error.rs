//! Typed errors of the server and the proxy.

use std::net::SocketAddr;

/// Why a server, a proxy or their options could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The engine refused the config (etsy's keys, validated by `carbide-statsd`).
    #[error("statsd config: {0}")]
    Config(#[from] carbide_statsd::ConfigError),
    /// The proxy's relay settings are unusable (no backends, zero packet length).
    #[error("statsd proxy: {0}")]
    Relay(#[from] carbide_statsd::RelayError),
    /// A config key holds the wrong kind of value.
    #[error("statsd config key {key}: {reason}")]
    Option {
        /// The etsy key (`port`, `graphiteHost`, …).
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// The config file is not valid JSON.
    #[error("statsd config is not JSON: {0}")]
    Json(String),
    /// A socket could not be created or bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A host:port did not resolve.
    #[error("cannot resolve {0}")]
    Resolve(String),
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}
