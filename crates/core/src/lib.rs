//! Carbide's shared vocabulary: the small value types every role speaks in.
//!
//! Nothing here does IO, so every parser in this crate can be property-tested and fuzzed.
//!
//! # Layout
//! - [`retention`]: `60s:7d` retention definitions, as whisper.py's `parseRetentionDef` reads them.
//! - [`aggregation`]: the eight whisper aggregation methods and their on-disk ids.
//! - [`name`]: metric-name checks that run before a name is allowed to touch the filesystem.

pub mod aggregation;
pub mod name;
pub mod retention;

pub use aggregation::AggregationMethod;
pub use retention::Retention;
