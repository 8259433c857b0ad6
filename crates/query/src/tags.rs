//! `seriesByTag('name=cpu', 'host=~web.*')` expressions, read as graphite-web's tag databases read them.
//!
//! An expression is `tag` (no `;`, `!` or `=`), an operator (`=`, `!=`, `=~`, `!=~`) and a spec (no
//! `;`). A regex is anchored at the start of the value (`re.match`), not at the end. A series that lacks
//! a tag has the empty value for it, so `host!=web1` matches series with no `host` tag; to keep a query
//! from matching everything, at least one expression must require a non-empty value.
//!
//! Regexes use the `regex` crate: Python syntax it lacks (look-around, backreferences) is refused with
//! [`TagError::BadRegex`].

use regex::Regex;

/// Why a tag expression or query was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// Not `tag<op>spec` (graphite's `Invalid tagspec`).
    #[error("invalid tagspec {0}")]
    InvalidSpec(String),
    /// A `=~` / `!=~` spec that does not compile.
    #[error("invalid regex in {spec}: {reason}")]
    BadRegex {
        /// The expression as given.
        spec: String,
        /// The regex compiler's complaint.
        reason: String,
    },
    /// Every expression matches the empty value, so the query would match every series.
    #[error("at least one tagspec must not match the empty string")]
    AllMatchEmpty,
    /// `seriesByTag()` with no expressions.
    #[error("seriesByTag needs at least one tag expression")]
    Empty,
}

/// Whether a regex holds a global inline-flag group such as `(?i)`. Python 3.11 refuses one anywhere
/// but at the very start, and graphite always puts `^(` (or the spec's own `^`) first.
fn has_global_flag_group(spec: &str) -> bool {
    let chars: Vec<char> = spec.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '(' if chars.get(i + 1) == Some(&'?') => {
                let flags = chars[i + 2..]
                    .iter()
                    .take_while(|c| "aiLmsux".contains(**c))
                    .count();
                if flags > 0 && chars.get(i + 2 + flags) == Some(&')') {
                    return true;
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    false
}

/// The four comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagOp {
    /// `=`: value equals spec.
    Eq,
    /// `!=`: value differs from spec.
    NotEq,
    /// `=~`: value matches the regex at its start.
    Match,
    /// `!=~`: value does not match the regex at its start.
    NotMatch,
}

impl TagOp {
    /// The operator as written in an expression.
    pub fn as_str(self) -> &'static str {
        match self {
            TagOp::Eq => "=",
            TagOp::NotEq => "!=",
            TagOp::Match => "=~",
            TagOp::NotMatch => "!=~",
        }
    }
}

/// One parsed tag expression.
#[derive(Debug, Clone)]
pub struct TagExpr {
    /// The tag name (`name` is the metric name itself).
    pub tag: String,
    /// The comparison.
    pub op: TagOp,
    /// The value or regex as written.
    pub spec: String,
    regex: Option<Regex>,
    /// For a regex spec that starts with `^`: the spec unwrapped, for graphite's SQL `REGEXP`
    /// (Python's `re.search`), which does not anchor every alternative the way `re.match` does.
    search: Option<Regex>,
}

impl PartialEq for TagExpr {
    fn eq(&self, other: &TagExpr) -> bool {
        self.tag == other.tag && self.op == other.op && self.spec == other.spec
    }
}

impl TagExpr {
    /// Parses `tag=value`, `tag!=value`, `tag=~regex` or `tag!=~regex`.
    pub fn parse(expr: &str) -> Result<TagExpr, TagError> {
        let invalid = || TagError::InvalidSpec(expr.to_string());
        let body = expr;
        let tag_len = body.find([';', '!', '=']).ok_or_else(invalid)?;
        if tag_len == 0 {
            return Err(invalid());
        }
        let (tag, rest) = body.split_at(tag_len);
        let (op, spec) = if let Some(s) = rest.strip_prefix("!=~") {
            (TagOp::NotMatch, s)
        } else if let Some(s) = rest.strip_prefix("!=") {
            (TagOp::NotEq, s)
        } else if let Some(s) = rest.strip_prefix("=~") {
            (TagOp::Match, s)
        } else if let Some(s) = rest.strip_prefix('=') {
            (TagOp::Eq, s)
        } else {
            return Err(invalid());
        };
        if spec.contains(';') {
            return Err(invalid());
        }
        if matches!(op, TagOp::Match | TagOp::NotMatch) && has_global_flag_group(spec) {
            return Err(TagError::BadRegex {
                spec: expr.to_string(),
                reason: "global flags not at the start of the expression".to_string(),
            });
        }
        let regex = match op {
            TagOp::Match | TagOp::NotMatch => Some(
                // Anchored at the start only, as `re.match` is; graphite's `^(...)` wrapping is the
                // same thing, and wrapping a spec that already starts with `^` changes nothing.
                Regex::new(&format!("^(?:{spec})")).map_err(|e| TagError::BadRegex {
                    spec: expr.to_string(),
                    reason: e.to_string(),
                })?,
            ),
            TagOp::Eq | TagOp::NotEq => None,
        };
        let search = match op {
            TagOp::Match | TagOp::NotMatch if spec.starts_with('^') => Regex::new(spec).ok(),
            _ => None,
        };
        Ok(TagExpr {
            tag: tag.to_string(),
            op,
            spec: spec.to_string(),
            regex,
            search,
        })
    }

    /// Whether a series whose value for this tag is `value` (empty when it lacks the tag) matches.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (TagOp::Eq, _) => value == self.spec,
            (TagOp::NotEq, _) => value != self.spec,
            (TagOp::Match, Some(r)) => r.is_match(value),
            (TagOp::NotMatch, Some(r)) => !r.is_match(value),
            (TagOp::Match | TagOp::NotMatch, None) => false,
        }
    }

    /// Whether a series without this tag matches: such expressions filter instead of select.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// Whether a series matches, as graphite-web's local tag database decides it. An expression that
    /// matches the empty value is a filter over the series' tags (`re.match`, a missing tag being
    /// empty). Any other one is an SQL join: the series must have the tag, and a regex is tested
    /// with `REGEXP`, which is `re.search` of the anchored spec (so `^a|b` finds `xb` there).
    pub fn matches_series(&self, value: Option<&str>) -> bool {
        if self.matches_empty() {
            return self.matches(value.unwrap_or(""));
        }
        let Some(value) = value else {
            return false;
        };
        match (self.op, &self.search) {
            (TagOp::Match, Some(r)) => r.is_match(value),
            (TagOp::NotMatch, Some(r)) => !r.is_match(value),
            _ => self.matches(value),
        }
    }
}

impl std::fmt::Display for TagExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{}", self.tag, self.op.as_str(), self.spec)
    }
}

/// All expressions of one `seriesByTag` call: a series matches when every expression does.
#[derive(Debug, Clone, PartialEq)]
pub struct TagQuery {
    /// The expressions in the order given.
    pub exprs: Vec<TagExpr>,
}

impl TagQuery {
    /// Parses and checks a list of expressions (at least one must need a non-empty value).
    pub fn parse<S: AsRef<str>>(exprs: &[S]) -> Result<TagQuery, TagError> {
        if exprs.is_empty() {
            return Err(TagError::Empty);
        }
        let exprs = exprs
            .iter()
            .map(|e| TagExpr::parse(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if exprs.iter().all(TagExpr::matches_empty) {
            return Err(TagError::AllMatchEmpty);
        }
        Ok(TagQuery { exprs })
    }

    /// Reads the expressions from a parsed `seriesByTag(...)` call: its string arguments, as
    /// graphite-web's store does (other arguments are ignored).
    pub fn from_call(call: &crate::grammar::Call) -> Result<TagQuery, TagError> {
        let strings: Vec<&str> = call
            .args
            .iter()
            .filter_map(|a| match a {
                crate::grammar::Arg::Str(s) => Some(s.as_str()),
                _ => None,
            })
            .collect();
        TagQuery::parse(&strings)
    }

    /// Whether a series matches, given a lookup of its tag values (`name` included), with
    /// graphite-web's local tag database rules ([`TagExpr::matches_series`]).
    pub fn matches<'a>(&self, tag_value: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.exprs.iter().all(|e| e.matches_series(tag_value(&e.tag)))
    }

    /// The expression that best narrows a search: an `=` that needs a value, else any expression
    /// that needs one (there always is one, [`TagQuery::parse`] checks it).
    pub fn selector(&self) -> Option<&TagExpr> {
        self.exprs
            .iter()
            .find(|e| e.op == TagOp::Eq && !e.matches_empty())
            .or_else(|| self.exprs.iter().find(|e| !e.matches_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_operators() {
        let cases: &[(&str, &str, TagOp, &str)] = &[
            ("name=cpu", "name", TagOp::Eq, "cpu"),
            ("host!=web1", "host", TagOp::NotEq, "web1"),
            ("host=~web.*", "host", TagOp::Match, "web.*"),
            ("host!=~web.*", "host", TagOp::NotMatch, "web.*"),
            ("a=b=c", "a", TagOp::Eq, "b=c"),
            ("a=", "a", TagOp::Eq, ""),
            ("a=~", "a", TagOp::Match, ""),
            ("a b=c d", "a b", TagOp::Eq, "c d"),
        ];
        for (input, tag, op, spec) in cases {
            let e = TagExpr::parse(input).unwrap();
            assert_eq!(
                (e.tag.as_str(), e.op, e.spec.as_str()),
                (*tag, *op, *spec),
                "{input:?}"
            );
            assert_eq!(e.to_string(), *input);
        }
        for bad in ["", "=x", "a", "a!b=c", "a;b=c", "a=b;c", "a!x", "a=~(", "!=x"] {
            assert!(TagExpr::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn matching_is_anchored_at_start_only() {
        let e = TagExpr::parse("host=~web").unwrap();
        assert!(e.matches("web1"));
        assert!(!e.matches("myweb"));
        let e = TagExpr::parse("host=~^a|b").unwrap();
        assert!(e.matches("b1"));
        assert!(!e.matches("xb"), "re.match anchors every alternative");
        let e = TagExpr::parse("host!=~web").unwrap();
        assert!(e.matches("db1"));
        assert!(e.matches(""));
    }

    #[test]
    fn sql_side_searches_specs_that_start_with_a_caret() {
        // Not matching empty: graphite's SQL REGEXP, re.search('^a|b', value).
        let e = TagExpr::parse("host=~^a|b").unwrap();
        assert!(e.matches_series(Some("xb")));
        assert!(!e.matches_series(None));
        // Matching empty: a Python-side filter with re.match, and a missing tag is empty.
        let e = TagExpr::parse("host!=~^a|b").unwrap();
        assert!(e.matches_empty());
        assert!(e.matches_series(Some("xb")), "re.match('^a|b', 'xb') is None");
        assert!(!e.matches_series(Some("b1")));
        let e = TagExpr::parse("dc=").unwrap();
        assert!(e.matches_series(None));
        assert!(!e.matches_series(Some("x")));
    }

    #[test]
    fn at_least_one_must_need_a_value() {
        assert_eq!(TagQuery::parse(&["host!=web1"]), Err(TagError::AllMatchEmpty));
        assert_eq!(TagQuery::parse(&["host=~.*"]), Err(TagError::AllMatchEmpty));
        assert_eq!(TagQuery::parse(&["host="]), Err(TagError::AllMatchEmpty));
        assert_eq!(TagQuery::parse::<&str>(&[]), Err(TagError::Empty));
        let q = TagQuery::parse(&["name=cpu", "host!=web1"]).unwrap();
        let series = |t: &str| match t {
            "name" => Some("cpu"),
            "host" => Some("web2"),
            _ => None,
        };
        assert!(q.matches(series));
        let q = TagQuery::parse(&["name=cpu", "dc="]).unwrap();
        assert!(q.matches(series), "missing tag = empty value");
    }

    #[test]
    fn from_parsed_call() {
        let expr = crate::grammar::parse_target("seriesByTag('name=cpu', 'host=~web.*')").unwrap();
        let crate::grammar::Expr::Call(call) = expr else {
            panic!("not a call")
        };
        let q = TagQuery::from_call(&call).unwrap();
        assert_eq!(q.exprs.len(), 2);
        assert_eq!(call.raw, "seriesByTag('name=cpu', 'host=~web.*')");
    }
}
