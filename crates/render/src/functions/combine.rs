//! graphite-web's Combine functions: series joined point by point (diff, multiply, range, count,
//! stddev, percentile, pow), grouped by name (with wildcards, by nodes, map/reduce, applyByNode) or
//! paired list by list (`*SeriesLists`, weightedAverage).

use carbide_query::grammar::{Arg, Call, Expr};

use super::Args;
use super::base::{
    agg_func, agg_key, aggregate, all_series, as_percent, format_path_expressions, normalize, rows, safe_div,
};
use crate::RenderError;
use crate::catalog::{FunctionInfo, Param, SL, SLS, multi, p, req};
use crate::eval::{Context, Value};
use crate::pyfmt::g;
use crate::series::TimeSeries;

/// graphite-web's `ParamTypes.aggFunc` options (aggregation functions and their aliases), sorted.
pub(crate) const AGG_OPTIONS: &[&str] = &[
    "average", "avg", "avg_zero", "count", "current", "diff", "last", "max", "median", "min", "multiply",
    "range", "rangeOf", "stddev", "sum", "total",
];

/// graphite-web's `ParamTypes.aggOrSeriesFunc` options: the aggregation functions plus the series
/// functions marked `aggregator`, sorted.
const AGG_OR_SERIES_OPTIONS: &[&str] = &[
    "asPercent",
    "average",
    "averageSeries",
    "averageSeriesWithWildcards",
    "avg",
    "avg_zero",
    "count",
    "countSeries",
    "current",
    "diff",
    "diffSeries",
    "diffSeriesLists",
    "last",
    "max",
    "maxSeries",
    "median",
    "min",
    "minSeries",
    "multiply",
    "multiplySeries",
    "multiplySeriesLists",
    "multiplySeriesWithWildcards",
    "pct",
    "powSeries",
    "range",
    "rangeOf",
    "rangeOfSeries",
    "stddev",
    "stddevSeries",
    "sum",
    "sumSeries",
    "sumSeriesLists",
    "sumSeriesWithWildcards",
    "total",
];

const AGG_FUNC: Param = Param {
    options: AGG_OPTIONS,
    ..req("func", "aggFunc")
};
const SLS_OPT: Param = multi("seriesLists", "seriesList", false);
const POSITION: Param = multi("position", "node", false);
const FIRST: Param = req("seriesListFirstPos", "seriesList");
const SECOND: Param = req("seriesListSecondPos", "seriesList");
const NODES: Param = multi("nodes", "nodeOrTag", false);

const fn combine(name: &'static str, params: &'static [Param]) -> FunctionInfo {
    FunctionInfo {
        name,
        group: "Combine",
        params,
    }
}

/// The functions of this group, as `/functions` lists them.
pub const FUNCTIONS: &[FunctionInfo] = &[
    combine("diffSeries", &[SLS]),
    combine("multiplySeries", &[SLS]),
    combine("rangeOfSeries", &[SLS]),
    combine("countSeries", &[SLS_OPT]),
    combine("stddevSeries", &[SLS]),
    combine(
        "percentileOfSeries",
        &[
            SL,
            req("n", "float"),
            Param {
                default: Some("false"),
                ..p("interpolate", "boolean")
            },
        ],
    ),
    combine("sumSeriesWithWildcards", &[SL, POSITION]),
    combine("averageSeriesWithWildcards", &[SL, POSITION]),
    combine("multiplySeriesWithWildcards", &[SL, POSITION]),
    combine("aggregateWithWildcards", &[SL, AGG_FUNC, POSITION]),
    combine(
        "groupByNodes",
        &[
            SL,
            Param {
                options: AGG_OR_SERIES_OPTIONS,
                ..req("callback", "aggOrSeriesFunc")
            },
            NODES,
        ],
    ),
    combine("group", &[SLS_OPT]),
    combine("pct", &[SL, p("total", "any"), NODES]),
    combine(
        "weightedAverage",
        &[
            req("seriesListAvg", "seriesList"),
            req("seriesListWeight", "seriesList"),
            NODES,
        ],
    ),
    combine("diffSeriesLists", &[FIRST, SECOND]),
    combine("sumSeriesLists", &[FIRST, SECOND]),
    combine("multiplySeriesLists", &[FIRST, SECOND]),
    combine(
        "divideSeriesLists",
        &[
            req("dividendSeriesList", "seriesList"),
            req("divisorSeriesList", "seriesList"),
        ],
    ),
    combine(
        "aggregateSeriesLists",
        &[FIRST, SECOND, AGG_FUNC, p("xFilesFactor", "float")],
    ),
    combine("powSeries", &[multi("seriesList", "seriesList", true)]),
    combine("mapSeries", MAP_PARAMS),
    combine("map", MAP_PARAMS),
    combine("reduceSeries", REDUCE_PARAMS),
    combine("reduce", REDUCE_PARAMS),
    combine(
        "applyByNode",
        &[
            SL,
            req("nodeNum", "node"),
            req("templateFunction", "string"),
            p("newName", "string"),
        ],
    ),
];

const MAP_PARAMS: &[Param] = &[SL, multi("mapNodes", "nodeOrTag", true)];
const REDUCE_PARAMS: &[Param] = &[
    req("seriesLists", "seriesLists"),
    req("reduceFunction", "string"),
    req("reduceNode", "node"),
    multi("reduceMatchers", "string", true),
];

/// Runs one function of [`FUNCTIONS`].
pub(crate) fn dispatch(ctx: &Context<'_>, call: &Call, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    match a.info.name {
        "diffSeries" => aggregate(ctx, all_series(a), "diff"),
        "multiplySeries" => {
            // graphite-web's legacy case: one list of one series comes back untouched.
            if a.pos.len() == 1
                && let Some(Value::Series(list)) = a.pos.first()
                && list.len() == 1
            {
                return Ok(list.clone());
            }
            aggregate(ctx, all_series(a), "multiply")
        }
        "rangeOfSeries" => aggregate(ctx, all_series(a), "rangeOf"),
        "stddevSeries" => aggregate(ctx, all_series(a), "stddev"),
        "countSeries" => count_series(ctx, a),
        "percentileOfSeries" => percentile_of_series(ctx, a),
        "sumSeriesWithWildcards" => with_wildcards(ctx, a.series(0)?, "sum", &positions(a, 1)?),
        "averageSeriesWithWildcards" => with_wildcards(ctx, a.series(0)?, "average", &positions(a, 1)?),
        "multiplySeriesWithWildcards" => with_wildcards(ctx, a.series(0)?, "multiply", &positions(a, 1)?),
        "aggregateWithWildcards" => {
            let func = a.required_string(1)?;
            with_wildcards(ctx, a.series(0)?, strip_series(&func), &positions(a, 2)?)
        }
        "groupByNodes" => {
            let callback = a.required_string(1)?;
            let nodes: Vec<Value> = (2..a.pos.len()).filter_map(|i| a.get(i).cloned()).collect();
            group_by_nodes(ctx, a.series(0)?, &callback, &nodes)
        }
        "group" => Ok(all_series(a)),
        "pct" if a.pos.len() > 2 => as_percent_nodes(ctx, a),
        "pct" => as_percent(ctx, a),
        "weightedAverage" => weighted_average(ctx, a),
        "diffSeriesLists" => series_lists(ctx, a, "diff", None),
        "sumSeriesLists" => series_lists(ctx, a, "sum", None),
        "multiplySeriesLists" => series_lists(ctx, a, "multiply", None),
        "aggregateSeriesLists" => {
            let func = a.required_string(2)?;
            let xff = a.number(3)?.map(|x| x.0);
            series_lists(ctx, a, strip_series(&func), xff)
        }
        "divideSeriesLists" => divide_series_lists(ctx, a),
        "powSeries" => pow_series(ctx, all_series(a)),
        "mapSeries" | "map" => {
            let nodes: Vec<Value> = (1..a.pos.len()).filter_map(|i| a.get(i).cloned()).collect();
            Ok(map_series(a.series(0)?, &nodes).into_iter().flatten().collect())
        }
        "reduceSeries" | "reduce" => reduce_series(ctx, call, a),
        "applyByNode" => apply_by_node(ctx, a),
        other => Err(RenderError::UnknownFunction(other.to_string())),
    }
}

/// `aggregate()` strips a trailing `Series` from the function name (`sumSeries` → `sum`).
fn strip_series(func: &str) -> &str {
    func.strip_suffix("Series").unwrap_or(func)
}

/// The node positions given from argument `from` on (`*position`, integers).
fn positions(a: &Args, from: usize) -> Result<Vec<i64>, RenderError> {
    (from..a.pos.len())
        .map(|i| match a.get(i) {
            Some(Value::Int(n)) => Ok(*n),
            Some(Value::Float(f)) if f.fract() == 0.0 => Ok(*f as i64),
            _ => Err(a.bad(&format!("argument {} must be a node number", i + 1))),
        })
        .collect()
}

/// `aggregate()` with graphite-web's up-front check of the function name.
fn aggregate_checked(
    ctx: &Context<'_>,
    list: Vec<TimeSeries>,
    func: &str,
    xff: Option<f64>,
) -> Result<Vec<TimeSeries>, RenderError> {
    if agg_func(func).is_none() {
        return Err(RenderError::BadArgument(format!(
            "Unsupported aggregation function: {func}"
        )));
    }
    match xff {
        Some(x) => {
            let mut c = ctx.clone();
            c.x_files_factor = x;
            aggregate(&c, list, func)
        }
        None => aggregate(ctx, list, func),
    }
}

fn count_series(ctx: &Context<'_>, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    if a.pos.is_empty() {
        // constantLine(0): three points over the range, named "0".
        let step = (ctx.end - ctx.start) / 2;
        let mut s = TimeSeries::new("0", ctx.start, ctx.end, step, vec![Some(0.0); 3]);
        s.x_files_factor = ctx.x_files_factor;
        s.set_all_ints();
        s.path_expression = "countSeries()".into();
        return Ok(vec![s]);
    }
    let mut list = all_series(a);
    let Some((start, end, step)) = normalize(&mut list) else {
        return Ok(Vec::new());
    };
    let name = format!("countSeries({})", format_path_expressions(&list));
    let n = rows(&list).len();
    let mut s = TimeSeries::new(&name, start, end, step, vec![Some(list.len() as f64); n]);
    s.x_files_factor = ctx.x_files_factor;
    s.set_all_ints();
    Ok(vec![s])
}

/// graphite-web's `_getPercentile`: the n-th percentile of the non-null points, optionally
/// interpolated between neighbours.
pub(crate) fn percentile(points: &[Option<f64>], n: f64, interpolate: bool) -> Option<f64> {
    let mut sorted: Vec<f64> = points.iter().flatten().copied().collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let fractional_rank = (n / 100.0) * (sorted.len() + 1) as f64;
    let mut rank = fractional_rank as i64;
    let rank_fraction = fractional_rank - rank as f64;
    if !interpolate {
        rank += rank_fraction.ceil() as i64;
    }
    let len = sorted.len() as i64;
    let mut pct = if rank <= 0 {
        sorted[0]
    } else if rank > len {
        sorted[sorted.len() - 1]
    } else {
        sorted[(rank - 1) as usize]
    };
    if interpolate
        && rank != len
        && let Some(next) = usize::try_from(rank).ok().and_then(|r| sorted.get(r))
    {
        pct += rank_fraction * (next - pct);
    }
    Some(pct)
}

fn percentile_of_series(ctx: &Context<'_>, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let (n, _) = a.required_number(1)?;
    if n <= 0.0 {
        return Err(a.bad("The requested percent is required to be greater than 0"));
    }
    let interpolate = a.boolean(2, false);
    let mut list = a.series(0)?;
    let Some(first) = list.first() else {
        return Ok(Vec::new());
    };
    let name = format!("percentileOfSeries({},{})", first.path_expression, g(n));
    let Some((start, end, step)) = normalize(&mut list) else {
        return Ok(Vec::new());
    };
    let values = rows(&list)
        .iter()
        .map(|r| percentile(r, n, interpolate))
        .collect();
    let mut s = TimeSeries::new(&name, start, end, step, values);
    s.x_files_factor = ctx.x_files_factor;
    Ok(vec![s])
}

/// `aggregateWithWildcards`: series grouped by their name without the given positions, each group
/// aggregated and named by that key.
fn with_wildcards(
    ctx: &Context<'_>,
    list: Vec<TimeSeries>,
    func: &str,
    positions: &[i64],
) -> Result<Vec<TimeSeries>, RenderError> {
    let mut keys: Vec<String> = Vec::new();
    let mut groups: Vec<Vec<TimeSeries>> = Vec::new();
    for s in list {
        let key = s
            .name
            .split('.')
            .enumerate()
            .filter(|(i, _)| !positions.contains(&(*i as i64)))
            .map(|(_, part)| part)
            .collect::<Vec<_>>()
            .join(".");
        push_group(&mut keys, &mut groups, key, s);
    }
    let mut out = Vec::with_capacity(keys.len());
    for (key, group) in keys.into_iter().zip(groups) {
        if let Some(mut s) = aggregate_checked(ctx, group, func, None)?.into_iter().next() {
            s.name = key;
            out.push(s);
        }
    }
    Ok(out)
}

fn push_group(keys: &mut Vec<String>, groups: &mut Vec<Vec<TimeSeries>>, key: String, s: TimeSeries) {
    match keys.iter().position(|k| *k == key) {
        Some(i) => groups[i].push(s),
        None => {
            keys.push(key);
            groups.push(vec![s]);
        }
    }
}

/// `mapSeries`: the series grouped by their key over `nodes`, groups in order of first appearance.
fn map_series(list: Vec<TimeSeries>, nodes: &[Value]) -> Vec<Vec<TimeSeries>> {
    let mut keys: Vec<String> = Vec::new();
    let mut groups: Vec<Vec<TimeSeries>> = Vec::new();
    for s in list {
        let key = agg_key(&s, nodes);
        push_group(&mut keys, &mut groups, key, s);
    }
    groups
}

/// Calls any implemented function by name with positional values (groupByNodes' and
/// reduceSeries' callbacks).
fn call_named(ctx: &Context<'_>, name: &str, pos: Vec<Value>) -> Result<Vec<TimeSeries>, RenderError> {
    let (info, dispatch) = super::GROUPS
        .iter()
        .find_map(|(table, dispatch)| table.iter().find(|f| f.name == name).map(|f| (f, *dispatch)))
        .ok_or_else(|| RenderError::UnknownFunction(name.to_string()))?;
    let call = Call::new(name, Vec::new(), Vec::new());
    dispatch(
        ctx,
        &call,
        &Args {
            pos,
            kw: Vec::new(),
            info,
        },
    )
}

/// `groupByNodes`: groups by node/tag key, each reduced by a series function (called with the
/// group as its one argument) or an aggregation function, and named by its key.
pub(crate) fn group_by_nodes(
    ctx: &Context<'_>,
    list: Vec<TimeSeries>,
    callback: &str,
    nodes: &[Value],
) -> Result<Vec<TimeSeries>, RenderError> {
    let is_series_function = super::all().any(|f| f.name == callback);
    let mut out = Vec::new();
    let mut keys = Vec::new();
    let mut groups = Vec::new();
    for s in list {
        let key = agg_key(&s, nodes);
        push_group(&mut keys, &mut groups, key, s);
    }
    for (key, group) in keys.into_iter().zip(groups) {
        let result = if is_series_function {
            call_named(ctx, callback, vec![Value::Series(group)])?
        } else {
            aggregate_checked(ctx, group, strip_series(callback), None)?
        };
        let mut s = result.into_iter().next().ok_or_else(|| {
            RenderError::BadArgument(format!("groupByNodes: {callback} returned no series"))
        })?;
        s.name = key;
        out.push(s);
    }
    Ok(out)
}

/// `asPercent(seriesList, total, *nodes)`: series and totals matched by their node/tag key; a
/// group of several totals (or, with no total, of the series themselves) is summed; a side with
/// no match gives an all-None `asPercent(…,MISSING)` / `asPercent(MISSING,…)`.
pub(crate) fn as_percent_nodes(ctx: &Context<'_>, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let mut list = a.series(0)?;
    let nodes: Vec<Value> = (2..a.pos.len()).filter_map(|i| a.get(i).cloned()).collect();
    normalize(&mut list);
    let mut keys: Vec<String> = Vec::new();
    let mut groups: Vec<Vec<TimeSeries>> = Vec::new();
    for s in list {
        let key = agg_key(&s, &nodes);
        push_group(&mut keys, &mut groups, key, s);
    }
    // graphite-web names MISSING results with the range of the last normalize() it ran.
    let mut last: Option<(i64, i64, i64)> = None;
    let sum_group = |mut group: Vec<TimeSeries>, last: &mut Option<(i64, i64, i64)>| -> TimeSeries {
        if group.len() == 1
            && let Some(s) = group.pop()
        {
            return s;
        }
        let name = format!("sumSeries({})", format_path_expressions(&group));
        let range = normalize(&mut group);
        *last = range.or(*last);
        let (start, end, step) = range.unwrap_or((0, 0, 1));
        let values = rows(&group)
            .iter()
            .map(|r| {
                let u: Vec<f64> = r.iter().flatten().copied().collect();
                (!u.is_empty()).then(|| u.iter().sum())
            })
            .collect();
        let mut t = TimeSeries::new(&name, start, end, step, values);
        t.x_files_factor = ctx.x_files_factor;
        t
    };
    let mut total_keys: Vec<String> = Vec::new();
    let mut totals: Vec<TimeSeries> = Vec::new();
    match a.get(1) {
        None | Some(Value::None) => {
            for (key, group) in keys.iter().zip(&groups) {
                total_keys.push(key.clone());
                totals.push(sum_group(group.clone(), &mut last));
            }
        }
        Some(Value::Series(total)) => {
            let mut tgroups: Vec<Vec<TimeSeries>> = Vec::new();
            for s in total.iter().cloned() {
                let key = agg_key(&s, &nodes);
                if !keys.contains(&key) {
                    keys.push(key.clone());
                }
                push_group(&mut total_keys, &mut tgroups, key, s);
            }
            for group in tgroups {
                totals.push(sum_group(group, &mut last));
            }
        }
        _ => return Err(a.bad("total must be None or a seriesList")),
    }
    let missing_range = |last: Option<(i64, i64, i64)>| {
        last.ok_or_else(|| a.bad("no series to take the range of a MISSING result from"))
    };
    let mut out = Vec::new();
    for key in &keys {
        let total = total_keys.iter().position(|k| k == key).map(|i| &totals[i]);
        let Some(i) = keys_index(key, &keys, &groups) else {
            if let Some(t) = total {
                let (start, end, step) = missing_range(last)?;
                let n = t.iter_values().len();
                let mut r = TimeSeries::new(
                    &format!("asPercent(MISSING,{})", t.name),
                    start,
                    end,
                    step,
                    vec![None; n],
                );
                r.x_files_factor = ctx.x_files_factor;
                out.push(r);
            }
            continue;
        };
        for s1 in &groups[i] {
            let (name, values) = match total {
                None => {
                    last = Some(missing_range(last)?);
                    (
                        format!("asPercent({},MISSING)", s1.name),
                        vec![None; s1.iter_values().len()],
                    )
                }
                Some(t) => {
                    let mut both = vec![s1.clone(), t.clone()];
                    last = normalize(&mut both).or(last);
                    let values = rows(&both)
                        .iter()
                        .map(|r| safe_div(r[0], r[1]).map(|x| x * 100.0))
                        .collect();
                    (format!("asPercent({},{})", s1.name, t.name), values)
                }
            };
            let (start, end, step) = missing_range(last)?;
            let mut r = TimeSeries::new(&name, start, end, step, values);
            r.x_files_factor = ctx.x_files_factor;
            out.push(r);
        }
    }
    Ok(out)
}

/// The index of `key`'s group of series, if it has one (groups exist only for the first keys).
fn keys_index(key: &str, keys: &[String], groups: &[Vec<TimeSeries>]) -> Option<usize> {
    keys.iter().position(|k| k == key).filter(|i| *i < groups.len())
}

fn weighted_average(ctx: &Context<'_>, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let avgs = a.series(0)?;
    let weights = a.series(1)?;
    let nodes: Vec<Value> = (2..a.pos.len()).filter_map(|i| a.get(i).cloned()).collect();
    if avgs.len() != weights.len() {
        return Err(a.bad(&format!(
            "weightedAverage must receive the same number of series for seriesListAvg and seriesListWeight but received respectively {} and {}",
            avgs.len(),
            weights.len()
        )));
    }
    // key -> (avg, weight), keys in first-seen order (a Python dict).
    let mut keys: Vec<String> = Vec::new();
    let mut pairs: Vec<(Option<&TimeSeries>, Option<&TimeSeries>)> = Vec::new();
    let mut slot = |key: String, keys: &mut Vec<String>| match keys.iter().position(|k| *k == key) {
        Some(i) => i,
        None => {
            keys.push(key);
            pairs.push((None, None));
            keys.len() - 1
        }
    };
    let mut assign: Vec<(usize, bool, usize)> = Vec::new();
    for (i, (avg, weight)) in avgs.iter().zip(&weights).enumerate() {
        let k = slot(agg_key(avg, &nodes), &mut keys);
        assign.push((k, true, i));
        let k = slot(agg_key(weight, &nodes), &mut keys);
        assign.push((k, false, i));
    }
    for (k, is_avg, i) in assign {
        if is_avg {
            pairs[k].0 = Some(&avgs[i]);
        } else {
            pairs[k].1 = Some(&weights[i]);
        }
    }
    let mut products = Vec::new();
    for (avg, weight) in &pairs {
        let (Some(avg), Some(weight)) = (avg, weight) else {
            continue;
        };
        let values = zip_longest_values(&avg.iter_values(), &weight.iter_values(), |x, y| match (x, y) {
            (Some(x), Some(y)) => Some(x * y),
            _ => None,
        });
        let name = format!("product({},{})", weight.name, avg.name);
        let mut s = TimeSeries::new(&name, avg.start, avg.end, avg.step, values);
        s.x_files_factor = ctx.x_files_factor;
        products.push(s);
    }
    if products.is_empty() {
        return Ok(Vec::new());
    }
    let sum_products = aggregate(ctx, products, "sum")?;
    let sum_weights = aggregate(ctx, weights.clone(), "sum")?;
    let (Some(sp), Some(sw)) = (sum_products.first(), sum_weights.first()) else {
        return Ok(Vec::new());
    };
    let values = zip_longest_values(&sp.iter_values(), &sw.iter_values(), safe_div);
    let exprs = |list: &[TimeSeries]| {
        let mut e: Vec<&str> = list.iter().map(|s| s.path_expression.as_str()).collect();
        e.sort_unstable();
        e.dedup();
        e.join(",")
    };
    let node_text: Vec<String> = nodes
        .iter()
        .map(|n| match n {
            Value::Int(i) => i.to_string(),
            Value::Float(f) => crate::pyfmt::py_float_repr(*f),
            Value::Str(s) => s.clone(),
            Value::Bool(b) => if *b { "True" } else { "False" }.into(),
            _ => "None".into(),
        })
        .collect();
    let name = format!(
        "weightedAverage({}, {}, {})",
        exprs(&avgs),
        exprs(&weights),
        node_text.join(",")
    );
    let mut s = TimeSeries::new(&name, sp.start, sp.end, sp.step, values);
    s.x_files_factor = ctx.x_files_factor;
    Ok(vec![s])
}

fn zip_longest_values(
    a: &[Option<f64>],
    b: &[Option<f64>],
    f: impl Fn(Option<f64>, Option<f64>) -> Option<f64>,
) -> Vec<Option<f64>> {
    (0..a.len().max(b.len()))
        .map(|i| f(a.get(i).copied().flatten(), b.get(i).copied().flatten()))
        .collect()
}

/// `aggregateSeriesLists`: list1[i] and list2[i] aggregated pairwise, named `<func>Series(a,b)`.
fn series_lists(
    ctx: &Context<'_>,
    a: &Args,
    func: &str,
    xff: Option<f64>,
) -> Result<Vec<TimeSeries>, RenderError> {
    let first = a.series(0)?;
    let second = a.series(1)?;
    if first.len() != second.len() {
        return Err(a.bad("seriesListFirstPos and seriesListSecondPos argument must have equal length"));
    }
    let mut out = Vec::with_capacity(first.len());
    for (s1, s2) in first.into_iter().zip(second) {
        let name = format!("{func}Series({},{})", s1.name, s2.name);
        if let Some(mut r) = aggregate_checked(ctx, vec![s1, s2], func, xff)?
            .into_iter()
            .next()
        {
            r.name = name;
            out.push(r);
        }
    }
    Ok(out)
}

fn divide_series_lists(ctx: &Context<'_>, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let dividends = a.series(0)?;
    let divisors = a.series(1)?;
    if dividends.len() != divisors.len() {
        return Err(a.bad("dividendSeriesList and divisorSeriesList argument must have equal length"));
    }
    let mut out = Vec::with_capacity(dividends.len());
    for (d, v) in dividends.into_iter().zip(divisors) {
        let name = format!("divideSeries({},{})", d.name, v.name);
        let mut both = vec![d, v];
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

/// Python's `math.pow` as graphite-web's `safePow` uses it: None where Python raises
/// (domain error or overflow).
fn safe_pow(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let (a, b) = (a?, b?);
    let r = a.powf(b);
    if r.is_nan() && !a.is_nan() && !b.is_nan() {
        return None;
    }
    if r.is_infinite() && a.is_finite() && b.is_finite() {
        return None;
    }
    Some(r)
}

fn pow_series(ctx: &Context<'_>, mut list: Vec<TimeSeries>) -> Result<Vec<TimeSeries>, RenderError> {
    let Some((start, end, step)) = normalize(&mut list) else {
        return Ok(Vec::new());
    };
    let name = format!(
        "powSeries({})",
        list.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(",")
    );
    let values = rows(&list)
        .iter()
        .map(|r| {
            let mut it = r.iter().copied();
            let first = it.next().flatten();
            it.fold(first, safe_pow)
        })
        .collect();
    let mut s = TimeSeries::new(&name, start, end, step, values);
    s.x_files_factor = ctx.x_files_factor;
    Ok(vec![s])
}

/// `reduceSeries(mapSeries(list, nodes…), func, node, matchers…)`: series whose node `reduceNode`
/// is one of the matchers are collected under `<prefix>.reduce.<func>` and handed to `func`, one
/// argument per matcher in matcher order.
fn reduce_series(ctx: &Context<'_>, call: &Call, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let func = a.required_string(1)?;
    let node = match a.get(2) {
        Some(Value::Int(n)) => *n,
        _ => return Err(a.bad("reduceNode must be an integer")),
    };
    let mut matchers: Vec<String> = Vec::new();
    for i in 3..a.pos.len() {
        match a.get(i) {
            Some(Value::Str(s)) => matchers.push(s.clone()),
            _ => return Err(a.bad("reduceMatchers must be strings")),
        }
    }
    if matchers.is_empty() {
        return Err(a.bad("missing reduceMatchers"));
    }
    // graphite-web needs a list of series lists here, which only mapSeries makes; its groups keep
    // first-appearance order, so grouping the flattened result again yields the same order.
    let map_call = match call.args.first() {
        Some(Arg::Expr(Expr::Call(c))) if c.name == "mapSeries" || c.name == "map" => c,
        _ => {
            return Err(a.bad("the first argument must be a list of series lists (mapSeries(...))"));
        }
    };
    let map_nodes = map_call
        .args
        .iter()
        .skip(1)
        .map(|arg| ctx.value(arg))
        .collect::<Result<Vec<_>, _>>()?;
    let groups = map_series(a.series(0)?, &map_nodes);
    let mut keys: Vec<String> = Vec::new();
    let mut slots: Vec<Vec<Option<TimeSeries>>> = Vec::new();
    for s in groups.into_iter().flatten() {
        let parts: Vec<&str> = s.name.split('.').collect();
        let idx = if node < 0 { parts.len() as i64 + node } else { node };
        let Some(part) = usize::try_from(idx).ok().and_then(|i| parts.get(i)) else {
            return Err(a.bad(&format!("{} has no node {node}", s.name)));
        };
        let Some(m) = matchers.iter().position(|m| m == part) else {
            continue;
        };
        let cut = usize::try_from(idx).unwrap_or(0);
        let key = format!("{}.reduce.{func}", parts[..cut].join("."));
        let i = match keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                keys.push(key);
                slots.push(vec![None; matchers.len()]);
                keys.len() - 1
            }
        };
        slots[i][m] = Some(s);
    }
    let mut out = Vec::with_capacity(keys.len());
    for (key, slot) in keys.into_iter().zip(slots) {
        let mut args = Vec::with_capacity(slot.len());
        for s in slot {
            let s = s.ok_or_else(|| a.bad(&format!("{key}: not every reduceMatcher has a series")))?;
            args.push(Value::Series(vec![s]));
        }
        let mut r = call_named(ctx, &func, args)?
            .into_iter()
            .next()
            .ok_or_else(|| a.bad(&format!("{func} returned no series for {key}")))?;
        r.name = key;
        out.push(r);
    }
    Ok(out)
}

/// `applyByNode`: for each distinct name prefix up to `nodeNum`, the template with `%` replaced
/// by the prefix is evaluated as a target.
fn apply_by_node(ctx: &Context<'_>, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let list = a.series(0)?;
    let node = match a.get(1) {
        Some(Value::Int(n)) => *n,
        _ => return Err(a.bad("nodeNum must be an integer")),
    };
    let template = a.required_string(2)?;
    let new_name = a.string(3)?;
    let mut prefixes: Vec<String> = list
        .iter()
        .map(|s| {
            let parts: Vec<&str> = s.name.split('.').collect();
            // Python's parts[:node + 1], negative ends counting from the back.
            let end = node + 1;
            let end = if end < 0 {
                (parts.len() as i64 + end).max(0)
            } else {
                end.min(parts.len() as i64)
            };
            parts[..usize::try_from(end).unwrap_or(0)].join(".")
        })
        .collect();
    prefixes.sort();
    prefixes.dedup();
    // graphite-web sets start/end from its loop variable: the last series of the list.
    let Some(last) = list.last() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for prefix in prefixes {
        for mut s in ctx.evaluate_target(&template.replace('%', &prefix))? {
            if let Some(n) = new_name.as_deref().filter(|n| !n.is_empty()) {
                s.name = n.replace('%', &prefix);
            }
            s.path_expression = prefix.clone();
            s.start = last.start;
            s.end = last.end;
            out.push(s);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_ranks_like_graphite_web() {
        let pts: Vec<Option<f64>> = [1.0, 2.0, 3.0, 4.0].iter().map(|v| Some(*v)).collect();
        // fractional rank (50/100)*(4+1) = 2.5 -> ceil 3 -> third value.
        assert_eq!(percentile(&pts, 50.0, false), Some(3.0));
        // interpolated: 2 + 0.5 * (3 - 2).
        assert_eq!(percentile(&pts, 50.0, true), Some(2.5));
        assert_eq!(percentile(&pts, 100.0, false), Some(4.0));
        assert_eq!(percentile(&[None, None], 50.0, false), None);
    }

    #[test]
    fn pow_is_none_where_python_raises() {
        assert_eq!(safe_pow(Some(-8.0), Some(0.5)), None);
        assert_eq!(safe_pow(Some(0.0), Some(-1.0)), None);
        assert_eq!(safe_pow(Some(2.0), Some(3.0)), Some(8.0));
        assert_eq!(safe_pow(None, Some(3.0)), None);
    }
}
