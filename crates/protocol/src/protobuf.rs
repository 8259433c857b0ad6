//! Carbon's protobuf receiver payload (port 2005): `carbon.Payload` from carbon 1.1's
//! `carbon.proto`, decoded by hand.
//!
//! ```text
//! syntax = "proto3"; package carbon;
//! message Point   { uint32 timestamp = 1; double value = 2; }
//! message Metric  { string metric = 1; repeated Point points = 2; }
//! message Payload { repeated Metric metrics = 1; }
//! ```
//!
//! Framing is the pickle receiver's (a Twisted `Int32StringReceiver`: 4-byte big-endian length,
//! see [`crate::framing`]), with carbon's fixed `MAX_LENGTH` of 2**20 ([`PROTOBUF_MAX_FRAME`]).
//! Carbon decodes each frame with `Payload.FromString` (the C++ parser under Debian's
//! python3-protobuf) and then hands every `(metric, (timestamp, value))` to `metricReceived`; a
//! `DecodeError` loses the whole frame, logged. This decoder follows that parser's rules, which
//! the differential test in `tests/protobuf_python.rs` checks against the real library:
//!
//! - A known field with an unexpected wire type is an unknown field; unknown fields of wire types
//!   0, 1, 2, 5 and groups (3…4, nested up to [`MAX_DEPTH`]) are skipped; wire types 6 and 7 are
//!   errors.
//! - A tag is the low 32 bits of a varint of at most 5 bytes. Tag 0, or an end-group tag, ends a
//!   message early: inside `Metric` or `Point` that is an error, but at the top level the parser
//!   stops there and keeps what it decoded (Python only warns "Unexpected end-group tag").
//! - Varints are at most 10 bytes; `uint32` keeps the low 32 bits. Lengths are at most 5 bytes and
//!   below 2**31. A field that runs past the end of its message is an error.
//! - Repeating a singular field keeps the last value; absent fields are "" / 0 / 0.0.
//! - `metric` must be valid UTF-8 (proto3 `string`), else the frame is refused.
//!
//! Everything is borrowed from the frame: names are `&str` slices of it. Memory is bounded by the
//! frame: every point takes at least 2 bytes of it.

use thiserror::Error;

/// Carbon's `MetricProtobufReceiver.MAX_LENGTH` (2**20 bytes; not configurable in carbon).
pub const PROTOBUF_MAX_FRAME: usize = 1 << 20;

/// How deeply unknown groups may nest (the C++ parser's default recursion limit).
pub const MAX_DEPTH: usize = 100;

/// One datapoint of a payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProtobufPoint<'a> {
    /// The metric name, borrowed from the frame.
    pub name: &'a str,
    /// Seconds since the epoch (proto `uint32`; never -1, so never "now").
    pub timestamp: u32,
    /// The value, as sent (NaN included: the receiver drops it as carbon does).
    pub value: f64,
}

/// Why a frame is not a `carbon.Payload` (carbon logs "invalid protobuf received" and ignores
/// the frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProtobufError {
    /// A varint, tag or length ran past the end of its message.
    #[error("truncated varint at byte {at}")]
    TruncatedVarint {
        /// Offset in the frame.
        at: usize,
    },
    /// A varint longer than 10 bytes, or a tag longer than 5.
    #[error("varint too long at byte {at}")]
    VarintTooLong {
        /// Offset in the frame.
        at: usize,
    },
    /// A length-delimited field or fixed-size value runs past the end of its message.
    #[error("field at byte {at} runs past the end of its message")]
    Truncated {
        /// Offset in the frame.
        at: usize,
    },
    /// A length of 2**31 or more.
    #[error("length too large at byte {at}")]
    LengthTooLarge {
        /// Offset in the frame.
        at: usize,
    },
    /// Wire type 6 or 7, or field number 0.
    #[error("invalid tag {tag:#x} at byte {at}")]
    InvalidTag {
        /// The tag.
        tag: u32,
        /// Offset in the frame.
        at: usize,
    },
    /// A nested message ended with tag 0 or an end-group tag before its length was used up, or a
    /// group ended with the wrong end-group tag.
    #[error("message or group ends early at byte {at}")]
    UnexpectedEnd {
        /// Offset in the frame.
        at: usize,
    },
    /// A group never closed.
    #[error("unterminated group at byte {at}")]
    UnterminatedGroup {
        /// Offset in the frame.
        at: usize,
    },
    /// Groups nested deeper than [`MAX_DEPTH`].
    #[error("groups nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// The metric name is not UTF-8.
    #[error("metric name at byte {at} is not UTF-8")]
    NotUtf8 {
        /// Offset in the frame.
        at: usize,
    },
}

/// How a payload was decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<'a> {
    /// Every point, metric by metric, in frame order.
    pub points: Vec<ProtobufPoint<'a>>,
    /// The top-level message ended at a tag 0 or end-group tag at this offset with bytes left
    /// after it; those were ignored, as carbon's parser ignores them (with a warning).
    pub stopped_early_at: Option<usize>,
}

const VARINT: u32 = 0;
const I64: u32 = 1;
const LEN: u32 = 2;
const START_GROUP: u32 = 3;
const END_GROUP: u32 = 4;
const I32: u32 = 5;

/// A cursor over one message: `pos` up to `end`, both offsets in the frame.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

/// Where a message's field loop stopped.
enum Stop {
    /// At its end, as it should.
    Limit,
    /// At tag 0 or an end-group tag (the tag and its offset).
    Tag(u32, usize),
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        if self.pos >= self.end {
            return None;
        }
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// A varint of at most `max_bytes`, as its low 64 bits.
    fn varint(&mut self, max_bytes: usize) -> Result<u64, ProtobufError> {
        let at = self.pos;
        let mut v: u64 = 0;
        for i in 0..max_bytes {
            let b = self.byte().ok_or(ProtobufError::TruncatedVarint { at })?;
            v |= u64::from(b & 0x7f).checked_shl(7 * i as u32).unwrap_or(0);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(ProtobufError::VarintTooLong { at })
    }

    fn tag(&mut self) -> Result<u32, ProtobufError> {
        Ok(self.varint(5)? as u32)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], ProtobufError> {
        let at = self.pos;
        let bytes = self
            .buf
            .get(self.pos..self.pos + N)
            .filter(|_| self.pos + N <= self.end)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or(ProtobufError::Truncated { at })?;
        self.pos += N;
        Ok(bytes)
    }

    /// A length prefix and the sub-range it covers.
    fn delimited(&mut self) -> Result<(usize, usize), ProtobufError> {
        let at = self.pos;
        let len = self.varint(5)?;
        if len >= 1 << 31 {
            return Err(ProtobufError::LengthTooLarge { at });
        }
        let start = self.pos;
        let end = start
            .checked_add(len as usize)
            .filter(|e| *e <= self.end)
            .ok_or(ProtobufError::Truncated { at })?;
        self.pos = end;
        Ok((start, end))
    }

    fn sub(&self, (pos, end): (usize, usize)) -> Reader<'a> {
        Reader {
            buf: self.buf,
            pos,
            end,
        }
    }

    /// Skips the value of an unknown field whose tag was just read.
    fn skip(&mut self, tag: u32, tag_at: usize, depth: usize) -> Result<(), ProtobufError> {
        match tag & 7 {
            VARINT => self.varint(10).map(drop),
            I64 => self.fixed::<8>().map(drop),
            LEN => self.delimited().map(drop),
            I32 => self.fixed::<4>().map(drop),
            START_GROUP => {
                if depth >= MAX_DEPTH {
                    return Err(ProtobufError::TooDeep);
                }
                match self.fields(depth + 1, |r, t, at, d| r.skip(t, at, d))? {
                    Stop::Tag(end, _) if end == tag + 1 => Ok(()),
                    Stop::Tag(_, at) => Err(ProtobufError::UnexpectedEnd { at }),
                    Stop::Limit => Err(ProtobufError::UnterminatedGroup { at: tag_at }),
                }
            }
            _ => Err(ProtobufError::InvalidTag { tag, at: tag_at }),
        }
    }

    /// Reads fields until the end, tag 0 or an end-group tag; `field` handles each other tag.
    fn fields(
        &mut self,
        depth: usize,
        mut field: impl FnMut(&mut Self, u32, usize, usize) -> Result<(), ProtobufError>,
    ) -> Result<Stop, ProtobufError> {
        while self.pos < self.end {
            let at = self.pos;
            let tag = self.tag()?;
            if tag == 0 || tag & 7 == END_GROUP {
                return Ok(Stop::Tag(tag, at));
            }
            if tag >> 3 == 0 {
                return Err(ProtobufError::InvalidTag { tag, at });
            }
            field(self, tag, at, depth)?;
        }
        Ok(Stop::Limit)
    }

    /// A nested message (at nesting `depth`) must use up its length.
    fn whole(
        &mut self,
        depth: usize,
        field: impl FnMut(&mut Self, u32, usize, usize) -> Result<(), ProtobufError>,
    ) -> Result<(), ProtobufError> {
        if depth > MAX_DEPTH {
            return Err(ProtobufError::TooDeep);
        }
        match self.fields(depth, field)? {
            Stop::Limit => Ok(()),
            Stop::Tag(_, at) => Err(ProtobufError::UnexpectedEnd { at }),
        }
    }
}

/// `carbon.Point`: `(timestamp, value)`.
fn point(r: &mut Reader<'_>, depth: usize) -> Result<(u32, f64), ProtobufError> {
    let (mut ts, mut value) = (0u32, 0.0f64);
    r.whole(depth, |r, tag, at, depth| match tag {
        t if t == (1 << 3 | VARINT) => {
            ts = r.varint(10)? as u32;
            Ok(())
        }
        t if t == (2 << 3 | I64) => {
            value = f64::from_le_bytes(r.fixed::<8>()?);
            Ok(())
        }
        _ => r.skip(tag, at, depth),
    })?;
    Ok((ts, value))
}

/// `carbon.Metric`: appends its points to `out`.
fn metric<'a>(
    r: &mut Reader<'a>,
    depth: usize,
    out: &mut Vec<ProtobufPoint<'a>>,
) -> Result<(), ProtobufError> {
    let buf = r.buf;
    let mut name: &'a str = "";
    let first = out.len();
    r.whole(depth, |r, tag, at, depth| match tag {
        t if t == (1 << 3 | LEN) => {
            let (s, e) = r.delimited()?;
            let bytes = buf.get(s..e).ok_or(ProtobufError::Truncated { at })?;
            name = std::str::from_utf8(bytes).map_err(|_| ProtobufError::NotUtf8 { at })?;
            Ok(())
        }
        t if t == (2 << 3 | LEN) => {
            let range = r.delimited()?;
            let (timestamp, value) = point(&mut r.sub(range), depth + 1)?;
            out.push(ProtobufPoint {
                name: "",
                timestamp,
                value,
            });
            Ok(())
        }
        _ => r.skip(tag, at, depth),
    })?;
    // The name may come after the points (or twice: the last one counts).
    for p in out.iter_mut().skip(first) {
        p.name = name;
    }
    Ok(())
}

/// Decodes one frame's payload. An error means carbon would drop the whole frame.
pub fn decode_payload(frame: &[u8]) -> Result<Decoded<'_>, ProtobufError> {
    let mut r = Reader {
        buf: frame,
        pos: 0,
        end: frame.len(),
    };
    let mut points = Vec::new();
    let stop = r.fields(0, |r, tag, at, depth| {
        if tag == (1 << 3 | LEN) {
            let range = r.delimited()?;
            metric(&mut r.sub(range), depth + 1, &mut points)
        } else {
            r.skip(tag, at, depth)
        }
    })?;
    Ok(Decoded {
        points,
        stopped_early_at: match stop {
            Stop::Tag(_, at) if r.pos < r.end => Some(at),
            _ => None,
        },
    })
}

/// Encodes `metrics` as a `carbon.Payload`, field by field as protobuf's own serializer does
/// (defaults omitted): for tests, benchmarks and a future protobuf sender.
pub fn encode_payload(metrics: &[(&str, &[(u32, f64)])]) -> Vec<u8> {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut out = Vec::new();
    for (name, points) in metrics {
        let mut m = Vec::new();
        if !name.is_empty() {
            m.push(1 << 3 | LEN as u8);
            varint(name.len() as u64, &mut m);
            m.extend_from_slice(name.as_bytes());
        }
        for (ts, v) in *points {
            let mut p = Vec::with_capacity(14);
            if *ts != 0 {
                p.push(1 << 3 | VARINT as u8);
                varint(u64::from(*ts), &mut p);
            }
            // proto3 omits a value whose bits are all zero (+0.0), and writes -0.0.
            if v.to_bits() != 0 {
                p.push(2 << 3 | I64 as u8);
                p.extend_from_slice(&v.to_le_bytes());
            }
            m.push(2 << 3 | LEN as u8);
            varint(p.len() as u64, &mut m);
            m.extend_from_slice(&p);
        }
        out.push(1 << 3 | LEN as u8);
        varint(m.len() as u64, &mut out);
        out.extend_from_slice(&m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(d: &Decoded<'_>) -> Vec<(String, u32, u64)> {
        d.points
            .iter()
            .map(|p| (p.name.to_string(), p.timestamp, p.value.to_bits()))
            .collect()
    }

    #[test]
    fn python_serialized_payload() {
        // carbon_pb2.Payload with one metric "a.b" and one point (5, 1.5), serialized by
        // python3-protobuf 3.21 (C++ backend).
        let b = b"\n\x12\n\x03a.b\x12\x0b\x08\x05\x11\x00\x00\x00\x00\x00\x00\xf8?";
        let d = decode_payload(b).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pts(&d), vec![("a.b".into(), 5, 1.5f64.to_bits())]);
        assert_eq!(d.stopped_early_at, None);
        assert_eq!(encode_payload(&[("a.b", &[(5, 1.5)])]), b.to_vec());
    }

    #[test]
    fn parser_edge_cases_as_the_cpp_parser() {
        fn ok(b: &[u8]) -> Decoded<'_> {
            decode_payload(b).unwrap_or_else(|e| panic!("{b:?}: {e}"))
        }
        assert!(ok(b"").points.is_empty());
        // wrong wire type for a known field: skipped as unknown
        assert!(ok(b"\x08\x05").points.is_empty());
        // timestamp: low 32 bits of a 10-byte varint
        let d = ok(b"\x0a\x0d\x12\x0b\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f");
        assert_eq!(pts(&d), vec![(String::new(), u32::MAX, 0)]);
        // 11-byte varint: error
        assert!(decode_payload(b"\x0a\x0e\x12\x0c\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01").is_err());
        // name set twice: the last counts, also after the points
        let d = ok(b"\x0a\x0a\x0a\x01a\x12\x02\x08\x07\x0a\x01b");
        assert_eq!(pts(&d), vec![("b".into(), 7, 0)]);
        // tag 0 or end-group at the top level: stop, keep what came before
        let d = ok(b"\x0a\x03\x0a\x01a\x00\x0a\x03\x0a\x01b");
        assert_eq!(d.stopped_early_at, Some(5));
        // ...but inside a message it is an error
        assert!(decode_payload(b"\x0a\x02\x00\x00").is_err());
        assert!(decode_payload(b"\x0a\x01\x00").is_err());
        // unknown group skipped; unterminated or mismatched group refused
        assert!(decode_payload(b"\x1b\x08\x01\x1c\x0a\x03\x0a\x01a").is_ok());
        assert!(decode_payload(b"\x1b\x08\x01").is_err());
        assert!(decode_payload(b"\x1b\x24").is_err());
        // wire types 6, 7 and field 0
        for b in [&b"\x0e"[..], b"\x0f", b"\x02\x00"] {
            assert!(
                matches!(decode_payload(b), Err(ProtobufError::InvalidTag { .. })),
                "{b:?}"
            );
        }
        // a tag is the low 32 bits of at most 5 bytes: 2**32 is tag 0 (stop), 6 bytes an error
        assert_eq!(ok(b"\x80\x80\x80\x80\x10\x01").stopped_early_at, Some(0));
        assert!(decode_payload(b"\x88\x80\x80\x80\x80\x00\x01").is_err());
        // invalid UTF-8 name
        assert!(matches!(
            decode_payload(b"\x0a\x04\x0a\x02\xff\xfe"),
            Err(ProtobufError::NotUtf8 { .. })
        ));
        // truncations and huge lengths
        assert!(decode_payload(b"\x0a\x05\x0a\x01").is_err());
        assert!(decode_payload(b"\x0a\xff\xff\xff\xff\x0f").is_err());
        // nesting limit
        let mut deep = vec![0x1bu8; 101];
        deep.extend(vec![0x1cu8; 101]);
        assert_eq!(decode_payload(&deep), Err(ProtobufError::TooDeep));
        let mut ok_deep = vec![0x1bu8; 100];
        ok_deep.extend(vec![0x1cu8; 100]);
        assert!(decode_payload(&ok_deep).is_ok());
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        fn metrics() -> impl Strategy<Value = Vec<(String, Vec<(u32, u64)>)>> {
            proptest::collection::vec(
                (
                    ".{0,20}",
                    proptest::collection::vec((any::<u32>(), any::<u64>()), 0..6),
                ),
                0..6,
            )
        }

        proptest! {
            #[test]
            fn encode_then_decode_gives_every_point_back(ms in metrics()) {
                let owned: Vec<(String, Vec<(u32, f64)>)> = ms
                    .iter()
                    .map(|(n, p)| (n.clone(), p.iter().map(|(t, b)| (*t, f64::from_bits(*b))).collect()))
                    .collect();
                let refs: Vec<(&str, &[(u32, f64)])> =
                    owned.iter().map(|(n, p)| (n.as_str(), p.as_slice())).collect();
                let bytes = encode_payload(&refs);
                let d = decode_payload(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let want: Vec<(&str, u32, u64)> = ms
                    .iter()
                    .flat_map(|(n, p)| p.iter().map(move |(t, b)| (n.as_str(), *t, *b)))
                    .collect();
                let got: Vec<(&str, u32, u64)> =
                    d.points.iter().map(|p| (p.name, p.timestamp, p.value.to_bits())).collect();
                prop_assert_eq!(got, want);
                prop_assert_eq!(d.stopped_early_at, None);
            }

            #[test]
            fn any_bytes_decode_or_fail_without_panicking(b in proptest::collection::vec(any::<u8>(), 0..300)) {
                if let Ok(d) = decode_payload(&b) {
                    // every point took at least two bytes of the frame
                    prop_assert!(d.points.len() <= b.len() / 2);
                }
            }

            #[test]
            fn a_truncated_payload_never_yields_more_points(ms in metrics(), cut in any::<prop::sample::Index>()) {
                let owned: Vec<(String, Vec<(u32, f64)>)> = ms
                    .iter()
                    .map(|(n, p)| (n.clone(), p.iter().map(|(t, b)| (*t, f64::from_bits(*b))).collect()))
                    .collect();
                let refs: Vec<(&str, &[(u32, f64)])> =
                    owned.iter().map(|(n, p)| (n.as_str(), p.as_slice())).collect();
                let bytes = encode_payload(&refs);
                let total: usize = ms.iter().map(|(_, p)| p.len()).sum();
                let at = cut.index(bytes.len() + 1);
                if let Ok(d) = decode_payload(&bytes[..at]) {
                    prop_assert!(d.points.len() <= total);
                }
            }
        }
    }
}
