//! Why a relay or aggregator cannot start.

use thiserror::Error;

/// Start-up failures; everything after start-up is logged and counted instead.
#[derive(Debug, Error)]
pub enum RelayError {
    /// A configuration file is wrong (the message names file:line).
    #[error("{0}")]
    Config(#[from] carbide_config::ConfigError),
    /// The destination list cannot form a ring.
    #[error("destinations: {0}")]
    Ring(#[from] carbide_routing::RingError),
    /// A setting has a value this role cannot use.
    #[error("{0}")]
    Setting(String),
    /// A file or socket could not be opened.
    #[error("{what}: {source}")]
    Io {
        /// What was being opened.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}
