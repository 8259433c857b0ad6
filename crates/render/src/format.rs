//! Output formats: graphite-web's json (with maxDataPoints consolidation), csv, raw, and the
//! pickle and msgpack that cluster nodes exchange.

use crate::pyfmt::py_float_repr;
use crate::series::TimeSeries;

/// Options of the json format.
#[derive(Debug, Clone, Default)]
pub struct JsonOptions {
    /// `maxDataPoints`.
    pub max_data_points: Option<usize>,
    /// `noNullPoints`.
    pub no_null_points: bool,
}

/// Python's `json.dumps` of a float, with graphite-web's `NaN → null`, `Infinity → 1e9999`.
fn json_number(v: Option<f64>, int: bool) -> String {
    match v {
        None => "null".into(),
        Some(f) if f.is_nan() => "null".into(),
        Some(f) if f.is_infinite() => {
            if f > 0.0 {
                "1e9999".into()
            } else {
                "-1e9999".into()
            }
        }
        Some(f) => py_number(f, int),
    }
}

/// Python's `repr`/`str` of a value: an int (`1`) when the series holds ints, else a float.
fn py_number(f: f64, int: bool) -> String {
    match as_int(f, int) {
        Some(i) => i.to_string(),
        None => py_float_repr(f),
    }
}

/// The value as the Python int it is, when the series holds ints.
fn as_int(f: f64, int: bool) -> Option<i64> {
    (int && f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

/// Applies maxDataPoints as `renderViewJson` does, including its start nudge.
pub fn apply_max_data_points(list: &mut [TimeSeries], max: usize) {
    if list.is_empty() {
        return;
    }
    let start = list.iter().map(|s| s.start).min().unwrap_or(0);
    let end = list.iter().map(|s| s.end).max().unwrap_or(0);
    let range = (end - start) as f64;
    for s in list.iter_mut() {
        if max == 1 {
            s.values_per_point = s.values.len().max(1);
            continue;
        }
        if s.step <= 0 {
            continue;
        }
        let n = range / s.step as f64;
        if (max as f64) < n {
            let vpp = (n / max as f64).ceil() as i64;
            let spp = vpp * s.step;
            let nudge = spp + s.start.rem_euclid(s.step) - s.start.rem_euclid(spp);
            s.start += nudge;
            let lose = (nudge as f64 / s.step as f64) as i64;
            let drop = (lose - 1).max(0) as usize;
            let drop = drop.min(s.values.len());
            if s.int_points.len() == s.values.len() {
                s.int_points.drain(..drop);
            }
            s.values.drain(..drop);
            s.values_per_point = vpp as usize;
        }
    }
}

/// graphite-web's json body.
pub fn json(list: &mut [TimeSeries], opts: &JsonOptions) -> String {
    // renderViewJson's `if any(data)`: a series with no values is falsy, so when every series is
    // empty (delay(x,0)) the answer is `[]`.
    if list.iter().all(|s| s.values.is_empty()) {
        return "[]".into();
    }
    if let Some(max) = opts.max_data_points {
        apply_max_data_points(list, max);
    }
    let mut out = String::from("[");
    let mut first = true;
    for s in list.iter() {
        let ints = s.output_ints();
        let mut points: Vec<(Option<f64>, i64, bool)> = s
            .datapoints()
            .into_iter()
            .enumerate()
            .map(|(i, (v, t))| (v, t, ints.get(i).copied().unwrap_or(false)))
            .collect();
        if opts.no_null_points {
            points.retain(|(v, _, _)| v.is_some_and(|f| !f.is_nan()));
            if points.is_empty() {
                continue;
            }
        }
        if !first {
            out.push_str(", ");
        }
        first = false;
        out.push_str("{\"target\": ");
        if s.name_is_none {
            out.push_str("null");
        } else {
            out.push_str(&serde_json::Value::String(s.name.clone()).to_string());
        }
        out.push_str(", \"tags\": {");
        for (i, (k, v)) in s.tags.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&serde_json::Value::String(k.clone()).to_string());
            out.push_str(": ");
            out.push_str(&serde_json::Value::String(v.clone()).to_string());
        }
        out.push_str("}, \"datapoints\": [");
        for (i, (v, ts, int)) in points.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push('[');
            out.push_str(&json_number(*v, *int));
            out.push_str(", ");
            out.push_str(&ts.to_string());
            out.push(']');
        }
        out.push_str("]}");
    }
    out.push(']');
    out
}

/// graphite-web's raw format: `name,start,end,step|v1,v2,…` per series, `None` for gaps.
pub fn raw(list: &[TimeSeries]) -> String {
    let mut out = String::new();
    for s in list {
        out.push_str(&format!("{},{},{},{}|", s.name, s.start, s.end, s.step));
        let ints = s.output_ints();
        let vals: Vec<String> = s
            .iter_values()
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let int = ints.get(i).copied().unwrap_or(false);
                v.map_or_else(|| "None".to_string(), |f| py_number(f, int))
            })
            .collect();
        out.push_str(&vals.join(","));
        out.push('\n');
    }
    out
}

/// graphite-web's csv format: `name,YYYY-MM-DD HH:MM:SS,value` rows in the request's time zone.
pub fn csv(list: &[TimeSeries], tz: &jiff::tz::TimeZone) -> String {
    let mut out = String::new();
    for s in list {
        let ints = s.output_ints();
        for (i, v) in s.iter_values().iter().enumerate() {
            let ts = s.start + i as i64 * s.step;
            let when = jiff::Timestamp::from_second(ts)
                .map(|t| t.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            let name = if s.name_is_none {
                String::new()
            } else if s.name.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.name.replace('"', "\"\""))
            } else {
                s.name.clone()
            };
            let int = ints.get(i).copied().unwrap_or(false);
            let value = v.map(|f| py_number(f, int)).unwrap_or_default();
            out.push_str(&format!("{name},{when},{value}\r\n"));
        }
    }
    out
}

/// One series as graphite-web's `TimeSeries.getInfo()` gives it to pickle and msgpack: the wire
/// format between cluster nodes (a remote graphite-web reads `/render?format=pickle`).
fn series_info(s: &TimeSeries) -> Vec<(&'static str, Wire)> {
    vec![
        (
            "name",
            if s.name_is_none {
                Wire::None
            } else {
                Wire::Str(s.name.clone())
            },
        ),
        ("start", Wire::Int(s.start)),
        ("end", Wire::Int(s.end)),
        ("step", Wire::Int(s.step)),
        (
            "values",
            Wire::List(
                s.values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| match v {
                        None => Wire::None,
                        Some(f) => as_int(*f, s.is_int(i)).map_or(Wire::Float(*f), Wire::Int),
                    })
                    .collect(),
            ),
        ),
        ("pathExpression", Wire::Str(s.path_expression.clone())),
        ("valuesPerPoint", Wire::Int(s.values_per_point as i64)),
        ("consolidationFunc", Wire::Str(s.consolidation_func.clone())),
        ("xFilesFactor", wire_number(s.x_files_factor)),
    ]
}

/// A number as Python holds it: graphite-web's default xFilesFactor is the int `0`.
fn wire_number(x: f64) -> Wire {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        Wire::Int(x as i64)
    } else {
        Wire::Float(x)
    }
}

/// The values pickle and msgpack carry (a small subset of Python's).
#[derive(Debug, Clone, PartialEq)]
pub enum Wire {
    /// `None`.
    None,
    /// `True`/`False`.
    Bool(bool),
    /// An `int`.
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `list` (or tuple; msgpack has no difference).
    List(Vec<Wire>),
    /// A `dict` with string keys, in insertion order.
    Map(Vec<(String, Wire)>),
}

impl Wire {
    fn to_pickle(&self) -> carbide_protocol::pickle::Value {
        use carbide_protocol::pickle::Value as P;
        match self {
            Wire::None => P::None,
            Wire::Bool(b) => P::Bool(*b),
            Wire::Int(i) => P::Int(*i),
            Wire::Float(f) => P::Float(*f),
            Wire::Str(s) => P::Str(s.clone()),
            Wire::List(l) => P::List(l.iter().map(Wire::to_pickle).collect()),
            Wire::Map(m) => P::Dict(
                m.iter()
                    .map(|(k, v)| (P::Str(k.clone()), v.to_pickle()))
                    .collect(),
            ),
        }
    }

    /// MessagePack, as `msgpack.dumps(…, use_bin_type=True)` writes it (str types for text,
    /// smallest int encodings, float64).
    pub fn write_msgpack(&self, out: &mut Vec<u8>) {
        match self {
            Wire::None => out.push(0xc0),
            Wire::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
            Wire::Int(i) => msgpack_int(*i, out),
            Wire::Float(f) => {
                out.push(0xcb);
                out.extend_from_slice(&f.to_be_bytes());
            }
            Wire::Str(s) => msgpack_str(s, out),
            Wire::List(l) => {
                msgpack_len(l.len(), 0x90, 0xdc, out);
                for v in l {
                    v.write_msgpack(out);
                }
            }
            Wire::Map(m) => {
                msgpack_len(m.len(), 0x80, 0xde, out);
                for (k, v) in m {
                    msgpack_str(k, out);
                    v.write_msgpack(out);
                }
            }
        }
    }
}

fn msgpack_len(n: usize, fix: u8, wide16: u8, out: &mut Vec<u8>) {
    if n < 16 {
        out.push(fix | n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(wide16);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(wide16 + 1);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn msgpack_str(s: &str, out: &mut Vec<u8>) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if let Ok(n) = u8::try_from(n) {
        out.push(0xd9);
        out.push(n);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(0xda);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

fn msgpack_int(i: i64, out: &mut Vec<u8>) {
    if (0..128).contains(&i) {
        out.push(i as u8);
    } else if (-32..0).contains(&i) {
        out.push(i as i8 as u8);
    } else if i >= 0 {
        if let Ok(v) = u8::try_from(i) {
            out.extend_from_slice(&[0xcc, v]);
        } else if let Ok(v) = u16::try_from(i) {
            out.push(0xcd);
            out.extend_from_slice(&v.to_be_bytes());
        } else if let Ok(v) = u32::try_from(i) {
            out.push(0xce);
            out.extend_from_slice(&v.to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(i as u64).to_be_bytes());
        }
    } else if let Ok(v) = i8::try_from(i) {
        out.extend_from_slice(&[0xd0, v as u8]);
    } else if let Ok(v) = i16::try_from(i) {
        out.push(0xd1);
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = i32::try_from(i) {
        out.push(0xd2);
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

fn series_list(list: &[TimeSeries]) -> Wire {
    Wire::List(
        list.iter()
            .map(|s| {
                Wire::Map(
                    series_info(s)
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                )
            })
            .collect(),
    )
}

/// graphite-web's `format=pickle`: a list of `getInfo()` dicts (protocol 4; any Python 3 reads it).
pub fn pickle(list: &[TimeSeries]) -> Vec<u8> {
    wire_pickle(&series_list(list))
}

/// graphite-web's `format=msgpack`: the same dicts as MessagePack.
pub fn msgpack(list: &[TimeSeries]) -> Vec<u8> {
    wire_msgpack(&series_list(list))
}

/// Pickles any [`Wire`] value (protocol 4).
pub fn wire_pickle(v: &Wire) -> Vec<u8> {
    carbide_protocol::pickle::dumps_with(&v.to_pickle(), carbide_protocol::pickle::Protocol::V4)
}

/// Any [`Wire`] value as MessagePack.
pub fn wire_msgpack(v: &Wire) -> Vec<u8> {
    let mut out = Vec::new();
    v.write_msgpack(&mut out);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn pickle_reads_back_and_msgpack_bytes() {
        let mut s = TimeSeries::new("a.b", 60, 180, 60, vec![Some(1.5), None]);
        s.path_expression = "a.*".into();
        let back = carbide_protocol::pickle::loads(&pickle(&[s.clone()])).unwrap();
        let first = back.iter_items().unwrap().next().unwrap().clone();
        assert_eq!(first.get("name").and_then(|v| v.as_str()), Some("a.b"));
        assert_eq!(first.get("pathExpression").and_then(|v| v.as_str()), Some("a.*"));
        assert_eq!(
            first.get("values"),
            Some(&carbide_protocol::pickle::Value::List(vec![
                carbide_protocol::pickle::Value::Float(1.5),
                carbide_protocol::pickle::Value::None
            ]))
        );
        let mut out = Vec::new();
        Wire::List(vec![
            Wire::Int(-33),
            Wire::Int(200),
            Wire::Str("x".into()),
            Wire::None,
        ])
        .write_msgpack(&mut out);
        assert_eq!(out, vec![0x94, 0xd0, 0xdf, 0xcc, 200, 0xa1, b'x', 0xc0]);
    }

    use super::*;

    #[test]
    fn max_data_points_nudge() {
        // graphite-web test_render.py style: 60 points of step 1 from 0, maxDataPoints 10.
        let vals: Vec<Option<f64>> = (0..60).map(|i| Some(f64::from(i))).collect();
        let mut list = vec![TimeSeries::new("a", 0, 60, 1, vals)];
        let text = json(
            &mut list,
            &JsonOptions {
                max_data_points: Some(10),
                no_null_points: false,
            },
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let dps = v[0]["datapoints"].as_array().unwrap();
        assert_eq!(dps[0], serde_json::json!([7.5, 6]));
        assert_eq!(dps.len(), 10);
    }
}
