//! Differential tests: segment globs against graphite-web's finder matching
//! (`graphite.finders.match_entries`: `expand_braces` then Python's `fnmatch.filter`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test harness: failing loudly is the point

mod common;

use carbide_query::glob::{Glob, expand_braces};
use common::{Rng, run_graphite};
use serde_json::{Value, json};

const SCRIPT: &str = r#"
from graphite.finders import match_entries, expand_braces
out = []
for pattern, names in json.load(sys.stdin):
    out.append({"variants": sorted(expand_braces(pattern)),
                "matches": sorted(match_entries(names, pattern))})
print(json.dumps(out))
"#;

fn compare(cases: &[(String, Vec<String>)]) {
    let input: Vec<Value> = cases.iter().map(|(p, n)| json!([p, n])).collect();
    let theirs = run_graphite(SCRIPT, &Value::Array(input));
    let theirs = theirs.as_array().expect("list");
    let mut failures = Vec::new();
    for ((pattern, names), want) in cases.iter().zip(theirs) {
        let glob = Glob::new(pattern).expect("compiles");
        let mut matches: Vec<&String> = names.iter().filter(|n| glob.matches(n)).collect();
        matches.sort();
        matches.dedup();
        let ours = json!({ "variants": expand_braces(pattern).expect("expands"), "matches": matches });
        if &ours != want {
            failures.push(format!(
                "{pattern:?} on {names:?}\n  ours:     {ours}\n  graphite: {want}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        cases.len(),
        failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

const NAMES: &[&str] = &[
    "", "a", "b", "c", "ab", "abc", "ba", "-", "^", "!", "]", "[", "a-b", "a]", "[a]", "{a}", "{a,b}", "\\",
    "z", "web01", "web10", "cpu", "é", "a.b", "*", "?", "&", "~", "|",
];

#[test]
fn table_matches_graphite() {
    let patterns = [
        "*",
        "a*",
        "*b",
        "a*c",
        "?",
        "??",
        "a?c",
        "[abc]",
        "[a-c]",
        "[!a]",
        "[!a-b]",
        "[^a]",
        "[]]",
        "[]a]",
        "[!]]",
        "[!]",
        "[",
        "a[",
        "[a",
        "[]",
        "[z-a]",
        "[!z-a]",
        "[a-]",
        "[-a]",
        "[a-c-e]",
        "[b-a-c]",
        "[c-b-a]",
        "[!b-a]",
        "[\\]",
        "[a\\-z]",
        "[&&]",
        "[~]",
        "[|]",
        "[[]",
        "[a-a]",
        "{a,b}",
        "{a,{b,c}}",
        "{a,b}{c,d}",
        "x{a,b",
        "x}a{",
        "{}",
        "{,}",
        "{,a}",
        "{a}",
        "web{0,1}?",
        "web[01][0-9]",
        "{[ab],c}",
        "{*,?}",
        "**",
        "é",
        "[é]",
        "a-b",
        "\\*",
        "*]",
        "[*]",
    ];
    let cases: Vec<(String, Vec<String>)> = patterns
        .iter()
        .map(|p| (p.to_string(), NAMES.iter().map(|n| n.to_string()).collect()))
        .collect();
    compare(&cases);
}

#[test]
fn random_patterns_match_graphite() {
    const PIECES: &[&str] = &[
        "a", "b", "c", "-", "!", "^", "[", "]", "*", "?", "{", "}", ",", "z", "\\", "é",
    ];
    let mut rng = Rng::new(99);
    let mut cases = Vec::new();
    for _ in 0..3000 {
        let n = 1 + rng.below(8);
        let pattern: String = (0..n).map(|_| *rng.pick(PIECES)).collect();
        let names: Vec<String> = (0..12)
            .map(|_| {
                let m = rng.below(5);
                (0..m).map(|_| *rng.pick(&PIECES[..13])).collect()
            })
            .collect();
        cases.push((pattern, names));
    }
    compare(&cases);
}
