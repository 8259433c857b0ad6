//! whitelist.conf and blacklist.conf, as carbon's `regexlist.RegexList.read_list` reads them.
//!
//! One Python regex per line, matched with `re.search`. A line whose *unstripped* text starts with
//! `#` is a comment, so `  # x` is the pattern `# x`, as in carbon. Blank lines are skipped. A
//! pattern Python would refuse is skipped with a warning (carbon logs and goes on); one Python
//! accepts but Carbide cannot run is an error, so the list never silently means less than it says.

use crate::error::{ConfigError, Warning};
use crate::ini::py_lines;
use crate::pyre::{PyRegex, RegexError};
use crate::pyvalue::py_strip;

/// A white- or blacklist: a metric is "in" it when any pattern matches.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegexList {
    /// The patterns in file order.
    pub patterns: Vec<PyRegex>,
}

impl RegexList {
    /// carbon's `value in list`.
    pub fn contains(&self, metric: &str) -> bool {
        self.patterns.iter().any(|r| r.is_match(metric))
    }

    /// carbon's `bool(list)`: an empty whitelist lets everything through.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// Parses a whitelist or blacklist file.
pub fn parse_regex_list(path: &str, text: &str) -> Result<(RegexList, Vec<Warning>), ConfigError> {
    let mut patterns = vec![];
    let mut warnings = vec![];
    for (n, line) in py_lines(text) {
        let pattern = py_strip(line);
        if line.starts_with('#') || pattern.is_empty() {
            continue;
        }
        match PyRegex::new(pattern) {
            Ok(r) => patterns.push(r),
            Err(e @ RegexError::Invalid { .. }) => {
                warnings.push(Warning::new(
                    path,
                    n,
                    format!("{e}; line ignored, as carbon does"),
                ));
            }
            Err(e) => return Err(ConfigError::new(path, n, e.to_string())),
        }
    }
    Ok((RegexList { patterns }, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carbon_list_rules() {
        let text = "# comment\n\n^some\\.noisy\\..*\n  # not a comment\n\\.\\.\n(bad\n\\.$\n";
        let (l, w) = parse_regex_list("b.conf", text).unwrap();
        assert_eq!(l.patterns.len(), 4);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].line, 6);
        assert!(l.contains("some.noisy.x"));
        assert!(l.contains("a..b"));
        assert!(l.contains("x # not a comment"));
        assert!(l.contains("trailing."));
        assert!(!l.contains("fine.metric"));
        assert!(parse_regex_list("b", "(?a)x\n").is_err());
    }
}
