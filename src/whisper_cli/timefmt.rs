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

/// Rewrites a glibc strftime format into jiff's dialect: directives only jiff knows (`%Q`, `%q`, `%N`,
/// `%f`, `%.f`, `%:z`, …) are escaped so they print literally, as glibc prints what it does not know;
/// the `E`/`O` locale modifiers are dropped (the C locale ignores them); glibc's `#` (swap case) on
/// names becomes jiff's `^` (upper case).
fn glibc_to_jiff(format: &str) -> String {
    let chars: Vec<char> = format.chars().collect();
    let mut out = String::with_capacity(format.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let mut flags = String::new();
        while let Some(&c) = chars.get(j).filter(|c| "_-0^#".contains(**c)) {
            flags.push(c);
            j += 1;
        }
        let mut width = String::new();
        while let Some(&c) = chars.get(j).filter(|c| c.is_ascii_digit()) {
            width.push(c);
            j += 1;
        }
        if chars.get(j).is_some_and(|c| matches!(c, 'E' | 'O'))
            && chars.get(j + 1).is_some_and(char::is_ascii_alphabetic)
        {
            j += 1;
        }
        match chars.get(j) {
            None => {
                out.extend(&chars[i..]);
                break;
            }
            Some('Q' | 'q' | 'N' | 'f' | '.' | ':') => {
                out.push_str("%%");
                i += 1;
                continue;
            }
            Some(&c) => {
                if "aAbBh".contains(c) {
                    flags = flags.replace('#', "^");
                }
                out.push('%');
                out.push_str(&flags);
                out.push_str(&width);
                out.push(c);
            }
        }
        i = j + 1;
    }
    out
}

/// `time.strftime(format, time.localtime(t))` with glibc's C-locale behaviour.
pub fn strftime(format: &str, t: i64) -> Result<String, String> {
    let ts = Timestamp::from_second(t).map_err(|e| format!("timestamp {t} out of range: {e}"))?;
    let zoned = ts.to_zoned(zone().clone());
    let config = Config::new().custom(PosixCustom::new()).lenient(true);
    BrokenDownTime::from(&zoned)
        .to_string_with_config(&config, glibc_to_jiff(format))
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

    #[test]
    fn glibc_dialect() {
        assert_eq!(
            glibc_to_jiff("%Q|%q|%N|%f|%:z|%.f|%z"),
            "%%Q|%%q|%%N|%%f|%%:z|%%.f|%z"
        );
        assert_eq!(
            glibc_to_jiff("%Ey %Od %#b %#p %-d %_5H %"),
            "%y %d %^b %#p %-d %_5H %"
        );
        assert_eq!(glibc_to_jiff("plain %E|"), "plain %E|");
    }
}
