//! Stage one: Python 3's `configparser.ConfigParser` with the settings carbon uses, line for line.
//!
//! carbon builds every INI reader with a bare `ConfigParser()` (or its `OrderedConfigParser`
//! subclass), so these are the rules, as Python 3.11 applies them:
//! - lines end at `\n`, `\r\n` or `\r` (universal newlines);
//! - a line whose stripped text starts with `#` or `;` is a comment; there are no inline comments,
//!   so `a = 1 # x` has the value `1 # x`;
//! - `[name]` opens a section (the name runs to the *last* `]`; names keep their case); `[DEFAULT]`
//!   holds values every section inherits; re-opening any other section is an error (strict mode);
//! - `key = value` or `key: value`, split at the first `=` or `:`; keys are lower-cased; a key twice
//!   in one section is an error;
//! - a line indented deeper than its key's line continues the value (joined with `\n`); blank lines
//!   inside a value are kept, trailing ones dropped;
//! - a line that is none of these is a parsing error; Python reports them all at the end of the
//!   file, but a missing first section header, a duplicate section or a duplicate key stop at once;
//! - values are interpolated when read (`%(key)s` from the same section or DEFAULT, `%%` for `%`,
//!   any other `%` an error), which is why a stray `%` in a regex breaks a carbon config.
//!
//! [`Ini::headers`] is carbon's `OrderedConfigParser.sections()`: every line that strips to
//! `[...]`, in file order, including `[DEFAULT]`, which carbon then treats as a section too.

use crate::error::ConfigError;
use crate::pyvalue::{is_py_space, py_bool, py_strip};

/// The section that every other section inherits from.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// Python's limit on nested `%(x)s` references.
const MAX_INTERPOLATION_DEPTH: usize = 10;

/// One `key = value` as stored: raw (not yet interpolated), continuation lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOption {
    /// The key, lower-cased as `optionxform` does.
    pub key: String,
    /// The value before interpolation.
    pub raw: String,
    /// Line of the key.
    pub line: usize,
}

/// One section and its options in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    /// The name between the brackets, case kept.
    pub name: String,
    /// Line of the (first) header.
    pub line: usize,
    /// Options in the order they were first written.
    pub options: Vec<RawOption>,
}

impl Section {
    fn find(&self, key: &str) -> Option<&RawOption> {
        self.options.iter().find(|o| o.key == key)
    }
}

/// A value read through interpolation, with the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The lower-cased key.
    pub key: String,
    /// The interpolated value.
    pub value: String,
    /// The line of the key (in DEFAULT if inherited).
    pub line: usize,
}

/// A `[...]` line as carbon's `OrderedConfigParser` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Text between the first and last character of the stripped line.
    pub name: String,
    /// Its line.
    pub line: usize,
}

/// A parsed INI file: DEFAULT, the sections, and carbon's ordered header list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ini {
    path: String,
    defaults: Section,
    sections: Vec<Section>,
    headers: Vec<Header>,
}

/// Splits text into lines the way Python's text-mode file iteration does.
pub(crate) fn py_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = text;
    let mut n = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        n += 1;
        let (line, next) = match rest.find(['\n', '\r']) {
            Some(i) => {
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                (&rest[..i], &rest[i + skip..])
            }
            None => (rest, ""),
        };
        rest = next;
        Some((n, line))
    })
}

/// The section an index names: `None` is DEFAULT.
fn options_of<'a>(
    defaults: &'a mut Section,
    sections: &'a mut [Section],
    s: Option<usize>,
) -> Option<&'a mut Section> {
    match s {
        None => Some(defaults),
        Some(i) => sections.get_mut(i),
    }
}

/// Where option names end: the first `=` or `:` (OPTCRE's lazy `(?P<option>.*?)`).
fn split_option(value: &str) -> Option<(&str, &str)> {
    let d = value.find(['=', ':'])?;
    Some((&value[..d], &value[d + 1..]))
}

impl Ini {
    /// Parses `text` as ConfigParser reads a file named `path`.
    pub fn parse(path: &str, text: &str) -> Result<Ini, ConfigError> {
        let err = |line: usize, msg: String| ConfigError::new(path, line, msg);
        let mut defaults = Section {
            name: DEFAULT_SECTION.to_string(),
            line: 0,
            options: vec![],
        };
        let mut sections: Vec<Section> = vec![];
        let mut headers = vec![];
        // Values are collected as lists of lines and joined at the end, as Python does.
        let mut pending: Vec<Vec<String>> = vec![];
        // Which section is current: None, Some(None) = DEFAULT, Some(Some(i)) = sections[i].
        let mut cur: Option<Option<usize>> = None;
        // The option continuation lines extend: (section, option index) and its line list.
        let mut cur_value: Option<usize> = None;
        let mut slots: Vec<(Option<usize>, usize)> = vec![];
        let mut indent_level = 0usize;
        let mut deferred: Option<ConfigError> = None;

        for (lineno, line) in py_lines(text) {
            let stripped = py_strip(line);
            if stripped.starts_with('[') && stripped.ends_with(']') && stripped.len() >= 2 {
                let inner = &stripped[1..stripped.len() - 1];
                headers.push(Header {
                    name: inner.to_string(),
                    line: lineno,
                });
            }
            let is_comment = stripped.starts_with('#') || stripped.starts_with(';');
            let value = if is_comment { "" } else { stripped };
            if value.is_empty() {
                // A blank line belongs to the value being continued; a comment line does not.
                if let (false, Some(v)) = (is_comment, cur_value.and_then(|p| pending.get_mut(p))) {
                    v.push(String::new());
                }
                continue;
            }
            let cur_indent = line.chars().take_while(|c| is_py_space(*c)).count();
            if let (Some(v), true) = (
                cur_value.and_then(|p| pending.get_mut(p)),
                cur_indent > indent_level,
            ) {
                v.push(value.to_string());
                continue;
            }
            indent_level = cur_indent;
            if let Some(header) = value.strip_prefix('[').and_then(|v| {
                let end = v.rfind(']')?;
                (end > 0).then(|| &v[..end])
            }) {
                if header == DEFAULT_SECTION {
                    cur = Some(None);
                } else if sections.iter().any(|s| s.name == header) {
                    return Err(err(lineno, format!("section [{header}] already exists")));
                } else {
                    sections.push(Section {
                        name: header.to_string(),
                        line: lineno,
                        options: vec![],
                    });
                    cur = Some(Some(sections.len() - 1));
                }
                cur_value = None;
                continue;
            }
            let Some(s) = cur else {
                return Err(err(
                    lineno,
                    format!("file contains no section headers, but has {line:?} before the first"),
                ));
            };
            let Some((name, val)) = split_option(value) else {
                deferred.get_or_insert_with(|| {
                    err(lineno, format!("not a section header or `key = value`: {line:?}"))
                });
                continue;
            };
            if name.is_empty() {
                deferred.get_or_insert_with(|| err(lineno, format!("option with no name: {line:?}")));
            }
            let key = name.trim_end_matches(is_py_space).to_lowercase();
            let Some(sec) = options_of(&mut defaults, &mut sections, s) else {
                continue;
            };
            if sec.find(&key).is_some() {
                return Err(err(
                    lineno,
                    format!("option '{key}' in section [{}] already exists", sec.name),
                ));
            }
            sec.options.push(RawOption {
                key: key.clone(),
                raw: String::new(),
                line: lineno,
            });
            slots.push((s, sec.options.len() - 1));
            pending.push(vec![py_strip(val).to_string()]);
            // Python's `if optname` is false for an empty name, so nothing continues it.
            cur_value = (!key.is_empty()).then(|| pending.len() - 1);
        }
        for ((s, pos), lines) in slots.into_iter().zip(pending) {
            let joined = lines.join("\n");
            let joined = joined.trim_end_matches(is_py_space).to_string();
            if let Some(opt) =
                options_of(&mut defaults, &mut sections, s).and_then(|sec| sec.options.get_mut(pos))
            {
                opt.raw = joined;
            }
        }
        if let Some(e) = deferred {
            return Err(e);
        }
        Ok(Ini {
            path: path.to_string(),
            defaults,
            sections,
            headers,
        })
    }

    /// The file name given to [`Ini::parse`].
    pub fn path(&self) -> &str {
        &self.path
    }

    /// carbon's `OrderedConfigParser.sections()`: every `[...]` line in file order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The sections other than DEFAULT, in file order.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// The DEFAULT section's options.
    pub fn defaults(&self) -> &Section {
        &self.defaults
    }

    /// Python's `has_section`: true for a real section, false for DEFAULT.
    pub fn has_section(&self, name: &str) -> bool {
        self.sections.iter().any(|s| s.name == name)
    }

    fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    fn no_section(&self, name: &str, line: usize) -> ConfigError {
        ConfigError::new(&self.path, line, format!("no section [{name}]"))
    }

    /// Python's `has_option`: the key in the section or in DEFAULT; false if the section is missing.
    pub fn has_option(&self, section: &str, key: &str) -> bool {
        let key = key.to_lowercase();
        if section == DEFAULT_SECTION || section.is_empty() {
            return self.defaults.find(&key).is_some();
        }
        self.section(section)
            .is_some_and(|s| s.find(&key).is_some() || self.defaults.find(&key).is_some())
    }

    /// The raw option for `key` in `section`, falling back to DEFAULT.
    fn lookup<'a>(&'a self, section: Option<&'a Section>, key: &str) -> Option<&'a RawOption> {
        section
            .and_then(|s| s.find(key))
            .or_else(|| self.defaults.find(key))
    }

    fn resolve(&self, name: &str, line: usize) -> Result<Option<&Section>, ConfigError> {
        if name == DEFAULT_SECTION {
            return Ok(None);
        }
        self.section(name)
            .map(Some)
            .ok_or_else(|| self.no_section(name, line))
    }

    /// Python's `get(section, key)`: the interpolated value, `None` if absent.
    ///
    /// `line` is used only for the error when the section itself is missing.
    pub fn get(&self, section: &str, key: &str, line: usize) -> Result<Option<Item>, ConfigError> {
        let sec = self.resolve(section, line)?;
        let key = key.to_lowercase();
        let Some(opt) = self.lookup(sec, &key) else {
            return Ok(None);
        };
        let value = self.interpolate(sec, opt, &opt.raw, 1)?;
        Ok(Some(Item {
            key,
            value,
            line: opt.line,
        }))
    }

    /// Python's `getboolean`: `None` if absent, an error if the value is not a boolean word.
    pub fn get_bool(
        &self,
        section: &str,
        key: &str,
        line: usize,
    ) -> Result<Option<(bool, usize)>, ConfigError> {
        let Some(item) = self.get(section, key, line)? else {
            return Ok(None);
        };
        match py_bool(&item.value) {
            Some(b) => Ok(Some((b, item.line))),
            None => Err(ConfigError::new(
                &self.path,
                item.line,
                format!(
                    "{key} = {:?} is not a boolean (use true/false, yes/no, on/off or 1/0)",
                    item.value
                ),
            )),
        }
    }

    /// Python's `items(section)`: DEFAULT's keys first, then the section's own, all interpolated.
    pub fn items(&self, section: &str, line: usize) -> Result<Vec<Item>, ConfigError> {
        let sec = self.resolve(section, line)?;
        let mut keys: Vec<&str> = self.defaults.options.iter().map(|o| o.key.as_str()).collect();
        if let Some(s) = sec {
            for o in &s.options {
                if !keys.contains(&o.key.as_str()) {
                    keys.push(&o.key);
                }
            }
        }
        keys.into_iter()
            .filter_map(|k| self.lookup(sec, k))
            .map(|opt| {
                let value = self.interpolate(sec, opt, &opt.raw, 1)?;
                Ok(Item {
                    key: opt.key.clone(),
                    value,
                    line: opt.line,
                })
            })
            .collect()
    }

    /// BasicInterpolation's `_interpolate_some`.
    fn interpolate(
        &self,
        sec: Option<&Section>,
        opt: &RawOption,
        raw: &str,
        depth: usize,
    ) -> Result<String, ConfigError> {
        let fail = |m: String| ConfigError::new(&self.path, opt.line, m);
        if depth > MAX_INTERPOLATION_DEPTH {
            return Err(fail(format!(
                "'{}': %(...)s references nest deeper than {MAX_INTERPOLATION_DEPTH} (a loop?)",
                opt.key
            )));
        }
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(p) = rest.find('%') {
            out.push_str(&rest[..p]);
            rest = &rest[p..];
            match rest.as_bytes().get(1) {
                Some(b'%') => {
                    out.push('%');
                    rest = &rest[2..];
                }
                Some(b'(') => {
                    let body = &rest[2..];
                    let close = body
                        .find(')')
                        .filter(|&c| c > 0 && body[c + 1..].starts_with('s'));
                    let Some(c) = close else {
                        return Err(fail(format!(
                            "'{}': bad interpolation reference {rest:?} (write %% for a literal %)",
                            opt.key
                        )));
                    };
                    let var = body[..c].to_lowercase();
                    let Some(target) = self.lookup(sec, &var) else {
                        return Err(fail(format!(
                            "'{}': %({var})s names no option in this section or DEFAULT",
                            opt.key
                        )));
                    };
                    if target.raw.contains('%') {
                        out.push_str(&self.interpolate(sec, opt, &target.raw, depth + 1)?);
                    } else {
                        out.push_str(&target.raw);
                    }
                    rest = &body[c + 2..];
                }
                _ => {
                    return Err(fail(format!(
                        "'{}': '%' must be followed by '%' or '(' (write %% for a literal %), found {rest:?}",
                        opt.key
                    )));
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str, section: &str) -> Vec<(String, String)> {
        let ini = Ini::parse("t.conf", text).unwrap();
        ini.items(section, 0)
            .unwrap()
            .into_iter()
            .map(|i| (i.key, i.value))
            .collect()
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

    #[test]
    fn table_of_configparser_rules() {
        let cases: &[Case<'_>] = &[
            ("[a]\nKey = v\n", "a", &[("key", "v")]),
            ("[a]\nk: v\n", "a", &[("k", "v")]),
            ("[a]\nk : v = w\n", "a", &[("k", "v = w")]),
            ("[a]\nk = v # not a comment\n", "a", &[("k", "v # not a comment")]),
            ("[a]\n# c\n; c\nk=v\n", "a", &[("k", "v")]),
            (
                "[a]\nk = one\n  two\n\n  three\n\n",
                "a",
                &[("k", "one\ntwo\n\nthree")],
            ),
            ("[a]\nk = one\n  # c\n  two\n", "a", &[("k", "one\ntwo")]),
            ("[a]\nk =\n", "a", &[("k", "")]),
            (
                "[DEFAULT]\nd = 1\n[a]\nk = %(d)s0\n",
                "a",
                &[("d", "1"), ("k", "10")],
            ),
            ("[DEFAULT]\nd = 1\n[a]\nd = 2\n", "a", &[("d", "2")]),
            ("[a]\nk = 100%%\n", "a", &[("k", "100%")]),
            ("[a]\r\nk = v\r\n", "a", &[("k", "v")]),
            ("[a]\rk = v\r", "a", &[("k", "v")]),
            ("  [a]\n  k = v\n", "a", &[("k", "v")]),
            ("[a] trailing]\nk=v\n", "a] trailing", &[("k", "v")]),
        ];
        for (text, section, want) in cases {
            assert_eq!(items(text, section), kv(want), "{text:?}");
        }
    }

    #[test]
    fn errors_carry_lines() {
        let cases: &[(&str, usize)] = &[
            ("k = v\n", 1),
            ("[a]\nnot an option\n", 2),
            ("[a]\nk=1\nk=2\n", 3),
            ("[a]\n[b]\n[a]\n", 3),
            ("[a]\n= v\n", 2),
            ("[a]\nbad\n[a]\n", 3),
        ];
        for (text, line) in cases {
            let e = Ini::parse("f.conf", text).unwrap_err();
            assert_eq!(e.line, *line, "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("f.conf:{line}: ")), "{e}");
        }
    }

    #[test]
    fn interpolation_errors() {
        for text in [
            "[a]\nk = 5%\n",
            "[a]\nk = %(nope)s\n",
            "[a]\nk = %(k)s\n",
            "[a]\nk = %(x\n",
        ] {
            let ini = Ini::parse("f", text).unwrap();
            assert!(ini.get("a", "k", 0).is_err(), "{text:?}");
        }
    }

    #[test]
    fn headers_are_carbons_ordered_list() {
        let ini = Ini::parse("f", "[b]\nk=v\n[DEFAULT]\n[a]\n").unwrap();
        let names: Vec<_> = ini.headers().iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["b", "DEFAULT", "a"]);
        assert!(!ini.has_option("a", "K"));
        assert!(ini.has_option("b", "K"));
        assert!(!ini.has_section("DEFAULT"));
    }
}
