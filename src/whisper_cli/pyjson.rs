//! Python's `json.dumps(..., indent=N, separators=...)`, byte for byte.
//!
//! whisper-info and whisper-diff print JSON through Python's encoder, whose layout (one item per line,
//! the chosen separators, `[]` for an empty list), float spelling (`repr`, `NaN`, `Infinity`) and
//! `ensure_ascii` escaping differ from serde_json's pretty printer, so the few shapes they print are
//! rendered here.

use std::fmt::Write as _;

use super::pyfmt;

/// A JSON value with its keys in the order they should be printed.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null` (Python's `None`).
    Null,
    /// An integer.
    Int(i64),
    /// A float, spelled as Python's encoder spells it.
    Float(f64),
    /// A string.
    Str(String),
    /// A list.
    List(Vec<Json>),
    /// An object, in insertion order (or sorted, if the dump asks for it).
    Obj(Vec<(String, Json)>),
}

impl From<Option<f64>> for Json {
    fn from(v: Option<f64>) -> Self {
        v.map_or(Json::Null, Json::Float)
    }
}

/// How the output is laid out: `json.dumps`' `indent`, `separators` and `sort_keys`.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Spaces per nesting level.
    pub indent: usize,
    /// Between a key and its value (`": "` or `" : "`).
    pub key_sep: &'static str,
    /// Whether object keys are sorted.
    pub sort_keys: bool,
}

fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

fn push_float(out: &mut String, x: f64) {
    if x.is_nan() {
        out.push_str("NaN");
    } else if x == f64::INFINITY {
        out.push_str("Infinity");
    } else if x == f64::NEG_INFINITY {
        out.push_str("-Infinity");
    } else {
        out.push_str(&pyfmt::repr(x));
    }
}

fn newline(out: &mut String, style: &Style, depth: usize) {
    out.push('\n');
    out.extend(std::iter::repeat_n(' ', style.indent * depth));
}

fn push_value(out: &mut String, v: &Json, style: &Style, depth: usize) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Json::Float(x) => push_float(out, *x),
        Json::Str(s) => push_str(out, s),
        Json::List(items) if items.is_empty() => out.push_str("[]"),
        Json::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, style, depth + 1);
                push_value(out, item, style, depth + 1);
            }
            newline(out, style, depth);
            out.push(']');
        }
        Json::Obj(fields) if fields.is_empty() => out.push_str("{}"),
        Json::Obj(fields) => {
            let mut fields: Vec<&(String, Json)> = fields.iter().collect();
            if style.sort_keys {
                fields.sort_by(|a, b| a.0.cmp(&b.0));
            }
            out.push('{');
            for (i, (key, value)) in fields.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, style, depth + 1);
                push_str(out, key);
                out.push_str(style.key_sep);
                push_value(out, value, style, depth + 1);
            }
            newline(out, style, depth);
            out.push('}');
        }
    }
}

/// Renders `v` as `json.dumps(v, indent=style.indent, separators=(',', style.key_sep))` would.
pub fn dumps(v: &Json, style: &Style) -> String {
    let mut out = String::new();
    push_value(&mut out, v, style, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: Style = Style {
        indent: 2,
        key_sep: ": ",
        sort_keys: false,
    };

    #[test]
    fn nested_layout() {
        let v = Json::Obj(vec![
            ("b".into(), Json::Int(1)),
            (
                "a".into(),
                Json::List(vec![Json::Obj(vec![("x".into(), Json::Float(0.5))])]),
            ),
            ("e".into(), Json::List(vec![])),
        ]);
        assert_eq!(
            dumps(&v, &INFO),
            "{\n  \"b\": 1,\n  \"a\": [\n    {\n      \"x\": 0.5\n    }\n  ],\n  \"e\": []\n}"
        );
        let sorted = Style {
            key_sep: " : ",
            sort_keys: true,
            ..INFO
        };
        assert_eq!(
            dumps(
                &Json::Obj(vec![("b".into(), Json::Null), ("a".into(), Json::Int(2))]),
                &sorted
            ),
            "{\n  \"a\" : 2,\n  \"b\" : null\n}"
        );
    }

    #[test]
    fn floats_and_strings_as_python_spells_them() {
        let v = Json::List(vec![
            Json::Float(f64::NAN),
            Json::Float(f64::NEG_INFINITY),
            Json::Float(1e16),
            Json::Float(3.0),
        ]);
        assert_eq!(dumps(&v, &INFO), "[\n  NaN,\n  -Infinity,\n  1e+16,\n  3.0\n]");
        assert_eq!(
            dumps(&Json::Str("a\"b\\c\n\u{1}é😀".into()), &INFO),
            "\"a\\\"b\\\\c\\n\\u0001\\u00e9\\ud83d\\ude00\""
        );
    }
}
