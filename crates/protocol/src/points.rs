//! Carbon's pickle receiver payload: `[(path, (timestamp, value)), …]`.
//!
//! `MetricPickleReceiver.stringReceived` unpickles the frame (a bad pickle: frame ignored), then
//! for each entry unpacks `(metric, (a, b)) = raw` (a bad shape: logged, entry skipped), converts
//! with `float()` (not a number: skipped silently), and hands `(a, b)` = (timestamp, value) to
//! `metricReceived` (NaN values dropped, -1 means now). A few failures are not caught by carbon and
//! cost the connection: a non-`str` metric name (`bytes.encode` does not exist), an int too large
//! for a float, an infinite or NaN timestamp, or a payload that is not iterable. We report each
//! case per entry with [`EntryError::carbon_action`], and let the caller decide.

use crate::line::{CarbonAction, LineError, resolve_point};
use crate::pickle::{FloatError, LegacyStrings, Limits, PickleError, Value, loads_with};
use thiserror::Error;

/// One datapoint from a pickle batch.
#[derive(Debug, Clone, PartialEq)]
pub struct PicklePoint {
    /// The metric name as sent.
    pub name: String,
    /// The value (never NaN).
    pub value: f64,
    /// Seconds since the epoch (`now` if the sender said -1).
    pub timestamp: f64,
}

/// Why one entry of a batch produced no point.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EntryError {
    /// Not `(metric, (timestamp, value))`-shaped.
    #[error("entry is not (metric, (timestamp, value))")]
    Shape,
    /// Timestamp or value is not something `float()` accepts.
    #[error("timestamp or value is not a number")]
    NotANumber,
    /// An int too large for a float.
    #[error("int too large to convert to float")]
    Overflow,
    /// The metric name is not a `str`.
    #[error("metric name is not a str")]
    NameNotStr,
    /// The value is NaN.
    #[error("value is NaN")]
    NanValue {
        /// The metric name, which carbon checks against its lists first.
        name: String,
    },
    /// The timestamp is ±inf or NaN.
    #[error("timestamp is not finite")]
    TimestampNotFinite {
        /// The metric name, which carbon checks against its lists first.
        name: String,
    },
}

impl EntryError {
    /// What carbon 1.1 does when an entry fails this way.
    pub fn carbon_action(&self) -> CarbonAction {
        match self {
            EntryError::Shape => CarbonAction::SkipLogged,
            EntryError::NotANumber | EntryError::NanValue { .. } => CarbonAction::SkipSilently,
            EntryError::Overflow | EntryError::NameNotStr | EntryError::TimestampNotFinite { .. } => {
                CarbonAction::DropConnection
            }
        }
    }

    /// The name carbon checks against its whitelist and blacklist for an entry that failed this
    /// way, so a receiver can count it there as carbon does: `Some` only for the failures carbon
    /// meets after that check (protocols.py `metricReceived`: a NaN value, then `int()` of the
    /// timestamp), `None` for those found while unpacking and converting, before it.
    pub fn listed_name(&self) -> Option<&str> {
        match self {
            EntryError::NanValue { name } | EntryError::TimestampNotFinite { name } => Some(name),
            _ => None,
        }
    }
}

/// Why a whole pickle frame was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PointsError {
    /// The frame is not a pickle we accept (carbon logs "invalid pickle" and ignores the frame,
    /// or for some hostile inputs drops the connection).
    #[error(transparent)]
    Pickle(#[from] PickleError),
    /// The payload is not a list, tuple, set or dict (carbon's `for raw in datapoints` raises
    /// `TypeError` and the connection drops).
    #[error("pickle payload is not iterable")]
    NotIterable,
}

/// Decodes one pickle-receiver frame into per-entry results, in order.
pub fn decode_points(
    frame: &[u8],
    now: f64,
    limits: &Limits,
) -> Result<Vec<Result<PicklePoint, EntryError>>, PointsError> {
    let value = loads_with(frame, limits, LegacyStrings::Utf8)?;
    match value {
        // Iterating a str or bytes gives characters or ints, which never unpack as an entry.
        Value::Str(s) => Ok(s.chars().map(|_| Err(EntryError::Shape)).collect()),
        Value::Bytes(b) => Ok(b.iter().map(|_| Err(EntryError::Shape)).collect()),
        Value::List(items) | Value::Tuple(items) | Value::Set(items) | Value::FrozenSet(items) => {
            Ok(items.into_iter().map(|raw| entry(raw, now)).collect())
        }
        Value::Dict(entries) => Ok(entries.into_iter().map(|(k, _)| entry(k, now)).collect()),
        _ => Err(PointsError::NotIterable),
    }
}

/// Python's unpacking of a value into exactly two items.
fn unpack2(v: Value) -> Option<(Value, Value)> {
    match v {
        Value::List(items) | Value::Tuple(items) | Value::Set(items) | Value::FrozenSet(items) => {
            let mut it = items.into_iter();
            match (it.next(), it.next(), it.next()) {
                (Some(a), Some(b), None) => Some((a, b)),
                _ => None,
            }
        }
        Value::Dict(entries) => {
            let mut it = entries.into_iter();
            match (it.next(), it.next(), it.next()) {
                (Some((a, _)), Some((b, _)), None) => Some((a, b)),
                _ => None,
            }
        }
        Value::Str(s) => {
            let mut it = s.chars();
            match (it.next(), it.next(), it.next()) {
                (Some(a), Some(b), None) => Some((Value::Str(a.to_string()), Value::Str(b.to_string()))),
                _ => None,
            }
        }
        Value::Bytes(b) => match b.as_slice() {
            [a, b] => Some((Value::Int(i64::from(*a)), Value::Int(i64::from(*b)))),
            _ => None,
        },
        _ => None,
    }
}

fn entry(raw: Value, now: f64) -> Result<PicklePoint, EntryError> {
    let (metric, pair) = unpack2(raw).ok_or(EntryError::Shape)?;
    let (ts, value) = unpack2(pair).ok_or(EntryError::Shape)?;
    let float = |v: &Value| {
        v.to_py_float().map_err(|e| match e {
            FloatError::Invalid => EntryError::NotANumber,
            FloatError::Overflow => EntryError::Overflow,
        })
    };
    // carbon evaluates (float(value), float(timestamp)) left to right: the timestamp slot first.
    let ts = float(&ts)?;
    let value = float(&value)?;
    let Value::Str(name) = metric else {
        return Err(EntryError::NameNotStr);
    };
    match resolve_point(&name, value, ts, now) {
        Ok(p) => {
            let (value, timestamp) = (p.value, p.timestamp);
            Ok(PicklePoint {
                name,
                value,
                timestamp,
            })
        }
        Err(LineError::NanValue) => Err(EntryError::NanValue { name }),
        Err(_) => Err(EntryError::TimestampNotFinite { name }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pickle::{Protocol, dumps, dumps_with};

    fn t(items: Vec<Value>) -> Value {
        Value::Tuple(items)
    }

    #[test]
    fn carbon_entry_rules() {
        let payload = Value::List(vec![
            t(vec!["a".into(), t(vec![Value::Int(100), Value::Float(1.5)])]),
            t(vec!["b".into(), Value::List(vec!["-1".into(), "2_0".into()])]),
            t(vec!["c".into(), "12".into()]),
            t(vec!["d".into(), Value::Bytes(b"12".to_vec())]),
            t(vec!["e".into(), t(vec![Value::None, Value::Int(1)])]),
            t(vec!["f".into(), t(vec![Value::Int(1), Value::Float(f64::NAN)])]),
            t(vec![
                "g".into(),
                t(vec![Value::Float(f64::INFINITY), Value::Int(1)]),
            ]),
            t(vec![
                Value::Bytes(b"h".to_vec()),
                t(vec![Value::Int(1), Value::Int(1)]),
            ]),
            t(vec!["i".into(), t(vec![Value::Int(1)])]),
            Value::from("xy"),
            Value::Int(5),
            Value::Dict(vec![
                ("j".into(), Value::None),
                (t(vec![Value::Int(7), Value::Int(8)]), Value::None),
            ]),
        ]);
        let got = decode_points(&dumps_with(&payload, Protocol::V4), 999.0, &Limits::default());
        let p = |name: &str, timestamp: f64, value: f64| {
            Ok(PicklePoint {
                name: name.into(),
                value,
                timestamp,
            })
        };
        assert_eq!(
            got,
            Ok(vec![
                p("a", 100.0, 1.5),
                p("b", 999.0, 20.0),
                p("c", 1.0, 2.0),
                p("d", 49.0, 50.0),
                Err(EntryError::NotANumber),
                Err(EntryError::NanValue { name: "f".into() }),
                Err(EntryError::TimestampNotFinite { name: "g".into() }),
                Err(EntryError::NameNotStr),
                Err(EntryError::Shape),
                Err(EntryError::Shape),
                Err(EntryError::Shape),
                p("j", 7.0, 8.0),
            ])
        );
    }

    #[test]
    fn listed_name_only_for_failures_after_carbons_lists() {
        let nan = EntryError::NanValue { name: "f".into() };
        let inf = EntryError::TimestampNotFinite { name: "g".into() };
        assert_eq!((nan.listed_name(), inf.listed_name()), (Some("f"), Some("g")));
        for before in [EntryError::Shape, EntryError::NotANumber, EntryError::NameNotStr] {
            assert_eq!(before.listed_name(), None, "{before:?}");
        }
    }

    #[test]
    fn whole_frame_errors() {
        assert_eq!(
            decode_points(&dumps(&Value::Int(1)), 0.0, &Limits::default()),
            Err(PointsError::NotIterable)
        );
        assert!(matches!(
            decode_points(b"\x80\x02", 0.0, &Limits::default()),
            Err(PointsError::Pickle(PickleError::Truncated))
        ));
    }
}
