//! Carbon's wire formats as pure codecs: bytes in, typed values or typed errors out.
//!
//! Every listener of carbon-cache, carbon-relay and carbon-aggregator speaks one of these, and
//! graphite-web speaks carbonlink to the cache. Each codec follows what carbon 1.1 (under
//! Python 3) actually does, down to Python's `float()` syntax and `str.split()` whitespace, and
//! each error says what carbon itself would do with such input, so the server can be exactly as
//! forgiving as carbon, or choose to be safer. Nothing here does IO, so all of it can be
//! property-tested and fuzzed, and every decoder is bounded against hostile input.
//!
//! # Layout
//! - [`line`](mod@line): the plaintext protocol (`metric value timestamp`), a zero-copy line splitter with
//!   a length limit, and UDP datagram splitting.
//! - [`framing`]: 4-byte big-endian length-prefixed frames (pickle port 2004, carbonlink 7002).
//! - [`pickle`]: a safe, bounded pickle VM (protocols 0–5, no classes ever) and an encoder.
//! - [`points`]: the pickle receiver's `[(path, (timestamp, value)), …]` payload.
//! - [`carbonlink`]: carbonlink requests and replies.
//! - [`protobuf`]: the protobuf receiver's `carbon.Payload` (port 2005), decoded by hand.
//! - [`tags`]: tagged series names (`name;tag=value`, `name{tag="value"}`), normal form and
//!   on-disk path.
//! - [`pyfloat`]: Python's `float()` and whitespace rules, which the others share.

pub mod carbonlink;
pub mod framing;
pub mod line;
pub mod pickle;
pub mod points;
pub mod protobuf;
pub mod pyfloat;
pub mod tags;

pub use line::{CarbonAction, LineError, LinePoint, LineSplitter, parse_line};
pub use pickle::{PickleError, Value};
