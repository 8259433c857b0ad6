//! Carbon's plaintext protocol: `metric value timestamp\n`, as carbon 1.1 parses it.
//!
//! Carbon's `MetricLineReceiver.lineReceived` decodes the line as UTF-8, then runs
//! `metric, value, timestamp = line.strip().split()` and `(float(timestamp), float(value))`;
//! `MetricReceiver.metricReceived` then drops NaN values and maps a timestamp whose `int()` is -1
//! to "now". We reproduce each step, including Python's notion of whitespace and `float()` syntax,
//! and report every failure as a [`LineError`] whose [`LineError::carbon_action`] says what carbon
//! itself does with such a line, so a caller can choose to be as strict as carbon or more lenient.
//!
//! Framing is separate: [`LineSplitter`] cuts newline-framed lines out of a receive buffer
//! without copying, and [`datagram_lines`] splits a UDP datagram the way carbon's UDP listener
//! does (Python `str.splitlines()`, a different rule from TCP's).

use crate::pyfloat::{is_py_space, parse_py_float_str};
use thiserror::Error;

/// Twisted's `LineOnlyReceiver.MAX_LENGTH`, which carbon's line receiver inherits.
pub const CARBON_MAX_LINE_LENGTH: usize = 16384;

/// Carbon truncates a rejected line to this many characters when it logs it.
pub const CARBON_LOG_TRUNCATE: usize = 400;

/// One datapoint parsed from a line; the name borrows from the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinePoint<'a> {
    /// The metric name exactly as sent (not yet normalised or validated as a path).
    pub name: &'a str,
    /// The value; never NaN (NaN lines are reported as [`LineError::NanValue`]).
    pub value: f64,
    /// Seconds since the epoch; `now` when the line said -1. Fractions are kept, as carbon does.
    pub timestamp: f64,
}

/// What carbon 1.1 itself does when it meets a given bad line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CarbonAction {
    /// Logs "invalid line received" and goes on with the next line.
    SkipLogged,
    /// Drops the point without a word (NaN values).
    SkipSilently,
    /// An uncaught exception or Twisted's length check closes the connection; the rest of the
    /// data already received on it is lost.
    DropConnection,
}

/// Why a line was not turned into a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum LineError {
    /// The line is not UTF-8 (carbon's `line.decode('utf-8')` raises outside its `try`).
    #[error("line is not valid UTF-8")]
    NotUtf8,
    /// `line.strip().split()` did not give exactly metric, value and timestamp.
    #[error("expected 3 fields (metric value timestamp), got {0}")]
    FieldCount(usize),
    /// The value is not something Python's `float()` accepts.
    #[error("value is not a number")]
    BadValue,
    /// The timestamp is not something Python's `float()` accepts.
    #[error("timestamp is not a number")]
    BadTimestamp,
    /// The value is NaN, which carbon filters out silently.
    #[error("value is NaN")]
    NanValue,
    /// The timestamp is ±inf: carbon's `int(timestamp)` raises `OverflowError`, uncaught.
    #[error("timestamp is infinite")]
    TimestampInfinite,
    /// The timestamp is NaN: carbon's `int(timestamp)` raises `ValueError` (caught by the UDP
    /// listener only).
    #[error("timestamp is NaN")]
    TimestampNan,
    /// The line is longer than the configured maximum (carbon closes the connection).
    #[error("line longer than {max} bytes")]
    TooLong {
        /// The limit that was exceeded.
        max: usize,
    },
}

impl LineError {
    /// What carbon 1.1 does with a line that fails this way (TCP listener).
    pub fn carbon_action(&self) -> CarbonAction {
        match self {
            LineError::FieldCount(_) | LineError::BadValue | LineError::BadTimestamp => {
                CarbonAction::SkipLogged
            }
            LineError::NanValue => CarbonAction::SkipSilently,
            LineError::NotUtf8
            | LineError::TimestampInfinite
            | LineError::TimestampNan
            | LineError::TooLong { .. } => CarbonAction::DropConnection,
        }
    }

    /// What carbon 1.1's UDP listener does with a line of a datagram that fails this way;
    /// [`CarbonAction::DropConnection`] there means the rest of the datagram is lost (an
    /// uncaught exception), the listener itself goes on. Its `try` covers `ValueError`, so a
    /// NaN timestamp is only logged. (A datagram that is not UTF-8 is lost whole; see
    /// [`datagram_lines`].)
    pub fn carbon_udp_action(&self) -> CarbonAction {
        match self {
            LineError::TimestampNan => CarbonAction::SkipLogged,
            other => other.carbon_action(),
        }
    }
}

/// Splits `s` on runs of Python whitespace, as `str.split()` with no arguments.
pub fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|f| !f.is_empty())
}

/// The name carbon checks against its whitelist and blacklist for a line that failed with
/// `error`, so a receiver can count it there as carbon does: `Some` only for the failures carbon
/// meets after that check (protocols.py `metricReceived`: a NaN value, then `int(timestamp)` of a
/// NaN or infinite timestamp), `None` for those found while splitting and parsing, before it.
pub fn listed_name<'a>(line: &'a [u8], error: &LineError) -> Option<&'a str> {
    match error {
        LineError::NanValue | LineError::TimestampNan | LineError::TimestampInfinite => {
            py_split(std::str::from_utf8(line).ok()?).next()
        }
        _ => None,
    }
}

/// Parses one line (without its `\n`) as carbon's line receiver does.
///
/// `now` replaces a timestamp whose integer part is -1 (`int(ts) == -1` in carbon, so -1.9 also
/// means now, -0.5 does not).
pub fn parse_line(line: &[u8], now: f64) -> Result<LinePoint<'_>, LineError> {
    if let Some(parsed) = parse_plain_line(line, now) {
        return parsed;
    }
    let text = std::str::from_utf8(line).map_err(|_| LineError::NotUtf8)?;
    parse_line_str(text, now)
}

/// The shape nearly every sender writes: printable ASCII fields joined by single spaces. For it,
/// Python's `split()` is a split on those two spaces and UTF-8 decoding cannot fail, so the line
/// is read in one pass with no Unicode handling; anything else (`None`) takes the general path.
fn parse_plain_line(line: &[u8], now: f64) -> Option<Result<LinePoint<'_>, LineError>> {
    let mut spaces = [0usize; 2];
    let mut n = 0;
    for (i, &b) in line.iter().enumerate() {
        if b == b' ' {
            *spaces.get_mut(n)? = i;
            n += 1;
        } else if !(0x21..=0x7e).contains(&b) {
            return None;
        }
    }
    let [a, b] = spaces;
    if n != 2 || a == 0 || b == a + 1 || b + 1 == line.len() {
        return None;
    }
    let name = std::str::from_utf8(line.get(..a)?).ok()?;
    let value = line.get(a + 1..b)?;
    let timestamp = line.get(b + 1..)?;
    let number = |f: &[u8]| plain_integer(f).or_else(|| crate::pyfloat::parse_py_float_bytes(f));
    // carbon builds (float(timestamp), float(value)): the timestamp is converted first.
    let Some(timestamp) = number(timestamp) else {
        return Some(Err(LineError::BadTimestamp));
    };
    let Some(value) = number(value) else {
        return Some(Err(LineError::BadValue));
    };
    Some(resolve_point(name, value, timestamp, now))
}

/// An optionally negative decimal integer of at most 15 digits, which an f64 holds exactly (so
/// the result equals Python's `float()` of it); anything else is left to the full grammar.
fn plain_integer(field: &[u8]) -> Option<f64> {
    let (negative, digits) = match field.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, field),
    };
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(d - b'0');
    }
    let v = v as f64;
    Some(if negative { -v } else { v })
}

/// [`parse_line`] for text already known to be UTF-8 (a UDP datagram's lines).
pub fn parse_line_str(text: &str, now: f64) -> Result<LinePoint<'_>, LineError> {
    let mut fields = py_split(text);
    let (Some(name), Some(value), Some(timestamp), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(LineError::FieldCount(py_split(text).count()));
    };
    // carbon builds (float(timestamp), float(value)): the timestamp is converted first.
    let timestamp = parse_py_float_str(timestamp).ok_or(LineError::BadTimestamp)?;
    let value = parse_py_float_str(value).ok_or(LineError::BadValue)?;
    resolve_point(name, value, timestamp, now)
}

/// Carbon's `metricReceived` checks, shared by the line and pickle paths: NaN values are dropped,
/// a timestamp whose `int()` is -1 becomes `now`, and a timestamp `int()` cannot convert is fatal.
pub(crate) fn resolve_point<'a>(
    name: &'a str,
    value: f64,
    timestamp: f64,
    now: f64,
) -> Result<LinePoint<'a>, LineError> {
    if value.is_nan() {
        return Err(LineError::NanValue);
    }
    if timestamp.is_nan() {
        return Err(LineError::TimestampNan);
    }
    if timestamp.is_infinite() {
        return Err(LineError::TimestampInfinite);
    }
    let timestamp = if timestamp.trunc() == -1.0 { now } else { timestamp };
    Ok(LinePoint {
        name,
        value,
        timestamp,
    })
}

/// Formats a point as one plaintext line (with `\n`), the way relays forward it.
///
/// Integral values print without a fraction (`12`), others in Rust's shortest round-trip form
/// (`0.1`, `-1e300`, `inf`), which Python's `float()` reads back to the same value.
pub fn format_line(out: &mut String, name: &str, value: f64, timestamp: i64) {
    use std::fmt::Write as _;
    // Writing to a String cannot fail.
    let _ = if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e17 {
        writeln!(out, "{name} {value:.0} {timestamp}")
    } else {
        writeln!(out, "{name} {value:?} {timestamp}")
    };
}

/// Cuts `\n`-framed lines out of a receive buffer without copying them.
///
/// Unlike carbon, which closes the connection when a line exceeds `MAX_LENGTH`, an over-long line
/// is reported once as [`LineError::TooLong`] and then discarded up to its newline, so one bad
/// client line does not cost the whole connection and nothing is buffered without bound.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    max_len: usize,
    discarding: bool,
}

impl LineSplitter {
    /// A splitter that refuses lines longer than `max_len` bytes (excluding the `\n`).
    pub fn new(max_len: usize) -> Self {
        LineSplitter {
            max_len,
            discarding: false,
        }
    }

    /// Iterates over the complete lines at the start of `buf`; afterwards
    /// [`Lines::consumed`] says how many bytes the caller may drop from its buffer.
    pub fn split<'s, 'a>(&'s mut self, buf: &'a [u8]) -> Lines<'s, 'a> {
        Lines {
            splitter: self,
            buf,
            pos: 0,
        }
    }

    /// True while the rest of an over-long line is being thrown away.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }
}

impl Default for LineSplitter {
    fn default() -> Self {
        LineSplitter::new(CARBON_MAX_LINE_LENGTH)
    }
}

/// Iterator over the lines of one buffer, from [`LineSplitter::split`].
#[derive(Debug)]
pub struct Lines<'s, 'a> {
    splitter: &'s mut LineSplitter,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Lines<'_, 'a> {
    /// Bytes fully handled so far: lines returned, and over-long data thrown away.
    pub fn consumed(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Lines<'_, 'a> {
    type Item = Result<&'a [u8], LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        let max = self.splitter.max_len;
        loop {
            let rest = self.buf.get(self.pos..)?;
            if rest.is_empty() {
                return None;
            }
            match memchr_newline(rest) {
                Some(nl) => {
                    self.pos += nl + 1;
                    if self.splitter.discarding {
                        // The tail of a line already reported as too long.
                        self.splitter.discarding = false;
                        continue;
                    }
                    let line = rest.get(..nl)?;
                    if line.len() > max {
                        return Some(Err(LineError::TooLong { max }));
                    }
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    return Some(Ok(line));
                }
                None => {
                    if self.splitter.discarding {
                        self.pos = self.buf.len();
                        return None;
                    }
                    if rest.len() > max {
                        self.pos = self.buf.len();
                        self.splitter.discarding = true;
                        return Some(Err(LineError::TooLong { max }));
                    }
                    // A partial line: leave it for the next read.
                    return None;
                }
            }
        }
    }
}

fn memchr_newline(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

/// Splits a UDP datagram into lines the way carbon's UDP listener does.
///
/// Carbon decodes the whole datagram as UTF-8 (one bad byte loses the datagram) and then uses
/// Python's `str.splitlines()`, which also breaks at `\r`, `\v`, `\f`, `\x1c`-`\x1e`, `\x85`,
/// U+2028 and U+2029.
pub fn datagram_lines(data: &[u8]) -> Result<impl Iterator<Item = &str>, LineError> {
    let text = std::str::from_utf8(data).map_err(|_| LineError::NotUtf8)?;
    Ok(SplitLines { rest: text })
}

/// Python's `str.splitlines()` (without `keepends`).
struct SplitLines<'a> {
    rest: &'a str,
}

impl<'a> Iterator for SplitLines<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let is_break = |c: char| {
            matches!(
                c,
                '\n' | '\r'
                    | '\u{0b}'
                    | '\u{0c}'
                    | '\u{1c}'
                    | '\u{1d}'
                    | '\u{1e}'
                    | '\u{85}'
                    | '\u{2028}'
                    | '\u{2029}'
            )
        };
        match self.rest.char_indices().find(|&(_, c)| is_break(c)) {
            Some((i, c)) => {
                let line = self.rest.get(..i)?;
                let mut after = i + c.len_utf8();
                if c == '\r' && self.rest.as_bytes().get(after) == Some(&b'\n') {
                    after += 1;
                }
                self.rest = self.rest.get(after..)?;
                Some(line)
            }
            None => {
                let line = self.rest;
                self.rest = "";
                Some(line)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_700_000_000.0;

    #[test]
    fn carbon_edge_cases() {
        let ok: &[(&[u8], &str, f64, f64)] = &[
            (b"a.b 1 100", "a.b", 1.0, 100.0),
            (b"  a.b\t1e3   100.5 \r", "a.b", 1000.0, 100.5),
            (b"a 1_000 -1", "a", 1000.0, NOW),
            (b"a 1 -1.9", "a", 1.0, NOW),
            (b"a 1 -0.5", "a", 1.0, -0.5),
            (b"a inf 5", "a", f64::INFINITY, 5.0),
            (b"a -Infinity 5", "a", f64::NEG_INFINITY, 5.0),
            (b"a\xc2\xa01 5", "a", 1.0, 5.0),
            (b"a\x1c1\x1f5", "a", 1.0, 5.0),
            ("ü ١ 5".as_bytes(), "ü", 1.0, 5.0),
        ];
        for (line, name, value, ts) in ok {
            let p = parse_line(line, NOW);
            assert_eq!(
                p,
                Ok(LinePoint {
                    name,
                    value: *value,
                    timestamp: *ts
                }),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        let bad: &[(&[u8], LineError)] = &[
            (b"", LineError::FieldCount(0)),
            (b"a 1", LineError::FieldCount(2)),
            (b"a 1 2 3", LineError::FieldCount(4)),
            (b"a x 2", LineError::BadValue),
            (b"a x y", LineError::BadTimestamp),
            (b"a 1 0x10", LineError::BadTimestamp),
            (b"a nan 2", LineError::NanValue),
            (b"a nan inf", LineError::NanValue),
            (b"a 1 inf", LineError::TimestampInfinite),
            (b"a 1 nan", LineError::TimestampNan),
            (b"a\xff 1 2", LineError::NotUtf8),
        ];
        for (line, err) in bad {
            assert_eq!(
                parse_line(line, NOW),
                Err(*err),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn actions_match_carbon() {
        assert_eq!(LineError::BadValue.carbon_action(), CarbonAction::SkipLogged);
        assert_eq!(LineError::NanValue.carbon_action(), CarbonAction::SkipSilently);
        assert_eq!(LineError::NotUtf8.carbon_action(), CarbonAction::DropConnection);
    }

    #[test]
    fn listed_name_only_for_failures_after_carbons_lists() {
        let named: &[(&[u8], Option<&str>)] = &[
            (b"a.b nan 2", Some("a.b")),
            (b" \ta.b\t1 nan\r", Some("a.b")),
            (b"a.b 1 -inf", Some("a.b")),
            // Parsing fails before metricReceived: carbon never checks these names.
            (b"a.b x 2", None),
            (b"a.b 1 x", None),
            (b"a.b nan", None),
            (b"a.b\xff nan 2", None),
        ];
        for (line, want) in named {
            let name = match parse_line(line, NOW) {
                Ok(_) => panic!("{:?} parsed", String::from_utf8_lossy(line)),
                Err(e) => listed_name(line, &e),
            };
            assert_eq!(name, *want, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn splitter_handles_partial_crlf_and_long_lines() {
        let mut s = LineSplitter::new(8);
        let buf = b"a 1 2\r\nb 3 4\npart";
        let mut lines = s.split(buf);
        assert_eq!(lines.next(), Some(Ok(&b"a 1 2"[..])));
        assert_eq!(lines.next(), Some(Ok(&b"b 3 4"[..])));
        assert_eq!(lines.next(), None);
        assert_eq!(lines.consumed(), 13);

        // An over-long complete line is skipped, the next one survives.
        let buf = b"123456789\nok\n";
        let mut lines = s.split(buf);
        assert_eq!(lines.next(), Some(Err(LineError::TooLong { max: 8 })));
        assert_eq!(lines.next(), Some(Ok(&b"ok"[..])));
        assert_eq!(lines.consumed(), buf.len());

        // An over-long partial line is dropped and its tail discarded on the next read.
        let buf = b"0123456789";
        let mut lines = s.split(buf);
        assert_eq!(lines.next(), Some(Err(LineError::TooLong { max: 8 })));
        assert_eq!(lines.consumed(), 10);
        assert!(s.is_discarding());
        let buf = b"more tail\nx 1 2\n";
        let mut lines = s.split(buf);
        assert_eq!(lines.next(), Some(Ok(&b"x 1 2"[..])));
        assert_eq!(lines.next(), None);
        assert_eq!(lines.consumed(), buf.len());
        assert!(!s.is_discarding());

        // Exactly max bytes is allowed, as in Twisted (`len(line) > MAX_LENGTH` fails).
        let mut lines = s.split(b"12345678\n");
        assert_eq!(lines.next(), Some(Ok(&b"12345678"[..])));
    }

    #[test]
    fn datagram_splitlines() {
        let lines: Vec<&str> = datagram_lines("a 1 2\r\nb 1 2\rc 1 2\u{2028}d\u{1c}e\n\nf".as_bytes())
            .map(|it| it.collect())
            .unwrap_or_default();
        assert_eq!(lines, ["a 1 2", "b 1 2", "c 1 2", "d", "e", "", "f"]);
        assert!(datagram_lines(b"\xff").is_err());
    }

    #[test]
    fn format_round_trips() {
        let mut s = String::new();
        format_line(&mut s, "a.b", 12.0, 100);
        format_line(&mut s, "a.b", 0.1, 100);
        format_line(&mut s, "a.b", -1e300, 100);
        assert_eq!(s, "a.b 12 100\na.b 0.1 100\na.b -1e300 100\n");
    }
}
