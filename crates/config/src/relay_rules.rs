//! relay-rules.conf, as carbon's `relayrules.loadRelayRules` reads it.
//!
//! Every section (in file order, `[DEFAULT]` included) must have `destinations`. A section with
//! `pattern` is a rule (matched with `re.search` and `re.I`, case-insensitively) and may set
//! `continue`; `pattern` and `default` together are an error; `default = false` sections are
//! ignored; sections with neither are ignored (their destinations still have to parse). Exactly
//! one `default = true` section is required, and it is evaluated last whatever its position.

use crate::destination::{Destination, parse_destinations};
use crate::error::{ConfigError, Warning};
use crate::ini::{DEFAULT_SECTION, Ini};
use crate::pyre::{PyRegex, PyRegexOptions};

/// One relay rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayRule {
    /// Section name.
    pub name: String,
    /// Line of the section header.
    pub line: usize,
    /// `None` for the default rule, which matches everything.
    pub pattern: Option<PyRegex>,
    /// Where matching metrics go.
    pub destinations: Vec<Destination>,
    /// Keep evaluating later rules after this one matched.
    pub continue_matching: bool,
}

impl RelayRule {
    /// Whether this rule takes the metric.
    pub fn matches(&self, metric: &str) -> bool {
        self.pattern.as_ref().is_none_or(|p| p.is_match(metric))
    }
}

/// The rules, the default one last.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayRules {
    /// Rules in evaluation order.
    pub rules: Vec<RelayRule>,
}

impl RelayRules {
    /// carbon's `RelayRulesRouter.getDestinations`: the destinations of each matching rule in
    /// order, stopping after the first match without `continue`. Like carbon it does not remove
    /// repeats; the caller keeps only destinations that are also in DESTINATIONS.
    pub fn destinations_for(&self, metric: &str) -> Vec<&Destination> {
        let mut out: Vec<&Destination> = vec![];
        for rule in &self.rules {
            if rule.matches(metric) {
                out.extend(rule.destinations.iter());
                if !rule.continue_matching {
                    break;
                }
            }
        }
        out
    }
}

impl RelayRules {
    /// Rule destinations missing from carbon.conf's DESTINATIONS: carbon's router only sends to
    /// configured destinations, so traffic for these is silently dropped. One warning each.
    pub fn unconfigured_destinations(&self, path: &str, configured: &[Destination]) -> Vec<Warning> {
        let mut out = vec![];
        for rule in &self.rules {
            for d in rule.destinations.iter().filter(|d| !configured.contains(d)) {
                out.push(Warning::new(
                    path,
                    rule.line,
                    format!(
                        "[{}] sends to {d}, which is not in DESTINATIONS; carbon drops those points",
                        rule.name
                    ),
                ));
            }
        }
        out
    }
}

/// Parses relay-rules.conf.
pub fn parse_relay_rules(path: &str, text: &str) -> Result<RelayRules, ConfigError> {
    let ini = Ini::parse(path, text)?;
    let mut rules = vec![];
    let mut default: Option<RelayRule> = None;
    for h in ini.headers() {
        if h.name != DEFAULT_SECTION && !ini.has_section(&h.name) {
            return Err(ConfigError::new(
                path,
                h.line,
                format!("[{}] is inside a multi-line value; carbon fails on it", h.name),
            ));
        }
        if !ini.has_option(&h.name, "destinations") {
            return Err(ConfigError::new(
                path,
                h.line,
                format!("section [{}] does not define a 'destinations' list", h.name),
            ));
        }
        let dest = ini.get(&h.name, "destinations", h.line)?;
        let (dest_text, dest_line) = dest.map(|i| (i.value, i.line)).unwrap_or_default();
        let destinations =
            parse_destinations(&dest_text).map_err(|m| ConfigError::new(path, dest_line, m))?;
        if let Some(p) = ini.get(&h.name, "pattern", h.line)? {
            if ini.has_option(&h.name, "default") {
                return Err(ConfigError::new(
                    path,
                    h.line,
                    format!(
                        "section [{}] contains both 'pattern' and 'default'; use one or the other",
                        h.name
                    ),
                ));
            }
            let regex = PyRegex::with_options(
                &p.value,
                PyRegexOptions {
                    ignore_case: true,
                    anchored: false,
                },
            )
            .map_err(|e| ConfigError::new(path, p.line, format!("[{}] pattern: {e}", h.name)))?;
            let continue_matching = ini.get_bool(&h.name, "continue", h.line)?.is_some_and(|(b, _)| b);
            rules.push(RelayRule {
                name: h.name.clone(),
                line: h.line,
                pattern: Some(regex),
                destinations,
                continue_matching,
            });
            continue;
        }
        if let Some((is_default, line)) = ini.get_bool(&h.name, "default", h.line)? {
            if !is_default {
                continue;
            }
            if default.is_some() {
                return Err(ConfigError::new(
                    path,
                    line,
                    "only one default rule can be specified",
                ));
            }
            default = Some(RelayRule {
                name: h.name.clone(),
                line: h.line,
                pattern: None,
                destinations,
                continue_matching: false,
            });
        }
    }
    let Some(default) = default else {
        return Err(ConfigError::new(
            path,
            0,
            "no default rule defined: exactly one section needs 'default = true' instead of a pattern",
        ));
    };
    rules.push(default);
    Ok(RelayRules { rules })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_in_order_default_last() {
        let text = "\
[default]
default = true
destinations = 127.0.0.1:2004:a, 127.0.0.1:2104:b

[web]
pattern = ^WEB\\.
destinations = 10.0.0.1:2004
continue = yes

[web_all]
pattern = ^web
destinations = 10.0.0.2:2004, 10.0.0.1:2004

[off]
default = false
destinations = 10.9.9.9:1
";
        let r = parse_relay_rules("r.conf", text).unwrap();
        let names: Vec<_> = r.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["web", "web_all", "default"]);
        let hosts = |m: &str| {
            r.destinations_for(m)
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            hosts("web.x"),
            ["10.0.0.1:2004", "10.0.0.2:2004", "10.0.0.1:2004"]
        );
        assert_eq!(hosts("webby"), ["10.0.0.2:2004", "10.0.0.1:2004"]);
        assert_eq!(hosts("db.x"), ["127.0.0.1:2004:a", "127.0.0.1:2104:b"]);
        let configured =
            crate::destination::parse_destinations("127.0.0.1:2004:a, 127.0.0.1:2104:b, 10.0.0.1:2004")
                .unwrap();
        let w = r.unconfigured_destinations("r.conf", &configured);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].line, 10);
    }

    #[test]
    fn carbon_refusals() {
        let cases: &[(&str, usize)] = &[
            ("[a]\npattern = x\n", 1),
            ("[a]\npattern = x\ndestinations = h:1\n", 0),
            (
                "[a]\ndefault = true\ndestinations = h:1\n[b]\ndefault = 1\ndestinations = h:2\n",
                5,
            ),
            ("[a]\ndefault = true\npattern = x\ndestinations = h:1\n", 1),
            ("[a]\ndefault = maybe\ndestinations = h:1\n", 2),
            ("[a]\ndefault = true\ndestinations = nohost\n", 3),
            (
                "[a]\ndefault = true\ndestinations = h:1\n[b]\npattern = (\ndestinations = h:1\n",
                5,
            ),
        ];
        for (text, line) in cases {
            let e = parse_relay_rules("r.conf", text).unwrap_err();
            assert_eq!(e.line, *line, "{text:?}: {e}");
        }
    }
}
