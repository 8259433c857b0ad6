//! The first functions written (the ones Grafana dashboards use most), and the helpers the other
//! groups share: aggregation functions, normalisation, node keys, Python's regex replacements.

use carbide_query::attime::parse_time_offset;
use carbide_query::grammar::{Arg, Call, Expr, parse_target_lenient};
use carbide_query::pytime::localtime_isdst;

use crate::RenderError;
use crate::eval::{Context, Value, first_arg};

use super::Args;
use crate::pyfmt::{g, num_str};
use crate::series::{TimeSeries, py_max, py_min, set_tag};

/// Runs one of the functions listed in [`catalog::FUNCTIONS`].
pub(super) fn dispatch(ctx: &Context<'_>, call: &Call, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let info = a.info;
    match info.name {
        "sumSeries" | "sum" => aggregate(ctx, all_series(a), "sum"),
        "averageSeries" | "avg" => aggregate(ctx, all_series(a), "average"),
        "maxSeries" => aggregate(ctx, all_series(a), "max"),
        "minSeries" => aggregate(ctx, all_series(a), "min"),
        "aggregate" => {
            let func = a.required_string(1)?;
            let func = func.strip_suffix("Series").unwrap_or(&func).to_string();
            agg_func(&func).ok_or_else(|| a.bad(&format!("Unsupported aggregation function: {func}")))?;
            let mut out = aggregate(ctx, a.series(0)?, &func)?;
            if let Some((xff, _)) = a.number(2)? {
                for s in &mut out {
                    s.x_files_factor = xff;
                }
            }
            Ok(out)
        }
        "alias" => {
            let name = a.required_string(1)?;
            Ok(map(a.series(0)?, |s| s.name = name.clone()))
        }
        "aliasByNode" => {
            let nodes: Vec<Value> = (1..a.pos.len()).filter_map(|i| a.get(i).cloned()).collect();
            Ok(map(a.series(0)?, |s| s.name = agg_key(s, &nodes)))
        }
        "aliasSub" => {
            let re = fancy_regex::Regex::new(&a.required_string(1)?)
                .map_err(|e| a.bad(&format!("bad regex: {e}")))?;
            let rep = python_replacement(&a.required_string(2)?);
            let mut out = a.series(0)?;
            for s in &mut out {
                s.name = re.replace_all(&s.name, rep.as_str()).into_owned();
            }
            Ok(out)
        }
        "scale" => {
            let (f, _) = a.required_number(1)?;
            Ok(map(a.series(0)?, |s| {
                s.set_tag("scale", num_str(f, false));
                s.name = format!("scale({},{})", s.name, g(f));
                s.path_expression = s.name.clone();
                s.values = s.values.iter().map(|v| v.map(|x| x * f)).collect();
            }))
        }
        "offset" => {
            let (f, _) = a.required_number(1)?;
            Ok(map(a.series(0)?, |s| {
                s.set_tag("offset", num_str(f, false));
                s.name = format!("offset({},{})", s.name, g(f));
                s.path_expression = s.name.clone();
                s.values = s.values.iter().map(|v| v.map(|x| x + f)).collect();
            }))
        }
        "absolute" => Ok(map(a.series(0)?, |s| {
            s.set_tag("absolute", "1");
            s.name = format!("absolute({})", s.name);
            s.path_expression = s.name.clone();
            s.values = s.values.iter().map(|v| v.map(f64::abs)).collect();
        })),
        "derivative" => Ok(map(a.series(0)?, |s| {
            let mut prev: Option<f64> = None;
            let mut out = Vec::with_capacity(s.values.len());
            for v in s.iter_values() {
                out.push(match (prev, v) {
                    (Some(p), Some(x)) => Some(x - p),
                    _ => None,
                });
                prev = v;
            }
            s.set_tag("derivative", "1");
            rename_copy(s, format!("derivative({})", s.name), out);
        })),
        "nonNegativeDerivative" | "perSecond" => {
            let max = a.number(1)?.map(|x| x.0);
            let min = a.number(2)?.map(|x| x.0);
            let per_second = info.name == "perSecond";
            Ok(map(a.series(0)?, |s| {
                let mut prev = None;
                let step = s.step as f64;
                let mut out = Vec::with_capacity(s.values.len());
                for v in s.iter_values() {
                    let (delta, p) = non_negative_delta(v, prev, max, min);
                    prev = p;
                    out.push(if per_second {
                        delta.map(|d| py_round6(d / step))
                    } else {
                        delta
                    });
                }
                s.set_tag(info.name, "1");
                rename_copy(s, format!("{}({})", info.name, s.name), out);
            }))
        }
        "integral" => Ok(map(a.series(0)?, |s| {
            let mut current = 0.0;
            let out = s
                .iter_values()
                .into_iter()
                .map(|v| {
                    v.map(|x| {
                        current += x;
                        current
                    })
                })
                .collect();
            s.set_tag("integral", "1");
            rename_copy(s, format!("integral({})", s.name), out);
        })),
        "keepLastValue" => {
            let limit = a.number(1)?.map(|x| x.0).unwrap_or(f64::INFINITY);
            Ok(map(a.series(0)?, |s| {
                s.name = format!("keepLastValue({})", s.name);
                s.path_expression = s.name.clone();
                keep_last_value(&mut s.values, limit);
            }))
        }
        "transformNull" => {
            // A given default is converted to float (Param type float); the absent one stays int 0.
            let (d, int) = a.number(1)?.map(|(d, _)| (d, false)).unwrap_or((0.0, true));
            let defaults: Option<Vec<Option<f64>>> = match a.get(2) {
                Some(Value::Series(r)) if !r.is_empty() => Some(
                    rows(r)
                        .iter()
                        .map(|row| row.iter().any(Option::is_some).then_some(d))
                        .collect(),
                ),
                _ => None,
            };
            Ok(map(a.series(0)?, |s| {
                s.set_tag("transformNull", num_str(d, int));
                match &defaults {
                    Some(defaults) if !defaults.is_empty() => {
                        s.set_tag("referenceSeries", "1");
                        s.name = format!("transformNull({},{},referenceSeries)", s.name, g(d));
                        let was_int: Vec<bool> = (0..s.values.len()).map(|i| s.is_int(i)).collect();
                        let filled: Vec<bool> = (0..s.values.len().max(defaults.len()))
                            .map(|i| {
                                s.values.get(i).copied().flatten().is_none()
                                    && defaults.get(i).copied().flatten().is_some()
                            })
                            .collect();
                        s.values = zip_longest(&s.values, defaults, |v, d| v.or(d));
                        s.int_points = filled
                            .iter()
                            .enumerate()
                            .map(|(i, f)| (*f && int) || was_int.get(i).copied().unwrap_or(false))
                            .collect();
                    }
                    _ => {
                        if defaults.is_some() {
                            s.set_tag("referenceSeries", "1");
                            s.name = format!("transformNull({},{},referenceSeries)", s.name, g(d));
                        } else {
                            s.name = format!("transformNull({},{})", s.name, g(d));
                        }
                        s.int_points = s
                            .values
                            .iter()
                            .enumerate()
                            .map(|(i, v)| (v.is_none() && int) || s.is_int(i))
                            .collect();
                        s.values = s.values.iter().map(|v| Some(v.unwrap_or(d))).collect();
                    }
                }
                s.path_expression = s.name.clone();
            }))
        }
        "consolidateBy" => {
            let f = a.required_string(1)?;
            if !matches!(
                f.as_str(),
                "sum" | "average" | "avg" | "avg_zero" | "min" | "max" | "first" | "last"
            ) {
                return Err(a.bad(&format!("Invalid consolidation function: '{f}'")));
            }
            Ok(map(a.series(0)?, |s| {
                s.consolidation_func = f.clone();
                s.set_tag("consolidateBy", f.clone());
                s.name = format!("consolidateBy({},\"{}\")", s.name, f);
                s.path_expression = s.name.clone();
            }))
        }
        "constantLine" => {
            // Param type float: graphite-web converts the argument, so 100 names the series "100.0".
            let (v, _) = a.required_number(0)?;
            let int = false;
            let step = (ctx.end - ctx.start) / 2;
            let mut s = TimeSeries::new(&num_str(v, int), ctx.start, ctx.end, step, vec![Some(v); 3]);
            s.x_files_factor = ctx.x_files_factor;
            s.path_expression = format!("constantLine({})", num_str(v, int));
            Ok(vec![s])
        }
        "limit" => {
            let n = a.count(1)?;
            let mut s = a.series(0)?;
            s.truncate(n);
            Ok(s)
        }
        "highestMax" => highest(a.series(0)?, a.count(1)?, "max", true),
        "highestAverage" => highest(a.series(0)?, a.count(1)?, "average", true),
        "highestCurrent" => highest(a.series(0)?, a.count(1)?, "last", true),
        "lowestAverage" => highest(a.series(0)?, a.count(1)?, "average", false),
        "sortByMaxima" => {
            let s = a.series(0)?;
            let n = s.len();
            highest(s, n, "max", true)
        }
        "divideSeries" => divide_series(ctx, a),
        "asPercent" => as_percent(ctx, a),
        "groupByNode" => {
            let node = a.get(1).cloned().ok_or_else(|| a.bad("missing nodeNum"))?;
            let callback = a.string(2)?.unwrap_or_else(|| "average".into());
            super::combine::group_by_nodes(ctx, a.series(0)?, &callback, &[node])
        }
        "summarize" => {
            let interval_s = a.required_string(1)?;
            let func = a.string(2)?.unwrap_or_else(|| "sum".into());
            let align = a.boolean(3, false);
            let interval = parse_time_offset(&interval_s)
                .map_err(|e| a.bad(&e.to_string()))?
                .abs();
            if interval == 0 {
                return Err(a.bad("interval must not be zero"));
            }
            agg_func(&func).ok_or_else(|| a.bad(&format!("Unsupported aggregation function: {func}")))?;
            Ok(map(a.series(0)?, |s| {
                summarize(s, &interval_s, interval, &func, align)
            }))
        }
        "hitcount" => {
            let interval_s = a.required_string(1)?;
            let interval = parse_time_offset(&interval_s)
                .map_err(|e| a.bad(&e.to_string()))?
                .abs();
            if interval == 0 {
                return Err(a.bad("interval must not be zero"));
            }
            if !a.boolean(2, false) {
                return Ok(map(a.series(0)?, |s| hitcount(s, &interval_s, interval, false)));
            }
            // alignToInterval: the start's wall clock truncated to the day, hour or minute under
            // its own UTC offset (`datetime(…, tzinfo=s.tzinfo)`), the target fetched again from
            // there, and each series' end moved to a whole number of intervals past its start.
            let s = ctx.start_time;
            let d = s.fields().map_err(|e| a.bad(&e.to_string()))?;
            let truncated = |h: i8, mi: i8| {
                s.at_civil(jiff::civil::datetime(d.year(), d.month(), d.day(), h, mi, 0, 0))
                    .map_err(|e| a.bad(&e.to_string()))
            };
            let start = if interval >= 86_400 {
                truncated(0, 0)?
            } else if interval >= 3600 {
                truncated(d.hour(), 0)?
            } else if interval >= 60 {
                truncated(d.hour(), d.minute())?
            } else {
                s
            };
            let expr = first_arg(call).ok_or_else(|| a.bad("first argument must be a series expression"))?;
            let list = ctx.with_times(start, ctx.end_time).evaluate(expr)?;
            Ok(map(list, |s| {
                let count = (s.end - s.start).div_euclid(interval);
                s.end = s.start + count * interval + interval;
                hitcount(s, &interval_s, interval, true);
            }))
        }
        "timeShift" => time_shift(ctx, call, a),
        "movingAverage" => moving_average(ctx, call, a),
        other => Err(RenderError::UnknownFunction(other.to_string())),
    }
}

pub(crate) fn all_series(a: &Args) -> Vec<TimeSeries> {
    a.pos
        .iter()
        .filter_map(|v| match v {
            Value::Series(s) => Some(s.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

pub(crate) fn map(mut list: Vec<TimeSeries>, mut f: impl FnMut(&mut TimeSeries)) -> Vec<TimeSeries> {
    for s in &mut list {
        f(s);
    }
    list
}

/// `series.copy(name=…, values=…)`: consolidation state is kept, as graphite-web keeps it.
pub(crate) fn rename_copy(s: &mut TimeSeries, name: String, values: Vec<Option<f64>>) {
    s.name = name;
    s.path_expression = s.name.clone();
    s.values = values;
}

/// Python's `round(x, 6)` (round half to even on the decimal value, as near as f64 allows).
pub(crate) fn py_round6(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let text = format!("{x:.6}");
    text.parse().unwrap_or(x)
}

pub(crate) fn non_negative_delta(
    val: Option<f64>,
    prev: Option<f64>,
    max: Option<f64>,
    min: Option<f64>,
) -> (Option<f64>, Option<f64>) {
    if let (Some(m), Some(v)) = (max, val)
        && v > m
    {
        return (None, None);
    }
    if let (Some(m), Some(v)) = (min, val)
        && v < m
    {
        return (None, None);
    }
    let (Some(p), Some(v)) = (prev, val) else {
        return (None, val);
    };
    if v >= p {
        return (Some(v - p), Some(v));
    }
    if let Some(m) = max {
        return (Some(m + 1.0 + v - p - min.unwrap_or(0.0)), Some(v));
    }
    if let Some(m) = min {
        return (Some(v - m), Some(v));
    }
    (None, Some(v))
}

pub(crate) fn keep_last_value(values: &mut [Option<f64>], limit: f64) {
    let mut nones = 0usize;
    let mut last: Option<f64> = None;
    for i in 0..values.len() {
        match values[i] {
            None => nones += 1,
            Some(v) => {
                if nones > 0
                    && (nones as f64) <= limit
                    && let Some(l) = last
                {
                    for slot in &mut values[i - nones..i] {
                        *slot = Some(l);
                    }
                }
                nones = 0;
                last = Some(v);
            }
        }
    }
    if nones > 0
        && (nones as f64) <= limit
        && let Some(l) = last
    {
        let n = values.len();
        for slot in &mut values[n - nones..] {
            *slot = Some(l);
        }
    }
}

/// An aggregation over one row of values (None where a series has no value).
pub type AggFn = fn(&[Option<f64>]) -> Option<f64>;

/// graphite-web's aggregation functions (`functions/aggfuncs.py`) over one row.
pub fn agg_func(name: &str) -> Option<AggFn> {
    fn usable(row: &[Option<f64>]) -> Vec<f64> {
        row.iter().flatten().copied().collect()
    }
    Some(match name {
        "average" | "avg" => |r| {
            let u = usable(r);
            (!u.is_empty()).then(|| u.iter().sum::<f64>() / u.len() as f64)
        },
        "avg_zero" => {
            |r| (!r.is_empty()).then(|| r.iter().map(|v| v.unwrap_or(0.0)).sum::<f64>() / r.len() as f64)
        }
        "median" => |r| {
            let mut u = usable(r);
            if u.is_empty() {
                return None;
            }
            u.sort_by(f64::total_cmp);
            let mid = u.len() / 2;
            Some(if u.len().is_multiple_of(2) {
                (u[mid - 1] + u[mid]) / 2.0
            } else {
                u[mid]
            })
        },
        "sum" | "total" => |r| {
            let u = usable(r);
            (!u.is_empty()).then(|| u.iter().sum())
        },
        "min" => |r| usable(r).into_iter().reduce(py_min),
        "max" => |r| usable(r).into_iter().reduce(py_max),
        "diff" => |r| {
            let u = usable(r);
            let (first, rest) = u.split_first()?;
            Some(rest.iter().fold(*first, |acc, v| acc + -v))
        },
        "stddev" => |r| {
            let u = usable(r);
            if u.is_empty() {
                return None;
            }
            let n = u.len() as f64;
            let avg = u.iter().sum::<f64>() / n;
            Some((u.iter().map(|v| (v - avg) * (v - avg)).sum::<f64>() / n).sqrt())
        },
        "count" => |r| Some(usable(r).len() as f64),
        "range" | "rangeOf" => |r| {
            let u = usable(r);
            let max = u.iter().copied().reduce(py_max)?;
            let min = u.iter().copied().reduce(py_min)?;
            Some(max - min)
        },
        "multiply" => |r| r.iter().try_fold(1.0, |acc, v| v.map(|x| acc * x)),
        "last" | "current" => |r| r.iter().rev().flatten().next().copied(),
        _ => return None,
    })
}

pub(crate) fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

pub(crate) fn lcm(a: i64, b: i64) -> i64 {
    if a == b {
        return a;
    }
    let (a, b) = if a < b { (b, a) } else { (a, b) };
    if b == 0 {
        return a;
    }
    a / gcd(a, b) * b
}

/// graphite-web's `normalize`: a common step (lcm), each series consolidated to it; start = min of
/// starts, end trimmed to a whole step. `None` for an empty list.
pub(crate) fn normalize(list: &mut [TimeSeries]) -> Option<(i64, i64, i64)> {
    let step = list.iter().map(|s| s.step).reduce(lcm)?;
    for s in list.iter_mut() {
        s.values_per_point = (step / s.step.max(1)).max(1) as usize;
    }
    let start = list.iter().map(|s| s.start).min()?;
    let mut end = list.iter().map(|s| s.end).max()?;
    if step > 0 {
        end -= (end - start).rem_euclid(step);
    }
    Some((start, end, step))
}

/// `izip_longest` over the consolidated values of each series.
pub(crate) fn rows(list: &[TimeSeries]) -> Vec<Vec<Option<f64>>> {
    let cols: Vec<Vec<Option<f64>>> = list.iter().map(TimeSeries::iter_values).collect();
    let n = cols.iter().map(Vec::len).max().unwrap_or(0);
    (0..n)
        .map(|i| cols.iter().map(|c| c.get(i).copied().flatten()).collect())
        .collect()
}

pub(crate) fn format_path_expressions(list: &[TimeSeries]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for s in list {
        if !seen.contains(&s.path_expression.as_str()) {
            seen.push(&s.path_expression);
        }
    }
    seen.join(",")
}

pub(crate) fn xff_ok(row: &[Option<f64>], xff: f64) -> bool {
    let non_null = row.iter().filter(|v| v.is_some()).count();
    non_null > 0 && !row.is_empty() && non_null as f64 / row.len() as f64 >= xff
}

/// graphite-web's `aggregate(seriesList, func)`.
pub(crate) fn aggregate(
    ctx: &Context<'_>,
    mut list: Vec<TimeSeries>,
    func: &str,
) -> Result<Vec<TimeSeries>, RenderError> {
    let f = agg_func(func)
        .ok_or_else(|| RenderError::BadArgument(format!("Unsupported aggregation function: {func}")))?;
    let Some((start, end, step)) = normalize(&mut list) else {
        return Ok(Vec::new());
    };
    let xff = ctx.x_files_factor;
    let name = format!("{func}Series({})", format_path_expressions(&list));
    let values: Vec<Option<f64>> = rows(&list)
        .iter()
        .map(|r| if xff_ok(r, xff) { f(r) } else { None })
        .collect();
    let mut tags = list[0].tags.clone();
    for s in &list[1..] {
        tags.retain(|(k, v)| s.tags.iter().any(|(k2, v2)| k2 == k && v2 == v));
    }
    if !tags.iter().any(|(k, _)| k == "name") {
        tags.push(("name".into(), name.clone()));
    }
    set_tag(&mut tags, "aggregatedBy", func.to_string());
    // Python's sum/min/max of ints is an int (count always is), so a row of ints stays one;
    // rangeOf subtracts floats, averages divide.
    let keeps_ints = matches!(
        func,
        "sum" | "total" | "min" | "max" | "last" | "current" | "diff"
    );
    let ints: Vec<Vec<bool>> = list.iter().map(TimeSeries::output_ints).collect();
    let int_points: Vec<bool> = if func == "count" {
        values.iter().map(Option::is_some).collect()
    } else if keeps_ints && ints.iter().any(|m| m.iter().any(|b| *b)) {
        rows(&list)
            .iter()
            .enumerate()
            .map(|(i, row)| {
                row.iter()
                    .zip(&ints)
                    .all(|(v, m)| v.is_none() || m.get(i).copied().unwrap_or(false))
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut s = TimeSeries::new(&name, start, end, step, values);
    s.x_files_factor = xff;
    s.tags = tags;
    if int_points.iter().any(|b| *b) && int_points.len() == s.values.len() {
        s.int_points = int_points;
    }
    Ok(vec![s])
}

/// graphite-web's `_getFirstPathExpression`: the first path inside a function-wrapped name.
pub(crate) fn first_path_expression(name: &str) -> Option<String> {
    let (mut expr, _) = parse_target_lenient(name).ok()?;
    loop {
        match expr {
            Expr::Path(p) => return Some(p),
            Expr::Call(c) => match c.args.into_iter().next() {
                Some(Arg::Expr(e)) => expr = e,
                _ => return None,
            },
            Expr::Template(_) => return None,
        }
    }
}

/// graphite-web's `aggKey`: the chosen nodes (or tags) of a series' name, joined by dots.
pub(crate) fn agg_key(s: &TimeSeries, nodes: &[Value]) -> String {
    let path = if s.name.ends_with(')') {
        first_path_expression(&s.name)
    } else {
        None
    };
    let base = path.unwrap_or_else(|| s.name.clone());
    let base = base.split(';').next().unwrap_or("").to_string();
    let parts: Vec<&str> = base.split('.').collect();
    nodes
        .iter()
        .map(|n| {
            let tag_name = match n {
                Value::Int(i) => {
                    let idx = if *i < 0 { parts.len() as i64 + i } else { *i };
                    if let Some(p) = usize::try_from(idx).ok().and_then(|i| parts.get(i)) {
                        return (*p).to_string();
                    }
                    i.to_string()
                }
                Value::Float(f) if f.fract() == 0.0 => {
                    let i = *f as i64;
                    let idx = if i < 0 { parts.len() as i64 + i } else { i };
                    if let Some(p) = usize::try_from(idx).ok().and_then(|i| parts.get(i)) {
                        return (*p).to_string();
                    }
                    crate::pyfmt::py_float_repr(*f)
                }
                Value::Str(t) => t.clone(),
                _ => String::new(),
            };
            s.tags
                .iter()
                .find(|(k, _)| *k == tag_name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// `highest`/`lowest`: a stable sort on an aggregate (None sorts as -inf), then the first n.
pub(crate) fn highest(
    mut list: Vec<TimeSeries>,
    n: usize,
    func: &str,
    reverse: bool,
) -> Result<Vec<TimeSeries>, RenderError> {
    let f = agg_func(func)
        .ok_or_else(|| RenderError::BadArgument(format!("Unsupported aggregation function: {func}")))?;
    let mut keyed: Vec<(f64, TimeSeries)> = list
        .drain(..)
        .map(|s| (f(&s.iter_values()).unwrap_or(f64::NEG_INFINITY), s))
        .collect();
    // Python's sort(reverse=True) keeps equal keys in their original order.
    if reverse {
        keyed.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    } else {
        keyed.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    }
    Ok(keyed.into_iter().take(n).map(|(_, s)| s).collect())
}

pub(crate) fn safe_div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let a = a?;
    let b = b?;
    if b == 0.0 { None } else { Some(a / b) }
}

pub(crate) fn divide_series(ctx: &Context<'_>, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let dividends = a.series(0)?;
    let divisors = a.series(1)?;
    if divisors.is_empty() {
        return Ok(map(dividends, |s| {
            s.name = format!("divideSeries({},MISSING)", s.name);
            s.path_expression = s.name.clone();
            s.values = vec![None; s.values.len()];
        }));
    }
    if divisors.len() > 1 {
        return Err(a.bad(&format!(
            "divideSeries second argument must reference exactly 1 series (got {})",
            divisors.len()
        )));
    }
    let mut out = Vec::with_capacity(dividends.len());
    for d in dividends {
        let name = format!("divideSeries({},{})", d.name, divisors[0].name);
        let mut both = vec![d, divisors[0].clone()];
        let Some((start, end, step)) = normalize(&mut both) else {
            continue;
        };
        let values = rows(&both).iter().map(|r| safe_div(r[0], r[1])).collect();
        let mut s = TimeSeries::new(&name, start, end, step, values);
        s.x_files_factor = ctx.x_files_factor;
        out.push(s);
    }
    Ok(out)
}

pub(crate) fn as_percent(ctx: &Context<'_>, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let mut list = a.series(0)?;
    if a.pos.len() > 2 {
        return super::combine::as_percent_nodes(ctx, a);
    }
    normalize(&mut list);
    let pct = |v: Option<f64>, t: Option<f64>| safe_div(v, t).map(|x| x * 100.0);
    let new = |name: String, s: &TimeSeries, values: Vec<Option<f64>>| {
        let mut r = TimeSeries::new(&name, s.start, s.end, s.step, values);
        r.x_files_factor = ctx.x_files_factor;
        r
    };
    match a.get(1) {
        None | Some(Value::None) => {
            let totals: Vec<Option<f64>> = rows(&list)
                .iter()
                .map(|r| agg_func("sum").and_then(|f| f(r)))
                .collect();
            let text = format!("sumSeries({})", format_path_expressions(&list));
            Ok(list
                .iter()
                .map(|s| {
                    let vals = zip_longest(&s.iter_values(), &totals, pct);
                    new(format!("asPercent({},{})", s.name, text), s, vals)
                })
                .collect())
        }
        Some(Value::Int(_) | Value::Float(_)) => {
            let (t, int) = a.required_number(1)?;
            Ok(list
                .iter()
                .map(|s| {
                    let vals = s.iter_values().into_iter().map(|v| pct(v, Some(t))).collect();
                    new(format!("asPercent({},{})", s.name, num_str(t, int)), s, vals)
                })
                .collect())
        }
        Some(Value::Series(total)) => {
            let mut total = total.clone();
            if total.len() != 1 && total.len() != list.len() {
                return Err(a.bad("asPercent second argument must be missing, a single digit, reference exactly 1 series or reference the same number of series as the first argument"));
            }
            if total.len() == list.len() && total.len() != 1 {
                let mut l = list.clone();
                l.sort_by(|x, y| x.name.cmp(&y.name));
                total.sort_by(|x, y| x.name.cmp(&y.name));
                let mut out = Vec::new();
                for (s1, s2) in l.into_iter().zip(total) {
                    let name = format!("asPercent({},{})", s1.name, s2.name);
                    let mut both = vec![s1, s2];
                    let Some((start, end, step)) = normalize(&mut both) else {
                        continue;
                    };
                    let values = rows(&both).iter().map(|r| pct(r[0], r[1])).collect();
                    let mut r = TimeSeries::new(&name, start, end, step, values);
                    r.x_files_factor = ctx.x_files_factor;
                    out.push(r);
                }
                return Ok(out);
            }
            let mut all: Vec<TimeSeries> = list.clone();
            all.extend(total.iter().cloned());
            normalize(&mut all);
            let t = all.pop().ok_or_else(|| a.bad("empty total"))?;
            let totals = t.iter_values();
            Ok(all
                .iter()
                .map(|s| {
                    let vals = zip_longest(&s.iter_values(), &totals, pct);
                    new(format!("asPercent({},{})", s.name, t.name), s, vals)
                })
                .collect())
        }
        _ => Err(a.bad("total must be None, a number or a seriesList")),
    }
}

pub(crate) fn zip_longest(
    a: &[Option<f64>],
    b: &[Option<f64>],
    f: impl Fn(Option<f64>, Option<f64>) -> Option<f64>,
) -> Vec<Option<f64>> {
    (0..a.len().max(b.len()))
        .map(|i| f(a.get(i).copied().flatten(), b.get(i).copied().flatten()))
        .collect()
}

pub(crate) fn summarize(s: &mut TimeSeries, interval_s: &str, interval: i64, func: &str, align: bool) {
    let (new_start, new_end) = if align {
        (s.start, s.end)
    } else {
        (
            s.start - s.start.rem_euclid(interval),
            s.end - s.end.rem_euclid(interval) + interval,
        )
    };
    let (values, ts) = super::transform::summarize_values(s, func, interval, new_start, new_end);
    let end = if align { ts } else { new_end };
    s.set_tag("summarize", interval_s);
    s.set_tag("summarizeFunction", func);
    s.name = format!(
        "summarize({}, \"{}\", \"{}\"{})",
        s.name,
        interval_s,
        func,
        if align { ", true" } else { "" }
    );
    s.path_expression = s.name.clone();
    s.start = new_start;
    s.end = end;
    s.step = interval;
    s.values = values;
}

/// graphite-web's hitcount of one series; `aligned` only names it (`, true`).
pub(crate) fn hitcount(s: &mut TimeSeries, interval_s: &str, interval: i64, aligned: bool) {
    let step = s.step;
    let bucket_count = ((s.end - s.start) as f64 / interval as f64).ceil().max(0.0) as usize;
    let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); bucket_count];
    let new_start = s.end - bucket_count as i64 * interval;
    for (i, v) in s.iter_values().into_iter().enumerate() {
        let Some(v) = v else { continue };
        let start_time = s.start + i as i64 * step;
        let (start_bucket, start_mod) = (
            (start_time - new_start).div_euclid(interval),
            (start_time - new_start).rem_euclid(interval),
        );
        let end_time = start_time + step;
        let (mut end_bucket, mut end_mod) = (
            (end_time - new_start).div_euclid(interval),
            (end_time - new_start).rem_euclid(interval),
        );
        if end_bucket >= bucket_count as i64 {
            end_bucket = bucket_count as i64 - 1;
            end_mod = interval;
        }
        let mut push = |b: i64, x: f64| {
            if let Some(bucket) = usize::try_from(b).ok().and_then(|b| buckets.get_mut(b)) {
                bucket.push(x);
            }
        };
        if start_bucket == end_bucket {
            if start_bucket >= 0 {
                push(start_bucket, v * (end_mod - start_mod) as f64);
            }
        } else {
            if start_bucket >= 0 {
                push(start_bucket, v * (interval - start_mod) as f64);
            }
            for j in start_bucket + 1..end_bucket {
                push(j, v * interval as f64);
            }
            if end_mod > 0 {
                push(end_bucket, v * end_mod as f64);
            }
        }
    }
    s.set_tag("hitcount", interval_s);
    let suffix = if aligned { ", true" } else { "" };
    s.name = format!("hitcount({}, \"{}\"{suffix})", s.name, interval_s);
    s.path_expression = s.name.clone();
    s.start = new_start;
    s.step = interval;
    s.values = buckets
        .into_iter()
        .map(|b| (!b.is_empty()).then(|| b.iter().sum()))
        .collect();
}

pub(crate) fn time_shift(ctx: &Context<'_>, call: &Call, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let mut shift = a.required_string(1)?;
    let reset_end = a.boolean(2, true);
    if shift.starts_with(|c: char| c.is_ascii_digit()) {
        shift = format!("-{shift}");
    }
    let delta = parse_time_offset(&shift).map_err(|e| a.bad(&e.to_string()))?;
    let (mut start, mut end) = (ctx.start_time.plus(delta), ctx.end_time.plus(delta));
    if a.boolean(3, false) {
        // alignDst: graphite-web's localDST, `localtime(mktime(dt.timetuple())).tm_isdst` in
        // TIME_ZONE; a range wholly in DST shifted to one wholly outside moves an hour, and back.
        let tz = &ctx.server_tz;
        let dst = |d: carbide_query::pytime::PyDateTime| localtime_isdst(d.mktime(tz), tz);
        let (req_start, req_end) = (dst(ctx.start_time), dst(ctx.end_time));
        let (my_start, my_end) = (dst(start), dst(end));
        let hour = if req_start && req_end && !my_start && !my_end {
            3600
        } else if !req_start && !req_end && my_start && my_end {
            -3600
        } else {
            0
        };
        start = start.plus(hour);
        end = end.plus(hour);
    }
    let list = a.series(0)?;
    let Some(first) = list.first() else {
        return Ok(Vec::new());
    };
    let expr = first_arg(call).ok_or_else(|| a.bad("first argument must be a series expression"))?;
    let shifted = ctx.with_times(start, end).evaluate(expr)?;
    Ok(shifted
        .into_iter()
        .map(|mut s| {
            s.set_tag("timeShift", shift.clone());
            s.name = format!("timeShift({}, \"{}\")", s.name, shift);
            s.end = if reset_end {
                first.end
            } else {
                s.end - s.start + first.start
            };
            s.start = first.start;
            s
        })
        .collect())
}

pub(crate) fn moving_average(
    ctx: &Context<'_>,
    call: &Call,
    a: &Args,
) -> Result<Vec<TimeSeries>, RenderError> {
    let list = a.series(0)?;
    if list.is_empty() {
        return Ok(Vec::new());
    }
    let window = a.get(1).cloned().ok_or_else(|| a.bad("missing windowSize"))?;
    let xff = a.number(2)?.map(|x| x.0);
    let (preview, text): (i64, Option<String>) = match &window {
        Value::Str(w) => (
            parse_time_offset(w).map_err(|e| a.bad(&e.to_string()))?.abs(),
            Some(w.clone()),
        ),
        Value::Int(n) => (list.iter().map(|s| s.step).max().unwrap_or(1) * n, None),
        Value::Float(f) => (list.iter().map(|s| s.step).max().unwrap_or(1) * (*f as i64), None),
        _ => return Err(a.bad("windowSize must be a number or an interval")),
    };
    let expr = first_arg(call).ok_or_else(|| a.bad("first argument must be a series expression"))?;
    let previews = ctx.with_range(ctx.start - preview, ctx.end).evaluate(expr)?;
    let mut out = Vec::with_capacity(previews.len());
    for mut s in previews {
        let (name, points) = match (&text, &window) {
            (Some(w), _) => (
                format!("movingAverage({},\"{}\")", s.name, w),
                (preview / s.step.max(1)) as usize,
            ),
            (None, Value::Int(n)) => (format!("movingAverage({},{})", s.name, n), (*n).max(0) as usize),
            (None, Value::Float(f)) => (
                format!("movingAverage({},{})", s.name, crate::pyfmt::py_float_repr(*f)),
                f.max(0.0) as usize,
            ),
            _ => continue,
        };
        let tag = match &window {
            Value::Str(w) => w.clone(),
            Value::Int(n) => n.to_string(),
            Value::Float(f) => crate::pyfmt::py_float_repr(*f),
            _ => String::new(),
        };
        s.set_tag("movingAverage", tag);
        let effective = xff.unwrap_or(s.x_files_factor);
        let data = s.values.clone();
        let mut values = Vec::new();
        for i in points..data.len() {
            let window_vals: Vec<f64> = data[i - points..i].iter().flatten().copied().collect();
            let ok = !window_vals.is_empty()
                && points > 0
                && window_vals.len() as f64 / points as f64 >= effective;
            values.push(if ok {
                Some(window_vals.iter().sum::<f64>() / window_vals.len() as f64)
            } else {
                None
            });
        }
        s.name = name;
        s.path_expression = s.name.clone();
        s.start += preview;
        s.values = values;
        out.push(s);
    }
    Ok(out)
}

/// Python `re.sub` replacement text → fancy-regex's: `\1`/`\g<1>`/`\g<name>` become `${…}`,
/// `$` is escaped, and the usual backslash escapes are resolved.
pub fn python_replacement(rep: &str) -> String {
    let mut out = String::with_capacity(rep.len());
    let mut chars = rep.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.next() {
                Some(d) if d.is_ascii_digit() => {
                    let mut num = String::from(d);
                    if let Some(&e) = chars.peek()
                        && e.is_ascii_digit()
                    {
                        num.push(e);
                        chars.next();
                    }
                    out.push_str(&format!("${{{num}}}"));
                }
                Some('g') if chars.peek() == Some(&'<') => {
                    chars.next();
                    let name: String = chars.by_ref().take_while(|&c| c != '>').collect();
                    out.push_str(&format!("${{{name}}}"));
                }
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('\\') => out.push('\\'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacement_translation() {
        assert_eq!(python_replacement(r"\1 A"), "${1} A");
        assert_eq!(python_replacement(r"\g<host>-$"), "${host}-$$");
        let re = fancy_regex::Regex::new("(^.*$)").unwrap();
        assert_eq!(
            re.replace_all("a.b", python_replacement(r"\1 A").as_str()),
            "a.b A"
        );
    }

    #[test]
    fn keep_last_value_limit() {
        let mut v = vec![Some(1.0), None, None, Some(2.0), None];
        keep_last_value(&mut v, 1.0);
        assert_eq!(v, vec![Some(1.0), None, None, Some(2.0), Some(2.0)]);
    }

    #[test]
    fn lcm_and_gcd() {
        assert_eq!(lcm(60, 10), 60);
        assert_eq!(lcm(4, 6), 12);
    }
}
