//! graphite-web's `TimeSeries`: values on a fixed step, plus the metadata functions read and write.

/// Tags in insertion order, values as strings (graphite-web's `Tags` stringifies on assignment).
pub type Tags = Vec<(String, String)>;

/// One series.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeSeries {
    /// The name shown as `target` (functions rewrite it).
    pub name: String,
    /// Timestamp of the first value.
    pub start: i64,
    /// End of the range.
    pub end: i64,
    /// Seconds per raw value.
    pub step: i64,
    /// Raw values.
    pub values: Vec<Option<f64>>,
    /// How values are folded when consolidated (`average`, `sum`, …).
    pub consolidation_func: String,
    /// Raw values per output value (set by `normalize` and by maxDataPoints).
    pub values_per_point: usize,
    /// Fraction of non-null values a consolidated bucket needs.
    pub x_files_factor: f64,
    /// The path expression the series came from (names aggregated series).
    pub path_expression: String,
    /// The series' tags.
    pub tags: Tags,
    /// How the graph draws it (graphite-web's `series.options` plus `series.color`), set by the
    /// Graph functions (`color`, `alpha`, `lineWidth`, `dashed`, `stacked`, …) for the png/svg
    /// renderer; key → value as Python's `str()` (`"True"`, `"0.5"`, `"red"`). Never in json.
    pub style: Tags,
    /// Which raw values are Python ints (countSeries, identity, isNonNull, events, the zeros of
    /// transformNull's default), which graphite-web writes as `1`, not `1.0`, in json, csv, raw,
    /// pickle and msgpack; empty when none are. Cleared by every function that is not known to
    /// pass values through unchanged.
    pub int_points: Vec<bool>,
    /// graphite-web's name is `None` (verticalLine without a label): `name` holds `"None"`, which
    /// is what wrapping functions print and what its `name` tag says (graphite-web's tags are
    /// strings), and the formats write json `null`, csv `""`, pickle `None`. Dropped once a
    /// function renames the series.
    pub name_is_none: bool,
}

impl TimeSeries {
    /// A series with graphite-web's defaults: average consolidation, tags `{name}`.
    pub fn new(name: &str, start: i64, end: i64, step: i64, values: Vec<Option<f64>>) -> TimeSeries {
        TimeSeries {
            name: name.to_string(),
            start,
            end,
            step,
            values,
            consolidation_func: "average".into(),
            values_per_point: 1,
            x_files_factor: 0.0,
            path_expression: name.to_string(),
            tags: default_tags(name),
            style: Vec::new(),
            int_points: Vec::new(),
            name_is_none: false,
        }
    }

    /// Sets a tag, keeping its place if it exists.
    pub fn set_tag(&mut self, key: &str, value: impl Into<String>) {
        set_tag(&mut self.tags, key, value.into());
    }

    /// The values as graphite-web iterates them: consolidated by `values_per_point` with the
    /// series' consolidation function and xFilesFactor, a trailing partial bucket included.
    pub fn iter_values(&self) -> Vec<Option<f64>> {
        let vpp = self.values_per_point.max(1);
        if vpp == 1 {
            return self.values.clone();
        }
        self.values
            .chunks(vpp)
            .map(|chunk| {
                let mut buf: Vec<f64> = Vec::with_capacity(vpp);
                let mut non_null = 0usize;
                for v in chunk {
                    match v {
                        Some(x) => {
                            buf.push(*x);
                            non_null += 1;
                        }
                        None if self.consolidation_func == "avg_zero" => buf.push(0.0),
                        None => {}
                    }
                }
                if non_null > 0 && (non_null as f64 / vpp as f64) >= self.x_files_factor {
                    consolidate(&self.consolidation_func, &buf)
                } else {
                    None
                }
            })
            .collect()
    }

    /// Marks every raw value as a Python int.
    pub fn set_all_ints(&mut self) {
        self.int_points = vec![true; self.values.len()];
    }

    /// Whether raw value `i` is a Python int.
    pub fn is_int(&self, i: usize) -> bool {
        self.int_points.len() == self.values.len() && self.int_points.get(i).copied().unwrap_or(false)
    }

    /// Which of the values `iter_values` yields are Python ints: a raw value as marked; a
    /// consolidated bucket when it has only ints and the function keeps them (`sum`, `max`,
    /// `min`, `first`, `last`; an average divides into a float).
    pub fn output_ints(&self) -> Vec<bool> {
        if self.int_points.is_empty() || self.int_points.len() != self.values.len() {
            return Vec::new();
        }
        let vpp = self.values_per_point.max(1);
        if vpp == 1 {
            return self.int_points.clone();
        }
        let keeps = matches!(
            self.consolidation_func.as_str(),
            "sum" | "max" | "min" | "first" | "last"
        );
        self.values
            .chunks(vpp)
            .zip(self.int_points.chunks(vpp))
            .map(|(vals, ints)| keeps && vals.iter().zip(ints).all(|(v, i)| v.is_none() || *i))
            .collect()
    }

    /// `(value, timestamp)` pairs as graphite-web's `datapoints()`: timestamps from `start` to
    /// `end` inclusive every `step * values_per_point`, zipped (so the shorter side wins).
    pub fn datapoints(&self) -> Vec<(Option<f64>, i64)> {
        let stride = (self.step * self.values_per_point.max(1) as i64).max(1);
        let values = self.iter_values();
        let mut out = Vec::with_capacity(values.len());
        let mut ts = self.start;
        for v in values {
            if ts > self.end {
                break;
            }
            out.push((v, ts));
            ts += stride;
        }
        out
    }
}

/// The tags graphite-web gives a series it fetched: `{name}`, or for a tagged name
/// (`a.b;k=v`) the tags it carries plus `name`.
pub fn default_tags(name: &str) -> Tags {
    let looks_called = name.ends_with(')') && name.contains('(');
    match name.split_once(';') {
        Some((path, rest)) if !looks_called => {
            let mut tags: Vec<(String, String)> = rest
                .split(';')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            tags.sort();
            tags.push(("name".into(), path.to_string()));
            tags
        }
        _ => vec![("name".into(), name.to_string())],
    }
}

/// Sets `key` in `tags`, keeping its place if it is already there.
pub fn set_tag(tags: &mut Tags, key: &str, value: String) {
    if let Some(slot) = tags.iter_mut().find(|(k, _)| k == key) {
        slot.1 = value;
    } else {
        tags.push((key.to_string(), value));
    }
}

/// One of `TimeSeries`' consolidation functions over the non-null values of a bucket.
pub fn consolidate(func: &str, buf: &[f64]) -> Option<f64> {
    let first = *buf.first()?;
    Some(match func {
        "sum" => buf.iter().sum(),
        "average" | "avg" | "avg_zero" => buf.iter().sum::<f64>() / buf.len() as f64,
        "max" => buf.iter().copied().fold(first, py_max),
        "min" => buf.iter().copied().fold(first, py_min),
        "first" => first,
        "last" => *buf.last()?,
        _ => return None,
    })
}

/// Python's `max` over two floats: keeps the first unless the second is strictly greater.
pub fn py_max(a: f64, b: f64) -> f64 {
    if b > a { b } else { a }
}

/// Python's `min` over two floats.
pub fn py_min(a: f64, b: f64) -> f64 {
    if b < a { b } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consolidation_keeps_partial_bucket_and_xff() {
        let mut s = TimeSeries::new("a", 0, 50, 10, vec![Some(1.0), None, Some(3.0), None, None]);
        s.values_per_point = 2;
        assert_eq!(s.iter_values(), vec![Some(1.0), Some(3.0), None]);
        s.x_files_factor = 1.0;
        assert_eq!(s.iter_values(), vec![None, None, None]);
        s.x_files_factor = 0.0;
        s.consolidation_func = "avg_zero".into();
        assert_eq!(s.iter_values(), vec![Some(0.5), Some(1.5), None]);
        assert_eq!(s.datapoints(), vec![(Some(0.5), 0), (Some(1.5), 20), (None, 40)]);
    }
}
