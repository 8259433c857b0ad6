//! Carbonlink (port 7002): graphite-web asking carbon-cache for points not yet on disk.
//!
//! A request is a length-prefixed pickled dict. graphite-web 1.1 builds it as
//! `dict(type='cache-query', metric=m)` (or `get-metadata` / `set-metadata`) and pickles it with
//! `CARBONLINK_PICKLE_PROTOCOL = -1`, i.e. the highest protocol (5 under Python 3.8+). Carbon
//! answers with `pickle.dumps(result, protocol=2)`; the reply shapes are in [`Reply`].

use crate::pickle::{LegacyStrings, Limits, PickleError, Value, dumps, loads_with};
use thiserror::Error;

/// A decoded carbonlink request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `{'type': 'cache-query', 'metric': m}`: the cached points of one metric.
    CacheQuery {
        /// Metric name.
        metric: String,
    },
    /// `{'type': 'cache-query-bulk', 'metrics': [...]}`: the cached points of several metrics.
    CacheQueryBulk {
        /// Metric names, in request order.
        metrics: Vec<String>,
    },
    /// `{'type': 'get-metadata', 'metric': m, 'key': k}`.
    GetMetadata {
        /// Metric name.
        metric: String,
        /// Metadata key; carbon supports only `aggregationMethod`.
        key: String,
    },
    /// `{'type': 'set-metadata', 'metric': m, 'key': k, 'value': v}`.
    SetMetadata {
        /// Metric name.
        metric: String,
        /// Metadata key; carbon supports only `aggregationMethod`.
        key: String,
        /// The new value, as sent.
        value: Value,
    },
    /// Any other `type`; answer with [`Reply::invalid_type`].
    Unknown {
        /// The `type` field as sent.
        kind: Value,
    },
}

/// Why a request could not be understood. Carbon raises on all of these and drops the
/// connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    /// Not a pickle we accept.
    #[error(transparent)]
    Pickle(#[from] PickleError),
    /// The pickle is not a dict.
    #[error("request is not a dict")]
    NotADict,
    /// A required field is missing.
    #[error("request has no {0:?} field")]
    Missing(&'static str),
    /// A field has a type we do not serve (e.g. a non-`str` metric name).
    #[error("request field {0:?} has an unsupported type")]
    BadField(&'static str),
}

/// Decodes a request frame's payload.
pub fn decode_request(payload: &[u8], limits: &Limits) -> Result<Request, RequestError> {
    let v = loads_with(payload, limits, LegacyStrings::Utf8)?;
    if !matches!(v, Value::Dict(_)) {
        return Err(RequestError::NotADict);
    }
    let field = |name: &'static str| v.get(name).ok_or(RequestError::Missing(name));
    let text = |name: &'static str| -> Result<String, RequestError> {
        field(name)?
            .as_str()
            .map(str::to_owned)
            .ok_or(RequestError::BadField(name))
    };
    let kind = field("type")?;
    Ok(match kind.as_str() {
        Some("cache-query") => Request::CacheQuery {
            metric: text("metric")?,
        },
        Some("cache-query-bulk") => {
            let items = field("metrics")?
                .iter_items()
                .ok_or(RequestError::BadField("metrics"))?;
            let metrics = items
                .map(|m| {
                    m.as_str()
                        .map(str::to_owned)
                        .ok_or(RequestError::BadField("metrics"))
                })
                .collect::<Result<_, _>>()?;
            Request::CacheQueryBulk { metrics }
        }
        Some("get-metadata") => Request::GetMetadata {
            metric: text("metric")?,
            key: text("key")?,
        },
        Some("set-metadata") => Request::SetMetadata {
            metric: text("metric")?,
            key: text("key")?,
            value: field("value")?.clone(),
        },
        // Carbon formats the error with `"..." % request['type']`: a tuple is taken as the
        // format arguments, so only a 1-tuple works and any other length raises.
        _ => match kind {
            Value::Tuple(items) if items.len() != 1 => return Err(RequestError::BadField("type")),
            _ => Request::Unknown { kind: kind.clone() },
        },
    })
}

/// Builds a request value exactly as graphite-web's `CarbonLinkPool` does (for clients and
/// tests); pickle it with protocol 5 to match graphite-web under Python 3.
pub fn request_value(req: &Request) -> Value {
    let s = |k: &str, v: &str| (Value::from(k), Value::from(v));
    Value::Dict(match req {
        Request::CacheQuery { metric } => vec![s("type", "cache-query"), s("metric", metric)],
        Request::CacheQueryBulk { metrics } => vec![
            s("type", "cache-query-bulk"),
            (
                Value::from("metrics"),
                Value::List(metrics.iter().map(|m| Value::from(m.as_str())).collect()),
            ),
        ],
        Request::GetMetadata { metric, key } => {
            vec![s("type", "get-metadata"), s("metric", metric), s("key", key)]
        }
        Request::SetMetadata { metric, key, value } => vec![
            s("type", "set-metadata"),
            s("metric", metric),
            s("key", key),
            (Value::from("value"), value.clone()),
        ],
        Request::Unknown { kind } => vec![(Value::from("type"), kind.clone())],
    })
}

/// A reply, in the shapes carbon's `CacheManagementHandler` sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `{'datapoints': [(ts, value), …]}`.
    Datapoints(Vec<(f64, f64)>),
    /// `{'datapointsByMetric': {metric: [(ts, value), …], …}}`.
    DatapointsByMetric(Vec<(String, Vec<(f64, f64)>)>),
    /// `{'value': v}` for get-metadata.
    Value(Value),
    /// `{'old_value': old, 'new_value': new}` for set-metadata.
    Changed {
        /// The previous value.
        old_value: Value,
        /// The value now set (as the request sent it).
        new_value: Value,
    },
    /// `{'error': message}`.
    Error(String),
}

impl Reply {
    /// Carbon's answer to an unknown request type: `Invalid request type "X"` with Python's
    /// `str()` of the type.
    ///
    /// Python's `%` takes a 1-tuple as its argument list, so `('t',)` formats as `t`.
    pub fn invalid_type(kind: &Value) -> Reply {
        let shown = match kind {
            Value::Tuple(items) if items.len() == 1 => items.iter().map(Value::py_str).collect(),
            other => other.py_str(),
        };
        Reply::Error(format!("Invalid request type \"{shown}\""))
    }

    /// Carbon's error text for a metadata key other than `aggregationMethod` (carbon wraps it
    /// in a full Python traceback; this is its last line).
    pub fn unsupported_metadata_key(key: &str) -> Reply {
        Reply::Error(format!("ValueError: Unsupported metadata key \"{key}\""))
    }

    /// The reply as a Python value.
    pub fn to_value(&self) -> Value {
        let points = |pts: &[(f64, f64)]| {
            Value::List(
                pts.iter()
                    .map(|&(t, v)| Value::Tuple(vec![Value::Float(t), Value::Float(v)]))
                    .collect(),
            )
        };
        let one = |k: &str, v: Value| Value::Dict(vec![(Value::from(k), v)]);
        match self {
            Reply::Datapoints(p) => one("datapoints", points(p)),
            Reply::DatapointsByMetric(by) => one(
                "datapointsByMetric",
                Value::Dict(
                    by.iter()
                        .map(|(m, p)| (Value::from(m.as_str()), points(p)))
                        .collect(),
                ),
            ),
            Reply::Value(v) => one("value", v.clone()),
            Reply::Changed { old_value, new_value } => Value::Dict(vec![
                (Value::from("old_value"), old_value.clone()),
                (Value::from("new_value"), new_value.clone()),
            ]),
            Reply::Error(e) => one("error", Value::from(e.as_str())),
        }
    }

    /// The reply pickled with protocol 2, as carbon sends it (frame it with
    /// [`crate::framing::encode_frame`]).
    pub fn encode(&self) -> Vec<u8> {
        dumps(&self.to_value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pickle::{Protocol, dumps_with, loads};

    fn round(req: Request) {
        let bytes = dumps_with(&request_value(&req), Protocol::V5);
        assert_eq!(decode_request(&bytes, &Limits::default()), Ok(req));
    }

    #[test]
    fn requests_round_trip() {
        round(Request::CacheQuery { metric: "a.b".into() });
        round(Request::CacheQueryBulk {
            metrics: vec!["a".into(), "b".into()],
        });
        round(Request::GetMetadata {
            metric: "a".into(),
            key: "aggregationMethod".into(),
        });
        round(Request::SetMetadata {
            metric: "a".into(),
            key: "aggregationMethod".into(),
            value: "max".into(),
        });
        round(Request::Unknown { kind: "nope".into() });
    }

    #[test]
    fn bad_requests() {
        let l = Limits::default();
        assert_eq!(
            decode_request(&dumps(&Value::List(vec![])), &l),
            Err(RequestError::NotADict)
        );
        assert_eq!(
            decode_request(&dumps(&Value::Dict(vec![])), &l),
            Err(RequestError::Missing("type"))
        );
        let v = Value::Dict(vec![("type".into(), "cache-query".into())]);
        assert_eq!(
            decode_request(&dumps(&v), &l),
            Err(RequestError::Missing("metric"))
        );
        let v = Value::Dict(vec![
            ("type".into(), "cache-query".into()),
            ("metric".into(), Value::Int(1)),
        ]);
        assert_eq!(
            decode_request(&dumps(&v), &l),
            Err(RequestError::BadField("metric"))
        );
    }

    #[test]
    fn replies() {
        assert_eq!(
            Reply::invalid_type(&Value::Int(5)),
            Reply::Error("Invalid request type \"5\"".into())
        );
        assert_eq!(
            Reply::invalid_type(&Value::Bytes(b"x".to_vec())),
            Reply::Error("Invalid request type \"b'x'\"".into())
        );
        let r = Reply::Datapoints(vec![(10.0, 1.0)]);
        assert_eq!(loads(&r.encode()), Ok(r.to_value()));
    }
}
