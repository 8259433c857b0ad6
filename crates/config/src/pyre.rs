//! Python `re` patterns run on Rust's regex engines.
//!
//! Every carbon file that holds a pattern (schemas, aggregation schemas, relay rules, rewrite rules,
//! white/blacklists, aggregation rules) means Python 3.11 `re` syntax. [`PyRegex::new`] rewrites a
//! pattern into the `regex` crate's syntax and compiles it there; patterns that need look-around,
//! backreferences or atomic groups go to `fancy-regex` (a backtracker) instead, so plain patterns keep
//! linear-time matching.
//!
//! Supported, with Python's meaning: literals and every escape Python accepts (`\xhh`, `\uhhhh`,
//! `\Uhhhhhhhh`, octal `\0`/`\123`, `\a \f \n \r \t \v`, escaped punctuation and spaces), `\A`,
//! `\Z` (end of text), `\b \B \d \D \s \S \w \W` (Unicode, as Python 3 `str` patterns; `\B`
//! never matches in an empty string, as in Python), classes (where `[` is a literal and `\b` means
//! backspace, as in Python), `{m}`, `{m,}`, `{,n}`, `{m,n}` and a `{` that is no quantifier as a
//! literal, lazy and possessive quantifiers, groups `(?:)`, `(?P<name>)`, `(?P=name)`, `\1`,
//! look-ahead/behind, atomic groups `(?>)`, comments `(?#...)`, flags `i m s x u` (global, or scoped
//! except `x`).
//!
//! Python's own syntax checks are made before the Rust engines see the pattern (nothing to repeat,
//! multiple repeat, unbalanced parentheses, references to unknown or still-open groups, duplicate
//! group names, global flags not at the start), so a pattern carbon refuses is
//! [`RegexError::Invalid`] here too; the differential tests hold this against Python's `re` on
//! thousands of generated patterns.
//!
//! Refused with [`RegexError::Unsupported`] (Python accepts them; we cannot mean the same thing):
//! the `a` and `L` flags, a scoped `(?x:...)`, `\N{name}`, conditionals `(?(1)a|b)`, a repeated
//! look-around, a numbered reference to an unnamed group in a pattern that also names groups, and
//! patterns beyond the engines' size limits.
//!
//! Known differences: `$` without the `m` flag matches only at the very end (Python also matches
//! before one final `\n`; metric names never end in a newline); `\w` follows Unicode's definition of
//! a word character, which differs from Python's `str.isalnum` for a few marks and symbols; what a
//! repeated group whose body can match empty (`(a|)+`) captures last; and [`sub`] right after an
//! empty match (see there).

use std::fmt;

/// Why a pattern cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegexError {
    /// Python's `re.compile` refuses it too (carbon skips or fails exactly where it would).
    #[error("invalid regular expression {pattern:?}: {reason}")]
    Invalid {
        /// The pattern as written.
        pattern: String,
        /// What is wrong.
        reason: String,
    },
    /// Python accepts it but Carbide cannot match it with the same meaning.
    #[error("regular expression {pattern:?} uses {feature}, which Carbide does not support")]
    Unsupported {
        /// The pattern as written.
        pattern: String,
        /// The construct.
        feature: String,
    },
}

#[derive(Clone)]
enum Engine {
    Std(regex::Regex),
    Fancy(Box<fancy_regex::Regex>),
}

/// A compiled Python pattern, searchable the way `re` searches.
#[derive(Clone)]
pub struct PyRegex {
    pattern: String,
    translated: String,
    engine: Engine,
    /// Used instead of `engine` on the empty string (see `Translation::empty_text`).
    empty_engine: Option<Engine>,
}

impl fmt::Debug for PyRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PyRegex")
            .field("pattern", &self.pattern)
            .field("translated", &self.translated)
            .finish()
    }
}

impl PartialEq for PyRegex {
    fn eq(&self, other: &Self) -> bool {
        self.translated == other.translated
    }
}

/// Options for [`PyRegex::with_options`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PyRegexOptions {
    /// `re.I` (relay rules compile with it).
    pub ignore_case: bool,
    /// Match only at the start of the text, as `re.match` does (aggregation rules use it).
    pub anchored: bool,
}

/// Output of the translation step.
struct Translation {
    text: String,
    /// The same pattern for matching the empty string, if it differs: Python's `\B` never
    /// matches in an empty string (Rust's does), so there it becomes a never-matching class.
    empty_text: Option<String>,
    fancy: bool,
}

struct Translator<'a> {
    src: &'a str,
    chars: Vec<char>,
    i: usize,
    out: String,
    fancy: bool,
    verbose: bool,
    unsupported: Option<String>,
    /// A backreference the last escape or group produced, checked against the groups so far.
    backref: Option<Backref>,
    /// Nothing but global flag groups so far (where Python allows `(?i)`).
    at_start: bool,
    /// Offsets of every `\B` written to `out`.
    non_boundaries: Vec<usize>,
}

/// A backreference by number (`\1`) or name (`(?P=n)`).
enum Backref {
    Number(usize),
    Name(String),
}

fn hex_escape(c: char) -> String {
    format!("\\x{{{:x}}}", u32::from(c))
}

fn is_py_identifier(name: &str) -> bool {
    let mut cs = name.chars();
    cs.next().is_some_and(|c| c == '_' || c.is_alphabetic()) && cs.all(|c| c == '_' || c.is_alphanumeric())
}

impl<'a> Translator<'a> {
    fn invalid(&self, reason: impl Into<String>) -> RegexError {
        RegexError::Invalid {
            pattern: self.src.to_string(),
            reason: reason.into(),
        }
    }

    /// Notes a construct Python accepts and we cannot run; translation goes on, so that a
    /// pattern Python would refuse anyway is still reported as invalid.
    fn unsupported(&mut self, feature: impl Into<String>) {
        self.unsupported.get_or_insert_with(|| feature.into());
    }

    fn peek(&self, k: usize) -> Option<char> {
        self.chars.get(self.i + k).copied()
    }

    fn take_hex(&mut self, n: usize, what: &str) -> Result<char, RegexError> {
        let digits: String = self.chars.iter().skip(self.i).take(n).collect();
        if digits.chars().count() != n || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(self.invalid(format!("incomplete escape \\{what}{digits}")));
        }
        self.i += n;
        u32::from_str_radix(&digits, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| self.invalid(format!("bad escape \\{what}{digits}")))
    }

    /// Up to `max` octal digits starting at the cursor.
    fn take_octal(&mut self, max: usize) -> String {
        let mut s = String::new();
        while s.len() < max {
            match self.peek(0) {
                Some(c @ '0'..='7') => {
                    s.push(c);
                    self.i += 1;
                }
                _ => break,
            }
        }
        s
    }

    fn octal_char(&self, digits: &str) -> Result<char, RegexError> {
        let v = u32::from_str_radix(digits, 8).unwrap_or(0);
        if v > 0o377 {
            return Err(self.invalid(format!("octal escape value \\{digits} outside of range 0-0o377")));
        }
        char::from_u32(v).ok_or_else(|| self.invalid("bad octal escape"))
    }

    /// An escape after `\`, the cursor on the character after the backslash.
    fn escape(&mut self, in_class: bool) -> Result<(), RegexError> {
        let Some(c) = self.peek(0) else {
            return Err(self.invalid("bad escape (end of pattern)"));
        };
        self.i += 1;
        let lit = |t: &mut Self, ch: char| {
            t.out.push_str(&hex_escape(ch));
            Ok(())
        };
        match c {
            'd' | 'D' | 's' | 'S' | 'w' | 'W' => {
                self.out.push('\\');
                self.out.push(c);
                Ok(())
            }
            'b' if in_class => lit(self, '\u{8}'),
            'B' if !in_class => {
                self.non_boundaries.push(self.out.len());
                self.out.push_str("\\B");
                Ok(())
            }
            'b' | 'A' if !in_class => {
                self.out.push('\\');
                self.out.push(c);
                Ok(())
            }
            'Z' if !in_class => {
                self.out.push_str("\\z");
                Ok(())
            }
            'a' => lit(self, '\u{7}'),
            'f' => lit(self, '\u{c}'),
            'n' => lit(self, '\n'),
            'r' => lit(self, '\r'),
            't' => lit(self, '\t'),
            'v' => lit(self, '\u{b}'),
            'x' => {
                let ch = self.take_hex(2, "x")?;
                lit(self, ch)
            }
            'u' => {
                let ch = self.take_hex(4, "u")?;
                lit(self, ch)
            }
            'U' => {
                let ch = self.take_hex(8, "U")?;
                lit(self, ch)
            }
            'N' => {
                self.unsupported("\\N{...} named characters");
                if self.peek(0) == Some('{') {
                    while let Some(c) = self.peek(0) {
                        self.i += 1;
                        if c == '}' {
                            break;
                        }
                    }
                }
                self.out.push('N');
                Ok(())
            }
            '0' => {
                let digits = format!("0{}", self.take_octal(2));
                let ch = self.octal_char(&digits)?;
                lit(self, ch)
            }
            '1'..='9' if in_class => {
                if c > '7' {
                    return Err(self.invalid(format!("bad escape \\{c}")));
                }
                let digits = format!("{c}{}", self.take_octal(2));
                let ch = self.octal_char(&digits)?;
                lit(self, ch)
            }
            '1'..='9' => {
                // Python: three octal digits make an octal escape, else one or two digits a group.
                let (d1, d2) = (self.peek(0), self.peek(1));
                if c <= '7'
                    && d1.is_some_and(|d| ('0'..='7').contains(&d))
                    && d2.is_some_and(|d| ('0'..='7').contains(&d))
                {
                    let digits = format!("{c}{}", self.take_octal(2));
                    let ch = self.octal_char(&digits)?;
                    return lit(self, ch);
                }
                let mut num = c.to_string();
                if let Some(d @ '0'..='9') = d1 {
                    num.push(d);
                    self.i += 1;
                }
                self.fancy = true;
                self.backref = num.parse().ok().map(Backref::Number);
                self.out.push_str(&format!("\\{num}"));
                Ok(())
            }
            c if c.is_ascii_alphanumeric() => Err(self.invalid(format!("bad escape \\{c}"))),
            // Whitespace by code, so that verbose mode cannot drop an escaped space.
            c if c.is_whitespace() => lit(self, c),
            c => {
                self.out.push_str(&regex::escape(&c.to_string()));
                Ok(())
            }
        }
    }

    /// A `{...}` quantifier in Python's forms, or `None` if the brace is a literal.
    fn quantifier(&self) -> Option<(String, usize)> {
        let start = self.i.saturating_sub(1);
        let rest: String = self.chars[start..].iter().take_while(|&&c| c != '}').collect();
        if start + rest.chars().count() >= self.chars.len() {
            return None;
        }
        let body = rest.strip_prefix('{')?;
        let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        let (lo, hi) = match body.split_once(',') {
            Some((lo, hi)) => (lo, Some(hi)),
            None => (body, None),
        };
        if !digits(lo) || !hi.is_none_or(digits) || (lo.is_empty() && hi.is_none()) {
            return None;
        }
        let lo = if lo.is_empty() { "0" } else { lo };
        let text = match hi {
            None => format!("{{{lo}}}"),
            Some("") => format!("{{{lo},}}"),
            Some(hi) => format!("{{{lo},{hi}}}"),
        };
        Some((text, rest.chars().count() + 1))
    }

    /// A lazy `?` or possessive `+` after a quantifier; `item` is where the repeated item starts
    /// in `out` (a possessive `X*+` is the atomic group `(?>X*)`, which fancy-regex runs).
    fn after_quantifier(&mut self, item: usize) -> Result<(), RegexError> {
        if self.peek(0) == Some('?') {
            self.out.push('?');
            self.i += 1;
        } else if self.peek(0) == Some('+') {
            self.out.insert_str(item, "(?>");
            self.out.push(')');
            for at in self.non_boundaries.iter_mut().filter(|at| **at >= item) {
                *at += 3;
            }
            self.fancy = true;
            self.i += 1;
        }
        Ok(())
    }

    fn group_open(&mut self) -> Result<(), RegexError> {
        // Cursor just after '('.
        if self.peek(0) != Some('?') {
            self.out.push('(');
            return Ok(());
        }
        let rest: String = self.chars[self.i..].iter().collect();
        let named = |t: &mut Self, prefix: &str, close: char| -> Result<String, RegexError> {
            let after: String = rest[prefix.len()..].chars().take_while(|&c| c != close).collect();
            if rest[prefix.len() + after.len()..].is_empty() {
                return Err(t.invalid("missing group name terminator"));
            }
            if !is_py_identifier(&after) {
                return Err(t.invalid(format!("bad character in group name {after:?}")));
            }
            if !after.is_ascii() {
                t.unsupported(format!("the non-ASCII group name {after:?}"));
            }
            t.i += prefix.chars().count() + after.chars().count() + 1;
            Ok(after)
        };
        if rest.starts_with("?P<") {
            let name = named(self, "?P<", '>')?;
            self.out.push_str(&format!("(?P<{name}>"));
        } else if rest.starts_with("?P=") {
            let name = named(self, "?P=", ')')?;
            self.fancy = true;
            self.backref = Some(Backref::Name(name.clone()));
            self.out.push_str(&format!("(?:\\k<{name}>)"));
        } else if rest.starts_with("?:") {
            self.i += 2;
            self.out.push_str("(?:");
        } else if rest.starts_with("?=") || rest.starts_with("?!") || rest.starts_with("?>") {
            self.fancy = true;
            self.out.push('(');
            self.out.push_str(&rest[..2]);
            self.i += 2;
        } else if rest.starts_with("?<=") || rest.starts_with("?<!") {
            self.fancy = true;
            self.out.push('(');
            self.out.push_str(&rest[..3]);
            self.i += 3;
        } else if rest.starts_with("?#") {
            let end = rest
                .find(')')
                .ok_or_else(|| self.invalid("missing ), unterminated comment"))?;
            self.i += rest[..=end].chars().count();
        } else if rest.starts_with("?(") {
            let end = rest
                .find(')')
                .ok_or_else(|| self.invalid("missing ), unterminated name"))?;
            let id = &rest[2..end];
            if !(is_py_identifier(id) || (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))) {
                return Err(self.invalid(format!("bad character in group name {id:?}")));
            }
            self.unsupported("a conditional group (?(id)yes|no)");
            self.i += rest[..=end].chars().count();
            self.out.push_str("(?:");
        } else {
            // Flags: (?imsx) or (?imsx-imsx:...)
            let flags: String = rest[1..]
                .chars()
                .take_while(|c| c.is_ascii_alphabetic() || *c == '-')
                .collect();
            let next = rest[1 + flags.len()..].chars().next();
            if flags.is_empty() || !matches!(next, Some(')') | Some(':')) {
                return Err(self.invalid(format!(
                    "unknown extension (?{}",
                    rest[1..].chars().next().unwrap_or(' ')
                )));
            }
            // Python 3.11 refuses global flags anywhere but at the very start.
            if next == Some(')') && !self.at_start {
                return Err(self.invalid("global flags not at the start of the expression"));
            }
            let mut kept = String::new();
            for f in flags.chars() {
                match f {
                    'i' | 'm' | 's' | '-' => kept.push(f),
                    // Verbose mode changes how the translator must read the text; only the
                    // global form, known before reading starts, is supported.
                    'x' if next == Some(')') => kept.push(f),
                    'x' if self.verbose => {}
                    'x' => self.unsupported("the x flag in a scoped group"),
                    'u' => {}
                    'a' | 'L' => self.unsupported(format!("the '{f}' flag")),
                    _ => return Err(self.invalid(format!("unknown flag '{f}'"))),
                }
            }
            self.i += 1 + flags.len() + 1;
            let kept = kept.trim_end_matches('-');
            if next == Some(')') {
                if !kept.is_empty() {
                    self.out.push_str(&format!("(?{kept})"));
                }
            } else if kept.is_empty() {
                self.out.push_str("(?:");
            } else {
                self.out.push_str(&format!("(?{kept}:"));
            }
        }
        Ok(())
    }

    fn class(&mut self) -> Result<(), RegexError> {
        // Cursor just after '['.
        self.out.push('[');
        if self.peek(0) == Some('^') {
            self.out.push('^');
            self.i += 1;
        }
        let mut first = true;
        loop {
            let Some(c) = self.peek(0) else {
                return Err(self.invalid("unterminated character set"));
            };
            self.i += 1;
            match c {
                ']' if first => self.out.push_str("\\]"),
                ']' => {
                    self.out.push(']');
                    return Ok(());
                }
                '\\' => self.escape(true)?,
                '[' | '&' | '~' | '-' if c != '-' || first || self.peek(0) == Some(']') => {
                    self.out.push('\\');
                    self.out.push(c);
                }
                '-' if self.out.ends_with('-') => self.out.push_str("\\-"),
                c if self.verbose && c.is_whitespace() => self.out.push_str(&hex_escape(c)),
                '#' if self.verbose => self.out.push_str("\\#"),
                c => self.out.push(c),
            }
            first = false;
        }
    }

    fn run(mut self) -> Result<Translation, RegexError> {
        // A global (?x) in the leading flag groups makes Python read the whole pattern verbosely.
        let mut rest = self.src;
        while let Some(after) = rest.strip_prefix("(?") {
            let flags: String = after.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
            if flags.is_empty() || !after[flags.len()..].starts_with(')') {
                break;
            }
            self.verbose |= flags.contains('x');
            rest = &after[flags.len() + 1..];
        }
        // What precedes the cursor, for Python's "nothing to repeat" / "multiple repeat" checks,
        // which Rust's parser does not make (it accepts `a**` and `^*`).
        #[derive(Clone, Copy, PartialEq)]
        enum Last {
            Nothing,
            Item,
            Anchor,
            Quantified,
            LookAround,
        }
        let mut last = Last::Nothing;
        // For each open group: whether it is a look-around (fancy-regex cannot repeat those).
        let mut groups: Vec<(bool, Option<usize>, usize)> = vec![];
        // Where the last item (what a quantifier repeats) starts in `out`.
        let mut item_start = 0usize;
        // Capture groups in opening order (number = index + 1) with their names, and which are closed.
        let mut captures: Vec<(Option<String>, bool)> = vec![];
        let mut numbered_unnamed = false;
        while let Some(c) = self.peek(0) {
            self.i += 1;
            let is_quantifier = matches!(c, '*' | '+' | '?') || (c == '{' && self.quantifier().is_some());
            if is_quantifier {
                match last {
                    Last::Quantified => return Err(self.invalid("multiple repeat")),
                    Last::Nothing | Last::Anchor => return Err(self.invalid("nothing to repeat")),
                    Last::LookAround => self.unsupported("a repeated look-around"),
                    Last::Item => {}
                }
            }
            let before = last;
            last = Last::Item;
            let len_before = self.out.len();
            match c {
                '^' | '$' => {
                    self.out.push(c);
                    last = Last::Anchor;
                }
                '\\' if matches!(self.peek(0), Some('A' | 'Z' | 'b' | 'B')) => {
                    self.escape(false)?;
                    last = Last::Anchor;
                }
                '\\' => self.escape(false)?,
                '[' => self.class()?,
                '(' => {
                    let start = self.out.len();
                    self.group_open()?;
                    let emitted = &self.out[start..];
                    last = if emitted.starts_with("(?:\\k<") {
                        // (?P=name): a backreference, an item like any other.
                        Last::Item
                    } else if emitted.is_empty() || emitted.ends_with(')') {
                        // A comment or a global flag group adds nothing to repeat.
                        before
                    } else {
                        let look = emitted.starts_with("(?=")
                            || emitted.starts_with("(?!")
                            || emitted.starts_with("(?<");
                        let capture = if emitted == "(" {
                            Some(None)
                        } else {
                            emitted
                                .strip_prefix("(?P<")
                                .and_then(|n| n.strip_suffix('>'))
                                .map(|n| Some(n.to_string()))
                        };
                        if let Some(Some(name)) = &capture
                            && captures.iter().any(|(n, _)| n.as_ref() == Some(name))
                        {
                            return Err(self.invalid(format!("redefinition of group name '{name}'")));
                        }
                        let number = capture.map(|name| {
                            captures.push((name, false));
                            captures.len()
                        });
                        groups.push((look, number, len_before));
                        Last::Nothing
                    };
                }
                ')' => {
                    self.out.push(')');
                    match groups.pop() {
                        None => return Err(self.invalid("unbalanced parenthesis")),
                        Some((look, number, start)) => {
                            item_start = start;
                            if let Some(c) = number.and_then(|n| captures.get_mut(n - 1)) {
                                c.1 = true;
                            }
                            if look {
                                last = Last::LookAround;
                            }
                        }
                    }
                }
                '|' => {
                    self.out.push('|');
                    last = Last::Nothing;
                }
                '{' => match self.quantifier() {
                    Some((q, len)) => {
                        self.out.push_str(&q);
                        self.i += len - 1;
                        self.after_quantifier(item_start)?;
                        last = Last::Quantified;
                    }
                    None => self.out.push_str("\\{"),
                },
                '*' | '+' | '?' => {
                    self.out.push(c);
                    self.after_quantifier(item_start)?;
                    last = Last::Quantified;
                }
                '}' | ']' => {
                    self.out.push('\\');
                    self.out.push(c);
                }
                '#' if self.verbose => {
                    while let Some(n) = self.peek(0) {
                        if n == '\n' {
                            break;
                        }
                        self.i += 1;
                    }
                    last = before;
                }
                c if self.verbose && c.is_whitespace() => last = before,
                '&' | '~' | '-' | '#' | ' ' => {
                    self.out.push_str(&regex::escape(&c.to_string()));
                }
                c => self.out.push(c),
            }
            if last == Last::Item && c != ')' && !is_quantifier && self.out.len() != len_before {
                item_start = len_before;
            }
            if self.out.len() != len_before && !(c == '(' && self.out[len_before..].ends_with(')')) {
                self.at_start = false;
            }
            match self.backref.take() {
                None => {}
                Some(Backref::Number(n)) => match captures.get(n.wrapping_sub(1)) {
                    None => return Err(self.invalid(format!("invalid group reference {n}"))),
                    Some((_, false)) => return Err(self.invalid("cannot refer to an open group")),
                    // fancy-regex refuses numbered references once groups have names, so a
                    // reference to a named group goes by its name.
                    Some((Some(name), true)) => {
                        let tail = format!("\\{n}");
                        if self.out.ends_with(&tail) {
                            self.out.truncate(self.out.len() - tail.len());
                            self.out.push_str(&format!("(?:\\k<{name}>)"));
                        }
                    }
                    Some((None, true)) => numbered_unnamed = true,
                },
                Some(Backref::Name(name)) => match captures.iter().find(|(n, _)| n.as_deref() == Some(&name))
                {
                    None => return Err(self.invalid(format!("unknown group name '{name}'"))),
                    Some((_, false)) => return Err(self.invalid("cannot refer to an open group")),
                    Some((_, true)) => {}
                },
            }
        }
        if !groups.is_empty() {
            return Err(self.invalid("missing ), unterminated subpattern"));
        }
        if numbered_unnamed && captures.iter().any(|(n, _)| n.is_some()) {
            self.unsupported("a numbered backreference to an unnamed group in a pattern with named groups");
        }
        if let Some(feature) = self.unsupported.take() {
            return Err(RegexError::Unsupported {
                pattern: self.src.to_string(),
                feature,
            });
        }
        let empty_text = (!self.non_boundaries.is_empty()).then(|| {
            let mut t = self.out.clone();
            for &at in self.non_boundaries.iter().rev() {
                t.replace_range(at..at + 2, "[^\\s\\S]");
            }
            t
        });
        Ok(Translation {
            text: self.out,
            empty_text,
            fancy: self.fancy,
        })
    }
}

fn translate(pattern: &str) -> Result<Translation, RegexError> {
    Translator {
        src: pattern,
        chars: pattern.chars().collect(),
        i: 0,
        out: String::new(),
        fancy: false,
        verbose: false,
        unsupported: None,
        backref: None,
        at_start: true,
        non_boundaries: vec![],
    }
    .run()
}

/// Spans of every group of one match: index 0 is the whole match.
pub type Spans = Vec<Option<(usize, usize)>>;

impl PyRegex {
    /// Compiles a Python pattern with no flags, for `re.search`.
    pub fn new(pattern: &str) -> Result<PyRegex, RegexError> {
        Self::with_options(pattern, PyRegexOptions::default())
    }

    /// Compiles a Python pattern with `re.I` and/or `re.match`-style anchoring.
    pub fn with_options(pattern: &str, opts: PyRegexOptions) -> Result<PyRegex, RegexError> {
        let t = translate(pattern)?;
        let wrap = |mut text: String| {
            if opts.anchored {
                text = format!("\\A(?:{text})");
            }
            if opts.ignore_case {
                text = format!("(?i){text}");
            }
            text
        };
        let compile = |text: &str| -> Result<Engine, RegexError> {
            if t.fancy {
                fancy_regex::RegexBuilder::new(text)
                    .build()
                    .map(|r| Engine::Fancy(Box::new(r)))
                    .map_err(|e| classify(pattern, &e.to_string()))
            } else {
                regex::Regex::new(text)
                    .map(Engine::Std)
                    .map_err(|e| classify(pattern, &e.to_string()))
            }
        };
        let text = wrap(t.text.clone());
        let engine = compile(&text)?;
        let empty_engine = match t.empty_text.clone() {
            Some(e) => Some(compile(&wrap(e))?),
            None => None,
        };
        Ok(PyRegex {
            pattern: pattern.to_string(),
            translated: text,
            engine,
            empty_engine,
        })
    }

    /// The pattern as written in the config file.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// The pattern in Rust syntax, for logs and debugging.
    pub fn translated(&self) -> &str {
        &self.translated
    }

    fn engine_for(&self, text: &str) -> &Engine {
        match (&self.empty_engine, text.is_empty()) {
            (Some(e), true) => e,
            _ => &self.engine,
        }
    }

    /// `re.search(pattern, text) is not None`.
    pub fn is_match(&self, text: &str) -> bool {
        match self.engine_for(text) {
            Engine::Std(r) => r.is_match(text),
            // A backtracking limit hit counts as no match rather than a crash.
            Engine::Fancy(r) => r.is_match(text).unwrap_or(false),
        }
    }

    /// Number of groups, including group 0.
    pub fn groups_len(&self) -> usize {
        match &self.engine {
            Engine::Std(r) => r.captures_len(),
            Engine::Fancy(r) => r.captures_len(),
        }
    }

    /// Group names by index (`None` for unnamed groups and group 0).
    pub fn group_names(&self) -> Vec<Option<String>> {
        match &self.engine {
            Engine::Std(r) => r.capture_names().map(|n| n.map(str::to_string)).collect(),
            Engine::Fancy(r) => r.capture_names().map(|n| n.map(str::to_string)).collect(),
        }
    }

    /// The first match at or after byte `pos`, with every group's span.
    pub fn captures_at(&self, text: &str, pos: usize) -> Option<Spans> {
        match self.engine_for(text) {
            Engine::Std(r) => {
                let c = r.captures_at(text, pos)?;
                Some(c.iter().map(|m| m.map(|m| (m.start(), m.end()))).collect())
            }
            Engine::Fancy(r) => {
                let c = r.captures_from_pos(text, pos).ok()??;
                Some(c.iter().map(|m| m.map(|m| (m.start(), m.end()))).collect())
            }
        }
    }

    /// Named groups of the first match, as Python's `match.groupdict()` (unmatched groups left out).
    pub fn groupdict(&self, text: &str) -> Option<Vec<(String, String)>> {
        let spans = self.captures_at(text, 0)?;
        let names = self.group_names();
        Some(
            names
                .iter()
                .zip(spans.iter())
                .filter_map(|(n, s)| {
                    let (a, b) = (*s)?;
                    Some((n.clone()?, text.get(a..b)?.to_string()))
                })
                .collect(),
        )
    }
}

fn classify(pattern: &str, message: &str) -> RegexError {
    // Python's syntax has already been checked by the translator, so these are limits of the
    // engines (fancy-regex cannot repeat a group made only of look-arounds, for one).
    let engine_limit = [
        "size limit",
        "exceeds",
        "Target of repeat operator is invalid",
        "not allowed",
        "not supported",
    ];
    if engine_limit.iter().any(|m| message.contains(m)) {
        RegexError::Unsupported {
            pattern: pattern.to_string(),
            feature: format!(
                "a construct the regex engine cannot run ({})",
                message.lines().last().unwrap_or(message).trim()
            ),
        }
    } else {
        let reason = message.lines().last().unwrap_or(message).trim().to_string();
        RegexError::Invalid {
            pattern: pattern.to_string(),
            reason,
        }
    }
}

/// One piece of a Python replacement template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text copied as is.
    Literal(String),
    /// The text of a group (empty if it did not take part in the match).
    Group(usize),
}

/// A Python `re.sub` replacement (`\1`, `\g<name>`, `\g<0>`, escapes), checked against its pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    pieces: Vec<Piece>,
}

impl Replacement {
    /// Parses `repl` as Python's `re._parser.parse_template` does, for the groups of `regex`.
    pub fn parse(repl: &str, regex: &PyRegex) -> Result<Replacement, String> {
        let names = regex.group_names();
        let groups = regex.groups_len();
        let mut pieces: Vec<Piece> = vec![];
        let mut lit = String::new();
        let chars: Vec<char> = repl.chars().collect();
        let mut i = 0;
        let group = |n: usize, lit: &mut String, pieces: &mut Vec<Piece>| -> Result<(), String> {
            if n >= groups {
                return Err(format!("invalid group reference {n} in replacement {repl:?}"));
            }
            if !lit.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(lit)));
            }
            pieces.push(Piece::Group(n));
            Ok(())
        };
        while let Some(&c) = chars.get(i) {
            i += 1;
            if c != '\\' {
                lit.push(c);
                continue;
            }
            let Some(&e) = chars.get(i) else {
                return Err(format!("bad escape (end of pattern) in replacement {repl:?}"));
            };
            i += 1;
            match e {
                'g' => {
                    if chars.get(i) != Some(&'<') {
                        return Err(format!("missing < after \\g in replacement {repl:?}"));
                    }
                    let name: String = chars[i + 1..].iter().take_while(|&&c| c != '>').collect();
                    if i + 1 + name.chars().count() >= chars.len() {
                        return Err(format!("missing group name terminator in replacement {repl:?}"));
                    }
                    i += name.chars().count() + 2;
                    let n = if !name.is_empty() && name.chars().all(|c| c.is_ascii_digit()) {
                        name.parse::<usize>()
                            .map_err(|_| format!("invalid group reference {name}"))?
                    } else if is_py_identifier(&name) {
                        names
                            .iter()
                            .position(|n| n.as_deref() == Some(name.as_str()))
                            .ok_or_else(|| format!("unknown group name {name:?} in replacement {repl:?}"))?
                    } else {
                        return Err(format!("bad character in group name {name:?}"));
                    };
                    group(n, &mut lit, &mut pieces)?;
                }
                '0' => {
                    let mut digits = String::from("0");
                    while digits.len() < 3 && chars.get(i).is_some_and(|c| ('0'..='7').contains(c)) {
                        digits.push(chars[i]);
                        i += 1;
                    }
                    let v = u32::from_str_radix(&digits, 8).unwrap_or(0);
                    lit.push(char::from_u32(v).unwrap_or('\0'));
                }
                '1'..='9' => {
                    let d1 = chars.get(i).copied();
                    let d2 = chars.get(i + 1).copied();
                    let oct = |c: Option<char>| c.is_some_and(|c| ('0'..='7').contains(&c));
                    if e <= '7' && oct(d1) && oct(d2) {
                        let digits: String = [e, d1.unwrap_or('0'), d2.unwrap_or('0')].iter().collect();
                        let v = u32::from_str_radix(&digits, 8).unwrap_or(0);
                        if v > 0o377 {
                            return Err(format!("octal escape value \\{digits} outside of range 0-0o377"));
                        }
                        lit.push(char::from_u32(v).unwrap_or('\0'));
                        i += 2;
                    } else {
                        let mut num = e.to_string();
                        if let Some(d @ '0'..='9') = d1 {
                            num.push(d);
                            i += 1;
                        }
                        let n = num
                            .parse::<usize>()
                            .map_err(|_| format!("invalid group reference {num}"))?;
                        group(n, &mut lit, &mut pieces)?;
                    }
                }
                'a' => lit.push('\u{7}'),
                'b' => lit.push('\u{8}'),
                'f' => lit.push('\u{c}'),
                'n' => lit.push('\n'),
                'r' => lit.push('\r'),
                't' => lit.push('\t'),
                'v' => lit.push('\u{b}'),
                '\\' => lit.push('\\'),
                e if e.is_ascii_alphanumeric() => {
                    return Err(format!("bad escape \\{e} in replacement {repl:?}"));
                }
                e => {
                    lit.push('\\');
                    lit.push(e);
                }
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Literal(lit));
        }
        Ok(Replacement { pieces })
    }

    /// The template's pieces.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The same template in the `regex` crate's syntax (`${1}`, `$$`), for display or reuse.
    pub fn to_rust_syntax(&self) -> String {
        let mut s = String::new();
        for p in &self.pieces {
            match p {
                Piece::Literal(l) => s.push_str(&l.replace('$', "$$")),
                Piece::Group(n) => s.push_str(&format!("${{{n}}}")),
            }
        }
        s
    }

    fn expand(&self, text: &str, spans: &Spans, out: &mut String) {
        for p in &self.pieces {
            match p {
                Piece::Literal(l) => out.push_str(l),
                Piece::Group(n) => {
                    if let Some(Some((a, b))) = spans.get(*n) {
                        out.push_str(text.get(*a..*b).unwrap_or(""));
                    }
                }
            }
        }
    }
}

/// Python 3.7+'s `re.sub(regex, repl, text)`: every non-overlapping match replaced, an empty match
/// allowed right after a non-empty one but never twice at one position.
///
/// One difference: after an empty match at position p, Python looks for a *non-empty* match starting
/// at p before moving on; the Rust engines cannot be asked for that, so the search goes on from the
/// next character. Only patterns that can match both empty and non-empty at one position, preferring
/// empty (`|a`, `\bx?|\.`), are affected; `^`, `$`, `x*` and the like behave as in Python.
pub fn sub(regex: &PyRegex, repl: &Replacement, text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut pos = 0;
    let mut forbid_empty_at: Option<usize> = None;
    while pos <= text.len() {
        let Some(spans) = regex.captures_at(text, pos) else {
            break;
        };
        let Some(Some((s, e))) = spans.first().copied() else {
            break;
        };
        if s == e && forbid_empty_at == Some(s) {
            match text[s..].chars().next() {
                Some(c) => pos = s + c.len_utf8(),
                None => break,
            }
            continue;
        }
        out.push_str(&text[last..s]);
        repl.expand(text, &spans, &mut out);
        last = e;
        forbid_empty_at = (s == e).then_some(e);
        pos = e;
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(p: &str, t: &str) -> bool {
        PyRegex::new(p).unwrap_or_else(|e| panic!("{p}: {e}")).is_match(t)
    }

    #[test]
    fn python_syntax_table() {
        let cases: &[(&str, &str, bool)] = &[
            (r"^carbon\.", "carbon.agents.x", true),
            (r"^carbon\.", "xcarbon.agents", false),
            (r".*", "", true),
            (r"\.count$", "a.b.count", true),
            (r"a{,2}b", "aab", true),
            (r"x{,2}$", "", true),
            (r"a{x}", "a{x}", true),
            (r"a{1,", "a{1,", true),
            (r"a}", "a}", true),
            (r"[[]", "[", true),
            (r"[]a]", "]", true),
            (r"[^]]", "]", false),
            (r"[a&&b]", "&", true),
            (r"[~-]", "~", true),
            (r"[\b]", "\u{8}", true),
            (r"\x41\u0042\U00000043", "ABC", true),
            (r"\101", "A", true),
            (r"\0", "\0", true),
            (r"(a)\1", "aa", true),
            (r"(?P<x>a)(?P=x)", "aa", true),
            (r"foo(?!bar)", "foobar", false),
            (r"foo(?!bar)", "foobaz", true),
            (r"(?<=a)b", "ab", true),
            (r"(?i)CARBON", "carbon", true),
            (r"(?#comment)a", "a", true),
            (r"a\Z", "a", true),
            (r"\Aa", "ba", false),
            (r"a&b", "a&b", true),
            (r"a#b", "a#b", true),
            (r"a b", "a b", true),
            ("(?x) a b # comment ( [ ", "ab", true),
            ("(?x)[ ]", " ", true),
            ("(?i)(?x) a", "A", true),
            ("(?x)\\ a", " a", true),
            (r"\B", "", false),
            (r"\B|a", "", false),
            (r"x?\B", "-", true),
            (r"a*+a", "aaa", false),
            (r"(ab)++c", "ababc", true),
            (r"[ab]?+b", "b", false),
            (r"\-\/\:", "-/:", true),
            (r"(?s:.)", "\n", true),
            (r"\d\w\s", "1a ", true),
        ];
        for (p, t, want) in cases {
            assert_eq!(search(p, t), *want, "search({p:?}, {t:?})");
        }
    }

    #[test]
    fn invalid_and_unsupported() {
        for p in [
            r"(",
            r"[a",
            r"\q",
            r"a**",
            r"*a",
            r"(?P<1>a)",
            r"\x4",
            r"(?P<a>x)(?P<a>y)",
            r"\8",
            r"[\8]",
            "(?<a>x)",
        ] {
            assert!(
                matches!(PyRegex::new(p), Err(RegexError::Invalid { .. })),
                "{p}: {:?}",
                PyRegex::new(p)
            );
        }
        for p in [r"(?a)\w", r"\N{DIGIT ONE}", r"(a)?(?(1)b|c)"] {
            assert!(
                matches!(PyRegex::new(p), Err(RegexError::Unsupported { .. })),
                "{p}: {:?}",
                PyRegex::new(p)
            );
        }
    }

    #[test]
    fn sub_like_python() {
        let cases: &[(&str, &str, &str, &str)] = &[
            (r"x*", "-", "abxd", "-a-b--d-"),
            (r"_sum$", "", "foo_sum", "foo"),
            (r"^(\w+)\.(\w+)$", r"\2.\1", "a.b", "b.a"),
            (r"(?P<h>[^.]+)\.cpu", r"cpu.\g<h>", "web1.cpu", "cpu.web1"),
            (r"a", r"$1\n", "a", "$1\n"),
            (r"(a)|b", r"[\1]", "ab", "[a][]"),
            (r"\.", r"\g<0>\g<0>", "a.b", "a..b"),
            (r"o", r"\.", "foo", r"f\.\."),
        ];
        for (p, r, t, want) in cases {
            let re = PyRegex::new(p).unwrap();
            let repl = Replacement::parse(r, &re).unwrap();
            assert_eq!(sub(&re, &repl, t), *want, "sub({p:?}, {r:?}, {t:?})");
        }
        let re = PyRegex::new("(a)").unwrap();
        assert!(Replacement::parse(r"\2", &re).is_err());
        assert!(Replacement::parse(r"\g<nope>", &re).is_err());
        assert!(Replacement::parse(r"\q", &re).is_err());
        assert_eq!(
            Replacement::parse(r"$\1x", &re).unwrap().to_rust_syntax(),
            "$$${1}x"
        );
    }
}
