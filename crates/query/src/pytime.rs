//! Python datetimes as graphite-web's render functions handle them, so that the functions that read
//! or align wall-clock time (timeSlice, verticalLine, integralByInterval, linearRegression,
//! hitcount's alignToInterval, smartSummarize's alignTo, timeShift's alignDst) land on the same
//! instants.
//!
//! Two habits of graphite-web decide the results, and both are kept:
//! - `requestContext['startTime']` is a pytz datetime: an instant plus the *fixed* offset that was in
//!   force when it was parsed. `startTime + timedelta(…)` and `datetime(y, m, d, tzinfo=s.tzinfo)`
//!   keep that offset even across a DST change ([`PyDateTime::plus`], [`PyDateTime::at_wall`]).
//! - `time.mktime(dt.timetuple())` (graphite's `timestamp()`) reads the datetime's wall clock in the
//!   *process* time zone, which Django sets to `settings.TIME_ZONE`, with the datetime's DST flag as
//!   a hint ([`PyDateTime::mktime`], glibc's rules in [`mktime`]). When the request's `tz` differs
//!   from `TIME_ZONE`, the result is off by the difference of the two offsets, as in graphite-web.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};

use crate::attime::{TimeError, pytz_offset};

/// A pytz-aware datetime: an instant and the fixed UTC offset and DST flag of the tzinfo attached to
/// it, which datetime arithmetic keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PyDateTime {
    /// Epoch seconds.
    pub instant: i64,
    /// Seconds east of UTC of the attached tzinfo.
    pub offset: i64,
    /// Whether the attached tzinfo is a DST one (`dst()` non-zero, so `timetuple().tm_isdst == 1`).
    pub dst: bool,
}

impl PyDateTime {
    /// `datetime.fromtimestamp(instant, tz)` / `tz.normalize(…)`: the offset in force at the instant.
    pub fn localized(instant: i64, tz: &TimeZone) -> PyDateTime {
        let (offset, dst) = pytz_offset(tz, instant);
        PyDateTime { instant, offset, dst }
    }

    /// `dt + timedelta(seconds=delta)`: the same tzinfo, so the same offset (pytz does not normalize).
    pub fn plus(self, delta: i64) -> PyDateTime {
        PyDateTime {
            instant: self.instant + delta,
            ..self
        }
    }

    /// The naive wall clock, as seconds since 1970-01-01 00:00 of that wall clock.
    pub fn wall(self) -> i64 {
        self.instant + self.offset
    }

    /// The wall clock's fields (year, month, …, weekday).
    pub fn fields(self) -> Result<DateTime, TimeError> {
        Ok(Timestamp::from_second(self.wall())
            .map_err(|_| TimeError::OutOfRange)?
            .to_zoned(TimeZone::UTC)
            .datetime())
    }

    /// `datetime(fields…, tzinfo=self.tzinfo)`: another wall clock under this datetime's fixed offset.
    pub fn at_wall(self, wall: i64) -> PyDateTime {
        PyDateTime {
            instant: wall - self.offset,
            ..self
        }
    }

    /// [`PyDateTime::at_wall`] from civil fields.
    pub fn at_civil(self, dt: DateTime) -> Result<PyDateTime, TimeError> {
        let wall = dt
            .to_zoned(TimeZone::UTC)
            .map_err(|_| TimeError::OutOfRange)?
            .timestamp()
            .as_second();
        Ok(self.at_wall(wall))
    }

    /// `time.mktime(self.timetuple())` in a process whose `TZ` is `local`.
    pub fn mktime(self, local: &TimeZone) -> i64 {
        mktime(self.wall(), self.dst, local)
    }
}

/// The UTC offset and DST flag the C library sees at an instant.
fn local_info(tz: &TimeZone, t: i64) -> (i64, bool) {
    match Timestamp::from_second(t) {
        Ok(ts) => {
            let info = tz.to_offset_info(ts);
            (i64::from(info.offset().seconds()), info.dst().is_dst())
        }
        Err(_) => (0, false),
    }
}

/// `time.localtime(t).tm_isdst == 1` in a process whose `TZ` is `tz`.
pub fn localtime_isdst(t: i64, tz: &TimeZone) -> bool {
    local_info(tz, t).1
}

/// glibc's `mktime` of a wall clock (seconds since 1970-01-01 of that wall clock) with `tm_isdst`
/// set, in zone `tz`: a time the zone shows twice or skips takes the reading whose DST flag matches;
/// when the flag matches no reading, the offset of the nearest time (searched a week at a time, up
/// to about eight years away) that has it is used, and failing that one hour is assumed (so in UTC a
/// DST wall clock is read an hour earlier).
pub fn mktime(wall: i64, isdst: bool, tz: &TimeZone) -> i64 {
    let civil = match Timestamp::from_second(wall) {
        Ok(ts) => ts.to_zoned(TimeZone::UTC).datetime(),
        Err(_) => return wall,
    };
    let dst_at = |t: i64| local_info(tz, t).1;
    let candidates: Vec<(i64, bool)> = match tz.to_ambiguous_timestamp(civil).offset() {
        AmbiguousOffset::Unambiguous { offset } => {
            let t = wall - i64::from(offset.seconds());
            vec![(t, dst_at(t))]
        }
        AmbiguousOffset::Fold { before, after } => {
            let (b, a) = (
                wall - i64::from(before.seconds()),
                wall - i64::from(after.seconds()),
            );
            vec![(b, dst_at(b)), (a, dst_at(a))]
        }
        AmbiguousOffset::Gap { before, after } => {
            // Read with the offset from before the change, the wall clock lies after it (and the
            // other way round): each reading's flag is the one of the offset it uses.
            let (b, a) = (
                wall - i64::from(before.seconds()),
                wall - i64::from(after.seconds()),
            );
            vec![(b, dst_at(a)), (a, dst_at(b))]
        }
    };
    if let Some((t, _)) = candidates.iter().find(|(_, d)| *d == isdst) {
        return *t;
    }
    let (t, current) = candidates.first().copied().unwrap_or((wall, false));
    const STRIDE: i64 = 601_200;
    const BOUND: i64 = 536_454_000 / 2 + STRIDE;
    if tz.following(Timestamp::MIN).next().is_some() {
        let mut delta = STRIDE;
        while delta < BOUND {
            for probe in [t - delta, t + delta] {
                let (offset, d) = local_info(tz, probe);
                if d == isdst {
                    return wall - offset;
                }
            }
            delta += STRIDE;
        }
    }
    t + 3600 * (i64::from(!isdst) - i64::from(!current))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn wall(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> i64 {
        jiff::civil::datetime(y, mo, d, h, mi, 0, 0)
            .to_zoned(TimeZone::UTC)
            .unwrap()
            .timestamp()
            .as_second()
    }

    /// Python 3 / glibc: `time.mktime((y, mo, d, h, mi, 0, 0, 0, isdst))` under each TZ.
    #[test]
    fn mktime_matches_glibc() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let kolkata = TimeZone::get("Asia/Kolkata").unwrap();
        let utc = TimeZone::UTC;
        let cases: &[(&TimeZone, i64, bool, i64)] = &[
            (&utc, wall(2023, 7, 1, 12, 0), false, 1_688_212_800),
            (&utc, wall(2023, 7, 1, 12, 0), true, 1_688_209_200),
            (&ny, wall(2023, 7, 1, 12, 0), false, 1_688_230_800),
            (&ny, wall(2023, 7, 1, 12, 0), true, 1_688_227_200),
            (&ny, wall(2023, 1, 1, 12, 0), false, 1_672_592_400),
            (&ny, wall(2023, 1, 1, 12, 0), true, 1_672_588_800),
            (&ny, wall(2023, 3, 12, 2, 30), false, 1_678_606_200),
            (&ny, wall(2023, 3, 12, 2, 30), true, 1_678_602_600),
            (&ny, wall(2023, 11, 5, 1, 30), false, 1_699_165_800),
            (&ny, wall(2023, 11, 5, 1, 30), true, 1_699_162_200),
            (&kolkata, wall(2023, 7, 1, 12, 0), false, 1_688_193_000),
            (&kolkata, wall(2023, 7, 1, 12, 0), true, 1_688_189_400),
        ];
        for (tz, w, isdst, want) in cases {
            assert_eq!(mktime(*w, *isdst, tz), *want, "{w} isdst={isdst}");
        }
    }

    #[test]
    fn arithmetic_keeps_the_offset() {
        let ny = TimeZone::get("America/New_York").unwrap();
        // 2023-11-14 12:00 EST, shifted back ten days into EDT: pytz keeps -05:00.
        let dt = PyDateTime::localized(1_699_981_200, &ny);
        assert_eq!((dt.offset, dt.dst), (-5 * 3600, false));
        let back = dt.plus(-10 * 86_400);
        assert_eq!(back.offset, -5 * 3600);
        assert_eq!(back.wall(), wall(2023, 11, 4, 12, 0));
        assert_eq!(
            back.at_wall(wall(2023, 11, 4, 0, 0)).instant,
            wall(2023, 11, 4, 5, 0)
        );
        // mktime in the same zone gives the instant back; in UTC the wall clock as if it were UTC.
        assert_eq!(dt.mktime(&ny), dt.instant);
        assert_eq!(dt.mktime(&TimeZone::UTC), wall(2023, 11, 14, 12, 0));
    }
}
