//! carbon's configuration files, read exactly as carbon reads them, then checked and typed.
//!
//! Carbide is a drop-in for carbon, so an operator's existing `/etc/carbon` must mean the same
//! thing here. Each file goes through two stages (ripgrep's habit): a faithful reading of the raw
//! text with carbon's own rules (Python's ConfigParser, carbon's line-based readers, Python `re`),
//! then validation into typed settings. Every problem is a [`ConfigError`] that prints as
//! `file:line: problem`; things carbon tolerates (unknown keys, skipped sections) come back as
//! [`Warning`]s. Parsers take a file name and its text and do no IO; [`load`] is the one thin
//! helper that reads a file.
//!
//! # Layout
//! - [`ini`] — Python 3's `configparser` (sections, DEFAULT, `=`/`:`, comments, continuation lines,
//!   `%(x)s` interpolation) and carbon's `OrderedConfigParser` section order.
//! - [`pyvalue`] — Python's `int()`, `float()`, `strip()` and `getboolean` on strings.
//! - [`pyre`] — Python `re` patterns and `re.sub` replacements on Rust's regex engines; what is
//!   supported is listed there.
//! - [`carbon_conf`] — carbon.conf: conf.py's defaults, `[cache]`/`[relay]`/`[aggregator]` and
//!   their `:instance` sections, derived paths, typed [`CarbonSettings`].
//! - [`destination`] — `host:port[:instance]` (DESTINATIONS, relay rules, CARBONLINK_HOSTS).
//! - [`schemas`] — storage-schemas.conf and storage-aggregation.conf, carbon's retention syntax and
//!   whisper's archive-list rules.
//! - [`lists`] — whitelist.conf and blacklist.conf.
//! - [`relay_rules`] — relay-rules.conf, rules in order, the default last.
//! - [`aggregation_rules`] — aggregation-rules.conf: input pattern → regex, output names, methods.
//! - [`rewrite`] — rewrite-rules.conf's `[pre]` and `[post]` rulesets.
//! - [`error`] — [`ConfigError`] and [`Warning`].

pub mod aggregation_rules;
pub mod carbon_conf;
pub mod destination;
pub mod error;
pub mod ini;
pub mod lists;
pub mod pyre;
pub mod pyvalue;
pub mod relay_rules;
pub mod rewrite;
pub mod schemas;

pub use aggregation_rules::{AggregationRule, RuleMethod, parse_aggregation_rules};
pub use carbon_conf::{CarbonSettings, ConfigEnv, parse_carbon_conf};
pub use destination::{Destination, parse_destination};
pub use error::{ConfigError, Warning};
pub use lists::{RegexList, parse_regex_list};
pub use pyre::{PyRegex, RegexError};
pub use relay_rules::{RelayRules, parse_relay_rules};
pub use rewrite::{RewriteRules, parse_rewrite_rules};
pub use schemas::{AggregationSchemas, StorageSchemas, parse_storage_aggregation, parse_storage_schemas};

/// Reads a config file as UTF-8 text, with the error in the same `file:line: problem` shape
/// (line 0); the one function in this crate that touches the filesystem.
pub fn load(path: &std::path::Path) -> Result<String, ConfigError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ConfigError::new(&name, 0, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        ConfigError::new(&name, line, "not valid UTF-8")
    })
}
