//! graphite-web's Calculate functions: moving windows (which re-fetch their first argument from
//! earlier so the first points have a full window), percentiles, deviation, regression, and
//! Holt-Winters forecasting (which re-fetches a bootstrap interval, 7 days by default).

use carbide_query::attime::{parse_at_time, parse_time_offset};
use carbide_query::pytime::PyDateTime;

use super::transform::wall_clock;
use carbide_query::grammar::Call;

use super::Args;
use super::base::{agg_func, rename_copy};
use super::combine::{AGG_OPTIONS, percentile};
use crate::RenderError;
use crate::catalog::{FunctionInfo, Param, SL, def, p, req};
use crate::eval::{Context, Value, first_arg};
use crate::pyfmt::{g, py_float_repr};
use crate::series::TimeSeries;

const WINDOW: Param = req("windowSize", "intOrInterval");
const XFF: Param = p("xFilesFactor", "float");
const DELTA: Param = def("delta", "integer", "3");
const BOOTSTRAP: Param = def("bootstrapInterval", "interval", "\"7d\"");
const SEASONALITY: Param = def("seasonality", "interval", "\"1d\"");
const AGG_FUNC_AVERAGE: Param = Param {
    options: AGG_OPTIONS,
    ..def("func", "aggFunc", "\"average\"")
};

const fn calculate(name: &'static str, params: &'static [Param]) -> FunctionInfo {
    FunctionInfo {
        name,
        group: "Calculate",
        params,
    }
}

/// The functions of this group, as `/functions` lists them.
pub const FUNCTIONS: &[FunctionInfo] = &[
    calculate("movingSum", &[SL, WINDOW, XFF]),
    calculate("movingMin", &[SL, WINDOW, XFF]),
    calculate("movingMax", &[SL, WINDOW, XFF]),
    calculate("movingMedian", &[SL, WINDOW, XFF]),
    calculate("movingWindow", &[SL, WINDOW, AGG_FUNC_AVERAGE, XFF]),
    calculate("exponentialMovingAverage", &[SL, WINDOW]),
    calculate("nPercentile", &[SL, req("n", "float")]),
    calculate(
        "stdev",
        &[
            SL,
            req("points", "integer"),
            def("windowTolerance", "float", "0.1"),
        ],
    ),
    calculate(
        "linearRegression",
        &[SL, p("startSourceAt", "date"), p("endSourceAt", "date")],
    ),
    calculate(
        "aggregateLine",
        &[SL, AGG_FUNC_AVERAGE, def("keepStep", "boolean", "false")],
    ),
    calculate("identity", &[req("name", "string")]),
    calculate("holtWintersForecast", &[SL, BOOTSTRAP, SEASONALITY]),
    calculate("holtWintersConfidenceBands", &[SL, DELTA, BOOTSTRAP, SEASONALITY]),
    calculate("holtWintersConfidenceArea", &[SL, DELTA, BOOTSTRAP, SEASONALITY]),
    calculate("holtWintersAberration", &[SL, DELTA, BOOTSTRAP, SEASONALITY]),
];

/// Runs one function of [`FUNCTIONS`].
pub(crate) fn dispatch(ctx: &Context<'_>, call: &Call, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    match a.info.name {
        "movingSum" => moving_window(ctx, call, a, "sum", 2),
        "movingMin" => moving_window(ctx, call, a, "min", 2),
        "movingMax" => moving_window(ctx, call, a, "max", 2),
        "movingMedian" => moving_window(ctx, call, a, "median", 2),
        "movingWindow" => {
            let func = a.string(2)?.unwrap_or_else(|| "average".into());
            moving_window(ctx, call, a, &func, 3)
        }
        "exponentialMovingAverage" => exponential_moving_average(ctx, call, a),
        "nPercentile" => n_percentile(a),
        "stdev" => stdev(a),
        "linearRegression" => linear_regression(ctx, call, a),
        "aggregateLine" => aggregate_line(ctx, a),
        "identity" => {
            let name = a.required_string(0)?;
            let values = (ctx.start..ctx.end).step_by(60).map(|t| Some(t as f64)).collect();
            let mut s = TimeSeries::new(&name, ctx.start, ctx.end, 60, values);
            s.x_files_factor = ctx.x_files_factor;
            s.path_expression = format!("identity(\"{name}\")");
            s.set_all_ints();
            Ok(vec![s])
        }
        "holtWintersForecast" => holt_winters_forecast(ctx, call, a),
        "holtWintersConfidenceBands" => {
            let (bands, _) = confidence_bands(ctx, call, a, 1)?;
            Ok(bands)
        }
        "holtWintersConfidenceArea" => confidence_area(ctx, call, a),
        "holtWintersAberration" => aberration(ctx, call, a),
        other => Err(RenderError::UnknownFunction(other.to_string())),
    }
}

/// A window as written: a count of points or an interval string.
enum Window {
    Points(i64, String),
    Interval(i64, String),
}

/// Reads `windowSize` (argument 2).
fn window(a: &Args) -> Result<Window, RenderError> {
    match a.get(1) {
        Some(Value::Str(w)) => {
            let secs = parse_time_offset(w).map_err(|e| a.bad(&e.to_string()))?.abs();
            Ok(Window::Interval(secs, w.clone()))
        }
        Some(Value::Int(n)) => Ok(Window::Points(*n, n.to_string())),
        Some(Value::Float(f)) => Ok(Window::Points(f.trunc() as i64, py_float_repr(*f))),
        _ => Err(a.bad("windowSize must be a number of points or an interval")),
    }
}

impl Window {
    /// Seconds of data fetched before the range: a point count covers it at the largest step.
    fn preview(&self, max_step: i64) -> i64 {
        match self {
            Window::Points(n, _) => max_step * n,
            Window::Interval(s, _) => *s,
        }
    }

    fn points(&self, step: i64) -> i64 {
        match self {
            Window::Points(n, _) => *n,
            Window::Interval(s, _) => s / step.max(1),
        }
    }

    /// `"5min"` quoted for intervals, the number as written otherwise (in names).
    fn name_text(&self) -> String {
        match self {
            Window::Points(_, t) => t.clone(),
            Window::Interval(_, t) => format!("\"{t}\""),
        }
    }

    fn tag_text(&self) -> String {
        match self {
            Window::Points(_, t) | Window::Interval(_, t) => t.clone(),
        }
    }
}

/// Python's `str.capitalize`: first character upper case, the rest lower case.
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// The first argument evaluated again from `preview` seconds before the range.
fn refetch(ctx: &Context<'_>, call: &Call, a: &Args, preview: i64) -> Result<Vec<TimeSeries>, RenderError> {
    let expr = first_arg(call).ok_or_else(|| a.bad("first argument must be a series expression"))?;
    ctx.with_range(ctx.start - preview, ctx.end).evaluate(expr)
}

/// graphite-web's `movingWindow`: each point is `func` over the non-null values of the window
/// before it, given the window holds enough of them (xFilesFactor).
fn moving_window(
    ctx: &Context<'_>,
    call: &Call,
    a: &Args,
    func: &str,
    xff_index: usize,
) -> Result<Vec<TimeSeries>, RenderError> {
    let list = a.series(0)?;
    if list.is_empty() {
        return Ok(Vec::new());
    }
    let w = window(a)?;
    let f = agg_func(func).ok_or_else(|| a.bad(&format!("Unsupported aggregation function: {func}")))?;
    let xff = a.number(xff_index)?.map(|x| x.0);
    let max_step = list.iter().map(|s| s.step).max().unwrap_or(1);
    let preview = w.preview(max_step);
    let tag = format!("moving{}", capitalize(func));
    let mut out = Vec::new();
    for mut s in refetch(ctx, call, a, preview)? {
        let points = w.points(s.step).max(0) as usize;
        let effective = xff.unwrap_or(s.x_files_factor);
        let values: Vec<Option<f64>> = (points..s.values.len())
            .map(|i| {
                let window: Vec<Option<f64>> = s.values[i - points..i]
                    .iter()
                    .filter(|v| v.is_some())
                    .copied()
                    .collect();
                let ok = !window.is_empty() && window.len() as f64 / points as f64 >= effective;
                if ok { f(&window) } else { None }
            })
            .collect();
        s.set_tag(&tag, w.tag_text());
        let name = format!("{tag}({},{})", s.name, w.name_text());
        s.start += preview;
        s.values_per_point = 1;
        rename_copy(&mut s, name, values);
        out.push(s);
    }
    Ok(out)
}

/// Python's `round(x, 6)`.
fn round6(x: f64) -> f64 {
    super::base::py_round6(x)
}

/// `exponentialMovingAverage` as graphite-web fixed it after 1.1.8 (1.1.8 never updates the
/// average and fails on interval windows): seeded with the mean of the first window, then
/// `ema = c * value + (1 - c) * ema` with `c = 2 / (window + 1)`.
fn exponential_moving_average(
    ctx: &Context<'_>,
    call: &Call,
    a: &Args,
) -> Result<Vec<TimeSeries>, RenderError> {
    let list = a.series(0)?;
    if list.is_empty() {
        return Ok(Vec::new());
    }
    let w = window(a)?;
    let max_step = list.iter().map(|s| s.step).max().unwrap_or(1);
    let preview = w.preview(max_step);
    let constant = match &w {
        Window::Points(n, _) => 2.0 / (*n as f64 + 1.0),
        Window::Interval(secs, _) => 2.0 / (*secs as f64 + 1.0),
    };
    let mut out = Vec::new();
    for mut s in refetch(ctx, call, a, preview)? {
        let points = (w.points(s.step).max(0) as usize).min(s.values.len());
        let seed: Vec<f64> = s.values[..points].iter().flatten().copied().collect();
        let mut ema = if seed.is_empty() {
            0.0
        } else {
            seed.iter().sum::<f64>() / seed.len() as f64
        };
        let mut values = vec![Some(round6(ema))];
        for v in &s.values[points..] {
            values.push(v.map(|x| {
                ema = constant * x + (1.0 - constant) * ema;
                round6(ema)
            }));
        }
        s.set_tag("exponentialMovingAverage", w.tag_text());
        let name = format!("exponentialMovingAverage({},{})", s.name, w.name_text());
        s.start += preview;
        s.values_per_point = 1;
        rename_copy(&mut s, name, values);
        out.push(s);
    }
    Ok(out)
}

fn n_percentile(a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let (n, _) = a.required_number(1)?;
    if n == 0.0 {
        return Err(a.bad("The requested percent is required to be greater than 0"));
    }
    let mut out = Vec::new();
    for mut s in a.series(0)? {
        let values = s.iter_values();
        let Some(perc) = percentile(&values, n, false) else {
            continue;
        };
        // `float` parameter: graphite-web converts it, so 50 is tagged "50.0".
        s.set_tag("nPercentile", py_float_repr(n));
        let count = ((s.end - s.start) as f64 / s.step as f64) as usize;
        let name = format!("nPercentile({}, {})", s.name, g(n));
        s.values_per_point = 1;
        rename_copy(&mut s, name, vec![Some(perc); count]);
        out.push(s);
    }
    Ok(out)
}

fn stdev(a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let points = match a.get(1) {
        Some(Value::Int(n)) => *n,
        _ => return Err(a.bad("points must be an integer")),
    };
    let tolerance = a.number(2)?.map_or(0.1, |x| x.0);
    let mut out = Vec::new();
    for mut s in a.series(0)? {
        let data = s.iter_values();
        let mut valid = 0i64;
        let mut sum = 0.0;
        let mut sum_sq = 0.0;
        let mut values = Vec::with_capacity(data.len());
        for (i, new) in data.iter().enumerate() {
            let dropped = if (i as i64) < points {
                None
            } else {
                usize::try_from(i as i64 - points)
                    .ok()
                    .and_then(|j| data.get(j))
                    .copied()
                    .flatten()
            };
            if dropped.is_some() {
                valid -= 1;
            }
            if new.is_some() {
                valid += 1;
            }
            if let Some(d) = dropped {
                sum -= d;
                sum_sq -= d * d;
            }
            if let Some(x) = new {
                sum += x;
                sum_sq += x * x;
            }
            values.push(if valid > 0 && valid as f64 / points as f64 >= tolerance {
                let dev = (valid as f64 * sum_sq - sum * sum).sqrt() / valid as f64;
                (!dev.is_nan()).then_some(dev)
            } else {
                None
            });
        }
        s.set_tag("stdev", points.to_string());
        let name = format!("stdev({},{})", s.name, points);
        s.values_per_point = 1;
        rename_copy(&mut s, name, values);
        out.push(s);
    }
    Ok(out)
}

/// graphite-web's `_linearRegressionAnalysis`: least squares over the non-null points,
/// `(factor per second, offset at epoch 0)`.
fn regression(s: &TimeSeries) -> Option<(f64, f64)> {
    let values = s.iter_values();
    let (mut n, mut sum_i, mut sum_ii) = (0i128, 0i128, 0i128);
    let (mut sum_v, mut sum_iv) = (0.0f64, 0.0f64);
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            let i = i as i128;
            n += 1;
            sum_i += i;
            sum_ii += i * i;
            sum_v += v;
            sum_iv += i as f64 * v;
        }
    }
    let denominator = (n * sum_ii - sum_i * sum_i) as f64;
    if denominator == 0.0 {
        return None;
    }
    let factor = (n as f64 * sum_iv - sum_i as f64 * sum_v) / denominator / s.step as f64;
    let offset = (sum_ii as f64 * sum_v - sum_iv * sum_i as f64) / denominator - factor * s.start as f64;
    Some((factor, offset))
}

fn linear_regression(ctx: &Context<'_>, call: &Call, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let list = a.series(0)?;
    // graphite-web reads these with parseATTime's defaults (TIME_ZONE, the machine's clock as
    // `now`); names and tags show `mktime(startTime.timetuple())` in TIME_ZONE, which is the
    // request's start shifted when the request's `tz` differs and no start is given.
    let tz = &ctx.server_tz;
    let at = |i: usize, default: PyDateTime| -> Result<PyDateTime, RenderError> {
        let text = match a.get(i) {
            None | Some(Value::None) => return Ok(default),
            Some(Value::Str(s)) => s.clone(),
            Some(Value::Int(n)) => n.to_string(),
            _ => return Err(a.bad("startSourceAt/endSourceAt must be a time")),
        };
        let t = parse_at_time(&text, wall_clock(), tz).map_err(|e| a.bad(&e.to_string()))?;
        Ok(PyDateTime::localized(t, tz))
    };
    let (start_time, end_time) = (at(1, ctx.start_time)?, at(2, ctx.end_time)?);
    let expr = first_arg(call).ok_or_else(|| a.bad("first argument must be a series expression"))?;
    let sources = ctx.with_times(start_time, end_time).evaluate(expr)?;
    let (start, end) = (start_time.mktime(tz), end_time.mktime(tz));
    let mut out = Vec::new();
    for (source, mut s) in sources.iter().zip(list) {
        s.set_tag("linearRegressions", format!("{start}, {end}"));
        let name = format!("linearRegression({}, {start}, {end})", s.name);
        let Some((factor, offset)) = regression(source) else {
            continue;
        };
        let values = (0..s.values.len())
            .map(|i| Some(offset + (s.start + i as i64 * s.step) as f64 * factor))
            .collect();
        let mut r = TimeSeries::new(&name, s.start, s.end, s.step, values);
        r.tags = s.tags.clone();
        r.x_files_factor = s.x_files_factor;
        out.push(r);
    }
    Ok(out)
}

fn aggregate_line(ctx: &Context<'_>, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let func = a.string(1)?.unwrap_or_else(|| "average".into());
    let f = agg_func(&func).ok_or_else(|| a.bad(&format!("Unsupported aggregation function: {func}")))?;
    let keep_step = a.boolean(2, false);
    let mut out = Vec::new();
    for mut s in a.series(0)? {
        let value = f(&s.iter_values());
        let name = match value {
            Some(v) => format!("aggregateLine({}, {})", s.name, g(v)),
            None => format!("aggregateLine({}, None)", s.name),
        };
        if keep_step {
            let n = s.values.len();
            s.values_per_point = 1;
            rename_copy(&mut s, name, vec![value; n]);
            out.push(s);
        } else {
            // constantLine(value): named str(value) (tags keep that), three points.
            let text = match value {
                None => "None".to_string(),
                Some(v) if func == "count" => format!("{}", v as i64),
                Some(v) => py_float_repr(v),
            };
            let step = (ctx.end - ctx.start) / 2;
            let mut c = TimeSeries::new(&text, ctx.start, ctx.end, step, vec![value; 3]);
            c.x_files_factor = ctx.x_files_factor;
            c.name = name.clone();
            c.path_expression = name;
            out.push(c);
        }
    }
    Ok(out)
}

/// graphite-web's `holtWintersAnalysis`: the predictions and deviations of additive Holt-Winters
/// (alpha = gamma = 0.1, beta = 0.0035) with a season of `season_length` points.
fn holt_winters(values: &[Option<f64>], season_length: usize) -> (Vec<Option<f64>>, Vec<Option<f64>>) {
    const ALPHA: f64 = 0.1;
    const GAMMA: f64 = 0.1;
    const BETA: f64 = 0.0035;
    let mut intercepts: Vec<Option<f64>> = Vec::with_capacity(values.len());
    let mut slopes: Vec<f64> = Vec::with_capacity(values.len());
    let mut seasonals: Vec<f64> = Vec::with_capacity(values.len());
    let mut predictions: Vec<Option<f64>> = Vec::with_capacity(values.len());
    let mut deviations: Vec<Option<f64>> = Vec::with_capacity(values.len());
    let last = |list: &[f64], i: usize| -> f64 {
        i.checked_sub(season_length)
            .and_then(|j| list.get(j))
            .copied()
            .unwrap_or(0.0)
    };
    let last_dev = |list: &[Option<f64>], i: usize| -> f64 {
        i.checked_sub(season_length)
            .and_then(|j| list.get(j))
            .copied()
            .flatten()
            .unwrap_or(0.0)
    };
    let mut next_pred: Option<f64> = None;
    for (i, v) in values.iter().enumerate() {
        let Some(actual) = *v else {
            intercepts.push(None);
            slopes.push(0.0);
            seasonals.push(0.0);
            predictions.push(next_pred);
            deviations.push(Some(0.0));
            next_pred = None;
            continue;
        };
        let (last_intercept, last_slope, prediction) = if i == 0 {
            (actual, 0.0, Some(actual))
        } else {
            (
                intercepts.last().copied().flatten().unwrap_or(actual),
                slopes.last().copied().unwrap_or(0.0),
                next_pred,
            )
        };
        let last_seasonal = last(&seasonals, i);
        let next_last_seasonal = last(&seasonals, i + 1);
        let last_seasonal_dev = last_dev(&deviations, i);
        let intercept = ALPHA * (actual - last_seasonal) + (1.0 - ALPHA) * (last_intercept + last_slope);
        let slope = BETA * (intercept - last_intercept) + (1.0 - BETA) * last_slope;
        let seasonal = GAMMA * (actual - intercept) + (1.0 - GAMMA) * last_seasonal;
        next_pred = Some(intercept + slope + next_last_seasonal);
        let deviation =
            GAMMA * (actual - prediction.unwrap_or(0.0)).abs() + (1.0 - GAMMA) * last_seasonal_dev;
        intercepts.push(Some(intercept));
        slopes.push(slope);
        seasonals.push(seasonal);
        predictions.push(prediction);
        deviations.push(Some(deviation));
    }
    (predictions, deviations)
}

/// The bootstrap and season lengths in seconds from arguments `from` and `from + 1`.
fn intervals(a: &Args, from: usize) -> Result<(i64, i64), RenderError> {
    let read = |i: usize, default: &str| -> Result<i64, RenderError> {
        let text = a.string(i)?.unwrap_or_else(|| default.to_string());
        parse_time_offset(&text).map_err(|e| a.bad(&e.to_string()))
    };
    Ok((read(from, "7d")?, read(from + 1, "1d")?))
}

/// One refetched series with its Holt-Winters predictions and deviations, bootstrap cut off.
struct Analysis {
    series: TimeSeries,
    start: i64,
    predictions: Vec<Option<f64>>,
    deviations: Vec<Option<f64>>,
}

fn analyse(
    ctx: &Context<'_>,
    call: &Call,
    a: &Args,
    bootstrap: i64,
    season: i64,
) -> Result<Vec<Analysis>, RenderError> {
    let mut out = Vec::new();
    for mut s in refetch(ctx, call, a, bootstrap)? {
        let step = s.step.max(1);
        let season_length = usize::try_from(season / step).unwrap_or(0);
        let (predictions, deviations) = holt_winters(&s.iter_values(), season_length);
        // graphite-web's analysis writes both tags into the series' (shared) tag dict.
        s.set_tag("holtWintersForecast", "1");
        s.set_tag("holtWintersDeviation", "1");
        let window = usize::try_from(bootstrap / step).unwrap_or(0);
        let cut = |v: Vec<Option<f64>>| v.into_iter().skip(window).collect::<Vec<_>>();
        out.push(Analysis {
            start: s.start + bootstrap,
            predictions: cut(predictions),
            deviations: cut(deviations),
            series: s,
        });
    }
    Ok(out)
}

fn holt_winters_forecast(ctx: &Context<'_>, call: &Call, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let (bootstrap, season) = intervals(a, 1)?;
    Ok(analyse(ctx, call, a, bootstrap, season)?
        .into_iter()
        .map(|an| {
            let s = &an.series;
            let name = format!("holtWintersForecast({})", s.name);
            let mut r = TimeSeries::new(&name, an.start, s.end, s.step, an.predictions);
            r.tags = s.tags.clone();
            r.x_files_factor = s.x_files_factor;
            r
        })
        .collect())
}

/// holtWintersConfidenceBands: lower and upper band per series (delta deviations either side of
/// the forecast), and the source series' names.
fn confidence_bands(
    ctx: &Context<'_>,
    call: &Call,
    a: &Args,
    delta_index: usize,
) -> Result<(Vec<TimeSeries>, Vec<String>), RenderError> {
    let delta = match a.get(delta_index) {
        None | Some(Value::None) => 3.0,
        Some(Value::Int(n)) => *n as f64,
        Some(Value::Float(f)) => *f,
        _ => return Err(a.bad("delta must be an integer")),
    };
    let (bootstrap, season) = intervals(a, delta_index + 1)?;
    let mut out = Vec::new();
    let mut names = Vec::new();
    for an in analyse(ctx, call, a, bootstrap, season)? {
        let s = &an.series;
        let (lower, upper): (Vec<Option<f64>>, Vec<Option<f64>>) = an
            .predictions
            .iter()
            .zip(&an.deviations)
            .map(|(f, d)| match (f, d) {
                (Some(f), Some(d)) => (Some(f - delta * d), Some(f + delta * d)),
                _ => (None, None),
            })
            .unzip();
        let mut tags = s.tags.clone();
        crate::series::set_tag(&mut tags, "holtWintersConfidenceUpper", "1".into());
        crate::series::set_tag(&mut tags, "holtWintersConfidenceLower", "1".into());
        for (kind, values) in [("Lower", lower), ("Upper", upper)] {
            let name = format!("holtWintersConfidence{kind}({})", s.name);
            let mut r = TimeSeries::new(&name, an.start, s.end, s.step, values);
            r.tags = tags.clone();
            r.x_files_factor = s.x_files_factor;
            r.path_expression = s.path_expression.clone();
            out.push(r);
        }
        names.push(s.name.clone());
    }
    Ok((out, names))
}

fn confidence_area(ctx: &Context<'_>, call: &Call, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let (bands, _) = confidence_bands(ctx, call, a, 1)?;
    if bands.len() != 2 {
        return Err(a.bad("areaBetween series argument must reference *exactly* 2 series"));
    }
    // areaBetween: both named after the upper band's path expression, sharing its tags.
    let upper = &bands[1];
    let name = format!("holtWintersConfidenceArea({})", upper.path_expression);
    let mut tags = upper.tags.clone();
    crate::series::set_tag(&mut tags, "holtWintersConfidenceArea", "1".into());
    Ok(bands
        .into_iter()
        .map(|mut s| {
            s.name = name.clone();
            s.path_expression = name.clone();
            s.tags = tags.clone();
            s
        })
        .collect())
}

fn aberration(ctx: &Context<'_>, call: &Call, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let (bands, _) = confidence_bands(ctx, call, a, 1)?;
    let mut out = Vec::new();
    for mut s in a.series(0)? {
        let find = |kind: &str| {
            let name = format!("holtWintersConfidence{kind}({})", s.name);
            bands
                .iter()
                .find(|b| b.name == name)
                .ok_or_else(|| a.bad(&format!("no confidence band {name}")))
        };
        let lower = find("Lower")?.values.clone();
        let upper = find("Upper")?.values.clone();
        let values = s.iter_values();
        if values.len() > lower.len() || values.len() > upper.len() {
            return Err(a.bad("the confidence bands are shorter than the series"));
        }
        let ab = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                Some(match *v {
                    None => 0.0,
                    Some(x) => match (upper[i], lower[i]) {
                        (Some(u), _) if x > u => x - u,
                        (_, Some(l)) if x < l => x - l,
                        _ => 0.0,
                    },
                })
            })
            .collect();
        s.set_tag("holtWintersAberration", "1");
        let name = format!("holtWintersAberration({})", s.name);
        let mut r = TimeSeries::new(&name, s.start, s.end, s.step, ab);
        r.tags = s.tags.clone();
        r.x_files_factor = s.x_files_factor;
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capitalize_like_python() {
        assert_eq!(capitalize("sum"), "Sum");
        assert_eq!(capitalize("rangeOf"), "Rangeof");
        assert_eq!(capitalize("avg_zero"), "Avg_zero");
    }

    #[test]
    fn holt_winters_first_points() {
        // The first prediction is the first value; with no season yet the next is intercept+slope.
        let (pred, dev) = holt_winters(&[Some(10.0), Some(12.0), None, Some(11.0)], 2);
        assert_eq!(pred[0], Some(10.0));
        let intercept = 0.1 * 10.0 + 0.9 * 10.0;
        assert_eq!(pred[1], Some(intercept));
        assert_eq!(pred[3], None);
        assert_eq!(dev[0], Some(0.0));
        assert_eq!(dev[2], Some(0.0));
    }

    #[test]
    fn regression_of_a_line() {
        let s = TimeSeries::new(
            "a",
            100,
            160,
            10,
            (0..6).map(|i| Some(2.0 * i as f64 + 1.0)).collect(),
        );
        let (factor, offset) = regression(&s).unwrap();
        assert!((factor - 0.2).abs() < 1e-12);
        assert!((offset + factor * 100.0 - 1.0).abs() < 1e-9);
    }
}
