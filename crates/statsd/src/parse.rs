//! The StatsD line protocol as etsy statsd 0.9.0's `handlePacket` reads it (stats.js, helpers.js).
//!
//! A packet is split on `\n`; empty lines are skipped. A line is `key:seg[:seg…][|#tag,tag…]` where
//! each segment is `value|type[|@rate[|…]]`. The parser borrows from the packet: a key is copied
//! only when tags are appended or sanitising changes it.
//!
//! Quirks kept on purpose, because they decide which metric a line lands in:
//! - tags are whatever lies between the first `|#` and the next `|#`; each tag's *first* `;` becomes
//!   `_` and its *first* `:` becomes `=`, then `key;tag;tag` is sanitised as one string;
//! - validation looks at the type field as written, the bucket at the type trimmed: `1|ms ` passes
//!   the counter check and is then stored as a timer, so it may be negative;
//! - a line with no `:` is one bad segment; unknown types (and `h`) are counters.

use std::borrow::Cow;

use crate::jsnum::{is_js_number, is_js_whitespace, js_number, js_trim};

/// A decoded sample: the bucket it goes to and its value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// `c`, `h` and every unknown type: added as `value × (1 / rate)`.
    Counter(f64),
    /// `ms`: one timing; its count grows by `1 / rate`.
    Timer(f64),
    /// `g`: set the gauge, or add to it when the text starts with `+`/`-` and the gauge is non-zero.
    Gauge {
        /// The number as `Number(text)` reads it.
        value: f64,
        /// Whether the raw text starts with `+` or `-`.
        delta: bool,
    },
    /// `s`: a member string (`"0"` when empty).
    Set(&'a str),
}

/// One valid `value|type|@rate` segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    /// What to record.
    pub value: Value<'a>,
    /// The `@rate` (1 without one); statsd accepts 0 and rates above 1.
    pub sample_rate: f64,
}

/// Why a segment counts in `bad_lines_seen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadSegment {
    /// No `|type` field (also a line without any `:`).
    #[error("no metric type")]
    MissingType,
    /// A third field that is not `@` followed by a non-negative number.
    #[error("invalid sample rate")]
    InvalidSampleRate,
    /// A value that `isNaN` rejects, or a negative timer.
    #[error("invalid value")]
    InvalidValue,
    /// A rate that passes statsd's check but not its `/^@([\d.]+)/` extraction (`@+0.5`, `@ 1`,
    /// `@Infinity`). etsy statsd throws a TypeError and its process dies; we count a bad line.
    #[error("sample rate statsd cannot extract")]
    UnextractableSampleRate,
}

/// UDP payloads are decoded as UTF-8 with U+FFFD for invalid sequences (`Buffer.toString()`).
pub fn decode_utf8(packet: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(packet)
}

/// The TCP server reads with `setEncoding('ascii')`: every byte with its high bit cleared.
pub fn decode_ascii(packet: &[u8]) -> Cow<'_, str> {
    if packet.is_ascii() {
        // ASCII bytes are valid UTF-8.
        String::from_utf8_lossy(packet)
    } else {
        Cow::Owned(packet.iter().map(|b| char::from(b & 0x7f)).collect())
    }
}

/// statsd's TCP server framing (servers/tcp.js): chunks are buffered and everything up to the
/// last newline is handed on as one packet, so a packet is whatever arrived, not one line.
#[derive(Debug, Clone, Default)]
pub struct TcpFramer {
    buffer: Vec<u8>,
}

impl TcpFramer {
    /// Appends a chunk; returns the packet (through the last `\n`) when the buffer holds one.
    pub fn push(&mut self, chunk: &[u8]) -> Option<Vec<u8>> {
        self.buffer.extend_from_slice(chunk);
        let last = self.buffer.iter().rposition(|b| *b == b'\n')?;
        let rest = self.buffer.split_off(last + 1);
        Some(std::mem::replace(&mut self.buffer, rest))
    }

    /// Bytes waiting for a newline.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }
}

/// The non-empty lines of a packet, each of which counts in `metrics_received`.
pub fn lines(packet: &str) -> impl Iterator<Item = &str> {
    packet.split('\n').filter(|l| !l.is_empty())
}

/// Whether `c` survives statsd's sanitiser: `[a-zA-Z_\-0-9.;=]`.
fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ';' | '=')
}

/// statsd's `sanitizeKeyName`: whitespace runs → `_`, `/` → `-`, then drop characters outside
/// `[a-zA-Z_\-0-9.;=]`. Borrows when nothing changes.
pub fn sanitize_key(key: &str) -> Cow<'_, str> {
    if key.chars().all(is_key_char) {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len());
    let mut in_space = false;
    for c in key.chars() {
        if is_js_whitespace(c) {
            if !in_space {
                out.push('_');
            }
            in_space = true;
            continue;
        }
        in_space = false;
        if c == '/' {
            out.push('-');
        } else if is_key_char(c) {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One line, split into its key and its segments.
#[derive(Debug, Clone)]
pub struct Line<'a> {
    key: Cow<'a, str>,
    /// The text after the key's `:` (up to the first `|#`), or None when there was no `:`.
    segments: Option<&'a str>,
}

impl<'a> Line<'a> {
    /// Parses one line; `sanitize` is statsd's `keyNameSanitize`.
    pub fn parse(line: &'a str, sanitize: bool) -> Self {
        let (body, tags) = match line.split_once("|#") {
            Some((body, rest)) => {
                let tags = rest.split_once("|#").map_or(rest, |(t, _)| t);
                (body, tags)
            }
            None => (line, ""),
        };
        let (raw_key, segments) = match body.split_once(':') {
            Some((k, s)) => (k, Some(s)),
            None => (body, None),
        };
        let key = if tags.is_empty() {
            Cow::Borrowed(raw_key)
        } else {
            let mut k = String::with_capacity(raw_key.len() + tags.len() + 1);
            k.push_str(raw_key);
            for tag in tags.split(',') {
                k.push(';');
                k.push_str(&tag.replacen(';', "_", 1).replacen(':', "=", 1));
            }
            Cow::Owned(k)
        };
        let key = if sanitize {
            match key {
                Cow::Borrowed(k) => sanitize_key(k),
                Cow::Owned(k) => Cow::Owned(sanitize_key(&k).into_owned()),
            }
        } else {
            key
        };
        Line { key, segments }
    }

    /// The bucket key, tags appended as `;k=v`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The key, owned.
    pub fn into_key(self) -> Cow<'a, str> {
        self.key
    }

    /// Each `:`-separated segment, decoded or refused.
    pub fn samples(&self) -> Segments<'a> {
        Segments {
            inner: self.segments.map(|s| s.split(':')),
            missing_emitted: false,
        }
    }
}

/// Iterator over a line's segments.
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    inner: Option<std::str::Split<'a, char>>,
    missing_emitted: bool,
}

impl<'a> Iterator for Segments<'a> {
    type Item = Result<Sample<'a>, BadSegment>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Some(split) => split.next().map(parse_segment),
            None => {
                // statsd pushes "1" when the key had no segments: a segment without a type.
                if self.missing_emitted {
                    None
                } else {
                    self.missing_emitted = true;
                    Some(Err(BadSegment::MissingType))
                }
            }
        }
    }
}

/// `helpers.isValidSampleRate`: `@` then a number that does not start with `-`.
fn valid_sample_rate(field: &str) -> bool {
    match field.strip_prefix('@') {
        Some(n) => !n.is_empty() && is_js_number(n) && !n.starts_with('-'),
        None => false,
    }
}

/// Decodes one `value|type[|@rate…]` segment as stats.js and helpers.is_valid_packet do.
pub fn parse_segment(segment: &str) -> Result<Sample<'_>, BadSegment> {
    let mut fields = segment.split('|');
    let value = fields.next().unwrap_or("");
    let raw_type = fields.next().ok_or(BadSegment::MissingType)?;
    let rate_field = fields.next();
    if rate_field.is_some_and(|r| !valid_sample_rate(r)) {
        return Err(BadSegment::InvalidSampleRate);
    }
    let valid = match raw_type {
        "s" => true,
        "ms" => is_js_number(value) && js_number(value) >= 0.0,
        _ => is_js_number(value),
    };
    if !valid {
        return Err(BadSegment::InvalidValue);
    }
    let sample_rate = match rate_field {
        Some(r) => {
            let digits = r.get(1..).unwrap_or("");
            let end = digits
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(digits.len());
            if end == 0 {
                return Err(BadSegment::UnextractableSampleRate);
            }
            js_number(&digits[..end])
        }
        None => 1.0,
    };
    let value = match js_trim(raw_type) {
        "ms" => Value::Timer(js_number(value)),
        "g" => Value::Gauge {
            value: js_number(value),
            delta: value.starts_with(['+', '-']),
        },
        "s" => Value::Set(if value.is_empty() { "0" } else { value }),
        _ => Value::Counter(js_number(value)),
    };
    Ok(Sample { value, sample_rate })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> (String, Vec<Result<Sample<'_>, BadSegment>>) {
        let l = Line::parse(line, true);
        (l.key().to_string(), l.samples().collect())
    }

    #[test]
    fn keys_and_tags() {
        let cases: &[(&str, &str)] = &[
            ("a.b:1|c", "a.b"),
            ("a b\t c:1|c", "a_b_c"),
            ("a/b:1|c", "a-b"),
            ("a$b%c:1|c", "abc"),
            ("a \u{e9} b:1|c", "a__b"),
            ("a\u{3000}b:1|c", "a_b"),
            ("a:1|c|#x:y,z", "a;x=y;z"),
            ("a:1|c|#x:y:z,w;v;u", "a;x=yz;w_v;u"),
            ("a:1|c|@0.5|#t1|#t2", "a;t1"),
            ("a:1|c|#", "a"),
            ("a:1|c|#,", "a;;"),
            ("a:1|c|#t|@0.5", "a;t0.5"),
            ("a:1|c|#t/x y", "a;t-x_y"),
            ("", ""),
        ];
        for (line, want) in cases {
            assert_eq!(Line::parse(line, true).key(), *want, "{line:?}");
        }
        assert_eq!(Line::parse("a/b c:1|c", false).key(), "a/b c");
        assert_eq!(Line::parse("a:1|c|#x:y:z", false).key(), "a;x=y:z");
        assert!(matches!(
            Line::parse("a.b:1|c", true).into_key(),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn segments_table() {
        use BadSegment::*;
        let ok = |value, rate| {
            Ok(Sample {
                value,
                sample_rate: rate,
            })
        };
        let cases: Vec<(&str, Vec<Result<Sample<'_>, BadSegment>>)> = vec![
            ("a:1|c", vec![ok(Value::Counter(1.0), 1.0)]),
            ("a:1|c|@0.1", vec![ok(Value::Counter(1.0), 0.1)]),
            ("a:1|c|@0", vec![ok(Value::Counter(1.0), 0.0)]),
            ("a:1|c|@5", vec![ok(Value::Counter(1.0), 5.0)]),
            ("a:1|c|@1e-3", vec![ok(Value::Counter(1.0), 1.0)]),
            ("a:1|c|@0x10", vec![ok(Value::Counter(1.0), 0.0)]),
            ("a:1|c|@.5|extra", vec![ok(Value::Counter(1.0), 0.5)]),
            ("a:1|c|@-1", vec![Err(InvalidSampleRate)]),
            ("a:1|c|@", vec![Err(InvalidSampleRate)]),
            ("a:1|c|", vec![Err(InvalidSampleRate)]),
            ("a:1|c|0.5", vec![Err(InvalidSampleRate)]),
            ("a:1|c|@x", vec![Err(InvalidSampleRate)]),
            ("a:1|c|@+0.5", vec![Err(UnextractableSampleRate)]),
            ("a:1|c|@Infinity", vec![Err(UnextractableSampleRate)]),
            ("a:1|c|@ 1", vec![Err(UnextractableSampleRate)]),
            ("a:1", vec![Err(MissingType)]),
            ("a", vec![Err(MissingType)]),
            ("a:", vec![Err(MissingType)]),
            ("a:x|c", vec![Err(InvalidValue)]),
            ("a:|c", vec![Err(InvalidValue)]),
            ("a: |c", vec![ok(Value::Counter(0.0), 1.0)]),
            ("a:0x10|c", vec![ok(Value::Counter(16.0), 1.0)]),
            ("a:2|h", vec![ok(Value::Counter(2.0), 1.0)]),
            ("a:2|zz", vec![ok(Value::Counter(2.0), 1.0)]),
            ("a:2|", vec![ok(Value::Counter(2.0), 1.0)]),
            ("a:5|ms", vec![ok(Value::Timer(5.0), 1.0)]),
            ("a:-5|ms", vec![Err(InvalidValue)]),
            ("a:-5|ms ", vec![ok(Value::Timer(-5.0), 1.0)]),
            ("a:5|ms|@0.5", vec![ok(Value::Timer(5.0), 0.5)]),
            (
                "a:-5|g",
                vec![ok(
                    Value::Gauge {
                        value: -5.0,
                        delta: true,
                    },
                    1.0,
                )],
            ),
            (
                "a:+5|g",
                vec![ok(
                    Value::Gauge {
                        value: 5.0,
                        delta: true,
                    },
                    1.0,
                )],
            ),
            (
                "a: -5|g",
                vec![ok(
                    Value::Gauge {
                        value: -5.0,
                        delta: false,
                    },
                    1.0,
                )],
            ),
            ("a:x|g", vec![Err(InvalidValue)]),
            ("a:x|s", vec![ok(Value::Set("x"), 1.0)]),
            ("a:|s", vec![ok(Value::Set("0"), 1.0)]),
            ("a:x|s ", vec![Err(InvalidValue)]),
            ("a:1|c\r", vec![ok(Value::Counter(1.0), 1.0)]),
            (
                "a:1|c:2|ms:x|g:3|s",
                vec![
                    ok(Value::Counter(1.0), 1.0),
                    ok(Value::Timer(2.0), 1.0),
                    Err(InvalidValue),
                    ok(Value::Set("3"), 1.0),
                ],
            ),
        ];
        for (line, want) in cases {
            let (_, got) = one(line);
            assert_eq!(got, want, "{line:?}");
        }
    }

    #[test]
    fn tcp_framing() {
        let mut f = TcpFramer::default();
        assert_eq!(f.push(b"a:1|c"), None);
        assert_eq!(f.push(b"\nb:1|c\nc:"), Some(b"a:1|c\nb:1|c\n".to_vec()));
        assert_eq!(f.pending(), 2);
        assert_eq!(f.push(b"1|c\n"), Some(b"c:1|c\n".to_vec()));
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn lines_and_decoding() {
        let got: Vec<&str> = lines("a:1|c\n\nb:2|c\n").collect();
        assert_eq!(got, vec!["a:1|c", "b:2|c"]);
        assert_eq!(decode_ascii(b"a\xe9b"), "aib");
        assert_eq!(decode_utf8(b"a\xffb"), "a\u{fffd}b");
    }
}
