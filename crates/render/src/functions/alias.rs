//! graphite-web's Alias functions (alias, aliasByNode and aliasSub are in `base`).

use carbide_query::grammar::Call;

use super::Args;
use super::base::{agg_func, map, python_replacement};
use super::special::{format_units, substr};
use crate::RenderError;
use crate::catalog::{FunctionInfo, Param, SL, multi, req};
use crate::eval::{Context, Value};
use crate::pyfmt::py_float_repr;
use crate::series::TimeSeries;

const fn f(name: &'static str, params: &'static [Param]) -> FunctionInfo {
    FunctionInfo {
        name,
        group: "Alias",
        params,
    }
}

const LEGEND_OPTIONS: &[&str] = &[
    "average",
    "averageSeries",
    "avg",
    "avgSeries",
    "avg_zero",
    "avg_zeroSeries",
    "binary",
    "count",
    "countSeries",
    "current",
    "currentSeries",
    "diff",
    "diffSeries",
    "last",
    "lastSeries",
    "max",
    "maxSeries",
    "median",
    "medianSeries",
    "min",
    "minSeries",
    "multiply",
    "multiplySeries",
    "range",
    "rangeOf",
    "rangeOfSeries",
    "rangeSeries",
    "si",
    "stddev",
    "stddevSeries",
    "sum",
    "sumSeries",
    "total",
    "totalSeries",
];

/// The functions of this group, as `/functions` lists them.
pub const FUNCTIONS: &[FunctionInfo] = &[
    f("aliasByMetric", &[SL]),
    f(
        "legendValue",
        &[
            SL,
            Param {
                options: LEGEND_OPTIONS,
                ..multi("valuesTypes", "string", false)
            },
        ],
    ),
    f(
        "aliasQuery",
        &[
            SL,
            req("search", "string"),
            req("replace", "string"),
            req("newName", "string"),
        ],
    ),
    // graphite-web 1.1.10 (toUpperCase / toLowerCase; not in 1.1.8).
    f("upper", &[SL, multi("pos", "integer", false)]),
    f("lower", &[SL, multi("pos", "integer", false)]),
];

/// Runs one function of [`FUNCTIONS`].
pub(crate) fn dispatch(ctx: &Context<'_>, _call: &Call, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    match a.info.name {
        "aliasByMetric" => Ok(map(a.series(0)?, |s| s.name = substr(&s.name, -1, 0))),
        "upper" | "lower" => {
            let upper = a.info.name == "upper";
            let mut positions = Vec::new();
            for i in 1..a.pos.len() {
                match a.get(i) {
                    Some(Value::Int(n)) => positions.push(*n),
                    _ => return Err(a.bad(&format!("position {i} must be an integer"))),
                }
            }
            Ok(map(a.series(0)?, |s| {
                s.name = change_case(&s.name, &positions, upper)
            }))
        }
        "legendValue" => legend_value(a),
        "aliasQuery" => alias_query(ctx, a),
        other => Err(RenderError::UnknownFunction(other.to_string())),
    }
}

/// `str.upper()`/`lower()` of the whole name, or of the characters at `positions` (negative from
/// the end, out of range ignored).
fn change_case(name: &str, positions: &[i64], upper: bool) -> String {
    let conv = |c: char| -> String {
        if upper {
            c.to_uppercase().collect()
        } else {
            c.to_lowercase().collect()
        }
    };
    if positions.is_empty() {
        return if upper {
            name.to_uppercase()
        } else {
            name.to_lowercase()
        };
    }
    let mut chars: Vec<String> = name.chars().map(String::from).collect();
    let n = chars.len() as i64;
    for &p in positions {
        let i = if p < 0 { p + n } else { p };
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| chars.get_mut(i)) {
            let c = slot.chars().next().map(conv).unwrap_or_default();
            *slot = c;
        }
    }
    chars.concat()
}

/// Python's `str()` of what an aggregation function returns: `count` is an int, the rest floats.
fn agg_str(func: &str, v: Option<f64>) -> String {
    match v {
        None => "None".into(),
        Some(x) if func == "count" => format!("{}", x as i64),
        Some(x) => py_float_repr(x),
    }
}

fn legend_value(a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let mut types = Vec::new();
    for i in 1..a.pos.len() {
        match a.get(i) {
            Some(Value::Str(t)) => types.push(t.clone()),
            _ => return Err(a.bad(&format!("value type {i} must be a string"))),
        }
    }
    let Some(last) = types.last() else {
        return Err(a.bad("at least one value type is needed (tuple index out of range)"));
    };
    let system = matches!(last.as_str(), "si" | "binary").then(|| last.clone());
    if system.is_some() {
        types.pop();
    }
    let mut list = a.series(0)?;
    for t in &types {
        let func = agg_func(t);
        for s in &mut list {
            let value = func.map(|f| f(&s.iter_values()));
            match &system {
                None => {
                    let shown = value.map_or_else(|| "(?)".to_string(), |v| agg_str(t, v));
                    s.name = format!("{} ({t}: {shown})", s.name);
                }
                Some(sys) => {
                    let formatted = match value {
                        None => "(?)".to_string(),
                        Some(None) => "None".to_string(),
                        Some(Some(v)) => {
                            let (v2, prefix) = format_units(v, sys, None).unwrap_or((v, String::new()));
                            format!("{v2:.2}{prefix}")
                        }
                    };
                    s.name = format!("{:<20}{t:<5}{formatted:<10}", s.name);
                }
            }
        }
    }
    Ok(list)
}

fn alias_query(ctx: &Context<'_>, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    let search = a.required_string(1)?;
    let replace = a.required_string(2)?;
    let new_name = a.required_string(3)?;
    let re = fancy_regex::Regex::new(&search).map_err(|e| a.bad(&format!("bad regex: {e}")))?;
    let rep = python_replacement(&replace);
    let mut list = a.series(0)?;
    for s in &mut list {
        let query = re.replace_all(&s.name, rep.as_str()).into_owned();
        let found = ctx.evaluate_target(&query)?;
        let Some(first) = found.first() else {
            return Err(a.bad(&format!("No series found with query: {query}")));
        };
        let Some(current) = first.iter_values().into_iter().rev().flatten().next() else {
            return Err(a.bad(&format!("Cannot get last value of series: {}", first.name)));
        };
        s.name = percent_format(&new_name, current).map_err(|e| a.bad(&e))?;
    }
    Ok(list)
}

/// Python's `fmt % x` for one float `x`: `%d %i %u %f %F %e %E %g %G %s %r %%` with flags,
/// width and precision. Errors where Python raises (no or several conversions, int of inf).
pub(crate) fn percent_format(fmt: &str, x: f64) -> Result<String, String> {
    let mut out = String::new();
    let mut used = false;
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&fl) = chars.peek() {
            if "-+ #0".contains(fl) {
                flags.push(fl);
                chars.next();
            } else {
                break;
            }
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            precision = Some(p.parse().unwrap_or(0));
        }
        let conv = chars.next().ok_or("incomplete format")?;
        if conv == '%' {
            out.push('%');
            continue;
        }
        if used {
            return Err("not enough arguments for format string".into());
        }
        used = true;
        let left = flags.contains('-');
        let zero = flags.contains('0') && !left;
        let sign = if flags.contains('+') {
            "+"
        } else if flags.contains(' ') {
            " "
        } else {
            ""
        };
        let (body, numeric) = match conv {
            'd' | 'i' | 'u' => {
                if !x.is_finite() {
                    return Err("cannot convert float infinity or NaN to integer".into());
                }
                let mut digits = format!("{}", x.trunc().abs() as i128);
                if let Some(p) = precision
                    && digits.len() < p
                {
                    digits = format!("{}{digits}", "0".repeat(p - digits.len()));
                }
                (signed(x < 0.0 && x.trunc() != 0.0, sign, digits), true)
            }
            'f' | 'F' => {
                let p = precision.unwrap_or(6);
                (float_body(x, sign, |v| format!("{v:.p$}"), conv == 'F'), true)
            }
            'e' | 'E' => {
                let p = precision.unwrap_or(6);
                (
                    float_body(x, sign, |v| exp_form(v, p, conv == 'E'), conv == 'E'),
                    true,
                )
            }
            'g' | 'G' => {
                let p = precision.unwrap_or(6);
                let alt = flags.contains('#');
                (
                    float_body(x, sign, |v| general_form(v, p, alt, conv == 'G'), conv == 'G'),
                    true,
                )
            }
            's' | 'r' => {
                let mut s = py_float_repr(x);
                if let Some(p) = precision {
                    s = s.chars().take(p).collect();
                }
                (s, false)
            }
            other => return Err(format!("unsupported format character '{other}' for a float")),
        };
        let w: usize = width.parse().unwrap_or(0);
        let len = body.chars().count();
        if len >= w {
            out.push_str(&body);
        } else if left {
            out.push_str(&body);
            out.push_str(&" ".repeat(w - len));
        } else if zero && numeric && x.is_finite() {
            let (sgn, digits) = match body.chars().next() {
                Some(c @ ('-' | '+' | ' ')) => (c.to_string(), body[1..].to_string()),
                _ => (String::new(), body.clone()),
            };
            out.push_str(&sgn);
            out.push_str(&"0".repeat(w - len));
            out.push_str(&digits);
        } else {
            out.push_str(&" ".repeat(w - len));
            out.push_str(&body);
        }
    }
    if !used {
        return Err("not all arguments converted during string formatting".into());
    }
    Ok(out)
}

fn signed(negative: bool, sign: &str, digits: String) -> String {
    if negative {
        format!("-{digits}")
    } else {
        format!("{sign}{digits}")
    }
}

fn float_body(x: f64, sign: &str, body: impl Fn(f64) -> String, upper: bool) -> String {
    let text = if x.is_nan() {
        "nan".to_string()
    } else if x.is_infinite() {
        "inf".to_string()
    } else {
        body(x.abs())
    };
    let text = if upper { text.to_uppercase() } else { text };
    signed(x.is_sign_negative() && !x.is_nan(), sign, text)
}

/// `%.pe`: mantissa with p decimals, exponent with a sign and at least two digits.
fn exp_form(v: f64, p: usize, upper: bool) -> String {
    let s = format!("{v:.p$e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    let sign = if e < 0 { '-' } else { '+' };
    format!("{m}{}{sign}{:02}", if upper { 'E' } else { 'e' }, e.abs())
}

/// `%.pg`: p significant digits, exponent form outside 1e-4 ≤ v < 10^p, zeros stripped unless `#`.
fn general_form(v: f64, p: usize, alt: bool, upper: bool) -> String {
    let p = p.max(1);
    if v == 0.0 {
        return if alt {
            format!("{:.*}", p - 1, 0.0)
        } else {
            "0".into()
        };
    }
    let sci = format!("{v:.*e}", p - 1);
    let exp: i32 = sci.split_once('e').and_then(|(_, e)| e.parse().ok()).unwrap_or(0);
    let strip = |s: String| -> String {
        if alt || !s.contains('.') {
            s
        } else {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    };
    if exp < -4 || exp >= p as i32 {
        let s = exp_form(v, p - 1, upper);
        let (m, e) = s.split_at(s.find(['e', 'E']).unwrap_or(s.len()));
        format!("{}{e}", strip(m.to_string()))
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        strip(format!("{v:.decimals$}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_formats_like_python() {
        assert_eq!(percent_format("Channel %d MHz", 7.9).unwrap(), "Channel 7 MHz");
        assert_eq!(percent_format("%s", 2.5).unwrap(), "2.5");
        assert_eq!(percent_format("%.2f%%", 2.345).unwrap(), "2.35%");
        assert_eq!(percent_format("%+d", -0.5).unwrap(), "+0");
        assert_eq!(percent_format("%s", 1e22).unwrap(), "1e+22");
        assert_eq!(percent_format("%5.1f|", -2.25).unwrap(), " -2.2|");
        assert_eq!(percent_format("%-6d|", 42.0).unwrap(), "42    |");
        assert_eq!(percent_format("%06.2f", 1.23456).unwrap(), "001.23");
        assert_eq!(percent_format("%e", 12345.678).unwrap(), "1.234568e+04");
        assert_eq!(percent_format("%g", 1e-5).unwrap(), "1e-05");
        assert_eq!(percent_format("%g", 123456789.0).unwrap(), "1.23457e+08");
        assert_eq!(percent_format("%.3g", 0.000123456).unwrap(), "0.000123");
        assert!(percent_format("none", 1.0).is_err());
        assert!(percent_format("%d %d", 1.0).is_err());
        assert!(percent_format("%d", f64::INFINITY).is_err());
    }

    #[test]
    fn case_changes() {
        assert_eq!(change_case("a.B.c", &[], true), "A.B.C");
        assert_eq!(change_case("a.B.c", &[0, -1, 99], true), "A.B.C");
        assert_eq!(change_case("A.B.C", &[2], false), "A.b.C");
    }
}
