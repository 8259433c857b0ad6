//! The render API's evaluator: target expressions over [`carbide_storage::Storage`], graphite-web's
//! render functions, and its output formats.
//!
//! Every function keeps graphite-web 1.1.8's names, tags and arithmetic (Python's `%g`, `repr`,
//! `normalize`, consolidation with xFilesFactor) so that dashboards built against graphite-web read
//! the same; the differential tests in the repository's `tests/web_*.rs` compare whole responses.
//!
//! # Layout
//! - [`series`]: `TimeSeries` with consolidation (`valuesPerPoint`) and `datapoints()`.
//! - [`eval`]: the request [`eval::Context`] and `evaluateTarget`.
//! - [`functions`]: the functions, dispatched by name.
//! - [`catalog`]: parameter descriptions for `/functions`.
//! - [`events`]: the events store `events()` and `/events` read.
//! - [`format`]: json (maxDataPoints, noNullPoints), csv, raw.
//! - [`remote`]: CLUSTER_SERVERS, other instances' series merged into fetches.
//! - [`pyfmt`]: Python's `%g` and `repr` of floats.

pub mod catalog;
pub mod eval;
pub mod events;
pub mod format;
pub mod functions;
pub mod pyfmt;
pub mod remote;
pub mod series;

pub use eval::{Context, Limits, Value};
pub use series::TimeSeries;

/// Why a render failed; every variant is the client's doing (HTTP 400) except [`RenderError::Storage`].
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The target does not parse.
    #[error("invalid target: {0}")]
    Parse(#[from] carbide_query::ParseError),
    /// A function graphite-web has that this evaluator does not (yet), or a typo.
    #[error("Received request for unknown function: {0}")]
    UnknownFunction(String),
    /// A function was called with arguments it cannot use.
    #[error("{0}")]
    BadArgument(String),
    /// A request limit was exceeded.
    #[error("{0}")]
    Limit(String),
    /// The request ran past its time limit (HTTP 503: the server is busy, not the query wrong).
    #[error("{0}")]
    Timeout(String),
    /// Reading storage failed.
    #[error(transparent)]
    Storage(#[from] carbide_storage::StorageError),
}
