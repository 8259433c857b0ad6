//! Local-time rendering for `--pretty`: Python's `time.ctime()` and `time.strftime()` in the C locale.
//!
//! The time zone is the system's as the C library would pick it (the `TZ` variable, else
//! /etc/localtime), so `TZ=UTC carbide whisper fetch --pretty` and the Python script agree.

use std::sync::OnceLock;

use jiff::Timestamp;
use jiff::fmt::strtime::{BrokenDownTime, Config, PosixCustom};
use jiff::tz::TimeZone;

fn zone() -> &'static TimeZone {
    static ZONE: OnceLock<TimeZone> = OnceLock::new();
    ZONE.get_or_init(TimeZone::system)
}

/// `time.strftime(format, time.localtime(t))`; unknown directives are copied as glibc does.
pub fn strftime(format: &str, t: i64) -> Result<String, String> {
    let ts = Timestamp::from_second(t).map_err(|e| format!("timestamp {t} out of range: {e}"))?;
    let zoned = ts.to_zoned(zone().clone());
    let config = Config::new().custom(PosixCustom::new()).lenient(true);
    BrokenDownTime::from(&zoned)
        .to_string_with_config(&config, format)
        .map_err(|e| e.to_string())
}

/// `time.ctime(t)`: `Thu Jan  1 00:00:00 1970`.
pub fn ctime(t: i64) -> Result<String, String> {
    strftime("%a %b %e %H:%M:%S %Y", t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_the_c_locale() {
        // Offsets vary with the machine's zone; the layout does not.
        let s = ctime(0).unwrap();
        assert_eq!(s.len(), 24, "{s}");
        assert!(s.ends_with("1970") || s.ends_with("1969"), "{s}");
        assert_eq!(strftime("%%", 0).as_deref(), Ok("%"));
        assert_eq!(strftime("%s", 1_700_000_000).as_deref(), Ok("1700000000"));
    }
}
