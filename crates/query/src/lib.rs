//! The render API's little languages, parsed without IO: `from`/`until` times, target expressions,
//! metric-path globs and `seriesByTag` expressions, each read the way graphite-web 1.1.8 reads them.
//!
//! Graphite's parsers are lenient in ways dashboards depend on (a target that stops parsing half-way is
//! silently cut short; `12am` is noon), so every module documents the quirk it keeps, and the
//! differential tests in `tests/` run graphite-web's own code on the same inputs.
//!
//! # Layout
//! - [`attime`]: `parseATTime` / `parseTimeOffset`: references, offsets, intervals; time zones via jiff.
//! - [`grammar`]: target expression → [`grammar::Expr`] AST, `Display` back to canonical text, and the
//!   lenient prefix parse graphite-web does.
//! - [`pytime`]: pytz datetimes and `time.mktime` as graphite-web's time-aligning functions use them.
//! - [`template`]: `template(...)` expansion with request `template[...]` overrides, and the list of
//!   paths a target will fetch (for prefetching).
//! - [`glob`]: per-segment fnmatch + `{a,b}` matching of metric paths, compiled once.
//! - [`tags`]: `tag=value`, `tag!=value`, `tag=~re`, `tag!=~re` expressions of `seriesByTag`.

pub mod attime;
pub mod glob;
pub mod grammar;
pub mod pytime;
pub mod tags;
pub mod template;

pub use attime::{TimeError, TimeUnit, parse_at_time, parse_time_offset};
pub use glob::{Glob, GlobError, PathGlob};
pub use grammar::{Arg, Call, Expr, ParseError, parse_target, parse_target_lenient};
pub use tags::{TagError, TagExpr, TagOp, TagQuery};
