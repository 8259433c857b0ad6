//! graphite-web's Transform functions: arithmetic on each value (add, exp, log, pow, …), shifts
//! and slices in time, and re-bucketing (smartSummarize, compressPeriodicGaps).
//!
//! graphite-web mutates most series in place (`series[i] = f(value)` over the consolidated
//! iteration) and keeps their consolidation state; the ones it rebuilds with `series.copy(...)`
//! (log, delay, integralByInterval, smartSummarize) start again at one value per point. Both
//! habits are kept here because they show in the answer once maxDataPoints consolidates.

use carbide_query::attime::{TimeError, TimeUnit, parse_at_time, parse_time_offset, unit_of};
use carbide_query::grammar::Call;
use carbide_query::pytime::PyDateTime;

use super::Args;
use super::base::{agg_func, map, py_round6};
use crate::RenderError;
use crate::catalog::{FunctionInfo, Param, SL, def, p, req};
use crate::eval::{Context, Value, first_arg};
use crate::pyfmt::{g, py_float_repr};
use crate::series::TimeSeries;

const NAME: Param = req("name", "string");
const STEP: Param = def("step", "integer", "60");
const AGG_OPTIONS: &[&str] = &[
    "average", "avg", "avg_zero", "count", "current", "diff", "last", "max", "median", "min", "multiply",
    "range", "rangeOf", "stddev", "sum", "total",
];
const ALIGN_OPTIONS: &[&str] = &["days", "hours", "minutes", "months", "seconds", "weeks", "years"];

const fn f(name: &'static str, params: &'static [Param]) -> FunctionInfo {
    FunctionInfo {
        name,
        group: "Transform",
        params,
    }
}

/// The functions of this group, as `/functions` lists them.
pub const FUNCTIONS: &[FunctionInfo] = &[
    f("add", &[SL, req("constant", "float")]),
    f("exp", &[SL]),
    f("log", &[SL, def("base", "integer", "10")]),
    f("pow", &[SL, req("factor", "float")]),
    f("squareRoot", &[SL]),
    f("invert", &[SL]),
    f("round", &[SL, def("precision", "integer", "0")]),
    f("sigmoid", &[SL]),
    f("logit", &[SL]),
    f("minMax", &[SL]),
    f("offsetToZero", &[SL]),
    f("isNonNull", &[SL]),
    f("delay", &[SL, req("steps", "integer")]),
    f("scaleToSeconds", &[SL, req("seconds", "float")]),
    f("integralByInterval", &[SL, req("intervalUnit", "string")]),
    f("interpolate", &[SL, def("limit", "intOrInf", "1e9999")]),
    f(
        "timeSlice",
        &[
            SL,
            req("startSliceAt", "date"),
            def("endSliceAt", "date", "\"now\""),
        ],
    ),
    f(
        "timeStack",
        &[
            SL,
            def("timeShiftUnit", "interval", "\"1d\""),
            def("timeShiftStart", "integer", "0"),
            def("timeShiftEnd", "integer", "7"),
        ],
    ),
    f("timeFunction", &[NAME, STEP]),
    f("time", &[NAME, STEP]),
    f("sinFunction", &[NAME, def("amplitude", "integer", "1"), STEP]),
    f("sin", &[NAME, def("amplitude", "integer", "1"), STEP]),
    f(
        "smartSummarize",
        &[
            SL,
            req("intervalString", "interval"),
            Param {
                options: AGG_OPTIONS,
                ..def("func", "aggFunc", "\"sum\"")
            },
            // graphite-web also lists None, True and False (accepted and ignored).
            Param {
                options: ALIGN_OPTIONS,
                ..p("alignTo", "string")
            },
        ],
    ),
    // graphite-web 1.1.10 (not in 1.1.8).
    f("compressPeriodicGaps", &[SL]),
];

/// Runs one function of [`FUNCTIONS`].
pub(crate) fn dispatch(ctx: &Context<'_>, call: &Call, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    match a.info.name {
        "add" => {
            let (c, _) = a.required_number(1)?;
            let shown = py_int_str(c).ok_or_else(|| a.bad("constant must be finite"))?;
            Ok(map(a.series(0)?, |s| {
                s.set_tag("add", py_float_repr(c));
                rename(s, format!("add({},{shown})", s.name));
                in_place(s, |v| v.map(|x| x + c));
            }))
        }
        "exp" => each(a.series(0)?, |s| {
            s.set_tag("exp", "e");
            rename(s, format!("exp({})", s.name));
            try_in_place(s, |v| match v {
                Some(x) if x.exp().is_infinite() && x.is_finite() => Err(overflow()),
                other => Ok(other.map(f64::exp)),
            })
        }),
        "log" => {
            let (base, base_text) = match a.get(1) {
                None | Some(Value::None) => (10.0, "10".to_string()),
                Some(Value::Int(n)) => (*n as f64, n.to_string()),
                Some(Value::Float(x)) => (*x, py_float_repr(*x)),
                _ => return Err(a.bad("base must be a number")),
            };
            if base <= 0.0 || base == 1.0 {
                return Err(a.bad("math domain error: base must be positive and not 1"));
            }
            Ok(map(a.series(0)?, |s| {
                let values = s
                    .iter_values()
                    .into_iter()
                    .map(|v| v.filter(|x| *x > 0.0).map(|x| x.ln() / base.ln()))
                    .collect();
                s.set_tag("log", base_text.clone());
                copy(s, format!("log({}, {base_text})", s.name), values);
            }))
        }
        "pow" => {
            let (factor, _) = a.required_number(1)?;
            Ok(map(a.series(0)?, |s| {
                s.set_tag("pow", py_float_repr(factor));
                rename(s, format!("pow({},{})", s.name, g(factor)));
                in_place(s, |v| safe_pow(v, factor));
            }))
        }
        "squareRoot" => Ok(map(a.series(0)?, |s| {
            s.set_tag("squareRoot", "1");
            rename(s, format!("squareRoot({})", s.name));
            in_place(s, |v| safe_pow(v, 0.5));
        })),
        "invert" => Ok(map(a.series(0)?, |s| {
            s.set_tag("invert", "1");
            rename(s, format!("invert({})", s.name));
            in_place(s, |v| safe_pow(v, -1.0));
        })),
        "round" => {
            let precision = int_arg(a, 1)?;
            Ok(map(a.series(0)?, |s| {
                s.set_tag("round", precision.unwrap_or(0).to_string());
                match precision {
                    None => rename(s, format!("round({})", s.name)),
                    Some(n) => rename(s, format!("round({},{n})", s.name)),
                }
                in_place(s, |v| v.map(|x| py_round(x, precision.unwrap_or(0))));
            }))
        }
        "sigmoid" => each(a.series(0)?, |s| {
            s.set_tag("sigmoid", "sigmoid");
            rename(s, format!("sigmoid({})", s.name));
            try_in_place(s, |v| match v {
                None => Ok(None),
                Some(x) if (-x).exp().is_infinite() && x.is_finite() => Err(overflow()),
                Some(x) => Ok(Some(1.0 / (1.0 + (-x).exp()))),
            })
        }),
        "logit" => Ok(map(a.series(0)?, |s| {
            s.set_tag("logit", "logit");
            rename(s, format!("logit({})", s.name));
            in_place(s, |v| {
                let x = v?;
                if x == 1.0 {
                    return None;
                }
                let q = x / (1.0 - x);
                // math.log refuses zero and negatives (ValueError → None).
                (q > 0.0 || q.is_nan()).then(|| q.ln())
            });
        })),
        "minMax" => Ok(map(a.series(0)?, |s| {
            rename(s, format!("minMax({})", s.name));
            let vals = s.iter_values();
            let min = vals
                .iter()
                .flatten()
                .copied()
                .reduce(crate::series::py_min)
                .unwrap_or(0.0);
            let max = vals
                .iter()
                .flatten()
                .copied()
                .reduce(crate::series::py_max)
                .unwrap_or(0.0);
            for (i, v) in vals.into_iter().enumerate() {
                if let (Some(slot @ Some(_)), Some(x)) = (s.values.get_mut(i), v) {
                    *slot = Some(if max - min == 0.0 {
                        0.0
                    } else {
                        (x - min) / (max - min)
                    });
                }
            }
        })),
        "offsetToZero" => Ok(map(a.series(0)?, |s| {
            let min = s
                .iter_values()
                .into_iter()
                .flatten()
                .reduce(crate::series::py_min);
            s.set_tag(
                "offsetToZero",
                min.map_or_else(|| "None".to_string(), py_float_repr),
            );
            rename(s, format!("offsetToZero({})", s.name));
            if let Some(m) = min {
                in_place(s, |v| v.map(|x| x - m));
            }
        })),
        "isNonNull" => Ok(map(a.series(0)?, |s| {
            s.set_tag("isNonNull", "1");
            rename(s, format!("isNonNull({})", s.name));
            s.values = s
                .iter_values()
                .into_iter()
                .map(|v| Some(if v.is_some() { 1.0 } else { 0.0 }))
                .collect();
            s.set_all_ints();
        })),
        "delay" => {
            let steps = int_arg(a, 1)?.ok_or_else(|| a.bad("missing argument steps"))?;
            Ok(map(a.series(0)?, |s| {
                let values = delayed(&s.values, steps);
                s.set_tag("delay", steps.to_string());
                copy(s, format!("delay({},{steps})", s.name), values);
            }))
        }
        "scaleToSeconds" => {
            let (seconds, _) = a.required_number(1)?;
            let shown = py_int_str(seconds).ok_or_else(|| a.bad("seconds must be finite"))?;
            Ok(map(a.series(0)?, |s| {
                s.set_tag("scaleToSeconds", py_float_repr(seconds));
                rename(s, format!("scaleToSeconds({},{shown})", s.name));
                let factor = seconds / s.step as f64;
                in_place(s, |v| v.map(|x| py_round6(x * factor)));
            }))
        }
        "integralByInterval" => {
            let unit = a.required_string(1)?;
            let duration = parse_time_offset(&unit).map_err(|e| a.bad(&e.to_string()))?.abs();
            if duration == 0 {
                return Err(a.bad("intervalUnit must not be zero (integer division or modulo by zero)"));
            }
            // `timestamp(startTime)`: the start's wall clock read in TIME_ZONE.
            let start = ctx.start_timestamp();
            Ok(map(a.series(0)?, |s| {
                let mut current = 0.0;
                let mut t = s.start;
                let mut values = Vec::with_capacity(s.values.len());
                for v in s.iter_values() {
                    if (t - start).div_euclid(duration) != (t - start - s.step).div_euclid(duration) {
                        current = 0.0;
                    }
                    if let Some(x) = v {
                        current += x;
                    }
                    values.push(Some(current));
                    t += s.step;
                }
                s.set_tag("integralByInterval", unit.clone());
                copy(s, format!("integralByInterval({},'{unit}')", s.name), values);
            }))
        }
        "interpolate" => {
            let limit = match a.get(1) {
                None | Some(Value::None) => f64::INFINITY,
                Some(Value::Int(n)) => *n as f64,
                Some(Value::Float(x)) if x.is_infinite() && *x > 0.0 => f64::INFINITY,
                _ => return Err(a.bad("limit must be an integer or inf")),
            };
            Ok(map(a.series(0)?, |s| {
                rename(s, format!("interpolate({})", s.name));
                let vals = s.iter_values();
                interpolate(&mut s.values, &vals, limit);
            }))
        }
        "timeSlice" => {
            let start_at = a.required_string(1)?;
            let end_at = a.string(2)?.unwrap_or_else(|| "now".into());
            // graphite-web parses both with parseATTime's defaults: the wall clock as `now` (not
            // the request's) in TIME_ZONE; and walks from `timestamp(startTime)`, the request
            // start's wall clock read in TIME_ZONE (shifted when `tz` differs).
            let real_now = wall_clock();
            let tz = &ctx.server_tz;
            let at = |text: &str| -> Result<i64, RenderError> {
                let t = parse_at_time(text, real_now, tz).map_err(|e| a.bad(&e.to_string()))?;
                Ok(PyDateTime::localized(t, tz).mktime(tz))
            };
            let (start, end) = (at(&start_at)?, at(&end_at)?);
            let first = ctx.start_timestamp();
            Ok(map(a.series(0)?, |s| {
                s.set_tag("timeSliceStart", start.to_string());
                s.set_tag("timeSliceEnd", end.to_string());
                s.name = format!("timeSlice({}, {start}, {end})", s.name);
                let mut curr = first;
                let step = s.step;
                in_place(s, |v| {
                    let keep = v.filter(|_| curr >= start && curr <= end);
                    curr += step;
                    keep
                });
            }))
        }
        "timeStack" => time_stack(ctx, call, a),
        "timeFunction" | "time" => {
            let name = a.required_string(0)?;
            let step = positive_step(a, 1)?;
            generated(ctx, &name, step, |t| t as f64)
        }
        "sinFunction" | "sin" => {
            let name = a.required_string(0)?;
            let amplitude = a.number(1)?.map_or(1.0, |x| x.0);
            let step = positive_step(a, 2)?;
            generated(ctx, &name, step, |t| (t as f64).sin() * amplitude)
        }
        "smartSummarize" => smart_summarize(ctx, call, a),
        "compressPeriodicGaps" => Ok(map(a.series(0)?, |s| {
            rename(s, format!("compressPeriodicGaps({})", s.name));
            compress_periodic_gaps(s);
        })),
        other => Err(RenderError::UnknownFunction(other.to_string())),
    }
}

/// Sets the name and, as graphite-web does beside it, the path expression.
fn rename(s: &mut TimeSeries, name: String) {
    s.path_expression = name.clone();
    s.name = name;
}

/// `series.copy(name=…, values=…)`: a new TimeSeries, so one value per point again.
fn copy(s: &mut TimeSeries, name: String, values: Vec<Option<f64>>) {
    rename(s, name);
    s.values = values;
    s.values_per_point = 1;
}

/// `for i, v in enumerate(series): series[i] = f(v)`: the consolidated values written back from
/// the start of the raw list.
pub(crate) fn in_place(s: &mut TimeSeries, mut f: impl FnMut(Option<f64>) -> Option<f64>) {
    let vals = s.iter_values();
    for (slot, v) in s.values.iter_mut().zip(vals) {
        *slot = f(v);
    }
}

fn try_in_place(
    s: &mut TimeSeries,
    mut f: impl FnMut(Option<f64>) -> Result<Option<f64>, RenderError>,
) -> Result<(), RenderError> {
    let vals = s.iter_values();
    for (slot, v) in s.values.iter_mut().zip(vals) {
        *slot = f(v)?;
    }
    Ok(())
}

fn each(
    mut list: Vec<TimeSeries>,
    mut f: impl FnMut(&mut TimeSeries) -> Result<(), RenderError>,
) -> Result<Vec<TimeSeries>, RenderError> {
    for s in &mut list {
        f(s)?;
    }
    Ok(list)
}

fn overflow() -> RenderError {
    RenderError::BadArgument("math range error (exp overflow)".into())
}

/// Python's `'%d' % f` (truncation), `None` where Python raises (inf, nan).
pub(crate) fn py_int_str(f: f64) -> Option<String> {
    f.is_finite().then(|| format!("{}", f.trunc() as i128))
}

/// An `integer` parameter: graphite-web refuses floats for these (its validator), and so do we.
fn int_arg(a: &Args, i: usize) -> Result<Option<i64>, RenderError> {
    match a.get(i) {
        None | Some(Value::None) => Ok(None),
        Some(Value::Int(n)) => Ok(Some(*n)),
        Some(Value::Bool(b)) => Ok(Some(i64::from(*b))),
        Some(other) => Err(a.bad(&format!("argument {} must be an integer, not {other:?}", i + 1))),
    }
}

fn positive_step(a: &Args, i: usize) -> Result<i64, RenderError> {
    let step = int_arg(a, i)?.unwrap_or(60);
    if step <= 0 {
        return Err(a.bad("step must be a positive number of seconds"));
    }
    Ok(step)
}

/// `safe.safePow`: None where `math.pow` raises (domain error or overflow).
pub(crate) fn safe_pow(v: Option<f64>, e: f64) -> Option<f64> {
    let x = v?;
    let r = x.powf(e);
    if r.is_nan() && !x.is_nan() && !e.is_nan() {
        return None;
    }
    if r.is_infinite() && x.is_finite() && e.is_finite() {
        return None;
    }
    Some(r)
}

/// Python's `round(x, n)` on a float: correctly rounded, ties to even.
pub(crate) fn py_round(x: f64, n: i64) -> f64 {
    if !x.is_finite() || n > 323 {
        return x;
    }
    if n >= 0 {
        let digits = n as usize;
        return format!("{x:.digits$}").parse().unwrap_or(x);
    }
    if n < -308 {
        return 0.0 * x;
    }
    let m = 10f64.powi((-n) as i32);
    let y: f64 = format!("{:.0}", x / m).parse().unwrap_or(x / m);
    y * m
}

/// `delay`'s list slicing, including Python's `series[:-0] == []`.
fn delayed(values: &[Option<f64>], steps: i64) -> Vec<Option<f64>> {
    let len = values.len();
    if steps < 0 {
        let k = usize::try_from(steps.unsigned_abs()).unwrap_or(usize::MAX);
        let mut out: Vec<Option<f64>> = values.get(k.min(len)..).unwrap_or(&[]).to_vec();
        out.extend(std::iter::repeat_n(None, k.min(len)));
        out
    } else {
        let k = usize::try_from(steps).unwrap_or(usize::MAX);
        let mut out = vec![None; k.min(len)];
        // series[:-steps]: nothing for steps == 0 or steps >= len.
        if k > 0 && k < len {
            out.extend_from_slice(&values[..len - k]);
        }
        out
    }
}

/// graphite-web's `interpolate` loop: `vals` is what it iterates, `out` the list it writes.
fn interpolate(out: &mut [Option<f64>], vals: &[Option<f64>], limit: f64) {
    let mut nones = 0usize;
    for (i, &value) in vals.iter().enumerate() {
        if i < out.len() {
            out[i] = value;
        }
        if i == 0 {
            continue;
        }
        let Some(v) = value else {
            nones += 1;
            continue;
        };
        if nones == 0 {
            continue;
        }
        let before = i
            .checked_sub(nones + 1)
            .and_then(|k| out.get(k).copied().flatten());
        let Some(prev) = before else {
            nones = 0;
            continue;
        };
        if (nones as f64) <= limit {
            for index in i - nones..i {
                let k = (index - (i - nones - 1)) as f64;
                if let Some(slot) = out.get_mut(index) {
                    *slot = Some(prev + k * (v - prev) / (nones + 1) as f64);
                }
            }
        }
        nones = 0;
    }
}

/// The machine's clock: graphite-web's `parseATTime` without `now` reads it, not the request's
/// `now` (timeSlice, verticalLine, linearRegression).
pub(crate) fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A series computed from each timestamp `start, start+step, … < end` (time, sin).
fn generated(
    ctx: &Context<'_>,
    name: &str,
    step: i64,
    value: impl Fn(i64) -> f64,
) -> Result<Vec<TimeSeries>, RenderError> {
    let count = (ctx.end - ctx.start).max(0) as u128 / step as u128;
    if count > ctx.limits.max_points as u128 {
        return Err(RenderError::Limit(format!(
            "{name}: more than {} points",
            ctx.limits.max_points
        )));
    }
    let values = (ctx.start..ctx.end)
        .step_by(step as usize)
        .map(|t| Some(value(t)))
        .collect();
    let mut s = TimeSeries::new(name, ctx.start, ctx.end, step, values);
    s.x_files_factor = ctx.x_files_factor;
    Ok(vec![s])
}

fn time_stack(ctx: &Context<'_>, call: &Call, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let mut unit = a.string(1)?.unwrap_or_else(|| "1d".into());
    if unit.starts_with(|c: char| c.is_ascii_digit()) {
        unit = format!("-{unit}");
    }
    let delta = parse_time_offset(&unit).map_err(|e| a.bad(&e.to_string()))?;
    let from = int_arg(a, 2)?.unwrap_or(0);
    let to = int_arg(a, 3)?.unwrap_or(7);
    let list = a.series(0)?;
    let Some(first) = list.first() else {
        return Ok(Vec::new());
    };
    let expr = first_arg(call).ok_or_else(|| a.bad("first argument must be a series expression"))?;
    if to.saturating_sub(from) > 10_000 {
        return Err(a.bad("timeStack of more than 10000 shifts"));
    }
    let mut out = Vec::new();
    for shift in from..to {
        let inner = delta
            .checked_mul(shift)
            .ok_or_else(|| a.bad("time shift out of range"))?;
        for mut s in ctx
            .with_range(ctx.start + inner, ctx.end + inner)
            .evaluate(expr)?
        {
            s.set_tag("timeShiftUnit", unit.clone());
            s.set_tag("timeShift", shift.to_string());
            let name = format!("timeShift({}, {unit}, {shift})", s.name);
            rename(&mut s, name);
            s.start = first.start;
            s.end = first.end;
            out.push(s);
        }
    }
    Ok(out)
}

/// graphite-web's `_summarizeValues`: buckets of `interval` from `new_start` to `new_end`,
/// each folded with `func` when enough of its points are non-null (xFilesFactor).
pub(crate) fn summarize_values(
    s: &TimeSeries,
    func: &str,
    interval: i64,
    new_start: i64,
    new_end: i64,
) -> (Vec<Option<f64>>, i64) {
    let f = agg_func(func).unwrap_or(|_| None);
    let data = s.iter_values();
    let step = s.step.max(1);
    let timestamps: Vec<i64> = (s.start..s.end).step_by(step as usize).collect();
    let n = timestamps.len().min(data.len());
    let interval_points = interval as f64 / step as f64;
    let mut values = Vec::new();
    let mut i = 0usize;
    let mut ts = new_start;
    while ts < new_end {
        let mut first = i;
        let mut non_null = 0usize;
        while i < n && timestamps[i] < ts + interval {
            if timestamps[i] <= ts {
                first = i;
            }
            if timestamps[i] >= ts && data[i].is_some() {
                non_null += 1;
            }
            i += 1;
        }
        let ok =
            non_null > 0 && interval_points != 0.0 && non_null as f64 / interval_points >= s.x_files_factor;
        values.push(if ok { f(&data[first..i]) } else { None });
        ts += interval;
    }
    (values, ts)
}

fn smart_summarize(ctx: &Context<'_>, call: &Call, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let interval_s = a.required_string(1)?;
    let func = a.string(2)?.unwrap_or_else(|| "sum".into());
    agg_func(&func).ok_or_else(|| a.bad(&format!("Unsupported aggregation function: {func}")))?;
    let interval = parse_time_offset(&interval_s).map_err(|e| a.bad(&e.to_string()))?;
    if interval <= 0 {
        return Err(a.bad("intervalString must be a positive interval"));
    }
    let mut list = a.series(0)?;
    if let Some(Value::Str(align)) = a.get(3) {
        let start = align_start(ctx.start_time, align).map_err(|e| a.bad(&e.to_string()))?;
        let expr = first_arg(call).ok_or_else(|| a.bad("first argument must be a series expression"))?;
        list = ctx.with_times(start, ctx.end_time).evaluate(expr)?;
    }
    Ok(map(list, |s| {
        let (values, end) = summarize_values(s, &func, interval, s.start, s.end);
        s.set_tag("smartSummarize", interval_s.clone());
        s.set_tag("smartSummarizeFunction", func.clone());
        copy(
            s,
            format!("smartSummarize({}, \"{interval_s}\", \"{func}\")", s.name),
            values,
        );
        s.end = end;
        s.step = interval;
    }))
}

/// smartSummarize's `alignTo`: the start's wall clock truncated to the unit (`getUnitString` reads
/// a prefix; weeks may name the ISO weekday to align to as a last digit), kept under the start's
/// UTC offset as `datetime(…, tzinfo=s.tzinfo)` keeps it, even across a DST change.
fn align_start(start: PyDateTime, align: &str) -> Result<PyDateTime, TimeError> {
    let d = start.fields()?;
    let at = |h: i8, mi: i8, sec: i8| {
        start.at_civil(jiff::civil::datetime(d.year(), d.month(), d.day(), h, mi, sec, 0))
    };
    Ok(match unit_of(align)? {
        TimeUnit::Years => start.at_civil(jiff::civil::date(d.year(), 1, 1).at(0, 0, 0, 0))?,
        TimeUnit::Months => start.at_civil(jiff::civil::date(d.year(), d.month(), 1).at(0, 0, 0, 0))?,
        TimeUnit::Weeks => {
            let target = align
                .chars()
                .last()
                .and_then(|c| c.to_digit(10))
                .map_or(1, i64::from);
            let iso = i64::from(d.weekday().to_monday_one_offset());
            let mut back = iso - target;
            if back < 0 {
                back += 7;
            }
            at(0, 0, 0)?.plus(-back * 86_400)
        }
        TimeUnit::Days => at(0, 0, 0)?,
        TimeUnit::Hours => at(d.hour(), 0, 0)?,
        TimeUnit::Minutes => at(d.hour(), d.minute(), 0)?,
        TimeUnit::Seconds => at(d.hour(), d.minute(), d.second())?,
    })
}

/// graphite-web 1.1.10's `_compressPeriodicGaps`: when values come every k-th step with Nones
/// between (guessed from the first values that are truthy), re-bucket the series at k steps
/// with `last`; otherwise leave it as it is.
fn compress_periodic_gaps(s: &mut TimeSeries) {
    let vals = s.iter_values();
    let truthy = |v: Option<f64>| v.is_some_and(|x| x != 0.0);
    let (mut first_seen, mut second_seen) = (0usize, 0usize);
    for (i, v) in vals.iter().enumerate() {
        if truthy(*v) {
            if first_seen > 0 {
                second_seen = i;
                break;
            }
            first_seen = i;
        }
    }
    let guess = second_seen as i64 - first_seen as i64;
    let third = second_seen as i64 + guess;
    let raw = |i: i64| {
        usize::try_from(i)
            .ok()
            .and_then(|i| s.values.get(i).copied())
            .flatten()
    };
    if guess > 1
        && third <= s.values.len() as i64 - 2
        && truthy(raw(third))
        && raw(third - 1).is_none()
        && raw(third + 1).is_none()
    {
        let interval = guess * s.step;
        let new_start = s.start + first_seen as i64 * s.step;
        let (values, _) = summarize_values(s, "last", interval, new_start, s.end);
        s.end = new_start + interval * (values.len() as i64 - 1);
        s.start = new_start;
        s.step = interval;
        s.values = values;
        s.values_per_point = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_rounding() {
        assert_eq!(py_round(2.5, 0), 2.0);
        assert_eq!(py_round(0.125, 2), 0.12);
        assert_eq!(py_round(1250.0, -2), 1200.0);
        assert_eq!(py_round(-1.23456, 3), -1.235);
    }

    #[test]
    fn delay_slices_as_python() {
        let v = vec![Some(1.0), Some(2.0), Some(3.0)];
        assert_eq!(delayed(&v, 1), vec![None, Some(1.0), Some(2.0)]);
        assert_eq!(delayed(&v, -1), vec![Some(2.0), Some(3.0), None]);
        assert_eq!(delayed(&v, 0), Vec::<Option<f64>>::new());
        assert_eq!(delayed(&v, 5), vec![None, None, None]);
        assert_eq!(delayed(&v, -5), vec![None, None, None]);
    }

    #[test]
    fn interpolate_fills_inner_gaps_only() {
        let vals = vec![None, Some(1.0), None, None, Some(4.0), None];
        let mut out = vals.clone();
        interpolate(&mut out, &vals, f64::INFINITY);
        assert_eq!(out, vec![None, Some(1.0), Some(2.0), Some(3.0), Some(4.0), None]);
        let mut out = vals.clone();
        interpolate(&mut out, &vals, 1.0);
        assert_eq!(out, vals);
    }

    #[test]
    fn safe_pow_domain() {
        assert_eq!(safe_pow(Some(-8.0), 0.5), None);
        assert_eq!(safe_pow(Some(0.0), -1.0), None);
        assert_eq!(safe_pow(Some(4.0), 0.5), Some(2.0));
        assert_eq!(safe_pow(Some(1e300), 2.0), None);
    }

    #[test]
    fn compress_detects_period() {
        let v = |x: f64| Some(x);
        let mut s = TimeSeries::new(
            "a",
            0,
            600,
            60,
            vec![None, v(1.0), None, None, v(2.0), None, None, v(3.0), None, None],
        );
        compress_periodic_gaps(&mut s);
        assert_eq!((s.start, s.step), (60, 180));
        assert_eq!(s.values, vec![v(1.0), v(2.0), v(3.0)]);
        assert_eq!(s.end, 60 + 180 * 2);
    }
}
