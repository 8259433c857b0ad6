//! graphite-web's Filter Series, Filter Data and Sorting functions.
//!
//! Where graphite-web 1.1.8 on Python 3 raises a `TypeError` (it compares `None` with a number:
//! `useSeriesAbove` on a series with gaps, `averageOutsidePercentile` when a series has no values,
//! `removeBetweenPercentile` on any gap) it answers 500; these functions answer the same request
//! with a 400 naming the cause instead of inventing a result.

use carbide_query::grammar::{Call, Expr, parse_target};

use super::Args;
use super::base::{agg_func, all_series, map, python_replacement};
use crate::RenderError;
use crate::catalog::{FunctionInfo, Param, SL, SLS, def, p, req};
use crate::eval::{Context, Value};
use crate::pyfmt::g;
use crate::series::TimeSeries;

/// graphite-web's aggregation functions, as the `options` of an `aggFunc` parameter.
const AGG_OPTIONS: &[&str] = &[
    "average", "avg", "avg_zero", "count", "current", "diff", "last", "max", "median", "min", "multiply",
    "range", "rangeOf", "stddev", "sum", "total",
];
/// `filterSeries`' operators, sorted as graphite-web lists them.
const OPERATORS: &[&str] = &["!=", "<", "<=", "=", ">", ">="];

const FLOAT_N: Param = req("n", "float");
const INT_N: Param = req("n", "integer");
const AGG_FUNC: Param = Param {
    options: AGG_OPTIONS,
    ..def("func", "aggFunc", "\"average\"")
};

const fn f(name: &'static str, group: &'static str, params: &'static [Param]) -> FunctionInfo {
    FunctionInfo { name, group, params }
}

/// The functions of this group, as `/functions` lists them.
pub const FUNCTIONS: &[FunctionInfo] = &[
    f("currentAbove", "Filter Series", &[SL, FLOAT_N]),
    f("currentBelow", "Filter Series", &[SL, FLOAT_N]),
    f("averageAbove", "Filter Series", &[SL, FLOAT_N]),
    f("averageBelow", "Filter Series", &[SL, FLOAT_N]),
    f("maximumAbove", "Filter Series", &[SL, FLOAT_N]),
    f("maximumBelow", "Filter Series", &[SL, FLOAT_N]),
    f("minimumAbove", "Filter Series", &[SL, FLOAT_N]),
    f("minimumBelow", "Filter Series", &[SL, FLOAT_N]),
    f("exclude", "Filter Series", &[SL, req("pattern", "string")]),
    f("grep", "Filter Series", &[SL, req("pattern", "string")]),
    f("highest", "Filter Series", &[SL, INT_N, AGG_FUNC]),
    f("lowest", "Filter Series", &[SL, INT_N, AGG_FUNC]),
    f("lowestCurrent", "Filter Series", &[SL, INT_N]),
    f(
        "removeEmptySeries",
        "Filter Series",
        &[SL, p("xFilesFactor", "float")],
    ),
    f("unique", "Filter Series", &[SLS]),
    f("mostDeviant", "Filter Series", &[SL, INT_N]),
    f(
        "filterSeries",
        "Filter Series",
        &[
            SL,
            Param {
                options: AGG_OPTIONS,
                ..req("func", "aggFunc")
            },
            Param {
                options: OPERATORS,
                ..req("operator", "string")
            },
            req("threshold", "float"),
        ],
    ),
    f("averageOutsidePercentile", "Filter Series", &[SL, FLOAT_N]),
    f("removeBetweenPercentile", "Filter Series", &[SL, FLOAT_N]),
    f(
        "useSeriesAbove",
        "Filter Series",
        &[
            SL,
            req("value", "float"),
            req("search", "string"),
            req("replace", "string"),
        ],
    ),
    f("removeAboveValue", "Filter Data", &[SL, FLOAT_N]),
    f("removeBelowValue", "Filter Data", &[SL, FLOAT_N]),
    f("removeAbovePercentile", "Filter Data", &[SL, FLOAT_N]),
    f("removeBelowPercentile", "Filter Data", &[SL, FLOAT_N]),
    f(
        "sortBy",
        "Sorting",
        &[SL, AGG_FUNC, def("reverse", "boolean", "false")],
    ),
    f(
        "sortByName",
        "Sorting",
        &[
            SL,
            def("natural", "boolean", "false"),
            def("reverse", "boolean", "false"),
        ],
    ),
    f("sortByTotal", "Sorting", &[SL]),
    f("sortByMinima", "Sorting", &[SL]),
];

/// Runs one function of [`FUNCTIONS`].
pub(crate) fn dispatch(ctx: &Context<'_>, _call: &Call, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let name = a.info.name;
    match name {
        "currentAbove" => filter_series(a, "last", ">"),
        "currentBelow" => filter_series(a, "last", "<="),
        "averageAbove" => filter_series(a, "average", ">"),
        "averageBelow" => filter_series(a, "average", "<="),
        "maximumAbove" => filter_series(a, "max", ">"),
        "maximumBelow" => filter_series(a, "max", "<="),
        "minimumAbove" => filter_series(a, "min", ">"),
        "minimumBelow" => filter_series(a, "min", "<="),
        "filterSeries" => {
            let func = a.required_string(1)?;
            let op = a.required_string(2)?;
            filter_series_with(a, &func, &op, 3)
        }
        "exclude" | "grep" => {
            let pattern = a.required_string(1)?;
            let re = fancy_regex::Regex::new(&pattern).map_err(|e| a.bad(&format!("bad regex: {e}")))?;
            let keep_matches = name == "grep";
            let mut out = Vec::new();
            for s in a.series(0)? {
                let found = re
                    .is_match(&s.name)
                    .map_err(|e| a.bad(&format!("regex failed on {}: {e}", s.name)))?;
                if found == keep_matches {
                    out.push(s);
                }
            }
            Ok(out)
        }
        "highest" | "lowest" => {
            let func = a.string(2)?.unwrap_or_else(|| "average".into());
            // graphite-web's signature defaults n to 1 (its `required` is not enforced).
            let n = py_int(a, 1)?.unwrap_or(1);
            sort_by_agg(a, a.series(0)?, &func, name == "highest").map(|l| py_head(l, n))
        }
        "lowestCurrent" => {
            let n = py_int(a, 1)?.ok_or_else(|| a.bad("missing argument 2"))?;
            sort_by_agg(a, a.series(0)?, "current", false).map(|l| py_head(l, n))
        }
        "removeEmptySeries" => {
            let xff = a.number(1)?.map_or(0.0, |x| x.0);
            Ok(a.series(0)?
                .into_iter()
                .filter(|s| {
                    let vals = s.iter_values();
                    let non_null = vals.iter().filter(|v| v.is_some()).count();
                    non_null > 0 && non_null as f64 / vals.len() as f64 >= xff
                })
                .collect())
        }
        "unique" => {
            let mut seen: Vec<String> = Vec::new();
            let mut out = Vec::new();
            for s in all_series(a) {
                if !seen.contains(&s.name) {
                    seen.push(s.name.clone());
                    out.push(s);
                }
            }
            Ok(out)
        }
        "mostDeviant" => {
            let n = py_int(a, 1)?.ok_or_else(|| a.bad("missing argument 2"))?;
            let mut deviants: Vec<(f64, TimeSeries)> = Vec::new();
            for s in a.series(0)? {
                let vals: Vec<f64> = s.iter_values().into_iter().flatten().collect();
                if vals.is_empty() {
                    continue;
                }
                let mean = vals.iter().sum::<f64>() / vals.len() as f64;
                let square_sum: f64 = vals.iter().map(|v| (v - mean) * (v - mean)).sum();
                deviants.push((square_sum / vals.len() as f64, s));
            }
            deviants.sort_by(|x, y| y.0.partial_cmp(&x.0).unwrap_or(std::cmp::Ordering::Equal));
            Ok(py_head(deviants.into_iter().map(|(_, s)| s).collect(), n))
        }
        "averageOutsidePercentile" => {
            let (mut n, _) = a.required_number(1)?;
            let list = a.series(0)?;
            let averages: Vec<Option<f64>> = list.iter().map(|s| safe_avg(&s.iter_values())).collect();
            if n < 50.0 {
                n = 100.0 - n;
            }
            let low = percentile(&averages, 100.0 - n).map_err(|e| a.bad(e))?;
            let high = percentile(&averages, n).map_err(|e| a.bad(e))?;
            let mut out = Vec::new();
            for (s, avg) in list.into_iter().zip(averages) {
                let (Some(low), Some(avg), Some(high)) = (low, avg, high) else {
                    return Err(a.bad(&format!(
                        "{} has no values to average (graphite-web fails comparing None)",
                        s.name
                    )));
                };
                if !(low < avg && avg < high) {
                    out.push(s);
                }
            }
            Ok(out)
        }
        "removeBetweenPercentile" => remove_between_percentile(a),
        "useSeriesAbove" => use_series_above(ctx, a),
        "removeAboveValue" | "removeBelowValue" => {
            let (n, _) = a.required_number(1)?;
            let above = name == "removeAboveValue";
            Ok(map(a.series(0)?, |s| {
                s.name = format!("{name}({}, {})", s.name, g(n));
                s.path_expression = s.name.clone();
                s.values = s
                    .values
                    .iter()
                    .map(|v| match *v {
                        Some(x) if above && x > n => None,
                        Some(x) if !above && x < n => None,
                        other => other,
                    })
                    .collect();
            }))
        }
        "removeAbovePercentile" | "removeBelowPercentile" => {
            let (n, _) = a.required_number(1)?;
            if n == 0.0 {
                return Err(a.bad("The requested percent is required to be greater than 0"));
            }
            let above = name == "removeAbovePercentile";
            let mut out = a.series(0)?;
            for s in &mut out {
                s.name = format!("{name}({}, {})", s.name, g(n));
                s.path_expression = s.name.clone();
                let vals = s.iter_values();
                // nPercentile(...)[0][0]: no value, an out-of-range rank or an empty range
                // (IndexError) leaves the series as it is.
                let point_count = if s.step == 0 {
                    0
                } else {
                    (s.end - s.start) / s.step
                };
                let Ok(Some(pct)) = percentile(&vals, n) else {
                    continue;
                };
                // nPercentile tags its copy, which shares the series' tags.
                s.set_tag("nPercentile", crate::pyfmt::py_float_repr(n));
                if point_count <= 0 {
                    continue;
                }
                s.values = vals
                    .into_iter()
                    .map(|v| match v {
                        Some(x) if above && x > pct => None,
                        Some(x) if !above && x < pct => None,
                        None => None,
                        other => other,
                    })
                    .collect();
            }
            Ok(out)
        }
        "sortBy" => {
            let func = a.string(1)?.unwrap_or_else(|| "average".into());
            sort_by_agg(a, a.series(0)?, &func, a.boolean(2, false))
        }
        "sortByName" => {
            let natural = a.boolean(1, false);
            let reverse = a.boolean(2, false);
            let mut keyed: Vec<(String, TimeSeries)> = a
                .series(0)?
                .into_iter()
                .map(|s| {
                    (
                        if natural {
                            natural_key(&s.name)
                        } else {
                            s.name.clone()
                        },
                        s,
                    )
                })
                .collect();
            if reverse {
                keyed.sort_by(|x, y| y.0.cmp(&x.0));
            } else {
                keyed.sort_by(|x, y| x.0.cmp(&y.0));
            }
            Ok(keyed.into_iter().map(|(_, s)| s).collect())
        }
        "sortByTotal" => sort_by_agg(a, a.series(0)?, "sum", true),
        "sortByMinima" => {
            let list: Vec<TimeSeries> = a
                .series(0)?
                .into_iter()
                .filter(|s| safe_max(&s.iter_values()).unwrap_or(0.0) > 0.0)
                .collect();
            sort_by_agg(a, list, "min", false)
        }
        other => Err(RenderError::UnknownFunction(other.to_string())),
    }
}

/// `filterSeries(seriesList, func, operator, n)` with n the argument at index 1.
fn filter_series(a: &Args, func: &str, op: &str) -> Result<Vec<TimeSeries>, RenderError> {
    filter_series_with(a, func, op, 1)
}

fn filter_series_with(
    a: &Args,
    func: &str,
    op: &str,
    threshold_at: usize,
) -> Result<Vec<TimeSeries>, RenderError> {
    let f = agg_func(func).ok_or_else(|| a.bad(&format!("Unsupported aggregation function: {func}")))?;
    if !OPERATORS.contains(&op) {
        return Err(a.bad(&format!("Unsupported operator: {op}")));
    }
    let (threshold, _) = a.required_number(threshold_at)?;
    Ok(a.series(0)?
        .into_iter()
        .filter(|s| {
            let v = f(&s.iter_values());
            match op {
                "=" => v.is_some_and(|v| v == threshold),
                "!=" => v.is_none_or(|v| v != threshold),
                ">" => v.is_some_and(|v| v > threshold),
                ">=" => v.is_some_and(|v| v >= threshold),
                "<" => v.is_none_or(|v| v < threshold),
                _ => v.is_none_or(|v| v <= threshold),
            }
        })
        .collect())
}

/// Python's `list.sort(key=keyFunc(getAggFunc(func)), reverse=…)`: stable, no value sorts as -inf.
fn sort_by_agg(
    a: &Args,
    list: Vec<TimeSeries>,
    func: &str,
    reverse: bool,
) -> Result<Vec<TimeSeries>, RenderError> {
    let f = agg_func(func).ok_or_else(|| a.bad(&format!("Unsupported aggregation function: {func}")))?;
    let mut keyed: Vec<(f64, TimeSeries)> = list
        .into_iter()
        .map(|s| (f(&s.iter_values()).unwrap_or(f64::NEG_INFINITY), s))
        .collect();
    if reverse {
        keyed.sort_by(|x, y| y.0.partial_cmp(&x.0).unwrap_or(std::cmp::Ordering::Equal));
    } else {
        keyed.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap_or(std::cmp::Ordering::Equal));
    }
    Ok(keyed.into_iter().map(|(_, s)| s).collect())
}

/// An integer argument as Python's `int()` reads it (floats truncate); `None` when absent.
fn py_int(a: &Args, i: usize) -> Result<Option<i64>, RenderError> {
    Ok(a.number(i)?.map(|(n, _)| n.trunc() as i64))
}

/// Python's `list[:n]`, negative `n` counting from the end.
fn py_head<T>(mut list: Vec<T>, n: i64) -> Vec<T> {
    let len = list.len() as i64;
    let keep = if n < 0 { (len + n).max(0) } else { n.min(len) };
    list.truncate(keep as usize);
    list
}

fn safe_avg(vals: &[Option<f64>]) -> Option<f64> {
    let u: Vec<f64> = vals.iter().flatten().copied().collect();
    (!u.is_empty()).then(|| u.iter().sum::<f64>() / u.len() as f64)
}

fn safe_max(vals: &[Option<f64>]) -> Option<f64> {
    vals.iter().flatten().copied().reduce(crate::series::py_max)
}

/// graphite-web's `_getPercentile` (NIST method, no interpolation) over the non-null points;
/// `Err` where Python raises IndexError (a rank beyond the points, from n > 100 or n < 0).
pub(crate) fn percentile(points: &[Option<f64>], n: f64) -> Result<Option<f64>, &'static str> {
    let mut sorted: Vec<f64> = points.iter().flatten().copied().collect();
    if sorted.is_empty() {
        return Ok(None);
    }
    sorted.sort_by(f64::total_cmp);
    let len = sorted.len() as i64;
    let fractional = (n / 100.0) * (len + 1) as f64;
    let mut rank = fractional.trunc() as i64;
    rank += (fractional - rank as f64).ceil() as i64;
    let idx = if rank == 0 {
        0
    } else if rank - 1 == len {
        len - 1
    } else {
        // Python's negative indexes count from the end.
        let i = rank - 1;
        if i < 0 { i + len } else { i }
    };
    usize::try_from(idx)
        .ok()
        .and_then(|i| sorted.get(i))
        .map(|v| Some(*v))
        .ok_or("percentile out of range (n must be within 0..100)")
}

/// `removeBetweenPercentile`: keeps the series with a value outside the n-th percentile band of
/// its column at some point. Python 3 compares every value with the band, so a gap is an error.
fn remove_between_percentile(a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let (mut n, _) = a.required_number(1)?;
    if n < 50.0 {
        n = 100.0 - n;
    }
    let list = a.series(0)?;
    let cols: Vec<Vec<Option<f64>>> = list.iter().map(TimeSeries::iter_values).collect();
    let width = cols.iter().map(Vec::len).min().unwrap_or(0);
    let mut low = Vec::with_capacity(width);
    let mut high = Vec::with_capacity(width);
    for i in 0..width {
        let column: Vec<Option<f64>> = cols.iter().map(|c| c[i]).collect();
        low.push(percentile(&column, 100.0 - n).map_err(|e| a.bad(e))?);
        high.push(percentile(&column, n).map_err(|e| a.bad(e))?);
    }
    let mut out = Vec::new();
    for (s, vals) in list.into_iter().zip(cols) {
        let mut outside = false;
        for (i, v) in vals.iter().enumerate() {
            let (Some(l), Some(h)) = (low.get(i).copied().flatten(), high.get(i).copied().flatten()) else {
                return Err(a.bad(&format!(
                    "{} is longer than the shortest series or has a gap (graphite-web fails here)",
                    s.name
                )));
            };
            let Some(v) = v else {
                return Err(a.bad(&format!(
                    "{} has a gap (graphite-web fails comparing None)",
                    s.name
                )));
            };
            if !(l < *v && *v < h) {
                outside = true;
            }
        }
        if outside {
            out.push(s);
        }
    }
    Ok(out)
}

/// `useSeriesAbove`: for each series whose maximum exceeds `value`, the series named by the
/// regex-replaced name, evaluated as graphite-web does (`group(name1,name2,…)`).
fn use_series_above(ctx: &Context<'_>, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let (value, _) = a.required_number(1)?;
    let search = a.required_string(2)?;
    let replace = python_replacement(&a.required_string(3)?);
    let re = fancy_regex::Regex::new(&search).map_err(|e| a.bad(&format!("bad regex: {e}")))?;
    let mut names = Vec::new();
    for s in a.series(0)? {
        let new_name = re.replace_all(&s.name, replace.as_str()).into_owned();
        // Python's max() over the values: a gap or an empty series raises, as in graphite-web.
        let vals = s.iter_values();
        if vals.iter().any(Option::is_none) || vals.is_empty() {
            return Err(a.bad(&format!(
                "{} has gaps or no values (graphite-web's max() fails on None)",
                s.name
            )));
        }
        if safe_max(&vals).is_some_and(|m| m > value) {
            names.push(new_name);
        }
    }
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let text = format!("group({})", names.join(","));
    let Expr::Call(group) = parse_target(&text)? else {
        return Err(a.bad(&format!("cannot evaluate {text}")));
    };
    let mut out = Vec::new();
    for arg in &group.args {
        match ctx.value(arg)? {
            Value::Series(list) => out.extend(list.into_iter().filter(|s| !s.values.is_empty())),
            _ => return Err(a.bad(&format!("{text} names something that is not a series"))),
        }
    }
    Ok(out)
}

/// sortByName's natural key: every run of digits zero-padded to ten places.
fn natural_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 16);
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if !digits.is_empty() {
            let trimmed = digits.trim_start_matches('0');
            let value = if trimmed.is_empty() { "0" } else { trimmed };
            for _ in value.len()..10 {
                out.push('0');
            }
            out.push_str(value);
            digits.clear();
        }
    };
    for c in name.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_nist_ranks() {
        let pts: Vec<Option<f64>> = [5.0, 1.0, 3.0, 2.0, 4.0].iter().map(|v| Some(*v)).collect();
        assert_eq!(percentile(&pts, 50.0), Ok(Some(3.0)));
        assert_eq!(percentile(&pts, 10.0), Ok(Some(1.0)));
        assert_eq!(percentile(&pts, 100.0), Ok(Some(5.0)));
        assert_eq!(percentile(&[None], 50.0), Ok(None));
        assert!(percentile(&pts, 150.0).is_err());
    }

    #[test]
    fn natural_key_pads_numbers() {
        assert_eq!(natural_key("server12.a"), "server0000000012.a");
        assert!(natural_key("server2") < natural_key("server11"));
    }

    #[test]
    fn head_like_python_slices() {
        assert_eq!(py_head(vec![1, 2, 3], 2), vec![1, 2]);
        assert_eq!(py_head(vec![1, 2, 3], -1), vec![1, 2]);
        assert_eq!(py_head(vec![1, 2, 3], -5), Vec::<i32>::new());
        assert_eq!(py_head(vec![1, 2, 3], 9), vec![1, 2, 3]);
    }
}
