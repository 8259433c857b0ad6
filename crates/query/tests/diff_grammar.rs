//! Differential tests: the target parser against graphite-web's pyparsing grammar
//! (`graphite.render.grammar_unsafe.grammar`). For every target both sides produce the same JSON tree
//! (pipes folded into first arguments, literals as the evaluator reads them), the same number of
//! characters consumed by the lenient parse, and the same verdict on whether the whole target parses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test harness: failing loudly is the point

mod common;

use carbide_query::grammar::{Arg, Expr, parse_target, parse_target_lenient};
use carbide_query::template::py_float_repr;
use common::{Rng, run_graphite};
use serde_json::{Value, json};

const SCRIPT: &str = r#"
from graphite.render.grammar_unsafe import grammar as G

def fl(x):
    try:
        return {"float": repr(float(x))}
    except OverflowError:
        return {"float": "inf" if int(x) > 0 else "-inf"}

def num(n):
    if n.integer:
        v = int(n.integer)
        return {"int": v} if -2**63 <= v < 2**63 else fl(v)
    if n.float:
        return fl(n.float)
    return fl(n.scientific[0])

def arg(a):
    if 'expression' in a: return {"expr": expr(a.expression)}
    if 'number' in a: return num(a.number)
    if 'string' in a: return {"str": a.string[1:-1]}
    if 'boolean' in a: return {"bool": a.boolean[0] == 'true'}
    if 'none' in a: return {"none": None}
    if 'infinity' in a: return {"float": "inf"}
    raise Exception("unknown arg %r" % a)

def call(c):
    return {"call": {"name": c.funcname,
                     "args": [arg(x) for x in (c.args or [])],
                     "kwargs": [[k.argname, arg(k.args[0])] for k in (c.kwargs or [])],
                     "raw": c.raw}}

def template(t):
    inner = call(t.call) if 'call' in t else {"path": t.pathExpression}
    return {"template": {"inner": inner,
                         "args": [arg(x) for x in (t.args or [])],
                         "kwargs": [[k.argname, arg(k.args[0])] for k in (t.kwargs or [])]}}

def expr(e):
    if 'template' in e: base = template(e.template)
    elif 'call' in e: base = call(e.call)
    else: base = {"path": e.pathExpression}
    for pc in e.pipedCalls:
        c = call(pc.call)
        c["call"]["args"].insert(0, {"expr": base})
        base = c
    return base

out = []
for s in json.load(sys.stdin):
    r = {"tree": None, "loc": None, "whole": False}
    try:
        toks = G.parseString(s)
        r["tree"] = expr(toks.expression)
        r["loc"], _ = G._parse(s.expandtabs(), 0)
    except Exception:
        pass
    try:
        G.parseString(s, parseAll=True)
        r["whole"] = True
    except Exception:
        pass
    out.append(r)
print(json.dumps(out))
"#;

fn arg_json(a: &Arg) -> Value {
    match a {
        Arg::Expr(e) => json!({ "expr": expr_json(e) }),
        Arg::Bool(b) => json!({ "bool": b }),
        Arg::Int(i) => json!({ "int": i }),
        Arg::Float(f) => json!({ "float": py_float_repr(*f) }),
        Arg::Str(s) => json!({ "str": s }),
        Arg::None => json!({ "none": null }),
    }
}

fn kwargs_json(kwargs: &[(String, Arg)]) -> Value {
    Value::Array(kwargs.iter().map(|(k, v)| json!([k, arg_json(v)])).collect())
}

fn expr_json(e: &Expr) -> Value {
    match e {
        Expr::Path(p) => json!({ "path": p }),
        Expr::Call(c) => json!({ "call": {
            "name": c.name,
            "args": c.args.iter().map(arg_json).collect::<Vec<_>>(),
            "kwargs": kwargs_json(&c.kwargs),
            "raw": c.raw,
        }}),
        Expr::Template(t) => json!({ "template": {
            "inner": expr_json(&t.inner),
            "args": t.args.iter().map(arg_json).collect::<Vec<_>>(),
            "kwargs": kwargs_json(&t.kwargs),
        }}),
    }
}

fn compare(targets: &[String]) {
    let theirs = run_graphite(SCRIPT, &json!(targets));
    let theirs = theirs.as_array().expect("list");
    assert_eq!(theirs.len(), targets.len());
    let mut failures = Vec::new();
    for (t, want) in targets.iter().zip(theirs) {
        let lenient = parse_target_lenient(t).ok();
        let ours = json!({
            "tree": lenient.as_ref().map(|(e, _)| expr_json(e)),
            "loc": lenient.as_ref().map(|(_, n)| n),
            "whole": parse_target(t).is_ok(),
        });
        if &ours != want {
            failures.push(format!("{t:?}\n  ours:     {ours}\n  graphite: {want}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} targets differ:\n{}",
        failures.len(),
        targets.len(),
        failures.iter().take(25).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// Targets people write (Grafana dashboards, the graphite docs) and the odd corners of the grammar.
const TABLE: &[&str] = &[
    "a.b-c.d",
    "a.{b,c}.*",
    "a.{b,c}d{e}.*",
    "sumSeries(a.*.b)",
    "alias(a.b, \"x y\")",
    "alias(a.b, 'x y')",
    r#"aliasSub(a.b, "(^.*$)", "\1 A")"#,
    r#"aliasSub(a.b, '^(.*)\.(.*)$', '\2')"#,
    "a.b|alias(\"x\")",
    "a.b | alias(\"x\") | scale(2)",
    "movingAverage(a.b, '5min')",
    "highestMax(a.*, 5)",
    "seriesByTag('name=cpu', 'host=~web.*')",
    "seriesByTag(\"name=cpu\")|sumSeries()",
    "summarize(a.b,\"1h\",\"sum\",false)",
    "a.b:c",
    "a.b=c",
    "a.b@c",
    "a-b.c",
    "1",
    "-1.5e3",
    "f(a, key=1)",
    "f(a, key = 'v', other=None)",
    "f(key=1)",
    "f()",
    "f( )",
    "f ( a )",
    " f(a) ",
    "\tf(a)",
    "f(\ta,\t1)",
    "f(a,\n1)",
    "f(a, 1\n)",
    "f(1\nx)",
    "f(1.2.3)",
    "f(5xx.count)",
    "f(1e5)",
    "f(1E-5)",
    "f(1.5e+5)",
    "f(-1.5e3, 2.50, 007, -0)",
    "f(1e400)",
    "f(99999999999999999999)",
    "f(1 , 2 )",
    "f(1.)",
    "f(.5)",
    "f(-inf)",
    "f(inf, INF, Inf)",
    "f(infinity)",
    "f(true, TRUE, False, fAlSe)",
    "f(trueish)",
    "f(true.x)",
    "f(true$)",
    "f(none, None, NONE)",
    "f(nonex)",
    "f('a\"b', \"a'b\")",
    "f(\"a\"\"b\")",
    "f('a''b')",
    "f(\"a\\\"b\")",
    "f(\"a\\\\\")",
    "f(\"a\\x41\")",
    "f(\"a\\xz\")",
    "f(\"abc)",
    "f('')",
    "f(\"\")",
    "f(a.b c)",
    "f(a.b, g(c.d, h(e)), i())",
    "f(a,b,c,k1=1,k2='x',k3=g(z))",
    "f(a,k=1,b)",
    "f(a=b)",
    "f(x, a.b=c)",
    "f(x, a-b=1)",
    "f(x, k=a|g())",
    "f(a|g(), 1)",
    "f(1|g())",
    "a|b",
    "a|b()",
    "a |\n b()",
    "a.b c",
    "a..b",
    ".a",
    "a.",
    "a\\.b",
    "a\\(b\\)",
    "a\\=b",
    "a\\x",
    "a\\",
    "a{b,c",
    "a{b,}",
    "a{}",
    "{a,b}.c",
    "a.[a-z]?*.c",
    "a.b!c#d$e%f&g+h;i<j>k~l`m^n",
    "sumSeries(a.b",
    "sumSeries(a.b))",
    "(a)",
    ",",
    "",
    " ",
    "|",
    "f(,)",
    "f(a,)",
    "f(a,,b)",
    "template(a.$1.b, \"web1\")",
    "template(a.$host.b, host=\"web1\")",
    "template(a.$1, 1, 2.5, \"s\")",
    "template(sumSeries(a.$1.*), \"x\")",
    "template(a.b)",
    "template (a.b, 'x')",
    "template(a|f(), 1)",
    "template(a.b, 1, k=2)",
    "template(a.b, k=2, 1)",
    "template(a.b, g(x))",
    "template(a.b, 'x')|alias('y')",
    "templatex(a)",
    "template",
    "template(template(a.$1, 'x'), 'y')",
    "f(template(a.$1, 'x'))",
    "f(_a, __x__)",
    "_f(a)",
    "f1(a)",
    "1f(a)",
    "a-b(x)",
    "f(a)(b)",
    "f(a)|",
    "f(a)|g",
    "f(a) | g(b) extra",
    "é.a",
    "a.é",
    "f('é')",
    "f(\"a\tb\")",
    "f(\"a\rb\")",
];

#[test]
fn table_matches_graphite() {
    let targets: Vec<String> = TABLE.iter().map(|s| s.to_string()).collect();
    compare(&targets);
}

#[test]
fn random_targets_match_graphite() {
    const PIECES: &[&str] = &[
        "a",
        "b.c",
        ".",
        "f",
        "sumSeries",
        "(",
        ")",
        "(",
        ")",
        ",",
        ", ",
        "'x'",
        "\"y z\"",
        "1",
        "-2.5",
        "1e3",
        "e",
        "=",
        "k=",
        "|",
        " ",
        "{",
        "}",
        "{a,b}",
        "*",
        "?",
        "[a-z]",
        "true",
        "None",
        "inf",
        "\\",
        "\\(",
        "template",
        "$1",
        "5xx",
        "-",
        ":",
        "\t",
        "\n",
        "'",
        "\"",
    ];
    let mut rng = Rng::new(42);
    let mut targets = Vec::new();
    for _ in 0..4000 {
        let n = 1 + rng.below(12);
        targets.push((0..n).map(|_| *rng.pick(PIECES)).collect::<String>());
    }
    compare(&targets);
}

#[test]
fn nested_targets_match_graphite() {
    let mut targets = Vec::new();
    for depth in [1usize, 2, 5, 10, 20] {
        targets.push(format!("{}a.b{}", "f(".repeat(depth), ")".repeat(depth)));
        // graphite-web takes time exponential in this nesting (about 5x per level): keep it shallow.
        if depth <= 5 {
            targets.push(format!("{}a.b{}", "f(x, k=".repeat(depth), ")".repeat(depth)));
        }
        targets.push(format!(
            "{}a.$1{}",
            "template(".repeat(depth),
            ", 'v')".repeat(depth)
        ));
        targets.push(format!("a.b{}", "|f(1)".repeat(depth)));
        targets.push(format!("{}a.b", "f(".repeat(depth)));
    }
    compare(&targets);
}
