//! `from`/`until` times and interval strings, read the way graphite-web's `render/attime.py` reads them.
//!
//! The rules are quirky and users depend on them: `12am` is noon and `12pm` midnight (hour arithmetic
//! is `(h + 12) % 24` for pm only), a reference such as `now-1d+2h` fails because the split happens at the
//! first `+` before the first `-`, `jan2020` means January 20th, and an 8-digit number is a date only
//! when it looks like one (year > 1900, month < 13, day < 32); otherwise it is epoch seconds.
//!
//! Times are plain epoch seconds (`i64`). Zone offsets come from the system tz database through jiff,
//! read the way `pytz` reads it (32-bit transitions only, offsets rounded to minutes), and wall-clock
//! times are pinned to instants as `pytz`'s `localize(is_dst=False)` pins them, so the hour that a DST
//! change skips or repeats lands where graphite-web puts it.
//!
//! Known difference, outside what a person types: digits are ASCII only (Python's `int()` also reads
//! other Unicode decimal digits).

use jiff::Timestamp;
/// The zone type the parsers take, re-exported so callers need no jiff dependency of their own.
pub use jiff::tz::TimeZone;

/// Why a time or offset string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// An offset that starts with neither a digit nor a sign (`parseTimeOffset`'s `KeyError`).
    #[error("invalid offset: {0}")]
    InvalidOffset(String),
    /// An offset unit that is not a prefix graphite knows (`m`, `ms`, an empty unit).
    #[error("invalid offset unit '{0}'")]
    InvalidUnit(String),
    /// Where a number was required but none (or an unreadable one) was found.
    #[error("invalid number '{0}'")]
    InvalidNumber(String),
    /// A day reference that none of the forms match.
    #[error("unknown day reference: {0}")]
    UnknownReference(String),
    /// `jan`, `feb`, … without a day of month.
    #[error("day of month required after month name")]
    DayRequired,
    /// Fields that make no date or time (`02/30/2020`, `25:00`).
    #[error("invalid date or time: {0}")]
    InvalidDate(String),
    /// A result outside the years 1..=9999 that Python's datetime can hold.
    #[error("time out of range")]
    OutOfRange,
    /// A time zone name that the tz database lacks.
    #[error("unknown time zone '{0}'")]
    UnknownTimeZone(String),
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Python's `timedelta` holds at most 999999999 days either way; offsets beyond fail there too.
const MAX_DELTA_DAYS: i128 = 999_999_999;
/// First and last second of the years 1..=9999 that Python's datetime accepts.
const MIN_EPOCH: i64 = -62_135_596_800;
const MAX_EPOCH: i64 = 253_402_300_799;

/// Looks a time zone up by name (`Europe/Berlin`, `UTC`) in the system tz database.
pub fn time_zone(name: &str) -> Result<TimeZone, TimeError> {
    TimeZone::get(name).map_err(|_| TimeError::UnknownTimeZone(name.to_string()))
}

/// Reads a `from`/`until` value (`-1d`, `now`, `noon yesterday`, `20200101`, `1577836800`) into epoch
/// seconds, with `now` the current time and `tz` the zone that wall-clock references are read in.
pub fn parse_at_time(s: &str, now: i64, tz: &TimeZone) -> Result<i64, TimeError> {
    let cleaned: String = s
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| !matches!(c, '_' | ',' | ' '))
        .collect();
    if !cleaned.is_empty() && cleaned.chars().all(|c| c.is_ascii_digit()) && !looks_like_yyyymmdd(&cleaned) {
        let secs: i64 = cleaned.parse().map_err(|_| TimeError::OutOfRange)?;
        check_epoch(secs, tz)?;
        return Ok(secs);
    }
    let (reference, offset) = if let Some(i) = cleaned.find('+') {
        (&cleaned[..i], &cleaned[i..])
    } else if let Some(i) = cleaned.find('-') {
        (&cleaned[..i], &cleaned[i..])
    } else {
        (cleaned.as_str(), "")
    };
    let base = parse_time_reference(reference, now, tz)?;
    let delta = parse_time_offset(offset)?;
    let result = i128::from(base.instant) + i128::from(delta);
    let result = i64::try_from(result).map_err(|_| TimeError::OutOfRange)?;
    // Python adds the delta to a datetime with a fixed offset first, then normalizes into the zone:
    // both the intermediate and the final civil time must stay inside years 1..=9999.
    check_civil_range(result, base.offset_seconds)?;
    check_epoch(result, tz)?;
    Ok(result)
}

fn looks_like_yyyymmdd(digits: &str) -> bool {
    if digits.len() != 8 {
        return false;
    }
    let num = |r: std::ops::Range<usize>| digits.get(r).and_then(|d| d.parse::<u32>().ok()).unwrap_or(0);
    num(0..4) > 1900 && num(4..6) < 13 && num(6..8) < 32
}

/// The UTC offset (seconds) and DST flag that `pytz` uses for an instant. pytz reads only the 32-bit
/// part of a zone file: before its first transition (1901-12-13) it uses the zone's first standard
/// type (local mean time, rounded to whole minutes), and after 2038-01-19 the type in force then.
pub(crate) fn pytz_offset(tz: &TimeZone, secs: i64) -> (i64, bool) {
    const LO: i64 = -(1 << 31);
    const HI: i64 = (1 << 31) - 1;
    let ts = if secs < LO {
        Timestamp::MIN
    } else {
        Timestamp::from_second(secs.min(HI)).unwrap_or(Timestamp::MIN)
    };
    let info = tz.to_offset_info(ts);
    let offset = i64::from(info.offset().seconds());
    (60 * (offset + 30).div_euclid(60), info.dst().is_dst())
}

/// Fails when `secs` is outside Python's datetime range in UTC or in `tz`.
fn check_epoch(secs: i64, tz: &TimeZone) -> Result<(), TimeError> {
    check_civil_range(secs, 0)?;
    check_civil_range(secs, pytz_offset(tz, secs).0)
}

fn check_civil_range(secs: i64, offset_seconds: i64) -> Result<(), TimeError> {
    let local = i128::from(secs) + i128::from(offset_seconds);
    if (i128::from(MIN_EPOCH)..=i128::from(MAX_EPOCH)).contains(&local) {
        Ok(())
    } else {
        Err(TimeError::OutOfRange)
    }
}

/// An instant and the UTC offset that `pytz` attached to it.
struct Localized {
    instant: i64,
    offset_seconds: i64,
}

/// A naive wall-clock time to the minute (Python's naive `datetime`), kept as seconds since
/// 1970-01-01 00:00 of the same wall clock so that day arithmetic is plain addition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil(i64);

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Civil {
    /// Python's `datetime(year, month, day, hour, minute)` with its range checks.
    fn new(year: u32, month: u32, day: u32, hour: u32, minute: u32) -> Result<Civil, TimeError> {
        let (y, m, d) = (i64::from(year), i64::from(month), i64::from(day));
        if !(1..=9999).contains(&y)
            || !(1..=12).contains(&m)
            || d < 1
            || d > days_in_month(y, m)
            || hour > 23
            || minute > 59
        {
            return Err(TimeError::InvalidDate(format!(
                "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}"
            )));
        }
        Ok(Civil(
            days_from_civil(y, m, d) * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60,
        ))
    }

    fn from_instant(secs: i64, offset: i64) -> Civil {
        Civil(secs + offset)
    }

    fn ymd(self) -> (i64, i64, i64) {
        civil_from_days(self.0.div_euclid(86_400))
    }

    /// Day of week, 0 = Sunday (1970-01-01 was a Thursday).
    fn weekday(self) -> i64 {
        (self.0.div_euclid(86_400) + 4).rem_euclid(7)
    }

    fn add_days(self, days: i64) -> Result<Civil, TimeError> {
        let out = Civil(self.0 + days * 86_400);
        if (MIN_EPOCH..=MAX_EPOCH).contains(&out.0) {
            Ok(out)
        } else {
            Err(TimeError::OutOfRange)
        }
    }
}

fn parse_digits_u32(s: &[char]) -> Result<u32, TimeError> {
    let text: String = s.iter().collect();
    if s.is_empty() || !s.iter().all(|c| c.is_ascii_digit()) {
        return Err(TimeError::InvalidNumber(text));
    }
    // Python's int() has no limit; anything this large fails as a date later anyway.
    Ok(text.parse::<u32>().unwrap_or(u32::MAX))
}

fn find(hay: &[char], needle: &str) -> Option<usize> {
    let n: Vec<char> = needle.chars().collect();
    if n.len() > hay.len() {
        return None;
    }
    (0..=hay.len() - n.len()).find(|&i| hay[i..i + n.len()] == n[..])
}

fn starts_with(hay: &[char], needle: &str) -> bool {
    let n: Vec<char> = needle.chars().collect();
    hay.len() >= n.len() && hay[..n.len()] == n[..]
}

fn to_u32(v: i64) -> Result<u32, TimeError> {
    u32::try_from(v).map_err(|_| TimeError::OutOfRange)
}

fn parse_time_reference(reference: &str, now: i64, tz: &TimeZone) -> Result<Localized, TimeError> {
    check_epoch(now, tz)?;
    let now_offset = pytz_offset(tz, now).0;
    if reference.is_empty() || reference == "now" {
        return Ok(Localized {
            instant: now,
            offset_seconds: now_offset,
        });
    }
    let now_local = Civil::from_instant(now, now_offset);
    let raw = reference;
    let mut r: Vec<char> = reference.chars().collect();
    let (mut hour, mut minute) = (0u32, 0u32);

    // HH:MM, optionally followed by am/pm.
    if let Some(i) = r.iter().position(|&c| c == ':')
        && 0 < i
        && i < 3
    {
        hour = parse_digits_u32(&r[..i])?;
        let end = (i + 3).min(r.len());
        minute = parse_digits_u32(&r[(i + 1).min(r.len())..end])?;
        r = r[end..].to_vec();
        if starts_with(&r, "am") {
            r.drain(..2);
        } else if starts_with(&r, "pm") {
            hour = (hour + 12) % 24;
            r.drain(..2);
        }
    }
    // Xam / XXam: the hour is taken as written (12am is noon, as in graphite-web).
    if let Some(i) = find(&r, "am")
        && 0 < i
        && i < 3
    {
        hour = parse_digits_u32(&r[..i])?;
        r.drain(..i + 2);
    }
    if let Some(i) = find(&r, "pm")
        && 0 < i
        && i < 3
    {
        hour = (parse_digits_u32(&r[..i])? + 12) % 24;
        r.drain(..i + 2);
    }
    for (word, h) in [("noon", 12), ("midnight", 0), ("teatime", 16)] {
        if starts_with(&r, word) {
            hour = h;
            minute = 0;
            r.drain(..word.chars().count());
            break;
        }
    }
    let (ty, tm, td) = now_local.ymd();
    let mut ref_date = Civil::new(to_u32(ty)?, to_u32(tm)?, to_u32(td)?, hour, minute)?;
    let rest: String = r.iter().collect();
    let digits_only = !r.is_empty() && r.iter().all(|c| c.is_ascii_digit());
    let first3: String = r.iter().take(3).collect();

    if rest == "yesterday" || rest == "today" || rest == "tomorrow" {
        let days = match rest.as_str() {
            "yesterday" => -1,
            "tomorrow" => 1,
            _ => 0,
        };
        ref_date = ref_date.add_days(days)?;
    } else if r.iter().filter(|&&c| c == '/').count() == 2 {
        let parts: Vec<&[char]> = r.split(|&c| c == '/').collect();
        let (m, d, y) = match parts.as_slice() {
            [m, d, y] => (parse_digits_u32(m)?, parse_digits_u32(d)?, parse_digits_u32(y)?),
            _ => return Err(TimeError::UnknownReference(raw.to_string())),
        };
        let mut y = y;
        if y < 1900 {
            y += 1900;
        }
        if y < 1970 {
            y += 100;
        }
        ref_date = Civil::new(y, m, d, hour, minute)?;
    } else if r.len() == 8 && digits_only {
        let y = parse_digits_u32(&r[..4])?;
        let m = parse_digits_u32(&r[4..6])?;
        let d = parse_digits_u32(&r[6..8])?;
        ref_date = Civil::new(y, m, d, hour, minute)?;
    } else if let Some(mi) = MONTHS.iter().position(|&m| m == first3) {
        let n = r.len();
        let is_digit = |c: &char| c.is_ascii_digit();
        let day = if n >= 2 && r[n - 2..].iter().all(is_digit) {
            parse_digits_u32(&r[n - 2..])?
        } else if n >= 1 && r[n - 1..].iter().all(is_digit) {
            parse_digits_u32(&r[n - 1..])?
        } else {
            return Err(TimeError::DayRequired);
        };
        ref_date = Civil::new(to_u32(ref_date.ymd().0)?, mi as u32 + 1, day, hour, minute)?;
    } else if let Some(target) = WEEKDAYS.iter().position(|&w| w == first3) {
        let mut offset = ref_date.weekday() - target as i64;
        if offset < 0 {
            offset += 7;
        }
        ref_date = ref_date.add_days(-offset)?;
    } else if !r.is_empty() {
        return Err(TimeError::UnknownReference(raw.to_string()));
    }
    localize(tz, ref_date)
}

/// Pins a wall-clock time in `tz` to an instant as `pytz`'s `localize(dt, is_dst=False)` does: the
/// offsets in force a day either side are tried; in a gap the time is read six hours earlier and moved
/// back (so the offset from before the change applies); in a fold the non-DST reading wins, else the
/// later instant.
fn localize(tz: &TimeZone, dt: Civil) -> Result<Localized, TimeError> {
    if tz.following(Timestamp::MIN).next().is_none() {
        // A zone without transitions (UTC, Etc/GMT+5) is a fixed offset: pytz's StaticTzInfo.
        let offset = pytz_offset(tz, dt.0).0;
        return Ok(Localized {
            instant: dt.0 - offset,
            offset_seconds: offset,
        });
    }
    // pytz probes a day either side with datetime arithmetic, which overflows near years 1 and 9999.
    let in_range = |c: i64| (MIN_EPOCH..=MAX_EPOCH).contains(&c);
    if !in_range(dt.0 - 86_400) || !in_range(dt.0 + 86_400) {
        return Err(TimeError::OutOfRange);
    }
    let candidates = |dt: Civil| -> Vec<(i64, i64, bool)> {
        let mut found: Vec<(i64, i64, bool)> = Vec::new();
        for probe in [dt.0 - 86_400, dt.0 + 86_400] {
            let (offset, _) = pytz_offset(tz, probe);
            let instant = dt.0 - offset;
            let (actual, dst) = pytz_offset(tz, instant);
            if actual == offset && !found.iter().any(|c| c.0 == instant) {
                found.push((instant, offset, dst));
            }
        }
        found
    };
    let mut found = candidates(dt);
    let mut shift = 0;
    if found.is_empty() {
        shift = 6 * 3600;
        found = candidates(Civil(dt.0 - shift));
    }
    let non_dst: Vec<&(i64, i64, bool)> = found.iter().filter(|c| !c.2).collect();
    let pick = if non_dst.len() == 1 {
        Some(*non_dst[0])
    } else {
        found.iter().copied().max_by_key(|c| c.0)
    };
    match pick {
        Some((instant, offset, _)) => Ok(Localized {
            instant: instant + shift,
            offset_seconds: offset,
        }),
        None => Err(TimeError::OutOfRange),
    }
}

/// Reads an offset such as `-1d`, `+2h30min`, `5min` (unsigned means forward) into seconds, exactly as
/// `parseTimeOffset` does, case-sensitively and with no whitespace handling: months are 30 days and
/// years 365, and a unit is matched by prefix (`s`, `min`, `h`, `d`, `w`, `mon`, `y`). `summarize`,
/// `hitcount`, `smartSummarize` and `holtWinters*` use this signed value as it is.
pub fn parse_time_offset(offset: &str) -> Result<i64, TimeError> {
    let chars: Vec<char> = offset.chars().collect();
    let Some(&first) = chars.first() else {
        return Ok(0);
    };
    let (sign, mut rest): (i128, &[char]) = if first.is_ascii_digit() {
        (1, &chars[..])
    } else {
        match first {
            '+' => (1, &chars[1..]),
            '-' => (-1, &chars[1..]),
            _ => return Err(TimeError::InvalidOffset(offset.to_string())),
        }
    };
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let number: String = rest[..digits].iter().collect();
        if number.is_empty() {
            return Err(TimeError::InvalidNumber(rest.iter().collect()));
        }
        // Beyond i128 Python overflows timedelta as well.
        let num: i128 = number.parse().map_err(|_| TimeError::OutOfRange)?;
        rest = &rest[digits..];
        let letters = rest.iter().take_while(|c| c.is_alphabetic()).count();
        let unit: String = rest[..letters].iter().collect();
        rest = &rest[letters..];
        let seconds_per = unit_seconds(&unit)?;
        let term = (sign * num)
            .checked_mul(seconds_per)
            .ok_or(TimeError::OutOfRange)?;
        check_timedelta(term)?;
        total = total.checked_add(term).ok_or(TimeError::OutOfRange)?;
        check_timedelta(total)?;
    }
    i64::try_from(total).map_err(|_| TimeError::OutOfRange)
}

/// A unit of `parseTimeOffset`, as `getUnitString` names it; `smartSummarize(alignTo=...)` picks one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// `s…`
    Seconds,
    /// `min…`
    Minutes,
    /// `h…`
    Hours,
    /// `d…`
    Days,
    /// `w…`
    Weeks,
    /// `mon…`, counted as 30 days in offsets.
    Months,
    /// `y…`, counted as 365 days in offsets.
    Years,
}

impl TimeUnit {
    /// The unit's length in offsets (a month is 30 days, a year 365, as graphite-web counts them).
    pub fn seconds(self) -> i64 {
        match self {
            TimeUnit::Seconds => 1,
            TimeUnit::Minutes => 60,
            TimeUnit::Hours => 3600,
            TimeUnit::Days => 86_400,
            TimeUnit::Weeks => 7 * 86_400,
            TimeUnit::Months => 30 * 86_400,
            TimeUnit::Years => 365 * 86_400,
        }
    }
}

/// `getUnitString`: a unit by prefix, checked in graphite's order (`min` before `mon`, so `m` alone
/// and `mo` are errors, and `ms` is too).
pub fn unit_of(unit: &str) -> Result<TimeUnit, TimeError> {
    Ok(if unit.starts_with('s') {
        TimeUnit::Seconds
    } else if unit.starts_with("min") {
        TimeUnit::Minutes
    } else if unit.starts_with('h') {
        TimeUnit::Hours
    } else if unit.starts_with('d') {
        TimeUnit::Days
    } else if unit.starts_with('w') {
        TimeUnit::Weeks
    } else if unit.starts_with("mon") {
        TimeUnit::Months
    } else if unit.starts_with('y') {
        TimeUnit::Years
    } else {
        return Err(TimeError::InvalidUnit(unit.to_string()));
    })
}

fn unit_seconds(unit: &str) -> Result<i128, TimeError> {
    unit_of(unit).map(|u| i128::from(u.seconds()))
}

fn check_timedelta(seconds: i128) -> Result<(), TimeError> {
    let days = seconds.div_euclid(86_400);
    if (-MAX_DELTA_DAYS..=MAX_DELTA_DAYS).contains(&days) {
        Ok(())
    } else {
        Err(TimeError::OutOfRange)
    }
}

/// Reads the interval argument of `timeShift`/`timeStack` (`"1d"`): a leading digit means backwards,
/// so `1d` is −86400 s while `+1d` is forward, as graphite-web prefixes `-` before `parseTimeOffset`.
pub fn parse_shift_interval(s: &str) -> Result<i64, TimeError> {
    match s.chars().next() {
        None => Err(TimeError::InvalidOffset(String::new())),
        Some(c) if c.is_ascii_digit() => parse_time_offset(&format!("-{s}")),
        Some(_) => parse_time_offset(s),
    }
}

/// Reads a window or bucket size (`movingAverage(x, '5min')`, `summarize(x, '1h')`) into its length in
/// seconds: functions take `abs()` of the parsed offset, so `-5min` is 300 as well.
pub fn parse_interval_seconds(s: &str) -> Result<i64, TimeError> {
    parse_time_offset(s).map(i64::abs)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2020-03-15 12:34:56 UTC, a Sunday.
    const NOW: i64 = 1_584_275_696;

    fn utc(s: &str) -> Result<i64, TimeError> {
        parse_at_time(s, NOW, &TimeZone::UTC)
    }

    fn at(y: u32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        Civil::new(y, mo, d, h, mi).unwrap().0
    }

    #[test]
    fn references_in_utc() {
        let cases: &[(&str, i64)] = &[
            ("now", NOW),
            ("", NOW),
            ("  NOW ", NOW),
            ("-1d", NOW - 86_400),
            ("now-1d", NOW - 86_400),
            ("now+1h", NOW + 3600),
            ("-5min", NOW - 300),
            ("-2w", NOW - 14 * 86_400),
            ("-1mon", NOW - 30 * 86_400),
            ("-1y", NOW - 365 * 86_400),
            ("-1h30min", NOW - 5400),
            ("1584275696", NOW),
            ("0", 0),
            ("20200101", at(2020, 1, 1, 0, 0)),
            ("19000101", 19_000_101),
            ("20201301", 20_201_301),
            ("noon", at(2020, 3, 15, 12, 0)),
            ("midnight", at(2020, 3, 15, 0, 0)),
            ("teatime", at(2020, 3, 15, 16, 0)),
            ("noon yesterday", at(2020, 3, 14, 12, 0)),
            ("midnight tomorrow", at(2020, 3, 16, 0, 0)),
            ("today", at(2020, 3, 15, 0, 0)),
            ("yesterday", at(2020, 3, 14, 0, 0)),
            ("9am", at(2020, 3, 15, 9, 0)),
            ("12am", at(2020, 3, 15, 12, 0)),
            ("12pm", at(2020, 3, 15, 0, 0)),
            ("3pm", at(2020, 3, 15, 15, 0)),
            ("13pm", at(2020, 3, 15, 1, 0)),
            ("10:30", at(2020, 3, 15, 10, 30)),
            ("10:30pm", at(2020, 3, 15, 22, 30)),
            ("10:30_20200102", at(2020, 1, 2, 10, 30)),
            ("01/02/2020", at(2020, 1, 2, 0, 0)),
            ("01/02/20", at(2020, 1, 2, 0, 0)),
            ("01/02/70", at(1970, 1, 2, 0, 0)),
            ("01/02/69", at(2069, 1, 2, 0, 0)),
            ("jan1", at(2020, 1, 1, 0, 0)),
            ("January 15", at(2020, 1, 15, 0, 0)),
            ("jan2020", at(2020, 1, 20, 0, 0)),
            ("sunday", at(2020, 3, 15, 0, 0)),
            ("monday", at(2020, 3, 9, 0, 0)),
            ("sat", at(2020, 3, 14, 0, 0)),
            ("noon+1d", at(2020, 3, 16, 12, 0)),
            ("now+", NOW),
            ("-", NOW),
        ];
        for (input, want) in cases {
            assert_eq!(utc(input), Ok(*want), "{input:?}");
        }
    }

    #[test]
    fn errors() {
        for bad in [
            "now-1m",
            "now-1",
            "-1ms",
            "now-1d+2h",
            "jan",
            "foo",
            "25:00",
            "10:61",
            "02/30/2020",
            "20200230",
            "24:00",
            "now*1d",
            "-d",
            "99999999999999999999",
            "-1000000000000d",
        ] {
            assert!(utc(bad).is_err(), "{bad:?} should fail, got {:?}", utc(bad));
        }
    }

    #[test]
    fn offsets() {
        let cases: &[(&str, Result<i64, ()>)] = &[
            ("", Ok(0)),
            ("5min", Ok(300)),
            ("+5minutes", Ok(300)),
            ("-5seconds", Ok(-5)),
            ("1h1min1s", Ok(3661)),
            ("-1h1min", Ok(-3660)),
            ("1mon", Ok(2_592_000)),
            ("1month", Ok(2_592_000)),
            ("1m", Err(())),
            ("1mo", Err(())),
            ("1", Err(())),
            ("h", Err(())),
            ("1H", Err(())),
            ("x", Err(())),
            ("1h-1h", Err(())),
        ];
        for (input, want) in cases {
            assert_eq!(parse_time_offset(input).map_err(|_| ()), *want, "{input:?}");
        }
    }

    #[test]
    fn graphite_web_test_suite_facts() {
        // Leap years: -1year from 2016-02-29 is 2015-03-01; -1month is 30 days.
        let leap = at(2016, 2, 29, 0, 0);
        assert_eq!(
            parse_at_time("-1year", leap, &TimeZone::UTC),
            Ok(at(2015, 3, 1, 0, 0))
        );
        assert_eq!(
            parse_at_time("-4years", leap, &TimeZone::UTC),
            Ok(at(2012, 3, 1, 0, 0))
        );
        assert_eq!(
            parse_at_time("-1month", leap, &TimeZone::UTC),
            Ok(at(2016, 1, 30, 0, 0))
        );
        // DST in Los Angeles on 2015-03-08: midnight+3h is 04:00 PDT (11:00 UTC).
        let la = time_zone("America/Los_Angeles").unwrap();
        let now = at(2015, 3, 8, 19, 0);
        assert_eq!(parse_at_time("midnight+3h", now, &la), Ok(at(2015, 3, 8, 11, 0)));
        assert_eq!(
            parse_at_time("midnight_tomorrow+3h", now, &la),
            Ok(at(2015, 3, 9, 10, 0))
        );
        assert_eq!(
            parse_at_time("12:0020150308", now, &la),
            Ok(at(2015, 3, 8, 19, 0))
        );
        // Monday before 2015-01-01 (a Thursday).
        let now = at(2015, 1, 1, 11, 0);
        assert_eq!(
            parse_at_time("monday", now, &TimeZone::UTC),
            Ok(at(2014, 12, 29, 0, 0))
        );
        assert_eq!(
            parse_at_time("02/25/15", now, &TimeZone::UTC),
            Ok(at(2015, 2, 25, 0, 0))
        );
        assert!(parse_at_time("january800", now, &TimeZone::UTC).is_err());
        assert!(parse_at_time("noon+yesterday", now, &TimeZone::UTC).is_err());
        assert!(parse_at_time(":", now, &TimeZone::UTC).is_err());
    }

    #[test]
    fn units_by_prefix() {
        assert_eq!(unit_of("minutes"), Ok(TimeUnit::Minutes));
        assert_eq!(unit_of("months"), Ok(TimeUnit::Months));
        assert_eq!(unit_of("sec"), Ok(TimeUnit::Seconds));
        assert!(unit_of("m").is_err());
        assert!(unit_of("mo").is_err());
        assert!(unit_of("").is_err());
        assert_eq!(TimeUnit::Years.seconds(), 31_536_000);
    }

    #[test]
    fn shift_interval_defaults_backwards() {
        assert_eq!(parse_shift_interval("1d"), Ok(-86_400));
        assert_eq!(parse_shift_interval("-1d"), Ok(-86_400));
        assert_eq!(parse_shift_interval("+1d"), Ok(86_400));
        assert!(parse_shift_interval("").is_err());
        assert_eq!(parse_interval_seconds("-5min"), Ok(300));
    }

    #[test]
    fn berlin_dst_gap_and_fold() {
        let tz = time_zone("Europe/Berlin").unwrap();
        // 2020-03-29 02:30 does not exist in Berlin: pytz reads it with the winter offset (+01:00).
        let now = at(2020, 3, 29, 12, 0);
        assert_eq!(parse_at_time("02:30", now, &tz), Ok(at(2020, 3, 29, 1, 30)));
        // 2020-10-25 02:30 happens twice: pytz picks the winter (non-DST) one, 01:30 UTC.
        let now = at(2020, 10, 25, 12, 0);
        assert_eq!(parse_at_time("02:30", now, &tz), Ok(at(2020, 10, 25, 1, 30)));
        assert_eq!(parse_at_time("midnight", now, &tz), Ok(at(2020, 10, 24, 22, 0)));
        assert!(time_zone("Not/AZone").is_err());
    }
}
