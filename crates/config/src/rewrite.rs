//! rewrite-rules.conf, as carbon's `rewrite._RewriteRuleManager.read_rules` reads it.
//!
//! Not ConfigParser: lines are stripped; `#` lines and blank lines are skipped; `[name]` starts a
//! ruleset (lower-cased) and *empties* it, so a second `[pre]` replaces the first; any other line with
//! `=` is `regex = replacement` split at the first `=` (a regex cannot contain `=`). carbon applies
//! `pre` on receipt and `post` after aggregation; rules before any header, and other sections, are
//! kept but never applied. A regex Python refuses is skipped with a warning, as carbon logs and skips
//! it; a line that is neither is only logged by carbon, and is a warning here.
//!
//! Replacements use Python's `re.sub` syntax (`\1`, `\g<name>`, `\g<0>`); they are checked when
//! the file is read (carbon finds a bad group reference only when a metric matches, and then fails
//! on every such metric, so it is an error here).

use crate::error::{ConfigError, Warning};
use crate::ini::py_lines;
use crate::pyre::{PyRegex, RegexError, Replacement, sub};
use crate::pyvalue::py_strip;

/// One `regex = replacement` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RewriteRule {
    /// Line in the file.
    pub line: usize,
    /// The pattern.
    pub regex: PyRegex,
    /// The replacement as written (Python syntax).
    pub replacement_text: String,
    /// The replacement, parsed.
    pub replacement: Replacement,
}

impl RewriteRule {
    /// `regex.sub(replacement, metric)`.
    pub fn apply(&self, metric: &str) -> String {
        sub(&self.regex, &self.replacement, metric)
    }
}

/// The rulesets of one file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RewriteRules {
    /// Applied to metrics as they are received.
    pub pre: Vec<RewriteRule>,
    /// Applied after aggregation.
    pub post: Vec<RewriteRule>,
    /// Every other ruleset by its lower-cased name (`""` for rules before any header); never applied.
    pub other: Vec<(String, Vec<RewriteRule>)>,
}

impl RewriteRules {
    /// Applies every rule of a ruleset in order.
    pub fn apply(rules: &[RewriteRule], metric: &str) -> String {
        rules.iter().fold(metric.to_string(), |m, r| r.apply(&m))
    }
}

/// Parses rewrite-rules.conf.
pub fn parse_rewrite_rules(path: &str, text: &str) -> Result<(RewriteRules, Vec<Warning>), ConfigError> {
    let mut sets: Vec<(Option<String>, Vec<RewriteRule>)> = vec![];
    let mut section: Option<String> = None;
    let mut warnings = vec![];
    for (n, raw) in py_lines(text) {
        let line = py_strip(raw);
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') && line.len() >= 2 {
            let name = line[1..line.len() - 1].to_lowercase();
            match sets.iter_mut().find(|(s, _)| s.as_deref() == Some(&name)) {
                Some((_, rules)) => rules.clear(),
                None => sets.push((Some(name.clone()), vec![])),
            }
            section = Some(name);
            continue;
        }
        let Some((pattern, replacement)) = line.split_once('=') else {
            warnings.push(Warning::new(
                path,
                n,
                format!("not a section heading or rule: {line:?}; ignored, as carbon does"),
            ));
            continue;
        };
        let (pattern, replacement) = (py_strip(pattern), py_strip(replacement));
        let regex = match PyRegex::new(pattern) {
            Ok(r) => r,
            Err(e @ RegexError::Invalid { .. }) => {
                warnings.push(Warning::new(
                    path,
                    n,
                    format!("{e}; rule skipped, as carbon does"),
                ));
                continue;
            }
            Err(e) => return Err(ConfigError::new(path, n, e.to_string())),
        };
        let repl = Replacement::parse(replacement, &regex).map_err(|m| ConfigError::new(path, n, m))?;
        let rule = RewriteRule {
            line: n,
            regex,
            replacement_text: replacement.to_string(),
            replacement: repl,
        };
        match sets.iter_mut().find(|(s, _)| *s == section) {
            Some((_, rules)) => rules.push(rule),
            None => sets.push((section.clone(), vec![rule])),
        }
    }
    let mut out = RewriteRules::default();
    for (name, rules) in sets {
        match name.as_deref() {
            Some("pre") => out.pre = rules,
            Some("post") => out.post = rules,
            _ => out.other.push((name.unwrap_or_default(), rules)),
        }
    }
    Ok((out, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carbon_rewrite_rules() {
        let text = "\
orphan = x
[PRE]
^old\\. = new.
[post]
_sum$ =
_avg$ =
[pre]
^servers\\.(\\w+)\\.cpu$ = cpu.\\1
(bad = x
just text
[other]
a = b
";
        let (r, w) = parse_rewrite_rules("rw.conf", text).unwrap();
        assert_eq!(r.pre.len(), 1, "second [pre] empties the first");
        assert_eq!(RewriteRules::apply(&r.pre, "servers.web1.cpu"), "cpu.web1");
        assert_eq!(RewriteRules::apply(&r.pre, "old.x"), "old.x");
        assert_eq!(RewriteRules::apply(&r.post, "a.b_sum"), "a.b");
        assert_eq!(RewriteRules::apply(&r.post, "a_avg.b_avg"), "a_avg.b");
        assert_eq!(w.len(), 2);
        assert_eq!(r.other.len(), 2);
        assert!(parse_rewrite_rules("rw", "[pre]\n(a) = \\2\n").is_err());
    }
}
