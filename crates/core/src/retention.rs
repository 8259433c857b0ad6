//! Retention definitions (`precision:duration`), read exactly as whisper.py's `parseRetentionDef`.
//!
//! Both sides take a bare integer (seconds for the precision, a point count for the duration) or an
//! integer followed by a unit. A unit is any prefix of `seconds`, `minutes`, `hours`, `days`, `weeks` or
//! `years`, tried in that order, so `m` means minutes and `mo` is an error, as in whisper.

use std::fmt;
use std::str::FromStr;

/// One whisper archive: how many seconds one point covers, and how many points are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Retention {
    /// Seconds covered by one point (the archive's step).
    pub seconds_per_point: u32,
    /// Number of points the archive holds before it wraps.
    pub points: u32,
}

/// Why a retention definition was refused; the texts match whisper.py's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    /// No `:` separates the precision from the duration.
    #[error("Invalid retention definition '{0}'")]
    Definition(String),
    /// The precision is neither an integer nor an integer with a unit.
    #[error("Invalid precision specification '{0}'")]
    Precision(String),
    /// The duration is neither an integer nor an integer with a unit.
    #[error("Invalid retention specification '{0}'")]
    Points(String),
    /// A unit that is no prefix of seconds, minutes, hours, days, weeks or years.
    #[error("Invalid unit '{0}'")]
    Unit(String),
    /// Zero seconds per point, or zero points: no archive can hold that.
    #[error("Invalid retention definition '{0}': precision and point count must be positive")]
    Zero(String),
    /// The numbers do not fit whisper's 32-bit header fields.
    #[error("Invalid retention definition '{0}': value too large for a whisper header")]
    TooLarge(String),
}

/// Seconds in one unit, for a unit string as whisper.py's `getUnitString` resolves it.
pub fn unit_seconds(unit: &str) -> Result<u64, RetentionError> {
    const UNITS: [(&str, u64); 6] = [
        ("seconds", 1),
        ("minutes", 60),
        ("hours", 3600),
        ("days", 86400),
        ("weeks", 86400 * 7),
        ("years", 86400 * 365),
    ];
    UNITS
        .iter()
        .find(|(name, _)| name.starts_with(unit))
        .map(|&(_, secs)| secs)
        .ok_or_else(|| RetentionError::Unit(unit.to_string()))
}

/// Splits `123abc` into (123, "abc"); `None` unless it is digits then lowercase letters.
fn number_and_unit(s: &str) -> Option<(u64, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let (num, unit) = s.split_at(digits);
    if !unit.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    Some((num.parse().ok()?, unit))
}

impl Retention {
    /// Seconds of history this archive keeps.
    pub fn retention_seconds(&self) -> u64 {
        u64::from(self.seconds_per_point) * u64::from(self.points)
    }

    /// Parses one `precision:duration` definition, e.g. `60s:7d`, `1m:1y` or `10:8640`.
    pub fn parse(def: &str) -> Result<Self, RetentionError> {
        let trimmed = def.trim();
        let (precision, points) = trimmed
            .split_once(':')
            .ok_or_else(|| RetentionError::Definition(def.to_string()))?;
        let too_large = || RetentionError::TooLarge(def.to_string());

        let spp = match number_and_unit(precision) {
            Some((n, "")) => n,
            Some((n, unit)) => n.checked_mul(unit_seconds(unit)?).ok_or_else(too_large)?,
            None => return Err(RetentionError::Precision(precision.to_string())),
        };
        if spp == 0 {
            return Err(RetentionError::Zero(def.to_string()));
        }
        let count = match number_and_unit(points) {
            Some((n, "")) => n,
            Some((n, unit)) => n.checked_mul(unit_seconds(unit)?).ok_or_else(too_large)? / spp,
            None => return Err(RetentionError::Points(points.to_string())),
        };
        if count == 0 {
            return Err(RetentionError::Zero(def.to_string()));
        }
        Ok(Retention {
            seconds_per_point: u32::try_from(spp).map_err(|_| too_large())?,
            points: u32::try_from(count).map_err(|_| too_large())?,
        })
    }

    /// Parses a comma-separated list such as storage-schemas.conf's `retentions = 10s:6h,1m:7d`.
    pub fn parse_list(defs: &str) -> Result<Vec<Self>, RetentionError> {
        defs.split(',').map(Self::parse).collect()
    }
}

impl FromStr for Retention {
    type Err = RetentionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seconds_per_point, self.points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(spp: u32, points: u32) -> Retention {
        Retention {
            seconds_per_point: spp,
            points,
        }
    }

    #[test]
    fn whisper_examples() {
        assert_eq!(Retention::parse("60:1440"), Ok(r(60, 1440)));
        assert_eq!(Retention::parse("60s:7d"), Ok(r(60, 10080)));
        assert_eq!(Retention::parse("1m:1y"), Ok(r(60, 525600)));
        assert_eq!(Retention::parse("10s:6h"), Ok(r(10, 2160)));
        assert_eq!(Retention::parse(" 1h:5w "), Ok(r(3600, 840)));
        assert_eq!(Retention::parse("1min:1d"), Ok(r(60, 1440)));
        // 7 days at 7-minute steps: floor division, as whisper does it.
        assert_eq!(Retention::parse("7m:1d"), Ok(r(420, 205)));
    }

    #[test]
    fn bad_definitions_are_typed_errors() {
        assert!(matches!(
            Retention::parse("60"),
            Err(RetentionError::Definition(_))
        ));
        assert!(matches!(
            Retention::parse("x:60"),
            Err(RetentionError::Precision(_))
        ));
        assert!(matches!(Retention::parse("60:"), Err(RetentionError::Points(_))));
        assert!(matches!(Retention::parse("60:1mo"), Err(RetentionError::Unit(_))));
        assert!(matches!(
            Retention::parse("60:1D"),
            Err(RetentionError::Points(_))
        ));
        assert!(matches!(Retention::parse("0:60"), Err(RetentionError::Zero(_))));
        assert!(matches!(Retention::parse("0s:1d"), Err(RetentionError::Zero(_))));
        assert!(matches!(Retention::parse("1d:1h"), Err(RetentionError::Zero(_))));
        assert!(matches!(
            Retention::parse("1:99999999999"),
            Err(RetentionError::TooLarge(_))
        ));
        assert!(matches!(
            Retention::parse("99999999999999999y:1"),
            Err(RetentionError::TooLarge(_))
        ));
    }

    #[test]
    fn lists() {
        assert_eq!(
            Retention::parse_list("10s:6h,1m:7d"),
            Ok(vec![r(10, 2160), r(60, 10080)])
        );
        assert!(Retention::parse_list("10s:6h,,1m:7d").is_err());
    }

    proptest! {
        #[test]
        fn display_round_trips(spp in 1u32.., points in 1u32..) {
            let ret = r(spp, points);
            prop_assert_eq!(Retention::parse(&ret.to_string()), Ok(ret));
        }

        #[test]
        fn never_panics(s in ".{0,24}") {
            let _ = Retention::parse(&s);
        }
    }
}
