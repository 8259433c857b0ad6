//! graphite-web's Graph functions: styling kept in [`TimeSeries::style`] for the png/svg
//! renderer (graphite-web's `series.options` and `series.color`), with graphite-web's renames and
//! tags. Values are unchanged except by `stacked` (running totals) and the new series of
//! `threshold` and `verticalLine`.
//!
//! Differences from graphite-web 1.1.8, all about state we do not keep:
//! - `stacked` keeps its running total per call; graphite-web keeps it per request, so
//!   `target=stacked(a)&target=stacked(b)` stacks b on a there and not here.
//! - `verticalLine` without a label has an empty name where graphite-web's json says `null`.
//!
//! `verticalLine` reads its time as graphite-web does: in the request's zone, relative to the
//! machine's clock (not the request's `now`), then compared and placed by its wall clock read in
//! `TIME_ZONE`.

use carbide_query::attime::parse_at_time;
use carbide_query::pytime::PyDateTime;

use super::transform::wall_clock;
use carbide_query::grammar::Call;

use super::Args;
use super::base::map;
use crate::RenderError;
use crate::catalog::{FunctionInfo, Param, SL, def, p, req};
use crate::eval::{Context, Value};
use crate::pyfmt::{g, num_str, py_float_repr};
use crate::series::{TimeSeries, set_tag};

const fn f(name: &'static str, params: &'static [Param]) -> FunctionInfo {
    FunctionInfo {
        name,
        group: "Graph",
        params,
    }
}

/// The functions of this group, as `/functions` lists them.
pub const FUNCTIONS: &[FunctionInfo] = &[
    f("color", &[SL, req("theColor", "string")]),
    f("alpha", &[SL, req("alpha", "float")]),
    f("dashed", &[SL, def("dashLength", "integer", "5")]),
    f("lineWidth", &[SL, req("width", "float")]),
    f("secondYAxis", &[SL]),
    f("stacked", &[SL, p("stack", "string")]),
    f("drawAsInfinite", &[SL]),
    f("areaBetween", &[SL]),
    f(
        "threshold",
        &[req("value", "float"), p("label", "string"), p("color", "string")],
    ),
    f(
        "verticalLine",
        &[req("ts", "date"), p("label", "string"), p("color", "string")],
    ),
];

/// Python's `str(True)`, as style values are written.
const TRUE: &str = "True";

/// Runs one function of [`FUNCTIONS`].
pub(crate) fn dispatch(ctx: &Context<'_>, _call: &Call, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    match a.info.name {
        "color" => {
            let color = a.required_string(1)?;
            Ok(map(a.series(0)?, |s| {
                set_tag(&mut s.style, "color", color.clone())
            }))
        }
        "alpha" => {
            let (alpha, _) = a.required_number(1)?;
            Ok(map(a.series(0)?, |s| {
                set_tag(&mut s.style, "alpha", py_float_repr(alpha));
            }))
        }
        "lineWidth" => {
            let (width, _) = a.required_number(1)?;
            Ok(map(a.series(0)?, |s| {
                set_tag(&mut s.style, "lineWidth", py_float_repr(width));
            }))
        }
        "dashed" => {
            // An integer parameter, but graphite-web does not enforce it: 2.5 stays 2.5.
            let (len, int) = a.number(1)?.unwrap_or((5.0, true));
            let text = num_str(len, int);
            Ok(map(a.series(0)?, |s| {
                s.set_tag("dashed", text.clone());
                s.name = format!("dashed({}, {})", s.name, g(len));
                set_tag(&mut s.style, "dashed", text.clone());
            }))
        }
        "secondYAxis" | "drawAsInfinite" => {
            let name = a.info.name;
            Ok(map(a.series(0)?, |s| {
                set_tag(&mut s.style, name, TRUE.into());
                s.set_tag(name, "1");
                s.name = format!("{name}({})", s.name);
            }))
        }
        "stacked" => {
            let stack = a.string(1)?;
            let key = stack.clone().unwrap_or_else(|| "__DEFAULT__".into());
            // The totals carry over from earlier targets with the same stack name.
            let mut stacks = ctx
                .total_stack
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let total = stacks.entry(key).or_default();
            Ok(map(a.series(0)?, |s| {
                if total.len() < s.values.len() {
                    total.resize(s.values.len(), 0.0);
                }
                for (v, t) in s.values.iter_mut().zip(total.iter_mut()) {
                    if let Some(x) = v {
                        *t += *x;
                        *v = Some(*t);
                    }
                }
                // series.copy(): a new series, so earlier options and color are gone.
                if stack.is_none() {
                    s.set_tag("stacked", "__DEFAULT__");
                    s.name = format!("stacked({})", s.name);
                }
                s.path_expression = s.name.clone();
                s.values_per_point = 1;
                s.style = vec![("stacked".into(), TRUE.into())];
            }))
        }
        "areaBetween" => {
            let mut list = a.series(0)?;
            if list.len() != 2 {
                return Err(a.bad(&format!(
                    "areaBetween series argument must reference *exactly* 2 series (got {})",
                    list.len()
                )));
            }
            let name = format!("areaBetween({})", list[1].path_expression);
            set_tag(&mut list[1].tags, "areaBetween", "1".into());
            let tags = list[1].tags.clone();
            for (i, s) in list.iter_mut().enumerate() {
                set_tag(&mut s.style, "stacked", TRUE.into());
                if i == 0 {
                    set_tag(&mut s.style, "invisible", TRUE.into());
                }
                s.tags = tags.clone();
                s.name = name.clone();
            }
            Ok(list)
        }
        "threshold" => {
            let (v, _) = a.required_number(0)?;
            let step = (ctx.end - ctx.start) / 2;
            let mut s = TimeSeries::new(&py_float_repr(v), ctx.start, ctx.end, step, vec![Some(v); 3]);
            s.x_files_factor = ctx.x_files_factor;
            s.path_expression = format!("constantLine({})", py_float_repr(v));
            if let Some(label) = a.string(1)?.filter(|l| !l.is_empty()) {
                s.name = label;
            }
            if let Some(color) = a.string(2)?.filter(|c| !c.is_empty()) {
                set_tag(&mut s.style, "color", color);
            }
            Ok(vec![s])
        }
        "verticalLine" => {
            // `timestamp(parseATTime(ts, tzinfo))`: read in the request's zone against the machine's
            // clock (parseATTime gets no `now`), then its wall clock read in TIME_ZONE, as are the
            // range's ends.
            let ts = match a.get(0) {
                Some(Value::Str(text)) => {
                    parse_at_time(text, wall_clock(), &ctx.tz).map_err(|e| a.bad(&e.to_string()))?
                }
                _ => return Err(a.bad("argument 1 must be a time string")),
            };
            let ts = PyDateTime::localized(ts, &ctx.tz).mktime(&ctx.server_tz);
            if ts < ctx.start_timestamp() {
                return Err(a.bad(&format!("timestamp {ts} exists before start of range")));
            }
            if ts > ctx.end_timestamp() {
                return Err(a.bad(&format!("timestamp {ts} exists after end of range")));
            }
            let label = a.string(1)?;
            let mut s = TimeSeries::new(label.as_deref().unwrap_or("None"), ts, ts, 1, vec![Some(1.0); 2]);
            s.name_is_none = label.is_none();
            s.x_files_factor = ctx.x_files_factor;
            set_tag(&mut s.style, "drawAsInfinite", TRUE.into());
            if let Some(color) = a.string(2)?.filter(|c| !c.is_empty()) {
                set_tag(&mut s.style, "color", color);
            }
            Ok(vec![s])
        }
        other => Err(RenderError::UnknownFunction(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::eval::Limits;

    const NOW: i64 = 1_700_000_000 - 1_700_000_000 % 60;

    /// Evaluates `target` over two series a.x (1, 2, 3, …) and a.y (10, 20, 30, …).
    fn eval(target: &str) -> Vec<TimeSeries> {
        let dir = tempfile::tempdir().unwrap();
        let retentions = carbide_core::Retention::parse_list("60:60").unwrap();
        for (leaf, k) in [("x", 1.0), ("y", 10.0)] {
            let path = dir.path().join("a").join(format!("{leaf}.wsp"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            carbide_whisper::file::create(&path, &retentions, &Default::default()).unwrap();
            let pts: Vec<(i64, f64)> = (1..=5).map(|i| (NOW - 300 + i * 60, k * i as f64)).collect();
            carbide_whisper::file::update_many(&path, &pts, NOW, false).unwrap();
        }
        let storage = carbide_storage::Storage::open(dir.path()).unwrap();
        let utc = carbide_query::attime::TimeZone::UTC;
        let ctx = Context::new(
            &storage,
            (NOW - 300, NOW, NOW),
            utc.clone(),
            utc,
            Limits::default(),
        );
        ctx.evaluate_target(target).unwrap()
    }

    fn style(s: &TimeSeries) -> Vec<(&str, &str)> {
        s.style.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn styles_are_recorded_and_values_kept() {
        let plain = eval("a.*");
        let styled = eval("lineWidth(alpha(color(a.*,'red'),0.5),2)");
        assert_eq!(styled[0].values, plain[0].values);
        assert_eq!(styled[0].name, "a.x");
        assert_eq!(
            style(&styled[0]),
            [("color", "red"), ("alpha", "0.5"), ("lineWidth", "2.0")]
        );
        let axis = eval("secondYAxis(dashed(a.x))");
        assert_eq!(axis[0].name, "secondYAxis(dashed(a.x, 5))");
        assert_eq!(style(&axis[0]), [("dashed", "5"), ("secondYAxis", "True")]);
        let inf = eval("drawAsInfinite(a.x)");
        assert_eq!(
            (inf[0].values.clone(), style(&inf[0])),
            (plain[0].values.clone(), vec![("drawAsInfinite", "True")])
        );
    }

    #[test]
    fn stacked_and_area_between() {
        let plain = eval("a.*");
        let stacked = eval("stacked(color(a.*,'red'))");
        // series.copy(): the color is dropped, the second series carries the running total.
        assert_eq!(style(&stacked[1]), [("stacked", "True")]);
        let want: Vec<Option<f64>> = plain[0]
            .values
            .iter()
            .zip(&plain[1].values)
            .map(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => Some(a + b),
                (None, b) => *b,
                (_, None) => None,
            })
            .collect();
        assert_eq!(stacked[1].values, want);
        let area = eval("areaBetween(a.*)");
        assert_eq!(style(&area[0]), [("stacked", "True"), ("invisible", "True")]);
        assert_eq!(style(&area[1]), [("stacked", "True")]);
        assert_eq!(area[0].name, "areaBetween(a.*)");
    }

    #[test]
    fn threshold_and_vertical_line_make_series() {
        let t = eval("threshold(5,'max','blue')");
        assert_eq!(
            (t[0].name.as_str(), t[0].values.clone()),
            ("max", vec![Some(5.0); 3])
        );
        assert_eq!(style(&t[0]), [("color", "blue")]);
        let v = eval(&format!("verticalLine('{}','deploy')", NOW - 120));
        assert_eq!(
            (v[0].start, v[0].end, v[0].name.as_str()),
            (NOW - 120, NOW - 120, "deploy")
        );
        assert_eq!(style(&v[0]), [("drawAsInfinite", "True")]);
    }
}
