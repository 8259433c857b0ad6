//! Differential tests: template expansion against graphite-web's evaluator. The evaluator runs with
//! `fetchData` and the function table replaced by recorders, so what it returns is the expanded tree:
//! which paths it would fetch, and which literals each function would receive.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test harness: failing loudly is the point

mod common;

use carbide_query::grammar::{Arg, Expr, parse_target};
use carbide_query::template::{expand, path_expressions, py_float_repr};
use common::{Rng, run_graphite};
use serde_json::{Map, Value, json};

const SCRIPT: &str = r#"
import graphite.render.evaluator as ev
from graphite.render.grammar_unsafe import grammar as G
ev.fetchData = lambda ctx, expr: {"path": expr}
ev.SeriesFunction = lambda name: (lambda ctx, *a, **k: {"call": name, "args": list(a), "kwargs": k})

def enc(v):
    if isinstance(v, dict) and "path" in v:
        return v
    if isinstance(v, dict):
        return {"call": v["call"], "args": [enc(a) for a in v["args"]],
                "kwargs": sorted([k, enc(x)] for k, x in v["kwargs"].items())}
    if isinstance(v, bool): return {"bool": v}
    if isinstance(v, int): return {"int": v}
    if isinstance(v, float): return {"float": repr(v)}
    if isinstance(v, str): return {"str": v}
    if v is None: return {"none": None}
    return {"other": repr(v)}

out = []
for target, overrides in json.load(sys.stdin):
    ctx = {"template": dict(overrides)} if overrides else {}
    try:
        value = enc(ev.evaluateTokens(ctx, G.parseString(target)))
    except Exception as e:
        value = None
    try:
        paths = sorted(ev.extractPathExpressions(dict(ctx), [target]))
    except Exception as e:
        paths = None
    out.append({"value": value, "paths": paths})
print(json.dumps(out))
"#;

fn enc(a: &Arg) -> Value {
    match a {
        Arg::Expr(Expr::Path(p)) => json!({ "path": p }),
        Arg::Expr(Expr::Call(c)) if c.name == "seriesByTag" => json!({ "path": c.raw }),
        Arg::Expr(Expr::Call(c)) => {
            let mut kwargs: Map<String, Value> = Map::new();
            for (k, v) in &c.kwargs {
                kwargs.insert(k.clone(), enc(v));
            }
            let kwargs: Vec<Value> = kwargs.into_iter().map(|(k, v)| json!([k, v])).collect();
            json!({ "call": c.name, "args": c.args.iter().map(enc).collect::<Vec<_>>(), "kwargs": kwargs })
        }
        Arg::Expr(Expr::Template(_)) => json!({ "other": "unexpanded template" }),
        Arg::Bool(b) => json!({ "bool": b }),
        Arg::Int(i) => json!({ "int": i }),
        Arg::Float(f) => json!({ "float": py_float_repr(*f) }),
        Arg::Str(s) => json!({ "str": s }),
        Arg::None => json!({ "none": null }),
    }
}

fn compare(cases: &[(String, Vec<(String, String)>)]) {
    let input: Vec<Value> = cases.iter().map(|(t, o)| json!([t, o])).collect();
    let theirs = run_graphite(SCRIPT, &Value::Array(input));
    let theirs = theirs.as_array().expect("list");
    let mut failures = Vec::new();
    let mut compared = 0;
    for ((target, overrides), want) in cases.iter().zip(theirs) {
        // Only whole targets: the lenient prefix is the grammar test's business.
        let Ok(expr) = parse_target(target) else { continue };
        compared += 1;
        let value = expand(&expr, overrides)
            .ok()
            .map(|a| enc(&a))
            .unwrap_or(Value::Null);
        let ours = json!({ "value": value, "paths": path_expressions(&expr, overrides) });
        if &ours != want {
            failures.push(format!(
                "{target:?} {overrides:?}\n  ours:     {ours}\n  graphite: {want}"
            ));
        }
    }
    assert!(
        compared * 2 > cases.len() / 2,
        "too few whole targets: {compared}"
    );
    assert!(
        failures.is_empty(),
        "{} of {compared} differ:\n{}",
        failures.len(),
        failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

fn o(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn table_matches_graphite() {
    let table: &[(&str, &[(&str, &str)])] = &[
        ("template(a.$1.b, \"web1\")", &[]),
        ("template(a.$host.b, host=\"web1\")", &[]),
        ("template(a.$host.b, host=\"web1\")", &[("host", "db")]),
        ("template(a.$host.b)", &[("host", "db")]),
        ("template(a.$1.b, 2.5)", &[]),
        ("template(a.$1.b, 1e20)", &[]),
        ("template(a.$1.b, -7)", &[]),
        ("template(a.$1.$10, 1,2,3,4,5,6,7,8,9,10)", &[]),
        ("template(alias(a.$1, \"$1\"), \"x\")", &[]),
        ("template(scale(a.b, $1), \"5\")", &[]),
        ("template(scale(a.b, $1), \"-1.5\")", &[]),
        ("template(scale(a.b, $1), 7)", &[]),
        ("template(scale(a.b, $1), \"x\")", &[]),
        ("template(scale(a.b, $1), \"1.2.3\")", &[]),
        ("template(scale(a.b, $1), \".\")", &[]),
        ("template(scale(a.b, $x), x='1.')", &[]),
        ("template(f(a.$1, k=b.$1, j=$1), 'v')", &[]),
        ("template(f(a.$1, seriesByTag('n=$1')), 'v')", &[]),
        ("template(f(a.$a.$b), a='$b', b='z')", &[]),
        ("template(f(a.$b.$a), a='$b', b='z')", &[]),
        ("template(a.$1, 'x')|g(b.$1)", &[]),
        ("template(a|f(), 1)", &[]),
        ("template(f(template(a.$1, 'in')), 'out')", &[]),
        ("a.$1", &[("1", "x")]),
        ("f(a.$1, k=1, k=2)", &[]),
        ("f(true, None, inf, 'x', 1.5, 2)", &[]),
        ("a.b|seriesByTag('x=y')", &[]),
        ("seriesByTag('name=cpu', 'host=~web.*')|sumSeries()", &[]),
        ("sumSeries(a.*, b.{c,d})|alias('x')", &[]),
        ("f(a, k=b)", &[]),
        ("template(f(a.$1)|g(b.$x), 'v')", &[]),
    ];
    let cases: Vec<(String, Vec<(String, String)>)> =
        table.iter().map(|(t, ov)| (t.to_string(), o(ov))).collect();
    compare(&cases);
}

#[test]
fn random_templates_match_graphite() {
    const INNER: &[&str] = &[
        "a.$1",
        "$1",
        "$x",
        "b.$x.c",
        "$10.d",
        "f(a.$1)",
        "f($1, $x)",
        "f(a.$x, k=$1)",
        "seriesByTag('a=$1')",
    ];
    const DEFAULTS: &[&str] = &[
        "",
        ", 'v'",
        ", \"5\"",
        ", 1",
        ", 2.5",
        ", x='q'",
        ", x=\"9\", y=1",
        ", '1.2.3'",
        ", 1e3",
    ];
    const OVERRIDES: &[&[(&str, &str)]] = &[&[], &[("x", "Q")], &[("1", "over")], &[("x", "7"), ("1", "8")]];
    let mut rng = Rng::new(3);
    let mut cases = Vec::new();
    for _ in 0..600 {
        let inner = *rng.pick(INNER);
        let pipe = if rng.below(3) == 0 { "|g($x)" } else { "" };
        let target = format!("template({inner}{}){pipe}", rng.pick(DEFAULTS));
        let overrides: &[(&str, &str)] = OVERRIDES[rng.below(OVERRIDES.len())];
        cases.push((target, o(overrides)));
    }
    compare(&cases);
}
