//! Target expressions (`sumSeries(a.*.b)|alias("x")`) → [`Expr`], as graphite-web's pyparsing grammar
//! (`render/grammar_unsafe.py`) reads them, and back to text with `Display`.
//!
//! The grammar, as pyparsing runs it (ordered choice, no backtracking into a choice that matched):
//! ```text
//! expression := (template | call | path) { '|' call }          a|f(x) is f(a, x)
//! call       := name '(' [ args [ ',' kwargs ] ] ')'            kwargs only after a positional arg
//! arg        := bool | number | none | string | inf | expression
//! number     := -?\d+(\.\d+)?([eE]-?\d+)?   only when followed by ',' or ')' or end of line
//! template   := 'template' '(' (call | path) [ ',' (literals | name=literal ...) ] ')'
//! path       := element { '.' element }; element := (chars | '\'sym | '{' chars {',' chars} '}')+
//! ```
//! Whitespace is allowed between tokens but not inside a path or number, tabs are expanded to 8-column
//! stops first (pyparsing's `parseString` does), and strings keep their backslashes: `"\1 A"` is the
//! three characters `\1 A` (graphite-web only strips the quotes).
//!
//! graphite-web parses a target with `parseString` and no `parseAll`, so whatever follows the longest
//! valid prefix is dropped without a word: `sumSeries(a.b` fetches the path `sumSeries`.
//! [`parse_target_lenient`] does the same and says how much it consumed; [`parse_target`] insists on
//! the whole input and reports where and why it stopped.
//!
//! Parsing is memoized per position, so nested keyword arguments cost linear time; pyparsing takes
//! about five times longer per nesting level of `f(x, k=f(x, k=…))` (2.9 s at ten levels).

use std::collections::HashMap;
use std::fmt;

/// Nesting deeper than this is refused rather than risking the stack. graphite-web itself fails with
/// `RecursionError` from 31 nested calls on, so every target it accepts is accepted here.
pub const MAX_DEPTH: usize = 64;

/// A series-producing expression: what a target is, and what an argument is when it is not a literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A metric path or glob, with backslash escapes resolved (`a\(b` is `a(b`).
    Path(String),
    /// A function call; piped calls are already folded in (`a|f(x)` is `f(a, x)`).
    Call(Call),
    /// `template(inner, defaults…)`, expanded at evaluation time by [`crate::template`].
    Template(Box<Template>),
}

/// A function call with its positional and keyword arguments in source order.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The function name (`sumSeries`), case as written.
    pub name: String,
    /// Positional arguments; a piped expression is the first one.
    pub args: Vec<Arg>,
    /// Keyword arguments in source order (duplicates kept; the evaluator keeps the last).
    pub kwargs: Vec<(String, Arg)>,
    /// The call's source text as graphite-web keeps it (`call.raw`), which names the series of
    /// `seriesByTag(...)`. For a piped call it excludes the piped-in part, as in graphite-web.
    pub raw: String,
}

/// `template(inner, …)`: `$name` / `$1` in paths of `inner` are replaced at evaluation time.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The templated call or path (a pipe is not allowed here).
    pub inner: Expr,
    /// Positional defaults, named `1`, `2`, …; numbers or strings only.
    pub args: Vec<Arg>,
    /// Named defaults; numbers or strings only. Either `args` or `kwargs` is empty.
    pub kwargs: Vec<(String, Arg)>,
}

/// A function argument: a literal, or a nested expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A series expression.
    Expr(Expr),
    /// `true` / `false`, any case.
    Bool(bool),
    /// An integer literal that fits in i64 (larger ones become [`Arg::Float`]).
    Int(i64),
    /// A float, scientific, or `inf` literal.
    Float(f64),
    /// A quoted string's content, quotes removed and backslashes kept.
    Str(String),
    /// `None`, any case.
    None,
}

impl Expr {
    /// Replaces every call's `raw` with its canonical rendering, so that an AST built by code and one
    /// parsed from its `Display` compare equal.
    pub fn with_canonical_raw(self) -> Expr {
        match self {
            Expr::Path(p) => Expr::Path(p),
            Expr::Call(c) => Expr::Call(c.with_canonical_raw()),
            Expr::Template(t) => {
                let Template { inner, args, kwargs } = *t;
                Expr::Template(Box::new(Template {
                    inner: inner.with_canonical_raw(),
                    args: args.into_iter().map(Arg::with_canonical_raw).collect(),
                    kwargs: kwargs
                        .into_iter()
                        .map(|(k, v)| (k, v.with_canonical_raw()))
                        .collect(),
                }))
            }
        }
    }
}

impl Arg {
    /// [`Expr::with_canonical_raw`] for an argument.
    pub fn with_canonical_raw(self) -> Arg {
        match self {
            Arg::Expr(e) => Arg::Expr(e.with_canonical_raw()),
            other => other,
        }
    }
}

impl Call {
    /// [`Expr::with_canonical_raw`] for a call.
    pub fn with_canonical_raw(self) -> Call {
        Call::new(
            self.name,
            self.args.into_iter().map(Arg::with_canonical_raw).collect(),
            self.kwargs
                .into_iter()
                .map(|(k, v)| (k, v.with_canonical_raw()))
                .collect(),
        )
    }

    /// Builds a call whose `raw` text is its canonical rendering, for code that makes ASTs.
    pub fn new(name: impl Into<String>, args: Vec<Arg>, kwargs: Vec<(String, Arg)>) -> Call {
        let mut call = Call {
            name: name.into(),
            args,
            kwargs,
            raw: String::new(),
        };
        call.raw = call.to_string();
        call
    }
}

/// Where and why a target failed to parse. `position` counts characters after tab expansion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {position}")]
pub struct ParseError {
    /// Character offset of the failure in the (tab-expanded) target.
    pub position: usize,
    /// What the parser expected there, or what it found.
    pub message: String,
}

/// Parses a whole target: every character but trailing whitespace must belong to the expression.
pub fn parse_target(target: &str) -> Result<Expr, ParseError> {
    let mut p = Parser::new(target);
    let result = p.expression(0, 0);
    match result {
        Some((expr, end)) => {
            let rest = p.skip_ws(end);
            if rest == p.s.len() {
                Ok(expr)
            } else {
                Err(p.error_after(rest))
            }
        }
        None => Err(p.error_after(0)),
    }
}

/// Parses the longest valid prefix of a target, as graphite-web does, returning the expression and
/// the number of characters (after tab expansion) it used. Fails only when no prefix is valid.
pub fn parse_target_lenient(target: &str) -> Result<(Expr, usize), ParseError> {
    let mut p = Parser::new(target);
    match p.expression(0, 0) {
        Some((expr, end)) => Ok((expr, end)),
        None => Err(p.error_after(0)),
    }
}

/// Python's `str.expandtabs()` with 8-column stops, which pyparsing applies before parsing.
fn expand_tabs(s: &str) -> Vec<char> {
    let mut out = Vec::with_capacity(s.len());
    let mut column = 0usize;
    for c in s.chars() {
        match c {
            '\t' => {
                let spaces = 8 - column % 8;
                out.extend(std::iter::repeat_n(' ', spaces));
                column += spaces;
            }
            '\n' | '\r' => {
                out.push(c);
                column = 0;
            }
            _ => {
                out.push(c);
                column += 1;
            }
        }
    }
    out
}

const SYMBOLS: &str = "(){},.'\"\\|";

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\n' | '\t' | '\r')
}

/// A character allowed unescaped in a path element (pyparsing's printables minus the symbols).
pub(crate) fn is_metric_char(c: char) -> bool {
    c.is_ascii_graphic() && !SYMBOLS.contains(c)
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Characters that continue a keyword (pyparsing's `Keyword.DEFAULT_KEYWORD_CHARS`).
fn is_keyword_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

/// Scans a quoted string body from just after its opening quote, as pyparsing's `quotedString` regex
/// does (greedy, no backtracking): returns the position of the closing quote if there is one.
pub(crate) fn scan_string_body(s: &[char], mut i: usize, quote: char) -> Option<usize> {
    loop {
        match s.get(i) {
            Some(&c) if c != quote && c != '\n' && c != '\r' && c != '\\' => i += 1,
            Some(&c) if c == quote && s.get(i + 1) == Some(&quote) => i += 2,
            Some('\\') => match s.get(i + 1) {
                Some('x') => {
                    let hex = s[i + 2..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
                    if hex == 0 {
                        break;
                    }
                    i += 2 + hex;
                }
                Some(_) => i += 2,
                None => break,
            },
            _ => break,
        }
    }
    (s.get(i) == Some(&quote)).then_some(i)
}

struct Parser {
    s: Vec<char>,
    /// Furthest position where something was expected and not found, with what was expected.
    furthest: usize,
    expected: Vec<&'static str>,
    /// Packrat memo: pyparsing re-parses alternatives, which is exponential on nested templates and
    /// keyword arguments; the results are pure functions of the position.
    memo_call: HashMap<usize, Option<(Call, usize)>>,
    memo_template: HashMap<usize, Option<(Template, usize)>>,
    memo_expr: HashMap<usize, Option<(Expr, usize)>>,
    too_deep: Option<usize>,
}

type Res<T> = Option<(T, usize)>;

impl Parser {
    fn new(target: &str) -> Parser {
        Parser {
            s: expand_tabs(target),
            furthest: 0,
            expected: Vec::new(),
            memo_call: HashMap::new(),
            memo_template: HashMap::new(),
            memo_expr: HashMap::new(),
            too_deep: None,
        }
    }

    fn fail<T>(&mut self, pos: usize, what: &'static str) -> Option<T> {
        if pos > self.furthest {
            self.furthest = pos;
            self.expected.clear();
        }
        if pos == self.furthest && !self.expected.contains(&what) {
            self.expected.push(what);
        }
        None
    }

    fn error_after(&self, rest: usize) -> ParseError {
        if let Some(position) = self.too_deep {
            return ParseError {
                position,
                message: format!("nesting deeper than {MAX_DEPTH}"),
            };
        }
        let found = |pos: usize| match self.s.get(pos) {
            Some(c) => format!("found {c:?}"),
            None => "found end of input".to_string(),
        };
        if self.furthest >= rest && !self.expected.is_empty() {
            ParseError {
                position: self.furthest,
                message: format!(
                    "expected {}, {}",
                    self.expected.join(" or "),
                    found(self.furthest)
                ),
            }
        } else {
            ParseError {
                position: rest,
                message: format!("unexpected input, {}", found(rest)),
            }
        }
    }

    fn skip_ws(&self, mut i: usize) -> usize {
        while self.s.get(i).is_some_and(|&c| is_ws(c)) {
            i += 1;
        }
        i
    }

    fn text(&self, from: usize, to: usize) -> String {
        self.s[from..to].iter().collect()
    }

    /// A literal token after optional whitespace.
    fn lit(&mut self, pos: usize, c: char, what: &'static str) -> Option<usize> {
        let i = self.skip_ws(pos);
        if self.s.get(i) == Some(&c) {
            Some(i + 1)
        } else {
            self.fail(i, what)
        }
    }

    fn ident(&mut self, pos: usize, what: &'static str) -> Res<String> {
        let i = self.skip_ws(pos);
        if !self.s.get(i).is_some_and(|&c| is_ident_start(c)) {
            return self.fail(i, what);
        }
        let mut j = i + 1;
        while self.s.get(j).is_some_and(|&c| is_ident_char(c)) {
            j += 1;
        }
        Some((self.text(i, j), j))
    }

    /// A caseless keyword (`true`, `none`, `inf`) not glued to identifier characters.
    fn keyword(&mut self, pos: usize, word: &str) -> Option<usize> {
        let i = self.skip_ws(pos);
        let n = word.len();
        let matches = self.s.len() >= i + n
            && self.s[i..i + n]
                .iter()
                .zip(word.chars())
                .all(|(a, b)| a.eq_ignore_ascii_case(&b));
        let clean_after = !self.s.get(i + n).is_some_and(|&c| is_keyword_char(c));
        let clean_before = i == 0 || !self.s.get(i - 1).is_some_and(|&c| is_keyword_char(c));
        if matches && clean_after && clean_before {
            Some(i + n)
        } else {
            None
        }
    }

    fn expression(&mut self, pos: usize, depth: usize) -> Res<Expr> {
        if let Some(hit) = self.memo_expr.get(&pos) {
            return hit.clone();
        }
        let result = self.expression_uncached(pos, depth);
        self.memo_expr.insert(pos, result.clone());
        result
    }

    fn expression_uncached(&mut self, pos: usize, depth: usize) -> Res<Expr> {
        if depth > MAX_DEPTH {
            self.too_deep.get_or_insert(pos);
            return None;
        }
        let (mut expr, mut end) = if let Some((t, e)) = self.template(pos, depth) {
            (Expr::Template(Box::new(t)), e)
        } else if let Some((c, e)) = self.call(pos, depth) {
            (Expr::Call(c), e)
        } else if let Some((p, e)) = self.path(pos) {
            (Expr::Path(p), e)
        } else {
            return None;
        };
        let mut piped = false;
        while let Some(after_pipe) = self.lit(end, '|', "'|'") {
            let Some((mut call, e)) = self.call(after_pipe, depth) else {
                break;
            };
            call.args.insert(0, Arg::Expr(expr));
            expr = Expr::Call(call);
            end = e;
            piped = true;
        }
        // pyparsing's empty `pipedCalls` group still skips the whitespace before it.
        if !piped {
            end = self.skip_ws(end);
        }
        Some((expr, end))
    }

    fn call(&mut self, pos: usize, depth: usize) -> Res<Call> {
        if let Some(hit) = self.memo_call.get(&pos) {
            return hit.clone();
        }
        let result = self.call_uncached(pos, depth);
        self.memo_call.insert(pos, result.clone());
        result
    }

    fn call_uncached(&mut self, pos: usize, depth: usize) -> Res<Call> {
        let start = self.skip_ws(pos);
        let (name, i) = self.ident(start, "function name")?;
        let mut i = self.lit(i, '(', "'('")?;
        let mut args = Vec::new();
        let mut kwargs = Vec::new();
        if let Some((first_args, j)) = self.positional_args(i, depth) {
            args = first_args;
            i = j;
            if let Some(j) = self.lit(i, ',', "','")
                && let Some((kw, j)) = self.keyword_args(j, depth)
            {
                kwargs = kw;
                i = j;
            }
        }
        let end = self.lit(i, ')', "')'")?;
        Some((
            Call {
                name,
                args,
                kwargs,
                raw: self.text(start, end),
            },
            end,
        ))
    }

    /// `delimitedList(~kwarg + arg)`: one or more positional arguments, stopping before a kwarg.
    fn positional_args(&mut self, pos: usize, depth: usize) -> Res<Vec<Arg>> {
        if self.kwarg(pos, depth).is_some() {
            return None;
        }
        let (first, mut end) = self.arg(pos, depth)?;
        let mut args = vec![first];
        while let Some(j) = self.lit(end, ',', "','") {
            if self.kwarg(j, depth).is_some() {
                break;
            }
            let Some((a, e)) = self.arg(j, depth) else { break };
            args.push(a);
            end = e;
        }
        Some((args, end))
    }

    fn keyword_args(&mut self, pos: usize, depth: usize) -> Res<Vec<(String, Arg)>> {
        let (first, mut end) = self.kwarg(pos, depth)?;
        let mut kwargs = vec![first];
        while let Some(j) = self.lit(end, ',', "','") {
            let Some((kw, e)) = self.kwarg(j, depth) else {
                break;
            };
            kwargs.push(kw);
            end = e;
        }
        Some((kwargs, end))
    }

    fn kwarg(&mut self, pos: usize, depth: usize) -> Res<(String, Arg)> {
        let (name, i) = self.ident(pos, "argument name")?;
        let i = self.lit(i, '=', "'='")?;
        let (value, end) = self.arg(i, depth)?;
        Some(((name, value), end))
    }

    fn arg(&mut self, pos: usize, depth: usize) -> Res<Arg> {
        if let Some(e) = self.keyword(pos, "true") {
            return Some((Arg::Bool(true), e));
        }
        if let Some(e) = self.keyword(pos, "false") {
            return Some((Arg::Bool(false), e));
        }
        if let Some(r) = self.number(pos) {
            return Some(r);
        }
        if let Some(e) = self.keyword(pos, "none") {
            return Some((Arg::None, e));
        }
        if let Some((s, e)) = self.string(pos) {
            return Some((Arg::Str(s), e));
        }
        if let Some(e) = self.keyword(pos, "inf") {
            return Some((Arg::Float(f64::INFINITY), e));
        }
        let (expr, end) = self.expression(pos, depth + 1)?;
        Some((Arg::Expr(expr), end))
    }

    /// `-?\d+` from `i`, returning its end.
    fn int_at(&self, i: usize) -> Option<usize> {
        let j = if self.s.get(i) == Some(&'-') { i + 1 } else { i };
        let digits = self.s[j.min(self.s.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        (digits > 0).then_some(j + digits)
    }

    /// `-?\d+\.\d+` from `i`.
    fn float_at(&self, i: usize) -> Option<usize> {
        let j = self.int_at(i)?;
        if self.s.get(j) != Some(&'.') {
            return None;
        }
        let digits = self.s[j + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        (digits > 0).then_some(j + 1 + digits)
    }

    /// pyparsing's `afterNumber`: a ',' or ')' (after whitespace), or the end of a line.
    fn after_number(&self, i: usize) -> bool {
        let mut j = i;
        while self.s.get(j).is_some_and(|&c| matches!(c, ' ' | '\t' | '\r')) {
            j += 1;
        }
        if matches!(self.s.get(j), None | Some('\n')) {
            return true;
        }
        matches!(self.s.get(self.skip_ws(i)), Some(',' | ')'))
    }

    fn number(&mut self, pos: usize) -> Res<Arg> {
        let i = self.skip_ws(pos);
        // Scientific: (float | int) [eE] int, then the lookahead.
        if let Some(m) = self.float_at(i).or_else(|| self.int_at(i))
            && self.s.get(m).is_some_and(|c| c.eq_ignore_ascii_case(&'e'))
            && let Some(e) = self.int_at(m + 1)
            && self.after_number(e)
        {
            let text = self.text(i, e);
            return Some((Arg::Float(text.parse().unwrap_or(f64::NAN)), e));
        }
        if let Some(e) = self.float_at(i)
            && self.after_number(e)
        {
            return Some((Arg::Float(self.text(i, e).parse().unwrap_or(f64::NAN)), e));
        }
        if let Some(e) = self.int_at(i)
            && self.after_number(e)
        {
            let text = self.text(i, e);
            let value = match text.parse::<i64>() {
                Ok(v) => Arg::Int(v),
                Err(_) => Arg::Float(text.parse().unwrap_or(f64::NAN)),
            };
            return Some((value, e));
        }
        None
    }

    fn string(&mut self, pos: usize) -> Res<String> {
        let i = self.skip_ws(pos);
        let quote = match self.s.get(i) {
            Some(&q @ ('"' | '\'')) => q,
            _ => return self.fail(i, "string"),
        };
        match scan_string_body(&self.s, i + 1, quote) {
            Some(close) => Some((self.text(i + 1, close), close + 1)),
            None => self.fail(i, "closed string"),
        }
    }

    fn template(&mut self, pos: usize, depth: usize) -> Res<Template> {
        if let Some(hit) = self.memo_template.get(&pos) {
            return hit.clone();
        }
        let result = self.template_uncached(pos, depth);
        self.memo_template.insert(pos, result.clone());
        result
    }

    fn template_uncached(&mut self, pos: usize, depth: usize) -> Res<Template> {
        let i = self.skip_ws(pos);
        let word: Vec<char> = "template".chars().collect();
        if self.s.get(i..i + word.len()) != Some(&word[..]) {
            return None;
        }
        let i = self.lit(i + word.len(), '(', "'('")?;
        if depth + 1 > MAX_DEPTH {
            self.too_deep.get_or_insert(i);
            return None;
        }
        let (inner, mut end) = if let Some((c, e)) = self.call(i, depth + 1) {
            (Expr::Call(c), e)
        } else {
            let (p, e) = self.path(i)?;
            (Expr::Path(p), e)
        };
        let mut args = Vec::new();
        let mut kwargs = Vec::new();
        if let Some(j) = self.lit(end, ',', "','") {
            if let Some((a, e)) = self.literal_args(j) {
                args = a;
                end = e;
            } else if let Some((k, e)) = self.literal_kwargs(j) {
                kwargs = k;
                end = e;
            }
        }
        let end = self.lit(end, ')', "')'")?;
        Some((Template { inner, args, kwargs }, end))
    }

    fn literal(&mut self, pos: usize) -> Res<Arg> {
        if let Some(r) = self.number(pos) {
            return Some(r);
        }
        let (s, e) = self.string(pos)?;
        Some((Arg::Str(s), e))
    }

    fn literal_kwarg(&mut self, pos: usize) -> Res<(String, Arg)> {
        let (name, i) = self.ident(pos, "argument name")?;
        let i = self.lit(i, '=', "'='")?;
        let (value, end) = self.literal(i)?;
        Some(((name, value), end))
    }

    fn literal_args(&mut self, pos: usize) -> Res<Vec<Arg>> {
        if self.literal_kwarg(pos).is_some() {
            return None;
        }
        let (first, mut end) = self.literal(pos)?;
        let mut args = vec![first];
        while let Some(j) = self.lit(end, ',', "','") {
            if self.literal_kwarg(j).is_some() {
                break;
            }
            let Some((a, e)) = self.literal(j) else { break };
            args.push(a);
            end = e;
        }
        Some((args, end))
    }

    fn literal_kwargs(&mut self, pos: usize) -> Res<Vec<(String, Arg)>> {
        let (first, mut end) = self.literal_kwarg(pos)?;
        let mut kwargs = vec![first];
        while let Some(j) = self.lit(end, ',', "','") {
            let Some((kw, e)) = self.literal_kwarg(j) else {
                break;
            };
            kwargs.push(kw);
            end = e;
        }
        Some((kwargs, end))
    }

    /// One or more plain characters or backslash escapes (`partialPathElem`), appended to `out`.
    fn partial(&mut self, mut i: usize, out: &mut String) -> Option<usize> {
        let start = i;
        loop {
            match self.s.get(i) {
                Some(&c) if is_metric_char(c) => {
                    out.push(c);
                    i += 1;
                }
                Some('\\') => match self.s.get(i + 1) {
                    Some(&c) if SYMBOLS.contains(c) || c == '=' => {
                        out.push(c);
                        i += 2;
                    }
                    _ => break,
                },
                _ => break,
            }
        }
        if i > start {
            Some(i)
        } else {
            self.fail(i, "metric path")
        }
    }

    /// `{a,b,c}`, braces and commas kept in the output.
    fn match_enum(&mut self, i: usize, out: &mut String) -> Option<usize> {
        if self.s.get(i) != Some(&'{') {
            return None;
        }
        let mut text = String::from("{");
        let mut j = self.partial(i + 1, &mut text)?;
        while self.s.get(j) == Some(&',') {
            let mut more = String::from(",");
            match self.partial(j + 1, &mut more) {
                Some(k) => {
                    text.push_str(&more);
                    j = k;
                }
                None => break,
            }
        }
        if self.s.get(j) != Some(&'}') {
            return self.fail(j, "'}'");
        }
        text.push('}');
        out.push_str(&text);
        Some(j + 1)
    }

    fn path_element(&mut self, i: usize, out: &mut String) -> Option<usize> {
        let mut piece = String::new();
        let mut j = match self.partial(i, &mut piece) {
            Some(j) => j,
            None => self.match_enum(i, &mut piece)?,
        };
        loop {
            if let Some(k) = self.match_enum(j, &mut piece) {
                j = k;
            } else if let Some(k) = self.partial(j, &mut piece) {
                j = k;
            } else {
                break;
            }
        }
        out.push_str(&piece);
        Some(j)
    }

    fn path(&mut self, pos: usize) -> Res<String> {
        let i = self.skip_ws(pos);
        let mut out = String::new();
        let mut end = self.path_element(i, &mut out)?;
        while self.s.get(end) == Some(&'.') {
            let mut next = String::from(".");
            match self.path_element(end + 1, &mut next) {
                Some(e) => {
                    out.push_str(&next);
                    end = e;
                }
                None => break,
            }
        }
        Some((out, end))
    }
}

/// Writes a path, escaping the symbols a path cannot hold unescaped. Braces and commas are written
/// as they are, since they are `{a,b}` alternation in any path the parser produced.
/// An `=` right after a leading identifier is escaped too, or `a=b` would read back as a keyword
/// argument in argument position.
fn write_path(f: &mut fmt::Formatter<'_>, path: &str) -> fmt::Result {
    let ident_len = path.chars().take_while(|&c| is_ident_char(c)).count();
    let kwarg_like = path.chars().next().is_some_and(is_ident_start) && path[ident_len..].starts_with('=');
    for (i, c) in path.chars().enumerate() {
        if matches!(c, '(' | ')' | '\'' | '"' | '\\' | '|') || (kwarg_like && i == ident_len) {
            write!(f, "\\{c}")?;
        } else {
            write!(f, "{c}")?;
        }
    }
    Ok(())
}

/// Chooses a quote that reads `content` back unchanged: `"` if it can, else `'`.
fn string_quote(content: &str) -> char {
    for q in ['"', '\''] {
        let mut probe: Vec<char> = content.chars().collect();
        let n = probe.len();
        probe.push(q);
        probe.push(')');
        if scan_string_body(&probe, 0, q) == Some(n) {
            return q;
        }
    }
    '"'
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Path(p) => write_path(f, p),
            Expr::Call(c) => c.fmt(f),
            Expr::Template(t) => t.fmt(f),
        }
    }
}

fn write_args(f: &mut fmt::Formatter<'_>, args: &[Arg], kwargs: &[(String, Arg)]) -> fmt::Result {
    let mut first = true;
    for a in args {
        if !first {
            f.write_str(",")?;
        }
        first = false;
        fmt::Display::fmt(a, f)?;
    }
    for (k, v) in kwargs {
        if !first {
            f.write_str(",")?;
        }
        first = false;
        write!(f, "{k}={v}")?;
    }
    Ok(())
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.name)?;
        write_args(f, &self.args, &self.kwargs)?;
        f.write_str(")")
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "template({}", self.inner)?;
        if !self.args.is_empty() || !self.kwargs.is_empty() {
            f.write_str(",")?;
            write_args(f, &self.args, &self.kwargs)?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Expr(e) => e.fmt(f),
            Arg::Bool(b) => write!(f, "{b}"),
            Arg::Int(i) => write!(f, "{i}"),
            Arg::Float(x) if x.is_infinite() && *x > 0.0 => f.write_str("inf"),
            Arg::Float(x) if x.is_infinite() => f.write_str("-1e999"),
            Arg::Float(x) => write!(f, "{x:?}"),
            Arg::Str(s) => {
                let q = string_quote(s);
                write!(f, "{q}{s}{q}")
            }
            Arg::None => f.write_str("None"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Arg {
        Arg::Expr(Expr::Path(p.to_string()))
    }

    fn call(name: &str, args: Vec<Arg>, kwargs: Vec<(&str, Arg)>, raw: &str) -> Expr {
        Expr::Call(Call {
            name: name.to_string(),
            args,
            kwargs: kwargs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            raw: raw.to_string(),
        })
    }

    #[test]
    fn paths() {
        for (input, want) in [
            ("a.b-c.d", "a.b-c.d"),
            ("a.{b,c}.*", "a.{b,c}.*"),
            ("a.b:c", "a.b:c"),
            ("a.b=c", "a.b=c"),
            ("a.b@c", "a.b@c"),
            ("a-b.c", "a-b.c"),
            ("1", "1"),
            ("-1.5e3", "-1.5e3"),
            ("1.2.3", "1.2.3"),
            ("5xx.count", "5xx.count"),
            ("a.b[0-9]?.c*", "a.b[0-9]?.c*"),
            ("a\\(b\\).c", "a(b).c"),
            ("a\\.b", "a.b"),
            ("  a.b  ", "a.b"),
            ("x{a,b}y{c}", "x{a,b}y{c}"),
            ("true", "true"),
        ] {
            assert_eq!(parse_target(input), Ok(Expr::Path(want.to_string())), "{input:?}");
        }
    }

    #[test]
    fn calls_and_literals() {
        assert_eq!(
            parse_target("sumSeries(a.*.b)"),
            Ok(call("sumSeries", vec![path("a.*.b")], vec![], "sumSeries(a.*.b)"))
        );
        assert_eq!(
            parse_target(r#"aliasSub(a.b, "(^.*$)", "\1 A")"#),
            Ok(call(
                "aliasSub",
                vec![path("a.b"), Arg::Str("(^.*$)".into()), Arg::Str("\\1 A".into())],
                vec![],
                r#"aliasSub(a.b, "(^.*$)", "\1 A")"#
            ))
        );
        assert_eq!(
            parse_target(r#"summarize(a.b,"1h","sum",false)"#),
            Ok(call(
                "summarize",
                vec![
                    path("a.b"),
                    Arg::Str("1h".into()),
                    Arg::Str("sum".into()),
                    Arg::Bool(false)
                ],
                vec![],
                r#"summarize(a.b,"1h","sum",false)"#
            ))
        );
        assert_eq!(
            parse_target("f(a, 1, -1.5e3, 2.5, TRUE, none, inf, key=1)"),
            Ok(call(
                "f",
                vec![
                    path("a"),
                    Arg::Int(1),
                    Arg::Float(-1500.0),
                    Arg::Float(2.5),
                    Arg::Bool(true),
                    Arg::None,
                    Arg::Float(f64::INFINITY)
                ],
                vec![("key", Arg::Int(1))],
                "f(a, 1, -1.5e3, 2.5, TRUE, none, inf, key=1)"
            ))
        );
        assert_eq!(
            parse_target("f(1.2.3, 5xx.count, 1 , 2)"),
            Ok(call(
                "f",
                vec![path("1.2.3"), path("5xx.count"), Arg::Int(1), Arg::Int(2)],
                vec![],
                "f(1.2.3, 5xx.count, 1 , 2)"
            ))
        );
    }

    #[test]
    fn pipes_fold_into_first_argument() {
        assert_eq!(
            parse_target(r#"a.b|alias("x") | scale(2)"#),
            Ok(call(
                "scale",
                vec![
                    Arg::Expr(call(
                        "alias",
                        vec![path("a.b"), Arg::Str("x".into())],
                        vec![],
                        r#"alias("x")"#
                    )),
                    Arg::Int(2)
                ],
                vec![],
                "scale(2)"
            ))
        );
    }

    #[test]
    fn lenient_prefixes_match_graphite() {
        for (input, want, used) in [
            ("sumSeries(a.b", "sumSeries", 9),
            ("f(key=1)", "f", 1),
            ("f(true.x)", "f", 1),
            ("a..b", "a", 1),
            ("a.b c", "a.b", 4),
            ("a|b", "a", 1),
        ] {
            assert_eq!(
                parse_target_lenient(input),
                Ok((Expr::Path(want.into()), used)),
                "{input:?}"
            );
            assert!(parse_target(input).is_err(), "{input:?} is not a whole target");
        }
    }

    #[test]
    fn errors_carry_position() {
        let e = parse_target("sumSeries(a.b").unwrap_err();
        assert_eq!(e.position, 13);
        assert!(e.message.contains("')'"), "{e}");
        assert_eq!(parse_target("(a)").unwrap_err().position, 0);
        assert!(parse_target("").is_err());
        assert!(parse_target("f(\"abc)").is_err());
    }

    #[test]
    fn templates() {
        let t = parse_target("template(a.$1.b, \"x\")").unwrap();
        assert_eq!(
            t,
            Expr::Template(Box::new(Template {
                inner: Expr::Path("a.$1.b".into()),
                args: vec![Arg::Str("x".into())],
                kwargs: vec![],
            }))
        );
        let t = parse_target("template(sumSeries(a.$host.b), host=\"web1\")").unwrap();
        assert!(matches!(t, Expr::Template(ref t) if t.kwargs.len() == 1));
        // A template with a pipe inside is an ordinary call to a function named `template`.
        assert!(matches!(parse_target("template(a|f(), 1)"), Ok(Expr::Call(ref c)) if c.name == "template"));
    }

    #[test]
    fn display_round_trips() {
        for input in [
            "sumSeries(a.*.b)",
            r#"aliasSub(a.b,"(^.*$)","\1 A")"#,
            "f(a,1,-1500.0,true,None,inf,k='x\"y')",
            "template(a.$1,1,\"s\")",
            "a\\(b",
            "f(1e300,-1e999)",
        ] {
            let ast = parse_target(input).unwrap().with_canonical_raw();
            let shown = ast.to_string();
            assert_eq!(parse_target(&shown).unwrap(), ast, "{input:?} shown as {shown:?}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}a{}", "f(".repeat(500), ")".repeat(500));
        assert!(parse_target(&deep).is_err());
        let nested_templates = format!("{}a.b|x()", "template(".repeat(40));
        let _ = parse_target_lenient(&nested_templates);
    }
}
