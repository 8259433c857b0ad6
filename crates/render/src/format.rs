//! Output formats: graphite-web's json (with maxDataPoints consolidation), csv and raw.

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
fn json_number(v: Option<f64>) -> String {
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
        Some(f) => py_float_repr(f),
    }
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
            s.values.drain(..drop);
            s.values_per_point = vpp as usize;
        }
    }
}

/// graphite-web's json body.
pub fn json(list: &mut [TimeSeries], opts: &JsonOptions) -> String {
    if let Some(max) = opts.max_data_points {
        apply_max_data_points(list, max);
    }
    let mut out = String::from("[");
    let mut first = true;
    for s in list.iter() {
        let mut points = s.datapoints();
        if opts.no_null_points {
            points.retain(|(v, _)| v.is_some_and(|f| !f.is_nan()));
            if points.is_empty() {
                continue;
            }
        }
        if !first {
            out.push_str(", ");
        }
        first = false;
        out.push_str("{\"target\": ");
        out.push_str(&serde_json::Value::String(s.name.clone()).to_string());
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
        for (i, (v, ts)) in points.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push('[');
            out.push_str(&json_number(*v));
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
        let vals: Vec<String> = s
            .iter_values()
            .iter()
            .map(|v| v.map_or_else(|| "None".to_string(), py_float_repr))
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
        for (i, v) in s.iter_values().iter().enumerate() {
            let ts = s.start + i as i64 * s.step;
            let when = jiff::Timestamp::from_second(ts)
                .map(|t| t.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            let name = if s.name.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.name.replace('"', "\"\""))
            } else {
                s.name.clone()
            };
            let value = v.map(py_float_repr).unwrap_or_default();
            out.push_str(&format!("{name},{when},{value}\r\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
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
