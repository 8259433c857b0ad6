//! Differential tests: `seriesByTag` expressions against graphite-web's tag database code
//! (`BaseTagDB.parse_tagspec`, and the filter rules of the local tag database for values).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test harness: failing loudly is the point

mod common;

use carbide_query::tags::{TagExpr, TagQuery};
use common::{Rng, run_graphite};
use serde_json::{Value, json};

const SCRIPT: &str = r#"
import re
from graphite.tags.base import BaseTagDB

def matches(op, spec, value):
    if op in ('=~', '!=~') and not spec.startswith('^'):
        spec = '^(' + spec + ')'
    if op == '=': return value == spec
    if op == '!=': return value != spec
    if op == '=~': return re.match(spec, value) is not None
    return re.match(spec, value) is None

out = []
for expr, values in json.load(sys.stdin):
    try:
        tag, op, spec = BaseTagDB.parse_tagspec(expr)
    except Exception:
        out.append(None)
        continue
    try:
        out.append({"tag": tag, "op": op, "spec": spec, "matches": [matches(op, spec, v) for v in values]})
    except re.error:
        out.append({"tag": tag, "op": op, "spec": spec, "matches": "bad regex"})
print(json.dumps(out))
"#;

const VALUES: &[&str] = &[
    "", "web1", "web", "myweb", "db1", "a", "b", "ab", "x=y", "~x", "web.*", "WEB1",
];

fn compare(exprs: &[String]) {
    let values: Vec<String> = VALUES.iter().map(|v| v.to_string()).collect();
    let input: Vec<Value> = exprs.iter().map(|e| json!([e, values])).collect();
    let theirs = run_graphite(SCRIPT, &Value::Array(input));
    let theirs = theirs.as_array().expect("list");
    let mut failures = Vec::new();
    let mut compared_regex = 0;
    for (expr, want) in exprs.iter().zip(theirs) {
        let ours = match TagExpr::parse(expr) {
            Ok(e) => json!({
                "tag": e.tag, "op": e.op.as_str(), "spec": e.spec,
                "matches": VALUES.iter().map(|v| e.matches(v)).collect::<Vec<_>>(),
            }),
            // A spec Python compiles but the regex crate refuses (or the reverse) is reported below.
            Err(carbide_query::TagError::BadRegex { .. }) => json!("bad regex"),
            Err(_) => Value::Null,
        };
        let want_bad_regex = want.get("matches") == Some(&json!("bad regex"));
        if ours == json!("bad regex") || want_bad_regex {
            if !(ours == json!("bad regex") && want_bad_regex) {
                failures.push(format!(
                    "{expr:?}: regex verdicts differ: ours {ours}, graphite {want}"
                ));
            }
            continue;
        }
        compared_regex += usize::from(expr.contains('~'));
        if &ours != want {
            failures.push(format!("{expr:?}\n  ours:     {ours}\n  graphite: {want}"));
        }
    }
    assert!(compared_regex > 0);
    assert!(
        failures.is_empty(),
        "{} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn table_matches_graphite() {
    let table = [
        "name=cpu",
        "host!=web1",
        "host=~web.*",
        "host!=~web.*",
        "host=~web",
        "host=~^web",
        "host=~^a|b",
        "host=~a|b",
        "host=~.*",
        "host!=~.*",
        "host=",
        "host!=",
        "host=~",
        "a=b=c",
        "a=~b=c",
        "a==b",
        "a!==b",
        "a=!b",
        "a b=c d",
        "",
        "=x",
        "a",
        "a!b=c",
        "a;b=c",
        "a=b;c",
        "a!x",
        "!=x",
        "a=~(",
        "a=~[",
        "a=~web\\d",
        "host=~WEB",
        "host=~(?i)web",
        "a=b\n",
        "host=~x$",
    ];
    compare(&table.iter().map(|s| s.to_string()).collect::<Vec<_>>());
}

#[test]
fn random_exprs_match_graphite() {
    const PIECES: &[&str] = &[
        "a", "b", "web", "=", "!", "~", ";", ".", "*", "^", "|", " ", "1", "x", "$",
    ];
    let mut rng = Rng::new(5);
    let exprs: Vec<String> = (0..2000)
        .map(|_| {
            let n = 1 + rng.below(7);
            (0..n).map(|_| *rng.pick(PIECES)).collect()
        })
        .collect();
    compare(&exprs);
}

#[test]
fn empty_matching_rule_matches_graphite_message() {
    // graphite-web's local tag database refuses a query whose every spec matches the empty value.
    assert!(TagQuery::parse(&["a!=x", "b=~.*", "c="]).is_err());
    assert!(TagQuery::parse(&["a!=x", "b=~.+"]).is_ok());
}
