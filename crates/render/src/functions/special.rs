//! graphite-web's Special functions: consolidation and xFilesFactor settings, fallbacks, name
//! formatting (substr, cactiStyle), generated series (randomWalk, events).

use carbide_query::grammar::Call;

use super::Args;
use super::base::map;
use crate::RenderError;
use crate::catalog::{FunctionInfo, Param, SL, def, multi, p, req};
use crate::eval::{Context, Value};
use crate::pyfmt::py_float_repr;
use crate::series::{TimeSeries, py_max, py_min};

const fn f(name: &'static str, params: &'static [Param]) -> FunctionInfo {
    FunctionInfo {
        name,
        group: "Special",
        params,
    }
}

const XFF: &[Param] = &[SL, req("xFilesFactor", "float")];
const RANDOM: &[Param] = &[req("name", "string"), def("step", "integer", "60")];

/// The functions of this group, as `/functions` lists them.
pub const FUNCTIONS: &[FunctionInfo] = &[
    f("changed", &[SL]),
    f("cumulative", &[SL]),
    f("setXFilesFactor", XFF),
    f("xFilesFactor", XFF),
    f("fallbackSeries", &[SL, req("fallback", "seriesList")]),
    f(
        "substr",
        &[SL, def("start", "node", "0"), def("stop", "node", "0")],
    ),
    f(
        "cactiStyle",
        &[
            SL,
            Param {
                options: &["binary", "si"],
                ..p("system", "string")
            },
            p("units", "string"),
        ],
    ),
    f("events", &[multi("tags", "string", true)]),
    f("randomWalkFunction", RANDOM),
    f("randomWalk", RANDOM),
];

/// Runs one function of [`FUNCTIONS`].
pub(crate) fn dispatch(ctx: &Context<'_>, _call: &Call, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    match a.info.name {
        "changed" => Ok(map(a.series(0)?, |s| {
            let name = format!("changed({})", s.name);
            s.path_expression = name.clone();
            s.name = name;
            let mut previous: Option<f64> = None;
            let vals = s.iter_values();
            for (slot, v) in s.values.iter_mut().zip(vals) {
                *slot = Some(match (previous, v) {
                    (None, v) => {
                        previous = v;
                        0.0
                    }
                    (Some(p), Some(x)) if p != x => {
                        previous = Some(x);
                        1.0
                    }
                    _ => 0.0,
                });
            }
        })),
        // consolidateBy(seriesList, 'sum'), names included.
        "cumulative" => Ok(map(a.series(0)?, |s| {
            s.consolidation_func = "sum".into();
            s.set_tag("consolidateBy", "sum");
            s.name = format!("consolidateBy({},\"sum\")", s.name);
            s.path_expression = s.name.clone();
        })),
        "setXFilesFactor" | "xFilesFactor" => {
            // graphite-web also stores it in the request context, where functions evaluated later
            // in the request read it; this evaluator's context is immutable (see the module docs).
            let (xff, _) = a.required_number(1)?;
            Ok(map(a.series(0)?, |s| {
                s.x_files_factor = xff;
                s.set_tag("xFilesFactor", py_float_repr(xff));
            }))
        }
        "fallbackSeries" => {
            let list = a.series(0)?;
            if list.is_empty() { a.series(1) } else { Ok(list) }
        }
        "substr" => {
            let start = node_arg(a, 1)?;
            let stop = node_arg(a, 2)?;
            Ok(map(a.series(0)?, |s| s.name = substr(&s.name, start, stop)))
        }
        "cactiStyle" => cacti_style(a),
        "events" => events(ctx, a),
        "randomWalkFunction" | "randomWalk" => {
            let name = a.required_string(0)?;
            let step = match a.get(1) {
                None | Some(Value::None) => 60,
                Some(Value::Int(n)) => *n,
                _ => return Err(a.bad("step must be an integer")),
            };
            if step <= 0 {
                return Err(a.bad("step must be a positive number of seconds"));
            }
            let count = (ctx.end - ctx.start).max(0) as u128 / step as u128;
            if count > ctx.limits.max_points as u128 {
                return Err(RenderError::Limit(format!(
                    "{name}: more than {} points",
                    ctx.limits.max_points
                )));
            }
            let mut rng = Rng::seeded();
            let mut current = 0.0;
            let values = (ctx.start..ctx.end)
                .step_by(step as usize)
                .map(|_| {
                    let v = current;
                    current += rng.next_f64() - 0.5;
                    Some(v)
                })
                .collect();
            let mut s = TimeSeries::new(&name, ctx.start, ctx.end, step, values);
            s.x_files_factor = ctx.x_files_factor;
            Ok(vec![s])
        }
        other => Err(RenderError::UnknownFunction(other.to_string())),
    }
}

/// A `node` parameter: an integer (a float is truncated, as `int()` does).
fn node_arg(a: &Args, i: usize) -> Result<i64, RenderError> {
    match a.get(i) {
        None | Some(Value::None) => Ok(0),
        Some(Value::Int(n)) => Ok(*n),
        Some(Value::Float(x)) if x.is_finite() => Ok(x.trunc() as i64),
        _ => Err(a.bad(&format!("argument {} must be an integer", i + 1))),
    }
}

/// Python's `list[start:stop]` bounds for a list of `len` items.
pub(crate) fn py_slice(len: usize, start: i64, stop: Option<i64>) -> std::ops::Range<usize> {
    let len_i = len as i64;
    let clamp = |i: i64| -> usize {
        let i = if i < 0 { (i + len_i).max(0) } else { i.min(len_i) };
        i as usize
    };
    let a = clamp(start);
    let b = stop.map_or(len, clamp);
    a..b.max(a)
}

/// graphite-web's `substr`: the dotted nodes `start..stop` of the innermost path in a name
/// (`stop == 0` means to the end), cut at the first comma.
pub(crate) fn substr(name: &str, start: i64, stop: i64) -> String {
    let left = name.rfind('(').map_or(0, |i| i + 1);
    let right = name.find(')').unwrap_or(name.len());
    let clean = if left <= right { &name[left..right] } else { "" };
    let parts: Vec<&str> = clean.split('.').collect();
    let range = py_slice(parts.len(), start, (stop != 0).then_some(stop));
    let joined = parts[range].join(".");
    match joined.find(',') {
        Some(i) => joined[..i].to_string(),
        None => joined,
    }
}

/// graphite-web's unit systems (`glyph.UnitSystems`), largest first.
fn unit_system(system: &str) -> Option<&'static [(&'static str, f64)]> {
    const BINARY: &[(&str, f64)] = &[
        ("Pi", 1_125_899_906_842_624.0),
        ("Ti", 1_099_511_627_776.0),
        ("Gi", 1_073_741_824.0),
        ("Mi", 1_048_576.0),
        ("Ki", 1024.0),
    ];
    const SI: &[(&str, f64)] = &[("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)];
    const SEC: &[(&str, f64)] = &[
        ("Y", 31_536_000.0),
        ("M", 2_592_000.0),
        ("D", 86_400.0),
        ("H", 3600.0),
        ("m", 60.0),
    ];
    const MSEC: &[(&str, f64)] = &[
        ("Y", 31_536_000_000.0),
        ("M", 2_592_000_000.0),
        ("D", 86_400_000.0),
        ("H", 3_600_000.0),
        ("m", 60_000.0),
        ("s", 1000.0),
    ];
    Some(match system {
        "binary" => BINARY,
        "si" => SI,
        "sec" => SEC,
        "msec" => MSEC,
        "none" => &[],
        _ => return None,
    })
}

/// graphite-web's `format_units(v, system=…, units=…)`: the value scaled to the largest prefix
/// it reaches, and the prefix (with `units` after it). `None` for an unknown system.
pub(crate) fn format_units(v: f64, system: &str, units: Option<&str>) -> Option<(f64, String)> {
    let near_int = |x: f64| (x - x.floor()) < 0.000_000_000_01 && x > 1.0;
    for (prefix, size) in unit_system(system)? {
        if v.abs() >= *size {
            let mut v2 = v / size;
            if (v2 - v2.floor()) < 0.000_000_000_01 && v > 1.0 {
                v2 = v2.floor();
            }
            return Some((v2, format!("{prefix}{}", units.unwrap_or(""))));
        }
    }
    let v = if near_int(v) { v.floor() } else { v };
    Some((v, units.unwrap_or("").to_string()))
}

fn cacti_style(a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let list = a.series(0)?;
    if list.is_empty() {
        return Ok(list);
    }
    let system = a.string(1)?.filter(|s| !s.is_empty());
    let units = a.string(2)?.filter(|s| !s.is_empty());
    if let Some(sys) = &system
        && unit_system(sys).is_none()
    {
        return Err(a.bad(&format!("unknown unit system {sys:?}")));
    }
    let fmt = |x: f64| -> String {
        match (&system, &units) {
            (Some(sys), Some(u)) => {
                let (v, prefix) = format_units(x, sys, Some(u)).unwrap_or((x, String::new()));
                format!("{v:.2} {prefix}")
            }
            (Some(sys), None) => {
                let (v, prefix) = format_units(x, sys, None).unwrap_or((x, String::new()));
                format!("{v:.2}{prefix}")
            }
            (None, Some(u)) => format!("{x:.2} {u}"),
            (None, None) => format!("{x:.2}"),
        }
    };
    let stats: Vec<[Option<f64>; 3]> = list
        .iter()
        .map(|s| {
            let vals = s.iter_values();
            let last = vals.iter().rev().flatten().next().copied();
            let max = vals.iter().flatten().copied().reduce(py_max);
            let min = vals.iter().flatten().copied().reduce(py_min);
            [last, max, min]
        })
        .collect();
    // `len(fmt(int(x or 3)))`: Python's int() refuses inf and nan.
    let mut widths = [0usize; 3];
    for st in &stats {
        for (k, v) in st.iter().enumerate() {
            let x = v.filter(|x| *x != 0.0).unwrap_or(3.0);
            if !x.is_finite() {
                return Err(a.bad("cannot convert float infinity or NaN to integer"));
            }
            // int(-0.3) is 0, not -0.0.
            widths[k] = widths[k].max(fmt(x.trunc() + 0.0).chars().count());
        }
    }
    let name_len = list.iter().map(|s| s.name.chars().count()).max().unwrap_or(0);
    let [wl, wx, wn] = widths.map(|w| w + 3);
    let shown = |v: Option<f64>| v.map_or_else(|| "nan".to_string(), fmt);
    Ok(list
        .into_iter()
        .zip(stats)
        .map(|(mut s, [last, max, min])| {
            s.name = format!(
                "{:<name_len$} Current:{:<wl$} Max:{:<wx$} Min:{:<wn$} ",
                s.name,
                shown(last),
                shown(max),
                shown(min)
            );
            s
        })
        .collect())
}

/// `events(tags…)`: graphite-web counts the events of its events database per second. This
/// evaluator has no events store, so the answer is what graphite-web gives with no events: one
/// null per second of the range, consolidated by sum.
fn events(ctx: &Context<'_>, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let mut tags = Vec::with_capacity(a.pos.len());
    for (i, v) in a.pos.iter().enumerate() {
        match v {
            Value::Str(t) => tags.push(t.clone()),
            _ => return Err(a.bad(&format!("tag {} must be a string", i + 1))),
        }
    }
    let name = format!("events(\"{}\")", tags.join("\", \""));
    let (start, end) = (ctx.start, ctx.end);
    let points = usize::try_from(end - start).unwrap_or(0);
    if points > ctx.limits.max_points {
        return Err(RenderError::Limit(format!(
            "{name}: more than {} points",
            ctx.limits.max_points
        )));
    }
    let filter = if tags == ["*"] { None } else { Some(&tags[..]) };
    let stored = crate::events::load(ctx.storage.root());
    let found = crate::events::find_events(
        &stored,
        start as f64,
        end as f64,
        filter,
        crate::events::SetOperation::All,
    );
    let mut values: Vec<Option<f64>> = vec![None; points];
    for e in found {
        // epoch(event.when) truncates to the second; an event at exactly the end would index past
        // the list (graphite-web fails with IndexError) and is left out here.
        let offset = e.when.floor() as i64 - start;
        if let Some(v) = usize::try_from(offset).ok().and_then(|o| values.get_mut(o)) {
            *v = Some(v.map_or(1.0, |n| n + 1.0));
        }
    }
    let mut s = TimeSeries::new(&name, start, end, 1, values);
    s.consolidation_func = "sum".into();
    s.x_files_factor = ctx.x_files_factor;
    s.set_all_ints();
    Ok(vec![s])
}

/// xorshift64*: randomWalk needs noise, not cryptography.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Rng(nanos | 1)
    }

    /// Uniform in [0, 1), as Python's `random.random()`.
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substr_as_graphite() {
        assert_eq!(
            substr("carbon.agents.host.avgUpdateTime", 2, 4),
            "host.avgUpdateTime"
        );
        assert_eq!(substr("a.b.c", -1, 0), "c");
        assert_eq!(substr("scale(a.b.c,2)", 1, 0), "b.c");
        assert_eq!(substr("sumSeries(a.b,c.d)", 0, 0), "a.b");
    }

    #[test]
    fn units() {
        assert_eq!(format_units(2048.0, "binary", None), Some((2.0, "Ki".into())));
        assert_eq!(format_units(1500.0, "si", Some("b")), Some((1.5, "kb".into())));
        assert_eq!(format_units(12.0, "si", None), Some((12.0, String::new())));
    }

    #[test]
    fn cacti_style_columns() {
        // Hand-computed from graphite-web's format strings ("%*s Current:%*s Max:%*s Min:%*s ").
        let info = FUNCTIONS.iter().find(|f| f.name == "cactiStyle").unwrap();
        let s1 = TimeSeries::new("a", 0, 30, 10, vec![Some(1.0), Some(20.5), Some(3.0)]);
        let s2 = TimeSeries::new("bbb", 0, 30, 10, vec![None, None, None]);
        let args = Args {
            pos: vec![Value::Series(vec![s1, s2])],
            kw: vec![],
            info,
        };
        let out = cacti_style(&args).unwrap();
        assert_eq!(out[0].name, "a   Current:3.00    Max:20.50    Min:1.00    ");
        assert_eq!(out[1].name, "bbb Current:nan     Max:nan      Min:nan     ");
    }

    #[test]
    fn rng_in_unit_interval() {
        let mut r = Rng::seeded();
        for _ in 0..1000 {
            let x = r.next_f64();
            assert!((0.0..1.0).contains(&x));
        }
    }
}
