//! aggregation-rules.conf, as carbon's `aggregator.rules` reads it.
//!
//! Each non-blank line not starting with `#` (after stripping) is
//! `output_template (frequency) = method input_pattern`: split at the first `=`, each side split on
//! whitespace into exactly two words, the frequency's parentheses trimmed and read with `int()`.
//! The input pattern becomes a regex one `.`-separated part at a time: a part with `<<name>>`
//! becomes `pre(?P<name>.+?)post` (may span dots), one with `<name>` becomes
//! `pre(?P<name>[^.]+?)post`, a bare `*` is `[^.]+`, and any other `*` is `[^.]*`; the rest is taken
//! as regex text. Parts are joined with `\.`, `$` is appended, and it is matched from the start
//! (`re.match`). The output name is the template with each `<name>` replaced by what the field
//! matched. Any bad line fails the whole file, as it does in carbon.

use crate::error::{ConfigError, Warning};
use crate::ini::py_lines;
use crate::pyre::{PyRegex, PyRegexOptions};
use crate::pyvalue::{is_py_space, py_int, py_strip};

/// An aggregator method and how it folds a buffer's values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RuleMethod {
    /// Sum.
    Sum,
    /// Mean.
    Avg,
    /// Smallest.
    Min,
    /// Largest.
    Max,
    /// Number of values.
    Count,
    /// Linear-interpolated percentile at this fraction (p50 = 0.5, p999 = 0.999).
    Percentile(f64),
}

impl RuleMethod {
    /// The names carbon's `AGGREGATION_METHODS` knows.
    pub const NAMES: [&'static str; 12] = [
        "sum", "avg", "min", "max", "p50", "p75", "p80", "p90", "p95", "p99", "p999", "count",
    ];

    /// Looks a method up by carbon's name.
    pub fn from_name(name: &str) -> Option<RuleMethod> {
        Some(match name {
            "sum" => RuleMethod::Sum,
            "avg" => RuleMethod::Avg,
            "min" => RuleMethod::Min,
            "max" => RuleMethod::Max,
            "count" => RuleMethod::Count,
            "p50" => RuleMethod::Percentile(0.50),
            "p75" => RuleMethod::Percentile(0.75),
            "p80" => RuleMethod::Percentile(0.80),
            "p90" => RuleMethod::Percentile(0.90),
            "p95" => RuleMethod::Percentile(0.95),
            "p99" => RuleMethod::Percentile(0.99),
            "p999" => RuleMethod::Percentile(0.999),
            _ => return None,
        })
    }

    /// Applies the method as carbon does; `None` for an empty buffer.
    pub fn apply(self, values: &[f64]) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        Some(match self {
            RuleMethod::Sum => values.iter().sum(),
            RuleMethod::Avg => values.iter().sum::<f64>() / values.len() as f64,
            RuleMethod::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
            RuleMethod::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            RuleMethod::Count => values.len() as f64,
            RuleMethod::Percentile(factor) => {
                let mut v = values.to_vec();
                v.sort_by(f64::total_cmp);
                let rank = factor * (v.len() - 1) as f64;
                let (l, r) = (rank.floor(), rank.ceil());
                let (li, ri) = (l as usize, r as usize);
                let (lv, rv) = (v.get(li).copied()?, v.get(ri).copied()?);
                if li == ri {
                    lv
                } else {
                    lv * (r - rank) + rv * (rank - l)
                }
            }
        })
    }
}

/// One piece of an output template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplatePiece {
    Text(String),
    Field(String),
}

/// One aggregation rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregationRule {
    /// Line in the file.
    pub line: usize,
    /// The input pattern as written.
    pub input_pattern: String,
    /// The output template as written.
    pub output_pattern: String,
    /// The method's name as written.
    pub method_name: String,
    /// The method.
    pub method: RuleMethod,
    /// Seconds between aggregations.
    pub frequency: u64,
    /// The regex built from the input pattern (Python syntax), as carbon builds it.
    pub regex_source: String,
    regex: PyRegex,
    template: Vec<TemplatePiece>,
}

impl AggregationRule {
    /// carbon's `get_aggregate_metric`: the output name for `metric`, or `None` if the rule does
    /// not take it.
    pub fn aggregate_metric(&self, metric: &str) -> Option<String> {
        let fields = self.regex.groupdict(metric)?;
        let mut out = String::new();
        for p in &self.template {
            match p {
                TemplatePiece::Text(t) => out.push_str(t),
                TemplatePiece::Field(f) => out.push_str(&fields.iter().find(|(k, _)| k == f)?.1),
            }
        }
        Some(out)
    }

    /// The compiled input regex.
    pub fn regex(&self) -> &PyRegex {
        &self.regex
    }
}

/// `build_regex`: the Python regex carbon derives from an input pattern.
pub fn input_pattern_regex(input: &str) -> String {
    let parts: Vec<String> = input
        .split('.')
        .map(|part| {
            if let (Some(i), Some(j)) = (part.find("<<"), part.find(">>")) {
                let field = part.get(i + 2..j).unwrap_or("");
                let post = part.get(j + 2..).unwrap_or("");
                return format!("{}(?P<{field}>.+?){post}", &part[..i]);
            }
            match (part.find('<'), part.find('>')) {
                (Some(i), Some(j)) if j > i => {
                    format!("{}(?P<{}>[^.]+?){}", &part[..i], &part[i + 1..j], &part[j + 1..])
                }
                _ if part == "*" => "[^.]+".to_string(),
                _ => part.replace('*', "[^.]*"),
            }
        })
        .collect();
    format!("{}$", parts.join("\\."))
}

/// `build_template` plus Python's `%` formatting, as pieces; `Err` where carbon's `%` would fail.
fn parse_template(output: &str) -> Result<Vec<TemplatePiece>, String> {
    // carbon turns `<` into `%(` and `>` into `)s`, then formats with the fields. Reading the
    // template that way: `<name>` is a field; a `%` of the operator's own, or an unbalanced `<`/`>`,
    // makes Python's formatting raise for every metric.
    let mut pieces = vec![];
    let mut text = String::new();
    let mut rest = output;
    while let Some(i) = rest.find(['<', '>', '%']) {
        text.push_str(&rest[..i]);
        match rest.as_bytes()[i] {
            // carbon turns a lone `>` into `)s`, which Python then prints literally.
            b'>' => {
                text.push_str(")s");
                rest = &rest[i + 1..];
                continue;
            }
            b'%' if rest[i + 1..].starts_with('%') => {
                text.push('%');
                rest = &rest[i + 2..];
                continue;
            }
            b'%' => {
                return Err(format!(
                    "a lone '%' in output template {output:?} makes carbon's formatting fail (write %%)"
                ));
            }
            _ => {}
        }
        let after = &rest[i + 1..];
        let Some(j) = after.find('>') else {
            return Err(format!("unclosed '<' in output template {output:?}"));
        };
        let name = &after[..j];
        if name.contains(['<', '%']) {
            return Err(format!("bad field {name:?} in output template {output:?}"));
        }
        if !text.is_empty() {
            pieces.push(TemplatePiece::Text(std::mem::take(&mut text)));
        }
        pieces.push(TemplatePiece::Field(name.to_string()));
        rest = &after[j + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(TemplatePiece::Text(text));
    }
    Ok(pieces)
}

/// Parses one rule line (already known not to be blank or a comment).
pub fn parse_rule(path: &str, n: usize, line: &str) -> Result<(AggregationRule, Vec<Warning>), ConfigError> {
    let fail = |m: String| ConfigError::new(path, n, m);
    let shape = || format!("expected 'output_template (frequency) = method input_pattern', got {line:?}");
    let (left, right) = line.split_once('=').ok_or_else(|| fail(shape()))?;
    let words = |s: &str| {
        s.split(is_py_space)
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (l, r) = (words(left), words(right));
    let ([output, freq], [method_name, input]) = (l.as_slice(), r.as_slice()) else {
        return Err(fail(shape()));
    };
    let freq_text = freq.trim_start_matches('(').trim_end_matches(')');
    let frequency = py_int(freq_text)
        .and_then(|f| u64::try_from(f).ok())
        .filter(|&f| f > 0)
        .ok_or_else(|| {
            fail(format!(
                "frequency {freq:?} is not a positive whole number of seconds"
            ))
        })?;
    let method = RuleMethod::from_name(method_name).ok_or_else(|| {
        fail(format!(
            "invalid aggregation method '{method_name}' (one of {})",
            RuleMethod::NAMES.join(", ")
        ))
    })?;
    let regex_source = input_pattern_regex(input);
    let regex = PyRegex::with_options(
        &regex_source,
        PyRegexOptions {
            ignore_case: false,
            anchored: true,
        },
    )
    .map_err(|e| fail(format!("input pattern {input:?}: {e}")))?;
    let template = parse_template(output).map_err(fail)?;
    let mut warnings = vec![];
    let names = regex.group_names();
    for p in &template {
        if let TemplatePiece::Field(f) = p
            && !names.iter().any(|n| n.as_deref() == Some(f))
        {
            warnings.push(Warning::new(
                path,
                n,
                format!(
                    "output field <{f}> is not captured by the input pattern; this rule produces nothing"
                ),
            ));
        }
    }
    let rule = AggregationRule {
        line: n,
        input_pattern: input.clone(),
        output_pattern: output.clone(),
        method_name: method_name.clone(),
        method,
        frequency,
        regex_source,
        regex,
        template,
    };
    Ok((rule, warnings))
}

/// Parses aggregation-rules.conf.
pub fn parse_aggregation_rules(
    path: &str,
    text: &str,
) -> Result<(Vec<AggregationRule>, Vec<Warning>), ConfigError> {
    let mut rules = vec![];
    let mut warnings = vec![];
    for (n, raw) in py_lines(text) {
        let line = py_strip(raw);
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (rule, w) = parse_rule(path, n, line)?;
        rules.push(rule);
        warnings.extend(w);
    }
    Ok((rules, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(line: &str) -> AggregationRule {
        parse_rule("a.conf", 1, line).unwrap_or_else(|e| panic!("{e}")).0
    }

    #[test]
    fn regex_building_like_carbon() {
        let cases: &[(&str, &str)] = &[
            ("<env>.app.*.requests", r"(?P<env>[^.]+?)\.app\.[^.]+\.requests$"),
            ("a.<<rest>>", r"a\.(?P<rest>.+?)$"),
            ("x*y.z", r"x[^.]*y\.z$"),
            ("pre<f>post.x", r"pre(?P<f>[^.]+?)post\.x$"),
            ("<d>\\d{2}.r", r"(?P<d>[^.]+?)\d{2}\.r$"),
        ];
        for (input, want) in cases {
            assert_eq!(input_pattern_regex(input), *want, "{input}");
        }
    }

    #[test]
    fn outputs_table() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            (
                "<env>.applications.<app>.all.requests (60) = sum <env>.applications.<app>.*.requests",
                "prod.applications.apache.www01.requests",
                Some("prod.applications.apache.all.requests"),
            ),
            (
                "<env>.applications.<app>.all.requests (60) = sum <env>.applications.<app>.*.requests",
                "prod.applications.apache.www01.requests.x",
                None,
            ),
            (
                "<env>.applications.<app>.all.requests (60) = sum <env>.applications.<app>.*.requests",
                "xprod.applications.apache.www01.requestsy",
                None,
            ),
            (
                "<env>.applications.<app>.all.<app_metric> (60) = sum <env>.applications.<app>.*.<<app_metric>>",
                "prod.applications.a.w.req.latency",
                Some("prod.applications.a.all.req.latency"),
            ),
            (
                "<env>.applications.<app>.<domain>.requests (60) = sum <env>.applications.<app>.<domain>\\d{2}.requests",
                "prod.applications.apache.www01.requests",
                Some("prod.applications.apache.www.requests"),
            ),
            ("total (10) = count *.hits", "a.hits", Some("total")),
            ("<a>.x (10) = avg <b>.hits", "a.hits", None),
            ("a>b.100%%.<x> (10) = sum <x>.y", "q.y", Some("a)sb.100%.q")),
        ];
        for (line, metric, want) in cases {
            assert_eq!(
                rule(line).aggregate_metric(metric).as_deref(),
                *want,
                "{line} / {metric}"
            );
        }
    }

    #[test]
    fn methods_like_carbon() {
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(RuleMethod::Sum.apply(&v), Some(10.0));
        assert_eq!(RuleMethod::Avg.apply(&v), Some(2.5));
        assert_eq!(RuleMethod::Min.apply(&v), Some(1.0));
        assert_eq!(RuleMethod::Max.apply(&v), Some(4.0));
        assert_eq!(RuleMethod::Count.apply(&v), Some(4.0));
        assert_eq!(RuleMethod::Percentile(0.5).apply(&v), Some(2.5));
        assert_eq!(RuleMethod::Percentile(0.999).apply(&[7.0]), Some(7.0));
        assert_eq!(RuleMethod::Sum.apply(&[]), None);
    }

    #[test]
    fn bad_lines_fail_the_file() {
        for bad in [
            "a (60) sum b",
            "a b (60) = sum c",
            "a (60) = sum",
            "a (sixty) = sum b",
            "a (60) = median b",
            "a (60) = sum <x-y>.b",
            "a% (60) = sum b",
            "<x (60) = sum <x>",
        ] {
            let e = parse_aggregation_rules("a.conf", &format!("# c\n\n{bad}\n")).unwrap_err();
            assert_eq!(e.line, 3, "{bad}: {e}");
        }
        let (rules, w) = parse_aggregation_rules("a.conf", "  # c\nout (60)=sum in\n").unwrap();
        assert_eq!(rules.len(), 1);
        assert!(w.is_empty());
    }
}
