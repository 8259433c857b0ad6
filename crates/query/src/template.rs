//! `template(expr, defaults…)` expansion, as graphite-web's evaluator does it.
//!
//! Only metric paths are rewritten: `$name` (keyword defaults) and `$1`, `$2`, … (positional defaults)
//! are replaced textually, one name after another in the order keyword defaults, positional defaults,
//! then the request's `template[name]=value` overrides (an override of an existing name keeps that
//! name's place). Strings and numbers passed to functions are left alone, and so is a `seriesByTag`
//! call, which graphite-web fetches by its raw text. A path that is exactly `$name` becomes the value
//! itself: a number stays a number, and a string that looks numeric (`-?[0-9.]+`) becomes a float.
//!
//! Substitution is textual and in order, so `$1` also rewrites the start of `$10`, as in graphite-web.

use crate::grammar::{Arg, Call, Expr};

/// Why a template could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A call named `template` that the grammar did not read as a template (non-literal defaults).
    #[error("invalid template() syntax, only string/numeric arguments are allowed")]
    InvalidSyntax,
    /// A template default that is not a number or a string.
    #[error("template defaults must be numbers or strings")]
    BadDefault,
    /// A path equal to `$name` whose string value looks numeric but is not (`1.2.3`).
    #[error("could not convert string to float: '{0}'")]
    BadNumber(String),
}

/// A substitution value: what a default or an override holds.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(i64),
    Float(f64),
    Str(String),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::Int(i) => i.to_string(),
            Value::Float(f) => py_float_repr(*f),
            Value::Str(s) => s.clone(),
        }
    }
}

/// Expands every template in `expr`, with `overrides` the request's `template[name]=value` pairs.
/// The result is an [`Arg`] because a template whose body is just `$name` evaluates to a literal.
pub fn expand(expr: &Expr, overrides: &[(String, String)]) -> Result<Arg, TemplateError> {
    expand_expr(expr, None, overrides)
}

fn literal(arg: &Arg) -> Result<Value, TemplateError> {
    match arg {
        Arg::Int(i) => Ok(Value::Int(*i)),
        Arg::Float(f) => Ok(Value::Float(*f)),
        Arg::Str(s) => Ok(Value::Str(s.clone())),
        _ => Err(TemplateError::BadDefault),
    }
}

fn set(list: &mut Vec<(String, Value)>, name: String, value: Value) {
    match list.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = value,
        None => list.push((name, value)),
    }
}

fn expand_expr(
    expr: &Expr,
    repl: Option<&[(String, Value)]>,
    overrides: &[(String, String)],
) -> Result<Arg, TemplateError> {
    match expr {
        Expr::Template(t) => {
            let mut list: Vec<(String, Value)> = Vec::new();
            for (k, v) in &t.kwargs {
                set(&mut list, k.clone(), literal(v)?);
            }
            for (i, v) in t.args.iter().enumerate() {
                set(&mut list, (i + 1).to_string(), literal(v)?);
            }
            for (k, v) in overrides {
                set(&mut list, k.clone(), Value::Str(v.clone()));
            }
            expand_expr(&t.inner, Some(&list), overrides)
        }
        Expr::Path(p) => substitute(p, repl),
        Expr::Call(c) if c.name == "template" => Err(TemplateError::InvalidSyntax),
        Expr::Call(c) if c.name == "seriesByTag" => Ok(Arg::Expr(Expr::Call(c.clone()))),
        Expr::Call(c) => {
            let expand_arg = |a: &Arg| match a {
                Arg::Expr(e) => expand_expr(e, repl, overrides),
                other => Ok(other.clone()),
            };
            let args = c.args.iter().map(expand_arg).collect::<Result<Vec<_>, _>>()?;
            let kwargs = c
                .kwargs
                .iter()
                .map(|(k, v)| expand_arg(v).map(|v| (k.clone(), v)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arg::Expr(Expr::Call(Call {
                name: c.name.clone(),
                args,
                kwargs,
                raw: c.raw.clone(),
            })))
        }
    }
}

fn substitute(path: &str, repl: Option<&[(String, Value)]>) -> Result<Arg, TemplateError> {
    let Some(repl) = repl else {
        return Ok(Arg::Expr(Expr::Path(path.to_string())));
    };
    let mut expression = path.to_string();
    for (name, value) in repl {
        let token = format!("${name}");
        if expression == token {
            return match value {
                Value::Int(i) => Ok(Arg::Int(*i)),
                Value::Float(f) => Ok(Arg::Float(*f)),
                Value::Str(s) if looks_numeric(s) => s
                    .trim_end_matches('\n')
                    .parse::<f64>()
                    .map(Arg::Float)
                    .map_err(|_| TemplateError::BadNumber(s.clone())),
                Value::Str(s) => Ok(Arg::Str(s.clone())),
            };
        }
        expression = expression.replace(&token, &value.text());
    }
    Ok(Arg::Expr(Expr::Path(expression)))
}

/// The metric paths a target will fetch, for prefetching before evaluation (graphite-web's
/// `extractPathExpressions`): paths with template substitutions applied, and the raw text of each
/// `seriesByTag(...)` call. Keyword arguments are not searched, as in graphite-web, and a path that is
/// exactly `$name` is listed as written. Sorted and deduplicated.
pub fn path_expressions(expr: &Expr, overrides: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    collect_paths(expr, None, overrides, &mut out);
    out.sort();
    out.dedup();
    out
}

fn collect_paths(
    expr: &Expr,
    repl: Option<&[(String, Value)]>,
    overrides: &[(String, String)],
    out: &mut Vec<String>,
) {
    match expr {
        Expr::Template(t) => {
            let mut list: Vec<(String, Value)> = Vec::new();
            for (k, v) in &t.kwargs {
                if let Ok(v) = literal(v) {
                    set(&mut list, k.clone(), v);
                }
            }
            for (i, v) in t.args.iter().enumerate() {
                if let Ok(v) = literal(v) {
                    set(&mut list, (i + 1).to_string(), v);
                }
            }
            for (k, v) in overrides {
                set(&mut list, k.clone(), Value::Str(v.clone()));
            }
            collect_paths(&t.inner, Some(&list), overrides, out);
        }
        Expr::Path(p) => {
            let mut expression = p.clone();
            for (name, value) in repl.unwrap_or(&[]) {
                let token = format!("${name}");
                if expression != token {
                    expression = expression.replace(&token, &value.text());
                }
            }
            out.push(expression);
        }
        Expr::Call(c) => {
            if c.name == "seriesByTag" {
                out.push(c.raw.clone());
            }
            for a in &c.args {
                // A seriesByTag's own arguments are strings; an expression here is a piped-in series.
                if let Arg::Expr(e) = a {
                    collect_paths(e, repl, overrides, out);
                }
            }
        }
    }
}

/// Python's `re.match(r'^-?[\d.]+$', s)`, `$` also matching before a final newline.
fn looks_numeric(s: &str) -> bool {
    let body = s.strip_suffix('\n').unwrap_or(s);
    let body = body.strip_prefix('-').unwrap_or(body);
    !body.is_empty() && body.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// Python's `repr(float)`: shortest round-trip digits, exponent form below 1e-4 and from 1e16 up.
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // `{:e}` gives the shortest round-trip digits as d.ddde±x.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        let body = if exp < 0 {
            format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
        } else if exp + 1 >= n {
            format!("{}{}.0", digits, "0".repeat((exp + 1 - n) as usize))
        } else {
            let (a, b) = digits.split_at((exp + 1) as usize);
            format!("{a}.{b}")
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grammar::parse_target;

    fn expand_str(target: &str, overrides: &[(&str, &str)]) -> Result<String, TemplateError> {
        let expr = parse_target(target).unwrap();
        let o: Vec<(String, String)> = overrides
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        expand(&expr, &o).map(|a| a.to_string())
    }

    #[test]
    fn substitution() {
        assert_eq!(
            expand_str("template(a.$1.b, \"web1\")", &[]),
            Ok("a.web1.b".into())
        );
        assert_eq!(
            expand_str("template(a.$host.b, host=\"web1\")", &[]),
            Ok("a.web1.b".into())
        );
        assert_eq!(
            expand_str("template(a.$host.b, host=\"web1\")", &[("host", "db")]),
            Ok("a.db.b".into())
        );
        assert_eq!(
            expand_str("template(a.$host.b)", &[("host", "db")]),
            Ok("a.db.b".into())
        );
        assert_eq!(expand_str("template(a.$1.b, 2.5)", &[]), Ok("a.2.5.b".into()));
        assert_eq!(expand_str("template(a.$1.b, 1e20)", &[]), Ok("a.1e+20.b".into()));
        assert_eq!(
            expand_str("template(alias(a.$1, \"$1\"), \"x\")", &[]),
            Ok("alias(a.x,\"$1\")".into()),
            "strings are not substituted"
        );
        assert_eq!(
            expand_str("template(scale(a.b, $1), \"5\")", &[]),
            Ok("scale(a.b,5.0)".into())
        );
        assert_eq!(
            expand_str("template(scale(a.b, $1), 7)", &[]),
            Ok("scale(a.b,7)".into())
        );
        assert_eq!(
            expand_str("template(scale(a.b, $1), \"x\")", &[]),
            Ok("scale(a.b,\"x\")".into())
        );
        assert_eq!(
            expand_str("template(scale(a.b, $1), \"1.2.3\")", &[]),
            Err(TemplateError::BadNumber("1.2.3".into()))
        );
        assert_eq!(
            expand_str("a.$1", &[("1", "x")]),
            Ok("a.$1".into()),
            "no template, no substitution"
        );
        assert_eq!(
            expand_str("template(a|f(), 1)", &[]),
            Err(TemplateError::InvalidSyntax)
        );
    }

    #[test]
    fn prefetch_paths() {
        let expr = parse_target("template(f(a.$1, seriesByTag('n=$1'), k=c.d), 'v')|g(b.$1)").unwrap();
        assert_eq!(
            path_expressions(&expr, &[]),
            vec!["a.v", "b.$1", "seriesByTag('n=$1')"]
        );
        // A pipe inside makes it an ordinary call named `template`: nothing is substituted.
        let expr = parse_target("template(f(a.$1)|g(b.$x), 'v')").unwrap();
        assert_eq!(path_expressions(&expr, &[]), vec!["a.$1", "b.$x"]);
        let expr = parse_target("template(f(a.$1, b.$x), x='q')").unwrap();
        assert_eq!(
            path_expressions(&expr, &[("1".into(), "o".into())]),
            vec!["a.o", "b.q"]
        );
        let expr = parse_target("template($1, 'v')").unwrap();
        assert_eq!(path_expressions(&expr, &[]), vec!["$1"]);
    }

    #[test]
    fn float_repr_matches_python() {
        for (f, want) in [
            (1.0, "1.0"),
            (2.5, "2.5"),
            (1e16, "1e+16"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (123456789.0, "123456789.0"),
            (-0.0, "-0.0"),
            (1e22, "1e+22"),
            (0.1, "0.1"),
            (1234.5678, "1234.5678"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(py_float_repr(f), want);
        }
    }
}
