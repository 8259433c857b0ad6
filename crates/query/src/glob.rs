//! Metric-path globs matched the way graphite-web's standard finder matches them.
//!
//! A pattern loses its backslashes, is split at every `.`, and each segment is brace-expanded
//! (`{a,b}`, innermost group first, so `{a,{b,c}}` works) and then matched with Python's `fnmatch`
//! rules against one path segment: `*` (never crossing a dot, since segments are matched apart), `?`,
//! `[abc]`, `[a-z]`, `[!a]`. As in `fnmatch`, `[^a]` is *not* a negation (it matches `^` or `a`), an
//! unclosed `[` is a literal, `]` right after `[` or `[!` is a member, and a reversed range (`[z-a]`)
//! matches nothing. A segment that is exactly `**` matches zero or more segments (at the end: one or
//! more), as the finder's directory walk does.
//!
//! Patterns are compiled once into a [`PathGlob`]; matching allocates nothing.

/// Brace expansion beyond this many variants per segment is refused (it grows exponentially).
pub const MAX_VARIANTS: usize = 4096;

/// Why a glob could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// `{a,b}{c,d}…` expanding into more than [`MAX_VARIANTS`] patterns.
    #[error("pattern expands into more than {MAX_VARIANTS} variants")]
    TooManyVariants,
}

/// One character-class member: a single character or an inclusive range.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Range(char, char);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    Any,
    Star,
    Class { negated: bool, members: Vec<Range> },
}

impl Token {
    fn matches_one(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::Any => true,
            Token::Star => false,
            Token::Class { negated, members } => members.iter().any(|r| r.0 <= c && c <= r.1) != *negated,
        }
    }
}

/// One brace-free fnmatch pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Variant {
    /// No wildcard: plain string equality.
    Exact(String),
    Pattern(Vec<Token>),
}

impl Variant {
    fn compile(pattern: &str) -> Variant {
        let tokens = translate(pattern);
        if tokens.iter().all(|t| matches!(t, Token::Literal(_))) {
            Variant::Exact(pattern.to_string())
        } else {
            Variant::Pattern(tokens)
        }
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Variant::Exact(s) => s == name,
            Variant::Pattern(tokens) => match_tokens(tokens, name),
        }
    }
}

/// `fnmatch.translate`, read as tokens instead of a regex.
fn translate(pattern: &str) -> Vec<Token> {
    let pat: Vec<char> = pattern.chars().collect();
    let n = pat.len();
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let c = pat[i];
        i += 1;
        match c {
            '*' => {
                if out.last() != Some(&Token::Star) {
                    out.push(Token::Star);
                }
            }
            '?' => out.push(Token::Any),
            '[' => {
                let mut j = i;
                if j < n && pat[j] == '!' {
                    j += 1;
                }
                if j < n && pat[j] == ']' {
                    j += 1;
                }
                while j < n && pat[j] != ']' {
                    j += 1;
                }
                if j >= n {
                    out.push(Token::Literal('['));
                } else {
                    out.push(class(&pat[i..j]));
                    i = j + 1;
                }
            }
            _ => out.push(Token::Literal(c)),
        }
    }
    out
}

/// The body of `[...]` (without brackets) as fnmatch reads it, ranges and all.
fn class(stuff: &[char]) -> Token {
    let chunks: Vec<Vec<char>> = if !stuff.contains(&'-') {
        vec![stuff.to_vec()]
    } else {
        let mut chunks: Vec<Vec<char>> = Vec::new();
        let mut i = 0;
        let mut k = if stuff.first() == Some(&'!') { 2 } else { 1 };
        while let Some(off) = stuff.get(k..).and_then(|s| s.iter().position(|&c| c == '-')) {
            let dash = k + off;
            chunks.push(stuff[i..dash].to_vec());
            i = dash + 1;
            k = dash + 3;
        }
        let last = stuff[i.min(stuff.len())..].to_vec();
        if last.is_empty() {
            if let Some(prev) = chunks.last_mut() {
                prev.push('-');
            }
        } else {
            chunks.push(last);
        }
        // Drop reversed ranges: the range's two ends vanish and the chunks merge.
        let mut k = chunks.len().saturating_sub(1);
        while k >= 1 {
            let (lo, hi) = (chunks[k - 1].last().copied(), chunks[k].first().copied());
            if let (Some(lo), Some(hi)) = (lo, hi)
                && lo > hi
            {
                let next = chunks.remove(k);
                let prev = &mut chunks[k - 1];
                prev.pop();
                prev.extend_from_slice(&next[1..]);
            }
            k -= 1;
        }
        chunks
    };
    let flat: usize = chunks.iter().map(Vec::len).sum::<usize>() + chunks.len().saturating_sub(1);
    if flat == 0 {
        return Token::Class {
            negated: false,
            members: Vec::new(),
        };
    }
    let negated = chunks.first().and_then(|c| c.first()) == Some(&'!');
    let mut members = Vec::new();
    let last = chunks.len() - 1;
    for (ci, chunk) in chunks.iter().enumerate() {
        let mut start = usize::from(ci > 0);
        if ci == 0 && negated {
            start = 1;
        }
        let end = if ci < last {
            chunk.len().saturating_sub(1)
        } else {
            chunk.len()
        };
        for &c in chunk.get(start..end.max(start)).unwrap_or(&[]) {
            members.push(Range(c, c));
        }
        if ci < last
            && let (Some(&lo), Some(&hi)) = (chunk.last(), chunks[ci + 1].first())
        {
            members.push(Range(lo, hi));
        }
    }
    Token::Class { negated, members }
}

/// Wildcard matching with one backtrack point (enough, since every token but `*` is one character).
fn match_tokens(tokens: &[Token], name: &str) -> bool {
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let c = name[n..].chars().next().unwrap_or('\0');
        match tokens.get(p) {
            Some(Token::Star) => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some(t) if t.matches_one(c) => {
                p += 1;
                n += c.len_utf8();
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, sn)) => {
                let skipped = name[sn..].chars().next().map_or(1, char::len_utf8);
                p = sp + 1;
                n = sn + skipped;
                star = Some((sp, n));
            }
            None => return false,
        }
    }
    tokens[p..].iter().all(|t| *t == Token::Star)
}

/// Graphite's `expand_braces`: the first innermost `{...}` group is split at commas, recursively.
/// The result is deduplicated and sorted.
pub fn expand_braces(s: &str) -> Result<Vec<String>, GlobError> {
    let mut out = Vec::new();
    expand_into(s, &mut out)?;
    out.sort();
    out.dedup();
    Ok(out)
}

fn expand_into(s: &str, out: &mut Vec<String>) -> Result<(), GlobError> {
    // Leftmost '{' whose group holds no other brace.
    let mut group = None;
    for (open, c) in s.char_indices() {
        if c != '{' {
            continue;
        }
        let rest = &s[open + 1..];
        if let Some(close) = rest.find(['{', '}'])
            && rest[close..].starts_with('}')
        {
            group = Some((open, open + 1 + close));
            break;
        }
    }
    match group {
        None => {
            if out.len() >= MAX_VARIANTS {
                return Err(GlobError::TooManyVariants);
            }
            out.push(s.to_string());
        }
        Some((open, close)) => {
            for alt in s[open + 1..close].split(',') {
                expand_into(&format!("{}{}{}", &s[..open], alt, &s[close + 1..]), out)?;
            }
        }
    }
    Ok(())
}

/// A compiled glob for one path segment: any of its brace variants may match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    variants: Vec<Variant>,
}

impl Glob {
    /// Compiles one segment's pattern (no dots expected; a dot is matched literally).
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        let variants = expand_braces(pattern)?
            .iter()
            .map(|v| Variant::compile(v))
            .collect();
        Ok(Glob { variants })
    }

    /// Whether `name` (one segment) matches.
    pub fn matches(&self, name: &str) -> bool {
        self.variants.iter().any(|v| v.matches(name))
    }

    /// The exact names this glob stands for, when it has no wildcard at all: a finder can look these
    /// up directly instead of listing a directory (graphite-web's `has_wildcard` shortcut).
    pub fn literals(&self) -> Option<Vec<&str>> {
        self.variants
            .iter()
            .map(|v| match v {
                Variant::Exact(s) => Some(s.as_str()),
                Variant::Pattern(_) => None,
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Glob(Glob),
    /// `**`: any number of whole segments.
    GlobStar,
}

/// A compiled metric-path pattern (`servers.web*.{cpu,mem}.*`), matched segment by segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathGlob {
    segments: Vec<Segment>,
}

impl PathGlob {
    /// Compiles a path pattern. Backslashes are dropped first, as the finder does.
    pub fn new(pattern: &str) -> Result<PathGlob, GlobError> {
        let clean = pattern.replace('\\', "");
        let segments = clean
            .split('.')
            .map(|s| {
                if s == "**" {
                    Ok(Segment::GlobStar)
                } else {
                    Glob::new(s).map(Segment::Glob)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PathGlob { segments })
    }

    /// Number of `.`-separated segments in the pattern.
    pub fn depth(&self) -> usize {
        self.segments.len()
    }

    /// The compiled glob of segment `i`, or `None` for `**` or past the end.
    pub fn segment(&self, i: usize) -> Option<&Glob> {
        match self.segments.get(i) {
            Some(Segment::Glob(g)) => Some(g),
            _ => None,
        }
    }

    /// Whether a full metric path (`servers.web1.cpu.user`) matches.
    pub fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('.').collect();
        match_segments(&self.segments, &parts)
    }
}

fn match_segments(pattern: &[Segment], parts: &[&str]) -> bool {
    match pattern.split_first() {
        None => parts.is_empty(),
        Some((Segment::GlobStar, rest)) => {
            // A final `**` needs at least one segment below it (the finder appends a `*`).
            let min = usize::from(rest.is_empty());
            (min..=parts.len()).any(|skip| {
                if rest.is_empty() {
                    skip == parts.len()
                } else {
                    match_segments(rest, &parts[skip..])
                }
            })
        }
        Some((Segment::Glob(g), rest)) => parts
            .split_first()
            .is_some_and(|(first, tail)| g.matches(first) && match_segments(rest, tail)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        Glob::new(pattern).unwrap().matches(name)
    }

    #[test]
    fn fnmatch_rules() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "anything", true),
            ("*", "", true),
            ("a*", "abc", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbb", false),
            ("?", "x", true),
            ("?", "", false),
            ("[abc]", "b", true),
            ("[a-c]x", "bx", true),
            ("[!a]", "a", false),
            ("[!a]", "b", true),
            ("[^a]", "^", true),
            ("[^a]", "b", false),
            ("[]]", "]", true),
            ("[!]]", "a", true),
            ("[!]]", "]", false),
            ("[", "[", true),
            ("a[b", "a[b", true),
            ("[z-a]", "m", false),
            ("[!z-a]", "m", true),
            ("[a-]", "-", true),
            ("[-a]", "-", true),
            ("[a-c-e]", "-", true),
            ("[a-c-e]", "d", false),
            ("{a,b}", "b", true),
            ("{a,{b,c}}x", "cx", true),
            ("x{a,b", "x{a,b", true),
            ("web{1,2}*", "web22", true),
            ("{,a}b", "b", true),
            ("é*", "éa", true),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(m(pattern, name), *want, "{pattern:?} vs {name:?}");
        }
    }

    #[test]
    fn paths() {
        let g = PathGlob::new("servers.web*.{cpu,mem}.*").unwrap();
        assert!(g.matches("servers.web1.cpu.user"));
        assert!(!g.matches("servers.web1.disk.user"));
        assert!(!g.matches("servers.web1.cpu"));
        assert!(!g.matches("servers.web1.x.cpu.user"), "* never crosses a dot");
        let g = PathGlob::new("a.**.z").unwrap();
        assert!(g.matches("a.z"));
        assert!(g.matches("a.b.c.z"));
        assert!(!g.matches("a.b.c"));
        let g = PathGlob::new("a.**").unwrap();
        assert!(g.matches("a.b.c"));
        assert!(!g.matches("a"));
        assert!(PathGlob::new("a\\.b").unwrap().matches("a.b"));
    }

    #[test]
    fn brace_expansion() {
        assert_eq!(expand_braces("a{b,c}d").unwrap(), vec!["abd", "acd"]);
        assert_eq!(expand_braces("{a,{b,c}}").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(expand_braces("{a}").unwrap(), vec!["a"]);
        assert_eq!(expand_braces("}{").unwrap(), vec!["}{"]);
        let bomb = "{a,b}".repeat(20);
        assert_eq!(expand_braces(&bomb), Err(GlobError::TooManyVariants));
        assert_eq!(Glob::new("x{a,b}").unwrap().literals(), Some(vec!["xa", "xb"]));
        assert_eq!(Glob::new("x*").unwrap().literals(), None);
    }
}
